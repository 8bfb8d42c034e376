//! Watch mode: dbt project directories whose finished runs are picked up and submitted.
//!
//! Every `detector.watch_interval_ms` each project's `run_results.json` and `dbt.log` are
//! looked at (size and modification time: no file-notification crate, no open files).
//! Once they have changed and then stayed unchanged for `detector.watch_debounce_ms` (dbt
//! writes run_results.json, then its last log lines), the run is evaluated:
//!
//! - a new `run_results.json` → that run (its invocation id) is submitted;
//! - else a `dbt.log` whose last invocation failed and wrote no run_results.json (a
//!   parse-time error: bad ref, Jinja, YAML) → that invocation is submitted, with the stale
//!   run_results.json as evidence the detector knows to distrust.
//!
//! Each invocation id is submitted once (runs present when the watch starts count as
//! done), as `RunSubmitted` on `dbtops.run.submitted` with submission id
//! `watch-<invocation id>` — the same message `dbt-ops submit` sends, so the detector's
//! consumer handles it like any other; two detectors watching the same directory publish
//! the same message id and the stream keeps one. Only the last invocation of the log is
//! read and sent (bounded), never a whole appended multi-gigabyte log.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use dbtops_bus::Bus;
use dbtops_settings::DetectorSettings;
use tracing::Instrument;

use crate::project::{project_ref, ProjectPaths};
use crate::{artifact_kind, Detector, DetectorError};

/// Invocation ids remembered per project.
const REMEMBERED: usize = 64;
/// Most of a log's tail read to find its last invocation.
const MAX_LOG_TAIL: u64 = 64 * 1024 * 1024;
/// First tail window read when looking for the last invocation header.
const FIRST_TAIL_WINDOW: u64 = 256 * 1024;

/// A file's size and modification time: what "changed" means here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Mark {
    len: u64,
    modified: Option<SystemTime>,
}

/// The two files a run changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Marks {
    run_results: Option<Mark>,
    log: Option<Mark>,
}

fn mark(path: &Path) -> Option<Mark> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Mark {
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// A run to submit: which invocation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pickup {
    /// dbt's invocation id.
    pub invocation_id: String,
    /// `run_results` (a new run_results.json) or `log` (a failed invocation that wrote
    /// none).
    pub trigger: &'static str,
    /// The last invocation of the log, when there is a log.
    pub log_tail: Option<Vec<u8>>,
}

/// One watched project and what has been seen of it.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Where its artifacts are.
    pub paths: ProjectPaths,
    /// The files as of the last evaluation: a change is measured against this.
    settled: Marks,
    /// The files as of the last poll, and since when they have looked so.
    seen: Marks,
    seen_since: Instant,
    /// Invocation ids already submitted (or there at start), newest last.
    done: VecDeque<String>,
}

impl Watched {
    /// Starts watching: the runs already on disk count as done.
    pub(crate) fn start(paths: ProjectPaths, now: Instant) -> Self {
        let marks = Marks {
            run_results: mark(&paths.run_results),
            log: mark(&paths.log),
        };
        let mut watched = Watched {
            settled: marks,
            seen: marks,
            seen_since: now,
            done: VecDeque::new(),
            paths,
        };
        if let Some(id) = run_results_invocation(&watched.paths.run_results) {
            watched.remember(id);
        }
        if let Ok(Some(tail)) = last_invocation(&watched.paths.log, MAX_LOG_TAIL) {
            if let Some(id) = dbtops_artifacts::scan_log_bytes(&tail).last_invocation_id {
                watched.remember(id);
            }
        }
        watched
    }

    fn remember(&mut self, id: String) {
        if !self.done.contains(&id) {
            self.done.push_back(id);
            while self.done.len() > REMEMBERED {
                self.done.pop_front();
            }
        }
    }

