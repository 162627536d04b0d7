//! OpenTelemetry trace export, built with the `otel` cargo feature (docs/operations.md). With `otel.enabled`,
//! `dashtam serve` adds a layer to its subscriber that turns each request span into an OpenTelemetry span,
//! batches finished spans on a thread of its own and posts them over OTLP/HTTP (protobuf) to the collector;
//! incoming W3C `traceparent` headers are continued (the hook in [`dashtam_api::telemetry`]). [`Telemetry`]
//! flushes what is still buffered when the server stops.
//!
//! A build without the feature has only the refusal: configuration validation already stops a server asked
//! to export traces it cannot.

pub use imp::{Telemetry, start};

#[cfg(feature = "otel")]
mod imp {
    use std::time::Duration;

    use anyhow::Context;
    use opentelemetry::KeyValue;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::{Layer, Registry};

    use crate::config::{Config, Environment};

    /// The longest a stopping server waits for the last spans to reach the collector.
    const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

    /// The running exporter; [`Telemetry::shutdown`] flushes it.
    #[derive(Debug)]
    pub struct Telemetry {
        provider: Option<SdkTracerProvider>,
    }

    impl Telemetry {
        /// The handle of a server that does not export.
        pub fn off() -> Self {
            Self { provider: None }
        }

        /// Exports the spans still buffered and stops the exporter, waiting at most five seconds (an
        /// unreachable collector must not hold up a shutdown). Blocks: call it off the async workers.
        pub fn shutdown(self) {
            let Some(provider) = self.provider else { return };
            match provider.shutdown_with_timeout(SHUTDOWN_FLUSH_TIMEOUT) {
                Ok(()) => tracing::info!("OpenTelemetry: span exporter stopped"),
                Err(error) => tracing::warn!(%error, "OpenTelemetry: the last spans could not be exported"),
            }
        }
    }

    /// Starts the exporter described by `[otel]` and returns the layer that feeds it, and installs the W3C
    /// trace-context propagator the request hook reads `traceparent` with. The layer sees spans and events at
    /// `INFO` and above whatever `log.filter` says: that filter is about log lines.
    pub fn start(config: &Config) -> anyhow::Result<(impl Layer<Registry> + Send + Sync, Telemetry)> {
        let settings = &config.otel;
        // The SDK's batch processor exports from its own thread, which is why the exporter's HTTP client is
        // reqwest's blocking one: it needs no async runtime there.
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.traces_url().as_str())
            .build()
            .context("DASHTAM_OTEL__ENDPOINT (otel.endpoint): cannot set up the OTLP exporter")?;
        let environment = match config.env {
            Environment::Development => "development",
            Environment::Production => "production",
        };
        // The default detectors come first, so `OTEL_RESOURCE_ATTRIBUTES` can add attributes while the
        // configured service name wins over `OTEL_SERVICE_NAME`.
        let resource = Resource::builder()
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("deployment.environment.name", environment),
            ])
            .with_service_name(settings.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            // A caller's sampling decision (the `traceparent` flags) is followed; traces starting here are
            // kept at the configured ratio.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let layer =
            tracing_opentelemetry::layer().with_tracer(provider.tracer("dashtam")).with_filter(LevelFilter::INFO);
        dashtam_api::telemetry::enable();
        Ok((layer, Telemetry { provider: Some(provider) }))
    }
}

#[cfg(not(feature = "otel"))]
mod imp {
    use tracing_subscriber::layer::Identity;

    use crate::config::Config;

    /// Nothing to flush in a build without the feature.
    #[derive(Debug)]
    pub struct Telemetry;

    impl Telemetry {
        /// The handle of a server that does not export.
        pub fn off() -> Self {
            Self
        }

        /// Does nothing: nothing was exported.
        pub fn shutdown(self) {}
    }

    /// Refuses: this build cannot export traces. (Configuration validation refuses `otel.enabled` first; this
    /// keeps a configuration that skipped validation from starting without the traces it asked for.)
    pub fn start(_config: &Config) -> anyhow::Result<(Identity, Telemetry)> {
        Err(anyhow::anyhow!(
            "DASHTAM_OTEL__ENABLED (otel.enabled): this dashtam was built without the `otel` cargo feature"
        ))
    }
}
