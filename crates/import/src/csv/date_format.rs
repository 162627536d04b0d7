//! Date formats for CSV columns: strftime-like (`%d/%m/%Y`) or `DD/MM/YYYY` style patterns.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// One piece of a date pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    /// One or more whitespace characters.
    Space,
    Literal(char),
}

/// A parsed date pattern. Months and days take one or two digits where a separator follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    items: Vec<Item>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl DateFormat {
    /// Reads a pattern: `%Y %y %m %-m %d %-d %e %b %B` with literal text, or `YYYY YY MMMM MMM MM M DD D` with
    /// literal text. The pattern must name a year, a month and a day once each.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        if pattern.contains('%') {
            let mut chars = pattern.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '%' {
                    items.push(if c.is_whitespace() { Item::Space } else { Item::Literal(c) });
                    continue;
                }
                if chars.peek() == Some(&'-') {
                    chars.next();
                }
                items.push(match chars.next() {
                    Some('Y') => Item::Year4,
                    Some('y') => Item::Year2,
                    Some('m') => Item::Month,
                    Some('d' | 'e') => Item::Day,
                    Some('b' | 'B' | 'h') => Item::MonthName,
                    Some('%') => Item::Literal('%'),
                    Some(other) => return Err(format!("unsupported directive '%{other}'")),
                    None => return Err("a lone '%' at the end".to_owned()),
                });
            }
        } else {
            let mut rest = pattern;
            while let Some(c) = rest.chars().next() {
                let (item, len) = if rest.starts_with("YYYY") {
                    (Item::Year4, 4)
                } else if rest.starts_with("YY") {
                    (Item::Year2, 2)
                } else if rest.starts_with("MMMM") {
                    (Item::MonthName, 4)
                } else if rest.starts_with("MMM") {
                    (Item::MonthName, 3)
                } else if rest.starts_with("MM") {
                    (Item::Month, 2)
                } else if rest.starts_with('M') {
                    (Item::Month, 1)
                } else if rest.starts_with("DD") {
                    (Item::Day, 2)
                } else if rest.starts_with('D') {
                    (Item::Day, 1)
                } else if c.is_whitespace() {
                    (Item::Space, c.len_utf8())
                } else {
                    (Item::Literal(c), c.len_utf8())
                };
                items.push(item);
                rest = rest.get(len..).unwrap_or("");
            }
        }
        let count = |wanted: &[Item]| items.iter().filter(|i| wanted.contains(i)).count();
        if count(&[Item::Year4, Item::Year2]) != 1
            || count(&[Item::Month, Item::MonthName]) != 1
            || count(&[Item::Day]) != 1
        {
            return Err(format!("'{}' must name a year, a month and a day once each", crate::error::snippet(pattern)));
        }
        Ok(Self { items })
    }

    /// The formats tried when the mapping names none, most common first.
    pub(crate) fn candidates() -> Vec<DateFormat> {
        [
            "%Y-%m-%d",
            "%Y/%m/%d",
            "%Y.%m.%d",
            "%Y%m%d",
            "%m/%d/%Y",
            "%d/%m/%Y",
            "%d.%m.%Y",
            "%m-%d-%Y",
            "%d-%m-%Y",
            "%m/%d/%y",
            "%d/%m/%y",
            "%d.%m.%y",
            "%d %b %Y",
            "%d-%b-%Y",
            "%d-%b-%y",
            "%b %d, %Y",
            "%b %d %Y",
        ]
        .iter()
        .filter_map(|p| Self::new(p).ok())
        .collect()
    }

    /// Whether the year comes first (no day/month ambiguity then).
    pub(crate) fn year_first(&self) -> bool {
        matches!(self.items.first(), Some(Item::Year4 | Item::Year2))
    }

    /// Whether the day comes before a numeric month.
    pub(crate) fn day_first(&self) -> bool {
        let day = self.items.iter().position(|i| *i == Item::Day);
        let month = self.items.iter().position(|i| *i == Item::Month);
        matches!((day, month), (Some(d), Some(m)) if d < m)
    }

    /// Reads a cell: an RFC 3339 timestamp (giving the moment too), else the pattern over the whole cell,
    /// else over its first word or the part before a `T` time (`01/05/2025 as of 01/04/2025`,
    /// `2025-01-05 13:45`).
    pub(crate) fn read(&self, cell: &str) -> Option<(Date, Option<OffsetDateTime>)> {
        let cell = cell.trim();
        if let Ok(at) = OffsetDateTime::parse(cell, &Rfc3339) {
            return Some((at.date(), Some(at.to_offset(UtcOffset::UTC))));
        }
        if let Some(date) = self.read_date(cell) {
            return Some((date, None));
        }
        let prefix_end = cell.find(|c: char| c.is_whitespace() || c == 'T')?;
        self.read_date(cell.get(..prefix_end)?).map(|date| (date, None))
    }

    fn read_date(&self, text: &str) -> Option<Date> {
        let bytes = text.as_bytes();
        let mut pos = 0;
        let (mut year, mut month, mut day) = (None, None, None);
        for (index, item) in self.items.iter().enumerate() {
            let separator_follows = !matches!(
                self.items.get(index + 1),
                Some(Item::Year4 | Item::Year2 | Item::Month | Item::Day | Item::MonthName)
            );
            match item {
                Item::Year4 => year = Some(digits(bytes, &mut pos, 4, 4)? as i32),
                Item::Year2 => {
                    let short = digits(bytes, &mut pos, 2, 2)? as i32;
                    // Two-digit years are this century up to 69, as strptime reads them.
                    year = Some(if short < 70 { 2000 + short } else { 1900 + short });
                }
                Item::Month | Item::Day => {
                    let min = if separator_follows { 1 } else { 2 };
                    let value = u8::try_from(digits(bytes, &mut pos, min, 2)?).ok()?;
                    if *item == Item::Month {
                        month = Some(Month::try_from(value).ok()?);
                    } else {
                        day = Some(value);
                    }
                }
                Item::MonthName => {
                    let start = pos;
                    while bytes.get(pos).is_some_and(u8::is_ascii_alphabetic) {
                        pos += 1;
                    }
                    let word = text.get(start..pos)?.to_ascii_lowercase();
                    let word = word.strip_suffix('.').unwrap_or(&word);
                    let found = MONTHS.iter().position(|m| {
                        word.len() >= 3 && (m.starts_with(word) || (word == "sept" && *m == "september"))
                    })?;
                    month = Some(Month::try_from(u8::try_from(found + 1).ok()?).ok()?);
                    if bytes.get(pos) == Some(&b'.') && self.items.get(index + 1) != Some(&Item::Literal('.')) {
                        pos += 1;
                    }
                }
                Item::Space => {
                    let start = pos;
                    while bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
                        pos += 1;
                    }
                    if pos == start {
                        return None;
                    }
                }
                Item::Literal(c) => {
                    let rest = text.get(pos..)?;
                    if !rest.starts_with(*c) {
                        return None;
                    }
                    pos += c.len_utf8();
                }
            }
        }
        if pos != bytes.len() {
            return None;
        }
        Date::from_calendar_date(year?, month?, day?).ok()
    }
}

