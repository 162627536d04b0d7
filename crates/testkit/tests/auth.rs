//! The authentication endpoints (API.md §2) end to end: real server, real database (SQLite, or PostgreSQL
//! when configured), real mail through the outbox to `.eml` files.

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_testkit::http::*;
use dashtam_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a different long passphrase";

async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

async fn spawn_with(configure: impl FnOnce(&mut dashtam_server::Config)) -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, configure).await
}

#[tokio::test]
async fn register_verify_login_me_refresh_logout() {
    let app = spawn().await;
    verified_user(&app, "Ada@Example.com").await;
    let welcome = mail_to(&app, "ada@example.com", 2).await;
    assert!(
        welcome.iter().any(|text| text.contains("Subject:") && text.to_lowercase().contains("welcome")),
        "{welcome:?}"
    );

    let (status, body) = login(&app, " ada@example.COM ", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("bearer"), Some(900)));
    let user = &body["user"];
    assert_eq!(
        (user["email"].as_str(), user["name"].as_str(), user["role"].as_str()),
        (Some("ada@example.com"), Some("Ada"), Some("user"))
    );
    assert_eq!(user["email_verified"], true);
    assert!(user["last_login_at"].as_str().is_some_and(|at| at.ends_with('Z')));
    let text = body.to_string();
    assert!(!text.contains("argon2") && !text.contains("password"), "no hash in responses: {text}");
    let session = tokens(&body);

    let (status, me) = get_as(&app, &session.access, "/api/v1/auth/me").await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some("ada@example.com")));

    let (status, renamed) = send(
        app.client
            .patch(app.url("/api/v1/auth/me"))
            .bearer_auth(&session.access)
            .json(&json!({"name": "Ada Lovelace"})),
    )
    .await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Ada Lovelace")));
    let (status, bad_name) =
        send(app.client.patch(app.url("/api/v1/auth/me")).bearer_auth(&session.access).json(&json!({"name": ""})))
            .await;
    assert_eq!((status, code(&bad_name)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));

    let (status, refreshed) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let renewed = tokens(&refreshed);
    assert_ne!(renewed.refresh, session.refresh, "refresh tokens rotate on every use");
    assert_eq!(refreshed["token_type"], "bearer");

    let (status, body) = post_as(&app, &renewed.access, "/api/v1/auth/logout", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get_as(&app, &renewed.access, "/api/v1/auth/me").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "logout takes effect at once");
    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": renewed.refresh})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
}

#[tokio::test]
async fn registration_answers_identically_for_taken_addresses_and_tells_the_owner() {
    let app = spawn().await;
    verified_user(&app, "owner@example.com").await;
    let fresh =
        post(&app, "/api/v1/auth/register", json!({"email": "new@example.com", "password": PASSWORD, "name": "New"}))
            .await;
    let taken = post(
        &app,
        "/api/v1/auth/register",
        json!({"email": "OWNER@example.com", "password": NEW_PASSWORD, "name": "Impostor"}),
    )
    .await;
    assert_eq!(fresh, taken, "identical status and body");
    let owner_mail = mail_to(&app, "owner@example.com", 3).await;
    assert_eq!(owner_mail.len(), 3, "verify, welcome, already-registered");
    assert!(!owner_mail[2].contains("verify-email?token="), "no verification link for a taken address");
    // Nothing changed: the owner still logs in with the original password and name.
    let (status, body) = login(&app, "owner@example.com", PASSWORD).await;
    assert_eq!((status, body["user"]["name"].as_str()), (StatusCode::OK, Some("Ada")));
}

