//! `dbt-ops eval CORPUS`: runs every case of an evaluation corpus through the real system
//! (a private nats-server, the four services in this process, real dbt, real git) and
//! scores what came out.
//!
//! A corpus is a directory of cases, one directory each holding `case.json`:
//!
//! ```json
//! {
//!   "name": "misspelt_column_staging",
//!   "description": "…",
//!   "project": "examples/coffee_shop",
//!   "edits": [{"path": "models/staging/stg_orders.sql", "from": "    customer_id,\n", "to": "    custmer_id,\n"}],
//!   "expected": [{"model": "stg_orders", "path": "models/staging/stg_orders.sql", "class": "missing_column"}],
//!   "fixable": true,
//!   "fixed": {"models/staging/stg_orders.sql": "…accepted content…"}
//! }
//! ```
//!
//! `project` is relative to the repository holding the corpus (found by walking up from
//! the corpus directory). Each edit's `from` must match exactly once. `fixed` is optional:
//! the accepted content defaults to the unbroken file, and may name other files than the
//! breakage's (an ancestor model, a model reading a renamed seed column). A fix is
//! *correct* when every file its branch changed equals the accepted content, or when the
//! project with the breakage and the branch's files gives the accepted project's rows for
//! the failing model and every model the fix edited ([`scoring`] says exactly how).
//!
//! `fix_scope` (optional, `"model"` or `"lineage"`) is the `fixer.fix_scope` the system
//! runs the case with, whatever the settings say: a case whose cause sits in an ancestor
//! asks for `"lineage"`. Cases without it run with the settings' scope. Each scope gets
//! its own run of the services, on the same bus.
//!
//! Beyond the scores, the report says who fixed what and at what cost, read from the
//! stream: which fixable cases the rules solved alone (no LLM call), how long the fixer's
//! rule stage took per attempt (the `dbtops-rule-stage-us` header of `fix.proposed`, or
//! the abandonment's detail), and how many LLM tokens each incident an LLM fixed used
//! (`incident_usage` of its validated proposal). [`EvalOptions::llm_note`] says where the
//! LLM figures come from when that is not a real model (a local fake in tests).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dbtops_bus::{Bus, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::{FixScope, Settings};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::commands::submit::{submit, wait_for_outcomes};

pub mod scoring;

/// Why an evaluation could not run (a case that scores badly is not an error).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The corpus or a case could not be read.
    #[error("corpus: {0}")]
    Corpus(String),
    /// The system could not be started.
    #[error("system: {0}")]
    System(String),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvalError {
    let context = context.into();
    move |source| EvalError::Io { context, source }
}

/// One literal search/replace edit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Edit {
    /// The file, relative to the project.
    pub path: String,
    /// The text to find (exactly once).
    pub from: String,
    /// Its replacement.
    pub to: String,
}

/// A failure the detector should find.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExpectedFailure {
    /// The model's name (none for a project-level failure such as broken YAML).
    pub model: Option<String>,
    /// The file to fix, relative to the project.
    pub path: String,
    /// The error class.
    pub class: String,
}

/// One case of the corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    /// The case's name.
    pub name: String,
    /// What the breakage is.
    #[serde(default)]
    pub description: String,
    /// The example project, relative to the repository.
    pub project: String,
    /// The breakage.
    pub edits: Vec<Edit>,
    /// The failures the detector should find.
    pub expected: Vec<ExpectedFailure>,
    /// Whether a SQL edit of one model can fix it; if not, it should go to a human.
    pub fixable: bool,
    /// Accepted fixed content per file (default: the unbroken file). May name files the
    /// breakage did not edit: an ancestor model, a model reading a renamed seed column.
    #[serde(default)]
    pub fixed: std::collections::BTreeMap<String, String>,
    /// The `fixer.fix_scope` this case runs with (default: the settings'): `lineage` when
    /// the fix belongs in an ancestor model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_scope: Option<FixScope>,
}

