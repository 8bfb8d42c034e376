//! The validator: from a proposal to proof, with real dbt.
//!
//! For each `dbtops.fix.proposed` it checks the proposal against the guardrails, copies the
//! project into a scratch workspace, writes the proposed SQL there, and climbs the ladder:
//! `dbt compile --select <model>`, then `dbt build --select +<model> --empty` without data tests (compile alone
//! does not catch a missing column). Success goes to `dbtops.fix.validated` with the steps
//! and the diff; failure goes back to the fixer on `dbtops.fix.compile_failed` with dbt's
//! error. A validator that cannot run dbt at all naks and retries: that is never blamed on
//! the proposal.
//!
//! **Invariants**: only the validator runs dbt; the user's project directory is never
//! written.

pub mod dbt;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dbtops_bus::{
    advance_incident, run_consumer, stage_id, Bus, BusError, ConsumerSpec, Delivery, IncidentState,
    Outcome,
};
use dbtops_guardrails::PathPolicy;
use dbtops_proto::v1;
use dbtops_settings::Settings;
use tracing::Instrument;

use crate::dbt::{DbtError, DbtInvoker};
use crate::workspace::Workspace;

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "validator";
/// Largest proposal accepted, in bytes.
const MAX_SQL_BYTES: usize = 512 * 1024;
/// Lines of dbt's error kept for the fixer and the merge request.
const ERROR_LINES: usize = 40;

