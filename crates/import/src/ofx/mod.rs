//! OFX 1.x (SGML), OFX 2.x (XML) and QFX statements.

mod convert;
mod tree;

use encoding_rs::Encoding;
use memchr::memmem;

use crate::decode::{decode, encoding_for_label};
use crate::error::{ParseError, snippet};
use crate::statement::Statement;
use crate::warnings::Warnings;

/// How far into a file the OFX header and the start of the body are looked for.
const HEADER_WINDOW: usize = 64 * 1024;

/// Parses an OFX or QFX file of either generation. The header's `ENCODING`/`CHARSET` (OFX 1) or the XML
/// declaration's `encoding` (OFX 2) decides how bytes become text. Fails, naming the line and element, when a
/// transaction lacks its date or amount, a value is invalid, or the file is cut short; reads past known
/// dialect quirks with a warning.
pub fn parse_ofx(bytes: &[u8]) -> Result<Statement, ParseError> {
    let mut warnings = Warnings::default();
    let declared = if Encoding::for_bom(bytes).is_some() { None } else { declared_encoding(bytes, &mut warnings) };
    let text = decode(bytes, declared, &mut warnings);
    let start = find_body(&text).ok_or_else(|| ParseError::at_line(1, "no <OFX> element found"))?;
    let first_line =
        u32::try_from(memchr::memchr_iter(b'\n', text.as_bytes().get(..start).unwrap_or_default()).count())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
    let mut collector = convert::Collector::default();
    let tree = tree::build(&text, start, first_line, &mut collector, &mut warnings)?;
    let accounts = collector.finish(&tree, &mut warnings)?;
    Ok(Statement { accounts, warnings: warnings.finish() })
}

/// The byte offset of the `<OFX>` root element.
fn find_body(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    // `<OFX>` or `<OFX ...>`, never `<OFXHEADER` (which OFX 2 files may mention inside `<?OFX ... ?>`).
    while let Some(i) = memmem::find(bytes.get(from..)?, b"<OFX") {
        let at = from + i;
        if matches!(bytes.get(at + 4), Some(b'>' | b' ' | b'\t' | b'\r' | b'\n')) {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The encoding the file declares: OFX 1 `ENCODING`/`CHARSET` header lines, or the XML declaration.
fn declared_encoding(bytes: &[u8], warnings: &mut Warnings) -> Option<&'static Encoding> {
    let window = bytes.get(..bytes.len().min(HEADER_WINDOW)).unwrap_or(bytes);
    let head = window.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(window);
    let head = head.get(head.iter().take_while(|b| b.is_ascii_whitespace()).count()..).unwrap_or_default();
    if head.starts_with(b"OFXHEADER") {
        return ofx1_encoding(head, warnings);
    }
    if head.starts_with(b"<?xml") {
        let end = memmem::find(head, b"?>")?;
        let declaration = String::from_utf8_lossy(head.get(..end)?);
        let label = attribute(&declaration, "encoding")?;
        let encoding = encoding_for_label(label);
        if encoding.is_none() {
            warnings.push(format!("unknown XML encoding '{}'; guessed from the content", snippet(label)));
        }
        return encoding;
    }
    None
}

/// OFX 1 header: `KEY:VALUE` pairs (one a line, though some exporters put them on one line) before the body.
fn ofx1_encoding(head: &[u8], warnings: &mut Warnings) -> Option<&'static Encoding> {
    let end = memchr::memchr(b'<', head).unwrap_or(head.len());
    let header = String::from_utf8_lossy(head.get(..end).unwrap_or_default());
    let mut encoding = None;
    let mut charset = None;
    for field in header.split_whitespace() {
        match field.split_once(':') {
            Some(("ENCODING", value)) => encoding = Some(value.to_owned()),
            Some(("CHARSET", value)) => charset = Some(value.to_owned()),
            _ => {}
        }
    }
    if let Some(encoding) = encoding.as_deref()
        && matches!(encoding.to_ascii_uppercase().as_str(), "UTF-8" | "UTF8" | "UNICODE")
    {
        return Some(encoding_rs::UTF_8);
    }
    match charset.as_deref() {
        None | Some("NONE") => None,
        Some(label) => {
            let found = encoding_for_label(label);
            if found.is_none() {
                warnings.push(format!("unknown CHARSET '{}'; guessed from the content", snippet(label)));
            }
            found
        }
    }
}

/// The value of `name="…"` (or single-quoted) in an XML declaration.
fn attribute<'t>(declaration: &'t str, name: &str) -> Option<&'t str> {
    let at = declaration.find(name)?;
    let rest = declaration.get(at + name.len()..)?.trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = rest.get(1..)?;
    rest.get(..rest.find(quote)?)
}
