//! Shared fixture: a real git repository in a temporary directory.
//!
//! Lives in `tests/common/mod.rs` (not `tests/common.rs`) so that cargo does not build it
//! as a test binary of its own; each test file pulls it in with `mod common;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const MODEL: &str = "analytics/models/staging/stg_orders.sql";
pub const ORIGINAL: &str = "select\n    order_id,\n    custmer_id\nfrom {{ ref('raw_orders') }}\n";
pub const FIXED: &str = "select\n    order_id,\n    customer_id\nfrom {{ ref('raw_orders') }}\n";

/// Runs git in `dir` with a fixed identity and no user or system configuration, so the
/// fixture does not depend on the machine; fails on a non-zero exit.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.com")
        // Read-only commands in tests (status) must not refresh the index either.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// A repository with a dbt project in `analytics/`, one commit on `main`:
/// - `analytics/models/staging/stg_orders.sql` (100644, the failing model),
/// - `analytics/models/marts/exec_model.sql` (100755),
/// - `analytics/models/linked.sql` (a symbolic link),
/// - `analytics/dbt_project.yml`, `README.md`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        git(root, &["init", "-q", "-b", "main", "."])?;
        std::fs::create_dir_all(root.join("analytics/models/staging"))?;
        std::fs::create_dir_all(root.join("analytics/models/marts"))?;
        std::fs::write(root.join("README.md"), "# repo\n")?;
        std::fs::write(root.join("analytics/dbt_project.yml"), "name: analytics\n")?;
        std::fs::write(root.join(MODEL), ORIGINAL)?;
        std::fs::write(
            root.join("analytics/models/marts/exec_model.sql"),
            "select 1 as x\n",
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let exec = root.join("analytics/models/marts/exec_model.sql");
            std::fs::set_permissions(&exec, std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::symlink(
                "staging/stg_orders.sql",
                root.join("analytics/models/linked.sql"),
            )?;
        }
        git(root, &["add", "-A"])?;
        git(root, &["commit", "-q", "-m", "initial"])?;
        Ok(Self { dir })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn project(&self) -> PathBuf {
        self.dir.path().join("analytics")
    }

    pub fn head(&self) -> Result<String, Box<dyn std::error::Error>> {
        Ok(git(self.root(), &["rev-parse", "HEAD"])?.trim().to_owned())
    }
}

pub fn request(
    branch: &str,
    base: &str,
    path: &str,
    content: &str,
) -> dbtops_localgit::BranchCommit {
    dbtops_localgit::BranchCommit {
        branch: branch.to_owned(),
        base_commit: base.to_owned(),
        path_in_repo: path.to_owned(),
        content: content.to_owned(),
        also_replace: Vec::new(),
        message: "fix(stg_orders): custmer_id -> customer_id\n\nIncident 3f2a9c1e.".to_owned(),
        author_name: "dbt-ops".to_owned(),
        author_email: "dbt-ops@example.invalid".to_owned(),
    }
}

/// A repository made by `git init` with `option` (`--object-format=sha256`,
/// `--ref-format=reftable`) holding only the model, in one commit on `main`; `None`, said
/// on standard error, when this git cannot make such a repository.
pub fn model_repository_with(
    option: &str,
) -> Result<Option<tempfile::TempDir>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    if git(root, &["init", "-q", option, "-b", "main", "."]).is_err() {
        eprintln!("did not run: this git cannot make a repository with {option}");
        return Ok(None);
    }
    std::fs::create_dir_all(root.join("analytics/models/staging"))?;
    std::fs::write(root.join(MODEL), ORIGINAL)?;
    git(root, &["add", "-A"])?;
    git(root, &["commit", "-q", "-m", "initial"])?;
    Ok(Some(dir))
}
