//! The HTTP spine through the real middleware on a real socket: every error the server can produce is a
//! problem document with a code and the request id; request ids, caching headers, timeouts, panics and
//! graceful shutdown behave as API.md §0 says. Test-only routes sit behind exactly the production pipeline.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use dashtam_api::datetime::{DateOrTimestamp, Timestamp};
use dashtam_api::extract::{ValidJson, ValidQuery, Validate};
use dashtam_api::{AppState, FieldError};
use dashtam_testkit::{TestApp, TestDatabase};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EchoBody {
    name: String,
    at: Option<Timestamp>,
}

impl Validate for EchoBody {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        if (1..=10).contains(&self.name.chars().count()) {
            Ok(())
        } else {
            Err(vec![FieldError::new("name", "length", "must be 1 to 10 characters")])
        }
    }
}

#[derive(Debug, Deserialize)]
struct RangeQuery {
    from: Option<DateOrTimestamp>,
}

impl Validate for RangeQuery {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
}

async fn echo(ValidJson(body): ValidJson<EchoBody>) -> axum::Json<Value> {
    axum::Json(json!({ "name": body.name, "at": body.at }))
}

async fn range(ValidQuery(query): ValidQuery<RangeQuery>) -> String {
    format!("{:?}", query.from)
}

async fn explode() -> &'static str {
    panic!("secret internal detail: connection string postgres://u:p@db")
}

async fn sleep_for(duration: Duration) -> &'static str {
    tokio::time::sleep(duration).await;
    "finished"
}

fn test_routes(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/v1/test/echo", post(echo))
        .route("/api/v1/test/range", get(range))
        .route("/api/v1/test/panic", get(explode))
        .route("/api/v1/test/slow", get(|| sleep_for(Duration::from_secs(5))))
        .route("/test/in-flight", get(|| sleep_for(Duration::from_millis(600))))
        .route("/test/ping", get(|| async { "pong" }));
    dashtam_api::with_middleware(routes, state)
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(
        TestDatabase::preferred().await,
        |config| config.server.request_timeout = Duration::from_secs(1),
        test_routes,
    )
    .await
}

/// Asserts the response is a problem document with `status` and `code`, whose `request_id` matches the
/// `X-Request-ID` header and whose `instance` is the path; returns the body.
async fn expect_problem(response: reqwest::Response, status: StatusCode, code: &str, path: &str) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("/problems/{code}"), "{body}");
    assert_eq!(body["instance"], path, "{body}");
    assert!(body["title"].as_str().is_some_and(|title| !title.is_empty()), "{body}");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn().await;
    for path in ["/api/v1/nothing-here", "/definitely/not"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        expect_problem(response, StatusCode::NOT_FOUND, "not_found", path).await;
    }
}

