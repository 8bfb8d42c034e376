//! The ladder: every rung a proposal climbs, in order, each recorded as a step.
//!
//! | step | what | stops the ladder when |
//! |---|---|---|
//! | `guardrails` | path, content, size, Jinja side effects, symlinks | any refusal |
//! | `jinja delimiters` | `{{ }}`, `{% %}`, `{# #}` close; block tags nest | unbalanced |
//! | `refs kept` | every `ref()`/`source()` of the original is still there | one is dropped that the error was not about |
//! | `dbt compile` | `dbt compile --select m` | dbt fails |
//! | `sql parse` | the compiled SQL, sqlparser, the adapter's dialect | hopeless (see [`crate::sqlcheck`]) |
//! | `dbt build --empty` | `dbt build --select +m --empty`, data tests excluded | dbt fails (missing column, type error) |
//! | `downstream` | `dbt build --select @m --exclude +m --empty` (or `dbt compile --select m+`) | a dependent breaks |
//! | `dbt build with data` | `dbt build --select +m`, seeds included, data tests excluded; on DuckDB then a scan of every row and column (a view runs no SQL when built) | dbt fails (bad cast, division by zero) |
//! | `data check` | columns, types, rows against the last good version | a difference, only with `data_check = "fail"` |
//!
//! The cheap rungs come first. The downstream rung runs before the run with data so the
//! model is last built *with* data, which the data check reads; the check's baseline is
//! read before anything is built. The in-process rungs run before any file is written.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use dbtops_guardrails::PathPolicy;
use dbtops_proto::v1;
use dbtops_settings::{FixScope, Settings, ValidatorSettings};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::datacheck::{self, RelationProfile};
use crate::dbt::{self, DbtError, DbtInvoker, DbtRun};
use crate::isolation::{isolate_workspace, Isolation, VALIDATION_TARGET};
use crate::lineage::UpstreamEdits;
use crate::sqlcheck::{self, SqlVerdict};
use crate::worker::{self, Lease, WorkerPool, WorkerSpec};
use crate::workspace::{Trash, Workspace};
use crate::{checks, ValidationFault, ValidatorError, Verdict};

/// Largest proposal accepted, in bytes.
pub const MAX_SQL_BYTES: usize = 512 * 1024;
/// Lines of dbt's error kept for the fixer and the merge request.
const ERROR_LINES: usize = 40;
/// A step's recorded output is cut here: it travels in every later message.
const MAX_STEP_OUTPUT_CHARS: usize = 4000;
/// A partial-parse file larger than this is not kept between validations.
const MAX_PARTIAL_PARSE_BYTES: u64 = 128 * 1024 * 1024;
/// Importing dbt takes 1–2 s on an idle machine; a loaded one gets ample room.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(120);
/// Where dbt keeps its partial-parse state, relative to the project.
const PARTIAL_PARSE_FILE: &str = "target/partial_parse.msgpack";

/// When the run with data happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRun {
    /// On DuckDB targets, where data is local and free.
    Auto,
    /// On every target (a warehouse dev target, opted in).
    Always,
    /// Never.
    Never,
}

impl DataRun {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "validator.run_with_data: {other:?} is not `auto`, `always` or `never`"
            )),
        }
    }

    /// Whether to run with data on `adapter`.
    pub fn applies(self, adapter: &str) -> bool {
        match self {
            Self::Auto => adapter.eq_ignore_ascii_case("duckdb"),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// How the model's dependents are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downstream {
    /// `dbt build --empty` of the children (and their other parents).
    BuildEmpty,
    /// `dbt compile --select m+`.
    Compile,
    /// Not at all.
    Off,
}

impl Downstream {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "build_empty" => Ok(Self::BuildEmpty),
            "compile" => Ok(Self::Compile),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "validator.downstream: {other:?} is not `build_empty`, `compile` or `off`"
            )),
        }
    }
}

/// What a difference found by the data check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCheck {
    /// It is written in the step's output; the step passes.
    Flag,
    /// The step fails.
    Fail,
    /// No data check.
    Off,
}

impl DataCheck {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "flag" => Ok(Self::Flag),
            "fail" => Ok(Self::Fail),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "validator.data_check: {other:?} is not `flag`, `fail` or `off`"
            )),
        }
    }
}

/// Which rungs run, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderPlan {
    /// `dbt build --select +m --empty`.
    pub build_empty: bool,
    /// The run with data.
    pub run_with_data: DataRun,
    /// The dependents.
    pub downstream: Downstream,
    /// The data check (only after a run with data).
    pub data_check: DataCheck,
}

impl LadderPlan {
    /// The plan `settings` describe; an unknown value is an error naming its key.
    pub fn from_settings(settings: &ValidatorSettings) -> Result<Self, String> {
        Ok(Self {
            build_empty: settings.build_empty,
            run_with_data: DataRun::parse(&settings.run_with_data)?,
            downstream: Downstream::parse(&settings.downstream)?,
            data_check: DataCheck::parse(&settings.data_check)?,
        })
    }
}

/// The process-wide validators, by a fingerprint of the settings they were made for.
type SharedValidators = Mutex<Vec<(String, Arc<Validator>)>>;
/// Per workspace name, its last `partial_parse.msgpack`.
type PartialParses = Mutex<HashMap<String, Arc<Vec<u8>>>>;
/// Workspace slots in use: (project, index).
type Slots = Mutex<HashSet<(String, usize)>>;

