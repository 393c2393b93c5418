//! Policy compiler: turns an ordered rule list into the guard's BPF map contents while keeping
//! first-match semantics (see docs/GUARD.md, "How first match survives LPM").
//!
//! 1. Exact entries: rules whose source and destination are single hosts with an exact protocol
//!    and port (or a port-less protocol) are points; the exact map stores, for each point, the
//!    reference evaluator's verdict at that point. Those rules match only their point, so they are
//!    left out of the LPM structures.
//! 2. Destination nodes: the distinct destination prefixes of the other rules (plus `any`) form a
//!    tree (prefixes are nested or disjoint). A packet's longest-matching node and its ancestors
//!    are exactly the prefixes containing its destination.
//! 3. Port classes: per port protocol, the ports are cut into elementary intervals at every rule
//!    boundary; a rule's range is a contiguous run of classes.
//! 4. Rule entries: for each (node, protocol, shape, port class) group, an LPM entry per source
//!    prefix whose value is the smallest rule index among the group's rules whose source covers
//!    that prefix. The longest matching source therefore yields the group's first matching rule;
//!    the BPF program takes the minimum over the node's ancestors and shapes.
//! 5. Shorter walks: ancestors whose entries are cheap to copy are merged into their
//!    descendants, and `parent` links skip merged ancestors and ancestors without rules
//!    (`merge_ancestors`).

use crate::abi::{self, c, ExactKey, NodeVal, RuleKey, RuleVal};
use crate::policy::{has_ports, mask, Cidr, FlowTuple, Policy, Rule};
use crate::GuardError;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Maximum destination-prefix nesting depth the BPF program walks.
pub const MAX_DEPTH: usize = c::GUARD_MAX_DEPTH as usize;
/// Protocols with port classes, in BPF index order.
pub const PORT_PROTOS: [u8; 3] = [6, 17, 132];

/// Bank-independent compiled policy.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    /// Destination prefixes and their node ids.
    pub dst: Vec<(Cidr, u32)>,
    /// Node table (index = node id).
    pub nodes: Vec<NodeVal>,
    /// Rule LPM entries (bank bit not yet set in `node`).
    pub rules: Vec<(RuleKey, RuleVal)>,
    /// Exact entries (bank not yet set).
    pub exact: Vec<(ExactKey, RuleVal)>,
    /// Port class tables for tcp/udp/sctp (65536 entries each; empty when the protocol has no
    /// port rules).
    pub port_classes: [Vec<u16>; 3],
    /// Deepest destination nesting (root = 1).
    pub depth: usize,
}

fn port_proto_idx(p: u8) -> Option<usize> {
    PORT_PROTOS.iter().position(|&x| x == p)
}

fn is_point(r: &Rule) -> bool {
    if r.src.len != 128 || r.dst.len != 128 {
        return false;
    }
    match r.proto {
        Some(p) if has_ports(p) => matches!(r.ports, Some((lo, hi)) if lo == hi),
        Some(_) => r.ports.is_none(),
        None => false,
    }
}

fn val(rule: Option<usize>, action: crate::policy::Action) -> RuleVal {
    RuleVal {
        rule_id: rule.map(|i| i as u32).unwrap_or(abi::RULE_DEFAULT),
        action: action.code() as u32,
    }
}

/// Compiles a policy; fails when it exceeds the BPF limits (depth, map sizes).
pub fn compile(policy: &Policy) -> Result<Compiled, GuardError> {
    compile_with_merge_budget(policy, None)
}

