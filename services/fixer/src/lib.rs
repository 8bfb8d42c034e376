//! The fixer: from an incident's evidence to a typed [`v1::FixProposal`].
//!
//! It reads `dbtops.failure.detected` (first attempt) and `dbtops.fix.compile_failed` (the
//! validator rejected the previous proposal: the next attempt carries dbt's error and every
//! earlier proposal). A chain of strategies drafts the proposal — deterministic rules
//! first (unless `fixer.rules_enabled` is off), then an LLM when one is configured — and
//! the proposal goes to `dbtops.fix.proposed`, with the rule stage's duration in the
//! [`RULE_STAGE_HEADER`] header. Out of strategies or attempts, the incident is abandoned with the
//! reason; when every LLM provider is down, the incident waits (the message is nak'ed with
//! a delay) and is abandoned as `providers_unavailable` only on its last delivery.
//!
//! Module layout:
//! - `strategy`: the chain (rules → providers in fallback order) and what it concluded;
//! - `agent`: the conversation with one provider — single-shot or agentic — with one
//!   round of feedback for an unparseable answer and one for a refused proposal;
//! - `llm`: providers behind a provider-neutral conversation (`openai`, `anthropic`
//!   wire formats; `retry`: back-off, jitter, `Retry-After`);
//! - `checks`: what every proposal must pass before it leaves;
//! - `prompt`: versioned templates from `prompts/*.md`, routed by error class, and the
//!   evidence rendered as delimited data;
//! - `tools`: the agent's tools, which read only the incident's evidence;
//! - `usage`: token budgets, the cost cap, spend carried between attempts;
//! - `redact`: secrets kept out of prompts and captured content.
//!
//! **Invariant**: the fixer never touches a file system or a repository; everything it
//! knows is in the event.

pub mod agent;
pub mod checks;
pub mod llm;
pub mod prompt;
pub mod redact;
pub mod strategy;
pub mod tools;
pub mod usage;

use std::time::Duration;

use dbtops_bus::headers::{HeaderCarrier, MESSAGE_ID, MESSAGE_TYPE};
use dbtops_bus::{
    abandon_incident, advance_incident, run_consumer, skip_superseded, stage_id, Bus, BusError,
    ConsumerSpec, Delivery, IncidentState, Outcome,
};
use dbtops_proto::{v1, WireMessage};
use dbtops_settings::Settings;
use prost::Message;
use tracing::Instrument;

pub use strategy::{Drafted, Drafter, ProposalRequest};

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "fixer";

/// The longest an incident waits between deliveries while every provider is down.
const MAX_UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// The longest wait at all, even when a provider's `Retry-After` asks for more.
const MAX_UNAVAILABLE_WAIT: Duration = Duration::from_secs(60 * 60);

/// Why the fixer could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum FixerError {
    /// The bus failed; a restart may help once NATS is back.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// An LLM provider could not be set up: a configuration error.
    #[error(transparent)]
    Provider(#[from] llm::LlmError),
}

impl FixerError {
    /// True when starting again unchanged may succeed (NATS was down); false for a
    /// configuration error that someone has to fix.
    pub fn retry_helps(&self) -> bool {
        match self {
            FixerError::Bus(error) => !matches!(
                error,
                BusError::ServerTooOld { .. } | BusError::Credentials { .. }
            ),
            FixerError::Provider(error) => error.retry_helps(),
        }
    }
}

/// The fixer's world: the bus, the settings and the strategies built from them.
#[derive(Clone)]
pub struct Fixer {
    /// Where incidents come from and proposals go.
    bus: Bus,
    /// As loaded.
    settings: Settings,
    /// Rules and the configured providers.
    drafter: Drafter,
}

impl Fixer {
    /// Builds the providers named in the settings.
    pub fn new(bus: Bus, settings: Settings) -> Result<Self, FixerError> {
        let drafter = Drafter::new(&settings)?;
        Ok(Self {
            bus,
            settings,
            drafter,
        })
    }
}

