//! Log output: human-readable in development, one JSON object per line in production. Handlers never log
//! headers or bodies, so `Authorization`, cookies and tokens cannot reach the log. `dashtam serve` may add
//! OpenTelemetry export ([`crate::telemetry`]) to the same subscriber.

use std::io::{IsTerminal, Stderr};

use tracing::Subscriber;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::format::{DefaultFields, FmtSpan, Format};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;
use crate::telemetry::{self, Telemetry};

/// Installs the global subscriber. Logs go to standard error so that command output on standard output
/// (`config check`, `migrate status`) stays clean for scripts.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let registry = tracing_subscriber::registry().with(log_filter(config)?);
    let installed = if config.json_logs() {
        registry.with(json_lines()).try_init()
    } else {
        registry.with(compact_lines()).try_init()
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}

/// [`init`] for `dashtam serve`: with `otel.enabled`, request spans are exported too. The returned handle
/// flushes the exporter at shutdown.
pub fn init_serving(config: &Config) -> anyhow::Result<Telemetry> {
    if !config.otel.enabled {
        init(config)?;
        return Ok(Telemetry::off());
    }
    // Here the log filter is the log lines' own, so `log.filter = "warn"` quietens the log without also
    // stopping the request spans the exporter needs.
    let filter = log_filter(config)?;
    let (export, telemetry) = telemetry::start(config)?;
    let registry = tracing_subscriber::registry().with(export);
    let installed = if config.json_logs() {
        registry.with(json_lines().with_filter(filter)).try_init()
    } else {
        registry.with(compact_lines().with_filter(filter)).try_init()
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))?;
    tracing::info!(
        endpoint = %config.otel.traces_url(),
        service_name = config.otel.service_name,
        sample_ratio = config.otel.sample_ratio,
        "OpenTelemetry: exporting traces"
    );
    Ok(telemetry)
}

fn log_filter(config: &Config) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(&config.log.filter)
        .map_err(|error| anyhow::anyhow!("DASHTAM_LOG__FILTER (log.filter) is not a valid filter: {error}"))
}

/// Production lines: the event's fields at the top level, the request span's (`request_id`, `route`, …) under
/// `span`.
fn json_lines<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    lines().json().flatten_event(true).with_current_span(true).with_span_list(false)
}

fn compact_lines<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    lines().compact()
}

/// What both formats share: standard error, no span open/close lines.
fn lines<S>() -> fmt::Layer<S, DefaultFields, Format, fn() -> Stderr>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fmt::layer()
        .with_writer(std::io::stderr as fn() -> Stderr)
        .with_span_events(FmtSpan::NONE)
        // Colour codes help a person at a terminal; in files and log collectors they are noise.
        .with_ansi(std::io::stderr().is_terminal())
}
