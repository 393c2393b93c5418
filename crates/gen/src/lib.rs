//! Deterministic synthetic traffic generator (TCP/UDP/ICMP/HTTP/TLS/DNS, VLANs, IPv6, duplicates) with a JSON truth file.
