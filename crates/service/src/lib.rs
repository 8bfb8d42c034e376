//! The one `main` of every service binary (`dbt-ops-detector`, `dbt-ops-fixer`, …), so the
//! four stay identical: parse `--config`, load settings (a bad value stops here, naming
//! the key), set up telemetry, connect to NATS, serve metrics when
//! `telemetry.metrics_listen` is set, run until SIGTERM or ctrl-c.
//!
//! The metrics endpoint's `/readyz` turns 200 once the service's consumer loop has bound
//! its durable consumer, and its consumer lag gauges follow whatever the loop binds: the
//! service needs to name nothing. On SIGTERM the service drains what it has in flight, and
//! dropping the telemetry guard on the way out flushes the spans its exporter still holds.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use clap::Parser;
use dbtops_bus::Bus;
use dbtops_settings::Settings;

/// The shutdown signal handed to a service's `run`.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one dbt-ops service until SIGTERM or ctrl-c.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Settings file (default: ./dbt-ops.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Wires and runs the service `name` with its `run` function.
pub async fn main<Run, Running, RunError>(name: &str, run: Run) -> anyhow::Result<()>
where
    Run: FnOnce(Bus, Settings, Shutdown) -> Running,
    Running: Future<Output = Result<(), RunError>>,
    RunError: std::error::Error + Send + Sync + 'static,
{
    let args = Args::parse();
    let settings = Settings::load(args.config.as_deref())?;
    let _telemetry = dbtops_telemetry::init(&dbtops_telemetry::TelemetryConfig::from_settings(
        name,
        &settings.telemetry,
    ))?;
    let bus = Bus::connect(&settings.nats).await?;
    // Prometheus /metrics, /healthz, /readyz while the service runs (when configured).
    let _metrics = dbtops_metrics::start(&bus, &settings.telemetry.metrics_listen).await?;
    run(bus, settings, Box::pin(dbtops_bus::shutdown::signal())).await?;
    Ok(())
}
