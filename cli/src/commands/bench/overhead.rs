//! `dbt-ops bench overhead`: what dbt-ops itself adds to an incident, submit → branch.
//!
//! One broken project is prepared once — `examples/coffee_shop` copied into a fresh git
//! repository, `customer_id` misspelt in `stg_orders`, one real failing `dbt build` — and
//! its artifacts are submitted again and again under a different project name each time.
//! The incident id hashes the project name with the node and the error signature
//! (`dbtops_artifacts::incident_id`), so every submission is a new incident that runs the
//! whole pipeline, while dbt parses and runs the same small project each time.
//!
//! Incidents go one at a time, so no incident waits behind another. Per incident:
//! wall time from just before the submission is published to the arrival of its outcome
//! (`mr.opened`, or `incident.abandoned`), minus the time inside dbt invocations
//! (`validator.dbt` spans) and LLM calls (`gen_ai.chat` spans) of the incident's trace.
//! The rest is split into hops along the pipeline, each from the start of one service's
//! handler span to the start of the next one's (the last: to the outcome's arrival), so
//! the hops add up to the overhead exactly; and into what passed inside the handler spans
//! (their publishes' acks included) and what passed between them (deliveries, pulls).
//!
//! Beside the hops, every span name of the incidents' traces gets a row (its count and its
//! summed time per incident, the largest median first): the bus's publishes and KV reads
//! and writes, each service's steps (`detector.fetch_artifacts`, `fixer.draft`,
//! `validator.workspace`, `delivery.commit`, …). Spans nest, so the rows do not add up;
//! they say where the time inside the handlers goes.
//!
//! The bus's floor — one publish awaiting JetStream's ack, on the same server, through
//! the same client code — is sampled between incidents, so both figures see the same
//! machine at the same moments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use dbtops_bus::headers::MESSAGE_ID;
use dbtops_bus::{Bus, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, DeliverySettings, NatsSettings, Settings};
use futures::StreamExt;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::fake_llm::FakeLlm;
use super::spans::{SpanCollector, TraceTimes, HOPS};
use super::{build_kind, copy_project, example_project, git, ratio, run_dbt, BenchError, Stat};
use crate::project::{self, ArtifactPaths};

/// The model the benchmark breaks, and how.
const MODEL_PATH: &str = "models/staging/stg_orders.sql";
const BREAK_FROM: &str = "    customer_id,\n";
const BREAK_TO: &str = "    custmer_id,\n";

/// The goal of issue #8: p50 overhead per incident.
const GOAL_P50_MS: f64 = 5.0;

/// Defaults of `bench overhead`, shared by a bare `dbt-ops bench`.
const DEFAULT_INCIDENTS: usize = 50;
const DEFAULT_WARMUP: usize = 2;
const DEFAULT_LLM_DELAY_MS: u64 = 100;
const DEFAULT_FLOOR_SAMPLES: usize = 20;
const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Size of a floor sample's payload: about a small event of the pipeline, and what
/// STACK.md's figures for this machine were measured with.
const FLOOR_PAYLOAD_BYTES: usize = 2048;

/// Where fixes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryChoice {
    /// A branch and commit per incident in the temp repository (`delivery.provider =
    /// "local_git"`): submit → branch.
    LocalGit,
    /// Shadow mode: the same checks, nothing written.
    Shadow,
}

/// Which rungs of the validation ladder run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderChoice {
    /// `dbt compile` only: `build_empty = false`, `downstream = "off"`,
    /// `run_with_data = "never"`, `data_check = "off"` — the fewest dbt calls per incident.
    Minimal,
    /// The `[validator]` settings as loaded (defaults unless dbt-ops.toml says otherwise).
    Configured,
}

/// Who drafts the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixBy {
    /// The deterministic rules (`rule:misspelt_column`): no LLM call.
    Rules,
    /// Rules off; a local fake LLM answers with the fix after `--llm-delay-ms`, so LLM
    /// time is in the wall time and is taken out again.
    Llm,
}

