//! The `dbt-ops` binary as a user runs it: `up`, `submit --wait`, `detect`, and start-up
//! with a bad setting. Real nats-server, real dbt, real git.

mod support;

use support::{broken_project, free_port, git};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DBT_OPS: &str = env!("CARGO_BIN_EXE_dbt-ops");

/// `dbt-ops up` as a child, killed (SIGKILL) if the test ends early.
struct Up {
    child: Child,
}

impl Up {
    /// `home` is the process's `HOME`, where `up` records its endpoint too.
    fn start(cwd: &Path, nats_url: &str, home: &Path) -> Self {
        let mut child = Command::new(DBT_OPS)
            .arg("up")
            .current_dir(cwd)
            .env("NATS_URL", nats_url)
            .env("HOME", home)
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

    /// SIGTERM, then the exit status: a clean drain exits 0.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || {
            let _ = done_tx.send(child.wait());
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("dbt-ops up exits after SIGTERM")
            .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        support::stop_gracefully(&mut self.child, Duration::from_secs(15));
    }
}

/// Where `submit` finds the system.
enum Finding<'a> {
    /// `NATS_URL` says.
    Url(&'a str),
    /// No URL is given: the endpoint `up` recorded under this `HOME` says, as for a user
    /// who runs `dbt-ops up` and then `dbt-ops submit` in another directory.
    Recorded { home: &'a Path },
}

fn submit(
    project: &Path,
    finding: Finding<'_>,
) -> (std::process::ExitStatus, Vec<serde_json::Value>, String) {
    let mut command = Command::new(DBT_OPS);
    command
        .args(["submit", "--wait", "--timeout", "300", "--project-dir"])
        .arg(project)
        .current_dir(project);
    match finding {
        Finding::Url(url) => command.env("NATS_URL", url),
        Finding::Recorded { home } => command
            .env_remove("NATS_URL")
            .env_remove("DBT_OPS__NATS__URL")
            .env("HOME", home),
    };
    let output = command.output().unwrap();
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is JSON"))
        .collect();
    (
        output.status,
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn up_then_submit_wait_prints_one_outcome_per_incident_and_exits_by_outcome() {
    let scratch = tempfile::tempdir().unwrap();
    let fixable_root = scratch.path().join("fixable");
    let unfixable_root = scratch.path().join("unfixable");
    std::fs::create_dir_all(&fixable_root).unwrap();
    std::fs::create_dir_all(&unfixable_root).unwrap();
    let fixable = broken_project(
        &fixable_root,
        "models/staging/stg_orders.sql",
        "    customer_id,\n",
        "    custmer_id,\n",
    );
    // Broken Jinja: no rule fixes it and no LLM is configured, so it is abandoned.
    let unfixable = broken_project(
        &unfixable_root,
        "models/marts/customers.sql",
        "{{ ref('stg_customers') }}",
        "{{ ref('stg_customers') ",
    );
    let nats_url = format!("nats://127.0.0.1:{}", free_port());
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let up = Up::start(scratch.path(), &nats_url, &home);

    let (status, outcomes, stderr) = submit(&fixable, Finding::Url(&nats_url));
    assert!(status.success(), "{stderr}");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["outcome"], "branch_opened", "{outcomes:?}");
    assert_eq!(outcomes[0]["model"], "stg_orders");
    let branch = outcomes[0]["branch"].as_str().unwrap();
    assert!(git(&fixable_root, &["branch", "--list", branch]).contains(branch));

    // Without a URL, submit finds the private server through the endpoint `up` recorded
    // under HOME (the project directory holds no record of its own). The default URL it
    // would otherwise use, 127.0.0.1:4222, is not where this system runs.
    assert!(!unfixable_root.join(".dbt-ops").exists());
    let (status, outcomes, stderr) = submit(&unfixable, Finding::Recorded { home: &home });
    assert!(
        !status.success(),
        "an abandoned incident must fail submit --wait: {outcomes:?}"
    );
    assert_eq!(outcomes.len(), 1, "{outcomes:?} {stderr}");
    assert_eq!(outcomes[0]["outcome"], "abandoned");
    assert_eq!(outcomes[0]["model"], "customers");
    assert!(outcomes[0]["reason"].is_string());
    assert!(outcomes[0].get("branch").is_none());

    // `watch --replay` shows the whole path, one line per event.
    let watched = watch_until(&nats_url, "dbtops.mr.opened");
    for subject in [
        "dbtops.run.submitted",
        "dbtops.failure.detected",
        "dbtops.fix.proposed",
        "dbtops.fix.validated",
        "dbtops.mr.opened",
    ] {
        assert!(
            watched.iter().any(|line| line.contains(subject)),
            "no {subject} in {watched:#?}"
        );
    }
    assert!(watched.iter().any(|line| line.contains("model=stg_orders")));

    // The private server was started on the URL's own port, under the working directory.
    assert!(scratch.path().join(".dbt-ops/nats").is_dir());
    let exit = up.terminate();
    assert!(
        exit.success(),
        "dbt-ops up exited with {exit} after SIGTERM"
    );
}

/// Runs `dbt-ops watch --replay` until a line contains `last`; returns the lines.
fn watch_until(nats_url: &str, last: &str) -> Vec<String> {
    let mut child = Command::new(DBT_OPS)
        .args(["watch", "--replay"])
        .env("NATS_URL", nats_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = line_rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains(last);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn detect_prints_the_failing_model_as_json_without_a_bus() {
    let scratch = tempfile::tempdir().unwrap();
    let project = broken_project(
        scratch.path(),
        "models/marts/orders.sql",
        "{{ ref('stg_orders') }}",
        "{{ ref('stg_ordrs') }}",
    );
    let output = Command::new(DBT_OPS)
        .args(["detect", "--json", "--project-dir"])
        .arg(&project)
        .env("NATS_URL", "nats://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let failures: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["unique_id"], "model.coffee_shop.orders");
    assert_eq!(failures[0]["path"], "models/marts/orders.sql");
    assert_eq!(failures[0]["class"], "bad_ref");
    assert!(failures[0]["message"]
        .as_str()
        .unwrap()
        .contains("stg_ordrs"));
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_key() {
    let output = Command::new(DBT_OPS)
        .args(["detect", "--project-dir", "."])
        .env("DBT_OPS__FIXER__MAX_ATTEMPTS", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fixer.max_attempts"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dbt-ops.toml");
    std::fs::write(&config, "[validator]\nconcurrency = 0\n").unwrap();
    let output = Command::new(DBT_OPS)
        .arg("--config")
        .arg(&config)
        .arg("up")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("validator.concurrency"), "{stderr}");
}