/// Reads `min..=max` ASCII digits at `pos`.
fn digits(bytes: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let run = bytes.get(*pos..)?.iter().take(max).take_while(|b| b.is_ascii_digit()).count();
    if run < min {
        return None;
    }
    let value = bytes.get(*pos..*pos + run)?.iter().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    *pos += run;
    Some(value)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn read(pattern: &str, cell: &str) -> Option<Date> {
        DateFormat::new(pattern).ok()?.read(cell).map(|(d, _)| d)
    }

    #[test]
    fn patterns_in_both_spellings() {
        assert_eq!(read("%d/%m/%Y", "5/1/2025"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("DD.MM.YYYY", "05.01.2025"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%m/%d/%Y", "01/05/2025 as of 01/04/2025"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%Y%m%d", "20250105"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%d-%b-%Y", "05-Jan-2025"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%b %d, %Y", "Sept 5, 2025"), Some(date!(2025 - 09 - 05)));
        assert_eq!(read("%d/%m/%y", "05/01/25"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%Y-%m-%d", "2025-01-05 13:45"), Some(date!(2025 - 01 - 05)));
        assert_eq!(read("%Y-%m-%d", "2025-13-05"), None);
        assert_eq!(read("%Y-%m-%d", "2025-01-05x"), None);
        let at = DateFormat::new("%Y-%m-%d").ok().and_then(|f| f.read("2025-01-05T23:30:00-05:00"));
        assert_eq!(at, Some((date!(2025 - 01 - 05), Some(datetime!(2025-01-06 04:30 UTC)))));
        for bad in ["%Y-%m", "%Q", "%", "DD/MM", "YYYY-MM-DD-DD"] {
            assert!(DateFormat::new(bad).is_err(), "{bad}");
        }
    }
}
