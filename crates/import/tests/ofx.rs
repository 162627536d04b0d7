//! OFX and QFX fixtures, written for these tests, parsed end to end with concrete values checked.

use std::str::FromStr;

use dashtam_domain::finance::{AccountType, AssetType, TransactionSubtype, TransactionType};
use dashtam_domain::money::{Currency, Decimal};
use dashtam_import::{Format, ParseError, Statement, StatementAccount, detect, parse_ofx};
use time::macros::{date, datetime};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> Statement {
    parse_ofx(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal literal")
}

fn only_account(statement: &Statement) -> &StatementAccount {
    assert_eq!(statement.accounts.len(), 1, "{statement:#?}");
    &statement.accounts[0]
}

#[test]
fn ofx1_sgml_bank_statement_in_windows_1252() {
    let statement = parse("bank_ofx102_cp1252.ofx");
    assert!(statement.warnings.is_empty(), "{:?}", statement.warnings);
    let account = only_account(&statement);
    assert_eq!(account.institution.as_deref(), Some("Prairie Savings Bank"));
    assert_eq!(account.account_id, "000123456789");
    assert_eq!(account.account_type, AccountType::Checking);
    assert_eq!(account.currency, Currency::USD);
    let balance = account.balance.expect("ledger balance");
    assert_eq!((balance.amount, balance.as_of), (dec("2375.92"), date!(2025 - 01 - 31)));
    assert_eq!(account.available_balance.map(|b| b.amount), Some(dec("2300.00")));

    let [coffee, payroll, check, interest] = account.transactions.as_slice() else {
        panic!("{:#?}", account.transactions)
    };
    assert_eq!(coffee.fitid.as_deref(), Some("2025010301"));
    assert_eq!(coffee.description, "Café Olé");
    assert_eq!(coffee.payee.as_deref(), Some("Café Olé"));
    assert_eq!(coffee.memo.as_deref(), Some("Card 1234 & co"));
    assert_eq!(coffee.amount, dec("-4.50"));
    assert_eq!(coffee.posted_on, date!(2025 - 01 - 03));
    // 12:00 at UTC−5 is 17:00 UTC.
    assert_eq!(coffee.posted_at, Some(datetime!(2025-01-03 17:00 UTC)));
    assert_eq!(
        (coffee.transaction_type, coffee.subtype),
        (TransactionType::Spending, Some(TransactionSubtype::Purchase))
    );
    assert_eq!(coffee.line, 43);

    assert_eq!(payroll.amount, dec("2500.00"));
    assert_eq!(payroll.posted_at, Some(datetime!(2025-01-05 05:00 UTC)));
    assert_eq!(
        (payroll.transaction_type, payroll.subtype),
        (TransactionType::Transfer, Some(TransactionSubtype::Deposit))
    );

    assert_eq!(check.description, "Check 1001");
    assert_eq!(check.posted_on, date!(2025 - 01 - 06));
    assert_eq!(check.posted_at, None);
    assert_eq!(check.amount, dec("-120.00"));

    // The local day stays the 31st though the moment is already 1 February in UTC; `0,42` is a decimal comma.
    assert_eq!(interest.posted_on, date!(2025 - 01 - 31));
    assert_eq!(interest.posted_at, Some(datetime!(2025-02-01 04:59:59 UTC)));
    assert_eq!(interest.amount, dec("0.42"));
    assert_eq!(interest.description, "Intérêts créditeurs");
    assert_eq!(
        (interest.transaction_type, interest.subtype),
        (TransactionType::Income, Some(TransactionSubtype::Interest))
    );
}

fn assert_card_statement(statement: &Statement) {
    assert!(statement.warnings.is_empty(), "{:?}", statement.warnings);
    let account = only_account(statement);
    assert_eq!(account.institution.as_deref(), Some("Alpenkarte"));
    assert_eq!(account.account_id, "4111222233334444");
    assert_eq!(account.account_type, AccountType::CreditCard);
    assert_eq!(account.currency, Currency::parse("CHF").expect("CHF"));
    assert_eq!(account.balance.map(|b| (b.amount, b.as_of)), Some((dec("-1234.56"), date!(2025 - 01 - 31))));
    let [bakery, refund, payment] = account.transactions.as_slice() else { panic!("{:#?}", account.transactions) };
    assert_eq!(bakery.description, "Bäckerei Zürich & Söhne");
    assert_eq!(bakery.memo.as_deref(), Some("Kontaktlos"));
    assert_eq!(bakery.amount, dec("-89.90"));
    // Midnight at UTC+1 is still the previous day in UTC; the posting day is the file's.
    assert_eq!(bakery.posted_on, date!(2025 - 01 - 02));
    assert_eq!(bakery.posted_at, Some(datetime!(2025-01-01 23:00 UTC)));
    assert_eq!(
        (bakery.transaction_type, bakery.subtype),
        (TransactionType::Spending, Some(TransactionSubtype::Purchase))
    );
    assert_eq!(refund.description, "Refund <Online> shop");
    assert_eq!(
        (refund.transaction_type, refund.subtype),
        (TransactionType::Spending, Some(TransactionSubtype::Refund))
    );
    assert_eq!(payment.payee.as_deref(), Some("Thank you"));
    assert_eq!(payment.description, "Thank you");
    assert_eq!(
        (payment.transaction_type, payment.subtype),
        (TransactionType::Spending, Some(TransactionSubtype::Payment))
    );
    assert_eq!(payment.posted_at, None);
}

#[test]
fn ofx2_xml_card_statement_with_and_without_the_xml_declaration() {
    let with = parse("card_ofx211.ofx");
    assert_card_statement(&with);
    let without = parse("card_ofx202_no_xml_decl.ofx");
    assert_card_statement(&without);
    // The same statement, one line higher up without the declaration.
    let mut shifted = without.accounts.clone();
    shifted.iter_mut().flat_map(|a| &mut a.transactions).for_each(|t| t.line += 1);
    assert_eq!(with.accounts, shifted);
}

#[test]
fn qfx_with_intuit_extensions() {
    let bytes = fixture("bank_intu.qfx");
    assert_eq!(detect(&bytes, None), Some(Format::Qfx));
    assert_eq!(detect(&bytes, Some("statement.ofx")), Some(Format::Qfx));
    let statement = parse("bank_intu.qfx");
    assert!(statement.warnings.is_empty(), "{:?}", statement.warnings);
    let account = only_account(&statement);
    assert_eq!(account.institution.as_deref(), Some("B1"));
    assert_eq!(account.account_type, AccountType::Savings);
    let [transfer, interest] = account.transactions.as_slice() else { panic!("{:#?}", account.transactions) };
    assert_eq!(transfer.amount, dec("-1000.00"));
    assert_eq!(transfer.posted_at, Some(datetime!(2025-02-10 16:00 UTC)));
    assert_eq!(
        (transfer.transaction_type, transfer.subtype),
        (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal))
    );
    assert_eq!(interest.amount, dec("3.21"));
    assert_eq!(interest.description, "Interest — février");
}

