//! Which artifact to believe, which failures are roots, and what each one skipped.
//!
//! run_results.json is exact, but only when it belongs to the run that failed last: a
//! parse-time error (bad ref, broken Jinja or YAML) exits 2 and writes none, leaving the
//! previous run's file in place. The log says which run came last, so:
//! - run_results and a log: equal invocation ids → run_results; different ids and the
//!   log's last invocation failed → the log (run_results is stale, noted); different ids
//!   and the log's last run did not fail (`dbt ls`, `dbt deps` write no run_results) →
//!   run_results, noted.
//! - run_results and no log → run_results, unless the console shows a parse-time error.
//! - no run_results → the log, else the console.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::OnceLock;

use regex::Regex;

use crate::classify::{class_needs_human, classify};
use crate::error::ArtifactError;
use crate::evidence::{stem, EvidenceSources, Subject};
use crate::log::{parse_log, LogFailure, LogInvocation, LogSummary, Outcome};
use crate::manifest::{parse_manifest, parse_run_results, Manifest, RunResults};
use crate::project::ProjectLayout;
use crate::text::{signature, strip_ansi, trim_message};
use crate::{DetectOptions, Detection, ErrorClass, Failure, RunArtifacts};

/// run_results statuses that are failures (`runtime error` is older dbt's spelling).
const FAILING: &[&str] = &["error", "fail", "runtime error"];
/// Statuses that count as passing.
const PASSING: &[&str] = &["success", "pass", "warn"];

/// A failure before classification and evidence.
#[derive(Debug, Clone, Default)]
struct Seed {
    unique_id: String,
    name: String,
    path: String,
    resource_type: String,
    message: String,
    compiled_sql: Option<String>,
}

/// Where the failures of this detection come from.
enum Verdict<'a> {
    RunResults(&'a RunResults),
    Log(&'a LogInvocation, &'static str),
    Nothing,
}

/// Reads a run's artifacts and returns its root failures with evidence.
///
/// Fails only when no artifact was given ([`ArtifactError::NoArtifacts`]) or none that
/// records a run could be read ([`ArtifactError::NothingUsable`]); anything less is a note.
pub fn detect(artifacts: &RunArtifacts) -> Result<Detection, ArtifactError> {
    detect_with(artifacts, &DetectOptions::default())
}

