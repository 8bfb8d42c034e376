//! Incidents from a detection: opened, seen again, abandoned at once, or resolved.
//!
//! The incident id derives from project, node and error signature, so the KV record under
//! it is also the signature index: the same failure in a later run finds its open incident
//! and becomes a recurrence (count, last seen), not a second merge request. Resolution
//! needs the other direction — from a node that passed to the incidents open on it — so
//! the detector keeps, in the same KV bucket, one key per project (`open.<hash>`) mapping
//! each node's unique id to the ids of its open incidents. It is written with
//! compare-and-set, after the incident record, so a crash in between leaves an incident
//! that the next sighting re-indexes.

use std::collections::{BTreeMap, BTreeSet};

use async_nats::jetstream::kv;
use dbtops_artifacts::{Detection, Failure};
use dbtops_bus::incidents::now_rfc3339;
use dbtops_bus::SubmissionRecord;
use dbtops_bus::{stage_id, Bus, BusError, IncidentRecord, IncidentState, IncidentStore};
use dbtops_proto::v1;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::Detector;

/// Open incident ids by node unique id, for one project.
type OpenByNode = BTreeMap<String, Vec<String>>;

/// Turns a detection into incidents and the verdict; publishes the verdict.
pub(crate) async fn record_detection(
    bus: &Bus,
    detector: &Detector,
    submitted: &v1::RunSubmitted,
    mut detection: Detection,
) -> Result<v1::RunProcessed, BusError> {
    let store = bus.incidents().await?;
    let index = OpenIndex::open(bus).await?;
    let project = submitted.project.clone().unwrap_or_default();
    let project_name = if project.name.is_empty() {
        detection.project_name.clone().unwrap_or_default()
    } else {
        project.name.clone()
    };
    let redactor = detector.redactor();
    let mut verdict = SubmissionRecord {
        submission_id: submitted.submission_id.clone(),
        notes: detection
            .notes
            .iter()
            .map(|note| redactor.redact(note).into_owned())
            .collect(),
        ..Default::default()
    };
    if detection.failures.is_empty() {
        verdict.notes.push("no failing node in this run".into());
    }
    let failures = std::mem::take(&mut detection.failures);
    let failing_nodes: Vec<String> = failures
        .iter()
        .map(|failure| failure.unique_id.clone())
        .filter(|unique_id| !unique_id.is_empty())
        .collect();
    let mut indexed: Vec<(String, String)> = Vec::new();
    let context = IncidentContext {
        bus,
        store: &store,
        submitted,
        project: &project,
        project_name: &project_name,
        detection: &detection,
        failing_nodes: &failing_nodes,
    };
    let record_failures = async {
        for mut failure in failures {
            // The id comes from the signature before redaction: every replica computes the
            // same id whatever its environment, and the id is a hash that reveals nothing.
            let incident_id = dbtops_artifacts::incident_id(
                &project_name,
                &failure.unique_id,
                &failure.signature,
            );
            detector.prepare(&mut failure);
            let span = tracing::info_span!(
                "detector.incident",
                incident_id = %incident_id,
                model = %failure.name,
                class = failure.class.label(),
            );
            let recurring = record_failure(&context, &incident_id, &failure)
                .instrument(span)
                .await?;
            if !failure.unique_id.is_empty() {
                indexed.push((failure.unique_id.clone(), incident_id.clone()));
            }
            if recurring {
                verdict.recurring_incident_ids.push(incident_id);
            } else {
                verdict.new_incident_ids.push(incident_id);
            }
        }
        Ok::<_, BusError>(())
    };
    // The project's index of open incidents is read while the incidents are written: it
    // does not depend on them, and its write is compare-and-set against what was read.
    let (recorded, open) = tokio::join!(record_failures, index.load(&project_name));
    recorded?;
    let resolved = resolve_passing(&context, &index, open?, &indexed).await?;
    for id in &resolved {
        verdict.notes.push(format!(
            "incident {id} resolved: its node passed in this run"
        ));
    }
    let processed = v1::RunProcessed {
        submission_id: verdict.submission_id.clone(),
        new_incident_ids: verdict.new_incident_ids.clone(),
        recurring_incident_ids: verdict.recurring_incident_ids.clone(),
        notes: verdict.notes.clone(),
        resolved_incident_ids: resolved,
    };
    // Two independent effects, both durable before the submission is acked.
    let processed_id = format!("{}.processed", submitted.submission_id);
    let processed_subject = bus.subjects().run_processed();
    tokio::try_join!(
        store.put_submission(&verdict),
        bus.publish(&processed_subject, &processed_id, &processed),
    )?;
    Ok(processed)
}

/// What every incident of one submission shares.
struct IncidentContext<'a> {
    bus: &'a Bus,
    store: &'a IncidentStore,
    submitted: &'a v1::RunSubmitted,
    project: &'a v1::ProjectRef,
    project_name: &'a str,
    detection: &'a Detection,
    /// Every failing root node of the run.
    failing_nodes: &'a [String],
}

