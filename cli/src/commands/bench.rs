//! `dbt-ops bench`: two measurements of the whole system on this machine, each reported
//! as ratios taken in the same run — absolute figures on a shared two-core machine are
//! noise from one run to the next, a ratio of two figures taken side by side is not.
//!
//! - `overhead`: what dbt-ops itself adds to an incident. Incidents go through the real
//!   system (a private nats-server, the four services in this process, real dbt, a local
//!   git branch or shadow delivery) one at a time; per incident, the wall time from submit
//!   to outcome minus the time inside dbt invocations and LLM calls, read from the
//!   services' own spans. Beside it, the bus's floor on the same server: the latency of
//!   one publish awaiting JetStream's ack.
//! - `burst`: the fixer stage's throughput when many incidents arrive at once and every
//!   fix needs an LLM call of known latency (a local fake OpenAI-compatible server), with
//!   1, 2 and 4 fixer processes — and that every incident got exactly one proposal.
//!
//! With no subcommand both run, with their defaults. `bench fixer-process` (hidden) is one
//! fixer process of the burst: the same `dbtops_fixer::run` as `dbt-ops-fixer`, started
//! from this executable so the benchmark always runs the code it was built with.
//!
//! Module layout: `overhead` and `burst` are the two benchmarks, `spans` the in-memory
//! span exporter `overhead` reads, `fake_llm` the fixed-delay model both can use.

mod burst;
mod fake_llm;
mod overhead;
mod spans;

use std::io::Read;
use std::path::{Path, PathBuf};

use dbtops_settings::Settings;
use dbtops_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

pub use burst::{BurstArgs, BurstReport, BurstRound, FixerCommand};
pub use overhead::{
    DeliveryChoice, FixBy, IncidentSample, LadderChoice, OverheadArgs, OverheadReport, StageStat,
};
pub use spans::{SpanCollector, SpanTiming, TraceTimes};

/// Why a benchmark could not run (a benchmark that measures badly is not an error).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something the benchmark needs is missing or could not be prepared (the example
    /// project, dbt, a temp dir, a port).
    #[error("setup: {0}")]
    Setup(String),
    /// The bus or the services failed.
    #[error("system: {0}")]
    System(String),
    /// A fixer process would not start or stopped early.
    #[error("fixer process: {0}")]
    FixerProcess(String),
    /// An incident did not reach an outcome in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Telemetry could not be set up.
    #[error(transparent)]
    Telemetry(#[from] dbtops_telemetry::TelemetryError),
    /// The report could not be written.
    #[error("output: {0}")]
    Output(String),
    /// The burst lost or duplicated a proposal (the report says where).
    #[error("{0}")]
    Lost(String),
}

impl From<dbtops_bus::BusError> for BenchError {
    fn from(error: dbtops_bus::BusError) -> Self {
        BenchError::System(error.to_string())
    }
}

/// `dbt-ops bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark; none: both, with their defaults.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Print the report as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The benchmarks.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Pipeline overhead per incident: submit → branch, with dbt and LLM time taken out,
    /// beside the bus's publish-with-ack floor measured on the same server.
    Overhead(OverheadArgs),
    /// Fixer throughput under a burst of incidents that all need a (fake, fixed-delay)
    /// LLM call, with 1, 2 and 4 fixer processes; checks nothing is lost.
    Burst(BurstArgs),
    /// One fixer process for `bench burst`: runs until SIGTERM, ctrl-c or the end of its
    /// standard input (the benchmark closing it, or dying).
    #[command(hide = true)]
    FixerProcess,
}

/// What `dbt-ops bench` measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchReport {
    /// The overhead benchmark, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<OverheadReport>,
    /// The burst benchmark, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstReport>,
}

impl BenchReport {
    /// The tables `dbt-ops bench` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(overhead) = &self.overhead {
            out.push_str(&overhead.table());
        }
        if let Some(burst) = &self.burst {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&burst.table());
        }
        out
    }
}

/// Median, 99th percentile and mean of some figures (nearest rank), and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// How many values.
    pub count: usize,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The mean.
    pub mean: f64,
}

impl Stat {
    /// The statistics of `values`; all zero when there are none.
    pub fn of(values: &[f64]) -> Self {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return Self::default();
        }
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Self {
            count: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        }
    }
}

/// Runs what `args` asks for and prints the report on standard output.
pub async fn run(args: BenchArgs, settings: Settings) -> Result<(), BenchError> {
    let (overhead_args, burst_args) = match args.command {
        Some(BenchCommand::FixerProcess) => return fixer_process(settings).await,
        Some(BenchCommand::Overhead(overhead)) => (Some(overhead), None),
        Some(BenchCommand::Burst(burst)) => (None, Some(burst)),
        None => (Some(OverheadArgs::default()), Some(BurstArgs::default())),
    };
    // Spans go to memory, where the overhead benchmark reads them back. Their level is
    // the log filter's: at `info` (the default, as under `dbt-ops up`) the services log
    // to stderr as they would in production.
    let collector = SpanCollector::default();
    let _telemetry = dbtops_telemetry::init_with_exporter(
        &TelemetryConfig {
            service_name: "dbt-ops-bench".into(),
            otlp_endpoint: None,
            log_filter: settings.telemetry.log_filter.clone(),
            json_logs: settings.telemetry.log_format == "json",
        },
        collector.clone(),
    )?;
    let mut report = BenchReport::default();
    if let Some(options) = overhead_args {
        report.overhead = Some(overhead::run(&options, &settings, &collector).await?);
    }
    if let Some(options) = burst_args {
        let fixer = match &options.fixer_bin {
            Some(program) => FixerCommand {
                program: program.clone(),
                args: Vec::new(),
            },
            None => FixerCommand::this_executable()?,
        };
        report.burst = Some(burst::run(&options, &fixer).await?);
    }
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|error| BenchError::Output(error.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", report.table());
    }
    match &report.burst {
        Some(burst) if !burst.nothing_lost => Err(BenchError::Lost(
            "the burst lost or duplicated proposals: not every incident got exactly one".into(),
        )),
        _ => Ok(()),
    }
}

