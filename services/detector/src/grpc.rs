//! `dbtops.v1.Ingest/SubmitRun` over gRPC, and the standard gRPC health service.
//!
//! For CI jobs that have a gRPC client but no NATS client: the request is a
//! `RunSubmitted` (artifacts inline up to `detector.grpc_max_message_bytes`; larger ones put
//! in the artifacts object store first and named), the answer the `RunProcessed` verdict
//! with the new, recurring and resolved incident ids. It goes through
//! [`process_submission`], exactly as a submission on the bus does. A `traceparent` in
//! the request metadata makes the submission part of the caller's trace.
//!
//! Errors: a bad submission (corrupt or oversized artifact, nothing usable) is
//! `INVALID_ARGUMENT` and will fail again; a bus failure is `UNAVAILABLE` and may be
//! retried with the same `submission_id` (the detector is idempotent per submission).

use dbtops_bus::Bus;
use dbtops_proto::v1;
use dbtops_proto::v1::ingest_server::{Ingest, IngestServer};
use opentelemetry::propagation::Extractor;
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{process_submission, Detector, DetectorError, SubmissionError};

/// The `Ingest` service: the bus and the detector it processes with.
#[derive(Clone, Debug)]
pub struct IngestService {
    /// Where incidents and verdicts are published.
    bus: Bus,
    /// Settings and the redactor.
    detector: Detector,
}

impl IngestService {
    /// A service over `bus` with `detector`.
    pub fn new(bus: Bus, detector: Detector) -> Self {
        Self { bus, detector }
    }
}

/// Reads `traceparent`/`tracestate` from gRPC metadata.
struct MetadataReader<'a>(&'a MetadataMap);

impl Extractor for MetadataReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit_run(
        &self,
        request: Request<v1::RunSubmitted>,
    ) -> Result<Response<v1::RunProcessed>, Status> {
        let span = tracing::info_span!(
            "detector.grpc.submit_run",
            submission_id = tracing::field::Empty
        );
        dbtops_telemetry::set_parent_from(&span, &MetadataReader(request.metadata()));
        let mut submitted = request.into_inner();
        if submitted.submission_id.is_empty() {
            submitted.submission_id = uuid::Uuid::new_v4().to_string();
        }
        if submitted.submitted_at.is_empty() {
            submitted.submitted_at = dbtops_bus::incidents::now_rfc3339();
        }
        span.record("submission_id", submitted.submission_id.as_str());
        match process_submission(&self.bus, &self.detector, &submitted)
            .instrument(span)
            .await
        {
            Ok(processed) => Ok(Response::new(processed)),
            Err(SubmissionError::Reject(reason)) => Err(Status::invalid_argument(reason)),
            Err(SubmissionError::Retry(reason)) => Err(Status::unavailable(reason)),
        }
    }
}

/// Serves `Ingest` and `grpc.health.v1.Health` on `listener` until `shutdown` resolves
/// (in-flight calls finish first).
pub async fn serve(
    bus: Bus,
    detector: Detector,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DetectorError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<IngestServer<IngestService>>().await;
    let limit =
        usize::try_from(detector.settings().detector.grpc_max_message_bytes).unwrap_or(usize::MAX);
    let ingest =
        IngestServer::new(IngestService::new(bus, detector)).max_decoding_message_size(limit);
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(ingest)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
        .map_err(|error| DetectorError::Grpc {
            address,
            reason: error.to_string(),
        })
}
