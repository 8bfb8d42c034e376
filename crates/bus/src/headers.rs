//! Header names and the trace-context carriers over NATS headers.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};

/// JetStream's idempotency key: `<incident_id>.<stage>.<attempt>`.
pub const MESSAGE_ID: &str = "Nats-Msg-Id";
/// The fully qualified protobuf name of the payload.
pub const MESSAGE_TYPE: &str = "dbtops-type";
/// Why a message was dead-lettered (on `dbtops.dlq.<service>`).
pub const DEAD_LETTER_REASON: &str = "dbtops-dlq-reason";

/// Lets the OpenTelemetry propagator write `traceparent`/`tracestate` into NATS headers.
pub struct HeaderCarrier<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Lets the OpenTelemetry propagator read the trace context from NATS headers.
pub struct HeaderReader<'a>(pub &'a HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}
