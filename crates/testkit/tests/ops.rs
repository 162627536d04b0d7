//! Operations endpoints (API.md §1) on the real application: liveness, readiness (including a dependency
//! that goes away), metrics, the OpenAPI document and the offline docs UI.

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_testkit::{Backend, TestApp, TestDatabase, postgres_url};
use serde_json::Value;

async fn json(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

#[tokio::test]
async fn health_reports_ok_and_the_version() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/health")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn ready_reports_each_dependency() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/ready")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body, serde_json::json!({"status": "ready", "checks": {"database": "ok", "cache": "ok"}}));
}

async fn expect_not_ready(app: &TestApp, failing: &str) {
    let response = app.client.get(app.url("/ready")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    let body = json(response).await;
    assert_eq!(body["code"], "not_ready", "{body}");
    assert_eq!(body["checks"][failing], "unavailable", "{body}");
    assert!(body["detail"].as_str().is_some_and(|detail| detail.contains(failing)), "{body}");
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn ready_is_503_naming_the_database_once_it_is_gone() {
    let app = TestApp::spawn().await;
    app.state.store.close().await;
    expect_not_ready(&app, "database").await;
    // Liveness is unaffected: the process still runs.
    let health = app.client.get(app.url("/health")).send().await.expect("request");
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn ready_is_503_naming_the_cache_when_redis_is_unreachable() {
    // A port nothing listens on: bind one, then let it go.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let app = TestApp::spawn_configured(TestDatabase::preferred().await, |config| {
        config.redis_url = Some(format!("redis://{vacant}").into());
        config.redis_timeout = Duration::from_millis(300);
    })
    .await;
    let started = std::time::Instant::now();
    expect_not_ready(&app, "cache").await;
    assert!(started.elapsed() < Duration::from_secs(5), "readiness must not hang on a dead Redis");
    let body = json(app.client.get(app.url("/ready")).send().await.expect("request")).await;
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn ready_is_503_when_postgresql_drops_the_database() {
    let Some(base_url) = postgres_url() else {
        return;
    };
    // A whole database (not just a schema), so it can be removed from under the running server.
    let name = format!("dashtam_ready_{}", uuid::Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&base_url).await.expect("PostgreSQL reachable");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    let mut url = url::Url::parse(&base_url).expect("URL");
    url.set_path(&format!("/{name}"));
    let database = TestDatabase::unmanaged(url.to_string(), Backend::Postgres);
    let app = TestApp::spawn_configured(database, |config| {
        config.database.acquire_timeout = Duration::from_secs(1);
    })
    .await;
    assert_eq!(app.client.get(app.url("/ready")).send().await.expect("request").status(), StatusCode::OK);

    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.expect("drop database");
    let started = std::time::Instant::now();
    expect_not_ready(&app, "database").await;
    assert!(started.elapsed() < Duration::from_secs(10), "readiness must answer within its timeouts");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_show_the_pool() {
    let app = TestApp::spawn().await;
    app.client.get(app.url("/health")).send().await.expect("request");
    app.client.get(app.url("/docs/no-such-asset.js")).send().await.expect("request");
    app.client.get(app.url("/random/path/12345")).send().await.expect("request");
    let response = app.client.get(app.url("/metrics")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|content_type| content_type.starts_with("application/openmetrics-text"))
    );
    let text = response.text().await.expect("text");
    assert!(text.contains(r#"dashtam_http_requests_total{method="GET",route="/health",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="/docs/{asset}",status="404""#), "labelled by template: {text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("12345"), "raw paths never become labels: {text}");
    assert!(text.contains("dashtam_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains(r#"dashtam_db_pool_connections{state="max"}"#), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test]
async fn openapi_describes_every_operations_route() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/openapi.json")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let document = json(response).await;
    assert!(document["openapi"].as_str().is_some_and(|version| version.starts_with("3.1")), "{document}");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/{asset}", "/api/v1/auth/me"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} missing");
    }
    for path in [
        "register",
        "verify-email",
        "resend-verification",
        "login",
        "refresh",
        "logout",
        "request-password-reset",
        "reset-password",
        "change-password",
    ] {
        let operation = &document["paths"][format!("/api/v1/auth/{path}")]["post"];
        assert!(operation.is_object(), "{path} missing");
        assert!(operation["requestBody"].is_object(), "{path} documents its body");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|status| status.starts_with('4')), "{path} documents its errors");
        assert!(responses["429"]["headers"]["Retry-After"].is_object(), "{path} documents its rate limit");
    }
    for (path, method) in [
        ("/api/v1/auth/sessions", "get"),
        ("/api/v1/auth/sessions/{id}", "delete"),
        ("/api/v1/auth/sessions/others/revoke", "delete"),
        ("/api/v1/auth/sessions/all/revoke", "delete"),
        ("/api/v1/users/{user_id}/token-rotations", "post"),
        ("/api/v1/admin/token-rotations", "post"),
        ("/api/v1/admin/security-config", "get"),
        ("/api/v1/admin/audit-logs", "get"),
    ] {
        let operation = &document["paths"][path][method];
        assert!(operation["security"].is_array(), "{method} {path} missing or unauthenticated");
        assert!(operation["responses"]["401"].is_object(), "{method} {path} documents 401");
    }
    assert!(document["paths"]["/health"]["get"]["responses"]["429"].is_null(), "operations are never limited");
    assert!(document["paths"]["/api/v1/auth/me"]["patch"].is_object());
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(document["paths"]["/api/v1/auth/me"]["get"]["security"].is_array(), "authenticated routes say so");
    assert!(document["components"]["schemas"]["ProblemDocument"].is_object());
    assert_eq!(
        document["paths"]["/ready"]["get"]["responses"]["503"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/ProblemDocument"
    );
    // The served document is the one the code generates.
    assert_eq!(document, serde_json::to_value(dashtam_api::openapi()).expect("serialises"));
}

#[tokio::test]
async fn docs_are_served_from_the_binary_without_a_cdn() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs")).send().await.expect("request");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("/docs/swagger-ui-bundle.js") && html.contains("/docs/init.js"));
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets: {html}");

    for (asset, content_type) in [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("init.js", "text/javascript; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
    ] {
        let response = app.client.get(app.url(&format!("/docs/{asset}"))).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some(content_type));
        assert!(!response.bytes().await.expect("body").is_empty());
    }
    let init = app.client.get(app.url("/docs/init.js")).send().await.expect("request").text().await.expect("text");
    assert!(init.contains("\"/openapi.json\""));
    let missing = app.client.get(app.url("/docs/../Cargo.toml")).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