#[test]
fn investment_statement_with_trades_income_positions_and_securities() {
    let statement = parse("investment_401k.ofx");
    assert!(statement.warnings.is_empty(), "{:?}", statement.warnings);
    let account = only_account(&statement);
    assert_eq!(account.institution.as_deref(), Some("Harbor Brokerage"));
    assert_eq!(account.account_id, "X-401K-55");
    assert_eq!(account.account_type, AccountType::EmployerRetirement);
    assert_eq!(account.balance.map(|b| (b.amount, b.as_of)), Some((dec("7793.11"), date!(2025 - 03 - 31))));
    assert_eq!(account.available_balance.map(|b| b.amount), Some(dec("1250.75")));

    let kinds: Vec<_> = account.transactions.iter().map(|t| (t.transaction_type, t.subtype)).collect();
    use TransactionSubtype as S;
    use TransactionType as T;
    assert_eq!(
        kinds,
        [
            (T::Trade, Some(S::Buy)),
            (T::Trade, Some(S::Sell)),
            (T::Income, Some(S::Dividend)),
            (T::Trade, Some(S::Buy)),
            (T::Income, Some(S::CapitalGain)),
            (T::Transfer, Some(S::Deposit)),
            (T::Transfer, Some(S::SecurityTransfer)),
            (T::Fee, Some(S::AccountFee)),
        ]
    );
    let buy = &account.transactions[0];
    assert_eq!(buy.fitid.as_deref(), Some("T-100"));
    assert_eq!(buy.symbol.as_deref(), Some("VTI"));
    assert_eq!(buy.quantity, Some(dec("10")));
    assert_eq!(buy.unit_price, Some(dec("250.125")));
    assert_eq!(buy.fees, Some(dec("1.05")));
    assert_eq!(buy.amount, dec("-2502.30"));
    assert_eq!(buy.posted_at, Some(datetime!(2025-03-03 19:30 UTC)));
    let sell = &account.transactions[1];
    assert_eq!((sell.symbol.as_deref(), sell.quantity, sell.amount), (Some("AAPL"), Some(dec("-5")), dec("899.05")));
    assert_eq!(sell.description, "Sell AAPL");
    let reinvest = &account.transactions[3];
    assert_eq!((reinvest.symbol.as_deref(), reinvest.quantity), (Some("FCNTX"), Some(dec("0.123"))));
    assert_eq!(reinvest.amount, dec("-12.34"));
    let cash = &account.transactions[5];
    assert_eq!((cash.description.as_str(), cash.amount), ("Payroll contribution", dec("500.00")));
    let transfer = &account.transactions[6];
    assert_eq!((transfer.quantity, transfer.amount), (Some(dec("-3")), Decimal::ZERO));
    assert_eq!(account.transactions[7].amount, dec("-8.50"));

    let [vti, fund] = account.positions.as_slice() else { panic!("{:#?}", account.positions) };
    assert_eq!(vti.symbol, "VTI");
    assert_eq!(vti.name.as_deref(), Some("Vanguard Total Stock Market ETF"));
    assert_eq!(vti.asset_type, AssetType::Equity);
    assert_eq!((vti.quantity, vti.unit_price, vti.market_value), (dec("10"), Some(dec("251.00")), dec("2510.00")));
    assert_eq!(vti.as_of, date!(2025 - 03 - 31));
    assert_eq!(fund.symbol, "FCNTX");
    assert_eq!(fund.asset_type, AssetType::MutualFund);
    // No DTPRICEASOF: the statement's date.
    assert_eq!(fund.as_of, date!(2025 - 03 - 31));
}

