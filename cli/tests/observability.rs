//! Seeing what dbt-ops did: `dbt-ops status`, `dbt-ops report` and the metrics endpoints,
//! after a real run (real nats-server, real dbt, real git) with one fixed and one
//! abandoned incident.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DBT_OPS: &str = env!("CARGO_BIN_EXE_dbt-ops");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The example project in a fresh git repository, with `path` broken by `from` → `to`
/// (committed), and a real, failing `dbt build` run in it.
fn broken_project(root: &Path, path: &str, from: &str, to: &str) -> PathBuf {
    std::fs::create_dir_all(root).unwrap();
    let project = root.join("coffee_shop");
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("examples/coffee_shop"))
        .arg(&project)
        .status()
        .unwrap();
    assert!(status.success());
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "coffee_shop"]);
    let file = project.join(path);
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(content.contains(from));
    std::fs::write(&file, content.replacen(from, to, 1)).unwrap();
    git(root, &["commit", "-q", "-am", "break"]);
    let dbt = repo_root().join(".venv/bin/dbt");
    assert!(
        dbt.is_file(),
        "{} is missing: run scripts/setup.sh",
        dbt.display()
    );
    let build = Command::new(dbt)
        .args(["build", "--profiles-dir", "."])
        .current_dir(&project)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .output()
        .unwrap();
    assert!(!build.status.success(), "the broken project must fail");
    project
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `dbt-ops up` as a child, killed if the test ends.
struct Up {
    child: Child,
}

impl Up {
    fn start(cwd: &Path, nats_url: &str, envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(DBT_OPS)
            .arg("up")
            .current_dir(cwd)
            .env("NATS_URL", nats_url)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dbt-ops is up") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("dbt-ops up becomes ready");
        Self { child }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dbt_ops(nats_url: &str, args: &[&str]) -> Output {
    Command::new(DBT_OPS)
        .args(args)
        .env("NATS_URL", nats_url)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Submits and waits; returns the one outcome line.
fn submit(project: &Path, nats_url: &str) -> serde_json::Value {
    let output = Command::new(DBT_OPS)
        .args(["submit", "--wait", "--timeout", "300", "--project-dir"])
        .arg(project)
        .env("NATS_URL", nats_url)
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{lines:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    lines[0].clone()
}

#[test]
fn status_report_and_metrics_after_one_fixed_and_one_abandoned_incident() {
    let scratch = tempfile::tempdir().unwrap();
    let fixable = broken_project(
        &scratch.path().join("fixable"),
        "models/staging/stg_orders.sql",
        "    customer_id,\n",
        "    custmer_id,\n",
    );
    // Broken Jinja: no rule fixes it and no LLM is configured, so it is abandoned.
    let unfixable = broken_project(
        &scratch.path().join("unfixable"),
        "models/marts/customers.sql",
        "{{ ref('stg_customers') }}",
        "{{ ref('stg_customers') ",
    );
    let nats_url = format!("nats://127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let _up = Up::start(
        scratch.path(),
        &nats_url,
        &[("DBT_OPS__TELEMETRY__METRICS_LISTEN", metrics.as_str())],
    );
    assert_eq!(http_get(&metrics, "/healthz").0, 200);
    assert_eq!(http_get(&metrics, "/readyz").0, 200);

    let fixed = submit(&fixable, &nats_url);
    assert_eq!(fixed["outcome"], "branch_opened", "{fixed}");
    let abandoned = submit(&unfixable, &nats_url);
    assert_eq!(abandoned["outcome"], "abandoned", "{abandoned}");
    let fixed_id = fixed["incident_id"].as_str().unwrap();
    let abandoned_id = abandoned["incident_id"].as_str().unwrap();

    // The table lists both incidents with their states.
    let table = dbt_ops(&nats_url, &["status"]);
    assert!(table.status.success());
    let table = stdout(&table);
    let row = |id: &str| {
        table
            .lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
            .to_owned()
    };
    assert!(row(fixed_id).contains("mr_opened"), "{table}");
    assert!(row(fixed_id).contains("stg_orders"), "{table}");
    assert!(row(abandoned_id).contains("abandoned"), "{table}");

    // One incident: its record and its timeline, in order.
    let one = dbt_ops(&nats_url, &["status", fixed_id, "--json"]);
    assert!(one.status.success());
    let one: serde_json::Value = serde_json::from_str(&stdout(&one)).unwrap();
    assert_eq!(one["incident"]["state"], "mr_opened");
    let subjects: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "dbtops.failure.detected",
            "dbtops.fix.proposed",
            "dbtops.fix.validated",
            "dbtops.mr.opened"
        ],
        "{one:#}"
    );
    assert!(one["timeline"][0]["at"].is_string());
    let text = stdout(&dbt_ops(&nats_url, &["status", fixed_id]));
    assert!(
        text.contains("timeline:") && text.contains("dbtops.mr.opened"),
        "{text}"
    );
    let unknown = dbt_ops(&nats_url, &["status", "no-such-incident"]);
    assert!(!unknown.status.success());

    // The report counts what just happened.
    let report = dbt_ops(&nats_url, &["report", "--json"]);
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout(&report)).unwrap();
    let total = &report["total"];
    assert_eq!(total["incidents"], 2, "{report:#}");
    assert_eq!(total["mr_opened"], 1, "{report:#}");
    assert_eq!(total["outcomes"]["abandoned"], 1, "{report:#}");
    assert_eq!(total["outcomes"]["mr_opened"], 1, "{report:#}");
    assert_eq!(total["with_proposal"], 1, "{report:#}");
    assert_eq!(total["first_attempt_pass_rate"], 1.0, "{report:#}");
    assert_eq!(total["any_attempt_pass_rate"], 1.0, "{report:#}");
    assert_eq!(total["merge_rate"], 0.0, "{report:#}");
    assert!(total["time_to_mr_p50_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        total["input_tokens"], 0,
        "rules spend no tokens: {report:#}"
    );
    let table = stdout(&dbt_ops(&nats_url, &["report"]));
    assert!(
        table.contains("TTM p50") && table.contains("total"),
        "{table}"
    );

    // /metrics counted the same run, observed live inside `dbt-ops up`.
    let (code, text) = http_get(&metrics, "/metrics");
    assert_eq!(code, 200);
    let class = fixed_class(&nats_url, fixed_id);
    for line in [
        format!("dbtops_incidents_total{{class=\"{class}\",outcome=\"mr_opened\"}} 1"),
        "dbtops_attempts_total 1".to_owned(),
        "dbtops_validation_total{result=\"passed\"} 1".to_owned(),
        "dbtops_time_to_mr_seconds_count 1".to_owned(),
        "# TYPE dbtops_dlq_total counter".to_owned(),
        "# TYPE dbtops_llm_tokens_total counter".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("dbtops_incidents_total{")
                && l.ends_with("outcome=\"abandoned\"} 1")),
        "{text}"
    );
}

/// The class label of an incident, from `status --json`.
fn fixed_class(nats_url: &str, incident_id: &str) -> String {
    let one = dbt_ops(nats_url, &["status", incident_id, "--json"]);
    let one: serde_json::Value = serde_json::from_str(&stdout(&one)).unwrap();
    one["incident"]["class"].as_str().unwrap().to_owned()
}

/// A plain HTTP/1.1 GET: (status code, body).
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}
