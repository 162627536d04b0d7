//! Charles Schwab: OAuth 2.0 (authorization code, optional PKCE, Basic client authentication) and the Trader
//! API's accounts, positions and transactions, exactly as `docs/schwab-wire.md` describes them. The sandbox
//! brokerage answers the same shapes, so this connector also serves the `sandbox` provider.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use dashtam_domain::connector::{
    AuthorizationRequest, Connector, ConnectorError, DateRange, OAuthTokens, ProviderAuth,
};
use dashtam_domain::finance::{
    AccountType, AssetType, ProviderAccount, ProviderPosition, ProviderTransaction, TransactionStatus,
    TransactionSubtype, TransactionType,
};
use dashtam_domain::money::{Currency, Decimal};
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::{Date, OffsetDateTime, UtcOffset};
use url::Url;

use super::decode::{self, decimal, optional_decimal};
use super::http::{DATA_BODY_LIMIT, HttpTimeouts, ProviderHttp, ProviderSetupError, TOKEN_BODY_LIMIT, check_status};

/// Schwab answers at most this many transactions per call; an answer this long may have been cut short.
pub const TRANSACTIONS_CAP: usize = 3000;
/// The longest range one transactions call may ask for (Schwab answers `400` beyond a year).
const MAX_WINDOW_DAYS: i64 = 365;
/// Every transaction type the connector understands, asked for explicitly because Schwab requires `types`.
const TRANSACTION_TYPES: &str = "TRADE,RECEIVE_AND_DELIVER,DIVIDEND_OR_INTEREST,ACH_RECEIPT,ACH_DISBURSEMENT,\
CASH_RECEIPT,CASH_DISBURSEMENT,ELECTRONIC_FUND,WIRE_OUT,WIRE_IN,JOURNAL,MEMORANDUM,MARGIN_CALL,MONEY_MARKET,\
SMA_ADJUSTMENT";

/// How to reach one Schwab-shaped API.
pub struct SchwabSettings {
    /// `https://api.schwabapi.com`, or the sandbox's `<public_url>/sandbox`.
    pub base_url: Url,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// Whether the authorization flow uses PKCE S256 (the sandbox supports it; real Schwab is used without).
    pub use_pkce: bool,
}

impl fmt::Debug for SchwabSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchwabSettings")
            .field("base_url", &self.base_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("use_pkce", &self.use_pkce)
            .finish()
    }
}

type TokenClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The Schwab connector. Cheap to share: one HTTP client inside.
pub struct SchwabConnector {
    base_url: Url,
    client_id: String,
    use_pkce: bool,
    oauth: TokenClient,
    http: ProviderHttp,
}

impl fmt::Debug for SchwabConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchwabConnector")
            .field("base_url", &self.base_url.as_str())
            .field("client_id", &self.client_id)
            .field("use_pkce", &self.use_pkce)
            .finish_non_exhaustive()
    }
}

impl SchwabConnector {
    /// Builds the connector and its HTTP client.
    ///
    /// The token call authenticates with HTTP Basic. oauth2 form-encodes the id and secret before base64 as RFC
    /// 6749 §2.3.1 asks; for Schwab's alphanumeric credentials that is the plain `client_id:client_secret`.
    pub fn new(settings: SchwabSettings, timeouts: &HttpTimeouts) -> Result<Self, ProviderSetupError> {
        let base_url = checked_base_url(settings.base_url)?;
        let token_url = TokenUrl::from_url(join(&base_url, &["v1", "oauth", "token"]));
        let oauth = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.expose_secret().to_owned()))
            .set_auth_type(AuthType::BasicAuth)
            .set_token_uri(token_url);
        Ok(Self {
            base_url,
            client_id: settings.client_id,
            use_pkce: settings.use_pkce,
            oauth,
            http: ProviderHttp::new(timeouts)?,
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        token: &SecretString,
        url: &Url,
        what: &str,
    ) -> Result<T, ConnectorError> {
        let body = self
            .http
            .fetch(|| self.http.client().get(url.clone()).bearer_auth(token.expose_secret()), DATA_BODY_LIMIT)
            .await?;
        decode::json(&body, what)
    }

    async fn transactions_window(
        &self,
        token: &SecretString,
        hash: &str,
        window: Window,
    ) -> Result<Vec<RawTransaction>, ConnectorError> {
        let mut url = join(&self.base_url, &["trader", "v1", "accounts", hash, "transactions"]);
        url.query_pairs_mut()
            .append_pair("startDate", &format_instant(window.start))
            .append_pair("endDate", &format_instant(window.end))
            .append_pair("types", TRANSACTION_TYPES);
        self.get(token, &url, "transactions").await
    }
}

