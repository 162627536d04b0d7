//! Reading provider JSON: exact decimals from JSON numbers or numeric strings, and decoding errors that name the
//! path of the field at fault.

use std::fmt;
use std::str::FromStr;

use dashtam_domain::connector::ConnectorError;
use rust_decimal::Decimal;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// Decodes a provider body; a failure names what was being read and the JSON path at fault.
pub(crate) fn json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ConnectorError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        ConnectorError::InvalidResponse(format!("{what}: {}: {}", error.path(), describe(error.inner())))
    })
}

/// serde_json's message without the offending value: `invalid type: string "12345678", expected …` would put
/// an account number (or a token) into an error that ends up in logs and `last_sync_error`.
pub(crate) fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = message.split(" at line ").next().unwrap_or_default();
    for kind in ["invalid type", "invalid value", "invalid length"] {
        if message.starts_with(kind) {
            return match message.split_once(", expected ") {
                Some((_, expected)) => format!("{kind}, expected {expected}"),
                None => kind.to_owned(),
            };
        }
    }
    if error.is_data() && !message.starts_with("missing field") && !message.starts_with("a ") {
        // Our own messages start with "a …"; anything else of unknown shape is summarised.
        return "invalid value".to_owned();
    }
    message.to_owned()
}

/// A decimal written as a JSON number or a numeric string.
///
/// A JSON number arrives as an `f64` (serde_json's `arbitrary_precision` would change the whole workspace);
/// its shortest round-trip text (Rust's `Display` for `f64`) is what the provider wrote for any value with at
/// most 15–17 significant digits, so `1502.35` becomes exactly `1502.35`, never `1502.349999…`.
pub(crate) fn decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    deserializer.deserialize_any(DecimalVisitor)
}

/// [`decimal`] for an optional field (absent or `null` is `None`).
pub(crate) fn optional_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    deserializer.deserialize_option(OptionalDecimalVisitor)
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a decimal number")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Decimal, E> {
        if !value.is_finite() {
            return Err(E::custom("a number that is not finite"));
        }
        parse(&value.to_string())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Decimal, E> {
        let text = value.trim();
        // `Decimal::from_str` accepts `_` separators and an empty string is not a number; neither is money.
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.')) {
            return Err(E::custom("a string that is not a decimal number"));
        }
        parse(text)
    }
}

struct OptionalDecimalVisitor;

impl<'de> Visitor<'de> for OptionalDecimalVisitor {
    type Value = Option<Decimal>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a decimal number or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        decimal(deserializer).map(Some)
    }
}

fn parse<E: de::Error>(text: &str) -> Result<Decimal, E> {
    // `from_str_exact` refuses rather than rounds what does not fit in 28 decimal places.
    Decimal::from_str_exact(text).or_else(|_| Decimal::from_str(text)).map_err(|_| E::custom("a number out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Amounts {
        #[serde(deserialize_with = "decimal")]
        value: Decimal,
        #[serde(default, deserialize_with = "optional_decimal")]
        maybe: Option<Decimal>,
    }

    fn value(json: &str) -> Result<Decimal, ConnectorError> {
        super::json::<Amounts>(json.as_bytes(), "test").map(|amounts| amounts.value)
    }

    #[test]
    fn numbers_read_as_their_shortest_decimal_text() {
        for (json, text) in [
            ("1502.35", "1502.35"),
            ("-0.35", "-0.35"),
            ("0.1", "0.1"),
            ("150.12", "150.12"),
            ("3050.4", "3050.4"),
            ("20", "20"),
            ("-1502.0", "-1502"),
            ("1e3", "1000"),
            ("18446744073709551615", "18446744073709551615"),
            ("\"12.3400\"", "12.3400"),
        ] {
            assert_eq!(
                value(&format!("{{\"value\":{json}}}")).map(|d| d.to_string()).ok(),
                Some(text.to_owned()),
                "{json}"
            );
        }
    }

    #[test]
    fn optional_decimals_accept_null_and_absence() {
        let amounts: Amounts = super::json(br#"{"value":1,"maybe":null}"#, "test").expect("decodes");
        assert_eq!(amounts.maybe, None);
        let amounts: Amounts = super::json(br#"{"value":1}"#, "test").expect("decodes");
        assert_eq!(amounts.maybe, None);
        let amounts: Amounts = super::json(br#"{"value":1,"maybe":2.5}"#, "test").expect("decodes");
        assert_eq!(amounts.maybe, Some(Decimal::new(25, 1)));
    }

    #[test]
    fn out_of_range_and_non_numbers_are_refused_naming_the_field() {
        for json in ["1e300", "\"NaN\"", "\"inf\"", "\"1_000\"", "\"\"", "true", "\"1e5\"", "[]"] {
            let error = value(&format!("{{\"value\":{json}}}")).expect_err(json);
            let ConnectorError::InvalidResponse(text) = error else { panic!("{json}: {error:?}") };
            assert!(text.starts_with("test: value:"), "{json}: {text}");
            assert!(!text.contains("NaN") && !text.contains("1_000"), "the value is not echoed: {text}");
        }
    }
}
