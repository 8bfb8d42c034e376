//! What several CLI test binaries share.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs git in `dir` as a test identity; panics on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The example project in a fresh git repository under `root`, with `path` broken by
/// `from` → `to` (committed), and a real, failing `dbt build` run in it.
pub fn broken_project(root: &Path, path: &str, from: &str, to: &str) -> PathBuf {
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
        "{} is missing: run scripts/setup.sh (scripts/test.sh does)",
        dbt.display()
    );
    let build = Command::new(dbt)
        .args(["build", "--profiles-dir", "."])
        .current_dir(&project)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DO_NOT_TRACK", "1")
        .output()
        .unwrap();
    assert!(!build.status.success(), "the broken project must fail");
    project
}

/// Stops a `dbt-ops up` (or any child that cleans up after itself) as an operator would:
/// SIGTERM, a bounded wait, then SIGKILL. A SIGKILL alone would leave the private
/// nats-server `up` started running after the test.
pub fn stop_gracefully(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