/// Checks the base URL can carry our paths, and drops a trailing slash so joining is uniform.
fn checked_base_url(base_url: Url) -> Result<Url, ProviderSetupError> {
    if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() || base_url.host().is_none() {
        return Err(ProviderSetupError::BaseUrl(format!("{base_url} is not an absolute http(s) URL")));
    }
    if base_url.query().is_some() || base_url.fragment().is_some() {
        return Err(ProviderSetupError::BaseUrl(format!("{base_url} has a query or fragment")));
    }
    Ok(base_url)
}

/// The base URL with `segments` appended (each percent-encoded), keeping any base path such as `/sandbox`.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

#[async_trait]
impl Connector for SchwabConnector {
    fn uses_pkce(&self) -> bool {
        self.use_pkce
    }

    fn authorization_url(&self, request: &AuthorizationRequest<'_>) -> Result<String, ConnectorError> {
        // Built by hand rather than with oauth2's `authorize_url`: it wants to generate the state and PKCE pair
        // itself, while ours come from the caller, and the wire doc fixes the parameter order.
        let mut url = join(&self.base_url, &["v1", "oauth", "authorize"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", request.redirect_uri)
                .append_pair("state", request.state);
            if self.use_pkce
                && let Some(challenge) = request.code_challenge
            {
                query.append_pair("code_challenge", challenge).append_pair("code_challenge_method", "S256");
            }
        }
        Ok(url.into())
    }

    async fn exchange_code(
        &self,
        code: &str,
        code_verifier: Option<&str>,
        redirect_uri: &str,
    ) -> Result<OAuthTokens, ConnectorError> {
        let redirect_uri = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| ConnectorError::InvalidResponse("the redirect URI is not a URL".to_owned()))?;
        let mut request = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_uri));
        if let Some(verifier) = code_verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()));
        }
        let bridge = OAuthBridge { http: &self.http };
        request.request_async(&bridge).await.map(into_tokens).map_err(map_token_error)
    }

    async fn refresh_tokens(&self, refresh_token: &SecretString) -> Result<OAuthTokens, ConnectorError> {
        let refresh_token = RefreshToken::new(refresh_token.expose_secret().to_owned());
        let bridge = OAuthBridge { http: &self.http };
        self.oauth
            .exchange_refresh_token(&refresh_token)
            .request_async(&bridge)
            .await
            .map(into_tokens)
            .map_err(map_token_error)
    }

    async fn accounts(&self, auth: ProviderAuth<'_>) -> Result<Vec<ProviderAccount>, ConnectorError> {
        let ProviderAuth::Bearer(token) = auth else { return Err(ConnectorError::Unsupported) };
        let numbers_url = join(&self.base_url, &["trader", "v1", "accounts", "accountNumbers"]);
        let preference_url = join(&self.base_url, &["trader", "v1", "userPreference"]);
        let mut accounts_url = join(&self.base_url, &["trader", "v1", "accounts"]);
        accounts_url.query_pairs_mut().append_pair("fields", "positions");

        let (numbers, preference, details) = tokio::join!(
            self.get::<Vec<AccountNumber>>(token, &numbers_url, "accountNumbers"),
            self.get::<UserPreference>(token, &preference_url, "userPreference"),
            self.get::<Vec<AccountEnvelope>>(token, &accounts_url, "accounts"),
        );
        let hashes: HashMap<String, String> =
            numbers?.into_iter().map(|number| (number.account_number, number.hash_value)).collect();
        let details = details?;
        // The preferences only add names and retirement types; the accounts are complete without them.
        let preferences: HashMap<String, PreferenceAccount> = match preference {
            Ok(preference) => {
                preference.accounts.into_iter().map(|account| (account.account_number.clone(), account)).collect()
            }
            Err(error) => {
                tracing::debug!(%error, "Schwab userPreference failed; naming accounts by number");
                HashMap::new()
            }
        };

        details
            .into_iter()
            .map(|envelope| {
                let account = envelope.securities_account;
                let hash = hashes.get(&account.account_number).cloned().ok_or_else(|| {
                    let masked = mask(&account.account_number);
                    ConnectorError::InvalidResponse(format!("accountNumbers: no hashValue for account {masked}"))
                })?;
                let preference = preferences.get(&account.account_number);
                Ok(map_account(account, hash, preference))
            })
            .collect()
    }

    async fn transactions(
        &self,
        auth: ProviderAuth<'_>,
        account: &ProviderAccount,
        range: DateRange,
    ) -> Result<Vec<ProviderTransaction>, ConnectorError> {
        let ProviderAuth::Bearer(token) = auth else { return Err(ConnectorError::Unsupported) };
        let mut pending = windows(range);
        let mut seen = HashSet::new();
        let mut transactions = Vec::new();
        while let Some(window) = pending.pop() {
            let raw = self.transactions_window(token, &account.api_handle, window).await?;
            if raw.len() >= TRANSACTIONS_CAP {
                if let Some((earlier, later)) = window.split() {
                    // Newest first, like Schwab's own order: the later half is popped first.
                    pending.push(earlier);
                    pending.push(later);
                    continue;
                }
                tracing::warn!(
                    "Schwab answered {TRANSACTIONS_CAP} transactions for one millisecond; some may be missing"
                );
            }
            for (index, raw) in raw.into_iter().enumerate() {
                if !seen.insert(raw.activity_id.clone()) {
                    continue;
                }
                if let Some(transaction) = map_transaction(raw, index)? {
                    transactions.push(transaction);
                }
            }
        }
        Ok(transactions)
    }
}

