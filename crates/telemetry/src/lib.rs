//! One tracing and OpenTelemetry setup for every dbt-ops process.
//!
//! Logs go to stderr through `tracing-subscriber`; spans also go to OpenTelemetry, and are
//! exported over OTLP/gRPC when an endpoint is configured. With no endpoint the SDK still
//! mints real trace and span ids — so the W3C `traceparent` carried in NATS headers links
//! every hop of an incident — but nothing is exported and nothing fails.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter directive did not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The directive as configured.
        filter: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// The OTLP exporter could not be built (a malformed endpoint, for instance).
    #[error("cannot export traces to {endpoint}: {source}")]
    Exporter {
        /// The configured endpoint.
        endpoint: String,
        /// The exporter's complaint.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// What a process needs to say about itself to set up telemetry.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans, e.g. `dbt-ops` or `dbt-ops-fixer`.
    pub service_name: String,
    /// OTLP/gRPC endpoint; `None`: no export.
    pub otlp_endpoint: Option<String>,
    /// `tracing` filter directive; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// One JSON object per log line instead of text.
    pub json_logs: bool,
}

impl TelemetryConfig {
    /// The configuration a process named `service_name` reads from its settings.
    pub fn from_settings(
        service_name: &str,
        settings: &dbtops_settings::TelemetrySettings,
    ) -> Self {
        Self {
            service_name: service_name.to_owned(),
            otlp_endpoint: Some(settings.otlp_endpoint.clone()).filter(|e| !e.is_empty()),
            log_filter: settings.log_filter.clone(),
            json_logs: settings.log_format == "json",
        }
    }
}

/// Keeps the tracer provider alive; dropping it flushes what is still buffered.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Best effort: at exit there is no one left to tell about a failed flush.
        let _ = self.provider.shutdown();
    }
}

/// Installs logging, the tracer provider and the W3C trace-context propagator. Call once
/// per process, from `main`.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(&config.service_name));
    if let Some(endpoint) = config.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|source| TelemetryError::Exporter {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    install(config, builder.build())
}

/// Like [`init`], but every finished span goes straight to `exporter` (tests pass an
/// in-memory exporter and read the spans back).
pub fn init_with_exporter<E: SpanExporter + 'static>(
    config: &TelemetryConfig,
    exporter: E,
) -> Result<TelemetryGuard, TelemetryError> {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(&config.service_name))
        .with_simple_exporter(exporter)
        .build();
    install(config, provider)
}

fn resource(service_name: &str) -> Resource {
    Resource::builder()
        .with_service_name(service_name.to_owned())
        .build()
}

fn install(
    config: &TelemetryConfig,
    provider: SdkTracerProvider,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => from_env,
        _ => config.log_filter.clone(),
    };
    let env_filter = EnvFilter::try_new(&filter).map_err(|source| TelemetryError::Filter {
        filter: filter.clone(),
        source,
    })?;
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("dbt-ops"));
    let registry = tracing_subscriber::registry()
        .with(env_filter)
        .with(otel_layer);
    // A second init in one process (tests start many systems) keeps the first subscriber.
    let _already_set = if config.json_logs {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    Ok(TelemetryGuard { provider })
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into `carrier`.
pub fn inject_current_context(carrier: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, carrier);
}

/// Makes `span` a child of the trace context found in `carrier`, if any. Must be called
/// before the span is first entered, or the parent is silently not set.
pub fn set_parent_from(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        if let Err(error) = span.set_parent(parent) {
            tracing::warn!(message = "Could not continue the incoming trace.", %error);
        }
    }
}

/// The current span's trace id as 32 hex digits, or `None` outside a sampled span.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_context_injected_on_one_side_is_the_parent_on_the_other() {
        let _guard = init(&TelemetryConfig {
            service_name: "test".into(),
            otlp_endpoint: None,
            log_filter: "info".into(),
            json_logs: false,
        })
        .unwrap();
        let sender = tracing::info_span!("sender");
        let mut headers: HashMap<String, String> = HashMap::new();
        let sent_trace = sender.in_scope(|| {
            inject_current_context(&mut headers);
            current_trace_id()
        });
        let sent_trace = sent_trace.expect("a trace id inside a span");
        assert!(headers["traceparent"].contains(&sent_trace));

        let receiver = tracing::info_span!("receiver");
        set_parent_from(&receiver, &headers);
        let received_trace = receiver.in_scope(current_trace_id);
        assert_eq!(received_trace.as_deref(), Some(sent_trace.as_str()));

        let unrelated = tracing::info_span!("unrelated");
        let unrelated_trace = unrelated.in_scope(current_trace_id).unwrap();
        assert_ne!(unrelated_trace, sent_trace);
    }
}
