//! CSV fixtures, written for these tests, through supplied, preset and recognised mappings.

use std::str::FromStr;

use dashtam_domain::finance::{TransactionSubtype, TransactionType};
use dashtam_domain::money::Decimal;
use dashtam_import::{Column, CsvMapping, CsvPreset, ParseError, Statement, StatementTransaction, parse_csv};
use time::macros::date;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str, mapping: &CsvMapping) -> Statement {
    parse_csv(&fixture(name), mapping).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn transactions(statement: &Statement) -> &[StatementTransaction] {
    assert_eq!(statement.accounts.len(), 1);
    assert_eq!(statement.accounts[0].account_id, "");
    &statement.accounts[0].transactions
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

fn mapping(json: &str) -> CsvMapping {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

#[test]
fn header_mapping_by_name_with_thousands_parentheses_and_identical_rows() {
    let by_name = mapping(
        r#"{"date": "Posted Date", "amount": "amount", "description": "Description", "payee": "Payee",
            "memo": "Memo", "id": "Reference", "date_format": "YYYY-MM-DD", "decimal_separator": "."}"#,
    );
    let statement = parse("bank_by_name.csv", &by_name);
    assert!(statement.warnings.is_empty(), "{:?}", statement.warnings);
    let rows = transactions(&statement);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].description, "Grocery, Inc.");
    assert_eq!(rows[0].amount, dec("-1234.56"));
    assert_eq!(rows[0].fitid.as_deref(), Some("R1"));
    assert_eq!(rows[0].memo.as_deref(), Some("weekly shop"));
    assert_eq!(rows[0].posted_on, date!(2025 - 01 - 02));
    assert_eq!(rows[0].line, 2);
    // Two genuine identical purchases: both kept, told apart by line.
    assert_eq!(rows[1].amount, dec("-12.00"));
    assert_eq!(rows[1].payee.as_deref(), Some("Café Bleu"));
    assert_eq!(
        (rows[1].description.as_str(), rows[1].amount, rows[1].fitid.as_deref()),
        ("Coffee", dec("-12.00"), None)
    );
    assert_eq!(
        (rows[2].description.as_str(), rows[2].amount, rows[2].fitid.as_deref()),
        ("Coffee", dec("-12.00"), None)
    );
    assert_eq!((rows[1].line, rows[2].line), (3, 4));
    assert_eq!(rows[3].amount, dec("2500.00"));
    assert_eq!(rows[4].amount, dec("15.99"));
    assert_eq!(
        (rows[0].transaction_type, rows[0].subtype),
        (TransactionType::Spending, Some(TransactionSubtype::Purchase))
    );
    assert_eq!(
        (rows[3].transaction_type, rows[3].subtype),
        (TransactionType::Transfer, Some(TransactionSubtype::Deposit))
    );

    // The same file with everything recognised from the header.
    assert_eq!(parse("bank_by_name.csv", &CsvMapping::default()).accounts, statement.accounts);
}

#[test]
fn columns_by_index_without_a_header_and_debit_credit() {
    let by_index = mapping(
        r#"{"date": 0, "description": 1, "debit": 2, "credit": 3, "has_header": false, "date_format": "%m/%d/%Y"}"#,
    );
    let statement = parse("debit_credit_no_header.csv", &by_index);
    let rows = transactions(&statement);
    let amounts: Vec<_> = rows.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [dec("-1500.00"), dec("3200.50"), dec("-82.13"), dec("0.27")]);
    assert_eq!(rows[0].posted_on, date!(2025 - 01 - 15));
    assert_eq!(rows.iter().map(|t| t.line).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // Without a mapping there is no header to recognise.
    let error = parse_csv(&fixture("debit_credit_no_header.csv"), &CsvMapping::default()).expect_err("no header");
    assert!(matches!(&error, ParseError::Mapping { field, .. } if field == "date"), "{error}");
}

