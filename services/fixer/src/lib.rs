//! The fixer: from an incident's evidence to a typed [`v1::FixProposal`].
//!
//! It reads `dbtops.failure.detected` (first attempt) and `dbtops.fix.compile_failed` (the
//! validator rejected the previous proposal: the next attempt carries dbt's error and every
//! earlier proposal). A chain of strategies drafts the proposal — deterministic rules
//! first, then an LLM when one is configured — and the proposal goes to
//! `dbtops.fix.proposed`. Out of strategies or attempts, the incident is abandoned with the
//! reason.
//!
//! **Invariant**: the fixer never touches a file system or a repository; everything it
//! knows is in the event.

pub mod llm;
pub mod strategy;

use std::time::Duration;

use dbtops_bus::{
    abandon_incident, advance_incident, run_consumer, stage_id, Bus, BusError, ConsumerSpec,
    Delivery, IncidentState, Outcome,
};
use dbtops_proto::{v1, WireMessage};
use dbtops_settings::Settings;

pub use strategy::{propose, Drafted, ProposalRequest};

use crate::llm::Provider;

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "fixer";

/// Why the fixer could not start.
#[derive(Debug, thiserror::Error)]
pub enum FixerError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// An LLM provider could not be set up.
    #[error(transparent)]
    Provider(#[from] llm::LlmError),
}

/// The fixer's world: the bus, the settings and the LLM providers built from them.
#[derive(Clone)]
pub struct Fixer {
    /// Where incidents come from and proposals go.
    bus: Bus,
    /// As loaded.
    settings: Settings,
    /// The configured providers, in fallback order.
    providers: Vec<Provider>,
}

impl Fixer {
    /// Builds the providers named in the settings.
    pub fn new(bus: Bus, settings: Settings) -> Result<Self, FixerError> {
        let providers = settings
            .fixer
            .providers
            .iter()
            .map(Provider::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            bus,
            settings,
            providers,
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
                attempt: failed.attempt + 1,
                history,
            })
        }
        other => Err(Outcome::reject(format!(
            "the fixer does not handle message type {other:?}"
        ))),
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
    match attempt(fixer, plan).await {
        Ok(None) => Outcome::Done,
        Ok(Some(unavailable)) => Outcome::retry(Duration::from_secs(30), unavailable),
        Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
    }
}

/// Makes one attempt; `Ok(Some(reason))` when every provider was unavailable and the
/// incident should wait, not be abandoned.
async fn attempt(fixer: &Fixer, plan: AttemptPlan) -> Result<Option<String>, BusError> {
    let bus = &fixer.bus;
    let settings = &fixer.settings;
    let incident_id = plan.incident.incident_id.as_str();
    let model = plan.incident.model.clone();
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
            model,
            incident_id,
            "attempts_exhausted",
            &detail,
            max_attempts,
        )
        .await?;
        return Ok(None);
    }
    let generation = advance_incident(bus, incident_id, IncidentState::Fixing, |record| {
        record.attempts = record.attempts.max(plan.attempt);
    })
    .await?;
    let request = ProposalRequest {
        incident: &plan.incident,
        history: &plan.history,
    };
    let proposal = match propose(&request, &fixer.providers).await {
        Drafted::Proposal(proposal) => proposal,
        Drafted::Nothing(detail) => {
            abandon_incident(
                bus,
                model,
                incident_id,
                "no_fix_found",
                &detail,
                plan.attempt,
            )
            .await?;
            return Ok(None);
        }
        Drafted::Unavailable(reason) => return Ok(Some(reason)),
    };
    tracing::info!(message = "Proposal drafted.", strategy = %proposal.strategy);
    let proposed = v1::FixProposed {
        incident: Some(plan.incident.clone()),
        attempt: plan.attempt,
        proposal: Some(proposal),
        history: plan.history,
    };
    bus.publish(
        &bus.subjects().fix_proposed(),
        &stage_id(incident_id, generation, "proposed", plan.attempt),
        &proposed,
    )
    .await?;
    advance_incident(bus, incident_id, IncidentState::Validating, |_| {}).await?;
    Ok(None)
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
