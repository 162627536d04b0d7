//! Amounts and dates as statements write them. Public so the caller can validate the same way.

use std::str::FromStr;

use dashtam_domain::money::Decimal;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::quoted;

/// Which character separates the whole part of an amount from its fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecimalSeparator {
    /// Decided per amount: the last of `.`/`,` when both appear, a lone `.`, or a lone `,` unless it is followed
    /// by exactly three digits (then the amount is ambiguous and refused).
    #[default]
    Auto,
    /// `1,234.56`
    Dot,
    /// `1.234,56`
    Comma,
}

/// Text that is not a valid amount or date; the message quotes (a little of) it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

impl ValueError {
    fn invalid(what: &str, text: &str) -> Self {
        Self(format!("invalid {what} {}", quoted(text)))
    }
}

/// Characters that group thousands besides `.` and `,`: space, apostrophe (Swiss), no-break spaces.
fn is_group_char(c: char) -> bool {
    matches!(c, ' ' | '\'' | '\u{a0}' | '\u{202f}' | '\u{2019}')
}

/// Parses an amount: optional sign (leading `+`/`-`/`−` or trailing `-`), parentheses for negatives, a leading or
/// trailing currency symbol, thousands separators and either decimal separator. Exact: never through a float.
pub fn parse_amount(text: &str, separator: DecimalSeparator) -> Result<Decimal, ValueError> {
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    // Fast path for the common plain form (`-12.34`), which needs no rewriting.
    if separator != DecimalSeparator::Comma && is_plain_decimal(trimmed) {
        let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
        return Decimal::from_str_exact(digits).map(normalise_zero).map_err(|_| ValueError::invalid("amount", text));
    }
    parse_amount_slow(trimmed, separator).ok_or_else(|| ValueError::invalid("amount", text))
}

/// An OFX amount: OFX allows `,` as the decimal separator and has no thousands separators, so a lone comma
/// is always a decimal comma here.
pub(crate) fn parse_ofx_amount(text: &str) -> Result<Decimal, ValueError> {
    let separator = if !text.contains('.') && text.matches(',').count() == 1 {
        DecimalSeparator::Comma
    } else {
        DecimalSeparator::Auto
    };
    parse_amount(text, separator)
}

/// `[+-]?digits(.digits)?` with at most 28 digits, which `Decimal` takes as it is.
fn is_plain_decimal(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    let digits = whole.len() + fraction.map_or(0, str::len);
    !whole.is_empty()
        && digits <= 28
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn normalise_zero(value: Decimal) -> Decimal {
    // `-0.00` and `0.00` are the same amount; keep one sign so equality and display agree.
    if value.is_zero() { value.abs() } else { value }
}

fn parse_amount_slow(text: &str, separator: DecimalSeparator) -> Option<Decimal> {
    let mut rest = text;
    let mut negative = false;
    if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        rest = inner.trim();
    }
    let mut signs = 0;
    // A sign and a currency symbol come in either order ("-$12", "$-12"), and a sign may trail ("12.00-").
    for _ in 0..2 {
        if let Some(r) = rest.strip_prefix(['-', '−']) {
            signs += 1;
            negative = !negative;
            rest = r.trim_start();
        } else if let Some(r) = rest.strip_prefix('+') {
            signs += 1;
            rest = r.trim_start();
        }
        if let Some(r) = rest.strip_prefix(['$', '€', '£', '¥']) {
            rest = r.trim_start();
        }
    }
    for _ in 0..2 {
        if let Some(r) = rest.strip_suffix(['$', '€', '£', '¥']) {
            rest = r.trim_end();
        }
        if let Some(r) = rest.strip_suffix(['-', '−']) {
            signs += 1;
            negative = !negative;
            rest = r.trim_end();
        }
    }
    // "(-12)" or "--12" say the sign twice; which one was meant is a guess, so refuse.
    if signs > 1 || (signs == 1 && text.starts_with('(')) {
        return None;
    }
    let decimal = decimal_char(rest, separator)?;
    let mut normalised = String::with_capacity(rest.len() + 1);
    let mut seen_decimal = false;
    let mut group_digits: Option<usize> = None; // digits since the last thousands separator, once one was seen
    let mut digits = 0;
    let chars: Vec<char> = rest.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            normalised.push(c);
            digits += 1;
            if let Some(count) = group_digits.as_mut() {
                *count += 1;
            }
        } else if c == decimal {
            if seen_decimal || group_digits.is_some_and(|n| n != 3) {
                return None;
            }
            seen_decimal = true;
            group_digits = None;
            normalised.push('.');
        } else if (c == '.' || c == ',' || is_group_char(c)) && !seen_decimal {
            // A thousands separator sits between digits and is followed by a group of three.
            let before = i.checked_sub(1).and_then(|j| chars.get(j)).is_some_and(char::is_ascii_digit);
            let after = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            if !before || !after || group_digits.is_some_and(|n| n != 3) {
                return None;
            }
            group_digits = Some(0);
        } else {
            return None;
        }
    }
    if digits == 0 || group_digits.is_some_and(|n| n != 3) || normalised.ends_with('.') {
        return None;
    }
    if digits > 28 {
        return None;
    }
    let value = Decimal::from_str_exact(&normalised).ok()?;
    Some(normalise_zero(if negative { -value } else { value }))
}

