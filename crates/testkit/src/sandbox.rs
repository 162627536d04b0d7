//! Driving the sandbox brokerage from tests as a browser and a test harness would: create a sandbox
//! connection, answer its consent page, follow the redirect back, and turn the sandbox's fault knobs.

use axum::http::StatusCode;
use serde_json::{Value, json};

use dashtam_domain::Role;

use crate::TestApp;
use crate::http::{created_and_logged_in, post_as, send};

/// The sandbox's control resource for the client id the `sandbox` provider uses.
pub const SANDBOX_CLIENT: &str = "/sandbox/control/clients/dashtam-sandbox";

/// A new signed-in user with one pending sandbox connection: (access token, provider id).
pub async fn user_with_sandbox(app: &TestApp, email: &str) -> (String, String) {
    let token = created_and_logged_in(app, email, Role::User).await.access;
    let (status, provider) =
        post_as(app, &token, "/api/v1/providers", json!({"provider_key": "sandbox", "alias": "Demo"})).await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    (token, provider["id"].as_str().expect("id").to_owned())
}

/// A new signed-in user with an active sandbox connection (connected through the whole OAuth flow).
pub async fn connected_user(app: &TestApp, email: &str) -> (String, String) {
    let (token, id) = user_with_sandbox(app, email).await;
    let (status, start) = post_as(app, &token, &format!("/api/v1/providers/{id}/authorization"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let location = answer_consent(app, start["auth_url"].as_str().expect("auth_url"), "approve").await;
    let callback = app.client.get(location).send().await.expect("callback");
    assert_eq!(callback.status(), StatusCode::OK);
    (token, id)
}

/// Opens the consent page at `auth_url`, submits its form with `decision` (`approve` or `deny`) and returns
/// where the sandbox redirects the browser (the callback URL with `code` or `error`, and `state`).
pub async fn answer_consent(app: &TestApp, auth_url: &str, decision: &str) -> String {
    let page = app.client.get(auth_url).send().await.expect("consent page");
    assert_eq!(page.status(), StatusCode::OK);
    let (action, mut fields) = consent_form(&page.text().await.expect("page"));
    fields.push(("decision".to_owned(), decision.to_owned()));
    let decided = app
        .client
        .post(app.url(&action))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(&fields).expect("form"))
        .send()
        .await
        .expect("decision");
    assert_eq!(decided.status(), StatusCode::FOUND);
    decided.headers()["location"].to_str().expect("location").to_owned()
}

/// Changes the sandbox's knobs for our client (see `crates/sandbox/src/control.rs`).
pub async fn set_sandbox(app: &TestApp, settings: Value) {
    let (status, body) = send(app.client.put(app.url(SANDBOX_CLIENT)).json(&settings)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Restores the sandbox's defaults for our client and zeroes its counters.
pub async fn reset_sandbox(app: &TestApp) {
    let response = app.client.delete(app.url(SANDBOX_CLIENT)).send().await.expect("reset the sandbox");
    assert!(response.status().is_success(), "{}", response.status());
}

/// The sandbox's request counters for our client.
pub async fn sandbox_counters(app: &TestApp) -> Value {
    send(app.client.get(app.url(SANDBOX_CLIENT))).await.1["counters"].clone()
}

/// The consent page's form: where it posts and its hidden fields.
fn consent_form(html: &str) -> (String, Vec<(String, String)>) {
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + tag[start..].find('"')?;
        Some(unescape(&tag[start..end]))
    };
    let form = html.split("<form").nth(1).expect("a form");
    let action = attribute(form.split('>').next().expect("form tag"), "action").expect("action");
    let fields = html
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            Some((attribute(tag, "name")?, attribute(tag, "value")?))
        })
        .collect();
    (action, fields)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}
