//! Data-driven tests over real dbt artifacts.
//!
//! Every directory under `tests/fixtures/` with a `case.json` is one real `dbt build` of
//! the `examples/coffee_shop` project with one breakage (written by
//! `scripts/gen-fixtures.py`): its `run_results.json` (fresh or stale), `manifest.json`,
//! `dbt.log` (text, or JSON lines for `json_log*` cases), `console.txt` and
//! `project_files.json`. `case.json` says what detection must find. Cases named `pg_*`
//! are the same project built on PostgreSQL 15 with dbt-postgres (`case.json` `adapter`);
//! they are committed, so these tests need no database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dbtops_artifacts::{detect, incident_id, Detection, ProjectFiles, RunArtifacts};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Every case directory, sorted. Panics (rather than passing vacuously) when there are
/// none: a missing fixtures directory is a broken checkout, not a green test.
fn cases() -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fixtures directory {} is missing ({e}); run scripts/gen-fixtures.py",
            dir.display()
        )
    });
    let mut cases: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no fixture cases (directories with case.json) under {}; run scripts/gen-fixtures.py",
        dir.display()
    );
    cases
}

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

fn artifacts(dir: &Path) -> RunArtifacts {
    let project_files = read(dir, "project_files.json").map(|b| {
        ProjectFiles::from_json(&b)
            .unwrap_or_else(|e| panic!("{}: bad project_files.json: {e}", dir.display()))
    });
    RunArtifacts {
        run_results: read(dir, "run_results.json"),
        manifest: read(dir, "manifest.json"),
        dbt_log: read(dir, "dbt.log"),
        console: read(dir, "console.txt"),
        project_files,
    }
}

fn case_json(dir: &Path) -> Value {
    let bytes = read(dir, "case.json").unwrap_or_default();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{}: bad case.json: {e}", dir.display()))
}

fn name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn found(d: &Detection) -> BTreeSet<(String, String, String)> {
    d.failures
        .iter()
        .map(|f| {
            (
                f.unique_id.clone(),
                f.path.clone(),
                f.class.label().to_owned(),
            )
        })
        .collect()
}

