//! Policy model: YAML parsing with precise errors, validation, and the user-space reference
//! evaluator (a plain first-match scan that defines the semantics the BPF maps must reproduce).

use crate::GuardError;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

/// What a rule (or the default) does with a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass.
    Allow,
    /// Drop (reported; passed in audit mode).
    Deny,
    /// Pass and report.
    Log,
}

impl Action {
    /// The numeric code used in BPF maps.
    pub fn code(self) -> u8 {
        match self {
            Action::Allow => crate::abi::ACT_ALLOW,
            Action::Deny => crate::abi::ACT_DENY,
            Action::Log => crate::abi::ACT_LOG,
        }
    }

    /// Decodes a BPF action code.
    pub fn from_code(c: u32) -> Option<Action> {
        match c {
            0 => Some(Action::Allow),
            1 => Some(Action::Deny),
            2 => Some(Action::Log),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Log => "log",
        }
    }
}

/// Behaviour when the session map cannot track a flow (see docs/GUARD.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFull {
    /// Keep passing what the policy allows, re-admit mid-flow TCP when the reverse is allowed.
    FailOpen,
    /// Drop flows that cannot get a session; never re-admit mid-flow TCP replies.
    FailClosed,
}

/// An IPv4 or IPv6 prefix in the unified 128-bit space (IPv4 as ::ffff:a.b.c.d/96+n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// Network address (host bits zero), IPv4-mapped for IPv4.
    pub addr: u128,
    /// Prefix length in the 128-bit space (0..=128).
    pub len: u8,
}

/// The IPv4-mapped prefix ::ffff:0:0/96.
pub const V4_MAPPED: u128 = 0xffff_0000_0000;

/// Maps an IP address into the unified 128-bit space.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => V4_MAPPED | u32::from(v4) as u128,
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Maps a 128-bit unified address back to an IP address (IPv4-mapped shows as IPv4).
pub fn u128_to_ip(a: u128) -> IpAddr {
    if a >> 32 == 0xffff {
        IpAddr::V4(std::net::Ipv4Addr::from(a as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(a))
    }
}

/// Mask with the top `len` bits set.
pub fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl Cidr {
    /// The whole address space (IPv4 and IPv6).
    pub const ANY: Cidr = Cidr { addr: 0, len: 0 };

    /// True when `a` lies inside this prefix.
    pub fn contains(&self, a: u128) -> bool {
        (a & mask(self.len)) == self.addr
    }

    /// True when `other` lies entirely inside this prefix.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// Parses `any`, an address (host prefix) or `addr/len`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if s == "any" || s == "*" {
            return Ok(Cidr::ANY);
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?,
            None => max,
        };
        let len = if ip.is_ipv4() { len + 96 } else { len };
        let addr = ip_to_u128(ip);
        if addr & !mask(len) != 0 {
            return Err(format!(
                "'{s}' has host bits set beyond /{}",
                l.unwrap_or("")
            ));
        }
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return write!(f, "any");
        }
        if self.len >= 96 && (self.addr >> 32) == 0xffff {
            write!(f, "{}/{}", u128_to_ip(self.addr), self.len - 96)
        } else {
            write!(f, "{}/{}", std::net::Ipv6Addr::from(self.addr), self.len)
        }
    }
}

/// Protocol numbers that carry ports the policy can match on.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// One policy rule (all conditions must hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Name reported with events.
    pub name: String,
    /// Source prefix.
    pub src: Cidr,
    /// Destination prefix.
    pub dst: Cidr,
    /// IP protocol, None = any.
    pub proto: Option<u8>,
    /// Destination port range (inclusive), None = any; only with tcp/udp/sctp.
    pub ports: Option<(u16, u16)>,
    /// What to do.
    pub action: Action,
}

/// Largest policy file read (16 MiB): far beyond what the maps can hold, so a wrong path is
/// refused instead of read without limit.
pub const MAX_POLICY_BYTES: u64 = 16 << 20;

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Ordered rules; the first match wins.
    pub rules: Vec<Rule>,
    /// Action when no rule matches.
    pub default: Action,
    /// Report denies without dropping.
    pub audit: bool,
    /// Session map pressure behaviour.
    pub on_full: OnFull,
    /// Action for non-first fragments whose first fragment was not seen.
    pub fragments: Action,
    /// Maximum deny/log events per session per second.
    pub event_rate: u32,
}

