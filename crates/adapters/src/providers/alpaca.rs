//! Alpaca: API-key authentication (`APCA-API-KEY-ID` / `APCA-API-SECRET-KEY`), the trading account with its
//! positions, and the account activities as transactions. Alpaca writes all money as decimal strings.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use dashtam_domain::connector::{ApiKeyCredentials, Connector, ConnectorError, DateRange, ProviderAuth};
use dashtam_domain::finance::{
    AccountType, AssetType, ProviderAccount, ProviderPosition, ProviderTransaction, TransactionStatus,
    TransactionSubtype, TransactionType,
};
use dashtam_domain::money::{Currency, Decimal};
use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::{Date, OffsetDateTime, UtcOffset};
use url::Url;

use super::decode::{self, decimal, optional_decimal};
use super::http::{DATA_BODY_LIMIT, HttpTimeouts, ProviderHttp, ProviderSetupError};
use super::schwab::mask;

/// Activities per page; a shorter page is the last.
pub const ACTIVITIES_PAGE_SIZE: usize = 100;
/// A bound on pages for one range, so a provider that keeps answering full pages cannot keep us forever.
const MAX_ACTIVITY_PAGES: usize = 10_000;

/// How to reach Alpaca.
#[derive(Debug, Clone)]
pub struct AlpacaSettings {
    /// `https://api.alpaca.markets` (live) or `https://paper-api.alpaca.markets` (paper trading).
    pub base_url: Url,
}

/// The Alpaca connector. Cheap to share: one HTTP client inside.
pub struct AlpacaConnector {
    base_url: Url,
    http: ProviderHttp,
}

impl fmt::Debug for AlpacaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlpacaConnector").field("base_url", &self.base_url.as_str()).finish_non_exhaustive()
    }
}

impl AlpacaConnector {
    /// Builds the connector and its HTTP client.
    pub fn new(settings: AlpacaSettings, timeouts: &HttpTimeouts) -> Result<Self, ProviderSetupError> {
        let base_url = settings.base_url;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() || base_url.host().is_none() {
            return Err(ProviderSetupError::BaseUrl(format!("{base_url} is not an absolute http(s) URL")));
        }
        Ok(Self { base_url, http: ProviderHttp::new(timeouts)? })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, url: &Url, credentials: &ApiKeyCredentials) -> RequestBuilder {
        // Marked sensitive so no debug output of the request ever shows them.
        let secret_header = |value: &SecretString| {
            let mut value = HeaderValue::from_str(value.expose_secret())
                .unwrap_or_else(|_| HeaderValue::from_static("invalid-credential"));
            value.set_sensitive(true);
            value
        };
        self.http
            .client()
            .get(url.clone())
            .header("APCA-API-KEY-ID", secret_header(&credentials.api_key))
            .header("APCA-API-SECRET-KEY", secret_header(&credentials.api_secret))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        url: &Url,
        credentials: &ApiKeyCredentials,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let body = self.http.fetch(|| self.request(url, credentials), DATA_BODY_LIMIT).await?;
        decode::json(&body, what)
    }
}

fn api_key(auth: ProviderAuth<'_>) -> Result<&ApiKeyCredentials, ConnectorError> {
    match auth {
        ProviderAuth::ApiKey(credentials) => Ok(credentials),
        ProviderAuth::Bearer(_) => Err(ConnectorError::Unsupported),
    }
}

#[async_trait]
impl Connector for AlpacaConnector {
    async fn verify_api_key(&self, credentials: &ApiKeyCredentials) -> Result<(), ConnectorError> {
        self.get::<Account>(&self.url(&["v2", "account"]), credentials, "account").await.map(|_| ())
    }

