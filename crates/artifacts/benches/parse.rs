//! `cargo bench -p dbtops-artifacts`: how fast the detector reads what dbt leaves behind.
//!
//! 1. A synthetic 1 GiB `dbt.log` (set `DBTOPS_BENCH_LOG_MB` for another size), made by
//!    appending the real text logs of every fixture case (real dbt 1.11 runs) again and
//!    again into a temp file, streamed through `scan_log` from the file: MB/s and peak RSS
//!    (`VmHWM` from /proc/self/status, reset through /proc/self/clear_refs before each
//!    measurement).
//! 2. The Python baseline of the original design, `re.search(r"\[error\].*?ERROR
//!    creating.*?model ([^\s]+)", content, re.DOTALL | re.IGNORECASE)` over the whole file
//!    read into memory, run with python3 on the same file in the same run; and the same
//!    pattern with `finditer` to the last match, which is the work of reading the whole log
//!    (the last run is the one that matters; `search` stops at the first).
//! 3. A synthetic 10,000-node manifest.json built from the real nodes of a fixture
//!    manifest: parse time, and a whole `detect` with a 10,000-result run_results.json;
//!    and the slimming a submission does (`manifest_for_submission`) on the largest
//!    synthetic manifest it still slims, against its parse.
//!
//! Numbers depend on the machine and on the page cache (the log was just written, so it is
//! read from memory): compare within one run, never across machines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Peak and current resident set, in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets the peak-RSS mark to the current RSS (Linux: "5" to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Every text `dbt.log` of the fixtures, concatenated: one block of real dbt output.
fn real_log_block() -> Vec<u8> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    let mut block = Vec::new();
    for dir in dirs {
        if let Ok(log) = std::fs::read(dir.join("dbt.log")) {
            // JSON-lines logs are another format; this measures the text log.
            if log.first() == Some(&b'{') {
                continue;
            }
            block.extend_from_slice(&log);
            if !block.ends_with(b"\n") {
                block.push(b'\n');
            }
        }
    }
    block
}

fn write_log(path: &Path, target: u64) -> (u64, u64) {
    let block = real_log_block();
    assert!(
        !block.is_empty(),
        "no fixture logs under {}",
        fixtures().display()
    );
    let lines_per_block = block.iter().filter(|b| **b == b'\n').count() as u64;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("temp file"));
    let mut written = 0;
    let mut lines = 0;
    while written < target {
        out.write_all(&block).expect("write");
        written += block.len() as u64;
        lines += lines_per_block;
    }
    out.flush().expect("flush");
    (written, lines)
}

const PYTHON: &str = r#"
import json, re, resource, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    content = f.read()
t1 = time.perf_counter()
pattern = r"\[error\].*?ERROR creating.*?model ([^\s]+)"
if sys.argv[2] == "search":
    m = re.search(pattern, content, re.DOTALL | re.IGNORECASE)
    found = m.group(1) if m else None
    count = 1 if m else 0
else:
    found, count = None, 0
    for m in re.finditer(pattern, content, re.DOTALL | re.IGNORECASE):
        found, count = m.group(1), count + 1