/// Runs the fixer until `shutdown` resolves.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), FixerError> {
    let subjects = bus.subjects();
    let spec = ConsumerSpec {
        service: SERVICE,
        durable: SERVICE.into(),
        filter_subjects: vec![subjects.failure_detected(), subjects.compile_failed()],
        concurrency: settings.fixer.concurrency,
    };
    let fixer = Fixer::new(bus.clone(), settings)?;
    run_consumer(
        bus,
        spec,
        move |delivery| {
            let fixer = fixer.clone();
            async move { handle(&fixer, delivery).await }
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// One attempt to be made: the incident, which attempt, and what failed before.
struct AttemptPlan {
    incident: v1::FailureDetected,
    attempt: u32,
    history: Vec<v1::AttemptRecord>,
}

fn plan_attempt(delivery: &Delivery) -> Result<AttemptPlan, Outcome> {
    match delivery.type_name() {
        Some(<v1::FailureDetected as WireMessage>::TYPE_NAME) => {
            let incident = delivery.decode::<v1::FailureDetected>()?;
            Ok(AttemptPlan {
                incident,
                attempt: 1,
                history: Vec::new(),
            })
        }
        Some(<v1::CompileFailed as WireMessage>::TYPE_NAME) => {
            let failed = delivery.decode::<v1::CompileFailed>()?;
            let incident = failed
                .incident
                .ok_or_else(|| Outcome::reject("CompileFailed without its incident"))?;
            let mut history = failed.history;
            history.push(v1::AttemptRecord {
                attempt: failed.attempt,
                proposal: failed.proposal,
                failed_step: failed.failed_step,
                error_text: failed.error_text,
            });
            Ok(AttemptPlan {
                incident,
                // The attempt number is the sender's word: one past `u32::MAX` must not
                // overflow (a panic on every delivery); it is past `max_attempts` anyway.
                attempt: failed.attempt.saturating_add(1),
                history,
            })
        }
        // The same words as every other consumer's decoder (`Delivery::decode`).
        Some(other) => Err(Outcome::reject(format!(
            "unexpected message type {other:?}, expected {} or {}",
            <v1::FailureDetected as WireMessage>::TYPE_NAME,
            <v1::CompileFailed as WireMessage>::TYPE_NAME
        ))),
        None => Err(Outcome::reject(format!("missing {MESSAGE_TYPE} header"))),
    }
}

/// Handles one delivery: the unit the consumer loop calls, public so tests can step it.
#[tracing::instrument(name = "fixer.attempt", skip_all, fields(incident_id, model, attempt))]
pub async fn handle(fixer: &Fixer, delivery: Delivery) -> Outcome {
    let plan = match plan_attempt(&delivery) {
        Ok(plan) => plan,
        Err(rejection) => return rejection,
    };
    let incident_id = plan.incident.incident_id.clone();
    let model = plan.incident.model.clone();
    let span = tracing::Span::current();
    span.record("incident_id", incident_id.as_str());
    span.record("attempt", plan.attempt);
    if let Some(model) = &model {
        span.record("model", model.name.as_str());
    }
    if incident_id.is_empty() || model.is_none() {
        return Outcome::reject("incident without an id or a model");
    }
    if let Some(outcome) = skip_superseded(&fixer.bus, &plan.incident).await {
        return outcome;
    }
    match attempt(fixer, plan, delivery.delivered).await {
        Ok(Attempted::Done) => Outcome::Done,
        Ok(Attempted::Wait { after, reason }) => Outcome::retry(after, reason),
        Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
    }
}

/// How an attempt ended for the consumer loop.
enum Attempted {
    /// Its effects are durable: ack.
    Done,
    /// Every provider was unavailable: deliver the message again after `after`.
    Wait {
        /// The delay.
        after: Duration,
        /// Why, for the log.
        reason: String,
    },
}

/// How long an incident waits for its providers before delivery number `delivered + 1`:
/// `base · 2^(delivered-1)` up to 15 minutes, or longer when a provider's `Retry-After`
/// asks for it, but never more than an hour.
pub fn unavailable_delay(
    base: Duration,
    delivered: i64,
    retry_after: Option<Duration>,
) -> Duration {
    let doublings = u32::try_from((delivered - 1).clamp(0, 16)).unwrap_or(16);
    let backoff = base
        .checked_mul(1u32 << doublings)
        .unwrap_or(MAX_UNAVAILABLE_BACKOFF)
        .min(MAX_UNAVAILABLE_BACKOFF);
    backoff
        .max(retry_after.unwrap_or_default())
        .min(MAX_UNAVAILABLE_WAIT)
}

/// Makes one attempt.
async fn attempt(fixer: &Fixer, plan: AttemptPlan, delivered: i64) -> Result<Attempted, BusError> {
    let bus = &fixer.bus;
    let settings = &fixer.settings;
    let incident_id = plan.incident.incident_id.as_str();
    let max_attempts = settings.fixer.max_attempts;
    if plan.attempt > max_attempts {
        let last_error = plan
            .history
            .last()
            .map(|record| format!("{}: {}", record.failed_step, headline(&record.error_text)))
            .unwrap_or_default();
        let detail =
            format!("no proposal validated in {max_attempts} attempts; last: {last_error}");
        abandon_incident(
            bus,
            &plan.incident,
            "attempts_exhausted",
            &detail,
            max_attempts,
        )
        .await?;
        return Ok(Attempted::Done);
    }
    advance_incident(bus, &plan.incident, IncidentState::Fixing, |record| {
        record.attempts = record.attempts.max(plan.attempt);
    })
    .await?;
    // From the event, not the store: the store may not show a reopening yet.
    let generation = plan.incident.generation;
    let request = ProposalRequest {
        incident: &plan.incident,
        history: &plan.history,
    };
    let drafted = fixer
        .drafter
        .draft(&request)
        .instrument(tracing::info_span!("fixer.draft"))
        .await;
    let (proposal, rule_stage) = match drafted {
        Drafted::Proposal {
            proposal,
            rule_stage,
            ..
        } => (proposal, rule_stage),
        Drafted::Nothing {
            reason,
            detail,
            spend,
            rule_stage,
        } => {
            let detail = if spend.calls > 0 {
                format!("{detail} (LLM usage: {})", spend.describe())
            } else {
                detail
            };
            let detail = match rule_stage {
                Some(elapsed) => format!("{detail} ({})", rule_stage_note(elapsed)),
                None => detail,
            };
            abandon_incident(bus, &plan.incident, reason, &detail, plan.attempt).await?;
            return Ok(Attempted::Done);
        }
        Drafted::Unavailable {
            detail,
            retry_after,
            ..
        } => {
            let max_deliver = bus.settings().max_deliver;
            if delivered >= max_deliver {
                // The consumer loop would dead-letter the message with a generic "gave
                // up"; the incident deserves its own ending and a reason a human can act on.
                let detail = format!(
                    "every LLM provider was unavailable on each of {delivered} deliveries; last: {detail}"
                );
                abandon_incident(
                    bus,
                    &plan.incident,
                    "providers_unavailable",
                    &detail,
                    plan.attempt,
                )
                .await?;
                return Ok(Attempted::Done);
            }
            let after = unavailable_delay(
                Duration::from_secs(settings.fixer.unavailable_retry_secs),
                delivered,
                retry_after,
            );
            tracing::warn!(
                message = "Every provider is unavailable; the incident waits.",
                delivered,
                max_deliver,
                wait_secs = after.as_secs(),
                %detail,
            );
            return Ok(Attempted::Wait {
                after,
                reason: format!("every LLM provider is unavailable: {detail}"),
            });
        }
    };
    let proposed_strategy = proposal.strategy.clone();
    let proposed = v1::FixProposed {
        incident: Some(plan.incident.clone()),
        attempt: plan.attempt,
        proposal: Some(proposal),
        history: plan.history,
    };
    publish_proposal(
        bus,
        &stage_id(incident_id, generation, "proposed", plan.attempt),
        &proposed,
        rule_stage,
    )
    .await?;
    advance_incident(bus, &plan.incident, IncidentState::Validating, |_| {}).await?;
    // One line per published proposal, with the incident: how a deployment (and the
    // scale test) sees which replica handled which attempt.
    tracing::info!(
        message = "Proposal published.",
        incident_id,
        attempt = plan.attempt,
        strategy = %proposed_strategy,
        process_id = std::process::id(),
    );
    Ok(Attempted::Done)
}

/// The header of `fix.proposed` that carries how long the fixer's rule stage took for
/// that attempt, in microseconds (`41.7`); absent when rules are off. The wire contract
/// has no field for it, and a header keeps it out of the proposal a reviewer reads;
/// `dbt-ops eval` reports its percentiles.
pub const RULE_STAGE_HEADER: &str = "dbtops-rule-stage-us";

/// `rule stage 41.7 µs`: how an abandonment's detail carries the rule stage's duration
/// (an abandoned attempt publishes no proposal to put the header on).
pub fn rule_stage_note(elapsed: Duration) -> String {
    format!("rule stage {:.1} µs", elapsed.as_secs_f64() * 1e6)
}

/// The rule stage's duration in microseconds, read back from [`RULE_STAGE_HEADER`]'s
/// value or from a detail holding a [`rule_stage_note`].
pub fn parse_rule_stage_micros(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<f64>() {
        return Some(value);
    }
    let (_, rest) = text.rsplit_once("rule stage ")?;
    rest.split_once(" µs")?.0.parse().ok()
}

/// Publishes a proposal as `Bus::publish` does — trace context, message type, message
/// id — plus [`RULE_STAGE_HEADER`].
async fn publish_proposal(
    bus: &Bus,
    message_id: &str,
    proposed: &v1::FixProposed,
    rule_stage: Option<Duration>,
) -> Result<(), BusError> {
    let mut headers = async_nats::HeaderMap::new();
    dbtops_telemetry::inject_current_context(&mut HeaderCarrier(&mut headers));
    headers.insert(MESSAGE_TYPE, <v1::FixProposed as WireMessage>::TYPE_NAME);
    if let Some(elapsed) = rule_stage {
        let micros = format!("{:.1}", elapsed.as_secs_f64() * 1e6);
        headers.insert(RULE_STAGE_HEADER, micros.as_str());
    }
    // Set last: nothing after this may replace the header map (STACK.md trap), or the
    // stream stops de-duplicating a redelivered attempt.
    headers.insert(MESSAGE_ID, message_id);
    bus.publish_raw(
        &bus.subjects().fix_proposed(),
        headers,
        proposed.encode_to_vec().into(),
    )
    .await?;
    Ok(())
}

/// The line of dbt's error a reader needs first: the database's own message
/// (`Catalog Error: …`, `ERROR: …`) when there is one, else the first line.
fn headline(text: &str) -> &str {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let first = lines.clone().next().unwrap_or_default();
    lines
        .find(|line| {
            line.contains("Error:") || line.starts_with("ERROR:") || line.contains("error:")
        })
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery_of(type_name: Option<&str>, payload: Vec<u8>) -> Delivery {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(type_name) = type_name {
            headers.insert(MESSAGE_TYPE, type_name);
        }
        Delivery {
            subject: "dbtops.fix.compile_failed".into(),
            headers,
            payload: payload.into(),
            delivered: 1,
            stream_sequence: 1,
        }
    }

    #[test]
    fn the_last_attempt_number_does_not_overflow() {
        let failed = v1::CompileFailed {
            incident: Some(v1::FailureDetected {
                incident_id: "i".into(),
                ..Default::default()
            }),
            attempt: u32::MAX,
            ..Default::default()
        };
        let delivery = delivery_of(
            Some(<v1::CompileFailed as WireMessage>::TYPE_NAME),
            failed.encode_to_vec(),
        );
        let plan = plan_attempt(&delivery).expect("a plan");
        assert_eq!(plan.attempt, u32::MAX);
    }

    #[test]
    fn other_message_types_are_refused_in_the_decoders_words() {
        let reason = |delivery: &Delivery| match plan_attempt(delivery) {
            Err(Outcome::Reject { reason }) => reason,
            _ => panic!("not a rejection"),
        };
        let wrong = delivery_of(Some("dbtops.v1.RunSubmitted"), Vec::new());
        assert_eq!(
            reason(&wrong),
            "unexpected message type \"dbtops.v1.RunSubmitted\", expected \
             dbtops.v1.FailureDetected or dbtops.v1.CompileFailed"
        );
        assert_eq!(
            reason(&delivery_of(None, Vec::new())),
            "missing dbtops-type header"
        );
    }

    #[test]
    fn an_incident_waits_longer_each_time_its_providers_are_down() {
        let base = Duration::from_secs(30);
        assert_eq!(unavailable_delay(base, 1, None), Duration::from_secs(30));
        assert_eq!(unavailable_delay(base, 3, None), Duration::from_secs(120));
        assert_eq!(unavailable_delay(base, 40, None), MAX_UNAVAILABLE_BACKOFF);
        assert_eq!(
            unavailable_delay(base, 1, Some(Duration::from_secs(200))),
            Duration::from_secs(200),
            "a Retry-After longer than the back-off is honoured"
        );
        assert_eq!(
            unavailable_delay(base, 1, Some(Duration::from_secs(86_400))),
            MAX_UNAVAILABLE_WAIT
        );
    }

    #[test]
    fn the_rule_stage_reads_back_from_a_header_or_a_detail() {
        let note = rule_stage_note(Duration::from_nanos(41_740));
        assert_eq!(note, "rule stage 41.7 µs");
        let detail =
            format!("no rule matched this failure and no LLM provider is configured ({note})");
        assert_eq!(parse_rule_stage_micros(&detail), Some(41.7));
        assert_eq!(parse_rule_stage_micros("41.7"), Some(41.7));
        assert_eq!(parse_rule_stage_micros("no rule matched"), None);
    }

    #[test]
    fn the_headline_is_the_database_message() {
        let text = "Failure in model revenue_daily (models/x.sql)\n  Runtime Error in model revenue_daily (models/x.sql)\n  Catalog Error: Scalar Function with name to_chr does not exist!";
        assert_eq!(
            headline(text),
            "Catalog Error: Scalar Function with name to_chr does not exist!"
        );
        assert_eq!(
            headline("Compilation Error\n  bad ref"),
            "Compilation Error"
        );
        assert_eq!(headline(""), "");
    }
}
