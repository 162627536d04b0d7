//! Schwab-shaped OAuth 2.0: the consent page, the decision, and the token endpoint.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{OriginalUri, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::{
    Sandbox,
    faults::{RefreshBehavior, Surface},
    pages,
};

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::minutes(10);
/// Schwab's access tokens live 30 minutes.
const ACCESS_LIFETIME: Duration = Duration::seconds(1800);
/// Schwab's refresh tokens live 7 days.
const REFRESH_LIFETIME: Duration = Duration::days(7);
/// Longer parameter values are refused rather than stored and echoed.
const MAX_PARAM_LEN: usize = 2048;
/// The customer whose data an authorization sees when it does not name one.
const DEFAULT_CUSTOMER: &str = "default";

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new().route("/v1/oauth/authorize", get(consent).post(decide)).route("/v1/oauth/token", post(token))
}

/// Codes, grants and tokens. Tokens are random 256-bit strings kept as issued: this is a development tool whose
/// state dies with the process, and keeping them plain lets a test's failure message name them.
#[derive(Debug, Default)]
pub(crate) struct Store {
    codes: HashMap<String, Code>,
    grants: HashMap<u64, Grant>,
    next_grant: u64,
    access_tokens: HashMap<String, Token>,
    refresh_tokens: HashMap<String, Token>,
}

#[derive(Debug)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    customer: String,
    expires_at: OffsetDateTime,
    /// The grant the code was exchanged for: a second exchange revokes it (RFC 6749 §4.1.2).
    exchanged_for: Option<u64>,
}

/// One authorization: every token issued from one code belongs to it.
#[derive(Debug)]
struct Grant {
    client_id: String,
    customer: String,
    revoked: bool,
}

#[derive(Debug)]
struct Token {
    grant: u64,
    expires_at: OffsetDateTime,
}

/// Whom a valid access token speaks for.
#[derive(Debug, Clone)]
pub(crate) struct Bearer {
    pub(crate) client_id: String,
    pub(crate) customer: String,
}

impl Store {
    /// The client and customer behind an access token, if it is known, unexpired and its grant stands.
    pub(crate) fn bearer(&self, access_token: &str, now: OffsetDateTime) -> Option<Bearer> {
        let token = self.access_tokens.get(access_token).filter(|token| now < token.expires_at)?;
        let grant = self.grants.get(&token.grant).filter(|grant| !grant.revoked)?;
        Some(Bearer { client_id: grant.client_id.clone(), customer: grant.customer.clone() })
    }

    fn issue(&mut self, grant: u64, now: OffsetDateTime, refresh: Option<String>) -> Issued {
        // Expired tokens are useless; dropping them now and then keeps a long-running sandbox small.
        if self.access_tokens.len() > 4096 {
            self.access_tokens.retain(|_, token| token.expires_at > now);
            self.refresh_tokens.retain(|_, token| token.expires_at > now);
        }
        let access_token = format!("{ACCESS_TOKEN_PREFIX}{}", random_token());
        self.access_tokens.insert(access_token.clone(), Token { grant, expires_at: now + ACCESS_LIFETIME });
        Issued { access_token, refresh_token: refresh }
    }

    fn new_refresh_token(&mut self, grant: u64, now: OffsetDateTime) -> String {
        let refresh_token = format!("{REFRESH_TOKEN_PREFIX}{}", random_token());
        self.refresh_tokens.insert(refresh_token.clone(), Token { grant, expires_at: now + REFRESH_LIFETIME });
        refresh_token
    }
}

/// The tokens of one successful token request.
struct Issued {
    access_token: String,
    refresh_token: Option<String>,
}

/// A validated authorization request.
struct AuthorizeRequest {
    client_id: String,
    redirect_uri: String,
    state: String,
    challenge: Option<String>,
    customer: String,
}

/// Checks an authorization request the same way for the consent page and the decision.
fn validate(sandbox: &Sandbox, params: &[(String, String)]) -> Result<AuthorizeRequest, String> {
    if let Some((name, _)) = params.iter().find(|(name, value)| name.len() > 64 || value.len() > MAX_PARAM_LEN) {
        return Err(format!("parameter {name} is too long"));
    }
    let single = |name: &str| -> Result<Option<String>, String> {
        let mut values = params.iter().filter(|(key, _)| key == name).map(|(_, value)| value.clone());
        let first = values.next();
        if values.next().is_some() { Err(format!("{name} is given more than once")) } else { Ok(first) }
    };
    let required = |name: &str| single(name)?.filter(|value| !value.is_empty()).ok_or(format!("{name} is missing"));

    let config = sandbox.config();
    let client_id = required("client_id")?;
    if client_id != config.client_id {
        return Err("unknown client_id".to_owned());
    }
    let redirect_uri = required("redirect_uri")?;
    if !config.redirect_uris.contains(&redirect_uri) {
        return Err("redirect_uri is not registered for this client".to_owned());
    }
    if required("response_type")? != "code" {
        return Err("response_type must be code".to_owned());
    }
    let state = required("state")?;
    let challenge = single("code_challenge")?;
    let method = single("code_challenge_method")?;
    let challenge = match (challenge, method.as_deref()) {
        (None, None) => None,
        (Some(challenge), Some("S256")) if is_pkce_value(&challenge) => Some(challenge),
        (Some(_), Some("S256")) => return Err("code_challenge is malformed".to_owned()),
        (Some(_), _) => return Err("code_challenge_method must be S256".to_owned()),
        (None, Some(_)) => return Err("code_challenge_method without code_challenge".to_owned()),
    };
    let customer = single("customer")?.unwrap_or_else(|| DEFAULT_CUSTOMER.to_owned());
    let valid_customer = (1..=64).contains(&customer.len())
        && customer.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
    if !valid_customer {
        return Err("customer must be 1 to 64 letters, digits, dots, dashes or underscores".to_owned());
    }
    Ok(AuthorizeRequest { client_id, redirect_uri, state, challenge, customer })
}