t2 = time.perf_counter()
print(json.dumps({"read_s": t1 - t0, "match_s": t2 - t1, "found": found, "matches": count,
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"#;

struct PythonRun {
    total: Duration,
    read_s: f64,
    match_s: f64,
    found: String,
    matches: u64,
    rss: f64,
}

fn python(script: &Path, log: &Path, mode: &str) -> Result<PythonRun, String> {
    let started = Instant::now();
    let out = Command::new("python3")
        .arg(script)
        .arg(log)
        .arg(mode)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let total = started.elapsed();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(PythonRun {
        total,
        read_s: v["read_s"].as_f64().unwrap_or(0.0),
        match_s: v["match_s"].as_f64().unwrap_or(0.0),
        found: v["found"].as_str().unwrap_or("(none)").to_owned(),
        matches: v["matches"].as_u64().unwrap_or(0),
        rss: v["max_rss_mib"].as_f64().unwrap_or(0.0),
    })
}

/// A manifest of `n` nodes made from the real nodes of a fixture manifest (renamed, wired
/// into a chain of parents), and a run_results.json with one failure among `n` results.
fn synthetic_manifest(n: usize) -> (Vec<u8>, Vec<u8>) {
    let real: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("misspelt_column_mart/manifest.json")).expect("fixture"),
    )
    .expect("fixture manifest");
    let templates: Vec<Value> = real["nodes"]
        .as_object()
        .map(|m| {
            m.values()
                .filter(|v| v["resource_type"] == "model")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut nodes = serde_json::Map::new();
    let mut parent_map = serde_json::Map::new();
    let mut results = Vec::new();
    for i in 0..n {
        let mut node = templates[i % templates.len()].clone();
        let name = format!("{}_{i}", node["name"].as_str().unwrap_or("m"));
        let id = format!("model.coffee_shop.{name}");
        let parents: Vec<String> = (1..=3)
            .filter(|k| i >= *k * 7)
            .map(|k| {
                let p = i - k * 7;
                format!(
                    "model.coffee_shop.{}_{p}",
                    templates[p % templates.len()]["name"]
                        .as_str()
                        .unwrap_or("m")
                )
            })
            .collect();
        node["name"] = json!(name);
        node["unique_id"] = json!(id);
        node["alias"] = json!(name);
        node["original_file_path"] = json!(format!("models/gen/{name}.sql"));
        node["path"] = json!(format!("gen/{name}.sql"));
        node["depends_on"]["nodes"] = json!(parents);
        parent_map.insert(id.clone(), json!(parents));
        let status = if i == n / 2 { "error" } else { "success" };
        results.push(json!({
            "unique_id": id,
            "status": status,
            "message": if i == n / 2 {
                format!("Runtime Error in model {name} (models/gen/{name}.sql)\n  Binder Error: Referenced column \"custmer_id\" not found in FROM clause!\n  Candidate bindings: \"customer_id\"\n\n  LINE 7:     custmer_id,")
            } else {
                "OK".to_owned()
            },
            "compiled_code": node["compiled_code"].clone(),
        }));
        nodes.insert(id, node);
    }
    let invocation = "11111111-2222-3333-4444-555555555555";
    let mut metadata = real["metadata"].clone();
    metadata["invocation_id"] = json!(invocation);
    let manifest = json!({
        "metadata": metadata,
        "nodes": nodes,
        "sources": real["sources"].clone(),
        "parent_map": parent_map,
        "child_map": {},
        // What every real manifest carries and a submission leaves out.
        "macros": {"macro.dbt.run_query": {"macro_sql": "{% macro run_query(sql) %}…{% endmacro %}"}},
        "docs": {},
    });
    let run_results = json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.11.16",
            "invocation_id": invocation,
        },
        "results": results,
    });
    (
        serde_json::to_vec(&manifest).expect("json"),
        serde_json::to_vec(&run_results).expect("json"),
    )
}

