//! The scratch repositories `eval` and `bench` build: git with a fixed identity, and dbt
//! run in a project with its own profiles.yml.

use std::path::Path;
use std::process::Command;

/// Runs git in `dir` as `identity` (name, email); its stdout, or why it failed.
pub fn git(dir: &Path, identity: (&str, &str), args: &[&str]) -> Result<String, String> {
    let output = Command::new("git")
        .args(["-c", &format!("user.name={}", identity.0)])
        .args(["-c", &format!("user.email={}", identity.1)])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|error| format!("cannot run git: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs dbt in `project` with its own profiles.yml (and no inherited DuckDB path, so the
/// profile's relative file in the copy is used); whether it passed, and its output.
pub fn run_dbt(dbt: &Path, project: &Path, args: &[&str]) -> Result<(bool, String), String> {
    let output = Command::new(dbt)
        .args(args)
        .args(["--profiles-dir", "."])
        .current_dir(project)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DO_NOT_TRACK", "1")
        .env_remove("DBT_DUCKDB_PATH")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", dbt.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}
