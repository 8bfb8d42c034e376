//! The scratch repositories `eval` and `bench` build: a clean copy of a project, git with
//! a fixed identity, and dbt run in a project with its own profiles.yml.

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

/// Copies a dbt project, leaving out what a run leaves behind (target, logs, packages,
/// DuckDB files) and the names in `also_skip`, so the copy starts clean.
pub fn copy_project(from: &Path, to: &Path, also_skip: &[&str]) -> Result<(), String> {
    let failed = |what: &str, path: &Path, error: std::io::Error| {
        format!("cannot {what} {}: {error}", path.display())
    };
    std::fs::create_dir_all(to).map_err(|error| failed("create", to, error))?;
    for entry in std::fs::read_dir(from).map_err(|error| failed("read", from, error))? {
        let entry = entry.map_err(|error| failed("list", from, error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["target", "logs", "dbt_packages", ".user.yml"].contains(&name.as_str())
            || also_skip.contains(&name.as_str())
            || name.contains(".duckdb")
        {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|error| failed("stat", &entry.path(), error))?;
        if file_type.is_dir() {
            copy_project(&entry.path(), &to.join(&name), also_skip)?;
        } else if file_type.is_file() {
            std::fs::copy(entry.path(), to.join(&name))
                .map_err(|error| failed("copy", &entry.path(), error))?;
        }
    }
    Ok(())
}
