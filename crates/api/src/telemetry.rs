//! OpenTelemetry's hook in the request pipeline. Built with the `otel` feature and switched on by the server
//! ([`enable`], once it has installed the OpenTelemetry layer), each request span continues the caller's W3C
//! `traceparent`, is named and described for export, and carries its trace id: in the span's `trace_id` log
//! field and in every audit entry written for the request. Without the feature each hook is an empty inline
//! function, so the pipeline pays nothing for it.

use axum::http::{HeaderMap, Method, StatusCode};
use tracing::Span;

#[cfg(not(feature = "otel"))]
pub(crate) use disabled::{current_trace_id, finish_request, start_request};
#[cfg(feature = "otel")]
pub use enabled::enable;
#[cfg(feature = "otel")]
pub(crate) use enabled::{current_trace_id, finish_request, start_request};

#[cfg(feature = "otel")]
mod enabled {
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry::trace::{Status, TraceContextExt};
    use opentelemetry_http::HeaderExtractor;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::{HeaderMap, Method, Span, StatusCode};

    /// Whether the server installed OpenTelemetry. The subscriber is process-wide, and so is this switch: while
    /// it is off (feature built in, `otel.enabled = false`) every hook returns after one relaxed load.
    static ENABLED: AtomicBool = AtomicBool::new(false);

    /// Turns the hooks on. The server calls it once, when it installs the OpenTelemetry layer and the
    /// `traceparent` propagator.
    pub fn enable() {
        ENABLED.store(true, Ordering::Relaxed);
    }

    fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    /// Makes the new request `span` a child of the caller's trace (when `headers` carry one), names it
    /// `{method} {route}` as the HTTP conventions ask, and records its trace id for the log lines. Must run
    /// before the span is first entered: its OpenTelemetry parent is fixed from then on.
    pub(crate) fn start_request(span: &Span, headers: &HeaderMap, method: &Method, route: Option<&str>) {
        if !enabled() {
            return;
        }
        let parent =
            opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
        // Fails only for a span the filters disabled, which has no trace to continue.
        let _ = span.set_parent(parent);
        match route {
            Some(route) => {
                span.record("otel.name", format!("{method} {route}").as_str());
                span.set_attribute("http.route", route.to_owned());
            }
            None => {
                span.record("otel.name", method.as_str());
            }
        }
        span.record("otel.kind", "server");
        span.set_attribute("http.request.method", method.as_str().to_owned());
        if let Some(trace_id) = trace_id_of(span) {
            span.record("trace_id", trace_id.as_str());
        }
    }

    /// Adds the response status to the exported span; a `5xx` marks it failed.
    pub(crate) fn finish_request(span: &Span, status: StatusCode) {
        if !enabled() {
            return;
        }
        span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.set_status(Status::error(status.canonical_reason().unwrap_or("server error")));
        }
    }

    /// The trace id (32 lowercase hex digits) of the span the caller runs in.
    pub(crate) fn current_trace_id() -> Option<String> {
        if !enabled() {
            return None;
        }
        trace_id_of(&Span::current())
    }

    fn trace_id_of(span: &Span) -> Option<String> {
        let context = span.context();
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        span_context.is_valid().then(|| span_context.trace_id().to_string())
    }
}

#[cfg(not(feature = "otel"))]
mod disabled {
    use super::{HeaderMap, Method, Span, StatusCode};

    #[inline(always)]
    pub(crate) fn start_request(_span: &Span, _headers: &HeaderMap, _method: &Method, _route: Option<&str>) {}

    #[inline(always)]
    pub(crate) fn finish_request(_span: &Span, _status: StatusCode) {}

    #[inline(always)]
    pub(crate) fn current_trace_id() -> Option<String> {
        None
    }
}
