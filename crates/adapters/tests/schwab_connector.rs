//! The Schwab connector against a local fake of Schwab's OAuth and Trader API (wiremock), per
//! `docs/schwab-wire.md`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use dashtam_adapters::providers::{HttpTimeouts, SchwabConnector, SchwabSettings};
use dashtam_domain::connector::{AuthorizationRequest, Connector, ConnectorError, DateRange, ProviderAuth};
use dashtam_domain::finance::{
    AccountType, AssetType, ProviderAccount, TransactionStatus, TransactionSubtype, TransactionType,
};
use dashtam_domain::money::Currency;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use time::macros::{date, datetime};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const CLIENT_ID: &str = "dashtamclient";
const CLIENT_SECRET: &str = "s3cretValue";
const HASH: &str = "0A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F9";

fn connector(server: &MockServer, use_pkce: bool) -> SchwabConnector {
    connector_with(server, use_pkce, HttpTimeouts::default())
}

fn connector_with(server: &MockServer, use_pkce: bool, timeouts: HttpTimeouts) -> SchwabConnector {
    SchwabConnector::new(
        SchwabSettings {
            base_url: server.uri().parse().expect("server URL"),
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CLIENT_SECRET),
            use_pkce,
        },
        &timeouts,
    )
    .expect("connector")
}

/// Matches a form body holding exactly these pairs, in any order.
struct FormIs(Vec<(&'static str, &'static str)>);

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let form: HashMap<String, String> = form_urlencoded::parse(&request.body).into_owned().collect();
        let expected: HashMap<String, String> =
            self.0.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        form == expected
    }
}

fn basic_auth() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")))
}