#[test]
fn two_accounts_in_one_file() {
    let statement = parse("two_accounts.ofx");
    let [bank, card] = statement.accounts.as_slice() else { panic!("{statement:#?}") };
    assert_eq!((bank.account_id.as_str(), bank.account_type), ("CHK-1", AccountType::Checking));
    assert_eq!((card.account_id.as_str(), card.account_type), ("CARD-9", AccountType::CreditCard));
    assert_eq!(bank.transactions.len(), 1);
    assert_eq!(card.transactions.len(), 2);
    assert_eq!(bank.transactions[0].subtype, Some(TransactionSubtype::Withdrawal));
    assert_eq!(card.transactions[1].transaction_type, TransactionType::Fee);
    assert_eq!(card.balance.map(|b| b.amount), Some(dec("-17.25")));
    assert_eq!(bank.institution, card.institution);
}

#[test]
fn empty_fitids_are_warnings_and_absent() {
    let statement = parse("quirk_empty_fitid.ofx");
    let account = only_account(&statement);
    let [one, two, blank] = account.transactions.as_slice() else { panic!("{:#?}", account.transactions) };
    // SGML `<FITID>` with no value, XML `<FITID></FITID>` and a blank one: none swallows the next element.
    assert_eq!((one.fitid.as_deref(), one.description.as_str()), (None, "No id one"));
    assert_eq!((two.fitid.as_deref(), two.description.as_str()), (None, "No id two"));
    assert_eq!((blank.fitid.as_deref(), blank.description.as_str()), (None, "Blank id"));
    assert_eq!(one.amount, dec("-10.00"));
    // Identical content, told apart by line.
    assert_ne!(one.line, two.line);
    assert_eq!(statement.warnings.len(), 3, "{:?}", statement.warnings);
    assert!(statement.warnings[0].contains("empty <FITID>"), "{:?}", statement.warnings);
}

