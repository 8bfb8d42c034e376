//! Property tests over the parsers: arbitrary bytes, real artifacts cut anywhere, and
//! lines built from dbt's own log syntax never panic; the streaming log reader agrees with
//! the in-memory one however its input is chunked; redaction never moves a line.

use std::io::Read;
use std::path::{Path, PathBuf};

use dbtops_artifacts::{
    apply_token_budget, detect, failure_tokens, scan_log, scan_log_bytes, ProjectFiles, Redactor,
    RunArtifacts,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(case: &str, file: &str) -> Option<Vec<u8>> {
    std::fs::read(fixtures().join(case).join(file)).ok()
}

/// Real cases with every kind of artifact between them (text and JSON logs, fresh and
/// stale run_results, parse-time and run-time failures, a YAML error).
const CASES: &[&str] = &[
    "misspelt_column_staging",
    "json_log_misspelt_column",
    "misspelt_ref",
    "multi_failure",
    "yaml_config",
    "data_test_failure",
    "broken_jinja",
];

fn artifacts(case: &str) -> RunArtifacts {
    RunArtifacts {
        run_results: read(case, "run_results.json"),
        manifest: read(case, "manifest.json"),
        dbt_log: read(case, "dbt.log"),
        console: read(case, "console.txt"),
        project_files: read(case, "project_files.json")
            .and_then(|b| ProjectFiles::from_json(&b).ok()),
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Pieces of what dbt writes, so generated lines reach the parser's deeper paths.
fn log_line() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "\u{1b}[0m",
        "13:36:14.533474 [error] [MainThread]: ",
        "13:36:14.533474 [debug] [Thread-1 (]: ",
        "13:36:14.533474 [info ] [Thread-2 (]: ",
        "13:36:14  ",
        "============================== 13:36:13.393742 | 6e4501b8-72e1-46bd-b9b0-a1e34bdc0b8c ==============================",
        "Failure in model orders (models/marts/orders.sql)",
        "Began running node model.shop.orders",
        "On model.shop.orders: /* {\"app\": \"dbt\"} */",
        "  create view \"shop\".\"main\".\"orders__dbt_tmp\" as (",
        "Marking all children of 'model.shop.orders' to be skipped because of status 'error'.  Reason: ",
        "5 of 8 ERROR creating sql view model main.orders",
        "8 of 8 SKIP relation main.customer_orders",
        "Encountered an error:",
        "Command `dbt build` failed at 13:36:14.535268 after 1.19 seconds",
        "Runtime Error in model orders (models/marts/orders.sql)",
        "  Binder Error: Values list \"o\" does not have a column named \"amout\"",
        "  LINE 12:     o.amout",
        "{\"data\": {\"msg\": \"x\"}, \"info\": {\"name\": \"RunResultError\", \"invocation_id\": \"c78f6424-3034-4850-90a7-258c9317ee67\"}}",
        "{\"data\": {\"node_info\": {\"unique_id\": \"model.shop.orders\", \"node_status\": \"error\"}}, \"info\": {\"name\": \"NodeFinished\"}}",
        "{\"data\": {\"sql\": \"select 1\", \"node_info\": {\"unique_id\": \"model.shop.orders\"}}, \"info\": {\"name\": \"SQLQuery\"}}",
        "{\"info\": {\"name\": ",
        "\u{fffd}\u{0}",
        "Done. PASS=4 WARN=0 ERROR=1 SKIP=3",
        "",
        "\r",
    ]);
    vec(fragments, 0..4).prop_map(|parts| parts.concat())
}

