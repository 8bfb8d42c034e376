//! One tracing and OpenTelemetry setup for every dbt-ops process.
//!
//! Logs go to stderr through `tracing-subscriber`; spans also go to OpenTelemetry, and are
//! exported over OTLP — gRPC (Jaeger, Tempo, a collector) or HTTP with protobuf bodies
//! (Langfuse) — when an endpoint is configured, with the configured headers (secrets:
//! never logged). With no endpoint the SDK still mints real trace and span ids — so the
//! W3C `traceparent` carried in NATS headers links every hop of an incident — but nothing
//! is exported and nothing fails.

use std::collections::{BTreeMap, HashMap};

pub use dbtops_settings::OtlpProtocol;
use dbtops_settings::Secret;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
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
    /// A configured OTLP header cannot be sent. Names the header, never its value.
    #[error("invalid telemetry.otlp_headers entry {name:?}: {problem}")]
    Header {
        /// The header's name as configured.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpEndpoint {
    /// gRPC: the collector's address (`http://host:4317`). HTTP: the base URL, to which
    /// `/v1/traces` is appended unless it already ends with it.
    pub url: String,
    /// OTLP over gRPC or over HTTP (protobuf bodies).
    pub protocol: OtlpProtocol,
    /// Sent with every export (gRPC metadata or HTTP headers). Secrets, so Debug output
    /// shows their names only; an empty value is not sent.
    pub headers: BTreeMap<String, Secret>,
}

impl OtlpEndpoint {
    /// The URL the exporter posts to: for HTTP, the OTLP signal path `/v1/traces` under the
    /// base URL (as the OTLP spec does for `OTEL_EXPORTER_OTLP_ENDPOINT`), so a Langfuse
    /// base like `https://cloud.langfuse.com/api/public/otel` works as documented.
    pub fn export_url(&self) -> String {
        match self.protocol {
            OtlpProtocol::Grpc => self.url.clone(),
            OtlpProtocol::Http => {
                let base = self.url.trim_end_matches('/');
                if base.ends_with("/v1/traces") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/traces")
                }
            }
        }
    }

    /// The headers to send: empty values dropped, each name and value checked so that a
    /// bad one stops start-up instead of being silently left out by the exporter.
    fn checked_headers(&self) -> Result<Vec<(String, &str)>, TelemetryError> {
        let mut checked = Vec::new();
        for (name, value) in &self.headers {
            if value.is_empty() {
                continue;
            }
            let problem = if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                Some("a header name is letters, digits and !#$%&'*+-.^_`|~ only")
            } else if self.protocol == OtlpProtocol::Grpc && name.ends_with("-bin") {
                Some("binary (-bin) gRPC metadata is not supported")
            } else if !value.expose().bytes().all(is_header_value_byte) {
                Some("the value must be printable ASCII (no line breaks)")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(TelemetryError::Header {
                    name: name.clone(),
                    problem,
                });
            }
            // gRPC metadata keys are lower case; HTTP header names are case-insensitive.
            checked.push((name.to_ascii_lowercase(), value.expose()));
        }
        Ok(checked)
    }
}

/// RFC 9110 `tchar`.
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What `http::HeaderValue::from_str` accepts: visible ASCII, space and tab.
fn is_header_value_byte(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) || byte == b'\t'
}

/// What a process needs to say about itself to set up telemetry.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` on exported spans, e.g. `dbt-ops` or `dbt-ops-fixer`.
    pub service_name: String,
    /// Where spans are exported; `None`: no export.
    pub otlp_endpoint: Option<OtlpEndpoint>,
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
            otlp_endpoint: (!settings.otlp_endpoint.is_empty()).then(|| OtlpEndpoint {
                url: settings.otlp_endpoint.clone(),
                protocol: settings.otlp_protocol,
                headers: settings.otlp_headers.clone(),
            }),
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
    if let Some(endpoint) = config.otlp_endpoint.as_ref().filter(|e| !e.url.is_empty()) {
        builder = builder.with_batch_exporter(otlp_exporter(endpoint)?);
    }
    install(config, builder.build())
}

