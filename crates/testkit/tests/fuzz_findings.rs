//! What the API fuzzer (`.ci/api-fuzz`: schemathesis against `/openapi.json`) found, one test per finding, so
//! that each stays fixed without waiting for the fuzzer to draw the same input again: the document must say
//! where parameters go and what every operation can answer, and the server must neither fail (500) nor build
//! unbounded answers on input the document allows.

use axum::http::StatusCode;
use dashtam_domain::Role;
use dashtam_testkit::TestApp;
use dashtam_testkit::http::{code, created_and_logged_in, get_as, post_as, send};
use serde_json::{Value, json};

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((method.to_uppercase(), path.clone(), operation));
        }
    }
    found
}

#[test]
fn query_parameters_are_documented_in_the_query_and_optional() {
    let document = serde_json::to_value(dashtam_api::openapi()).expect("document");
    for (method, path, operation) in operations(&document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("name");
            // Query structs were once documented as required path parameters, which no client could send.
            if path.contains(&format!("{{{name}}}")) {
                assert_eq!(parameter["in"], "path", "{method} {path} {name}");
                assert_eq!(parameter["required"], true, "{method} {path} {name}");
            } else {
                assert_eq!(parameter["in"], "query", "{method} {path} {name}");
                assert_ne!(parameter["required"], true, "{method} {path} {name}: every filter is optional");
            }
        }
    }
}

#[test]
fn every_operation_documents_the_failures_it_shares() {
    let document = serde_json::to_value(dashtam_api::openapi()).expect("document");
    for (method, path, operation) in operations(&document) {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let responses = operation["responses"].as_object().expect("responses");
        assert!(responses.contains_key("503"), "{method} {path}: a database outage is 503");
        if operation["requestBody"]["content"]["application/json"].is_object() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{method} {path} reads JSON and can answer {status}");
                assert_eq!(
                    responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/ProblemDocument",
                    "{method} {path} {status}"
                );
            }
        }
    }
    let imports = &document["paths"]["/api/v1/imports"]["post"]["responses"];
    assert!(imports["400"]["description"].as_str().is_some_and(|text| text.contains("malformed_multipart")));
}