/// How one case went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseResult {
    /// The case.
    pub name: String,
    /// Whether the case expects a fix.
    pub fixable: bool,
    /// Every expected model was among the incidents.
    pub detected: bool,
    /// Every expected model was found with the expected class.
    pub class_correct: bool,
    /// Every incident got a branch.
    pub validated: bool,
    /// Every branch's model gives the unbroken model's output.
    pub correct_fix: bool,
    /// An unfixable case's incidents were abandoned to a human (`needs_human`).
    pub routed_to_human: bool,
    /// Fix attempts over all incidents.
    pub attempts: u32,
    /// Seconds from submit to the last outcome.
    pub seconds: f64,
    /// Outcomes, one `model:class:outcome[:reason]` each.
    pub outcomes: Vec<String>,
    /// What went wrong in running the case, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The strategy of each validated proposal (`rule:misspelt_column`,
    /// `llm:openai/gpt-4.1-mini`), one per incident that got a branch.
    pub strategies: Vec<String>,
    /// A correct fix, and every validated proposal came from a rule: no LLM call.
    pub solved_by_rules: bool,
    /// A correct fix with at least one validated proposal from an LLM.
    pub solved_by_llm: bool,
    /// The fixer's rule stage, in microseconds, once per attempt that ran it.
    pub rule_stage_us: Vec<f64>,
    /// LLM tokens of each incident whose validated proposal came from an LLM (the
    /// incident's total over its attempts).
    pub llm_fixed_incidents: Vec<IncidentTokens>,
    /// The `fixer.fix_scope` the case ran with.
    pub fix_scope: FixScope,
    /// A validated branch changed a file other than its incident's model file (an
    /// ancestor model).
    pub upstream_fix: bool,
    /// The files the fix branches changed, relative to the project.
    pub fixed_files: Vec<String>,
    /// Why a validated fix was not scored correct, one line per branch that was not.
    pub fix_notes: Vec<String>,
}

/// The LLM tokens one incident used, over all its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IncidentTokens {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// LLM calls, as the validated proposal's usage counts them (earlier attempts'
    /// calls are not carried forward, their tokens are).
    pub calls: u32,
}

impl IncidentTokens {
    /// Prompt and answer tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The median and 90th percentile of some figures, and how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many values.
    pub count: usize,
    /// The median (nearest rank).
    pub p50: f64,
    /// The 90th percentile (nearest rank).
    pub p90: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index]
        };
        Some(Self {
            count: values.len(),
            p50: rank(0.5),
            p90: rank(0.9),
        })
    }
}

/// LLM tokens per incident an LLM fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmTokenFigures {
    /// Prompt + answer tokens.
    pub total: Percentiles,
    /// Prompt tokens.
    pub input: Percentiles,
    /// Answer tokens.
    pub output: Percentiles,
}

/// How to run an evaluation.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// How long to wait for each case's outcomes.
    pub timeout: Duration,
    /// Where the LLM figures come from when that is not a real model, printed with them
    /// (e.g. a local fake server answering with the accepted fix: its token counts are
    /// the sizes of our prompts, not a model's behaviour).
    pub llm_note: Option<String>,
    /// Only the cases with these names (empty: every case); a name the corpus does not
    /// hold is an error, so a typo does not pass as an empty run.
    pub only: Vec<String>,
}

/// The scores over a corpus.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    /// Per case.
    pub cases: Vec<CaseResult>,
    /// Cases.
    pub total: usize,
    /// Cases whose failing models were all detected.
    pub detected: usize,
    /// Cases whose classes were all right.
    pub class_correct: usize,
    /// Fixable cases.
    pub fixable: usize,
    /// Fixable cases with a validated branch.
    pub validated: usize,
    /// Fixable cases whose branch is correct.
    pub correct_fix: usize,
    /// Fixable cases whose correct fix edited an ancestor model (a file other than the
    /// failing model's): counted in `correct_fix` too.
    pub correct_upstream_fix: usize,
    /// Unfixable cases.
    pub unfixable: usize,
    /// Unfixable cases routed to a human.
    pub routed_to_human: usize,
    /// Mean attempts per case.
    pub mean_attempts: f64,
    /// Mean seconds per case.
    pub mean_seconds: f64,
    /// Fixable cases solved (correct fix) by rules alone, without an LLM call.
    pub solved_by_rules: usize,
    /// Fixable cases solved with an LLM's proposal.
    pub solved_by_llm: usize,
    /// The fixer's rule stage per attempt, in microseconds; `None` when no attempt ran it
    /// (rules off).
    pub rule_stage_us: Option<Percentiles>,
    /// Whether the rule stage was timed in a debug build (slower than a release build).
    pub debug_build: bool,
    /// Tokens per LLM-fixed incident; `None` when no incident was fixed by an LLM.
    pub llm_tokens_per_fixed_incident: Option<LlmTokenFigures>,
    /// The LLM strategies whose proposals were validated (`llm:<provider>/<model>`).
    pub llm_strategies: Vec<String>,
    /// `fixer.rules_enabled` of the run.
    pub rules_enabled: bool,
    /// `fixer.fix_scope` of the settings: the scope of every case without its own.
    pub fix_scope: FixScope,
    /// The cases that ran with `fixer.fix_scope = "lineage"`.
    pub lineage_cases: Vec<String>,
    /// The configured providers (`name/model`), in order; empty: rules only.
    pub providers: Vec<String>,
    /// Where the LLM figures come from when that is not a real model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_note: Option<String>,
}

