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
//!
//! Authentication: with `detector.grpc_token` set, `Ingest` requires the metadata
//! `authorization: Bearer <token>`; anything else is `UNAUTHENTICATED` before the request
//! body is read, so nothing is processed or published. The token is compared in constant
//! time and never logged. The health service stays open: probes carry no credentials.

use dbtops_bus::Bus;
use dbtops_proto::v1;
use dbtops_proto::v1::ingest_server::{Ingest, IngestServer};
use dbtops_settings::Secret;
use opentelemetry::propagation::Extractor;
use sha2::{Digest, Sha256};
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::service::interceptor::InterceptedService;
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

/// Admits an `Ingest` call only with the configured bearer token (every call when none is
/// configured). Runs on the request's metadata, before its body is decoded.
#[derive(Clone)]
pub struct BearerAuth {
    /// SHA-256 of the configured token; `None`: no token configured, every call admitted.
    /// Only the digest is kept, so the comparison runs over 32 bytes whatever the length of
    /// the token presented (its length leaks nothing either).
    expected: Option<[u8; 32]>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Even a digest of the token stays out of logs.
        f.debug_struct("BearerAuth")
            .field("required", &self.expected.is_some())
            .finish()
    }
}

impl BearerAuth {
    /// Requires `token`, or nothing when it is empty.
    pub fn new(token: &Secret) -> Self {
        Self {
            expected: (!token.is_empty()).then(|| digest(token.expose())),
        }
    }

    /// Whether `metadata` carries `authorization: Bearer <the token>`.
    fn admits(&self, metadata: &MetadataMap) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        let Some(presented) = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        constant_time_eq(&digest(presented), expected)
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.admits(request.metadata()) {
            return Ok(request);
        }
        // Who knocked, never what they presented.
        let peer = request
            .remote_addr()
            .map(|address| address.to_string())
            .unwrap_or_default();
        tracing::warn!(
            message = "Refused a gRPC Ingest call without the configured bearer token.",
            peer = %peer
        );
        Err(Status::unauthenticated(
            "Ingest requires `authorization: Bearer <detector.grpc_token>`",
        ))
    }
}

/// The token of an `authorization` value `Bearer <token>` (the scheme is case-insensitive,
/// RFC 6750 / RFC 9110); `None` for any other scheme or an empty token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests without an early exit, so the time taken says nothing about how
/// many leading bytes matched; `black_box` keeps the optimiser from adding one back.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(difference) == 0
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

/// Serves `Ingest` (behind `detector.grpc_token`, when set) and `grpc.health.v1.Health`
/// (open) on `listener` until `shutdown` resolves (in-flight calls finish first).
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
    let auth = BearerAuth::new(&detector.settings().detector.grpc_token);
    if auth.expected.is_none() {
        tracing::warn!(
            message = "gRPC Ingest accepts calls without authentication: detector.grpc_token is empty.",
            %address
        );
    }
    // Only Ingest is behind the token: the health service is added on its own below.
    let ingest = InterceptedService::new(
        IngestServer::new(IngestService::new(bus, detector)).max_decoding_message_size(limit),
        auth,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(authorization: Option<&str>) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        if let Some(value) = authorization {
            metadata.insert("authorization", value.parse().unwrap());
        }
        metadata
    }

    #[test]
    fn only_the_configured_bearer_token_is_admitted() {
        let auth = BearerAuth::new(&Secret::from("s3cret-token"));
        assert!(auth.admits(&metadata(Some("Bearer s3cret-token"))));
        assert!(auth.admits(&metadata(Some("bearer s3cret-token"))));
        for refused in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("s3cret-token"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-toke"),
            Some("Bearer s3cret-token2"),
            Some("Bearer S3CRET-TOKEN"),
        ] {
            assert!(!auth.admits(&metadata(refused)), "{refused:?}");
        }
    }

    #[test]
    fn without_a_configured_token_every_call_is_admitted() {
        let auth = BearerAuth::new(&Secret::default());
        assert!(auth.admits(&metadata(None)));
        assert!(auth.admits(&metadata(Some("Bearer anything"))));
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let auth = BearerAuth::new(&Secret::from("s3cret-token"));
        let printed = format!("{auth:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("required: true"), "{printed}");
    }
}