/// [`detect`], assembling what `options` asks for besides (the ancestors' SQL).
pub fn detect_with(
    artifacts: &RunArtifacts,
    options: &DetectOptions,
) -> Result<Detection, ArtifactError> {
    if artifacts.run_results.is_none()
        && artifacts.manifest.is_none()
        && artifacts.dbt_log.is_none()
        && artifacts.console.is_none()
        && artifacts.project_files.is_none()
    {
        return Err(ArtifactError::NoArtifacts);
    }
    let mut notes: Vec<String> = Vec::new();
    let layout = artifacts
        .project_files
        .as_ref()
        .map(|pf| ProjectLayout::from_project_yml(&pf.dbt_project_yml))
        .unwrap_or_default();

    let manifest =
        artifacts
            .manifest
            .as_deref()
            .and_then(|b| match parse_manifest(b, &mut notes) {
                Ok(m) => Some(m),
                Err(e) => {
                    notes.push(format!("{e}: evidence comes from the project files alone"));
                    None
                }
            });
    let run_results =
        artifacts
            .run_results
            .as_deref()
            .and_then(|b| match parse_run_results(b, &mut notes) {
                Ok(r) => Some(r),
                Err(e) => {
                    notes.push(format!("{e}: ignored"));
                    None
                }
            });
    let log = read_log(artifacts.dbt_log.as_deref(), "dbt.log", &mut notes);
    let console = read_log(artifacts.console.as_deref(), "console output", &mut notes);

    let verdict = choose(
        run_results.as_ref(),
        log.as_ref(),
        console.as_ref(),
        &mut notes,
    );
    if matches!(verdict, Verdict::Nothing) {
        if artifacts.run_results.is_none()
            && artifacts.dbt_log.is_none()
            && artifacts.console.is_none()
        {
            notes.push(
                "no run_results.json, dbt.log or console output: nothing says how the run went"
                    .into(),
            );
        }
        return Err(ArtifactError::NothingUsable { notes });
    }

    // Run-level facts: from what was believed, then from whatever else knows them.
    let log_inv = log.as_ref().map(|l| &l.last);
    let console_inv = console.as_ref().map(|l| &l.last);
    let invocation_id = match &verdict {
        Verdict::RunResults(rr) => rr.metadata.invocation_id.clone(),
        Verdict::Log(inv, _) => inv.invocation_id.clone(),
        Verdict::Nothing => None,
    };
    let dbt_version = match &verdict {
        Verdict::RunResults(rr) => rr.metadata.dbt_version.clone(),
        Verdict::Log(inv, _) => inv.dbt_version.clone(),
        Verdict::Nothing => None,
    }
    .or_else(|| {
        manifest
            .as_ref()
            .and_then(|m| m.metadata.dbt_version.clone())
    })
    .or_else(|| log_inv.and_then(|l| l.dbt_version.clone()))
    .or_else(|| console_inv.and_then(|l| l.dbt_version.clone()));
    let adapter = manifest
        .as_ref()
        .and_then(|m| m.metadata.adapter_type.clone())
        .or_else(|| log_inv.and_then(|l| l.adapter.clone()))
        .or_else(|| console_inv.and_then(|l| l.adapter.clone()));
    let project_name = manifest
        .as_ref()
        .and_then(|m| m.metadata.project_name.clone())
        .or_else(|| layout.name.clone())
        .or_else(|| log_inv.and_then(|l| l.project_name.clone()))
        .or_else(|| console_inv.and_then(|l| l.project_name.clone()));

    let manifest_fresh = match (&manifest, &invocation_id) {
        (Some(m), Some(id)) => match m.metadata.invocation_id.as_deref() {
            Some(mid) if mid.eq_ignore_ascii_case(id) => true,
            Some(mid) => {
                notes.push(format!(
                    "manifest.json is from invocation {mid}, not the failing run's {id}: its graph is used, but parents come from the model's current SQL"
                ));
                false
            }
            None => true,
        },
        (Some(_), None) => matches!(verdict, Verdict::RunResults(_)),
        _ => false,
    };

    // Failures and statuses from the believed source.
    let (mut seeds, statuses) = match &verdict {
        Verdict::RunResults(rr) => from_run_results(rr, manifest.as_ref()),
        Verdict::Log(inv, what) => from_log(
            inv,
            what,
            manifest.as_ref(),
            &layout,
            artifacts,
            project_name.as_deref(),
            &mut notes,
        ),
        Verdict::Nothing => (Vec::new(), BTreeMap::new()),
    };
    unit_test_errors_to_models(
        &mut seeds,
        manifest.as_ref(),
        adapter.as_deref(),
        &mut notes,
    );
    dedupe(&mut seeds);

    let succeeded_nodes: Vec<String> = statuses
        .iter()
        .filter(|(_, s)| PASSING.contains(&s.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let graph = Graph::build(
        manifest.as_ref(),
        artifacts,
        &layout,
        project_name.as_deref(),
    );
    let blast = blast_radius(&seeds, &statuses, &graph, &mut notes);

    // The statements dbt executed, from a log of the same invocation: what a database's
    // `LINE n` counts.
    let statements = match &verdict {
        Verdict::Log(inv, _) => Some(&inv.statements),
        Verdict::RunResults(rr) => log
            .as_ref()
            .filter(|l| {
                l.last.invocation_id.is_some()
                    && l.last.invocation_id.as_deref()
                        == rr
                            .metadata
                            .invocation_id
                            .as_deref()
                            .map(str::to_lowercase)
                            .as_deref()
            })
            .map(|l| &l.last.statements),
        Verdict::Nothing => None,
    };
    let ev = EvidenceSources::new(
        manifest.as_ref(),
        manifest_fresh,
        artifacts.project_files.as_ref(),
        &layout,
        project_name.as_deref(),
    )
    .with_lineage_depth(options.lineage_depth);
    let failures = seeds
        .iter()
        .map(|seed| {
            let classification = classify(adapter.as_deref(), &seed.resource_type, &seed.message);
            let message = trim_message(&seed.message);
            let signature = signature(
                classification.class.label(),
                &message,
                classification.matched_line.as_deref(),
            );
            let editable = is_editable(seed, artifacts.project_files.is_some(), &layout);
            let evidence = ev.build(&Subject {
                unique_id: &seed.unique_id,
                name: &seed.name,
                path: &seed.path,
                resource_type: &seed.resource_type,
                class: classification.class,
                message: &message,
                compiled_sql: seed.compiled_sql.as_deref(),
                executed_sql: statements
                    .and_then(|m| m.get(&seed.unique_id))
                    .map(String::as_str),
            });
            Failure {
                unique_id: seed.unique_id.clone(),
                name: seed.name.clone(),
                path: seed.path.clone(),
                resource_type: seed.resource_type.clone(),
                class: classification.class,
                needs_human: class_needs_human(classification.class) || !editable,
                message,
                signature,
                blast_radius: blast.get(&seed.unique_id).cloned().unwrap_or_default(),
                evidence,
            }
        })
        .collect();

    Ok(Detection {
        failures,
        succeeded_nodes,
        invocation_id,
        dbt_version,
        adapter,
        project_name,
        notes,
    })
}

fn read_log(bytes: Option<&[u8]>, what: &str, notes: &mut Vec<String>) -> Option<LogSummary> {
    let bytes = bytes?;
    let summary = parse_log(bytes);
    if summary.is_empty() {
        notes.push(format!(
            "{what}: no dbt log lines found ({} bytes): ignored",
            bytes.len()
        ));
        return None;
    }
    if summary.bad_json_lines > 0 {
        notes.push(format!(
            "{what}: {} line(s) looked like JSON log events but did not parse (a truncated write?): skipped",
            summary.bad_json_lines
        ));
    }
    if summary.format() == "mixed" {
        notes.push(format!(
            "{what}: holds both text and JSON log lines; read both"
        ));
    }
    Some(summary)
}

fn choose<'a>(
    rr: Option<&'a RunResults>,
    log: Option<&'a LogSummary>,
    console: Option<&'a LogSummary>,
    notes: &mut Vec<String>,
) -> Verdict<'a> {
    let log = log.map(|l| &l.last);
    let console = console.map(|c| &c.last);
    match (rr, log) {
        (Some(rr), Some(log)) => {
            let rr_id = rr.metadata.invocation_id.as_deref().map(str::to_lowercase);
            match (rr_id.as_deref(), log.invocation_id.as_deref()) {
                (Some(a), Some(b)) if a == b => Verdict::RunResults(rr),
                (a, Some(b)) if log.outcome == Outcome::Failed => {
                    notes.push(format!(
                        "run_results.json is stale: it is from invocation {}, but the log's last invocation {b} failed{}; the log wins",
                        a.unwrap_or("(unknown)"),
                        if log.parse_error.is_some() { " before any node ran" } else { "" }
                    ));
                    Verdict::Log(log, "dbt.log")
                }
                (a, Some(b)) => {
                    notes.push(format!(
                        "run_results.json is from invocation {}, the log's last invocation is {b} (which did not fail and wrote no run_results.json): using run_results.json",
                        a.unwrap_or("(unknown)")
                    ));
                    Verdict::RunResults(rr)
                }
                // A log without invocation ids cannot contradict run_results.
                (_, None) => Verdict::RunResults(rr),
            }
        }
        (Some(rr), None) => match console {
            Some(c) if c.parse_error.is_some() => {
                notes.push("run_results.json is stale: the console shows a parse-time error, which writes none; the console wins".into());
                Verdict::Log(c, "console output")
            }
            _ => Verdict::RunResults(rr),
        },
        (None, Some(log)) => Verdict::Log(log, "dbt.log"),
        (None, None) => match console {
            Some(c) => Verdict::Log(c, "console output"),
            None => Verdict::Nothing,
        },
    }
}

