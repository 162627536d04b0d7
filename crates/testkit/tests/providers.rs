//! Providers (API.md §5) end to end: the catalog, connections (create, list with paging, filters and sort,
//! rename, delete), ownership, and bad input.

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_testkit::http::*;
use dashtam_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};

async fn app_without_rate_limits() -> TestApp {
    TestApp::spawn_configured(TestDatabase::preferred().await, |config| config.rate_limit.enabled = false).await
}

async fn create(app: &TestApp, token: &str, key: &str, alias: &str) -> (StatusCode, Value) {
    post_as(app, token, "/api/v1/providers", json!({"provider_key": key, "alias": alias})).await
}

#[tokio::test]
async fn the_catalog_lists_every_type_and_says_which_are_configured() {
    let app = TestApp::spawn().await;
    let (status, types) = send(app.client.get(app.url("/api/v1/provider-types"))).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = types.as_array().expect("array").iter().map(|t| t["key"].as_str().expect("key")).collect();
    assert_eq!(keys, ["schwab", "alpaca", "sandbox", "file_import"]);
    let by_key = |key: &str| types.as_array().expect("array").iter().find(|t| t["key"] == key).expect("type").clone();
    // Schwab needs a client id and secret this test configuration does not have; the sandbox is on in
    // development; file imports need nothing.
    assert_eq!(by_key("schwab")["is_configured"], false);
    assert_eq!(by_key("schwab")["auth_type"], "oauth2");
    assert_eq!(by_key("sandbox")["is_configured"], true);
    assert_eq!(by_key("alpaca")["auth_type"], "api_key");
    assert_eq!(by_key("file_import")["auth_type"], "file");

    let (_, configured) = send(app.client.get(app.url("/api/v1/provider-types?configured=true"))).await;
    assert!(configured.as_array().expect("array").iter().all(|t| t["is_configured"] == true));
    assert!(configured.as_array().expect("array").iter().any(|t| t["key"] == "sandbox"));
    let (_, unconfigured) = send(app.client.get(app.url("/api/v1/provider-types?configured=false"))).await;
    assert!(unconfigured.as_array().expect("array").iter().any(|t| t["key"] == "schwab"));

    let (status, body) = send(app.client.get(app.url("/api/v1/provider-types?configured=maybe"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, sandbox) = send(app.client.get(app.url("/api/v1/provider-types/sandbox"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sandbox["name"], "Sandbox Brokerage");
    let (status, body) = send(app.client.get(app.url("/api/v1/provider-types/etrade"))).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn users_create_list_rename_and_delete_their_connections() {
    let app = app_without_rate_limits().await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;

    let (status, created) = create(&app, &token, "sandbox", "  Demo brokerage ").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["alias"], "Demo brokerage");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["is_connected"], false);
    assert_eq!(created["needs_reconnection"], false);
    assert_eq!(created["accounts_count"], 0);
    assert!(created["connected_at"].is_null());
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, body) = create(&app, &token, "sandbox", "DEMO BROKERAGE").await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "duplicate_alias"));
    let (status, body) = create(&app, &token, "etrade", "E*Trade").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "unknown_provider"));
    let (status, body) = create(&app, &token, "schwab", "Schwab").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "provider_not_configured"));
    let (status, body) = create(&app, &token, "sandbox", "").await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"));
    assert_eq!(body["errors"][0]["field"], "alias");
    let (status, body) = create(&app, &token, "sandbox", &"x".repeat(101)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) =
        post_as(&app, &token, "/api/v1/providers", json!({"provider_key": "sandbox", "alias": "A", "x": 1})).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"), "{body}");

    for alias in ["Statements B", "Statements A", "Statements C"] {
        let (status, body) = create(&app, &token, "file_import", alias).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let (status, page) = get_as(&app, &token, "/api/v1/providers?per_page=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["total"].as_u64(), page["pages"].as_u64(), page["per_page"].as_u64()),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!((page["has_next"].as_bool(), page["has_prev"].as_bool()), (Some(true), Some(false)));
    // Newest first by default.
    assert_eq!(page["items"][0]["alias"], "Statements C");
    let (_, second) = get_as(&app, &token, "/api/v1/providers?per_page=2&page=2").await;
    assert_eq!((second["has_next"].as_bool(), second["has_prev"].as_bool()), (Some(false), Some(true)));
    assert_eq!(second["items"][1]["alias"], "Demo brokerage");

    let (_, sorted) = get_as(&app, &token, "/api/v1/providers?sort=alias&order=asc&provider_key=file_import").await;
    let aliases: Vec<&str> =
        sorted["items"].as_array().expect("items").iter().map(|p| p["alias"].as_str().expect("alias")).collect();
    assert_eq!(aliases, ["Statements A", "Statements B", "Statements C"]);
    let (_, pending) = get_as(&app, &token, "/api/v1/providers?status=pending").await;
    assert_eq!(pending["total"], 4);
    let (_, active) = get_as(&app, &token, "/api/v1/providers?status=active").await;
    assert_eq!(active["total"], 0);

    let (status, body) = get_as(&app, &token, "/api/v1/providers?sort=password").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_sort"));
    let (status, body) = get_as(&app, &token, "/api/v1/providers?order=sideways").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_sort"));
    for bad in ["per_page=0", "per_page=101", "page=0", "status=broken", "provider_key=etrade", "page=x"] {
        let (status, body) = get_as(&app, &token, &format!("/api/v1/providers?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }

    let path = format!("/api/v1/providers/{id}");
    let (status, renamed) = patch_as(&app, &token, &path, json!({"alias": "Renamed"})).await;
    assert_eq!((status, renamed["alias"].as_str()), (StatusCode::OK, Some("Renamed")), "{renamed}");
    let (status, body) = patch_as(&app, &token, &path, json!({"alias": "statements a"})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "duplicate_alias"));
    let (status, fetched) = get_as(&app, &token, &path).await;
    assert_eq!((status, fetched["alias"].as_str()), (StatusCode::OK, Some("Renamed")));

    let (status, _) = delete_as(&app, &token, &path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = get_as(&app, &token, &path).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _) = delete_as(&app, &token, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get_as(&app, &token, "/api/v1/providers/not-a-uuid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The deleted connection's audit trail stays.
    let admin = logged_in_admin(&app, "admin@example.com").await.access;
    let (_, audit) = get_as(&app, &admin, "/api/v1/admin/audit-logs?action=provider.created&limit=100").await;
    assert!(audit["items"].as_array().expect("items").iter().any(|entry| entry["resource_id"] == id.as_str()));
    let (_, audit) = get_as(&app, &admin, "/api/v1/admin/audit-logs?action=provider.deleted").await;
    assert_eq!(audit["items"][0]["resource_id"], id.as_str());
}

#[tokio::test]
async fn another_users_connections_are_invisible_and_untouchable() {
    let app = app_without_rate_limits().await;
    let owner = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let intruder = created_and_logged_in(&app, "intruder@example.com", Role::User).await.access;
    let (_, created) = create(&app, &owner, "sandbox", "Mine").await;
    let path = format!("/api/v1/providers/{}", created["id"].as_str().expect("id"));

    let (_, list) = get_as(&app, &intruder, "/api/v1/providers").await;
    assert_eq!(list["total"], 0);
    for (status, body) in [
        get_as(&app, &intruder, &path).await,
        patch_as(&app, &intruder, &path, json!({"alias": "Stolen"})).await,
        delete_as(&app, &intruder, &path).await,
        post_as(&app, &intruder, &format!("{path}/authorization"), json!({})).await,
        get_as(&app, &intruder, &format!("{path}/authorization")).await,
        patch_as(&app, &intruder, &format!("{path}/authorization"), json!({})).await,
        delete_as(&app, &intruder, &format!("{path}/authorization")).await,
        post_as(&app, &intruder, &format!("{path}/credentials"), json!({"api_key": "k", "api_secret": "s"})).await,
    ] {
        assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"), "{body}");
    }
    let (status, body) = get_as(&app, &owner, &path).await;
    assert_eq!((status, body["alias"].as_str()), (StatusCode::OK, Some("Mine")));

    // Without a token, nothing.
    let (status, body) = send(app.client.get(app.url("/api/v1/providers"))).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "not_authenticated"));
}

/// Alpaca is a third party: a local fake of its API stands in for it.
#[tokio::test]
async fn api_key_connections_are_checked_live_then_stored_encrypted() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let alpaca = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/account"))
        .and(header("APCA-API-KEY-ID", "PKTEST1234"))
        .and(header("APCA-API-SECRET-KEY", "right-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "904837e3-3b76-47ec-b432-046db621571b", "account_number": "PA3HGR8CB9HZ", "status": "ACTIVE",
            "currency": "USD", "cash": "1000.00", "portfolio_value": "1500.25", "equity": "1500.25",
            "buying_power": "2000.00"
        })))
        .mount(&alpaca)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/account"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "unauthorized."})))
        .mount(&alpaca)
        .await;
    let base_url = alpaca.uri();
    let app = TestApp::spawn_configured(TestDatabase::preferred().await, move |config| {
        config.rate_limit.enabled = false;
        config.alpaca.base_url = base_url.parse().expect("url");
    })
    .await;
    let token = created_and_logged_in(&app, "owner@example.com", Role::User).await.access;
    let (_, created) = create(&app, &token, "alpaca", "Alpaca").await;
    let credentials_path = format!("/api/v1/providers/{}/credentials", created["id"].as_str().expect("id"));

    let (status, body) =
        post_as(&app, &token, &credentials_path, json!({"api_key": "PKTEST1234", "api_secret": "wrong"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "invalid_credentials"), "{body}");
    assert!(!body.to_string().contains("wrong"));
    let (status, body) = post_as(&app, &token, &credentials_path, json!({"api_key": "", "api_secret": "x"})).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("api_key")));

    let (status, connected) =
        post_as(&app, &token, &credentials_path, json!({"api_key": "PKTEST1234", "api_secret": "right-secret"})).await;
    assert_eq!(status, StatusCode::OK, "{connected}");
    assert_eq!((connected["status"].as_str(), connected["is_connected"].as_bool()), (Some("active"), Some(true)));
    let stored = app.state.store.credentials_after(None, 10).await.expect("credentials");
    assert_eq!(stored.len(), 1);
    let secret = &stored[0].secret;
    assert!(!secret.windows(12).any(|window| window == b"right-secret"), "the secret is stored encrypted");

    // An OAuth-only operation on an API-key connection, and the reverse.
    let id = created["id"].as_str().expect("id");
    let (status, body) = post_as(&app, &token, &format!("/api/v1/providers/{id}/authorization"), json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "not_oauth_provider"));
    let (_, sandbox) = create(&app, &token, "sandbox", "Demo").await;
    let path = format!("/api/v1/providers/{}/credentials", sandbox["id"].as_str().expect("id"));
    let (status, body) = post_as(&app, &token, &path, json!({"api_key": "k", "api_secret": "s"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "not_api_key_provider"));
}
