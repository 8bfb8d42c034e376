//! The NATS JetStream bus every dbt-ops service talks through.
//!
//! - [`connection`]: [`Bus`] — connect (refusing servers older than 2.10), create or update
//!   the stream, KV bucket and object store, publish with `Nats-Msg-Id`, `traceparent` and
//!   `dbtops-type`.
//! - [`consumer`]: the one consumer loop: a handler returns an [`Outcome`], the loop acks,
//!   naks with delay, or dead-letters to `dbtops.dlq.<service>` and terms.
//! - [`incidents`]: each incident's state in the KV bucket.
//! - [`subjects`]: subject names under the configured prefix.
//! - [`headers`]: header names and the trace-context carriers.
//! - [`server`]: a private `nats-server -js` child for `dbt-ops up` and the tests.

pub mod connection;
pub mod consumer;
pub mod error;
pub mod headers;
pub mod incidents;
pub mod server;
pub mod shutdown;
pub mod subjects;

pub use connection::{Bus, Published, StoredMessage};
pub use consumer::{run_consumer, ConsumerSpec, Delivery, Outcome};
pub use error::BusError;
pub use incidents::{IncidentRecord, IncidentState, IncidentStore, SubmissionRecord};
pub use server::NatsServer;
pub use subjects::Subjects;

/// The idempotency key of one stage of one incident, `<incident_id>.<stage>.<attempt>`
/// (the `Nats-Msg-Id`), with the generation folded into the id when a closed incident was
/// opened again by the same failure.
pub fn stage_id(incident_id: &str, generation: u32, stage: &str, attempt: u32) -> String {
    if generation == 0 {
        format!("{incident_id}.{stage}.{attempt}")
    } else {
        format!("{incident_id}-g{generation}.{stage}.{attempt}")
    }
}

/// Ends an incident without a merge request: publishes `dbtops.incident.abandoned` and
/// records the reason (`needs_human`, `no_fix_found`, `attempts_exhausted`, `guardrail`).
pub async fn abandon_incident(
    bus: &Bus,
    incident: &dbtops_proto::v1::FailureDetected,
    reason: &str,
    detail: &str,
    attempts: u32,
) -> Result<(), BusError> {
    let store = bus.incidents().await?;
    let incident_id = incident.incident_id.as_str();
    let generation = incident.generation;
    let model = incident.model.clone();
    let abandoned = dbtops_proto::v1::IncidentAbandoned {
        incident_id: incident_id.to_owned(),
        model,
        reason: reason.to_owned(),
        detail: detail.to_owned(),
        attempts,
    };
    bus.publish(
        &bus.subjects().incident_abandoned(),
        &stage_id(incident_id, generation, "abandoned", 0),
        &abandoned,
    )
    .await?;
    store
        .update(incident_id, |record| {
            record.state = IncidentState::Abandoned;
            record.reason = Some(reason.to_owned());
            record.detail = Some(detail.to_owned());
            record.attempts = record.attempts.max(attempts);
        })
        .await?;
    tracing::info!(message = "Incident abandoned.", incident_id, reason, detail);
    Ok(())
}

/// Moves an incident to `state`, returning its generation (0 when it has no record).
pub async fn advance_incident(
    bus: &Bus,
    incident_id: &str,
    state: IncidentState,
    change: impl FnMut(&mut IncidentRecord),
) -> Result<u32, BusError> {
    let mut change = change;
    let record = bus
        .incidents()
        .await?
        .update(incident_id, |record| {
            record.state = state;
            change(record);
        })
        .await?;
    Ok(record.map(|record| record.generation).unwrap_or(0))
}