/// `dbt-ops bench overhead`.
#[derive(Debug, Clone, clap::Args)]
pub struct OverheadArgs {
    /// Incidents to measure.
    #[arg(long, default_value_t = DEFAULT_INCIDENTS)]
    pub incidents: usize,
    /// Incidents run first and not measured (the first starts the warm dbt worker).
    #[arg(long, default_value_t = DEFAULT_WARMUP)]
    pub warmup: usize,
    /// Where fixes go: a branch in a temp git repository, or shadow mode.
    #[arg(long, value_enum, default_value_t = DeliveryChoice::LocalGit)]
    pub delivery: DeliveryChoice,
    /// The validation ladder: `minimal` (dbt compile only) or `configured` ([validator]).
    #[arg(long, value_enum, default_value_t = LadderChoice::Minimal)]
    pub ladder: LadderChoice,
    /// Who drafts the fix: the rules, or a local fake LLM (rules off).
    #[arg(long, value_enum, default_value_t = FixBy::Rules)]
    pub fix_by: FixBy,
    /// The fake LLM's answer delay, with --fix-by llm.
    #[arg(long, default_value_t = DEFAULT_LLM_DELAY_MS)]
    pub llm_delay_ms: u64,
    /// Publish-with-ack samples of the bus floor taken after each incident.
    #[arg(long, default_value_t = DEFAULT_FLOOR_SAMPLES)]
    pub floor_samples: usize,
    /// Seconds to wait for each incident's outcome.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,
    /// The example dbt project (default: examples/coffee_shop above the working
    /// directory or the executable).
    #[arg(long)]
    pub example: Option<PathBuf>,
}

impl Default for OverheadArgs {
    fn default() -> Self {
        Self {
            incidents: DEFAULT_INCIDENTS,
            warmup: DEFAULT_WARMUP,
            delivery: DeliveryChoice::LocalGit,
            ladder: LadderChoice::Minimal,
            fix_by: FixBy::Rules,
            llm_delay_ms: DEFAULT_LLM_DELAY_MS,
            floor_samples: DEFAULT_FLOOR_SAMPLES,
            timeout: DEFAULT_TIMEOUT_SECS,
            example: None,
        }
    }
}

/// One measured incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSample {
    /// The incident.
    pub incident_id: String,
    /// Its trace.
    pub trace_id: String,
    /// `delivered` (a branch, or shadow's record of one) or `abandoned`.
    pub outcome: String,
    /// The delivery provider, or why it was abandoned.
    pub detail: String,
    /// Submit → outcome, in milliseconds.
    pub wall_ms: f64,
    /// Inside dbt, in milliseconds.
    pub dbt_ms: f64,
    /// dbt invocations.
    pub dbt_steps: u32,
    /// Inside LLM calls, in milliseconds.
    pub llm_ms: f64,
    /// LLM calls.
    pub llm_calls: u32,
    /// `wall_ms − dbt_ms − llm_ms`.
    pub overhead_ms: f64,
    /// Per hop and per half of the overhead (the report's names), in milliseconds; empty
    /// when a hop's span is missing (an abandoned incident).
    pub stages_ms: BTreeMap<String, f64>,
}

/// One part of the overhead, over the delivered incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStat {
    /// What it is.
    pub name: String,
    /// Its milliseconds per incident.
    pub ms: Stat,
}

/// One span name's time, over the delivered incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanStat {
    /// The span's name.
    pub name: String,
    /// How many such spans an incident had, on average.
    pub per_incident: f64,
    /// Their summed milliseconds per incident (an incident without one counts 0).
    pub ms: Stat,
}

