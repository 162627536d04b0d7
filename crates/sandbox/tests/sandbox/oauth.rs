//! The consent page, the decision and the token endpoint.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{StatusCode, header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::Duration;

use crate::support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9k1uYm2wvFXbnLNkXGt5Z2vEkgTHBgaQ6";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[tokio::test]
async fn consent_page_has_one_form_that_posts_back_with_every_parameter() {
    let harness = Harness::start().await;
    let response = harness.consent(&[("customer", "alice"), ("scope", "readonly")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert_eq!(html.matches("<form").count(), 1);
    assert!(html.contains(r#"<form method="post" action="/sandbox/v1/oauth/authorize">"#), "{html}");
    for (name, value) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("state", "state-123"),
        ("customer", "alice"),
        ("scope", "readonly"),
    ] {
        assert!(html.contains(&format!(r#"<input type="hidden" name="{name}" value="{value}">"#)), "{name}");
    }
    assert!(html.contains(r#"name="decision" value="approve""#));
    assert!(html.contains(r#"name="decision" value="deny""#));
}

#[tokio::test]
async fn echoed_parameters_are_escaped() {
    let harness = Harness::start().await;
    let response = harness.consent(&[("state", r#"<script>alert("x")</script>"#)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("html");
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));

    let response = harness.consent(&[("client_id", "<b>evil</b>")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.text().await.expect("html").contains("<b>evil"));
}

#[tokio::test]
async fn invalid_requests_get_an_error_page_and_never_a_redirect() {
    let harness = Harness::start().await;
    let cases: &[&[(&str, &str)]] = &[
        &[("client_id", "someone-else")],
        &[("client_id", "")],
        &[("redirect_uri", "http://evil.example/callback")],
        &[("redirect_uri", "http://127.0.0.1:9/api/v1/providers/callback/")],
        &[("response_type", "token")],
        &[("state", "")],
        &[("code_challenge", "abc"), ("code_challenge_method", "S256")],
        &[("code_challenge", &"a".repeat(43)), ("code_challenge_method", "plain")],
        &[("code_challenge", &"a".repeat(43))],
        &[("code_challenge_method", "S256")],
        &[("customer", "not allowed!")],
    ];
    for extra in cases {
        let response = harness.consent(extra).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(response.headers().get(header::LOCATION).is_none());
        let response = harness.decide(extra, "approve").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(response.headers().get(header::LOCATION).is_none());
    }
    let response = harness.decide(&[], "maybe").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn code_flow_without_pkce() {
    let harness = Harness::start().await;
    let response = harness.decide(&[("state", "s p&a=ce")], "approve").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()[header::LOCATION].to_str().expect("ascii").to_owned();
    assert!(location.starts_with(&format!("{REDIRECT_URI}?code=")), "{location}");
    let params = location_params(&response);
    assert_eq!(params.iter().find(|(k, _)| k == "state").map(|(_, v)| v.as_str()), Some("s p&a=ce"));
    let code = params.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).expect("code");
    assert!(code.len() >= 22, "at least 128 bits");

    let response =
        harness.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api");
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(body[field].as_str().is_some_and(|token| token.len() >= 43), "{field}");
    }
    let access = body["access_token"].as_str().expect("access");
    let response = harness.api(access, "/trader/v1/accounts/accountNumbers").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uri_with_a_query_keeps_it() {
    let harness = Harness::start().await;
    let response = harness.decide(&[("redirect_uri", "http://127.0.0.1:9/other?keep=1")], "deny").await;
    let location = response.headers()[header::LOCATION].to_str().expect("ascii");
    assert_eq!(location, "http://127.0.0.1:9/other?keep=1&error=access_denied&state=state-123");
}

async fn exchange(harness: &Harness, code: &str, verifier: Option<&str>) -> reqwest::Response {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT_URI)];
    form.extend(verifier.map(|verifier| ("code_verifier", verifier)));
    harness.token(&form).await
}

#[tokio::test]
async fn code_flow_with_pkce_requires_the_matching_verifier() {
    let harness = Harness::start().await;
    let pkce = [("code_challenge", challenge(VERIFIER)), ("code_challenge_method", "S256".to_owned())];
    let pkce: Vec<(&str, &str)> = pkce.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let wrong = "x".repeat(43);
    let response = exchange(&harness, &harness.code(&pkce).await, Some(&wrong)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = exchange(&harness, &harness.code(&pkce).await, None).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // A verifier for a code that had no challenge is a downgrade attempt.
    let response = exchange(&harness, &harness.code(&[]).await, Some(VERIFIER)).await;
    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let response = exchange(&harness, &harness.code(&pkce).await, Some(VERIFIER)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let harness = Harness::start().await;
    let response = harness.decide(&[], "deny").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let params = location_params(&response);
    assert!(params.contains(&("error".to_owned(), "access_denied".to_owned())));
    assert!(params.contains(&("state".to_owned(), "state-123".to_owned())));
    assert!(!params.iter().any(|(name, _)| name == "code"));
}

#[tokio::test]
async fn a_code_works_once_and_its_replay_revokes_what_it_gave() {
    let harness = Harness::start().await;
    let code = harness.code(&[]).await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    let response = harness.token(&form).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access").to_owned();

    assert_oauth_error(harness.token(&form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let response = harness.api(&access, "/trader/v1/accounts/accountNumbers").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn codes_expire_after_ten_minutes_and_are_bound_to_the_redirect_uri() {
    let harness = Harness::start().await;
    let code = harness.code(&[]).await;
    harness.clock.advance(Duration::minutes(10));
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", REDIRECT_URI)];
    assert_oauth_error(harness.token(&form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let code = harness.code(&[]).await;
    harness.clock.advance(Duration::minutes(9));
    let other = "http://127.0.0.1:9/other?keep=1";
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", other)];
    assert_oauth_error(harness.token(&form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn token_endpoint_checks_the_client_and_the_request() {
    let harness = Harness::start().await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "whatever")];
    let response = harness.token_as(CLIENT_ID, "wrong", &form).await;
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"sandbox\"");
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let response = harness.token_as("other", CLIENT_SECRET, &form).await;
    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let response = harness.http.post(harness.url("/v1/oauth/token")).body("grant_type=refresh_token").send().await;
    assert_oauth_error(response.expect("send"), StatusCode::UNAUTHORIZED, "invalid_client").await;

    assert_oauth_error(harness.token(&form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_oauth_error(
        harness.token(&[("grant_type", "password")]).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(harness.token(&[]).await, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_oauth_error(
        harness.token(&[("grant_type", "authorization_code")]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

async fn refresh(harness: &Harness, refresh_token: &str) -> reqwest::Response {
    harness.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

#[tokio::test]
async fn refresh_rotates_by_default() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let response = refresh(&harness, &tokens.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let rotated = body["refresh_token"].as_str().expect("a new refresh token").to_owned();
    assert_ne!(rotated, tokens.refresh);
    assert_ne!(body["access_token"].as_str(), Some(tokens.access.as_str()));

    assert_oauth_error(refresh(&harness, &tokens.refresh).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(refresh(&harness, &rotated).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_can_omit_the_refresh_token() {
    let harness = Harness::start().await;
    harness.set_client(serde_json::json!({"refresh_behavior": "omit"})).await;
    let tokens = harness.login(&[]).await;
    for _ in 0..2 {
        let response = refresh(&harness, &tokens.refresh).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        assert!(body.get("refresh_token").is_none(), "{body}");
        let access = body["access_token"].as_str().expect("access");
        assert_eq!(harness.api(access, "/trader/v1/userPreference").await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn refresh_can_return_the_same_token() {
    let harness = Harness::start().await;
    harness.set_client(serde_json::json!({"refresh_behavior": "same"})).await;
    let tokens = harness.login(&[]).await;
    for _ in 0..2 {
        let response = refresh(&harness, &tokens.refresh).await;
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["refresh_token"].as_str(), Some(tokens.refresh.as_str()));
    }
}

#[tokio::test]
async fn refresh_tokens_expire_after_seven_days() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    harness.clock.advance(Duration::days(7));
    assert_oauth_error(refresh(&harness, &tokens.refresh).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn the_trader_api_wants_a_current_bearer_token() {
    let harness = Harness::start().await;
    let tokens = harness.login(&[]).await;
    let path = "/trader/v1/accounts/accountNumbers";
    assert_eq!(harness.api(&tokens.access, path).await.status(), StatusCode::OK);

    let response = harness.http.get(harness.url(path)).send().await.expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = harness.api("not-a-token", path).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("401 is JSON");
    assert!(body["message"].is_string() && body["errors"].is_array());

    harness.clock.advance(Duration::seconds(1799));
    assert_eq!(harness.api(&tokens.access, path).await.status(), StatusCode::OK);
    harness.clock.advance(Duration::seconds(1));
    assert_eq!(harness.api(&tokens.access, path).await.status(), StatusCode::UNAUTHORIZED);
}
