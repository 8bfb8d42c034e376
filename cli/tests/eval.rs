//! `dbt-ops eval` on small corpora, through the real system: a private nats-server, the
//! four services, real dbt and real git — with the rules alone, and with the rules off and
//! a local fake OpenAI-compatible server as the only provider.
//!
//! The fake is an *oracle*: it answers each prompt with the corpus's accepted fix for the
//! model SQL it finds in the prompt (and, when the prompt carries ancestor models under
//! `fixer.fix_scope = "lineage"`, with the accepted fix of each ancestor the corpus
//! breaks, as `upstream_edits`), and reports as usage the prompt's size in
//! characters / 4 (the fixer's own estimate) and the answer's likewise. Its token figures
//! are therefore the sizes of our prompts, not a model's behaviour, and the report says
//! so. `DBTOPS_EVAL_FAKE_LLM_CORPUS=eval/corpus cargo test -p dbt-ops --test eval
//! fake -- --nocapture` runs a whole corpus that way and prints the table and the JSON.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dbt_ops::commands::eval::{eval, eval_with, load_corpus, Case, EvalOptions};
use dbtops_settings::{LlmMode, LlmProviderKind, LlmProviderSettings, Settings};
use serde_json::{json, Value};

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
    assert!(fixable.solved_by_rules && !fixable.solved_by_llm);
    assert_eq!(fixable.strategies, ["rule:misspelt_column"]);
    assert_eq!(report.solved_by_rules, 1, "{}", report.table());
    // One attempt ran the rules (the unfixable case never reaches the fixer).
    let stage = report.rule_stage_us.expect("the rule stage was timed");
    assert_eq!(stage.count, 1, "{}", report.table());
    assert!(stage.p50 > 0.0 && stage.p90 >= stage.p50);
    assert!(report.llm_tokens_per_fixed_incident.is_none());
    let table = report.table();
    assert!(table.contains("correct-fix rate     1/1 (100%)"), "{table}");
    assert!(
        table.contains("solved by rules alone 1/1 (100%)"),
        "{table}"
    );
    assert!(table.contains("rule stage           p50 "), "{table}");
    assert!(
        table.contains("LLM tokens/fixed inc. - (no LLM provider configured)"),
        "{table}"
    );
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["cases"][1]["routed_to_human"], true);
    assert_eq!(json["rule_stage_us"]["count"], 1);
    assert_eq!(json["solved_by_rules"], 1);
}

/// The broken and the accepted content of every model file the corpus breaks, by path:
/// what the oracle answers.
fn accepted_fixes(cases: &[Case]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for case in cases {
        let project = Path::new(&case.project);
        let project = if project.is_absolute() {
            project.to_path_buf()
        } else {
            repo_root().join(project)
        };
        // Per file: (clean, broken).
        let mut files: BTreeMap<String, (String, String)> = BTreeMap::new();
        for edit in &case.edits {
            let file = files.entry(edit.path.clone()).or_insert_with(|| {
                let text = std::fs::read_to_string(project.join(&edit.path)).expect("model");
                (text.clone(), text)
            });
            file.1 = file.1.replacen(&edit.from, &edit.to, 1);
        }
        // An accepted fix may change a file the breakage did not touch (a model reading a
        // renamed seed column): its broken content is its clean content.
        for path in case.fixed.keys() {
            if !files.contains_key(path) {
                let text = std::fs::read_to_string(project.join(path)).expect("fixed file");
                files.insert(path.clone(), (text.clone(), text));
            }
        }
        for (path, (original, broken)) in files {
            let accepted = case.fixed.get(&path).cloned().unwrap_or(original);
            out.push((path, broken, accepted));
        }
    }
    out
}

/// Every `<<<BEGIN ancestor name (path, materialized, generation n)>>>` block of a
/// lineage-scoped prompt: (path, SQL).
fn ancestors(prompt: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (start, _) in prompt.match_indices("<<<BEGIN ancestor ") {
        let block = &prompt[start + "<<<BEGIN ".len()..];
        let Some(name_end) = block.find(">>>\n") else {
            continue;
        };
        let name = &block[..name_end];
        let path = name
            .split_once('(')
            .and_then(|(_, inside)| inside.split(',').next())
            .unwrap_or_default()
            .to_owned();
        if let Some(sql) = delimited(&prompt[start..], name) {
            out.push((path, sql.to_owned()));
        }
    }
    out
}