/// Failures and node statuses from run_results.json.
fn from_run_results(
    rr: &RunResults,
    manifest: Option<&Manifest>,
) -> (Vec<Seed>, BTreeMap<String, String>) {
    let mut seeds = Vec::new();
    let mut statuses = BTreeMap::new();
    for r in &rr.results {
        if r.unique_id.is_empty() {
            continue;
        }
        let status = r.status.to_lowercase();
        if FAILING.contains(&status.as_str()) {
            let node = manifest.and_then(|m| m.nodes.get(&r.unique_id));
            let message = strip_ansi(r.message.as_deref().unwrap_or(""));
            let resource_type = node
                .map(|n| n.resource_type.clone())
                .unwrap_or_else(|| r.unique_id.split('.').next().unwrap_or("").to_owned());
            let path = node
                .and_then(|n| n.original_file_path.clone())
                .or_else(|| path_in_message(&message))
                .unwrap_or_default();
            seeds.push(Seed {
                name: node
                    .map(|n| n.name.clone())
                    .unwrap_or_else(|| name_from_uid(&r.unique_id)),
                unique_id: r.unique_id.clone(),
                path,
                resource_type,
                message,
                compiled_sql: r.compiled_code.clone(),
            });
        }
        statuses.insert(r.unique_id.clone(), status);
    }
    (seeds, statuses)
}