/// The fields of a flow the policy looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowTuple {
    /// Initiator address (unified 128-bit).
    pub src: u128,
    /// Responder address (unified 128-bit).
    pub dst: u128,
    /// IP protocol.
    pub proto: u8,
    /// Destination port (ignored for protocols without ports).
    pub dport: u16,
}

/// The outcome of evaluating a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Index of the matching rule, None for the default action.
    pub rule: Option<usize>,
    /// The action.
    pub action: Action,
}

impl Rule {
    /// True when this rule matches the flow.
    pub fn matches(&self, t: &FlowTuple) -> bool {
        if let Some(p) = self.proto {
            if p != t.proto {
                return false;
            }
        }
        if let Some((lo, hi)) = self.ports {
            if !has_ports(t.proto) || t.dport < lo || t.dport > hi {
                return false;
            }
        }
        self.src.contains(t.src) && self.dst.contains(t.dst)
    }
}

impl Policy {
    /// Reference evaluator: linear first-match scan.
    pub fn evaluate(&self, t: &FlowTuple) -> Verdict {
        for (i, r) in self.rules.iter().enumerate() {
            if r.matches(t) {
                return Verdict {
                    rule: Some(i),
                    action: r.action,
                };
            }
        }
        Verdict {
            rule: None,
            action: self.default,
        }
    }