/// `compile` with an explicit budget of extra entries for merging ancestors into their
/// descendants (None: the default, max(4096, entries / 16); Some(0): no merging). Tests use it
/// to check every merge level against the reference evaluator.
pub fn compile_with_merge_budget(
    policy: &Policy,
    merge_budget: Option<usize>,
) -> Result<Compiled, GuardError> {
    if policy.rules.len() >= abi::c::GUARD_RULE_MALFORMED as usize {
        return Err(GuardError::Compile("too many rules".into()));
    }
    let mut out = Compiled::default();

    // 1. exact points
    let mut exact: HashMap<ExactKey, RuleVal> = HashMap::new();
    let mut lpm_rules: Vec<usize> = Vec::new();
    for (i, r) in policy.rules.iter().enumerate() {
        if !is_point(r) {
            lpm_rules.push(i);
            continue;
        }
        let proto = r.proto.unwrap_or(0);
        let port = r.ports.map(|p| p.0).unwrap_or(0);
        let key = ExactKey {
            bank: 0,
            proto,
            port,
            pad: 0,
            src: r.src.addr.to_be_bytes(),
            dst: r.dst.addr.to_be_bytes(),
        };
        exact.entry(key).or_insert_with(|| {
            let v = policy.evaluate(&FlowTuple {
                src: r.src.addr,
                dst: r.dst.addr,
                proto,
                dport: port,
            });
            val(v.rule, v.action)
        });
    }
    out.exact = exact.into_iter().collect();
    out.exact
        .sort_by_key(|(k, _)| (k.src, k.dst, k.proto, k.port));

    // 2. destination nodes
    let mut dsts: BTreeSet<(u8, u128)> = BTreeSet::new();
    dsts.insert((0, 0));
    for &i in &lpm_rules {
        let d = policy.rules[i].dst;
        dsts.insert((d.len, d.addr));
    }
    if dsts.len() > c::GUARD_NODES_PER_BANK as usize {
        return Err(GuardError::Compile(format!(
            "{} distinct destination prefixes exceed the limit of {}",
            dsts.len(),
            c::GUARD_NODES_PER_BANK
        )));
    }
    let lens: Vec<u8> = dsts
        .iter()
        .map(|&(l, _)| l)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut node_of: HashMap<(u8, u128), u32> = HashMap::with_capacity(dsts.len());
    let mut depth_of: Vec<usize> = Vec::with_capacity(dsts.len());
    for (id, &(len, addr)) in dsts.iter().enumerate() {
        // parent: longest strictly shorter prefix in the set that contains this one
        let mut parent = abi::NODE_NONE;
        let mut depth = 1;
        for &pl in lens.iter().rev().filter(|&&pl| pl < len) {
            if let Some(&p) = node_of.get(&(pl, addr & mask(pl))) {
                parent = p;
                depth = depth_of[p as usize] + 1;
                break;
            }
        }
        if depth > MAX_DEPTH {
            let rule = lpm_rules
                .iter()
                .map(|&i| &policy.rules[i])
                .find(|r| r.dst.len == len && r.dst.addr == addr)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            return Err(GuardError::Compile(format!(
                "destination {} of rule '{rule}' is nested {depth} prefixes deep; the limit is {MAX_DEPTH}",
                Cidr { addr, len }
            )));
        }
        node_of.insert((len, addr), id as u32);
        depth_of.push(depth);
        out.nodes.push(NodeVal { parent, shapes: 0 });
        out.dst.push((Cidr { addr, len }, id as u32));
        out.depth = out.depth.max(depth);
    }

    // 3. port classes
    let mut bounds: [BTreeSet<u32>; 3] = Default::default();
    for &i in &lpm_rules {
        let r = &policy.rules[i];
        if let (Some(p), Some((lo, hi))) = (r.proto, r.ports) {
            if let Some(pi) = port_proto_idx(p) {
                bounds[pi].insert(0);
                bounds[pi].insert(lo as u32);
                if hi < u16::MAX {
                    bounds[pi].insert(hi as u32 + 1);
                }
            }
        }
    }
    let mut class_starts: [Vec<u32>; 3] = Default::default();
    for pi in 0..3 {
        if bounds[pi].is_empty() {
            continue;
        }
        let starts: Vec<u32> = bounds[pi].iter().copied().collect();
        let mut table = vec![0u16; 65536];
        for (ci, w) in starts.iter().enumerate() {
            let end = starts.get(ci + 1).copied().unwrap_or(65536);
            for slot in &mut table[*w as usize..end as usize] {
                *slot = ci as u16;
            }
        }
        out.port_classes[pi] = table;
        class_starts[pi] = starts;
    }

    // 4. groups -> LPM entries
    let mut groups: Groups = HashMap::new();
    // Overlapping port ranges multiply: a rule spanning k port classes needs k entries. Count
    // entries as they are made and stop at the map's capacity, so a hostile policy is refused
    // in bounded time and memory instead of after building every entry first.
    let limit = (c::GUARD_MAX_RULE_ENTRIES / 2) as usize;
    let mut entries = 0usize;
    for &i in &lpm_rules {
        let r = &policy.rules[i];
        let node = node_of[&(r.dst.len, r.dst.addr)];
        let (proto, shape, classes) = match (r.proto, r.ports) {
            (None, _) => (0, c::GUARD_SHAPE_ANY as u8, 0..=0),
            (Some(p), None) => (p, c::GUARD_SHAPE_PROTO as u8, 0..=0),
            (Some(p), Some((lo, hi))) => {
                let pi = port_proto_idx(p).expect("validated: ports only with port protocols");
                let table = &out.port_classes[pi];
                (
                    p,
                    c::GUARD_SHAPE_PORT as u8,
                    table[lo as usize]..=table[hi as usize],
                )
            }
        };
        for cls in classes {
            let e = groups
                .entry((node, proto, shape, cls))
                .or_default()
                .entry((r.src.len, r.src.addr));
            match e {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let v = o.get_mut();
                    *v = (*v).min(i as u32);
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    entries += 1;
                    if entries > limit {
                        return Err(GuardError::Compile(format!(
                            "more than {limit} rule entries needed (the map capacity) by rule \
                             '{}' and those before it: port ranges crossing many port classes?",
                            r.name
                        )));
                    }
                    v.insert(i as u32);
                }
            }
        }
    }
    merge_ancestors(&mut out.nodes, &mut groups, merge_budget);
    let mut rules = Vec::new();
    for ((node, proto, shape, cls), srcs) in &groups {
        out.nodes[*node as usize].shapes |= 1 << shape;
        let lens: Vec<u8> = srcs
            .keys()
            .map(|&(l, _)| l)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for &(len, addr) in srcs.keys() {
            let mut best = u32::MAX;
            for &l in lens.iter().filter(|&&l| l <= len) {
                if let Some(&idx) = srcs.get(&(l, addr & mask(l))) {
                    best = best.min(idx);
                }
            }
            let r = &policy.rules[best as usize];
            rules.push((
                RuleKey {
                    prefixlen: 96 + len as u32,
                    node: *node,
                    proto: *proto,
                    shape: *shape,
                    port_class: *cls,
                    pad: 0,
                    src: addr.to_be_bytes(),
                },
                val(Some(best as usize), r.action),
            ));
        }
    }
    rules.sort_by_key(|(k, _)| (k.node, k.proto, k.shape, k.port_class, k.prefixlen, k.src));
    out.rules = rules;
    let per_bank = |n: u64| n / 2;
    if out.rules.len() as u64 > per_bank(c::GUARD_MAX_RULE_ENTRIES) {
        return Err(GuardError::Compile(format!(
            "{} rule entries exceed the map capacity of {} (port ranges crossing many classes?)",
            out.rules.len(),
            per_bank(c::GUARD_MAX_RULE_ENTRIES)
        )));
    }
    if out.exact.len() as u64 > per_bank(c::GUARD_MAX_EXACT) {
        return Err(GuardError::Compile(format!(
            "{} exact entries exceed the map capacity of {}",
            out.exact.len(),
            per_bank(c::GUARD_MAX_EXACT)
        )));
    }
    let _ = class_starts;
    Ok(out)
}

