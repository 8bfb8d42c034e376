//! The one path every submission takes, whichever way it came in (bus, gRPC, watch).

use std::borrow::Cow;

use dbtops_artifacts::{ProjectFiles, Redactor, RunArtifacts};
use dbtops_bus::{Bus, BusError};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use prost::Message;

use crate::{artifact_kind, incident, Detector};
use tracing::Instrument;

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

impl SubmissionError {
    /// The same error with secrets out of its reason: the reason travels further than the
    /// detector (the dead letter and its header, logs, the gRPC caller), and a panic or a
    /// parser may have quoted an artifact in it.
    pub fn redacted(self, redactor: &Redactor) -> Self {
        match self {
            SubmissionError::Retry(reason) => {
                SubmissionError::Retry(redactor.redact(&reason).into_owned())
            }
            SubmissionError::Reject(reason) => {
                SubmissionError::Reject(redactor.redact(&reason).into_owned())
            }
        }
    }
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
    process(bus, detector, submitted)
        .await
        .map_err(|error| error.redacted(detector.redactor()))
}

/// Ancestors' SQL only when this deployment lets fixes edit them.
fn detect_options(settings: &Settings) -> dbtops_artifacts::DetectOptions {
    dbtops_artifacts::DetectOptions {
        lineage_depth: match settings.fixer.fix_scope {
            dbtops_settings::FixScope::Lineage => settings.fixer.lineage_depth,
            dbtops_settings::FixScope::Model => 0,
        },
    }
}

async fn process(
    bus: &Bus,
    detector: &Detector,
    submitted: &v1::RunSubmitted,
) -> Result<v1::RunProcessed, SubmissionError> {
    if submitted.submission_id.is_empty() {
        return Err(SubmissionError::Reject(
            "RunSubmitted without a submission_id".into(),
        ));
    }
    let (artifacts, unknown_kinds) = fetch_artifacts(bus, detector.settings(), submitted)
        .instrument(tracing::info_span!("detector.fetch_artifacts"))
        .await?;
    // Parsing a 40 MB manifest is CPU work: off the async workers.
    let options = detect_options(detector.settings());
    let detect_span = tracing::info_span!("detector.detect");
    let detection = tokio::task::spawn_blocking(move || {
        detect_span.in_scope(|| dbtops_artifacts::detect_with(&artifacts, &options))
    })
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
        let mut reason = format!("cannot read the run's artifacts: {error}");
        // Unknown kinds are skipped (a newer sender may add kinds); when nothing
        // usable is left, the reason says what was skipped, not just "none given".
        if !unknown_kinds.is_empty() {
            reason.push_str(&format!(
                " (skipped artifacts of unknown kinds: {unknown_kinds:?})"
            ));
        }
        if error.is_retryable() {
            SubmissionError::Retry(reason)
        } else {
            SubmissionError::Reject(reason)
        }
    })?;
    incident::record_detection(bus, detector, submitted, detection)
        .instrument(tracing::info_span!("detector.record"))
        .await
        .map_err(|error| SubmissionError::Retry(error.to_string()))
}

/// The submission's artifacts by kind, and the kinds it carried that the detector does
/// not know (skipped).
async fn fetch_artifacts(
    bus: &Bus,
    settings: &Settings,
    submitted: &v1::RunSubmitted,
) -> Result<(RunArtifacts, Vec<String>), SubmissionError> {
    let mut artifacts = RunArtifacts::default();
    let mut unknown_kinds = Vec::new();
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
                .map_err(|error| match error {
                    // Its size will not change: refused at once, not after every retry.
                    BusError::ArtifactTooLarge { .. } => {
                        SubmissionError::Reject(format!("{error} (detector.max_artifact_bytes)"))
                    }
                    // A missing object may be a replica that lags its writer: retried.
                    other => SubmissionError::Retry(other.to_string()),
                })?,
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
            other => {
                tracing::warn!(message = "Ignoring an unknown artifact kind.", kind = other);
                unknown_kinds.push(other.to_owned());
            }
        }
    }
    Ok((artifacts, unknown_kinds))
}

/// A submission's payload as it may be kept where people read it — the dead-letter
/// subject — with every text redacted: inline artifacts (a `dbt.log` quotes profiles and
/// connection strings), the project's paths and branch, object names. A payload that does
/// not decode as a `RunSubmitted` is kept as redacted text (lossy UTF-8): it was unreadable
/// as protobuf anyway, and its secrets are still there in plain bytes. Fields this
/// version does not know are dropped rather than copied unread.
pub(crate) fn redacted_payload(redactor: &Redactor, payload: &[u8]) -> Vec<u8> {
    let Ok(mut submitted) = v1::RunSubmitted::decode(payload) else {
        return redact_bytes(redactor, payload).into_owned();
    };
    let texts = [&mut submitted.submission_id, &mut submitted.submitted_at];
    for text in texts {
        redact_string(redactor, text);
    }
    if let Some(project) = submitted.project.as_mut() {
        for text in [
            &mut project.name,
            &mut project.project_dir,
            &mut project.repo_dir,
            &mut project.commit_sha,
            &mut project.branch,
        ] {
            redact_string(redactor, text);
        }
        for path in &mut project.model_paths {
            redact_string(redactor, path);
        }
    }
    for artifact in &mut submitted.artifacts {
        redact_string(redactor, &mut artifact.kind);
        match artifact.body.as_mut() {
            Some(v1::artifact::Body::Inline(bytes)) => {
                if let Cow::Owned(clean) = redact_bytes(redactor, bytes) {
                    *bytes = clean;
                    artifact.size_bytes = bytes.len() as u64;
                }
            }
            Some(v1::artifact::Body::ObjectName(name)) => redact_string(redactor, name),
            None => {}
        }
    }
    submitted.encode_to_vec()
}

