//! Financial data (API.md §6): accounts with totals, holdings, transactions (filtered, cursor-paged), balance
//! history and net worth. Every query names the caller, so another user's ids are simply not found (`404`).

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashtam_domain::finance::{AccountType, AssetType, TransactionType};
use dashtam_domain::ledger::{
    Account, AccountFilter, AccountId, BalanceSnapshot, Holding, HoldingFilter, Transaction, TransactionId,
    TransactionQuery,
};
use dashtam_domain::ledger_service::{CurrencyTotals, HoldingTotals, Interval, NetWorthSeries};
use dashtam_domain::money::Decimal;
use dashtam_domain::providers::ProviderId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::macros::{date, format_description};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::datetime::{DateOrTimestamp, Timestamp};
use crate::extract::{PathId, ValidQuery, Validate};
use crate::field_schemas;
use crate::problem::{FieldError, Problem, ProblemDocument};
use crate::state::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(account_holdings))
        .routes(routes!(account_balances))
        .routes(routes!(list_transactions))
        .routes(routes!(get_transaction))
        .routes(routes!(list_holdings))
        .routes(routes!(net_worth))
}

/// Transactions per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 100;
/// The most transactions one page holds.
const MAX_LIMIT: u32 = 500;
/// The longest `q` accepted.
const MAX_SEARCH_CHARS: usize = 200;
/// The net-worth window when `from` is not given.
const DEFAULT_NET_WORTH_DAYS: i64 = 90;
/// The most points a net-worth series may have: ten years by day (seventy by week, three centuries by month).
/// Without a bound one request for `0000-01-01`…`9999-12-31` by day would build a 150 MB answer.
const MAX_NET_WORTH_POINTS: i64 = 3660;

fn date_text(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]")).unwrap_or_default()
}

/// A decimal string as stored (its scale kept), for money, quantities and prices.
fn money(value: Decimal) -> String {
    value.to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Validation helpers

fn parse_uuid(field: &'static str, text: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    let text = text?;
    Uuid::parse_str(text).map_err(|_| errors.push(FieldError::new(field, "invalid_uuid", "must be a UUID"))).ok()
}

fn parse_choice<T>(
    field: &'static str,
    text: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    choices: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let text = text?;
    parse(text)
        .ok_or_else(|| errors.push(FieldError::new(field, "invalid_choice", format!("must be one of: {choices}"))))
        .ok()
}

fn choices<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> String {
    all.iter().map(|value| name(*value)).collect::<Vec<_>>().join(", ")
}

fn parse_decimal(field: &'static str, text: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    let text = text?.trim();
    is_plain_decimal(text).then(|| Decimal::from_str(text).ok()).flatten().or_else(|| {
        errors.push(FieldError::new(field, "invalid_decimal", "must be a decimal number such as -12.50"));
        None
    })
}

/// An optional sign, 1–16 digits, and optionally a point and 1–12 digits: what the OpenAPI document says
/// (`field_schemas::decimal`), and always within `Decimal`'s range. `Decimal::from_str` alone would also take
/// `1_000`, `.5` or 29-digit numbers, which no document could describe exactly.
fn is_plain_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (whole, fraction) =
        unsigned.split_once('.').map_or((unsigned, None), |(whole, fraction)| (whole, Some(fraction)));
    let digits =
        |part: &str, max: usize| (1..=max).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_digit());
    digits(whole, 16) && fraction.is_none_or(|fraction| digits(fraction, 12))
}

/// The first instant a `from` bound admits.
fn start_instant(bound: DateOrTimestamp) -> OffsetDateTime {
    match bound {
        DateOrTimestamp::Date(date) => date.midnight().assume_utc(),
        DateOrTimestamp::Timestamp(instant) => instant,
    }
}

/// The last instant a `to` bound admits (a date includes its whole day).
fn end_instant(bound: DateOrTimestamp) -> OffsetDateTime {
    match bound {
        // The day's last microsecond, written out: "next midnight minus one" overflows on 9999-12-31.
        DateOrTimestamp::Date(date) => date.with_time(time::macros::time!(23:59:59.999_999)).assume_utc(),
        DateOrTimestamp::Timestamp(instant) => instant,
    }
}

