/* Types and constants shared by the guard's BPF program (guard.bpf.c) and its Rust control plane.
 *
 * This header is the single source of truth: build.rs compiles a host probe against it that prints
 * every size, offset and constant below; the Rust side includes those generated values and its
 * tests assert that the #[repr(C)] mirrors in src/abi.rs have identical layouts.
 *
 * Conventions: addresses are 16 bytes in network byte order, IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d); ports are in host byte order; everything is little-endian on both sides.
 */
#ifndef NETSPECTRA_GUARD_SHARED_H
#define NETSPECTRA_GUARD_SHARED_H

#include <linux/types.h>

/* ---- limits ---- */
#define GUARD_MAX_DEPTH 8              /* nesting depth of destination CIDRs walked per lookup */
#define GUARD_NODES_PER_BANK 65536     /* destination nodes per policy bank */
#define GUARD_PORT_PROTOS 3            /* tcp, udp, sctp have port classes */
#define GUARD_PORTS 65536
#define GUARD_PORT_CLASS_SLOTS 16384 /* per protocol and bank: 4 classes (u16) per u64 slot */
#define GUARD_NODE_NONE 0xffffffffu    /* parent of the root node */
#define GUARD_SESSION_LINGER_NS 5000000000ull /* a closed TCP session is kept this long */
#define GUARD_DEFAULT_MAX_SESSIONS 131072
#define GUARD_MAX_RULE_ENTRIES 1048576 /* LPM rule entries, both banks */
#define GUARD_MAX_EXACT 131072         /* exact entries, both banks */
#define GUARD_MAX_DST 131072           /* destination prefixes, both banks */
#define GUARD_MAX_FRAGS 4096
#define GUARD_RINGBUF_BYTES (1u << 20)
#define GUARD_EVENT_WINDOW_NS 1000000000ull
#define GUARD_TICK_SHIFT 20            /* sess_val.first_t/last_t = ns >> 20 */
#define GUARD_TICK16_SHIFT 24          /* sess_val.closed_t/ev_window_t = (u16)(ns >> 24) */

/* ---- sess_val.flags ---- */
#define GUARD_SESS_INIT_B 1    /* side b initiated the session */
#define GUARD_SESS_FIN_A 2     /* FIN seen from a (direction 0) */
#define GUARD_SESS_FIN_B 4     /* FIN seen from b (direction 1) */
#define GUARD_SESS_CLOSED 8    /* FIN both ways: closed at closed_t */

/* ---- guard_config.flags ---- */
#define GUARD_CFG_HAS_EXACT 1 /* the active bank has exact entries */

/* ---- actions ---- */
#define GUARD_ACT_ALLOW 0
#define GUARD_ACT_DENY 1
#define GUARD_ACT_LOG 2

/* ---- lookup shapes (bits in node_val.shapes, value of rule_key.shape) ---- */
#define GUARD_SHAPE_PORT 0     /* exact protocol, destination port class */
#define GUARD_SHAPE_PROTO 1    /* exact protocol, any port */
#define GUARD_SHAPE_ANY 2      /* any protocol */

/* ---- special rule ids (real rules are 0..n-1 in file order) ---- */
#define GUARD_RULE_NONE 0xffffffffu
#define GUARD_RULE_DEFAULT 0xfffffffeu
#define GUARD_RULE_FRAGMENT 0xfffffffdu
#define GUARD_RULE_ICMP_ERROR 0xfffffffcu
#define GUARD_RULE_NDP 0xfffffffbu
#define GUARD_RULE_MAP_FULL 0xfffffffau
#define GUARD_RULE_MALFORMED 0xfffffff9u

/* ---- event flags ---- */
#define GUARD_EV_DROPPED 1     /* the packet was dropped */
#define GUARD_EV_AUDIT 2       /* audit mode: would have been dropped, was passed */
#define GUARD_EV_REEVAL 4      /* verdict came from re-evaluating a session after a reload */
#define GUARD_EV_NEW 8         /* first packet of the session */

/* ---- per-CPU counter indices ---- */
#define GUARD_C_PACKETS 0
#define GUARD_C_BYTES 1
#define GUARD_C_ALLOWED 2
#define GUARD_C_DENIED 3
#define GUARD_C_LOGGED 4
#define GUARD_C_CACHE_HIT 5
#define GUARD_C_CACHE_MISS 6
#define GUARD_C_POLICY_LOOKUPS 7
#define GUARD_C_RB_DROPS 8
#define GUARD_C_NON_IP 9
#define GUARD_C_MALFORMED 10
#define GUARD_C_SESS_CREATED 11
#define GUARD_C_SESS_RETIRED 12
#define GUARD_C_SESS_INSERT_FAIL 13
#define GUARD_C_EVENTS 14
#define GUARD_C_EVENTS_LIMITED 15
#define GUARD_C_FRAGMENTS 16
#define GUARD_C_ICMP_ERR_MATCHED 17
#define GUARD_C_AUDIT_PASSED 18
#define GUARD_C_REEVALUATED 19
#define GUARD_C_DROPPED 20
#define GUARD_C_NUM 21