fn token_answer(refresh_token: Option<&str>) -> ResponseTemplate {
    let mut body = json!({"expires_in":1800,"token_type":"Bearer","scope":"api","access_token":"new-access",
                          "id_token":"eyJ.x.y"});
    if let Some(refresh_token) = refresh_token {
        body["refresh_token"] = json!(refresh_token);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn authorization_url_names_the_flow_and_the_pkce_challenge() {
    let server = MockServer::start().await;
    let request = AuthorizationRequest {
        state: "st4te",
        redirect_uri: "http://127.0.0.1:8000/api/v1/oauth/schwab/callback",
        code_challenge: Some("chall-enge"),
    };
    let url = connector(&server, true).authorization_url(&request).expect("url");
    assert_eq!(
        url,
        format!(
            "{}/v1/oauth/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8000\
             %2Fapi%2Fv1%2Foauth%2Fschwab%2Fcallback&state=st4te&code_challenge=chall-enge&code_challenge_method=S256",
            server.uri()
        )
    );
    let plain = connector(&server, false);
    assert!(!plain.uses_pkce());
    assert!(!plain.authorization_url(&request).expect("url").contains("code_challenge"));
}

#[tokio::test]
async fn a_base_path_is_kept() {
    let server = MockServer::start().await;
    let connector = SchwabConnector::new(
        SchwabSettings {
            base_url: format!("{}/sandbox", server.uri()).parse().expect("url"),
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::from(CLIENT_SECRET),
            use_pkce: false,
        },
        &HttpTimeouts::default(),
    )
    .expect("connector");
    Mock::given(method("POST"))
        .and(path("/sandbox/v1/oauth/token"))
        .respond_with(token_answer(Some("r")))
        .expect(1)
        .mount(&server)
        .await;
    connector.refresh_tokens(&SecretString::from("old")).await.expect("refresh");
}

#[tokio::test]
async fn the_code_exchange_uses_basic_auth_and_a_form_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .and(header("authorization", basic_auth().as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(FormIs(vec![
            ("grant_type", "authorization_code"),
            ("code", "the-code"),
            ("redirect_uri", "http://127.0.0.1:8000/cb"),
            ("code_verifier", "the-verifier-the-verifier-the-verifier-0123"),
        ]))
        .respond_with(token_answer(Some("first-refresh")))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = connector(&server, true)
        .exchange_code("the-code", Some("the-verifier-the-verifier-the-verifier-0123"), "http://127.0.0.1:8000/cb")
        .await
        .expect("tokens");
    assert_eq!(tokens.access_token.expose_secret(), "new-access");
    assert_eq!(tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()).as_deref(), Some("first-refresh"));
    assert_eq!(tokens.expires_in, Some(Duration::from_secs(1800)));
    assert_eq!(tokens.scope.as_deref(), Some("api"));
}

#[tokio::test]
async fn refresh_reports_a_new_an_omitted_or_the_same_refresh_token() {
    for (answered, expected) in
        [(Some("rotated"), Some("rotated")), (None, None), (Some("old-refresh"), Some("old-refresh"))]
    {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/oauth/token"))
            .and(header("authorization", basic_auth().as_str()))
            .and(FormIs(vec![("grant_type", "refresh_token"), ("refresh_token", "old-refresh")]))
            .respond_with(token_answer(answered))
            .expect(1)
            .mount(&server)
            .await;
        let tokens =
            connector(&server, false).refresh_tokens(&SecretString::from("old-refresh")).await.expect("tokens");
        assert_eq!(tokens.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()).as_deref(), expected);
        assert_eq!(tokens.access_token.expose_secret(), "new-access");
    }
}

#[tokio::test]
async fn token_endpoint_failures_map_to_connector_errors() {
    let cases = [
        (400, json!({"error":"invalid_grant","error_description":"expired"}), "InvalidGrant"),
        (401, json!({"error":"invalid_client","error_description":"who?"}), "Unauthorized"),
        (400, json!({"error":"invalid_request"}), "Rejected400"),
        (400, json!({"error":"unsupported_grant_type"}), "Rejected400"),
        (503, json!({"message":"down"}), "Unavailable503"),
    ];
    for (status, body, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/oauth/token"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let error = connector(&server, false).refresh_tokens(&SecretString::from("r")).await.expect_err("fails");
        let got = match error {
            ConnectorError::InvalidGrant => "InvalidGrant".to_owned(),
            ConnectorError::Unauthorized => "Unauthorized".to_owned(),
            ConnectorError::Rejected { status } => format!("Rejected{status}"),
            ConnectorError::Unavailable { status } => format!("Unavailable{status}"),
            other => format!("{other:?}"),
        };
        assert_eq!(got, expected, "{status}");
    }
}

#[tokio::test]
async fn a_token_response_without_an_access_token_is_invalid_naming_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token_type":"Bearer","expires_in":1800})))
        .mount(&server)
        .await;
    let error = connector(&server, false).refresh_tokens(&SecretString::from("r")).await.expect_err("fails");
    let ConnectorError::InvalidResponse(text) = error else { panic!("{error:?}") };
    assert!(text.contains("access_token"), "{text}");
}

#[tokio::test]
async fn the_token_call_never_follows_a_redirect() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", format!("{}/elsewhere", server.uri())))
        .mount(&server)
        .await;
    Mock::given(path("/elsewhere")).respond_with(token_answer(Some("r"))).expect(0).mount(&server).await;
    let error = connector(&server, false).exchange_code("c", None, "http://127.0.0.1/cb").await.expect_err("fails");
    assert!(matches!(error, ConnectorError::Rejected { status: 302 }), "{error:?}");
}

