//! CSV statements read through a column mapping (supplied, preset or recognised from the header row).

mod date_format;

use dashtam_domain::finance::{AccountType, TransactionSubtype, TransactionType};
use dashtam_domain::money::{Currency, Decimal};
use serde::{Deserialize, Serialize};

use self::date_format::DateFormat;
use crate::decode::{decode, encoding_for_label};
use crate::error::{ParseError, quoted, snippet};
use crate::statement::{Statement, StatementAccount, StatementTransaction};
use crate::value::{DecimalSeparator, parse_amount};
use crate::warnings::Warnings;

/// How many rows may precede the header (bank exports often start with account details).
const HEADER_SEARCH_ROWS: usize = 20;

/// A column, by its header text (matched case-insensitively) or its 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    /// The 0-based position.
    Index(usize),
    /// The header text.
    Name(String),
}

/// Which columns hold what, and how values are written: the API's `csv_mapping`. Every field is optional;
/// columns left out are recognised from the header row, format settings left out are detected from the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvMapping {
    /// The posting date.
    pub date: Option<Column>,
    /// A signed amount (money in positive). Give this or `debit`/`credit`, not both.
    pub amount: Option<Column>,
    /// Money out, in a column of its own (read as negative whatever its sign).
    pub debit: Option<Column>,
    /// Money in, in a column of its own.
    pub credit: Option<Column>,
    /// The description.
    pub description: Option<Column>,
    /// Who was paid or paid.
    pub payee: Option<Column>,
    /// A note.
    pub memo: Option<Column>,
    /// The bank's own transaction id, used as its identity.
    pub id: Option<Column>,
    /// How dates are written: strftime-like (`%d/%m/%Y`, `%b` for month names) or `DD/MM/YYYY` style;
    /// detected from the data when absent (refused when day-first and month-first both fit).
    pub date_format: Option<String>,
    /// `.` or `,`; detected from the data when absent.
    pub decimal_separator: Option<String>,
    /// One character (`,`, `;`, `\t` or `tab`, `|`); detected from the first line when absent.
    pub delimiter: Option<String>,
    /// An encoding label (`utf-8`, `latin1`, `windows-1252`, …); a byte-order mark wins; UTF-8 when the
    /// bytes are valid UTF-8, else Windows-1252, when absent.
    pub encoding: Option<String>,
    /// Whether the first row (after any preamble) names the columns; true when absent.
    pub has_header: Option<bool>,
    /// Broker exports only (not part of the API's mapping): the kind of activity ("Buy", "Qualified Dividend").
    #[serde(skip)]
    pub action: Option<Column>,
    /// Broker exports only: the ticker.
    #[serde(skip)]
    pub symbol: Option<Column>,
    /// Broker exports only: units traded.
    #[serde(skip)]
    pub quantity: Option<Column>,
    /// Broker exports only: price per unit.
    #[serde(skip)]
    pub price: Option<Column>,
    /// Broker exports only: commissions and fees.
    #[serde(skip)]
    pub fees: Option<Column>,
}

/// Built-in mappings for common kinds of export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CsvPreset {
    /// A US-style bank or card export: `,` separated, `.` decimals, columns recognised from the header.
    GenericBank,
    /// A continental European bank export: `;` separated, `,` decimals, day-first dates.
    European,
    /// A brokerage history export: Date, Action, Symbol, Description, Quantity, Price, Fees & Comm, Amount,
    /// with month-first dates.
    Broker,
}

impl CsvPreset {
    /// Every preset.
    pub const ALL: &'static [CsvPreset] = &[CsvPreset::GenericBank, CsvPreset::European, CsvPreset::Broker];

    /// The preset's name (`generic_bank`, `european`, `broker`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenericBank => "generic_bank",
            Self::European => "european",
            Self::Broker => "broker",
        }
    }

    /// The preset named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == name)
    }
}