fn expected(case: &Value) -> BTreeSet<(String, String, String)> {
    case["expected"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                // `null` is a failure that is no node (a broken YAML file).
                e["unique_id"].as_str().unwrap_or("").to_owned(),
                e["path"].as_str().unwrap_or("").to_owned(),
                e["class"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn every_fixture_case_finds_exactly_the_expected_failures() {
    let mut problems = Vec::new();
    let all = cases();
    for dir in &all {
        let case = case_json(dir);
        let det = match detect(&artifacts(dir)) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{}: detect failed: {e}", name(dir)));
                continue;
            }
        };
        let want = expected(&case);
        let got = found(&det);
        if want != got {
            problems.push(format!(
                "{}:\n    expected {want:?}\n    found    {got:?}\n    notes    {:?}",
                name(dir),
                det.notes
            ));
            continue;
        }
        for f in &det.failures {
            if f.message.trim().is_empty() {
                problems.push(format!(
                    "{}: {} has an empty message",
                    name(dir),
                    f.unique_id
                ));
            }
            if f.message.contains('\u{1b}') {
                problems.push(format!("{}: message keeps ANSI codes", name(dir)));
            }
            // Tests (generic, singular and unit), broken YAML, and a warehouse that
            // cannot be reached, refuses the role or cancels the query: no edit of a
            // model's SQL helps.
            let human = matches!(
                f.class.label(),
                "data_test_failure" | "yaml_config" | "connection" | "permission" | "timeout"
            );
            if f.needs_human != human {
                problems.push(format!(
                    "{}: {} needs_human = {}",
                    name(dir),
                    f.unique_id,
                    f.needs_human
                ));
            }
            // A model failure carries its SQL and the project's node names.
            if f.resource_type == "model" {
                if f.evidence.model_sql.is_empty() {
                    problems.push(format!("{}: {} has no model_sql", name(dir), f.unique_id));
                }
                if f.evidence.project_node_names.is_empty() {
                    problems.push(format!("{}: no project_node_names", name(dir)));
                }
            }
        }
        // Skipped nodes the case lists are in some failure's blast radius, and no skipped
        // node is reported as a failure of its own.
        let blast: BTreeSet<&str> = det
            .failures
            .iter()
            .flat_map(|f| f.blast_radius.iter().map(String::as_str))
            .collect();
        for skipped in case["expected_skipped"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let s = skipped.as_str().unwrap_or("");
            if !blast.contains(s) {
                problems.push(format!("{}: skipped {s} is in no blast radius", name(dir)));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} fixture cases disagree:\n{}",
        problems.len(),
        all.len(),
        problems.join("\n")
    );
}

/// The issue's list, held against the committed fixtures: every failure class it names
/// has a real PostgreSQL run, detected as that class with the adapter `postgres`; every
/// class no SQL edit can fix has a real run (either adapter) and is marked for a person.
#[test]
fn postgres_and_needs_human_classes_have_real_fixtures() {
    let mut postgres: BTreeSet<String> = BTreeSet::new();
    let mut human: BTreeSet<String> = BTreeSet::new();
    let mut kinds_of_test: BTreeSet<String> = BTreeSet::new();
    for dir in cases() {
        let case = case_json(&dir);
        let det = detect(&artifacts(&dir)).unwrap_or_else(|e| panic!("{}: {e}", name(&dir)));
        let on_postgres = case["adapter"].as_str() == Some("postgres");
        if on_postgres {
            assert_eq!(det.adapter.as_deref(), Some("postgres"), "{}", name(&dir));
            assert!(name(&dir).starts_with("pg_"), "{}", name(&dir));
        }
        for f in &det.failures {
            if on_postgres {
                postgres.insert(f.class.label().to_owned());
            }
            if f.needs_human {
                human.insert(f.class.label().to_owned());
                if f.class.label() == "data_test_failure" {
                    let kind = match f.unique_id.split('.').next() {
                        Some("unit_test") => "unit",
                        _ if f.path.ends_with(".sql") => "singular",
                        _ => "generic",
                    };
                    kinds_of_test.insert(kind.to_owned());
                }
            }
        }
    }
    for class in [
        "missing_column",
        "unknown_relation",
        "bad_ref",
        "sql_syntax",
        "type_mismatch",
        "runtime_data",
        "division_by_zero",
        "missing_group_by",
        "unknown_function",
        "ambiguous_column",
        "connection",
        "permission",
        "timeout",
        "data_test_failure",
    ] {
        assert!(
            postgres.contains(class),
            "no PostgreSQL fixture detected as {class}; run scripts/gen-fixtures.py --adapter postgres ({postgres:?})"
        );
    }
    for class in ["connection", "permission", "timeout", "data_test_failure"] {
        assert!(
            human.contains(class),
            "no needs_human fixture of {class}: {human:?}"
        );
    }
    for kind in ["generic", "singular", "unit"] {
        assert!(
            kinds_of_test.contains(kind),
            "no {kind} test failure: {kinds_of_test:?}"
        );
    }
}

/// A failing unit test (dbt 1.8+) runs before its model: the model and everything below it
/// are skipped because of it, and the failure points at the YAML that holds the test.
#[test]
fn a_failing_unit_test_skips_its_own_model() {
    for case in ["unit_test_failure", "pg_unit_test_failure"] {
        let det = detect(&artifacts(&fixtures_dir().join(case))).expect(case);
        assert_eq!(det.failures.len(), 1, "{case}: {:?}", det.notes);
        let f = &det.failures[0];
        assert_eq!(f.resource_type, "unit_test", "{case}");
        assert_eq!(f.path, "models/staging/_unit_tests.yml", "{case}");
        assert!(f.needs_human, "{case}");
        assert!(f.message.contains("differs from"), "{case}: {}", f.message);
        assert!(
            f.evidence
                .yaml_entry
                .contains("customer_name_is_first_then_last"),
            "{case}: {}",
            f.evidence.yaml_entry
        );
        for skipped in [
            "model.coffee_shop.stg_customers",
            "model.coffee_shop.customers",
        ] {
            assert!(
                f.blast_radius.iter().any(|b| b == skipped),
                "{case}: {skipped} not in {:?}",
                f.blast_radius
            );
        }
    }
}

/// A log appended to twice (the same run logged again, as an appended `dbt.log` does)
/// gives the same failures with the same signatures.
#[test]
fn signatures_survive_a_duplicated_log() {
    for dir in cases() {
        let base = artifacts(&dir);
        let Some(log) = base.dbt_log.clone() else {
            continue;
        };
        let before = detect(&base).unwrap_or_else(|e| panic!("{}: {e}", name(&dir)));
        let mut doubled = log.clone();
        doubled.push(b'\n');
        doubled.extend_from_slice(&log);
        let after = detect(&RunArtifacts {
            dbt_log: Some(doubled),
            ..base
        })
        .unwrap_or_else(|e| panic!("{}: {e}", name(&dir)));
        let sigs = |d: &Detection| -> Vec<(String, String)> {
            d.failures
                .iter()
                .map(|f| (f.unique_id.clone(), f.signature.clone()))
                .collect()
        };
        assert_eq!(sigs(&before), sigs(&after), "{}", name(&dir));
    }
}

/// Two different runs of the same breakage (different invocation ids, timestamps, log
/// formats) give the same signature, so tomorrow's run does not open a second incident;
/// a different bad column gives a different one.
#[test]
fn the_same_failure_in_two_runs_has_one_signature() {
    let dir = fixtures_dir();
    let text = dir.join("misspelt_column_staging");
    let json = dir.join("json_log_misspelt_column");
    let other = dir.join("misspelt_column_mart");
    for d in [&text, &json, &other] {
        assert!(
            d.join("case.json").is_file(),
            "missing fixture {}",
            d.display()
        );
    }
    let a = detect(&artifacts(&text)).expect("text-log case");
    let b = detect(&artifacts(&json)).expect("json-log case");
    let c = detect(&artifacts(&other)).expect("other case");
    assert_ne!(a.invocation_id, b.invocation_id);
    assert_eq!(a.failures.len(), 1);
    assert_eq!(b.failures.len(), 1);
    assert_eq!(a.failures[0].signature, b.failures[0].signature);
    let project = a.project_name.as_deref().unwrap_or("");
    assert_eq!(
        incident_id(project, &a.failures[0].unique_id, &a.failures[0].signature),
        incident_id(project, &b.failures[0].unique_id, &b.failures[0].signature)
    );
    assert_ne!(a.failures[0].signature, c.failures[0].signature);

    // The same run read from its JSON log alone (run_results and manifest lost) still
    // gives that signature.
    let log_only = detect(&RunArtifacts {
        run_results: None,
        manifest: None,
        ..artifacts(&json)
    })
    .expect("json log alone");
    assert_eq!(log_only.failures.len(), 1);
    assert_eq!(
        log_only.failures[0].unique_id,
        "model.coffee_shop.stg_orders"
    );
    assert_eq!(log_only.failures[0].path, "models/staging/stg_orders.sql");
    assert_eq!(log_only.failures[0].signature, a.failures[0].signature);

    // So does the text log alone, and the console output alone: every path through the
    // artifacts agrees on the signature and the place.
    let base = artifacts(&text);
    let text_only = detect(&RunArtifacts {
        run_results: None,
        manifest: None,
        console: None,
        ..base.clone()
    })
    .expect("text log alone");
    let console_only = detect(&RunArtifacts {
        run_results: None,
        manifest: None,
        dbt_log: None,
        ..base
    })
    .expect("console alone");
    for d in [&text_only, &console_only] {
        assert_eq!(found(d), found(&a), "notes: {:?}", d.notes);
        assert_eq!(d.failures[0].signature, a.failures[0].signature);
        assert_eq!(d.failures[0].message, a.failures[0].message);
    }
}

/// A run_results.json that failed (fresh for its own run) followed by a newer run that
/// failed at parse time: the log's last invocation is newer, so run_results is ignored and
/// only the parse-time failure is reported.
#[test]
fn a_stale_run_results_loses_to_a_newer_failing_log() {
    let dir = fixtures_dir();
    let runtime = artifacts(&dir.join("misspelt_column_staging"));
    let parse = artifacts(&dir.join("misspelt_ref"));
    let mut log = runtime.dbt_log.clone().expect("runtime log");
    log.extend_from_slice(parse.dbt_log.as_deref().expect("parse-time log"));
    let det = detect(&RunArtifacts {
        run_results: runtime.run_results.clone(),
        manifest: runtime.manifest.clone(),
        dbt_log: Some(log),
        console: None,
        project_files: parse.project_files.clone(),
    })
    .expect("detect");
    let got = found(&det);
    assert_eq!(
        got,
        BTreeSet::from([(
            "model.coffee_shop.orders".to_owned(),
            "models/marts/orders.sql".to_owned(),
            "bad_ref".to_owned()
        )]),
        "notes: {:?}",
        det.notes
    );
    assert!(
        det.notes
            .iter()
            .any(|n| n.contains("run_results.json is stale")),
        "{:?}",
        det.notes
    );
    // Without the log there is nothing to contradict run_results: it is trusted.
    let trusted = detect(&RunArtifacts {
        dbt_log: None,
        console: None,
        ..runtime
    })
    .expect("detect");
    assert_eq!(
        trusted.failures[0].unique_id,
        "model.coffee_shop.stg_orders"
    );
}

/// Corrupting any one artifact of a real case never panics: it becomes a note (or, when
/// nothing usable remains, an error).
#[test]
fn corrupt_artifacts_never_panic() {
    let dir = fixtures_dir().join("misspelt_column_staging");
    let good = artifacts(&dir);
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\x01\x02\x03\xff\xfe\xfd".repeat(100),
        good.run_results.clone().unwrap_or_default()[..100].to_vec(),
        b"{\"metadata\": {\"dbt_schema_version\": \"https://schemas.getdbt.com/dbt/run-results/v99.json\"}, \"results\": [{\"unique_id\": \"model.x.y\", \"status\": \"error\", \"message\": \"\xff\xfe\"}]}".to_vec(),
    ];
    for g in &garbage {
        for slot in 0..4 {
            let mut a = good.clone();
            match slot {
                0 => a.run_results = Some(g.clone()),
                1 => a.manifest = Some(g.clone()),
                2 => a.dbt_log = Some(g.clone()),
                _ => a.console = Some(g.clone()),
            }
            let _ = detect(&a);
        }
    }
    // Truncated run_results and manifest, the log intact: the log carries the failure.
    let mut a = good.clone();
    a.run_results = a.run_results.map(|r| r[..r.len() / 2].to_vec());
    a.manifest = a.manifest.map(|m| m[..m.len() / 3].to_vec());
    let det = detect(&a).expect("log still usable");
    assert_eq!(det.failures.len(), 1, "{:?}", det.notes);
    assert_eq!(det.failures[0].unique_id, "model.coffee_shop.stg_orders");
    assert!(
        det.notes
            .iter()
            .any(|n| n.contains("run_results.json is truncated")),
        "{:?}",
        det.notes
    );
}

/// Deterministic mutations (truncations, flipped bytes, spliced garbage) of every artifact
/// of a few real cases, the project files included: detection may give up, never panic.
#[test]
fn mutated_artifacts_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: a fixed sequence, so a failure reproduces.
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mutate = |bytes: &[u8], r: u64, r2: u64| -> Vec<u8> {
        if bytes.is_empty() {
            return vec![0xff];
        }
        let at = (r % bytes.len() as u64) as usize;
        let mut out = bytes.to_vec();
        match r2 % 4 {
            0 => out.truncate(at),
            1 => out[at] ^= 0xa5,
            2 => out
                .splice(
                    at..at,
                    b"\xff\xfe\x00{\"info\":{\"name\":\"RunResultError\"}}\n\x1b[31m"
                        .iter()
                        .copied(),
                )
                .for_each(drop),
            _ => out.drain(at..(at + 64).min(out.len())).for_each(drop),
        }
        out
    };
    let dir = fixtures_dir();
    for case in [
        "misspelt_ref",
        "json_log_misspelt_column",
        "multi_failure",
        "yaml_config",
    ] {
        let path = dir.join(case);
        if !path.join("case.json").is_file() {
            panic!("missing fixture {}", path.display());
        }
        let good = artifacts(&path);
        for _ in 0..12 {
            let (r1, r2, slot) = (next(), next(), next() % 5);
            let mut a = good.clone();
            match slot {
                0 => a.run_results = a.run_results.map(|b| mutate(&b, r1, r2)),
                1 => a.manifest = a.manifest.map(|b| mutate(&b, r1, r2)),
                2 => a.dbt_log = a.dbt_log.map(|b| mutate(&b, r1, r2)),
                3 => a.console = a.console.map(|b| mutate(&b, r1, r2)),
                _ => {
                    if let Some(pf) = a.project_files.as_mut() {
                        let yml = mutate(pf.dbt_project_yml.as_bytes(), r1, r2);
                        pf.dbt_project_yml = String::from_utf8_lossy(&yml).into_owned();
                        for text in pf.files.values_mut() {
                            let m = mutate(text.as_bytes(), r2, r1);
                            *text = String::from_utf8_lossy(&m).into_owned();
                        }
                    }
                }
            }
            let _ = detect(&a);
        }
    }
}