impl EvalReport {
    fn from_cases(cases: Vec<CaseResult>, settings: &Settings, llm_note: Option<String>) -> Self {
        let count = |f: &dyn Fn(&CaseResult) -> bool| cases.iter().filter(|c| f(c)).count();
        let total = cases.len();
        let denominator = total.max(1) as f64;
        let llm_fixed: Vec<IncidentTokens> = cases
            .iter()
            .flat_map(|c| c.llm_fixed_incidents.iter().copied())
            .collect();
        let llm_tokens_per_fixed_incident =
            Percentiles::of(llm_fixed.iter().map(|t| t.total() as f64)).map(|total| {
                LlmTokenFigures {
                    total,
                    input: Percentiles::of(llm_fixed.iter().map(|t| t.input_tokens as f64))
                        .unwrap_or_default(),
                    output: Percentiles::of(llm_fixed.iter().map(|t| t.output_tokens as f64))
                        .unwrap_or_default(),
                }
            });
        let mut llm_strategies: Vec<String> = cases
            .iter()
            .flat_map(|c| c.strategies.iter())
            .filter(|s| s.starts_with("llm:"))
            .cloned()
            .collect();
        llm_strategies.sort();
        llm_strategies.dedup();
        Self {
            solved_by_rules: count(&|c| c.fixable && c.solved_by_rules),
            solved_by_llm: count(&|c| c.fixable && c.solved_by_llm),
            rule_stage_us: Percentiles::of(
                cases.iter().flat_map(|c| c.rule_stage_us.iter().copied()),
            ),
            debug_build: cfg!(debug_assertions),
            llm_tokens_per_fixed_incident,
            llm_strategies,
            rules_enabled: settings.fixer.rules_enabled,
            fix_scope: settings.fixer.fix_scope,
            lineage_cases: cases
                .iter()
                .filter(|c| c.fix_scope == FixScope::Lineage)
                .map(|c| c.name.clone())
                .collect(),
            correct_upstream_fix: count(&|c| c.fixable && c.correct_fix && c.upstream_fix),
            providers: settings
                .fixer
                .providers
                .iter()
                .map(|p| format!("{}/{}", p.name, p.model))
                .collect(),
            llm_note,
            total,
            detected: count(&|c| c.detected),
            class_correct: count(&|c| c.class_correct),
            fixable: count(&|c| c.fixable),
            validated: count(&|c| c.fixable && c.validated),
            correct_fix: count(&|c| c.fixable && c.correct_fix),
            unfixable: count(&|c| !c.fixable),
            routed_to_human: count(&|c| !c.fixable && c.routed_to_human),
            mean_attempts: cases.iter().map(|c| f64::from(c.attempts)).sum::<f64>() / denominator,
            mean_seconds: cases.iter().map(|c| c.seconds).sum::<f64>() / denominator,
            cases,
        }
    }

