//! OTLP over HTTP, end to end: telemetry set up from settings as a service does it
//! (`otlp_protocol = "http"`, a Langfuse-style base URL and `Authorization` header), a span
//! emitted, and a local HTTP server in the role of the backend that records what arrives.
//!
//! One test in this binary on purpose: `init` installs the process-wide subscriber, whose
//! OpenTelemetry layer keeps the first tracer provider.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One request as the backend saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: Option<String>,
    authorization: Option<String>,
    body: Bytes,
}

const AUTHORIZATION: &str = "Basic cGstbGYtdGVzdDpzay1sZi10ZXN0";

#[test]
fn spans_are_posted_as_protobuf_to_v1_traces_with_the_configured_header() {
    // The backend runs on its own runtime: dropping the telemetry guard below blocks this
    // thread until the batch exporter has posted, and the server must answer meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let recorded = Arc::clone(&received);
    let address = runtime.block_on(async move {
        // Langfuse's path: the base URL ends in /api/public/otel; the exporter adds /v1/traces.
        let app = axum::Router::new().fallback(post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let recorded = Arc::clone(&recorded);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned)
                    };
                    recorded.lock().unwrap().push(Received {
                        path: uri.path().to_owned(),
                        content_type: header("content-type"),
                        authorization: header("authorization"),
                        body,
                    });
                    StatusCode::OK
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        address
    });

    // As a service reads it: the file names protocol and endpoint, the environment the
    // secret header.
    let dir = std::env::temp_dir().join(format!("dbtops-otlp-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dbt-ops.toml");
    std::fs::write(
        &file,
        format!(
            "[telemetry]\notlp_endpoint = \"http://{address}/api/public/otel\"\n\
             otlp_protocol = \"http\"\n"
        ),
    )
    .unwrap();
    let settings = dbtops_settings::Settings::load_from(
        Some(&file),
        [(
            "DBT_OPS__TELEMETRY__OTLP_HEADERS__AUTHORIZATION".to_string(),
            AUTHORIZATION.to_string(),
        )],
    )
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let config =
        dbtops_telemetry::TelemetryConfig::from_settings("dbt-ops-test", &settings.telemetry);
    assert!(!format!("{config:?}").contains(AUTHORIZATION));

    let guard = dbtops_telemetry::init(&config).unwrap();
    let trace_id = {
        let span = tracing::info_span!("otlp.http.probe", incident_id = "inc-42");
        span.in_scope(|| {
            tracing::info!("inside the probe span");
            dbtops_telemetry::current_trace_id()
        })
    }
    .expect("a trace id inside a span");
    // Flushes the batch exporter and waits for it.
    drop(guard);

    let requests = received.lock().unwrap().clone();
    assert!(!requests.is_empty(), "nothing reached the backend");
    for request in &requests {
        assert_eq!(request.path, "/api/public/otel/v1/traces");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-protobuf")
        );
        assert_eq!(request.authorization.as_deref(), Some(AUTHORIZATION));
    }
    let spans: Vec<_> = requests
        .iter()
        .map(|request| ExportTraceServiceRequest::decode(request.body.as_ref()).unwrap())
        .flat_map(|export| export.resource_spans)
        .flat_map(|resource| {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            resource
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
                .map(move |span| (service.clone(), span))
        })
        .collect();
    let (service, probe) = spans
        .iter()
        .find(|(_, span)| span.name == "otlp.http.probe")
        .unwrap_or_else(|| panic!("no probe span in {spans:?}"));
    assert_eq!(
        service,
        &Some(Value::StringValue("dbt-ops-test".into())),
        "the resource names the service"
    );
    assert_eq!(hex(&probe.trace_id), trace_id, "the span's own trace id");
    assert!(
        probe.attributes.iter().any(|kv| kv.key == "incident_id"
            && kv.value.as_ref().and_then(|v| v.value.clone())
                == Some(Value::StringValue("inc-42".into()))),
        "{probe:?}"
    );
    runtime.shutdown_timeout(Duration::from_secs(5));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