/// A reader that hands out its bytes in the given read sizes, cycling.
struct Chunked<'a> {
    bytes: &'a [u8],
    sizes: Vec<usize>,
    at: usize,
    turn: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn detect_never_panics_on_arbitrary_bytes(
        run_results in vec(any::<u8>(), 0..512),
        manifest in vec(any::<u8>(), 0..512),
        log in vec(any::<u8>(), 0..2048),
        console in vec(any::<u8>(), 0..512),
        which in 0u8..16,
    ) {
        let a = RunArtifacts {
            run_results: (which & 1 != 0).then_some(run_results),
            manifest: (which & 2 != 0).then_some(manifest),
            dbt_log: (which & 4 != 0).then_some(log),
            console: (which & 8 != 0).then_some(console),
            project_files: None,
        };
        let _ = detect(&a);
    }

    #[test]
    fn the_log_parsers_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..4096)) {
        let scan = scan_log_bytes(&bytes);
        prop_assert_eq!(scan.bytes, bytes.len() as u64);
        prop_assert_eq!(scan_log(bytes.as_slice()).unwrap(), scan);
    }

    #[test]
    fn dbt_shaped_logs_never_panic_and_stream_like_memory(
        lines in vec(log_line(), 0..60),
        sizes in vec(1usize..97, 1..8),
    ) {
        let log = lines.join("\n");
        let in_memory = scan_log_bytes(log.as_bytes());
        let streamed = scan_log(Chunked { bytes: log.as_bytes(), sizes, at: 0, turn: 0 }).unwrap();
        prop_assert_eq!(&streamed, &in_memory);
        let _ = detect(&RunArtifacts { dbt_log: Some(log.into_bytes()), ..RunArtifacts::default() });
    }

    #[test]
    fn redaction_never_moves_a_line(text in "[ -~\n\t]{0,400}", secret in "[A-Za-z0-9]{6,20}") {
        let r = Redactor::new([("DBT_PASSWORD".to_owned(), secret.clone())]);
        let seeded = format!("{text}\npassword: {secret}\n{text}");
        let out = r.redact(&seeded);
        prop_assert_eq!(out.matches('\n').count(), seeded.matches('\n').count());
        prop_assert!(!out.contains(&secret));
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Every artifact of real cases cut at an arbitrary point: a clear note or error,
    /// never a panic; the streaming reader sees the cut log as memory does.
    #[test]
    fn truncated_real_artifacts_never_panic(
        case in prop::sample::select(CASES),
        cuts in vec(0.0f64..1.0, 5),
        sizes in vec(1usize..5000, 1..4),
    ) {
        let good = artifacts(case);
        let cut = |b: Option<Vec<u8>>, at: f64| b.map(|b| {
            let n = (b.len() as f64 * at) as usize;
            b[..n.min(b.len())].to_vec()
        });
        let a = RunArtifacts {
            run_results: cut(good.run_results.clone(), cuts[0]),
            manifest: cut(good.manifest.clone(), cuts[1]),
            dbt_log: cut(good.dbt_log.clone(), cuts[2]),
            console: cut(good.console.clone(), cuts[3]),
            project_files: good.project_files.clone(),
        };
        if let Ok(d) = detect(&a) {
            for mut f in d.failures {
                // What ships is always held to the budget or says why not.
                apply_token_budget(&mut f, 500);
                prop_assert!(
                    failure_tokens(&f) <= 500
                        || f.evidence.trimmed.last().is_some_and(|s| s.starts_with("over budget")),
                    "{:?}", f.evidence.trimmed
                );
            }
        }
        if let Some(log) = a.dbt_log {
            let streamed = scan_log(Chunked { bytes: &log, sizes, at: 0, turn: 0 }).unwrap();
            prop_assert_eq!(streamed, scan_log_bytes(&log));
        }
    }
}

/// A line longer than the reader's buffer is cut, not buffered whole, and the lines after
/// it are read as usual.
#[test]
fn an_endless_line_does_not_grow_the_reader() {
    let mut log = Vec::new();
    log.extend_from_slice(&read("misspelt_column_staging", "dbt.log").unwrap());
    log.extend(std::iter::repeat_n(b'x', 9 * 1024 * 1024));
    log.push(b'\n');
    let tail = read("misspelt_ref", "dbt.log").unwrap();
    log.extend_from_slice(&tail);
    let streamed = scan_log(log.as_slice()).unwrap();
    assert_eq!(
        streamed.last_invocation_id,
        scan_log_bytes(&tail).last_invocation_id
    );
    assert_eq!(streamed.last_outcome, "failed");
    assert!(streamed
        .parse_error
        .as_deref()
        .unwrap_or("")
        .contains("stg_ordrs"));
}