    async fn accounts(&self, auth: ProviderAuth<'_>) -> Result<Vec<ProviderAccount>, ConnectorError> {
        let credentials = api_key(auth)?;
        let (account_url, positions_url) = (self.url(&["v2", "account"]), self.url(&["v2", "positions"]));
        let (account, positions) = tokio::join!(
            self.get::<Account>(&account_url, credentials, "account"),
            self.get::<Vec<Position>>(&positions_url, credentials, "positions"),
        );
        let (account, positions) = (account?, positions?);
        let currency = account.currency.as_deref().and_then(|code| Currency::parse(code).ok()).unwrap_or(Currency::USD);
        let masked = mask(account.account_number.as_deref().unwrap_or(&account.id));
        Ok(vec![ProviderAccount {
            provider_account_id: account.id.clone(),
            api_handle: account.id,
            name: format!("Alpaca {masked}"),
            account_type: AccountType::Brokerage,
            number_masked: masked,
            currency,
            balance: account.equity,
            // Cash, not buying power: buying power counts margin, which is borrowing, not the owner's money.
            available_balance: account.cash,
            positions: positions.into_iter().map(|position| map_position(position, currency)).collect(),
        }])
    }

    async fn transactions(
        &self,
        auth: ProviderAuth<'_>,
        _account: &ProviderAccount,
        range: DateRange,
    ) -> Result<Vec<ProviderTransaction>, ConnectorError> {
        let credentials = api_key(auth)?;
        // `after` and `until` are exclusive; asking one day wider on each side and filtering keeps both ends.
        let after = range.start.previous_day().unwrap_or(range.start);
        let until = range.end.next_day().unwrap_or(range.end);
        let mut transactions = Vec::new();
        let mut seen = HashSet::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_ACTIVITY_PAGES {
            let mut url = self.url(&["v2", "account", "activities"]);
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("after", &after.to_string())
                    .append_pair("until", &until.to_string())
                    .append_pair("direction", "desc")
                    .append_pair("page_size", &ACTIVITIES_PAGE_SIZE.to_string());
                if let Some(token) = &page_token {
                    query.append_pair("page_token", token);
                }
            }
            let page: Vec<Activity> = self.get(&url, credentials, "activities").await?;
            let full = page.len() >= ACTIVITIES_PAGE_SIZE;
            let last_id = page.last().map(|activity| activity.id.clone());
            for (index, activity) in page.into_iter().enumerate() {
                if !seen.insert(activity.id.clone()) {
                    continue;
                }
                if let Some(transaction) = map_activity(activity, index)?
                    && (range.start..=range.end).contains(&transaction.posted_on)
                {
                    transactions.push(transaction);
                }
            }
            match last_id {
                // A token that does not move on would ask for the same page again.
                Some(id) if full && page_token.as_deref() != Some(id.as_str()) => page_token = Some(id),
                _ => return Ok(transactions),
            }
        }
        tracing::warn!("Alpaca activities still had pages after {MAX_ACTIVITY_PAGES}; stopping there");
        Ok(transactions)
    }
}

#[derive(Deserialize)]
struct Account {
    id: String,
    #[serde(default)]
    account_number: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default, deserialize_with = "optional_decimal")]
    cash: Option<Decimal>,
    #[serde(deserialize_with = "decimal")]
    equity: Decimal,
}

#[derive(Deserialize)]
struct Position {
    symbol: String,
    #[serde(default)]
    asset_class: Option<String>,
    #[serde(deserialize_with = "decimal")]
    qty: Decimal,
    #[serde(default, deserialize_with = "optional_decimal")]
    avg_entry_price: Option<Decimal>,
    #[serde(default)]
    side: Option<String>,
    #[serde(deserialize_with = "decimal")]
    market_value: Decimal,
    #[serde(default, deserialize_with = "optional_decimal")]
    current_price: Option<Decimal>,
}

fn map_position(position: Position, currency: Currency) -> ProviderPosition {
    // Alpaca reports a short position with side "short"; its qty is negative already, but be sure.
    let quantity = if position.side.as_deref() == Some("short") { -position.qty.abs() } else { position.qty };
    ProviderPosition {
        symbol: position.symbol,
        name: None,
        asset_type: match position.asset_class.as_deref() {
            Some("us_equity") => AssetType::Equity,
            Some("crypto") => AssetType::Crypto,
            Some("us_option") => AssetType::Option,
            _ => AssetType::Other,
        },
        quantity,
        average_cost: position.avg_entry_price,
        price: position.current_price,
        market_value: position.market_value,
        currency,
    }
}

