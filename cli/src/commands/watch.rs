//! `dbt-ops watch`: every event on the bus, live, one line each.

use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_bus::{Bus, BusError};
use dbtops_proto::v1;
use futures::StreamExt;
use prost::Message;

/// Prints every event on `subject` (default: all of dbt-ops') as it arrives, from now or,
/// with `replay`, from the start of the stream, until `shutdown` resolves.
pub async fn watch(
    bus: &Bus,
    subject: Option<String>,
    replay: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    let consume_error = |error: String| BusError::Consume {
        what: "the event stream".into(),
        reason: error,
    };
    let stream = bus
        .jetstream()
        .get_stream(&bus.settings().stream)
        .await
        .map_err(|error| consume_error(error.to_string()))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject.unwrap_or_else(|| bus.subjects().all()),
            deliver_policy: if replay {
                DeliverPolicy::All
            } else {
                DeliverPolicy::New
            },
            ..Default::default()
        })
        .await
        .map_err(|error| consume_error(error.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| consume_error(error.to_string()))?;
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            next = messages.next() => next,
        };
        match next {
            Some(Ok(message)) => {
                let type_name = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(MESSAGE_TYPE))
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default();
                println!(
                    "{} {} {}",
                    dbtops_bus::incidents::now_rfc3339(),
                    message.subject,
                    describe(&type_name, &message.payload)
                );
            }
            Some(Err(error)) => return Err(consume_error(error.to_string())),
            None => return Ok(()),
        }
    }
}

/// A one-line summary of an event.
pub fn describe(type_name: &str, payload: &[u8]) -> String {
    fn decoded<M: Message + Default>(payload: &[u8]) -> Option<M> {
        M::decode(payload).ok()
    }
    let model_name = |model: &Option<v1::ModelRef>| {
        model
            .as_ref()
            .map(|model| model.name.clone())
            .unwrap_or_default()
    };
    let summary = match type_name {
        "dbtops.v1.RunSubmitted" => decoded::<v1::RunSubmitted>(payload).map(|m| {
            let project = m.project.map(|p| p.name).unwrap_or_default();
            format!(
                "submission={} project={project} artifacts={}",
                m.submission_id,
                m.artifacts.len()
            )
        }),
        "dbtops.v1.RunProcessed" => decoded::<v1::RunProcessed>(payload).map(|m| {
            format!(
                "submission={} new={} recurring={}",
                m.submission_id,
                m.new_incident_ids.len(),
                m.recurring_incident_ids.len()
            )
        }),
        "dbtops.v1.FailureDetected" => decoded::<v1::FailureDetected>(payload).map(|m| {
            let class = m.error.map(|e| e.class().label()).unwrap_or_default();
            format!(
                "incident={} model={} class={class}",
                m.incident_id,
                model_name(&m.model)
            )
        }),
        "dbtops.v1.FixProposed" => decoded::<v1::FixProposed>(payload).map(|m| {
            let incident = m.incident.unwrap_or_default();
            let strategy = m.proposal.map(|p| p.strategy).unwrap_or_default();
            format!(
                "incident={} model={} attempt={} strategy={strategy}",
                incident.incident_id,
                model_name(&incident.model),
                m.attempt
            )
        }),
        "dbtops.v1.CompileFailed" => decoded::<v1::CompileFailed>(payload).map(|m| {
            let incident = m.incident.unwrap_or_default();
            format!(
                "incident={} attempt={} step={:?} error={:?}",
                incident.incident_id,
                m.attempt,
                m.failed_step,
                m.error_text.lines().next().unwrap_or_default()
            )
        }),
        "dbtops.v1.FixValidated" => decoded::<v1::FixValidated>(payload).map(|m| {
            let incident = m.incident.unwrap_or_default();
            let steps: Vec<String> = m
                .steps
                .iter()
                .map(|s| format!("{}:{}ms", s.name, s.duration_ms))
                .collect();
            format!(
                "incident={} attempt={} steps=[{}]",
                incident.incident_id,
                m.attempt,
                steps.join(", ")
            )
        }),
        "dbtops.v1.MergeRequestOpened" => decoded::<v1::MergeRequestOpened>(payload).map(|m| {
            format!(
                "incident={} model={} provider={} branch={} {}",
                m.incident_id,
                model_name(&m.model),
                m.provider,
                m.branch,
                m.url
            )
        }),
        "dbtops.v1.IncidentAbandoned" => decoded::<v1::IncidentAbandoned>(payload).map(|m| {
            format!(
                "incident={} model={} reason={} detail={:?}",
                m.incident_id,
                model_name(&m.model),
                m.reason,
                m.detail
            )
        }),
        "dbtops.v1.DeadLetter" => decoded::<v1::DeadLetter>(payload).map(|m| {
            format!(
                "service={} from={} reason={:?}",
                m.service, m.original_subject, m.reason
            )
        }),
        _ => None,
    };
    summary.unwrap_or_else(|| format!("type={type_name:?} bytes={}", payload.len()))
}
