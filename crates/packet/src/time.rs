//! Timestamps with nanosecond resolution, the finest that pcap, pcapng (as used in practice) and
//! TPACKET_V3 rings deliver.

use std::fmt;

/// A point in time as signed nanoseconds since the Unix epoch (covers years 1678..2262).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from whole seconds and a nanosecond fraction.
    #[inline]
    pub const fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(nanos as i64),
        )
    }

    /// This timestamp moved by `n` nanoseconds (saturating).
    #[inline]
    pub const fn plus_nanos(self, n: i64) -> Self {
        Timestamp(self.0.saturating_add(n))
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    #[inline]
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Nanoseconds within the second, always in `0..1e9`.
    #[inline]
    pub const fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(1_000_000_000) as u32
    }

    /// Microseconds within the second, for microsecond-resolution pcap files.
    #[inline]
    pub const fn subsec_micros(self) -> u32 {
        self.subsec_nanos() / 1000
    }

    /// Seconds as a float, for rates and durations in summaries.
    #[inline]
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl fmt::Display for Timestamp {
    /// Formats as `seconds.nanoseconds` (the form tshark prints with `-t e`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.secs(), self.subsec_nanos())
    }
}

/// Work that comes due every `step` nanoseconds of the packets' own time (expiring idle state,
/// sending on what piled up) between in-band ticks: packet time, so a file read at any speed
/// gives the same cadence as the live capture it was made from.
#[derive(Clone, Copy, Debug)]
pub struct Every {
    step: i64,
    now: i64,
    last: i64,
}

impl Every {
    /// Due every `step` ns (at least 1) of packet time, counted from the first packet seen.
    pub fn new(step: i64) -> Every {
        Every {
            step: step.max(1),
            now: i64::MIN,
            last: i64::MIN,
        }
    }

    /// Notes a packet's time (ns); the latest one seen is "now".
    #[inline]
    pub fn see(&mut self, ts: i64) {
        self.now = self.now.max(ts);
    }

    /// The latest packet time seen (`i64::MIN` before any).
    pub fn now(&self) -> i64 {
        self.now
    }

    /// True, once, when a step of packet time has passed since it was last due.
    pub fn due(&mut self) -> bool {
        if self.last == i64::MIN {
            self.last = self.now;
        }
        if self.now.saturating_sub(self.last) >= self.step {
            self.last = self.now;
            true
        } else {
            false
        }
    }

    /// The work was done at `at` (an interval tick): the next step counts from there.
    pub fn done_at(&mut self, at: i64) {
        self.last = self.last.max(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_due_once_per_step_of_packet_time() {
        let mut e = Every::new(100);
        assert!(!e.due(), "nothing seen yet");
        e.see(1_000);
        assert!(!e.due(), "the first packet starts the count");
        e.see(1_099);
        assert!(!e.due());
        e.see(1_050); // an older packet does not move time back
        assert_eq!(e.now(), 1_099);
        e.see(1_100);
        assert!(e.due());
        assert!(!e.due(), "due once");
        e.done_at(1_250);
        e.see(1_300);
        assert!(!e.due(), "a tick at 1,250 did the work");
        e.see(1_350);
        assert!(e.due());
    }

    #[test]
    fn parts_round_trip_including_negative() {
        let t = Timestamp::from_parts(1_700_000_000, 123_456_789);
        assert_eq!(t.secs(), 1_700_000_000);
        assert_eq!(t.subsec_nanos(), 123_456_789);
        assert_eq!(t.subsec_micros(), 123_456);
        let n = Timestamp(-1);
        assert_eq!(n.secs(), -1);
        assert_eq!(n.subsec_nanos(), 999_999_999);
        assert_eq!(t.to_string(), "1700000000.123456789");
    }
}
