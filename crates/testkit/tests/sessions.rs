//! Sessions (API.md §3) and breach response (§4) end to end: listing and ending sessions, device details,
//! new-device alerts, user and global token rotation with a grace period (on an injected clock), and
//! revocation seen at once by a second instance.

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_domain::SessionId;
use dashtam_testkit::http::*;
use dashtam_testkit::{TestApp, TestDatabase};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

async fn login_with_agent(app: &TestApp, email: &str, user_agent: &str) -> Tokens {
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", user_agent)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    tokens(&response.json().await.expect("login body"))
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    get_as(app, token, "/api/v1/auth/me").await
}

#[tokio::test]
async fn users_list_and_end_their_sessions_but_never_anyone_elses() {
    let app = TestApp::spawn().await;
    verified_user(&app, "ada@example.com").await;
    let laptop = login_with_agent(&app, "ada@example.com", FIREFOX).await;
    let desktop = login_with_agent(&app, "ada@example.com", CHROME_MAC).await;
    let phone = logged_in(&app, "ada@example.com").await;

    let (status, body) = get_as(&app, &laptop.access, "/api/v1/auth/sessions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_count"], 3);
    let sessions = body["sessions"].as_array().expect("sessions");
    let current: Vec<&Value> = sessions.iter().filter(|session| session["is_current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["device_info"], "Firefox on Linux");
    assert_eq!((current[0]["browser"].clone(), current[0]["os"].clone()), (json!("Firefox"), json!("Linux")));
    assert_eq!(current[0]["device_type"], "desktop");
    assert_eq!(current[0]["ip_address"], "127.0.0.1");
    assert_eq!(current[0]["location"], Value::Null, "no location database configured");
    let laptop_id = current[0]["id"].as_str().expect("id").to_owned();
    let chrome = sessions.iter().find(|session| session["device_info"] == "Chrome on Mac OSX").expect("chrome session");
    let chrome_id = chrome["id"].as_str().expect("id").to_owned();

    // Bad ids, the current session, and someone else's session change nothing.
    let (status, _) = delete_as(&app, &laptop.access, "/api/v1/auth/sessions/not-a-uuid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = delete_as(&app, &laptop.access, &format!("/api/v1/auth/sessions/{laptop_id}")).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "cannot_revoke_current_session"));
    verified_user(&app, "eve@example.com").await;
    let eve = logged_in(&app, "eve@example.com").await;
    let (status, body) = delete_as(&app, &eve.access, &format!("/api/v1/auth/sessions/{chrome_id}")).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let random = uuid::Uuid::now_v7();
    let (status, _) = delete_as(&app, &eve.access, &format!("/api/v1/auth/sessions/{random}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown and foreign ids look alike");
    assert_eq!(me(&app, &desktop.access).await.0, StatusCode::OK, "eve's attempt changed nothing");

    let upper = chrome_id.to_uppercase();
    let (status, body) = delete_as(&app, &laptop.access, &format!("/api/v1/auth/sessions/{upper}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked_session_id"], chrome_id.as_str());
    let (status, body) = me(&app, &desktop.access).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    let (status, _) = delete_as(&app, &laptop.access, &format!("/api/v1/auth/sessions/{chrome_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already ended");

    let (status, body) = delete_as(&app, &laptop.access, "/api/v1/auth/sessions/others/revoke").await;
    assert_eq!((status, body["revoked_count"].clone()), (StatusCode::OK, json!(1)));
    assert_eq!(me(&app, &phone.access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &laptop.access).await.0, StatusCode::OK, "the current session stays");

    let (status, body) = delete_as(&app, &laptop.access, "/api/v1/auth/sessions/all/revoke").await;
    assert_eq!((status, body["revoked_count"].clone()), (StatusCode::OK, json!(1)));
    let (status, body) = me(&app, &laptop.access).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    assert_eq!(me(&app, &eve.access).await.0, StatusCode::OK, "other users are untouched");
}

#[tokio::test]
async fn activity_is_recorded_at_most_once_a_minute() {
    let app = TestApp::spawn().await;
    verified_user(&app, "ada@example.com").await;
    let tokens = logged_in(&app, "ada@example.com").await;
    let (_, body) = get_as(&app, &tokens.access, "/api/v1/auth/sessions").await;
    let id = SessionId::from_uuid(body["sessions"][0]["id"].as_str().and_then(|id| id.parse().ok()).expect("id"));
    let activity = |app: &TestApp| {
        let store = app.state.store.clone();
        async move { store.session_by_id(id).await.expect("read").expect("session").last_activity_at }
    };
    let at_login = activity(&app).await;
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(me(&app, &tokens.access).await.0, StatusCode::OK);
    assert_eq!(activity(&app).await, at_login, "within the minute: no write");
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(me(&app, &tokens.access).await.0, StatusCode::OK);
    let later = activity(&app).await;
    assert!(later >= at_login + time::Duration::seconds(61), "{at_login} -> {later}");
}

#[tokio::test]
async fn a_login_from_a_new_device_tells_the_owner() {
    let app = TestApp::spawn().await;
    verified_user(&app, "ada@example.com").await;
    login_with_agent(&app, "ada@example.com", FIREFOX).await;
    login_with_agent(&app, "ada@example.com", FIREFOX).await;
    // Verification and welcome only: the first device, and the same device again, are not news.
    assert_eq!(mail_to(&app, "ada@example.com", 2).await.len(), 2);
    login_with_agent(&app, "ada@example.com", CHROME_MAC).await;
    let mail = mail_to(&app, "ada@example.com", 3).await;
    let alert = mail.last().expect("alert");
    assert!(alert.contains("New sign-in"), "{alert}");
    assert!(alert.contains("Chrome on Mac OSX") && alert.contains("127.0.0.1"), "{alert}");
    assert!(alert.contains("/settings/sessions?end="), "{alert}");
}

#[tokio::test]
async fn a_user_rotation_retires_every_token_of_that_user_only() {
    let app = TestApp::spawn().await;
    verified_user(&app, "ada@example.com").await;
    verified_user(&app, "bob@example.com").await;
    let ada = logged_in(&app, "ada@example.com").await;
    let ada_phone = logged_in(&app, "ada@example.com").await;
    let bob = logged_in(&app, "bob@example.com").await;
    let (_, me_body) = me(&app, &ada.access).await;
    let ada_id = me_body["id"].as_str().expect("id").to_owned();
    let (_, me_body) = me(&app, &bob.access).await;
    let bob_id = me_body["id"].as_str().expect("id").to_owned();

    let path = |id: &str| format!("/api/v1/users/{id}/token-rotations");
    let (status, body) = post_as(&app, &ada.access, &path(&ada_id), json!({"reason": "short"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = post_as(&app, &ada.access, &path(&bob_id), json!({"reason": "I think Bob was hacked"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a user may only rotate their own tokens");
    assert_eq!(me(&app, &bob.access).await.0, StatusCode::OK);

    let (status, body) =
        post_as(&app, &ada.access, &path(&ada_id), json!({"reason": "lost my phone on the train"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rotation_type"], "user");
    assert_eq!((body["old_version"].clone(), body["new_version"].clone()), (json!(1), json!(2)));
    assert_eq!(body["sessions_revoked"], 2);
    for token in [&ada.access, &ada_phone.access] {
        let (status, body) = me(&app, token).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "token_rotated"));
    }
    let (status, _) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada_phone.refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &bob.access).await.0, StatusCode::OK);
    let fresh = logged_in(&app, "ada@example.com").await;
    assert_eq!(me(&app, &fresh.access).await.0, StatusCode::OK, "a new login works");

    let root = logged_in_admin(&app, "root@example.com").await;
    let (status, body) = post_as(&app, &root.access, &path(&bob_id), json!({"reason": "suspicious activity"})).await;
    assert_eq!((status, body["sessions_revoked"].clone()), (StatusCode::OK, json!(1)));
    let missing = uuid::Uuid::now_v7();
    let (status, _) =
        post_as(&app, &root.access, &path(&missing.to_string()), json!({"reason": "nobody at all"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_global_rotation_honours_its_grace_period_exactly() {
    let app = TestApp::spawn().await;
    let root = logged_in_admin(&app, "root@example.com").await;
    verified_user(&app, "ada@example.com").await;
    let ada = logged_in(&app, "ada@example.com").await;
    let reason = "credential database leaked upstream";

    let (status, body) = post_as(&app, &ada.access, "/api/v1/admin/token-rotations", json!({"reason": reason})).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = post_as(
        &app,
        &root.access,
        "/api/v1/admin/token-rotations",
        json!({"reason": reason, "grace_period_seconds": 3601}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = post_as(
        &app,
        &root.access,
        "/api/v1/admin/token-rotations",
        json!({"reason": reason, "grace_period_seconds": 60}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rotation_type"], "global");
    assert_eq!((body["sessions_revoked"].clone(), body["users_affected"].clone()), (json!(2), json!(2)));
    assert_eq!(body["grace_period_seconds"], 60);

    // Inside the grace period everything works, refresh included.
    app.clock.advance(Duration::from_secs(59));
    assert_eq!(me(&app, &ada.access).await.0, StatusCode::OK);
    let (status, refreshed) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": ada.refresh})).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let after_login = logged_in(&app, "ada@example.com").await;

    // After it, nothing issued before the rotation works, not even what was refreshed during the grace.
    app.clock.advance(Duration::from_secs(2));
    for token in [&ada.access, &tokens(&refreshed).access, &root.access] {
        let (status, body) = me(&app, token).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "token_rotated"));
    }
    let (status, body) = post(&app, "/api/v1/auth/refresh", json!({"refresh_token": tokens(&refreshed).refresh})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "token_rotated"));
    assert_eq!(me(&app, &after_login.access).await.0, StatusCode::OK, "sessions started after it stay");
    let (_, listed) = get_as(&app, &after_login.access, "/api/v1/auth/sessions").await;
    assert_eq!(listed["total_count"], 1, "retired sessions leave the list");

    let root = logged_in(&app, "root@example.com").await;
    let (status, config) = get_as(&app, &root.access, "/api/v1/admin/security-config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (config["global_min_token_version"].clone(), config["last_rotation_reason"].clone()),
        (json!(2), json!(reason))
    );

    // With no grace, every existing token stops at once.
    let (status, body) = post_as(&app, &root.access, "/api/v1/admin/token-rotations", json!({"reason": reason})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for token in [&root.access, &after_login.access] {
        let (status, body) = me(&app, token).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "token_rotated"));
    }
    let (status, _) = get_as(&app, &ada.access, "/api/v1/admin/security-config").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revocation_on_one_instance_is_refused_by_another_at_once() {
    let Some(database) = TestDatabase::postgres().await else {
        eprintln!("skipped: DASHTAM_TEST_DATABASE_URL is not set (CI sets it)");
        return;
    };
    let shared = TestDatabase::unmanaged(database.url.clone(), database.backend);
    // Instances behind one load balancer share their keys and their public URL (the tokens' issuer).
    let secret = || dashtam_adapters::opaque_tokens::generate_secret_base64(32).expect("randomness");
    let (signing, encryption, token_hash) = (secret(), secret(), secret());
    let keys = move |config: &mut dashtam_server::Config| {
        config.public_url = Some("http://dashtam.test".parse().expect("url"));
        config.keys.signing = Some(format!("k1:{}", signing.expose_secret()).into());
        config.keys.encryption = Some(format!("e1:{}", encryption.expose_secret()).into());
        config.keys.token_hash = Some(token_hash.clone());
    };
    let first = TestApp::spawn_configured(database, keys.clone()).await;
    let second = TestApp::spawn_configured(shared, keys).await;
    verified_user(&first, "ada@example.com").await;
    let laptop = logged_in(&first, "ada@example.com").await;
    let phone = logged_in(&second, "ada@example.com").await;
    assert_eq!(me(&second, &laptop.access).await.0, StatusCode::OK);

    let (status, _) = delete_as(&first, &phone.access, "/api/v1/auth/sessions/others/revoke").await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (status, body) = me(&second, &laptop.access).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "session_revoked"));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_session_through_a_trusted_proxy_shows_the_clients_device_address_and_place() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/tests/fixtures/geo-fixture.mmdb");
    let app = TestApp::spawn_configured(TestDatabase::preferred().await, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
        config.geoip.database = Some(fixture);
    })
    .await;
    verified_user(&app, "ada@example.com").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", FIREFOX)
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = tokens(&response.json().await.expect("body"));
    let (_, body) = get_as(&app, &tokens.access, "/api/v1/auth/sessions").await;
    let session = &body["sessions"][0];
    assert_eq!(
        (session["device_info"].clone(), session["ip_address"].clone(), session["location"].clone()),
        (json!("Firefox on Linux"), json!("203.0.113.7"), json!("Berlin, Germany")),
        "{body}"
    );
}