/// The OTLP span exporter for `endpoint`, with its headers.
pub fn otlp_exporter(
    endpoint: &OtlpEndpoint,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let url = endpoint.export_url();
    let headers = endpoint.checked_headers()?;
    let built = match endpoint.protocol {
        OtlpProtocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (name, value) in headers {
                // Both checked above against the rules the parsers apply.
                let (Ok(key), Ok(value)) = (
                    tonic::metadata::MetadataKey::from_bytes(name.as_bytes()),
                    tonic::metadata::MetadataValue::try_from(value),
                ) else {
                    return Err(TelemetryError::Header {
                        name,
                        problem: "not valid as gRPC metadata",
                    });
                };
                metadata.insert(key, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_metadata(metadata)
                .build()
        }
        OtlpProtocol::Http => {
            // reqwest is built without a crypto provider of its own; another crate may have
            // installed ring already, which is the same choice.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let headers: HashMap<String, String> = headers
                .into_iter()
                // The exporter percent-decodes header values (the OTEL_EXPORTER_OTLP_HEADERS
                // convention); escaping `%` keeps a configured value exactly as written.
                .map(|(name, value)| (name, value.replace('%', "%25")))
                .collect();
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url.clone())
                .with_headers(headers)
                .build()
        }
    };
    built.map_err(|source| TelemetryError::Exporter {
        endpoint: url,
        source,
    })
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

    fn endpoint(protocol: OtlpProtocol, url: &str, headers: &[(&str, &str)]) -> OtlpEndpoint {
        OtlpEndpoint {
            url: url.into(),
            protocol,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), Secret::from(*value)))
                .collect(),
        }
    }

    #[test]
    fn http_export_goes_to_the_traces_path_under_the_base_url() {
        for (base, expected) in [
            (
                "https://cloud.langfuse.com/api/public/otel",
                "https://cloud.langfuse.com/api/public/otel/v1/traces",
            ),
            (
                "https://cloud.langfuse.com/api/public/otel/",
                "https://cloud.langfuse.com/api/public/otel/v1/traces",
            ),
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            (
                "http://collector:4318/v1/traces",
                "http://collector:4318/v1/traces",
            ),
        ] {
            assert_eq!(
                endpoint(OtlpProtocol::Http, base, &[]).export_url(),
                expected
            );
        }
        assert_eq!(
            endpoint(OtlpProtocol::Grpc, "http://jaeger:4317", &[]).export_url(),
            "http://jaeger:4317"
        );
    }

    #[test]
    fn headers_come_from_settings_and_environment_and_never_print() {
        let dir = std::env::temp_dir().join(format!("dbtops-telemetry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dbt-ops.toml");
        std::fs::write(
            &file,
            "[telemetry]\notlp_endpoint = \"https://cloud.langfuse.com/api/public/otel\"\n\
             otlp_protocol = \"http\"\n\
             otlp_headers = { x-langfuse-ingestion-version = \"4\" }\n",
        )
        .unwrap();
        let settings = dbtops_settings::Settings::load_from(
            Some(&file),
            [(
                "DBT_OPS__TELEMETRY__OTLP_HEADERS__AUTHORIZATION".to_string(),
                "Basic cGstbGYtMTpzay1sZi0x".to_string(),
            )],
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let config = TelemetryConfig::from_settings("test", &settings.telemetry);
        let endpoint = config.otlp_endpoint.clone().unwrap();
        assert_eq!(endpoint.protocol, OtlpProtocol::Http);
        let headers = endpoint.checked_headers().unwrap();
        assert_eq!(
            headers,
            vec![
                ("authorization".to_string(), "Basic cGstbGYtMTpzay1sZi0x"),
                ("x-langfuse-ingestion-version".to_string(), "4"),
            ]
        );
        let printed = format!("{config:?} {settings:?}");
        assert!(!printed.contains("cGstbGYtMTpzay1sZi0x"), "{printed}");
        assert!(printed.contains("authorization"), "{printed}");
    }

    #[test]
    fn a_bad_header_stops_start_up_naming_it_but_not_its_value() {
        for (name, value) in [
            ("Authorization", "Basic abc\r\nX-Injected: 1"),
            ("bad header", "x"),
            ("", "x"),
        ] {
            let error = otlp_exporter(&endpoint(
                OtlpProtocol::Http,
                "http://127.0.0.1:1",
                &[(name, value)],
            ))
            .unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, TelemetryError::Header { .. }), "{message}");
            assert!(message.contains(&format!("{name:?}")), "{message}");
            assert!(!message.contains(value), "{message}");
        }
        // An empty value means "not configured": nothing to check, nothing sent.
        let quiet = endpoint(
            OtlpProtocol::Grpc,
            "http://127.0.0.1:1",
            &[("bad header", "")],
        );
        assert!(quiet.checked_headers().unwrap().is_empty());
    }
}
