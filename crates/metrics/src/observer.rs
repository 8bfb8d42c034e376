//! Counting from the event stream: a core NATS subscription on `<prefix>.>` inside the
//! process, so no service code changes to be measured.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_proto::v1;
use futures::StreamExt;
use prost::Message;

use crate::registry::Registry;

/// Incidents by error class and outcome.
pub const INCIDENTS: &str = "dbtops_incidents_total";
/// Fix proposals.
pub const ATTEMPTS: &str = "dbtops_attempts_total";
/// Validation results (`passed`, `failed`).
pub const VALIDATION: &str = "dbtops_validation_total";
/// Seconds from detection to merge request.
pub const TIME_TO_MR: &str = "dbtops_time_to_mr_seconds";
/// Dead letters by service.
pub const DLQ: &str = "dbtops_dlq_total";
/// LLM tokens by direction (`input`, `output`).
pub const LLM_TOKENS: &str = "dbtops_llm_tokens_total";
/// LLM cost.
pub const LLM_COST: &str = "dbtops_llm_cost_usd_total";
/// Incidents detected, by class.
pub const DETECTED: &str = "dbtops_incidents_detected_total";

/// Upper bounds of the time-to-MR histogram, in seconds.
const TIME_TO_MR_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Open incidents the observer remembers (for the class and the detection time); older
/// ones are forgotten beyond this many, so memory stays bounded.
const REMEMBERED_INCIDENTS: usize = 10_000;

/// The dbt-ops metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    /// The counters and histograms.
    pub registry: Registry,
    /// Incident id → (class, when its detection was seen), for labels and time to MR.
    incidents: Mutex<HashMap<String, (String, Instant)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every dbt-ops family declared.
    pub fn new() -> Self {
        let registry = Registry::default();
        registry.counter(
            DETECTED,
            "Incidents detected (failure.detected), by error class.",
            &["class"],
        );
        registry.counter(
            INCIDENTS,
            "Incidents that reached an outcome, by error class and outcome.",
            &["class", "outcome"],
        );
        registry.counter(ATTEMPTS, "Fix proposals (fix.proposed).", &[]);
        registry.counter(
            VALIDATION,
            "Validations of proposals, by result (passed, failed).",
            &["result"],
        );
        registry.counter(DLQ, "Messages dead-lettered, by service.", &["service"]);
        registry.counter(
            LLM_TOKENS,
            "LLM tokens spent on proposals, by direction (input, output).",
            &["direction"],
        );
        registry.counter(LLM_COST, "LLM cost of proposals, in USD.", &[]);
        crate::lag::declare(&registry);
        registry.histogram(
            TIME_TO_MR,
            "Seconds from an incident's detection to its merge request, as this process saw them.",
            TIME_TO_MR_BUCKETS,
        );
        Self {
            registry,
            incidents: Mutex::new(HashMap::new()),
        }
    }

    fn incidents(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.incidents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn class_of(&self, incident_id: &str) -> String {
        self.incidents()
            .get(incident_id)
            .map(|(class, _)| class.clone())
            .unwrap_or_else(|| "unknown".into())
    }

    fn outcome(&self, incident_id: &str, outcome: &str, forget: bool) {
        let class = self.class_of(incident_id);
        self.registry.inc(INCIDENTS, &[&class, outcome]);
        if forget {
            self.incidents().remove(incident_id);
        }
    }

    /// Counts one event: `subject` under `prefix`, typed by its `dbtops-type` header.
    /// Undecodable payloads are ignored (the consumer loop dead-letters them).
    pub fn record(
        &self,
        prefix: &str,
        subject: &str,
        type_name: &str,
        payload: &[u8],
        now: Instant,
    ) {
        if let Some(service) = subject
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(".dlq."))
        {
            self.registry.inc(DLQ, &[service]);
            return;
        }
        match type_name {
            "dbtops.v1.FailureDetected" => {
                let Ok(m) = v1::FailureDetected::decode(payload) else {
                    return;
                };
                let class = m
                    .error
                    .map(|error| error.class().label().to_owned())
                    .unwrap_or_else(|| "unknown".into());
                self.registry.inc(DETECTED, &[&class]);
                let mut incidents = self.incidents();
                if incidents.len() >= REMEMBERED_INCIDENTS {
                    incidents.clear();
                }
                incidents.insert(m.incident_id, (class, now));
            }
            "dbtops.v1.FixProposed" => {
                let Ok(m) = v1::FixProposed::decode(payload) else {
                    return;
                };
                self.registry.inc(ATTEMPTS, &[]);
                if let Some(usage) = m.proposal.and_then(|proposal| proposal.usage) {
                    self.registry
                        .add(LLM_TOKENS, &["input"], usage.input_tokens as f64);
                    self.registry
                        .add(LLM_TOKENS, &["output"], usage.output_tokens as f64);
                    self.registry.add(LLM_COST, &[], usage.cost_usd);
                }
            }
            "dbtops.v1.FixValidated" => self.registry.inc(VALIDATION, &["passed"]),
            "dbtops.v1.CompileFailed" => self.registry.inc(VALIDATION, &["failed"]),
            "dbtops.v1.MergeRequestOpened" => {
                let Ok(m) = v1::MergeRequestOpened::decode(payload) else {
                    return;
                };
                let detected = self.incidents().get(&m.incident_id).map(|(_, at)| *at);
                if let Some(detected) = detected {
                    self.registry
                        .observe(TIME_TO_MR, now.duration_since(detected).as_secs_f64());
                }
                self.outcome(&m.incident_id, "mr_opened", false);
            }
            "dbtops.v1.MergeRequestMerged" => {
                let Ok(m) = v1::MergeRequestMerged::decode(payload) else {
                    return;
                };
                self.outcome(&m.incident_id, "merged", true);
            }
            "dbtops.v1.MergeRequestClosed" => {
                let Ok(m) = v1::MergeRequestClosed::decode(payload) else {
                    return;
                };
                self.outcome(&m.incident_id, "closed", true);
            }
            "dbtops.v1.IncidentAbandoned" => {
                let Ok(m) = v1::IncidentAbandoned::decode(payload) else {
                    return;
                };
                self.outcome(&m.incident_id, "abandoned", true);
            }
            "dbtops.v1.IncidentResolved" => {
                let Ok(m) = v1::IncidentResolved::decode(payload) else {
                    return;
                };
                self.outcome(&m.incident_id, "resolved", true);
            }
            _ => {}
        }
    }
}

