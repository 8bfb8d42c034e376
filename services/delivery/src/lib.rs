//! Delivery: from a validated fix to a branch or merge request, and back from the merge
//! request to the incident.
//!
//! For each `dbtops.fix.validated` it checks the guardrails once more (defence in depth),
//! then hands the change to the configured provider: a merge request on GitLab, a pull
//! request on GitHub, a new branch and commit in the local git repository that holds the
//! project (the offline default), or shadow mode (record, open nothing). It publishes
//! `dbtops.mr.opened` and records the branch and URL on the incident. Redelivery never
//! opens a second merge request: the branch name is a function of the incident, an open
//! merge request from it (carrying the incident marker) is reused, and an existing branch
//! with the same content is the same delivery.
//!
//! Module layout:
//! - [`checks`]: the guardrails again, and the model file's path in the repository;
//! - [`description`]: the merge request's title and description;
//! - [`forge`]: what delivery asks of a forge; [`gitlab`] and [`github`] answer it;
//! - [`http`]: the HTTP client with retries both forges and Langfuse use;
//! - [`owners`]: CODEOWNERS-syntax owners → assignee and reviewers;
//! - [`webhook`]: `POST /webhooks/gitlab` and `/webhooks/github` → `dbtops.mr.merged` /
//!   `.closed`, the incident's state, a Langfuse score ([`langfuse`]);
//! - [`feedback`]: recurrences and resolutions of incidents with an open forge merge
//!   request → a note, and closing it;
//! - [`dataset`]: merged incidents as JSONL, the golden dataset.
//!
//! **Invariants**: only delivery talks to a VCS; it never writes to main, master, the
//! current or target branch or a protected branch, never moves an existing branch, and
//! never writes anything but the incident's model file. Tokens and secrets appear in no
//! log, error or URL.

pub mod checks;
pub mod dataset;
pub mod description;
pub mod feedback;
pub mod forge;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod langfuse;
pub mod owners;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbtops_bus::{
    abandon_incident, advance_incident, run_consumer, skip_superseded, stage_id, Bus, BusError,
    ConsumerSpec, Delivery, IncidentState, Outcome,
};
use dbtops_guardrails::BranchPolicy;
use dbtops_localgit::{BranchCommit, FileReplacement, RepoCache};
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, Settings};
use tokio::sync::watch;

use crate::checks::{CheckedFix, Checkout};
use crate::forge::{ChangeRequest, FileChange, Forge, ForgeError};
use crate::owners::OwnersMap;
use tracing::Instrument;

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "delivery";
/// The durable consumer of recurrences and resolutions (forge providers only), separate
/// so a slow forge note never delays opening a merge request.
pub const FEEDBACK_DURABLE: &str = "delivery-feedback";

