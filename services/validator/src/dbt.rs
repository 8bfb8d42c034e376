//! Running real dbt in a scratch workspace, with a timeout, and reading its output.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::io::AsyncReadExt;

/// How one dbt invocation ended.
#[derive(Debug, Clone)]
pub struct DbtRun {
    /// The command line, for the record (`dbt compile --select orders`).
    pub command: String,
    /// True when dbt exited 0 (or its in-process invocation succeeded).
    pub ok: bool,
    /// How long it took.
    pub duration: Duration,
    /// stdout and stderr together, ANSI stripped.
    pub output: String,
    /// What ran it: `warm worker (pid 123)` or `subprocess`.
    pub runner: String,
}

/// Why dbt could not be judged at all: these are the validator's problems (nak and retry),
/// never the proposal's — except a timeout, which the attempt is failed for.
#[derive(Debug, thiserror::Error)]
pub enum DbtError {
    /// The executable is missing or cannot run.
    #[error("cannot run dbt ({program}): {source}")]
    Spawn {
        /// What was run.
        program: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// dbt ran longer than allowed and was killed with its process group.
    #[error("dbt timed out after {0:?}: {1}")]
    Timeout(Duration, String),
    /// Its output could not be read.
    #[error("cannot read dbt's output: {0}")]
    Output(std::io::Error),
}

/// How to invoke dbt.
#[derive(Debug, Clone)]
pub struct DbtInvoker {
    /// The dbt executable.
    pub program: PathBuf,
    /// `--profiles-dir`, if any.
    pub profiles_dir: Option<PathBuf>,
    /// `--target`, if any.
    pub target: Option<String>,
    /// Kill dbt after this long.
    pub timeout: Duration,
}

/// Environment for every dbt process, the warm worker included: no telemetry, no version
/// check over the network, no colour codes in the output we parse, partial parsing on.
pub const DBT_ENV: &[(&str, &str)] = &[
    ("DBT_SEND_ANONYMOUS_USAGE_STATS", "false"),
    ("DO_NOT_TRACK", "1"),
    ("DBT_VERSION_CHECK", "false"),
    ("DBT_USE_COLORS", "false"),
    ("DBT_PARTIAL_PARSE", "true"),
];

impl DbtInvoker {
    /// `args` plus the project, profiles dir and target: the same for a subprocess and the
    /// warm worker.
    pub fn full_args(&self, project_dir: &Path, args: &[&str]) -> Vec<String> {
        let mut full: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        full.push("--project-dir".into());
        full.push(project_dir.display().to_string());
        if let Some(profiles_dir) = &self.profiles_dir {
            full.push("--profiles-dir".into());
            full.push(profiles_dir.display().to_string());
        }
        if let Some(target) = &self.target {
            full.push("--target".into());
            full.push(target.clone());
        }
        full
    }

    /// Runs `dbt <args…>` in `project_dir` (also its working directory, so a relative
    /// DuckDB path lands in the scratch copy, never in the user's project). dbt runs in a
    /// process group of its own, so a timeout kills whatever it started too.
    pub async fn run(&self, project_dir: &Path, args: &[&str]) -> Result<DbtRun, DbtError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(self.full_args(project_dir, args))
            .current_dir(project_dir)
            .envs(DBT_ENV.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let rendered = render_command(args);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|source| DbtError::Spawn {
            program: self.program.display().to_string(),
            source,
        })?;
        let group = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let collect = async {
            // Both pipes at once: dbt blocks when the one not being read fills up.
            let read_out = async {
                let mut out = Vec::new();
                if let Some(stdout) = stdout.as_mut() {
                    stdout.read_to_end(&mut out).await?;
                }
                Ok::<_, std::io::Error>(out)
            };
            let read_err = async {
                let mut err = Vec::new();
                if let Some(stderr) = stderr.as_mut() {
                    stderr.read_to_end(&mut err).await?;
                }
                Ok::<_, std::io::Error>(err)
            };
            let (out, err) = tokio::join!(read_out, read_err);
            let mut out = out.map_err(DbtError::Output)?;
            let err = err.map_err(DbtError::Output)?;
            let status = child.wait().await.map_err(DbtError::Output)?;
            out.extend_from_slice(&err);
            Ok::<_, DbtError>((status, out))
        };
        let (status, output) = match tokio::time::timeout(self.timeout, collect).await {
            Ok(result) => result?,
            Err(_elapsed) => {
                // The leader is not reaped yet (dropping the future kills and reaps it), so
                // its group id cannot have been reused.
                if let Some(group) = group {
                    kill_process_group(group);
                }
                return Err(DbtError::Timeout(self.timeout, rendered));
            }
        };
        let mut output = strip_ansi(&String::from_utf8_lossy(&output));
        if status.code().is_none() {
            output.push_str(&format!("\ndbt was killed by a signal ({status})"));
        }
        Ok(DbtRun {
            command: rendered,
            ok: status.success(),
            duration: started.elapsed(),
            output,
            runner: "subprocess".into(),
        })
    }
}