/// The validator's long-lived state: settings, the concurrency limit, the warm workers
/// and each project's last partial-parse file.
#[derive(Debug)]
pub struct Validator {
    /// `[validator]`.
    settings: ValidatorSettings,
    /// `delivery.sensitive_paths`, which the guardrails check too.
    sensitive_paths: Vec<String>,
    /// `fixer.fix_scope = "lineage"`: proposals may edit ancestor models too. Read from
    /// this process's settings, never from the message.
    lineage_enabled: bool,
    /// The rungs.
    plan: LadderPlan,
    /// The dbt executable for subprocesses.
    dbt_program: PathBuf,
    /// `validator.concurrency` validations at once, however they are called.
    permits: Arc<Semaphore>,
    /// Warm workers; `None` with `worker = false`.
    workers: Option<WorkerPool>,
    /// Per workspace name, its last `partial_parse.msgpack`, seeded into the next
    /// workspace of that name (dbt's parse holds absolute paths: see
    /// [`Workspace::copy_named`]). Shared with the background removals, which keep it.
    partial_parse: Arc<PartialParses>,
    /// Workspace slots in use, per project: two validations of one project at once get
    /// two directories, and the next validation reuses a free one's name. Shared with the
    /// background removals, which free a slot once its directory is gone.
    slots: Arc<Slots>,
    /// Removals of finished validations' workspaces, running off the verdict's path;
    /// awaited by [`Validator::wait_for_removals`] so none outlives the service.
    removals: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Validator {
    /// A validator for `settings`; an invalid `[validator]` value is an error.
    pub fn new(settings: &Settings) -> Result<Self, ValidatorError> {
        let plan =
            LadderPlan::from_settings(&settings.validator).map_err(ValidatorError::Config)?;
        let dbt_program = dbt::find_dbt(&settings.validator.dbt_bin);
        let concurrency = settings.validator.concurrency.max(1);
        let workers = settings.validator.worker.then(|| {
            WorkerPool::new(
                WorkerSpec {
                    python: worker::find_python(&settings.validator.python, &dbt_program),
                    start_timeout: WORKER_START_TIMEOUT,
                    max_memory_bytes: settings
                        .validator
                        .worker_max_memory_mb
                        .saturating_mul(1024 * 1024),
                },
                concurrency,
            )
        });
        Ok(Self {
            settings: settings.validator.clone(),
            sensitive_paths: settings.delivery.sensitive_paths.clone(),
            lineage_enabled: settings.fixer.fix_scope == FixScope::Lineage,
            plan,
            dbt_program,
            permits: Arc::new(Semaphore::new(concurrency)),
            workers,
            partial_parse: Arc::new(Mutex::new(HashMap::new())),
            slots: Arc::new(Mutex::new(HashSet::new())),
            removals: Mutex::new(Vec::new()),
        })
    }

    /// The process-wide validator for `settings`, made on first use: what [`crate::handle`]
    /// and [`crate::validate`] use, so their workers stay warm between calls. (`run`
    /// makes its own and shuts it down when it stops.) Idle workers of a shared validator
    /// live until the process exits, when their input closes and they end.
    pub fn shared(settings: &Settings) -> Result<Arc<Self>, ValidatorError> {
        static SHARED: OnceLock<SharedValidators> = OnceLock::new();
        let fingerprint = serde_json::to_string(&(
            &settings.validator,
            &settings.delivery.sensitive_paths,
            settings.fixer.fix_scope,
        ))
        .map_err(|error| ValidatorError::Config(error.to_string()))?;
        let registry = SHARED.get_or_init(|| Mutex::new(Vec::new()));
        let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, validator)) = registry.iter().find(|(key, _)| *key == fingerprint) {
            return Ok(validator.clone());
        }
        let validator = Arc::new(Self::new(settings)?);
        registry.push((fingerprint, validator.clone()));
        Ok(validator)
    }

    /// The warm workers, if enabled.
    pub fn workers(&self) -> Option<&WorkerPool> {
        self.workers.as_ref()
    }

    /// The rungs this validator climbs.
    pub fn plan(&self) -> LadderPlan {
        self.plan
    }

    /// Stops the idle workers and lets no new validation start.
    pub fn shutdown(&self) {
        self.permits.close();
        if let Some(workers) = &self.workers {
            workers.shutdown();
        }
    }

    /// Waits until the workspaces of finished validations are removed. A validation
    /// returns its verdict before its workspace is gone; the service waits here when it
    /// stops, so no workspace outlives it (a crash leaves them to the next start's sweep).
    pub async fn wait_for_removals(&self) {
        loop {
            let removals = std::mem::take(&mut *lock(&self.removals));
            if removals.is_empty() {
                return;
            }
            for removal in removals {
                if let Err(error) = removal.await {
                    tracing::warn!(message = "A workspace removal failed.", %error);
                }
            }
        }
    }

    /// Runs the ladder for one proposal.
    pub async fn validate(
        &self,
        incident: &v1::FailureDetected,
        model: &v1::ModelRef,
        proposal: &v1::FixProposal,
    ) -> Result<Verdict, ValidationFault> {
        let project = incident.project.clone().unwrap_or_default();
        let project_dir = PathBuf::from(&project.project_dir);
        let evidence = incident.evidence.as_ref();
        let original = evidence
            .map(|evidence| evidence.model_sql.as_str())
            .unwrap_or_default();
        let mut ladder = Ladder::default();

        // In-process rungs, before anything is written anywhere.
        let checks_span = tracing::info_span!("validator.checks").entered();
        let started = Instant::now();
        let model_paths = if project.model_paths.is_empty() {
            vec!["models".to_owned()]
        } else {
            project.model_paths.clone()
        };
        let policy = PathPolicy {
            model_paths,
            sensitive_globs: self.sensitive_paths.clone(),
        };
        let guard = dbtops_guardrails::check_model_path(&proposal.model_path, &model.path, &policy)
            .and_then(|()| dbtops_guardrails::check_sql_content(&proposal.fixed_sql, MAX_SQL_BYTES))
            .and_then(|()| {
                dbtops_guardrails::check_jinja_side_effects(original, &proposal.fixed_sql)
            })
            .and_then(|()| dbtops_guardrails::check_no_symlink_escape(&project_dir, &model.path))
            .and_then(|()| {
                let edits = UpstreamEdits::of(proposal, evidence);
                edits.check(self.lineage_enabled, &policy, &project_dir)
            });
        match guard {
            Ok(()) => ladder.pass(
                "guardrails",
                started.elapsed(),
                "path, content and size checks passed".into(),
            ),
            Err(refusal) => {
                ladder.fail("guardrails", started.elapsed(), refusal.to_string(), None);
                return Ok(ladder.verdict());
            }
        }
        let started = Instant::now();
        match checks::check_jinja_delimiters(&proposal.fixed_sql) {
            Ok(()) => ladder.pass(
                "jinja delimiters",
                started.elapsed(),
                "every {{ }}, {% %} and {# #} closes and block tags nest".into(),
            ),
            Err(problem) => {
                ladder.fail("jinja delimiters", started.elapsed(), problem, None);
                return Ok(ladder.verdict());
            }
        }
        let started = Instant::now();
        let refs_kept = checks::check_refs_kept(
            original,
            &proposal.fixed_sql,
            incident.error.as_ref(),
            evidence,
        )
        .and_then(|summary| {
            UpstreamEdits::of(proposal, evidence)
                .check_refs_and_jinja()
                .map(|()| summary)
        });
        match refs_kept {
            Ok(summary) => ladder.pass("refs kept", started.elapsed(), summary),
            Err(problem) => {
                ladder.fail("refs kept", started.elapsed(), problem, None);
                return Ok(ladder.verdict());
            }
        }

        drop(checks_span);
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_closed| ValidationFault::Retry("the validator is shutting down".into()))?;

        // The copy and a worker's start-up (an import of dbt) overlap.
        let key = project_dir.display().to_string();
        let slot = self.take_slot(&key);
        let root = Some(self.settings.workspace_root.as_str())
            .filter(|root| !root.is_empty())
            .map(PathBuf::from);
        let copy = {
            let project_dir = project_dir.clone();
            let name = slot.workspace_name.clone();
            tokio::task::spawn_blocking(move || {
                if let Some(root) = root.as_deref() {
                    crate::workspace::sweep_dead_owners(root);
                }
                Workspace::copy_named(&project_dir, root.as_deref(), Some(&name))
            })
        };
        let checkout = async {
            match &self.workers {
                Some(pool) => Some(pool.checkout(&key).await),
                None => None,
            }
        };
        let (workspace, lease) = async { tokio::join!(copy, checkout) }
            .instrument(tracing::info_span!("validator.workspace"))
            .await;
        let workspace = workspace
            .map_err(|error| ValidationFault::Retry(format!("the workspace copy failed: {error}")))?
            .map_err(|error| ValidationFault::Retry(error.to_string()))?;
        let (lease, no_worker) = match lease {
            Some(Ok(lease)) => (Some(lease), None),
            Some(Err(error)) => {
                tracing::warn!(message = "No warm dbt worker; using subprocesses.", %error);
                (None, Some(error.to_string()))
            }
            None => (None, None),
        };

        let target_file = workspace.path().join(&proposal.model_path);
        if let Some(parent) = target_file.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                ValidationFault::Retry(format!("cannot prepare the workspace: {error}"))
            })?;
        }
        std::fs::write(&target_file, &proposal.fixed_sql).map_err(|error| {
            ValidationFault::Retry(format!(
                "cannot write the proposal into the workspace: {error}"
            ))
        })?;
        // Checked above: each is an ancestor's existing model file.
        for edit in &proposal.upstream_edits {
            std::fs::write(workspace.path().join(&edit.path), &edit.fixed_sql).map_err(
                |error| {
                    ValidationFault::Retry(format!(
                        "cannot write the upstream edit of {} into the workspace: {error}",
                        edit.path
                    ))
                },
            )?;
        }
        let edited_ancestors = UpstreamEdits::of(proposal, evidence).names();
        tracing::info_span!("validator.seed_parse")
            .in_scope(|| self.seed_partial_parse(&slot.workspace_name, workspace.path()));

        let configured_target =
            Some(self.settings.target.clone()).filter(|target| !target.is_empty());
        let profiles_dir = self.profiles_dir(workspace.path());
        let isolation = isolate_workspace(
            workspace.path(),
            profiles_dir.as_deref(),
            configured_target.as_deref(),
        );
        let (profiles_dir, target, builds) = match isolation {
            Ok(Isolation::LocalFile) => (profiles_dir, configured_target, Builds::LocalCopy),
            Ok(Isolation::OwnSchema {
                profiles_dir,
                adapter,
                schema,
            }) => (
                Some(profiles_dir),
                Some(VALIDATION_TARGET.to_owned()),
                Builds::OwnSchema { adapter, schema },
            ),
            Err(error) => (
                profiles_dir,
                configured_target,
                Builds::None(error.to_string()),
            ),
        };
        match &builds {
            Builds::LocalCopy => {}
            Builds::OwnSchema { adapter, schema } => ladder.pass(
                "warehouse isolation",
                Duration::ZERO,
                format!(
                    "{adapter}: dbt builds in the schema {schema} (target {VALIDATION_TARGET}), \
                     never in the profile's own"
                ),
            ),
            Builds::None(reason) => ladder.pass(
                "warehouse isolation",
                Duration::ZERO,
                format!(
                    "not isolated ({reason}): the steps that build relations were skipped, \
                     dbt only compiled"
                ),
            ),
        }
        let invoker = DbtInvoker {
            program: self.dbt_program.clone(),
            profiles_dir,
            target,
            timeout: Duration::from_secs(self.settings.dbt_timeout_secs),
        };
        let mut session = DbtSession {
            invoker,
            workspace: workspace.path().to_path_buf(),
            lease,
            no_worker,
            builds,
        };
        let climbed = self
            .climb(
                &mut ladder,
                &mut session,
                incident,
                model,
                &project,
                &edited_ancestors,
            )
            .await;
        let cleanup_span = tracing::info_span!("validator.cleanup").entered();
        // The worker goes back to the pool before its workspace is removed.
        drop(session);
        let leftover = vacate(workspace, slot);
        self.remove_in_background(leftover);
        drop(cleanup_span);
        climbed?;
        Ok(ladder.verdict())
    }

    /// Keeps a finished workspace's partial-parse file and removes the workspace on the
    /// blocking pool, so the verdict waits for neither (reading the file, unlinking every
    /// file of the copy and of dbt's output).
    fn remove_in_background(&self, leftover: Leftover) {
        let partial_parse = self.partial_parse.clone();
        let span = tracing::info_span!("validator.workspace_removal");
        // Never run (the runtime is shutting down), the closure is dropped with what it
        // holds, which removes the directory (and then frees a slot still held).
        let removal = tokio::task::spawn_blocking(move || {
            span.in_scope(|| leftover.remember_and_remove(&partial_parse));
        });
        let mut removals = lock(&self.removals);
        removals.retain(|removal| !removal.is_finished());
        removals.push(removal);
    }

    /// The dbt rungs, in the workspace; a failure is recorded in `ladder` and ends the
    /// climb.
    async fn climb(
        &self,
        ladder: &mut Ladder,
        session: &mut DbtSession,
        incident: &v1::FailureDetected,
        model: &v1::ModelRef,
        project: &v1::ProjectRef,
        edited_ancestors: &[String],
    ) -> Result<(), ValidationFault> {
        let name = model.name.as_str();
        let with_ancestors = format!("+{name}");
        if self
            .dbt_step(
                ladder,
                session,
                "dbt compile",
                &[&["compile", "--select", name]],
            )
            .await?
            .is_none()
        {
            return Ok(());
        }

        let adapter = adapter_of(incident, &session.workspace);
        let started = Instant::now();
        match compiled_sql(&session.workspace, &project.name, &model.path) {
            Some(sql) => match sqlcheck::check_compiled_sql(&adapter, &sql) {
                SqlVerdict::Hopeless(reason) => {
                    ladder.fail("sql parse", started.elapsed(), reason, None);
                    return Ok(());
                }
                verdict => ladder.pass("sql parse", started.elapsed(), verdict.describe()),
            },
            None => ladder.pass(
                "sql parse",
                started.elapsed(),
                "no compiled SQL under target/compiled: nothing to parse".into(),
            ),
        }

        let may_build = session.builds.allowed();
        let with_data = may_build && self.plan.run_with_data.applies(&adapter);
        // The last good version is read before anything replaces it.
        let baseline = if with_data && self.plan.data_check != DataCheck::Off {
            Some(self.profile(session, name).await)
        } else {
            None
        };

        let build_empty = may_build && self.plan.build_empty;
        if build_empty
            && self
                .dbt_step(
                    ladder,
                    session,
                    "dbt build --empty",
                    &[&[
                        "build",
                        "--select",
                        &with_ancestors,
                        "--empty",
                        // Data tests on zero rows prove nothing, and a relationships test
                        // reads a model outside the selection that a fresh dev database
                        // does not hold.
                        "--exclude-resource-type",
                        "test",
                    ]],
                )
                .await?
                .is_none()
        {
            return Ok(());
        }

        // An edited ancestor reaches its other descendants too: they are checked as well.
        let dependents: Vec<String> = std::iter::once(name)
            .chain(edited_ancestors.iter().map(String::as_str))
            .map(|node| format!("@{node}"))
            .collect();
        let children: Vec<String> = std::iter::once(name)
            .chain(edited_ancestors.iter().map(String::as_str))
            .map(|node| format!("{node}+"))
            .collect();
        // The run's other failures are their own incidents: a dependent that also reads
        // one of them fails whatever this fix does, so it is left out, not blamed on it.
        let elsewhere = failing_elsewhere_selectors(incident, name);
        if !elsewhere.is_empty() {
            tracing::info!(
                message = "Dependents of the run's other failures are left out of the downstream check.",
                excluded = %elsewhere.join(" ")
            );
        }
        let downstream = match self.plan.downstream {
            Downstream::BuildEmpty if !may_build => Downstream::Compile,
            planned => planned,
        };
        let downstream_args: Option<Vec<&str>> = match downstream {
            // `@m` is m, its descendants and their other ancestors, which a fresh dev
            // database does not hold either; what the empty build above made is left out.
            Downstream::BuildEmpty if build_empty => Some(
                [vec!["build", "--select"], selection(&dependents)]
                    .concat()
                    .into_iter()
                    .chain(["--exclude", with_ancestors.as_str()])
                    .chain(selection(&elsewhere))
                    .chain(["--empty", "--exclude-resource-type", "test"])
                    .collect(),
            ),
            Downstream::BuildEmpty => Some(
                [vec!["build", "--select"], selection(&dependents)]
                    .concat()
                    .into_iter()
                    .chain(exclusion(&elsewhere))
                    .chain(["--empty", "--exclude-resource-type", "test"])
                    .collect(),
            ),
            Downstream::Compile => Some(
                [vec!["compile", "--select"], selection(&children)]
                    .concat()
                    .into_iter()
                    .chain(exclusion(&elsewhere))
                    .collect(),
            ),
            Downstream::Off => None,
        };
        if let Some(args) = downstream_args {
            if self
                .dbt_step(ladder, session, "downstream", &[&args])
                .await?
                .is_none()
            {
                return Ok(());
            }
        }

        if with_data {
            let build: &[&str] = &[
                "build",
                "--select",
                &with_ancestors,
                "--exclude-resource-type",
                "test",
            ];
            // Building a view runs none of its SQL: a bad cast in a view fails only when
            // it is read. The scan evaluates every column of every row (DISTINCT keeps
            // DuckDB from pruning unused columns, which a plain count(*) lets it do).
            let scan_sql = scan_query(name);
            let scan: &[&str] = &["show", "--inline", &scan_sql];
            let commands: Vec<&[&str]> = if adapter.eq_ignore_ascii_case("duckdb") {
                vec![build, scan]
            } else {
                vec![build]
            };
            if self
                .dbt_step(ladder, session, "dbt build with data", &commands)
                .await?
                .is_none()
            {
                return Ok(());
            }
        }

        if let Some((before, before_took)) = baseline {
            let (after, after_took) = self.profile(session, name).await;
            let took = before_took + after_took;
            let outcome = judge_data(name, before, after);
            match outcome {
                DataJudgement::Same(text) | DataJudgement::Unknown(text) => {
                    ladder.pass("data check", took, text)
                }
                DataJudgement::Changed(text) if self.plan.data_check == DataCheck::Fail => {
                    ladder.fail("data check", took, text, None)
                }
                DataJudgement::Changed(text) => ladder.pass("data check", took, text),
            }
        }
        Ok(())
    }

    /// Runs one dbt rung (one or more dbt commands, in order, until one fails) and
    /// records it. `Ok(None)`: it failed (recorded in `ladder`); `Err`: dbt could not be
    /// judged at all (retry later).
    async fn dbt_step(
        &self,
        ladder: &mut Ladder,
        session: &mut DbtSession,
        name: &str,
        commands: &[&[&str]],
    ) -> Result<Option<()>, ValidationFault> {
        let mut took = Duration::ZERO;
        let mut record = Vec::new();
        for args in commands {
            let mut run = session
                .run(args)
                .instrument(tracing::info_span!("validator.dbt", step = name))
                .await;
            // dbt's `--empty` wraps each ref in `(select … limit 0) _dbt_limit_subq_x`,
            // and on PostgreSQL, Redshift and others that alias clashes with the model's
            // own (`from {{ ref('x') }} l`): a syntax error of dbt's making, whatever the
            // fix (dbt-labs/dbt-adapters#660). Built without `--empty` instead — in the
            // scratch copy or the validator's own schema, never the user's.
            let cannot_be_empty = matches!(&run, Ok(done) if !done.ok && done.output.contains(EMPTY_SUBQUERY_ALIAS))
                && args.contains(&"--empty")
                && session.builds.allowed();
            if cannot_be_empty {
                record.push(format!(
                    "dbt's --empty aliases every ref ({EMPTY_SUBQUERY_ALIAS}…) and this SQL aliases \
                     it again, which the warehouse refuses (dbt-labs/dbt-adapters#660): built \
                     with data instead"
                ));
                let with_data: Vec<&str> =
                    args.iter().copied().filter(|a| *a != "--empty").collect();
                run = session
                    .run(&with_data)
                    .instrument(tracing::info_span!("validator.dbt", step = name))
                    .await;
            }
            let run = match run {
                Ok(run) => run,
                Err(DbtError::Timeout(after, command)) => {
                    let error_text = format!(
                        "timeout: {command} ran longer than {after:?} and was killed with its process group"
                    );
                    ladder.fail(name, took + after, error_text, None);
                    return Ok(None);
                }
                Err(error) => return Err(ValidationFault::Retry(error.to_string())),
            };
            if !run.ok && looks_like_environment_failure(&run.output) {
                return Err(ValidationFault::Retry(format!(
                    "{} failed for a reason outside the proposal: {}",
                    run.command,
                    dbt::relevant_error(&run.output, 5)
                )));
            }
            tracing::info!(
                message = "dbt step finished.",
                step = name,
                ok = run.ok,
                ms = run.duration.as_millis() as u64,
                runner = %run.runner
            );
            took += run.duration;
            record.push(format!("$ {}   [{}]", run.command, run.runner));
            if !run.ok {
                let mut error_text = dbt::relevant_error(&run.output, ERROR_LINES);
                if error_text.trim().is_empty() {
                    error_text = last_lines(&run.output, 10);
                }
                record.push(error_text.clone());
                ladder.fail(name, took, record.join("\n"), Some(error_text));
                return Ok(None);
            }
            record.push(last_lines(&run.output, 3));
            if run.output.contains("Nothing to do") {
                record.push("(nothing selected: the model has no dependents)".into());
            }
        }
        ladder.pass(name, took, record.join("\n"));
        Ok(Some(()))
    }

    /// The model's relation in the workspace's dev database, and how long reading it took.
    async fn profile(
        &self,
        session: &mut DbtSession,
        model: &str,
    ) -> (Result<Option<RelationProfile>, String>, Duration) {
        let args = datacheck::profile_args(model);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let profile = match session
            .run(&args)
            .instrument(tracing::info_span!("validator.dbt", step = "data profile"))
            .await
        {
            Ok(run) if run.ok => datacheck::parse_profile(&run.output),
            Ok(run) => Err(dbt::relevant_error(&run.output, 5)),
            Err(error) => Err(error.to_string()),
        };
        (profile, started.elapsed())
    }

    /// `--profiles-dir`: configured, else the project's own when it has a profiles.yml,
    /// else dbt's default.
    fn profiles_dir(&self, workspace: &Path) -> Option<PathBuf> {
        if !self.settings.profiles_dir.is_empty() {
            return Some(PathBuf::from(&self.settings.profiles_dir));
        }
        workspace
            .join("profiles.yml")
            .is_file()
            .then(|| workspace.to_path_buf())
    }

    /// Puts the last partial-parse file of this workspace name into the workspace, so
    /// dbt re-parses only what changed (it compares file by file, and parses everything
    /// when the file does not fit). The user's own `target/` is not used: its parse holds
    /// the user's absolute paths, and dbt would read seeds from there.
    fn seed_partial_parse(&self, workspace_name: &str, workspace: &Path) {
        let Some(bytes) = lock(&self.partial_parse).get(workspace_name).cloned() else {
            return;
        };
        let target = workspace.join(PARTIAL_PARSE_FILE);
        let written = target
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&target, bytes.as_slice()));
        if let Err(error) = written {
            tracing::debug!(message = "Cannot seed partial parsing.", %error);
        }
    }

    /// A workspace slot of `project`: the lowest index no running validation of it holds.
    fn take_slot(&self, project: &str) -> WorkspaceSlot {
        let mut slots = lock(&self.slots);
        let index = (0..)
            .find(|index| !slots.contains(&(project.to_owned(), *index)))
            .unwrap_or_default();
        slots.insert((project.to_owned(), index));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        project.hash(&mut hasher);
        WorkspaceSlot {
            slots: self.slots.clone(),
            project: project.to_owned(),
            index,
            // The pid keeps two validator processes sharing a workspace root apart.
            workspace_name: format!(
                "{}{}-{:016x}-{index}",
                crate::workspace::WORKSPACE_PREFIX,
                std::process::id(),
                hasher.finish()
            ),
        }
    }
}