/// A run killed before dbt printed its summary (a CI timeout): the text log still says,
/// in the skip reason, which node failed and why.
#[test]
fn a_log_cut_before_the_summary_still_finds_the_failure() {
    let dir = fixtures_dir().join("misspelt_column_staging");
    let full = artifacts(&dir);
    let expected = found(&detect(&full).expect("full case"));
    let log = full.dbt_log.clone().expect("text log");
    let text = String::from_utf8_lossy(&log);
    let cut_at = text
        .rfind("Finished running ")
        .expect("the log has a run summary");
    let cut = text[..cut_at].as_bytes().to_vec();
    let det = detect(&RunArtifacts {
        run_results: None,
        manifest: None,
        console: None,
        dbt_log: Some(cut),
        ..full
    })
    .expect("cut log");
    assert_eq!(found(&det), expected, "notes: {:?}", det.notes);
    assert!(!det.failures[0].blast_radius.is_empty());
}

/// Every real failure whose database error names a `LINE n` (which counts the statement
/// dbt executed, wrapper included) is mapped back to the model line that holds the
/// excerpt the database printed — from the full artifacts (the log's executed statement),
/// from run_results alone (compiled SQL), and from the console alone (the model's SQL).
#[test]
fn database_lines_map_back_to_the_model() {
    let line_re = regex::Regex::new(r"(?m)^\s*LINE (\d+):(.*)$").unwrap();
    let mut mapped = 0;
    let mut lines_by_view: std::collections::BTreeMap<(String, String), BTreeSet<u32>> =
        Default::default();
    for dir in cases() {
        let full = artifacts(&dir);
        let views = [
            ("full", full.clone(), "executed_statement"),
            (
                "run_results",
                RunArtifacts {
                    dbt_log: None,
                    console: None,
                    ..full.clone()
                },
                "compiled_sql",
            ),
            (
                "console",
                RunArtifacts {
                    run_results: None,
                    manifest: None,
                    dbt_log: None,
                    ..full.clone()
                },
                "line_text",
            ),
        ];
        for (view, a, method) in views {
            let Ok(det) = detect(&a) else { continue };
            for f in &det.failures {
                let Some(c) = line_re.captures(&f.message) else {
                    continue;
                };
                // Without a manifest a unit test cannot be traced to its model: its LINE
                // counts the test's statement, and its file is YAML.
                if f.resource_type == "unit_test" {
                    continue;
                }
                let n: u32 = c[1].parse().unwrap();
                let excerpt = c[2].trim().to_owned();
                let loc = f.evidence.error_location.as_ref().unwrap_or_else(|| {
                    panic!(
                        "{} ({view}): {} has LINE {n} but no location",
                        name(&dir),
                        f.unique_id
                    )
                });
                assert_eq!(loc.statement_line, n);
                // A model's error that surfaced in its unit test: the LINE counts the unit
                // test's statement (fixtures and all), so only the line's text maps it.
                let from_unit_test = det
                    .notes
                    .iter()
                    .any(|note| note.contains("not a row mismatch"));
                let method = if from_unit_test { "line_text" } else { method };
                assert_eq!(loc.method, method, "{} ({view})", name(&dir));
                let model_line = f
                    .evidence
                    .model_sql
                    .lines()
                    .nth(loc.model_line as usize - 1)
                    .unwrap_or_default();
                assert_eq!(model_line.trim_end(), loc.model_line_text);
                let squash = |s: &str| s.split_whitespace().collect::<String>();
                let words: Vec<&str> = excerpt
                    .split(|ch: char| !ch.is_alphanumeric() && ch != '_')
                    .filter(|w| w.len() > 2)
                    .collect();
                assert!(
                    words.iter().any(|w| squash(model_line).contains(w)),
                    "{} ({view}): LINE {n} `{excerpt}` mapped to model line {} `{model_line}`",
                    name(&dir),
                    loc.model_line
                );
                lines_by_view
                    .entry((name(&dir), f.unique_id.clone()))
                    .or_default()
                    .insert(loc.model_line);
                if view == "full" && !from_unit_test {
                    // The model line sits above the statement line: the wrapper only adds.
                    assert!(loc.model_line < n, "{}", name(&dir));
                    assert!(
                        loc.compiled_line > 0,
                        "{}: compiled line unknown",
                        name(&dir)
                    );
                    mapped += 1;
                }
                eprintln!(
                    "{:28} {view:12} LINE {n:3} -> compiled {:3} -> model {:3} {}",
                    name(&dir),
                    loc.compiled_line,
                    loc.model_line,
                    loc.model_line_text.trim()
                );
            }
        }
    }
    assert!(mapped >= 8, "only {mapped} real failures had a LINE to map");
    // Every way through the artifacts agrees on the model line.
    for (key, lines) in &lines_by_view {
        assert_eq!(lines.len(), 1, "{key:?} maps to {lines:?}");
    }
}

