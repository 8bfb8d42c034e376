//! Benchmark (not a timed test): one proposal validated on examples/coffee_shop with the
//! full default ladder, warm dbt worker versus cold dbt subprocesses, in one process.
//!
//! `cargo bench -p dbtops-validator` (runs per mode: `BENCH_RUNS`, default 5). Prints a
//! table of wall times per validation — p50, p90, min — the ratio warm/cold (the goal is
//! ≤ 0.2), and the p50 of each step.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use dbtops_proto::v1;
use dbtops_validator::{Validator, Verdict};

struct Sample {
    wall: Duration,
    steps: Vec<(String, u64)>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: a benchmark
    // is not a test (nor cheap: dozens of dbt runs), so there it only says how to run it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark not run: use `cargo bench -p dbtops-validator`");
        return Ok(());
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(5)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(runs))
}

async fn bench(runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    // The user's project after a failed run: the last good database, a broken model.
    let project = Project::built();
    let fixed = project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let fix = proposal(STG_ORDERS, &fixed);
    let root = tempfile::tempdir()?;
    let settings = settings(root.path());
    let mut cold_settings = settings.clone();
    cold_settings.validator.worker = false;

    // Cold: what a validator without a worker does, each validation from scratch (a
    // new validator: no partial-parse file kept).
    let mut cold = Vec::new();
    for _ in 0..runs {
        let validator = Validator::new(&cold_settings)?;
        cold.push(validate_once(&validator, &incident, &fix).await?);
    }
    // Subprocesses, partial parse kept between validations: what the cache alone gives.
    let mut cached = Vec::new();
    let validator = Validator::new(&cold_settings)?;
    validate_once(&validator, &incident, &fix).await?;
    for _ in 0..runs {
        cached.push(validate_once(&validator, &incident, &fix).await?);
    }
    // Warm: one validator; the first validation starts the worker.
    let warm_validator = Validator::new(&settings)?;
    let first = validate_once(&warm_validator, &incident, &fix).await?;
    let mut warm = Vec::new();
    for _ in 0..runs {
        warm.push(validate_once(&warm_validator, &incident, &fix).await?);
    }

    let dbt_calls = first
        .steps
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "guardrails" | "jinja delimiters" | "refs kept" | "sql parse"
            )
        })
        .count();
    println!();
    println!(
        "validation of one proposal on examples/coffee_shop (stg_orders, default ladder: {} steps, {dbt_calls} dbt rungs), {runs} runs per mode",
        first.steps.len()
    );
    println!();
    println!("| mode | runs | p50 ms | p90 ms | min ms |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, samples: &[Sample]| {
        let walls = sorted_ms(samples.iter().map(|sample| sample.wall));
        println!(
            "| {name} | {} | {} | {} | {} |",
            walls.len(),
            percentile(&walls, 50),
            percentile(&walls, 90),
            walls.first().copied().unwrap_or_default()
        );
    };
    row("cold: a dbt subprocess per step", &cold);
    row("subprocesses + partial parse kept", &cached);
    row(
        "warm worker, first validation (starts the worker)",
        std::slice::from_ref(&first),
    );
    row("warm worker", &warm);
    let cold_p50 = percentile(&sorted_ms(cold.iter().map(|s| s.wall)), 50) as f64;
    let warm_p50 = percentile(&sorted_ms(warm.iter().map(|s| s.wall)), 50) as f64;
    let warm_p90 = percentile(&sorted_ms(warm.iter().map(|s| s.wall)), 90) as f64;
    let cold_p90 = percentile(&sorted_ms(cold.iter().map(|s| s.wall)), 90) as f64;
    println!();
    println!(
        "ratio warm/cold: p50 {:.3}, p90 {:.3} (goal ≤ 0.2)",
        warm_p50 / cold_p50.max(1.0),
        warm_p90 / cold_p90.max(1.0)
    );

    println!();
    println!("p50 per step, ms:");
    println!();
    println!("| step | cold | subprocess + parse kept | warm |");
    println!("|---|---:|---:|---:|");
    for (name, _) in &first.steps {
        let per_step = |samples: &[Sample]| {
            let times: Vec<u64> = {
                let mut times: Vec<u64> = samples
                    .iter()
                    .filter_map(|sample| {
                        sample
                            .steps
                            .iter()
                            .find(|(step, _)| step == name)
                            .map(|(_, ms)| *ms)
                    })
                    .collect();
                times.sort_unstable();
                times
            };
            percentile(&times, 50)
        };
        println!(
            "| {name} | {} | {} | {} |",
            per_step(&cold),
            per_step(&cached),
            per_step(&warm)
        );
    }
    Ok(())
}

async fn validate_once(
    validator: &Validator,
    incident: &Incident,
    fix: &v1::FixProposal,
) -> Result<Sample, String> {
    let started = Instant::now();
    let verdict = validator
        .validate(&incident.detected, &incident.model, fix)
        .await
        .map_err(|fault| format!("{fault:?}"))?;
    let wall = started.elapsed();
    match verdict {
        Verdict::Validated { steps } => Ok(Sample {
            wall,
            steps: steps
                .into_iter()
                .map(|step| (step.name, step.duration_ms))
                .collect(),
        }),
        Verdict::Failed {
            failed_step,
            error_text,
            ..
        } => Err(format!("failed at {failed_step}: {error_text}")),
    }
}

fn sorted_ms(walls: impl Iterator<Item = Duration>) -> Vec<u64> {
    let mut ms: Vec<u64> = walls.map(|wall| wall.as_millis() as u64).collect();
    ms.sort_unstable();
    ms
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}
