//! The warm dbt worker and its pool.
//!
//! dbt's start-up dominates a validation: on a 2-core machine a cold `dbt compile
//! --select m` takes ≈ 2.9 s, while inside one warm Python process (`dbtRunner`) it takes
//! ≈ 0.3 s. A [`WorkerPool`] keeps such processes — `python/dbt_worker.py`, embedded in
//! the binary so `cargo install` needs no file beside it — keyed by project.
//!
//! **How one worker serves many workspaces.** Every validation has its own scratch copy;
//! each call tells the worker its `--project-dir` and working directory, the worker runs
//! one dbt invocation there with a fresh `dbtRunner` (a runner holding a parsed manifest
//! would not see the file just written) and forgets dbt-duckdb's process-wide database
//! handle afterwards. Parsing stays cheap because the validator seeds each workspace with
//! the last `partial_parse.msgpack` of the same project (dbt checks it file by file).
//!
//! **Lifecycle.** A validation takes a [`Lease`] for its whole ladder, so a worker runs
//! one invocation at a time (dbt is not safe to run twice in one process). A worker that
//! dies is replaced on the next call; one that does not answer in time is killed with its
//! process group; one whose memory grows past the limit is retired after its call. At most
//! `capacity` workers live at once: an idle worker of another project is evicted to make
//! room. The processes are plain `std::process` children read by two threads each, so a
//! pool does not belong to any one tokio runtime.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::dbt::{kill_process_group, DBT_ENV};

/// The worker's source, run with `python -c`: nothing to install or find at run time.
pub const WORKER_SCRIPT: &str = include_str!("../python/dbt_worker.py");
/// Lines of a worker's stderr kept to explain its death.
const STDERR_TAIL_LINES: usize = 40;
/// After a worker fails to start, subprocesses are used for this long before trying again,
/// so a missing Python costs one attempt, not one per validation.
const START_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How to start workers.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The Python interpreter that can `import dbt`.
    pub python: PathBuf,
    /// Importing dbt takes 1–2 s; a worker not ready after this is given up.
    pub start_timeout: Duration,
    /// A worker whose resident memory exceeds this is retired after its call.
    pub max_memory_bytes: u64,
}

/// Why a worker could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The process did not start or did not report ready.
    #[error("cannot start the dbt worker with {python}: {reason}")]
    Start {
        /// The interpreter tried.
        python: String,
        /// Why.
        reason: String,
    },
    /// A worker failed to start a moment ago; not retried yet.
    #[error("the dbt worker failed to start recently ({0})")]
    RecentlyFailed(String),
    /// No answer in time: the worker was killed with its process group.
    #[error("the dbt worker did not answer within {0:?} and was killed")]
    Timeout(Duration),
    /// The worker exited (crashed, or was killed) during the call.
    #[error("the dbt worker died: {0}")]
    Died(String),
    /// It answered something that is not a reply.
    #[error("the dbt worker broke the protocol: {0}")]
    Protocol(String),
    /// Every slot is leased (a pool shared by more validations than its capacity).
    #[error("all {0} dbt workers are busy")]
    Busy(usize),
}

/// One reply of the worker.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerReply {
    /// The request it answers.
    pub id: Option<u64>,
    /// dbtRunner's `success`.
    pub ok: bool,
    /// dbt's console output, captured.
    pub output: String,
    /// The exception dbt raised, if any (`DbtProfileError: …`).
    pub exception: Option<String>,
    /// The worker's resident memory after the call.
    #[serde(default)]
    pub rss_bytes: u64,
    /// Time inside the worker.
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Debug, Deserialize)]
struct Ready {
    ready: bool,
    #[serde(default)]
    error: String,
    #[serde(default)]
    dbt_version: String,
}

/// One live worker process.
struct WorkerProcess {
    /// The process; its group id is its pid (`process_group(0)`).
    child: Child,
    /// Requests go here, one JSON line each.
    stdin: ChildStdin,
    /// Lines of the worker's stdout, from the reader thread; closed when it exits.
    lines: UnboundedReceiver<String>,
    /// The end of its stderr, to explain a death.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The id of the last request.
    last_id: u64,
    /// A request was sent and its reply not read: the worker may still be busy with it.
    in_flight: bool,
    /// The dbt version it reported.
    dbt_version: String,
}

