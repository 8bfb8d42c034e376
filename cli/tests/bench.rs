//! `dbt-ops bench` at tiny sizes, run as a user runs it: the overhead benchmark through
//! the real system (a private nats-server, the four services, real dbt, real git) and the
//! burst against separate fixer processes and a local fake LLM.
//!
//! No figure is asserted — on a shared machine they are noise — but what the figures
//! rest on is: every incident measured reached its outcome, dbt's (and the LLM's) time
//! was found in that incident's own trace and lies inside its wall time, the hops add up
//! to the overhead, and in the burst every incident got exactly one proposal, drafted by
//! the LLM (the rules ran and deferred). And the tables have their rows.

use std::path::{Path, PathBuf};
use std::process::Command;

use dbt_ops::commands::bench::{BenchReport, BurstReport, OverheadReport};

const DBT_OPS: &str = env!("CARGO_BIN_EXE_dbt-ops");

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/coffee_shop")
}

/// Runs `dbt-ops bench <args> --json` in an empty directory (no dbt-ops.toml there) with
/// none of the caller's dbt-ops settings, and parses its report.
fn bench(args: &[&str]) -> BenchReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(DBT_OPS);
    command
        .arg("bench")
        .args(args)
        .arg("--json")
        .current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("DBT_OPS__") || key == "NATS_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("dbt-ops runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        output.status.success(),
        "dbt-ops bench {args:?} failed ({}):\n{tail}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "the report is not JSON ({error}):\n{}\n{tail}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The invariants of an overhead report whose incidents all got a branch or record.
fn check_overhead(overhead: &OverheadReport, incidents: usize, delivery: &str) {
    assert_eq!(overhead.incidents, incidents);
    assert_eq!(overhead.samples.len(), incidents);
    assert_eq!(overhead.delivered, incidents, "{:#?}", overhead.samples);
    assert_eq!(overhead.abandoned, 0);
    let mut traces = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    for sample in &overhead.samples {
        assert_eq!(sample.outcome, "delivered", "{sample:?}");
        assert_eq!(sample.detail, delivery, "{sample:?}");
        // dbt ran in this incident's own trace, inside its wall time.
        assert!(sample.dbt_steps >= 1, "{sample:?}");
        assert!(sample.dbt_ms > 0.0, "{sample:?}");
        assert!(sample.overhead_ms > 0.0, "{sample:?}");
        assert!(
            (sample.wall_ms - sample.dbt_ms - sample.llm_ms - sample.overhead_ms).abs() < 1e-6,
            "{sample:?}"
        );
        // The hops add up to the overhead, and so do its two halves.
        let hops: f64 = sample
            .stages_ms
            .iter()
            .filter(|(name, _)| !name.starts_with("all hops"))
            .map(|(_, ms)| ms)
            .sum();
        assert_eq!(sample.stages_ms.len(), 7, "{sample:?}");
        assert!((hops - sample.overhead_ms).abs() < 1e-3, "{sample:?}");
        let halves: f64 = sample
            .stages_ms
            .iter()
            .filter(|(name, _)| name.starts_with("all hops"))
            .map(|(_, ms)| ms)
            .sum();
        assert!((halves - sample.overhead_ms).abs() < 1e-3, "{sample:?}");
        assert!(
            traces.insert(sample.trace_id.clone()),
            "one trace per incident"
        );
        assert!(
            ids.insert(sample.incident_id.clone()),
            "one incident per submission"
        );
    }
    assert_eq!(overhead.overhead_ms.count, incidents);
    assert_eq!(overhead.stages.len(), 7);
    assert!(overhead.floor_ms.count > 0 && overhead.floor_ms.p50 > 0.0);
    assert!(overhead.overhead_over_floor > 0.0);

    let table = BenchReport {
        overhead: Some(overhead.clone()),
        burst: None,
    }
    .table();
    for row in [
        "Pipeline overhead per incident: submit → branch",
        "wall, submit → outcome",
        "inside dbt (validator.dbt spans)",
        "inside LLM calls (gen_ai.chat spans)",
        "overhead = wall − dbt − LLM",
        "submit → detector starts",
        "detector → fixer starts",
        "fixer → validator starts (LLM calls taken out)",
        "validator → delivery starts (dbt taken out)",
        "delivery → outcome event arrives",
        "all hops: inside handlers",
        "all hops: between handlers",
        "bus floor: publish + ack",
        "overhead / floor (p50)",
        "goal: p50 overhead ≤ 5 ms",
    ] {
        assert!(table.contains(row), "no {row:?} in:\n{table}");
    }
}