fn redact_string(redactor: &Redactor, text: &mut String) {
    if let Cow::Owned(clean) = redactor.redact(text) {
        *text = clean;
    }
}

/// `bytes` redacted as text; borrowed when nothing was found, so bytes that are not UTF-8
/// change only where a secret was.
fn redact_bytes<'a>(redactor: &Redactor, bytes: &'a [u8]) -> Cow<'a, [u8]> {
    let text = String::from_utf8_lossy(bytes);
    match redactor.redact(&text) {
        Cow::Owned(clean) if clean != text => Cow::Owned(clean.into_bytes()),
        _ => Cow::Borrowed(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRETS: [&str; 4] = [
        "Pa55w0rd-from-env-7731",
        "hunter2-in-url",
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
        "yaml-s3cret-value",
    ];

    fn redactor() -> Redactor {
        Redactor::new([("DBT_PG_PASSWORD".to_owned(), SECRETS[0].to_owned())])
    }

    fn leaked(bytes: &[u8]) -> Vec<&'static str> {
        SECRETS
            .into_iter()
            .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect()
    }

    fn inline(kind: &str, content: Vec<u8>) -> v1::Artifact {
        v1::Artifact {
            kind: kind.into(),
            size_bytes: content.len() as u64,
            body: Some(v1::artifact::Body::Inline(content)),
        }
    }

    #[test]
    fn a_submission_copy_keeps_its_shape_and_loses_its_secrets() {
        let log = format!(
            "12:00:00 [debug] connecting with password {} to postgresql://dbt:{}@db:5432/x\nDatabase Error in model a (models/a.sql)\n  column \"x\" does not exist\n",
            SECRETS[0], SECRETS[1]
        );
        // Not UTF-8, and a token in it all the same.
        let mut binary = b"\xff\xfe token ".to_vec();
        binary.extend_from_slice(SECRETS[2].as_bytes());
        let clean = b"\xff\xfe nothing to hide".to_vec();
        let submitted = v1::RunSubmitted {
            submission_id: "s-1".into(),
            project: Some(v1::ProjectRef {
                name: "shop".into(),
                repo_dir: format!("https://ci:{}@git.example.com/shop.git", SECRETS[1]),
                ..Default::default()
            }),
            artifacts: vec![
                inline("dbt.log", log.into_bytes()),
                inline("console.txt", binary),
                inline("manifest.json", clean.clone()),
                inline(
                    "project_files.json",
                    format!("{{\"files\": {{\"a.yml\": \"password: {}\"}}}}", SECRETS[3])
                        .into_bytes(),
                ),
            ],
            submitted_at: String::new(),
        };
        let payload = submitted.encode_to_vec();
        assert_eq!(leaked(&payload).len(), SECRETS.len());

        let copy = redacted_payload(&redactor(), &payload);
        assert!(leaked(&copy).is_empty(), "{:?}", leaked(&copy));
        let back = v1::RunSubmitted::decode(copy.as_slice()).expect("still a RunSubmitted");
        assert_eq!(back.submission_id, "s-1");
        assert_eq!(back.artifacts.len(), 4);
        let text = |i: usize| match &back.artifacts[i].body {
            Some(v1::artifact::Body::Inline(b)) => b.clone(),
            other => panic!("{other:?}"),
        };
        // What is not secret is kept, byte for byte where nothing was found.
        assert!(String::from_utf8_lossy(&text(0)).contains("column \"x\" does not exist"));
        assert_eq!(text(2), clean);
        for artifact in &back.artifacts {
            if let Some(v1::artifact::Body::Inline(b)) = &artifact.body {
                assert_eq!(artifact.size_bytes, b.len() as u64);
            }
        }
    }

    #[test]
    fn an_undecodable_payload_is_kept_as_redacted_text() {
        let mut payload = b"\x0a\xff\xff garbage password=".to_vec();
        payload.extend_from_slice(SECRETS[1].as_bytes());
        payload.extend_from_slice(format!(" and {}", SECRETS[0]).as_bytes());
        let copy = redacted_payload(&redactor(), &payload);
        assert!(
            leaked(&copy).is_empty(),
            "{}",
            String::from_utf8_lossy(&copy)
        );
        assert!(String::from_utf8_lossy(&copy).contains("garbage"));
    }

    #[test]
    fn reasons_are_redacted() {
        let reason = format!("detection panicked on these artifacts: near {}", SECRETS[0]);
        match SubmissionError::Reject(reason).redacted(&redactor()) {
            SubmissionError::Reject(r) => {
                assert!(leaked(r.as_bytes()).is_empty(), "{r}");
                assert!(r.contains("detection panicked"));
            }
            other => panic!("{other:?}"),
        }
    }
}
