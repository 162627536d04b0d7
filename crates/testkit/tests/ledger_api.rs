//! Financial data over HTTP (API.md §6): accounts with totals, holdings, filtered and cursor-paged
//! transactions, balance history and net worth; bad input and isolation between users. Data is seeded
//! through the store, as a sync or an import would leave it.

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_domain::UserId;
use dashtam_domain::finance::{AccountType, AssetType, TransactionType};
use dashtam_domain::ledger::{
    AccountId, AccountUpsert, BalanceSnapshot, Holding, HoldingId, SnapshotSource, Transaction,
};
use dashtam_domain::money::Currency;
use dashtam_domain::providers::ProviderId;
use dashtam_testkit::TestApp;
use dashtam_testkit::http::{code, created_and_logged_in, get_as, post_as};
use dashtam_testkit::ledger::{dec, purchase};
use serde_json::{Value, json};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-03-31 12:00:00 UTC);

struct Seeded {
    token: String,
    checking: AccountId,
    card: AccountId,
    brokerage: AccountId,
    transactions: Vec<Transaction>,
}

async fn user(app: &TestApp, email: &str) -> (String, UserId, ProviderId) {
    let token = created_and_logged_in(app, email, Role::User).await.access;
    let (_, me) = get_as(app, &token, "/api/v1/auth/me").await;
    let user_id = UserId::from_uuid(Uuid::parse_str(me["id"].as_str().expect("id")).expect("uuid"));
    let (status, provider) =
        post_as(app, &token, "/api/v1/providers", json!({"provider_key": "file_import", "alias": "Statements"})).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    let provider_id = ProviderId::from_uuid(Uuid::parse_str(provider["id"].as_str().expect("id")).expect("uuid"));
    (token, user_id, provider_id)
}

/// A checking account, a card and a brokerage account with 30 transactions, two holdings and snapshots.
async fn seed(app: &TestApp, email: &str) -> Seeded {
    let (token, user_id, provider_id) = user(app, email).await;
    let mut tx = app.state.store.begin().await.expect("begin");
    let upsert = |key: &'static str, name: &'static str, account_type, balance: &str| AccountUpsert {
        user_id,
        provider_id,
        provider_account_id: key,
        name,
        account_type,
        number_masked: Some("••••1234"),
        currency: Currency::USD,
        balance: dec(balance),
        available_balance: None,
        now: NOW,
    };
    let (checking, _) =
        tx.upsert_account(&upsert("chk", "Checking", AccountType::Checking, "1000.00")).await.expect("account");
    let (card, _) = tx.upsert_account(&upsert("card", "Card", AccountType::CreditCard, "-500.00")).await.expect("card");
    let (brokerage, _) =
        tx.upsert_account(&upsert("brk", "Brokerage", AccountType::Brokerage, "2500.50")).await.expect("brokerage");
    let mut transactions: Vec<Transaction> = (0..30)
        .map(|n| {
            let account = if n % 3 == 0 { card } else { checking };
            purchase(user_id, account, date!(2026 - 03 - 01) + Duration::days(n / 2), &format!("-{n}.25"), "Shop", NOW)
        })
        .collect();
    transactions[4].description = "Coffee 100% Arabica".to_owned();
    transactions[7].payee = Some("Acme Payroll".to_owned());
    transactions[7].amount = dec("2500.00");
    transactions[7].transaction_type = TransactionType::Transfer;
    tx.insert_transactions(&transactions).await.expect("transactions");
    for (symbol, asset_type, value, cost) in
        [("AAPL", AssetType::Equity, "1200.00", Some("100.00")), ("VTI", AssetType::Etf, "1300.50", None)]
    {
        let holding = Holding {
            id: HoldingId::generate(),
            account_id: brokerage,
            user_id,
            symbol: symbol.to_owned(),
            name: None,
            asset_type,
            quantity: dec("10"),
            average_cost: cost.map(dec),
            price: None,
            market_value: dec(value),
            currency: Currency::USD,
            is_open: true,
            as_of: NOW,
        };
        tx.put_holding(&holding, NOW).await.expect("holding");
    }
    for (account_id, day, balance) in [
        (checking, 0, "900.00"),
        (checking, 10, "950.00"),
        (card, 5, "-300.00"),
        (checking, 20, "1000.00"),
        (card, 25, "-500.00"),
    ] {
        let snapshot = BalanceSnapshot {
            account_id,
            as_of: datetime!(2026-03-01 10:00:00 UTC) + Duration::days(day),
            balance: dec(balance),
            available_balance: None,
            currency: Currency::USD,
            source: SnapshotSource::Sync,
        };
        tx.insert_balance_snapshot(user_id, &snapshot).await.expect("snapshot");
    }
    tx.commit().await.expect("commit");
    Seeded { token, checking, card, brokerage, transactions }
}