/// A real Jinja for-loop turns two model lines into six compiled ones above the error:
/// DuckDB's `LINE 21` is line 12 of the compiled SQL and line 10 of the model.
#[test]
fn a_database_line_is_mapped_through_a_jinja_loop() {
    let det = detect(&artifacts(
        &fixtures_dir().join("jinja_loop_missing_column"),
    ))
    .expect("jinja loop case");
    assert_eq!(det.failures.len(), 1);
    let loc = det.failures[0]
        .evidence
        .error_location
        .clone()
        .expect("a location");
    assert_eq!(
        (loc.statement_line, loc.compiled_line, loc.model_line),
        (21, 12, 10)
    );
    assert_eq!(loc.model_line_text.trim(), "sum(item_cnt) as items_sold,");
    assert_eq!(loc.method, "executed_statement");
}

#[test]
fn lineage_detection_ships_the_ancestor_models_nearest_first() {
    let dir = fixtures_dir().join("misspelt_column_mart");
    let artifacts = artifacts(&dir);
    // By default no ancestor SQL travels.
    let plain = dbtops_artifacts::detect(&artifacts).unwrap();
    assert!(plain.failures[0].evidence.ancestors.is_empty());

    let options = dbtops_artifacts::DetectOptions { lineage_depth: 1 };
    let detection = dbtops_artifacts::detect_with(&artifacts, &options).unwrap();
    let failure = &detection.failures[0];
    assert_eq!(failure.unique_id, "model.coffee_shop.orders");
    let direct: Vec<(&str, &str, u32)> = failure
        .evidence
        .ancestors
        .iter()
        .map(|a| (a.name.as_str(), a.path.as_str(), a.depth))
        .collect();
    // `orders` reads three staging models; no seed or source is shipped as editable.
    for expected in ["stg_orders", "stg_order_items", "stg_products"] {
        assert!(
            direct.iter().any(|(name, path, depth)| *name == expected
                && *path == format!("models/staging/{expected}.sql")
                && *depth == 1),
            "{direct:?}"
        );
    }
    assert!(direct.iter().all(|(_, path, _)| path.ends_with(".sql")));
    let stg_orders = failure
        .evidence
        .ancestors
        .iter()
        .find(|a| a.name == "stg_orders")
        .unwrap();
    assert!(
        stg_orders.raw_sql.contains("ref('raw_orders')"),
        "{}",
        stg_orders.raw_sql
    );
    assert_eq!(stg_orders.materialized, "view");

    // Depth 2 reaches through the staging models to the seeds: nothing more to edit, and
    // nothing shipped twice.
    let deeper = dbtops_artifacts::detect_with(
        &artifacts,
        &dbtops_artifacts::DetectOptions { lineage_depth: 2 },
    )
    .unwrap();
    let ids: Vec<&str> = deeper.failures[0]
        .evidence
        .ancestors
        .iter()
        .map(|a| a.unique_id.as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("model.")), "{ids:?}");
}