/// The calendar day (UTC) a bound names.
fn bound_date(bound: DateOrTimestamp) -> Date {
    match bound {
        DateOrTimestamp::Date(date) => date,
        DateOrTimestamp::Timestamp(instant) => instant.date(),
    }
}

fn check_range(from: Option<DateOrTimestamp>, to: Option<DateOrTimestamp>, errors: &mut Vec<FieldError>) {
    if let (Some(from), Some(to)) = (from, to)
        && start_instant(from) > end_instant(to)
    {
        errors.push(FieldError::new("from", "invalid_range", "must not be after `to`"));
    }
}

fn finish(errors: Vec<FieldError>) -> Result<(), Vec<FieldError>> {
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

// ---------------------------------------------------------------------------------------------------------
// Cursor

/// Separates this checksum from any other SHA-256 use.
const CURSOR_DOMAIN: &[u8] = b"dashtam/transactions-cursor/v1\0";

/// Bytes of SHA-256 kept as the cursor's checksum.
const CURSOR_CHECKSUM: usize = 8;

/// The opaque cursor for "after (posted_on, id)": base64url of `YYYY-MM-DD ‖ id (16 bytes) ‖ checksum`. The
/// checksum catches edited or truncated cursors; it is not a secret, and needs not be one: every page is read
/// with the caller's id, so a forged position only shows the caller's own rows.
pub(crate) fn encode_cursor(posted_on: Date, id: TransactionId) -> String {
    let mut payload = date_text(posted_on).into_bytes();
    payload.extend_from_slice(id.as_uuid().as_bytes());
    let checksum = cursor_checksum(&payload);
    payload.extend_from_slice(&checksum);
    URL_SAFE_NO_PAD.encode(payload)
}

/// The position a cursor names, `None` when it does not decode or its checksum does not match.
pub(crate) fn decode_cursor(cursor: &str) -> Option<(Date, TransactionId)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    if bytes.len() != 10 + 16 + CURSOR_CHECKSUM {
        return None;
    }
    let (payload, checksum) = bytes.split_at(10 + 16);
    if cursor_checksum(payload).as_slice() != checksum {
        return None;
    }
    let date =
        Date::parse(std::str::from_utf8(&payload[..10]).ok()?, format_description!("[year]-[month]-[day]")).ok()?;
    let id = Uuid::from_slice(&payload[10..]).ok()?;
    Some((date, TransactionId::from_uuid(id)))
}

fn cursor_checksum(payload: &[u8]) -> [u8; CURSOR_CHECKSUM] {
    let digest = Sha256::new().chain_update(CURSOR_DOMAIN).chain_update(payload).finalize();
    let mut checksum = [0; CURSOR_CHECKSUM];
    checksum.copy_from_slice(&digest[..CURSOR_CHECKSUM]);
    checksum
}

fn invalid_cursor() -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid_cursor", "Invalid cursor")
        .with_detail("The cursor is not one this server issued; start again without it.")
}

// ---------------------------------------------------------------------------------------------------------
// Shapes

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountResponse {
    /// Its id.
    id: Uuid,
    /// The connection it came from.
    provider_id: Uuid,
    /// A name for people.
    name: String,
    /// `brokerage`, `ira`, `roth_ira`, `checking`, `credit_card`, `loan`, … or `other`.
    account_type: &'static str,
    /// The last characters of its number, masked.
    account_number_masked: Option<String>,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    currency: String,
    /// Signed from the owner's side: a card owing 500 is `"-500.00"`.
    #[schema(example = "1234.56")]
    balance: String,
    /// Money available, when known.
    #[schema(example = "1000.00")]
    available_balance: Option<String>,
    /// Whether the provider still reports it.
    is_active: bool,
    /// When a sync last updated it.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_synced_at: Option<Timestamp>,
}