#[tokio::test]
async fn registration_validates_every_field_and_lists_every_password_weakness() {
    let app = spawn().await;
    let (status, body) =
        post(&app, "/api/v1/auth/register", json!({"email": "not-an-email", "password": PASSWORD, "name": ""})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["email", "name"]);

    let (status, body) =
        post(&app, "/api/v1/auth/register", json!({"email": "weak@example.com", "password": "dashtam", "name": "W"}))
            .await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    let reasons: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["code"].as_str()).collect();
    assert!(reasons.contains(&"too_short") && reasons.contains(&"contains_product_name"), "{reasons:?}");
    assert!(body["errors"].as_array().expect("errors").iter().all(|e| e["field"] == "password"));

    let (status, body) = post(
        &app,
        "/api/v1/auth/register",
        json!({"email": "weak@example.com", "password": "weak-password-with-WEAK", "name": "W"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
        "contains the email's local part"
    );

    let (status, body) = post(
        &app,
        "/api/v1/auth/register",
        json!({"email": "x@example.com", "password": PASSWORD, "name": "X", "role": "admin"}),
    )
    .await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"));
    // None of the refused requests created an account.
    assert!(mail_to(&app, "weak@example.com", 0).await.is_empty());
    assert!(mail_to(&app, "x@example.com", 0).await.is_empty());
}

#[tokio::test]
async fn verification_tokens_are_single_use_and_superseded_by_newer_ones() {
    let app = spawn().await;
    register(&app, "verify@example.com").await;
    let first = token_from_mail(&app, "verify@example.com", "verify-email", 1).await;
    let (status, _) = post(&app, "/api/v1/auth/resend-verification", json!({"email": "verify@example.com"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = token_from_mail(&app, "verify@example.com", "verify-email", 2).await;
    assert_ne!(first, second);

    let (status, body) = post(&app, "/api/v1/auth/verify-email", json!({"token": first})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_token"), "superseded");
    let (status, _) = post(&app, "/api/v1/auth/verify-email", json!({"token": second})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&app, "/api/v1/auth/verify-email", json!({"token": second})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_token"), "single use");
    for malformed in ["", "short", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", &"a".repeat(500)] {
        let (status, body) = post(&app, "/api/v1/auth/verify-email", json!({"token": malformed})).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{malformed}: {status}"
        );
        assert!(matches!(code(&body), "invalid_token" | "validation_failed"), "{body}");
    }
}

#[tokio::test]
async fn resend_and_reset_requests_answer_identically_for_unknown_addresses() {
    let app = spawn().await;
    verified_user(&app, "known@example.com").await;
    for path in ["/api/v1/auth/resend-verification", "/api/v1/auth/request-password-reset"] {
        let known = post(&app, path, json!({"email": "known@example.com"})).await;
        let unknown = post(&app, path, json!({"email": "unknown@example.com"})).await;
        assert_eq!(known, unknown, "{path}");
        assert_eq!(known.0, StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn login_refuses_wrong_passwords_unknown_and_unverified_accounts() {
    let app = spawn().await;
    register(&app, "unverified@example.com").await;
    let (status, body) = login(&app, "unverified@example.com", PASSWORD).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "email_not_verified"));
    verified_user(&app, "real@example.com").await;
    let wrong = login(&app, "real@example.com", "not the password at all").await;
    let unknown = login(&app, "ghost@example.com", PASSWORD).await;
    assert_eq!((wrong.0, code(&wrong.1)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    assert_eq!((unknown.0, code(&unknown.1)), (StatusCode::UNAUTHORIZED, "invalid_credentials"));
    assert_eq!(wrong.1["detail"], unknown.1["detail"], "the same words for both");
}

#[tokio::test]
async fn lockout_after_the_threshold_then_reset_lifts_it() {
    let app = spawn_with(|config| config.auth.lockout_threshold = 3).await;
    verified_user(&app, "locked@example.com").await;
    for attempt in 1..=3 {
        let (status, body) = login(&app, "locked@example.com", "wrong wrong wrong").await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "attempt {attempt}");
    }
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "locked@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::LOCKED, "even the right password is refused");
    let retry_after: i64 = response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!((code(&body), body["retry_after"].as_i64()), ("account_locked", Some(retry_after)));
    let mail = mail_to(&app, "locked@example.com", 3).await;
    assert!(mail.iter().any(|text| text.to_lowercase().contains("locked")), "the owner is told");

    let (status, _) = post(&app, "/api/v1/auth/request-password-reset", json!({"email": "locked@example.com"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = token_from_mail(&app, "locked@example.com", "reset-password", 4).await;
    let (status, body) =
        post(&app, "/api/v1/auth/reset-password", json!({"token": token, "new_password": NEW_PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = login(&app, "locked@example.com", NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the reset lifted the lock: {body}");
}

#[tokio::test]
async fn a_retried_refresh_within_the_grace_window_gets_a_fresh_pair() {
    let app = spawn().await;
    verified_user(&app, "retry@example.com").await;
    let session = logged_in(&app, "retry@example.com").await;
    let (status, first) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await;
    assert_eq!(status, StatusCode::OK);
    // The response was lost; the client retries with the same token.
    let (status, retried) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_ne!(retried["refresh_token"], first["refresh_token"]);
    let (status, _) = get_as(&app, retried["access_token"].as_str().expect("token"), "/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK, "same session still live");
}

#[tokio::test]
async fn reusing_an_older_refresh_token_ends_the_session_and_tells_the_owner() {
    let app = spawn().await;
    verified_user(&app, "reuse@example.com").await;
    let grandparent = logged_in(&app, "reuse@example.com").await;
    let (_, parent) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": grandparent.refresh})).await;
    let parent = tokens(&parent);
    let (_, child) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": parent.refresh})).await;
    let child = tokens(&child);

    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": grandparent.refresh})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
    let (status, body) = get_as(&app, &child.access, "/api/v1/auth/me").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "the whole session ended");
    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": child.refresh})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    let mail = mail_to(&app, "reuse@example.com", 3).await;
    assert!(mail.last().is_some_and(|text| text.contains("session")), "owner emailed: {mail:?}");
}

#[tokio::test]
async fn reuse_after_the_grace_window_ends_the_session() {
    let app = spawn_with(|config| config.auth.refresh_retry_grace = Duration::ZERO).await;
    verified_user(&app, "nograce@example.com").await;
    let session = logged_in(&app, "nograce@example.com").await;
    let (status, _) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "refresh_token_reused"));
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_keep_one_session_alive() {
    let app = spawn().await;
    verified_user(&app, "race@example.com").await;
    let session = logged_in(&app, "race@example.com").await;
    let (first, second) = tokio::join!(
        post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})),
        post(&app, "/api/v1/auth/refresh", json!({"refresh_token": session.refresh})),
    );
    assert_eq!((first.0, second.0), (StatusCode::OK, StatusCode::OK), "{first:?} {second:?}");
    assert_ne!(first.1["refresh_token"], second.1["refresh_token"]);
    for pair in [&first.1, &second.1] {
        let (status, _) = get_as(&app, pair["access_token"].as_str().expect("token"), "/api/v1/auth/me").await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn password_reset_is_single_use_voided_by_newer_and_ends_every_session() {
    let app = spawn().await;
    verified_user(&app, "reset@example.com").await;
    let session = logged_in(&app, "reset@example.com").await;
    post(&app, "/api/v1/auth/request-password-reset", json!({"email": "reset@example.com"})).await;
    let older = token_from_mail(&app, "reset@example.com", "reset-password", 3).await;
    post(&app, "/api/v1/auth/request-password-reset", json!({"email": "reset@example.com"})).await;
    let newer = token_from_mail(&app, "reset@example.com", "reset-password", 4).await;

    let (status, body) =
        post(&app, "/api/v1/auth/reset-password", json!({"token": older, "new_password": NEW_PASSWORD})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_token"), "voided by the newer token");
    let (status, body) =
        post(&app, "/api/v1/auth/reset-password", json!({"token": newer, "new_password": "short"})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    assert_eq!(body["errors"][0]["field"], "new_password");
    let (status, body) =
        post(&app, "/api/v1/auth/reset-password", json!({"token": newer, "new_password": NEW_PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "the token survived the weak attempt: {body}");
    let (status, body) =
        post(&app, "/api/v1/auth/reset-password", json!({"token": newer, "new_password": NEW_PASSWORD})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_token"), "single use");

    let (status, body) = get_as(&app, &session.access, "/api/v1/auth/me").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    assert_eq!(login(&app, "reset@example.com", PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, "reset@example.com", NEW_PASSWORD).await.0, StatusCode::OK);
    let mail = mail_to(&app, "reset@example.com", 5).await;
    assert!(mail.last().is_some_and(|text| text.to_lowercase().contains("password")), "password-changed notice");
}

#[tokio::test]
async fn change_password_checks_the_current_one_and_ends_only_other_sessions() {
    let app = spawn().await;
    verified_user(&app, "change@example.com").await;
    let here = logged_in(&app, "change@example.com").await;
    let elsewhere = logged_in(&app, "change@example.com").await;
    let path = "/api/v1/auth/change-password";

    let (status, body) =
        post_as(&app, &here.access, path, json!({"current_password": "not it at all!", "new_password": NEW_PASSWORD}))
            .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "wrong_password"));
    let (status, body) =
        post_as(&app, &here.access, path, json!({"current_password": PASSWORD, "new_password": "tiny"})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"));
    let (status, body) =
        post_as(&app, &here.access, path, json!({"current_password": PASSWORD, "new_password": PASSWORD})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "password_reused"));

    let (status, body) =
        post_as(&app, &here.access, path, json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get_as(&app, &here.access, "/api/v1/auth/me").await.0, StatusCode::OK, "the current session stays");
    let (status, body) = get_as(&app, &elsewhere.access, "/api/v1/auth/me").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"), "other sessions end");
    assert_eq!(login(&app, "change@example.com", NEW_PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test]
async fn authentication_failures_are_401_with_the_right_code_before_body_validation() {
    let app = spawn().await;
    let response = app.client.get(app.url("/api/v1/auth/me")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.expect("json");
    assert_eq!(code(&body), "not_authenticated");

    let (status, body) = send(app.client.get(app.url("/api/v1/auth/me")).header("authorization", "Basic YTpi")).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "not_authenticated"));
    let (status, body) = get_as(&app, "not.a.jwt", "/api/v1/auth/me").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "invalid_token"));

    // An invalid body with no credentials is a 401, not a 422.
    let (status, body) =
        send(app.client.post(app.url("/api/v1/auth/change-password")).json(&json!({"bogus": 1}))).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "not_authenticated"));
}

#[tokio::test]
async fn bcrypt_hashes_from_the_original_system_log_in_and_are_upgraded() {
    let app = spawn().await;
    let legacy = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    assert!(legacy.starts_with("$2b$"));
    let user = dashtam_domain::NewUser {
        id: dashtam_domain::UserId::generate(),
        email: dashtam_domain::Email::parse("legacy@example.com").expect("valid"),
        name: dashtam_domain::UserName::parse("Legacy").expect("valid"),
        password_hash: legacy.clone(),
        role: dashtam_domain::Role::User,
        email_verified_at: Some(time::OffsetDateTime::UNIX_EPOCH),
        created_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    let mut tx = app.state.store.begin().await.expect("begin");
    tx.insert_user(&user).await.expect("insert");
    tx.commit().await.expect("commit");

    assert_eq!(login(&app, "legacy@example.com", "not the right one").await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = login(&app, "legacy@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = app.state.store.user_by_id(user.id).await.expect("read").expect("user");
    assert!(stored.password_hash.starts_with("$argon2id$"), "re-hashed on login: {}", stored.password_hash);
    assert_eq!(login(&app, "legacy@example.com", PASSWORD).await.0, StatusCode::OK, "the new hash verifies");
}

#[tokio::test]
async fn clients_that_hang_up_mid_request_never_poison_the_connection_pool() {
    // A client that disconnects cancels its request. Cancelled while a transaction was being opened, a
    // connection could go back to the pool still inside that transaction, and every later write on it
    // failed with a 500. Hang up at many different moments, then check that every write still works.
    // (Far more logins than the login rate limit admits: this test is about the pool, not the limit.)
    let app = spawn_with(|config| config.rate_limit.enabled = false).await;
    verified_user(&app, "hangup@example.com").await;
    let impatient = reqwest::Client::new();
    let hang_ups = (0..60_u64).map(|n| {
        let request = impatient
            .post(app.url("/api/v1/auth/login"))
            .timeout(Duration::from_millis(1 + n % 30))
            .json(&json!({"email": "hangup@example.com", "password": PASSWORD}))
            .send();
        async move { drop(request.await) }
    });
    futures::future::join_all(hang_ups).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for attempt in 0..20 {
        let (status, body) = login(&app, "hangup@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "attempt {attempt}: {body}");
    }
}