/// The fake OpenAI-compatible server, answering with the accepted fixes.
struct OracleLlm {
    base_url: String,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

/// `text` between `<<<BEGIN name>>>\n` and `\n<<<END name>>>`.
fn delimited<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<<<BEGIN {name}>>>\n");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("\n<<<END {name}>>>"))?;
    Some(&text[start..end])
}

/// The chat completion for one request body.
fn oracle_answer(request: &Value, fixes: &[(String, String, String)]) -> Value {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let prompt: String = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let model_sql = delimited(&prompt, "model_sql").unwrap_or_default();
    let model_path = prompt
        .split("model_path must be \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let accepted_for = |path: &str, sql: &str| {
        fixes
            .iter()
            .find(|(fixed, broken, accepted)| {
                fixed == path && broken.trim() == sql.trim() && accepted.trim() != sql.trim()
            })
            .map(|(_, _, accepted)| accepted.clone())
    };
    let fixed_sql =
        accepted_for(&model_path, model_sql).unwrap_or_else(|| format!("{model_sql}\n"));
    // With fixer.fix_scope = "lineage" the prompt carries the ancestors: the accepted
    // content of each one the corpus fixes goes into upstream_edits.
    let upstream_edits: Vec<Value> = ancestors(&prompt)
        .into_iter()
        .filter_map(|(path, sql)| {
            accepted_for(&path, &sql).map(|accepted| {
                json!({
                    "path": path,
                    "fixed_sql": accepted,
                    "explanation": "The accepted fix of an ancestor (a fake model).",
                })
            })
        })
        .collect();
    let mut answer = json!({
        "model_path": model_path,
        "fixed_sql": fixed_sql,
        "explanation": "The accepted fix of the evaluation corpus (a fake model).",
        "error_class": "other",
        "confidence": 0.5,
    });
    if !upstream_edits.is_empty() {
        answer["upstream_edits"] = Value::Array(upstream_edits);
    }
    let content = answer.to_string();
    // The sizes of what we sent and what a model would send back, at the fixer's own
    // estimate of 4 characters per token: the prompt's messages plus its schema or tools.
    let schema = [&request["response_format"], &request["tools"]]
        .iter()
        .filter(|v| !v.is_null())
        .map(|v| v.to_string().len())
        .sum::<usize>();
    let prompt_tokens = (prompt.len() + schema).div_ceil(4);
    let completion_tokens = content.len().div_ceil(4);
    json!({
        "id": "chatcmpl-oracle",
        "object": "chat.completion",
        "model": "fake-oracle",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content},
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    })
}