/* Global configuration, one entry in the `guard_config` array. generation & 1 selects the bank. */
struct guard_config {
	__u32 generation;
	__u8 default_action;
	__u8 audit;
	__u8 fail_closed;
	__u8 frag_action;
	__u32 event_rate;      /* max events per session per second */
	__u32 flags;           /* GUARD_CFG_* */
};

/* Destination prefix -> node id (LPM, prefixlen = 32 + CIDR length in the 128-bit space). */
struct dst_key {
	__u32 prefixlen;
	__u32 bank;            /* matched in full: stored big-endian like the address */
	__u8 addr[16];
};

/* Rule LPM key: exact node/proto/shape/port class, then the source prefix
 * (prefixlen = 96 + source CIDR length). */
struct rule_key {
	__u32 prefixlen;
	__u32 node;            /* node id | bank << 31 */
	__u8 proto;
	__u8 shape;
	__u16 port_class;
	__u32 pad;             /* always zero; keeps src 8-byte aligned */
	__u8 src[16];
};

/* Value of rule and exact entries: the first matching rule and its action. */
struct rule_val {
	__u32 rule_id;
	__u32 action;
};

/* Destination node: the next node of the walk (the nearest ancestor in the CIDR tree that is not
 * merged into this node and has rules of its own; GUARD_NODE_NONE ends the walk) and which shapes
 * have entries here. */
struct node_val {
	__u32 parent;
	__u32 shapes;
};

/* Exact entry key: a fully specified point (host source, host destination, protocol, port). */
struct exact_key {
	__u8 bank;
	__u8 proto;
	__u16 port;
	__u32 pad;
	__u8 src[16];
	__u8 dst[16];
};

/* Canonical bidirectional session key: (a, pa) < (b, pb). */
struct sess_key {
	__u8 a[16];
	__u8 b[16];
	__u16 pa;
	__u16 pb;
	__u8 proto;
	__u8 pad[3];
};

/* Session state, 56 bytes (an LRU slot is 48 B of kernel header + key + value: the value size is
 * most of the session map's memory and of the cache lines a new session touches). Times are
 * bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC) in ticks: first_t/last_t in 2^20 ns (~1.05 ms,
 * u32: ages up to ~52 days), closed_t/ev_window_t in 2^24 ns (~16.8 ms, u16: compared modulo
 * ~18 minutes, enough for the 5 s linger and the 1 s event window). Direction 0 is a -> b,
 * 1 is b -> a. */
struct sess_val {
	__u64 pkts[2];
	__u64 bytes[2];
	__u32 first_t;
	__u32 last_t;
	__u32 generation;
	__u32 rule_id;
	__u16 closed_t;        /* valid when GUARD_SESS_CLOSED is set */
	__u16 ev_window_t;
	__u16 ev_count;        /* saturates at 65535 */
	__u8 action;
	__u8 flags;            /* GUARD_SESS_* */
};

/* Pending fragment train: the verdict of the first fragment. */
struct frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id;
	__u8 proto;
	__u8 pad[3];
};

/* Ring-buffer event for deny and log verdicts. */
struct guard_event {
	__u64 ts_ns;
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 action;
	__u8 flags;
	__u32 rule_id;
	__u32 pkt_len;
	__u32 generation;
	__u32 pad;
};

#ifndef __cplusplus
_Static_assert(sizeof(struct guard_config) == 16, "guard_config size");
_Static_assert(sizeof(struct dst_key) == 24, "dst_key size");
_Static_assert(sizeof(struct rule_key) == 32, "rule_key size");
_Static_assert(sizeof(struct rule_val) == 8, "rule_val size");
_Static_assert(sizeof(struct node_val) == 8, "node_val size");
_Static_assert(sizeof(struct exact_key) == 40, "exact_key size");
_Static_assert(sizeof(struct sess_key) == 40, "sess_key size");
_Static_assert(sizeof(struct sess_val) == 56, "sess_val size");
_Static_assert(sizeof(struct frag_key) == 40, "frag_key size");
_Static_assert(sizeof(struct guard_event) == 64, "guard_event size");
#endif

#endif