#[tokio::test]
async fn a_json_array_is_not_a_body() {
    let app = TestApp::spawn().await;
    let token = created_and_logged_in(&app, "ada@example.com", Role::User).await.access;
    // A derived struct also reads the array of its fields in order: `["Mallory"]` used to rename Ada.
    let request = app
        .client
        .patch(app.url("/api/v1/auth/me"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"["Mallory"]"#);
    let (status, body) = send(request).await;
    assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{body}");
    assert_eq!(body["errors"][0]["code"], "invalid_type", "{body}");
    let (_, me) = get_as(&app, &token, "/api/v1/auth/me").await;
    assert_ne!(me["name"], "Mallory");
}

async fn user_with_statement(app: &TestApp, email: &str) -> (String, String) {
    let token = created_and_logged_in(app, email, Role::User).await.access;
    let statement = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../import/tests/fixtures/two_accounts.ofx"))
        .expect("fixture");
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(statement).file_name("two_accounts.ofx"));
    let (status, body) = send(app.client.post(app.url("/api/v1/imports")).bearer_auth(&token).multipart(form)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, accounts) = get_as(app, &token, "/api/v1/accounts").await;
    let account = accounts["items"][0]["id"].as_str().expect("an account").to_owned();
    (token, account)
}

#[tokio::test]
async fn ranges_at_the_edges_of_the_calendar_are_answered() {
    let app = TestApp::spawn().await;
    let (token, account) = user_with_statement(&app, "ada@example.com").await;
    // Each of these was a 500: the day after 9999-12-31 overflowed (a panic), and a query bound widened to
    // before year 0000 could not be written by SQLite.
    for query in [
        format!("/api/v1/accounts/{account}/balances?to=9999-12-31"),
        format!("/api/v1/accounts/{account}/balances?to=9999-12-31T23:59:59.999999Z"),
        format!("/api/v1/accounts/{account}/balances?from=0000-01-01"),
        format!("/api/v1/accounts/{account}/balances?from=0000-01-01T00:00:00Z&to=9999-12-31"),
        "/api/v1/net-worth?from=9999-12-01&to=9999-12-31".to_owned(),
        "/api/v1/net-worth?from=0000-01-01&to=0000-01-31".to_owned(),
        "/api/v1/net-worth?to=0000-01-01".to_owned(),
        "/api/v1/transactions?from=0000-01-01&to=9999-12-31".to_owned(),
    ] {
        let (status, body) = get_as(&app, &token, &query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
    // The default window before a `to` in year 0000 used to reach back into year -1, dates no client can read.
    let (_, early) = get_as(&app, &token, "/api/v1/net-worth?to=0000-01-01T00:30:00%2B00:30&interval=week").await;
    let dates: Vec<&str> = early["items"][0]["series"]
        .as_array()
        .expect("series")
        .iter()
        .map(|point| point["date"].as_str().expect("date"))
        .collect();
    assert_eq!(dates, ["0000-01-01"], "{early}");
    let (_, balances) = get_as(&app, &token, &format!("/api/v1/accounts/{account}/balances?to=9999-12-31")).await;
    let (_, all) = get_as(&app, &token, &format!("/api/v1/accounts/{account}/balances")).await;
    assert_eq!(balances, all, "an open end and the last day there is are the same window");
}

#[tokio::test]
async fn a_net_worth_series_is_bounded() {
    let app = TestApp::spawn().await;
    let (token, _) = user_with_statement(&app, "ada@example.com").await;
    // Ten thousand years by day was a 150 MB answer built in memory.
    for query in [
        "/api/v1/net-worth?from=0000-01-01&to=9999-12-31",
        "/api/v1/net-worth?from=2016-01-01&to=2026-01-09",
        "/api/v1/net-worth?from=1900-01-01&to=2000-01-01&interval=week",
        "/api/v1/net-worth?from=1000-01-01&to=1400-01-01&interval=month",
        "/api/v1/net-worth?from=0000-01-01",
    ] {
        let (status, body) = get_as(&app, &token, query).await;
        assert_eq!((status, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"), "{query}");
        assert_eq!(
            (body["errors"][0]["field"].as_str(), body["errors"][0]["code"].as_str()),
            (Some("from"), Some("invalid_range"))
        );
    }
    // Ten years by day (3653 days), sixty-five by week, two centuries by month.
    for query in [
        "/api/v1/net-worth?from=2016-01-01&to=2025-12-31",
        "/api/v1/net-worth?from=1960-01-01&to=2025-12-31&interval=week",
        "/api/v1/net-worth?from=1800-01-01&to=2025-12-31&interval=month",
    ] {
        let (status, body) = get_as(&app, &token, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let points = body["items"][0]["series"].as_array().expect("series").len();
        assert!((2700..=3660).contains(&points), "{query}: {points} points");
    }
}

#[tokio::test]
async fn a_grace_period_may_be_written_with_a_zero_fraction() {
    let app = TestApp::spawn().await;
    let root = created_and_logged_in(&app, "root@example.com", Role::Admin).await.access;
    let reason = "credential database leaked upstream";
    // JSON Schema's integer admits 60.0, so the document promised what the server refused.
    let (status, body) =
        post_as(&app, &root, "/api/v1/admin/token-rotations", json!({"reason": reason, "grace_period_seconds": 60.0}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["grace_period_seconds"], 60);
    for grace in [json!(60.5), json!(-1), json!(1e30), json!("60")] {
        let body = json!({"reason": reason, "grace_period_seconds": grace});
        let (status, answer) = post_as(&app, &root, "/api/v1/admin/token-rotations", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{grace}: {answer}");
        assert_eq!(answer["errors"][0]["field"], "grace_period_seconds", "{grace}: {answer}");
    }
}

#[tokio::test]
async fn filters_take_exactly_what_the_document_describes() {
    let app = TestApp::spawn().await;
    let token = created_and_logged_in(&app, "ada@example.com", Role::User).await.access;
    let root = created_and_logged_in(&app, "root@example.com", Role::Admin).await.access;
    for (token, query, field, error) in [
        (&token, "/api/v1/transactions?min_amount=1_000", "min_amount", "invalid_decimal"),
        (&token, "/api/v1/transactions?max_amount=.5", "max_amount", "invalid_decimal"),
        (&token, "/api/v1/transactions?min_amount=12345678901234567", "min_amount", "invalid_decimal"),
        (&token, "/api/v1/providers?page=2147483648", "page", "out_of_range"),
        (&root, "/api/v1/admin/audit-logs?request_id=has%20a%20space", "request_id", "invalid"),
        (&root, "/api/v1/admin/audit-logs?request_id=%C3%A9t%C3%A9", "request_id", "invalid"),
    ] {
        let (status, body) = get_as(&app, token, query).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(
            (body["errors"][0]["field"].as_str(), body["errors"][0]["code"].as_str()),
            (Some(field), Some(error))
        );
    }
    for (token, query) in [
        (&token, "/api/v1/transactions?min_amount=-12.50&max_amount=+1234567890123456.123456789012"),
        (&token, "/api/v1/providers?page=2147483647"),
        (&root, "/api/v1/admin/audit-logs?request_id=abc-123_X.y"),
    ] {
        let (status, body) = get_as(&app, token, query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
    }
}