#[tokio::test]
async fn an_oversized_token_answer_is_refused() {
    let server = MockServer::start().await;
    let huge = format!("{{\"access_token\":\"{}\",\"token_type\":\"Bearer\"}}", "a".repeat(70 * 1024));
    Mock::given(method("POST"))
        .and(path("/v1/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
        .mount(&server)
        .await;
    let error = connector(&server, false).refresh_tokens(&SecretString::from("r")).await.expect_err("fails");
    assert!(matches!(&error, ConnectorError::InvalidResponse(text) if text == "response body too large"), "{error:?}");
}

fn accounts_body() -> Value {
    json!([{"securitiesAccount":{"type":"MARGIN","accountNumber":"12345678","roundTrips":0,"isDayTrader":false,
        "positions":[
          {"shortQuantity":0,"averagePrice":150.12,"longQuantity":20,"marketValue":3050.4,
           "instrument":{"assetType":"EQUITY","cusip":"037833100","symbol":"AAPL","description":"APPLE INC",
                         "type":"COMMON_STOCK"}},
          {"shortQuantity":0,"averagePrice":400.1,"longQuantity":3,"marketValue":1234.567,
           "instrument":{"assetType":"COLLECTIVE_INVESTMENT","symbol":"SPY","type":"EXCHANGE_TRADED_FUND"}},
          {"shortQuantity":5,"averagePrice":10,"longQuantity":0,"marketValue":-50.5,
           "instrument":{"assetType":"WARRANT","symbol":"XYZW"}}],
        "initialBalances":{"cashBalance":1000.0,"liquidationValue":4050.4},
        "currentBalances":{"cashBalance":1000.0,"availableFunds":1000.01,"buyingPower":2000.0,
                           "liquidationValue":4050.4,"equity":4050.4}},
       "aggregatedBalance":{"currentLiquidationValue":4050.4,"liquidationValue":4050.4}},
      {"securitiesAccount":{"type":"CASH","accountNumber":"87654321",
        "currentBalances":{"liquidationValue":0.1,"cashAvailableForWithdrawal":0.1}}}])
}

async fn mount_accounts(server: &MockServer, preference: ResponseTemplate, accounts: Value) {
    Mock::given(method("GET"))
        .and(path("/trader/v1/accounts/accountNumbers"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"accountNumber":"12345678","hashValue":HASH},
            {"accountNumber":"87654321","hashValue":"FFFF"}])))
        .mount(server)
        .await;
    Mock::given(method("GET")).and(path("/trader/v1/userPreference")).respond_with(preference).mount(server).await;
    Mock::given(method("GET"))
        .and(path("/trader/v1/accounts"))
        .and(query_param("fields", "positions"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(accounts))
        .mount(server)
        .await;
}

fn token() -> SecretString {
    SecretString::from("access-1")
}

#[tokio::test]
async fn accounts_join_numbers_preferences_and_positions() {
    let server = MockServer::start().await;
    let preference = ResponseTemplate::new(200).set_body_json(json!({"accounts":[
        {"accountNumber":"12345678","primaryAccount":true,"type":"BROKERAGE","nickName":"Individual"},
        {"accountNumber":"87654321","type":"IRA","nickName":"Roth Contributory IRA"}],
        "streamerInfo":[],"offers":[]}));
    mount_accounts(&server, preference, accounts_body()).await;
    let token = token();
    let accounts = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect("accounts");
    assert_eq!(accounts.len(), 2);
    let first = &accounts[0];
    assert_eq!(first.provider_account_id, HASH);
    assert_eq!(first.api_handle, HASH);
    assert_eq!(first.name, "Individual");
    assert_eq!(first.account_type, AccountType::Brokerage);
    assert_eq!(first.number_masked, "••••5678");
    assert_eq!(first.currency, Currency::USD);
    assert_eq!(first.balance.to_string(), "4050.4");
    assert_eq!(first.available_balance.map(|d| d.to_string()).as_deref(), Some("1000.01"));
    let [apple, spy, warrant] = &first.positions[..] else { panic!("{:?}", first.positions) };
    assert_eq!((apple.symbol.as_str(), apple.asset_type), ("AAPL", AssetType::Equity));
    assert_eq!(apple.name.as_deref(), Some("APPLE INC"));
    assert_eq!(apple.quantity.to_string(), "20");
    assert_eq!(apple.average_cost.map(|d| d.to_string()).as_deref(), Some("150.12"));
    assert_eq!(apple.price.map(|d| d.to_string()).as_deref(), Some("152.52"));
    assert_eq!(apple.market_value.to_string(), "3050.4");
    assert_eq!(spy.asset_type, AssetType::Etf);
    assert_eq!(spy.price.map(|d| d.to_string()).as_deref(), Some("411.5223"));
    assert_eq!(warrant.asset_type, AssetType::Other);
    assert_eq!(warrant.quantity.to_string(), "-5");
    assert_eq!(warrant.price.map(|d| d.to_string()).as_deref(), Some("10.1"));
    let second = &accounts[1];
    assert_eq!(second.account_type, AccountType::RothIra);
    assert_eq!(second.api_handle, "FFFF");
    assert_eq!(second.available_balance.map(|d| d.to_string()).as_deref(), Some("0.1"));
    assert!(second.positions.is_empty());
}

