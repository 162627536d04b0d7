//! The Alpaca connector against a local fake of Alpaca's trading API (wiremock).

use dashtam_adapters::providers::{AlpacaConnector, AlpacaSettings, HttpTimeouts};
use dashtam_domain::connector::{ApiKeyCredentials, Connector, ConnectorError, DateRange, ProviderAuth};
use dashtam_domain::finance::{AccountType, AssetType, TransactionStatus, TransactionSubtype, TransactionType};
use dashtam_domain::money::Currency;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::macros::date;
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn connector(server: &MockServer) -> AlpacaConnector {
    AlpacaConnector::new(AlpacaSettings { base_url: server.uri().parse().expect("url") }, &HttpTimeouts::default())
        .expect("connector")
}

fn keys(secret: &str) -> ApiKeyCredentials {
    ApiKeyCredentials { api_key: SecretString::from("PKTESTKEY"), api_secret: SecretString::from(secret) }
}

fn account_body() -> Value {
    json!({"id":"904837e3-3b76-47ec-b432-046db621571b","account_number":"PA3ABCD12345","status":"ACTIVE",
           "currency":"USD","cash":"1234.5600","portfolio_value":"10234.5612","equity":"10234.5612",
           "buying_power":"2469.12","pattern_day_trader":false})
}

/// The account answers only the right key pair; anything else gets 401, as Alpaca does.
async fn mount_account(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/v2/account"))
        .and(header("APCA-API-KEY-ID", "PKTESTKEY"))
        .and(header("APCA-API-SECRET-KEY", "right-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(account_body()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"code":40110000,"message":"request is not authorized"})),
        )
        .with_priority(10)
        .mount(server)
        .await;
}

#[tokio::test]
async fn verify_api_key_accepts_the_right_pair_and_refuses_a_wrong_one() {
    let server = MockServer::start().await;
    mount_account(&server).await;
    let connector = connector(&server);
    connector.verify_api_key(&keys("right-secret")).await.expect("accepted");
    let error = connector.verify_api_key(&keys("wrong-secret")).await.expect_err("refused");
    assert!(matches!(error, ConnectorError::Unauthorized), "{error:?}");
    assert!(error.needs_reconnection());
}

#[tokio::test]
async fn accounts_read_money_strings_exactly() {
    let server = MockServer::start().await;
    mount_account(&server).await;
    Mock::given(method("GET"))
        .and(path("/v2/positions"))
        .and(header("APCA-API-KEY-ID", "PKTESTKEY"))
        .and(header("APCA-API-SECRET-KEY", "right-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"asset_id":"b0b6dd9d","symbol":"AAPL","exchange":"NASDAQ","asset_class":"us_equity","qty":"10",
             "avg_entry_price":"150.1234","side":"long","market_value":"1523.40","cost_basis":"1501.234",
             "unrealized_pl":"22.166","current_price":"152.34"},
            {"asset_id":"c1","symbol":"BTCUSD","exchange":"FTXU","asset_class":"crypto","qty":"0.012345678",
             "avg_entry_price":"40000","side":"long","market_value":"500.00","current_price":"40500.01"},
            {"asset_id":"d2","symbol":"AAPL250620C00150000","asset_class":"us_option","qty":"-2",
             "avg_entry_price":"3.1","side":"short","market_value":"-640","current_price":"3.2"},
            {"asset_id":"e3","symbol":"ODD","asset_class":"something_new","qty":"1","side":"long",
             "market_value":"1"}])))
        .mount(&server)
        .await;
    let keys = keys("right-secret");
    let accounts = connector(&server).accounts(ProviderAuth::ApiKey(&keys)).await.expect("accounts");
    let [account] = &accounts[..] else { panic!("{accounts:?}") };
    assert_eq!(account.provider_account_id, "904837e3-3b76-47ec-b432-046db621571b");
    assert_eq!(account.api_handle, account.provider_account_id);
    assert_eq!(account.account_type, AccountType::Brokerage);
    assert_eq!(account.number_masked, "••••2345");
    assert_eq!(account.currency, Currency::USD);
    assert_eq!(account.balance.to_string(), "10234.5612");
    assert_eq!(account.available_balance.map(|d| d.to_string()).as_deref(), Some("1234.5600"));
    let [apple, bitcoin, option, odd] = &account.positions[..] else { panic!("{:?}", account.positions) };
    assert_eq!(apple.asset_type, AssetType::Equity);
    assert_eq!(apple.average_cost.map(|d| d.to_string()).as_deref(), Some("150.1234"));
    assert_eq!(apple.market_value.to_string(), "1523.40");
    assert_eq!(apple.price.map(|d| d.to_string()).as_deref(), Some("152.34"));
    assert_eq!(bitcoin.asset_type, AssetType::Crypto);
    assert_eq!(bitcoin.quantity.to_string(), "0.012345678");
    assert_eq!(option.asset_type, AssetType::Option);
    assert_eq!(option.quantity.to_string(), "-2");
    assert_eq!(odd.asset_type, AssetType::Other);
    assert_eq!(odd.average_cost, None);
}