/// `dbt compile --select orders`, with an inline query shortened to its first line.
pub fn render_command(args: &[&str]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|arg| match arg.lines().next() {
            Some(first) if arg.contains('\n') => format!("\"{first} …\""),
            _ => (*arg).to_owned(),
        })
        .collect();
    format!("dbt {}", shown.join(" "))
}

/// Kills every process in process group `group` with SIGKILL.
///
/// The standard library has no `killpg` and the workspace has no libc binding, so this
/// asks kill(1) (procps or util-linux, present wherever dbt runs) to signal `-group`.
/// Returns whether it reported success; callers also kill the leader directly.
pub fn kill_process_group(group: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The dbt executable: the configured one, else `.venv/bin/dbt` in the working directory
/// or a parent, else `dbt` on PATH.
pub fn find_dbt(configured: &str) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    dbtops_bus::server::find_in_ancestors(Path::new(".venv/bin/dbt"))
        .unwrap_or_else(|| PathBuf::from("dbt"))
}

/// Removes ANSI colour and cursor sequences.
pub fn strip_ansi(text: &str) -> String {
    static ANSI: OnceLock<Option<Regex>> = OnceLock::new();
    match ANSI.get_or_init(|| Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").ok()) {
        Some(pattern) => pattern.replace_all(text, "").into_owned(),
        None => text.to_owned(),
    }
}

/// The part of dbt's output a reader (or the fixer's next attempt) needs: the error
/// blocks, without the banner, timings and progress lines, at most `max_lines`.
pub fn relevant_error(output: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    // dbt prints the details after "Completed with N error(s)"; parse errors have none.
    let start = lines
        .iter()
        .position(|line| line.contains("Completed with"))
        .map(|index| index + 1)
        .or_else(|| {
            lines.iter().position(|line| {
                line.contains("Error") || line.contains("error") && !line.contains("0 errors")
            })
        })
        .unwrap_or(0);
    let kept: Vec<&str> = lines[start..]
        .iter()
        .map(|line| strip_log_prefix(line))
        .filter(|line| {
            let trimmed = line.trim();
            !trimmed.is_empty()
                && !trimmed.starts_with("Done. PASS=")
                && !trimmed.starts_with("Finished running")
        })
        .take(max_lines)
        .collect();
    kept.join("\n")
}

/// Drops dbt's `12:34:56  ` timestamp prefix.
pub fn strip_log_prefix(line: &str) -> &str {
    let bytes = line.as_bytes();
    let looks_like_time = bytes.len() >= 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && bytes[..8].iter().all(|b| b.is_ascii_digit() || *b == b':');
    if looks_like_time {
        // dbt separates the time from the message by two spaces; more is indentation.
        let rest = &line[8..];
        rest.strip_prefix("  ").unwrap_or(rest.trim_start())
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(
            strip_ansi("\x1b[31mError\x1b[0m in model"),
            "Error in model"
        );
    }

    #[test]
    fn the_error_block_is_kept_and_the_noise_dropped() {
        let output = "\
12:00:01  Running with dbt=1.11.16
12:00:02  1 of 2 START sql view model main.stg_orders .... [RUN]
12:00:03  Finished running 2 view models in 0 hours 0 minutes and 1.00 seconds (1.00s).
12:00:03  
12:00:03  Completed with 1 error, 0 partial successes, and 0 warnings:
12:00:03
12:00:03  Runtime Error in model orders (models/marts/orders.sql)
12:00:03    Binder Error: Referenced column \"ordr_id\" not found in FROM clause!
12:00:03  
12:00:03  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 NO-OP=0 TOTAL=2
";
        let relevant = relevant_error(output, 20);
        assert_eq!(
            relevant,
            "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Referenced column \"ordr_id\" not found in FROM clause!"
        );
    }
}
