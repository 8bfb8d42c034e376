//! The detector: from a finished dbt run's artifacts to incidents.
//!
//! Three ways in, one way through. A run arrives on `dbtops.run.submitted` (`dbt-ops
//! submit`, CI jobs with a NATS client), through the gRPC `dbtops.v1.Ingest/SubmitRun`
//! (CI jobs without one), or from a watched project directory (which publishes it on
//! `dbtops.run.submitted` like `dbt-ops submit` would). Every submission then goes through
//! [`process_submission`]: fetch the artifacts (inline or from the object store), let
//! `dbtops-artifacts` find the root failing nodes with their evidence, annotate the error
//! with the model line, redact secrets, hold the evidence to the token budget, and for each
//! failure open an incident (`dbtops.failure.detected`), record a recurrence of an open
//! one, or — for failures no SQL edit can fix — abandon it at once with `needs_human`.
//! Nodes that passed resolve the open incidents on them (`dbtops.incident.resolved`). The
//! verdict goes to `dbtops.run.processed` and the KV bucket, where `dbt-ops submit --wait`
//! finds it, and is the gRPC answer.
//!
//! Module layout:
//! - `submission`: [`process_submission`], the one path every submission takes.
//! - `incident`: opening, recurring and resolving incidents; the per-project index of open
//!   incidents by node that resolution reads.
//! - [`grpc`]: the `Ingest` service and the standard gRPC health service.
//! - [`watch`]: polling dbt project directories for finished runs.
//! - `project`: a project directory's name, model paths and git state.
//!
//! **Invariants**: detection is deterministic — no LLM, no network beyond NATS; nothing
//! leaves the detector before [`Detector::prepare`] redacted it.

mod incident;
mod project;
mod submission;

pub mod grpc;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use dbtops_artifacts::{Failure, Redactor};
use dbtops_bus::{
    run_consumer_with_dead_letters, Bus, BusError, ConsumerSpec, DeadLetterPayload, Delivery,
    Outcome,
};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use tokio_util::sync::CancellationToken;

pub use project::{project_ref, ProjectError};
pub use submission::{process_submission, SubmissionError};

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

/// Why the detector could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The gRPC server could not listen or failed.
    #[error("gRPC server on {address}: {reason}")]
    Grpc {
        /// `detector.grpc_listen`.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A watched directory is not a dbt project.
    #[error("detector.watch: {0}")]
    Watch(String),
}

/// What every submission is handled with: the settings and the secrets to redact. Built
/// once at start (it reads the environment), cheap to clone.
#[derive(Clone, Debug)]
pub struct Detector {
    /// The whole settings, for the bus and the detector's section.
    settings: Arc<Settings>,
    /// Replaces secrets in everything that leaves the detector.
    redactor: Arc<Redactor>,
}

impl Detector {
    /// A detector whose redactor knows this process's environment.
    pub fn new(settings: Settings) -> Self {
        Self::with_env(settings, std::env::vars())
    }

    /// A detector whose redactor knows `env` (tests pass their own): the values of
    /// `detector.redact_env_vars`, of every `*_PASSWORD`, `*_TOKEN`, `*_KEY`, `*_SECRET`…
    /// variable, and dbt-ops' own secrets from the settings.
    pub fn with_env(settings: Settings, env: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut values: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| {
                dbtops_artifacts::is_secret_env_name(name)
                    || settings
                        .detector
                        .redact_env_vars
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name))
            })
            .collect();
        // Our own credentials, should a log or a model ever echo them.
        values.push((
            "nats.password".into(),
            settings.nats.password.expose().to_owned(),
        ));
        values.push(("nats.token".into(), settings.nats.token.expose().to_owned()));
        for provider in &settings.fixer.providers {
            values.push((
                format!("fixer.providers.{}.api_key", provider.name),
                provider.api_key.expose().to_owned(),
            ));
        }
        Self {
            redactor: Arc::new(Redactor::new(values)),
            settings: Arc::new(settings),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The redactor.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A `RunSubmitted` payload fit to be kept where people read it: the dead-letter copy
    /// of a submission the detector refused, with every text redacted (see
    /// `submission::redacted_payload`): the filter the consumer loop applies to the
    /// detector's dead letters.
    pub fn redact_dead_letter_payload(&self, payload: &[u8]) -> Vec<u8> {
        submission::redacted_payload(&self.redactor, payload)
    }

    /// Makes a failure fit to leave the detector, in this order: the error text gets a
    /// note on which model line the database's `LINE n` is; every text is redacted; the
    /// whole is held to the token budget (redacting first, so the budget counts what is
    /// sent).
    pub fn prepare(&self, failure: &mut Failure) {
        if let Some(location) = &failure.evidence.error_location {
            failure.message =
                dbtops_artifacts::annotate_error(&failure.message, location, &failure.path);
        }
        self.redactor.redact_failure(failure);
        dbtops_artifacts::apply_token_budget(failure, self.settings.detector.evidence_token_budget);
    }
}