#[test]
fn the_budget_drops_ancestors_before_anything_of_the_failing_model() {
    let dir = fixtures_dir().join("misspelt_column_mart");
    let options = dbtops_artifacts::DetectOptions { lineage_depth: 1 };
    let mut failure = dbtops_artifacts::detect_with(&artifacts(&dir), &options)
        .unwrap()
        .failures
        .remove(0);
    assert!(failure.evidence.ancestors.len() >= 3);
    let compiled = failure.evidence.compiled_sql.clone();
    // A budget that fits the failure without its ancestors.
    let mut without = failure.clone();
    without.evidence.ancestors.clear();
    let budget = dbtops_artifacts::failure_tokens(&without) + 1;
    dbtops_artifacts::apply_token_budget(&mut failure, budget);
    assert!(failure.evidence.ancestors.is_empty());
    assert_eq!(failure.evidence.compiled_sql, compiled);
    assert!(failure.evidence.trimmed[0].starts_with("ancestors: dropped"));
}

#[test]
fn a_models_sql_error_that_surfaced_in_its_unit_test_is_the_models_incident() {
    let dir = fixtures_dir().join("unit_test_sql_error");
    let det = detect(&artifacts(&dir)).unwrap();
    assert_eq!(det.failures.len(), 1, "{:?}", det.failures);
    let failure = &det.failures[0];
    assert_eq!(failure.unique_id, "model.coffee_shop.stg_customers");
    assert_eq!(failure.path, "models/staging/stg_customers.sql");
    assert_eq!(failure.resource_type, "model");
    assert_eq!(failure.class.label(), "missing_column");
    assert!(!failure.needs_human);
    assert!(failure.evidence.model_sql.contains("lower(emial)"));
    assert_eq!(
        failure
            .evidence
            .error_location
            .as_ref()
            .map(|l| l.model_line_text.trim()),
        Some("lower(emial) as email,")
    );
    // A unit test whose rows differ stays a data-test failure for a person.
    let rows = detect(&artifacts(&fixtures_dir().join("unit_test_failure"))).unwrap();
    assert_eq!(rows.failures[0].class.label(), "data_test_failure");
    assert!(rows.failures[0].needs_human);
}