impl From<Account> for AccountResponse {
    fn from(account: Account) -> Self {
        Self {
            id: account.id.as_uuid(),
            provider_id: account.provider_id.as_uuid(),
            name: account.name,
            account_type: account.account_type.as_str(),
            account_number_masked: account.number_masked,
            currency: account.currency.to_string(),
            balance: money(account.balance),
            available_balance: account.available_balance.map(money),
            is_active: account.is_active,
            last_synced_at: account.last_synced_at.map(Timestamp),
        }
    }
}

/// Assets, liabilities and net worth in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyTotalsResponse {
    /// ISO 4217 code.
    currency: String,
    /// Sum of the balances of asset accounts.
    #[schema(example = "3500.50")]
    assets: String,
    /// The positive amount owed on credit and loan accounts.
    #[schema(example = "500.00")]
    liabilities: String,
    /// Assets − liabilities.
    #[schema(example = "3000.50")]
    net: String,
}

impl From<CurrencyTotals> for CurrencyTotalsResponse {
    fn from(totals: CurrencyTotals) -> Self {
        Self {
            currency: totals.currency.to_string(),
            assets: money(totals.assets),
            liabilities: money(totals.liabilities),
            net: money(totals.net),
        }
    }
}

/// The caller's accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountListResponse {
    /// Oldest first.
    items: Vec<AccountResponse>,
    /// One entry per currency of the listed accounts.
    totals_by_currency: Vec<CurrencyTotalsResponse>,
}

/// A position.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldingResponse {
    /// Its id.
    id: Uuid,
    /// The account holding it.
    account_id: Uuid,
    /// Ticker or identifier.
    symbol: String,
    /// The security's name.
    name: Option<String>,
    /// `equity`, `etf`, `mutual_fund`, `fixed_income`, `option`, `cash_equivalent`, `crypto` or `other`.
    asset_type: &'static str,
    /// Units held.
    #[schema(example = "10.5")]
    quantity: String,
    /// Average cost per unit, when known.
    average_cost: Option<String>,
    /// Quantity × average cost, when the cost is known.
    cost_basis: Option<String>,
    /// Latest price per unit, when known.
    price: Option<String>,
    /// Market value.
    market_value: String,
    /// ISO 4217 code of the amounts.
    currency: String,
    /// Market value − cost basis.
    unrealized_gain: Option<String>,
    /// The gain as a percentage of the cost basis.
    unrealized_gain_pct: Option<String>,
    /// When the values were reported.
    #[schema(value_type = String, format = DateTime)]
    as_of: Timestamp,
}

impl From<Holding> for HoldingResponse {
    fn from(holding: Holding) -> Self {
        Self {
            id: holding.id.as_uuid(),
            account_id: holding.account_id.as_uuid(),
            cost_basis: holding.cost_basis().map(money),
            unrealized_gain: holding.unrealized_gain().map(money),
            unrealized_gain_pct: holding.unrealized_gain_pct().map(money),
            symbol: holding.symbol,
            name: holding.name,
            asset_type: holding.asset_type.as_str(),
            quantity: money(holding.quantity),
            average_cost: holding.average_cost.map(money),
            price: holding.price.map(money),
            market_value: money(holding.market_value),
            currency: holding.currency.to_string(),
            as_of: Timestamp(holding.as_of),
        }
    }
}

/// An account's open positions.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountHoldingsResponse {
    /// By symbol.
    items: Vec<HoldingResponse>,
}

/// The value of holdings in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldingTotalsResponse {
    /// ISO 4217 code.
    currency: String,
    /// Sum of market values.
    market_value: String,
    /// Sum of the known cost bases.
    cost_basis: String,
    /// Market value − cost basis over the holdings whose cost is known.
    unrealized_gain: String,
}

impl From<HoldingTotals> for HoldingTotalsResponse {
    fn from(totals: HoldingTotals) -> Self {
        Self {
            currency: totals.currency.to_string(),
            market_value: money(totals.market_value),
            cost_basis: money(totals.cost_basis),
            unrealized_gain: money(totals.unrealized_gain),
        }
    }
}

