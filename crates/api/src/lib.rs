//! Dashtam's HTTP layer. Requests are parsed, authenticated and validated here into domain values; nothing
//! below this crate knows about HTTP.

pub mod audit;
pub mod auth;
pub mod client_ip;
pub mod context;
pub mod datetime;
mod errors;
pub mod extract;
mod field_schemas;
pub mod imports;
pub mod ledger;
pub mod metrics;
pub mod ops;
pub mod problem;
pub mod providers;
pub mod rate_limit;
pub mod request_context;
pub mod sessions;
pub mod state;
pub mod telemetry;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use problem::{FieldError, Problem};
pub use state::{AppState, HttpSettings};

/// The OpenAPI document's fixed parts; paths are added from the routes themselves.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Dashtam",
        description = "Self-hostable financial data aggregation: one API over your accounts, holdings, \
                       transactions, balances and net worth.",
    ),
    components(schemas(problem::ProblemDocument, problem::FieldError)),
    tags(
        (name = "operations", description = "Liveness, readiness, metrics and documentation"),
        (name = "auth", description = "Accounts, login, tokens and passwords"),
        (name = "sessions", description = "Signed-in devices: list them, end any of them"),
        (name = "admin", description = "Administration: audit log and installation-wide security"),
        (name = "providers", description = "Provider types, connections, OAuth connect flow and credentials"),
        (name = "imports", description = "OFX, QFX and CSV statement imports"),
        (name = "ledger", description = "Financial data: accounts, holdings, transactions, balances and net worth"),
    ),
    modifiers(&BearerSecurity),
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the authenticated routes refer to.
#[derive(Debug)]
struct BearerSecurity;

impl utoipa::Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Documents the `429` every `/api/v1` operation may answer once a rate-limit rule refuses it (applied to the
/// finished document: modifiers on [`ApiDoc`] run before the routes add their paths).
#[derive(Debug)]
struct RateLimitResponses;

impl utoipa::Modify for RateLimitResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ObjectBuilder, Ref, ResponseBuilder, Type};
        let whole_seconds = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build();
        let response = ResponseBuilder::new()
            .description("rate_limit_exceeded: wait `Retry-After` seconds (also `retry_after` in the body)")
            .header("Retry-After", HeaderBuilder::new().schema(whole_seconds()).build())
            .header("X-RateLimit-Limit", HeaderBuilder::new().schema(whole_seconds()).build())
            .header("X-RateLimit-Remaining", HeaderBuilder::new().schema(whole_seconds()).build())
            .header("X-RateLimit-Reset", HeaderBuilder::new().schema(whole_seconds()).build())
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ProblemDocument"))).build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.entry("429".to_owned()).or_insert_with(|| response.clone().into());
            }
        }
    }
}

/// Documents what every `/api/v1` operation may answer besides its own outcomes, each a problem document:
/// `503` when a dependency is down or the request outlives its time budget, and, for operations that read a
/// JSON body, the body's own failures (`400` not JSON, `413` too large, `415` not sent as JSON, `422` wrong
/// shape). Applied to the finished document, like [`RateLimitResponses`].
#[derive(Debug)]
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
        let problem = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    problem::PROBLEM_JSON,
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ProblemDocument"))).build(),
                )
                .build()
                .into()
        };
        const MALFORMED: &str = "malformed_json: the body is not JSON; unreadable_body";
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("503".to_owned()).or_insert_with(|| {
                    problem("service_unavailable: the database or Redis is unreachable; or request_timeout")
                });
                let reads_json = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| body.content.contains_key(mime::APPLICATION_JSON.as_ref()));
                if !reads_json {
                    continue;
                }
                match responses.get_mut("400") {
                    Some(RefOr::T(response)) => response.description = format!("{}; {MALFORMED}", response.description),
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert("400".to_owned(), problem(MALFORMED));
                    }
                }
                responses
                    .entry("413".to_owned())
                    .or_insert_with(|| problem("payload_too_large: the body is larger than the server accepts"));
                responses
                    .entry("415".to_owned())
                    .or_insert_with(|| problem("unsupported_media_type: the body is not sent as application/json"));
                responses
                    .entry("422".to_owned())
                    .or_insert_with(|| problem("validation_failed or unknown_field: see errors"));
            }
        }
    }
}

/// Every route with its OpenAPI description.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
        .routes(routes!(ops::docs))
        .routes(routes!(ops::docs_asset))
        .merge(auth::routes())
        .merge(audit::routes())
        .merge(sessions::routes())
        .merge(providers::routes())
        .merge(imports::routes())
        .merge(ledger::routes())
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = documented_routes().split_for_parts();
    finish_document(&mut document);
    document
}

/// What only the complete document can have: the version, the `429` of every rate-limited operation and the
/// responses every operation shares.
fn finish_document(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::Modify;
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    RateLimitResponses.modify(document);
    CommonResponses.modify(document);
}

/// The whole application: every route, behind the middleware every request passes through.
pub fn router(state: AppState) -> Router {
    let (routes, mut document) = documented_routes().split_for_parts();
    finish_document(&mut document);
    // The document is fixed for the life of the process; serialising it once keeps `/openapi.json` cheap.
    let document = document.to_json().unwrap_or_else(|error| {
        tracing::error!(%error, "OpenAPI document failed to serialise");
        "{}".to_owned()
    });
    let routes = routes.layer(axum::Extension(ops::OpenApiJson(Arc::from(document))));
    with_middleware(routes, state)
}

/// Applies the request pipeline to `routes`: request id and problem rendering, metrics, sensitive-header
/// redaction, the request timeout, panic recovery and the body limit; plus the `404` fallback. Public so
/// tests can put extra routes behind exactly the production pipeline.
pub fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let settings = state.settings.clone();
    routes
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::max(settings.json_body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::limit_requests))
        .layer(axum::middleware::from_fn_with_state(state.clone(), client_ip::resolve_client_ip))
        .layer(CatchPanicLayer::custom(problem_for_panic))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, settings.request_timeout))
        .layer(SetSensitiveHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
            header::SET_COOKIE,
        ]))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track_requests))
        .layer(axum::middleware::from_fn(request_context::request_context))
        .with_state(state)
}

async fn unknown_route() -> Problem {
    Problem::not_found().with_detail("No resource at this path.")
}

fn problem_for_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    Problem::internal().into_response()
}