    /// Looks at the files; returns a run to submit once they changed and settled.
    /// Blocking (file reads): call it off the async workers.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        debounce: Duration,
        max_log: u64,
    ) -> Option<Pickup> {
        let marks = Marks {
            run_results: mark(&self.paths.run_results),
            log: mark(&self.paths.log),
        };
        if marks != self.seen {
            self.seen = marks;
            self.seen_since = now;
            return None;
        }
        if marks == self.settled || now.duration_since(self.seen_since) < debounce {
            return None;
        }
        let run_results_changed =
            marks.run_results.is_some() && marks.run_results != self.settled.run_results;
        let log_changed = marks.log.is_some() && marks.log != self.settled.log;
        self.settled = marks;

        let rr_id = run_results_invocation(&self.paths.run_results);
        let log_tail = if marks.log.is_some() {
            last_invocation(&self.paths.log, max_log).ok().flatten()
        } else {
            None
        };
        let scan = log_tail.as_deref().map(dbtops_artifacts::scan_log_bytes);
        if run_results_changed {
            if let Some(id) = rr_id.clone().filter(|id| !self.done.contains(id)) {
                self.remember(id.clone());
                return Some(Pickup {
                    invocation_id: id,
                    trigger: "run_results",
                    log_tail,
                });
            }
        }
        if log_changed {
            let scan = scan?;
            let id = scan.last_invocation_id?;
            // A run that wrote run_results.json was (or will be) picked up by it; `dbt ls`
            // and other commands that succeed without one are not runs to report.
            if scan.last_outcome == "failed"
                && Some(&id) != rr_id.as_ref()
                && !self.done.contains(&id)
            {
                self.remember(id.clone());
                return Some(Pickup {
                    invocation_id: id,
                    trigger: "log",
                    log_tail,
                });
            }
        }
        None
    }
}

/// The invocation id in run_results.json's metadata (the file is parsed for that alone).
fn run_results_invocation(path: &Path) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        invocation_id: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Head {
        metadata: Meta,
    }
    let bytes = std::fs::read(path).ok()?;
    let head: Head = serde_json::from_slice(&bytes).ok()?;
    head.metadata.invocation_id.map(|id| id.to_lowercase())
}

/// The log from its last invocation header (`===… HH:MM:SS | <id> ===…`) to its end, at
/// most `max` bytes (the last `max`, from a line start): read from the end backwards, so
/// an appended log of any size costs only its last run. A JSON log has no headers; its
/// last `max` bytes are returned and the parser splits invocations by id.
fn last_invocation(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let len = file.metadata()?.len();
    let max = max.min(len);
    let mut window = FIRST_TAIL_WINDOW.min(max);
    loop {
        let start = len - window;
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::with_capacity(usize::try_from(window).unwrap_or(0));
        (&mut file).take(window).read_to_end(&mut tail)?;
        let header = last_header(&tail).filter(|at| *at > 0 || start == 0);
        if let Some(at) = header {
            tail.drain(..at);
            return Ok(Some(tail));
        }
        if window >= max {
            // No header within reach: the last `max` bytes, from a line start.
            let cut = if start == 0 {
                0
            } else {
                tail.iter()
                    .position(|b| *b == b'\n')
                    .map_or(tail.len(), |i| i + 1)
            };
            tail.drain(..cut);
            return Ok(Some(tail));
        }
        window = (window * 4).min(max);
    }
}

