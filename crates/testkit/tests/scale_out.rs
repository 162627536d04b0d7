//! Two instances on one PostgreSQL + Redis, as behind a load balancer: a connect flow started on one finishes
//! on the other (the OAuth state lives in Redis), and a sync running on one makes the other answer
//! `409 sync_in_progress` (the sync lock lives in Redis). Skipped without `DASHTAM_TEST_DATABASE_URL` and
//! `DASHTAM_TEST_REDIS_URL` (CI sets both).

use std::time::Duration;

use axum::http::StatusCode;
use dashtam_testkit::http::*;
use dashtam_testkit::sandbox::{answer_consent, set_sandbox, user_with_sandbox};
use dashtam_testkit::{TestApp, TestDatabase, random_keys};
use serde_json::json;

/// Instance A, and instance B sharing its database, Redis, keys and public URL (which the sandbox provider and
/// the tokens' issuer use); `None` when the suites were not given PostgreSQL and Redis.
async fn two_instances() -> Option<(TestApp, TestApp)> {
    dashtam_testkit::redis_url()?;
    let database = TestDatabase::postgres().await?;
    let unlimited = |config: &mut dashtam_server::Config| config.rate_limit.enabled = false;
    let first = TestApp::spawn_configured(database, |config| {
        random_keys(config);
        unlimited(config);
    })
    .await;
    let second = first.spawn_peer(unlimited).await;
    Some((first, second))
}

#[tokio::test]
async fn a_connect_flow_started_on_one_instance_finishes_on_the_other_and_syncs_exclude_each_other() {
    let Some((first, second)) = two_instances().await else {
        eprintln!("skipped: DASHTAM_TEST_DATABASE_URL and DASHTAM_TEST_REDIS_URL are not set (CI sets them)");
        return;
    };
    let (token, id) = user_with_sandbox(&first, "ada@example.com").await;
    let (status, start) = post_as(&first, &token, &format!("/api/v1/providers/{id}/authorization"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let location = answer_consent(&first, start["auth_url"].as_str().expect("auth_url"), "approve").await;

    // The load balancer sends the browser's return to the other instance.
    let callback = location.replacen(&first.url(""), &second.url(""), 1);
    assert_ne!(callback, location);
    let page = second.client.get(&callback).send().await.expect("callback");
    assert_eq!(page.status(), StatusCode::OK, "{}", page.text().await.unwrap_or_default());
    let (_, connected) = get_as(&first, &token, &format!("/api/v1/providers/{id}")).await;
    assert_eq!(connected["status"], "active");
    // The state was used up on the second instance; the first refuses it too.
    let replay = first.client.get(&location).send().await.expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // A slow sync on the first instance holds the lock; the second answers 409 meanwhile.
    let slow = json!({"latency_ms": 400, "applies_to": "api"});
    set_sandbox(&first, slow).await;
    let sync_path = format!("/api/v1/providers/{id}/sync");
    let (running, refused) = tokio::join!(post_as(&first, &token, &sync_path, json!({})), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        post_as(&second, &token, &sync_path, json!({})).await
    });
    assert_eq!(running.0, StatusCode::OK, "{}", running.1);
    assert_eq!((refused.0, code(&refused.1)), (StatusCode::CONFLICT, "sync_in_progress"), "{}", refused.1);
    // Once it has finished, the second instance syncs the same connection.
    let (status, again) = post_as(&second, &token, &sync_path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["transactions"]["created"], 0);
}