    /// The table printed by `dbt-ops eval`.
    pub fn table(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut out = format!(
            "{:<28} {:<8} {:<6} {:<6} {:<6} {:<8} {:<4} {:<6} {:<5} {:>4} {:>7}  outcomes\n",
            "case",
            "fixable",
            "found",
            "class",
            "branch",
            "correct",
            "up",
            "human",
            "by",
            "att",
            "secs"
        );
        for c in &self.cases {
            let by = if c.solved_by_rules {
                "rule"
            } else if c.solved_by_llm {
                "llm"
            } else {
                "-"
            };
            out.push_str(&format!(
                "{:<28} {:<8} {:<6} {:<6} {:<6} {:<8} {:<4} {:<6} {:<5} {:>4} {:>7.1}  {}{}\n",
                c.name,
                yes(c.fixable),
                yes(c.detected),
                yes(c.class_correct),
                yes(c.validated),
                yes(c.correct_fix),
                // A branch that edited an ancestor, correct or not.
                if c.upstream_fix { "yes" } else { "-" },
                yes(c.routed_to_human),
                by,
                c.attempts,
                c.seconds,
                c.outcomes.join(", "),
                c.error
                    .as_ref()
                    .map(|e| format!(" ERROR: {e}"))
                    .unwrap_or_default()
            ));
        }
        let pct = |n: usize, d: usize| {
            if d == 0 {
                "-".to_owned()
            } else {
                format!("{n}/{d} ({:.0}%)", 100.0 * n as f64 / d as f64)
            }
        };
        out.push_str(&format!(
            "\ndetection accuracy   {}\nclass accuracy       {}\nvalidated-fix rate   {}\ncorrect-fix rate     {}\nrouted to humans     {}\nmean attempts        {:.2}\nmean time/incident   {:.1} s\n",
            pct(self.detected, self.total),
            pct(self.class_correct, self.total),
            pct(self.validated, self.fixable),
            pct(self.correct_fix, self.fixable),
            pct(self.routed_to_human, self.unfixable),
            self.mean_attempts,
            self.mean_seconds,
        ));
        out.push_str(&format!(
            "upstream fixes       {} of {} correct fix(es) edited an ancestor model\n",
            self.correct_upstream_fix, self.correct_fix
        ));
        let scope = |scope: FixScope| match scope {
            FixScope::Model => "model",
            FixScope::Lineage => "lineage",
        };
        // The cases that asked for another scope than the settings'.
        let own_scope: Vec<String> = self
            .cases
            .iter()
            .filter(|c| c.fix_scope != self.fix_scope)
            .map(|c| format!("{} ({})", c.name, scope(c.fix_scope)))
            .collect();
        out.push_str(&format!(
            "fix scope            {}{}\n",
            scope(self.fix_scope),
            if own_scope.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} case(s) ask for their own: {}",
                    own_scope.len(),
                    own_scope.join(", ")
                )
            }
        ));
        out.push_str(&format!(
            "solved by rules alone {}{}\nsolved with an LLM    {}\n",
            pct(self.solved_by_rules, self.fixable),
            if self.rules_enabled {
                ""
            } else {
                "  (rules off: fixer.rules_enabled = false)"
            },
            pct(self.solved_by_llm, self.fixable),
        ));
        let build = if self.debug_build {
            "debug build"
        } else {
            "release build"
        };
        out.push_str(&match &self.rule_stage_us {
            Some(p) => format!(
                "rule stage           p50 {:.1} µs, p90 {:.1} µs over {} attempt(s) ({build})\n",
                p.p50, p.p90, p.count
            ),
            None => "rule stage           - (no attempt ran the rules)\n".to_owned(),
        });
        let source = if self.llm_strategies.is_empty() {
            String::new()
        } else {
            format!(" [{}]", self.llm_strategies.join(", "))
        };
        out.push_str(&match &self.llm_tokens_per_fixed_incident {
            Some(t) => format!(
                "LLM tokens/fixed inc. median {:.0}, p90 {:.0} over {} incident(s) (prompt median {:.0}, p90 {:.0}; answer median {:.0}, p90 {:.0}){source}\n",
                t.total.p50, t.total.p90, t.total.count, t.input.p50, t.input.p90, t.output.p50, t.output.p90
            ),
            None if self.providers.is_empty() => {
                "LLM tokens/fixed inc. - (no LLM provider configured)\n".to_owned()
            }
            None => "LLM tokens/fixed inc. - (no incident was fixed by an LLM)\n".to_owned(),
        });
        if let Some(note) = &self.llm_note {
            out.push_str(&format!("NOTE on LLM figures: {note}\n"));
        }
        out
    }
}

/// Reads every `*/case.json` under `corpus`, sorted by directory name.
pub fn load_corpus(corpus: &Path) -> Result<Vec<Case>, EvalError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
        .map_err(io(format!("cannot read corpus {}", corpus.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("case.json").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(EvalError::Corpus(format!(
            "no */case.json under {}",
            corpus.display()
        )));
    }
    dirs.iter()
        .map(|dir| {
            let file = dir.join("case.json");
            let text = std::fs::read_to_string(&file)
                .map_err(io(format!("cannot read {}", file.display())))?;
            serde_json::from_str(&text)
                .map_err(|error| EvalError::Corpus(format!("{}: {error}", file.display())))
        })
        .collect()
}

/// The directory `relative` names, looked for in `start` and its ancestors.
fn resolve_project(start: &Path, relative: &str) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|candidate| candidate.join("dbt_project.yml").is_file())
}

/// Runs every case of `corpus` on a private system started with `settings` (its NATS URL
/// and validator workspace are replaced by private ones).
pub async fn eval(
    corpus: &Path,
    settings: Settings,
    timeout: Duration,
) -> Result<EvalReport, EvalError> {
    eval_with(
        corpus,
        settings,
        EvalOptions {
            timeout,
            ..EvalOptions::default()
        },
    )
    .await
}

