//! `dbt-ops-fixer`: the fixer as its own process, for deployments that scale it alone.

use std::path::PathBuf;

use clap::Parser;

/// Runs the dbt-ops fixer until SIGTERM or ctrl-c.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Settings file (default: ./dbt-ops.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let settings = dbtops_settings::Settings::load(args.config.as_deref())?;
    let _telemetry = dbtops_telemetry::init(&dbtops_telemetry::TelemetryConfig::from_settings(
        "dbt-ops-fixer",
        &settings.telemetry,
    ))?;
    let bus = dbtops_bus::Bus::connect(&settings.nats).await?;
    dbtops_fixer::run(bus, settings, dbtops_bus::shutdown::signal()).await?;
    Ok(())
}