    /// Parses and validates a YAML policy; errors name the key (and line for syntax errors).
    pub fn from_yaml(text: &str) -> Result<Policy, GuardError> {
        // An empty document (or only comments) has no mapping to read: it is an empty policy.
        let raw: RawPolicy = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            RawPolicy {
                default: None,
                audit: false,
                on_full: default_on_full(),
                fragments: default_fragments(),
                event_rate: default_event_rate(),
                rules: Vec::new(),
            }
        } else {
            serde_yaml::from_str(text).map_err(|e| GuardError::Policy(e.to_string()))?
        };
        raw.validate()
    }

    /// Validates a policy given as a YAML value (a policy written inside another file, such as
    /// the probe's configuration); errors name the key.
    pub fn from_value(v: serde_yaml::Value) -> Result<Policy, GuardError> {
        let raw: RawPolicy =
            serde_yaml::from_value(v).map_err(|e| GuardError::Policy(e.to_string()))?;
        raw.validate()
    }

    /// Reads and parses a policy file.
    pub fn from_file(path: &std::path::Path) -> Result<Policy, GuardError> {
        use std::io::Read;
        let io = |e| GuardError::Io {
            what: format!("reading policy {}", path.display()),
            source: e,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_POLICY_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(GuardError::Policy(format!(
                "{}: larger than {MAX_POLICY_BYTES} bytes; is this the right file?",
                path.display()
            )));
        }
        Policy::from_yaml(&text).map_err(|e| match e {
            GuardError::Policy(m) => GuardError::Policy(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Rule name for a BPF rule id (special ids get descriptive names).
    pub fn rule_name(&self, id: u32) -> String {
        rule_name(&self.rules, id)
    }
}

/// Rule name for a BPF rule id given the rule list.
pub fn rule_name(rules: &[Rule], id: u32) -> String {
    use crate::abi::c;
    match id as u64 {
        c::GUARD_RULE_DEFAULT => "(default)".into(),
        c::GUARD_RULE_FRAGMENT => "(fragment)".into(),
        c::GUARD_RULE_ICMP_ERROR => "(icmp-error)".into(),
        c::GUARD_RULE_NDP => "(ndp)".into(),
        c::GUARD_RULE_MAP_FULL => "(session-map-full)".into(),
        c::GUARD_RULE_MALFORMED => "(malformed)".into(),
        _ => rules
            .get(id as usize)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| format!("rule#{id}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    /// Absent means deny; recorded as absent so that an empty file is not read as "deny all".
    #[serde(default)]
    default: Option<Action>,
    #[serde(default)]
    audit: bool,
    #[serde(default = "default_on_full")]
    on_full: OnFull,
    #[serde(default = "default_fragments")]
    fragments: Action,
    #[serde(default = "default_event_rate")]
    event_rate: u32,
    #[serde(default)]
    rules: Vec<RawRule>,
}

fn default_fragments() -> Action {
    Action::Deny
}
fn default_on_full() -> OnFull {
    OnFull::FailOpen
}
fn default_event_rate() -> u32 {
    10
}

/// A YAML value that may be a number or a name (`proto: 6` or `proto: tcp`, `port: 443` or
/// `port: 8000-8080`), with an error that says so instead of naming an internal type.
enum StrOrNum {
    Num(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for StrOrNum {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StrOrNum;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a name (like 6 or tcp, 443 or 8000-8080)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StrOrNum, E> {
                Ok(StrOrNum::Num(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StrOrNum, E> {
                u64::try_from(v)
                    .map(StrOrNum::Num)
                    .map_err(|_| E::custom(format!("{v} is negative; expected a number or a name")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StrOrNum, E> {
                Ok(StrOrNum::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    src: Option<String>,
    dst: Option<String>,
    proto: Option<StrOrNum>,
    port: Option<StrOrNum>,
    action: Action,
}

fn parse_proto(p: &StrOrNum) -> Result<Option<u8>, String> {
    match p {
        StrOrNum::Num(n) => u8::try_from(*n)
            .map(Some)
            .map_err(|_| format!("protocol number {n} is out of 0..=255")),
        StrOrNum::Str(s) => match s.to_ascii_lowercase().as_str() {
            "any" | "*" => Ok(None),
            "tcp" => Ok(Some(6)),
            "udp" => Ok(Some(17)),
            "icmp" => Ok(Some(1)),
            "icmpv6" | "ipv6-icmp" => Ok(Some(58)),
            "sctp" => Ok(Some(132)),
            "gre" => Ok(Some(47)),
            "esp" => Ok(Some(50)),
            other => other.parse::<u8>().map(Some).map_err(|_| {
                format!("unknown protocol '{other}' (tcp, udp, icmp, icmpv6, sctp, any or 0..=255)")
            }),
        },
    }
}

fn parse_ports(p: &StrOrNum) -> Result<Option<(u16, u16)>, String> {
    let one = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| format!("'{s}' is not a port (0..=65535)"))
    };
    match p {
        StrOrNum::Num(n) => u16::try_from(*n)
            .map(|v| Some((v, v)))
            .map_err(|_| format!("port {n} is out of 0..=65535")),
        StrOrNum::Str(s) if s.trim() == "any" => Ok(None),
        StrOrNum::Str(s) => {
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (one(a)?, one(b)?),
                None => {
                    let v = one(s)?;
                    (v, v)
                }
            };
            if lo > hi {
                return Err(format!("port range '{s}' is empty (low > high)"));
            }
            Ok(Some((lo, hi)))
        }
    }
}

impl RawPolicy {
    fn validate(self) -> Result<Policy, GuardError> {
        if self.rules.is_empty() && self.default.is_none() {
            // An empty (or all-comment) file would otherwise mean "deny everything" without
            // a word: say it, and ask for the intent to be written down.
            return Err(GuardError::Policy(
                "the policy has no rules and no `default` action: as it stands it would deny \
                 all traffic; add rules, or write `default: deny` (or `default: allow`) to say \
                 what you mean"
                    .to_string(),
            ));
        }
        if self.event_rate == 0 {
            return Err(GuardError::Policy(
                "event_rate: must be at least 1".to_string(),
            ));
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.into_iter().enumerate() {
            let name = r.name.unwrap_or_else(|| format!("rule-{i}"));
            let at = |key: &str, msg: String| {
                GuardError::Policy(format!("rules[{i}] (name '{name}').{key}: {msg}"))
            };
            let src = match &r.src {
                Some(s) => Cidr::parse(s).map_err(|m| at("src", m))?,
                None => Cidr::ANY,
            };
            let dst = match &r.dst {
                Some(s) => Cidr::parse(s).map_err(|m| at("dst", m))?,
                None => Cidr::ANY,
            };
            let proto = match &r.proto {
                Some(p) => parse_proto(p).map_err(|m| at("proto", m))?,
                None => None,
            };
            let ports = match &r.port {
                Some(p) => parse_ports(p).map_err(|m| at("port", m))?,
                None => None,
            };
            if ports.is_some() && !proto.is_some_and(has_ports) {
                return Err(at(
                    "port",
                    "a port needs proto tcp, udp or sctp".to_string(),
                ));
            }
            rules.push(Rule {
                name,
                src,
                dst,
                proto,
                ports,
                action: r.action,
            });
        }
        Ok(Policy {
            rules,
            default: self.default.unwrap_or(Action::Deny),
            audit: self.audit,
            on_full: self.on_full,
            fragments: self.fragments,
            event_rate: self.event_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_policy_is_refused_unless_the_default_is_written() {
        for text in ["", "\n", "# nothing here\n", "audit: true\n", "rules: []\n"] {
            let e = Policy::from_yaml(text).unwrap_err().to_string();
            assert!(
                e.contains("no rules") && e.contains("default"),
                "{text:?}: {e}"
            );
        }
        let p = Policy::from_yaml("default: deny\n").unwrap();
        assert_eq!(p.default, Action::Deny);
        assert!(p.rules.is_empty());
        let p = Policy::from_yaml("default: allow\n").unwrap();
        assert_eq!(p.default, Action::Allow);
    }

    #[test]
    fn a_value_of_the_wrong_shape_says_what_is_expected() {
        let e = Policy::from_yaml("rules:\n  - {proto: [6], action: allow}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a number or a name"), "{e}");
        assert!(!e.contains("untagged") && !e.contains("StrOrNum"), "{e}");
    }

    fn t(src: &str, dst: &str, proto: u8, dport: u16) -> FlowTuple {
        FlowTuple {
            src: ip_to_u128(src.parse().unwrap()),
            dst: ip_to_u128(dst.parse().unwrap()),
            proto,
            dport,
        }
    }

    const P: &str = r#"
default: deny
rules:
  - name: web
    dst: 10.0.0.0/24
    proto: tcp
    port: 80
    action: allow
  - name: high
    proto: udp
    port: "1000-2000"
    action: log
  - name: v6
    src: fd00::/64
    action: allow
"#;

    #[test]
    fn first_match_and_default() {
        let p = Policy::from_yaml(P).unwrap();
        assert_eq!(p.rules.len(), 3);
        let v = p.evaluate(&t("1.2.3.4", "10.0.0.9", 6, 80));
        assert_eq!(v.rule, Some(0));
        assert_eq!(v.action, Action::Allow);
        assert_eq!(
            p.evaluate(&t("1.2.3.4", "10.0.1.9", 6, 80)).action,
            Action::Deny
        );
        assert_eq!(
            p.evaluate(&t("1.2.3.4", "10.0.1.9", 17, 1500)).rule,
            Some(1)
        );
        assert_eq!(p.evaluate(&t("fd00::1", "fd01::1", 1, 0)).rule, Some(2));
        assert_eq!(p.evaluate(&t("fd00:0:0:1::1", "fd01::1", 1, 0)).rule, None);
        // IPv4 prefixes never match IPv6 addresses and vice versa; `any` matches both.
        assert!(!Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip_to_u128("::1".parse().unwrap())));
        assert!(Cidr::ANY.contains(ip_to_u128("10.1.1.1".parse().unwrap())));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Policy::from_yaml("rules:\n  - dst: 10.0.0.1/8\n    action: allow\n").unwrap_err();
        assert!(
            e.to_string().contains("rules[0]") && e.to_string().contains("dst"),
            "{e}"
        );
        let e = Policy::from_yaml("rules:\n  - proto: icmp\n    port: 5\n    action: allow\n")
            .unwrap_err();
        assert!(e.to_string().contains(".port"), "{e}");
        let e = Policy::from_yaml("rules:\n  - action: alow\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = Policy::from_yaml("defualt: allow\n").unwrap_err();
        assert!(e.to_string().contains("defualt"), "{e}");
        let e = Policy::from_yaml("rules:\n  - proto: tcp\n    port: 90-80\n    action: deny\n")
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        assert!(Policy::from_yaml(": : :").is_err());
        assert!(Policy::from_yaml("rules: 5").is_err());
    }

    #[test]
    fn cidr_display_roundtrip() {
        for s in ["10.0.0.0/8", "fd00::/64", "1.2.3.4/32"] {
            assert_eq!(Cidr::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Cidr::parse("any").unwrap().to_string(), "any");
    }
}
