//! Runs the real BPF program with BPF_PROG_TEST_RUN on crafted frames (no network) and checks it
//! against the reference evaluator. Needs root; skips with a message otherwise.

use crate::abi::{c, SessKey};
use crate::compile::tests::{arb_policy, arb_tuple};
use crate::frames::{build, FrameSpec, ACK, FIN, RST, SYN};
use crate::policy::{ip_to_u128, Action, FlowTuple, Policy};
use crate::{is_root, Guard};
use proptest::prelude::*;
use std::sync::{Mutex, OnceLock};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

fn guard() -> Option<&'static Mutex<Guard>> {
    static G: OnceLock<Option<Mutex<Guard>>> = OnceLock::new();
    G.get_or_init(|| {
        if !is_root() {
            eprintln!("skipping BPF_PROG_TEST_RUN tests: not root (needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)");
            return None;
        }
        Some(Mutex::new(Guard::load(4096).expect("load guard")))
    })
    .as_ref()
}

fn clear_sessions(g: &Guard) {
    for (k, _) in g.maps.sessions().unwrap() {
        g.maps.delete_session(&k).unwrap();
    }
}

fn canon(s: &FrameSpec) -> SessKey {
    let (sp, dp) = if matches!(s.proto, 1 | 58) {
        (s.sport, s.sport)
    } else if matches!(s.proto, 6 | 17 | 132) {
        (s.sport, s.dport)
    } else {
        (0, 0)
    };
    let a = (s.src.to_be_bytes(), sp);
    let b = (s.dst.to_be_bytes(), dp);
    // same order as the BPF key_less: compare the two 8-byte halves as native u64, then ports
    let ord = |x: &([u8; 16], u16)| {
        (
            u64::from_ne_bytes(x.0[..8].try_into().unwrap()),
            u64::from_ne_bytes(x.0[8..].try_into().unwrap()),
            x.1,
        )
    };
    let (lo, hi) = if ord(&a) < ord(&b) { (a, b) } else { (b, a) };
    SessKey {
        a: lo.0,
        b: hi.0,
        pa: lo.1,
        pb: hi.1,
        proto: s.proto,
        pad: [0; 3],
    }
}

