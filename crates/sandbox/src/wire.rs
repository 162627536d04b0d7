//! How the sandbox writes numbers and times the way Schwab does.

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::{Number, Value};
use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

/// Schwab's timestamps: UTC with a `+0000` offset (no colon) and no fraction.
const SCHWAB_TIME: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");

/// `2025-03-28T21:10:42+0000`, for an instant already in UTC.
pub(crate) fn schwab_time(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    utc.format(SCHWAB_TIME).unwrap_or_default()
}

/// A decimal as a JSON number, the way Schwab writes one: integers without a fraction, others through the f64
/// nearest to the decimal, which serde_json prints as its shortest round-trip text — exactly the decimal's own
/// digits for the 2- and 4-place values the sandbox produces (`1502.35`, never `1502.3499999`).
pub(crate) fn num(value: Decimal) -> Value {
    let value = value.normalize();
    if value.scale() == 0
        && let Some(integer) = value.to_i64()
    {
        return Value::Number(Number::from(integer));
    }
    // Parsing the decimal's text gives the correctly rounded f64 (unlike dividing the mantissa by a power of ten).
    value.to_string().parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn numbers_print_their_decimal_digits() {
        for text in ["1502.35", "-0.35", "150.2", "0.01", "123456789.99", "3050.4", "97.1234", "-1502.35"] {
            let decimal = Decimal::from_str(text).expect("a decimal");
            assert_eq!(serde_json::to_string(&num(decimal)).expect("serialises"), text);
        }
        assert_eq!(
            serde_json::to_string(&num(Decimal::from_str("20.000").expect("a decimal"))).expect("serialises"),
            "20"
        );
        assert_eq!(
            serde_json::to_string(&num(Decimal::from_str("-0.00").expect("a decimal"))).expect("serialises"),
            "0"
        );
    }

    #[test]
    fn times_use_plus_0000() {
        let instant = time::macros::datetime!(2025-03-28 21:10:42.5 UTC);
        assert_eq!(schwab_time(instant), "2025-03-28T21:10:42+0000");
    }
}