/// [`eval`] with options.
pub async fn eval_with(
    corpus: &Path,
    mut settings: Settings,
    options: EvalOptions,
) -> Result<EvalReport, EvalError> {
    let timeout = options.timeout;
    let cases = select_cases(load_corpus(corpus)?, &options.only)?;
    let scratch = tempfile::tempdir().map_err(io("cannot create a temp dir"))?;
    let server = NatsServer::start(&scratch.path().join("nats"))
        .map_err(|error| EvalError::System(error.to_string()))?;
    let workspaces = scratch.path().join("workspaces");
    std::fs::create_dir_all(&workspaces).map_err(io("cannot create workspaces"))?;
    let dbt = dbtops_validator::dbt::find_dbt(&settings.validator.dbt_bin);
    settings.nats.url = server.url();
    settings.validator.dbt_bin = dbt.display().to_string();
    settings.validator.workspace_root = workspaces.display().to_string();
    let bus = Bus::connect(&settings.nats)
        .await
        .map_err(|error| EvalError::System(error.to_string()))?;
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    // One run of the services per scope the cases need (every service reads
    // `fixer.fix_scope`), in the order the scopes first appear; the report keeps the
    // corpus order.
    for (scope, indices) in scope_groups(&cases, settings.fixer.fix_scope) {
        let mut scoped = settings.clone();
        scoped.fixer.fix_scope = scope;
        let (stop, stopped) = oneshot::channel::<()>();
        let services = tokio::spawn(crate::system::run_all(bus.clone(), scoped, async {
            let _ = stopped.await;
        }));
        for index in indices {
            let case = &cases[index];
            eprintln!("[{}/{}] {} …", index + 1, cases.len(), case.name);
            let mut result = match run_case(&bus, &dbt, corpus, case, timeout).await {
                Ok(result) => result,
                Err(error) => CaseResult {
                    name: case.name.clone(),
                    fixable: case.fixable,
                    error: Some(error.to_string()),
                    ..CaseResult::default()
                },
            };
            result.fix_scope = scope;
            eprintln!(
                "[{}/{}] {}: found={} class={} branch={} correct={} upstream={} human={} ({:.1} s){}",
                index + 1,
                cases.len(),
                case.name,
                result.detected,
                result.class_correct,
                result.validated,
                result.correct_fix,
                result.upstream_fix,
                result.routed_to_human,
                result.seconds,
                result
                    .error
                    .as_ref()
                    .map(|e| format!(" error: {e}"))
                    .unwrap_or_default()
            );
            results[index] = Some(result);
        }
        let _ = stop.send(());
        if let Ok(Err(error)) = services.await {
            eprintln!("note: services stopped with: {error}");
        }
    }
    drop(server);
    Ok(EvalReport::from_cases(
        results.into_iter().flatten().collect(),
        &settings,
        options.llm_note,
    ))
}

/// The cases named in `only` (all when it is empty), in corpus order.
fn select_cases(cases: Vec<Case>, only: &[String]) -> Result<Vec<Case>, EvalError> {
    if only.is_empty() {
        return Ok(cases);
    }
    let unknown: Vec<&str> = only
        .iter()
        .filter(|name| !cases.iter().any(|case| &case.name == *name))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(EvalError::Corpus(format!(
            "no case named {} in the corpus",
            unknown.join(", ")
        )));
    }
    Ok(cases
        .into_iter()
        .filter(|case| only.contains(&case.name))
        .collect())
}

/// The cases' indices grouped by the scope each runs with (its own, or `default`), in
/// the order the scopes first appear.
fn scope_groups(cases: &[Case], default: FixScope) -> Vec<(FixScope, Vec<usize>)> {
    let mut groups: Vec<(FixScope, Vec<usize>)> = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let scope = case.fix_scope.unwrap_or(default);
        match groups.iter_mut().find(|(group, _)| *group == scope) {
            Some((_, indices)) => indices.push(index),
            None => groups.push((scope, vec![index])),
        }
    }
    groups
}