/// Keeps the workspace's partial-parse file for the next workspace of its name.
fn remember_partial_parse(partial_parse: &PartialParses, workspace_name: &str, workspace: &Path) {
    if let Some(bytes) = read_bounded(&workspace.join(PARTIAL_PARSE_FILE)) {
        lock(partial_parse).insert(workspace_name.to_owned(), Arc::new(bytes));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One project's workspace slot, held for one validation and, after it, until its
/// workspace directory is gone from the slot's path.
struct WorkspaceSlot {
    /// The validator's slots, shared: a background removal frees the slot.
    slots: Arc<Slots>,
    project: String,
    index: usize,
    /// The workspace directory's name for this slot.
    workspace_name: String,
}

impl Drop for WorkspaceSlot {
    fn drop(&mut self) {
        lock(&self.slots).remove(&(std::mem::take(&mut self.project), self.index));
    }
}

/// Moves a finished validation's workspace off its slot's path and frees the slot, at
/// once (a rename): the next validation of the project may take the slot and copy into
/// that path while the [`Leftover`] is still to be removed. A workspace that cannot be
/// moved keeps its slot until it is removed in place.
///
/// The partial-parse file is read afterwards, from the trash. A next validation of the
/// same name seeds its workspace only after copying it, so it all but always finds the
/// file kept; one that does not parses from an older file or from scratch: slower, not
/// wrong.
fn vacate(workspace: Workspace, slot: WorkspaceSlot) -> Leftover {
    let workspace_name = slot.workspace_name.clone();
    match workspace.vacate() {
        Ok(trash) => {
            drop(slot);
            Leftover::Trash {
                trash,
                workspace_name,
            }
        }
        Err(workspace) => Leftover::InPlace { workspace, slot },
    }
}

/// What is left of a finished validation for a background removal.
enum Leftover {
    /// The workspace, moved off its path; its slot is free.
    Trash {
        /// The directory, removed when dropped.
        trash: Trash,
        /// The name it had, under which its partial-parse file is kept.
        workspace_name: String,
    },
    /// The workspace could not be moved: it is removed where it is, and only then is the
    /// slot freed, so the next validation never copies into a directory being removed.
    InPlace {
        // Fields drop in order: the workspace (removing it) before the slot.
        /// The workspace, removed when dropped.
        workspace: Workspace,
        /// Its slot, freed when dropped.
        slot: WorkspaceSlot,
    },
}

impl Leftover {
    /// Keeps the partial-parse file for the next workspace of the same name, then removes
    /// the directory.
    fn remember_and_remove(self, partial_parse: &PartialParses) {
        match self {
            Self::Trash {
                trash,
                workspace_name,
            } => {
                remember_partial_parse(partial_parse, &workspace_name, trash.path());
                if let Err(error) = trash.remove() {
                    tracing::warn!(message = "Cannot remove a finished workspace.", %error);
                }
            }
            Self::InPlace { workspace, slot } => {
                remember_partial_parse(partial_parse, &slot.workspace_name, workspace.path());
                drop(workspace);
                drop(slot);
            }
        }
    }
}

/// A query that reads every column of every row of `model`.
fn scan_query(model: &str) -> String {
    let model = model.replace('\'', "");
    format!(
        "select count(*) as dbtops_distinct_rows from (select distinct * from {{{{ ref('{model}') }}}}) as dbtops_scan"
    )
}

fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_PARTIAL_PARSE_BYTES {
        return None;
    }
    std::fs::read(path).ok()
}

/// dbt in one workspace: through the leased warm worker, else subprocesses.
struct DbtSession {
    /// Arguments, timeout and the executable for subprocesses.
    invoker: DbtInvoker,
    /// The scratch copy every call runs in.
    workspace: PathBuf,
    /// The warm worker, while it works.
    lease: Option<Lease>,
    /// Why there is no worker, for the record.
    no_worker: Option<String>,
    /// Where the steps that build relations may build.
    builds: Builds,
}

/// The alias dbt gives each ref's zero-row subquery under `--empty`.
const EMPTY_SUBQUERY_ALIAS: &str = "_dbt_limit_subq";

/// Where dbt may build relations during a validation.
enum Builds {
    /// In the workspace's own copy of a local warehouse file (DuckDB).
    LocalCopy,
    /// In the validator's own schema of a shared warehouse ([`crate::isolation`]).
    OwnSchema {
        /// The adapter.
        adapter: String,
        /// The schema, as the validator's profile writes it.
        schema: String,
    },
    /// Nowhere: the target could not be set apart, for this reason; dbt only compiles.
    None(String),
}

impl Builds {
    fn allowed(&self) -> bool {
        !matches!(self, Builds::None(_))
    }
}

impl DbtSession {
    async fn run(&mut self, args: &[&str]) -> Result<DbtRun, DbtError> {
        let command = dbt::render_command(args);
        if let Some(lease) = self.lease.as_mut() {
            let full = self.invoker.full_args(&self.workspace, args);
            let started = Instant::now();
            // A worker that dies mid-call is replaced and the call tried once more.
            let mut last_error = None;
            for _ in 0..2 {
                match lease
                    .call(&full, &self.workspace, self.invoker.timeout)
                    .await
                {
                    Ok(reply) => {
                        return Ok(DbtRun {
                            command,
                            ok: reply.ok,
                            duration: started.elapsed(),
                            output: dbt::strip_ansi(&reply.output),
                            runner: match lease.pid() {
                                Some(pid) => format!("warm worker, pid {pid}"),
                                None => "warm worker".into(),
                            },
                        });
                    }
                    Err(worker::WorkerError::Timeout(after)) => {
                        return Err(DbtError::Timeout(after, command));
                    }
                    Err(error) => {
                        tracing::warn!(message = "dbt worker call failed.", %error);
                        last_error = Some(error);
                    }
                }
            }
            // It keeps failing: subprocesses for the rest of this validation.
            self.no_worker = last_error.map(|error| error.to_string());
            self.lease = None;
        }
        let mut run = self.invoker.run(&self.workspace, args).await?;
        if let Some(reason) = &self.no_worker {
            run.runner = format!("subprocess; no warm worker: {}", first_line(reason));
        }
        Ok(run)
    }
}

/// What the data check concluded.
enum DataJudgement {
    /// Same columns, types and rows.
    Same(String),
    /// Something differs.
    Changed(String),
    /// Nothing to compare.
    Unknown(String),
}

fn judge_data(
    model: &str,
    before: Result<Option<RelationProfile>, String>,
    after: Result<Option<RelationProfile>, String>,
) -> DataJudgement {
    let after = match after {
        Ok(Some(after)) => after,
        Ok(None) => {
            return DataJudgement::Unknown(format!(
                "{model} is not in the dev database after the run: nothing to compare"
            ));
        }
        Err(error) => {
            return DataJudgement::Unknown(format!(
                "could not read {model} after the run: {error}"
            ));
        }
    };
    let before = match before {
        Ok(Some(before)) => before,
        Ok(None) => {
            return DataJudgement::Unknown(format!(
                "no earlier version of {model} in the dev database to compare with; now {} columns, {} rows",
                after.columns.len(),
                after.rows
            ));
        }
        Err(error) => {
            return DataJudgement::Unknown(format!(
                "could not read the last good version of {model}: {error}"
            ));
        }
    };
    let differences = datacheck::differences(&before, &after);
    if differences.is_empty() {
        DataJudgement::Same(format!(
            "same {} columns and types as the last good version; {} rows",
            after.columns.len(),
            after.rows
        ))
    } else {
        DataJudgement::Changed(format!(
            "FLAGGED: the output of {model} differs from the last good version in the dev database:\n- {}",
            differences.join("\n- ")
        ))
    }
}

/// The steps so far and, once one failed, which and why.
#[derive(Debug, Default)]
struct Ladder {
    steps: Vec<v1::ValidationStep>,
    failure: Option<(String, String)>,
}

impl Ladder {
    fn pass(&mut self, name: &str, took: Duration, output: String) {
        self.push(name, true, took, output);
    }

    /// Records a failed step; `error_text` (for the fixer) defaults to the output.
    fn fail(&mut self, name: &str, took: Duration, output: String, error_text: Option<String>) {
        let error_text = error_text.unwrap_or_else(|| output.clone());
        self.push(name, false, took, output);
        self.failure = Some((name.to_owned(), cap(&error_text)));
    }

    fn push(&mut self, name: &str, ok: bool, took: Duration, output: String) {
        self.steps.push(v1::ValidationStep {
            name: name.into(),
            ok,
            duration_ms: took.as_millis() as u64,
            // A passing step whose output starts with FLAGGED needs a reviewer's eye.
            flagged: ok && output.starts_with("FLAGGED"),
            output: cap(&output),
        });
    }

    fn verdict(self) -> Verdict {
        match self.failure {
            None => Verdict::Validated { steps: self.steps },
            Some((failed_step, error_text)) => Verdict::Failed {
                steps: self.steps,
                failed_step,
                error_text,
            },
        }
    }
}

fn cap(text: &str) -> String {
    match text.char_indices().nth(MAX_STEP_OUTPUT_CHARS) {
        Some((index, _)) => format!("{}\n… (cut)", &text[..index]),
        None => text.to_owned(),
    }
}

/// The adapter type: the incident's evidence, else the workspace's manifest (its
/// `metadata.adapter_type` sits in the first kilobytes of the file).
fn adapter_of(incident: &v1::FailureDetected, workspace: &Path) -> String {
    if let Some(adapter) = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.adapter.trim())
        .filter(|adapter| !adapter.is_empty())
    {
        return adapter.to_ascii_lowercase();
    }
    let Ok(file) = std::fs::File::open(workspace.join("target/manifest.json")) else {
        return String::new();
    };
    let mut head = Vec::new();
    if std::io::Read::read_to_end(&mut std::io::Read::take(file, 64 * 1024), &mut head).is_err() {
        return String::new();
    }
    static ADAPTER: OnceLock<Option<regex::Regex>> = OnceLock::new();
    ADAPTER
        .get_or_init(|| regex::Regex::new(r#""adapter_type"\s*:\s*"([^"]+)""#).ok())
        .as_ref()
        .and_then(|pattern| {
            pattern
                .captures(&String::from_utf8_lossy(&head))
                .and_then(|captures| captures.get(1))
                .map(|found| found.as_str().to_ascii_lowercase())
        })
        .unwrap_or_default()
}

/// The model's compiled SQL: `target/compiled/<project>/<model path>`.
fn compiled_sql(workspace: &Path, project_name: &str, model_path: &str) -> Option<String> {
    let compiled = workspace.join("target/compiled");
    if !project_name.is_empty() {
        if let Ok(sql) = std::fs::read_to_string(compiled.join(project_name).join(model_path)) {
            return Some(sql);
        }
    }
    std::fs::read_dir(&compiled)
        .ok()?
        .flatten()
        .find_map(|entry| std::fs::read_to_string(entry.path().join(model_path)).ok())
}

/// dbt failures that say nothing about the proposal: a missing or broken profile, a
/// missing adapter, an unreachable warehouse.
pub(crate) fn looks_like_environment_failure(output: &str) -> bool {
    const MARKERS: &[&str] = &[
        "Could not find profile named",
        "error while trying to read your profiles.yml",
        "does not have a target named",
        "Credentials in profile",
        "Could not find adapter type",
        "Error importing adapter",
        "No module named",
        "Invalid value for '--profiles-dir'",
        "Invalid value for '--project-dir'",
        "No dbt_project.yml found at",
        "dbt_project.yml file at",
        "Connection refused",
        "could not connect to server",
        "FailedToConnectError",
        "DbtProfileError",
    ];
    MARKERS.iter().any(|marker| output.contains(marker))
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(dbt::strip_log_prefix)
        .filter(|line| !line.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Selectors as dbt arguments.
fn selection(selectors: &[String]) -> Vec<&str> {
    selectors.iter().map(String::as_str).collect()
}

/// `--exclude` and `selectors`, or nothing when there are none.
fn exclusion(selectors: &[String]) -> Vec<&str> {
    if selectors.is_empty() {
        return Vec::new();
    }
    std::iter::once("--exclude")
        .chain(selection(selectors))
        .collect()
}

/// `x+` for each node the detector saw failing in the same run besides `model` (models,
/// snapshots and seeds; a failing test selects nothing to build).
fn failing_elsewhere_selectors(incident: &v1::FailureDetected, model: &str) -> Vec<String> {
    let mut selectors: Vec<String> = incident
        .failing_elsewhere
        .iter()
        .filter_map(|unique_id| {
            let mut parts = unique_id.splitn(3, '.');
            let resource_type = parts.next()?;
            let _package = parts.next()?;
            let name = parts.next()?;
            let buildable = matches!(resource_type, "model" | "snapshot" | "seed");
            let safe = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
            (buildable && safe && name != model).then(|| format!("{name}+"))
        })
        .collect();
    selectors.sort();
    selectors.dedup();
    selectors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buildable_nodes_of_the_run_are_excluded() {
        let incident = v1::FailureDetected {
            failing_elsewhere: vec![
                "model.shop.stg_customers".into(),
                "model.shop.stg_orders".into(),
                "test.shop.not_null_orders_id.abc".into(),
                "snapshot.shop.orders_snapshot".into(),
                "model.shop.dim_customers.v2".into(),
                "model.shop.x --full-refresh".into(),
                "model.shop.stg_customers".into(),
                "garbage".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            failing_elsewhere_selectors(&incident, "stg_orders"),
            vec!["dim_customers.v2+", "orders_snapshot+", "stg_customers+"]
        );
        assert_eq!(exclusion(&[]), Vec::<&str>::new());
    }

    #[test]
    fn the_plan_follows_the_settings_and_refuses_unknown_values() {
        let mut settings = ValidatorSettings::default();
        let plan = LadderPlan::from_settings(&settings).unwrap();
        assert_eq!(
            plan,
            LadderPlan {
                build_empty: true,
                run_with_data: DataRun::Auto,
                downstream: Downstream::BuildEmpty,
                data_check: DataCheck::Flag,
            }
        );
        assert!(plan.run_with_data.applies("duckdb"));
        assert!(!plan.run_with_data.applies("snowflake"));
        settings.downstream = "sideways".into();
        let error = LadderPlan::from_settings(&settings).unwrap_err();
        assert!(error.contains("validator.downstream"), "{error}");
    }

    #[test]
    fn a_broken_profile_is_the_environment_and_a_bad_ref_is_not() {
        assert!(looks_like_environment_failure(
            "Runtime Error\n  The profile 'p' does not have a target named 'nope'."
        ));
        assert!(looks_like_environment_failure(
            "dbt encountered an error while trying to read your profiles.yml file."
        ));
        // A full parse announces itself with "Unable to do partial parsing": not a fault.
        assert!(!looks_like_environment_failure(
            "Unable to do partial parsing because saved manifest not found. Starting full parse.\nCompilation Error\n  Model 'model.p.x' depends on a node named 'nope' which was not found"
        ));
    }

    #[test]
    fn the_data_judgement_flags_differences_and_notes_absences() {
        let profile = |rows| RelationProfile {
            columns: vec![("a".into(), "INTEGER".into())],
            rows,
        };
        assert!(matches!(
            judge_data("m", Ok(Some(profile(3))), Ok(Some(profile(3)))),
            DataJudgement::Same(_)
        ));
        match judge_data("m", Ok(Some(profile(3))), Ok(Some(profile(4)))) {
            DataJudgement::Changed(text) => {
                assert!(text.starts_with("FLAGGED"), "{text}");
                assert!(text.contains("row count 3 → 4"), "{text}");
            }
            _ => panic!("a changed row count is flagged"),
        }
        assert!(matches!(
            judge_data("m", Ok(None), Ok(Some(profile(4)))),
            DataJudgement::Unknown(_)
        ));
    }

    /// A validator whose workspaces go under `root`, and a project to copy.
    fn validator_and_project(root: &Path) -> (Validator, tempfile::TempDir) {
        let mut settings = Settings::default();
        settings.validator.workspace_root = root.display().to_string();
        settings.validator.worker = false;
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("dbt_project.yml"), "name: p\n").unwrap();
        (Validator::new(&settings).unwrap(), project)
    }

    /// A workspace for `slot` with a partial-parse file in it, as dbt leaves one.
    fn finished_workspace(root: &Path, project: &Path, slot: &WorkspaceSlot) -> Workspace {
        let workspace =
            Workspace::copy_named(project, Some(root), Some(&slot.workspace_name)).unwrap();
        std::fs::create_dir_all(workspace.path().join("target")).unwrap();
        std::fs::write(workspace.path().join(PARTIAL_PARSE_FILE), b"parse").unwrap();
        workspace
    }

    #[test]
    fn a_finished_workspaces_slot_is_free_only_once_its_path_is_vacated() {
        let root = tempfile::tempdir().unwrap();
        let (validator, project) = validator_and_project(root.path());
        let slot = validator.take_slot("p");
        let name = slot.workspace_name.clone();
        let workspace = finished_workspace(root.path(), project.path(), &slot);
        // Held: another validation of the project gets another directory.
        assert_eq!(validator.take_slot("p").index, 1);

        let leftover = vacate(workspace, slot);
        assert!(!root.path().join(&name).exists(), "the path is still taken");
        let next = validator.take_slot("p");
        assert_eq!(next.index, 0, "the slot was not freed");
        assert_eq!(next.workspace_name, name);
        drop(next);
        // The trash is still there, and is the background's to remove.
        let Leftover::Trash { trash, .. } = &leftover else {
            panic!("a workspace that can be renamed is moved to the trash")
        };
        let trash_path = trash.path().to_path_buf();
        assert!(trash_path.join(PARTIAL_PARSE_FILE).is_file());

        leftover.remember_and_remove(&validator.partial_parse);
        assert!(!trash_path.exists());
        assert_eq!(
            lock(&validator.partial_parse)
                .get(&name)
                .map(|bytes| bytes.as_slice()),
            Some(&b"parse"[..])
        );
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_workspace_removed_in_place_keeps_its_slot_until_it_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let (validator, project) = validator_and_project(root.path());
        let slot = validator.take_slot("p");
        let name = slot.workspace_name.clone();
        let workspace = finished_workspace(root.path(), project.path(), &slot);
        let leftover = Leftover::InPlace { workspace, slot };
        assert_eq!(validator.take_slot("p").index, 1);
        leftover.remember_and_remove(&validator.partial_parse);
        assert!(!root.path().join(&name).exists());
        assert_eq!(validator.take_slot("p").index, 0);
        assert!(lock(&validator.partial_parse).contains_key(&name));
    }

    #[tokio::test]
    async fn a_background_removal_ends_before_wait_for_removals_returns() {
        let root = tempfile::tempdir().unwrap();
        let (validator, project) = validator_and_project(root.path());
        for _ in 0..3 {
            let slot = validator.take_slot("p");
            let workspace = finished_workspace(root.path(), project.path(), &slot);
            // Same slot every time: each vacates its path before the next takes it.
            assert_eq!(slot.index, 0);
            validator.remove_in_background(vacate(workspace, slot));
        }
        validator.wait_for_removals().await;
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        assert!(lock(&validator.removals).is_empty());
        assert_eq!(lock(&validator.partial_parse).len(), 1);
    }

    #[test]
    fn long_outputs_are_cut() {
        let long = "x".repeat(MAX_STEP_OUTPUT_CHARS + 10);
        assert!(cap(&long).ends_with("… (cut)"));
        assert_eq!(cap("short"), "short");
    }
}