/// Header names recognised for each field, most specific first; compared case-insensitively.
const DATE_HEADERS: &[&str] = &[
    "posted date",
    "posting date",
    "post date",
    "transaction date",
    "trans. date",
    "trans date",
    "date",
    "trade date",
    "run date",
    "booking date",
    "value date",
    "buchungstag",
    "buchungsdatum",
    "datum",
    "date d'opération",
    "date opération",
    "date operation",
    "fecha",
    "data",
];
const AMOUNT_HEADERS: &[&str] = &[
    "amount",
    "transaction amount",
    "amount ($)",
    "net amount",
    "betrag",
    "betrag (eur)",
    "umsatz",
    "montant",
    "importe",
    "bedrag",
    "importo",
];
const DEBIT_HEADERS: &[&str] =
    &["debit", "debit amount", "withdrawal", "withdrawals", "money out", "paid out", "soll", "débit", "debit (-)"];
const CREDIT_HEADERS: &[&str] =
    &["credit", "credit amount", "deposit", "deposits", "money in", "paid in", "haben", "crédit", "credit (+)"];
const DESCRIPTION_HEADERS: &[&str] = &[
    "description",
    "transaction description",
    "details",
    "narrative",
    "verwendungszweck",
    "buchungstext",
    "libellé",
    "libelle",
    "concepto",
    "omschrijving",
    "name",
];
const PAYEE_HEADERS: &[&str] = &[
    "payee",
    "merchant",
    "merchant name",
    "counterparty",
    "beneficiary",
    "beguenstigter/zahlungspflichtiger",
    "empfänger",
    "auftraggeber / begünstigter",
    "bénéficiaire",
];
const MEMO_HEADERS: &[&str] = &["memo", "notes", "note", "additional info", "comment"];
const ID_HEADERS: &[&str] =
    &["transaction id", "id", "fitid", "reference", "reference number", "ref", "transaction reference"];
const ACTION_HEADERS: &[&str] = &["action", "activity", "transaction type"];
const SYMBOL_HEADERS: &[&str] = &["symbol", "ticker"];
const QUANTITY_HEADERS: &[&str] = &["quantity", "qty", "shares", "units"];
const PRICE_HEADERS: &[&str] = &["price", "price ($)", "unit price"];
const FEES_HEADERS: &[&str] = &["fees & comm", "fees", "commission", "fees & commissions"];

impl CsvMapping {
    /// The mapping of a built-in preset.
    pub fn preset(preset: CsvPreset) -> Self {
        let name = |text: &str| Some(Column::Name(text.to_owned()));
        match preset {
            CsvPreset::GenericBank => {
                Self { delimiter: Some(",".to_owned()), decimal_separator: Some(".".to_owned()), ..Self::default() }
            }
            CsvPreset::European => {
                Self { delimiter: Some(";".to_owned()), decimal_separator: Some(",".to_owned()), ..Self::default() }
            }
            CsvPreset::Broker => Self {
                date: name("Date"),
                amount: name("Amount"),
                description: name("Description"),
                action: name("Action"),
                symbol: name("Symbol"),
                quantity: name("Quantity"),
                price: name("Price"),
                fees: name("Fees & Comm"),
                date_format: Some("%m/%d/%Y".to_owned()),
                delimiter: Some(",".to_owned()),
                decimal_separator: Some(".".to_owned()),
                ..Self::default()
            },
        }
    }

    /// A mapping naming the columns recognised in `header` (Date, Amount, Debit, Credit, Description, Payee,
    /// Memo, … case-insensitively, in a few languages); `None` without a date column and an amount or
    /// debit/credit column.
    pub fn detect<S: AsRef<str>>(header: &[S]) -> Option<Self> {
        let normalised: Vec<String> = header.iter().map(|h| normalise_header(h.as_ref())).collect();
        let find = |names: &[&str]| -> Option<Column> {
            names.iter().find_map(|name| {
                let at = normalised.iter().position(|h| h == name)?;
                Some(Column::Name(header.get(at)?.as_ref().trim_start_matches('\u{feff}').trim().to_owned()))
            })
        };
        let date = find(DATE_HEADERS)?;
        let amount = find(AMOUNT_HEADERS);
        let (debit, credit) = if amount.is_some() { (None, None) } else { (find(DEBIT_HEADERS), find(CREDIT_HEADERS)) };
        if amount.is_none() && debit.is_none() && credit.is_none() {
            return None;
        }
        let symbol = find(SYMBOL_HEADERS);
        let quantity = find(QUANTITY_HEADERS);
        // Trade columns only mean trades beside a symbol: a bank's "Type" must not turn a sale into one.
        let broker = symbol.is_some();
        let description = find(DESCRIPTION_HEADERS);
        let payee = find(PAYEE_HEADERS).filter(|p| Some(p) != description.as_ref());
        Some(Self {
            date: Some(date),
            amount,
            debit,
            credit,
            description,
            payee,
            memo: find(MEMO_HEADERS),
            id: find(ID_HEADERS),
            action: broker.then(|| find(ACTION_HEADERS)).flatten(),
            symbol,
            quantity: broker.then_some(quantity).flatten(),
            price: broker.then(|| find(PRICE_HEADERS)).flatten(),
            fees: broker.then(|| find(FEES_HEADERS)).flatten(),
            ..Self::default()
        })
    }

