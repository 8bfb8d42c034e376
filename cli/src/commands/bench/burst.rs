//! `dbt-ops bench burst`: the fixer stage's throughput when a burst of incidents arrives
//! at once and every fix needs an LLM call, with 1, 2 and 4 fixer processes.
//!
//! The LLM is a local fake OpenAI-compatible server that answers every call with a valid
//! proposal after a fixed delay (2 s by default), so the figure is dbt-ops' ability to
//! overlap calls, not a model's speed. Each fixer is a separate OS process with its own
//! NATS connection and its own `fixer.concurrency`, bound to the same durable consumer,
//! as a deployment scales the fixer. The validator does not run: the burst is
//! `failure.detected` events published straight onto the bus, each with its incident
//! record written first (as the detector does), and the round ends when every incident
//! has a `fix.proposed`.
//!
//! The incident is a date compared with an integer that is not a date
//! (`order_date >= 2024`): DuckDB's "explicit cast is required". The `type_mismatch`
//! rule rewrites only integers that spell an ISO date, so the rules run and defer and
//! every incident reaches the LLM — the report counts the proposals whose strategy is
//! `llm:` to show it.
//!
//! Each round has its own subject prefix, stream and buckets on one nats-server, so
//! rounds share nothing but the machine. After a round the fixers are stopped and the
//! stream itself is read: every incident must have exactly one stored proposal.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbtops_bus::incidents::now_rfc3339;
use dbtops_bus::{stage_id, Bus, IncidentRecord, IncidentState, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::{NatsSettings, Settings};
use futures::StreamExt;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::fake_llm::FakeLlm;
use super::{build_kind, ratio, BenchError};

/// Defaults of `bench burst`, shared by a bare `dbt-ops bench`.
const DEFAULT_INCIDENTS: usize = 200;
const DEFAULT_LLM_DELAY_MS: u64 = 2_000;
const DEFAULT_FIXERS: [usize; 3] = [1, 2, 4];
/// `fixer.concurrency`'s own default.
const DEFAULT_CONCURRENCY: usize = 4;

/// The goal of issue #8: throughput with 4 fixers over throughput with 1.
const GOAL_RATIO_AT_4: f64 = 3.6;
/// Publishes of the burst awaiting their acks at once: the burst lands in well under a
/// second even for a thousand incidents.
const PUBLISH_WINDOW: usize = 64;
/// The durable consumer every fixer process binds.
const FIXER_DURABLE: &str = "fixer";

const MODEL_PATH: &str = "models/marts/customers.sql";
const BROKEN_LINE: &str = "      and order_date >= 2024\n";
const FIXED_LINE: &str = "      and year(order_date) >= 2024\n";
/// The example project's `customers` model with the broken line in `completed_orders`.
const BROKEN_SQL: &str = "with customers as (
    select
        customer_id,
        customer_name,
        email,
        signup_date,
        home_store_id,
        loyalty_points
    from {{ ref('stg_customers') }}
),

completed_orders as (
    select
        order_id,
        customer_id,
        order_date,
        order_total
    from {{ ref('orders') }}
    where order_status = 'completed'
      and order_date >= 2024
),

customer_orders as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as number_of_orders,
        sum(order_total) as lifetime_value
    from completed_orders
    group by customer_id
)

select
    c.customer_id,
    c.customer_name,
    c.email,
    c.signup_date,
    c.home_store_id,
    c.loyalty_points,
    co.first_order_date,
    co.last_order_date,
    coalesce(co.number_of_orders, 0) as number_of_orders,
    coalesce(co.lifetime_value, 0) as lifetime_value
from customers as c
left join customer_orders as co on c.customer_id = co.customer_id
";
/// DuckDB's words for it, as dbt reports them.
const ERROR_TEXT: &str = "Runtime Error in model customers (models/marts/customers.sql)
  Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required

  LINE 33:       and order_date >= 2024
                     ^";

