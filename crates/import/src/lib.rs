//! Dashtam's statement parsers: OFX 1.x (SGML), OFX 2.x (XML), QFX and CSV with a column mapping.
//!
//! Pure functions, bytes in and a typed [`Statement`] out: no I/O, no panics on any input. Amounts are exact
//! decimals, never floats. A file is read completely or not at all: anything that would need a guess (a
//! transaction without a date or amount, an invalid value, a truncated file) fails with a [`ParseError`]
//! naming the line and element, while known harmless quirks (an empty `FITID`, a mismatched closing tag,
//! garbage after the end) are read past with a warning in [`Statement::warnings`].

mod csv;
mod decode;
mod error;
mod ofx;
mod statement;
pub mod value;
mod warnings;

pub use crate::csv::{Column, CsvMapping, CsvPreset, parse_csv};
pub use crate::error::ParseError;
pub use crate::ofx::parse_ofx;
pub use crate::statement::{Statement, StatementAccount, StatementBalance, StatementPosition, StatementTransaction};

/// How much of a file [`detect`] looks at.
const SNIFF_WINDOW: usize = 64 * 1024;

/// A statement file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Open Financial Exchange, version 1 (SGML) or 2 (XML).
    Ofx,
    /// Quicken's OFX, with Intuit extensions (`INTU.BID`); parsed by [`parse_ofx`] too.
    Qfx,
    /// Comma- (or otherwise) separated values; parsed by [`parse_csv`] with a mapping.
    Csv,
}

impl Format {
    /// The name used in the API (`ofx`, `qfx`, `csv`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ofx => "ofx",
            Self::Qfx => "qfx",
            Self::Csv => "csv",
        }
    }

    /// The format named `text` (`ofx`, `qfx`, `csv`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ofx" => Some(Self::Ofx),
            "qfx" => Some(Self::Qfx),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Guesses a file's format from its first bytes, then its name: OFX when it has an OFX header or an `<OFX>`
/// element (QFX when it also has `INTU.` tags or a `.qfx` name), else CSV when it is text with separators.
pub fn detect(bytes: &[u8], file_name: Option<&str>) -> Option<Format> {
    let head = bytes.get(..bytes.len().min(SNIFF_WINDOW)).unwrap_or(bytes);
    let extension = file_name
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    let finder = |needle: &[u8]| memchr::memmem::find(head, needle).is_some();
    if finder(b"OFXHEADER") || finder(b"<OFX>") || finder(b"<OFX ") {
        let qfx = extension == "qfx" || finder(b"<INTU.");
        return Some(if qfx { Format::Qfx } else { Format::Ofx });
    }
    match extension.as_str() {
        "qfx" => return Some(Format::Qfx),
        "ofx" => return Some(Format::Ofx),
        "csv" | "tsv" => return Some(Format::Csv),
        _ => {}
    }
    // Text (no NUL bytes) whose first line has a separator looks like CSV.
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = !head.contains(&0);
    (text && first_line.iter().any(|b| matches!(b, b',' | b';' | b'\t' | b'|'))).then_some(Format::Csv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content_then_name() {
        assert_eq!(detect(b"OFXHEADER:100\nDATA:OFXSGML\n<OFX>", None), Some(Format::Ofx));
        assert_eq!(detect(b"<?xml version=\"1.0\"?><?OFX OFXHEADER=\"200\"?><OFX>", None), Some(Format::Ofx));
        assert_eq!(detect(b"OFXHEADER:100\n<OFX><SIGNONMSGSRSV1><SONRS><INTU.BID>1", None), Some(Format::Qfx));
        assert_eq!(detect(b"OFXHEADER:100\n<OFX>", Some("Export.QFX")), Some(Format::Qfx));
        assert_eq!(detect(b"Date,Amount\n2025-01-01,1", None), Some(Format::Csv));
        assert_eq!(detect(b"whatever", Some("x.csv")), Some(Format::Csv));
        assert_eq!(detect(b"\x00\x01binary", None), None);
        assert_eq!(detect(b"", None), None);
    }
}

/// Why a file could not be read as a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFailure {
    /// Neither OFX, QFX nor CSV.
    #[error("the file is not an OFX, QFX or CSV statement")]
    UnknownFormat,
    /// The file is one of those but could not be read; the error names the line and element.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Reads a statement file: in `format` when given, else in the detected one; a CSV through `mapping` (or the
/// columns recognised from its header when there is none). The one entry point of the API and the CLI.
pub fn parse(
    bytes: &[u8],
    file_name: Option<&str>,
    format: Option<Format>,
    mapping: Option<&CsvMapping>,
) -> Result<(Format, Statement), ParseFailure> {
    let format = format.or_else(|| detect(bytes, file_name)).ok_or(ParseFailure::UnknownFormat)?;
    let statement = match format {
        Format::Ofx | Format::Qfx => parse_ofx(bytes)?,
        Format::Csv => parse_csv(bytes, mapping.unwrap_or(&CsvMapping::default()))?,
    };
    Ok((format, statement))
}