/// What `bench overhead` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverheadReport {
    /// Incidents measured (warm-up excluded).
    pub incidents: usize,
    /// Incidents run first and not measured.
    pub warmup: usize,
    /// Measured incidents that got a branch (or shadow's record of one).
    pub delivered: usize,
    /// Measured incidents that were abandoned (not in the figures).
    pub abandoned: usize,
    /// `local_git` or `shadow`.
    pub delivery: DeliveryChoice,
    /// `minimal` or `configured`.
    pub ladder: LadderChoice,
    /// The validator settings the ladder ran with, as a reader checks them.
    pub ladder_settings: String,
    /// Whether a warm dbt worker (dbtRunner) ran the dbt steps.
    pub dbt_worker: bool,
    /// `rules` or `llm`.
    pub fix_by: FixBy,
    /// The fake LLM's delay, with `fix_by = llm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_delay_ms: Option<u64>,
    /// The log filter the services ran with (their logs go to stderr).
    pub log_filter: String,
    /// `debug build` or `release build`.
    pub build: String,
    /// Submit → outcome.
    pub wall_ms: Stat,
    /// Inside dbt.
    pub dbt_ms: Stat,
    /// Inside LLM calls.
    pub llm_ms: Stat,
    /// Wall minus dbt minus LLM: what dbt-ops adds.
    pub overhead_ms: Stat,
    /// The overhead by hop (start to start), then split into inside and between the
    /// handlers.
    pub stages: Vec<StageStat>,
    /// Every span name of the incidents' traces, the most time first: where the time
    /// inside the handlers goes. Spans nest, so these do not add up.
    #[serde(default)]
    pub spans: Vec<SpanStat>,
    /// One publish awaiting JetStream's ack, on the same server, sampled between
    /// incidents.
    pub floor_ms: Stat,
    /// Median overhead over the median floor.
    pub overhead_over_floor: f64,
    /// The goal for the median overhead.
    pub goal_p50_ms: f64,
    /// Whether the median overhead meets it.
    pub goal_met: bool,
    /// Every measured incident.
    pub samples: Vec<IncidentSample>,
}

/// The overhead's two halves in the report: inside the spans that start each hop, and
/// the bus between them.
const IN_HANDLERS: &str = "all hops: inside handlers (their publish acks included)";
const BETWEEN_HANDLERS: &str = "all hops: between handlers (deliveries, pulls)";

impl OverheadReport {
    /// The table `dbt-ops bench overhead` prints.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "Pipeline overhead per incident: submit → branch, with dbt and LLM time taken out\n",
        );
        out.push_str(&format!(
            "  incidents   {} measured one at a time ({} warm-up before, not counted): {} delivered, {} abandoned\n",
            self.incidents, self.warmup, self.delivered, self.abandoned
        ));
        out.push_str(&format!(
            "  system      private nats-server; detector, fixer, validator, delivery in this process; {}; service logs at {:?} on stderr\n",
            self.build, self.log_filter
        ));
        out.push_str(
            "  workload    examples/coffee_shop with stg_orders.customer_id misspelt, one dbt run's artifacts resubmitted under a new project name each time (a new incident id)\n",
        );
        out.push_str(&format!(
            "  fixer       {}\n",
            match (self.fix_by, self.llm_delay_ms) {
                (FixBy::Llm, Some(delay)) =>
                    format!("rules off; local fake LLM answering after {delay} ms"),
                _ => "rules (rule:misspelt_column, no LLM call)".to_owned(),
            }
        ));
        out.push_str(&format!(
            "  validator   {} ladder: {}; warm dbt worker {}\n",
            match self.ladder {
                LadderChoice::Minimal => "minimal",
                LadderChoice::Configured => "configured",
            },
            self.ladder_settings,
            if self.dbt_worker { "on" } else { "off" }
        ));
        out.push_str(&format!(
            "  delivery    {}\n\n",
            match self.delivery {
                DeliveryChoice::LocalGit => "local_git (a branch and commit per incident)",
                DeliveryChoice::Shadow => "shadow (checks only, nothing written)",
            }
        ));
        out.push_str(&format!(
            "  {:<58} {:>10} {:>10} {:>10}\n",
            "ms per incident", "p50", "p99", "mean"
        ));
        let row = |name: &str, stat: &Stat| {
            format!(
                "  {:<58} {:>10.3} {:>10.3} {:>10.3}\n",
                name, stat.p50, stat.p99, stat.mean
            )
        };
        out.push_str(&row("wall, submit → outcome", &self.wall_ms));
        out.push_str(&row("inside dbt (validator.dbt spans)", &self.dbt_ms));
        out.push_str(&row("inside LLM calls (gen_ai.chat spans)", &self.llm_ms));
        out.push_str(&row("overhead = wall − dbt − LLM", &self.overhead_ms));
        for stage in &self.stages {
            out.push_str(&row(&format!("  {}", stage.name), &stage.ms));
        }
        out.push_str(&row(
            &format!("bus floor: publish + ack ({} samples)", self.floor_ms.count),
            &self.floor_ms,
        ));
        if !self.spans.is_empty() {
            out.push_str(&format!(
                "\n  {:<50} {:>7} {:>10} {:>10} {:>10}\n",
                "by span, ms per incident (spans nest: no sum)", "count", "p50", "p99", "mean"
            ));
            for span in &self.spans {
                out.push_str(&format!(
                    "  {:<50} {:>7.1} {:>10.3} {:>10.3} {:>10.3}\n",
                    span.name, span.per_incident, span.ms.p50, span.ms.p99, span.ms.mean
                ));
            }
        }
        out.push('\n');
        out.push_str(&format!(
            "  overhead / floor (p50)   {:.1}×\n",
            self.overhead_over_floor
        ));
        out.push_str(&format!(
            "  goal: p50 overhead ≤ {} ms   {} (p50 {:.3} ms)\n",
            self.goal_p50_ms,
            if self.goal_met { "met" } else { "NOT met" },
            self.overhead_ms.p50
        ));
        out
    }
}

