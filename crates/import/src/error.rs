//! Parse failures, each naming where in the file it happened.

use std::fmt::Write as _;

/// The longest stretch of input a message repeats, so an error never carries a whole hostile file.
const SNIPPET_CHARS: usize = 60;

/// Why a statement could not be read. Every variant names the place, so a person can fix the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is malformed or a required value is missing or invalid.
    #[error("line {line}{}: {message}", element.as_deref().map(|e| format!(", {e}")).unwrap_or_default())]
    Invalid {
        /// The 1-based line in the file.
        line: usize,
        /// The element or column, already formatted for people (`<DTPOSTED>`, `column "Amount"`).
        element: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The CSV mapping supplied with the request is unusable.
    #[error("csv_mapping.{field}: {message}")]
    Mapping {
        /// The mapping field at fault (`date`, `delimiter`, …).
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ParseError {
    /// An error at `line` in the element named `element` (written without brackets).
    pub(crate) fn at_element(line: usize, element: &str, message: impl Into<String>) -> Self {
        Self::Invalid { line, element: Some(format!("<{}>", snippet(element))), message: message.into() }
    }

    /// An error at `line` with no particular element.
    pub(crate) fn at_line(line: usize, message: impl Into<String>) -> Self {
        Self::Invalid { line, element: None, message: message.into() }
    }

    /// An error in the mapping field `field`.
    pub(crate) fn mapping(field: &str, message: impl Into<String>) -> Self {
        Self::Mapping { field: field.to_owned(), message: message.into() }
    }

    /// The line the error names, when it names one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Invalid { line, .. } => Some(*line),
            Self::Mapping { .. } => None,
        }
    }
}

/// `text` quoted for a message: at most [`SNIPPET_CHARS`] characters, control characters escaped.
pub(crate) fn quoted(text: &str) -> String {
    format!("'{}'", snippet(text))
}

/// At most [`SNIPPET_CHARS`] characters of `text`, with control characters escaped so a message stays one line.
pub(crate) fn snippet(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SNIPPET_CHARS + 4));
    for (count, c) in text.chars().enumerate() {
        if count == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_and_quote_little() {
        let error = ParseError::at_element(42, "DTPOSTED", format!("invalid date {}", quoted("2025-13-01")));
        assert_eq!(error.to_string(), "line 42, <DTPOSTED>: invalid date '2025-13-01'");
        assert_eq!(ParseError::at_line(3, "boom").to_string(), "line 3: boom");
        let long = "x".repeat(500);
        assert_eq!(quoted(&long).chars().count(), 60 + 3);
        assert_eq!(snippet("a\nb"), "a\\nb");
    }
}