#[test]
fn debit_and_credit_columns_recognised_from_the_header() {
    let statement = parse("debit_credit_header.csv", &CsvMapping::default());
    let rows = transactions(&statement);
    assert_eq!(rows.iter().map(|t| t.amount).collect::<Vec<_>>(), [dec("-45.10"), dec("100.00"), dec("-30.00")]);
    // 02/13 can only be month-first.
    assert_eq!(rows[2].posted_on, date!(2025 - 02 - 13));
    assert_eq!(rows[0].description, "Electricity");
}

#[test]
fn european_export_with_bom_semicolons_and_decimal_commas() {
    for mapping in [CsvMapping::default(), CsvMapping::preset(CsvPreset::European)] {
        let statement = parse("european_bom.csv", &mapping);
        let rows = transactions(&statement);
        assert_eq!(rows.iter().map(|t| t.amount).collect::<Vec<_>>(), [dec("-1250.00"), dec("3456.78"), dec("-4.50")]);
        assert_eq!(rows[0].posted_on, date!(2025 - 01 - 02));
        assert_eq!(rows[2].posted_on, date!(2025 - 01 - 15));
        assert_eq!(rows[0].payee.as_deref(), Some("Hausverwaltung Müller"));
        assert_eq!(rows[2].description, "Bäckerei");
        assert_eq!(rows[0].line, 2);
    }
}