#[test]
fn trailing_garbage_is_a_warning() {
    let statement = parse("quirk_trailing_garbage.ofx");
    assert_eq!(only_account(&statement).transactions.len(), 3);
    assert!(statement.warnings.iter().any(|w| w.contains("after the closing </OFX>")), "{:?}", statement.warnings);
    assert_eq!(statement.accounts, parse("quirk_empty_fitid.ofx").accounts);
}

#[test]
fn a_mismatched_closing_aggregate_is_a_warning() {
    let statement = parse("quirk_mismatched_close.ofx");
    assert_eq!(statement.accounts, parse("card_ofx211.ofx").accounts);
    assert_eq!(statement.warnings.len(), 1, "{:?}", statement.warnings);
    assert!(statement.warnings[0].contains("</STMTRS> closes <CCSTMTRS>"), "{:?}", statement.warnings);
}

fn error_of(name: &str) -> ParseError {
    match parse_ofx(&fixture(name)) {
        Ok(statement) => panic!("{name} parsed: {statement:#?}"),
        Err(error) => error,
    }
}

#[test]
fn corrupt_files_fail_naming_line_and_element() {
    let truncated = error_of("corrupt_truncated.ofx");
    assert_eq!(truncated.line(), Some(54), "{truncated}");
    assert!(truncated.to_string().contains("<STMTTRN>"), "{truncated}");
    assert!(truncated.to_string().contains("ends before"), "{truncated}");

    assert_eq!(error_of("corrupt_missing_trnamt.ofx").to_string(), "line 58, <STMTTRN>: missing <TRNAMT>");
    assert_eq!(error_of("corrupt_bad_date.ofx").to_string(), "line 60, <DTPOSTED>: invalid date '20251306'");
}

#[test]
fn more_malformed_inputs_fail_cleanly() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "no <OFX>"),
        (b"OFXHEADER:100\nDATA:OFXSGML\n\nnot ofx at all", "no <OFX>"),
        (b"<OFX><SIGNONMSGSRSV1></SIGNONMSGSRSV1></OFX>", "no statement"),
        (b"<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS><CURDEF>USD</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>", "missing <BANKACCTFROM>"),
        (b"<OFX><CCSTMTRS><CURDEF>USD<CCACCTFROM><ACCTID>1</CCACCTFROM><BANKTRANLIST><STMTTRN><TRNAMT>1<DTPOSTED>x</STMTTRN>", "<DTPOSTED>: invalid date 'x'"),
        (b"<OFX><CCSTMTRS><CURDEF>USD<CCACCTFROM><ACCTID>1</CCACCTFROM><BANKTRANLIST><STMTTRN><TRNAMT>1.2.3<DTPOSTED>20250101</STMTTRN>", "<TRNAMT>: invalid amount"),
        (b"<OFX><CCSTMTRS><CURDEF>DOLLARS<CCACCTFROM><ACCTID>1</CCACCTFROM></CCSTMTRS></OFX>", "invalid currency"),
        (b"<OFX><STMTRS", "unterminated tag"),
        (b"<OFX><!-- never closed", "unterminated comment"),
    ];
    for (input, expected) in cases {
        match parse_ofx(input) {
            Ok(statement) => panic!("{:?} parsed: {statement:#?}", String::from_utf8_lossy(input)),
            Err(error) => assert!(error.to_string().contains(expected), "{error} (wanted {expected})"),
        }
    }
}