/// The decimal separator of `text` under `separator`; `None` when `Auto` cannot tell.
fn decimal_char(text: &str, separator: DecimalSeparator) -> Option<char> {
    match separator {
        DecimalSeparator::Dot => Some('.'),
        DecimalSeparator::Comma => Some(','),
        DecimalSeparator::Auto => {
            let last_dot = text.rfind('.');
            let last_comma = text.rfind(',');
            match (last_dot, last_comma) {
                (Some(dot), Some(comma)) => Some(if dot > comma { '.' } else { ',' }),
                (Some(_), None) => Some(if text.matches('.').count() > 1 { ',' } else { '.' }),
                (None, Some(comma)) => {
                    if text.matches(',').count() > 1 {
                        Some('.')
                    } else {
                        // "1,234" is a thousand and some or one and a fraction: refuse rather than guess.
                        let after = text.get(comma + 1..).unwrap_or("");
                        (after.len() != 3 || !after.bytes().all(|b| b.is_ascii_digit())).then_some(',')
                    }
                }
                (None, None) => Some('.'),
            }
        }
    }
}

/// An OFX date-time: the calendar day as written and, when the text has a time of day, the moment in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfxDateTime {
    /// The day as written, in the file's own time zone.
    pub date: Date,
    /// The moment in UTC, when a time of day was given (a missing zone means UTC, as the OFX spec says).
    pub at: Option<OffsetDateTime>,
}

/// Parses an OFX date: `YYYYMMDD[HHMM[SS[.XXX]]][[±H[.H][:MM][:TZ]]]`, honouring the bracketed offset.
pub fn parse_ofx_datetime(text: &str) -> Result<OfxDateTime, ValueError> {
    let trimmed = text.trim();
    parse_ofx_datetime_inner(trimmed).ok_or_else(|| ValueError::invalid("date", text))
}

fn parse_ofx_datetime_inner(text: &str) -> Option<OfxDateTime> {
    let (stamp, zone) = match text.find('[') {
        Some(open) => {
            let zone = text.get(open + 1..)?.strip_suffix(']')?;
            (text.get(..open)?.trim_end(), Some(zone))
        }
        None => (text, None),
    };
    let (digits, fraction) = match stamp.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (stamp, None),
    };
    let bytes = digits.as_bytes();
    if !bytes.iter().all(u8::is_ascii_digit) || !matches!(bytes.len(), 8 | 12 | 14) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes.get(range)?.iter().try_fold(0u32, |acc, b| Some(acc * 10 + u32::from(b - b'0')))
    };
    let year = i32::try_from(number(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(number(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(number(6..8)?).ok()?).ok()?;
    if bytes.len() == 8 {
        // A fraction without a time is malformed; a zone on a bare date changes nothing.
        if fraction.is_some() {
            return None;
        }
        if let Some(zone) = zone {
            parse_zone(zone)?;
        }
        return Some(OfxDateTime { date, at: None });
    }
    let hour = u8::try_from(number(8..10)?).ok()?;
    let minute = u8::try_from(number(10..12)?).ok()?;
    let second = if bytes.len() == 14 { u8::try_from(number(12..14)?).ok()? } else { 0 };
    let nanos = match fraction {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let value: u32 = f.parse().ok()?;
            value * 10u32.pow(9 - u32::try_from(f.len()).ok()?)
        }
        Some(_) => return None,
        None => 0,
    };
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let offset = match zone {
        Some(zone) => parse_zone(zone)?,
        None => UtcOffset::UTC,
    };
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset).to_offset(UtcOffset::UTC);
    Some(OfxDateTime { date, at: Some(at) })
}

