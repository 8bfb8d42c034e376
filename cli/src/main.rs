//! `dbt-ops`: run the system, submit a dbt run, detect failures, watch the stream.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dbt_ops::commands::{dashboard, detect, submit, up, watch};
use dbtops_settings::Settings;
use dbtops_telemetry::TelemetryConfig;

/// dbt-ops turns a failed dbt run into a reviewable fix.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Settings file (default: ./dbt-ops.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run detector, fixer, validator and delivery in this process until ctrl-c; starts a
    /// private nats-server when none answers at NATS_URL.
    Up,
    /// Send a finished dbt run's artifacts; with --wait, print each incident's outcome as
    /// a JSON line and exit 0 only if every incident got a branch or merge request.
    Submit {
        /// The dbt project directory.
        #[arg(long, default_value = ".")]
        project_dir: PathBuf,
        /// dbt's target directory (default: <project>/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// dbt's log file (default: <project>/logs/dbt.log).
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// Follow the incidents to their outcomes.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait with --wait.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Print the failures of a project's last run, offline (no bus).
    Detect {
        /// dbt project directories (the same as --project-dir; several allowed).
        paths: Vec<PathBuf>,
        /// The dbt project directory.
        #[arg(long, default_value = ".")]
        project_dir: PathBuf,
        /// dbt's target directory (default: <project>/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// dbt's log file (default: <project>/logs/dbt.log).
        #[arg(long)]
        log_file: Option<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The golden dataset of merged fixes.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Run an evaluation corpus through a private system (real nats-server, real dbt) and
    /// score detection, classes and fixes.
    Eval {
        /// The corpus directory (one `*/case.json` per case).
        corpus: PathBuf,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Seconds to wait for each case's outcomes.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Only these cases, by name (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Incidents and their state; with an incident id, its timeline of events.
    Status {
        /// One incident's id.
        incident: Option<String>,
        /// JSON: one line per incident, or the incident with its timeline.
        #[arg(long)]
        json: bool,
    },
    /// Numbers computed from the stream: outcomes, time to MR, pass rates, tokens, cost.
    Report {
        /// Only incidents first detected within this window (e.g. 7d, 12h, 30m).
        #[arg(long, default_value = "7d")]
        since: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Serve a live web dashboard of the incidents (read-only) until ctrl-c.
    Dashboard {
        /// Address to serve on. Anything but loopback shows incidents (SQL, errors) to the
        /// network: the dashboard has no authentication of its own.
        #[arg(long, default_value = dashboard::DEFAULT_LISTEN)]
        listen: String,
    },
    /// Measure the system on this machine: pipeline overhead per incident (submit →
    /// branch, dbt and LLM time taken out) and fixer throughput under a burst.
    Bench(dbt_ops::commands::bench::BenchArgs),
    /// Print every event on the bus as it happens.
    Watch {
        /// Only this subject (wildcards allowed).
        #[arg(long)]
        subject: Option<String>,
        /// Start from the oldest stored event.
        #[arg(long)]
        replay: bool,
    },
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Write one JSON line per merged incident (error, evidence, proposal, diff).
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(cli.config.as_deref()).context("cannot load settings")?;
    // One-shot commands print results on stdout; keep the client's chatter out of the way.
    let is_default_filter =
        settings.telemetry.log_filter == Settings::default().telemetry.log_filter;
    if !matches!(cli.command, Command::Up | Command::Bench(_)) && is_default_filter {
        settings.telemetry.log_filter = "warn".into();
    }
    // `bench` sets up its own telemetry: it reads the services' spans back in memory.
    let _telemetry = match cli.command {
        Command::Bench(_) => None,
        _ => Some(dbtops_telemetry::init(&TelemetryConfig::from_settings(
            "dbt-ops",
            &settings.telemetry,
        ))?),
    };
    match cli.command {
        Command::Bench(args) => dbt_ops::commands::bench::run(args, settings).await?,
        Command::Up => {
            let (bus, server) = up::connect_or_start(&mut settings).await?;
            let metrics = dbtops_metrics::start(&bus, &settings.telemetry.metrics_listen).await?;
            if let Some(metrics) = &metrics {
                eprintln!("metrics on http://{}/metrics", metrics.address);
            }
            eprintln!(
                "dbt-ops is up on {}{}; ctrl-c to stop",
                settings.nats.url,
                if server.is_some() {
                    " (private nats-server)"
                } else {
                    ""
                }
            );
            let result =
                dbt_ops::system::run_all(bus, settings, dbtops_bus::shutdown::signal()).await;
            up::forget_endpoint();
            drop(metrics);
            drop(server);
            result?;
        }
        Command::Submit {
            project_dir,
            target_dir,
            log_file,
            wait,
            timeout,
        } => {
            // `up` may have started a private server elsewhere than the default URL (the
            // one there being too old, or taken): its record says where.
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            let submitted = submit::submit(
                &bus,
                &project_dir,
                target_dir.as_deref(),
                log_file.as_deref(),
            )
            .await?;
            eprintln!(
                "submitted {} ({} artifacts)",
                submitted.submission_id, submitted.artifacts
            );
            if wait {
                let (outcomes, notes) = submit::wait_for_outcomes(
                    &bus,
                    &submitted.submission_id,
                    Duration::from_secs(timeout),
                )
                .await?;
                for note in &notes {
                    eprintln!("note: {note}");
                }
                for outcome in &outcomes {
                    println!("{}", serde_json::to_string(outcome)?);
                }
                let unfixed = outcomes
                    .iter()
                    .filter(|outcome| !outcome.is_success())
                    .count();
                if unfixed > 0 {
                    anyhow::bail!(
                        "{unfixed} of {} incident(s) did not end with a branch or merge request",
                        outcomes.len()
                    );
                }
            }
        }
        Command::Detect {
            paths,
            project_dir,
            target_dir,
            log_file,
            json,
        } => {
            let projects = if paths.is_empty() {
                vec![project_dir]
            } else {
                paths
            };
            for project in projects {
                let report = detect::detect(&project, target_dir.as_deref(), log_file.as_deref())
                    .with_context(|| {
                    format!("cannot detect failures in {}", project.display())
                })?;
                for note in &report.notes {
                    eprintln!("note: {}: {note}", project.display());
                }
                for failure in &report.failures {
                    if json {
                        println!("{}", serde_json::to_string(failure)?);
                    } else {
                        println!(
                            "{} {} [{}]\n  {}",
                            failure.unique_id,
                            failure.path,
                            failure.class,
                            failure.message.replace('\n', "\n  ")
                        );
                    }
                }
                if report.failures.is_empty() && !json {
                    println!("{}: no failing node in the last run", project.display());
                }
            }
        }
        Command::Dataset {
            command: DatasetCommand::Export { output },
        } => {
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            let written = match output {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    );
                    let written = dbtops_delivery::dataset::export_dataset(&bus, &mut file).await?;
                    std::io::Write::flush(&mut file)?;
                    written
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    dbtops_delivery::dataset::export_dataset(&bus, &mut stdout).await?
                }
            };
            eprintln!("{written} merged incident(s) exported");
        }
        Command::Eval {
            corpus,
            json,
            timeout,
            only,
        } => {
            let report = dbt_ops::commands::eval::eval_with(
                &corpus,
                settings,
                dbt_ops::commands::eval::EvalOptions {
                    timeout: Duration::from_secs(timeout),
                    llm_note: None,
                    only,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Status { incident, json } => {
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            dbt_ops::commands::status::print(&bus, incident.as_deref(), json).await?;
        }
        Command::Report { since, json } => {
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            dbt_ops::commands::report::print(&bus, &since, json).await?;
        }
        Command::Dashboard { listen } => {
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            let listener = dashboard::bind(&listen).await?;
            let address = listener.local_addr()?;
            if !address.ip().is_loopback() {
                eprintln!("warning: the dashboard has no authentication and listens on {address}");
            }
            eprintln!("dashboard on http://{address}/ ; ctrl-c to stop");
            dashboard::serve(
                listener,
                bus,
                dashboard::DashboardOptions::from_settings(&settings),
                dbtops_bus::shutdown::signal(),
            )
            .await?;
        }
        Command::Watch { subject, replay } => {
            up::resolve_nats_url(&mut settings.nats);
            let bus = dbtops_bus::Bus::connect(&settings.nats).await.context(
                "cannot reach NATS: start the system with `dbt-ops up`, or set NATS_URL",
            )?;
            watch::watch(&bus, subject, replay, dbtops_bus::shutdown::signal()).await?;
        }
    }
    Ok(())
}
