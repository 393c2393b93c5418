//! Streaming pcap/pcapng reader (constant memory, zero-copy batches, gzip, stdin) and buffered pcap/pcapng writers.
