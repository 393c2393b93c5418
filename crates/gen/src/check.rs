//! Bounds of the generator's settings: one check per kind of value, shared by the config file
//! reader (the error then names the key and the line), the command line (the flag) and
//! [`crate::generate`] for settings built in code (the field).
//!
//! Each check returns the message without a subject ("must be from 0 to 1, got 2"); the caller
//! puts the key, flag or field in front.

/// Most sessions alive at once (each owns two small stream buffers).
pub const MAX_CONCURRENCY: usize = 1_000_000;
/// Slowest mean frame rate: a slower one lets capture time run past the `i64` nanoseconds of a
/// timestamp within a few million frames.
pub const MIN_PACKETS_PER_SEC: f64 = 1.0;
/// Fastest mean frame rate (frames are at least 50 ns apart anyway).
pub const MAX_PACKETS_PER_SEC: f64 = 1e9;
/// Smallest `max_body`.
pub const MIN_BODY: u64 = 1024;
/// Largest `max_body` (1 GiB; bulk transfers may be 8 times larger).
pub const MAX_BODY: u64 = 1 << 30;
/// `dup_share` must be below this: every duplicate needs an original.
pub const DUP_SHARE_LIMIT: f64 = 0.5;
/// Latest first-frame time (2116-02-20), so that capture time cannot overflow `i64`
/// nanoseconds.
pub const MAX_START_TIME_NS: i64 = 1 << 62;

/// A share of sessions or frames: 0 to 1.
pub fn share(v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from 0 to 1, got {v}"))
    }
}

/// The share of duplicate frames: 0 to below 0.5.
pub fn dup_share(v: f64) -> Result<f64, String> {
    if (0.0..DUP_SHARE_LIMIT).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "must be from 0 to below {DUP_SHARE_LIMIT}, got {v}"
        ))
    }
}

/// A relative weight of a session kind: finite and not negative.
pub fn weight(v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number of 0 or more, got {v}"))
    }
}

/// Sessions alive at once: 1 to [`MAX_CONCURRENCY`].
pub fn concurrency(v: u64) -> Result<usize, String> {
    match usize::try_from(v) {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!("must be from 1 to {MAX_CONCURRENCY}, got {v}")),
    }
}

/// Mean frames per second of capture time.
pub fn packets_per_sec(v: f64) -> Result<f64, String> {
    if (MIN_PACKETS_PER_SEC..=MAX_PACKETS_PER_SEC).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "must be from {MIN_PACKETS_PER_SEC} to {MAX_PACKETS_PER_SEC}, got {v}"
        ))
    }
}

/// Upper bound of one body, in bytes.
pub fn max_body(v: u64) -> Result<u64, String> {
    if (MIN_BODY..=MAX_BODY).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from {MIN_BODY} to {MAX_BODY}, got {v}"))
    }
}

/// A target count of frames or bytes: at least 1 (0 would still write the first sessions).
pub fn target(v: u64) -> Result<u64, String> {
    if v >= 1 {
        Ok(v)
    } else {
        Err("must be at least 1, got 0".into())
    }
}

/// The first frame's time, nanoseconds since the epoch: 0 to [`MAX_START_TIME_NS`].
pub fn start_time_ns(v: i64) -> Result<i64, String> {
    if (0..=MAX_START_TIME_NS).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from 0 to {MAX_START_TIME_NS}, got {v}"))
    }
}

/// serde glue: each check runs inside a visitor, while the deserializer still points at the
/// value, so that a YAML reader reports the key path and line of the value itself.
pub(crate) mod de {
    use serde::de::{self, Deserializer, Visitor};
    use std::fmt;

    /// A number (integers accepted) put through a check.
    struct Real<T>(fn(f64) -> Result<T, String>);

    impl<T> Visitor<'_> for Real<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.visit_f64(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.visit_f64(v as f64)
        }
    }

    /// An integer put through a check.
    struct Int<T>(fn(i128) -> Result<T, String>);

    impl<T> Visitor<'_> for Int<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            (self.0)(v.into()).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            (self.0)(v.into()).map_err(E::custom)
        }
    }

    /// An unsigned integer put through a check (a negative one is out of range).
    fn unsigned<T>(v: i128, check: fn(u64) -> Result<T, String>) -> Result<T, String> {
        match u64::try_from(v) {
            Ok(v) => check(v),
            Err(_) => Err(format!("must not be negative, got {v}")),
        }
    }

    pub fn share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(Real(super::share))
    }

    pub fn dup_share<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(Real(super::dup_share))
    }

    pub fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(Real(super::weight))
    }

    pub fn packets_per_sec<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_f64(Real(super::packets_per_sec))
    }

    pub fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        d.deserialize_u64(Int(|v| unsigned(v, super::concurrency)))
    }

    pub fn max_body<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_u64(Int(|v| unsigned(v, super::max_body)))
    }

    pub fn target<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_u64(Int(|v| unsigned(v, super::target).map(Some)))
    }

    pub fn start_time_ns<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_i64(Int(|v| match i64::try_from(v) {
            Ok(v) => super::start_time_ns(v),
            Err(_) => Err(format!(
                "must be from 0 to {}, got {v}",
                super::MAX_START_TIME_NS
            )),
        }))
    }
}