/// `dbt-ops bench burst`.
#[derive(Debug, Clone, clap::Args)]
pub struct BurstArgs {
    /// Incidents in the burst (each round).
    #[arg(long, default_value_t = DEFAULT_INCIDENTS)]
    pub incidents: usize,
    /// How long the fake LLM takes to answer each call.
    #[arg(long, default_value_t = DEFAULT_LLM_DELAY_MS)]
    pub llm_delay_ms: u64,
    /// Fixer process counts, one round each (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_FIXERS)]
    pub fixers: Vec<usize>,
    /// Incidents one fixer process handles at once (`fixer.concurrency`).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// A fixer binary to run instead of this executable's `bench fixer-process` (e.g.
    /// target/release/dbt-ops-fixer); it is started with `--config FILE`.
    #[arg(long)]
    pub fixer_bin: Option<PathBuf>,
    /// Seconds one round may take before what has not arrived counts as lost (default:
    /// three times the ideal duration, plus a minute).
    #[arg(long)]
    pub timeout: Option<u64>,
}

impl Default for BurstArgs {
    fn default() -> Self {
        Self {
            incidents: DEFAULT_INCIDENTS,
            llm_delay_ms: DEFAULT_LLM_DELAY_MS,
            fixers: DEFAULT_FIXERS.to_vec(),
            concurrency: DEFAULT_CONCURRENCY,
            fixer_bin: None,
            timeout: None,
        }
    }
}

/// How a fixer process is started; `--config FILE` is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments before `--config`.
    pub args: Vec<String>,
}

impl FixerCommand {
    /// This executable's hidden `bench fixer-process`.
    pub fn this_executable() -> Result<Self, BenchError> {
        let program = std::env::current_exe()
            .map_err(|error| BenchError::Setup(format!("cannot find this executable: {error}")))?;
        Ok(Self {
            program,
            args: vec!["bench".into(), "fixer-process".into()],
        })
    }

    fn describe(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string());
        let mut words = vec![name];
        words.extend(self.args.iter().cloned());
        words.join(" ")
    }
}

/// One round: a burst against some number of fixer processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstRound {
    /// Fixer processes.
    pub fixers: usize,
    /// From the first publish of the burst to the last incident's first proposal.
    pub seconds: f64,
    /// Incidents with a proposal per second.
    pub per_second: f64,
    /// `per_second` over the baseline round's.
    pub ratio: f64,
    /// What perfect overlap would give: fixers × concurrency calls every LLM delay.
    pub ideal_per_second: f64,
    /// How long publishing the burst took, in milliseconds.
    pub publish_ms: f64,
    /// Incidents with at least one stored proposal.
    pub proposed: usize,
    /// Stored `fix.proposed` messages of the round's incidents.
    pub proposal_messages: usize,
    /// Incidents with no stored proposal.
    pub lost: usize,
    /// Stored proposals beyond the first, over all incidents.
    pub duplicates: usize,
    /// Proposals drafted by the LLM (strategy `llm:…`).
    pub via_llm: usize,
    /// Incidents abandoned.
    pub abandoned: usize,
    /// Messages dead-lettered by the fixers.
    pub dead_letters: usize,
    /// Calls the fake LLM received.
    pub llm_calls: usize,
    /// The most LLM calls in progress at once.
    pub llm_peak_in_flight: usize,
}

/// What `bench burst` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurstReport {
    /// Incidents per round.
    pub incidents: usize,
    /// The fake LLM's delay.
    pub llm_delay_ms: u64,
    /// `fixer.concurrency` of each process.
    pub concurrency: usize,
    /// How the fixer processes were started.
    pub fixer_command: String,
    /// `debug build` or `release build` (of the fixers, when they are this executable).
    pub build: String,
    /// The rounds, in the order run.
    pub rounds: Vec<BurstRound>,
    /// The fixer count the ratios are relative to (1 when it ran, else the first).
    pub baseline_fixers: usize,
    /// The goal for the ratio at 4 fixers.
    pub goal_ratio_at_4: f64,
    /// The ratio at 4 fixers, when that round ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_at_4: Option<f64>,
    /// Whether the goal was met, when the 4-fixer round ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_met: Option<bool>,
    /// Every incident of every round got exactly one proposal.
    pub nothing_lost: bool,
}