impl WorkerProcess {
    async fn start(spec: &WorkerSpec) -> Result<Self, WorkerError> {
        let start_error = |reason: String| WorkerError::Start {
            python: spec.python.display().to_string(),
            reason,
        };
        let mut command = std::process::Command::new(&spec.python);
        command
            .arg("-c")
            .arg(WORKER_SCRIPT)
            .envs(DBT_ENV.iter().copied())
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever dbt started as well.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|error| start_error(error.to_string()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(start_error("no pipes to the process".into()));
        };
        let (sender, lines) = unbounded_channel();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = stderr_tail.clone();
        let readers = std::thread::Builder::new()
            .name("dbt-worker-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            })
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("dbt-worker-stderr".into())
                    .spawn(move || {
                        for line in BufReader::new(stderr).lines() {
                            let Ok(mut line) = line else { break };
                            line.truncate(1000);
                            let mut tail = lock(&tail);
                            if tail.len() == STDERR_TAIL_LINES {
                                tail.pop_front();
                            }
                            tail.push_back(line);
                        }
                    })
            });
        let mut worker = Self {
            child,
            stdin,
            lines,
            stderr_tail,
            last_id: 0,
            in_flight: false,
            dbt_version: String::new(),
        };
        if let Err(error) = readers {
            return Err(start_error(format!(
                "cannot start a reader thread: {error}"
            )));
        }
        let first = match tokio::time::timeout(spec.start_timeout, worker.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => return Err(start_error(worker.death())),
            Err(_) => {
                return Err(start_error(format!(
                    "not ready after {:?}",
                    spec.start_timeout
                )));
            }
        };
        let ready: Ready = serde_json::from_str(&first)
            .map_err(|error| start_error(format!("unexpected first line {first:?}: {error}")))?;
        if !ready.ready {
            return Err(start_error(ready.error));
        }
        worker.dbt_version = ready.dbt_version;
        tracing::info!(
            message = "dbt worker started.",
            pid = worker.pid(),
            dbt_version = %worker.dbt_version
        );
        Ok(worker)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one request and waits for its reply; on a timeout the worker is killed.
    async fn call(
        &mut self,
        args: &[String],
        cwd: &Path,
        timeout: Duration,
    ) -> Result<WorkerReply, WorkerError> {
        self.last_id += 1;
        let id = self.last_id;
        let request = serde_json::json!({ "id": id, "args": args, "cwd": cwd });
        let mut line = request.to_string();
        line.push('\n');
        // A request is a few hundred bytes and an idle worker is blocked reading: the
        // pipe takes it at once, so this blocking write does not stall the runtime.
        if let Err(error) = self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
        {
            return Err(WorkerError::Died(format!(
                "cannot send the request ({error}); {}",
                self.death()
            )));
        }
        self.in_flight = true;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Err(_) => {
                    self.kill();
                    return Err(WorkerError::Timeout(timeout));
                }
                Ok(None) => return Err(WorkerError::Died(self.death())),
                Ok(Some(line)) => {
                    let reply: WorkerReply = serde_json::from_str(&line).map_err(|error| {
                        WorkerError::Protocol(format!("{error}: {}", truncate(&line, 200)))
                    })?;
                    // A reply to an abandoned earlier request: skip it.
                    if reply.id == Some(id) {
                        self.in_flight = false;
                        return Ok(reply);
                    }
                }
            }
        }
    }

    /// How the process ended, with the end of its stderr.
    fn death(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => "still running".into(),
            Err(error) => error.to_string(),
        };
        let tail: Vec<String> = lock(&self.stderr_tail).iter().cloned().collect();
        let tail = tail
            .iter()
            .rev()
            .take(8)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if tail.is_empty() {
            status
        } else {
            format!("{status}; stderr: {tail}")
        }
    }

    /// Kills the process group and reaps the leader.
    fn kill(&mut self) {
        if self.is_alive() {
            kill_process_group(self.pid());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Warm workers keyed by project, at most `capacity` alive.
#[derive(Clone)]
pub struct WorkerPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// How to start a worker.
    spec: WorkerSpec,
    /// Most workers alive at once (idle and leased).
    capacity: usize,
    /// Idle workers, slots and start failures.
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Workers between validations, oldest first.
    idle: Vec<IdleWorker>,
    /// Slots taken: idle workers plus leases.
    live: usize,
    /// Until when starting is not tried again, and why it failed.
    start_failed: Option<(Instant, String)>,
    /// Workers started so far (a crash or retirement shows as a restart).
    started: u64,
}

struct IdleWorker {
    key: String,
    worker: WorkerProcess,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("python", &self.inner.spec.python)
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WorkerPool {
    /// A pool of at most `capacity` workers.
    pub fn new(spec: WorkerSpec, capacity: usize) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                spec,
                capacity: capacity.max(1),
                state: Mutex::new(PoolState::default()),
            }),
        }
    }

    /// The interpreter workers run on.
    pub fn python(&self) -> &Path {
        &self.inner.spec.python
    }

    /// A started worker for `key` (a project), held until the lease is dropped: an idle
    /// one of the same project if there is one, else a new one.
    pub async fn checkout(&self, key: &str) -> Result<Lease, WorkerError> {
        let mut evicted = Vec::new();
        let reused = {
            let mut state = lock(&self.inner.state);
            if let Some((until, reason)) = &state.start_failed {
                if Instant::now() < *until {
                    return Err(WorkerError::RecentlyFailed(reason.clone()));
                }
            }
            let mut reused = None;
            while let Some(position) = state.idle.iter().position(|idle| idle.key == key) {
                let mut idle = state.idle.remove(position);
                if idle.worker.is_alive() {
                    reused = Some(idle.worker);
                    break;
                }
                state.live -= 1;
                evicted.push(idle.worker);
            }
            if reused.is_none() {
                // Make room by evicting the longest-idle worker of another project.
                while state.live >= self.inner.capacity && !state.idle.is_empty() {
                    let idle = state.idle.remove(0);
                    state.live -= 1;
                    evicted.push(idle.worker);
                }
                if state.live >= self.inner.capacity {
                    return Err(WorkerError::Busy(state.live));
                }
                state.live += 1;
            }
            reused
        };
        // Killing takes a moment: not under the lock.
        drop(evicted);
        let mut lease = Lease {
            pool: self.inner.clone(),
            key: key.to_owned(),
            worker: reused,
            retire: false,
            restarts: 0,
        };
        if lease.worker.is_none() {
            lease.start().await?;
        }
        Ok(lease)
    }

    /// Pids of the idle workers (for tests and diagnostics).
    pub fn idle_pids(&self) -> Vec<u32> {
        lock(&self.inner.state)
            .idle
            .iter()
            .map(|idle| idle.worker.pid())
            .collect()
    }

    /// Workers alive or leased now.
    pub fn live(&self) -> usize {
        lock(&self.inner.state).live
    }

    /// Workers started since the pool was made.
    pub fn started(&self) -> u64 {
        lock(&self.inner.state).started
    }

    /// Kills every idle worker (leased ones die when their lease ends).
    pub fn shutdown(&self) {
        let idle = {
            let mut state = lock(&self.inner.state);
            let idle = std::mem::take(&mut state.idle);
            state.live -= idle.len();
            idle
        };
        drop(idle);
    }
}

