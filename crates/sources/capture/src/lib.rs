//! Live capture on Linux: AF_PACKET TPACKET_V3 rings with PACKET_FANOUT, classic BPF filters, and an AF_PACKET replay sender.
