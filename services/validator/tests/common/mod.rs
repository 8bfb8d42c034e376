//! Shared by the validator's tests and its benchmark: the example project in a temp dir,
//! real dbt, incidents and proposals as the detector and fixer would send them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dbtops_proto::v1;
use dbtops_settings::Settings;

pub const STG_ORDERS: &str = "models/staging/stg_orders.sql";
pub const STG_CUSTOMERS: &str = "models/staging/stg_customers.sql";
pub const REVENUE_DAILY: &str = "models/marts/finance/revenue_daily.sql";
pub const STORE_REVENUE: &str = "models/marts/finance/store_revenue.sql";
pub const ORDERS: &str = "models/marts/orders.sql";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The project's real dbt (dbt-core + dbt-duckdb 1.11 in `.venv`).
pub fn dbt_bin() -> PathBuf {
    let dbt = repo_root().join(".venv/bin/dbt");
    assert!(dbt.is_file(), "no dbt at {}", dbt.display());
    dbt
}

/// A copy of `examples/coffee_shop`, standing for the user's checkout.
pub struct Project {
    /// Owns the temp dir.
    pub dir: tempfile::TempDir,
    /// The dbt project.
    pub path: PathBuf,
}

impl Project {
    /// A fresh copy: no `target/`, no database.
    pub fn copy() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("coffee_shop");
        copy_tree(&repo_root().join("examples/coffee_shop"), &path);
        Self { dir, path }
    }

    /// A copy on which a good `dbt build` ran: a database with every model (the last
    /// good versions), `target/` with a partial-parse file, `logs/`.
    pub fn built() -> Self {
        let project = Self::copy();
        let (ok, output) = project.dbt(&["build"]);
        assert!(ok, "the example project builds:\n{output}");
        project
    }

    /// Runs real dbt in the project, as the user would.
    pub fn dbt(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(dbt_bin())
            .args(args)
            .args(["--profiles-dir", "."])
            .current_dir(&self.path)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("DO_NOT_TRACK", "1")
            .output()
            .expect("dbt runs");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// A file of the project.
    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path.join(relative)).expect("project file")
    }

    /// Replaces `from` by `to` in a model (the break the incident is about); returns the
    /// original, which is the right fix.
    pub fn break_model(&self, relative: &str, from: &str, to: &str) -> String {
        let original = self.read(relative);
        assert!(original.contains(from), "{relative} lacks {from:?}");
        std::fs::write(self.path.join(relative), original.replacen(from, to, 1))
            .expect("write model");
        original
    }

    /// An incident about `model_path`, whose current (broken) SQL is in the project.
    pub fn incident(&self, model_path: &str, class: v1::ErrorClass, message: &str) -> Incident {
        let name = Path::new(model_path)
            .file_stem()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let model = v1::ModelRef {
            unique_id: format!("model.coffee_shop.{name}"),
            name,
            path: model_path.into(),
            resource_type: "model".into(),
        };
        let detected = v1::FailureDetected {
            incident_id: format!("test-{}", model.name),
            project: Some(v1::ProjectRef {
                name: "coffee_shop".into(),
                project_dir: self.path.display().to_string(),
                model_paths: vec!["models".into()],
                ..Default::default()
            }),
            model: Some(model.clone()),
            error: Some(v1::FailureError {
                class: class as i32,
                message: message.into(),
                ..Default::default()
            }),
            evidence: Some(v1::Evidence {
                model_sql: std::fs::read_to_string(self.path.join(model_path)).unwrap_or_default(),
                adapter: "duckdb".into(),
                project_node_names: NODES.iter().map(|node| node.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        Incident { detected, model }
    }

    /// Every file under the project, with its bytes (symlinks as their target).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.path)
    }
}

/// The example project's nodes.
const NODES: &[&str] = &[
    "raw_customers",
    "raw_stores",
    "raw_orders",
    "raw_order_items",
    "raw_products",
    "stg_customers",
    "stg_stores",
    "stg_orders",
    "stg_order_items",
    "stg_products",
    "orders",
    "customers",
    "revenue_daily",
    "store_revenue",
];

/// An incident and its model.
pub struct Incident {
    pub detected: v1::FailureDetected,
    pub model: v1::ModelRef,
}

/// A proposal writing `sql` to `path`.
pub fn proposal(path: &str, sql: &str) -> v1::FixProposal {
    v1::FixProposal {
        model_path: path.into(),
        fixed_sql: sql.into(),
        explanation: "test".into(),
        confidence: 0.9,
        strategy: "test".into(),
        ..Default::default()
    }
}

/// Settings for tests: real dbt, workspaces under `workspace_root`.
pub fn settings(workspace_root: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.validator.dbt_bin = dbt_bin().display().to_string();
    settings.validator.workspace_root = workspace_root.display().to_string();
    settings.validator.dbt_timeout_secs = 240;
    settings
}

/// Every file under `root`, with its bytes (symlinks as their target).
pub fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .map(|entry| entry.expect("walk"))
        .map(|entry| {
            let relative = entry
                .path()
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string();
            let file_type = entry.file_type();
            let bytes = if file_type.is_symlink() {
                format!(
                    "symlink -> {}",
                    std::fs::read_link(entry.path()).expect("link").display()
                )
                .into_bytes()
            } else if file_type.is_file() {
                std::fs::read(entry.path()).expect("read")
            } else {
                b"<dir>".to_vec()
            };
            (relative, bytes)
        })
        .collect()
}

/// Names of the entries directly under `dir` (the validator's workspace root).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of processes whose working directory is under `dir` (a dbt left running).
pub fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            cwd.starts_with(dir).then_some(pid)
        })
        .collect()
}

/// [`processes_under`] once they have had `grace` to finish dying: a process group killed
/// with SIGKILL is gone at once only on an idle machine (a big Python process takes a
/// moment to tear down), so a check right after the kill would race it.
pub fn processes_under_after(dir: &Path, grace: std::time::Duration) -> Vec<u32> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        let left: Vec<u32> = processes_under(dir)
            .into_iter()
            .filter(|pid| is_running(*pid))
            .collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether a process is alive (a zombie counts as dead).
pub fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.expect("walk");
        let relative = entry.path().strip_prefix(from).expect("inside");
        let name = relative.to_string_lossy();
        if name.starts_with("target") || name.starts_with("logs") || name.ends_with(".duckdb") {
            continue;
        }
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