/// Why the validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
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
    let handler_bus = bus.clone();
    run_consumer(
        bus,
        spec,
        move |delivery| {
            let bus = handler_bus.clone();
            let settings = settings.clone();
            async move { handle(&bus, &settings, delivery).await }
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// Handles one `FixProposed`: the unit the consumer loop calls, public so tests can step it.
#[tracing::instrument(
    name = "validator.attempt",
    skip_all,
    fields(incident_id, model, attempt)
)]
pub async fn handle(bus: &Bus, settings: &Settings, delivery: Delivery) -> Outcome {
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

    let verdict = match validate(settings, incident, model, proposal).await {
        Ok(verdict) => verdict,
        Err(ValidationFault::Retry(reason)) => {
            return Outcome::retry(Duration::from_secs(10), reason)
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

/// Runs the ladder for one proposal.
pub async fn validate(
    settings: &Settings,
    incident: &v1::FailureDetected,
    model: &v1::ModelRef,
    proposal: &v1::FixProposal,
) -> Result<Verdict, ValidationFault> {
    let project = incident.project.clone().unwrap_or_default();
    let project_dir = PathBuf::from(&project.project_dir);
    let mut steps = Vec::new();

    // Rung 1: in-process checks, before anything is written anywhere.
    let started = std::time::Instant::now();
    let model_paths = if project.model_paths.is_empty() {
        vec!["models".to_owned()]
    } else {
        project.model_paths.clone()
    };
    let policy = PathPolicy {
        model_paths,
        sensitive_globs: settings.delivery.sensitive_paths.clone(),
    };
    let guard = dbtops_guardrails::check_model_path(&proposal.model_path, &model.path, &policy)
        .and_then(|()| dbtops_guardrails::check_sql_content(&proposal.fixed_sql, MAX_SQL_BYTES))
        .and_then(|()| {
            let original = incident
                .evidence
                .as_ref()
                .map(|evidence| evidence.model_sql.as_str())
                .unwrap_or_default();
            dbtops_guardrails::check_jinja_side_effects(original, &proposal.fixed_sql)
        })
        .and_then(|()| dbtops_guardrails::check_no_symlink_escape(&project_dir, &model.path));
    let guard_step = v1::ValidationStep {
        name: "guardrails".into(),
        ok: guard.is_ok(),
        duration_ms: started.elapsed().as_millis() as u64,
        output: guard
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_else(|| "path, content and size checks passed".into()),
    };
    steps.push(guard_step);
    if let Err(refusal) = guard {
        return Ok(Verdict::Failed {
            steps,
            failed_step: "guardrails".into(),
            error_text: refusal.to_string(),
        });
    }

    let workspace_root = Some(settings.validator.workspace_root.as_str())
        .filter(|root| !root.is_empty())
        .map(PathBuf::from);
    let workspace = Workspace::copy_of(&project_dir, workspace_root.as_deref())
        .map_err(|error| ValidationFault::Retry(error.to_string()))?;
    let target_file = workspace.path().join(&proposal.model_path);
    std::fs::write(&target_file, &proposal.fixed_sql).map_err(|error| {
        ValidationFault::Retry(format!(
            "cannot write the proposal into the workspace: {error}"
        ))
    })?;

    let invoker = DbtInvoker {
        program: dbt::find_dbt(&settings.validator.dbt_bin),
        profiles_dir: profiles_dir(settings, workspace.path()),
        target: Some(settings.validator.target.clone()).filter(|target| !target.is_empty()),
        timeout: Duration::from_secs(settings.validator.dbt_timeout_secs),
    };
    let mut ladder: Vec<(&str, Vec<String>)> = vec![(
        "dbt compile",
        vec!["compile".into(), "--select".into(), model.name.clone()],
    )];
    if settings.validator.build_empty {
        ladder.push((
            "dbt build --empty",
            vec![
                "build".into(),
                "--select".into(),
                format!("+{}", model.name),
                "--empty".into(),
                // Data tests on zero rows prove nothing, and a relationships test reads a
                // model outside the selection that a fresh dev database does not hold.
                "--exclude-resource-type".into(),
                "test".into(),
            ],
        ));
    }
    for (name, args) in ladder {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = invoker
            .run(workspace.path(), &args)
            .instrument(tracing::info_span!("validator.dbt", step = name))
            .await;
        let run = match run {
            Ok(run) => run,
            Err(DbtError::Timeout(after, command)) => {
                let error_text = format!("timeout: {command} ran longer than {after:?}");
                steps.push(v1::ValidationStep {
                    name: name.into(),
                    ok: false,
                    duration_ms: after.as_millis() as u64,
                    output: error_text.clone(),
                });
                return Ok(Verdict::Failed {
                    steps,
                    failed_step: name.into(),
                    error_text,
                });
            }
            Err(error) => return Err(ValidationFault::Retry(error.to_string())),
        };
        if !run.ok && looks_like_environment_failure(&run.output) {
            return Err(ValidationFault::Retry(format!(
                "{} failed for a reason outside the proposal: {}",
                run.command,
                dbt::relevant_error(&run.output, 5)
            )));
        }
        let output = if run.ok {
            last_lines(&run.output, 3)
        } else {
            dbt::relevant_error(&run.output, ERROR_LINES)
        };
        tracing::info!(
            message = "dbt step finished.",
            step = name,
            ok = run.ok,
            ms = run.duration.as_millis() as u64
        );
        steps.push(v1::ValidationStep {
            name: name.into(),
            ok: run.ok,
            duration_ms: run.duration.as_millis() as u64,
            output: output.clone(),
        });
        if !run.ok {
            return Ok(Verdict::Failed {
                steps,
                failed_step: name.into(),
                error_text: output,
            });
        }
    }
    Ok(Verdict::Validated { steps })
}

/// `--profiles-dir`: configured, else the project's own when it has a profiles.yml, else
/// dbt's default.
fn profiles_dir(settings: &Settings, workspace: &Path) -> Option<PathBuf> {
    if !settings.validator.profiles_dir.is_empty() {
        return Some(PathBuf::from(&settings.validator.profiles_dir));
    }
    workspace
        .join("profiles.yml")
        .is_file()
        .then(|| workspace.to_path_buf())
}

/// dbt failures that say nothing about the proposal: a broken profile, a missing adapter,
/// an unreachable warehouse.
fn looks_like_environment_failure(output: &str) -> bool {
    const MARKERS: &[&str] = &[
        "Could not find profile named",
        "Runtime Error\n  Could not find profile",
        "Credentials in profile",
        "Could not find adapter type",
        "No module named",
        "dbt_project.yml file at",
        "Unable to do partial parsing",
        "Connection refused",
        "could not connect to server",
    ];
    MARKERS.iter().any(|marker| output.contains(marker))
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

async fn publish_verdict(
    bus: &Bus,
    proposed: &v1::FixProposed,
    incident: &v1::FailureDetected,
    proposal: &v1::FixProposal,
    verdict: Verdict,
) -> Result<(), BusError> {
    let incident_id = incident.incident_id.as_str();
    let generation = bus
        .incidents()
        .await?
        .get(incident_id)
        .await?
        .map(|record| record.generation)
        .unwrap_or(0);
    match verdict {
        Verdict::Validated { steps } => {
            let original = incident
                .evidence
                .as_ref()
                .map(|evidence| evidence.model_sql.as_str())
                .unwrap_or_default();
            let validated = v1::FixValidated {
                incident: Some(incident.clone()),
                attempt: proposed.attempt,
                proposal: Some(proposal.clone()),
                steps,
                diff: dbtops_guardrails::unified_diff(
                    &proposal.model_path,
                    original,
                    &proposal.fixed_sql,
                ),
                history: proposed.history.clone(),
            };
            bus.publish(
                &bus.subjects().fix_validated(),
                &stage_id(incident_id, generation, "validated", proposed.attempt),
                &validated,
            )
            .await?;
            advance_incident(bus, incident_id, IncidentState::Delivering, |_| {}).await?;
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
            advance_incident(bus, incident_id, IncidentState::Fixing, |_| {}).await?;
        }
    }
    Ok(())
}