impl BurstReport {
    /// The table `dbt-ops bench burst` prints.
    pub fn table(&self) -> String {
        let mut out = format!(
            "Fixer burst: {} incidents at once per round, every fix an LLM call answered after {} ms (local fake)\n",
            self.incidents, self.llm_delay_ms
        );
        out.push_str(&format!(
            "  fixers      separate processes ({}), {} incidents at once each, one NATS connection each, one durable consumer; {}\n",
            self.fixer_command, self.concurrency, self.build
        ));
        out.push_str(
            "  incidents   failure.detected published straight to the bus (no validator): type_mismatch the rules defer on\n\n",
        );
        out.push_str(&format!(
            "  {:>6} {:>9} {:>11} {:>7} {:>10} {:>8} {:>5} {:>4} {:>7} {:>9} {:>9}\n",
            "fixers",
            "seconds",
            "incidents/s",
            "ratio",
            "ideal/s",
            "proposed",
            "lost",
            "dup",
            "via LLM",
            "LLM calls",
            "peak LLM"
        ));
        for round in &self.rounds {
            out.push_str(&format!(
                "  {:>6} {:>9.2} {:>11.2} {:>6.2}× {:>10.2} {:>8} {:>5} {:>4} {:>7} {:>9} {:>9}\n",
                round.fixers,
                round.seconds,
                round.per_second,
                round.ratio,
                round.ideal_per_second,
                round.proposed,
                round.lost,
                round.duplicates,
                round.via_llm,
                round.llm_calls,
                round.llm_peak_in_flight
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "  ratios are throughput over the {}-fixer round's, measured in this run\n",
            self.baseline_fixers
        ));
        if self.nothing_lost {
            out.push_str("  nothing lost: every incident got exactly one proposal\n");
        } else {
            let lost: usize = self.rounds.iter().map(|round| round.lost).sum();
            let duplicates: usize = self.rounds.iter().map(|round| round.duplicates).sum();
            out.push_str(&format!(
                "  LOST OR DUPLICATED: {lost} incident(s) without a proposal, {duplicates} extra proposal(s)\n"
            ));
        }
        match (self.ratio_at_4, self.goal_met) {
            (Some(at_4), Some(met)) => out.push_str(&format!(
                "  goal: ≥ {}× at 4 fixers   {} ({:.2}×)\n",
                self.goal_ratio_at_4,
                if met { "met" } else { "NOT met" },
                at_4
            )),
            _ => out.push_str(&format!(
                "  goal: ≥ {}× at 4 fixers   not measured (no 4-fixer round)\n",
                self.goal_ratio_at_4
            )),
        }
        out
    }
}

/// Runs one round per entry of `options.fixers` on one private nats-server.
pub async fn run(options: &BurstArgs, fixer: &FixerCommand) -> Result<BurstReport, BenchError> {
    if options.incidents == 0 || options.fixers.is_empty() || options.fixers.contains(&0) {
        return Err(BenchError::Setup(
            "--incidents and every --fixers count must be at least 1".into(),
        ));
    }
    let scratch = tempfile::tempdir()
        .map_err(|error| BenchError::Setup(format!("cannot create a temp dir: {error}")))?;
    let server = NatsServer::start(&scratch.path().join("nats"))?;
    let mut rounds = Vec::new();
    for (index, &count) in options.fixers.iter().enumerate() {
        eprintln!(
            "bench burst: round {}/{}: {} incidents, {count} fixer process(es) …",
            index + 1,
            options.fixers.len(),
            options.incidents
        );
        let round = run_round(options, fixer, &server, scratch.path(), index, count).await?;
        eprintln!(
            "bench burst: {count} fixer(s): {:.2} incidents/s, {} lost",
            round.per_second, round.lost
        );
        rounds.push(round);
    }
    let baseline = rounds
        .iter()
        .find(|round| round.fixers == 1)
        .or(rounds.first())
        .map(|round| (round.fixers, round.per_second))
        .unwrap_or((1, 0.0));
    for round in &mut rounds {
        round.ratio = ratio(round.per_second, baseline.1);
    }
    let ratio_at_4 = (baseline.0 == 1)
        .then(|| rounds.iter().find(|round| round.fixers == 4))
        .flatten()
        .map(|round| round.ratio);
    Ok(BurstReport {
        incidents: options.incidents,
        llm_delay_ms: options.llm_delay_ms,
        concurrency: options.concurrency,
        fixer_command: fixer.describe(),
        build: build_kind(),
        nothing_lost: rounds
            .iter()
            .all(|round| round.lost == 0 && round.duplicates == 0),
        baseline_fixers: baseline.0,
        goal_ratio_at_4: GOAL_RATIO_AT_4,
        goal_met: ratio_at_4.map(|at_4| at_4 >= GOAL_RATIO_AT_4),
        ratio_at_4,
        rounds,
    })
}

async fn run_round(
    options: &BurstArgs,
    fixer: &FixerCommand,
    server: &NatsServer,
    scratch: &Path,
    index: usize,
    count: usize,
) -> Result<BurstRound, BenchError> {
    let nats = NatsSettings {
        url: server.url(),
        stream: format!("BENCH{index}"),
        subject_prefix: format!("bench{index}"),
        incidents_bucket: format!("bench{index}-incidents"),
        artifacts_bucket: format!("bench{index}-artifacts"),
        ..NatsSettings::default()
    };
    let bus = Bus::connect(&nats).await?;
    let delay = Duration::from_millis(options.llm_delay_ms);
    let fixed_sql = BROKEN_SQL.replacen(BROKEN_LINE, FIXED_LINE, 1);
    let llm = FakeLlm::start(delay, MODEL_PATH, &fixed_sql, "type_mismatch").await?;
    let dir = scratch.join(format!("round-{index}"));
    std::fs::create_dir_all(&dir)
        .map_err(|error| BenchError::Setup(format!("cannot create {}: {error}", dir.display())))?;
    let config = dir.join("dbt-ops.toml");
    std::fs::write(&config, config_toml(&nats, options.concurrency, &llm)).map_err(|error| {
        BenchError::Setup(format!("cannot write the fixers' settings: {error}"))
    })?;
    // The fixers read this file; a mistake in it should stop the bench here, not in them.
    Settings::load_from(Some(&config), Vec::<(String, String)>::new())
        .map_err(|error| BenchError::Setup(format!("the fixers' settings: {error}")))?;

    let mut processes = FixerProcesses::spawn(fixer, &config, &dir, count)?;
    wait_until_pulling(&bus, count, &mut processes).await?;

    let store = bus.incidents().await?;
    let incidents: Vec<v1::FailureDetected> = (0..options.incidents)
        .map(|number| incident(index, number))
        .collect();
    let ids: BTreeSet<String> = incidents
        .iter()
        .map(|incident| incident.incident_id.clone())
        .collect();
    // As the detector does: the record first, then the event.
    for incident in &incidents {
        store.create(&record_of(incident)).await?;
    }
    let subjects = bus.subjects().clone();
    let mut events = futures::stream::select_all([
        subscribe(&bus, subjects.fix_proposed()).await?,
        subscribe(&bus, subjects.incident_abandoned()).await?,
        subscribe(&bus, subjects.dead_letter("fixer")).await?,
    ]);

    let detected = subjects.failure_detected();
    let started = Instant::now();
    let published: Vec<Result<_, _>> = futures::stream::iter(incidents.iter())
        .map(|incident| {
            let message_id = stage_id(&incident.incident_id, 0, "detected", 0);
            let subject = &detected;
            let bus = &bus;
            async move { bus.publish(subject, &message_id, incident).await }
        })
        .buffer_unordered(PUBLISH_WINDOW)
        .collect()
        .await;
    let publish_ms = started.elapsed().as_secs_f64() * 1e3;
    for result in published {
        result?;
    }

    let ideal_per_second =
        (count * options.concurrency.max(1)) as f64 / delay.as_secs_f64().max(1e-3);
    let round_timeout = options.timeout.map(Duration::from_secs).unwrap_or_else(|| {
        Duration::from_secs_f64(3.0 * options.incidents as f64 / ideal_per_second)
            + Duration::from_secs(60)
    });
    let deadline = tokio::time::Instant::now() + round_timeout;
    let mut proposed = BTreeSet::new();
    let mut ended = BTreeSet::new();
    let mut dead_letters = 0usize;
    let mut last_proposal = None;
    // Until every incident has a proposal, or every one is accounted for some other way,
    // or the round times out (what is missing then counts as lost).
    while proposed.len() < ids.len() && proposed.len() + ended.len() + dead_letters < ids.len() {
        let Ok(next) = tokio::time::timeout_at(deadline, events.next()).await else {
            eprintln!(
                "bench burst: round timed out after {} s with {} of {} proposals",
                round_timeout.as_secs(),
                proposed.len(),
                ids.len()
            );
            break;
        };
        let Some(message) = next else {
            return Err(BenchError::System("the event subscription ended".into()));
        };
        let subject = message.subject.as_str();
        if subject == subjects.fix_proposed() {
            if let Ok(event) = v1::FixProposed::decode(message.payload.clone()) {
                let id = event.incident.map(|i| i.incident_id).unwrap_or_default();
                if ids.contains(&id) && proposed.insert(id) {
                    last_proposal = Some(Instant::now());
                }
            }
        } else if subject == subjects.incident_abandoned() {
            if let Ok(event) = v1::IncidentAbandoned::decode(message.payload.clone()) {
                if !proposed.contains(&event.incident_id) {
                    ended.insert(event.incident_id);
                }
            }
        } else {
            dead_letters += 1;
        }
    }
    let seconds = last_proposal
        .unwrap_or_else(Instant::now)
        .duration_since(started)
        .as_secs_f64();
    processes.stop().await;

    // The stream, not the live subscription, is what counts: read it back after the
    // fixers stopped, so a late or repeated proposal is seen too.
    let mut per_incident: BTreeMap<String, usize> = BTreeMap::new();
    let mut via_llm = 0;
    let mut proposal_messages = 0;
    for stored in bus.replay(&subjects.fix_proposed()).await? {
        let Ok(event) = stored.decode::<v1::FixProposed>() else {
            continue;
        };
        let id = event
            .incident
            .map(|incident| incident.incident_id)
            .unwrap_or_default();
        if !ids.contains(&id) {
            continue;
        }
        proposal_messages += 1;
        *per_incident.entry(id).or_default() += 1;
        if event
            .proposal
            .is_some_and(|proposal| proposal.strategy.starts_with("llm:"))
        {
            via_llm += 1;
        }
    }
    let abandoned = bus.replay(&subjects.incident_abandoned()).await?.len();
    let dead_letters = bus.replay(&subjects.dead_letter("fixer")).await?.len();
    let proposed_count = per_incident.len();
    let per_second = if seconds > 0.0 {
        proposed.len() as f64 / seconds
    } else {
        0.0
    };
    Ok(BurstRound {
        fixers: count,
        seconds,
        per_second,
        ratio: 0.0,
        ideal_per_second,
        publish_ms,
        proposed: proposed_count,
        proposal_messages,
        lost: ids.len() - proposed_count,
        duplicates: per_incident.values().map(|n| n.saturating_sub(1)).sum(),
        via_llm,
        abandoned,
        dead_letters,
        llm_calls: llm.calls(),
        llm_peak_in_flight: llm.peak_in_flight(),
    })
}

async fn subscribe(bus: &Bus, subject: String) -> Result<async_nats::Subscriber, BenchError> {
    bus.client()
        .subscribe(subject)
        .await
        .map_err(|error| BenchError::System(format!("cannot subscribe: {error}")))
}

/// The fixers' settings file: this round's bus, the fake LLM as the only provider, the
/// rules on (they run and defer), logs at `info` into each process's log file.
fn config_toml(nats: &NatsSettings, concurrency: usize, llm: &FakeLlm) -> String {
    let quoted = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let provider = llm.provider();
    format!(
        "[nats]\nurl = {url}\nstream = {stream}\nsubject_prefix = {prefix}\n\
         incidents_bucket = {incidents}\nartifacts_bucket = {artifacts}\n\n\
         [telemetry]\nlog_filter = \"info\"\n\n\
         [fixer]\nconcurrency = {concurrency}\nrules_enabled = true\n\n\
         [[fixer.providers]]\nname = {name}\nkind = \"openai\"\nbase_url = {base_url}\n\
         api_key = {api_key}\nmodel = {model}\ntimeout_secs = {timeout}\n",
        url = quoted(&nats.url),
        stream = quoted(&nats.stream),
        prefix = quoted(&nats.subject_prefix),
        incidents = quoted(&nats.incidents_bucket),
        artifacts = quoted(&nats.artifacts_bucket),
        name = quoted(&provider.name),
        base_url = quoted(&provider.base_url),
        api_key = quoted(provider.api_key.expose()),
        model = quoted(&provider.model),
        timeout = provider.timeout_secs,
    )
}

/// Incident `number` of round `round`: the same failure under a project name of its own,
/// so its id is as the detector would make it and unique.
fn incident(round: usize, number: usize) -> v1::FailureDetected {
    let project_name = format!("coffee_shop_burst_{round}_{number:05}");
    let unique_id = "model.coffee_shop.customers";
    let signature = "type_mismatch:Binder Error: Cannot compare values of type DATE and type INTEGER_LITERAL - an explicit cast is required";
    let parent = |name: &str, columns: &[&str]| v1::ParentColumns {
        unique_id: format!("model.coffee_shop.{name}"),
        name: name.to_owned(),
        columns: columns.iter().map(|column| (*column).to_owned()).collect(),
        origin: "manifest".into(),
    };
    v1::FailureDetected {
        incident_id: dbtops_artifacts::incident_id(&project_name, unique_id, signature),
        submission_id: format!("burst-{round}-{number}"),
        project: Some(v1::ProjectRef {
            name: project_name,
            project_dir: "/bench/coffee_shop".into(),
            model_paths: vec!["models".into()],
            ..Default::default()
        }),
        model: Some(v1::ModelRef {
            unique_id: unique_id.into(),
            name: "customers".into(),
            path: MODEL_PATH.into(),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::TypeMismatch as i32,
            message: ERROR_TEXT.into(),
            signature: signature.into(),
            needs_human: false,
        }),
        evidence: Some(v1::Evidence {
            model_sql: BROKEN_SQL.into(),
            parents: vec![
                parent(
                    "stg_customers",
                    &[
                        "customer_id",
                        "customer_name",
                        "email",
                        "signup_date",
                        "home_store_id",
                        "loyalty_points",
                    ],
                ),
                parent(
                    "orders",
                    &[
                        "order_id",
                        "customer_id",
                        "store_id",
                        "order_date",
                        "order_status",
                        "order_total",
                    ],
                ),
            ],
            project_node_names: ["stg_customers", "stg_orders", "orders", "customers"]
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            dbt_version: "1.11.16".into(),
            adapter: "duckdb".into(),
            error_location: Some(v1::ErrorLocation {
                statement_line: 33,
                compiled_line: 20,
                model_line: 20,
                model_line_text: BROKEN_LINE.trim_end().into(),
                method: "line_text".into(),
            }),
            ..Default::default()
        }),
        detected_at: now_rfc3339(),
        ..Default::default()
    }
}

/// The incident's record as the detector writes it before publishing.
fn record_of(incident: &v1::FailureDetected) -> IncidentRecord {
    let model = incident.model.clone().unwrap_or_default();
    IncidentRecord {
        incident_id: incident.incident_id.clone(),
        project: incident
            .project
            .as_ref()
            .map(|project| project.name.clone())
            .unwrap_or_default(),
        unique_id: model.unique_id,
        model: model.name,
        model_path: model.path,
        class: "type_mismatch".into(),
        state: IncidentState::Detected,
        generation: 0,
        attempts: 0,
        branch: None,
        url: None,
        reason: None,
        detail: None,
        recurrences: 0,
        first_seen: now_rfc3339(),
        last_seen: now_rfc3339(),
        updated_at: now_rfc3339(),
        trace_id: None,
        last_submission_id: incident.submission_id.clone(),
        delivered_repo: None,
    }
}

/// Waits until `count` pull requests wait on the fixers' durable consumer: every process
/// has bound it and is pulling. A process that exits meanwhile is an error with its log.
async fn wait_until_pulling(
    bus: &Bus,
    count: usize,
    processes: &mut FixerProcesses,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(problem) = processes.exited() {
            return Err(BenchError::FixerProcess(problem));
        }
        let waiting = consumer_waiting(bus).await;
        if waiting >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::FixerProcess(format!(
                "{waiting} of {count} fixer processes pulling after 60 s; their logs:\n{}",
                processes.logs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pull requests waiting on the fixers' durable consumer (0 while it does not exist).
async fn consumer_waiting(bus: &Bus) -> usize {
    let Ok(stream) = bus.jetstream().get_stream(&bus.settings().stream).await else {
        return 0;
    };
    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
        stream.get_consumer(FIXER_DURABLE).await;
    let Ok(mut consumer) = consumer else {
        return 0;
    };
    consumer
        .info()
        .await
        .map(|info| info.num_waiting)
        .unwrap_or(0)
}

/// One fixer process and its log.
struct FixerProcess {
    child: Child,
    log: PathBuf,
}

/// The round's fixer processes; dropping them kills what still runs.
struct FixerProcesses {
    processes: Vec<FixerProcess>,
}

impl FixerProcesses {
    fn spawn(
        command: &FixerCommand,
        config: &Path,
        dir: &Path,
        count: usize,
    ) -> Result<Self, BenchError> {
        let mut processes = Self {
            processes: Vec::new(),
        };
        for number in 0..count {
            let log = dir.join(format!("fixer-{number}.log"));
            let log_file = File::create(&log).map_err(|error| {
                BenchError::Setup(format!("cannot create {}: {error}", log.display()))
            })?;
            let mut process = Command::new(&command.program);
            process
                .args(&command.args)
                .arg("--config")
                .arg(config)
                // An empty directory: no dbt-ops.toml there to be picked up by accident.
                .current_dir(dir)
                // Piped and kept open: the process ends when the bench closes it or dies.
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log_file));
            // The settings file alone decides, not the bench's own environment.
            for (key, _) in std::env::vars() {
                if key.starts_with("DBT_OPS__")
                    || key == "NATS_URL"
                    || key == "RUST_LOG"
                    || key.starts_with("OTEL_")
                {
                    process.env_remove(key);
                }
            }
            let child = process.spawn().map_err(|error| {
                BenchError::FixerProcess(format!(
                    "cannot start {}: {error}",
                    command.program.display()
                ))
            })?;
            processes.processes.push(FixerProcess { child, log });
        }
        Ok(processes)
    }

    /// A description of the first process that has exited, with the end of its log.
    fn exited(&mut self) -> Option<String> {
        self.processes.iter_mut().find_map(|process| {
            let status = process.child.try_wait().ok().flatten()?;
            Some(format!(
                "pid {} exited with {status}:\n{}",
                process.child.id(),
                log_tail(&process.log)
            ))
        })
    }

    fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|process| {
                format!(
                    "--- {} ---\n{}\n",
                    process.log.display(),
                    log_tail(&process.log)
                )
            })
            .collect()
    }

