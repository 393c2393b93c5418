#!/usr/bin/env python3
"""Python streaming baseline for `netspectra sanitize --dedup`: dpkt pcap reader/writer and a
set of frame digests (exact duplicates, unlimited window). Usage: dedup_dpkt.py IN OUT"""
import hashlib
import sys

import dpkt


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    seen = set()
    removed = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        r = dpkt.pcap.Reader(f)
        nano = r.nano if hasattr(r, "nano") else False
        w = dpkt.pcap.Writer(g, snaplen=r.snaplen, linktype=r.datalink(), nano=nano)
        for ts, buf in r:
            d = hashlib.blake2b(buf, digest_size=16).digest()
            if d in seen:
                removed += 1
                continue
            seen.add(d)
            w.writepkt(buf, ts)
    print(f"removed {removed}", file=sys.stderr)


if __name__ == "__main__":
    main()