/// oauth2's HTTP client: our reqwest client, so token calls get the same timeouts, no redirects and the 64 KiB
/// cap.
///
/// It also classifies every non-200 answer itself instead of handing it to oauth2: oauth2's error type keeps
/// the OAuth `error` code but drops the HTTP status, and a `5xx` with an HTML body would come back as a parse
/// error. So oauth2 only ever sees `200` answers, and every failure arrives here as a [`ConnectorError`].
struct OAuthBridge<'a> {
    http: &'a ProviderHttp,
}

impl<'c> AsyncHttpClient<'c> for OAuthBridge<'_> {
    type Error = ConnectorError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, ConnectorError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = parts.uri.to_string();
            let answer = self
                .http
                .send(
                    || {
                        self.http
                            .client()
                            .request(parts.method.clone(), &url)
                            .headers(parts.headers.clone())
                            .body(body.clone())
                    },
                    TOKEN_BODY_LIMIT,
                )
                .await?;
            if answer.status != StatusCode::OK {
                return Err(classify_token_failure(answer.status, &answer.body));
            }
            let mut response = HttpResponse::new(answer.body.to_vec());
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            Ok(response)
        })
    }
}

/// The OAuth error code of a token endpoint's failure, when it sent one.
#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
}

/// `invalid_grant` → the grant is gone; `invalid_client` → our credentials are refused; anything else by status.
fn classify_token_failure(status: StatusCode, body: &[u8]) -> ConnectorError {
    let code = serde_json::from_slice::<OAuthErrorBody>(body).ok().map(|body| body.error);
    match code.as_deref() {
        Some("invalid_grant") => ConnectorError::InvalidGrant,
        Some("invalid_client") => ConnectorError::Unauthorized,
        Some(_) if status.is_client_error() => ConnectorError::Rejected { status: status.as_u16() },
        _ => match check_status(status) {
            Err(error) => error,
            // A 2xx other than 200 is not a token response either.
            Ok(()) => ConnectorError::Rejected { status: status.as_u16() },
        },
    }
}

