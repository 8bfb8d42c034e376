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
pub use consumer::{
    run_consumer, run_consumer_with_dead_letters, ConsumerSpec, DeadLetterPayload, Delivery,
    Outcome,
};
pub use error::BusError;
pub use incidents::{
    GenerationUpdate, IncidentRecord, IncidentState, IncidentStore, SubmissionRecord,
};
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
    // A late event (its ack lost) of an incident that already has a branch must not
    // announce an abandonment the record will not take.
    if let Some(record) = store.get(incident_id).await? {
        if record.generation == generation && !record.state.may_move_to(IncidentState::Abandoned) {
            tracing::info!(
                message = "Late abandonment of an incident past that stage; dropped.",
                incident_id,
                reason,
                current = record.state.label()
            );
            return Ok(());
        }
    }
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
    let update = store
        .update_generation(
            incident_id,
            generation,
            IncidentState::Abandoned,
            |record| {
                record.reason = Some(reason.to_owned());
                record.detail = Some(detail.to_owned());
                record.attempts = record.attempts.max(attempts);
            },
        )
        .await?;
    match update {
        GenerationUpdate::Superseded { current } => {
            tracing::info!(
                message = "An earlier generation of the incident ended; the current one goes on.",
                incident_id,
                generation,
                current,
                reason
            );
            return Ok(());
        }
        GenerationUpdate::Settled { current } => {
            tracing::info!(
                message = "Late abandonment of an incident past that stage; left as it is.",
                incident_id,
                reason,
                current = current.label()
            );
            return Ok(());
        }
        GenerationUpdate::Updated(_) | GenerationUpdate::Missing => {}
    }
    tracing::info!(message = "Incident abandoned.", incident_id, reason, detail);
    Ok(())
}

/// Moves an incident to `state` unless the detector has opened it again since the event
/// was published: returns whether the record changed.
pub async fn advance_incident(
    bus: &Bus,
    incident: &dbtops_proto::v1::FailureDetected,
    state: IncidentState,
    change: impl FnMut(&mut IncidentRecord),
) -> Result<bool, BusError> {
    let mut change = change;
    let update = bus
        .incidents()
        .await?
        .update_generation(
            &incident.incident_id,
            incident.generation,
            state,
            |record| change(record),
        )
        .await?;
    if let GenerationUpdate::Settled { current } = update {
        tracing::info!(
            message = "Late event: the incident is past that stage; left as it is.",
            incident_id = %incident.incident_id,
            asked = state.label(),
            current = current.label()
        );
    }
    Ok(matches!(update, GenerationUpdate::Updated(_)))
}

/// The generation the incident is at now when `incident` (an event's copy) belongs to an
/// earlier one: such an event is stale — its checkout, commit or evidence may not be the
/// current run's — and a service drops it instead of acting on it.
pub async fn superseded_by(
    bus: &Bus,
    incident: &dbtops_proto::v1::FailureDetected,
) -> Result<Option<u32>, BusError> {
    let record = bus.incidents().await?.get(&incident.incident_id).await?;
    Ok(record
        .map(|record| record.generation)
        .filter(|current| *current > incident.generation))
}

/// What a handler does with an event of an earlier generation of its incident, or of an
/// incident this generation has already ended (a redelivery whose ack was lost after the
/// branch was opened or the incident abandoned): `Some` ends the delivery (ack it; retry
/// when the store cannot be read), `None` lets the handler go on.
pub async fn skip_superseded(
    bus: &Bus,
    incident: &dbtops_proto::v1::FailureDetected,
) -> Option<Outcome> {
    let record = match bus.incidents().await {
        Ok(store) => store.get(&incident.incident_id).await,
        Err(error) => Err(error),
    };
    match record {
        Ok(Some(record)) if record.generation > incident.generation => {
            tracing::info!(
                message = "Stale event of an earlier generation of the incident; dropped.",
                incident_id = %incident.incident_id,
                generation = incident.generation,
                current = record.generation
            );
            Some(Outcome::Done)
        }
        Ok(Some(record))
            if record.generation == incident.generation && record.state.is_outcome() =>
        {
            tracing::info!(
                message = "Late event of an incident that has ended; dropped.",
                incident_id = %incident.incident_id,
                state = record.state.label()
            );
            Some(Outcome::Done)
        }
        Ok(_) => None,
        Err(error) => Some(Outcome::retry(
            std::time::Duration::from_secs(2),
            error.to_string(),
        )),
    }
}
