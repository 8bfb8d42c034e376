//! The one path every submission takes, whichever way it came in (bus, gRPC, watch).

use dbtops_artifacts::{ProjectFiles, RunArtifacts};
use dbtops_bus::Bus;
use dbtops_proto::v1;
use dbtops_settings::Settings;

use crate::{artifact_kind, incident, Detector};

/// Why a submission could not be processed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    /// A dependency failed (the bus, the object store): the same submission may succeed
    /// later.
    #[error("{0}")]
    Retry(String),
    /// The submission itself is bad (an oversized or corrupt artifact, nothing usable):
    /// it will never succeed.
    #[error("{0}")]
    Reject(String),
}

/// Processes one submission: reads its artifacts, detects the root failures, opens,
/// recurs or abandons an incident for each, resolves open incidents whose node passed,
/// and publishes and records the verdict, which it returns.
///
/// Idempotent: the same submission processed twice publishes under the same message ids
/// (the stream drops the copies) and counts a recurrence once.
pub async fn process_submission(
    bus: &Bus,
    detector: &Detector,
    submitted: &v1::RunSubmitted,
) -> Result<v1::RunProcessed, SubmissionError> {
    if submitted.submission_id.is_empty() {
        return Err(SubmissionError::Reject(
            "RunSubmitted without a submission_id".into(),
        ));
    }
    let artifacts = fetch_artifacts(bus, detector.settings(), submitted).await?;
    // Parsing a 40 MB manifest is CPU work: off the async workers.
    let detection = tokio::task::spawn_blocking(move || dbtops_artifacts::detect(&artifacts))
        .await
        .map_err(|error| {
            if error.is_panic() {
                // A panic on this input would repeat on every delivery.
                SubmissionError::Reject(format!("detection panicked on these artifacts: {error}"))
            } else {
                SubmissionError::Retry(format!("the detection task was cancelled: {error}"))
            }
        })?
        .map_err(|error| {
            let reason = format!("cannot read the run's artifacts: {error}");
            if error.is_retryable() {
                SubmissionError::Retry(reason)
            } else {
                SubmissionError::Reject(detector.redactor().redact(&reason).into_owned())
            }
        })?;
    incident::record_detection(bus, detector, submitted, detection)
        .await
        .map_err(|error| SubmissionError::Retry(error.to_string()))
}

async fn fetch_artifacts(
    bus: &Bus,
    settings: &Settings,
    submitted: &v1::RunSubmitted,
) -> Result<RunArtifacts, SubmissionError> {
    let mut artifacts = RunArtifacts::default();
    let limit = settings.detector.max_artifact_bytes;
    for artifact in &submitted.artifacts {
        if artifact.size_bytes > limit {
            return Err(SubmissionError::Reject(format!(
                "artifact {} is {} bytes, over detector.max_artifact_bytes ({limit})",
                artifact.kind, artifact.size_bytes
            )));
        }
        let content = match &artifact.body {
            Some(v1::artifact::Body::Inline(bytes)) => {
                // `size_bytes` is the sender's word; the bytes are the truth.
                if bytes.len() as u64 > limit {
                    return Err(SubmissionError::Reject(format!(
                        "artifact {} is {} bytes, over detector.max_artifact_bytes ({limit})",
                        artifact.kind,
                        bytes.len()
                    )));
                }
                bytes.clone()
            }
            Some(v1::artifact::Body::ObjectName(name)) => bus
                .get_artifact(name, limit)
                .await
                .map_err(|error| SubmissionError::Retry(error.to_string()))?,
            None => continue,
        };
        match artifact.kind.as_str() {
            artifact_kind::RUN_RESULTS => artifacts.run_results = Some(content),
            artifact_kind::MANIFEST => artifacts.manifest = Some(content),
            artifact_kind::DBT_LOG => artifacts.dbt_log = Some(content),
            artifact_kind::CONSOLE => artifacts.console = Some(content),
            artifact_kind::PROJECT_FILES => {
                let files: ProjectFiles = serde_json::from_slice(&content).map_err(|error| {
                    SubmissionError::Reject(format!("project_files.json is not valid: {error}"))
                })?;
                artifacts.project_files = Some(files);
            }
            other => tracing::warn!(message = "Ignoring an unknown artifact kind.", kind = other),
        }
    }
    Ok(artifacts)
}
