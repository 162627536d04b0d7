//! HTTP helpers shared by the end-to-end suites: requests, the account flow (register, verify from the
//! emailed link, log in), and reading problem codes.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use dashtam_domain::password::Password;
use dashtam_domain::{Email, RequestContext, Role, UserName};

use crate::TestApp;

/// The password every helper account uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// `POST path` with a JSON body; the status and the JSON answer (`null` when there is none).
pub async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    send(app.client.post(app.url(path)).json(&body)).await
}

/// `POST path` as the holder of `token`.
pub async fn post_as(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send(app.client.post(app.url(path)).bearer_auth(token).json(&body)).await
}

/// `GET path` as the holder of `token`.
pub async fn get_as(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    send(app.client.get(app.url(path)).bearer_auth(token)).await
}

/// Sends a request; the status and the JSON answer (`null` when there is none).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let answer = answer(request).await;
    (answer.status, answer.body)
}

/// A response whole: status, headers and JSON body (`null` when there is none).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The JSON body, or `null`.
    pub body: Value,
}

impl Answer {
    /// A header holding a whole number (`Retry-After`, `X-RateLimit-*`).
    pub fn header(&self, name: &str) -> Option<u64> {
        self.header_text(name)?.parse().ok()
    }

    /// A header's text.
    pub fn header_text(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// Sends a request and keeps its whole response.
pub async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}

/// The decoded text of every email sent to `to`, oldest first.
pub async fn mail_to(app: &TestApp, to: &str, at_least: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mail: Vec<String> = app
            .sent_mail()
            .into_iter()
            .map(|raw| if raw.contains("quoted-printable") { decode_quoted_printable(&raw) } else { raw })
            .filter(|text| text.lines().any(|line| line.starts_with("To:") && line.contains(&to.to_lowercase())))
            .collect();
        if mail.len() >= at_least || std::time::Instant::now() > deadline {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Undoes quoted-printable encoding, enough to read links out of an email.
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[index + 1..index + 3], 16)
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The token in the newest email to `to` that links to `page`.
pub async fn token_from_mail(app: &TestApp, to: &str, page: &str, at_least: usize) -> String {
    let mail = mail_to(app, to, at_least).await;
    let needle = format!("{page}?token=");
    mail.iter()
        .rev()
        .find_map(|text| text.split(&needle).nth(1).map(|rest| rest.chars().take(43).collect::<String>()))
        .unwrap_or_else(|| panic!("no {page} link in mail to {to}: {mail:?}"))
}

/// Registers `email` with [`PASSWORD`].
pub async fn register(app: &TestApp, email: &str) {
    let (status, body) =
        post(app, "/api/v1/auth/register", json!({"email": email, "password": PASSWORD, "name": "Ada"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Registers `email` and verifies it through the emailed link.
pub async fn verified_user(app: &TestApp, email: &str) {
    register(app, email).await;
    let token = token_from_mail(app, email, "verify-email", 1).await;
    let (status, body) = post(app, "/api/v1/auth/verify-email", json!({"token": token})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A login's token pair.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
}

/// `POST /auth/login`.
pub async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    post(app, "/api/v1/auth/login", json!({"email": email, "password": password})).await
}

/// Logs `email` in with [`PASSWORD`] and returns its tokens.
pub async fn logged_in(app: &TestApp, email: &str) -> Tokens {
    let (status, body) = login(app, email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokens(&body)
}

/// Creates a verified administrator `email` (as `dashtam user create --admin` does), logs it in with
/// [`PASSWORD`] and returns its tokens.
pub async fn logged_in_admin(app: &TestApp, email: &str) -> Tokens {
    created_and_logged_in(app, email, Role::Admin).await
}

/// Creates a verified user `email` with `role` (as `dashtam user create` does, skipping the email round
/// trip), logs it in with [`PASSWORD`] and returns its tokens.
pub async fn created_and_logged_in(app: &TestApp, email: &str, role: Role) -> Tokens {
    app.state
        .auth
        .create_verified_user(
            Email::parse(email).expect("email"),
            UserName::parse("Test User").expect("name"),
            &Password::new(PASSWORD.to_owned()),
            role,
            &RequestContext::command_line("user create"),
        )
        .await
        .expect("create a user");
    logged_in(app, email).await
}

/// `PATCH path` with a JSON body as the holder of `token`.
pub async fn patch_as(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    send(app.client.patch(app.url(path)).bearer_auth(token).json(&body)).await
}

/// `DELETE path` as the holder of `token`.
pub async fn delete_as(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    send(app.client.delete(app.url(path)).bearer_auth(token)).await
}

/// The token pair in a login or refresh answer.
pub fn tokens(body: &Value) -> Tokens {
    Tokens {
        access: body["access_token"].as_str().expect("access token").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh token").to_owned(),
    }
}

/// A problem document's `code`.
pub fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}