#[derive(Deserialize)]
struct Activity {
    id: String,
    activity_type: String,
    // Trades (FILL).
    #[serde(default)]
    transaction_time: Option<String>,
    #[serde(default)]
    side: Option<String>,
    #[serde(default, deserialize_with = "optional_decimal")]
    price: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    qty: Option<Decimal>,
    // Other activities.
    #[serde(default)]
    date: Option<String>,
    #[serde(default, deserialize_with = "optional_decimal")]
    net_amount: Option<Decimal>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

fn invalid(index: usize, field: &str, problem: &str) -> ConnectorError {
    ConnectorError::InvalidResponse(format!("activities: [{index}].{field}: {problem}"))
}

/// One activity in our terms; `None` for a canceled one.
fn map_activity(activity: Activity, index: usize) -> Result<Option<ProviderTransaction>, ConnectorError> {
    let status = match activity.status.as_deref() {
        Some("canceled") => return Ok(None),
        Some("pending") => TransactionStatus::Pending,
        _ => TransactionStatus::Posted,
    };
    if activity.activity_type == "FILL" {
        return map_fill(activity, index, status).map(Some);
    }
    let date_text = activity.date.as_deref().ok_or_else(|| invalid(index, "date", "missing"))?;
    let posted_on = parse_date(date_text).ok_or_else(|| invalid(index, "date", "not a date"))?;
    let amount = activity.net_amount.ok_or_else(|| invalid(index, "net_amount", "missing"))?;
    let kind = activity.activity_type.as_str();
    let (transaction_type, subtype) = match kind {
        _ if kind.starts_with("DIV") => (TransactionType::Income, Some(TransactionSubtype::Dividend)),
        _ if kind.starts_with("INT") => (TransactionType::Income, Some(TransactionSubtype::Interest)),
        "CSD" => (TransactionType::Transfer, Some(TransactionSubtype::Deposit)),
        "CSW" => (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal)),
        "FEE" => (TransactionType::Fee, Some(TransactionSubtype::AccountFee)),
        "CFEE" => (TransactionType::Fee, Some(TransactionSubtype::Commission)),
        "PTC" => (TransactionType::Fee, Some(TransactionSubtype::RegulatoryFee)),
        "JNLC" if amount >= Decimal::ZERO => (TransactionType::Transfer, Some(TransactionSubtype::Deposit)),
        "JNLC" => (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal)),
        "JNLS" => (TransactionType::Transfer, Some(TransactionSubtype::SecurityTransfer)),
        _ => (TransactionType::Other, None),
    };
    let security_transfer = subtype == Some(TransactionSubtype::SecurityTransfer);
    Ok(Some(ProviderTransaction {
        provider_transaction_id: activity.id,
        pending_transaction_id: None,
        posted_on,
        posted_at: None,
        amount,
        currency: Currency::USD,
        description: activity.description.filter(|text| !text.is_empty()).unwrap_or(activity.activity_type),
        payee: None,
        memo: None,
        transaction_type,
        subtype,
        status,
        symbol: activity.symbol.filter(|symbol| !symbol.is_empty()),
        quantity: if security_transfer { activity.qty } else { None },
        unit_price: None,
        fees: None,
    }))
}