/// One worker slot held by one validation.
pub struct Lease {
    pool: Arc<PoolInner>,
    key: String,
    /// The worker; `None` after it died until the next call starts another.
    worker: Option<WorkerProcess>,
    /// Past its memory limit: replaced before the next call, not returned to the pool.
    retire: bool,
    /// Workers started by this lease after the first.
    restarts: u32,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Lease {
    /// The worker's pid, if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.worker.as_ref().map(WorkerProcess::pid)
    }

    async fn start(&mut self) -> Result<(), WorkerError> {
        match WorkerProcess::start(&self.pool.spec).await {
            Ok(worker) => {
                let mut state = lock(&self.pool.state);
                state.start_failed = None;
                state.started += 1;
                drop(state);
                self.worker = Some(worker);
                Ok(())
            }
            Err(error) => {
                lock(&self.pool.state).start_failed =
                    Some((Instant::now() + START_RETRY_AFTER, error.to_string()));
                Err(error)
            }
        }
    }

    /// Runs one dbt invocation (`args` as on dbt's command line) with `cwd` as working
    /// directory. A worker that died since the last call is replaced first.
    pub async fn call(
        &mut self,
        args: &[String],
        cwd: &Path,
        timeout: Duration,
    ) -> Result<WorkerReply, WorkerError> {
        let usable = match self.worker.as_mut() {
            Some(worker) => !self.retire && worker.is_alive(),
            None => false,
        };
        if !usable {
            // Dropping the old one kills it.
            self.worker = None;
            self.retire = false;
            self.restarts += 1;
            self.start().await?;
        }
        let Some(worker) = self.worker.as_mut() else {
            return Err(WorkerError::Died("no worker after a start".into()));
        };
        match worker.call(args, cwd, timeout).await {
            Ok(reply) => {
                if reply.rss_bytes > self.pool.spec.max_memory_bytes {
                    tracing::info!(
                        message = "Retiring a dbt worker over its memory limit.",
                        pid = worker.pid(),
                        rss_bytes = reply.rss_bytes
                    );
                    self.retire = true;
                }
                Ok(reply)
            }
            Err(error) => {
                self.worker = None;
                Err(error)
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut worker = self.worker.take();
        // Only a healthy worker with no call in flight goes back.
        let reusable = !self.retire
            && worker
                .as_mut()
                .is_some_and(|worker| !worker.in_flight && worker.is_alive());
        let returned = {
            let mut state = lock(&self.pool.state);
            match worker {
                Some(worker) if reusable => {
                    state.idle.push(IdleWorker {
                        key: std::mem::take(&mut self.key),
                        worker,
                    });
                    None
                }
                other => {
                    state.live = state.live.saturating_sub(1);
                    other
                }
            }
        };
        // Killing takes a moment: not under the lock.
        drop(returned);
    }
}

/// The Python to run workers with: the configured one; else the interpreter on dbt's
/// `#!` line (a pip-installed `dbt` is a script of the virtualenv's Python); else
/// `python3` or `python` beside dbt; else `python3` on PATH.
pub fn find_python(configured: &str, dbt_program: &Path) -> PathBuf {
    if !configured.is_empty() {
        return PathBuf::from(configured);
    }
    let dbt = resolve_on_path(dbt_program);
    if let Some(interpreter) = dbt.as_deref().and_then(shebang_interpreter) {
        return interpreter;
    }
    if let Some(dir) = dbt.as_deref().and_then(Path::parent) {
        for name in ["python3", "python"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("python3")
}

/// `program` itself when it has a directory part, else the first match on PATH.
fn resolve_on_path(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// The interpreter of a `#!/path/python` or `#!/usr/bin/env python3` script.
fn shebang_interpreter(script: &Path) -> Option<PathBuf> {
    let mut first = String::new();
    let file = std::fs::File::open(script).ok()?;
    BufReader::new(file.take(512)).read_line(&mut first).ok()?;
    let command = first.strip_prefix("#!")?.trim();
    let mut words = command.split_whitespace();
    let program = words.next()?;
    let interpreter = if program.ends_with("/env") {
        words.find(|word| !word.starts_with('-'))?
    } else {
        program
    };
    let name = Path::new(interpreter).file_name()?.to_string_lossy();
    if !name.starts_with("python") {
        return None;
    }
    let path = PathBuf::from(interpreter);
    if path.is_absolute() {
        path.is_file().then_some(path)
    } else {
        Some(path)
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_is_read_from_dbts_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let python = dir.path().join("python3.11");
        std::fs::write(&python, "").unwrap();
        let dbt = dir.path().join("dbt");
        std::fs::write(
            &dbt,
            format!("#!{}\nfrom dbt.cli.main import cli\n", python.display()),
        )
        .unwrap();
        assert_eq!(find_python("", &dbt), python);
        std::fs::write(&dbt, "#!/usr/bin/env -S python3 -u\n").unwrap();
        assert_eq!(find_python("", &dbt), PathBuf::from("python3"));
        // Not a Python script: the python beside it.
        std::fs::write(&dbt, "#!/bin/sh\nexec something\n").unwrap();
        std::fs::write(dir.path().join("python3"), "").unwrap();
        assert_eq!(find_python("", &dbt), dir.path().join("python3"));
        assert_eq!(
            find_python("/opt/py/bin/python", &dbt),
            PathBuf::from("/opt/py/bin/python")
        );
    }

    #[test]
    fn the_embedded_script_speaks_the_protocol() {
        assert!(WORKER_SCRIPT.contains("dbtRunner"));
        assert!(WORKER_SCRIPT.contains("\"ready\": True"));
        assert!(WORKER_SCRIPT.contains("release_adapter_state"));
    }
}
