//! `dbt-ops status [INCIDENT]`: every incident and its state from the KV bucket, or one
//! incident's timeline replayed from the stream.

use dbtops_bus::{Bus, IncidentRecord, StoredMessage};
use dbtops_proto::v1;
use prost::Message;
use serde::Serialize;

/// One event of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    /// When the stream stored it (RFC 3339), when known.
    pub at: Option<String>,
    /// The subject it was published on.
    pub subject: String,
    /// The attempt it belongs to, for fix stages.
    pub attempt: Option<u32>,
    /// The one-line summary `dbt-ops watch` prints.
    pub summary: String,
}

/// One incident with its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentStatus {
    /// The record in the KV bucket.
    pub incident: IncidentRecord,
    /// Its events, oldest first.
    pub timeline: Vec<TimelineEvent>,
}

/// Prints every incident (a table, or one JSON object per line with `json`), or one
/// incident's record and timeline; fails when the incident is unknown.
pub async fn print(bus: &Bus, incident_id: Option<&str>, json: bool) -> anyhow::Result<()> {
    match incident_id {
        None => {
            let incidents = list(bus).await?;
            if json {
                for incident in &incidents {
                    println!("{}", serde_json::to_string(incident)?);
                }
            } else {
                print!("{}", table(&incidents));
            }
        }
        Some(incident_id) => {
            let Some(status) = incident(bus, incident_id).await? else {
                anyhow::bail!("no incident {incident_id} in the store");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", incident_text(&status));
            }
        }
    }
    Ok(())
}

/// Every incident in the store, most recently updated first.
pub async fn list(bus: &Bus) -> anyhow::Result<Vec<IncidentRecord>> {
    let mut incidents = bus.incidents().await?.list().await?;
    incidents.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
    Ok(incidents)
}

/// One incident's record and its timeline, or `None` when the store does not know it.
pub async fn incident(bus: &Bus, incident_id: &str) -> anyhow::Result<Option<IncidentStatus>> {
    let Some(record) = bus.incidents().await?.get(incident_id).await? else {
        return Ok(None);
    };
    let messages = bus.replay(&bus.subjects().all()).await?;
    Ok(Some(IncidentStatus {
        incident: record,
        timeline: timeline(&messages, incident_id),
    }))
}

/// The events among `messages` that belong to `incident_id`, oldest first.
pub fn timeline(messages: &[StoredMessage], incident_id: &str) -> Vec<TimelineEvent> {
    messages
        .iter()
        .filter_map(|message| {
            let type_name = message.type_name().unwrap_or_default();
            let (id, attempt) = incident_of(type_name, &message.payload)?;
            (id == incident_id).then(|| TimelineEvent {
                at: message.published.and_then(|at| {
                    at.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
                subject: message.subject.clone(),
                attempt,
                summary: super::watch::describe(type_name, &message.payload),
            })
        })
        .collect()
}

/// The incident id (and attempt, for fix stages) an event carries, decoded by its
/// `dbtops-type` header; `None` for events that belong to no incident.
pub fn incident_of(type_name: &str, payload: &[u8]) -> Option<(String, Option<u32>)> {
    fn nested(incident: Option<v1::FailureDetected>) -> String {
        incident.map(|i| i.incident_id).unwrap_or_default()
    }
    let found = match type_name {
        "dbtops.v1.FailureDetected" => {
            v1::FailureDetected::decode(payload).map(|m| (m.incident_id, None))
        }
        "dbtops.v1.FixProposed" => {
            v1::FixProposed::decode(payload).map(|m| (nested(m.incident), Some(m.attempt)))
        }
        "dbtops.v1.CompileFailed" => {
            v1::CompileFailed::decode(payload).map(|m| (nested(m.incident), Some(m.attempt)))
        }
        "dbtops.v1.FixValidated" => {
            v1::FixValidated::decode(payload).map(|m| (nested(m.incident), Some(m.attempt)))
        }
        "dbtops.v1.MergeRequestOpened" => {
            v1::MergeRequestOpened::decode(payload).map(|m| (m.incident_id, Some(m.attempts)))
        }
        "dbtops.v1.MergeRequestMerged" => {
            v1::MergeRequestMerged::decode(payload).map(|m| (m.incident_id, None))
        }
        "dbtops.v1.MergeRequestClosed" => {
            v1::MergeRequestClosed::decode(payload).map(|m| (m.incident_id, None))
        }
        "dbtops.v1.IncidentAbandoned" => {
            v1::IncidentAbandoned::decode(payload).map(|m| (m.incident_id, Some(m.attempts)))
        }
        "dbtops.v1.IncidentResolved" => {
            v1::IncidentResolved::decode(payload).map(|m| (m.incident_id, None))
        }
        _ => return None,
    };
    found.ok().filter(|(id, _)| !id.is_empty())
}

/// The incidents as a table.
pub fn table(incidents: &[IncidentRecord]) -> String {
    let mut out = format!(
        "{:<18} {:<11} {:<24} {:<22} {:>8}  {}\n",
        "INCIDENT", "STATE", "MODEL", "CLASS", "ATTEMPTS", "UPDATED / BRANCH / REASON"
    );
    for incident in incidents {
        let extra = incident
            .branch
            .clone()
            .or_else(|| incident.reason.clone())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<18} {:<11} {:<24} {:<22} {:>8}  {} {}\n",
            incident.incident_id,
            incident.state.label(),
            incident.model,
            incident.class,
            incident.attempts,
            incident.updated_at,
            extra
        ));
    }
    if incidents.is_empty() {
        out.push_str("(no incidents)\n");
    }
    out
}