#[tokio::test]
async fn accounts_survive_a_failing_user_preference() {
    let server = MockServer::start().await;
    mount_accounts(&server, ResponseTemplate::new(500), accounts_body()).await;
    let token = token();
    let accounts = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect("accounts");
    assert_eq!(accounts[0].account_type, AccountType::Brokerage);
    assert_eq!(accounts[0].name, "Schwab margin account ••••5678");
}

#[tokio::test]
async fn a_missing_required_field_is_invalid_naming_it() {
    let server = MockServer::start().await;
    let mut body = accounts_body();
    body[1]["securitiesAccount"]["currentBalances"].as_object_mut().expect("object").remove("liquidationValue");
    mount_accounts(&server, ResponseTemplate::new(404), body).await;
    let token = token();
    let error = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect_err("fails");
    let ConnectorError::InvalidResponse(text) = error else { panic!("{error:?}") };
    assert!(text.contains("[1].securitiesAccount.currentBalances") && text.contains("liquidationValue"), "{text}");
}

#[tokio::test]
async fn data_call_statuses_map_to_connector_errors() {
    for (status, expected) in
        [(401, "Unauthorized"), (403, "Unauthorized"), (503, "Unavailable503"), (404, "Rejected404")]
    {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(status)).mount(&server).await;
        let token = token();
        let error = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect_err("fails");
        let got = match error {
            ConnectorError::Unauthorized => "Unauthorized".to_owned(),
            ConnectorError::Unavailable { status } => format!("Unavailable{status}"),
            ConnectorError::Rejected { status } => format!("Rejected{status}"),
            other => format!("{other:?}"),
        };
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_within_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/trader/v1/accounts/accountNumbers"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_accounts(&server, ResponseTemplate::new(500), accounts_body()).await;
    let token = token();
    let started = Instant::now();
    let accounts = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect("accounts");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(accounts.len(), 2);
}

#[tokio::test]
async fn a_429_whose_wait_does_not_fit_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "120"))
        .mount(&server)
        .await;
    let token = token();
    let started = Instant::now();
    let error = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect_err("fails");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(error, ConnectorError::RateLimited { retry_after: Some(wait) } if wait == Duration::from_secs(120)),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_oversized_data_answer_is_refused() {
    let server = MockServer::start().await;
    let huge = format!("[{}]", "0,".repeat(8 * 1024 * 1024 + 1).trim_end_matches(','));
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
        .mount(&server)
        .await;
    let token = token();
    let error = connector(&server, false).accounts(ProviderAuth::Bearer(&token)).await.expect_err("fails");
    assert!(matches!(&error, ConnectorError::InvalidResponse(text) if text == "response body too large"), "{error:?}");
}

fn account() -> ProviderAccount {
    ProviderAccount {
        provider_account_id: HASH.to_owned(),
        api_handle: HASH.to_owned(),
        name: "Individual".to_owned(),
        account_type: AccountType::Brokerage,
        number_masked: "••••5678".to_owned(),
        currency: Currency::USD,
        balance: Default::default(),
        available_balance: None,
        positions: Vec::new(),
    }
}

fn activity(id: u64, status: &str) -> Value {
    json!({"activityId":id,"time":"2025-01-01T12:00:00+0000","accountNumber":"12345678","type":"ACH_RECEIPT",
           "status":status,"netAmount":100.1,"description":"ACH DEPOSIT","transferItems":[]})
}