/// The caller's open positions.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldingListResponse {
    /// By symbol.
    items: Vec<HoldingResponse>,
    /// One entry per currency.
    totals_by_currency: Vec<HoldingTotalsResponse>,
}

/// A balance at a moment.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceResponse {
    /// When.
    #[schema(value_type = String, format = DateTime)]
    as_of: Timestamp,
    /// Signed balance.
    balance: String,
    /// Available balance, when known.
    available_balance: Option<String>,
    /// ISO 4217 code.
    currency: String,
    /// `sync` or `import`.
    source: &'static str,
}

impl From<BalanceSnapshot> for BalanceResponse {
    fn from(snapshot: BalanceSnapshot) -> Self {
        Self {
            as_of: Timestamp(snapshot.as_of),
            balance: money(snapshot.balance),
            available_balance: snapshot.available_balance.map(money),
            currency: snapshot.currency.to_string(),
            source: snapshot.source.as_str(),
        }
    }
}

/// An account's balance history.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceListResponse {
    /// Oldest first.
    items: Vec<BalanceResponse>,
}

/// A transaction.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionResponse {
    /// Its id.
    id: Uuid,
    /// Its account.
    account_id: Uuid,
    /// The provider's id (or the import's fingerprint).
    provider_transaction_id: String,
    /// The posting date.
    #[schema(value_type = String, format = Date, example = "2025-10-03")]
    posted_on: String,
    /// The moment, or `null` when the source has only a date.
    #[schema(value_type = Option<String>, format = DateTime)]
    posted_at: Option<Timestamp>,
    /// Signed: money in is positive.
    #[schema(example = "-42.10")]
    amount: String,
    /// ISO 4217 code.
    currency: String,
    /// Description.
    description: String,
    /// Payee.
    payee: Option<String>,
    /// Memo.
    memo: Option<String>,
    /// `trade`, `income`, `transfer`, `fee`, `spending`, `adjustment` or `other`.
    transaction_type: &'static str,
    /// Finer kind (`buy`, `dividend`, `purchase`, …).
    subtype: Option<&'static str>,
    /// `pending` or `posted`.
    status: &'static str,
    /// Security, for trades and income.
    symbol: Option<String>,
    /// Units, for trades.
    quantity: Option<String>,
    /// Price per unit, for trades.
    unit_price: Option<String>,
    /// Fees, for trades.
    fees: Option<String>,
}

impl From<Transaction> for TransactionResponse {
    fn from(transaction: Transaction) -> Self {
        Self {
            id: transaction.id.as_uuid(),
            account_id: transaction.account_id.as_uuid(),
            provider_transaction_id: transaction.provider_transaction_id,
            posted_on: date_text(transaction.posted_on),
            posted_at: transaction.posted_at.map(Timestamp),
            amount: money(transaction.amount),
            currency: transaction.currency.to_string(),
            description: transaction.description,
            payee: transaction.payee,
            memo: transaction.memo,
            transaction_type: transaction.transaction_type.as_str(),
            subtype: transaction.subtype.map(|subtype| subtype.as_str()),
            status: transaction.status.as_str(),
            symbol: transaction.symbol,
            quantity: transaction.quantity.map(money),
            unit_price: transaction.unit_price.map(money),
            fees: transaction.fees.map(money),
        }
    }
}

/// A page of transactions.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionListResponse {
    /// Newest first (by posting date, then id).
    items: Vec<TransactionResponse>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Current assets, liabilities and net worth.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetWorthCurrentResponse {
    /// Sum of the balances of asset accounts.
    assets: String,
    /// The positive amount owed on credit and loan accounts.
    liabilities: String,
    /// Assets − liabilities.
    net_worth: String,
}

/// A point of the series.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetWorthPointResponse {
    /// The period's last day (or `to`, for the last period).
    #[schema(value_type = String, format = Date, example = "2025-10-03")]
    date: String,
    /// Every account's last known balance at the end of that day, summed.
    net_worth: String,
}

