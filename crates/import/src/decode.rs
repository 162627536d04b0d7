//! Bytes to text in the file's declared (or sniffed) character encoding.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

use crate::warnings::Warnings;

/// Decodes `bytes`: a byte-order mark wins; then `declared` (an encoding label); then UTF-8 when the bytes are
/// valid UTF-8, else Windows-1252 (a superset of ISO-8859-1 that maps every byte, so decoding never fails).
/// Borrows when the bytes are already valid UTF-8 (or plain ASCII), so the common case copies nothing.
pub(crate) fn decode<'a>(
    bytes: &'a [u8],
    declared: Option<&'static Encoding>,
    warnings: &mut Warnings,
) -> Cow<'a, str> {
    if let Some((encoding, bom_len)) = Encoding::for_bom(bytes) {
        let body = bytes.get(bom_len..).unwrap_or_default();
        return encoding.decode_without_bom_handling(body).0;
    }
    let utf8 = std::str::from_utf8(bytes).ok();
    match declared {
        Some(encoding) if encoding == UTF_8 => match utf8 {
            Some(text) => Cow::Borrowed(text),
            None => {
                // Exporters often declare UTF-8 and write Latin-1; every byte still means something there.
                warnings.push("the file says UTF-8 but is not; read it as Windows-1252");
                WINDOWS_1252.decode_without_bom_handling(bytes).0
            }
        },
        Some(encoding) if encoding == UTF_16LE || encoding == UTF_16BE => encoding.decode_without_bom_handling(bytes).0,
        Some(encoding) => {
            // A single-byte charset declared over text that is valid, non-ASCII UTF-8 is almost always a
            // mislabel: real Latin-1 text essentially never forms valid multi-byte sequences.
            if let Some(text) = utf8.filter(|t| !t.is_ascii()) {
                warnings.push(format!("the file says {} but is UTF-8; read it as UTF-8", encoding.name()));
                return Cow::Borrowed(text);
            }
            encoding.decode_without_bom_handling(bytes).0
        }
        None => match utf8 {
            Some(text) => Cow::Borrowed(text),
            None => WINDOWS_1252.decode_without_bom_handling(bytes).0,
        },
    }
}

/// The encoding an OFX 1 header or an XML declaration names; `None` for unknown labels.
pub(crate) fn encoding_for_label(label: &str) -> Option<&'static Encoding> {
    let label = label.trim();
    match label.to_ascii_uppercase().as_str() {
        // OFX 1 names: CHARSET 1252 / ISO-8859-1 / 8859-1, ENCODING USASCII / UTF-8 / UNICODE.
        "1252" | "WINDOWS-1252" | "CP1252" => Some(WINDOWS_1252),
        "ISO-8859-1" | "8859-1" | "ISO8859-1" | "LATIN1" | "LATIN-1" => Some(WINDOWS_1252),
        "UTF-8" | "UTF8" | "UNICODE" => Some(UTF_8),
        _ => Encoding::for_label(label.as_bytes()),
    }
}