#[test]
fn latin1_export_with_a_preamble() {
    let latin1 = mapping(r#"{"encoding": "latin1", "delimiter": ";", "decimal_separator": ","}"#);
    let statement = parse("european_latin1.csv", &latin1);
    let rows = transactions(&statement);
    assert_eq!(
        rows.iter().map(|t| t.description.as_str()).collect::<Vec<_>>(),
        ["Café de la Gare", "Virement reçu", "Frais bancaires"]
    );
    assert_eq!(rows.iter().map(|t| t.amount).collect::<Vec<_>>(), [dec("-3.20"), dec("150.00"), dec("-2.00")]);
    // 05/01 is day-first: the file's decimal commas say so.
    assert_eq!(rows[0].posted_on, date!(2025 - 01 - 05));
    assert_eq!(rows[0].line, 5);
    assert!(statement.warnings[0].contains("preamble"), "{:?}", statement.warnings);
    // Unsaid, the encoding is found from the bytes (not UTF-8, so Windows-1252).
    assert_eq!(parse("european_latin1.csv", &CsvMapping::default()).accounts, statement.accounts);
}

#[test]
fn broker_export_preset() {
    let statement = parse("broker_history.csv", &CsvMapping::preset(CsvPreset::Broker));
    let rows = transactions(&statement);
    use TransactionSubtype as S;
    use TransactionType as T;
    let kinds: Vec<_> = rows.iter().map(|t| (t.transaction_type, t.subtype)).collect();
    assert_eq!(
        kinds,
        [
            (T::Trade, Some(S::Buy)),
            (T::Trade, Some(S::Sell)),
            (T::Income, Some(S::Dividend)),
            (T::Trade, Some(S::Buy)),
            (T::Transfer, Some(S::Deposit)),
            (T::Income, Some(S::Interest)),
        ]
    );
    assert_eq!(rows[0].amount, dec("-2502.30"));
    assert_eq!(
        (rows[0].symbol.as_deref(), rows[0].quantity, rows[0].unit_price),
        (Some("VTI"), Some(dec("10")), Some(dec("250.13")))
    );
    assert_eq!(rows[0].fees, Some(dec("1.00")));
    assert_eq!((rows[1].quantity, rows[1].posted_on), (Some(dec("-5")), date!(2025 - 03 - 10)));
    // The totals row is skipped with a warning, not taken for a transaction.
    assert!(statement.warnings.iter().any(|w| w.contains("line 8") && w.contains("Transactions Total")));
    // Recognised from the header alone, the same.
    assert_eq!(parse("broker_history.csv", &CsvMapping::default()).accounts, statement.accounts);
}

#[test]
fn ambiguity_and_bad_values_fail_with_a_place() {
    let error = parse_csv(&fixture("ambiguous_dates.csv"), &CsvMapping::default()).expect_err("ambiguous");
    assert!(matches!(&error, ParseError::Mapping { field, .. } if field == "date_format"), "{error}");
    let day_first = mapping(r#"{"date_format": "%d/%m/%Y"}"#);
    let rows = parse("ambiguous_dates.csv", &day_first);
    assert_eq!(transactions(&rows)[1].posted_on, date!(2025 - 04 - 03));

    let error = parse_csv(&fixture("bad_amount.csv"), &CsvMapping::default()).expect_err("bad amount");
    assert_eq!(error.to_string(), "line 3, column \"Amount\": invalid amount 'twelve'");

    let bad_date = b"Date,Amount\n2025-01-01,1\n2025-02-30,2\n";
    let error = parse_csv(bad_date, &mapping(r#"{"date_format": "%Y-%m-%d"}"#)).expect_err("bad date");
    assert_eq!(error.to_string(), "line 3, column \"Date\": invalid date '2025-02-30'");
}

#[test]
fn mapping_validation_names_the_field() {
    let cases = [
        (r#"{"delimiter": ";;"}"#, "delimiter"),
        (r#"{"decimal_separator": "x"}"#, "decimal_separator"),
        (r#"{"encoding": "klingon"}"#, "encoding"),
        (r#"{"date_format": "%Q"}"#, "date_format"),
        (r#"{"amount": "Amount", "debit": "Debit"}"#, "amount"),
        (r#"{"date": "When"}"#, "date"),
        (r#"{"payee": "Nobody"}"#, "payee"),
        (r#"{"date": "Date", "has_header": false}"#, "date"),
    ];
    for (json, field) in cases {
        let error = parse_csv(b"Date,Amount\n2025-01-01,1\n", &mapping(json)).expect_err(json);
        assert!(matches!(&error, ParseError::Mapping { field: f, .. } if f == field), "{json}: {error}");
        assert!(error.to_string().starts_with(&format!("csv_mapping.{field}: ")), "{error}");
    }
    // Unknown fields and the broker-only columns are refused at deserialisation.
    assert!(serde_json::from_str::<CsvMapping>(r#"{"dat": "Date"}"#).is_err());
    assert!(serde_json::from_str::<CsvMapping>(r#"{"symbol": "Symbol"}"#).is_err());
    assert_eq!(mapping(r#"{"date": 3}"#).date, Some(Column::Index(3)));
}

#[test]
fn detect_recognises_common_headers() {
    let found =
        CsvMapping::detect(&["Transaction Date", "DESCRIPTION", " Debit ", "Credit", "Memo"]).expect("recognised");
    assert_eq!(found.date, Some(Column::Name("Transaction Date".to_owned())));
    assert_eq!(found.description, Some(Column::Name("DESCRIPTION".to_owned())));
    assert_eq!(found.debit, Some(Column::Name("Debit".to_owned())));
    assert_eq!(found.credit, Some(Column::Name("Credit".to_owned())));
    assert_eq!(found.memo, Some(Column::Name("Memo".to_owned())));
    assert_eq!(found.amount, None);
    assert!(CsvMapping::detect(&["Name", "Amount"]).is_none());
    assert!(CsvMapping::detect(&["Date", "Name"]).is_none());
    for preset in CsvPreset::ALL {
        assert_eq!(CsvPreset::parse(preset.as_str()), Some(*preset));
    }
}

#[test]
fn odd_but_readable_files() {
    // Tabs, CRLF, a quoted multi-line description, blank lines and a semicolon in a quoted cell.
    let text = "Date\tAmount\tDescription\r\n2025-01-01\t-1.00\t\"two\nlines\"\r\n\r\n2025-01-02\t2.00\t\"a;b\"\r\n";
    let statement = parse_csv(text.as_bytes(), &CsvMapping::default()).expect("parses");
    let rows = transactions(&statement);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].description, "two\nlines");
    assert_eq!((rows[0].line, rows[1].line), (2, 5));
    // An empty file has no header to find.
    assert!(parse_csv(b"", &CsvMapping::default()).is_err());
    // A header and nothing else is an empty statement.
    let statement = parse_csv(b"Date,Amount\n", &CsvMapping::default()).expect("parses");
    assert!(transactions(&statement).is_empty());
}