/// Why delivery could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The forge client could not be set up (no token, TLS).
    #[error("delivery: {0}")]
    Forge(#[from] ForgeError),
    /// The owners file could not be read or parsed.
    #[error("delivery.owners_file {path}: {reason}")]
    Owners {
        /// The configured path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The webhook endpoint could not listen or stopped with an error.
    #[error("webhook endpoint on {address}: {source}")]
    Webhook {
        /// The configured address.
        address: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Langfuse client could not be set up.
    #[error("delivery.langfuse: {0}")]
    Langfuse(#[from] http::HttpError),
}

/// What handling a fix needs besides the bus, built once per process: the settings, the
/// forge client (connection pool included) and the owners map.
#[derive(Debug, Clone)]
pub struct Context {
    /// All settings; delivery reads `[delivery]` and `[telemetry]`.
    pub settings: Settings,
    /// The forge for `gitlab` / `github`; `None` for local git and shadow.
    pub forge: Option<Forge>,
    /// Who owns which path (empty without `delivery.owners_file`).
    pub owners: OwnersMap,
    /// Local repositories opened before (local-git delivery), shared by clones.
    pub repos: Arc<RepoCache>,
}

impl Context {
    /// Builds the forge client and reads the owners file.
    pub fn new(settings: &Settings) -> Result<Self, DeliveryError> {
        let forge = Forge::from_settings(&settings.delivery)?;
        let owners = match settings.delivery.owners_file.as_str() {
            "" => OwnersMap::default(),
            path => {
                let owners_error = |reason: String| DeliveryError::Owners {
                    path: path.to_owned(),
                    reason,
                };
                let text = std::fs::read_to_string(path)
                    .map_err(|error| owners_error(error.to_string()))?;
                OwnersMap::parse(&text).map_err(|error| owners_error(error.to_string()))?
            }
        };
        Ok(Self {
            settings: settings.clone(),
            forge,
            owners,
            repos: Arc::default(),
        })
    }
}

/// Runs delivery until `shutdown` resolves: the `fix.validated` consumer, with a forge
/// also the recurrence/resolution consumer, and the webhook endpoint when
/// `delivery.webhook_listen` is set. Everything drains and stops on `shutdown`; the first
/// part to fail stops the rest.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DeliveryError> {
    let context = Context::new(&settings)?;
    // Bound before anything runs, so a taken port stops start-up with a clear message.
    let listener = match settings.delivery.webhook_listen.as_str() {
        "" => None,
        address => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| DeliveryError::Webhook {
                    address: address.to_owned(),
                    source,
                })?,
        ),
    };
    let webhook_state = match listener {
        Some(_) => Some(webhook::WebhookState::new(bus.clone(), &settings)?),
        None => None,
    };

    // One shutdown future feeds three parts: a watch channel fans it out.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop too.
        let _ = receiver.wait_for(|stop| *stop).await;
    };

    // Each part is boxed: their futures are large (the consumer loop alone is tens of
    // kilobytes), and unboxed they made `run`'s future big enough to overflow a worker
    // thread's stack in debug builds when `run_all` joins four services.
    let fixes = {
        let spec = ConsumerSpec {
            service: SERVICE,
            durable: SERVICE.into(),
            filter_subjects: vec![bus.subjects().fix_validated()],
            concurrency: 1,
        };
        let handler_bus = bus.clone();
        let context = context.clone();
        Box::pin(run_consumer(
            bus.clone(),
            spec,
            move |delivery| {
                let bus = handler_bus.clone();
                let context = context.clone();
                async move { handle_with(&bus, &context, delivery).await }
            },
            stopped(stop_rx.clone()),
        ))
    };
    let feedback = {
        let bus = bus.clone();
        let context = context.clone();
        let stop = stopped(stop_rx.clone());
        Box::pin(async move {
            if context.forge.is_none() {
                return Ok(());
            }
            let spec = ConsumerSpec {
                service: SERVICE,
                durable: FEEDBACK_DURABLE.into(),
                filter_subjects: vec![
                    bus.subjects().run_processed(),
                    bus.subjects().incident_resolved(),
                ],
                concurrency: 1,
            };
            let handler_bus = bus.clone();
            run_consumer(
                bus,
                spec,
                move |delivery| {
                    let bus = handler_bus.clone();
                    let context = context.clone();
                    async move { feedback::handle(&bus, &context, delivery).await }
                },
                stop,
            )
            .await
        })
    };
    let webhooks = {
        let stop = stopped(stop_rx);
        let address = settings.delivery.webhook_listen.clone();
        Box::pin(async move {
            match (listener, webhook_state) {
                (Some(listener), Some(state)) => webhook::serve(listener, state, stop)
                    .await
                    .map_err(|source| DeliveryError::Webhook { address, source }),
                _ => Ok(()),
            }
        })
    };
    let parts = async {
        tokio::try_join!(
            async { fixes.await.map_err(DeliveryError::from) },
            async { feedback.await.map_err(DeliveryError::from) },
            webhooks,
        )
        .map(|_| ())
    };
    tokio::pin!(parts);
    tokio::select! {
        result = &mut parts => {
            let _ = stop_tx.send(true);
            result
        }
        _ = shutdown => {
            let _ = stop_tx.send(true);
            parts.await
        }
    }
}

/// What delivery did with one fix.
#[derive(Debug, Clone)]
struct Delivered {
    provider: &'static str,
    branch: String,
    commit_sha: String,
    url: String,
    description_path: String,
    /// The local repository committed to (local git only).
    repo: Option<String>,
}

/// Why one fix could not be delivered, and so what happens to the incident and the
/// message.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A guardrail refused it: the incident is abandoned (`guardrail`), nothing is
    /// written.
    Refused(String),
    /// The provider cannot do it as configured (credentials, project, a refusal of the
    /// forge): the incident is abandoned (`delivery_failed`) and the message is
    /// dead-lettered, to be replayed once the configuration is fixed.
    Failed(String),
    /// Something transient (git lock, a forge's 429 or 5xx): try again after `after`.
    Retry {
        /// The delay before redelivery.
        after: Duration,
        /// Why.
        reason: String,
    },
}