    /// Stops every process as a deployment would (end of input, then SIGTERM: drain what
    /// is in flight), killing what still runs after 30 s.
    async fn stop(&mut self) {
        for process in &mut self.processes {
            drop(process.child.stdin.take());
            // For a `--fixer-bin` that does not watch its input. A failure here only
            // means the process is gone already.
            let _ = Command::new("kill")
                .args(["-TERM", &process.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && self
                .processes
                .iter_mut()
                .any(|process| matches!(process.child.try_wait(), Ok(None)))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
    }

    fn kill(&mut self) {
        for process in &mut self.processes {
            if matches!(process.child.try_wait(), Ok(None)) {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

impl Drop for FixerProcesses {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_incident_is_broken_once_and_the_answer_fixes_that_line() {
        assert_eq!(BROKEN_SQL.matches(BROKEN_LINE).count(), 1);
        let fixed = BROKEN_SQL.replacen(BROKEN_LINE, FIXED_LINE, 1);
        assert_ne!(fixed, BROKEN_SQL);
        let first = incident(0, 0);
        let second = incident(0, 1);
        assert_ne!(first.incident_id, second.incident_id);
        assert_eq!(first.incident_id.len(), 16);
        assert_eq!(incident(1, 0).incident_id, incident(1, 0).incident_id);
        assert_ne!(incident(1, 0).incident_id, first.incident_id);
    }

    #[test]
    fn the_fixers_settings_file_loads() {
        let nats = NatsSettings {
            url: "nats://127.0.0.1:4999".into(),
            stream: "BENCH0".into(),
            subject_prefix: "bench0".into(),
            incidents_bucket: "bench0-incidents".into(),
            artifacts_bucket: "bench0-artifacts".into(),
            ..NatsSettings::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let llm = runtime
            .block_on(FakeLlm::start(
                Duration::from_millis(1),
                MODEL_PATH,
                "select 1",
                "x",
            ))
            .expect("fake starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dbt-ops.toml");
        std::fs::write(&path, config_toml(&nats, 3, &llm)).expect("write");
        let settings = Settings::load_from(Some(&path), Vec::<(String, String)>::new())
            .expect("the file loads");
        assert_eq!(settings.nats, nats);
        assert_eq!(settings.fixer.concurrency, 3);
        assert_eq!(settings.fixer.providers, vec![llm.provider()]);
        assert_eq!(
            settings.fixer.providers[0].name,
            super::super::fake_llm::PROVIDER_NAME
        );
        drop(llm);
    }
}
