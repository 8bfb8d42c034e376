//! The detector: from a finished dbt run's artifacts to incidents.
//!
//! It reads `dbtops.run.submitted`, fetches the artifacts (inline or from the object
//! store), lets `dbtops-artifacts` find the root failing nodes with their evidence, and for
//! each one either opens an incident (`dbtops.failure.detected`), records a recurrence of an
//! open one, or — for failures no SQL edit can fix — abandons it at once with
//! `needs_human`. Its verdict on the submission goes to `dbtops.run.processed` and the KV
//! bucket, where `dbt-ops submit --wait` finds it.
//!
//! **Invariant**: detection is deterministic — no LLM, no network beyond NATS.

use std::time::Duration;

use dbtops_artifacts::{Detection, Failure, ProjectFiles, RunArtifacts};
use dbtops_bus::incidents::now_rfc3339;
use dbtops_bus::stage_id;
use dbtops_bus::{
    run_consumer, Bus, BusError, ConsumerSpec, Delivery, IncidentRecord, IncidentState, Outcome,
    SubmissionRecord,
};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use tracing::Instrument;

/// The service's name: its durable consumer and dead-letter subject.
pub const SERVICE: &str = "detector";

/// Artifact kinds a submission may carry.
pub mod artifact_kind {
    /// `target/run_results.json`.
    pub const RUN_RESULTS: &str = "run_results.json";
    /// `target/manifest.json`.
    pub const MANIFEST: &str = "manifest.json";
    /// `logs/dbt.log` (text or JSON lines).
    pub const DBT_LOG: &str = "dbt.log";
    /// Captured console output of the run.
    pub const CONSOLE: &str = "console.txt";
    /// The project's model, macro and YAML files and seed headers, as JSON.
    pub const PROJECT_FILES: &str = "project_files.json";
}