async fn mount_window(server: &MockServer, start: &str, end: &str, body: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/trader/v1/accounts/{HASH}/transactions")))
        .and(query_param("startDate", start))
        .and(query_param("endDate", end))
        .and(query_param(
            "types",
            "TRADE,RECEIVE_AND_DELIVER,DIVIDEND_OR_INTEREST,ACH_RECEIPT,ACH_DISBURSEMENT,CASH_RECEIPT,\
             CASH_DISBURSEMENT,ELECTRONIC_FUND,WIRE_OUT,WIRE_IN,JOURNAL,MEMORANDUM,MARGIN_CALL,MONEY_MARKET,\
             SMA_ADJUSTMENT",
        ))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn transactions_map_trades_and_skip_invalid_and_canceled() {
    let server = MockServer::start().await;
    let body = json!([
        {"activityId":95512265692u64,"time":"2025-03-28T21:10:42+0000","accountNumber":"12345678","type":"TRADE",
         "status":"VALID","subAccount":"CASH","tradeDate":"2025-03-28T21:10:42+0000","positionId":2670011341u64,
         "orderId":1000123456,"netAmount":-1502.35,"description":"BUY TRADE",
         "transferItems":[
           {"instrument":{"assetType":"CURRENCY","status":"ACTIVE","symbol":"CURRENCY_USD","description":"USD currency",
                          "instrumentId":1,"closingPrice":0},"amount":0,"cost":-0.35,"feeType":"COMMISSION"},
           {"instrument":{"assetType":"CURRENCY","symbol":"CURRENCY_USD"},"amount":0,"cost":0,"feeType":"SEC_FEE"},
           {"instrument":{"assetType":"EQUITY","status":"ACTIVE","symbol":"AAPL","instrumentId":1973757747u64,
                          "closingPrice":150.2,"type":"COMMON_STOCK"},
            "amount":10,"cost":-1502.0,"price":150.2,"positionEffect":"OPENING"}]},
        {"activityId":2,"time":"2025-03-27T23:30:00+0000","type":"DIVIDEND_OR_INTEREST","status":"PENDING",
         "netAmount":12.34,"description":"ORDINARY DIVIDEND~AAPL",
         "transferItems":[{"instrument":{"assetType":"EQUITY","symbol":"AAPL"},"amount":0,"cost":12.34}]},
        {"activityId":3,"time":"2025-03-26T10:00:00+0000","type":"TRADE","status":"INVALID","netAmount":-1,
         "transferItems":[]},
        {"activityId":4,"time":"2025-03-26T10:00:00+0000","type":"TRADE","status":"CANCELED","netAmount":-1,
         "transferItems":[]},
        {"activityId":5,"time":"2025-03-25T10:00:00+0000","type":"WIRE_OUT","status":"VALID","netAmount":-500,
         "description":"WIRE OUT"}
    ]);
    mount_window(&server, "2025-03-01T00:00:00.000Z", "2025-03-31T23:59:59.999Z", body).await;
    let token = token();
    let range = DateRange { start: date!(2025 - 03 - 01), end: date!(2025 - 03 - 31) };
    let transactions =
        connector(&server, false).transactions(ProviderAuth::Bearer(&token), &account(), range).await.expect("ok");
    let ids: Vec<&str> = transactions.iter().map(|t| t.provider_transaction_id.as_str()).collect();
    assert_eq!(ids, ["95512265692", "2", "5"]);

    let trade = &transactions[0];
    assert_eq!(trade.transaction_type, TransactionType::Trade);
    assert_eq!(trade.subtype, Some(TransactionSubtype::Buy));
    assert_eq!(trade.status, TransactionStatus::Posted);
    assert_eq!(trade.amount.to_string(), "-1502.35");
    assert_eq!(trade.fees.map(|d| d.to_string()).as_deref(), Some("0.35"));
    assert_eq!(trade.quantity.map(|d| d.to_string()).as_deref(), Some("10"));
    assert_eq!(trade.unit_price.map(|d| d.to_string()).as_deref(), Some("150.2"));
    assert_eq!(trade.symbol.as_deref(), Some("AAPL"));
    assert_eq!(trade.posted_on, date!(2025 - 03 - 28));
    assert_eq!(trade.posted_at, Some(datetime!(2025-03-28 21:10:42 UTC)));
    assert_eq!(trade.description, "BUY TRADE");

    let dividend = &transactions[1];
    assert_eq!(dividend.status, TransactionStatus::Pending);
    assert_eq!(
        (dividend.transaction_type, dividend.subtype),
        (TransactionType::Income, Some(TransactionSubtype::Dividend))
    );
    assert_eq!(dividend.symbol.as_deref(), Some("AAPL"));
    assert_eq!(dividend.quantity, None);

    let wire = &transactions[2];
    assert_eq!(
        (wire.transaction_type, wire.subtype),
        (TransactionType::Transfer, Some(TransactionSubtype::Withdrawal))
    );
    assert_eq!(wire.amount.to_string(), "-500");
}

#[tokio::test]
async fn a_range_over_a_year_is_asked_in_windows_of_at_most_365_days() {
    let server = MockServer::start().await;
    mount_window(&server, "2024-01-01T00:00:00.000Z", "2024-12-30T23:59:59.999Z", json!([activity(1, "VALID")])).await;
    mount_window(&server, "2024-12-31T00:00:00.000Z", "2025-03-31T23:59:59.999Z", json!([activity(2, "VALID")])).await;
    let token = token();
    let range = DateRange { start: date!(2024 - 01 - 01), end: date!(2025 - 03 - 31) };
    let transactions =
        connector(&server, false).transactions(ProviderAuth::Bearer(&token), &account(), range).await.expect("ok");
    let mut ids: Vec<&str> = transactions.iter().map(|t| t.provider_transaction_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["1", "2"]);
}

#[tokio::test]
async fn a_full_answer_of_3000_splits_its_window_and_duplicates_are_dropped() {
    let server = MockServer::start().await;
    let capped: Vec<Value> = (100_000..103_000).map(|id| activity(id, "VALID")).collect();
    mount_window(&server, "2025-01-01T00:00:00.000Z", "2025-01-02T23:59:59.999Z", Value::Array(capped)).await;
    // The halves overlap by one id (1999) to show de-duplication.
    let later: Vec<Value> = (0..2000).map(|id| activity(id, "VALID")).collect();
    let earlier: Vec<Value> = (1999..3001).map(|id| activity(id, "VALID")).collect();
    mount_window(&server, "2025-01-02T00:00:00.000Z", "2025-01-02T23:59:59.999Z", Value::Array(later)).await;
    mount_window(&server, "2025-01-01T00:00:00.000Z", "2025-01-01T23:59:59.999Z", Value::Array(earlier)).await;
    let token = token();
    let range = DateRange { start: date!(2025 - 01 - 01), end: date!(2025 - 01 - 02) };
    let transactions =
        connector(&server, false).transactions(ProviderAuth::Bearer(&token), &account(), range).await.expect("ok");
    assert_eq!(transactions.len(), 3001);
    assert!(transactions.iter().all(|t| t.provider_transaction_id.parse::<u64>().is_ok_and(|id| id < 3001)));
    assert_eq!(transactions[0].amount.to_string(), "100.1");
    assert_eq!(transactions[0].subtype, Some(TransactionSubtype::Deposit));
}

#[tokio::test]
async fn a_transaction_without_net_amount_is_invalid_naming_it() {
    let server = MockServer::start().await;
    let mut broken = activity(7, "VALID");
    broken.as_object_mut().expect("object").remove("netAmount");
    mount_window(
        &server,
        "2025-01-01T00:00:00.000Z",
        "2025-01-01T23:59:59.999Z",
        json!([activity(6, "VALID"), broken]),
    )
    .await;
    let token = token();
    let range = DateRange { start: date!(2025 - 01 - 01), end: date!(2025 - 01 - 01) };
    let error = connector(&server, false)
        .transactions(ProviderAuth::Bearer(&token), &account(), range)
        .await
        .expect_err("fails");
    let ConnectorError::InvalidResponse(text) = error else { panic!("{error:?}") };
    assert!(text.contains("[1]") && text.contains("netAmount"), "{text}");
}
