//! Operations endpoints (API.md §1): liveness, readiness, metrics, the OpenAPI document and its docs UI.
//! They sit outside `/api/v1`, need no authentication and are never rate limited.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashtam_domain::ports::BoxError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{Problem, ProblemDocument};
use crate::state::AppState;

/// The `/health` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
}

/// How each dependency answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok` or `unavailable`.
    pub database: &'static str,
    /// `ok` or `unavailable` (always `ok` for the in-process backend).
    pub cache: &'static str,
}

/// The `/ready` body when every dependency answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Per dependency.
    pub checks: ReadinessChecks,
}

/// Liveness: answers while the process runs, without touching any dependency.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

/// Readiness: whether this instance can serve traffic, i.e. its database (and Redis, when configured)
/// answer within the readiness timeout. Load balancers take an instance out of rotation on `503`.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency is unreachable; `checks` names it", body = ProblemDocument,
            content_type = "application/problem+json"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let timeout = state.settings.readiness_timeout;
    let (database, cache) = tokio::join!(
        check(timeout, async { state.store.ping().await.map_err(BoxError::from) }),
        check(timeout, state.shared_state.ping()),
    );
    let checks = ReadinessChecks { database, cache };
    if checks.database == "ok" && checks.cache == "ok" {
        return Json(Readiness { status: "ready", checks }).into_response();
    }
    let failing: Vec<&str> = [("database", checks.database), ("cache", checks.cache)]
        .into_iter()
        .filter(|(_, outcome)| *outcome != "ok")
        .map(|(name, _)| name)
        .collect();
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready")
        .with_detail(format!("Unavailable: {}.", failing.join(", ")))
        .with_extension("checks", serde_json::json!(checks))
        .into_response()
}

async fn check(timeout: Duration, probe: impl Future<Output = Result<(), BoxError>>) -> &'static str {
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(?timeout, "readiness check timed out");
            "unavailable"
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(state.store.pool_stats());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// The serialised OpenAPI document, built once at start-up.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub Arc<str>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(Extension(document): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], document.0.to_string()).into_response()
}

const DOCS_INDEX: &str = include_str!("../assets/swagger-ui/index.html");

/// Interactive API documentation, served entirely from the binary.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "Swagger UI", body = String, content_type = "text/html")))]
pub async fn docs() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], DOCS_INDEX).into_response()
}

/// The docs UI's scripts, styles and icon.
#[utoipa::path(get, path = "/docs/{asset}", tag = "operations",
    params(("asset" = String, Path, description = "File name")),
    responses(
        (status = 200, description = "The asset"),
        (status = 404, description = "No such asset", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn docs_asset(Path(asset): Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = match asset.as_str() {
        "swagger-ui-bundle.js" => {
            ("text/javascript; charset=utf-8", include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"))
        }
        "swagger-ui.css" => ("text/css; charset=utf-8", include_bytes!("../assets/swagger-ui/swagger-ui.css")),
        "init.js" => ("text/javascript; charset=utf-8", include_bytes!("../assets/swagger-ui/init.js")),
        "favicon-32x32.png" => ("image/png", include_bytes!("../assets/swagger-ui/favicon-32x32.png")),
        _ => {
            return Problem::not_found().with_detail("No such documentation asset.").into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The assets change only with the binary; a day of caching spares reloads without going stale long.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        body,
    )
        .into_response()
}