/// (node, protocol, shape, port class) -> (source prefix length, address) -> rule index.
type GroupKey = (u32, u8, u8, u16);
type Groups = HashMap<GroupKey, HashMap<(u8, u128), u32>>;

/// Shortens the per-packet walk (5. in the module docs): an ancestor node whose rule entries
/// are cheap to copy (entries x descendants within a budget of max(4096, total / 16) extra
/// entries, cheapest first) is *merged*: its entries are added to the groups of every
/// descendant, so a walk starting below it finds them at its first node. Afterwards every
/// node's `parent` points to its nearest proper ancestor that still has to be visited: not
/// merged and with rule entries of its own. The root with no rules (dst `any` unused) and
/// prefixes used only by exact rules are therefore never visited. Groups are sets of (source,
/// rule index) pairs and a group only holds rules whose destination contains the node, so the
/// copy keeps the minimum-rule-index semantics; the reference tests check it.
fn merge_ancestors(nodes: &mut [NodeVal], groups: &mut Groups, budget: Option<usize>) {
    let n = nodes.len();
    let parent: Vec<u32> = nodes.iter().map(|v| v.parent).collect();
    let mut own = vec![0usize; n];
    for (g, srcs) in groups.iter() {
        own[g.0 as usize] += srcs.len();
    }
    // node ids follow (prefix length, address) order, so a parent's id is below its children's
    let mut desc = vec![0usize; n];
    for id in (1..n).rev() {
        let p = parent[id];
        if p != abi::NODE_NONE {
            desc[p as usize] += 1 + desc[id];
        }
    }
    let total: usize = own.iter().sum();
    let budget = budget.unwrap_or((total / 16).max(4096));
    let mut cands: Vec<(usize, usize)> = (0..n)
        .filter(|&i| own[i] > 0 && desc[i] > 0)
        .map(|i| (own[i] * desc[i], i))
        .collect();
    cands.sort_unstable();
    let mut merged = vec![false; n];
    let mut spent = 0usize;
    for (cost, i) in cands {
        if spent + cost > budget {
            break;
        }
        spent += cost;
        merged[i] = true;
    }
    if merged.iter().any(|&m| m) {
        let mut by_node: HashMap<u32, Vec<(u8, u8, u16)>> = HashMap::new();
        for g in groups.keys() {
            if merged[g.0 as usize] {
                by_node.entry(g.0).or_default().push((g.1, g.2, g.3));
            }
        }
        let mut adds: Vec<(GroupKey, (u8, u128), u32)> = Vec::new();
        for id in 0..n {
            let mut a = parent[id];
            while a != abi::NODE_NONE {
                if let Some(gs) = by_node.get(&a) {
                    for &(proto, shape, cls) in gs {
                        for (&src, &idx) in &groups[&(a, proto, shape, cls)] {
                            adds.push(((id as u32, proto, shape, cls), src, idx));
                        }
                    }
                }
                a = parent[a as usize];
            }
        }
        for (g, src, idx) in adds {
            let e = groups.entry(g).or_default().entry(src).or_insert(u32::MAX);
            *e = (*e).min(idx);
        }
    }
    for (id, node) in nodes.iter_mut().enumerate() {
        let mut p = parent[id];
        while p != abi::NODE_NONE && (merged[p as usize] || own[p as usize] == 0) {
            p = parent[p as usize];
        }
        node.parent = p;
    }
}