    /// The settings, checked, with errors naming the mapping field.
    fn settings(&self) -> Result<Settings, ParseError> {
        let delimiter = match self.delimiter.as_deref() {
            None => None,
            Some("\t" | "\\t" | "tab" | "TAB") => Some(b'\t'),
            Some(text) => match text.as_bytes() {
                [b] if b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'"' && *b != b'\n' && *b != b'\r' => {
                    Some(*b)
                }
                _ => {
                    return Err(ParseError::mapping(
                        "delimiter",
                        format!("must be one character, got {}", quoted(text)),
                    ));
                }
            },
        };
        let decimal = match self.decimal_separator.as_deref() {
            None => DecimalSeparator::Auto,
            Some(".") => DecimalSeparator::Dot,
            Some(",") => DecimalSeparator::Comma,
            Some(other) => {
                return Err(ParseError::mapping(
                    "decimal_separator",
                    format!("must be '.' or ',', got {}", quoted(other)),
                ));
            }
        };
        if delimiter == Some(b',') && decimal == DecimalSeparator::Comma {
            // Legal only with every amount quoted; allowed, since the csv reader honours quotes.
        }
        let encoding = match self.encoding.as_deref() {
            None => None,
            Some(label) => Some(
                encoding_for_label(label)
                    .ok_or_else(|| ParseError::mapping("encoding", format!("unknown encoding {}", quoted(label))))?,
            ),
        };
        let date_format = match self.date_format.as_deref() {
            None => None,
            Some(text) => Some(DateFormat::new(text).map_err(|e| ParseError::mapping("date_format", e))?),
        };
        if self.amount.is_some() && (self.debit.is_some() || self.credit.is_some()) {
            return Err(ParseError::mapping("amount", "give amount or debit/credit, not both"));
        }
        let has_header = self.has_header.unwrap_or(true);
        if !has_header {
            for (field, column) in self.columns() {
                if let Some(Column::Name(name)) = column {
                    return Err(ParseError::mapping(
                        field,
                        format!("names column {} but has_header is false; use a 0-based index", quoted(name)),
                    ));
                }
            }
        }
        Ok(Settings { delimiter, decimal, encoding, date_format, has_header })
    }

