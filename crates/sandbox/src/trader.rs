//! Schwab's Trader API over the generated data: account numbers, preferences, accounts, transactions.

use std::collections::VecDeque;

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::{Date, Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    Sandbox,
    data::{Account, AccountState, Activity, ActivityKind, AssetClass, Customer, Ledger, Security, simulate},
    faults::Surface,
    wire::{num, schwab_time},
};

/// Schwab answers at most this many transactions per request.
pub(crate) const MAX_TRANSACTIONS: usize = 3000;

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/trader/v1/accounts/accountNumbers", get(account_numbers))
        .route("/trader/v1/userPreference", get(user_preference))
        .route("/trader/v1/accounts", get(accounts))
        .route("/trader/v1/accounts/{hash}", get(account))
        .route("/trader/v1/accounts/{hash}/transactions", get(transactions))
}

/// What a request may see: whose data, on which day, at what volume.
struct View {
    customer: Customer,
    today: Date,
    transactions_per_day: f64,
}

/// A Trader API error: Schwab's `{"message": …, "errors": […]}`.
struct ApiError {
    status: StatusCode,
    message: &'static str,
    detail: String,
}

impl ApiError {
    fn bad_request(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: "Bad Request", detail: detail.into() }
    }

    fn not_found() -> Self {
        Self { status: StatusCode::NOT_FOUND, message: "Not Found", detail: "no such account for this customer".into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"message": self.message, "errors": [self.detail]});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Authenticates, counts, applies the client's faults, then runs `answer` off the async threads (a large
