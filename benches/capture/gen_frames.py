#!/usr/bin/env python3
"""Writes a pcap of N Ethernet/IPv4/UDP frames over F flows (both directions), fixed or varied size.

usage: gen_frames.py OUT N [--size 64|--size var] [--flows F]
Used by benches/capture/run.sh until `netspectra gen` covers fixed-size frames.
"""
import struct, sys

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def main():
    out, n = sys.argv[1], int(sys.argv[2])
    size, flows = "64", 64
    a = sys.argv[3:]
    for i, x in enumerate(a):
        if x == "--size": size = a[i + 1]
        if x == "--flows": flows = int(a[i + 1])
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i in range(n):
            fl = i % flows
            rev = (i // flows) % 2 == 1
            src, dst = bytes([10, 1, fl >> 8 & 255, fl & 255]), bytes([10, 2, 0, 1])
            sp, dp = 10000 + fl, 5001
            if rev:
                src, dst, sp, dp = dst, src, dp, sp
            total = 64 if size == "64" else 64 + (i * 37) % 1400
            plen = total - 4 - 14 - 20 - 8  # 64-byte frame on the wire incl. FCS = 60 captured
            plen = max(plen, 0)
            payload = bytes(((i + k) & 255) for k in range(plen))
            udp = struct.pack("!HHHH", sp, dp, 8 + plen, 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            fr = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + udp
            ts = 1_700_000_000_000_000 + i * 10
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(fr), len(fr)))
            f.write(fr)

main()