#[test]
fn error_messages_never_echo_much_input() {
    let long = "9".repeat(10_000);
    let input = format!(
        "<OFX><CCSTMTRS><CURDEF>USD<CCACCTFROM><ACCTID>1</CCACCTFROM><BANKTRANLIST><STMTTRN><DTPOSTED>{long}<TRNAMT>1</STMTTRN>"
    );
    let error = parse_ofx(input.as_bytes()).expect_err("an invalid date");
    assert!(error.to_string().len() < 120, "{error}");
}

#[test]
fn a_lying_charset_is_read_as_what_the_bytes_are() {
    // Declared 1252 but written as UTF-8: read as UTF-8, with a warning.
    let input = "OFXHEADER:100\nDATA:OFXSGML\nENCODING:USASCII\nCHARSET:1252\n\n<OFX><CCSTMTRS><CURDEF>EUR<CCACCTFROM><ACCTID>1</CCACCTFROM><BANKTRANLIST><STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20250101<TRNAMT>-1<NAME>Crème brûlée</STMTTRN></BANKTRANLIST></CCSTMTRS></OFX>";
    let statement = parse_ofx(input.as_bytes()).expect("parses");
    assert_eq!(statement.accounts[0].transactions[0].description, "Crème brûlée");
    assert_eq!(statement.warnings.len(), 1, "{:?}", statement.warnings);
    // Declared UTF-8 but written as Latin-1: read as Windows-1252, with a warning.
    let mut latin1 = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><OFX><CCSTMTRS><CURDEF>EUR<CCACCTFROM><ACCTID>1</CCACCTFROM><BANKTRANLIST><STMTTRN><DTPOSTED>20250101<TRNAMT>-1<NAME>Caf".to_vec();
    latin1.extend_from_slice(b"\xe9</NAME></STMTTRN></BANKTRANLIST></CCSTMTRS></OFX>");
    let statement = parse_ofx(&latin1).expect("parses");
    assert_eq!(statement.accounts[0].transactions[0].description, "Café");
    assert_eq!(statement.warnings.len(), 1, "{:?}", statement.warnings);
}

#[test]
fn hostile_shapes_stay_linear_and_bounded() {
    // Deep nesting is refused early rather than searched on every closing tag.
    let deep = "<OFX>".to_owned() + &"<A>".repeat(100_000) + &"</B>".repeat(100_000);
    let error = parse_ofx(deep.as_bytes()).expect_err("too deep");
    assert!(error.to_string().contains("nested too deeply"), "{error}");
    // Many stray closing tags under an aggregate with many children: each is compared with a few recent
    // children only (quadratic work here would make this test crawl; speed itself is left to the benchmark).
    let wide = "<OFX><X>".to_owned() + &"<L>1".repeat(100_000) + &"</Q>".repeat(100_000) + "</X></OFX>";
    let error = parse_ofx(wide.as_bytes()).expect_err("no statement");
    assert!(error.to_string().contains("no statement"), "{error}");
}

#[test]
fn a_transaction_outside_its_list_is_kept_with_a_warning() {
    let input = b"<OFX><CCSTMTRS><CURDEF>USD<CCACCTFROM><ACCTID>7</CCACCTFROM>\n<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20250101<TRNAMT>-3<FITID>a</STMTTRN></CCSTMTRS></OFX>";
    let statement = parse_ofx(input).expect("parses");
    assert_eq!(statement.accounts[0].transactions.len(), 1);
    assert_eq!(statement.accounts[0].transactions[0].line, 2);
    assert!(statement.warnings[0].contains("rather than <BANKTRANLIST>"), "{:?}", statement.warnings);
}