impl OracleLlm {
    /// Serves `/v1/chat/completions` on a loopback port from a thread, one request at a
    /// time (the evaluation runs one case at a time).
    fn start(fixes: Vec<(String, String, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let answer = oracle_answer(&request, &fixes).to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self {
            base_url: format!("http://{address}/v1"),
            calls,
        }
    }

    fn provider(&self) -> LlmProviderSettings {
        LlmProviderSettings {
            name: "fake-oracle".into(),
            kind: LlmProviderKind::Openai,
            base_url: self.base_url.clone(),
            api_key: "fake-key-0123456789".into(),
            model: "fake-oracle".into(),
            mode: LlmMode::SingleShot,
            timeout_secs: 30,
            ..Default::default()
        }
    }
}

/// With the rules off, every fixable case goes to the provider: the report's LLM
/// figures are the prompts' sizes, labelled as coming from a fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rules_off_a_fake_provider_fixes_and_the_prompt_sizes_are_reported() {
    let full = std::env::var("DBTOPS_EVAL_FAKE_LLM_CORPUS").ok();
    let scratch = tempfile::tempdir().expect("temp dir");
    let corpus = match &full {
        Some(path) => repo_root().join(path),
        None => {
            take_case(scratch.path(), "misspelt_column_staging", |_| {});
            take_case(scratch.path(), "broken_jinja", |_| {});
            scratch.path().to_path_buf()
        }
    };
    let cases = load_corpus(&corpus).expect("corpus loads");
    let oracle = OracleLlm::start(accepted_fixes(&cases));
    let mut settings = Settings::default();
    settings.fixer.rules_enabled = false;
    settings.fixer.providers = vec![oracle.provider()];
    let report = eval_with(
        &corpus,
        settings,
        EvalOptions {
            timeout: Duration::from_secs(300),
            only: Vec::new(),
            llm_note: Some(
                "FAKE model — a local OpenAI-compatible oracle that answers with the corpus's \
                 accepted fix and counts tokens as characters / 4; the token figures are the \
                 sizes of our prompts and answers, not a real model's"
                    .into(),
            ),
        },
    )
    .await
    .expect("eval runs");
    let table = report.table();
    println!("{table}");
    if full.is_some() {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    }
    assert!(oracle.calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(report.solved_by_rules, 0, "{table}");
    assert!(report.rule_stage_us.is_none(), "rules are off: {table}");
    assert!(table.contains("rules off"), "{table}");
    assert!(table.contains("NOTE on LLM figures: FAKE model"), "{table}");
    let tokens = report
        .llm_tokens_per_fixed_incident
        .clone()
        .expect("incidents fixed by the fake");
    assert!(
        tokens.input.p50 > 300.0,
        "a prompt with the evidence: {table}"
    );
    assert_eq!(report.llm_strategies, ["llm:fake-oracle/fake-oracle"]);
    if full.is_none() {
        assert_eq!(report.solved_by_llm, 2, "{table}");
        assert_eq!(tokens.total.count, 2, "{table}");
        let json = serde_json::to_value(&report).expect("report serializes");
        assert!(json["llm_note"]
            .as_str()
            .unwrap_or_default()
            .contains("FAKE"));
        assert_eq!(json["llm_tokens_per_fixed_incident"]["total"]["count"], 2);
    }
}

/// A fix made upstream (lineage scope: the branch edits the ancestor `stg_customers`, not
/// the failing `customers`) and a fix that only builds with the breakage's renamed seed
/// column are both scored by rows: the accepted content here carries an extra comment, so
/// neither branch is byte-equal to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_scores_an_upstream_fix_and_a_fix_for_a_renamed_seed_by_rows() {
    let names = ["bad_cast", "bikes_renamed_source_column"];
    // The oracle answers with the corpus's own accepted content…
    let oracle_corpus = tempfile::tempdir().expect("temp dir");
    for name in names {
        take_case(oracle_corpus.path(), name, |_| {});
    }
    let oracle = OracleLlm::start(accepted_fixes(
        &load_corpus(oracle_corpus.path()).expect("corpus loads"),
    ));
    // …and the evaluated cases accept that content with a comment on top.
    let corpus = tempfile::tempdir().expect("temp dir");
    take_case(corpus.path(), "bad_cast", |case| {
        let path = "models/staging/stg_customers.sql";
        let clean = std::fs::read_to_string(Path::new(&case.project).join(path)).expect("model");
        case.fixed
            .insert(path.to_owned(), format!("-- the accepted fix\n{clean}"));
    });
    take_case(corpus.path(), "bikes_renamed_source_column", |case| {
        for accepted in case.fixed.values_mut() {
            accepted.insert_str(0, "-- the accepted fix\n");
        }
    });
    let mut settings = Settings::default();
    settings.fixer.rules_enabled = false;
    settings.fixer.providers = vec![oracle.provider()];
    let report = eval_with(
        corpus.path(),
        settings,
        EvalOptions {
            timeout: Duration::from_secs(300),
            ..EvalOptions::default()
        },
    )
    .await
    .expect("eval runs");
    let table = report.table();
    println!("{table}");

    assert_eq!((report.validated, report.fixable), (2, 2), "{table}");
    assert_eq!(report.correct_fix, 2, "{table}");
    assert_eq!(report.correct_upstream_fix, 1, "{table}");
    let upstream = &report.cases[0];
    assert_eq!(upstream.name, "bad_cast");
    assert!(upstream.upstream_fix && upstream.correct_fix, "{table}");
    assert_eq!(upstream.fix_scope, dbtops_settings::FixScope::Lineage);
    // The failing model's own file is unchanged: the branch holds the ancestor's edit only.
    assert_eq!(upstream.fixed_files, ["models/staging/stg_customers.sql"]);
    assert!(upstream.fix_notes.is_empty(), "{:?}", upstream.fix_notes);
    let seed = &report.cases[1];
    assert!(seed.correct_fix && !seed.upstream_fix, "{table}");
    assert_eq!(seed.fix_scope, dbtops_settings::FixScope::Model);
    assert_eq!(seed.fixed_files, ["models/staging/stg_members.sql"]);
    assert!(seed.error.is_none(), "{:?}", seed.error);
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
    let json = serde_json::to_value(&report).expect("report serializes");
    assert_eq!(json["correct_upstream_fix"], 1);
    assert_eq!(json["cases"][0]["fix_scope"], "lineage");
    assert_eq!(json["cases"][0]["upstream_fix"], true);
    assert_eq!(json["lineage_cases"][0], "bad_cast");
}