    fn columns(&self) -> [(&'static str, &Option<Column>); 13] {
        [
            ("date", &self.date),
            ("amount", &self.amount),
            ("debit", &self.debit),
            ("credit", &self.credit),
            ("description", &self.description),
            ("payee", &self.payee),
            ("memo", &self.memo),
            ("id", &self.id),
            ("action", &self.action),
            ("symbol", &self.symbol),
            ("quantity", &self.quantity),
            ("price", &self.price),
            ("fees", &self.fees),
        ]
    }
}

/// A header cell compared with the known names: trimmed, lower case, inner spaces collapsed, BOM dropped.
fn normalise_header(text: &str) -> String {
    text.trim_start_matches('\u{feff}').split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

#[derive(Debug)]
struct Settings {
    delimiter: Option<u8>,
    decimal: DecimalSeparator,
    encoding: Option<&'static encoding_rs::Encoding>,
    date_format: Option<DateFormat>,
    has_header: bool,
}

/// Column positions, resolved against the header.
#[derive(Debug, Default)]
struct Resolved {
    date: usize,
    amount: Option<usize>,
    debit: Option<usize>,
    credit: Option<usize>,
    description: Option<usize>,
    payee: Option<usize>,
    memo: Option<usize>,
    id: Option<usize>,
    action: Option<usize>,
    symbol: Option<usize>,
    quantity: Option<usize>,
    price: Option<usize>,
    fees: Option<usize>,
}

/// One row as read: its line and cells.
type Row = (usize, csv::StringRecord);

/// Parses a CSV statement through `mapping`: one account with an empty `account_id`, which the caller
/// attaches to the account the request names. Fails naming the line and column on any unreadable date or
/// amount, and naming the mapping field when the mapping does not fit the file.
pub fn parse_csv(bytes: &[u8], mapping: &CsvMapping) -> Result<Statement, ParseError> {
    let settings = mapping.settings()?;
    let mut warnings = Warnings::default();
    let text = decode(bytes, settings.encoding, &mut warnings);
    let delimiter = settings.delimiter.unwrap_or_else(|| sniff_delimiter(&text));
    let rows = read_rows(&text, delimiter)?;
    let (header, resolved, data_start) = resolve_header(mapping, &settings, &rows, &mut warnings)?;
    let data = rows.get(data_start..).unwrap_or_default();
    let names = ColumnNames(header);
    let decimal = match settings.decimal {
        DecimalSeparator::Auto => detect_decimal(data, &resolved),
        chosen => chosen,
    };
    let date_format = match settings.date_format {
        Some(format) => format,
        None => detect_date_format(data, resolved.date, decimal, &names)?,
    };
    let mut transactions = Vec::with_capacity(data.len());
    for (line, record) in data {
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let date_cell = record.get(resolved.date).unwrap_or("").trim();
        if !date_cell.bytes().any(|b| b.is_ascii_digit()) {
            // Totals and notes below the data ("Transactions Total") carry no date; nothing to guess about.
            warnings.push(format!("line {line}: skipped a row without a date ('{}')", snippet(date_cell)));
            continue;
        }
        transactions.push(transaction(*line, record, &resolved, &names, &date_format, decimal)?);
    }
    let account = StatementAccount {
        institution: None,
        account_id: String::new(),
        account_type: AccountType::Other,
        currency: Currency::USD,
        balance: None,
        available_balance: None,
        transactions,
        positions: Vec::new(),
    };
    Ok(Statement { accounts: vec![account], warnings: warnings.finish() })
}

/// The header cells, for naming columns in messages.
struct ColumnNames(Option<csv::StringRecord>);

impl ColumnNames {
    fn element(&self, index: usize) -> String {
        match self.0.as_ref().and_then(|h| h.get(index)).map(str::trim).filter(|h| !h.is_empty()) {
            Some(name) => format!("column \"{}\"", snippet(name)),
            None => format!("column {index}"),
        }
    }

    fn error(&self, line: usize, index: usize, message: impl Into<String>) -> ParseError {
        ParseError::Invalid { line, element: Some(self.element(index)), message: message.into() }
    }
}

/// The separator that occurs most in the first line, outside quotes (`,` when none does).
fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for b in first.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(count) = candidates.iter().position(|&c| c == b).and_then(|i| counts.get_mut(i)) {
            *count += 1;
        }
    }
    let best = counts.iter().enumerate().max_by_key(|&(i, &count)| (count, std::cmp::Reverse(i)));
    match best {
        Some((i, &count)) if count > 0 => candidates.get(i).copied().unwrap_or(b','),
        _ => b',',
    }
}

fn read_rows(text: &str, delimiter: u8) -> Result<Vec<Row>, ParseError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = LineCounter::new(text);
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {
                let line = lines.line_at(record.position().map_or(0, csv::Position::byte));
                rows.push((line, std::mem::take(&mut record)));
            }
            Ok(false) => return Ok(rows),
            Err(error) => {
                let line = lines.line_at(error.position().map_or(0, csv::Position::byte));
                return Err(ParseError::at_line(line, format!("unreadable CSV: {}", snippet(&error.to_string()))));
            }
        }
    }
}