impl Compiled {
    /// Evaluates a flow against the compiled structures exactly as the BPF program does
    /// (exact map, destination LPM, ancestor walk, per-shape source LPM, minimum rule id).
    pub fn simulate(&self, t: &FlowTuple, default_action: u8) -> RuleVal {
        let port = if has_ports(t.proto) { t.dport } else { 0 };
        let ek_src = t.src.to_be_bytes();
        let ek_dst = t.dst.to_be_bytes();
        if let Some((_, v)) = self.exact.iter().find(|(k, _)| {
            k.proto == t.proto && k.port == port && k.src == ek_src && k.dst == ek_dst
        }) {
            return *v;
        }
        let mut best = RuleVal {
            rule_id: abi::RULE_DEFAULT,
            action: default_action as u32,
        };
        let Some(&(_, mut node)) = self
            .dst
            .iter()
            .filter(|(cidr, _)| cidr.contains(t.dst))
            .max_by_key(|(cidr, _)| cidr.len)
        else {
            return best;
        };
        let pc = port_proto_idx(t.proto).map(|pi| {
            self.port_classes[pi]
                .get(port as usize)
                .copied()
                .unwrap_or(0)
        });
        let mut found = u32::MAX;
        for _ in 0..MAX_DEPTH {
            let nv = self.nodes[node as usize];
            let mut probe = |proto: u8, shape: u8, cls: u16| {
                let hit = self
                    .rules
                    .iter()
                    .filter(|(k, _)| {
                        k.node == node
                            && k.proto == proto
                            && k.shape == shape
                            && k.port_class == cls
                            && Cidr {
                                addr: u128::from_be_bytes(k.src),
                                len: (k.prefixlen - 96) as u8,
                            }
                            .contains(t.src)
                    })
                    .max_by_key(|(k, _)| k.prefixlen);
                if let Some((_, v)) = hit {
                    if v.rule_id < found {
                        found = v.rule_id;
                        best = *v;
                    }
                }
            };
            if nv.shapes & (1 << c::GUARD_SHAPE_PORT) != 0 {
                if let Some(pc) = pc {
                    probe(t.proto, c::GUARD_SHAPE_PORT as u8, pc);
                }
            }
            if nv.shapes & (1 << c::GUARD_SHAPE_PROTO) != 0 {
                probe(t.proto, c::GUARD_SHAPE_PROTO as u8, 0);
            }
            if nv.shapes & (1 << c::GUARD_SHAPE_ANY) != 0 {
                probe(0, c::GUARD_SHAPE_ANY as u8, 0);
            }
            if nv.parent == abi::NODE_NONE {
                break;
            }
            node = nv.parent;
        }
        best
    }