#[test]
fn the_overhead_benchmark_measures_every_incident_with_dbt_time_taken_out() {
    let report = bench(&[
        "overhead",
        "--incidents",
        "3",
        "--warmup",
        "1",
        "--example",
        example().to_str().expect("utf-8 path"),
    ]);
    assert!(report.burst.is_none());
    let overhead = report.overhead.expect("an overhead report");
    check_overhead(&overhead, 3, "local_git");
    assert_eq!(overhead.warmup, 1);
    // The rules fixed it: no LLM call anywhere.
    assert!(overhead.samples.iter().all(|sample| sample.llm_calls == 0));
    assert!(overhead.ladder_settings.starts_with("dbt compile ("));
    // Floor samples are taken after each measured incident.
    assert_eq!(overhead.floor_ms.count, 3 * 20);
}

#[test]
fn the_overhead_benchmark_takes_llm_time_out_too() {
    let report = bench(&[
        "overhead",
        "--incidents",
        "2",
        "--warmup",
        "0",
        "--fix-by",
        "llm",
        "--llm-delay-ms",
        "200",
        "--delivery",
        "shadow",
        "--example",
        example().to_str().expect("utf-8 path"),
    ]);
    let overhead = report.overhead.expect("an overhead report");
    check_overhead(&overhead, 2, "shadow");
    for sample in &overhead.samples {
        // One call, answered after the fake's delay: its span holds at least that.
        assert_eq!(sample.llm_calls, 1, "{sample:?}");
        assert!(sample.llm_ms >= 200.0, "{sample:?}");
    }
}

/// The invariants of a burst report in which nothing may be lost.
fn check_burst(burst: &BurstReport, incidents: usize, fixers: &[usize]) {
    assert_eq!(burst.incidents, incidents);
    assert_eq!(
        burst
            .rounds
            .iter()
            .map(|round| round.fixers)
            .collect::<Vec<_>>(),
        fixers
    );
    for round in &burst.rounds {
        assert_eq!(round.proposed, incidents, "{round:?}");
        assert_eq!(round.proposal_messages, incidents, "{round:?}");
        assert_eq!((round.lost, round.duplicates), (0, 0), "{round:?}");
        // The rules ran and deferred: every proposal is the LLM's, one call each.
        assert_eq!(round.via_llm, incidents, "{round:?}");
        assert_eq!(round.llm_calls, incidents, "{round:?}");
        assert_eq!((round.abandoned, round.dead_letters), (0, 0), "{round:?}");
        assert!(round.per_second > 0.0 && round.ratio > 0.0, "{round:?}");
    }
    assert!(burst.nothing_lost);
    assert_eq!(burst.baseline_fixers, fixers[0]);
    assert_eq!(burst.rounds[0].ratio, 1.0);

    let table = BenchReport {
        overhead: None,
        burst: Some(burst.clone()),
    }
    .table();
    let lines: Vec<&str> = table.lines().collect();
    let header = lines
        .iter()
        .position(|line| line.contains("incidents/s"))
        .unwrap_or_else(|| panic!("no header row in:\n{table}"));
    for (offset, count) in fixers.iter().enumerate() {
        let row = lines.get(header + 1 + offset).copied().unwrap_or_default();
        assert!(
            row.split_whitespace().next() == Some(count.to_string().as_str()),
            "row {offset} is not for {count} fixer(s) in:\n{table}"
        );
    }
    assert!(table.contains("nothing lost: every incident got exactly one proposal"));
    assert!(table.contains("goal: ≥ 3.6× at 4 fixers"), "{table}");
}

#[test]
fn the_burst_benchmark_gives_every_incident_exactly_one_proposal() {
    let report = bench(&[
        "burst",
        "--incidents",
        "3",
        "--llm-delay-ms",
        "200",
        "--fixers",
        "1,2",
    ]);
    assert!(report.overhead.is_none());
    let burst = report.burst.expect("a burst report");
    check_burst(&burst, 3, &[1, 2]);
    assert_eq!(burst.llm_delay_ms, 200);
    assert!(burst.fixer_command.contains("bench fixer-process"));
    // No 4-fixer round: the goal is not judged.
    assert!(burst.goal_met.is_none() && burst.ratio_at_4.is_none());
}