/// history takes a while to replay).
async fn serve(
    sandbox: Sandbox,
    headers: &HeaderMap,
    answer: impl FnOnce(View) -> Result<Value, ApiError> + Send + 'static,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let bearer = token.and_then(|token| sandbox.state().oauth.bearer(token, sandbox.now()));
    let Some(bearer) = bearer else {
        let detail = "the access token is missing, unknown or expired".to_owned();
        return ApiError { status: StatusCode::UNAUTHORIZED, message: "Unauthorized", detail }.into_response();
    };
    let (plan, transactions_per_day) = sandbox.with_client(&bearer.client_id, |control| {
        control.counters.api_requests += 1;
        (control.plan(Surface::Api), control.settings.transactions_per_day)
    });
    plan.delay().await;
    if let Some(failure) = plan.failure(Surface::Api) {
        return failure;
    }
    let view = View { customer: Customer::new(&bearer.customer), today: sandbox.today(), transactions_per_day };
    let response = match tokio::task::spawn_blocking(move || answer(view)).await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(error) => {
            tracing::error!(%error, "sandbox answer failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    plan.shape(response).await
}

/// `GET /trader/v1/accounts/accountNumbers`.
async fn account_numbers(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    serve(sandbox, &headers, |view| {
        let accounts: Vec<Value> = view
            .customer
            .accounts
            .iter()
            .map(|account| json!({"accountNumber": account.number, "hashValue": account.hash}))
            .collect();
        Ok(Value::Array(accounts))
    })
    .await
}

/// `GET /trader/v1/userPreference`.
async fn user_preference(State(sandbox): State<Sandbox>, headers: HeaderMap) -> Response {
    serve(sandbox, &headers, |view| {
        let colors = ["Green", "Blue"];
        let accounts: Vec<Value> = view
            .customer
            .accounts
            .iter()
            .enumerate()
            .map(|(index, account)| {
                json!({
                    "accountNumber": account.number,
                    "primaryAccount": index == 0,
                    "type": account.preference_type,
                    "nickName": account.nickname,
                    "displayAcctId": format!("...{}", &account.number[account.number.len() - 3..]),
                    "autoPositionEffect": false,
                    "accountColor": colors[index % colors.len()],
                })
            })
            .collect();
        Ok(json!({
            "accounts": accounts,
            "streamerInfo": [{
                "streamerSocketUrl": "wss://streamer.sandbox.invalid/ws",
                "schwabClientCustomerId": &view.customer.accounts[0].hash[..32],
                "schwabClientCorrelId": &view.customer.accounts[1].hash[..32],
                "schwabClientChannel": "N9",
                "schwabClientFunctionId": "APIAPP",
            }],
            "offers": [{"level2Permissions": false, "mktDataPermission": "NP"}],
        }))
    })
    .await
}

/// `GET /trader/v1/accounts[?fields=positions]`.
async fn accounts(State(sandbox): State<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let with_positions = wants_positions(query.as_deref());
    serve(sandbox, &headers, move |view| {
        let ledger = simulate(&view.customer, view.transactions_per_day, view.today, |_| {});
        let accounts = (0..view.customer.accounts.len())
            .map(|index| render_account(&view.customer, &ledger, index, view.today, with_positions))
            .collect();
        Ok(Value::Array(accounts))
    })
    .await
}

/// `GET /trader/v1/accounts/{hashValue}[?fields=positions]`.
async fn account(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let with_positions = wants_positions(query.as_deref());
    serve(sandbox, &headers, move |view| {
        let index = view.customer.account_by_hash(&hash).ok_or_else(ApiError::not_found)?;
        let ledger = simulate(&view.customer, view.transactions_per_day, view.today, |_| {});
        Ok(render_account(&view.customer, &ledger, index, view.today, with_positions))
    })
    .await
}

fn wants_positions(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "fields" && value.split(',').any(|field| field.trim() == "positions"))
}

/// One entry of `GET /trader/v1/accounts`.
fn render_account(customer: &Customer, ledger: &Ledger, index: usize, today: Date, with_positions: bool) -> Value {
    let account = &customer.accounts[index];
    let state = &ledger.accounts[index];
    let yesterday = today.previous_day().unwrap_or(today);
    let mut positions = Vec::new();
    let mut market_value = Decimal::ZERO;
    let mut previous_market_value = Decimal::ZERO;
    for (security, holding) in account.securities.iter().zip(&state.holdings) {
        let price = customer.price(security, today);
        let previous_price = customer.price(security, yesterday);
        previous_market_value += (holding.previous_quantity * previous_price).round_dp(2);
        if holding.quantity <= Decimal::ZERO {
            continue;
        }
        let value = (holding.quantity * price).round_dp(2);
        market_value += value;
        positions.push(render_position(account, security, holding, price, previous_price, value));
    }
    let cash = state.cash;
    let liquidation = cash + market_value;
    let previous_liquidation = state.previous_cash + previous_market_value;
    let (current, projected) = balances(account, state, market_value, liquidation);
    let mut securities_account = json!({
        "type": account.schwab_type,
        "accountNumber": account.number,
        "roundTrips": 0,
        "isDayTrader": false,
        "isClosingOnlyRestricted": false,
        "pfcbFlag": false,
        "initialBalances": {
            "cashBalance": num(state.previous_cash),
            "liquidationValue": num(previous_liquidation),
            "accountValue": num(previous_liquidation),
        },
        "currentBalances": current,
        "projectedBalances": projected,
    });
    if with_positions {
        securities_account["positions"] = Value::Array(positions);
    }
    json!({
        "securitiesAccount": securities_account,
        "aggregatedBalance": {"currentLiquidationValue": num(liquidation), "liquidationValue": num(liquidation)},
    })
}

/// Current and projected balances: margin accounts report funds and buying power, cash accounts what may be
/// traded or withdrawn (as Schwab's do).
fn balances(account: &Account, state: &AccountState, market_value: Decimal, liquidation: Decimal) -> (Value, Value) {
    let cash = state.cash;
    if account.is_margin() {
        let buying_power = (cash.max(Decimal::ZERO) * Decimal::TWO).round_dp(2);
        let current = json!({
            "cashBalance": num(cash),
            "availableFunds": num(cash),
            "buyingPower": num(buying_power),
            "liquidationValue": num(liquidation),
            "longMarketValue": num(market_value),
            "equity": num(liquidation),
        });
        (current, json!({"availableFunds": num(cash), "buyingPower": num(buying_power)}))
    } else {
        let current = json!({
            "cashBalance": num(cash),
            "cashAvailableForTrading": num(cash),
            "cashAvailableForWithdrawal": num(cash),
            "liquidationValue": num(liquidation),
            "longMarketValue": num(market_value),
            "totalCash": num(cash),
        });
        (current, json!({"cashAvailableForTrading": num(cash), "cashAvailableForWithdrawal": num(cash)}))
    }
}

fn render_position(
    account: &Account,
    security: &Security,
    holding: &crate::data::Holding,
    price: Decimal,
    previous_price: Decimal,
    market_value: Decimal,
) -> Value {
    let quantity = holding.quantity;
    let average = (holding.cost / quantity).round_dp(4);
    let change = price - previous_price;
    let change_percent = if previous_price.is_zero() {
        Decimal::ZERO
    } else {
        (change / previous_price * Decimal::ONE_HUNDRED).round_dp(2)
    };
    let marginable = account.is_margin() && matches!(security.class, AssetClass::Equity | AssetClass::Etf);
    let maintenance = if marginable { (market_value * Decimal::new(30, 2)).round_dp(2) } else { Decimal::ZERO };
    json!({
        "shortQuantity": 0,
        "averagePrice": num(average),
        "currentDayProfitLoss": num((quantity * change).round_dp(2)),
        "currentDayProfitLossPercentage": num(change_percent),
        "longQuantity": num(quantity),
        "settledLongQuantity": num(holding.previous_quantity),
        "settledShortQuantity": 0,
        "instrument": {
            "assetType": security.class.asset_type(),
            "cusip": security.cusip,
            "symbol": security.symbol,
            "description": security.description,
            "netChange": num(change),
            "type": security.class.instrument_type(),
        },
        "marketValue": num(market_value),
        "maintenanceRequirement": num(maintenance),
        "averageLongPrice": num(average),
        "taxLotAverageLongPrice": num(average),
        "longOpenProfitLoss": num(market_value - holding.cost),
        "previousSessionLongQuantity": num(holding.previous_quantity),
        "currentDayCost": num(holding.bought_today),
    })
}

/// The checked query of a transactions request.
struct TransactionQuery {
    start: OffsetDateTime,
    end: OffsetDateTime,
    types: Option<Vec<String>>,
    symbol: Option<String>,
}

fn parse_transaction_query(query: Option<&str>) -> Result<TransactionQuery, ApiError> {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let get = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let instant = |name: &str| -> Result<OffsetDateTime, ApiError> {
        let text = get(name).ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
        OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| ApiError::bad_request(format!("{name} must look like 2025-01-01T00:00:00.000Z")))
    };
    let start = instant("startDate")?;
    let end = instant("endDate")?;
    if start > end {
        return Err(ApiError::bad_request("startDate is after endDate"));
    }
    if one_year_after(start).is_some_and(|limit| end > limit) {
        return Err(ApiError::bad_request("the date range may not exceed one year"));
    }
    let types = get("types").map(|types| types.split(',').map(|kind| kind.trim().to_owned()).collect());
    let symbol = get("symbol").filter(|symbol| !symbol.is_empty()).map(str::to_owned);
    Ok(TransactionQuery { start, end, types, symbol })
}