/// Opens the incident for one failure, or records a recurrence of the open one; returns
/// true for a recurrence.
async fn record_failure(
    context: &IncidentContext<'_>,
    incident_id: &str,
    failure: &Failure,
) -> Result<bool, BusError> {
    let IncidentContext {
        bus,
        store,
        submitted,
        project,
        project_name,
        ..
    } = *context;
    let existing = store.get(incident_id).await?;
    let generation = match &existing {
        Some(record)
            if record.state.absorbs_recurrences() && !delivered_elsewhere(record, project) =>
        {
            if record.last_submission_id == submitted.submission_id
                && record.state == IncidentState::Detected
            {
                // This submission opened the incident on an earlier delivery that stopped
                // before publishing: publish again (the message id makes it idempotent).
                let event = failure_event(context, incident_id, failure, record.generation);
                publish_opened(bus, &event, failure, record).await?;
                return Ok(false);
            }
            // Seen before and still open: a recurrence, not a second merge request.
            if record.last_submission_id != submitted.submission_id {
                store
                    .update(incident_id, |record| {
                        record.recurrences += 1;
                        record.last_seen = now_rfc3339();
                        record.last_submission_id = submitted.submission_id.clone();
                    })
                    .await?;
            }
            tracing::info!(
                message = "Recurrence of an open incident.",
                state = record.state.label()
            );
            return Ok(true);
        }
        Some(record) => record.generation + 1,
        None => 0,
    };
    let event = failure_event(context, incident_id, failure, generation);
    let record = IncidentRecord {
        incident_id: incident_id.to_owned(),
        project: project_name.to_owned(),
        unique_id: failure.unique_id.clone(),
        model: failure.name.clone(),
        model_path: failure.path.clone(),
        class: failure.class.label().to_owned(),
        state: if failure.needs_human {
            IncidentState::Abandoned
        } else {
            IncidentState::Detected
        },
        generation,
        attempts: 0,
        branch: None,
        url: None,
        reason: failure.needs_human.then(|| "needs_human".to_owned()),
        detail: failure.needs_human.then(|| {
            format!(
                "{} is not fixable by editing the model's SQL",
                failure.class.label()
            )
        }),
        recurrences: 0,
        first_seen: now_rfc3339(),
        last_seen: now_rfc3339(),
        updated_at: now_rfc3339(),
        trace_id: dbtops_telemetry::current_trace_id(),
        last_submission_id: submitted.submission_id.clone(),
        delivered_repo: None,
    };
    // Record first, then publish: the next services read the record as soon as the event
    // lands. A stop in between is recovered above, when the submission is redelivered.
    if existing.is_some() {
        let fresh = record.clone();
        store
            .update(incident_id, move |stored| *stored = fresh.clone())
            .await?;
    } else if !store.create(&record).await? {
        // A concurrent submission of the same failure opened it first.
        return Ok(true);
    }
    publish_opened(bus, &event, failure, &record).await?;
    tracing::info!(
        message = "Incident opened.",
        needs_human = failure.needs_human
    );
    Ok(false)
}

/// Resolves the open incidents of every node that passed in this run, and brings the
/// project's index of open incidents up to date (this run's failures added, incidents
/// that are no longer open removed). Returns the ids it resolved.
async fn resolve_passing(
    context: &IncidentContext<'_>,
    index: &OpenIndex,
    (open, read_revision): (OpenByNode, Option<u64>),
    indexed: &[(String, String)],
) -> Result<Vec<String>, BusError> {
    let IncidentContext {
        bus,
        store,
        submitted,
        project_name,
        detection,
        ..
    } = *context;
    let passing: BTreeSet<&str> = detection
        .succeeded_nodes
        .iter()
        .map(String::as_str)
        .collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut gone: Vec<(String, String)> = Vec::new();
    for (unique_id, ids) in &open {
        if !passing.contains(unique_id.as_str()) {
            continue;
        }
        for id in ids {
            let Some(record) = store.get(id).await? else {
                gone.push((unique_id.clone(), id.clone()));
                continue;
            };
            if matches!(
                record.state,
                IncidentState::Merged | IncidentState::Closed | IncidentState::Resolved
            ) {
                gone.push((unique_id.clone(), id.clone()));
                continue;
            }
            resolve(bus, store, submitted, detection, &record).await?;
            gone.push((unique_id.clone(), id.clone()));
            resolved.push(id.clone());
        }
    }
    if !indexed.is_empty() || !gone.is_empty() {
        index
            .change(project_name, Some((open.clone(), read_revision)), |map| {
                let mut changed = false;
                for (unique_id, id) in &gone {
                    if let Some(ids) = map.get_mut(unique_id) {
                        let before = ids.len();
                        ids.retain(|i| i != id);
                        changed |= ids.len() != before;
                    }
                }
                map.retain(|_, ids| !ids.is_empty());
                for (unique_id, id) in indexed {
                    let ids = map.entry(unique_id.clone()).or_default();
                    if !ids.contains(id) {
                        ids.push(id.clone());
                        changed = true;
                    }
                }
                changed
            })
            .await?;
    }
    Ok(resolved)
}

