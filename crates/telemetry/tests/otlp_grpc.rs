//! OTLP over gRPC with headers: telemetry set up from settings (`otlp_protocol = "grpc"`, an
//! `authorization` header), a span emitted, and a small tonic trace collector that records
//! the metadata and spans it receives (the role Jaeger, Tempo or a collector plays).
//!
//! One test in this binary on purpose: `init` installs the process-wide subscriber, whose
//! OpenTelemetry layer keeps the first tracer provider.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

const TOKEN: &str = "Bearer collector-token-5d1e";

/// One export as the collector saw it: its `authorization` metadata and span names.
type Export = (Option<String>, Vec<String>);

/// Every export received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Export>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let names = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .map(|span| span.name)
            .collect();
        self.0.lock().unwrap().push((authorization, names));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn grpc_exports_carry_the_configured_headers_as_metadata() {
    // The collector on its own runtime; dropping the telemetry guard blocks this thread
    // until the batch exporter has sent.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let collector = Collector::default();
    let served = collector.clone();
    let address = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(served))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        address
    });

    let mut settings = dbtops_settings::Settings::default();
    settings.telemetry.otlp_endpoint = format!("http://{address}");
    settings
        .telemetry
        .otlp_headers
        .insert("Authorization".into(), dbtops_settings::Secret::from(TOKEN));
    let config =
        dbtops_telemetry::TelemetryConfig::from_settings("dbt-ops-test", &settings.telemetry);
    // The tonic channel is made inside the runtime, as a service's async main does.
    let guard = {
        let _inside = runtime.enter();
        dbtops_telemetry::init(&config).unwrap()
    };
    tracing::info_span!("otlp.grpc.probe").in_scope(|| tracing::info!("probe"));
    drop(guard);

    let exports = collector.0.lock().unwrap().clone();
    assert!(!exports.is_empty(), "nothing reached the collector");
    for (authorization, _) in &exports {
        assert_eq!(authorization.as_deref(), Some(TOKEN));
    }
    assert!(
        exports
            .iter()
            .any(|(_, names)| names.iter().any(|name| name == "otlp.grpc.probe")),
        "{:?}",
        exports.iter().map(|(_, names)| names).collect::<Vec<_>>()
    );
    runtime.shutdown_timeout(Duration::from_secs(5));
}
