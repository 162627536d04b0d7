//! Syncing provider data end to end against the sandbox brokerage: the first sync, an idempotent second
//! one, a new sandbox day (new snapshot, pending transactions posted in place), one sync at a time, the
//! scheduler on an injected clock with backoff after failures, and isolation between users.

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_testkit::http::*;
use dashtam_testkit::sandbox::{connected_user, reset_sandbox, set_sandbox};
use dashtam_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};

async fn app() -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, |config| config.rate_limit.enabled = false).await
}

/// The connection as its owner sees it now (logging in afresh: tests move the clock past token lifetimes).
async fn provider_of(app: &TestApp, id: &str) -> Value {
    let token = logged_in(app, "owner@example.com").await.access;
    get_as(app, &token, &format!("/api/v1/providers/{id}")).await.1
}

async fn sync(app: &TestApp, token: &str, id: &str) -> (StatusCode, Value) {
    post_as(app, token, &format!("/api/v1/providers/{id}/sync"), json!({})).await
}

#[tokio::test]
async fn a_sync_stores_realistic_data_once_and_follows_the_sandbox_day_by_day() {
    let app = app().await;
    let (token, id) = connected_user(&app, "owner@example.com").await;

    let (status, first) = sync(&app, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["accounts"]["created"], 2, "{first}");
    assert_eq!(first["balances_recorded"], 2);
    assert!(first["holdings"]["created"].as_u64().expect("count") >= 8, "{first}");
    let created = first["transactions"]["created"].as_u64().expect("count");
    assert!(created >= 90, "a year of activity: {first}");

    let (_, accounts) = get_as(&app, &token, "/api/v1/accounts").await;
    let items = accounts["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{accounts}");
    let types: Vec<&str> = items.iter().map(|account| account["account_type"].as_str().expect("type")).collect();
    assert!(types.contains(&"brokerage"), "{types:?}");
    assert!(types.iter().any(|kind| kind.contains("ira")), "{types:?}");
    assert!(
        items.iter().all(|account| account["balance"]
            .as_str()
            .expect("decimal string")
            .parse::<f64>()
            .expect("number")
            > 0.0)
    );
    assert_eq!(accounts["totals_by_currency"][0]["currency"], "USD");
    let provider = get_as(&app, &token, &format!("/api/v1/providers/{id}")).await.1;
    assert_eq!(provider["accounts_count"], 2);
    assert!(provider["last_sync_at"].is_string() && provider["last_sync_error"].is_null(), "{provider}");

    let (_, holdings) = get_as(&app, &token, "/api/v1/holdings").await;
    let holding = &holdings["items"][0];
    for field in ["symbol", "quantity", "market_value", "price"] {
        assert!(holding[field].is_string(), "{field}: {holding}");
    }
    let (_, transactions) = get_as(&app, &token, "/api/v1/transactions?limit=500").await;
    let kinds: std::collections::HashSet<&str> = transactions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|transaction| transaction["transaction_type"].as_str().expect("type"))
        .collect();
    for kind in ["trade", "income", "transfer"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    let (status, net_worth) = get_as(&app, &token, "/api/v1/net-worth").await;
    assert_eq!(status, StatusCode::OK, "{net_worth}");
    assert_eq!(net_worth["items"][0]["currency"], "USD");

    // The same data again creates nothing.
    let (status, second) = sync(&app, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        (second["accounts"]["created"].as_u64(), second["transactions"]["created"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(second["holdings"]["created"], 0);
    assert_eq!(second["balances_recorded"], 2);

    // A day later at the sandbox: prices move, today's pending activity has posted (same id, updated in
    // place), and a new snapshot is recorded.
    let pending_before: Vec<String> = transactions["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|transaction| transaction["status"] == "pending")
        .map(|transaction| transaction["id"].as_str().expect("id").to_owned())
        .collect();
    app.clock.advance(Duration::from_secs(24 * 3600));
    let token = logged_in(&app, "owner@example.com").await.access;
    let (status, third) = sync(&app, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert!(third["accounts"]["updated"].as_u64().expect("count") >= 1, "balances moved: {third}");
    for pending in &pending_before {
        let (status, transaction) = get_as(&app, &token, &format!("/api/v1/transactions/{pending}")).await;
        assert_eq!((status, transaction["status"].as_str()), (StatusCode::OK, Some("posted")), "{transaction}");
    }
    let account = items[0]["id"].as_str().expect("id");
    let (_, balances) = get_as(&app, &token, &format!("/api/v1/accounts/{account}/balances")).await;
    assert_eq!(balances["items"].as_array().expect("items").len(), 3, "{balances}");
}

#[tokio::test]
async fn a_range_at_the_end_of_the_calendar_is_synced() {
    // Found by the API fuzzer: syncing 9999-12-31 made the sandbox's one-year check overflow (a panic there),
    // and the sync answered 502.
    let app = app().await;
    let (token, id) = connected_user(&app, "owner@example.com").await;
    let range = json!({"start_date": "9999-12-31", "end_date": "9999-12-31"});
    let (status, body) = post_as(&app, &token, &format!("/api/v1/providers/{id}/sync"), range).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transactions"]["created"], 0, "nothing happened on that day: {body}");
}

#[tokio::test]
async fn one_sync_at_a_time_and_only_for_connected_providers() {
    let app = app().await;
    let (token, id) = connected_user(&app, "owner@example.com").await;
    set_sandbox(&app, json!({"latency_ms": 300, "applies_to": "api"})).await;
    let (first, second) = tokio::join!(sync(&app, &token, &id), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sync(&app, &token, &id).await
    });
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!((second.0, code(&second.1)), (StatusCode::CONFLICT, "sync_in_progress"));

    let (_, pending) =
        post_as(&app, &token, "/api/v1/providers", json!({"provider_key": "sandbox", "alias": "New"})).await;
    let (status, body) = sync(&app, &token, pending["id"].as_str().expect("id")).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "not_connected"));
    let (status, body) =
        post_as(&app, &token, &format!("/api/v1/providers/{id}/sync"), json!({"start_date": "2026-01-02"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = post_as(
        &app,
        &token,
        &format!("/api/v1/providers/{id}/sync"),
        json!({"start_date": "2026-03-01", "end_date": "2026-02-01"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Another user sees none of it.
    let intruder = created_and_logged_in(&app, "intruder@example.com", Role::User).await.access;
    let (_, accounts) = get_as(&app, &intruder, "/api/v1/accounts").await;
    assert_eq!(accounts["items"].as_array().map(Vec::len), Some(0));
    let (_, mine) = get_as(&app, &token, "/api/v1/accounts").await;
    let account = mine["items"][0]["id"].as_str().expect("id");
    let (status, _) = get_as(&app, &intruder, &format!("/api/v1/accounts/{account}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = sync(&app, &intruder, &id).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn the_scheduler_syncs_due_connections_and_backs_off_after_failures() {
    let app = app().await;
    let (_, id) = connected_user(&app, "owner@example.com").await;

    // A new connection is due at once; once synced it is not due again until the interval has passed.
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 1);
    assert!(provider_of(&app, &id).await["last_sync_at"].is_string());
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 0);
    app.clock.advance(Duration::from_secs(5 * 3600));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 0, "6 h interval");

    // The provider fails: the error is kept, and retries back off (5 min, then 10 min).
    set_sandbox(&app, json!({"fail_status": 503, "applies_to": "api"})).await;
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 1);
    let failed = provider_of(&app, &id).await;
    assert_eq!(failed["last_sync_error"], "provider_unavailable", "{failed}");
    assert_eq!(failed["status"], "active");
    app.clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 0, "the first retry waits 5 minutes");
    app.clock.advance(Duration::from_secs(2 * 60));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 1);
    app.clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 0, "the second retry waits 10 minutes");

    // The provider recovers; the next due sync clears the error.
    reset_sandbox(&app).await;
    app.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 1);
    assert!(provider_of(&app, &id).await["last_sync_error"].is_null());

    // A connection needing reconnection is never scheduled.
    let token = logged_in(&app, "owner@example.com").await.access;
    let (status, _) = delete_as(&app, &token, &format!("/api/v1/providers/{id}/authorization")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(app.state.sync.run_due(10).await.expect("run"), 0);
}