/// Why the detector could not start.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Runs the detector until `shutdown` resolves.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DetectorError> {
    let spec = ConsumerSpec {
        service: SERVICE,
        durable: SERVICE.into(),
        filter_subjects: vec![bus.subjects().run_submitted()],
        concurrency: 2,
    };
    let handler_bus = bus.clone();
    run_consumer(
        bus,
        spec,
        move |delivery| {
            let bus = handler_bus.clone();
            let settings = settings.clone();
            async move { handle_submission(&bus, &settings, delivery).await }
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// Handles one `RunSubmitted`: the unit the consumer loop calls, public so tests can step it.
#[tracing::instrument(name = "detector.submission", skip_all, fields(submission_id))]
pub async fn handle_submission(bus: &Bus, settings: &Settings, delivery: Delivery) -> Outcome {
    let submitted = match delivery.decode::<v1::RunSubmitted>() {
        Ok(submitted) => submitted,
        Err(rejection) => return rejection,
    };
    tracing::Span::current().record("submission_id", submitted.submission_id.as_str());
    if submitted.submission_id.is_empty() {
        return Outcome::reject("RunSubmitted without a submission_id");
    }
    let artifacts = match fetch_artifacts(bus, settings, &submitted).await {
        Ok(artifacts) => artifacts,
        Err(FetchError::Retry(reason)) => return Outcome::retry(Duration::from_secs(2), reason),
        Err(FetchError::Reject(reason)) => return Outcome::reject(reason),
    };
    let detection = match dbtops_artifacts::detect(&artifacts) {
        Ok(detection) => detection,
        Err(error) => return Outcome::reject(format!("cannot read the run's artifacts: {error}")),
    };
    match record_detection(bus, &submitted, detection).await {
        Ok(()) => Outcome::Done,
        Err(error) => Outcome::retry(Duration::from_secs(2), error.to_string()),
    }
}

enum FetchError {
    Retry(String),
    Reject(String),
}

async fn fetch_artifacts(
    bus: &Bus,
    settings: &Settings,
    submitted: &v1::RunSubmitted,
) -> Result<RunArtifacts, FetchError> {
    let mut artifacts = RunArtifacts::default();
    for artifact in &submitted.artifacts {
        if artifact.size_bytes > settings.detector.max_artifact_bytes {
            return Err(FetchError::Reject(format!(
                "artifact {} is {} bytes, over detector.max_artifact_bytes ({})",
                artifact.kind, artifact.size_bytes, settings.detector.max_artifact_bytes
            )));
        }
        let content = match &artifact.body {
            Some(v1::artifact::Body::Inline(bytes)) => bytes.clone(),
            Some(v1::artifact::Body::ObjectName(name)) => bus
                .get_artifact(name, settings.detector.max_artifact_bytes)
                .await
                .map_err(|error| FetchError::Retry(error.to_string()))?,
            None => continue,
        };
        match artifact.kind.as_str() {
            artifact_kind::RUN_RESULTS => artifacts.run_results = Some(content),
            artifact_kind::MANIFEST => artifacts.manifest = Some(content),
            artifact_kind::DBT_LOG => artifacts.dbt_log = Some(content),
            artifact_kind::CONSOLE => artifacts.console = Some(content),
            artifact_kind::PROJECT_FILES => {
                let files: ProjectFiles = serde_json::from_slice(&content).map_err(|error| {
                    FetchError::Reject(format!("project_files.json is not valid: {error}"))
                })?;
                artifacts.project_files = Some(files);
            }
            other => tracing::warn!(message = "Ignoring an unknown artifact kind.", kind = other),
        }
    }
    Ok(artifacts)
}

async fn record_detection(
    bus: &Bus,
    submitted: &v1::RunSubmitted,
    detection: Detection,
) -> Result<(), BusError> {
    let store = bus.incidents().await?;
    let project = submitted.project.clone().unwrap_or_default();
    let project_name = if project.name.is_empty() {
        detection.project_name.clone().unwrap_or_default()
    } else {
        project.name.clone()
    };
    let mut verdict = SubmissionRecord {
        submission_id: submitted.submission_id.clone(),
        notes: detection.notes.clone(),
        ..Default::default()
    };
    if detection.failures.is_empty() {
        verdict.notes.push("no failing node in this run".into());
    }
    for failure in &detection.failures {
        let incident_id =
            dbtops_artifacts::incident_id(&project_name, &failure.unique_id, &failure.signature);
        let span = tracing::info_span!(
            "detector.incident",
            incident_id = %incident_id,
            model = %failure.name,
            class = failure.class.label(),
        );
        let context = IncidentContext {
            bus,
            store: &store,
            submitted,
            project: &project,
            project_name: &project_name,
            detection: &detection,
        };
        let recurring = record_failure(&context, &incident_id, failure)
            .instrument(span)
            .await?;
        if recurring {
            verdict.recurring_incident_ids.push(incident_id);
        } else {
            verdict.new_incident_ids.push(incident_id);
        }
    }
    store.put_submission(&verdict).await?;
    let processed = v1::RunProcessed {
        submission_id: verdict.submission_id.clone(),
        new_incident_ids: verdict.new_incident_ids.clone(),
        recurring_incident_ids: verdict.recurring_incident_ids.clone(),
        notes: verdict.notes.clone(),
    };
    bus.publish(
        &bus.subjects().run_processed(),
        &format!("{}.processed", submitted.submission_id),
        &processed,
    )
    .await?;
    Ok(())
}

/// What every incident of one submission shares.
struct IncidentContext<'a> {
    bus: &'a Bus,
    store: &'a dbtops_bus::IncidentStore,
    submitted: &'a v1::RunSubmitted,
    project: &'a v1::ProjectRef,
    project_name: &'a str,
    detection: &'a Detection,
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
        detection,
    } = *context;
    let existing = store.get(incident_id).await?;
    let generation = match &existing {
        Some(record) if record.state.absorbs_recurrences() => {
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
    let event = failure_event(
        incident_id,
        submitted,
        project,
        project_name,
        failure,
        detection,
    );
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
    };
    // Publish before recording: a crash in between redelivers the submission, and the
    // deterministic message id makes the second publish a no-op.
    let message_id = stage_id(incident_id, generation, "detected", 0);
    if failure.needs_human {
        let abandoned = v1::IncidentAbandoned {
            incident_id: incident_id.to_owned(),
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
        bus.publish(&bus.subjects().failure_detected(), &message_id, &event)
            .await?;
    }
    if existing.is_some() {
        let fresh = record.clone();
        store
            .update(incident_id, move |stored| *stored = fresh.clone())
            .await?;
    } else {
        store.create(&record).await?;
    }
    tracing::info!(
        message = "Incident opened.",
        needs_human = failure.needs_human
    );
    Ok(false)
}

fn failure_event(
    incident_id: &str,
    submitted: &v1::RunSubmitted,
    project: &v1::ProjectRef,
    project_name: &str,
    failure: &Failure,
    detection: &Detection,
) -> v1::FailureDetected {
    let evidence = &failure.evidence;
    v1::FailureDetected {
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
            dbt_version: detection.dbt_version.clone().unwrap_or_default(),
            adapter: detection.adapter.clone().unwrap_or_default(),
        }),
        invocation_id: detection.invocation_id.clone().unwrap_or_default(),
        blast_radius: failure.blast_radius.clone(),
        detected_at: now_rfc3339(),
    }
}