/// What a measuring child process reports.
fn child(mode: &str, args: &[String]) {
    match mode {
        "log" => {
            reset_peak();
            let (_, before) = memory();
            let started = Instant::now();
            let scan =
                dbtops_artifacts::scan_log(File::open(&args[0]).expect("open")).expect("scan");
            let secs = started.elapsed().as_secs_f64();
            let (peak, _) = memory();
            println!(
                "{}",
                json!({"secs": secs, "bytes": scan.bytes, "peak": peak, "before": before,
                       "invocations": scan.invocations, "id": scan.last_invocation_id,
                       "outcome": scan.last_outcome})
            );
        }
        "manifest" => {
            let manifest = std::fs::read(&args[0]).expect("manifest");
            let run_results = std::fs::read(&args[1]).expect("run_results");
            reset_peak();
            let (_, before) = memory();
            let started = Instant::now();
            let nodes = dbtops_artifacts::bench::parse_manifest(&manifest).expect("parse");
            let parse_secs = started.elapsed().as_secs_f64();
            let (parse_peak, _) = memory();
            reset_peak();
            let started = Instant::now();
            let detection = dbtops_artifacts::detect(&dbtops_artifacts::RunArtifacts {
                run_results: Some(run_results),
                manifest: Some(manifest),
                ..Default::default()
            })
            .expect("detect");
            let detect_secs = started.elapsed().as_secs_f64();
            let (detect_peak, _) = memory();
            assert_eq!(detection.failures.len(), 1);
            println!(
                "{}",
                json!({"nodes": nodes, "parse_secs": parse_secs, "parse_peak": parse_peak,
                       "detect_secs": detect_secs, "detect_peak": detect_peak, "before": before})
            );
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// The slimming a submission does, on the largest synthetic manifest it still slims:
/// (its size, ms per slimming, ms per parse of the same bytes), means over 50 rounds.
fn submission_slimming() -> (usize, f64, f64) {
    let mut nodes = 400;
    let manifest = loop {
        let (manifest, _) = synthetic_manifest(nodes);
        if manifest.len() <= dbtops_artifacts::SLIM_MANIFESTS_UP_TO_BYTES || nodes <= 1 {
            break manifest;
        }
        nodes = nodes * 3 / 4;
    };
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        let slim = dbtops_artifacts::manifest_for_submission(&manifest).expect("slimmed");
        assert!(slim.len() < manifest.len());
    }
    let slim_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    let started = Instant::now();
    for _ in 0..rounds {
        dbtops_artifacts::bench::parse_manifest(&manifest).expect("parse");
    }
    let parse_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds);
    (manifest.len(), slim_ms, parse_ms)
}

/// Runs this benchmark binary again as a child that measures one thing, so its peak RSS
/// is that thing's alone.
fn measure(mode: &str, args: &[&Path]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .env("DBTOPS_BENCH_CHILD", mode)
        .args(args)
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "{mode} child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).expect("child report")
}

fn main() {
    if let Ok(mode) = std::env::var("DBTOPS_BENCH_CHILD") {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        child(&mode, &args);
        return;
    }
    // `cargo test --all-targets` runs bench targets too, without `--bench`: a benchmark
    // is not a test (nor cheap: it writes a 1 GiB log), so there it only says how to run it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmark not run: use `cargo bench -p dbtops-artifacts`");
        return;
    }
    let log_mb: u64 = std::env::var("DBTOPS_BENCH_LOG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("dbt.log");
    eprintln!("writing a {log_mb} MiB synthetic dbt.log from the real fixture logs…");
    let (bytes, lines) = write_log(&log_path, log_mb * 1024 * 1024);

    // 1. dbt-ops: streamed from the file, in a process of its own.
    let ours = measure("log", &[&log_path]);
    let secs = ours["secs"].as_f64().unwrap_or(f64::NAN);
    let peak = ours["peak"].as_f64().unwrap_or(f64::NAN);
    let ours_mbs = mib(bytes) / secs;
    assert_eq!(ours["bytes"].as_u64(), Some(bytes));

    // 2. Python, same file, same run.
    let script = dir.path().join("baseline.py");
    std::fs::write(&script, PYTHON).expect("script");
    eprintln!("running the Python baseline (re.search, then finditer)…");
    let search = python(&script, &log_path, "search");
    let finditer = python(&script, &log_path, "finditer");

    // 3. Manifest, in a process of its own.
    eprintln!("building a 10,000-node manifest…");
    let (manifest, run_results) = synthetic_manifest(10_000);
    let manifest_path = dir.path().join("manifest.json");
    let run_results_path = dir.path().join("run_results.json");
    std::fs::write(&manifest_path, &manifest).expect("write");
    std::fs::write(&run_results_path, &run_results).expect("write");
    let m = measure("manifest", &[&manifest_path, &run_results_path]);
    let nodes = m["nodes"].as_u64().unwrap_or(0);
    let manifest_secs = m["parse_secs"].as_f64().unwrap_or(f64::NAN);

    println!();
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| synthetic dbt.log | {:.0} MiB, {lines} lines, {} invocations (the real dbt 1.11 text logs of the fixtures, repeated) |",
        mib(bytes),
        ours["invocations"]
    );
    println!(
        "| dbt-ops `scan_log` (streamed from the file, one pass) | {secs:.2} s, **{ours_mbs:.0} MiB/s**, peak RSS **{peak:.1} MiB** (process at start {:.1} MiB); last invocation {} {} |",
        ours["before"].as_f64().unwrap_or(0.0),
        ours["id"].as_str().unwrap_or("?"),
        ours["outcome"].as_str().unwrap_or("?"),
    );
    for (what, run) in [
        ("re.search (first match)", &search),
        ("re.finditer (to the last match)", &finditer),
    ] {
        match run {
            Ok(p) => {
                let total = p.total.as_secs_f64();
                println!(
                    "| python3 {what} | {total:.2} s wall (read {:.2} s + regex {:.2} s), {:.0} MiB/s, peak RSS {:.0} MiB; {} match(es), last `{}` |",
                    p.read_s,
                    p.match_s,
                    mib(bytes) / total,
                    p.rss,
                    p.matches,
                    p.found
                );
                println!(
                    "| ratio python3 {what} wall time / dbt-ops | **{:.1}×** |",
                    total / secs
                );
            }
            Err(e) => println!("| python3 {what} | not run: {} |", e.trim()),
        }
    }
    println!(
        "| manifest.json, {nodes} nodes from real node templates ({:.1} MiB) | parse **{:.0} ms**, peak RSS {:.0} MiB (the file's bytes included) |",
        mib(manifest.len() as u64),
        manifest_secs * 1000.0,
        m["parse_peak"].as_f64().unwrap_or(0.0)
    );
    let (slim_bytes, slim_ms, small_parse_ms) = submission_slimming();
    println!(
        "| `manifest_for_submission` on a {:.2} MiB manifest (what `dbt-ops submit` sends; larger ones go as they are) | {slim_ms:.2} ms, {:.2}× its parse ({small_parse_ms:.2} ms) |",
        mib(slim_bytes as u64),
        slim_ms / small_parse_ms
    );
    println!(
        "| `detect` with that manifest + a 10,000-result run_results.json ({:.1} MiB) | {:.0} ms, peak RSS {:.0} MiB |",
        mib(run_results.len() as u64),
        m["detect_secs"].as_f64().unwrap_or(0.0) * 1000.0,
        m["detect_peak"].as_f64().unwrap_or(0.0)
    );
    println!();
    println!(
        "goals (issue #3): text log >= 1 GB/s in < 64 MB RSS: {}; 10,000-node manifest < 1 s: {}",
        if ours_mbs * 1.048_576 >= 1000.0 && peak < 64.0 {
            "met"
        } else {
            "NOT met"
        },
        if manifest_secs < 1.0 {
            "met"
        } else {
            "NOT met"
        },
    );
}
