//! Date and time inputs. The API never guesses a time zone: an instant without an offset is refused with
//! `naive_datetime`, because reading it as UTC (or as the server's zone) silently shifts the user's data.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::extract::coded_message;

/// An instant with an explicit offset, normalised to UTC. Serialises as RFC 3339 with `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

/// A calendar date (`2025-10-03`) or an instant with an offset, as accepted by `from`/`to` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrTimestamp {
    /// A whole day.
    Date(Date),
    /// An instant, in UTC.
    Timestamp(OffsetDateTime),
}

/// Why a string is not an acceptable instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTimeError {
    /// A date and time without an offset, such as `2025-10-03T10:00:00`.
    Naive,
    /// Not a date or time at all.
    Invalid,
}

impl DateTimeError {
    /// The stable code used in problem documents.
    pub fn code(self) -> &'static str {
        match self {
            Self::Naive => "naive_datetime",
            Self::Invalid => "invalid_datetime",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Naive => "the time has no UTC offset; add one, e.g. 2025-10-03T10:00:00Z or +02:00",
            Self::Invalid => "expected an RFC 3339 timestamp such as 2025-10-03T10:00:00Z",
        }
    }
}

/// Parses an RFC 3339 instant with an offset, reporting a missing offset apart from other mistakes.
pub fn parse_timestamp(input: &str) -> Result<OffsetDateTime, DateTimeError> {
    match OffsetDateTime::parse(input, &Rfc3339) {
        // An offset can push an instant at the edge of year 0000 or 9999 out of the range RFC 3339 can write
        // in UTC; such an instant could not be stored or echoed, so it is refused rather than accepted.
        Ok(instant) => instant
            .checked_to_offset(UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .ok_or(DateTimeError::Invalid),
        Err(_) if is_naive_datetime(input) => Err(DateTimeError::Naive),
        Err(_) => Err(DateTimeError::Invalid),
    }
}

/// Parses `YYYY-MM-DD`, or else an instant as [`parse_timestamp`] does.
pub fn parse_date_or_timestamp(input: &str) -> Result<DateOrTimestamp, DateTimeError> {
    if let Ok(date) = Date::parse(input, format_description!("[year]-[month]-[day]")) {
        return Ok(DateOrTimestamp::Date(date));
    }
    parse_timestamp(input).map(DateOrTimestamp::Timestamp)
}

fn is_naive_datetime(input: &str) -> bool {
    // People write a space where RFC 3339 wants a `T`; both forms are still missing their offset.
    let with_t = input.replacen(' ', "T", 1);
    PrimitiveDateTime::parse(&with_t, &Iso8601::DEFAULT).is_ok()
}

fn visit_str_with<T, E: de::Error>(value: &str, parse: impl Fn(&str) -> Result<T, DateTimeError>) -> Result<T, E> {
    parse(value).map_err(|error| E::custom(coded_message(error.code(), error.message())))
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp with an offset")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                visit_str_with(value, parse_timestamp).map(Timestamp)
            }
        }
        deserializer.deserialize_str(TimestampVisitor)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let formatted = self.0.to_offset(UtcOffset::UTC).format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&formatted)
    }
}

impl<'de> Deserialize<'de> for DateOrTimestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateOrTimestampVisitor;
        impl Visitor<'_> for DateOrTimestampVisitor {
            type Value = DateOrTimestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date (YYYY-MM-DD) or an RFC 3339 timestamp with an offset")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                visit_str_with(value, parse_date_or_timestamp)
            }
        }
        deserializer.deserialize_str(DateOrTimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn offsets_are_honoured_and_normalised_to_utc() {
        assert_eq!(parse_timestamp("2025-10-03T10:00:00Z"), Ok(datetime!(2025-10-03 10:00:00 UTC)));
        assert_eq!(parse_timestamp("2025-10-03T12:00:00+02:00"), Ok(datetime!(2025-10-03 10:00:00 UTC)));
        assert_eq!(parse_timestamp("2025-10-03T10:00:00.250-05:30"), Ok(datetime!(2025-10-03 15:30:00.25 UTC)));
        assert!(parse_timestamp("2025-10-03T10:00:00Z").is_ok_and(|t| t.offset().is_utc()));
    }

    #[test]
    fn naive_datetimes_are_named_as_such() {
        for naive in ["2025-10-03T10:00:00", "2025-10-03 10:00:00", "2025-10-03T10:00:00.123", "2025-10-03T10:00"] {
            assert_eq!(parse_timestamp(naive), Err(DateTimeError::Naive), "{naive}");
        }
    }

    #[test]
    fn garbage_is_invalid_not_naive() {
        for garbage in ["", "yesterday", "2025-13-03T10:00:00Z", "10:00:00Z", "2025-10-03"] {
            assert_eq!(parse_timestamp(garbage), Err(DateTimeError::Invalid), "{garbage}");
        }
    }

    #[test]
    fn filters_accept_dates_and_instants() {
        assert_eq!(parse_date_or_timestamp("2025-10-03"), Ok(DateOrTimestamp::Date(date!(2025 - 10 - 03))));
        assert_eq!(
            parse_date_or_timestamp("2025-10-03T00:00:00+01:00"),
            Ok(DateOrTimestamp::Timestamp(datetime!(2025-10-02 23:00:00 UTC)))
        );
        assert_eq!(parse_date_or_timestamp("2025-10-03T00:00:00"), Err(DateTimeError::Naive));
    }

    #[test]
    fn timestamps_serialise_in_utc_with_z() {
        let json = serde_json::to_string(&Timestamp(datetime!(2025-10-03 12:00:00 +02:00))).expect("serialises");
        assert_eq!(json, "\"2025-10-03T10:00:00Z\"");
    }
}