/// Runs the detector until `shutdown` resolves: the `dbtops.run.submitted` consumer, and
/// the gRPC server (`detector.grpc_listen`) and the directory watch (`detector.watch`)
/// when configured.
pub async fn run(
    bus: Bus,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DetectorError> {
    let detector = Detector::new(settings);
    run_with(bus, detector, shutdown).await
}

/// [`run`] with a detector built by the caller (tests give it their own environment).
pub async fn run_with(
    bus: Bus,
    detector: Detector,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DetectorError> {
    // One shutdown for up to three loops, and a failed loop stops the others: the process
    // then exits and is restarted whole rather than half-serving.
    let cancel = CancellationToken::new();
    let grpc = async {
        let address = detector.settings().detector.grpc_listen.clone();
        if address.is_empty() {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|error| DetectorError::Grpc {
                address: address.clone(),
                reason: error.to_string(),
            })?;
        tracing::info!(message = "gRPC Ingest listening.", %address);
        grpc::serve(
            bus.clone(),
            detector.clone(),
            listener,
            cancel.clone().cancelled_owned(),
        )
        .await
    };
    let watch = async {
        if detector.settings().detector.watch.is_empty() {
            return Ok(());
        }
        watch::run(
            bus.clone(),
            detector.clone(),
            cancel.clone().cancelled_owned(),
        )
        .await
    };
    let consumer = async {
        let spec = ConsumerSpec {
            service: SERVICE,
            durable: SERVICE.into(),
            filter_subjects: vec![bus.subjects().run_submitted()],
            concurrency: 2,
        };
        let handler_bus = bus.clone();
        let handler_detector = detector.clone();
        // A refused submission's artifacts may hold secrets: its dead letter is redacted.
        let letter_detector = detector.clone();
        let redacted: DeadLetterPayload =
            Arc::new(move |payload: &[u8]| letter_detector.redact_dead_letter_payload(payload));
        run_consumer_with_dead_letters(
            bus.clone(),
            spec,
            redacted,
            move |delivery| {
                let bus = handler_bus.clone();
                let detector = handler_detector.clone();
                async move { handle_submission(&bus, &detector, delivery).await }
            },
            cancel.clone().cancelled_owned(),
        )
        .await
        .map_err(DetectorError::from)
    };
    let loops = async {
        let (consumer, grpc, watch) = tokio::join!(
            stop_others_on_error(consumer, &cancel),
            stop_others_on_error(grpc, &cancel),
            stop_others_on_error(watch, &cancel)
        );
        cancel.cancel();
        consumer.and(grpc).and(watch)
    };
    let signal = async {
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => cancel.cancel(),
            () = cancel.cancelled() => {}
        }
    };
    let (result, ()) = tokio::join!(loops, signal);
    result
}

/// Runs `task`; if it fails, cancels the others.
async fn stop_others_on_error(
    task: impl std::future::Future<Output = Result<(), DetectorError>>,
    cancel: &CancellationToken,
) -> Result<(), DetectorError> {
    let result = task.await;
    if let Err(error) = &result {
        tracing::error!(message = "A detector loop failed; stopping the others.", %error);
        cancel.cancel();
    }
    result
}

/// Handles one `RunSubmitted`: the unit the consumer loop calls, public so tests can step it.
#[tracing::instrument(name = "detector.submission", skip_all, fields(submission_id))]
pub async fn handle_submission(bus: &Bus, detector: &Detector, delivery: Delivery) -> Outcome {
    let submitted = match delivery.decode::<v1::RunSubmitted>() {
        Ok(submitted) => submitted,
        // The decoder's words only, but they go to the dead letter: redacted like the rest.
        Err(Outcome::Reject { reason }) => {
            return Outcome::reject(detector.redactor().redact(&reason));
        }
        Err(other) => return other,
    };
    tracing::Span::current().record("submission_id", submitted.submission_id.as_str());
    if submitted.submission_id.is_empty() {
        return Outcome::reject("RunSubmitted without a submission_id");
    }
    match process_submission(bus, detector, &submitted).await {
        Ok(_) => Outcome::Done,
        Err(SubmissionError::Retry(reason)) => Outcome::retry(Duration::from_secs(2), reason),
        Err(SubmissionError::Reject(reason)) => Outcome::reject(reason),
    }
}
