//! eBPF micro-segmentation guard: policy model and compiler, aya loader, events; the C BPF program lives in bpf/.