/// `-5:EST`, `+5.5:IST`, `+5:30:IST`, `-0500`, `0`: hours (possibly fractional or with minutes) then a name.
fn parse_zone(zone: &str) -> Option<UtcOffset> {
    let mut parts = zone.split(':');
    let hours_text = parts.next()?.trim();
    let (negative, unsigned) = match hours_text.strip_prefix(['-', '−']) {
        Some(rest) => (true, rest),
        None => (false, hours_text.strip_prefix('+').unwrap_or(hours_text)),
    };
    let (mut hours, mut minutes): (i32, i32) = if let Some((whole, fraction)) = unsigned.split_once('.') {
        let whole: i32 = digits_only(whole)?.parse().ok()?;
        let fraction = Decimal::from_str(&format!("0.{}", digits_only(fraction)?)).ok()?;
        let minutes = (fraction * Decimal::from(60)).round();
        (whole, i32::try_from(minutes.mantissa() / 10i128.pow(minutes.scale())).ok()?)
    } else if unsigned.len() == 4 {
        let value: i32 = digits_only(unsigned)?.parse().ok()?;
        (value / 100, value % 100)
    } else if !unsigned.is_empty() && unsigned.len() <= 2 {
        (digits_only(unsigned)?.parse().ok()?, 0)
    } else {
        return None;
    };
    if let Some(next) = parts.next() {
        let next = next.trim();
        // A numeric second part is minutes (`+5:30:IST`); anything else is the zone's name, which we ignore.
        if !next.is_empty() && next.bytes().all(|b| b.is_ascii_digit()) {
            if minutes != 0 || next.len() > 2 {
                return None;
            }
            minutes = next.parse().ok()?;
        }
    }
    if hours > 23 || minutes > 59 {
        return None;
    }
    if negative {
        hours = -hours;
        minutes = -minutes;
    }
    UtcOffset::from_hms(i8::try_from(hours).ok()?, i8::try_from(minutes).ok()?, 0).ok()
}

fn digits_only(text: &str) -> Option<&str> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn amount(text: &str, separator: DecimalSeparator) -> Option<Decimal> {
        parse_amount(text, separator).ok()
    }

    fn dec(text: &str) -> Option<Decimal> {
        Decimal::from_str(text).ok()
    }

    #[test]
    fn amounts_in_their_many_spellings() {
        use DecimalSeparator::*;
        assert_eq!(amount("-12.34", Auto), dec("-12.34"));
        assert_eq!(amount("+12.34", Auto), dec("12.34"));
        assert_eq!(amount("-12,34", Auto), dec("-12.34"));
        assert_eq!(amount("(12.00)", Auto), dec("-12.00"));
        assert_eq!(amount("1,234.56", Auto), dec("1234.56"));
        assert_eq!(amount("1.234,56", Auto), dec("1234.56"));
        assert_eq!(amount("1 234,56", Comma), dec("1234.56"));
        assert_eq!(amount("1'234.56", Dot), dec("1234.56"));
        assert_eq!(amount("$-1,234.56", Auto), dec("-1234.56"));
        assert_eq!(amount("-$1,234.56", Auto), dec("-1234.56"));
        assert_eq!(amount("12,00 €", Comma), dec("12.00"));
        assert_eq!(amount("12.00-", Auto), dec("-12.00"));
        assert_eq!(amount("1,234,567", Auto), dec("1234567"));
        assert_eq!(amount("1.234.567", Auto), dec("1234567"));
        assert_eq!(amount(".50", Auto), dec("0.50"));
        assert_eq!(amount("-0.00", Auto), dec("0.00"));
        assert_eq!(amount("1,234", Dot), dec("1234"));
        assert_eq!(amount("1,234", Comma), dec("1.234"));
        for bad in ["", "-", "abc", "1,234", "12.34.56x", "1,23.00", "(-12)", "--1", "1.2.3,4,5", "12.", "1e5"] {
            assert_eq!(amount(bad, Auto), None, "{bad}");
        }
        assert_eq!(amount("1.5", Comma), None);
        assert_eq!(amount("99999999999999999999999999999999", Auto), None);
    }

    #[test]
    fn ofx_dates_with_and_without_zones() {
        let parsed = parse_ofx_datetime("20250105").ok();
        assert_eq!(parsed, Some(OfxDateTime { date: date!(2025 - 01 - 05), at: None }));
        let parsed = parse_ofx_datetime("20250105233000.000[-5:EST]").ok();
        assert_eq!(
            parsed,
            Some(OfxDateTime { date: date!(2025 - 01 - 05), at: Some(datetime!(2025-01-06 04:30 UTC)) })
        );
        let at = |text: &str| parse_ofx_datetime(text).ok().and_then(|d| d.at);
        assert_eq!(at("20250105120000"), Some(datetime!(2025-01-05 12:00 UTC)));
        assert_eq!(at("202501051200"), Some(datetime!(2025-01-05 12:00 UTC)));
        assert_eq!(at("20250105120000[+5.5:IST]"), Some(datetime!(2025-01-05 06:30 UTC)));
        assert_eq!(at("20250105120000[+5:30:IST]"), Some(datetime!(2025-01-05 06:30 UTC)));
        assert_eq!(at("20250105120000[-0330]"), Some(datetime!(2025-01-05 15:30 UTC)));
        assert_eq!(at("20250105120000[0:GMT]"), Some(datetime!(2025-01-05 12:00 UTC)));
        assert_eq!(at("20250105120000.5[-8]"), Some(datetime!(2025-01-05 20:00:00.5 UTC)));
        for bad in [
            "",
            "2025-13-01",
            "20251301",
            "20250230",
            "2025010",
            "20250105250000",
            "20250105120000[-5:EST",
            "20250105120000[-99:X]",
            "20250105.5",
            "20250105120000.[0]",
        ] {
            assert!(parse_ofx_datetime(bad).is_err(), "{bad}");
        }
    }
}