/// oauth2's failures once the bridge has classified HTTP failures: only unreadable token responses remain.
fn map_token_error(error: RequestTokenError<ConnectorError, oauth2::basic::BasicErrorResponse>) -> ConnectorError {
    match error {
        RequestTokenError::Request(error) => error,
        RequestTokenError::ServerResponse(response) => match response.error() {
            oauth2::basic::BasicErrorResponseType::InvalidGrant => ConnectorError::InvalidGrant,
            oauth2::basic::BasicErrorResponseType::InvalidClient => ConnectorError::Unauthorized,
            _ => ConnectorError::Rejected { status: 400 },
        },
        RequestTokenError::Parse(error, _body) => ConnectorError::InvalidResponse(format!(
            "token response: {}: {}",
            error.path(),
            decode::describe(error.inner())
        )),
        RequestTokenError::Other(text) => ConnectorError::InvalidResponse(format!("token response: {text}")),
    }
}

fn into_tokens(response: BasicTokenResponse) -> OAuthTokens {
    OAuthTokens {
        access_token: SecretString::from(response.access_token().secret().to_owned()),
        refresh_token: response.refresh_token().map(|token| SecretString::from(token.secret().to_owned())),
        expires_in: response.expires_in(),
        scope: response.scopes().map(|scopes| scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountNumber {
    account_number: String,
    hash_value: String,
}

#[derive(Deserialize)]
struct UserPreference {
    #[serde(default)]
    accounts: Vec<PreferenceAccount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreferenceAccount {
    account_number: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    nick_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountEnvelope {
    securities_account: SecuritiesAccount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecuritiesAccount {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    account_number: String,
    #[serde(default)]
    positions: Vec<Position>,
    current_balances: Balances,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Balances {
    #[serde(deserialize_with = "decimal")]
    liquidation_value: Decimal,
    #[serde(default, deserialize_with = "optional_decimal")]
    available_funds: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    cash_available_for_withdrawal: Option<Decimal>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Position {
    #[serde(default, deserialize_with = "optional_decimal")]
    long_quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    short_quantity: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    average_price: Option<Decimal>,
    #[serde(deserialize_with = "decimal")]
    market_value: Decimal,
    instrument: PositionInstrument,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionInstrument {
    asset_type: String,
    symbol: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTransaction {
    #[serde(deserialize_with = "id_text")]
    activity_id: String,
    time: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(deserialize_with = "decimal")]
    net_amount: Decimal,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    transfer_items: Vec<TransferItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferItem {
    #[serde(default)]
    instrument: Option<TransferInstrument>,
    #[serde(default, deserialize_with = "optional_decimal")]
    amount: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    cost: Option<Decimal>,
    #[serde(default, deserialize_with = "optional_decimal")]
    price: Option<Decimal>,
    #[serde(default)]
    fee_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransferInstrument {
    #[serde(default)]
    asset_type: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
}

impl TransferItem {
    fn is_currency(&self) -> bool {
        self.instrument.as_ref().and_then(|instrument| instrument.asset_type.as_deref()) == Some("CURRENCY")
    }
}

/// An activity id: Schwab writes a JSON number; a string is accepted too.
fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Unsigned(u64),
        Signed(i64),
        Text(String),
    }
    match Id::deserialize(deserializer)? {
        Id::Unsigned(id) => Ok(id.to_string()),
        Id::Signed(id) => Ok(id.to_string()),
        Id::Text(id) if !id.is_empty() => Ok(id),
        Id::Text(_) => Err(serde::de::Error::custom("an empty id")),
    }
}

/// "••••" and the last four characters of an account number.
pub(crate) fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let last4: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("••••{last4}")
}

fn map_account(account: SecuritiesAccount, hash: String, preference: Option<&PreferenceAccount>) -> ProviderAccount {
    let masked = mask(&account.account_number);
    let nickname = preference.and_then(|preference| preference.nick_name.clone()).filter(|name| !name.is_empty());
    let account_type = preference.map_or(AccountType::Brokerage, |preference| {
        account_type(preference.kind.as_deref(), preference.nick_name.as_deref())
    });
    let name = nickname.unwrap_or_else(|| match account.kind.as_deref() {
        Some("CASH") => format!("Schwab cash account {masked}"),
        Some("MARGIN") => format!("Schwab margin account {masked}"),
        _ => format!("Schwab account {masked}"),
    });
    let balances = account.current_balances;
    ProviderAccount {
        provider_account_id: hash.clone(),
        api_handle: hash,
        name,
        account_type,
        number_masked: masked,
        currency: Currency::USD,
        balance: balances.liquidation_value,
        available_balance: balances.available_funds.or(balances.cash_available_for_withdrawal),
        positions: account.positions.into_iter().map(map_position).collect(),
    }
}

/// The account type from userPreference's `type` and `nickName`: retirement words win, brokerage otherwise.
fn account_type(kind: Option<&str>, nickname: Option<&str>) -> AccountType {
    let text = format!("{} {}", kind.unwrap_or_default(), nickname.unwrap_or_default()).to_ascii_uppercase();
    let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |word: &str| words.contains(&word);
    if has("ROTH") {
        AccountType::RothIra
    } else if has("IRA") || has("SEP") || has("SIMPLE") || has("ROLLOVER") {
        AccountType::Ira
    } else if has("401K") || has("403B") || has("457") || text.contains("401(K)") || text.contains("403(B)") {
        AccountType::EmployerRetirement
    } else if has("HSA") {
        AccountType::Hsa
    } else {
        AccountType::Brokerage
    }
}

fn asset_type(asset_type: &str) -> AssetType {
    match asset_type {
        "EQUITY" => AssetType::Equity,
        "COLLECTIVE_INVESTMENT" => AssetType::Etf,
        "MUTUAL_FUND" => AssetType::MutualFund,
        "FIXED_INCOME" => AssetType::FixedIncome,
        "OPTION" => AssetType::Option,
        "CASH_EQUIVALENT" => AssetType::CashEquivalent,
        _ => AssetType::Other,
    }
}

fn map_position(position: Position) -> ProviderPosition {
    let quantity = position.long_quantity.unwrap_or_default() - position.short_quantity.unwrap_or_default();
    let price = (!quantity.is_zero())
        .then(|| position.market_value.checked_div(quantity))
        .flatten()
        .map(|price| price.round_dp(4).normalize());
    ProviderPosition {
        symbol: position.instrument.symbol,
        name: position.instrument.description,
        asset_type: asset_type(&position.instrument.asset_type),
        quantity,
        average_cost: position.average_price,
        price,
        market_value: position.market_value,
        currency: Currency::USD,
    }
}

/// One transactions call's range, both ends inclusive, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl Window {
    /// The two halves of this window, or `None` when it is one millisecond long.
    fn split(self) -> Option<(Window, Window)> {
        let millis = (self.end - self.start).whole_milliseconds();
        if millis < 1 {
            return None;
        }
        let middle = self.start + time::Duration::milliseconds((millis / 2) as i64);
        Some((
            Window { start: self.start, end: middle },
            Window { start: middle + time::Duration::milliseconds(1), end: self.end },
        ))
    }
}

/// `range` cut into windows of at most 365 days, oldest first (so the newest is popped first).
fn windows(range: DateRange) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut start = range.start;
    while start <= range.end {
        let end =
            start.checked_add(time::Duration::days(MAX_WINDOW_DAYS - 1)).map_or(range.end, |end| end.min(range.end));
        windows.push(Window {
            start: start.midnight().assume_utc(),
            end: end.with_hms_milli(23, 59, 59, 999).map_or(end.midnight().assume_utc(), |end| end.assume_utc()),
        });
        match end.next_day() {
            Some(next) => start = next,
            None => break,
        }
    }
    windows
}

/// `2025-01-01T00:00:00.000Z`, the form Schwab's `startDate`/`endDate` take.
fn format_instant(instant: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    instant.to_offset(UtcOffset::UTC).format(format).unwrap_or_default()
}

/// Schwab's `2025-03-28T21:10:42+0000` (no colon in the offset); RFC 3339 is accepted too.
fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let schwab = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:]][offset_minute]"
    );
    OffsetDateTime::parse(text, schwab)
        .or_else(|_| OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339))
        .ok()
}

/// A Schwab activity in our terms; `None` for `INVALID` and `CANCELED` ones.
fn map_transaction(raw: RawTransaction, index: usize) -> Result<Option<ProviderTransaction>, ConnectorError> {
    let status = match raw.status.as_deref() {
        Some("INVALID" | "CANCELED") => return Ok(None),
        Some("PENDING") => TransactionStatus::Pending,
        _ => TransactionStatus::Posted,
    };
    let time = parse_time(&raw.time)
        .ok_or_else(|| ConnectorError::InvalidResponse(format!("transactions: [{index}].time: not a timestamp")))?;
    let posted_on: Date = time.to_offset(UtcOffset::UTC).date();

    let fee_items: Vec<&TransferItem> =
        raw.transfer_items.iter().filter(|item| item.is_currency() && item.fee_type.is_some()).collect();
    let fees = (!fee_items.is_empty())
        .then(|| fee_items.iter().map(|item| item.cost.unwrap_or_default().abs()).sum::<Decimal>());
    let security = raw.transfer_items.iter().find(|item| item.instrument.is_some() && !item.is_currency());
    let symbol = security.and_then(|item| item.instrument.as_ref()).and_then(|instrument| instrument.symbol.clone());
    let security_amount = security.and_then(|item| item.amount);

    let description = raw.description.clone().filter(|text| !text.is_empty()).unwrap_or_else(|| raw.kind.clone());
    let (transaction_type, subtype) = classify(&raw.kind, &description, raw.net_amount, security_amount);
    let carries_units =
        matches!(transaction_type, TransactionType::Trade) || subtype == Some(TransactionSubtype::SecurityTransfer);

    Ok(Some(ProviderTransaction {
        provider_transaction_id: raw.activity_id,
        pending_transaction_id: None,
        posted_on,
        posted_at: Some(time),
        amount: raw.net_amount,
        currency: Currency::USD,
        description,
        payee: None,
        memo: None,
        transaction_type,
        subtype,
        status,
        symbol,
        quantity: if carries_units { security_amount } else { None },
        unit_price: if carries_units { security.and_then(|item| item.price) } else { None },
        fees,
    }))
}

/// The type rules of `docs/schwab-wire.md`. Where the doc's rules could both apply, the activity type wins,
/// except that a journal-like or unknown activity whose description says FEE is a fee.
fn classify(
    kind: &str,
    description: &str,
    amount: Decimal,
    security_amount: Option<Decimal>,
) -> (TransactionType, Option<TransactionSubtype>) {
    let description = description.to_ascii_uppercase();
    let transfer = |subtype| (TransactionType::Transfer, Some(subtype));
    match kind {
        "TRADE" => {
            let bought = security_amount.unwrap_or(-amount) > Decimal::ZERO;
            (TransactionType::Trade, Some(if bought { TransactionSubtype::Buy } else { TransactionSubtype::Sell }))
        }
        "DIVIDEND_OR_INTEREST" if description.contains("DIVIDEND") => {
            (TransactionType::Income, Some(TransactionSubtype::Dividend))
        }
        "DIVIDEND_OR_INTEREST" => (TransactionType::Income, Some(TransactionSubtype::Interest)),
        "ACH_RECEIPT" | "CASH_RECEIPT" | "WIRE_IN" | "ELECTRONIC_FUND" if amount > Decimal::ZERO => {
            transfer(TransactionSubtype::Deposit)
        }
        "ACH_RECEIPT" | "CASH_RECEIPT" | "WIRE_IN" | "ELECTRONIC_FUND" => transfer(TransactionSubtype::Withdrawal),
        "ACH_DISBURSEMENT" | "CASH_DISBURSEMENT" | "WIRE_OUT" => transfer(TransactionSubtype::Withdrawal),
        "RECEIVE_AND_DELIVER" => transfer(TransactionSubtype::SecurityTransfer),
        _ if description.contains("FEE") => (TransactionType::Fee, Some(TransactionSubtype::AccountFee)),
        "JOURNAL" | "MEMORANDUM" | "SMA_ADJUSTMENT" | "MONEY_MARKET" => (TransactionType::Adjustment, None),
        _ => (TransactionType::Other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn ranges_become_windows_of_at_most_365_days() {
        let windows = windows(DateRange { start: date!(2023 - 01 - 01), end: date!(2025 - 03 - 31) });
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[0].start, datetime!(2023-01-01 00:00 UTC));
        assert_eq!(windows[0].end, datetime!(2023-12-31 23:59:59.999 UTC));
        assert_eq!(windows[1].start, datetime!(2024-01-01 00:00 UTC));
        assert_eq!(windows[1].end, datetime!(2024-12-30 23:59:59.999 UTC));
        assert_eq!(windows[2].start, datetime!(2024-12-31 00:00 UTC));
        assert_eq!(windows[2].end, datetime!(2025-03-31 23:59:59.999 UTC));
        assert_eq!(format_instant(windows[2].end), "2025-03-31T23:59:59.999Z");
        let single = super::windows(DateRange { start: date!(2025 - 01 - 01), end: date!(2025 - 01 - 01) });
        assert_eq!(single.len(), 1);
        assert!(super::windows(DateRange { start: date!(2025 - 01 - 02), end: date!(2025 - 01 - 01) }).is_empty());
    }

    #[test]
    fn a_window_splits_into_two_disjoint_halves() {
        let window = Window { start: datetime!(2025-01-01 00:00 UTC), end: datetime!(2025-01-02 23:59:59.999 UTC) };
        let (earlier, later) = window.split().expect("splits");
        assert_eq!(earlier.start, window.start);
        assert_eq!(later.end, window.end);
        assert_eq!(later.start - earlier.end, time::Duration::milliseconds(1));
        let tiny = Window { start: window.start, end: window.start };
        assert_eq!(tiny.split(), None);
    }

    #[test]
    fn schwab_times_parse_with_or_without_colon() {
        assert_eq!(parse_time("2025-03-28T21:10:42+0000"), Some(datetime!(2025-03-28 21:10:42 UTC)));
        assert_eq!(parse_time("2025-03-28T21:10:42.5+0000"), Some(datetime!(2025-03-28 21:10:42.5 UTC)));
        assert_eq!(parse_time("2025-03-28T23:10:42+02:00"), Some(datetime!(2025-03-28 21:10:42 UTC)));
        assert_eq!(parse_time("2025-03-28T21:10:42Z"), Some(datetime!(2025-03-28 21:10:42 UTC)));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn account_types_come_from_type_and_nickname() {
        assert_eq!(account_type(Some("BROKERAGE"), Some("Individual")), AccountType::Brokerage);
        assert_eq!(account_type(Some("IRA"), None), AccountType::Ira);
        assert_eq!(account_type(Some("BROKERAGE"), Some("Roth IRA")), AccountType::RothIra);
        assert_eq!(account_type(Some("401K"), None), AccountType::EmployerRetirement);
        assert_eq!(account_type(None, Some("My 401(k)")), AccountType::EmployerRetirement);
        assert_eq!(account_type(None, Some("Pirate fund")), AccountType::Brokerage);
    }

    #[test]
    fn masks_keep_the_last_four() {
        assert_eq!(mask("12345678"), "••••5678");
        assert_eq!(mask("78"), "••••78");
    }

    #[test]
    fn types_map_per_the_wire_doc() {
        let one = Decimal::ONE;
        assert_eq!(
            classify("TRADE", "BUY TRADE", -one, Some(one)),
            (TransactionType::Trade, Some(TransactionSubtype::Buy))
        );
        assert_eq!(
            classify("TRADE", "SELL", one, Some(-one)),
            (TransactionType::Trade, Some(TransactionSubtype::Sell))
        );
        assert_eq!(
            classify("DIVIDEND_OR_INTEREST", "ORDINARY DIVIDEND", one, None),
            (TransactionType::Income, Some(TransactionSubtype::Dividend))
        );
        assert_eq!(
            classify("DIVIDEND_OR_INTEREST", "BANK INT", one, None),
            (TransactionType::Income, Some(TransactionSubtype::Interest))
        );
        assert_eq!(
            classify("ACH_RECEIPT", "", one, None),
            (TransactionType::Transfer, Some(TransactionSubtype::Deposit))
        );
        assert_eq!(
            classify("WIRE_OUT", "", -one, None),
            (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal))
        );
        assert_eq!(
            classify("RECEIVE_AND_DELIVER", "", one, Some(one)),
            (TransactionType::Transfer, Some(TransactionSubtype::SecurityTransfer))
        );
        assert_eq!(classify("JOURNAL", "JOURNAL", one, None), (TransactionType::Adjustment, None));
        assert_eq!(
            classify("JOURNAL", "ADR FEE", -one, None),
            (TransactionType::Fee, Some(TransactionSubtype::AccountFee))
        );
        assert_eq!(classify("MARGIN_CALL", "", one, None), (TransactionType::Other, None));
    }
}