/// Publishes `dbtops.incident.resolved` for one incident, then marks it resolved.
async fn resolve(
    bus: &Bus,
    store: &IncidentStore,
    submitted: &v1::RunSubmitted,
    detection: &Detection,
    record: &IncidentRecord,
) -> Result<(), BusError> {
    let resolved = v1::IncidentResolved {
        incident_id: record.incident_id.clone(),
        model: Some(v1::ModelRef {
            unique_id: record.unique_id.clone(),
            name: record.model.clone(),
            path: record.model_path.clone(),
            resource_type: record
                .unique_id
                .split('.')
                .next()
                .unwrap_or_default()
                .to_owned(),
        }),
        submission_id: submitted.submission_id.clone(),
        invocation_id: detection.invocation_id.clone().unwrap_or_default(),
        previous_state: record.state.label().to_owned(),
        recurrences: record.recurrences,
        resolved_at: now_rfc3339(),
    };
    // Publish first: a crash before the record is written redelivers the submission, the
    // index still names the incident, and the same message id is dropped as a duplicate.
    bus.publish(
        &bus.subjects().incident_resolved(),
        &stage_id(&record.incident_id, record.generation, "resolved", 0),
        &resolved,
    )
    .await?;
    let detail = format!(
        "{} passed in submission {}",
        record.unique_id, submitted.submission_id
    );
    store
        .update(&record.incident_id, |stored| {
            stored.state = IncidentState::Resolved;
            stored.detail = Some(detail.clone());
            stored.last_submission_id = submitted.submission_id.clone();
        })
        .await?;
    tracing::info!(
        message = "Incident resolved: its node passed.",
        incident_id = %record.incident_id,
        previous_state = record.state.label()
    );
    Ok(())
}

/// The per-project index of open incidents by node, in the incidents KV bucket.
struct OpenIndex {
    kv: kv::Store,
}

impl OpenIndex {
    /// The bucket the bus opened once (opening it here cost a round trip a submission).
    async fn open(bus: &Bus) -> Result<Self, BusError> {
        let kv = bus.incidents().await?.bucket().clone();
        Ok(Self { kv })
    }

    /// `open.<first 16 hex of sha256(project)>`: any project name makes a valid key.
    fn key(project: &str) -> String {
        let digest = hex::encode(Sha256::digest(project.as_bytes()));
        format!("open.{}", &digest[..16])
    }

    async fn load(&self, project: &str) -> Result<(OpenByNode, Option<u64>), BusError> {
        let entry = self
            .kv
            .entry(Self::key(project))
            .await
            .map_err(|error| BusError::Incidents(error.to_string()))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                // A corrupt index only costs automatic resolution until it is rewritten.
                let map = serde_json::from_slice(&entry.value).unwrap_or_default();
                Ok((map, Some(entry.revision)))
            }
            Some(entry) => Ok((OpenByNode::new(), Some(entry.revision))),
            None => Ok((OpenByNode::new(), None)),
        }
    }

    /// Applies `change` with compare-and-set (another detector may write the same project
    /// at once); `change` returns whether it changed anything.
    /// `read` is the index as the caller last read it, tried first; a write that finds
    /// it out of date reads it again.
    async fn change(
        &self,
        project: &str,
        mut read: Option<(OpenByNode, Option<u64>)>,
        mut change: impl FnMut(&mut OpenByNode) -> bool,
    ) -> Result<(), BusError> {
        let key = Self::key(project);
        for _ in 0..20 {
            let (mut map, revision) = match read.take() {
                Some(known) => known,
                None => self.load(project).await?,
            };
            if !change(&mut map) {
                return Ok(());
            }
            let value =
                serde_json::to_vec(&map).map_err(|error| BusError::Incidents(error.to_string()))?;
            let written = match revision {
                Some(revision) => match self.kv.update(&key, value.into(), revision).await {
                    Ok(_) => true,
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => false,
                    Err(error) => return Err(BusError::Incidents(error.to_string())),
                },
                None => match self.kv.create(&key, value.into()).await {
                    Ok(_) => true,
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => false,
                    Err(error) => return Err(BusError::Incidents(error.to_string())),
                },
            };
            if written {
                return Ok(());
            }
        }
        Err(BusError::Incidents(format!(
            "gave up updating the open-incident index of {project}: too many concurrent writers"
        )))
    }
}

