//! Properties: OFX dates and amount spellings round-trip; no input makes a parser panic.

use dashtam_domain::money::Decimal;
use dashtam_import::value::{DecimalSeparator, parse_amount, parse_ofx_datetime};
use dashtam_import::{Column, CsvMapping, CsvPreset, parse_csv, parse_ofx};
use proptest::prelude::*;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Formats a date-time the way OFX writes it, with the offset in brackets in one of its spellings.
fn ofx_text(local: PrimitiveDateTime, offset_minutes: i32, millis: Option<u16>, spelling: u8) -> String {
    let mut text = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second()
    );
    if let Some(millis) = millis {
        text.push_str(&format!(".{millis:03}"));
    }
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let (hours, minutes) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
    match spelling % 3 {
        0 if minutes == 0 => text.push_str(&format!("[{sign}{hours}:XYZ]")),
        0 | 1 => text.push_str(&format!("[{sign}{hours}:{minutes:02}:XYZ]")),
        _ => text.push_str(&format!("[{sign}{hours:02}{minutes:02}]")),
    }
    text
}

proptest! {
    #[test]
    fn ofx_dates_round_trip_with_offsets(
        days in 0i64..80_000,
        seconds in 0u32..86_400,
        millis in proptest::option::of(0u16..1000),
        offset_quarters in -48i32..=56,
        spelling in any::<u8>(),
    ) {
        let day = Date::from_calendar_date(1950, time::Month::January, 1).expect("date") + Duration::days(days);
        let time = Time::from_hms_milli(
            (seconds / 3600) as u8, ((seconds / 60) % 60) as u8, (seconds % 60) as u8, millis.unwrap_or(0),
        ).expect("time");
        let local = PrimitiveDateTime::new(day, time);
        let offset_minutes = offset_quarters * 15;
        let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).expect("offset");
        let text = ofx_text(local, offset_minutes, millis, spelling);
        let parsed = parse_ofx_datetime(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let expected: OffsetDateTime = local.assume_offset(offset).to_offset(UtcOffset::UTC);
        prop_assert_eq!(parsed.date, day, "{}", text);
        prop_assert_eq!(parsed.at, Some(expected), "{}", text);
        // The date alone (first eight digits) has no moment.
        let date_only = parse_ofx_datetime(&text[..8]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((date_only.date, date_only.at), (day, None));
    }

    #[test]
    fn amount_spellings_read_back_to_the_same_decimal(
        mantissa in -10_000_000_000_000i64..10_000_000_000_000,
        scale in 0u32..=4,
        style in 0u8..8,
    ) {
        let value = Decimal::new(mantissa, scale);
        let plain = value.abs().to_string();
        let (whole, fraction) = match plain.split_once('.') {
            Some((w, f)) => (w.to_owned(), Some(f.to_owned())),
            None => (plain.clone(), None),
        };
        let group = |sep: &str| {
            let digits: Vec<char> = whole.chars().collect();
            let mut out = String::new();
            for (i, c) in digits.iter().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push_str(sep);
                }
                out.push(*c);
            }
            out
        };
        let negative = value.is_sign_negative() && !value.is_zero();
        let (body, separator) = match style {
            0 => (plain.clone(), DecimalSeparator::Auto),
            1 => (format!("{}{}", group(","), fraction.as_ref().map(|f| format!(".{f}")).unwrap_or_default()), DecimalSeparator::Dot),
            2 => (format!("{}{}", group("."), fraction.as_ref().map(|f| format!(",{f}")).unwrap_or_default()), DecimalSeparator::Comma),
            3 => (format!("{}{}", group(" "), fraction.as_ref().map(|f| format!(",{f}")).unwrap_or_default()), DecimalSeparator::Comma),
            4 => (format!("{}{}", group("'"), fraction.as_ref().map(|f| format!(".{f}")).unwrap_or_default()), DecimalSeparator::Auto),
            5 => (format!("${}", plain), DecimalSeparator::Dot),
            6 => (format!("{}{}", whole, fraction.as_ref().map(|f| format!(",{f}")).unwrap_or_default()), DecimalSeparator::Comma),
            _ => (format!("{} €", plain), DecimalSeparator::Auto),
        };
        let spellings = if negative {
            vec![format!("-{body}"), format!("({body})"), format!("{body}-"), format!(" -{body} ")]
        } else {
            vec![body.clone(), format!("+{body}"), format!(" {body} ")]
        };
        for text in spellings {
            let parsed = parse_amount(&text, separator).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            prop_assert_eq!(parsed, value, "{:?}", text);
            prop_assert_eq!(parsed.scale(), value.scale(), "{:?}", text);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_ofx_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_ofx(&bytes);
        let _ = dashtam_import::detect(&bytes, Some("x.qfx"));
    }

    #[test]
    fn ofx_like_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("<OFX>"), Just("</OFX>"), Just("<STMTRS>"), Just("</STMTRS>"), Just("<CCSTMTRS>"), Just("<CURDEF>USD"),
        Just("<BANKACCTFROM>"), Just("<ACCTID>1"), Just("</BANKACCTFROM>"), Just("<BANKTRANLIST>"), Just("</BANKTRANLIST>"),
        Just("<STMTTRN>"), Just("</STMTTRN>"), Just("<DTPOSTED>20250101"), Just("<TRNAMT>-1,5"), Just("<FITID>"),
        Just("<NAME>a&amp;b"), Just("<INVSTMTRS>"), Just("<INVTRANLIST>"), Just("<BUYSTOCK>"), Just("<INVBUY>"),
        Just("<INVTRAN>"), Just("<DTTRADE>20250101120000[-5:EST]"), Just("<TOTAL>1"), Just("</INVBUY>"),
        Just("<INVPOSLIST>"), Just("<POSSTOCK>"), Just("<INVPOS>"), Just("<SECID>"), Just("<UNIQUEID>X"), Just("<UNITS>2"),
        Just("<MKTVAL>3"), Just("</INVPOS>"), Just("</POSSTOCK>"), Just("<SECLIST>"), Just("<STOCKINFO>"), Just("<SECINFO>"),
        Just("<!-- c -->"), Just("<?OFX x?>"), Just("\n"), Just("<X/>"), Just("</NOPE>"), Just("<"), Just(">"),
    ], 0..80)) {
        let text: String = parts.concat();
        let _ = parse_ofx(text.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_csv_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048), which in 0u8..4) {
        let mapping = match which {
            0 => CsvMapping::default(),
            1 => CsvMapping::preset(CsvPreset::European),
            2 => CsvMapping::preset(CsvPreset::Broker),
            _ => CsvMapping {
                date: Some(Column::Index(0)),
                amount: Some(Column::Index(1)),
                has_header: Some(false),
                ..CsvMapping::default()
            },
        };
        let _ = parse_csv(&bytes, &mapping);
    }

    #[test]
    fn csv_like_text_never_panics(rows in proptest::collection::vec(
        proptest::collection::vec("[0-9a-zA-Z ,;.\\-()$\"/]{0,12}", 0..6), 0..20,
    )) {
        let mut text = String::from("Date,Amount,Description\n");
        for row in rows {
            text.push_str(&row.join(","));
            text.push('\n');
        }
        let _ = parse_csv(text.as_bytes(), &CsvMapping::default());
    }
}
