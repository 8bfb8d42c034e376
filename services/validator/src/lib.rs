//! The validator: from a proposal to proof, with real dbt.
//!
//! For each `dbtops.fix.proposed` it climbs the ladder ([`ladder`]): in-process checks
//! (guardrails, Jinja delimiters, every `ref()`/`source()` kept), then in a scratch copy of
//! the project `dbt compile`, a parse of the compiled SQL, `dbt build --empty` of the model
//! and its parents, its dependents, a run with data where the target allows it (DuckDB by
//! default), and a data check against the last good version. Success goes to
//! `dbtops.fix.validated` with the steps and the diff; failure goes back to the fixer on
//! `dbtops.fix.compile_failed` with the failed step's dbt error. A validator that cannot
//! run dbt at all (dbt missing, a broken profile) naks and retries: that is never blamed
//! on the proposal.
//!
//! dbt runs in a warm worker ([`worker`]): one long-lived Python process per project
//! using dbt's `dbtRunner`, so a step costs a fraction of a cold `dbt` start; subprocesses
//! take over when no worker can start.
//!
//! Modules: [`ladder`] (the rungs, [`Validator`]), [`checks`] (in-process checks),
//! [`sqlcheck`] (the compiled SQL), [`datacheck`] (the output against the last good
//! version), [`dbt`] (subprocesses, output), [`worker`] (the warm workers),
//! [`workspace`] (scratch copies), [`isolation`] (a schema of its own on a shared
//! warehouse).
//!
//! **Invariants**: only the validator runs dbt; the user's project directory is never
//! written; nothing is written anywhere before the in-process checks pass.

pub mod checks;
pub mod datacheck;
pub mod dbt;
pub mod isolation;
pub mod ladder;
pub mod lineage;
pub mod sqlcheck;
pub mod worker;
pub mod workspace;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dbtops_bus::{
    advance_incident, run_consumer, skip_superseded, stage_id, Bus, BusError, ConsumerSpec,
    Delivery, IncidentState, Outcome,
};
use dbtops_proto::v1;
use dbtops_settings::Settings;

pub use crate::ladder::{LadderPlan, Validator, MAX_SQL_BYTES};

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "validator";

/// Why the validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A `[validator]` setting is invalid.
    #[error("invalid validator settings: {0}")]
    Config(String),
}

/// Runs the validator until `shutdown` resolves.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ValidatorError> {
    if !settings.validator.workspace_root.is_empty() {
        let removed = workspace::sweep_leftovers(Path::new(&settings.validator.workspace_root));
        if removed > 0 {
            tracing::info!(message = "Removed workspaces left by a crash.", removed);
        }
    }
    let spec = ConsumerSpec {
        service: SERVICE,
        durable: SERVICE.into(),
        filter_subjects: vec![bus.subjects().fix_proposed()],
        concurrency: settings.validator.concurrency,
    };
    // Its own validator, not the shared one: its workers end when the service stops.
    let validator = Arc::new(Validator::new(&settings)?);
    let handler_bus = bus.clone();
    let handler_validator = validator.clone();
    let consumed = run_consumer(
        bus,
        spec,
        move |delivery| {
            let bus = handler_bus.clone();
            let validator = handler_validator.clone();
            async move { handle_with(&bus, &validator, delivery).await }
        },
        shutdown,
    )
    .await;
    validator.shutdown();
    // Verdicts go out before their workspaces are removed: the removals end here, not
    // with the process.
    validator.wait_for_removals().await;
    consumed?;
    Ok(())
}

/// Handles one `FixProposed`: the unit the consumer loop calls, public so tests can step it.
pub async fn handle(bus: &Bus, settings: &Settings, delivery: Delivery) -> Outcome {
    match Validator::shared(settings) {
        Ok(validator) => handle_with(bus, &validator, delivery).await,
        Err(error) => Outcome::retry(Duration::from_secs(10), error.to_string()),
    }
}