/// True when the incident's fix went to a local repository other than the one this run
/// was made in (another checkout of the same project): that repository has no branch
/// for it yet, so the failure is a new occurrence there, not a recurrence.
fn delivered_elsewhere(record: &IncidentRecord, project: &v1::ProjectRef) -> bool {
    match &record.delivered_repo {
        Some(delivered) => !project.repo_dir.is_empty() && *delivered != project.repo_dir,
        None => false,
    }
}

/// Publishes what opening an incident means: `failure.detected`, or `incident.abandoned`
/// with `needs_human` for failures no SQL edit can fix.
async fn publish_opened(
    bus: &Bus,
    event: &v1::FailureDetected,
    failure: &Failure,
    record: &IncidentRecord,
) -> Result<(), BusError> {
    let message_id = stage_id(&event.incident_id, event.generation, "detected", 0);
    if failure.needs_human {
        let abandoned = v1::IncidentAbandoned {
            incident_id: event.incident_id.clone(),
            model: event.model.clone(),
            reason: "needs_human".into(),
            detail: record.detail.clone().unwrap_or_default(),
            attempts: 0,
        };
        bus.publish(
            &bus.subjects().incident_abandoned(),
            &message_id,
            &abandoned,
        )
        .await?;
    } else {
        bus.publish(&bus.subjects().failure_detected(), &message_id, event)
            .await?;
    }
    Ok(())
}

fn failure_event(
    context: &IncidentContext<'_>,
    incident_id: &str,
    failure: &Failure,
    generation: u32,
) -> v1::FailureDetected {
    let IncidentContext {
        submitted,
        project,
        project_name,
        detection,
        failing_nodes,
        ..
    } = *context;
    let evidence = &failure.evidence;
    v1::FailureDetected {
        generation,
        incident_id: incident_id.to_owned(),
        submission_id: submitted.submission_id.clone(),
        project: Some(v1::ProjectRef {
            name: project_name.to_owned(),
            ..project.clone()
        }),
        model: Some(v1::ModelRef {
            unique_id: failure.unique_id.clone(),
            name: failure.name.clone(),
            path: failure.path.clone(),
            resource_type: failure.resource_type.clone(),
        }),
        error: Some(v1::FailureError {
            class: failure.class as i32,
            message: failure.message.clone(),
            signature: failure.signature.clone(),
            needs_human: failure.needs_human,
        }),
        evidence: Some(v1::Evidence {
            model_sql: evidence.model_sql.clone(),
            compiled_sql: evidence.compiled_sql.clone(),
            yaml_entry: evidence.yaml_entry.clone(),
            parents: evidence
                .parents
                .iter()
                .map(|parent| v1::ParentColumns {
                    unique_id: parent.unique_id.clone(),
                    name: parent.name.clone(),
                    columns: parent.columns.clone(),
                    origin: parent.origin.to_owned(),
                })
                .collect(),
            sources: evidence
                .sources
                .iter()
                .map(|source| v1::SourceDefinition {
                    source_name: source.source_name.clone(),
                    table_name: source.table_name.clone(),
                    columns: source.columns.clone(),
                })
                .collect(),
            project_node_names: evidence.project_node_names.clone(),
            project_macro_names: evidence.project_macro_names.clone(),
            macro_signatures: evidence.macro_signatures.clone(),
            dbt_version: detection.dbt_version.clone().unwrap_or_default(),
            adapter: detection.adapter.clone().unwrap_or_default(),
            error_location: evidence
                .error_location
                .as_ref()
                .map(|location| v1::ErrorLocation {
                    statement_line: location.statement_line,
                    compiled_line: location.compiled_line,
                    model_line: location.model_line,
                    model_line_text: location.model_line_text.clone(),
                    method: location.method.to_owned(),
                }),
            trimmed: evidence.trimmed.clone(),
            estimated_tokens: evidence.estimated_tokens,
            token_budget: evidence.token_budget,
            redacted_fields: evidence.redacted_fields.clone(),
            // Empty unless `fixer.fix_scope = "lineage"` asked detection for them.
            ancestor_models: evidence
                .ancestors
                .iter()
                .map(|ancestor| v1::AncestorModel {
                    unique_id: ancestor.unique_id.clone(),
                    name: ancestor.name.clone(),
                    path: ancestor.path.clone(),
                    raw_sql: ancestor.raw_sql.clone(),
                    depth: ancestor.depth,
                    materialized: ancestor.materialized.clone(),
                })
                .collect(),
        }),
        invocation_id: detection.invocation_id.clone().unwrap_or_default(),
        blast_radius: failure.blast_radius.clone(),
        detected_at: now_rfc3339(),
        failing_elsewhere: failing_nodes
            .iter()
            .filter(|unique_id| **unique_id != failure.unique_id)
            .cloned()
            .collect(),
    }
}