/// Net worth in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetWorthItemResponse {
    /// ISO 4217 code.
    currency: String,
    /// From the accounts' current balances.
    current: NetWorthCurrentResponse,
    /// Oldest first.
    series: Vec<NetWorthPointResponse>,
}

impl From<NetWorthSeries> for NetWorthItemResponse {
    fn from(series: NetWorthSeries) -> Self {
        Self {
            currency: series.currency.to_string(),
            current: NetWorthCurrentResponse {
                assets: money(series.current.assets),
                liabilities: money(series.current.liabilities),
                net_worth: money(series.current.net),
            },
            series: series
                .series
                .into_iter()
                .map(|point| NetWorthPointResponse { date: date_text(point.date), net_worth: money(point.net_worth) })
                .collect(),
        }
    }
}

/// Net worth per currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetWorthResponse {
    /// One item per currency, by code.
    items: Vec<NetWorthItemResponse>,
}

// ---------------------------------------------------------------------------------------------------------
// Queries

fn provider_id_schema() -> utoipa::openapi::schema::Object {
    field_schemas::uuid("Only accounts of this connection.")
}

fn account_id_schema() -> utoipa::openapi::schema::Object {
    field_schemas::uuid("Only this account.")
}

fn from_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::date_or_timestamp("Start, inclusive: a date (the whole day, UTC) or a timestamp with an offset.")
}

fn to_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::date_or_timestamp("End, inclusive: a date (the whole day, UTC) or a timestamp with an offset.")
}

fn net_worth_from_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::date_or_timestamp("First day (default: 90 days before `to`); a timestamp stands for its UTC date.")
}

fn net_worth_to_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    field_schemas::date_or_timestamp("Last day (default: today, UTC); a timestamp stands for its UTC date.")
}

fn min_amount_schema() -> utoipa::openapi::schema::Object {
    field_schemas::decimal("Amount at least (signed decimal).")
}

fn max_amount_schema() -> utoipa::openapi::schema::Object {
    field_schemas::decimal("Amount at most (signed decimal).")
}

/// `GET /accounts` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountsQuery {
    /// Only accounts of this connection.
    #[param(schema_with = provider_id_schema)]
    provider_id: Option<String>,
    /// Only this kind (`brokerage`, `checking`, `credit_card`, …).
    #[param(schema_with = field_schemas::account_type)]
    account_type: Option<String>,
}

impl AccountsQuery {
    fn filter(&self, errors: &mut Vec<FieldError>) -> AccountFilter {
        AccountFilter {
            provider_id: parse_uuid("provider_id", self.provider_id.as_deref(), errors).map(ProviderId::from_uuid),
            account_type: parse_choice(
                "account_type",
                self.account_type.as_deref(),
                AccountType::parse,
                &choices(AccountType::ALL, AccountType::as_str),
                errors,
            ),
        }
    }
}

impl Validate for AccountsQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.filter(&mut errors);
        finish(errors)
    }
}

/// A `from`/`to` window; each is a date (whole day, inclusive) or an RFC 3339 timestamp with an offset.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start, inclusive.
    #[param(schema_with = from_schema)]
    from: Option<DateOrTimestamp>,
    /// End, inclusive.
    #[param(schema_with = to_schema)]
    to: Option<DateOrTimestamp>,
}

impl Validate for RangeQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        check_range(self.from, self.to, &mut errors);
        finish(errors)
    }
}

/// `GET /transactions` filters and paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransactionsQuery {
    /// Only this account.
    #[param(schema_with = account_id_schema)]
    account_id: Option<String>,
    /// Posted on or after (a date, or a timestamp with an offset: its UTC date).
    #[param(schema_with = from_schema)]
    from: Option<DateOrTimestamp>,
    /// Posted on or before (inclusive).
    #[param(schema_with = to_schema)]
    to: Option<DateOrTimestamp>,
    /// Only this kind (`trade`, `income`, `transfer`, `fee`, `spending`, `adjustment`, `other`).
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = field_schemas::transaction_type)]
    transaction_type: Option<String>,
    /// Amount at least (signed decimal).
    #[param(schema_with = min_amount_schema)]
    min_amount: Option<String>,
    /// Amount at most (signed decimal).
    #[param(schema_with = max_amount_schema)]
    max_amount: Option<String>,
    /// Text in the description or payee, case-insensitive (up to 200 characters).
    #[param(max_length = 200)]
    q: Option<String>,
    /// Rows per page, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