/// The same instant a calendar year later (29 February counts as 365 days); `None` past the last representable
/// year, where every later instant is less than a year away anyway.
fn one_year_after(instant: OffsetDateTime) -> Option<OffsetDateTime> {
    instant.replace_year(instant.year() + 1).ok().or_else(|| instant.checked_add(Duration::days(365)))
}

/// `GET /trader/v1/accounts/{hashValue}/transactions?startDate=…&endDate=…[&types=…][&symbol=…]`.
async fn transactions(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(hash): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    serve(sandbox, &headers, move |view| {
        let index = view.customer.account_by_hash(&hash).ok_or_else(ApiError::not_found)?;
        let query = parse_transaction_query(query.as_deref())?;
        // The replay is chronological, so a bounded queue ends up holding the newest entries of the window.
        let mut newest = VecDeque::with_capacity(MAX_TRANSACTIONS);
        simulate(&view.customer, view.transactions_per_day, view.today, |activity| {
            if activity.account == index
                && (query.start..=query.end).contains(&activity.time)
                && matches(activity, &query)
            {
                if newest.len() == MAX_TRANSACTIONS {
                    newest.pop_front();
                }
                newest.push_back(activity.clone());
            }
        });
        let rendered = newest.iter().rev().map(|activity| render_activity(&view.customer, activity, view.today));
        Ok(Value::Array(rendered.collect()))
    })
    .await
}

fn matches(activity: &Activity, query: &TransactionQuery) -> bool {
    let type_matches = query.types.as_ref().is_none_or(|types| types.iter().any(|kind| kind == activity.schwab_type()));
    let symbol_matches = query.symbol.as_ref().is_none_or(|symbol| match &activity.kind {
        ActivityKind::Trade(trade) => trade.security.symbol == symbol,
        ActivityKind::Dividend { security, .. } => security.symbol == symbol,
        _ => false,
    });
    type_matches && symbol_matches
}

