//! The control API and the faults it injects.

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn fail_times_counts_down_and_counters_count() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let settings = harness.set_client(json!({"fail_status": 503, "fail_times": 2, "applies_to": "api"})).await;
    assert_eq!(settings["settings"]["fail_times"], 2);
    let path = "/trader/v1/accounts/accountNumbers";
    for _ in 0..2 {
        let response = harness.api(&tokens.access, path).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.expect("json");
        assert!(body["message"].is_string());
    }
    assert_eq!(harness.api(&tokens.access, path).await.status(), StatusCode::OK);
    let client = harness.client().await;
    assert_eq!(client["settings"]["fail_times"], 0);
    assert_eq!(
        client["counters"],
        json!({"token_requests": 1, "code_exchanges": 1, "refresh_requests": 0, "api_requests": 3})
    );

    // The token endpoint was not targeted.
    let response = harness.token(&[("grant_type", "refresh_token"), ("refresh_token", &tokens.refresh)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(harness.client().await["counters"]["refresh_requests"], 1);

    let response =
        harness.http.delete(harness.url(&format!("/control/clients/{CLIENT_ID}"))).send().await.expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    let client = harness.client().await;
    assert_eq!(client["counters"]["api_requests"], 0);
    assert_eq!(client["settings"]["fail_status"], Value::Null);
    assert_eq!(client["settings"]["refresh_behavior"], "rotate");
}

#[tokio::test]
async fn rate_limits_carry_retry_after_until_cleared() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    harness.set_client(json!({"fail_status": 429, "retry_after_seconds": 7})).await;
    for _ in 0..3 {
        let response = harness.api(&tokens.access, "/trader/v1/userPreference").await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
    let response = harness.token(&[("grant_type", "refresh_token"), ("refresh_token", &tokens.refresh)]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    harness.set_client(json!({"fail_status": null})).await;
    assert_eq!(harness.api(&tokens.access, "/trader/v1/userPreference").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_faults_apply_to_the_basic_client() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    harness.set_client(json!({"fail_status": 500, "fail_times": 1, "applies_to": "token"})).await;
    assert_eq!(harness.api(&tokens.access, "/trader/v1/userPreference").await.status(), StatusCode::OK);
    let form = [("grant_type", "refresh_token"), ("refresh_token", tokens.refresh.as_str())];
    assert_oauth_error(harness.token(&form).await, StatusCode::INTERNAL_SERVER_ERROR, "temporarily_unavailable").await;
    // The failed request did no work: the refresh token was not rotated.
    assert_eq!(harness.token(&form).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_json_is_a_200_that_does_not_parse() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    harness.set_client(json!({"malformed_json": true, "fail_times": 1})).await;
    let response = harness.api(&tokens.access, "/trader/v1/accounts?fields=positions").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    assert!(!text.is_empty());
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let response = harness.api(&tokens.access, "/trader/v1/accounts?fields=positions").await;
    assert!(response.json::<Value>().await.is_ok());
}

#[tokio::test]
async fn latency_and_trickle_slow_answers_down() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    harness.set_client(json!({"latency_ms": 300})).await;
    let started = Instant::now();
    assert_eq!(harness.api(&tokens.access, "/trader/v1/accounts/accountNumbers").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));

    harness.set_client(json!({"latency_ms": null, "trickle_ms": 20})).await;
    let started = Instant::now();
    let body = harness.api_json(&tokens.access, "/trader/v1/accounts/accountNumbers").await;
    assert_eq!(body.as_array().map(Vec::len), Some(2), "the body arrives whole");
    // About 200 bytes in 64-byte chunks: at least three pauses.
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn settings_are_validated() {
    let harness = Harness::start().await;
    let url = harness.url("/control/clients/anyone");
    for (body, status) in [
        (json!({"nonsense": 1}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"fail_status": 404}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"refresh_behavior": "sometimes"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"applies_to": "browser"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"transactions_per_day": -1}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"latency_ms": "slow"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = harness.http.put(&url).json(&body).send().await.expect("put");
        assert_eq!(response.status(), status, "{body}");
    }
    let response = harness.http.put(&url).header(header::CONTENT_TYPE, "application/json").body("{").send().await;
    assert_eq!(response.expect("put").status(), StatusCode::BAD_REQUEST);
    let all = json!({"latency_ms": 1, "trickle_ms": 1, "fail_status": 401, "fail_times": 3, "retry_after_seconds": 2,
                     "malformed_json": false, "applies_to": "all", "refresh_behavior": "same", "transactions_per_day": 2.5});
    let response = harness.http.put(&url).json(&all).send().await.expect("put");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["settings"], all);
}

#[tokio::test]
async fn the_clock_moves_forward_only_within_ten_years() {
    let harness = Harness::start().await;
    let clock: Value =
        harness.http.get(harness.url("/control/clock")).send().await.expect("get").json().await.expect("json");
    assert_eq!(clock["day_offset"], 0);
    assert_eq!(clock["today"], "2025-10-03");
    harness.advance_days(2).await;
    harness.advance_days(3).await;
    let clock: Value =
        harness.http.get(harness.url("/control/clock")).send().await.expect("get").json().await.expect("json");
    assert_eq!(clock["day_offset"], 5);
    assert_eq!(clock["today"], "2025-10-08");
    for body in [json!({"advance_days": 3646}), json!({"advance_days": -1}), json!({}), json!({"days": 1})] {
        let response = harness.http.post(harness.url("/control/clock")).json(&body).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let response = harness.http.delete(harness.url("/control/clock")).send().await.expect("delete");
    let clock: Value = response.json().await.expect("json");
    assert_eq!(clock["day_offset"], 0);
}