impl TransactionsQuery {
    fn query(&self, user_id: dashtam_domain::UserId, errors: &mut Vec<FieldError>) -> TransactionQuery {
        check_range(self.from, self.to, errors);
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new("limit", "out_of_range", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let text = self.q.as_deref().map(str::trim).filter(|text| !text.is_empty());
        if text.is_some_and(|text| text.chars().count() > MAX_SEARCH_CHARS) {
            errors.push(FieldError::new("q", "too_long", format!("must be at most {MAX_SEARCH_CHARS} characters")));
        }
        let min_amount = parse_decimal("min_amount", self.min_amount.as_deref(), errors);
        let max_amount = parse_decimal("max_amount", self.max_amount.as_deref(), errors);
        if let (Some(min), Some(max)) = (min_amount, max_amount)
            && min > max
        {
            errors.push(FieldError::new("min_amount", "invalid_range", "must not be more than `max_amount`"));
        }
        TransactionQuery {
            user_id,
            account_id: parse_uuid("account_id", self.account_id.as_deref(), errors).map(AccountId::from_uuid),
            from: self.from.map(bound_date),
            to: self.to.map(bound_date),
            transaction_type: parse_choice(
                "type",
                self.transaction_type.as_deref(),
                TransactionType::parse,
                &choices(TransactionType::ALL, TransactionType::as_str),
                errors,
            ),
            min_amount,
            max_amount,
            text: text.map(str::to_owned),
            after: None,
            limit,
        }
    }
}

impl Validate for TransactionsQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.query(dashtam_domain::UserId::from_uuid(Uuid::nil()), &mut errors);
        finish(errors)
    }
}

/// `GET /holdings` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldingsQuery {
    /// Only this account.
    #[param(schema_with = account_id_schema)]
    account_id: Option<String>,
    /// Only this kind (`equity`, `etf`, `mutual_fund`, …).
    #[param(schema_with = field_schemas::asset_type)]
    asset_type: Option<String>,
}

impl HoldingsQuery {
    fn filter(&self, errors: &mut Vec<FieldError>) -> HoldingFilter {
        HoldingFilter {
            account_id: parse_uuid("account_id", self.account_id.as_deref(), errors).map(AccountId::from_uuid),
            asset_type: parse_choice(
                "asset_type",
                self.asset_type.as_deref(),
                AssetType::parse,
                &choices(AssetType::ALL, AssetType::as_str),
                errors,
            ),
        }
    }
}

impl Validate for HoldingsQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        self.filter(&mut errors);
        finish(errors)
    }
}

/// `GET /net-worth` window and spacing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NetWorthQuery {
    /// First day (default: 90 days before `to`).
    #[param(schema_with = net_worth_from_schema)]
    from: Option<DateOrTimestamp>,
    /// Last day (default: today, UTC).
    #[param(schema_with = net_worth_to_schema)]
    to: Option<DateOrTimestamp>,
    /// `day` (default), `week` (points on Sundays) or `month` (points on month ends); the last point is `to`. A
    /// series has at most 3660 points (ten years by day): a longer window is `422 invalid_range`.
    #[param(schema_with = field_schemas::interval)]
    interval: Option<String>,
}

impl NetWorthQuery {
    fn interval(&self, errors: &mut Vec<FieldError>) -> Interval {
        parse_choice("interval", self.interval.as_deref(), Interval::parse, "day, week, month", errors)
            .unwrap_or(Interval::Day)
    }
}

impl Validate for NetWorthQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if let (Some(from), Some(to)) = (self.from, self.to)
            && bound_date(from) > bound_date(to)
        {
            errors.push(FieldError::new("from", "invalid_range", "must not be after `to`"));
        }
        self.interval(&mut errors);
        finish(errors)
    }
}

