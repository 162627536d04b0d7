//! RFC 9457 problem details: the one error format of the whole API.
//!
//! Handlers and extractors return a [`Problem`]; it travels in the response's extensions and the
//! request-context middleware renders it, because only that middleware knows the request id and path
//! (`request_id` and `instance`). Errors produced outside handlers (unknown route, wrong method, body too
//! large, timeout, panic) are turned into problems by the same middleware, so every error a client can see
//! has one shape.

use std::borrow::Cow;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request (`password`, `items[2].amount`, or a query parameter name).
    pub field: String,
    /// Stable snake_case reason (`too_short`, `required`, `unknown_field`, `naive_datetime`, …).
    pub code: Cow<'static, str>,
    /// A sentence for people.
    pub message: String,
}

impl FieldError {
    /// A field error with a stable code and a human message.
    pub fn new(field: impl Into<String>, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { field: field.into(), code: code.into(), message: message.into() }
    }
}

/// An error response in the making. Boxed so that `Result<T, Problem>` stays a pointer wide on the happy
/// path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemParts>);

#[derive(Debug, Clone)]
struct ProblemParts {
    status: StatusCode,
    code: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<String>,
    errors: Vec<FieldError>,
    extensions: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The rendered body (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDocument {
    /// `/problems/<code>`: a stable URI reference per kind of problem.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation_failed")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Validation failed")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong in this occurrence, for people; never contains secrets or internals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path.
    #[schema(example = "/api/v1/auth/login")]
    pub instance: String,
    /// Stable snake_case identifier clients may switch on.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// The `X-Request-ID` of the request, for support and logs.
    pub request_id: String,
    /// One entry per invalid field (validation problems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members specific to one kind of problem (RFC 9457 §3.2), such as `retry_after` or `checks`.
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// A problem with a status, a stable code and a title.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, title: impl Into<Cow<'static, str>>) -> Self {
        Self(Box::new(ProblemParts {
            status,
            code: code.into(),
            title: title.into(),
            detail: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }))
    }

    /// Adds what went wrong in this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds per-field errors.
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }

    /// Adds a member specific to this kind of problem. Names of the standard members are refused by
    /// construction: they are set from the fields above and would be overwritten.
    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Self {
        const STANDARD: [&str; 8] = ["type", "title", "status", "detail", "instance", "code", "request_id", "errors"];
        if !STANDARD.contains(&name) {
            self.0.extensions.insert(name.to_owned(), value);
        }
        self
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, `Allow`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The per-field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0.errors
    }

    /// `404 not_found`: the resource does not exist or is not the caller's.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found")
    }

    /// `500 internal_error`: details go to the log, never to the client.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")
            .with_detail("The server could not complete the request. Quote the request_id when reporting this.")
    }

    /// `503 service_unavailable`: a dependency (database, Redis) is unreachable; retrying later may work.
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "Service unavailable")
            .with_detail("A service this request depends on is temporarily unavailable. Try again shortly.")
    }

    /// `422 validation_failed` with one entry per bad field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation failed")
            .with_detail("One or more fields are invalid; see errors.")
            .with_errors(errors)
    }

    /// The problem a bare error status stands for, used for responses produced outside any handler (the
    /// router's 405, a body-limit 413, a timeout).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::not_found().with_detail("No resource at this path."),
            StatusCode::METHOD_NOT_ALLOWED => Self::new(status, "method_not_allowed", "Method not allowed")
                .with_detail("This path does not support the request method; see the Allow header."),
            StatusCode::PAYLOAD_TOO_LARGE => Self::payload_too_large(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(status, "unsupported_media_type", "Unsupported media type"),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Self::timeout(),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(),
            status if status.is_server_error() => Self::internal(),
            status => Self::new(status, "http_error", Cow::Borrowed(status.canonical_reason().unwrap_or("Error"))),
        }
    }

    /// `413 payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "Payload too large")
            .with_detail("The request body is larger than this endpoint accepts.")
    }

    /// `503 request_timeout`: the server gave up on the request after its configured time budget.
    pub fn timeout() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "request_timeout", "Request timed out")
            .with_detail("The server did not finish the request within its time limit. Try again shortly.")
    }

    /// Renders the body for a request.
    pub(crate) fn document(&self, instance: &str, request_id: &str) -> ProblemDocument {
        ProblemDocument {
            problem_type: format!("/problems/{}", self.0.code),
            title: self.0.title.to_string(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            instance: instance.to_owned(),
            code: self.0.code.to_string(),
            request_id: request_id.to_owned(),
            errors: self.0.errors.clone(),
            extensions: self.0.extensions.clone(),
        }
    }

    /// Writes the rendered body and status into `response`, keeping its headers. The status is the
    /// problem's: a layer's bare `408` becomes this API's `503 request_timeout`, for instance.
    pub(crate) fn render_into(&self, response: &mut Response, instance: &str, request_id: &str) {
        *response.status_mut() = self.0.status;
        let document = self.document(instance, request_id);
        // Serialising plain strings and integers cannot fail; the fallback only guards the invariant.
        let body = serde_json::to_vec(&document).unwrap_or_else(|_| b"{\"code\":\"internal_error\"}".to_vec());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = axum::body::Body::from(body);
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.0.status.into_response();
        for (name, value) in &self.0.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.code)
    }
}

impl std::error::Error for Problem {}
