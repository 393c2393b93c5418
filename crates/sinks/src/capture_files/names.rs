//! File names of rotating captures, as tcpdump makes them: a strftime pattern (UTC) for `-G`,
//! a number appended for `-C` (zero-padded to the width of the largest with `-W`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a rotating writer names its files.
#[derive(Clone, Debug)]
pub(super) struct Naming {
    /// The base name (a strftime pattern when `timed`).
    pub base: String,
    /// Names are strftime patterns expanded at the time a file is opened (`-G`).
    pub timed: bool,
    /// Files are numbered (`-C`).
    pub numbered: bool,
    /// Size of the ring of numbered names (`-W`).
    pub ring: Option<u32>,
}

impl Naming {
    /// The name of file number `cnt` opened at `now`.
    pub fn name(&self, cnt: u32, now: SystemTime) -> PathBuf {
        let base = if self.timed {
            strftime_utc(&self.base, now)
        } else {
            self.base.clone()
        };
        if !self.numbered {
            return PathBuf::from(base);
        }
        match self.ring {
            Some(n) => {
                let width = (n.saturating_sub(1)).to_string().len().max(1);
                let width = if n <= 1 { 1 } else { width };
                PathBuf::from(format!("{base}{cnt:0width$}"))
            }
            None if cnt == 0 => PathBuf::from(base),
            None => PathBuf::from(format!("{base}{cnt}")),
        }
    }
}

/// Minimal UTC strftime for `-G` file names: %Y %m %d %H %M %S %s %j %% (anything else is
/// copied as is).
pub fn strftime_utc(pat: &str, t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let d = doy_mar - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + (leap && m > 2) as i64;
    let mut out = String::with_capacity(pat.len() + 16);
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{:02}", sod / 3600)),
            Some('M') => out.push_str(&format!("{:02}", sod / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", sod % 60)),
            Some('s') => out.push_str(&secs.to_string()),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strftime_fields() {
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(
            strftime_utc("c-%Y%m%d-%H%M%S-%j-%s%%", t),
            "c-20240229-235959-060-1709251199%"
        );
    }

    #[test]
    fn numbered_names_as_tcpdump() {
        let n = |numbered, ring| Naming {
            base: "cap".into(),
            timed: false,
            numbered,
            ring,
        };
        let now = SystemTime::now();
        assert_eq!(n(false, None).name(3, now), PathBuf::from("cap"));
        assert_eq!(n(true, None).name(0, now), PathBuf::from("cap"));
        assert_eq!(n(true, None).name(2, now), PathBuf::from("cap2"));
        assert_eq!(n(true, Some(3)).name(0, now), PathBuf::from("cap0"));
        assert_eq!(n(true, Some(12)).name(7, now), PathBuf::from("cap07"));
        assert_eq!(n(true, Some(1)).name(0, now), PathBuf::from("cap0"));
    }
}