async fn run_case(
    bus: &Bus,
    dbt: &Path,
    corpus: &Path,
    case: &Case,
    timeout: Duration,
) -> Result<CaseResult, EvalError> {
    let source = resolve_project(corpus, &case.project).ok_or_else(|| {
        EvalError::Corpus(format!(
            "{}: project {} not found above {}",
            case.name,
            case.project,
            corpus.display()
        ))
    })?;
    let dir = tempfile::tempdir().map_err(io("cannot create a temp dir"))?;
    let repo = dir.path().join("repo");
    copy_project(&source, &repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "clean"])?;
    let mut originals = std::collections::BTreeMap::new();
    for edit in &case.edits {
        let file = repo.join(&edit.path);
        let text = std::fs::read_to_string(&file)
            .map_err(io(format!("{}: cannot read {}", case.name, edit.path)))?;
        if text.matches(&edit.from).count() != 1 {
            return Err(EvalError::Corpus(format!(
                "{}: edit on {} must match exactly once",
                case.name, edit.path
            )));
        }
        originals
            .entry(edit.path.clone())
            .or_insert_with(|| text.clone());
        std::fs::write(&file, text.replacen(&edit.from, &edit.to, 1))
            .map_err(io(format!("cannot write {}", edit.path)))?;
    }
    git(&repo, &["commit", "-q", "-am", "breakage"])?;
    // Fix branches start from this commit: what a branch changed is its diff from here.
    let breakage = git(&repo, &["rev-parse", "HEAD"])?.trim().to_owned();
    let (ok, output) = run_dbt(dbt, &repo, &["build"])?;
    if ok {
        return Err(EvalError::Corpus(format!(
            "{}: the broken project builds: {}",
            case.name,
            tail(&output)
        )));
    }

    let started = Instant::now();
    let submitted = submit(bus, &repo, None, None)
        .await
        .map_err(|error| EvalError::System(error.to_string()))?;
    let (outcomes, _notes) = wait_for_outcomes(bus, &submitted.submission_id, timeout)
        .await
        .map_err(|error| EvalError::System(error.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    let store = bus
        .incidents()
        .await
        .map_err(|error| EvalError::System(error.to_string()))?;
    let mut records = Vec::new();
    for outcome in &outcomes {
        if let Ok(Some(record)) = store.get(&outcome.incident_id).await {
            records.push((outcome.clone(), record));
        }
    }

    let matches = |expected: &ExpectedFailure, record: &dbtops_bus::IncidentRecord| {
        expected.model.as_deref() == Some(record.model.as_str())
            || record.model_path.ends_with(&expected.path)
    };
    let detected = !case.expected.is_empty()
        && case
            .expected
            .iter()
            .all(|e| records.iter().any(|(_, r)| matches(e, r)));
    let class_correct = detected
        && case.expected.iter().all(|e| {
            records
                .iter()
                .any(|(_, r)| matches(e, r) && r.class == e.class)
        });
    let validated = !outcomes.is_empty() && outcomes.iter().all(|o| o.is_success());
    let routed_to_human = !outcomes.is_empty()
        && outcomes.iter().all(|o| {
            o.outcome == "abandoned" && o.reason.as_deref().unwrap_or("").contains("needs_human")
        });
    let mut correct_fix = validated;
    let mut upstream_fix = false;
    let mut fixed_files = std::collections::BTreeSet::new();
    let mut fix_notes = Vec::new();
    let mut case_error = None;
    if validated {
        let project_yml = std::fs::read_to_string(repo.join("dbt_project.yml"))
            .map_err(io(format!("{}: cannot read dbt_project.yml", case.name)))?;
        let model_paths = dbtops_artifacts::project_settings(&project_yml).model_paths;
        let accepted = scoring::accepted_files(&case.fixed, &originals, &model_paths);
        for (outcome, record) in &records {
            let Some(branch) = &outcome.branch else {
                correct_fix = false;
                fix_notes.push(format!("{}: no branch", record.model));
                continue;
            };
            let changes = scoring::branch_changes(&repo, &breakage, branch)?;
            upstream_fix |= scoring::edits_upstream(&record.model_path, &changes);
            fixed_files.extend(changes.keys().cloned());
            let verdict = scoring::score_fix(
                &scoring::DbtRows { dbt },
                &repo,
                &model_paths,
                &accepted,
                &changes,
                &scoring::failing_model(&record.model, &record.model_path, &model_paths),
            )?;
            if let Some(why) = &verdict.accepted_failed {
                case_error = Some(format!(
                    "the accepted fix does not build (compared {}): {why}",
                    verdict.compared_models.join(", ")
                ));
            }
            if !verdict.correct {
                fix_notes.push(format!(
                    "{}: {}",
                    record.model,
                    verdict.reason.as_deref().unwrap_or("not correct")
                ));
            }
            correct_fix &= verdict.correct;
        }
    }
    let spend = who_fixed(bus, &submitted.submission_id, &outcomes).await?;
    let outcome_lines = records
        .iter()
        .map(|(o, r)| {
            let mut line = format!("{}:{}:{}", r.model, r.class, o.outcome);
            if let Some(reason) = &o.reason {
                line.push(':');
                line.push_str(reason);
            }
            line
        })
        .collect();
    Ok(CaseResult {
        name: case.name.clone(),
        fixable: case.fixable,
        detected,
        class_correct,
        validated,
        correct_fix,
        routed_to_human,
        attempts: records.iter().map(|(_, r)| r.attempts).sum(),
        seconds,
        outcomes: outcome_lines,
        error: case_error,
        solved_by_rules: correct_fix
            && !spend.strategies.is_empty()
            && spend.strategies.iter().all(|s| s.starts_with("rule:")),
        solved_by_llm: correct_fix && spend.strategies.iter().any(|s| s.starts_with("llm:")),
        strategies: spend.strategies,
        rule_stage_us: spend.rule_stage_us,
        llm_fixed_incidents: spend.llm_fixed_incidents,
        // Set by the caller, which knows the scope the services ran with.
        fix_scope: FixScope::default(),
        upstream_fix,
        fixed_files: fixed_files.into_iter().collect(),
        fix_notes,
    })
}

/// Who fixed a case's incidents and at what cost, read from the stream.
struct WhoFixed {
    strategies: Vec<String>,
    rule_stage_us: Vec<f64>,
    llm_fixed_incidents: Vec<IncidentTokens>,
}

/// Reads the proposals of `submission_id`'s incidents: cases of one corpus can share an
/// incident id (the same model failing the same way), so the submission tells them apart.
async fn who_fixed(
    bus: &Bus,
    submission_id: &str,
    outcomes: &[crate::commands::submit::IncidentOutcome],
) -> Result<WhoFixed, EvalError> {
    let system = |error: dbtops_bus::BusError| EvalError::System(error.to_string());
    let ids: std::collections::BTreeSet<&str> =
        outcomes.iter().map(|o| o.incident_id.as_str()).collect();
    // The incident's id when it came from this submission.
    let incident_of = |incident: &Option<v1::FailureDetected>| {
        incident
            .as_ref()
            .filter(|i| i.submission_id == submission_id)
            .map(|i| i.incident_id.clone())
            .unwrap_or_default()
    };
    let mut rule_stage_us = Vec::new();
    for message in bus
        .replay(&bus.subjects().fix_proposed())
        .await
        .map_err(system)?
    {
        let Ok(proposed) = message.decode::<v1::FixProposed>() else {
            continue;
        };
        if !ids.contains(incident_of(&proposed.incident).as_str()) {
            continue;
        }
        if let Some(micros) = message
            .headers
            .get(dbtops_fixer::RULE_STAGE_HEADER)
            .and_then(|value| dbtops_fixer::parse_rule_stage_micros(value.as_str()))
        {
            rule_stage_us.push(micros);
        }
    }
    // An attempt that ended the incident without a proposal carries its rule stage in
    // the abandonment's detail.
    rule_stage_us.extend(
        outcomes
            .iter()
            .filter(|o| o.outcome == "abandoned")
            .filter_map(|o| o.detail.as_deref())
            .filter_map(dbtops_fixer::parse_rule_stage_micros),
    );
    let mut strategies = Vec::new();
    let mut llm_fixed_incidents = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let validated = bus
        .replay(&bus.subjects().fix_validated())
        .await
        .map_err(system)?;
    // The newest validation of each incident: a reopened incident may have older ones.
    for message in validated.iter().rev() {
        let Ok(validated) = message.decode::<v1::FixValidated>() else {
            continue;
        };
        let incident_id = incident_of(&validated.incident);
        if !ids.contains(incident_id.as_str()) || !seen.insert(incident_id) {
            continue;
        }
        let Some(proposal) = validated.proposal else {
            continue;
        };
        if proposal.strategy.starts_with("llm:") {
            let usage = proposal
                .incident_usage
                .or(proposal.usage)
                .unwrap_or_default();
            llm_fixed_incidents.push(IncidentTokens {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                calls: usage.calls,
            });
        }
        strategies.push(proposal.strategy);
    }
    strategies.sort();
    Ok(WhoFixed {
        strategies,
        rule_stage_us,
        llm_fixed_incidents,
    })
}

fn copy_project(from: &Path, to: &Path) -> Result<(), EvalError> {
    // `.git`: the candidate and accepted projects are copied from the case's repository.
    super::scratch::copy_project(from, to, &[".git"]).map_err(EvalError::Corpus)
}

fn git(repo: &Path, args: &[&str]) -> Result<String, EvalError> {
    super::scratch::git(repo, ("dbt-ops eval", "eval@dbt-ops"), args).map_err(EvalError::Corpus)
}

fn run_dbt(dbt: &Path, project: &Path, args: &[&str]) -> Result<(bool, String), EvalError> {
    super::scratch::run_dbt(dbt, project, args).map_err(EvalError::Corpus)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=10).map(f64::from)).unwrap_or_default();
        assert_eq!((p.count, p.p50, p.p90), (10, 5.0, 9.0));
        let one = Percentiles::of([7.5]).unwrap_or_default();
        assert_eq!((one.p50, one.p90), (7.5, 7.5));
        assert_eq!(Percentiles::of(Vec::new()), None);
        assert_eq!(Percentiles::of([f64::NAN]), None);
    }

    fn case(name: &str, fix_scope: Option<FixScope>) -> Case {
        Case {
            name: name.to_owned(),
            description: String::new(),
            project: "examples/coffee_shop".to_owned(),
            edits: Vec::new(),
            expected: Vec::new(),
            fixable: true,
            fixed: Default::default(),
            fix_scope,
        }
    }

    #[test]
    fn only_picks_cases_by_name_and_refuses_unknown_names() {
        let cases = vec![case("a", None), case("b", None), case("c", None)];
        let picked = select_cases(cases.clone(), &["c".into(), "a".into()]).expect("known");
        let names: Vec<&str> = picked.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "c"], "corpus order");
        assert_eq!(select_cases(cases.clone(), &[]).expect("all").len(), 3);
        let error = select_cases(cases, &["a".into(), "zz".into()]).expect_err("unknown");
        assert!(error.to_string().contains("zz"), "{error}");
    }

    #[test]
    fn cases_run_in_one_group_per_scope_their_own_or_the_settings() {
        let cases = vec![
            case("a", None),
            case("b", Some(FixScope::Lineage)),
            case("c", None),
            case("d", Some(FixScope::Model)),
        ];
        assert_eq!(
            scope_groups(&cases, FixScope::Model),
            [
                (FixScope::Model, vec![0, 2, 3]),
                (FixScope::Lineage, vec![1])
            ]
        );
        assert_eq!(
            scope_groups(&cases, FixScope::Lineage),
            [
                (FixScope::Lineage, vec![0, 1, 2]),
                (FixScope::Model, vec![3])
            ]
        );
    }

    #[test]
    fn a_case_s_scope_is_optional_in_case_json() {
        let parsed: Case = serde_json::from_str(
            r#"{"name": "x", "project": "p", "edits": [], "expected": [], "fixable": true,
                "fix_scope": "lineage"}"#,
        )
        .expect("parses");
        assert_eq!(parsed.fix_scope, Some(FixScope::Lineage));
        let without: Case = serde_json::from_str(
            r#"{"name": "x", "project": "p", "edits": [], "expected": [], "fixable": true}"#,
        )
        .expect("parses");
        assert_eq!(without.fix_scope, None);
        // Written back without the field, as before.
        let text = serde_json::to_string(&without).expect("serializes");
        assert!(!text.contains("fix_scope"), "{text}");
    }

    #[test]
    fn the_table_counts_upstream_fixes_and_names_cases_with_their_own_scope() {
        let mut upstream = CaseResult {
            name: "bad_cast".into(),
            fixable: true,
            validated: true,
            correct_fix: true,
            upstream_fix: true,
            fix_scope: FixScope::Lineage,
            ..CaseResult::default()
        };
        upstream.fixed_files = vec!["models/staging/stg_customers.sql".into()];
        let plain = CaseResult {
            name: "plain".into(),
            fixable: true,
            validated: true,
            correct_fix: true,
            ..CaseResult::default()
        };
        let report = EvalReport::from_cases(vec![upstream, plain], &Settings::default(), None);
        assert_eq!((report.correct_fix, report.correct_upstream_fix), (2, 1));
        assert_eq!(report.lineage_cases, ["bad_cast"]);
        let table = report.table();
        assert!(
            table.contains("upstream fixes       1 of 2 correct fix(es) edited an ancestor model"),
            "{table}"
        );
        assert!(
            table.contains(
                "fix scope            model; 1 case(s) ask for their own: bad_cast (lineage)"
            ),
            "{table}"
        );
        let json = serde_json::to_value(&report).expect("serializes");
        // Earlier fields keep their names; the new ones are added.
        for field in [
            "correct_fix",
            "validated",
            "solved_by_rules",
            "correct_upstream_fix",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(
            json["cases"][0]["fixed_files"][0],
            "models/staging/stg_customers.sql"
        );
        assert_eq!(json["fix_scope"], "model");
    }
}
