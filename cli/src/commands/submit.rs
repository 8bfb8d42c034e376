//! `dbt-ops submit`: send a finished dbt run's artifacts to the detector and, with
//! `--wait`, follow each incident to its outcome.

use std::path::Path;
use std::time::{Duration, Instant};

use dbtops_bus::{Bus, BusError, IncidentRecord, IncidentState};
use dbtops_proto::v1;
use serde::Serialize;
use tracing::Instrument;

use crate::project::{self, ArtifactPaths, ProjectError};

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The project or its artifacts could not be read.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The detector did not answer in time.
    #[error("the detector did not process submission {0} in time: is `dbt-ops up` running?")]
    NotProcessed(String),
}

/// One line of `submit --wait` output: how one incident ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentOutcome {
    /// The incident.
    pub incident_id: String,
    /// The failing model's name.
    pub model: String,
    /// `branch_opened`, `mr_opened`, `abandoned`, or `pending` when the wait ran out.
    pub outcome: String,
    /// The fix branch, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The merge request's URL, when opened on a forge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why it was abandoned, or where it was when the wait ran out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// More about the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// True when this run showed an incident that was already open.
    pub recurrence: bool,
}

impl IncidentOutcome {
    /// True for the outcomes `submit --wait` counts as success.
    pub fn is_success(&self) -> bool {
        self.outcome == "branch_opened" || self.outcome == "mr_opened"
    }

    fn from_record(record: &IncidentRecord, recurrence: bool) -> Self {
        let outcome = match record.state {
            IncidentState::MrOpened | IncidentState::Merged | IncidentState::Closed
                if record.url.is_some() =>
            {
                "mr_opened"
            }
            IncidentState::MrOpened | IncidentState::Merged | IncidentState::Closed => {
                "branch_opened"
            }
            IncidentState::Abandoned => "abandoned",
            IncidentState::Resolved => "resolved",
            _ => "pending",
        };
        let reason = match record.state {
            IncidentState::Abandoned => record.reason.clone(),
            state if !state.is_outcome() => Some(format!("still {}", state.label())),
            _ => None,
        };
        Self {
            incident_id: record.incident_id.clone(),
            model: record.model.clone(),
            outcome: outcome.to_owned(),
            branch: record.branch.clone(),
            url: record.url.clone(),
            reason,
            detail: record.detail.clone(),
            recurrence,
        }
    }
}

/// What was sent.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The submission's id.
    pub submission_id: String,
    /// How many artifacts went with it.
    pub artifacts: usize,
}

/// Reads the project's last run and publishes it on `dbtops.run.submitted`. Artifacts over
/// the inline limit travel through the object store.
pub async fn submit(
    bus: &Bus,
    project_dir: &Path,
    target_dir: Option<&Path>,
    log_file: Option<&Path>,
) -> Result<Submitted, SubmitError> {
    let paths = ArtifactPaths::for_project(project_dir, target_dir, log_file)?;
    let project = project::project_ref(&paths.project_dir)?;
    let artifacts = paths.read()?;
    let submission_id = uuid::Uuid::new_v4().to_string();
    let span =
        tracing::info_span!("submit", submission_id = %submission_id, project = %project.name);
    publish_submission(bus, project, &artifacts, submission_id)
        .instrument(span)
        .await
}

async fn publish_submission(
    bus: &Bus,
    project: v1::ProjectRef,
    artifacts: &dbtops_artifacts::RunArtifacts,
    submission_id: String,
) -> Result<Submitted, SubmitError> {
    let sent = bus
        .submit_run(project, project::artifact_list(artifacts)?, &submission_id)
        .await?;
    Ok(Submitted {
        submission_id,
        artifacts: sent,
    })
}

/// Follows a submission: waits for the detector's verdict, then for every incident's
/// outcome, until `timeout` from now.
pub async fn wait_for_outcomes(
    bus: &Bus,
    submission_id: &str,
    timeout: Duration,
) -> Result<(Vec<IncidentOutcome>, Vec<String>), SubmitError> {
    let deadline = Instant::now() + timeout;
    let store = bus.incidents().await?;
    let verdict = store
        .wait_for_submission(submission_id, timeout)
        .await?
        .ok_or_else(|| SubmitError::NotProcessed(submission_id.to_owned()))?;
    let incidents = verdict
        .new_incident_ids
        .iter()
        .map(|id| (id, false))
        .chain(verdict.recurring_incident_ids.iter().map(|id| (id, true)));
    let mut outcomes = Vec::new();
    for (incident_id, recurrence) in incidents {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let record = store.wait_for_outcome(incident_id, remaining).await?;
        outcomes.push(match record {
            Some(record) => IncidentOutcome::from_record(&record, recurrence),
            None => IncidentOutcome {
                incident_id: incident_id.clone(),
                model: String::new(),
                outcome: "pending".into(),
                branch: None,
                url: None,
                reason: Some("no record of the incident yet".into()),
                detail: None,
                recurrence,
            },
        });
    }
    Ok((outcomes, verdict.notes))
}