#[tokio::test]
async fn wrong_methods_are_405_problems_with_allow() {
    let app = spawn().await;
    let response = app.client.delete(app.url("/api/v1/test/echo")).send().await.expect("request");
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    expect_problem(response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "/api/v1/test/echo").await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn().await;
    for body in ["{", "{\"name\": }", "[1, 2", "{\"name\":\"a\"} trailing", ""] {
        let response = app
            .client
            .post(app.url("/api/v1/test/echo"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        expect_problem(response, StatusCode::BAD_REQUEST, "malformed_json", "/api/v1/test/echo").await;
    }
}

#[tokio::test]
async fn unknown_fields_are_422_naming_the_field() {
    let app = spawn().await;
    let response =
        app.client.post(app.url("/api/v1/test/echo")).json(&json!({"name": "a", "role": "admin"})).send().await;
    let body = expect_problem(
        response.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_field",
        "/api/v1/test/echo",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "role");
    assert_eq!(body["errors"][0]["code"], "unknown_field");
}

#[tokio::test]
async fn invalid_values_are_422_with_every_bad_field() {
    let app = spawn().await;
    let too_long = app.client.post(app.url("/api/v1/test/echo")).json(&json!({"name": "far too long a name"}));
    let body = expect_problem(
        too_long.send().await.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "/api/v1/test/echo",
    )
    .await;
    assert_eq!(body["errors"], json!([{"field": "name", "code": "length", "message": "must be 1 to 10 characters"}]));

    let missing = app.client.post(app.url("/api/v1/test/echo")).json(&json!({}));
    let body = expect_problem(
        missing.send().await.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "/api/v1/test/echo",
    )
    .await;
    assert_eq!(
        (body["errors"][0]["field"].as_str(), body["errors"][0]["code"].as_str()),
        (Some("name"), Some("required"))
    );

    let wrong_type = app.client.post(app.url("/api/v1/test/echo")).json(&json!({"name": 42}));
    let body = expect_problem(
        wrong_type.send().await.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "/api/v1/test/echo",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "invalid_type");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = spawn().await;
    let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(70 * 1024));
    let response = app
        .client
        .post(app.url("/api/v1/test/echo"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "/api/v1/test/echo").await;
}

#[tokio::test]
async fn non_json_content_types_are_415() {
    let app = spawn().await;
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request = app.client.post(app.url("/api/v1/test/echo")).body(r#"{"name":"a"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("request");
        expect_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "/api/v1/test/echo")
            .await;
    }
    let with_charset = app
        .client
        .post(app.url("/api/v1/test/echo"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name":"a"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(with_charset.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_without_internals() {
    let app = spawn().await;
    let response = app.client.get(app.url("/api/v1/test/panic")).send().await.expect("request");
    let body =
        expect_problem(response, StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "/api/v1/test/panic").await;
    let text = body.to_string();
    assert!(!text.contains("secret") && !text.contains("postgres://"), "{text}");
    // The server keeps serving.
    let ping = app.client.get(app.url("/test/ping")).send().await.expect("request");
    assert_eq!(ping.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_past_the_timeout_are_503() {
    let app = spawn().await;
    let response = app.client.get(app.url("/api/v1/test/slow")).send().await.expect("request");
    expect_problem(response, StatusCode::SERVICE_UNAVAILABLE, "request_timeout", "/api/v1/test/slow").await;
}

#[tokio::test]
async fn naive_datetimes_are_422_in_bodies_and_queries() {
    let app = spawn().await;
    let naive_body =
        app.client.post(app.url("/api/v1/test/echo")).json(&json!({"name": "a", "at": "2025-10-03T10:00:00"}));
    let body = expect_problem(
        naive_body.send().await.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "naive_datetime",
        "/api/v1/test/echo",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "at");

    let offset_body =
        app.client.post(app.url("/api/v1/test/echo")).json(&json!({"name": "a", "at": "2025-10-03T12:00:00+02:00"}));
    let echoed: Value = offset_body.send().await.expect("request").json().await.expect("json");
    assert_eq!(echoed["at"], "2025-10-03T10:00:00Z", "output is UTC with Z");

    let naive_query = app.client.get(app.url("/api/v1/test/range?from=2025-10-03T10:00:00")).send().await;
    let body = expect_problem(
        naive_query.expect("request"),
        StatusCode::UNPROCESSABLE_ENTITY,
        "naive_datetime",
        "/api/v1/test/range",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "from");

    for accepted in ["2025-10-03", "2025-10-03T10:00:00Z", "2025-10-03T10:00:00%2B05:00"] {
        let response =
            app.client.get(app.url(&format!("/api/v1/test/range?from={accepted}"))).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{accepted}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_when_well_formed_and_replaced_otherwise() {
    let app = spawn().await;
    let echoed =
        app.client.get(app.url("/test/ping")).header("x-request-id", "client-abc_1.2").send().await.expect("request");
    assert_eq!(echoed.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("client-abc_1.2"));

    for bad in ["has space", "x".repeat(65).as_str(), "semi;colon"] {
        let response = app.client.get(app.url("/nowhere")).header("x-request-id", bad).send().await.expect("request");
        let header =
            response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned).expect("id");
        assert_ne!(header, bad);
        assert!(uuid::Uuid::parse_str(&header).is_ok(), "{header}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["request_id"], header);
    }

    let generated = app.client.get(app.url("/test/ping")).send().await.expect("request");
    assert!(generated.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn api_responses_are_never_cached() {
    let app = spawn().await;
    for path in ["/api/v1/test/range", "/api/v1/not-a-route"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{path}");
    }
    let outside_api = app.client.get(app.url("/test/ping")).send().await.expect("request");
    assert!(outside_api.headers().get("cache-control").is_none());
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let mut app = spawn().await;
    let in_flight = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/test/in-flight");
        async move { client.get(url).send().await?.text().await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stopped = app.begin_shutdown();
    let body = in_flight.await.expect("task").expect("the in-flight request completed");
    assert_eq!(body, "finished");
    tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("server stopped").expect("clean stop");
    let refused = app.client.get(app.url("/test/ping")).send().await;
    assert!(refused.is_err(), "no new connections after shutdown");
}