/// Failures and node statuses from a log's (or the console's) last invocation.
fn from_log(
    inv: &LogInvocation,
    what: &str,
    manifest: Option<&Manifest>,
    layout: &ProjectLayout,
    artifacts: &RunArtifacts,
    project: Option<&str>,
    notes: &mut Vec<String>,
) -> (Vec<Seed>, BTreeMap<String, String>) {
    let mut seeds = Vec::new();
    if let Some(err) = &inv.parse_error {
        seeds.push(locate_parse_error(
            err, manifest, layout, artifacts, project, notes,
        ));
    }
    for f in &inv.failures {
        seeds.push(seed_from_log_failure(
            f, inv, manifest, layout, artifacts, project,
        ));
    }
    // A run killed before its summary (a CI timeout) has no `Failure in …` lines, but dbt
    // said why each failed node's children were skipped.
    for (id, reason) in &inv.reasons {
        if inv
            .failures
            .iter()
            .any(|f| f.unique_id.as_deref() == Some(id.as_str()))
        {
            continue;
        }
        let node = manifest.and_then(|m| m.nodes.get(id));
        let f = LogFailure {
            unique_id: Some(id.clone()),
            resource_type: node
                .map(|n| n.resource_type.clone())
                .unwrap_or_else(|| id.split('.').next().unwrap_or("").to_owned()),
            name: node
                .map(|n| n.name.clone())
                .unwrap_or_else(|| name_from_uid(id)),
            path: node
                .and_then(|n| n.original_file_path.clone())
                .or_else(|| path_in_message(reason)),
            node_path: None,
            message: reason.clone(),
        };
        seeds.push(seed_from_log_failure(
            &f, inv, manifest, layout, artifacts, project,
        ));
    }
    if seeds.is_empty() && inv.outcome == Outcome::Failed {
        notes.push(format!(
            "{what}: the last invocation failed but names no failing node"
        ));
    }
    (seeds, inv.statuses.clone())
}

fn seed_from_log_failure(
    f: &LogFailure,
    inv: &LogInvocation,
    manifest: Option<&Manifest>,
    layout: &ProjectLayout,
    artifacts: &RunArtifacts,
    project: Option<&str>,
) -> Seed {
    let by_name = || {
        manifest.and_then(|m| {
            m.nodes
                .iter()
                .find(|(_, n)| n.name == f.name && n.resource_type == f.resource_type)
                .map(|(id, _)| id.clone())
        })
    };
    let unique_id = f.unique_id.clone().or_else(by_name).unwrap_or_else(|| {
        format!(
            "{}.{}.{}",
            f.resource_type,
            project.unwrap_or("project"),
            f.name
        )
    });
    let node = manifest.and_then(|m| m.nodes.get(&unique_id));
    let node_path = f
        .node_path
        .clone()
        .or_else(|| inv.node_paths.get(&unique_id).cloned());
    let path = f
        .path
        .clone()
        .or_else(|| node.and_then(|n| n.original_file_path.clone()))
        .or_else(|| node_path.map(|p| under_model_path(&p, layout, artifacts)))
        .unwrap_or_default();
    Seed {
        unique_id,
        name: f.name.clone(),
        path,
        resource_type: f.resource_type.clone(),
        message: f.message.clone(),
        compiled_sql: None,
    }
}

/// JSON logs' `node_path` is relative to the model path: put it back under the one that
/// holds the file (or the first one).
fn under_model_path(node_path: &str, layout: &ProjectLayout, artifacts: &RunArtifacts) -> String {
    let files = artifacts.project_files.as_ref().map(|pf| &pf.files);
    for mp in &layout.model_paths {
        let candidate = format!("{mp}/{node_path}");
        if files.is_some_and(|f| f.contains_key(&candidate)) {
            return candidate;
        }
    }
    let first = layout.model_paths.first().map_or("models", String::as_str);
    format!("{first}/{node_path}")
}

struct ParsePatterns {
    depends: Regex,
    error_in: Regex,
    reading: Regex,
}

fn parse_patterns() -> Option<&'static ParsePatterns> {
    static P: OnceLock<Option<ParsePatterns>> = OnceLock::new();
    P.get_or_init(|| {
        Some(ParsePatterns {
            // Model 'model.shop.orders' (models/marts/orders.sql) depends on a node named …
            depends: Regex::new(r"(\w+) '([^']+)' \(([^)]+)\) depends on a").ok()?,
            // Compilation Error in model orders (models/marts/orders.sql)
            error_in: Regex::new(r"\w+ Error in (\w+) (\S+) \(([^)]+)\)").ok()?,
            // Error reading shop: marts/schema.yml - Runtime Error
            reading: Regex::new(r"Error reading (\w+): (\S+) - ").ok()?,
        })
    })
    .as_ref()
}

