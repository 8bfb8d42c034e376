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
//! the accepted content defaults to the unbroken file. A fix is *correct* when its content
//! equals the accepted content, or when the model built from it gives the same rows as the
//! unbroken model on the example data.
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
use dbtops_settings::Settings;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::commands::submit::{submit, wait_for_outcomes};

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
    /// Accepted fixed content per file (default: the unbroken file).
    #[serde(default)]
    pub fixed: std::collections::BTreeMap<String, String>,
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
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// How long to wait for each case's outcomes.
    pub timeout: Duration,
    /// Where the LLM figures come from when that is not a real model, printed with them
    /// (e.g. a local fake server answering with the accepted fix: its token counts are
    /// the sizes of our prompts, not a model's behaviour).
    pub llm_note: Option<String>,
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
            "{:<28} {:<8} {:<6} {:<6} {:<6} {:<8} {:<6} {:<5} {:>4} {:>7}  outcomes\n",
            "case", "fixable", "found", "class", "branch", "correct", "human", "by", "att", "secs"
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
                "{:<28} {:<8} {:<6} {:<6} {:<6} {:<8} {:<6} {:<5} {:>4} {:>7.1}  {}{}\n",
                c.name,
                yes(c.fixable),
                yes(c.detected),
                yes(c.class_correct),
                yes(c.validated),
                yes(c.correct_fix),
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
            llm_note: None,
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
    let cases = load_corpus(corpus)?;
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
    let (stop, stopped) = oneshot::channel::<()>();
    let services = tokio::spawn(crate::system::run_all(
        bus.clone(),
        settings.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let mut results = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        eprintln!("[{}/{}] {} …", index + 1, cases.len(), case.name);
        let result = match run_case(&bus, &dbt, corpus, case, timeout).await {
            Ok(result) => result,
            Err(error) => CaseResult {
                name: case.name.clone(),
                fixable: case.fixable,
                error: Some(error.to_string()),
                ..CaseResult::default()
            },
        };
        eprintln!(
            "[{}/{}] {}: found={} class={} branch={} correct={} human={} ({:.1} s){}",
            index + 1,
            cases.len(),
            case.name,
            result.detected,
            result.class_correct,
            result.validated,
            result.correct_fix,
            result.routed_to_human,
            result.seconds,
            result
                .error
                .as_ref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        );
        results.push(result);
    }
    let _ = stop.send(());
    if let Ok(Err(error)) = services.await {
        eprintln!("note: services stopped with: {error}");
    }
    drop(server);
    Ok(EvalReport::from_cases(results, &settings, options.llm_note))
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
    if validated {
        for (outcome, record) in &records {
            let Some(branch) = &outcome.branch else {
                correct_fix = false;
                continue;
            };
            let path = relative_model_path(&record.model_path, &originals);
            let fixed = git(&repo, &["show", &format!("{branch}:{path}")])?;
            let accepted = case
                .fixed
                .get(&path)
                .or_else(|| originals.get(&path))
                .cloned();
            let correct = match accepted {
                Some(accepted) if accepted == fixed => true,
                Some(accepted) => {
                    same_output(dbt, &source, &path, &accepted, &fixed, &record.model)?
                }
                None => false,
            };
            correct_fix &= correct;
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
        error: None,
        solved_by_rules: correct_fix
            && !spend.strategies.is_empty()
            && spend.strategies.iter().all(|s| s.starts_with("rule:")),
        solved_by_llm: correct_fix && spend.strategies.iter().any(|s| s.starts_with("llm:")),
        strategies: spend.strategies,
        rule_stage_us: spend.rule_stage_us,
        llm_fixed_incidents: spend.llm_fixed_incidents,
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

/// The record's model path relative to the project (records may carry it with a prefix).
fn relative_model_path(
    model_path: &str,
    originals: &std::collections::BTreeMap<String, String>,
) -> String {
    originals
        .keys()
        .find(|path| model_path.ends_with(path.as_str()))
        .cloned()
        .unwrap_or_else(|| model_path.to_owned())
}

/// Builds the clean project twice, once with the accepted content at `path` and once with
/// the fix there, and compares `model`'s rows on the example data.
fn same_output(
    dbt: &Path,
    source: &Path,
    path: &str,
    accepted: &str,
    fixed: &str,
    model: &str,
) -> Result<bool, EvalError> {
    let dir = tempfile::tempdir().map_err(io("cannot create a temp dir"))?;
    let clean = dir.path().join("clean");
    let candidate = dir.path().join("candidate");
    copy_project(source, &clean)?;
    copy_project(source, &candidate)?;
    // Everything but the model's file is clean: the comparison is of this one model.
    std::fs::write(clean.join(path), accepted).map_err(io("cannot write the accepted fix"))?;
    std::fs::write(candidate.join(path), fixed).map_err(io("cannot write the fix"))?;
    let rows = |project: &Path| -> Result<Option<Vec<String>>, EvalError> {
        let selector = format!("+{model}");
        // Tests are left out: a relationships test on the model needs models outside `+model`.
        let (ok, _) = run_dbt(
            dbt,
            project,
            &[
                "build",
                "--select",
                &selector,
                "--indirect-selection",
                "empty",
            ],
        )?;
        if !ok {
            return Ok(None);
        }
        let (ok, output) = run_dbt(
            dbt,
            project,
            &[
                "show",
                "--select",
                model,
                "--indirect-selection",
                "empty",
                "--limit",
                "100000",
                "--output",
                "json",
                "--quiet",
            ],
        )?;
        if !ok {
            return Ok(None);
        }
        let start = output.find('{').unwrap_or(0);
        let value: serde_json::Value = match serde_json::from_str(output[start..].trim()) {
            Ok(value) => value,
            Err(_) => return Ok(None),
        };
        let mut rows: Vec<String> = value["show"]
            .as_array()
            .map(|rows| rows.iter().map(|row| row.to_string()).collect())
            .unwrap_or_default();
        rows.sort();
        Ok(Some(rows))
    };
    let expected = rows(&clean)?;
    let actual = rows(&candidate)?;
    Ok(expected.is_some() && expected == actual)
}

fn copy_project(from: &Path, to: &Path) -> Result<(), EvalError> {
    std::fs::create_dir_all(to).map_err(io(format!("cannot create {}", to.display())))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("cannot read {}", from.display())))? {
        let entry = entry.map_err(io("cannot list"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["target", "logs", "dbt_packages", ".user.yml"].contains(&name.as_str())
            || name.contains(".duckdb")
        {
            continue;
        }
        let file_type = entry.file_type().map_err(io("cannot stat"))?;
        if file_type.is_dir() {
            copy_project(&entry.path(), &to.join(&name))?;
        } else if file_type.is_file() {
            std::fs::copy(entry.path(), to.join(&name))
                .map_err(io(format!("cannot copy {name}")))?;
        }
    }
    Ok(())
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
}
