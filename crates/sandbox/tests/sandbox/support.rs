//! The sandbox served on 127.0.0.1:0 under `/sandbox`, as the server nests it, with a clock the test moves.

use std::{
    sync::{Arc, Mutex},
    time::Duration as StdDuration,
};

use dashtam_domain::Clock;
use dashtam_sandbox::{Sandbox, SandboxConfig};
use reqwest::{Response, StatusCode, header};
use serde_json::Value;
use time::{Duration, OffsetDateTime, macros::datetime};

pub const CLIENT_ID: &str = "dashtam-test-client";
pub const CLIENT_SECRET: &str = "sandbox-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/api/v1/providers/callback";
/// A Friday afternoon, so "today" has trades and tomorrow is a weekend day.
pub const START: OffsetDateTime = datetime!(2025-10-03 15:00:00 UTC);

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// Access and refresh token of one authorization.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<TestClock>,
    /// The same application the listener serves, for in-process requests.
    pub router: axum::Router,
}

impl Harness {
    pub async fn start() -> Self {
        let clock = Arc::new(TestClock(Mutex::new(START)));
        let sandbox = Sandbox::new(SandboxConfig {
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned().into(),
            redirect_uris: vec![REDIRECT_URI.to_owned(), "http://127.0.0.1:9/other?keep=1".to_owned()],
            clock: clock.clone(),
        });
        let app = axum::Router::new().nest("/sandbox", sandbox.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let served = app.clone();
        tokio::spawn(async move { axum::serve(listener, served).await });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(StdDuration::from_secs(30))
            .build()
            .expect("client");
        Self { base: format!("http://{address}/sandbox"), http, clock, router: app }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/oauth/authorize` with the standard parameters plus `extra` (which may override them).
    pub async fn consent(&self, extra: &[(&str, &str)]) -> Response {
        let query = query(&authorize_params(extra));
        self.http.get(self.url(&format!("/v1/oauth/authorize?{query}"))).send().await.expect("consent")
    }

    /// `POST /v1/oauth/authorize` with the standard parameters plus `extra` and the decision.
    pub async fn decide(&self, extra: &[(&str, &str)], decision: &str) -> Response {
        let mut params = authorize_params(extra);
        params.push(("decision".to_owned(), decision.to_owned()));
        self.http
            .post(self.url("/v1/oauth/authorize"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(query(&params))
            .send()
            .await
            .expect("decide")
    }

    /// Approves and returns the code from the redirect.
    pub async fn code(&self, extra: &[(&str, &str)]) -> String {
        let response = self.decide(extra, "approve").await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = location_params(&response);
        location.iter().find(|(name, _)| name == "code").map(|(_, value)| value.clone()).expect("a code")
    }

    /// `POST /v1/oauth/token` as the configured client.
    pub async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.token_as(CLIENT_ID, CLIENT_SECRET, form).await
    }

    pub async fn token_as(&self, client_id: &str, secret: &str, form: &[(&str, &str)]) -> Response {
        let form: Vec<(String, String)> = form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.http
            .post(self.url("/v1/oauth/token"))
            .basic_auth(client_id, Some(secret))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(query(&form))
            .send()
            .await
            .expect("token")
    }

    /// A complete code flow for `customer` (or the default one).
    pub async fn login(&self, extra: &[(&str, &str)]) -> Tokens {
        let code = self.code(extra).await;
        let response =
            self.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT_URI)]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("token json");
        Tokens {
            access: body["access_token"].as_str().expect("access token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh token").to_owned(),
        }
    }

    pub async fn api(&self, access_token: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(access_token).send().await.expect("api")
    }

    /// An API call that must succeed, as JSON.
    pub async fn api_json(&self, access_token: &str, path: &str) -> Value {
        let response = self.api(access_token, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("api json")
    }

    pub async fn transactions(&self, access_token: &str, hash: &str, start: &str, end: &str) -> Response {
        let query = query(&[("startDate".to_owned(), start.to_owned()), ("endDate".to_owned(), end.to_owned())]);
        self.api(access_token, &format!("/trader/v1/accounts/{hash}/transactions?{query}")).await
    }

    pub async fn set_client(&self, settings: Value) -> Value {
        let response = self.http.put(self.url(&format!("/control/clients/{CLIENT_ID}"))).json(&settings).send().await;
        let response = response.expect("control put");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("control json")
    }

    pub async fn client(&self) -> Value {
        let response = self.http.get(self.url(&format!("/control/clients/{CLIENT_ID}"))).send().await;
        response.expect("control get").json().await.expect("control json")
    }

    pub async fn advance_days(&self, days: u32) {
        let body = serde_json::json!({"advance_days": days});
        let response = self.http.post(self.url("/control/clock")).json(&body).send().await.expect("clock");
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// The two accounts' hash values.
    pub async fn hashes(&self, access_token: &str) -> Vec<String> {
        let numbers = self.api_json(access_token, "/trader/v1/accounts/accountNumbers").await;
        numbers.as_array().expect("array").iter().map(|a| a["hashValue"].as_str().expect("hash").to_owned()).collect()
    }
}

fn authorize_params(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> =
        [("response_type", "code"), ("client_id", CLIENT_ID), ("redirect_uri", REDIRECT_URI), ("state", "state-123")]
            .iter()
            .filter(|(name, _)| !extra.iter().any(|(key, _)| key == name))
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    params.extend(extra.iter().filter(|(_, value)| !value.is_empty()).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    params
}

pub fn query(params: &[(String, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(response: &Response) -> Vec<(String, String)> {
    let location = response.headers().get(header::LOCATION).expect("a Location").to_str().expect("ascii");
    let query = location.split_once('?').map(|(_, query)| query).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// The body of an OAuth error answer, checked for its `error` code.
pub async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error json");
    assert_eq!(body["error"], error, "{body}");
}