/// Lines from byte offsets. The csv reader's own line count lags by one after a `\r\n` (it counts the `\n`
/// when the next record starts), so lines are counted here from where each record really begins.
struct LineCounter<'t> {
    text: &'t [u8],
    offset: usize,
    line: usize,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        Self { text: text.as_bytes(), offset: 0, line: 1 }
    }

    /// The 1-based line of the record starting at (or just before, on its line terminator) `byte`; offsets
    /// only grow, so counting is linear overall.
    fn line_at(&mut self, byte: u64) -> usize {
        let mut start = usize::try_from(byte).unwrap_or(usize::MAX).min(self.text.len());
        while self.text.get(start).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            start += 1;
        }
        if start >= self.offset {
            let skipped = self.text.get(self.offset..start).unwrap_or_default();
            self.line += memchr::memchr_iter(b'\n', skipped).count();
            self.offset = start;
        }
        self.line
    }
}

/// Finds the header row (skipping a preamble) and resolves every column against it.
fn resolve_header(
    mapping: &CsvMapping,
    settings: &Settings,
    rows: &[Row],
    warnings: &mut Warnings,
) -> Result<(Option<csv::StringRecord>, Resolved, usize), ParseError> {
    if !settings.has_header {
        return Ok((None, resolve(mapping, None)?, 0));
    }
    let candidates = rows.iter().enumerate().filter(|(_, (_, r))| r.iter().any(|c| !c.trim().is_empty()));
    let mut first_error = None;
    for (index, (line, record)) in candidates.take(HEADER_SEARCH_ROWS) {
        match resolve(mapping, Some(record)) {
            Ok(resolved) => {
                if index > 0 {
                    warnings.push(format!("line {line}: header found after {index} preamble rows, which were skipped"));
                }
                return Ok((Some(record.clone()), resolved, index + 1));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ParseError::at_line(1, "the file has no rows")))
}

/// Resolves the mapping's columns against `header`, filling the ones it leaves out from recognised headers.
fn resolve(mapping: &CsvMapping, header: Option<&csv::StringRecord>) -> Result<Resolved, ParseError> {
    let detected = header.and_then(|h| CsvMapping::detect(&h.iter().collect::<Vec<_>>()));
    let explicit_amount = mapping.amount.is_some() || mapping.debit.is_some() || mapping.credit.is_some();
    let lookup = |field: &str,
                  column: &Option<Column>,
                  fallback: Option<&Option<Column>>|
     -> Result<Option<usize>, ParseError> {
        let column = match column {
            Some(column) => column,
            None => match fallback.and_then(Option::as_ref) {
                Some(column) => column,
                None => return Ok(None),
            },
        };
        match column {
            Column::Index(index) => Ok(Some(*index)),
            Column::Name(name) => {
                let wanted = normalise_header(name);
                header
                    .and_then(|h| h.iter().position(|cell| normalise_header(cell) == wanted))
                    .map(Some)
                    .ok_or_else(|| ParseError::mapping(field, format!("no column named {}", quoted(name))))
            }
        }
    };
    let guess = |pick: fn(&CsvMapping) -> &Option<Column>| detected.as_ref().map(pick);
    let date = lookup("date", &mapping.date, guess(|m| &m.date))?
        .ok_or_else(|| ParseError::mapping("date", "no date column given and none recognised in the header"))?;
    // Amount columns come as a set: from the mapping when it names any, else from the header.
    let (amount, debit, credit) = if explicit_amount {
        (
            lookup("amount", &mapping.amount, None)?,
            lookup("debit", &mapping.debit, None)?,
            lookup("credit", &mapping.credit, None)?,
        )
    } else {
        (
            lookup("amount", &None, guess(|m| &m.amount))?,
            lookup("debit", &None, guess(|m| &m.debit))?,
            lookup("credit", &None, guess(|m| &m.credit))?,
        )
    };
    if amount.is_none() && debit.is_none() && credit.is_none() {
        return Err(ParseError::mapping(
            "amount",
            "no amount (or debit/credit) column given and none recognised in the header",
        ));
    }
    Ok(Resolved {
        date,
        amount,
        debit,
        credit,
        description: lookup("description", &mapping.description, guess(|m| &m.description))?,
        payee: lookup("payee", &mapping.payee, guess(|m| &m.payee))?,
        memo: lookup("memo", &mapping.memo, guess(|m| &m.memo))?,
        id: lookup("id", &mapping.id, guess(|m| &m.id))?,
        action: lookup("action", &mapping.action, guess(|m| &m.action))?,
        symbol: lookup("symbol", &mapping.symbol, guess(|m| &m.symbol))?,
        quantity: lookup("quantity", &mapping.quantity, guess(|m| &m.quantity))?,
        price: lookup("price", &mapping.price, guess(|m| &m.price))?,
        fees: lookup("fees", &mapping.fees, guess(|m| &m.fees))?,
    })
}

/// The file's decimal separator, judged from amounts ending in one or two fraction digits; `Auto` (decided
/// amount by amount) when the amounts say nothing or disagree.
fn detect_decimal(rows: &[Row], resolved: &Resolved) -> DecimalSeparator {
    let (mut dot, mut comma) = (false, false);
    let columns = [resolved.amount, resolved.debit, resolved.credit];
    for (_, record) in rows {
        for cell in columns.iter().flatten().filter_map(|&c| record.get(c)) {
            let digits = cell.trim_end_matches(|c: char| !c.is_ascii_digit());
            let fraction = digits.bytes().rev().take_while(u8::is_ascii_digit).count();
            match digits.len().checked_sub(fraction + 1).and_then(|i| digits.as_bytes().get(i)) {
                Some(b'.') if (1..=2).contains(&fraction) => dot = true,
                Some(b',') if (1..=2).contains(&fraction) => comma = true,
                _ => {}
            }
        }
    }
    match (dot, comma) {
        (true, false) => DecimalSeparator::Dot,
        (false, true) => DecimalSeparator::Comma,
        _ => DecimalSeparator::Auto,
    }
}

/// Picks the one date format every dated row fits. When day-first and month-first both fit, a `,` decimal
/// separator (a continental-European file) settles it as day-first; otherwise the mapping must say.
fn detect_date_format(
    rows: &[Row],
    column: usize,
    decimal: DecimalSeparator,
    names: &ColumnNames,
) -> Result<DateFormat, ParseError> {
    let cells: Vec<(usize, &str)> = rows
        .iter()
        .filter_map(|(line, r)| r.get(column).map(|c| (*line, c.trim())))
        .filter(|(_, c)| c.bytes().any(|b| b.is_ascii_digit()))
        .collect();
    let candidates = DateFormat::candidates();
    if cells.is_empty() {
        // No dated rows at all: any format will do.
        return candidates.into_iter().next().ok_or_else(|| ParseError::mapping("date_format", "no formats"));
    }
    let fitting: Vec<&DateFormat> =
        candidates.iter().filter(|f| cells.iter().all(|(_, cell)| f.read(cell).is_some())).collect();
    match fitting.as_slice() {
        [] => {
            // Name the first row the likeliest format rejects.
            let best = candidates
                .iter()
                .max_by_key(|f| cells.iter().filter(|(_, c)| f.read(c).is_some()).count())
                .and_then(|f| cells.iter().find(|(_, c)| f.read(c).is_none()));
            match best {
                Some((line, cell)) => Err(names.error(
                    *line,
                    column,
                    format!("unrecognised date {}; set csv_mapping.date_format", quoted(cell)),
                )),
                None => Err(ParseError::mapping("date_format", "no format fits the dates")),
            }
        }
        [only] => Ok((*only).clone()),
        [first, ..] => {
            if fitting.iter().all(|f| f.year_first()) || !fitting.iter().any(|f| f.day_first()) {
                return Ok((*first).clone());
            }
            if decimal == DecimalSeparator::Comma
                && let Some(day_first) = fitting.iter().find(|f| f.day_first())
            {
                return Ok((*day_first).clone());
            }
            let example = cells.first().map(|(_, c)| quoted(c)).unwrap_or_default();
            Err(ParseError::mapping(
                "date_format",
                format!("dates such as {example} could be day-first or month-first; set date_format"),
            ))
        }
    }
}

fn cell(record: &csv::StringRecord, column: Option<usize>) -> Option<&str> {
    column.and_then(|c| record.get(c)).map(str::trim).filter(|c| !c.is_empty())
}

fn transaction(
    line: usize,
    record: &csv::StringRecord,
    resolved: &Resolved,
    names: &ColumnNames,
    date_format: &DateFormat,
    decimal: DecimalSeparator,
) -> Result<StatementTransaction, ParseError> {
    let date_text = record.get(resolved.date).unwrap_or("").trim();
    let (posted_on, posted_at) = date_format
        .read(date_text)
        .ok_or_else(|| names.error(line, resolved.date, format!("invalid date {}", quoted(date_text))))?;
    let number = |column: Option<usize>| -> Result<Option<Decimal>, ParseError> {
        match (column, cell(record, column)) {
            (Some(index), Some(text)) => {
                parse_amount(text, decimal).map(Some).map_err(|e| names.error(line, index, e.to_string()))
            }
            _ => Ok(None),
        }
    };
    let amount = if let Some(index) = resolved.amount {
        number(Some(index))?.ok_or_else(|| names.error(line, index, "empty amount"))?
    } else {
        let debit = number(resolved.debit)?;
        let credit = number(resolved.credit)?;
        if debit.is_none() && credit.is_none() {
            return Err(ParseError::at_line(line, "no amount in the debit or credit column"));
        }
        credit.map(|c| c.abs()).unwrap_or_default() - debit.map(|d| d.abs()).unwrap_or_default()
    };
    let owned = |column: Option<usize>| cell(record, column).map(str::to_owned);
    let payee = owned(resolved.payee);
    let memo = owned(resolved.memo);
    let description =
        owned(resolved.description).or_else(|| payee.clone()).or_else(|| memo.clone()).unwrap_or_default();
    let action = cell(record, resolved.action);
    let (transaction_type, subtype) = kind(action, amount);
    let quantity = number(resolved.quantity)?.map(|q| match subtype {
        Some(TransactionSubtype::Sell) => -q.abs(),
        Some(TransactionSubtype::Buy) => q.abs(),
        _ => q,
    });
    Ok(StatementTransaction {
        fitid: owned(resolved.id),
        posted_on,
        posted_at,
        amount,
        description,
        payee,
        memo,
        transaction_type,
        subtype,
        symbol: owned(resolved.symbol),
        quantity,
        unit_price: number(resolved.price)?,
        fees: number(resolved.fees)?.map(|f| f.abs()),
        line,
    })
}

/// The kind of a row, from a broker's action text when there is one, else from the amount's sign.
fn kind(action: Option<&str>, amount: Decimal) -> (TransactionType, Option<TransactionSubtype>) {
    use TransactionSubtype as S;
    use TransactionType as T;
    let direction = if amount > Decimal::ZERO { S::Deposit } else { S::Withdrawal };
    let Some(action) = action.map(str::to_lowercase) else {
        return match amount {
            a if a < Decimal::ZERO => (T::Spending, Some(S::Purchase)),
            a if a > Decimal::ZERO => (T::Transfer, Some(S::Deposit)),
            _ => (T::Adjustment, None),
        };
    };
    let has = |word: &str| action.contains(word);
    if has("buy") || has("bought") || (has("reinvest") && has("share")) {
        (T::Trade, Some(S::Buy))
    } else if has("sell") || has("sold") {
        (T::Trade, Some(S::Sell))
    } else if has("cap gain") || has("capital gain") {
        (T::Income, Some(S::CapitalGain))
    } else if has("div") {
        (T::Income, Some(S::Dividend))
    } else if has("interest") {
        (T::Income, Some(S::Interest))
    } else if has("commission") {
        (T::Fee, Some(S::Commission))
    } else if has("fee") {
        (T::Fee, Some(S::AccountFee))
    } else if ["transfer", "journal", "wire", "moneylink", "deposit", "withdraw", "contribution"].iter().any(|w| has(w))
    {
        (T::Transfer, Some(direction))
    } else {
        (T::Other, None)
    }
}