/// RFC 7636's alphabet and length for verifiers and challenges.
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// `GET /v1/oauth/authorize`: the consent page.
async fn consent(State(sandbox): State<Sandbox>, OriginalUri(uri): OriginalUri, RawQuery(query): RawQuery) -> Response {
    let params: Vec<_> =
        parse_form(query.unwrap_or_default().as_bytes()).into_iter().filter(|(name, _)| name != "decision").collect();
    match validate(&sandbox, &params) {
        // The original URI's path is the one the browser used, nesting prefix included.
        Ok(request) => {
            pages::consent(uri.path(), &request.client_id, &request.customer, &request.redirect_uri, &params)
        }
        Err(message) => pages::error(&message),
    }
}

/// `POST /v1/oauth/authorize`: the user's decision, answered with a redirect to the client.
async fn decide(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let mut params = parse_form(&body);
    let decisions: Vec<String> =
        params.iter().filter(|(name, _)| name == "decision").map(|(_, value)| value.clone()).collect();
    params.retain(|(name, _)| name != "decision");
    let request = match validate(&sandbox, &params) {
        Ok(request) => request,
        Err(message) => return pages::error(&message),
    };
    let location = match decisions.as_slice() {
        [decision] if decision == "approve" => {
            let code = random_token();
            let now = sandbox.now();
            let mut state = sandbox.state();
            state.oauth.codes.retain(|_, code| code.expires_at + Duration::hours(1) > now);
            state.oauth.codes.insert(
                code.clone(),
                Code {
                    client_id: request.client_id,
                    redirect_uri: request.redirect_uri.clone(),
                    challenge: request.challenge,
                    customer: request.customer,
                    expires_at: now + CODE_LIFETIME,
                    exchanged_for: None,
                },
            );
            with_query(&request.redirect_uri, &[("code", &code), ("state", &request.state)])
        }
        [decision] if decision == "deny" => {
            with_query(&request.redirect_uri, &[("error", "access_denied"), ("state", &request.state)])
        }
        _ => return pages::error("decision must be approve or deny"),
    };
    match HeaderValue::from_str(&location) {
        Ok(location) => {
            (StatusCode::FOUND, [(header::LOCATION, location), (header::CACHE_CONTROL, no_store())]).into_response()
        }
        Err(_) => pages::error("redirect_uri cannot be used in a Location header"),
    }
}

/// `uri` with the pairs appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{}", query.finish())
}

/// An OAuth error answer (RFC 6749 §5.2).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn invalid_grant(description: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "invalid_grant", description }
    }

    fn invalid_request(description: &'static str) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "invalid_request", description }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, [(header::CACHE_CONTROL, no_store())], Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sandbox\""));
        }
        response
    }
}

