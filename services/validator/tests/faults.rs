//! Bad input and faults: refused before anything is written, timeouts that kill the whole
//! process group, and environment failures that are retried rather than blamed on the fix.

mod common;

use common::*;
use dbtops_proto::v1;
use dbtops_validator::{ValidationFault, Validator, Verdict, MAX_SQL_BYTES};

fn failed_step(verdict: Verdict) -> (String, String) {
    match verdict {
        Verdict::Failed {
            failed_step,
            error_text,
            ..
        } => (failed_step, error_text),
        Verdict::Validated { steps } => panic!("validated: {steps:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_oversized_sql_are_rejected_before_anything_is_written() {
    let project = Project::copy();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), project.path.join("models/linked")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();
    let original = project.read(STG_ORDERS);
    let oversized = format!("{original}\n-- {}\n", "x".repeat(MAX_SQL_BYTES));
    let before = project.snapshot();

    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // (incident's model, proposal's path, SQL, failed step, a word of the reason)
        (
            STG_ORDERS,
            "seeds/raw_orders.sql",
            &original,
            "guardrails",
            "model",
        ),
        (
            STG_ORDERS,
            "models/staging/stg_orders.yml",
            &original,
            "guardrails",
            ".sql",
        ),
        (
            STG_ORDERS,
            "/tmp/stg_orders.sql",
            &original,
            "guardrails",
            "absolute",
        ),
        (
            STG_ORDERS,
            "models/../macros/stg_orders.sql",
            &original,
            "guardrails",
            "..",
        ),
        (
            "models/linked/escape.sql",
            "models/linked/escape.sql",
            "select 1 as x",
            "guardrails",
            "symbolic link",
        ),
        (STG_ORDERS, STG_ORDERS, &oversized, "guardrails", "bytes"),
        (
            STG_ORDERS,
            STG_ORDERS,
            "select * from {{ ref('raw_orders') as x",
            "jinja delimiters",
            "never closed",
        ),
        (
            STG_ORDERS,
            STG_ORDERS,
            "select 1 as order_id",
            "refs kept",
            "ref('raw_orders')",
        ),
    ];
    for (model_path, path, sql, expected_step, reason) in cases {
        let incident = project.incident(model_path, v1::ErrorClass::SqlSyntax, "syntax error");
        let verdict = validator
            .validate(&incident.detected, &incident.model, &proposal(path, sql))
            .await
            .expect("refused, not retried");
        let (step, error_text) = failed_step(verdict);
        assert_eq!(&step, expected_step, "{path}: {error_text}");
        assert!(
            error_text.to_lowercase().contains(&reason.to_lowercase()),
            "{path}: {error_text}"
        );
        assert!(
            entries(root.path()).is_empty(),
            "{path}: a workspace was made"
        );
        assert!(entries(outside.path()).is_empty(), "{path}: wrote outside");
    }
    assert_eq!(project.snapshot(), before);
    // Refused before dbt could start: not even a worker.
    assert_eq!(validator.workers().unwrap().started(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_dbt_is_killed_with_its_process_group_and_the_attempt_fails_with_timeout() {
    let project = Project::copy();
    let incident = project.incident(REVENUE_DAILY, v1::ErrorClass::RuntimeData, "an error");
    // Compiles at once; running it sums 10^13 numbers. Both sides of the cross join have
    // one row even when `--empty` empties the ref, so nothing short-circuits.
    let hanging = "select s.n, o.c\nfrom (select sum(x) as n from range(10000000000000) as t(x)) as s\ncross join (select count(*) as c from {{ ref('orders') }}) as o\n";
    let root = tempfile::tempdir().unwrap();
    for worker in [true, false] {
        let mut settings = settings(root.path());
        settings.validator.worker = worker;
        settings.validator.dbt_timeout_secs = 20;
        let validator = Validator::new(&settings).unwrap();
        let verdict = validator
            .validate(
                &incident.detected,
                &incident.model,
                &proposal(REVENUE_DAILY, hanging),
            )
            .await
            .expect("a timeout fails the attempt; it is not retried");
        let Verdict::Failed {
            failed_step,
            error_text,
            steps,
        } = verdict
        else {
            panic!("validated a query that never ends")
        };
        assert_eq!(failed_step, "dbt build --empty", "worker {worker}");
        assert!(error_text.starts_with("timeout: "), "{error_text}");
        assert!(error_text.contains("process group"), "{error_text}");
        let timed_out = steps.last().unwrap();
        assert!(timed_out.duration_ms >= 20_000, "{timed_out:?}");
        if worker {
            let compile = &steps
                .iter()
                .find(|s| s.name == "dbt compile")
                .unwrap()
                .output;
            let start = compile.find("pid ").unwrap() + 4;
            let pid: u32 = compile[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap();
            assert!(!is_running(pid), "the hung worker {pid} still runs");
            let pool = validator.workers().unwrap();
            assert_eq!(pool.live(), 0, "a killed worker still counts");
        }
        assert_eq!(
            processes_under_after(root.path(), std::time::Duration::from_secs(10)),
            Vec::<u32>::new(),
            "dbt left running"
        );
        validator.wait_for_removals().await;
        assert!(entries(root.path()).is_empty(), "workspaces left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbt_missing_or_a_broken_profile_is_a_retry_not_a_failure() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::MissingColumn, "custmer_id");
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let fix = proposal(STG_ORDERS, &good);
    let root = tempfile::tempdir().unwrap();
    let retry_reason = |result: Result<Verdict, ValidationFault>| match result {
        Err(ValidationFault::Retry(reason)) => reason,
        Ok(verdict) => panic!("blamed on the fix: {verdict:?}"),
    };

    // No dbt, and no Python for a worker either.
    let mut missing = settings(root.path());
    missing.validator.dbt_bin = "/nonexistent/bin/dbt".into();
    missing.validator.python = "/nonexistent/bin/python3".into();
    let validator = Validator::new(&missing).unwrap();
    let reason = retry_reason(
        validator
            .validate(&incident.detected, &incident.model, &fix)
            .await,
    );
    assert!(reason.contains("cannot run dbt"), "{reason}");
    validator.wait_for_removals().await;

    // A profiles.yml that does not parse, through the warm worker.
    let profiles = tempfile::tempdir().unwrap();
    std::fs::write(
        profiles.path().join("profiles.yml"),
        "coffee_shop:\n  target: dev\n  outputs: [\n",
    )
    .unwrap();
    let mut broken = settings(root.path());
    broken.validator.profiles_dir = profiles.path().display().to_string();
    let validator = Validator::new(&broken).unwrap();
    let reason = retry_reason(
        validator
            .validate(&incident.detected, &incident.model, &fix)
            .await,
    );
    assert!(reason.contains("profiles.yml"), "{reason}");
    validator.wait_for_removals().await;

    // A target the profile does not have, through subprocesses.
    let mut no_target = settings(root.path());
    no_target.validator.target = "nope".into();
    no_target.validator.worker = false;
    let validator = Validator::new(&no_target).unwrap();
    let reason = retry_reason(
        validator
            .validate(&incident.detected, &incident.model, &fix)
            .await,
    );
    assert!(reason.contains("does not have a target named"), "{reason}");
    validator.wait_for_removals().await;
    assert!(entries(root.path()).is_empty(), "workspaces left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_worker_the_ladder_falls_back_to_subprocesses() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::MissingColumn, "custmer_id");
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    settings.validator.python = "/nonexistent/bin/python3".into();
    // The short ladder: this test is about who runs dbt, not what it checks.
    settings.validator.downstream = "off".into();
    settings.validator.run_with_data = "never".into();
    let validator = Validator::new(&settings).unwrap();
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &good),
        )
        .await
        .expect("dbt runs");
    let Verdict::Validated { steps } = verdict else {
        panic!("{verdict:?}")
    };
    let names: Vec<&str> = steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "guardrails",
            "jinja delimiters",
            "refs kept",
            "dbt compile",
            "sql parse",
            "dbt build --empty"
        ]
    );
    let compile = &steps[3].output;
    assert!(
        compile.contains("[subprocess; no warm worker: cannot start the dbt worker"),
        "{compile}"
    );
}
