//! `dbt-ops eval` on a two-case corpus, through the real system: a private nats-server,
//! the four services, real dbt and real git.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dbt_ops::commands::eval::{eval, load_corpus, Case};
use dbtops_settings::Settings;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .expect("the cli crate sits in the repository")
}

/// Copies a case of `eval/corpus` into `corpus`, pointing at the example project by an
/// absolute path (the temp corpus is not inside the repository).
fn take_case(corpus: &Path, name: &str, adjust: impl FnOnce(&mut Case)) {
    let text =
        std::fs::read_to_string(repo_root().join("eval/corpus").join(name).join("case.json"))
            .expect("corpus case");
    let mut case: Case = serde_json::from_str(&text).expect("case parses");
    case.project = repo_root().join(&case.project).display().to_string();
    adjust(&mut case);
    let dir = corpus.join(name);
    std::fs::create_dir_all(&dir).expect("case dir");
    std::fs::write(
        dir.join("case.json"),
        serde_json::to_string_pretty(&case).expect("case serializes"),
    )
    .expect("write case");
}

#[test]
fn the_repository_corpus_parses_and_covers_the_fixture_cases() {
    let cases = load_corpus(&repo_root().join("eval/corpus")).expect("corpus loads");
    assert!(cases.len() >= 19, "{} cases", cases.len());
    for case in &cases {
        assert!(!case.edits.is_empty(), "{}", case.name);
        assert!(!case.expected.is_empty(), "{}", case.name);
        let project = repo_root().join(&case.project);
        for edit in &case.edits {
            // An edit applies to the clean file or to one an earlier edit produced.
            assert!(
                project.join(&edit.path).is_file(),
                "{}: {}",
                case.name,
                edit.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_scores_a_fixable_case_and_routes_an_unfixable_one_to_a_human() {
    let corpus = tempfile::tempdir().expect("temp dir");
    // The accepted content differs from the branch's text only by a comment, so the
    // correct-fix verdict has to come from comparing the model's rows built by dbt.
    take_case(corpus.path(), "misspelt_column_staging", |case| {
        let path = "models/staging/stg_orders.sql";
        let clean = std::fs::read_to_string(Path::new(&case.project).join(path)).expect("model");
        case.fixed
            .insert(path.to_owned(), format!("-- the accepted fix\n{clean}"));
    });
    take_case(corpus.path(), "yaml_config", |_| {});

    let report = eval(corpus.path(), Settings::default(), Duration::from_secs(300))
        .await
        .expect("eval runs");

    assert_eq!(report.total, 2, "{}", report.table());
    assert_eq!(report.detected, 2, "{}", report.table());
    assert_eq!(report.class_correct, 2, "{}", report.table());
    assert_eq!(
        (report.validated, report.fixable),
        (1, 1),
        "{}",
        report.table()
    );
    assert_eq!(report.correct_fix, 1, "{}", report.table());
    assert_eq!(
        (report.routed_to_human, report.unfixable),
        (1, 1),
        "{}",
        report.table()
    );
    let fixable = &report.cases[0];
    assert_eq!(fixable.name, "misspelt_column_staging");
    assert_eq!(fixable.attempts, 1);
    assert!(fixable.error.is_none(), "{:?}", fixable.error);
    let table = report.table();
    assert!(table.contains("correct-fix rate     1/1 (100%)"), "{table}");
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["cases"][1]["routed_to_human"], true);
}
