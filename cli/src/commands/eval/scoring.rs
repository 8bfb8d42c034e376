//! Whether a fix branch is a *correct* fix: the files its commit changed, put into the
//! project as it is with the breakage, give the accepted project's rows.
//!
//! Two projects are built from the broken project (the case's repository at the breakage
//! commit):
//!
//! - the **candidate**: every file the fix branch changed (the failing model's file and,
//!   with `fixer.fix_scope = "lineage"`, ancestor models) replaces the broken one;
//! - the **accepted project**: every *model* file the breakage edited is put back — its
//!   `fixed` content from the case, or its unbroken content — and every file `fixed` names
//!   gets that content (an ancestor, or a model reading a renamed seed column).
//!
//! Everything else stays as the breakage left it in both: a renamed seed column, a YAML
//! or macro edit is the world the fix has to live with, not part of the fix. Without such
//! edits the accepted project is the clean project (with the case's accepted content).
//!
//! The fix is correct when every file it changed is byte-equal to the accepted project's
//! (no dbt needed), or when the failing model and every model whose file the fix changed
//! (and does not match byte for byte) give the same rows in both projects on the example
//! data. Only the models of this one fix are compared: a case with several incidents has
//! a branch per incident, and the other incidents' models are still broken in the
//! candidate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{copy_project, io, EvalError};

/// The files one fix branch changed, relative to the project: the new content, or `None`
/// for a file the branch deleted (delivery never deletes; kept so nothing is hidden).
pub type FileChanges = BTreeMap<String, Option<String>>;

/// What the scoring of one fix found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixVerdict {
    /// The fix gives the accepted project's rows (or its files are byte-equal).
    pub correct: bool,
    /// Every file the fix changed is byte-equal to the accepted project's: decided without
    /// running dbt.
    pub byte_equal: bool,
    /// The models whose rows were compared (empty when decided byte for byte).
    pub compared_models: Vec<String>,
    /// Why the fix is not correct, in a few words.
    pub reason: Option<String>,
    /// The accepted project itself did not build or show its rows: the case is broken,
    /// not the fix (`scripts/check-corpus.py` finds such cases without the bus).
    pub accepted_failed: Option<String>,
}

/// The rows of some models of a built project, by model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRows {
    /// Each model's rows, each row one JSON object as text, sorted (row order is not part
    /// of a model's output).
    Rows(BTreeMap<String, Vec<String>>),
    /// The project did not build the models, or dbt could not show one: why.
    Failed(String),
}

/// Builds a project and reads models' rows: dbt for real, a stand-in in unit tests (the
/// scoring's choices of files and models are tested without dbt).
pub trait RowSource {
    /// Builds `models` and their ancestors in `project` and returns their rows.
    fn rows(&self, project: &Path, models: &[String]) -> Result<ModelRows, EvalError>;
}

/// [`RowSource`] with dbt: `dbt build --select +model…` without tests, then `dbt show`
/// per model.
#[derive(Debug, Clone, Copy)]
pub struct DbtRows<'a> {
    /// The dbt executable.
    pub dbt: &'a Path,
}

impl RowSource for DbtRows<'_> {
    fn rows(&self, project: &Path, models: &[String]) -> Result<ModelRows, EvalError> {
        let mut args = vec!["build", "--select"];
        let selectors: Vec<String> = models.iter().map(|model| format!("+{model}")).collect();
        args.extend(selectors.iter().map(String::as_str));
        // Tests are left out: a relationships test on a model needs models outside `+model`.
        args.extend(["--indirect-selection", "empty"]);
        let (ok, output) = super::run_dbt(self.dbt, project, &args)?;
        if !ok {
            return Ok(ModelRows::Failed(format!(
                "dbt build failed: {}",
                super::tail(&output)
            )));
        }
        let mut rows = BTreeMap::new();
        for model in models {
            let (ok, output) = super::run_dbt(
                self.dbt,
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
            let shown = ok
                .then(|| parse_show(&output))
                .flatten()
                .ok_or_else(|| format!("dbt show {model} failed: {}", super::tail(&output)));
            match shown {
                Ok(shown) => {
                    rows.insert(model.clone(), shown);
                }
                Err(reason) => return Ok(ModelRows::Failed(reason)),
            }
        }
        Ok(ModelRows::Rows(rows))
    }
}