    /// Number of port classes per port protocol (tcp, udp, sctp).
    pub fn class_counts(&self) -> [usize; 3] {
        let mut n = [0; 3];
        for (i, t) in self.port_classes.iter().enumerate() {
            n[i] = t.last().map(|&c| c as usize + 1).unwrap_or(0);
        }
        n
    }
}

/// Distinct source prefixes in the policy (for diagnostics).
pub fn distinct_sources(policy: &Policy) -> usize {
    policy
        .rules
        .iter()
        .map(|r| (r.src.len, r.src.addr))
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::{Action, OnFull};
    use proptest::prelude::*;

    pub fn arb_cidr() -> impl Strategy<Value = Cidr> {
        // a small address pool so that rules overlap and nest often
        let v4 = (
            0u32..4,
            0u32..4,
            prop::sample::select(vec![0u8, 8, 16, 24, 30, 32]),
        )
            .prop_map(|(a, b, l)| {
                let ip = (10u32 << 24) | (a << 8) | b;
                let len = 96 + l;
                let addr = (crate::policy::V4_MAPPED | ip as u128) & mask(len);
                Cidr { addr, len }
            });
        let v6 = (
            0u128..4,
            0u128..4,
            prop::sample::select(vec![0u8, 16, 64, 120, 126, 128]),
        )
            .prop_map(|(a, b, l)| {
                let addr = (0xfd00u128 << 112 | a << 64 | b) & mask(l);
                Cidr { addr, len: l }
            });
        prop_oneof![v4, v6]
    }

    pub fn arb_rule() -> impl Strategy<Value = Rule> {
        let action = prop::sample::select(vec![Action::Allow, Action::Deny, Action::Log]);
        let proto = prop::sample::select(vec![None, Some(6u8), Some(17), Some(1), Some(58)]);
        (arb_cidr(), arb_cidr(), proto, 0u16..6, 0u16..4, action).prop_map(
            |(src, dst, proto, lo, w, action)| {
                let ports = match proto {
                    Some(p) if has_ports(p) && lo < 5 => {
                        Some((1000 + lo, 1000 + lo + w * (lo % 2)))
                    }
                    _ => None,
                };
                Rule {
                    name: String::new(),
                    src,
                    dst,
                    proto,
                    ports,
                    action,
                }
            },
        )
    }

    pub fn arb_policy() -> impl Strategy<Value = Policy> {
        (
            prop::collection::vec(arb_rule(), 0..24),
            prop::sample::select(vec![Action::Allow, Action::Deny, Action::Log]),
        )
            .prop_map(|(mut rules, default)| {
                for (i, r) in rules.iter_mut().enumerate() {
                    r.name = format!("r{i}");
                }
                Policy {
                    rules,
                    default,
                    audit: false,
                    on_full: OnFull::FailOpen,
                    fragments: Action::Deny,
                    event_rate: 10,
                }
            })
    }

    pub fn arb_tuple() -> impl Strategy<Value = FlowTuple> {
        let addr = prop_oneof![
            (0u32..4, 0u32..4).prop_map(
                |(a, b)| crate::policy::V4_MAPPED | ((10u32 << 24) | (a << 8) | b) as u128
            ),
            (0u128..4, 0u128..4).prop_map(|(a, b)| 0xfd00u128 << 112 | a << 64 | b),
        ];
        (
            addr.clone(),
            addr,
            prop::sample::select(vec![6u8, 17, 1, 58, 47]),
            998u16..1010,
        )
            .prop_map(|(src, dst, proto, dport)| FlowTuple {
                src,
                dst,
                proto,
                dport,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn compiled_structure_matches_reference(p in arb_policy(), ts in prop::collection::vec(arb_tuple(), 1..40), budget in prop::sample::select(vec![None, Some(0), Some(1), Some(3), Some(8), Some(24)])) {
            let c = compile_with_merge_budget(&p, budget).unwrap();
            for t in &ts {
                let want = p.evaluate(t);
                let got = c.simulate(t, p.default.code());
                prop_assert_eq!(got.action, want.action.code() as u32, "tuple {:?}", t);
                prop_assert_eq!(got.rule_id, want.rule.map(|i| i as u32).unwrap_or(abi::RULE_DEFAULT));
            }
        }
    }

    /// Overlapping port ranges that would need millions of entries are refused as soon as the
    /// map's capacity is passed (the error names the rule where that happened, long before the
    /// last one), instead of after building every entry.
    #[test]
    fn a_policy_of_overlapping_ranges_is_refused_early() {
        let n = 6000u16;
        let rules: Vec<Rule> = (0..n)
            .map(|i| Rule {
                name: format!("r{i}"),
                src: Cidr::ANY,
                dst: Cidr::parse(&format!("10.{}.{}.0/24", i / 256, i % 256)).unwrap(),
                proto: Some(6),
                ports: Some((i, 60000 - i)),
                action: crate::policy::Action::Allow,
            })
            .collect();
        let p = Policy {
            rules,
            default: crate::policy::Action::Deny,
            audit: false,
            on_full: crate::policy::OnFull::FailOpen,
            fragments: crate::policy::Action::Deny,
            event_rate: 10,
        };
        let e = compile(&p).unwrap_err().to_string();
        assert!(e.contains("rule entries") && e.contains("capacity"), "{e}");
        let at: u32 = e
            .split("rule 'r")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("names the rule: {e}"));
        assert!(at < 1000, "stopped at rule {at}: {e}");
    }

    #[test]
    fn depth_limit_is_a_clear_error() {
        let mut rules = Vec::new();
        for l in [8u8, 9, 10, 11, 12, 13, 14, 15, 16] {
            rules.push(Rule {
                name: format!("n{l}"),
                src: Cidr::ANY,
                dst: Cidr {
                    addr: crate::policy::V4_MAPPED | (10u128 << 24),
                    len: 96 + l,
                },
                proto: None,
                ports: None,
                action: Action::Allow,
            });
        }
        let p = Policy {
            rules,
            default: Action::Deny,
            audit: false,
            on_full: OnFull::FailOpen,
            fragments: Action::Deny,
            event_rate: 1,
        };
        let e = compile(&p).unwrap_err().to_string();
        assert!(e.contains("nested") && e.contains("limit"), "{e}");
    }
}
