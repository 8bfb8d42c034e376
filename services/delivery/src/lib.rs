//! Delivery: from a validated fix to a branch or merge request.
//!
//! For each `dbtops.fix.validated` it checks the guardrails once more (defence in depth),
//! then hands the change to the configured provider: a new branch and commit in the local
//! git repository that holds the project (the offline default), or shadow mode (record,
//! open nothing). It publishes `dbtops.mr.opened` and records the branch on the incident.
//! Redelivery never opens a second branch: the branch name is a function of the incident
//! and an existing branch with the same content is the same delivery.
//!
//! **Invariants**: only delivery talks to a VCS; it never writes to main, master, the
//! current or target branch or a protected branch, and never anything but the incident's
//! model file.

pub mod description;

use std::path::PathBuf;
use std::time::Duration;

use dbtops_bus::{
    abandon_incident, advance_incident, run_consumer, stage_id, Bus, BusError, ConsumerSpec,
    Delivery, IncidentState, Outcome,
};
use dbtops_guardrails::{BranchPolicy, PathPolicy};
use dbtops_localgit::{BranchCommit, LocalRepo};
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, Settings};

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "delivery";
/// Largest file delivery will commit, in bytes.
const MAX_SQL_BYTES: usize = 512 * 1024;

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Runs delivery until `shutdown` resolves.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DeliveryError> {
    let spec = ConsumerSpec {
        service: SERVICE,
        durable: SERVICE.into(),
        filter_subjects: vec![bus.subjects().fix_validated()],
        concurrency: 1,
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

/// What delivery did with one fix.
#[derive(Debug, Clone)]
struct Delivered {
    provider: &'static str,
    branch: String,
    commit_sha: String,
    description_path: String,
}

/// Why one fix could not be delivered.
enum Failure {
    /// A guardrail refused it: the incident is abandoned, nothing is written.
    Refused(String),
    /// Something transient (git lock, disk): try again.
    Retry(String),
}

/// Handles one `FixValidated`: the unit the consumer loop calls, public so tests can step it.
#[tracing::instrument(name = "delivery.fix", skip_all, fields(incident_id, model))]
pub async fn handle(bus: &Bus, settings: &Settings, delivery: Delivery) -> Outcome {
    let validated = match delivery.decode::<v1::FixValidated>() {
        Ok(validated) => validated,
        Err(rejection) => return rejection,
    };
    let (Some(incident), Some(_proposal)) =
        (validated.incident.as_ref(), validated.proposal.as_ref())
    else {
        return Outcome::reject("FixValidated without its incident or proposal");
    };
    let Some(model) = incident.model.clone() else {
        return Outcome::reject("incident without a model");
    };
    let span = tracing::Span::current();
    span.record("incident_id", incident.incident_id.as_str());
    span.record("model", model.name.as_str());

    let trace_url = trace_url(settings);
    // Read here: the blocking task below runs outside this span.
    let trace_id = dbtops_telemetry::current_trace_id();
    let outcome = match settings.delivery.provider {
        DeliveryProvider::LocalGit => {
            let settings = settings.clone();
            let validated = validated.clone();
            tokio::task::spawn_blocking(move || {
                deliver_local_git(
                    &settings,
                    &validated,
                    trace_url.as_deref(),
                    trace_id.as_deref(),
                )
            })
            .await
            .unwrap_or_else(|error| Err(Failure::Retry(format!("delivery task failed: {error}"))))
        }
        DeliveryProvider::Shadow => Ok(Delivered {
            provider: "shadow",
            branch: dbtops_guardrails::fix_branch_name(&model.name, &incident.incident_id),
            commit_sha: String::new(),
            description_path: String::new(),
        }),
    };
    let result = match outcome {
        Ok(delivered) => record_delivery(bus, incident, &model, validated.attempt, delivered).await,
        Err(Failure::Refused(reason)) => {
            abandon_incident(
                bus,
                Some(model),
                &incident.incident_id,
                "guardrail",
                &reason,
                validated.attempt,
            )
            .await
        }
        Err(Failure::Retry(reason)) => return Outcome::retry(Duration::from_secs(5), reason),
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
    }
}

fn trace_url(settings: &Settings) -> Option<String> {
    let prefix = &settings.telemetry.trace_url_prefix;
    let trace_id = dbtops_telemetry::current_trace_id()?;
    (!prefix.is_empty()).then(|| format!("{prefix}{trace_id}"))
}

fn deliver_local_git(
    settings: &Settings,
    validated: &v1::FixValidated,
    trace_url: Option<&str>,
    trace_id: Option<&str>,
) -> Result<Delivered, Failure> {
    let default_incident = v1::FailureDetected::default();
    let incident = validated.incident.as_ref().unwrap_or(&default_incident);
    let default_proposal = v1::FixProposal::default();
    let proposal = validated.proposal.as_ref().unwrap_or(&default_proposal);
    let model = incident.model.clone().unwrap_or_default();
    let project = incident.project.clone().unwrap_or_default();
    let project_dir = PathBuf::from(&project.project_dir);

    // Guardrails again: delivery trusts no upstream service with the repository.
    let model_paths = if !settings.delivery.model_paths.is_empty() {
        settings.delivery.model_paths.clone()
    } else if !project.model_paths.is_empty() {
        project.model_paths.clone()
    } else {
        vec!["models".to_owned()]
    };
    let policy = PathPolicy {
        model_paths,
        sensitive_globs: settings.delivery.sensitive_paths.clone(),
    };
    let refused = |error: dbtops_guardrails::GuardrailError| Failure::Refused(error.to_string());
    dbtops_guardrails::check_model_path(&proposal.model_path, &model.path, &policy)
        .map_err(refused)?;
    if dbtops_guardrails::is_sensitive(&proposal.model_path, &policy) {
        return Err(Failure::Refused(format!(
            "{} matches delivery.sensitive_paths: refused for owner review",
            proposal.model_path
        )));
    }
    dbtops_guardrails::check_no_symlink_escape(&project_dir, &proposal.model_path)
        .map_err(refused)?;
    dbtops_guardrails::check_sql_content(&proposal.fixed_sql, MAX_SQL_BYTES).map_err(refused)?;
    let original = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    dbtops_guardrails::check_jinja_side_effects(original, &proposal.fixed_sql).map_err(refused)?;
    if !original.is_empty() {
        dbtops_guardrails::check_change_size(
            original,
            &proposal.fixed_sql,
            settings.delivery.max_changed_share,
        )
        .map_err(refused)?;
    }

    let repo_hint = if !settings.delivery.repo_dir.is_empty() {
        PathBuf::from(&settings.delivery.repo_dir)
    } else if !project.repo_dir.is_empty() {
        PathBuf::from(&project.repo_dir)
    } else {
        project_dir.clone()
    };
    let repo = LocalRepo::open(&repo_hint)
        .map_err(|error| Failure::Refused(format!("no git repository for the project: {error}")))?;
    let path_in_repo = repo
        .path_in_repo(&project_dir, &proposal.model_path)
        .map_err(|error| Failure::Refused(error.to_string()))?;
    let branch = dbtops_guardrails::fix_branch_name(&model.name, &incident.incident_id);
    let current_branch = repo
        .current_branch()
        .map_err(|error| Failure::Retry(error.to_string()))?;
    let branch_policy = BranchPolicy {
        protected: settings.delivery.protected_branches.clone(),
        current_branch,
        target_branch: Some(project.branch.clone()).filter(|branch| !branch.is_empty()),
    };
    dbtops_guardrails::check_branch(&branch, &branch_policy).map_err(refused)?;
    let base_commit = if project.commit_sha.is_empty() {
        repo.head_commit()
            .map_err(|error| Failure::Retry(error.to_string()))?
    } else {
        project.commit_sha.clone()
    };
    let description = description::render(validated, trace_url, trace_id);
    let message = format!(
        "{}\n\n{}\n\nValidated by dbt-ops: {}\nIncident: {}\n",
        description::title(validated),
        proposal.explanation.trim(),
        validated
            .steps
            .iter()
            .map(|step| step.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        incident.incident_id
    );
    let committed = repo
        .commit_to_new_branch(&BranchCommit {
            branch: branch.clone(),
            base_commit,
            path_in_repo,
            content: proposal.fixed_sql.clone(),
            message,
            author_name: settings.delivery.author_name.clone(),
            author_email: settings.delivery.author_email.clone(),
        })
        .map_err(|error| {
            if error.is_retryable() {
                Failure::Retry(error.to_string())
            } else {
                Failure::Refused(error.to_string())
            }
        })?;
    let description_path = repo
        .write_description(&branch, &description)
        .map_err(|error| Failure::Retry(error.to_string()))?;
    if committed.already_existed {
        tracing::info!(message = "Branch already delivered; nothing new written.", %branch);
    }
    Ok(Delivered {
        provider: "local_git",
        branch: committed.branch,
        commit_sha: committed.commit_sha,
        description_path: description_path.display().to_string(),
    })
}

async fn record_delivery(
    bus: &Bus,
    incident: &v1::FailureDetected,
    model: &v1::ModelRef,
    attempt: u32,
    delivered: Delivered,
) -> Result<(), BusError> {
    let incident_id = incident.incident_id.as_str();
    let generation = bus
        .incidents()
        .await?
        .get(incident_id)
        .await?
        .map(|record| record.generation)
        .unwrap_or(0);
    let opened = v1::MergeRequestOpened {
        incident_id: incident_id.to_owned(),
        model: Some(model.clone()),
        provider: delivered.provider.to_owned(),
        branch: delivered.branch.clone(),
        url: String::new(),
        commit_sha: delivered.commit_sha.clone(),
        description_path: delivered.description_path.clone(),
        attempts: attempt,
    };
    bus.publish(
        &bus.subjects().mr_opened(),
        &stage_id(incident_id, generation, "mr_opened", 0),
        &opened,
    )
    .await?;
    let branch = delivered.branch.clone();
    advance_incident(bus, incident_id, IncidentState::MrOpened, move |record| {
        record.branch = Some(branch.clone());
        record.attempts = record.attempts.max(attempt);
        record.detail = Some(format!("{} via {}", delivered.branch, delivered.provider));
    })
    .await?;
    tracing::info!(message = "Fix delivered.", branch = %opened.branch, provider = %opened.provider);
    Ok(())
}
