//! User-Agent parsing with woothee behind a bounded, direct-mapped cache (UA strings repeat a
//! lot, and woothee runs regular expressions).

use crate::record::Text;
use std::hash::BuildHasher;

/// What a User-Agent string says about the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UaInfo {
    /// The User-Agent string itself (shared by every record that carries it).
    pub ua: Option<Text>,
    /// Operating system name.
    pub os: Option<Text>,
    /// Operating system version.
    pub os_version: Option<Text>,
    /// Browser, client or bot name.
    pub browser: Option<Text>,
    /// Browser version.
    pub browser_version: Option<Text>,
    /// Device class: desktop, mobile, tablet, bot, appliance, other or unknown.
    pub device: &'static str,
}

/// Parses one User-Agent string (uncached).
pub fn parse_ua(ua: &str) -> UaInfo {
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| Text::from(s));
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) => {
            let device = match r.category {
                "pc" => "desktop",
                // woothee has no tablet class; iPads and Android devices without "Mobile" in the
                // UA string (Google's documented convention for tablets) are tablets.
                "smartphone" | "mobilephone" if is_tablet(ua) => "tablet",
                "smartphone" | "mobilephone" => "mobile",
                "crawler" => "bot",
                "appliance" => "appliance",
                "misc" => "other",
                _ => "unknown",
            };
            UaInfo {
                ua: Some(Text::from(ua)),
                os: known(r.os),
                os_version: known(&r.os_version),
                browser: known(r.name),
                browser_version: known(r.version),
                device,
            }
        }
        None => UaInfo {
            ua: Some(Text::from(ua)),
            device: "unknown",
            ..UaInfo::default()
        },
    }
}

fn is_tablet(ua: &str) -> bool {
    ua.contains("iPad")
        || ua.contains("Tablet")
        || (ua.contains("Android") && !ua.contains("Mobile"))
}

/// A bounded cache of parsed User-Agents: `slots` entries, each UA maps to one slot by hash
/// and replaces what was there (so memory is fixed and lookups never scan).
pub struct UaCache {
    slots: Vec<Option<(u64, UaInfo)>>,
    hasher: foldhash::fast::FixedState,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to parse.
    pub misses: u64,
}

impl UaCache {
    /// A cache with `slots` entries (0 disables caching).
    pub fn new(slots: usize) -> Self {
        UaCache {
            slots: (0..slots).map(|_| None).collect(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_0a11_ce00_0001),
            hits: 0,
            misses: 0,
        }
    }

    /// The parsed form of `ua`.
    pub fn get(&mut self, ua: &str) -> UaInfo {
        if self.slots.is_empty() {
            self.misses += 1;
            return parse_ua(ua);
        }
        let h = self.hasher.hash_one(ua);
        let i = (h % self.slots.len() as u64) as usize;
        if let Some((sh, info)) = &self.slots[i] {
            if *sh == h && info.ua.as_deref() == Some(ua) {
                self.hits += 1;
                return info.clone();
            }
        }
        self.misses += 1;
        let info = parse_ua(ua);
        self.slots[i] = Some((h, info.clone()));
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let i = parse_ua(chrome);
        assert_eq!(i.device, "desktop");
        assert_eq!(i.browser.as_deref(), Some("Chrome"));
        assert_eq!(i.browser_version.as_deref(), Some("120.0.0.0"));
        assert_eq!(i.os.as_deref(), Some("Windows 10"));
        let bot =
            parse_ua("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(bot.device, "bot");
        let ipad = parse_ua("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(ipad.device, "tablet");
        let iphone = parse_ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.device, "mobile");
        assert_eq!(parse_ua("\u{1}garbage").device, "unknown");
    }

    #[test]
    fn cache_hits_and_stays_bounded() {
        let mut c = UaCache::new(4);
        for _ in 0..3 {
            c.get("curl/8.5.0");
        }
        assert_eq!((c.hits, c.misses), (2, 1));
        for i in 0..100 {
            c.get(&format!("agent/{i}"));
        }
        assert_eq!(c.slots.len(), 4);
        assert_eq!(c.get("curl/8.5.0"), parse_ua("curl/8.5.0"));
    }
}
