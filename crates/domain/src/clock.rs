//! Time as a port, so expiry and rate-limit rules can be tested without sleeping.

use std::fmt::Debug;

use time::OffsetDateTime;

/// The source of "now" for every rule that depends on time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant in UTC, truncated to whole microseconds (the precision both databases keep), so a
    /// value read back from storage equals the value written.
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// Drops sub-microsecond precision, which PostgreSQL's `TIMESTAMPTZ` cannot hold.
pub fn truncate_to_micros(instant: OffsetDateTime) -> OffsetDateTime {
    let micros = instant.microsecond();
    instant.replace_microsecond(micros).unwrap_or(instant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_utc_and_whole_microseconds() {
        let now = SystemClock.now();
        assert!(now.offset().is_utc());
        assert_eq!(now.nanosecond() % 1_000, 0);
    }

    #[test]
    fn truncation_keeps_microseconds() {
        let instant = time::macros::datetime!(2025-10-03 10:00:00.123_456_789 UTC);
        assert_eq!(truncate_to_micros(instant), time::macros::datetime!(2025-10-03 10:00:00.123_456 UTC));
    }
}