/// Counts every event published under `prefix` until the subscription ends.
pub async fn observe(client: async_nats::Client, prefix: String, metrics: std::sync::Arc<Metrics>) {
    let mut subscription = match client.subscribe(format!("{prefix}.>")).await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::warn!(message = "Cannot observe the event stream for metrics.", %error);
            return;
        }
    };
    while let Some(message) = subscription.next().await {
        let type_name = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(MESSAGE_TYPE))
            .map(|value| value.as_str().to_owned())
            .unwrap_or_default();
        metrics.record(
            &prefix,
            message.subject.as_str(),
            &type_name,
            &message.payload,
            Instant::now(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn detected(id: &str) -> v1::FailureDetected {
        let mut error = v1::FailureError::default();
        error.set_class(v1::ErrorClass::MissingColumn);
        v1::FailureDetected {
            incident_id: id.into(),
            error: Some(error),
            ..Default::default()
        }
    }

    #[test]
    fn an_incidents_events_become_counters() {
        let metrics = Metrics::new();
        let t0 = Instant::now();
        let class = v1::ErrorClass::MissingColumn.label();
        let record = |subject: &str, type_name: &str, payload: Vec<u8>, at: Duration| {
            metrics.record("dbtops", subject, type_name, &payload, t0 + at)
        };
        record(
            "dbtops.failure.detected",
            "dbtops.v1.FailureDetected",
            detected("a").encode_to_vec(),
            Duration::ZERO,
        );
        record(
            "dbtops.fix.proposed",
            "dbtops.v1.FixProposed",
            v1::FixProposed {
                incident: Some(detected("a")),
                attempt: 1,
                proposal: Some(v1::FixProposal {
                    usage: Some(v1::LlmUsage {
                        input_tokens: 100,
                        output_tokens: 20,
                        calls: 1,
                        cost_usd: 0.5,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
            Duration::from_secs(1),
        );
        record(
            "dbtops.fix.compile_failed",
            "dbtops.v1.CompileFailed",
            Vec::new(),
            Duration::from_secs(2),
        );
        record(
            "dbtops.fix.validated",
            "dbtops.v1.FixValidated",
            Vec::new(),
            Duration::from_secs(3),
        );
        record(
            "dbtops.mr.opened",
            "dbtops.v1.MergeRequestOpened",
            v1::MergeRequestOpened {
                incident_id: "a".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            Duration::from_secs(4),
        );
        record(
            "dbtops.dlq.fixer",
            "dbtops.v1.DeadLetter",
            Vec::new(),
            Duration::ZERO,
        );
        let r = &metrics.registry;
        assert_eq!(r.value(DETECTED, &[class]), 1.0);
        assert_eq!(r.value(INCIDENTS, &[class, "mr_opened"]), 1.0);
        assert_eq!(r.value(ATTEMPTS, &[]), 1.0);
        assert_eq!(r.value(VALIDATION, &["passed"]), 1.0);
        assert_eq!(r.value(VALIDATION, &["failed"]), 1.0);
        assert_eq!(r.value(LLM_TOKENS, &["input"]), 100.0);
        assert_eq!(r.value(LLM_TOKENS, &["output"]), 20.0);
        assert_eq!(r.value(DLQ, &["fixer"]), 1.0);
        let text = r.render();
        assert!(
            text.contains("dbtops_time_to_mr_seconds_bucket{le=\"5\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("dbtops_time_to_mr_seconds_sum 4\n"), "{text}");
    }

    #[test]
    fn an_abandoned_incident_of_unknown_class_is_still_counted() {
        let metrics = Metrics::new();
        metrics.record(
            "dbtops",
            "dbtops.incident.abandoned",
            "dbtops.v1.IncidentAbandoned",
            &v1::IncidentAbandoned {
                incident_id: "b".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            Instant::now(),
        );
        assert_eq!(
            metrics.registry.value(INCIDENTS, &["unknown", "abandoned"]),
            1.0
        );
    }
}