/// One fixer process of the burst benchmark: `dbt-ops-fixer`'s `main`, plus an exit when
/// standard input ends, so a benchmark that dies leaves no fixer behind.
async fn fixer_process(settings: Settings) -> Result<(), BenchError> {
    let _telemetry = dbtops_telemetry::init(&TelemetryConfig::from_settings(
        "dbt-ops-fixer",
        &settings.telemetry,
    ))?;
    let bus = dbtops_bus::Bus::connect(&settings.nats).await?;
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: tokio's stdin needs a feature this crate does not enable, and a
    // blocking read is all this needs.
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(read) if read > 0) {}
        let _ = closed.send(());
    });
    let shutdown = async move {
        tokio::select! {
            _ = dbtops_bus::shutdown::signal() => {}
            _ = stdin_closed => {}
        }
    };
    dbtops_fixer::run(bus, settings, shutdown)
        .await
        .map_err(|error| BenchError::System(error.to_string()))
}

/// Copies a dbt project, leaving out what a run leaves behind.
fn copy_project(from: &Path, to: &Path) -> Result<(), BenchError> {
    super::scratch::copy_project(from, to, &[]).map_err(BenchError::Setup)
}

/// Runs git in `dir`; its stdout, or an error with its stderr.
fn git(dir: &Path, args: &[&str]) -> Result<String, BenchError> {
    super::scratch::git(dir, ("dbt-ops bench", "bench@dbt-ops"), args).map_err(BenchError::Setup)
}

/// Runs dbt in `project` with its own profiles.yml; whether it passed, and its output.
fn run_dbt(dbt: &Path, project: &Path, args: &[&str]) -> Result<(bool, String), BenchError> {
    super::scratch::run_dbt(dbt, project, args).map_err(BenchError::Setup)
}

/// The bundled example project: `given`, else `examples/coffee_shop` above the working
/// directory or this executable (a binary built in a checkout finds its checkout's).
fn example_project(given: Option<&Path>) -> Result<PathBuf, BenchError> {
    let found = match given {
        Some(path) => Some(path.to_path_buf()),
        None => dbtops_bus::server::find_in_ancestors(Path::new("examples/coffee_shop")),
    };
    match found {
        Some(path) if path.join("dbt_project.yml").is_file() => Ok(path),
        Some(path) => Err(BenchError::Setup(format!(
            "{} is not a dbt project",
            path.display()
        ))),
        None => Err(BenchError::Setup(
            "examples/coffee_shop not found above the working directory or the executable: run from a dbt-ops checkout or pass --example".into(),
        )),
    }
}

/// `a` over `b`, or 0 when `b` is not positive.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Whether this binary was built without optimisations: figures from a debug build are
/// slower, and the report says which it was.
fn build_kind() -> String {
    if cfg!(debug_assertions) {
        "debug build".into()
    } else {
        "release build".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let stat = Stat::of(&values);
        assert_eq!(stat.count, 100);
        assert_eq!(stat.p50, 50.0);
        assert_eq!(stat.p99, 99.0);
        assert_eq!(stat.mean, 50.5);
        assert_eq!(Stat::of(&[]), Stat::default());
        assert_eq!(Stat::of(&[7.0]).p99, 7.0);
    }

    #[test]
    fn no_subcommand_runs_both_benchmarks_with_their_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let cli = Cli::try_parse_from(["bench", "--json"]).expect("parses");
        assert!(cli.bench.json && cli.bench.command.is_none());
        let cli = Cli::try_parse_from(["bench", "overhead"]).expect("parses");
        let Some(BenchCommand::Overhead(parsed)) = cli.bench.command else {
            panic!("not overhead");
        };
        // The defaults of a bare `dbt-ops bench` are the subcommands' own.
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", OverheadArgs::default())
        );
        let cli = Cli::try_parse_from(["bench", "burst", "--json"]).expect("parses");
        let Some(BenchCommand::Burst(parsed)) = cli.bench.command else {
            panic!("not burst");
        };
        assert!(cli.bench.json);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", BurstArgs::default()));
        let cli = Cli::try_parse_from(["bench", "burst", "--fixers", "1,3"]).expect("parses");
        let Some(BenchCommand::Burst(parsed)) = cli.bench.command else {
            panic!("not burst");
        };
        assert_eq!(parsed.fixers, [1, 3]);
    }
}