fn session_of(g: &Guard, s: &FrameSpec) -> Option<crate::abi::SessVal> {
    let k = canon(s);
    g.maps
        .sessions()
        .unwrap()
        .into_iter()
        .find(|(kk, _)| *kk == k)
        .map(|(_, v)| v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn bpf_program_matches_reference(p in arb_policy(), ts in prop::collection::vec(arb_tuple(), 1..24), budget in prop::sample::select(vec![None, Some(0), Some(2), Some(8)])) {
        let Some(g) = guard() else { return Ok(()) };
        let g = g.lock().unwrap();
        // partial merges (small budgets) exercise walks that skip some ancestors and visit others
        let compiled = crate::compile::compile_with_merge_budget(&p, budget).unwrap();
        let gen = g.maps.install(&p, &compiled).unwrap();
        clear_sessions(&g);
        let mut frame = Vec::new();
        for (i, t) in ts.iter().enumerate() {
            let want = p.evaluate(t);
            // a fresh session per tuple: a reversed tuple would otherwise be a reply of an earlier one
            clear_sessions(&g);
            let mut spec = FrameSpec::from_tuple(t);
            spec.sport = 40000 + i as u16;
            build(&spec, &mut frame);
            let (ret, _) = g.test_run(&frame, 1).unwrap();
            let expect_ret = if want.action == Action::Deny { TC_ACT_SHOT } else { TC_ACT_OK };
            prop_assert_eq!(ret, expect_ret, "tuple {:?} want {:?}", t, want);
            let s = session_of(&g, &spec).expect("session created");
            prop_assert_eq!(s.generation, gen);
            prop_assert_eq!(s.action as u32, want.action.code() as u32, "tuple {:?}", t);
            prop_assert_eq!(s.rule_id, want.rule.map(|i| i as u32).unwrap_or(crate::abi::RULE_DEFAULT), "tuple {:?}", t);
        }
    }
}

fn v4(s: &str) -> u128 {
    ip_to_u128(s.parse().unwrap())
}

fn pol(y: &str) -> Policy {
    Policy::from_yaml(y).unwrap()
}

#[test]
fn replies_hit_the_session_and_reload_reevaluates() {
    let Some(g) = guard() else { return };
    let g = g.lock().unwrap();
    let p = pol("default: deny\nrules:\n  - {name: web, dst: 10.9.0.2, proto: tcp, port: 80, action: allow}\n");
    g.install(&p).unwrap();
    clear_sessions(&g);
    let before = g.maps.counters().unwrap();
    let mut f = Vec::new();
    let t = FlowTuple {
        src: v4("10.9.0.1"),
        dst: v4("10.9.0.2"),
        proto: 6,
        dport: 80,
    };
    let mut syn = FrameSpec::from_tuple(&t);
    build(&syn, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    // the reply (10.9.0.2:80 -> 10.9.0.1:40000) would be denied by the policy but hits the session
    let mut reply = syn;
    std::mem::swap(&mut reply.src, &mut reply.dst);
    std::mem::swap(&mut reply.sport, &mut reply.dport);
    reply.tcp_flags = SYN | ACK;
    build(&reply, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    let after = g.maps.counters().unwrap();
    assert_eq!(
        after.get(c::GUARD_C_CACHE_HIT) - before.get(c::GUARD_C_CACHE_HIT),
        1
    );
    assert_eq!(
        after.get(c::GUARD_C_POLICY_LOOKUPS) - before.get(c::GUARD_C_POLICY_LOOKUPS),
        1
    );
    let s = session_of(&g, &syn).unwrap();
    assert_eq!(s.pkts[0] + s.pkts[1], 2);
    assert!(s.pkts[0] == 1 && s.pkts[1] == 1);

    // reload with a policy that denies the flow: the cached session is re-evaluated
    let p2 = pol("default: deny\nrules:\n  - {name: block, dst: 10.9.0.2, proto: tcp, port: 80, action: deny}\n");
    let (gen2, _) = g.install(&p2).unwrap();
    build(&reply, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_SHOT);
    let s = session_of(&g, &syn).unwrap();
    assert_eq!((s.generation, s.rule_id, s.action), (gen2, 0, 1));

    // FIN both ways retires the session; RST deletes it
    g.install(&p).unwrap();
    syn.tcp_flags = FIN | ACK;
    build(&syn, &mut f);
    g.test_run(&f, 1).unwrap();
    reply.tcp_flags = FIN | ACK;
    build(&reply, &mut f);
    g.test_run(&f, 1).unwrap();
    assert_ne!(session_of(&g, &syn).unwrap().closed_ns, 0);
    syn.tcp_flags = SYN;
    build(&syn, &mut f);
    g.test_run(&f, 1).unwrap(); // a new SYN on a closed session starts a fresh one
    assert_eq!(session_of(&g, &syn).unwrap().closed_ns, 0);
    syn.tcp_flags = RST;
    build(&syn, &mut f);
    g.test_run(&f, 1).unwrap();
    assert!(session_of(&g, &syn).is_none());
}

#[test]
fn vlan_fragments_icmp_errors_audit() {
    let Some(g) = guard() else { return };
    let g = g.lock().unwrap();
    let p = pol("default: deny\nfragments: deny\nrules:\n  - {name: dns, proto: udp, port: 53, action: allow}\n  - {name: v6, src: 'fd00::/64', proto: icmpv6, action: log}\n");
    g.install(&p).unwrap();
    clear_sessions(&g);
    let mut f = Vec::new();
    // VLAN-tagged allowed UDP and denied UDP
    let mut s = FrameSpec::from_tuple(&FlowTuple {
        src: v4("10.1.0.1"),
        dst: v4("10.1.0.2"),
        proto: 17,
        dport: 53,
    });
    s.vlan = Some(100);
    build(&s, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    s.dport = 54;
    build(&s, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_SHOT);
    // fragments: a later fragment follows its first fragment's verdict; unknown trains use `fragments`
    let mut first = FrameSpec::from_tuple(&FlowTuple {
        src: v4("10.1.0.1"),
        dst: v4("10.1.0.2"),
        proto: 17,
        dport: 53,
    });
    first.frag = Some(0);
    first.frag_id = 77;
    build(&first, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    let mut later = first;
    later.frag = Some(185);
    build(&later, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    later.frag_id = 78;
    build(&later, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_SHOT);
    // IPv6 fragment header, first + later
    let mut f6 = FrameSpec::from_tuple(&FlowTuple {
        src: ip_to_u128("fd00::1".parse().unwrap()),
        dst: ip_to_u128("fd00::2".parse().unwrap()),
        proto: 17,
        dport: 53,
    });
    f6.frag = Some(0);
    f6.frag_id = 0x01020304;
    build(&f6, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    f6.frag = Some(100);
    build(&f6, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    // ICMP error quoting the allowed UDP session passes even though plain ICMP is denied
    let before = g.maps.counters().unwrap();
    let mut err = FrameSpec::from_tuple(&FlowTuple {
        src: v4("10.1.0.2"),
        dst: v4("10.1.0.1"),
        proto: 1,
        dport: 0,
    });
    err.icmp_type = 3;
    build(&err, &mut f);
    // append the quoted packet: IPv4 header 10.1.0.1 -> 10.1.0.2 UDP 40000 -> 53
    f.truncate(14 + 20 + 8);
    let mut inner = Vec::new();
    build(
        &FrameSpec {
            payload: 0,
            ..FrameSpec::from_tuple(&FlowTuple {
                src: v4("10.1.0.1"),
                dst: v4("10.1.0.2"),
                proto: 17,
                dport: 53,
            })
        },
        &mut inner,
    );
    f.extend_from_slice(&inner[14..14 + 28]);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    let after = g.maps.counters().unwrap();
    assert_eq!(
        after.get(c::GUARD_C_ICMP_ERR_MATCHED) - before.get(c::GUARD_C_ICMP_ERR_MATCHED),
        1
    );
    // the same error without a session is just denied ICMP
    f[14 + 28 + 12] = 99;
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_SHOT);
    // ICMPv6 echo from fd00::/64 is logged; neighbour solicitation always passes
    let mut e6 = FrameSpec::from_tuple(&FlowTuple {
        src: ip_to_u128("fd00::1".parse().unwrap()),
        dst: ip_to_u128("fd00::2".parse().unwrap()),
        proto: 58,
        dport: 0,
    });
    build(&e6, &mut f);
    let before = g.maps.counters().unwrap();
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    let after = g.maps.counters().unwrap();
    assert_eq!(
        after.get(c::GUARD_C_LOGGED) - before.get(c::GUARD_C_LOGGED),
        1
    );
    e6.src = ip_to_u128("fd01::1".parse().unwrap());
    e6.icmp_type = 135;
    build(&e6, &mut f);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    // audit: nothing is dropped, denies are counted
    g.maps.set_audit(true).unwrap();
    s.dport = 999;
    build(&s, &mut f);
    let before = g.maps.counters().unwrap();
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
    let after = g.maps.counters().unwrap();
    assert_eq!(
        after.get(c::GUARD_C_AUDIT_PASSED) - before.get(c::GUARD_C_AUDIT_PASSED),
        1
    );
    assert_eq!(
        after.get(c::GUARD_C_DENIED) - before.get(c::GUARD_C_DENIED),
        1
    );
    g.maps.set_audit(false).unwrap();
    // non-IP (ARP) passes and is counted
    f.clear();
    f.extend_from_slice(&[0xff; 12]);
    f.extend_from_slice(&[0x08, 0x06]);
    f.resize(60, 0);
    assert_eq!(g.test_run(&f, 1).unwrap().0, TC_ACT_OK);
}

#[test]
fn events_are_rate_limited_per_session() {
    let Some(g) = guard() else { return };
    let mut g = g.lock().unwrap();
    let p = pol("default: deny\nevent_rate: 3\nrules: []\n");
    g.install(&p).unwrap();
    clear_sessions(&g);
    while g
        .maps
        .poll_events(std::time::Duration::from_millis(1), |_| {})
        .unwrap()
        > 0
    {}
    let mut f = Vec::new();
    let s = FrameSpec::from_tuple(&FlowTuple {
        src: v4("10.2.0.1"),
        dst: v4("10.2.0.2"),
        proto: 17,
        dport: 7,
    });
    build(&s, &mut f);
    let before = g.maps.counters().unwrap();
    assert_eq!(g.test_run(&f, 50).unwrap().0, TC_ACT_SHOT);
    let after = g.maps.counters().unwrap();
    let mut evs = Vec::new();
    g.maps
        .poll_events(std::time::Duration::from_millis(10), |e| evs.push(*e))
        .unwrap();
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(evs[0].rule_id, crate::abi::RULE_DEFAULT);
    assert_eq!(evs[0].dport, 7);
    assert_eq!(
        after.get(c::GUARD_C_EVENTS_LIMITED) - before.get(c::GUARD_C_EVENTS_LIMITED),
        47
    );
    assert_eq!(
        after.get(c::GUARD_C_DROPPED) - before.get(c::GUARD_C_DROPPED),
        50
    );
}

#[test]
fn benchmark_entry_points_do_what_guard_bench_assumes() {
    let Some(g) = guard() else { return };
    let mut g = g.lock().unwrap();
    g.install(&pol("default: allow\nrules: []\n")).unwrap();
    clear_sessions(&g);
    g.load_program("guard_bench_newflow").unwrap();
    g.load_program("guard_bench_newflow_del").unwrap();
    let mut f = Vec::new();
    let s = FrameSpec::from_tuple(&FlowTuple {
        src: v4("100.64.0.0"),
        dst: v4("10.77.0.2"),
        proto: 6,
        dport: 5001,
    });
    build(&s, &mut f);
    // one distinct new flow (source address + 1) per run
    let (ret, _) = g.test_run_program("guard_bench_newflow", &f, 100).unwrap();
    assert_eq!(ret, TC_ACT_OK);
    assert_eq!(g.maps.sessions().unwrap().len(), 100);
    clear_sessions(&g);
    // the same flow every run, its session deleted afterwards
    let before = g.maps.counters().unwrap();
    let (ret, _) = g
        .test_run_program("guard_bench_newflow_del", &f, 100)
        .unwrap();
    assert_eq!(ret, TC_ACT_OK);
    assert!(g.maps.sessions().unwrap().is_empty());
    let after = g.maps.counters().unwrap();
    let d = |i| after.get(i) - before.get(i);
    assert_eq!(
        (d(c::GUARD_C_SESS_CREATED), d(c::GUARD_C_CACHE_MISS)),
        (100, 100)
    );
}