/// One incident and its timeline, for people.
pub fn incident_text(status: &IncidentStatus) -> String {
    let incident = &status.incident;
    let mut out = format!(
        "incident {}\n  state:    {}\n  project:  {}\n  model:    {} ({})\n  class:    {}\n  attempts: {}\n  first seen {}, updated {}\n",
        incident.incident_id,
        incident.state.label(),
        incident.project,
        incident.model,
        incident.model_path,
        incident.class,
        incident.attempts,
        incident.first_seen,
        incident.updated_at,
    );
    for (label, value) in [
        ("branch", &incident.branch),
        ("url", &incident.url),
        ("reason", &incident.reason),
        ("detail", &incident.detail),
        ("trace", &incident.trace_id),
    ] {
        if let Some(value) = value {
            out.push_str(&format!("  {label}: {value}\n"));
        }
    }
    out.push_str("timeline:\n");
    for event in &status.timeline {
        out.push_str(&format!(
            "  {} {} {}\n",
            event.at.as_deref().unwrap_or("-"),
            event.subject,
            event.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::HeaderMap;

    fn stored(type_name: &str, subject: &str, payload: Vec<u8>) -> StoredMessage {
        let mut headers = HeaderMap::new();
        headers.insert(dbtops_bus::headers::MESSAGE_TYPE, type_name);
        StoredMessage {
            subject: subject.into(),
            headers,
            payload: payload.into(),
            published: None,
        }
    }

    fn detected(id: &str) -> v1::FailureDetected {
        v1::FailureDetected {
            incident_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_timeline_keeps_only_the_incidents_events_in_order() {
        let messages = vec![
            stored(
                "dbtops.v1.FailureDetected",
                "dbtops.failure.detected",
                detected("a").encode_to_vec(),
            ),
            stored(
                "dbtops.v1.FailureDetected",
                "dbtops.failure.detected",
                detected("b").encode_to_vec(),
            ),
            stored(
                "dbtops.v1.FixProposed",
                "dbtops.fix.proposed",
                v1::FixProposed {
                    incident: Some(detected("a")),
                    attempt: 1,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            stored(
                "dbtops.v1.RunSubmitted",
                "dbtops.run.submitted",
                v1::RunSubmitted::default().encode_to_vec(),
            ),
            stored(
                "dbtops.v1.IncidentAbandoned",
                "dbtops.incident.abandoned",
                v1::IncidentAbandoned {
                    incident_id: "a".into(),
                    reason: "no_fix_found".into(),
                    attempts: 1,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ];
        let events = timeline(&messages, "a");
        let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
        assert_eq!(
            subjects,
            [
                "dbtops.failure.detected",
                "dbtops.fix.proposed",
                "dbtops.incident.abandoned"
            ]
        );
        assert_eq!(events[1].attempt, Some(1));
        assert!(events[2].summary.contains("reason=no_fix_found"));
    }

    #[test]
    fn undecodable_or_foreign_events_belong_to_no_incident() {
        assert_eq!(incident_of("dbtops.v1.FixProposed", b"\xff\xff\xff"), None);
        assert_eq!(incident_of("dbtops.v1.DeadLetter", b""), None);
    }
}