/// Where the last text-log invocation header starts in `bytes`, if any.
fn last_header(bytes: &[u8]) -> Option<usize> {
    const MARK: &[u8] = b"============================== ";
    let mut end = bytes.len();
    while let Some(at) = find_last(&bytes[..end], MARK) {
        // A header starts a line and carries ` | <invocation id> `.
        let line_start = at == 0 || bytes[at - 1] == b'\n';
        let line_end = bytes[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        if line_start && bytes[at..line_end].windows(3).any(|w| w == b" | ") {
            return Some(at);
        }
        end = at;
    }
    None
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    (0..=haystack.len() - needle.len())
        .rev()
        .find(|i| &haystack[*i..*i + needle.len()] == needle)
}

/// The watched projects, started: the runs already on disk are known (and so never
/// submitted) from here on.
#[derive(Debug)]
pub struct Watch {
    /// One per `detector.watch` directory.
    projects: Vec<Watched>,
    /// `detector.watch_interval_ms`.
    interval: Duration,
    /// `detector.watch_debounce_ms`.
    debounce: Duration,
    /// Most of a log's last invocation read and sent.
    max_log: u64,
}

impl Watch {
    /// Reads each watched directory's layout and its current runs. A directory that is not
    /// a dbt project is a configuration error: said at start rather than watching nothing.
    pub async fn start(settings: &DetectorSettings) -> Result<Watch, DetectorError> {
        let mut projects = Vec::new();
        for dir in &settings.watch {
            let paths = ProjectPaths::for_project(Path::new(dir))
                .map_err(|error| DetectorError::Watch(error.to_string()))?;
            let started =
                tokio::task::spawn_blocking(move || Watched::start(paths, Instant::now()))
                    .await
                    .map_err(|error| DetectorError::Watch(error.to_string()))?;
            tracing::info!(
                message = "Watching a dbt project.",
                project_dir = %started.paths.dir.display()
            );
            projects.push(started);
        }
        Ok(Watch {
            projects,
            interval: Duration::from_millis(settings.watch_interval_ms),
            debounce: Duration::from_millis(settings.watch_debounce_ms),
            max_log: settings.max_artifact_bytes.min(MAX_LOG_TAIL),
        })
    }

    /// Polls every watched project until `shutdown`; publishes each finished run.
    pub async fn run(
        self,
        bus: Bus,
        detector: Detector,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DetectorError> {
        let Watch {
            mut projects,
            interval,
            debounce,
            max_log,
        } = self;
        tokio::pin!(shutdown);
        loop {
            let mut polled = Vec::with_capacity(projects.len());
            for mut watched in projects.drain(..) {
                let (watched_back, pickup) = tokio::task::spawn_blocking(move || {
                    let pickup = watched.poll(Instant::now(), debounce, max_log);
                    (watched, pickup)
                })
                .await
                .map_err(|error| DetectorError::Watch(error.to_string()))?;
                if let Some(pickup) = pickup {
                    let span = tracing::info_span!(
                        "detector.watch.pickup",
                        project_dir = %watched_back.paths.dir.display(),
                        invocation_id = %pickup.invocation_id,
                        trigger = pickup.trigger,
                    );
                    let result = submit(&bus, &detector, &watched_back.paths, pickup)
                        .instrument(span)
                        .await;
                    if let Err(error) = result {
                        // The run stays marked done: a broken artifact would fail again.
                        // Logged for the operator.
                        tracing::warn!(message = "Could not submit a watched run.", %error);
                    }
                }
                polled.push(watched_back);
            }
            projects = polled;
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Starts watching `detector.watch` and polls until `shutdown`.
pub async fn run(
    bus: Bus,
    detector: Detector,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DetectorError> {
    let watch = Watch::start(&detector.settings().detector).await?;
    watch.run(bus, detector, shutdown).await
}

/// Why a watched run could not be submitted.
#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("cannot read the project: {0}")]
    Project(String),
    #[error(transparent)]
    Bus(#[from] dbtops_bus::BusError),
}

/// Reads the run's artifacts and publishes them as `dbt-ops submit` would.
async fn submit(
    bus: &Bus,
    detector: &Detector,
    paths: &ProjectPaths,
    pickup: Pickup,
) -> Result<(), SubmitError> {
    let max = detector.settings().detector.max_artifact_bytes;
    let read_paths = paths.clone();
    let (project, files) = tokio::task::spawn_blocking(move || {
        let project =
            project_ref(&read_paths.dir).map_err(|e| SubmitError::Project(e.to_string()))?;
        let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
        for (kind, path) in [
            (artifact_kind::RUN_RESULTS, &read_paths.run_results),
            (artifact_kind::MANIFEST, &read_paths.manifest),
        ] {
            match std::fs::metadata(path) {
                Ok(meta) if meta.len() > max => tracing::warn!(
                    message = "Artifact over detector.max_artifact_bytes left out.",
                    kind,
                    bytes = meta.len()
                ),
                Ok(_) => {
                    if let Ok(content) = std::fs::read(path) {
                        let content = if kind == artifact_kind::MANIFEST {
                            dbtops_artifacts::manifest_for_submission(&content).unwrap_or(content)
                        } else {
                            content
                        };
                        files.push((kind, content));
                    }
                }
                Err(_) => {}
            }
        }
        let project_files = dbtops_artifacts::collect_project_files(&read_paths.dir)
            .map_err(|e| SubmitError::Project(e.to_string()))?;
        let json =
            serde_json::to_vec(&project_files).map_err(|e| SubmitError::Project(e.to_string()))?;
        files.push((artifact_kind::PROJECT_FILES, json));
        Ok::<_, SubmitError>((project, files))
    })
    .await
    .map_err(|error| SubmitError::Project(error.to_string()))??;
    let mut files = files;
    if let Some(tail) = pickup.log_tail {
        files.push((artifact_kind::DBT_LOG, tail));
    }
    let submission_id = format!("watch-{}", pickup.invocation_id);
    bus.submit_run(project, files, &submission_id).await?;
    tracing::info!(message = "Submitted a finished run.", submission_id = %submission_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/artifacts/tests/fixtures"
    );

    fn fixture(case: &str, file: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(case).join(file)).unwrap()
    }

    fn project() -> (tempfile::TempDir, ProjectPaths) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dbt_project.yml"), "name: coffee_shop\n").unwrap();
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let paths = ProjectPaths::for_project(dir.path()).unwrap();
        (dir, paths)
    }

    fn append(path: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    /// Real artifacts of a run that failed with a fresh run_results.json, then of one that
    /// failed at parse time (no new run_results.json): each is picked up once, only after
    /// the files settle.
    #[test]
    fn finished_runs_are_picked_up_once_after_they_settle() {
        let (_dir, paths) = project();
        let debounce = Duration::from_millis(500);
        let t0 = Instant::now();
        // A run that was there before the watch started is not submitted.
        std::fs::write(
            &paths.run_results,
            fixture("misspelt_column_mart", "run_results.json"),
        )
        .unwrap();
        let mut w = Watched::start(paths.clone(), t0);
        assert_eq!(w.poll(t0 + debounce * 4, debounce, MAX_LOG_TAIL), None);

        // A run: the log grows, then run_results.json is written.
        append(&paths.log, &fixture("misspelt_column_staging", "dbt.log"));
        std::fs::write(
            &paths.run_results,
            fixture("misspelt_column_staging", "run_results.json"),
        )
        .unwrap();
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(w.poll(t1, debounce, MAX_LOG_TAIL), None, "changed just now");
        assert_eq!(
            w.poll(t1 + debounce / 2, debounce, MAX_LOG_TAIL),
            None,
            "not settled yet"
        );
        let pickup = w
            .poll(t1 + debounce, debounce, MAX_LOG_TAIL)
            .expect("settled run");
        assert_eq!(pickup.trigger, "run_results");
        let expected_id = run_results_invocation(&paths.run_results).unwrap();
        assert_eq!(pickup.invocation_id, expected_id);
        let tail = pickup.log_tail.unwrap();
        assert!(tail.starts_with(b"=============================="));
        assert_eq!(
            dbtops_artifacts::scan_log_bytes(&tail)
                .last_invocation_id
                .as_deref(),
            Some(expected_id.as_str())
        );
        assert_eq!(
            w.poll(t1 + debounce * 3, debounce, MAX_LOG_TAIL),
            None,
            "once"
        );

        // A parse-time failure: the log grows, run_results.json stays stale.
        append(&paths.log, &fixture("misspelt_ref", "dbt.log"));
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(w.poll(t2, debounce, MAX_LOG_TAIL), None);
        let pickup = w
            .poll(t2 + debounce, debounce, MAX_LOG_TAIL)
            .expect("parse-time failure");
        assert_eq!(pickup.trigger, "log");
        assert_ne!(pickup.invocation_id, expected_id);
        // Touching the files again does not submit the same invocation twice.
        append(&paths.log, b"\n");
        assert_eq!(w.poll(t2 + debounce * 3, debounce, MAX_LOG_TAIL), None);
        assert_eq!(w.poll(t2 + debounce * 5, debounce, MAX_LOG_TAIL), None);
    }

    #[test]
    fn the_last_invocation_is_read_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dbt.log");
        let one = fixture("misspelt_column_staging", "dbt.log");
        let two = fixture("misspelt_ref", "dbt.log");
        // Many earlier runs, then the last.
        for _ in 0..20 {
            append(&log, &one);
        }
        append(&log, &two);
        let tail = last_invocation(&log, MAX_LOG_TAIL).unwrap().unwrap();
        let last_id = dbtops_artifacts::scan_log_bytes(&two).last_invocation_id;
        let scan = dbtops_artifacts::scan_log_bytes(&tail);
        assert_eq!(scan.invocations, 1);
        assert_eq!(scan.last_invocation_id, last_id);
        assert!(tail.len() <= two.len());
        // Bounded: a cap smaller than the last invocation gives its end, from a line start.
        let capped = last_invocation(&log, 4096).unwrap().unwrap();
        assert!(capped.len() <= 4096);
        assert!(two.ends_with(&capped));
        assert_eq!(
            last_invocation(&dir.path().join("none.log"), 10).unwrap(),
            None
        );
    }
}