/// An upper bound of the points a series from `from` to `to` has (each period's end, and `to`).
fn most_points(from: Date, to: Date, interval: Interval) -> i64 {
    let days = (to - from).whole_days();
    match interval {
        Interval::Day => days + 1,
        Interval::Week => days / 7 + 2,
        Interval::Month => {
            i64::from(to.year() - from.year()) * 12 + i64::from(u8::from(to.month()))
                - i64::from(u8::from(from.month()))
                + 1
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Handlers

/// Validation already passed in the extractor; this re-derives the typed values.
fn validated<T>(build: impl FnOnce(&mut Vec<FieldError>) -> T) -> Result<T, Problem> {
    let mut errors = Vec::new();
    let value = build(&mut errors);
    if errors.is_empty() { Ok(value) } else { Err(Problem::validation(errors)) }
}

/// The caller's accounts, with totals per currency.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "ledger", params(AccountsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AccountListResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_uuid, invalid_choice", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_accounts(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidQuery(query): ValidQuery<AccountsQuery>,
) -> Result<Json<AccountListResponse>, Problem> {
    let filter = validated(|errors| query.filter(errors))?;
    let (accounts, totals) = state.ledger.accounts(principal.user_id, &filter).await?;
    Ok(Json(AccountListResponse {
        items: accounts.into_iter().map(AccountResponse::from).collect(),
        totals_by_currency: totals.into_iter().map(CurrencyTotalsResponse::from).collect(),
    }))
}

/// One of the caller's accounts.
#[utoipa::path(get, path = "/api/v1/accounts/{id}", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id")), security(("bearer" = [])),
    responses(
        (status = 200, body = AccountResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such account of the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "the id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_account(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<AccountResponse>, Problem> {
    let account = state.ledger.account(principal.user_id, AccountId::from_uuid(id)).await?;
    account.map(|account| Json(account.into())).ok_or_else(Problem::not_found)
}

/// The open positions of one of the caller's accounts.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/holdings", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id")), security(("bearer" = [])),
    responses(
        (status = 200, body = AccountHoldingsResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such account of the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "the id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn account_holdings(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<AccountHoldingsResponse>, Problem> {
    let holdings = state.ledger.account_holdings(principal.user_id, AccountId::from_uuid(id)).await?;
    let holdings = holdings.ok_or_else(Problem::not_found)?;
    Ok(Json(AccountHoldingsResponse { items: holdings.into_iter().map(HoldingResponse::from).collect() }))
}

/// The balance history of one of the caller's accounts.
#[utoipa::path(get, path = "/api/v1/accounts/{id}/balances", tag = "ledger",
    params(("id" = Uuid, Path, description = "Account id"), RangeQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = BalanceListResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such account of the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_range, naive_datetime, invalid_datetime, invalid_uuid", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn account_balances(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
    ValidQuery(query): ValidQuery<RangeQuery>,
) -> Result<Json<BalanceListResponse>, Problem> {
    let from = query.from.map(start_instant);
    let to = query.to.map(end_instant);
    let snapshots = state.ledger.balances(principal.user_id, AccountId::from_uuid(id), from, to).await?;
    let snapshots = snapshots.ok_or_else(Problem::not_found)?;
    Ok(Json(BalanceListResponse { items: snapshots.into_iter().map(BalanceResponse::from).collect() }))
}

/// The caller's transactions, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/transactions", tag = "ledger", params(TransactionsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TransactionListResponse),
        (status = 400, description = "invalid_cursor", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_range, naive_datetime, invalid_choice, out_of_range, invalid_decimal, invalid_uuid", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_transactions(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidQuery(query): ValidQuery<TransactionsQuery>,
) -> Result<Json<TransactionListResponse>, Problem> {
    let mut transaction_query = validated(|errors| query.query(principal.user_id, errors))?;
    if let Some(cursor) = query.cursor.as_deref() {
        transaction_query.after = Some(decode_cursor(cursor).ok_or_else(invalid_cursor)?);
    }
    let page = state.ledger.transactions(&transaction_query).await?;
    Ok(Json(TransactionListResponse {
        items: page.items.into_iter().map(TransactionResponse::from).collect(),
        next_cursor: page.next.map(|(posted_on, id)| encode_cursor(posted_on, id)),
    }))
}

/// One of the caller's transactions.
#[utoipa::path(get, path = "/api/v1/transactions/{id}", tag = "ledger",
    params(("id" = Uuid, Path, description = "Transaction id")), security(("bearer" = [])),
    responses(
        (status = 200, body = TransactionResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such transaction of the caller", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "the id is not a UUID", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_transaction(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    PathId(id): PathId,
) -> Result<Json<TransactionResponse>, Problem> {
    let transaction = state.ledger.transaction(principal.user_id, TransactionId::from_uuid(id)).await?;
    transaction.map(|transaction| Json(transaction.into())).ok_or_else(Problem::not_found)
}

/// The caller's open positions across accounts, with totals per currency.
#[utoipa::path(get, path = "/api/v1/holdings", tag = "ledger", params(HoldingsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = HoldingListResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_uuid, invalid_choice", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_holdings(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidQuery(query): ValidQuery<HoldingsQuery>,
) -> Result<Json<HoldingListResponse>, Problem> {
    let filter = validated(|errors| query.filter(errors))?;
    let (holdings, totals) = state.ledger.holdings(principal.user_id, &filter).await?;
    Ok(Json(HoldingListResponse {
        items: holdings.into_iter().map(HoldingResponse::from).collect(),
        totals_by_currency: totals.into_iter().map(HoldingTotalsResponse::from).collect(),
    }))
}

/// The caller's net worth per currency: current totals and a series reconstructed from balance snapshots,
/// each account counted with its last known balance at the end of each period.
#[utoipa::path(get, path = "/api/v1/net-worth", tag = "ledger", params(NetWorthQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = NetWorthResponse),
        (status = 401, body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "invalid_range (also: more than 3660 points), naive_datetime, invalid_choice", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub(crate) async fn net_worth(
    State(state): State<AppState>,
    AuthUser { principal, .. }: AuthUser,
    ValidQuery(query): ValidQuery<NetWorthQuery>,
) -> Result<Json<NetWorthResponse>, Problem> {
    let interval = validated(|errors| query.interval(errors))?;
    let to = query.to.map_or_else(|| state.ledger.today(), bound_date);
    // The default window stops at the first day the API can write (year 0000), as an explicit `from` does.
    let default_from = || (to - Duration::days(DEFAULT_NET_WORTH_DAYS)).max(date!(0000 - 01 - 01));
    let from = query.from.map_or_else(default_from, bound_date);
    if most_points(from, to, interval) > MAX_NET_WORTH_POINTS {
        let message = format!(
            "the series would have more than {MAX_NET_WORTH_POINTS} points; narrow `from`…`to` or use a longer interval"
        );
        return Err(Problem::validation(vec![FieldError::new("from", "invalid_range", message)]));
    }
    let series = state.ledger.net_worth(principal.user_id, from, to, interval).await?;
    Ok(Json(NetWorthResponse { items: series.into_iter().map(NetWorthItemResponse::from).collect() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimals() {
        for good in ["0", "-12.50", "+3", "1234567890123456.123456789012"] {
            assert!(is_plain_decimal(good), "{good}");
        }
        for bad in ["", "-", "1_000", ".5", "5.", "1e3", "12345678901234567", "1.1234567890123", "1.2.3", "--1"] {
            assert!(!is_plain_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let id = TransactionId::generate();
        let cursor = encode_cursor(date!(2026 - 03 - 01), id);
        assert_eq!(decode_cursor(&cursor), Some((date!(2026 - 03 - 01), id)));
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).expect("base64");
        bytes[3] ^= 1;
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(&bytes)), None);
        for bad in ["", "abc", "!!!!", &cursor[1..], &format!("{cursor}A")] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