#[tokio::test]
async fn accounts_with_a_bearer_token_are_unsupported() {
    let server = MockServer::start().await;
    let token = SecretString::from("t");
    let error = connector(&server).accounts(ProviderAuth::Bearer(&token)).await.expect_err("unsupported");
    assert!(matches!(error, ConnectorError::Unsupported));
}

fn dividend(id: String) -> Value {
    json!({"id":id,"activity_type":"DIV","date":"2025-02-03","net_amount":"1.10","symbol":"AAPL","qty":"10",
           "per_share_amount":"0.11","status":"executed","description":"Cash DIV @ 0.11"})
}

#[tokio::test]
async fn transactions_follow_pages_until_a_short_one() {
    let server = MockServer::start().await;
    let page = |from: usize, count: usize| -> Vec<Value> {
        (from..from + count).map(|n| dividend(format!("20250203000000000::{n:05}"))).collect()
    };
    let mount = |token: Option<String>, body: Vec<Value>| {
        let mut mock = Mock::given(method("GET"))
            .and(path("/v2/account/activities"))
            .and(header("APCA-API-KEY-ID", "PKTESTKEY"))
            .and(header("APCA-API-SECRET-KEY", "right-secret"))
            .and(query_param("after", "2025-01-31"))
            .and(query_param("until", "2025-03-01"))
            .and(query_param("direction", "desc"))
            .and(query_param("page_size", "100"));
        mock = match token {
            Some(token) => mock.and(query_param("page_token", token)),
            None => mock.and(query_param_is_missing("page_token")),
        };
        mock.respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(body))).expect(1)
    };
    let mut first = page(0, 99);
    first.insert(
        0,
        json!({"id":"20250228143001123::f1","activity_type":"FILL","transaction_time":"2025-02-28T14:30:01.123Z",
               "type":"fill","price":"150.25","qty":"3","side":"buy","symbol":"AAPL","leaves_qty":"0",
               "order_id":"o1","cum_qty":"3","order_status":"filled"}),
    );
    server.register(mount(None, first)).await;
    server.register(mount(Some("20250203000000000::00098".to_owned()), page(100, 100))).await;
    let mut last = page(200, 3);
    last.push(json!({"id":"csd-1","activity_type":"CSD","date":"2025-02-01","net_amount":"5000","status":"executed"}));
    last.push(json!({"id":"old","activity_type":"CSD","date":"2025-01-31","net_amount":"1","status":"executed"}));
    last.push(json!({"id":"gone","activity_type":"FEE","date":"2025-02-01","net_amount":"-1","status":"canceled"}));
    server.register(mount(Some("20250203000000000::00199".to_owned()), last)).await;

    let keys = keys("right-secret");
    let range = DateRange { start: date!(2025 - 02 - 01), end: date!(2025 - 02 - 28) };
    let account = dashtam_domain::finance::ProviderAccount {
        provider_account_id: "acct".to_owned(),
        api_handle: "acct".to_owned(),
        name: "Alpaca".to_owned(),
        account_type: AccountType::Brokerage,
        number_masked: "••••2345".to_owned(),
        currency: Currency::USD,
        balance: Default::default(),
        available_balance: None,
        positions: Vec::new(),
    };
    let transactions =
        connector(&server).transactions(ProviderAuth::ApiKey(&keys), &account, range).await.expect("transactions");
    // 100 + 100 + 3 dividends/fill, the deposit; not the day-before one nor the canceled fee.
    assert_eq!(transactions.len(), 204);
    let fill = &transactions[0];
    assert_eq!(fill.provider_transaction_id, "20250228143001123::f1");
    assert_eq!((fill.transaction_type, fill.subtype), (TransactionType::Trade, Some(TransactionSubtype::Buy)));
    assert_eq!(fill.amount.to_string(), "-450.75");
    assert_eq!(fill.quantity.map(|d| d.to_string()).as_deref(), Some("3"));
    assert_eq!(fill.unit_price.map(|d| d.to_string()).as_deref(), Some("150.25"));
    assert_eq!(fill.posted_on, date!(2025 - 02 - 28));
    let dividend = &transactions[1];
    assert_eq!(
        (dividend.transaction_type, dividend.subtype),
        (TransactionType::Income, Some(TransactionSubtype::Dividend))
    );
    assert_eq!(dividend.amount.to_string(), "1.10");
    assert_eq!(dividend.symbol.as_deref(), Some("AAPL"));
    assert_eq!(dividend.status, TransactionStatus::Posted);
    assert_eq!(dividend.posted_at, None);
    let deposit = transactions.iter().find(|t| t.provider_transaction_id == "csd-1").expect("deposit");
    assert_eq!(
        (deposit.transaction_type, deposit.subtype),
        (TransactionType::Transfer, Some(TransactionSubtype::Deposit))
    );
    assert_eq!(deposit.amount.to_string(), "5000");
}
