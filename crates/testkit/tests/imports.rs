//! Statement imports end to end: OFX/QFX/CSV uploads, idempotent re-imports, identical twins kept, corrupt
//! files importing nothing, size and type limits, the investment statement's holdings, and the CLI's twin
//! path through the same use case.

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_testkit::http::*;
use dashtam_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../import/tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

async fn app() -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, |config| {
        config.rate_limit.enabled = false;
        config.imports.max_file_size = 64 * 1024;
    })
    .await
}

async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    for (key, value) in fields {
        form = form.text((*key).to_owned(), (*value).to_owned());
    }
    send(app.client.post(app.url("/api/v1/imports")).bearer_auth(token).multipart(form)).await
}

async fn transaction_count(app: &TestApp, token: &str) -> usize {
    let (_, page) = get_as(app, token, "/api/v1/transactions?limit=500").await;
    page["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn an_ofx_file_with_two_accounts_imports_once() {
    let app = app().await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let (status, first) = upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!((first["format"].as_str(), first["accounts_created"].as_u64()), (Some("ofx"), Some(2)));
    assert_eq!((first["transactions_created"].as_u64(), first["transactions_duplicate"].as_u64()), (Some(3), Some(0)));

    let (_, accounts) = get_as(&app, &token, "/api/v1/accounts").await;
    let items = accounts["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{accounts}");
    let card = items.iter().find(|account| account["account_type"] == "credit_card").expect("a card account");
    assert_eq!(card["balance"], "-17.25");
    assert!(!accounts.to_string().contains("CARD-9"), "account numbers are never shown in full");

    let (status, again) = upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!((again["transactions_created"].as_u64(), again["transactions_duplicate"].as_u64()), (Some(0), Some(3)));
    assert_eq!(again["accounts_created"], 0);
    assert_eq!(transaction_count(&app, &token).await, 3);

    let (_, imports) = get_as(&app, &token, "/api/v1/imports").await;
    assert_eq!(imports["items"].as_array().map(Vec::len), Some(2));
    let other = created_and_logged_in(&app, "other@example.com", Role::User).await.access;
    let (_, theirs) = get_as(&app, &other, "/api/v1/imports").await;
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn csv_twins_are_both_kept_and_a_csv_needs_an_account() {
    let app = app().await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let (status, body) = upload(&app, &token, "bank_by_name.csv", fixture("bank_by_name.csv"), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "account_id");

    let (_, ofx) = upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[]).await;
    assert_eq!(ofx["accounts_created"], 2);
    let (_, accounts) = get_as(&app, &token, "/api/v1/accounts").await;
    let checking = accounts["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|account| account["account_type"] == "checking")
        .expect("checking")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = transaction_count(&app, &token).await;
    let (status, csv) =
        upload(&app, &token, "bank_by_name.csv", fixture("bank_by_name.csv"), &[("account_id", &checking)]).await;
    assert_eq!(status, StatusCode::CREATED, "{csv}");
    assert_eq!(csv["format"], "csv");
    let created = csv["transactions_created"].as_u64().expect("count");
    assert_eq!(created, 5, "both identical coffees are kept: {csv}");
    let (_, again) =
        upload(&app, &token, "bank_by_name.csv", fixture("bank_by_name.csv"), &[("account_id", &checking)]).await;
    assert_eq!((again["transactions_created"].as_u64(), again["transactions_duplicate"].as_u64()), (Some(0), Some(5)));
    assert_eq!(transaction_count(&app, &token).await, before + 5);

    let other = created_and_logged_in(&app, "other@example.com", Role::User).await.access;
    let (status, _) =
        upload(&app, &other, "bank_by_name.csv", fixture("bank_by_name.csv"), &[("account_id", &checking)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's account");
}

#[tokio::test]
async fn corrupt_oversized_and_foreign_files_import_nothing() {
    let app = app().await;
    let admin = logged_in_admin(&app, "admin@example.com").await.access;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    for name in ["corrupt_truncated.ofx", "corrupt_missing_trnamt.ofx", "corrupt_bad_date.ofx"] {
        let (status, body) = upload(&app, &token, name, fixture(name), &[]).await;
        assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_statement"), "{name}: {body}");
        assert!(body["detail"].as_str().expect("detail").contains("line"), "{name}: names the place: {body}");
    }
    assert_eq!(transaction_count(&app, &token).await, 0);
    let (_, accounts) = get_as(&app, &token, "/api/v1/accounts").await;
    assert_eq!(accounts["items"].as_array().map(Vec::len), Some(0));
    let (_, imports) = get_as(&app, &token, "/api/v1/imports").await;
    assert_eq!(imports["items"].as_array().map(Vec::len), Some(0), "failed imports are not listed");
    let (_, audit) = get_as(&app, &admin, "/api/v1/admin/audit-logs?action=import.completed").await;
    let failures =
        audit["items"].as_array().expect("items").iter().filter(|entry| entry["outcome"] == "failure").count();
    assert_eq!(failures, 3, "but they are audited");

    let (status, body) = upload(&app, &token, "big.ofx", vec![b'x'; 65 * 1024], &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    let (status, body) = upload(&app, &token, "photo.png", vec![0x89, b'P', b'N', b'G', 0, 0, 0, 0], &[]).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _) = send(app.client.post(app.url("/api/v1/imports")).bearer_auth(&token).json(&json!({}))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) =
        upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[("format", "pdf")]).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("format")));
    let (status, body) =
        upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[("colour", "red")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn an_investment_statement_yields_holdings_and_trades() {
    let app = app().await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let (status, result) = upload(&app, &token, "investment_401k.ofx", fixture("investment_401k.ofx"), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert!(result["holdings_created"].as_u64().expect("count") >= 1, "{result}");
    let (_, holdings) = get_as(&app, &token, "/api/v1/holdings").await;
    let holding = &holdings["items"][0];
    assert!(holding["quantity"].is_string() && holding["symbol"].is_string(), "{holdings}");
    let (_, transactions) = get_as(&app, &token, "/api/v1/transactions?type=trade").await;
    let trade = &transactions["items"][0];
    assert!(trade["quantity"].is_string() && trade["unit_price"].is_string(), "{transactions}");
    let (_, again) = upload(&app, &token, "investment_401k.ofx", fixture("investment_401k.ofx"), &[]).await;
    assert_eq!(again["transactions_created"], 0);
}

#[tokio::test]
async fn every_readable_fixture_imports_and_a_second_import_creates_nothing() {
    let app = app().await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let (_, seed) = upload(&app, &token, "two_accounts.ofx", fixture("two_accounts.ofx"), &[]).await;
    assert_eq!(seed["accounts_created"], 2);
    let (_, accounts) = get_as(&app, &token, "/api/v1/accounts").await;
    let account = accounts["items"][0]["id"].as_str().expect("id").to_owned();
    let statements = [
        "bank_ofx102_cp1252.ofx",
        "card_ofx211.ofx",
        "card_ofx202_no_xml_decl.ofx",
        "bank_intu.qfx",
        "investment_401k.ofx",
        "quirk_empty_fitid.ofx",
        "quirk_trailing_garbage.ofx",
        "quirk_mismatched_close.ofx",
    ];
    let csvs = ["bank_by_name.csv", "debit_credit_header.csv", "european_bom.csv", "european_latin1.csv"];
    let uploads =
        statements.iter().map(|name| (*name, None)).chain(csvs.iter().map(|name| (*name, Some(account.as_str()))));
    for (name, account_id) in uploads {
        let fields: Vec<(&str, &str)> = account_id.map(|id| ("account_id", id)).into_iter().collect();
        let (status, first) = upload(&app, &token, name, fixture(name), &fields).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {first}");
        // Some fixtures repeat another's account and FITIDs (the OFX 2 card with and without the XML
        // declaration): those are duplicates from the start.
        let lines = first["transactions_created"].as_u64().expect("count")
            + first["transactions_duplicate"].as_u64().expect("count");
        assert!(lines > 0, "{name}: {first}");
        let (status, again) = upload(&app, &token, name, fixture(name), &fields).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {again}");
        assert_eq!(again["transactions_created"], 0, "{name}: {again}");
        assert_eq!(again["accounts_created"], 0, "{name}: {again}");
        assert_eq!(
            again["transactions_duplicate"].as_u64(),
            Some(
                first["transactions_created"].as_u64().expect("count")
                    + first["transactions_duplicate"].as_u64().expect("count")
            ),
            "{name}: every line is recognised again"
        );
    }
}