impl From<ForgeError> for Failure {
    fn from(error: ForgeError) -> Self {
        if let Some(after) = error.retry_after() {
            Failure::Retry {
                after,
                reason: error.to_string(),
            }
        } else if error.is_guardrail() {
            Failure::Refused(error.to_string())
        } else {
            Failure::Failed(error.to_string())
        }
    }
}

/// Handles one `FixValidated` with a context built for it: what the consumer loop calls
/// through [`handle_with`], public so tests can step it one message at a time.
pub async fn handle(bus: &Bus, settings: &Settings, delivery: Delivery) -> Outcome {
    match Context::new(settings) {
        Ok(context) => handle_with(bus, &context, delivery).await,
        Err(error) => Outcome::retry(Duration::from_secs(30), error.to_string()),
    }
}

/// Handles one `FixValidated`.
#[tracing::instrument(name = "delivery.fix", skip_all, fields(incident_id, model))]
pub async fn handle_with(bus: &Bus, context: &Context, delivery: Delivery) -> Outcome {
    let settings = &context.settings;
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
    if let Some(outcome) = skip_superseded(bus, incident).await {
        return outcome;
    }

    let trace_url = trace_url(settings);
    // Read here: the blocking task below runs outside this span.
    let trace_id = dbtops_telemetry::current_trace_id();
    let outcome = match settings.delivery.provider {
        DeliveryProvider::LocalGit => {
            let settings = settings.clone();
            let validated = validated.clone();
            let repos = Arc::clone(&context.repos);
            let git_span = tracing::info_span!("delivery.local_git");
            tokio::task::spawn_blocking(move || {
                let _entered = git_span.enter();
                deliver_local_git(
                    &settings,
                    &repos,
                    &validated,
                    trace_url.as_deref(),
                    trace_id.as_deref(),
                )
            })
            .await
            .unwrap_or_else(|error| {
                Err(Failure::Retry {
                    after: Duration::from_secs(5),
                    reason: format!("delivery task failed: {error}"),
                })
            })
        }
        DeliveryProvider::Shadow => deliver_shadow(settings, &validated),
        DeliveryProvider::Gitlab | DeliveryProvider::Github => match &context.forge {
            Some(forge) => {
                deliver_to_forge(
                    context,
                    forge,
                    &validated,
                    trace_url.as_deref(),
                    trace_id.as_deref(),
                )
                .await
            }
            None => Err(Failure::Failed("no forge client configured".into())),
        },
    };
    let attempt = validated.attempt;
    let abandon = |reason: &'static str, detail: String| async move {
        abandon_incident(bus, incident, reason, &detail, attempt).await
    };
    let result = match outcome {
        Ok(delivered) => {
            record_delivery(bus, incident, &model, attempt, delivered)
                .instrument(tracing::info_span!("delivery.record"))
                .await
        }
        Err(Failure::Refused(reason)) => abandon("guardrail", reason).await,
        Err(Failure::Failed(reason)) => {
            tracing::error!(message = "Delivery failed; fix the configuration and replay the dead letter.", %reason);
            return match abandon("delivery_failed", reason.clone()).await {
                Ok(()) => Outcome::reject(reason),
                Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
            };
        }
        Err(Failure::Retry { after, reason }) => return Outcome::retry(after, reason),
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

/// The commit message: the title, the explanation, what validated it, the incident.
fn commit_message(validated: &v1::FixValidated) -> String {
    let default_proposal = v1::FixProposal::default();
    let proposal = validated.proposal.as_ref().unwrap_or(&default_proposal);
    let incident_id = validated
        .incident
        .as_ref()
        .map(|incident| incident.incident_id.as_str())
        .unwrap_or_default();
    format!(
        "{}\n\n{}\n\nValidated by dbt-ops: {}\nIncident: {}\n",
        description::title(validated),
        proposal.explanation.trim(),
        validated
            .steps
            .iter()
            .map(|step| step.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        incident_id
    )
}

/// Shadow mode: the same checks, nothing opened; the would-be branch is recorded.
fn deliver_shadow(settings: &Settings, validated: &v1::FixValidated) -> Result<Delivered, Failure> {
    checks::check_fix(settings, validated, Checkout::IfPresent)?;
    let incident = validated.incident.clone().unwrap_or_default();
    let model = incident.model.unwrap_or_default();
    Ok(Delivered {
        provider: "shadow",
        branch: dbtops_guardrails::generation_branch_name(
            &model.name,
            &incident.incident_id,
            incident.generation,
        ),
        commit_sha: String::new(),
        url: String::new(),
        description_path: String::new(),
        repo: None,
    })
}

async fn deliver_to_forge(
    context: &Context,
    forge: &Forge,
    validated: &v1::FixValidated,
    trace_url: Option<&str>,
    trace_id: Option<&str>,
) -> Result<Delivered, Failure> {
    let settings = &context.settings;
    let CheckedFix { needs_owner_review } =
        checks::check_fix(settings, validated, Checkout::IfPresent)?;
    let incident = validated.incident.clone().unwrap_or_default();
    let proposal = validated.proposal.clone().unwrap_or_default();
    let model = incident.model.clone().unwrap_or_default();
    let project = incident.project.clone().unwrap_or_default();
    let file_path = checks::path_in_repository(settings, &project, &proposal.model_path)?;
    let branch = dbtops_guardrails::generation_branch_name(
        &model.name,
        &incident.incident_id,
        incident.generation,
    );
    let notice =
        needs_owner_review.then(|| description::owner_review_notice(&proposal.model_path, true));
    let rendered =
        description::render_with_notice(validated, trace_url, trace_id, notice.as_deref());
    let mut labels = settings.delivery.labels.clone();
    if needs_owner_review {
        labels.push(description::OWNER_REVIEW_LABEL.to_owned());
    }
    let also_replace = proposal
        .upstream_edits
        .iter()
        .map(|edit| {
            Ok(FileChange {
                file_path: checks::path_in_repository(settings, &project, &edit.path)?,
                content: edit.fixed_sql.clone(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let change = ChangeRequest {
        incident_id: incident.incident_id.clone(),
        branch: branch.clone(),
        owners: context.owners.owners_of(&file_path),
        file_path,
        content: proposal.fixed_sql.clone(),
        also_replace,
        commit_message: commit_message(validated),
        title: description::title(validated),
        description: description::fit(&rendered, github::MAX_BODY_CHARS, &incident.incident_id),
        labels,
        draft: needs_owner_review,
        author_name: settings.delivery.author_name.clone(),
        author_email: settings.delivery.author_email.clone(),
        target_branch: Some(settings.delivery.target_branch.clone())
            .filter(|target| !target.is_empty()),
        protected_branches: settings.delivery.protected_branches.clone(),
    };
    let opened = forge.open(&change).await?;
    Ok(Delivered {
        provider: forge.provider(),
        branch,
        commit_sha: opened.commit_sha,
        url: opened.url,
        description_path: String::new(),
        repo: None,
    })
}

fn deliver_local_git(
    settings: &Settings,
    repos: &RepoCache,
    validated: &v1::FixValidated,
    trace_url: Option<&str>,
    trace_id: Option<&str>,
) -> Result<Delivered, Failure> {
    let CheckedFix { needs_owner_review } = tracing::info_span!("delivery.checks")
        .in_scope(|| checks::check_fix(settings, validated, Checkout::Required))?;
    let default_incident = v1::FailureDetected::default();
    let incident = validated.incident.as_ref().unwrap_or(&default_incident);
    let default_proposal = v1::FixProposal::default();
    let proposal = validated.proposal.as_ref().unwrap_or(&default_proposal);
    let model = incident.model.clone().unwrap_or_default();
    let project = incident.project.clone().unwrap_or_default();
    let project_dir = PathBuf::from(&project.project_dir);
    let refused = |error: dbtops_guardrails::GuardrailError| Failure::Refused(error.to_string());
    let retry = |reason: String| Failure::Retry {
        after: Duration::from_secs(5),
        reason,
    };

    let repo_hint = if !settings.delivery.repo_dir.is_empty() {
        PathBuf::from(&settings.delivery.repo_dir)
    } else if !project.repo_dir.is_empty() {
        PathBuf::from(&project.repo_dir)
    } else {
        project_dir.clone()
    };
    let repo = repos
        .open(&repo_hint)
        .map_err(|error| Failure::Refused(format!("no git repository for the project: {error}")))?;
    let path_in_repo = repo
        .path_in_repo(&project_dir, &proposal.model_path)
        .map_err(|error| Failure::Refused(error.to_string()))?;
    let branch = dbtops_guardrails::generation_branch_name(
        &model.name,
        &incident.incident_id,
        incident.generation,
    );
    // The checked-out branch is refused by the commit itself, which reads it just before
    // writing (a refusal there is `Refused` below, with the same guardrail message); asking
    // here as well would cost one more git process per delivery.
    let branch_policy = BranchPolicy {
        protected: settings.delivery.protected_branches.clone(),
        current_branch: None,
        target_branch: Some(project.branch.clone()).filter(|branch| !branch.is_empty()),
    };
    dbtops_guardrails::check_branch(&branch, &branch_policy).map_err(refused)?;
    let base_commit = if project.commit_sha.is_empty() {
        repo.head_commit()
            .map_err(|error| retry(error.to_string()))?
    } else {
        project.commit_sha.clone()
    };
    // Local git has no drafts or labels: the description is where the owner review is said.
    let notice =
        needs_owner_review.then(|| description::owner_review_notice(&proposal.model_path, false));
    let description =
        description::render_with_notice(validated, trace_url, trace_id, notice.as_deref());
    let also_replace = proposal
        .upstream_edits
        .iter()
        .map(|edit| {
            let path_in_repo = repo
                .path_in_repo(&project_dir, &edit.path)
                .map_err(|error| Failure::Refused(error.to_string()))?;
            Ok(FileReplacement {
                path_in_repo,
                content: edit.fixed_sql.clone(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let request = BranchCommit {
        branch: branch.clone(),
        base_commit,
        path_in_repo,
        content: proposal.fixed_sql.clone(),
        also_replace,
        message: commit_message(validated),
        author_name: settings.delivery.author_name.clone(),
        author_email: settings.delivery.author_email.clone(),
    };
    // The run may have failed on an uncommitted edit: the evidence holds the file as it
    // failed, so the branch shows that state, then the fix. Not when secrets were
    // redacted from it — the snapshot must be the file's true content.
    let failing_content = incident
        .evidence
        .as_ref()
        .filter(|evidence| {
            !evidence
                .redacted_fields
                .iter()
                .any(|field| field == "model_sql")
        })
        .map(|evidence| evidence.model_sql.as_str())
        .filter(|content| !content.is_empty());
    let committed = tracing::info_span!("delivery.commit")
        .in_scope(|| match failing_content {
            Some(failing) => repo.commit_to_new_branch_over(&request, failing),
            None => repo.commit_to_new_branch(&request),
        })
        .map_err(|error| {
            if error.is_retryable() {
                retry(error.to_string())
            } else {
                Failure::Refused(error.to_string())
            }
        })?;
    let description_path = repo
        .write_description(&branch, &description)
        .map_err(|error| retry(error.to_string()))?;
    if committed.already_existed {
        tracing::info!(message = "Branch already delivered; nothing new written.", %branch);
    }
    Ok(Delivered {
        provider: "local_git",
        branch: committed.branch,
        commit_sha: committed.commit_sha,
        url: String::new(),
        description_path: description_path.display().to_string(),
        repo: Some(repo.root().display().to_string()),
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
    let record = bus.incidents().await?.get(incident_id).await?;
    let generation = incident.generation;
    let url = Some(delivered.url.clone()).filter(|url| !url.is_empty());
    // A redelivery after everything was recorded (beyond the stream's duplicate window)
    // must not announce the same merge request twice.
    let already_recorded = record.as_ref().is_some_and(|record| {
        record.state == IncidentState::MrOpened
            && record.branch.as_deref() == Some(delivered.branch.as_str())
            && record.url == url
    });
    if already_recorded {
        tracing::info!(message = "Delivery already recorded.", branch = %delivered.branch);
        return Ok(());
    }
    let opened = v1::MergeRequestOpened {
        incident_id: incident_id.to_owned(),
        model: Some(model.clone()),
        provider: delivered.provider.to_owned(),
        branch: delivered.branch.clone(),
        url: delivered.url.clone(),
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
    let delivered_repo = delivered.repo.clone();
    advance_incident(bus, incident, IncidentState::MrOpened, move |record| {
        record.branch = Some(branch.clone());
        record.delivered_repo = delivered_repo.clone();
        if url.is_some() {
            record.url = url.clone();
        }
        record.attempts = record.attempts.max(attempt);
        record.detail = Some(match &url {
            Some(url) => format!("{url} via {}", delivered.provider),
            None => format!("{} via {}", delivered.branch, delivered.provider),
        });
    })
    .await?;
    tracing::info!(message = "Fix delivered.", branch = %opened.branch, provider = %opened.provider, url = %opened.url);
    Ok(())
}
