#!/usr/bin/env python3
"""Writes a pcap with N one-packet UDP flows (all distinct 5-tuples), to measure memory per
live flow: `python3 many_flows.py OUT.pcap N`."""
import struct, sys

out, n = sys.argv[1], int(sys.argv[2])
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    for i in range(n):
        src = 0x0A000000 | (i & 0xFFFFFF)
        dst = 0xC0A80001
        sport = 1024 + (i >> 24)
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 28 + 18, 0, 0, 64, 17, 0, src, dst)
        udp = struct.pack("!HHHH", sport, 53, 8 + 18, 0) + b"\x00" * 18
        frame = eth + ip + udp
        ts = 1_700_000_000 + i // 100_000
        f.write(struct.pack("<IIII", ts, (i % 100_000) * 10, len(frame), len(frame)))
        f.write(frame)
