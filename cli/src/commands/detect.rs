//! `dbt-ops detect`: find the failures of a project's last run, offline, with no bus.

use std::path::Path;

use serde::Serialize;

use crate::project::{self, ArtifactPaths, ProjectError};

/// Why detection failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The project or its artifacts could not be read.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The artifacts could not be interpreted.
    #[error("cannot read the run's artifacts: {0}")]
    Artifacts(String),
}

/// One failing node, as `detect --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DetectedFailure {
    /// dbt's unique id.
    pub unique_id: String,
    /// The file, relative to the project dir.
    pub path: String,
    /// The error class label.
    pub class: String,
    /// The error, trimmed.
    pub message: String,
    /// The deterministic incident id this failure would get.
    pub incident_id: String,
    /// True when no SQL edit can fix it.
    pub needs_human: bool,
    /// Downstream nodes skipped because of it.
    pub blast_radius: Vec<String>,
    /// Columns known for each direct parent, by parent name.
    pub parents: Vec<ParentSummary>,
}

/// A parent's columns, for a reader checking the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct ParentSummary {
    /// The parent's name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Where they came from.
    pub origin: String,
}

/// What a detection found, and what it noted about the artifacts.
#[derive(Debug, Clone, Default)]
pub struct DetectReport {
    /// The failures, one per root failing node.
    pub failures: Vec<DetectedFailure>,
    /// Notes about stale or unreadable artifacts.
    pub notes: Vec<String>,
}

/// Reads the project's last run and lists its root failures.
pub fn detect(
    project_dir: &Path,
    target_dir: Option<&Path>,
    log_file: Option<&Path>,
) -> Result<DetectReport, DetectError> {
    let paths = ArtifactPaths::for_project(project_dir, target_dir, log_file)?;
    let project = project::project_ref(&paths.project_dir)?;
    let artifacts = paths.read()?;
    let detection = dbtops_artifacts::detect(&artifacts)
        .map_err(|error| DetectError::Artifacts(error.to_string()))?;
    let project_name = if project.name.is_empty() {
        detection.project_name.clone().unwrap_or_default()
    } else {
        project.name.clone()
    };
    let failures = detection
        .failures
        .iter()
        .map(|failure| DetectedFailure {
            unique_id: failure.unique_id.clone(),
            path: failure.path.clone(),
            class: failure.class.label().to_owned(),
            message: failure.message.clone(),
            incident_id: dbtops_artifacts::incident_id(
                &project_name,
                &failure.unique_id,
                &failure.signature,
            ),
            needs_human: failure.needs_human,
            blast_radius: failure.blast_radius.clone(),
            parents: failure
                .evidence
                .parents
                .iter()
                .map(|parent| ParentSummary {
                    name: parent.name.clone(),
                    columns: parent.columns.clone(),
                    origin: parent.origin.to_owned(),
                })
                .collect(),
        })
        .collect();
    Ok(DetectReport {
        failures,
        notes: detection.notes,
    })
}
