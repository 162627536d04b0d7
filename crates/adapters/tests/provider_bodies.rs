//! Property: whatever a provider answers — arbitrary bytes, or arbitrary JSON built from the field names the
//! connectors read — no connector panics; each call ends `Ok` or in a `ConnectorError` (an unreadable body is
//! `InvalidResponse`).

use dashtam_adapters::providers::{AlpacaConnector, AlpacaSettings, HttpTimeouts, SchwabConnector, SchwabSettings};
use dashtam_domain::connector::{ApiKeyCredentials, Connector, ConnectorError, DateRange, ProviderAuth};
use dashtam_domain::finance::{AccountType, ProviderAccount};
use dashtam_domain::money::Currency;
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Map, Value};
use time::macros::date;
use wiremock::matchers::any as any_request;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEYS: &[&str] = &[
    "accountNumber",
    "hashValue",
    "accounts",
    "type",
    "nickName",
    "securitiesAccount",
    "positions",
    "currentBalances",
    "liquidationValue",
    "availableFunds",
    "cashAvailableForWithdrawal",
    "longQuantity",
    "shortQuantity",
    "averagePrice",
    "marketValue",
    "instrument",
    "assetType",
    "symbol",
    "description",
    "activityId",
    "time",
    "status",
    "netAmount",
    "transferItems",
    "amount",
    "cost",
    "price",
    "feeType",
    "access_token",
    "refresh_token",
    "token_type",
    "expires_in",
    "scope",
    "error",
    "id",
    "account_number",
    "currency",
    "cash",
    "equity",
    "qty",
    "side",
    "market_value",
    "asset_class",
    "activity_type",
    "date",
    "net_amount",
    "transaction_time",
    "avg_entry_price",
    "current_price",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just("EQUITY".to_owned()),
            Just("VALID".to_owned()),
            Just("PENDING".to_owned()),
            Just("FILL".to_owned()),
            Just("buy".to_owned()),
            Just("2025-03-28T21:10:42+0000".to_owned()),
            Just("2025-03-28".to_owned()),
            Just("12.5".to_owned()),
            Just("Bearer".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(key, value)| (key.to_owned(), value)).collect::<Map<_, _>>())
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|value| serde_json::to_vec(&value).unwrap_or_default()),
        // Lists of objects, the shape most endpoints answer.
        prop::collection::vec(json_value(), 0..4)
            .prop_map(|values| serde_json::to_vec(&Value::Array(values)).unwrap_or_default()),
    ]
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
    schwab: SchwabConnector,
    alpaca: AlpacaConnector,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let server = runtime.block_on(MockServer::start());
    let base_url: url::Url = server.uri().parse().expect("url");
    let timeouts = HttpTimeouts::default();
    let schwab = SchwabConnector::new(
        SchwabSettings {
            base_url: base_url.clone(),
            client_id: "id".to_owned(),
            client_secret: SecretString::from("secret"),
            use_pkce: false,
        },
        &timeouts,
    )
    .expect("schwab");
    let alpaca = AlpacaConnector::new(AlpacaSettings { base_url }, &timeouts).expect("alpaca");
    Fixture { runtime, server, schwab, alpaca }
}

fn account() -> ProviderAccount {
    ProviderAccount {
        provider_account_id: "H".to_owned(),
        api_handle: "H".to_owned(),
        name: "n".to_owned(),
        account_type: AccountType::Brokerage,
        number_masked: "••••0000".to_owned(),
        currency: Currency::USD,
        balance: Default::default(),
        available_balance: None,
        positions: Vec::new(),
    }
}

/// Every call against the same answer; any panic fails the property, and errors must be ones we defined.
async fn every_call(fixture: &Fixture) -> Vec<Result<(), ConnectorError>> {
    let token = SecretString::from("t");
    let keys = ApiKeyCredentials { api_key: SecretString::from("k"), api_secret: SecretString::from("s") };
    let range = DateRange { start: date!(2025 - 01 - 01), end: date!(2025 - 01 - 31) };
    let account = account();
    vec![
        fixture.schwab.accounts(ProviderAuth::Bearer(&token)).await.map(drop),
        fixture.schwab.transactions(ProviderAuth::Bearer(&token), &account, range).await.map(drop),
        fixture.schwab.exchange_code("c", None, "http://127.0.0.1/cb").await.map(drop),
        fixture.schwab.refresh_tokens(&token).await.map(drop),
        fixture.alpaca.verify_api_key(&keys).await,
        fixture.alpaca.accounts(ProviderAuth::ApiKey(&keys)).await.map(drop),
        fixture.alpaca.transactions(ProviderAuth::ApiKey(&keys), &account, range).await.map(drop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn provider_bodies_never_panic(body in body()) {
        thread_local! {
            static FIXTURE: Fixture = fixture();
        }
        let (results, received) = FIXTURE.with(|fixture| {
            fixture.runtime.block_on(async {
                fixture.server.reset().await;
                Mock::given(any_request())
                    .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "application/json"))
                    .mount(&fixture.server)
                    .await;
                let results = every_call(fixture).await;
                let received = fixture.server.received_requests().await.map_or(0, |requests| requests.len());
                (results, received)
            })
        });
        // Each call reached the fake provider at least once.
        prop_assert!(received >= 7, "only {received} requests");
        for result in results {
            prop_assert!(
                matches!(result, Ok(()) | Err(ConnectorError::InvalidResponse(_))),
                "{result:?} for {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