fn map_fill(
    activity: Activity,
    index: usize,
    status: TransactionStatus,
) -> Result<ProviderTransaction, ConnectorError> {
    let time_text =
        activity.transaction_time.as_deref().ok_or_else(|| invalid(index, "transaction_time", "missing"))?;
    let time = OffsetDateTime::parse(time_text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid(index, "transaction_time", "not a timestamp"))?;
    let qty = activity.qty.ok_or_else(|| invalid(index, "qty", "missing"))?.abs();
    let price = activity.price.ok_or_else(|| invalid(index, "price", "missing"))?;
    let bought = match activity.side.as_deref() {
        Some("buy") => true,
        Some("sell" | "sell_short") => false,
        _ => return Err(invalid(index, "side", "neither buy nor sell")),
    };
    let gross = qty.checked_mul(price).ok_or_else(|| invalid(index, "qty", "qty × price out of range"))?;
    let symbol = activity.symbol.filter(|symbol| !symbol.is_empty());
    let verb = if bought { "Bought" } else { "Sold" };
    Ok(ProviderTransaction {
        provider_transaction_id: activity.id,
        pending_transaction_id: None,
        posted_on: time.to_offset(UtcOffset::UTC).date(),
        posted_at: Some(time),
        amount: if bought { -gross } else { gross },
        currency: Currency::USD,
        description: format!("{verb} {qty} {} @ {price}", symbol.as_deref().unwrap_or("?")),
        payee: None,
        memo: None,
        transaction_type: TransactionType::Trade,
        subtype: Some(if bought { TransactionSubtype::Buy } else { TransactionSubtype::Sell }),
        status,
        symbol,
        quantity: Some(if bought { qty } else { -qty }),
        unit_price: Some(price),
        fees: None,
    })
}

/// `YYYY-MM-DD`, or the date part of an RFC 3339 timestamp (some activity kinds carry one).
fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.get(..10)?, format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(json: &str) -> Activity {
        serde_json::from_str(json).expect("activity")
    }

    #[test]
    fn fills_are_signed_trades() {
        let fill = activity(
            r#"{"id":"1::a","activity_type":"FILL","transaction_time":"2025-03-28T14:30:01.123Z","type":"fill",
                "price":"150.25","qty":"10","side":"sell","symbol":"AAPL","order_id":"x"}"#,
        );
        let transaction = map_activity(fill, 0).expect("maps").expect("kept");
        assert_eq!(transaction.amount.to_string(), "1502.50");
        assert_eq!(transaction.quantity.map(|q| q.to_string()).as_deref(), Some("-10"));
        assert_eq!(transaction.subtype, Some(TransactionSubtype::Sell));
        assert_eq!(transaction.posted_on, time::macros::date!(2025 - 03 - 28));
    }

    #[test]
    fn non_trade_activities_map_by_type() {
        for (kind, expected) in [
            ("DIV", (TransactionType::Income, Some(TransactionSubtype::Dividend))),
            ("DIVNRA", (TransactionType::Income, Some(TransactionSubtype::Dividend))),
            ("INT", (TransactionType::Income, Some(TransactionSubtype::Interest))),
            ("CSD", (TransactionType::Transfer, Some(TransactionSubtype::Deposit))),
            ("CSW", (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal))),
            ("FEE", (TransactionType::Fee, Some(TransactionSubtype::AccountFee))),
            ("PTC", (TransactionType::Fee, Some(TransactionSubtype::RegulatoryFee))),
            ("JNLS", (TransactionType::Transfer, Some(TransactionSubtype::SecurityTransfer))),
            ("SPLIT", (TransactionType::Other, None)),
        ] {
            let raw = activity(&format!(
                r#"{{"id":"x","activity_type":"{kind}","date":"2025-01-02","net_amount":"-1.5","status":"executed"}}"#
            ));
            let transaction = map_activity(raw, 0).expect("maps").expect("kept");
            assert_eq!((transaction.transaction_type, transaction.subtype), expected, "{kind}");
            assert_eq!(transaction.amount.to_string(), "-1.5");
        }
        let canceled =
            activity(r#"{"id":"x","activity_type":"DIV","date":"2025-01-02","net_amount":"1","status":"canceled"}"#);
        assert!(map_activity(canceled, 0).expect("maps").is_none());
        let missing = activity(r#"{"id":"x","activity_type":"DIV","net_amount":"1"}"#);
        assert!(
            matches!(map_activity(missing, 3), Err(ConnectorError::InvalidResponse(text)) if text == "activities: [3].date: missing")
        );
    }
}