/// The sorted rows of `dbt show --output json`'s answer; `None` when it is not one.
fn parse_show(output: &str) -> Option<Vec<String>> {
    let start = output.find('{')?;
    let value: serde_json::Value = serde_json::from_str(output[start..].trim()).ok()?;
    let mut rows: Vec<String> = value["show"]
        .as_array()?
        .iter()
        .map(|row| row.to_string())
        .collect();
    rows.sort();
    Some(rows)
}

/// Whether `path` (relative to the project) is a model's SQL file: a `.sql` file under one
/// of the project's `model-paths` — what a fix may edit.
pub fn is_model_file(path: &str, model_paths: &[String]) -> bool {
    path.ends_with(".sql")
        && model_paths.iter().any(|root| {
            let root = root.trim_end_matches('/');
            path.strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The model a model file defines: dbt names a model after its file.
pub fn model_name(path: &str) -> Option<String> {
    Path::new(path)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
}

/// The files the accepted project has that differ from the broken project: every model
/// file the breakage edited, put back (`fixed` content, or the unbroken content in
/// `originals`), and every file `fixed` names. Edits of other files (seeds, YAML, macros)
/// are not put back: a fix cannot change them, and the accepted fix is written for them.
pub fn accepted_files(
    fixed: &BTreeMap<String, String>,
    originals: &BTreeMap<String, String>,
    model_paths: &[String],
) -> BTreeMap<String, String> {
    let mut accepted: BTreeMap<String, String> = originals
        .iter()
        .filter(|(path, _)| is_model_file(path, model_paths))
        .map(|(path, original)| (path.clone(), original.clone()))
        .collect();
    accepted.extend(
        fixed
            .iter()
            .map(|(path, text)| (path.clone(), text.clone())),
    );
    accepted
}

/// The files `branch` changed since `base`, with their content on the branch.
pub fn branch_changes(repo: &Path, base: &str, branch: &str) -> Result<FileChanges, EvalError> {
    let listing = super::git(
        repo,
        &["diff", "--name-status", "--no-renames", "-z", base, branch],
    )?;
    let mut fields = listing.split('\0').filter(|field| !field.is_empty());
    let mut changes = FileChanges::new();
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        let content = if status.starts_with('D') {
            None
        } else {
            Some(super::git(repo, &["show", &format!("{branch}:{path}")])?)
        };
        changes.insert(path.to_owned(), content);
    }
    Ok(changes)
}

/// The model whose rows show whether an incident is fixed: the one its file defines (an
/// incident dbt reported on a model's unit test names the test, and its file is the
/// model's), else the incident's own name.
pub fn failing_model(incident_model: &str, model_path: &str, model_paths: &[String]) -> String {
    if is_model_file(model_path, model_paths) {
        if let Some(name) = model_name(model_path) {
            return name;
        }
    }
    incident_model.to_owned()
}

/// Whether the fix changed a file other than its incident's model file (`model_path` as
/// the incident record carries it, relative to the project or with a prefix).
pub fn edits_upstream(model_path: &str, changes: &FileChanges) -> bool {
    changes
        .keys()
        .any(|path| !Path::new(model_path).ends_with(path))
}

/// Scores one fix: `changes` (what its branch changed) on `broken` (the project with the
/// breakage) against the accepted project (`broken` with `accepted` in place), comparing
/// `failing_model` and the models whose files the fix changed.
pub fn score_fix(
    rows: &impl RowSource,
    broken: &Path,
    model_paths: &[String],
    accepted: &BTreeMap<String, String>,
    changes: &FileChanges,
    failing_model: &str,
) -> Result<FixVerdict, EvalError> {
    if changes.is_empty() {
        return Ok(FixVerdict {
            reason: Some("the branch changed no file".into()),
            ..FixVerdict::default()
        });
    }
    let accepted_content = |path: &str| -> Option<String> {
        accepted
            .get(path)
            .cloned()
            .or_else(|| std::fs::read_to_string(broken.join(path)).ok())
    };
    let differing: Vec<&String> = changes
        .iter()
        .filter(|(path, content)| *content != &accepted_content(path))
        .map(|(path, _)| path)
        .collect();
    if differing.is_empty() {
        return Ok(FixVerdict {
            correct: true,
            byte_equal: true,
            ..FixVerdict::default()
        });
    }
    let mut models = BTreeSet::new();
    if !failing_model.is_empty() {
        models.insert(failing_model.to_owned());
    }
    models.extend(
        differing
            .iter()
            .filter(|path| is_model_file(path, model_paths))
            .filter_map(|path| model_name(path)),
    );
    let models: Vec<String> = models.into_iter().collect();
    if models.is_empty() {
        return Ok(FixVerdict {
            reason: Some(format!(
                "changed files that are not models differ from the accepted ones: {}",
                differing
                    .iter()
                    .map(|path| path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ..FixVerdict::default()
        });
    }

    let dir = tempfile::tempdir().map_err(io("cannot create a temp dir"))?;
    let reference = dir.path().join("accepted");
    let candidate = dir.path().join("candidate");
    copy_project(broken, &reference)?;
    copy_project(broken, &candidate)?;
    for (path, text) in accepted {
        write_file(&reference, path, Some(text))?;
    }
    for (path, text) in changes {
        write_file(&candidate, path, text.as_ref())?;
    }
    let expected = match rows.rows(&reference, &models)? {
        ModelRows::Rows(rows) => rows,
        ModelRows::Failed(why) => {
            return Ok(FixVerdict {
                compared_models: models,
                reason: Some("the accepted project does not build".into()),
                accepted_failed: Some(why),
                ..FixVerdict::default()
            })
        }
    };
    let actual = match rows.rows(&candidate, &models)? {
        ModelRows::Rows(rows) => rows,
        ModelRows::Failed(why) => {
            return Ok(FixVerdict {
                compared_models: models,
                reason: Some(why),
                ..FixVerdict::default()
            })
        }
    };
    let different: Vec<&str> = models
        .iter()
        .filter(|model| expected.get(*model) != actual.get(*model))
        .map(String::as_str)
        .collect();
    Ok(FixVerdict {
        correct: different.is_empty(),
        byte_equal: false,
        reason: (!different.is_empty()).then(|| {
            format!(
                "rows differ from the accepted ones: {}",
                different.join(", ")
            )
        }),
        compared_models: models,
        accepted_failed: None,
    })
}

/// Writes (or, with `None`, removes) `path` in `project`.
fn write_file(project: &Path, path: &str, text: Option<&String>) -> Result<(), EvalError> {
    let file = project.join(path);
    match text {
        Some(text) => {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("cannot create {}", parent.display())))?;
            }
            std::fs::write(&file, text).map_err(io(format!("cannot write {path}")))
        }
        None => match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(EvalError::Io {
                context: format!("cannot remove {path}"),
                source: error,
            }),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A stand-in for dbt over a toy project: a model's "rows" are the lines of its file
    /// plus, for each `-- reads NAME` line, the rows of the file `seeds/NAME.csv` or model
    /// `NAME`; a model whose file holds `BROKEN`, or a line `-- needs COLUMN in SEED` when
    /// the first line of `seeds/SEED.csv` has no such column, fails to build. Records what
    /// was asked.
    #[derive(Default)]
    struct ToyRows {
        asked: RefCell<Vec<(String, Vec<String>)>>,
    }

    fn toy_model_rows(project: &Path, name: &str) -> Option<Vec<String>> {
        let seed = project.join("seeds").join(format!("{name}.csv"));
        if let Ok(text) = std::fs::read_to_string(seed) {
            return Some(text.lines().map(str::to_owned).collect());
        }
        let text =
            std::fs::read_to_string(project.join("models").join(format!("{name}.sql"))).ok()?;
        if text.contains("BROKEN") {
            return None;
        }
        let mut rows = Vec::new();
        for line in text.lines() {
            if let Some(parent) = line.strip_prefix("-- reads ") {
                rows.extend(toy_model_rows(project, parent.trim())?);
            } else if let Some(need) = line.strip_prefix("-- needs ") {
                let (column, seed) = need.split_once(" in ")?;
                let header = std::fs::read_to_string(
                    project.join("seeds").join(format!("{}.csv", seed.trim())),
                )
                .ok()?;
                header
                    .lines()
                    .next()?
                    .split(',')
                    .find(|name| *name == column)?;
            } else {
                rows.push(line.to_owned());
            }
        }
        Some(rows)
    }

    impl RowSource for ToyRows {
        fn rows(&self, project: &Path, models: &[String]) -> Result<ModelRows, EvalError> {
            let which = project
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.asked.borrow_mut().push((which, models.to_vec()));
            let mut out = BTreeMap::new();
            for model in models {
                match toy_model_rows(project, model) {
                    Some(mut rows) => {
                        // As dbt's rows are: order is not part of a model's output.
                        rows.sort();
                        out.insert(model.clone(), rows);
                    }
                    None => return Ok(ModelRows::Failed(format!("{model} failed"))),
                }
            }
            Ok(ModelRows::Rows(out))
        }
    }

    /// A broken toy project: `files` relative to its root.
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            write_file(dir.path(), path, Some(&(*text).to_owned())).expect("write");
        }
        dir
    }

    fn models() -> Vec<String> {
        vec!["models".to_owned()]
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect()
    }

    fn changes(entries: &[(&str, &str)]) -> FileChanges {
        entries
            .iter()
            .map(|(path, text)| ((*path).to_owned(), Some((*text).to_owned())))
            .collect()
    }

    #[test]
    fn model_files_are_sql_under_the_model_paths() {
        let paths = vec!["models".to_owned(), "more/".to_owned()];
        assert!(is_model_file("models/staging/stg_orders.sql", &paths));
        assert!(is_model_file("more/x.sql", &paths));
        assert!(!is_model_file("models_old/x.sql", &paths));
        assert!(!is_model_file("macros/cents.sql", &paths));
        assert!(!is_model_file("models/_staging.yml", &paths));
        assert!(!is_model_file("seeds/raw_members.csv", &paths));
        assert_eq!(
            model_name("models/staging/stg_orders.sql").as_deref(),
            Some("stg_orders")
        );
    }

    #[test]
    fn the_accepted_project_puts_model_edits_back_and_keeps_the_others() {
        let originals = map(&[
            ("models/a.sql", "select 1"),
            ("seeds/raw.csv", "id,plan\n"),
            ("models/_a.yml", "version: 2\n"),
        ]);
        let fixed = map(&[("models/b.sql", "select plan_name as plan")]);
        let accepted = accepted_files(&fixed, &originals, &models());
        assert_eq!(
            accepted,
            map(&[
                ("models/a.sql", "select 1"),
                ("models/b.sql", "select plan_name as plan"),
            ])
        );
    }

    #[test]
    fn the_failing_model_is_the_one_its_file_defines() {
        let paths = models();
        assert_eq!(
            failing_model(
                "dim_members_segments_riders",
                "models/marts/core/dim_members.sql",
                &paths
            ),
            "dim_members"
        );
        assert_eq!(
            failing_model("customers", "models/marts/customers.sql", &paths),
            "customers"
        );
        assert_eq!(
            failing_model("accepted_values_x", "models/staging/_staging.yml", &paths),
            "accepted_values_x"
        );
    }

    #[test]
    fn an_upstream_edit_counts_as_upstream() {
        let upstream = changes(&[("models/staging/stg_x.sql", "select 1")]);
        assert!(edits_upstream("models/marts/x.sql", &upstream));
        let own = changes(&[("models/marts/x.sql", "select 1")]);
        assert!(!edits_upstream("models/marts/x.sql", &own));
        assert!(!edits_upstream("/abs/project/models/marts/x.sql", &own));
    }

    /// Scores a fix of model `a` against `accepted` with the toy models.
    fn score_a(
        rows: &ToyRows,
        broken: &Path,
        accepted: &BTreeMap<String, String>,
        fix: &FileChanges,
    ) -> FixVerdict {
        score_fix(rows, broken, &models(), accepted, fix, "a").expect("scored")
    }

    #[test]
    fn byte_equal_files_need_no_dbt() {
        let broken = project(&[("models/a.sql", "BROKEN")]);
        let accepted = map(&[("models/a.sql", "one\ntwo")]);
        let rows = ToyRows::default();
        let verdict = score_a(
            &rows,
            broken.path(),
            &accepted,
            &changes(&[("models/a.sql", "one\ntwo")]),
        );
        assert!(verdict.correct && verdict.byte_equal, "{verdict:?}");
        assert!(rows.asked.borrow().is_empty());
        let nothing = score_a(&rows, broken.path(), &accepted, &FileChanges::new());
        assert!(!nothing.correct);
    }

    #[test]
    fn equal_rows_are_a_correct_fix_and_different_rows_are_not() {
        let broken = project(&[("models/a.sql", "BROKEN")]);
        let accepted = map(&[("models/a.sql", "one\ntwo")]);
        let rows = ToyRows::default();
        // The same rows, another text: the rows decide.
        let verdict = score_a(
            &rows,
            broken.path(),
            &accepted,
            &changes(&[("models/a.sql", "two\none")]),
        );
        assert!(verdict.correct && !verdict.byte_equal, "{verdict:?}");
        assert_eq!(verdict.compared_models, ["a"]);
        let wrong = score_a(
            &rows,
            broken.path(),
            &accepted,
            &changes(&[("models/a.sql", "one\nthree")]),
        );
        assert!(!wrong.correct, "{wrong:?}");
        assert!(
            wrong
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("rows differ"),
            "{wrong:?}"
        );
        // A fix that does not build is not correct, and says why.
        let failing = score_a(
            &rows,
            broken.path(),
            &accepted,
            &changes(&[("models/a.sql", "BROKEN still")]),
        );
        assert!(!failing.correct && failing.accepted_failed.is_none());
    }

    #[test]
    fn a_fix_touching_an_ancestor_is_built_with_both_files_and_compares_both_models() {
        // The breakage is in the ancestor `up`; `down` (correct SQL) is the failing model.
        let broken = project(&[
            ("models/up.sql", "BROKEN"),
            ("models/down.sql", "-- reads up\nlast"),
        ]);
        let accepted = accepted_files(
            &BTreeMap::new(),
            &map(&[("models/up.sql", "u1\nu2")]),
            &models(),
        );
        let rows = ToyRows::default();
        // Both files changed: `up` differently from the accepted text but with its rows,
        // and `down` reworded with the same rows.
        let verdict = score_fix(
            &rows,
            broken.path(),
            &models(),
            &accepted,
            &changes(&[
                ("models/up.sql", "u2\nu1"),
                ("models/down.sql", "-- reads up\nlast\n"),
            ]),
            "down",
        )
        .expect("scored");
        assert!(verdict.correct, "{verdict:?}");
        assert_eq!(verdict.compared_models, ["down", "up"]);
        assert_eq!(
            *rows.asked.borrow(),
            [
                (
                    "accepted".to_owned(),
                    vec!["down".to_owned(), "up".to_owned()]
                ),
                (
                    "candidate".to_owned(),
                    vec!["down".to_owned(), "up".to_owned()]
                ),
            ]
        );
        // Only the ancestor changed, byte-equal to the unbroken file: correct as it is.
        let exact = score_fix(
            &rows,
            broken.path(),
            &models(),
            &accepted,
            &changes(&[("models/up.sql", "u1\nu2")]),
            "down",
        )
        .expect("scored");
        assert!(exact.correct && exact.byte_equal, "{exact:?}");
        // A fix of the failing model alone leaves the ancestor broken.
        let model_only = score_fix(
            &rows,
            broken.path(),
            &models(),
            &accepted,
            &changes(&[("models/down.sql", "last")]),
            "down",
        )
        .expect("scored");
        assert!(!model_only.correct, "{model_only:?}");
        // An ancestor fixed with other rows is wrong even when the failing model's rows
        // happen to come out the same.
        let broken_shared = project(&[
            ("models/up.sql", "BROKEN"),
            ("models/down.sql", "only this"),
        ]);
        let wrong_upstream = score_fix(
            &rows,
            broken_shared.path(),
            &models(),
            &accepted,
            &changes(&[("models/up.sql", "other")]),
            "down",
        )
        .expect("scored");
        assert!(!wrong_upstream.correct, "{wrong_upstream:?}");
        assert_eq!(wrong_upstream.compared_models, ["down", "up"]);
    }

    #[test]
    fn a_non_model_edit_of_the_breakage_is_kept_in_both_projects() {
        // A renamed seed column: the clean model reads `plan`, which the broken seed no
        // longer has; the accepted fix reads `plan_name` and keeps the model's rows, and
        // builds only with the renamed seed.
        let clean_model = "-- needs plan in raw\nmembership_plan";
        let broken = project(&[
            ("seeds/raw.csv", "id,plan_name\n1,a"),
            ("models/stg.sql", clean_model),
        ]);
        let originals = map(&[("seeds/raw.csv", "id,plan\n1,a")]);
        let accepted = accepted_files(
            &map(&[(
                "models/stg.sql",
                "-- needs plan_name in raw\nmembership_plan",
            )]),
            &originals,
            &models(),
        );
        assert!(!accepted.contains_key("seeds/raw.csv"));
        let rows = ToyRows::default();
        // Not byte-equal (a trailing newline): the rows decide, with the seed as broken.
        let verdict = score_fix(
            &rows,
            broken.path(),
            &models(),
            &accepted,
            &changes(&[(
                "models/stg.sql",
                "-- needs plan_name in raw\nmembership_plan\n",
            )]),
            "stg",
        )
        .expect("scored");
        assert!(verdict.correct, "{verdict:?}");
        assert_eq!(verdict.compared_models, ["stg"]);
        // Those rows are the clean project's; the broken project does not build.
        let clean = project(&[
            ("seeds/raw.csv", "id,plan\n1,a"),
            ("models/stg.sql", clean_model),
        ]);
        assert_eq!(
            toy_model_rows(clean.path(), "stg"),
            Some(vec!["membership_plan".to_owned()])
        );
        assert_eq!(toy_model_rows(broken.path(), "stg"), None);
        // On the clean seed the same fix would not build: the seed edit must be kept.
        let on_clean_seed = score_fix(
            &rows,
            broken.path(),
            &models(),
            &accepted,
            &changes(&[
                ("seeds/raw.csv", "id,plan\n1,a"),
                (
                    "models/stg.sql",
                    "-- needs plan_name in raw\nmembership_plan\n",
                ),
            ]),
            "stg",
        )
        .expect("scored");
        assert!(!on_clean_seed.correct, "{on_clean_seed:?}");
        assert!(on_clean_seed.accepted_failed.is_none(), "{on_clean_seed:?}");
    }

    #[test]
    fn an_accepted_project_that_does_not_build_is_reported_as_the_case_s_fault() {
        let broken = project(&[("models/a.sql", "BROKEN")]);
        let accepted = map(&[("models/a.sql", "BROKEN too")]);
        let verdict = score_fix(
            &ToyRows::default(),
            broken.path(),
            &models(),
            &accepted,
            &changes(&[("models/a.sql", "fine")]),
            "a",
        )
        .expect("scored");
        assert!(!verdict.correct);
        assert!(verdict.accepted_failed.is_some(), "{verdict:?}");
    }
}