/// `POST /v1/oauth/token`.
async fn token(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(client_id) = authenticate_client(&sandbox, &headers) else {
        return OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "client authentication failed",
        }
        .into_response();
    };
    let params = parse_form(&body);
    let single = |name: &str| {
        let mut values = params.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (Some(value), None) if !value.is_empty() => Ok(Some(value)),
            (None, _) => Ok(None),
            _ => Err(OAuthError::invalid_request("a parameter is empty or repeated")),
        }
    };
    let grant_type = single("grant_type");
    let plan = sandbox.with_client(&client_id, |control| {
        control.counters.token_requests += 1;
        match grant_type {
            Ok(Some("authorization_code")) => control.counters.code_exchanges += 1,
            Ok(Some("refresh_token")) => control.counters.refresh_requests += 1,
            _ => {}
        }
        control.plan(Surface::Token)
    });
    plan.delay().await;
    if let Some(failure) = plan.failure(Surface::Token) {
        return failure;
    }
    let refresh_behavior = sandbox.with_client(&client_id, |control| control.settings.refresh_behavior);
    let now = sandbox.now();
    let outcome = (|| {
        let mut state = sandbox.state();
        let store = &mut state.oauth;
        match grant_type? {
            Some("authorization_code") => {
                let code = single("code")?.ok_or(OAuthError::invalid_request("code is missing"))?;
                let redirect_uri =
                    single("redirect_uri")?.ok_or(OAuthError::invalid_request("redirect_uri is missing"))?;
                exchange_code(store, &client_id, code, redirect_uri, single("code_verifier")?, now)
            }
            Some("refresh_token") => {
                let refresh_token =
                    single("refresh_token")?.ok_or(OAuthError::invalid_request("refresh_token is missing"))?;
                refresh(store, &client_id, refresh_token, refresh_behavior, now)
            }
            Some(_) => Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: "grant_type must be authorization_code or refresh_token",
            }),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    })();
    let response = match outcome {
        Ok(issued) => {
            let mut body = json!({
                "expires_in": ACCESS_LIFETIME.whole_seconds(),
                "token_type": "Bearer",
                "scope": "api",
                "access_token": issued.access_token,
                "id_token": random_token(),
            });
            if let Some(refresh_token) = issued.refresh_token {
                body["refresh_token"] = json!(refresh_token);
            }
            let headers = [(header::CACHE_CONTROL, no_store()), (header::PRAGMA, HeaderValue::from_static("no-cache"))];
            (StatusCode::OK, headers, Json(body)).into_response()
        }
        Err(error) => error.into_response(),
    };
    plan.shape(response).await
}

/// The client id from a Basic `Authorization` header whose credentials match the configured client.
fn authenticate_client(sandbox: &Sandbox, headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (client_id, secret) = decoded.split_once(':')?;
    let config = sandbox.config();
    // Comparing digests keeps the comparison's time independent of where the secrets first differ.
    let matches = client_id == config.client_id
        && Sha256::digest(secret.as_bytes()) == Sha256::digest(config.client_secret.expose_secret().as_bytes());
    matches.then(|| client_id.to_owned())
}

fn exchange_code(
    store: &mut Store,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
    now: OffsetDateTime,
) -> Result<Issued, OAuthError> {
    let entry = store.codes.get_mut(code).ok_or(OAuthError::invalid_grant("unknown authorization code"))?;
    if let Some(grant) = entry.exchanged_for {
        // A replayed code may be a stolen one: everything issued from it stops working.
        if let Some(grant) = store.grants.get_mut(&grant) {
            grant.revoked = true;
        }
        return Err(OAuthError::invalid_grant("authorization code already used"));
    }
    if now >= entry.expires_at {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    if entry.client_id != client_id {
        return Err(OAuthError::invalid_grant("authorization code was issued to another client"));
    }
    if entry.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&entry.challenge, verifier) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) => {
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if !is_pkce_value(verifier) || computed != *challenge {
                store.codes.remove(code);
                return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => {
            store.codes.remove(code);
            return Err(OAuthError::invalid_grant("code_verifier is required"));
        }
        // Accepting a verifier nobody asked for would hide a PKCE downgrade (RFC 9700 §2.1.1).
        (None, Some(_)) => {
            store.codes.remove(code);
            return Err(OAuthError::invalid_grant("no code_challenge was sent for this code"));
        }
    }
    let grant = store.next_grant;
    store.next_grant += 1;
    entry.exchanged_for = Some(grant);
    let customer = entry.customer.clone();
    store.grants.insert(grant, Grant { client_id: client_id.to_owned(), customer, revoked: false });
    let refresh_token = store.new_refresh_token(grant, now);
    Ok(store.issue(grant, now, Some(refresh_token)))
}

fn refresh(
    store: &mut Store,
    client_id: &str,
    refresh_token: &str,
    behavior: RefreshBehavior,
    now: OffsetDateTime,
) -> Result<Issued, OAuthError> {
    let invalid = || OAuthError::invalid_grant("refresh token is unknown, expired or revoked");
    let token = store.refresh_tokens.get(refresh_token).filter(|token| now < token.expires_at).ok_or_else(invalid)?;
    let grant = token.grant;
    let valid = store.grants.get(&grant).is_some_and(|grant| !grant.revoked && grant.client_id == client_id);
    if !valid {
        return Err(invalid());
    }
    let returned = match behavior {
        RefreshBehavior::Rotate => {
            store.refresh_tokens.remove(refresh_token);
            Some(store.new_refresh_token(grant, now))
        }
        RefreshBehavior::Omit => None,
        RefreshBehavior::Same => Some(refresh_token.to_owned()),
    };
    Ok(store.issue(grant, now, returned))
}

/// Marks sandbox access tokens, as many real providers mark theirs, so a leak is easy to spot: tests scan
/// the database for it to prove tokens are stored encrypted.
pub const ACCESS_TOKEN_PREFIX: &str = "sbx-at-";
/// Marks sandbox refresh tokens (see [`ACCESS_TOKEN_PREFIX`]).
pub const REFRESH_TOKEN_PREFIX: &str = "sbx-rt-";

/// 256 random bits, URL-safe.
fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn no_store() -> HeaderValue {
    HeaderValue::from_static("no-store")
}