fn currency_usd() -> Value {
    json!({"assetType": "CURRENCY", "status": "ACTIVE", "symbol": "CURRENCY_USD", "description": "USD currency",
           "instrumentId": 1, "closingPrice": 0})
}

fn instrument(security: &Security, closing_price: Decimal) -> Value {
    json!({
        "assetType": security.class.asset_type(),
        "status": "ACTIVE",
        "symbol": security.symbol,
        "cusip": security.cusip,
        "description": security.description,
        "instrumentId": security.instrument_id,
        "closingPrice": num(closing_price),
        "type": security.class.instrument_type(),
    })
}

/// One transaction; activities of "today" are still pending and post, under the same id, once a later day is.
fn render_activity(customer: &Customer, activity: &Activity, today: Date) -> Value {
    let account = &customer.accounts[activity.account];
    let time = schwab_time(activity.time);
    let status = if activity.time.date() >= today { "PENDING" } else { "VALID" };
    let mut entry = json!({
        "activityId": activity.id,
        "time": time,
        "accountNumber": account.number,
        "type": activity.schwab_type(),
        "status": status,
        "subAccount": "CASH",
        "tradeDate": time,
        "netAmount": num(activity.net),
    });
    let (description, items) = match &activity.kind {
        ActivityKind::Trade(trade) => {
            let buying = trade.quantity > Decimal::ZERO;
            entry["settlementDate"] = json!(settlement_time(trade.settlement));
            entry["positionId"] = json!(trade.position_id);
            entry["orderId"] = json!(trade.order_id);
            let mut items = vec![json!({"instrument": currency_usd(), "amount": 0, "cost": num(-trade.commission),
                                        "feeType": "COMMISSION"})];
            if !trade.sec_fee.is_zero() {
                items.push(json!({"instrument": currency_usd(), "amount": 0, "cost": num(-trade.sec_fee),
                                  "feeType": "SEC_FEE"}));
            }
            let cost = if buying { -trade.principal } else { trade.principal };
            items.push(json!({
                "instrument": instrument(trade.security, trade.price),
                "amount": num(trade.quantity),
                "cost": num(cost),
                "price": num(trade.price),
                "positionEffect": if buying { "OPENING" } else { "CLOSING" },
            }));
            (if buying { "BUY TRADE" } else { "SELL TRADE" }, items)
        }
        ActivityKind::Dividend { security, description } => {
            let price = customer.price(security, activity.time.date());
            (
                *description,
                vec![json!({"instrument": instrument(security, price), "amount": num(activity.net), "cost": 0})],
            )
        }
        ActivityKind::Interest => ("CREDIT INTEREST", cash_items(activity.net)),
        ActivityKind::Transfer { description, .. }
        | ActivityKind::Journal { description }
        | ActivityKind::Fee { description } => (*description, cash_items(activity.net)),
    };
    if entry.get("settlementDate").is_none() {
        entry["settlementDate"] = json!(settlement_time(activity.time.date()));
    }
    entry["description"] = json!(description);
    entry["transferItems"] = Value::Array(items);
    entry
}

fn cash_items(net: Decimal) -> Vec<Value> {
    vec![json!({"instrument": currency_usd(), "amount": num(net), "cost": 0})]
}

/// Settlement dates are written as midnight New York time, as in Schwab's answers.
fn settlement_time(day: Date) -> String {
    schwab_time(day.with_hms(4, 0, 0).map_or(OffsetDateTime::UNIX_EPOCH, |moment| moment.assume_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_up_to_the_last_representable_day_are_checked_without_overflow() {
        // Found by the API fuzzer: a sync of 9999-12-31 made the year check overflow and the sandbox panic.
        let query =
            parse_transaction_query(Some("startDate=9999-12-31T00:00:00.000Z&endDate=9999-12-31T23:59:59.999Z"));
        assert!(query.is_ok());
        assert_eq!(one_year_after(time::macros::datetime!(9999-12-31 0:00 UTC)), None);
        let leap = one_year_after(time::macros::datetime!(2024-02-29 12:00 UTC));
        assert_eq!(leap, Some(time::macros::datetime!(2025-02-28 12:00 UTC)));
        let too_long =
            parse_transaction_query(Some("startDate=2024-01-01T00:00:00.000Z&endDate=2025-01-02T00:00:00.000Z"));
        assert!(too_long.is_err());
    }
}