/// The broken project, ready to submit.
struct BrokenProject {
    /// Owns the repository and everything else of the run.
    _scratch: tempfile::TempDir,
    /// Where the nats-server keeps its store and the validator its workspaces.
    scratch: PathBuf,
    /// The project (and repository) directory.
    dir: PathBuf,
    /// The model file as it was before the breakage: the fix.
    original_sql: String,
}

/// Copies the example into a fresh git repository, breaks the model, commits, and runs
/// `dbt build` once (which must fail on the misspelt column).
fn prepare(example: &Path, dbt: &Path) -> Result<BrokenProject, BenchError> {
    let scratch = tempfile::tempdir()
        .map_err(|error| BenchError::Setup(format!("cannot create a temp dir: {error}")))?;
    let dir = scratch.path().join("coffee_shop");
    copy_project(example, &dir)?;
    git(&dir, &["init", "-q", "-b", "main"])?;
    git(&dir, &["add", "-A"])?;
    git(&dir, &["commit", "-q", "-m", "clean"])?;
    let file = dir.join(MODEL_PATH);
    let original_sql = std::fs::read_to_string(&file)
        .map_err(|error| BenchError::Setup(format!("cannot read {MODEL_PATH}: {error}")))?;
    if original_sql.matches(BREAK_FROM).count() != 1 {
        return Err(BenchError::Setup(format!(
            "{MODEL_PATH} of {} does not hold {BREAK_FROM:?} exactly once",
            example.display()
        )));
    }
    std::fs::write(&file, original_sql.replacen(BREAK_FROM, BREAK_TO, 1))
        .map_err(|error| BenchError::Setup(format!("cannot write {MODEL_PATH}: {error}")))?;
    git(&dir, &["commit", "-q", "-am", "break stg_orders"])?;
    let (ok, output) = run_dbt(dbt, &dir, &["build"])?;
    if ok || !output.contains("custmer_id") {
        let tail: Vec<&str> = output.lines().rev().take(8).collect();
        return Err(BenchError::Setup(format!(
            "the broken example should fail on custmer_id; dbt build said:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    Ok(BrokenProject {
        scratch: scratch.path().to_path_buf(),
        _scratch: scratch,
        dir,
        original_sql,
    })
}

/// The settings the private system runs with: the loaded ones for telemetry and the
/// validator's tools, defaults for the rest, and what the options choose.
fn system_settings(
    loaded: &Settings,
    options: &OverheadArgs,
    url: String,
    workspaces: &Path,
    dbt: &Path,
    llm: Option<&FakeLlm>,
) -> Settings {
    let mut settings = Settings {
        telemetry: loaded.telemetry.clone(),
        validator: loaded.validator.clone(),
        ..Settings::default()
    };
    settings.nats = NatsSettings {
        url,
        ..NatsSettings::default()
    };
    settings.validator.dbt_bin = dbt.display().to_string();
    settings.validator.workspace_root = workspaces.display().to_string();
    if options.ladder == LadderChoice::Minimal {
        settings.validator.build_empty = false;
        settings.validator.downstream = "off".into();
        settings.validator.run_with_data = "never".into();
        settings.validator.data_check = "off".into();
    }
    settings.delivery = DeliverySettings {
        provider: match options.delivery {
            DeliveryChoice::LocalGit => DeliveryProvider::LocalGit,
            DeliveryChoice::Shadow => DeliveryProvider::Shadow,
        },
        ..DeliverySettings::default()
    };
    // Never a real provider from the loaded settings: a benchmark makes no paid call.
    settings.fixer.providers = llm.map(FakeLlm::provider).into_iter().collect();
    settings.fixer.rules_enabled = options.fix_by == FixBy::Rules;
    settings
}

/// How one incident ended, as its outcome event said.
struct Outcome {
    incident_id: String,
    delivered: bool,
    detail: String,
}

fn outcome_of(bus: &Bus, message: &async_nats::Message) -> Option<Outcome> {
    let subject = message.subject.as_str();
    if subject == bus.subjects().mr_opened() {
        let opened = v1::MergeRequestOpened::decode(message.payload.clone()).ok()?;
        Some(Outcome {
            incident_id: opened.incident_id,
            delivered: true,
            detail: opened.provider,
        })
    } else if subject == bus.subjects().incident_abandoned() {
        let abandoned = v1::IncidentAbandoned::decode(message.payload.clone()).ok()?;
        Some(Outcome {
            incident_id: abandoned.incident_id,
            delivered: false,
            detail: format!("{}: {}", abandoned.reason, abandoned.detail),
        })
    } else {
        None
    }
}

/// One incident as run: what the spans are matched against afterwards.
struct Run {
    trace_id: String,
    outcome: Outcome,
    /// When the clock started, on the spans' clock.
    submitted_at: SystemTime,
    wall: Duration,
}

/// Runs the overhead benchmark; spans are read from `collector`, which must be the
/// exporter of this process's telemetry.
pub async fn run(
    options: &OverheadArgs,
    loaded: &Settings,
    collector: &SpanCollector,
) -> Result<OverheadReport, BenchError> {
    let example = example_project(options.example.as_deref())?;
    let dbt = dbtops_validator::dbt::find_dbt(&loaded.validator.dbt_bin);
    eprintln!(
        "bench overhead: a broken copy of {} and one real `dbt build` …",
        example.display()
    );
    let project = prepare(&example, &dbt)?;
    let paths = ArtifactPaths::for_project(&project.dir, None, None)
        .map_err(|error| BenchError::Setup(error.to_string()))?;
    let artifacts = paths
        .read()
        .map_err(|error| BenchError::Setup(error.to_string()))?;
    let base_project = project::project_ref(&paths.project_dir)
        .map_err(|error| BenchError::Setup(error.to_string()))?;

    let server = NatsServer::start(&project.scratch.join("nats"))?;
    let workspaces = project.scratch.join("workspaces");
    std::fs::create_dir_all(&workspaces)
        .map_err(|error| BenchError::Setup(format!("cannot create workspaces: {error}")))?;
    let llm = match options.fix_by {
        FixBy::Llm => Some(
            FakeLlm::start(
                Duration::from_millis(options.llm_delay_ms),
                MODEL_PATH,
                &project.original_sql,
                "missing_column",
            )
            .await?,
        ),
        FixBy::Rules => None,
    };
    let settings = system_settings(
        loaded,
        options,
        server.url(),
        &workspaces,
        &dbt,
        llm.as_ref(),
    );
    let bus = Bus::connect(&settings.nats).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let services = tokio::spawn(crate::system::run_all(
        bus.clone(),
        settings.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let measured = drive(options, &bus, &base_project, &artifacts).await;
    let _ = stop.send(());
    match services.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("note: the services stopped with: {error}"),
        Err(error) => eprintln!("note: the services' task failed: {error}"),
    }
    let (runs, floor) = measured?;
    drop(llm);
    // The client first: a server going away under it is logged as a disconnection.
    drop(bus);
    drop(server);
    Ok(report(options, &settings, &runs, &floor, collector))
}

/// Submits every incident in turn, waits for its outcome and samples the floor after
/// it. Returns the measured runs (warm-up left out) and the floor samples in ms.
async fn drive(
    options: &OverheadArgs,
    bus: &Bus,
    base_project: &v1::ProjectRef,
    artifacts: &dbtops_artifacts::RunArtifacts,
) -> Result<(Vec<Run>, Vec<f64>), BenchError> {
    let subscribe = |subject: String| async move {
        bus.client()
            .subscribe(subject)
            .await
            .map_err(|error| BenchError::System(format!("cannot subscribe: {error}")))
    };
    let opened = subscribe(bus.subjects().mr_opened()).await?;
    let abandoned = subscribe(bus.subjects().incident_abandoned()).await?;
    let mut outcomes = futures::stream::select(opened, abandoned);
    let store = bus.incidents().await?;
    let floor_subject = format!("{}.bench.floor", bus.settings().subject_prefix);
    let floor_payload = vec![b'x'; FLOOR_PAYLOAD_BYTES];
    let mut floor = Vec::new();
    let mut seen = BTreeSet::new();
    let mut runs = Vec::new();
    let total = options.warmup + options.incidents;
    for index in 0..total {
        let submission_id = uuid::Uuid::new_v4().to_string();
        let project = v1::ProjectRef {
            name: format!("{}_bench_{index:05}", base_project.name),
            ..base_project.clone()
        };
        let span =
            tracing::info_span!("submit", submission_id = %submission_id, project = %project.name);
        let trace_id = span
            .in_scope(dbtops_telemetry::current_trace_id)
            .ok_or_else(|| {
                BenchError::Setup(
                    "no trace: the log filter turns info spans off; run with telemetry.log_filter = \"info\" (and RUST_LOG unset)".into(),
                )
            })?;

        let submitted_at = SystemTime::now();
        let started = Instant::now();
        // Built per incident, inside the timed part, as `dbt-ops submit` builds it.
        let files = project::artifact_list(artifacts)
            .map_err(|error| BenchError::Setup(error.to_string()))?;
        bus.submit_run(project, files, &submission_id)
            .instrument(span)
            .await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(options.timeout);
        let outcome = loop {
            let message = tokio::time::timeout_at(deadline, outcomes.next())
                .await
                .map_err(|_| {
                    BenchError::Timeout(format!(
                        "incident {} of {total} had no outcome after {} s",
                        index + 1,
                        options.timeout
                    ))
                })?
                .ok_or_else(|| BenchError::System("the outcome subscription ended".into()))?;
            // A redelivered outcome of an earlier incident is not this one's.
            match outcome_of(bus, &message) {
                Some(outcome) if seen.insert(outcome.incident_id.clone()) => break outcome,
                _ => continue,
            }
        };
        let wall = started.elapsed();

        // Incidents are one at a time, so the first new outcome is this submission's;
        // the detector's record of the submission confirms it.
        let verdict = store
            .wait_for_submission(&submission_id, Duration::from_secs(30))
            .await?
            .ok_or_else(|| {
                BenchError::System(format!("no record of submission {submission_id}"))
            })?;
        if !verdict.new_incident_ids.contains(&outcome.incident_id) {
            return Err(BenchError::System(format!(
                "the outcome of {} arrived while waiting for submission {submission_id} (incidents {:?})",
                outcome.incident_id, verdict.new_incident_ids
            )));
        }
        if index >= options.warmup {
            for sample in 0..options.floor_samples {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(MESSAGE_ID, format!("floor.{index}.{sample}").as_str());
                let payload = floor_payload.clone();
                let sent = Instant::now();
                bus.publish_raw(&floor_subject, headers, payload.into())
                    .await?;
                floor.push(sent.elapsed().as_secs_f64() * 1e3);
            }
            runs.push(Run {
                trace_id,
                outcome,
                submitted_at,
                wall,
            });
        }
        let done = index + 1;
        if done == options.warmup || done % 10 == 0 || done == total {
            eprintln!(
                "bench overhead: {done}/{total} incidents ({} warm-up), last {:.1} ms submit → outcome",
                options.warmup,
                wall.as_secs_f64() * 1e3
            );
        }
    }
    Ok((runs, floor))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn report(
    options: &OverheadArgs,
    settings: &Settings,
    runs: &[Run],
    floor: &[f64],
    collector: &SpanCollector,
) -> OverheadReport {
    let traces = collector.by_trace();
    let mut samples = Vec::new();
    let mut delivered_times = Vec::new();
    for run in runs {
        let times = traces
            .get(&run.trace_id)
            .map(|spans| TraceTimes::of(spans))
            .unwrap_or_default();
        if run.outcome.delivered {
            delivered_times.push(times.by_name.clone());
        }
        let wall_ms = millis(run.wall);
        let dbt_ms = millis(times.dbt);
        let llm_ms = millis(times.llm);
        let overhead_ms = wall_ms - dbt_ms - llm_ms;
        let mut stages_ms = BTreeMap::new();
        if let Some(hops) = times.hops(run.submitted_at, run.wall) {
            let mut in_handlers = 0.0;
            for hop in &hops {
                in_handlers += hop.in_handler_ms;
                stages_ms.insert(hop.label.to_owned(), hop.total_ms);
            }
            stages_ms.insert(IN_HANDLERS.to_owned(), in_handlers);
            stages_ms.insert(BETWEEN_HANDLERS.to_owned(), overhead_ms - in_handlers);
        }
        samples.push(IncidentSample {
            incident_id: run.outcome.incident_id.clone(),
            trace_id: run.trace_id.clone(),
            outcome: if run.outcome.delivered {
                "delivered".into()
            } else {
                "abandoned".into()
            },
            detail: run.outcome.detail.clone(),
            wall_ms,
            dbt_ms,
            dbt_steps: times.dbt_steps,
            llm_ms,
            llm_calls: times.llm_calls,
            overhead_ms,
            stages_ms,
        });
    }
    let delivered: Vec<&IncidentSample> = samples
        .iter()
        .filter(|sample| sample.outcome == "delivered")
        .collect();
    let stat = |value: &dyn Fn(&IncidentSample) -> f64| {
        Stat::of(
            &delivered
                .iter()
                .map(|sample| value(sample))
                .collect::<Vec<_>>(),
        )
    };
    let stages = HOPS
        .iter()
        .map(|(_, label)| *label)
        .chain([IN_HANDLERS, BETWEEN_HANDLERS])
        .map(|name| StageStat {
            name: name.to_owned(),
            ms: Stat::of(
                &delivered
                    .iter()
                    .filter_map(|sample| sample.stages_ms.get(name).copied())
                    .collect::<Vec<_>>(),
            ),
        })
        .collect();
    let overhead_ms = stat(&|sample| sample.overhead_ms);
    let floor_ms = Stat::of(floor);
    let spans = span_stats(&delivered_times);
    let validator = &settings.validator;
    OverheadReport {
        incidents: runs.len(),
        warmup: options.warmup,
        delivered: delivered.len(),
        abandoned: samples.len() - delivered.len(),
        delivery: options.delivery,
        ladder: options.ladder,
        ladder_settings: ladder_description(validator),
        dbt_worker: validator.worker,
        fix_by: options.fix_by,
        llm_delay_ms: (options.fix_by == FixBy::Llm).then_some(options.llm_delay_ms),
        // As `dbtops_telemetry` decides: RUST_LOG wins over the setting.
        log_filter: std::env::var("RUST_LOG")
            .ok()
            .filter(|filter| !filter.is_empty())
            .unwrap_or_else(|| settings.telemetry.log_filter.clone()),
        build: build_kind(),
        wall_ms: stat(&|sample| sample.wall_ms),
        dbt_ms: stat(&|sample| sample.dbt_ms),
        llm_ms: stat(&|sample| sample.llm_ms),
        goal_met: overhead_ms.count > 0 && overhead_ms.p50 <= GOAL_P50_MS,
        overhead_over_floor: ratio(overhead_ms.p50, floor_ms.p50),
        overhead_ms,
        stages,
        spans,
        floor_ms,
        goal_p50_ms: GOAL_P50_MS,
        samples,
    }
}

/// Each span name's count and time per incident, the largest median first.
fn span_stats(incidents: &[BTreeMap<String, (u32, f64)>]) -> Vec<SpanStat> {
    let names: BTreeSet<&String> = incidents.iter().flat_map(BTreeMap::keys).collect();
    let mut stats: Vec<SpanStat> = names
        .into_iter()
        .map(|name| {
            let (counts, times): (Vec<f64>, Vec<f64>) = incidents
                .iter()
                .map(|spans| {
                    let (count, ms) = spans.get(name).copied().unwrap_or_default();
                    (f64::from(count), ms)
                })
                .unzip();
            SpanStat {
                name: name.clone(),
                per_incident: counts.iter().sum::<f64>() / counts.len().max(1) as f64,
                ms: Stat::of(&times),
            }
        })
        .collect();
    stats.sort_by(|a, b| b.ms.p50.total_cmp(&a.ms.p50).then(a.name.cmp(&b.name)));
    stats
}

/// The dbt rungs `validator` climbs, and the settings that decide them.
fn ladder_description(validator: &dbtops_settings::ValidatorSettings) -> String {
    let mut rungs = vec!["dbt compile"];
    if validator.build_empty {
        rungs.push("build --empty");
    }
    if validator.downstream != "off" {
        rungs.push("downstream children");
    }
    if validator.run_with_data != "never" {
        rungs.push("run with data (DuckDB)");
        if validator.data_check != "off" {
            rungs.push("data check");
        }
    }
    format!(
        "{} (validator.build_empty = {}, downstream = {:?}, run_with_data = {:?}, data_check = {:?})",
        rungs.join(", "),
        validator.build_empty,
        validator.downstream,
        validator.run_with_data,
        validator.data_check
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_summed_per_incident_and_ranked_by_their_median() {
        let incident = |spans: &[(&str, u32, f64)]| {
            spans
                .iter()
                .map(|(name, count, ms)| ((*name).to_owned(), (*count, *ms)))
                .collect::<BTreeMap<_, _>>()
        };
        let incidents = [
            incident(&[("kv.get", 3, 1.5), ("delivery.commit", 1, 8.0)]),
            incident(&[("kv.get", 2, 1.0), ("delivery.commit", 1, 6.0)]),
            // No KV read at all in this one: it counts as 0 ms, not as missing.
            incident(&[("delivery.commit", 1, 7.0)]),
        ];
        let stats = span_stats(&incidents);
        let names: Vec<&str> = stats.iter().map(|stat| stat.name.as_str()).collect();
        assert_eq!(names, ["delivery.commit", "kv.get"]);
        assert_eq!(stats[0].ms.p50, 7.0);
        assert_eq!(stats[0].per_incident, 1.0);
        assert_eq!(stats[1].ms.count, 3);
        assert_eq!(stats[1].ms.p50, 1.0);
        assert!((stats[1].per_incident - 5.0 / 3.0).abs() < 1e-9);
        assert!(span_stats(&[]).is_empty());
    }
}