fn ids(body: &Value) -> Vec<String> {
    body["items"].as_array().expect("items").iter().map(|item| item["id"].as_str().expect("id").to_owned()).collect()
}

fn field_codes(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    (error["field"].as_str().unwrap_or("").to_owned(), error["code"].as_str().unwrap_or("").to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn accounts_holdings_and_balances_with_totals() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app, "reader@example.com").await;
    let token = &seeded.token;

    let (status, body) = get_as(&app, token, "/api/v1/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 3);
    let card = &body["items"][1];
    assert_eq!(card["account_type"], "credit_card");
    assert_eq!(card["balance"], "-500.00");
    assert_eq!(card["currency"], "USD");
    assert_eq!(card["account_number_masked"], "••••1234");
    assert_eq!(
        body["totals_by_currency"],
        json!([{"currency": "USD", "assets": "3500.50", "liabilities": "500.00", "net": "3000.50"}])
    );
    let (_, cards) = get_as(&app, token, "/api/v1/accounts?account_type=credit_card").await;
    assert_eq!(ids(&cards), [seeded.card.to_string()]);

    let (status, account) = get_as(&app, token, &format!("/api/v1/accounts/{}", seeded.checking)).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!((account["name"].as_str(), account["is_active"].as_bool()), (Some("Checking"), Some(true)));

    let (status, holdings) = get_as(&app, token, &format!("/api/v1/accounts/{}/holdings", seeded.brokerage)).await;
    assert_eq!(status, StatusCode::OK, "{holdings}");
    let aapl = &holdings["items"][0];
    assert_eq!((aapl["symbol"].as_str(), aapl["cost_basis"].as_str()), (Some("AAPL"), Some("1000.00")));
    assert_eq!(
        (aapl["unrealized_gain"].as_str(), aapl["unrealized_gain_pct"].as_str()),
        (Some("200.00"), Some("20.00"))
    );
    assert_eq!(holdings["items"][1]["cost_basis"], Value::Null);

    let (status, all) = get_as(&app, token, "/api/v1/holdings").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        all["totals_by_currency"],
        json!([{"currency": "USD", "market_value": "2500.50", "cost_basis": "1000.00", "unrealized_gain": "200.00"}])
    );
    let (_, etfs) = get_as(&app, token, "/api/v1/holdings?asset_type=etf").await;
    assert_eq!(etfs["items"].as_array().expect("items").len(), 1);
    let (_, none) = get_as(&app, token, &format!("/api/v1/holdings?account_id={}", seeded.checking)).await;
    assert!(none["items"].as_array().expect("items").is_empty());

    let path = format!("/api/v1/accounts/{}/balances", seeded.checking);
    let (status, balances) = get_as(&app, token, &path).await;
    assert_eq!(status, StatusCode::OK, "{balances}");
    let values: Vec<&str> =
        balances["items"].as_array().expect("items").iter().map(|b| b["balance"].as_str().expect("balance")).collect();
    assert_eq!(values, ["900.00", "950.00", "1000.00"]);
    assert_eq!(balances["items"][0]["as_of"], "2026-03-01T10:00:00Z");
    assert_eq!(balances["items"][0]["source"], "sync");
    let (_, window) = get_as(&app, token, &format!("{path}?from=2026-03-11&to=2026-03-11")).await;
    assert_eq!(window["items"].as_array().expect("items").len(), 1);
    let (_, window) =
        get_as(&app, token, &format!("{path}?from=2026-03-11T10:00:00%2B00:00&to=2026-03-21T09:59:59Z")).await;
    assert_eq!(window["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn transactions_filter_and_page_without_repeats_or_gaps() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app, "pager@example.com").await;
    let token = &seeded.token;
    let mut expected = seeded.transactions.clone();
    expected.sort_by_key(|row| std::cmp::Reverse((row.posted_on, row.id)));
    let expected: Vec<String> = expected.iter().map(|row| row.id.to_string()).collect();

    let (status, all) = get_as(&app, token, "/api/v1/transactions").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), expected);
    assert_eq!(all["next_cursor"], Value::Null);
    let first = &all["items"][0];
    assert_eq!(first["posted_on"], "2026-03-15");
    assert_eq!(first["posted_at"], Value::Null);
    assert_eq!(first["transaction_type"], "spending");
    assert_eq!(first["status"], "posted");

    let mut walked = Vec::new();
    let mut path = "/api/v1/transactions?limit=7".to_owned();
    loop {
        let (status, page) = get_as(&app, token, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/transactions?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, expected);

    let count = |body: &Value| body["items"].as_array().expect("items").len();
    let (_, card) = get_as(&app, token, &format!("/api/v1/transactions?account_id={}", seeded.card)).await;
    assert_eq!(count(&card), 10);
    let (_, range) = get_as(&app, token, "/api/v1/transactions?from=2026-03-02&to=2026-03-03T23:00:00Z").await;
    assert_eq!(count(&range), 4);
    let (_, transfers) = get_as(&app, token, "/api/v1/transactions?type=transfer").await;
    assert_eq!(ids(&transfers), [seeded.transactions[7].id.to_string()]);
    let (_, amounts) = get_as(&app, token, "/api/v1/transactions?min_amount=-3.25&max_amount=-1").await;
    assert_eq!(count(&amounts), 3);
    let (_, income) = get_as(&app, token, "/api/v1/transactions?min_amount=0").await;
    assert_eq!(ids(&income), [seeded.transactions[7].id.to_string()]);
    let (_, search) = get_as(&app, token, "/api/v1/transactions?q=100%25").await;
    assert_eq!(ids(&search), [seeded.transactions[4].id.to_string()]);
    let (_, payee) = get_as(&app, token, "/api/v1/transactions?q=PAYROLL").await;
    assert_eq!(ids(&payee), [seeded.transactions[7].id.to_string()]);

    let one = &seeded.transactions[4];
    let (status, body) = get_as(&app, token, &format!("/api/v1/transactions/{}", one.id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["amount"].as_str(), body["description"].as_str()), (Some("-4.25"), Some("Coffee 100% Arabica")));
}

#[tokio::test]
async fn net_worth_is_carried_forward_per_day_week_and_month() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app, "worth@example.com").await;
    let token = &seeded.token;
    let (status, body) = get_as(&app, token, "/api/v1/net-worth?from=2026-03-01&to=2026-03-07").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = &body["items"][0];
    assert_eq!(item["currency"], "USD");
    assert_eq!(item["current"], json!({"assets": "3500.50", "liabilities": "500.00", "net_worth": "3000.50"}));
    let series: Vec<(&str, &str)> = item["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|point| (point["date"].as_str().expect("date"), point["net_worth"].as_str().expect("value")))
        .collect();
    assert_eq!(
        series,
        [
            ("2026-03-01", "900.00"),
            ("2026-03-02", "900.00"),
            ("2026-03-03", "900.00"),
            ("2026-03-04", "900.00"),
            ("2026-03-05", "900.00"),
            ("2026-03-06", "600.00"),
            ("2026-03-07", "600.00"),
        ]
    );
    let (_, weekly) = get_as(&app, token, "/api/v1/net-worth?from=2026-03-01&to=2026-03-31&interval=week").await;
    let dates: Vec<&str> = weekly["items"][0]["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| p["date"].as_str().expect("date"))
        .collect();
    assert_eq!(dates, ["2026-03-01", "2026-03-08", "2026-03-15", "2026-03-22", "2026-03-29", "2026-03-31"]);
    assert_eq!(weekly["items"][0]["series"][5]["net_worth"], "500.00");
    let (_, monthly) = get_as(&app, token, "/api/v1/net-worth?from=2026-01-15&to=2026-03-31&interval=month").await;
    let values: Vec<&str> = monthly["items"][0]["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|p| p["net_worth"].as_str().expect("value"))
        .collect();
    assert_eq!(values, ["0", "0", "500.00"]);
    let (status, default) = get_as(&app, token, "/api/v1/net-worth").await;
    assert_eq!(status, StatusCode::OK, "{default}");
    assert_eq!(default["items"][0]["series"].as_array().expect("series").len(), 91);
}

#[tokio::test]
async fn bad_input_is_refused_with_field_errors() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app, "careless@example.com").await;
    let token = &seeded.token;
    let balances = format!("/api/v1/accounts/{}/balances", seeded.checking);
    for (path, field, error) in [
        ("/api/v1/transactions?from=2026-03-02&to=2026-03-01".to_owned(), "from", "invalid_range"),
        ("/api/v1/transactions?from=2026-03-02T10:00:00".to_owned(), "from", "naive_datetime"),
        ("/api/v1/transactions?to=yesterday".to_owned(), "to", "invalid_datetime"),
        ("/api/v1/transactions?type=bribe".to_owned(), "type", "invalid_choice"),
        ("/api/v1/transactions?limit=0".to_owned(), "limit", "out_of_range"),
        ("/api/v1/transactions?limit=501".to_owned(), "limit", "out_of_range"),
        ("/api/v1/transactions?limit=ten".to_owned(), "limit", "invalid"),
        ("/api/v1/transactions?min_amount=12,50".to_owned(), "min_amount", "invalid_decimal"),
        ("/api/v1/transactions?min_amount=5&max_amount=1".to_owned(), "min_amount", "invalid_range"),
        ("/api/v1/transactions?account_id=42".to_owned(), "account_id", "invalid_uuid"),
        ("/api/v1/transactions?sort=amount".to_owned(), "sort", "unknown_field"),
        ("/api/v1/accounts?account_type=piggy_bank".to_owned(), "account_type", "invalid_choice"),
        ("/api/v1/accounts?provider_id=nope".to_owned(), "provider_id", "invalid_uuid"),
        ("/api/v1/holdings?asset_type=tulips".to_owned(), "asset_type", "invalid_choice"),
        ("/api/v1/net-worth?interval=year".to_owned(), "interval", "invalid_choice"),
        ("/api/v1/net-worth?from=2026-03-02&to=2026-03-01".to_owned(), "from", "invalid_range"),
        (format!("{balances}?to=2026-03-01T00:00:00"), "to", "naive_datetime"),
        (format!("{balances}?from=2026-03-02&to=2026-03-01"), "from", "invalid_range"),
        ("/api/v1/accounts/not-a-uuid".to_owned(), "id", "invalid_uuid"),
    ] {
        let (status, body) = get_as(&app, token, &path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert!(field_codes(&body).contains(&(field.to_owned(), error.to_owned())), "{path}: {body}");
    }
    let (_, naive) = get_as(&app, token, "/api/v1/net-worth?from=2026-03-02T10:00:00").await;
    assert_eq!(code(&naive), "naive_datetime");

    let (_, page) = get_as(&app, token, "/api/v1/transactions?limit=2").await;
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    for bad in [tampered.as_str(), "garbage", "", &cursor[..cursor.len() - 2]] {
        let (status, body) = get_as(&app, token, &format!("/api/v1/transactions?cursor={bad}")).await;
        if bad.is_empty() {
            continue;
        }
        assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_cursor"), "{bad}: {body}");
    }
}

#[tokio::test]
async fn another_users_data_is_invisible() {
    let app = TestApp::spawn().await;
    let seeded = seed(&app, "owner@example.com").await;
    let (stranger, _, _) = user(&app, "stranger@example.com").await;
    for path in [
        format!("/api/v1/accounts/{}", seeded.checking),
        format!("/api/v1/accounts/{}/holdings", seeded.brokerage),
        format!("/api/v1/accounts/{}/balances", seeded.checking),
        format!("/api/v1/transactions/{}", seeded.transactions[0].id),
        format!("/api/v1/accounts/{}", Uuid::now_v7()),
    ] {
        let (status, body) = get_as(&app, &stranger, &path).await;
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"), "{path}: {body}");
    }
    let (_, accounts) = get_as(&app, &stranger, "/api/v1/accounts").await;
    assert_eq!(accounts, json!({"items": [], "totals_by_currency": []}));
    let (_, holdings) = get_as(&app, &stranger, &format!("/api/v1/holdings?account_id={}", seeded.brokerage)).await;
    assert!(holdings["items"].as_array().expect("items").is_empty());
    let (_, transactions) =
        get_as(&app, &stranger, &format!("/api/v1/transactions?account_id={}", seeded.checking)).await;
    assert_eq!(transactions, json!({"items": [], "next_cursor": null}));
    // A cursor from the owner's walk only ever positions the stranger within their own (empty) data.
    let (_, page) = get_as(&app, &seeded.token, "/api/v1/transactions?limit=2").await;
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let (status, theirs) = get_as(&app, &stranger, &format!("/api/v1/transactions?cursor={cursor}")).await;
    assert_eq!((status, theirs["items"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let (_, worth) = get_as(&app, &stranger, "/api/v1/net-worth").await;
    assert_eq!(worth, json!({"items": []}));
    let anonymous = app.client.get(app.url("/api/v1/accounts")).send().await.expect("send");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_describes_the_financial_routes() {
    let document = serde_json::to_value(dashtam_api::openapi()).expect("document");
    for path in [
        "/api/v1/accounts",
        "/api/v1/accounts/{id}",
        "/api/v1/accounts/{id}/holdings",
        "/api/v1/accounts/{id}/balances",
        "/api/v1/transactions",
        "/api/v1/transactions/{id}",
        "/api/v1/holdings",
        "/api/v1/net-worth",
    ] {
        assert_eq!(document["paths"][path]["get"]["tags"], json!(["ledger"]), "{path}");
    }
    let parameters = document["paths"]["/api/v1/transactions"]["get"]["parameters"].as_array().expect("params");
    let names: Vec<&str> = parameters.iter().map(|p| p["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["account_id", "from", "to", "type", "min_amount", "max_amount", "q", "limit", "cursor"]);
}
