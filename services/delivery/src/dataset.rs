//! The golden dataset: every merged incident as one JSON line — the error, the evidence the
//! fixer saw, the proposal dbt validated, its diff and validation, how it was merged, and
//! the model file as merged, with whether and how a reviewer changed the proposal — for
//! regression tests and fine-tuning.
//!
//! Built from the stream alone (`dbtops.fix.validated` joined with `dbtops.mr.merged` by
//! incident id), so it needs no other state and can be rebuilt at any time.

use std::collections::HashMap;

use dbtops_bus::{Bus, BusError, StoredMessage};
use dbtops_proto::{v1, WireMessage};
use serde::Serialize;

/// Why the export stopped.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The stream could not be read.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The writer failed.
    #[error("cannot write the dataset: {0}")]
    Io(#[from] std::io::Error),
    /// A record could not be serialised (not expected: every field is plain data).
    #[error("cannot serialise a dataset record: {0}")]
    Json(#[from] serde_json::Error),
}

/// One merged incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetRecord {
    /// The incident.
    pub incident_id: String,
    /// The dbt project's name.
    pub project: String,
    /// The failing model.
    pub model: ModelJson,
    /// The error as dbt reported it.
    pub error: ErrorJson,
    /// What the fixer saw.
    pub evidence: EvidenceJson,
    /// The validated proposal.
    pub proposal: ProposalJson,
    /// Unified diff of the model file, original → fixed.
    pub diff: String,
    /// The validation steps that passed.
    pub validation: Vec<StepJson>,
    /// The attempt that validated (1-based).
    pub attempts: u32,
    /// Earlier attempts that failed validation.
    pub history: Vec<AttemptJson>,
    /// Where and when it was merged.
    pub merge: MergeJson,
    /// The model file as finally merged, read from the forge at the merge; `None` when
    /// unknown (local git, a failed read, merges recorded before dbt-ops read it).
    pub merged_content: Option<String>,
    /// Whether the merged file differs from the proposal, trailing whitespace aside: the
    /// label that says the proposal was not taken as it was. `None` when
    /// `merged_content` is.
    pub changed_by_human: Option<bool>,
    /// Unified diff of the model file, proposal → merged, when a human changed it.
    pub merged_diff: Option<String>,
}

/// `ModelRef`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelJson {
    /// dbt's unique id.
    pub unique_id: String,
    /// The model's name.
    pub name: String,
    /// Its file, relative to the project.
    pub path: String,
}

/// `FailureError`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorJson {
    /// The class label, e.g. `missing_column`.
    pub class: String,
    /// The error text.
    pub message: String,
    /// The normalized error.
    pub signature: String,
}

/// `Evidence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvidenceJson {
    /// The model's SQL as it failed.
    pub model_sql: String,
    /// Its compiled SQL, when dbt got that far.
    pub compiled_sql: String,
    /// Its YAML entry.
    pub yaml_entry: String,
    /// Columns of its direct parents.
    pub parents: Vec<ParentJson>,
    /// Sources it reads.
    pub sources: Vec<SourceJson>,
    /// Every node name in the project.
    pub project_node_names: Vec<String>,
    /// dbt's version.
    pub dbt_version: String,
    /// The adapter.
    pub adapter: String,
}

/// `ParentColumns`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParentJson {
    /// Its unique id.
    pub unique_id: String,
    /// Its name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Where they came from.
    pub origin: String,
}

/// `SourceDefinition`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceJson {
    /// The source's name.
    pub source_name: String,
    /// The table's name.
    pub table_name: String,
    /// Its columns.
    pub columns: Vec<String>,
}

/// `FixProposal`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalJson {
    /// The file written.
    pub model_path: String,
    /// Its whole new content.
    pub fixed_sql: String,
    /// What the reviewer read first.
    pub explanation: String,
    /// Who produced it.
    pub strategy: String,
    /// 0–1.
    pub confidence: f64,
}

/// `ValidationStep`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepJson {
    /// e.g. `dbt compile`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub duration_ms: u64,
    /// Its output.
    pub output: String,
}

/// `AttemptRecord`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptJson {
    /// 1-based.
    pub attempt: u32,
    /// The proposal's SQL.
    pub fixed_sql: String,
    /// Who produced it.
    pub strategy: String,
    /// The step that failed.
    pub failed_step: String,
    /// dbt's error.
    pub error_text: String,
}

/// `MergeRequestMerged`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeJson {
    /// `gitlab`, `github`.
    pub provider: String,
    /// The merge request's page.
    pub url: String,
    /// When, RFC 3339.
    pub merged_at: String,
    /// The merge commit, when the forge named one.
    pub merge_commit_sha: String,
}