/// [`handle`] with a given [`Validator`] (its workers, its concurrency limit).
#[tracing::instrument(
    name = "validator.attempt",
    skip_all,
    fields(incident_id, model, attempt)
)]
pub async fn handle_with(bus: &Bus, validator: &Validator, delivery: Delivery) -> Outcome {
    let proposed = match delivery.decode::<v1::FixProposed>() {
        Ok(proposed) => proposed,
        Err(rejection) => return rejection,
    };
    let (Some(incident), Some(proposal)) = (proposed.incident.as_ref(), proposed.proposal.as_ref())
    else {
        return Outcome::reject("FixProposed without its incident or proposal");
    };
    let Some(model) = incident.model.as_ref() else {
        return Outcome::reject("incident without a model");
    };
    let span = tracing::Span::current();
    span.record("incident_id", incident.incident_id.as_str());
    span.record("model", model.name.as_str());
    span.record("attempt", proposed.attempt);
    if let Some(outcome) = skip_superseded(bus, incident).await {
        return outcome;
    }

    let verdict = match validator.validate(incident, model, proposal).await {
        Ok(verdict) => verdict,
        Err(ValidationFault::Retry(reason)) => {
            return Outcome::retry(Duration::from_secs(10), reason);
        }
    };
    match publish_verdict(bus, &proposed, incident, proposal, verdict).await {
        Ok(()) => Outcome::Done,
        Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
    }
}

/// What the ladder concluded.
#[derive(Debug)]
pub enum Verdict {
    /// Every step passed.
    Validated {
        /// The steps, in order.
        steps: Vec<v1::ValidationStep>,
    },
    /// A step failed; the proposal goes back to the fixer.
    Failed {
        /// The steps run, the failed one last.
        steps: Vec<v1::ValidationStep>,
        /// The failed step's name.
        failed_step: String,
        /// Its error, trimmed.
        error_text: String,
    },
}

/// A problem of the validator's own (dbt missing, a timeout the machine caused…).
#[derive(Debug)]
pub enum ValidationFault {
    /// Try the same proposal again later.
    Retry(String),
}

/// Runs the ladder for one proposal with the process-wide [`Validator`] for `settings`
/// (made on first use, so its warm workers serve later calls too).
pub async fn validate(
    settings: &Settings,
    incident: &v1::FailureDetected,
    model: &v1::ModelRef,
    proposal: &v1::FixProposal,
) -> Result<Verdict, ValidationFault> {
    let validator =
        Validator::shared(settings).map_err(|error| ValidationFault::Retry(error.to_string()))?;
    validator.validate(incident, model, proposal).await
}

async fn publish_verdict(
    bus: &Bus,
    proposed: &v1::FixProposed,
    incident: &v1::FailureDetected,
    proposal: &v1::FixProposal,
    verdict: Verdict,
) -> Result<(), BusError> {
    let incident_id = incident.incident_id.as_str();
    // From the event, not the store: the store may not show a reopening yet.
    let generation = incident.generation;
    match verdict {
        Verdict::Validated { steps } => {
            let validated = v1::FixValidated {
                incident: Some(incident.clone()),
                attempt: proposed.attempt,
                proposal: Some(proposal.clone()),
                steps,
                diff: lineage::proposal_diff(proposal, incident.evidence.as_ref()),
                history: proposed.history.clone(),
            };
            bus.publish(
                &bus.subjects().fix_validated(),
                &stage_id(incident_id, generation, "validated", proposed.attempt),
                &validated,
            )
            .await?;
            advance_incident(bus, incident, IncidentState::Delivering, |_| {}).await?;
            tracing::info!(message = "Proposal validated.");
        }
        Verdict::Failed {
            steps,
            failed_step,
            error_text,
        } => {
            tracing::info!(message = "Proposal failed validation.", %failed_step);
            let failed = v1::CompileFailed {
                incident: Some(incident.clone()),
                attempt: proposed.attempt,
                proposal: Some(proposal.clone()),
                failed_step,
                error_text,
                steps,
                history: proposed.history.clone(),
            };
            bus.publish(
                &bus.subjects().compile_failed(),
                &stage_id(incident_id, generation, "compile_failed", proposed.attempt),
                &failed,
            )
            .await?;
            advance_incident(bus, incident, IncidentState::Fixing, |_| {}).await?;
        }
    }
    Ok(())
}
