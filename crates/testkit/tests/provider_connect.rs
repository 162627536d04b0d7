//! The OAuth connect flow end to end against the sandbox brokerage on 127.0.0.1, through the real Schwab
//! connector: consent, callback, encrypted storage, forced refresh under each refresh-token behaviour,
//! disconnect; deny, expired and replayed states; one refresh for many concurrent callers; refresh failures.

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_domain::providers::ProviderId;
use dashtam_domain::{Actor, RequestContext};
use dashtam_sandbox::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX};
use dashtam_testkit::http::*;
use dashtam_testkit::sandbox::{answer_consent, sandbox_counters, set_sandbox, user_with_sandbox};
use dashtam_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};

async fn app() -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, |config| config.rate_limit.enabled = false).await
}

/// Starts the flow and answers the consent page; returns the provider's redirect (our callback URL).
async fn consent(app: &TestApp, token: &str, provider_id: &str, decision: &str) -> String {
    let (status, start) =
        post_as(app, token, &format!("/api/v1/providers/{provider_id}/authorization"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    assert_eq!(start["expires_in"], 600);
    let auth_url = start["auth_url"].as_str().expect("auth_url");
    assert!(auth_url.contains("code_challenge_method=S256"), "{auth_url}");
    assert!(auth_url.contains(&format!("state={}", start["state"].as_str().expect("state"))));
    let location = answer_consent(app, auth_url, decision).await;
    assert!(location.starts_with(&app.url("/api/v1/oauth/sandbox/callback?")), "{location}");
    location
}

async fn callback(app: &TestApp, location: &str) -> (StatusCode, String) {
    let response = app.client.get(location).send().await.expect("callback");
    let status = response.status();
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    (status, response.text().await.expect("page"))
}

async fn provider(app: &TestApp, token: &str, provider_id: &str) -> Value {
    let (status, body) = get_as(app, token, &format!("/api/v1/providers/{provider_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Every byte the database has on disk (SQLite file and its WAL), or every credential row (PostgreSQL).
async fn stored_bytes(app: &TestApp) -> Vec<u8> {
    match app.state.store.backend() {
        dashtam_domain::ports::StoreBackend::Sqlite => {
            let url = app.config.database_url();
            let file = secrecy::ExposeSecret::expose_secret(&url).trim_start_matches("sqlite://").to_owned();
            let file = std::path::PathBuf::from(file.split('?').next().expect("path"));
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(file.parent().expect("directory")).expect("database directory").flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&*file.file_name().expect("file name").to_string_lossy()) {
                    bytes.extend(std::fs::read(entry.path()).expect("read database file"));
                }
            }
            assert!(bytes.len() > 4096, "the SQLite file and its WAL were read");
            bytes
        }
        dashtam_domain::ports::StoreBackend::Postgres => {
            let credentials = app.state.store.credentials_after(None, 1000).await.expect("credentials");
            credentials.into_iter().flat_map(|row| row.secret).collect()
        }
    }
}

async fn audit_details(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let (_, audit) = get_as(app, admin, &format!("/api/v1/admin/audit-logs?action={action}&limit=100")).await;
    audit["items"].as_array().expect("items").to_vec()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn a_sandbox_connection_connects_refreshes_three_ways_and_disconnects() {
    let app = app().await;
    let admin = logged_in_admin(&app, "admin@example.com").await.access;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;

    let location = consent(&app, &token, &id, "approve").await;
    let (status, page) = callback(&app, &location).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Connected") && page.contains("Demo"), "{page}");

    let connected = provider(&app, &token, &id).await;
    assert_eq!((connected["status"].as_str(), connected["is_connected"].as_bool()), (Some("active"), Some(true)));
    assert!(connected["connected_at"].is_string());
    let (_, authorization) = get_as(&app, &token, &format!("/api/v1/providers/{id}/authorization")).await;
    assert_eq!(authorization["status"], "active");
    assert_eq!(authorization["has_refresh_token"], true);
    assert_eq!(authorization["scope"], "api");
    assert!(authorization["expires_at"].is_string(), "{authorization}");
    // Tokens are never returned, and never stored in plaintext.
    assert!(!authorization.to_string().contains(ACCESS_TOKEN_PREFIX));
    let stored = stored_bytes(&app).await;
    assert!(!contains(&stored, ACCESS_TOKEN_PREFIX) && !contains(&stored, REFRESH_TOKEN_PREFIX));
    assert_eq!(sandbox_counters(&app).await["code_exchanges"], 1);

    // Forced refreshes: the sandbox rotates, omits, then returns the same refresh token.
    let refresh_path = format!("/api/v1/providers/{id}/authorization");
    for behaviour in ["rotate", "omit", "same"] {
        set_sandbox(&app, json!({"refresh_behavior": behaviour})).await;
        let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{behaviour}: {body}");
        assert!(body["expires_at"].is_string());
        let (_, authorization) = get_as(&app, &token, &refresh_path).await;
        assert_eq!(authorization["has_refresh_token"], true, "{behaviour}: the refresh token is kept");
    }
    assert_eq!(sandbox_counters(&app).await["refresh_requests"], 3);
    let refreshes = audit_details(&app, &admin, "provider.token_refreshed").await;
    let outcomes: Vec<&str> =
        refreshes.iter().rev().map(|entry| entry["details"]["refresh_token"].as_str().expect("outcome")).collect();
    assert_eq!(outcomes, ["rotated", "not_returned", "unchanged"]);
    // After "omit", the kept refresh token still works: the "same" refresh above succeeded with it.
    let stored = stored_bytes(&app).await;
    assert!(!contains(&stored, ACCESS_TOKEN_PREFIX) && !contains(&stored, REFRESH_TOKEN_PREFIX));

    let (status, _) = delete_as(&app, &token, &refresh_path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let disconnected = provider(&app, &token, &id).await;
    assert_eq!(disconnected["status"], "revoked");
    assert_eq!(disconnected["needs_reconnection"], true);
    let (_, authorization) = get_as(&app, &token, &refresh_path).await;
    assert_eq!(
        (authorization["has_refresh_token"].as_bool(), authorization["expires_at"].is_null()),
        (Some(false), true)
    );
    let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "not_connected"));
    let connects = audit_details(&app, &admin, "provider.connected").await;
    assert_eq!(connects[0]["outcome"], "success");
    assert_eq!(connects[0]["resource_id"], id.as_str());
    assert_eq!(audit_details(&app, &admin, "provider.disconnected").await.len(), 1);
}

#[tokio::test]
async fn declined_expired_replayed_and_forged_callbacks_change_nothing() {
    let app = app().await;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;

    // Declined at the provider.
    let location = consent(&app, &token, &id, "deny").await;
    assert!(location.contains("error=access_denied"));
    let (status, page) = callback(&app, &location).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("declined"), "{page}");
    assert_eq!(provider(&app, &token, &id).await["status"], "pending");

    // Expired: the user takes longer than ten minutes.
    let location = consent(&app, &token, &id, "approve").await;
    app.clock.advance(Duration::from_secs(601));
    let (status, page) = callback(&app, &location).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("expired"), "{page}");
    assert_eq!(provider(&app, &token, &id).await["status"], "pending");

    // Replayed: the second use of a state is refused and changes nothing.
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    let connected_at = provider(&app, &token, &id).await["connected_at"].clone();
    app.clock.advance(Duration::from_secs(5));
    let (status, _) = callback(&app, &location).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(provider(&app, &token, &id).await["connected_at"], connected_at);
    assert_eq!(sandbox_counters(&app).await["code_exchanges"], 1);

    // Forged or missing states, a state used with another provider's callback, and a missing code.
    let state_of = |location: &str| {
        location.split(['?', '&']).find_map(|pair| pair.strip_prefix("state=")).expect("state").to_owned()
    };
    for path in [
        "/api/v1/oauth/sandbox/callback".to_owned(),
        "/api/v1/oauth/sandbox/callback?code=abc".to_owned(),
        "/api/v1/oauth/sandbox/callback?code=abc&state=forged".to_owned(),
        "/api/v1/oauth/sandbox/callback?code=abc&state=<script>alert(1)</script>".to_owned(),
    ] {
        let (status, page) = callback(&app, &app.url(&path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(!page.contains("<script>"), "{page}");
    }
    let location = consent(&app, &token, &id, "approve").await;
    let state = state_of(&location);
    let (status, _) = callback(&app, &app.url(&format!("/api/v1/oauth/schwab/callback?code=x&state={state}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let location = consent(&app, &token, &id, "approve").await;
    let state = state_of(&location);
    let (status, page) = callback(&app, &app.url(&format!("/api/v1/oauth/sandbox/callback?state={state}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("authorization code"), "{page}");
    assert_eq!(sandbox_counters(&app).await["code_exchanges"], 1);
}

#[tokio::test]
async fn twenty_concurrent_callers_needing_a_refresh_cause_exactly_one() {
    let app = app().await;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    set_sandbox(&app, json!({"latency_ms": 200})).await;
    // The sandbox's access tokens live 30 minutes; 26 minutes on, every caller must refresh first.
    app.clock.advance(Duration::from_secs(26 * 60));

    let user_id = app
        .state
        .store
        .user_by_email(&dashtam_domain::Email::parse("owner@example.com").expect("email"))
        .await
        .expect("user")
        .expect("exists")
        .id;
    let provider =
        app.state.providers.get(user_id, ProviderId::from_uuid(id.parse().expect("uuid"))).await.expect("provider");
    let context = RequestContext::empty(Actor::System);
    let callers = (0..20).map(|_| app.state.providers.access(&provider, &context));
    let results = futures::future::join_all(callers).await;
    let tokens: Vec<String> = results
        .into_iter()
        .map(|access| match access.expect("access").auth() {
            dashtam_domain::connector::ProviderAuth::Bearer(token) => {
                secrecy::ExposeSecret::expose_secret(token).to_owned()
            }
            dashtam_domain::connector::ProviderAuth::ApiKey(_) => panic!("an OAuth connection"),
        })
        .collect();
    assert_eq!(sandbox_counters(&app).await["refresh_requests"], 1);
    assert!(tokens.iter().all(|token| *token == tokens[0]), "every caller uses the one new token");
}

#[tokio::test]
async fn failed_refreshes_are_kept_and_a_refused_grant_asks_for_reconnection() {
    let app = app().await;
    let admin = logged_in_admin(&app, "admin@example.com").await.access;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    let refresh_path = format!("/api/v1/providers/{id}/authorization");

    // Two outages: 502 each, counted (the failure survives the failed request), still active.
    set_sandbox(&app, json!({"fail_status": 503, "fail_times": 2, "applies_to": "token"})).await;
    for _ in 0..2 {
        let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
        assert_eq!((status, code(&body)), (StatusCode::BAD_GATEWAY, "provider_error"), "{body}");
    }
    assert_eq!(provider(&app, &token, &id).await["status"], "active");
    let failures = audit_details(&app, &admin, "provider.token_refreshed").await;
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().all(|entry| entry["outcome"] == "failure"));
    assert_eq!(failures[0]["details"]["consecutive_failures"], 2);

    // A success clears the count; three failures in a row then mark the connection `error`.
    let (status, _) = patch_as(&app, &token, &refresh_path, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    set_sandbox(&app, json!({"fail_status": 500, "fail_times": 3, "applies_to": "token"})).await;
    for _ in 0..3 {
        let (status, _) = patch_as(&app, &token, &refresh_path, json!({})).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }
    let failed = provider(&app, &token, &id).await;
    assert_eq!((failed["status"].as_str(), failed["needs_reconnection"].as_bool()), (Some("error"), Some(true)));
    let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "not_connected"));

    // Reconnecting makes it active again; a refused grant (the refresh token revoked upstream) expires it.
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    assert_eq!(provider(&app, &token, &id).await["status"], "active");
    set_sandbox(&app, json!({"fail_status": null, "fail_times": null})).await;
    app.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let token = logged_in(&app, "owner@example.com").await.access;
    let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_GATEWAY, "provider_error"), "{body}");
    assert!(body["detail"].as_str().expect("detail").contains("connect it again"));
    let expired = provider(&app, &token, &id).await;
    assert_eq!((expired["status"].as_str(), expired["needs_reconnection"].as_bool()), (Some("expired"), Some(true)));
}

#[tokio::test]
async fn a_hanging_or_trickling_provider_is_cut_off_at_the_configured_timeouts() {
    let app = TestApp::spawn_configured(TestDatabase::preferred().await, |config| {
        config.rate_limit.enabled = false;
        // Far enough apart that a busy machine's overhead (up to a second here) cannot make one timeout
        // pass for the other.
        config.http.connect_timeout = Duration::from_millis(500);
        config.http.read_timeout = Duration::from_millis(1000);
        config.http.total_timeout = Duration::from_millis(2400);
    })
    .await;
    let admin = logged_in_admin(&app, "admin@example.com").await.access;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    let refresh_path = format!("/api/v1/providers/{id}/authorization");
    let timed_refresh = || async {
        let started = std::time::Instant::now();
        let (status, body) = patch_as(&app, &token, &refresh_path, json!({})).await;
        (status, body, started.elapsed())
    };

    // Headers never come: the read timeout (1 s) ends the call, well before the total deadline.
    set_sandbox(&app, json!({"latency_ms": 5000, "applies_to": "token"})).await;
    let (status, body, elapsed) = timed_refresh().await;
    assert_eq!((status, code(&body)), (StatusCode::GATEWAY_TIMEOUT, "provider_timeout"), "{body}");
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2000), "{elapsed:?}");

    // Headers after 0.6 s, then the body (a token answer is at least three 64-byte pieces) with 0.7 s before
    // each piece, every wait within the read timeout: 2.7 s or more in all, so the total deadline (2.4 s) ends
    // the call.
    set_sandbox(&app, json!({"latency_ms": 600, "trickle_ms": 700})).await;
    let (status, body, elapsed) = timed_refresh().await;
    assert_eq!((status, code(&body)), (StatusCode::GATEWAY_TIMEOUT, "provider_timeout"), "{body}");
    assert!(elapsed >= Duration::from_millis(2300) && elapsed <= Duration::from_millis(3400), "{elapsed:?}");

    // A malformed answer is a provider error, audited, never a 500.
    set_sandbox(&app, json!({"latency_ms": null, "trickle_ms": null, "malformed_json": true})).await;
    let (status, body, _) = timed_refresh().await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_GATEWAY, "provider_error"), "{body}");
    let failures = audit_details(&app, &admin, "provider.token_refreshed").await;
    let reasons: Vec<&str> =
        failures.iter().map(|entry| entry["details"]["reason"].as_str().expect("reason")).collect();
    assert_eq!(reasons, ["invalid_response", "timeout", "timeout"]);
}

#[tokio::test]
async fn a_hanging_provider_starves_nothing_else() {
    let app = app().await;
    let (token, id) = user_with_sandbox(&app, "owner@example.com").await;
    let location = consent(&app, &token, &id, "approve").await;
    assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
    let mut others = Vec::new();
    for n in 0..8 {
        let (other_token, other_id) = user_with_sandbox(&app, &format!("user{n}@example.com")).await;
        let location = consent(&app, &other_token, &other_id, "approve").await;
        assert_eq!(callback(&app, &location).await.0, StatusCode::OK);
        others.push((other_token, format!("/api/v1/providers/{other_id}/authorization")));
    }
    // Every provider call now hangs for two seconds.
    set_sandbox(&app, json!({"latency_ms": 2000})).await;
    let hanging = others.iter().map(|(other_token, path)| patch_as(&app, other_token, path, json!({})));
    let probes = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let started = std::time::Instant::now();
            let (status, _) = get_as(&app, &token, "/api/v1/auth/me").await;
            assert_eq!(status, StatusCode::OK);
            let (status, _) = get_as(&app, &token, &format!("/api/v1/providers/{id}")).await;
            assert_eq!(status, StatusCode::OK);
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let (results, slowest) = tokio::join!(futures::future::join_all(hanging), probes);
    assert!(results.iter().all(|(status, _)| *status == StatusCode::OK), "the slow refreshes still finish");
    // Eight requests stuck on the provider take no worker or database connection from anyone else.
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
}