/// Places a parse-time error (which names no node in a structured way) on a node or file.
fn locate_parse_error(
    err: &str,
    manifest: Option<&Manifest>,
    layout: &ProjectLayout,
    artifacts: &RunArtifacts,
    project: Option<&str>,
    notes: &mut Vec<String>,
) -> Seed {
    let message = strip_ansi(err);
    let mut seed = Seed {
        message: message.clone(),
        ..Seed::default()
    };
    let Some(p) = parse_patterns() else {
        return seed;
    };
    if let Some(c) = p.depends.captures(&message) {
        let uid = c.get(2).map_or("", |m| m.as_str()).to_owned();
        seed.resource_type = uid.split('.').next().unwrap_or("").to_owned();
        seed.name = name_from_uid(&uid);
        seed.path = c.get(3).map_or("", |m| m.as_str()).to_owned();
        seed.unique_id = uid;
        return seed;
    }
    if let Some(c) = p.error_in.captures(&message) {
        let resource_type = c.get(1).map_or("", |m| m.as_str()).to_owned();
        let name = c.get(2).map_or("", |m| m.as_str()).to_owned();
        seed.path = c.get(3).map_or("", |m| m.as_str()).to_owned();
        seed.unique_id = manifest
            .and_then(|m| {
                m.nodes
                    .iter()
                    .find(|(_, n)| n.name == name && n.resource_type == resource_type)
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_else(|| format!("{resource_type}.{}.{name}", project.unwrap_or("project")));
        seed.resource_type = resource_type;
        seed.name = name;
        return seed;
    }
    if let Some(c) = p.reading.captures(&message) {
        // dbt prints the YAML path relative to the resource path that holds it.
        let rel = c.get(2).map_or("", |m| m.as_str());
        let files = artifacts.project_files.as_ref().map(|pf| &pf.files);
        let dirs = layout
            .model_paths
            .iter()
            .chain(&layout.seed_paths)
            .chain(&layout.snapshot_paths)
            .chain(&layout.macro_paths);
        let found = dirs
            .map(|d| format!("{d}/{rel}"))
            .find(|candidate| files.is_some_and(|f| f.contains_key(candidate)));
        seed.path = found.unwrap_or_else(|| {
            format!(
                "{}/{rel}",
                layout.model_paths.first().map_or("models", String::as_str)
            )
        });
        seed.name = stem(&seed.path).to_owned();
        // A YAML file is not a node: no unique id, the file is the place.
        seed.resource_type = "yaml".into();
        return seed;
    }
    notes.push("the parse-time error names no file: reported with an empty unique id".into());
    seed
}

fn name_from_uid(uid: &str) -> String {
    let parts: Vec<&str> = uid.split('.').collect();
    match parts.as_slice() {
        // test.project.name.hash
        ["test", _, name, _] => (*name).to_owned(),
        [_, _, rest @ ..] if !rest.is_empty() => rest.join("."),
        _ => uid.to_owned(),
    }
}

/// `(models/marts/orders.sql)` in dbt's "… Error in model orders (models/marts/orders.sql)".
fn path_in_message(message: &str) -> Option<String> {
    let p = parse_patterns()?;
    p.error_in
        .captures(message)
        .and_then(|c| c.get(3))
        .map(|m| m.as_str().to_owned())
}

/// A unit test that fails with a database or compilation error — not rows that differ
/// from the expected ones — is its model's SQL failing: `dbt build` runs a model's unit
/// tests before the model, so a broken model shows up there first, and the model itself
/// is only skipped. Such a failure becomes the model's, so it is fixed like one.
fn unit_test_errors_to_models(
    seeds: &mut [Seed],
    manifest: Option<&Manifest>,
    adapter: Option<&str>,
    notes: &mut Vec<String>,
) {
    let Some(manifest) = manifest else {
        return;
    };
    for seed in seeds.iter_mut().filter(|s| s.resource_type == "unit_test") {
        let class = classify(adapter, "model", &seed.message).class;
        if class == ErrorClass::Other || class == ErrorClass::YamlConfig || class_needs_human(class)
        {
            continue;
        }
        let tested = manifest
            .nodes
            .get(&seed.unique_id)
            .and_then(|test| {
                test.depends_on
                    .nodes
                    .iter()
                    .find(|id| id.starts_with("model."))
            })
            .and_then(|id| manifest.nodes.get(id).map(|model| (id, model)));
        let Some((model_id, model)) = tested else {
            continue;
        };
        let Some(path) = model.original_file_path.clone() else {
            continue;
        };
        notes.push(format!(
            "{} failed with a {} error, not a row mismatch: reported as {model_id}'s failure",
            seed.unique_id,
            class.label()
        ));
        seed.unique_id = model_id.clone();
        seed.name = model.name.clone();
        seed.path = path;
        seed.resource_type = "model".to_owned();
        // The unit test's compiled SQL holds its fixtures, not the model's relations.
        seed.compiled_sql = None;
    }
}

fn dedupe(seeds: &mut Vec<Seed>) {
    let mut seen = BTreeSet::new();
    seeds.retain(|s| {
        let key = if s.unique_id.is_empty() {
            format!("{}\0{}", s.path, s.message)
        } else {
            s.unique_id.clone()
        };
        seen.insert(key)
    });
}

/// Only a model's own `.sql` file under a model path can be fixed by an edit.
fn is_editable(seed: &Seed, have_project_files: bool, layout: &ProjectLayout) -> bool {
    if !seed.path.ends_with(".sql") || seed.path.contains("..") || seed.path.starts_with('/') {
        return false;
    }
    if have_project_files {
        layout.is_model_path(&seed.path)
    } else {
        seed.resource_type == "model"
    }
}

/// The DAG, for attributing skipped nodes: the manifest's, else one read from the
/// project files' `ref()`s.
struct Graph {
    parents: BTreeMap<String, Vec<String>>,
    /// Tests attached to a node: in `dbt build` a failing test skips its model's children.
    tests_of: BTreeMap<String, Vec<String>>,
    /// Unit tests of a model: they run before it, so a failing one skips the model itself
    /// (and, through it, its children).
    unit_tests_of: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn build(
        manifest: Option<&Manifest>,
        artifacts: &RunArtifacts,
        layout: &ProjectLayout,
        project: Option<&str>,
    ) -> Graph {
        let mut g = Graph {
            parents: BTreeMap::new(),
            tests_of: BTreeMap::new(),
            unit_tests_of: BTreeMap::new(),
        };
        if let Some(m) = manifest {
            for (id, node) in &m.nodes {
                let parents = m
                    .parent_map
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| node.depends_on.nodes.clone());
                let attached = match node.resource_type.as_str() {
                    "test" => Some(&mut g.tests_of),
                    "unit_test" => Some(&mut g.unit_tests_of),
                    _ => None,
                };
                if let Some(attached) = attached {
                    for p in &parents {
                        attached.entry(p.clone()).or_default().push(id.clone());
                    }
                }
                g.parents.insert(id.clone(), parents);
            }
            if !g.parents.is_empty() {
                return g;
            }
        }
        let Some(pf) = artifacts.project_files.as_ref() else {
            return g;
        };
        let project = project.unwrap_or("project");
        let kind_of = |name: &str| -> Option<String> {
            pf.files.keys().find_map(|p| {
                if stem(p) != name {
                    None
                } else if p.ends_with(".sql") && layout.is_model_path(p) {
                    Some(format!("model.{project}.{name}"))
                } else if p.ends_with(".csv") && layout.is_seed_path(p) {
                    Some(format!("seed.{project}.{name}"))
                } else if p.ends_with(".sql") && layout.is_snapshot_path(p) {
                    Some(format!("snapshot.{project}.{name}"))
                } else {
                    None
                }
            })
        };
        for (path, text) in &pf.files {
            if path.ends_with(".sql") && layout.is_model_path(path) {
                let id = format!("model.{project}.{}", stem(path));
                let parents = crate::sql::refs_in(text)
                    .iter()
                    .filter_map(|r| kind_of(r))
                    .collect();
                g.parents.insert(id, parents);
            }
        }
        g
    }
}

/// Attributes each skipped node to the failing nodes that caused the skip: the failing
/// ancestors reachable without passing through another failing node, and failing tests
/// of any ancestor on the way (`dbt build` skips a model's children when its tests fail).
fn blast_radius(
    seeds: &[Seed],
    statuses: &BTreeMap<String, String>,
    graph: &Graph,
    notes: &mut Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let failing: BTreeSet<&str> = seeds
        .iter()
        .map(|s| s.unique_id.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for (id, status) in statuses {
        if status != "skipped" {
            continue;
        }
        let mut causes: BTreeSet<&str> = BTreeSet::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut queue: VecDeque<&str> = VecDeque::new();
        queue.push_back(id.as_str());
        seen.insert(id.as_str());
        while let Some(n) = queue.pop_front() {
            if n != id.as_str() {
                if failing.contains(n) {
                    causes.insert(n);
                    continue;
                }
                for t in graph.tests_of.get(n).map(Vec::as_slice).unwrap_or_default() {
                    if t != id && failing.contains(t.as_str()) {
                        causes.insert(t.as_str());
                    }
                }
            }
            // A failing unit test skips its model, the skipped node itself included.
            for t in graph
                .unit_tests_of
                .get(n)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if failing.contains(t.as_str()) {
                    causes.insert(t.as_str());
                }
            }
            for p in graph.parents.get(n).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(p.as_str()) {
                    queue.push_back(p.as_str());
                }
            }
        }
        if causes.is_empty() {
            unattributed.push(id.clone());
        }
        for c in causes {
            out.entry(c.to_owned()).or_default().push(id.clone());
        }
    }
    if !unattributed.is_empty() {
        let roots: Vec<&Seed> = seeds.iter().filter(|s| !s.unique_id.is_empty()).collect();
        if let [only] = roots.as_slice() {
            // One failure: it is the only thing that can have caused a skip.
            out.entry(only.unique_id.clone())
                .or_default()
                .extend(unattributed);
        } else {
            notes.push(format!(
                "{} skipped node(s) could not be attributed to a failure (no graph): {}",
                unattributed.len(),
                unattributed.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn rr(id: &str, results: &str) -> Vec<u8> {
        format!(
            r#"{{"metadata": {{"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "dbt_version": "1.11.16", "invocation_id": "{id}"}}, "results": [{results}]}}"#
        )
        .into_bytes()
    }

    fn manifest() -> Vec<u8> {
        br#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json", "invocation_id": "aaaa", "project_name": "shop", "adapter_type": "duckdb"},
        "nodes": {
          "model.shop.a": {"name": "a", "resource_type": "model", "original_file_path": "models/a.sql", "raw_code": "select 1 as x", "depends_on": {"nodes": []}},
          "model.shop.b": {"name": "b", "resource_type": "model", "original_file_path": "models/b.sql", "raw_code": "select y from {{ ref('a') }}", "depends_on": {"nodes": ["model.shop.a"]}},
          "model.shop.c": {"name": "c", "resource_type": "model", "original_file_path": "models/c.sql", "raw_code": "select * from {{ ref('b') }}", "depends_on": {"nodes": ["model.shop.b"]}},
          "model.shop.d": {"name": "d", "resource_type": "model", "original_file_path": "models/d.sql", "raw_code": "select z from {{ ref('a') }}", "depends_on": {"nodes": ["model.shop.a"]}},
          "model.shop.e": {"name": "e", "resource_type": "model", "original_file_path": "models/e.sql", "raw_code": "select * from {{ ref('c') }} join {{ ref('d') }} using (k)", "depends_on": {"nodes": ["model.shop.c", "model.shop.d"]}}
        },
        "parent_map": {"model.shop.a": [], "model.shop.b": ["model.shop.a"], "model.shop.c": ["model.shop.b"], "model.shop.d": ["model.shop.a"], "model.shop.e": ["model.shop.c", "model.shop.d"]}}"#.to_vec()
    }

    #[test]
    fn two_independent_failures_and_their_skips() {
        let results = r#"{"unique_id": "model.shop.a", "status": "success"},
            {"unique_id": "model.shop.b", "status": "error", "message": "Runtime Error in model b (models/b.sql)\n  Binder Error: Referenced column \"y\" not found in FROM clause!\n  Candidate bindings: \"x\""},
            {"unique_id": "model.shop.d", "status": "error", "message": "Runtime Error in model d (models/d.sql)\n  Binder Error: Referenced column \"z\" not found in FROM clause!"},
            {"unique_id": "model.shop.c", "status": "skipped"},
            {"unique_id": "model.shop.e", "status": "skipped"}"#;
        let d = detect(&RunArtifacts {
            run_results: Some(rr("aaaa", results)),
            manifest: Some(manifest()),
            ..RunArtifacts::default()
        })
        .unwrap();
        assert_eq!(d.failures.len(), 2);
        assert_eq!(d.succeeded_nodes, ["model.shop.a"]);
        let b = &d.failures[0];
        assert_eq!(b.unique_id, "model.shop.b");
        assert_eq!(b.class, ErrorClass::MissingColumn);
        assert_eq!(b.blast_radius, ["model.shop.c", "model.shop.e"]);
        assert!(!b.needs_human);
        assert_eq!(b.evidence.parents[0].name, "a");
        assert_eq!(b.evidence.parents[0].columns, ["x"]);
        let dd = &d.failures[1];
        assert_eq!(dd.blast_radius, ["model.shop.e"]);
        assert_ne!(b.signature, dd.signature);
        assert_eq!(d.project_name.as_deref(), Some("shop"));
        assert_eq!(d.adapter.as_deref(), Some("duckdb"));
    }

    #[test]
    fn nothing_usable_is_an_error_with_reasons() {
        let err = detect(&RunArtifacts {
            run_results: Some(b"\x89PNG\r\n\x1a\n garbage".to_vec()),
            dbt_log: Some(vec![0, 159, 146, 150]),
            ..RunArtifacts::default()
        })
        .unwrap_err();
        match err {
            ArtifactError::NothingUsable { notes } => {
                assert!(
                    notes.iter().any(|n| n.starts_with("run_results.json")),
                    "{notes:?}"
                );
                assert!(notes.iter().any(|n| n.starts_with("dbt.log")), "{notes:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            detect(&RunArtifacts::default()),
            Err(ArtifactError::NoArtifacts)
        ));
    }

    #[test]
    fn a_corrupt_manifest_is_a_note_not_a_failure() {
        let results = r#"{"unique_id": "model.shop.b", "status": "error", "message": "Runtime Error in model b (models/b.sql)\n  Parser Error: syntax error at or near \"selec\""}"#;
        let d = detect(&RunArtifacts {
            run_results: Some(rr("aaaa", results)),
            manifest: Some(b"{\"metadata\": {\"invocation_id\": \"aa".to_vec()),
            ..RunArtifacts::default()
        })
        .unwrap();
        assert_eq!(d.failures.len(), 1);
        assert_eq!(d.failures[0].path, "models/b.sql");
        assert_eq!(d.failures[0].class, ErrorClass::SqlSyntax);
        assert!(
            d.notes.iter().any(|n| n.contains("truncated")),
            "{:?}",
            d.notes
        );
    }

    /// From a real run whose profile points the DuckDB file at a directory that does not
    /// exist: dbt 1.11.16 exits 2, prints "Encountered an error:" and a traceback, and
    /// leaves the previous run's run_results.json in place.
    #[test]
    fn a_connection_error_names_no_node_and_needs_a_human() {
        let log = concat!(
            "============================== 13:52:44.410666 | 87ee416e-a159-49f8-aa19-f696b5274a3c ==============================\n",
            "\u{1b}[0m13:52:44.410666 [info ] [MainThread]: Running with dbt=1.11.16\n",
            "\u{1b}[0m13:52:44.600000 [info ] [MainThread]: Registered adapter: duckdb=1.11.1\n",
            "\u{1b}[0m13:52:46.181912 [debug] [ThreadPool]: DuckDB adapter: duckdb error: IO Error: Cannot open file \"/nonexistent_dir/x/shop.duckdb\": No such file or directory\n",
            "\u{1b}[0m13:52:46.196720 [error] [MainThread]: Encountered an error:\n",
            "IO Error: Cannot open file \"/nonexistent_dir/x/shop.duckdb\": No such file or directory\n",
            "\u{1b}[0m13:52:46.203079 [error] [MainThread]: Traceback (most recent call last):\n",
            "  File \"/work/main/.venv/lib/python3.11/site-packages/dbt/adapters/duckdb/connections.py\", line 110, in exception_handler\n",
            "    yield\n",
            "_duckdb.IOException: IO Error: Cannot open file \"/nonexistent_dir/x/shop.duckdb\": No such file or directory\n",
            "\u{1b}[0m13:52:46.204462 [debug] [MainThread]: Command `dbt build` failed at 13:52:46.204382 after 1.83 seconds\n",
        );
        let results = r#"{"unique_id": "model.shop.a", "status": "success"}"#;
        let d = detect(&RunArtifacts {
            run_results: Some(rr("3ee957dc-b83d-43bc-a4db-b383d26a5752", results)),
            dbt_log: Some(log.as_bytes().to_vec()),
            ..RunArtifacts::default()
        })
        .unwrap();
        assert_eq!(d.failures.len(), 1, "{:?}", d.notes);
        let f = &d.failures[0];
        assert_eq!(f.unique_id, "");
        assert_eq!(f.class, ErrorClass::Connection);
        assert!(f.needs_human);
        assert!(!f.message.contains("Traceback"));
        assert_eq!(
            d.invocation_id.as_deref(),
            Some("87ee416e-a159-49f8-aa19-f696b5274a3c")
        );
        assert!(d.succeeded_nodes.is_empty());
        assert!(d.notes.iter().any(|n| n.contains("stale")));
    }

    #[test]
    fn uid_names() {
        assert_eq!(name_from_uid("model.shop.orders"), "orders");
        assert_eq!(
            name_from_uid("test.shop.unique_orders_order_id.fed79b3a6e"),
            "unique_orders_order_id"
        );
        assert_eq!(name_from_uid("model.shop.orders.v2"), "orders.v2");
    }
}