/// Writes one JSON line per merged incident to `writer`, oldest merge first, and returns
/// how many it wrote. An incident merged twice (reopened, fixed again, merged again) is
/// written once, with its latest validated fix and merge.
pub async fn export_dataset<W: std::io::Write>(
    bus: &Bus,
    writer: &mut W,
) -> Result<usize, DatasetError> {
    let subjects = bus.subjects();
    let validated = bus.replay(&subjects.fix_validated()).await?;
    let merged = bus.replay(&subjects.mr_merged()).await?;
    let records = join(&validated, &merged);
    for record in &records {
        serde_json::to_writer(&mut *writer, record)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(records.len())
}

/// The latest validated fix of each merged incident, in order of (latest) merge.
pub fn join(validated: &[StoredMessage], merged: &[StoredMessage]) -> Vec<DatasetRecord> {
    let mut fixes: HashMap<String, v1::FixValidated> = HashMap::new();
    for message in validated {
        if let Some(fix) = decode::<v1::FixValidated>(message) {
            let incident_id = fix
                .incident
                .as_ref()
                .map(|incident| incident.incident_id.clone())
                .unwrap_or_default();
            fixes.insert(incident_id, fix);
        }
    }
    let mut merges: Vec<v1::MergeRequestMerged> = Vec::new();
    for message in merged {
        if let Some(merge) = decode::<v1::MergeRequestMerged>(message) {
            merges.retain(|earlier| earlier.incident_id != merge.incident_id);
            merges.push(merge);
        }
    }
    merges
        .into_iter()
        .filter_map(|merge| {
            let fix = fixes.get(&merge.incident_id)?;
            Some(to_record(fix, &merge))
        })
        .collect()
}

fn decode<M: WireMessage>(message: &StoredMessage) -> Option<M> {
    match message.decode::<M>() {
        Ok(decoded) => Some(decoded),
        Err(reason) => {
            tracing::warn!(message = "Skipping an undecodable message.", subject = %message.subject, %reason);
            None
        }
    }
}

fn to_record(fix: &v1::FixValidated, merge: &v1::MergeRequestMerged) -> DatasetRecord {
    let incident = fix.incident.clone().unwrap_or_default();
    let model = incident.model.clone().unwrap_or_default();
    let error = incident.error.clone().unwrap_or_default();
    let evidence = incident.evidence.clone().unwrap_or_default();
    let proposal = fix.proposal.clone().unwrap_or_default();
    // The commit it was read at says it was read: an empty file is content too.
    let merged_content =
        (!merge.merged_content_sha.is_empty()).then(|| merge.merged_content.clone());
    let changed_by_human = merged_content.as_ref().map(|_| merge.changed_by_human);
    let merged_diff = merged_content
        .as_deref()
        .filter(|_| merge.changed_by_human)
        .map(|merged| {
            dbtops_guardrails::unified_diff(&proposal.model_path, &proposal.fixed_sql, merged)
        });
    DatasetRecord {
        incident_id: merge.incident_id.clone(),
        project: incident
            .project
            .as_ref()
            .map(|project| project.name.clone())
            .unwrap_or_default(),
        model: ModelJson {
            unique_id: model.unique_id,
            name: model.name,
            path: model.path,
        },
        error: ErrorJson {
            class: error.class().label().to_owned(),
            message: error.message,
            signature: error.signature,
        },
        evidence: EvidenceJson {
            model_sql: evidence.model_sql,
            compiled_sql: evidence.compiled_sql,
            yaml_entry: evidence.yaml_entry,
            parents: evidence
                .parents
                .into_iter()
                .map(|parent| ParentJson {
                    unique_id: parent.unique_id,
                    name: parent.name,
                    columns: parent.columns,
                    origin: parent.origin,
                })
                .collect(),
            sources: evidence
                .sources
                .into_iter()
                .map(|source| SourceJson {
                    source_name: source.source_name,
                    table_name: source.table_name,
                    columns: source.columns,
                })
                .collect(),
            project_node_names: evidence.project_node_names,
            dbt_version: evidence.dbt_version,
            adapter: evidence.adapter,
        },
        proposal: ProposalJson {
            model_path: proposal.model_path,
            fixed_sql: proposal.fixed_sql,
            explanation: proposal.explanation,
            strategy: proposal.strategy,
            confidence: proposal.confidence,
        },
        diff: fix.diff.clone(),
        validation: fix
            .steps
            .iter()
            .map(|step| StepJson {
                name: step.name.clone(),
                ok: step.ok,
                duration_ms: step.duration_ms,
                output: step.output.clone(),
            })
            .collect(),
        attempts: fix.attempt,
        history: fix
            .history
            .iter()
            .map(|record| AttemptJson {
                attempt: record.attempt,
                fixed_sql: record
                    .proposal
                    .as_ref()
                    .map(|proposal| proposal.fixed_sql.clone())
                    .unwrap_or_default(),
                strategy: record
                    .proposal
                    .as_ref()
                    .map(|proposal| proposal.strategy.clone())
                    .unwrap_or_default(),
                failed_step: record.failed_step.clone(),
                error_text: record.error_text.clone(),
            })
            .collect(),
        merge: MergeJson {
            provider: merge.provider.clone(),
            url: merge.url.clone(),
            merged_at: merge.merged_at.clone(),
            merge_commit_sha: merge.merge_commit_sha.clone(),
        },
        merged_content,
        changed_by_human,
        merged_diff,
    }
}
