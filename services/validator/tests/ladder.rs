//! The ladder with real dbt on copies of the example project: which rung catches what,
//! and what never happens to the user's project.

mod common;

use common::*;
use dbtops_proto::v1;
use dbtops_validator::{validate, Validator, Verdict};

fn step_names(steps: &[v1::ValidationStep]) -> Vec<&str> {
    steps.iter().map(|step| step.name.as_str()).collect()
}

fn validated(verdict: Verdict) -> Vec<v1::ValidationStep> {
    match verdict {
        Verdict::Validated { steps } => steps,
        Verdict::Failed {
            failed_step,
            error_text,
            steps,
        } => panic!("failed at {failed_step}: {error_text}\n{steps:#?}"),
    }
}

fn failed(verdict: Verdict) -> (String, String, Vec<v1::ValidationStep>) {
    match verdict {
        Verdict::Failed {
            failed_step,
            error_text,
            steps,
        } => (failed_step, error_text, steps),
        Verdict::Validated { steps } => panic!("validated: {steps:#?}"),
    }
}

fn step<'a>(steps: &'a [v1::ValidationStep], name: &str) -> &'a v1::ValidationStep {
    steps
        .iter()
        .find(|step| step.name == name)
        .unwrap_or_else(|| panic!("no step {name}: {steps:#?}"))
}

const EVERY_RUNG: &[&str] = &[
    "guardrails",
    "jinja delimiters",
    "refs kept",
    "dbt compile",
    "sql parse",
    "dbt build --empty",
    "downstream",
    "dbt build with data",
    "data check",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_fix_climbs_every_rung_in_a_warm_worker() {
    let project = Project::copy();
    let fixed = project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let root = tempfile::tempdir().unwrap();
    let settings = settings(root.path());
    let before = project.snapshot();

    let verdict = validate(
        &settings,
        &incident.detected,
        &incident.model,
        &proposal(STG_ORDERS, &fixed),
    )
    .await
    .expect("dbt runs");
    let steps = validated(verdict);
    assert_eq!(step_names(&steps), EVERY_RUNG);
    for name in [
        "dbt compile",
        "dbt build --empty",
        "downstream",
        "dbt build with data",
    ] {
        assert!(
            step(&steps, name).output.contains("[warm worker, pid "),
            "{name}: {}",
            step(&steps, name).output
        );
    }
    assert!(
        step(&steps, "sql parse").output.contains("duckdb dialect"),
        "{steps:#?}"
    );
    // The failed run never built stg_orders: nothing to compare with.
    assert!(
        step(&steps, "data check")
            .output
            .contains("no earlier version of stg_orders"),
        "{steps:#?}"
    );

    assert_eq!(project.snapshot(), before, "the user's project changed");
    // The verdict comes before the workspace's removal ends.
    Validator::shared(&settings)
        .unwrap()
        .wait_for_removals()
        .await;
    assert!(entries(root.path()).is_empty(), "workspaces left behind");
    Validator::shared(&settings).unwrap().shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_compiles_but_selects_a_missing_column_fails_at_build_empty() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let wrong = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_idx");
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();

    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &wrong),
        )
        .await
        .expect("dbt runs");
    let (failed_step, error_text, steps) = failed(verdict);
    assert_eq!(failed_step, "dbt build --empty");
    assert!(step(&steps, "dbt compile").ok, "compile alone passes it");
    assert!(error_text.contains("customer_idx"), "{error_text}");
    assert!(!error_text.contains("Running with dbt"), "{error_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fix_that_breaks_a_child_fails_at_the_downstream_step() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    // Fixes the column, and renames an output column that `orders` selects.
    let renaming = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id")
        .replace("as order_date", "as order_day");
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();

    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &renaming),
        )
        .await
        .expect("dbt runs");
    let (failed_step, error_text, steps) = failed(verdict);
    assert_eq!(failed_step, "downstream", "{steps:#?}");
    assert!(
        step(&steps, "dbt build --empty").ok,
        "the model itself builds"
    );
    assert!(error_text.contains("order_date"), "{error_text}");
    assert!(error_text.contains("orders"), "{error_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cast_and_a_division_by_zero_pass_empty_and_fail_with_data() {
    let project = Project::copy();
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();

    // `n/a` loyalty points: try_cast is there for a reason.
    let incident = project.incident(STG_CUSTOMERS, v1::ErrorClass::TypeMismatch, "a type error");
    let bad_cast = project.read(STG_CUSTOMERS).replace(
        "try_cast(loyalty_points as integer)",
        "cast(loyalty_points as integer)",
    );
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_CUSTOMERS, &bad_cast),
        )
        .await
        .expect("dbt runs");
    let (failed_step, error_text, steps) = failed(verdict);
    assert_eq!(failed_step, "dbt build with data", "{steps:#?}");
    assert!(step(&steps, "dbt build --empty").ok);
    assert!(error_text.contains("Conversion Error"), "{error_text}");

    // The station kiosk has no seats: nullif is there for a reason.
    let incident = project.incident(
        STORE_REVENUE,
        v1::ErrorClass::RuntimeData,
        "a runtime error",
    );
    let unguarded = project
        .read(STORE_REVENUE)
        .replace("nullif(s.seat_count, 0)", "s.seat_count");
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STORE_REVENUE, &unguarded),
        )
        .await
        .expect("dbt runs");
    let (failed_step, error_text, steps) = failed(verdict);
    assert_eq!(failed_step, "dbt build with data", "{steps:#?}");
    assert!(error_text.contains("Division by zero"), "{error_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_check_flags_a_changed_output_and_can_fail_it() {
    let project = Project::built();
    let good = project.break_model(
        REVENUE_DAILY,
        "strftime(order_date, '%Y-%m')",
        "to_char(order_date, 'YYYY-MM')",
    );
    let incident = project.incident(
        REVENUE_DAILY,
        v1::ErrorClass::UnknownFunction,
        "Catalog Error: Scalar Function with name to_char does not exist!",
    );
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    let validator = Validator::new(&settings).unwrap();

    // The right fix: the same output as the last good run.
    let steps = validated(
        validator
            .validate(
                &incident.detected,
                &incident.model,
                &proposal(REVENUE_DAILY, &good),
            )
            .await
            .expect("dbt runs"),
    );
    let check = step(&steps, "data check");
    assert!(
        check.output.starts_with("same 7 columns and types"),
        "{}",
        check.output
    );

    // A "fix" that drops a column and half the rows: flagged, not failed.
    let changed = good
        .replace(
            ",\n    round(sum(order_total) / count(distinct order_id), 2) as average_order_value",
            "",
        )
        .replace(
            "where order_status = 'completed'",
            "where order_status = 'completed' and order_date < '2024-03-03'",
        );
    assert_ne!(changed, good);
    let steps = validated(
        validator
            .validate(
                &incident.detected,
                &incident.model,
                &proposal(REVENUE_DAILY, &changed),
            )
            .await
            .expect("dbt runs"),
    );
    let check = step(&steps, "data check");
    assert!(check.output.starts_with("FLAGGED"), "{}", check.output);
    assert!(
        check
            .output
            .contains("column `average_order_value` (DECIMAL(18,2)) is gone")
            || check.output.contains("column `average_order_value`"),
        "{}",
        check.output
    );
    assert!(check.output.contains("row count"), "{}", check.output);

    // Configured to fail on a difference.
    settings.validator.data_check = "fail".into();
    let strict = Validator::new(&settings).unwrap();
    let (failed_step, error_text, _) = failed(
        strict
            .validate(
                &incident.detected,
                &incident.model,
                &proposal(REVENUE_DAILY, &changed),
            )
            .await
            .expect("dbt runs"),
    );
    assert_eq!(failed_step, "data check");
    assert!(error_text.contains("average_order_value"), "{error_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hopeless_statement_stops_at_the_sql_parse() {
    let project = Project::copy();
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::SqlSyntax, "syntax error");
    let with_semicolon = format!("{};\n", project.read(STG_ORDERS).trim_end());
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();
    let (failed_step, error_text, steps) = failed(
        validator
            .validate(
                &incident.detected,
                &incident.model,
                &proposal(STG_ORDERS, &with_semicolon),
            )
            .await
            .expect("dbt runs"),
    );
    assert_eq!(failed_step, "sql parse");
    assert!(step(&steps, "dbt compile").ok);
    assert!(error_text.contains("a `;` on line"), "{error_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_project_is_byte_identical_after_any_validation() {
    // A project with everything a user's has after a run: database, target/ (with a
    // partial-parse file the validator reads), logs/.
    let project = Project::built();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, _) = project.dbt(&["build"]);
    assert!(!ok, "the broken project fails");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let bad = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_idx");
    let before = project.snapshot();
    assert!(before.contains_key("coffee_shop.duckdb"));
    assert!(before.contains_key("target/partial_parse.msgpack"));

    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    let warm = Validator::new(&settings).unwrap();
    settings.validator.worker = false;
    let cold = Validator::new(&settings).unwrap();
    for validator in [&warm, &cold] {
        validated(
            validator
                .validate(
                    &incident.detected,
                    &incident.model,
                    &proposal(STG_ORDERS, &good),
                )
                .await
                .expect("dbt runs"),
        );
        failed(
            validator
                .validate(
                    &incident.detected,
                    &incident.model,
                    &proposal(STG_ORDERS, &bad),
                )
                .await
                .expect("dbt runs"),
        );
        assert_eq!(project.snapshot(), before, "the user's project changed");
    }
    for validator in [&warm, &cold] {
        validator.wait_for_removals().await;
    }
    assert!(entries(root.path()).is_empty(), "workspaces left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validations_of_the_same_project_at_once_do_not_interfere() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let bad = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_idx");
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    settings.validator.concurrency = 2;
    let validator = Validator::new(&settings).unwrap();
    let before = project.snapshot();

    let good_proposal = proposal(STG_ORDERS, &good);
    let bad_proposal = proposal(STG_ORDERS, &bad);
    let (first, second) = tokio::join!(
        validator.validate(&incident.detected, &incident.model, &good_proposal),
        validator.validate(&incident.detected, &incident.model, &bad_proposal),
    );
    let good_steps = validated(first.expect("dbt runs"));
    let (failed_step, error_text, bad_steps) = failed(second.expect("dbt runs"));
    assert_eq!(failed_step, "dbt build --empty");
    assert!(error_text.contains("customer_idx"), "{error_text}");
    // Neither saw the other's file.
    for step in &good_steps {
        assert!(!step.output.contains("customer_idx"), "{step:?}");
    }

    // Two workers, one each: dbt runs one invocation at a time per process.
    let pid_of = |steps: &[v1::ValidationStep]| {
        let output = &step(steps, "dbt compile").output;
        let start = output.find("pid ").expect("a worker pid") + 4;
        output[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    assert_ne!(pid_of(&good_steps), pid_of(&bad_steps));
    assert_eq!(validator.workers().unwrap().idle_pids().len(), 2);
    assert_eq!(project.snapshot(), before);
    validator.wait_for_removals().await;
    assert!(entries(root.path()).is_empty(), "workspaces left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_concurrency_one_validations_wait_their_turn() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::MissingColumn, "custmer_id");
    let good = proposal(
        STG_ORDERS,
        &project
            .read(STG_ORDERS)
            .replace("custmer_id", "customer_id"),
    );
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    settings.validator.downstream = "off".into();
    settings.validator.run_with_data = "never".into();
    assert_eq!(settings.validator.concurrency, 1);
    let validator = Validator::new(&settings).unwrap();
    let (first, second) = tokio::join!(
        validator.validate(&incident.detected, &incident.model, &good),
        validator.validate(&incident.detected, &incident.model, &good),
    );
    // Had they overlapped, the second would have found the one worker slot taken and
    // run in subprocesses.
    let first = validated(first.unwrap());
    let second = validated(second.unwrap());
    let runner = |steps: &[v1::ValidationStep]| {
        let output = &step(steps, "dbt build --empty").output;
        output[output.find('[').unwrap()..]
            .lines()
            .next()
            .unwrap()
            .to_owned()
    };
    assert!(
        runner(&first).starts_with("[warm worker, pid "),
        "{first:#?}"
    );
    assert_eq!(runner(&first), runner(&second));
    assert_eq!(validator.workers().unwrap().started(), 1);
}

/// Two models broken in one run, `customers` reading both (through `orders`): the fix of
/// `stg_orders` is right, and `customers` still fails because `stg_customers` does. With
/// the other failure named in the incident, the downstream check leaves its dependents
/// out; without it, the fix is blamed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_other_failures_are_left_out_of_the_downstream_check() {
    let project = Project::copy();
    let original = project.read(STG_ORDERS);
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    project.break_model(
        "models/staging/stg_customers.sql",
        "    home_store_id,\n",
        "    home_stor_id,\n",
    );
    let mut incident = project.incident(
        STG_ORDERS,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
    );
    let root = tempfile::tempdir().unwrap();
    let validator = Validator::new(&settings(root.path())).unwrap();

    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &original),
        )
        .await
        .expect("dbt runs");
    let (failed_step, error_text, _) = failed(verdict);
    assert_eq!(failed_step, "downstream");
    assert!(error_text.contains("home_stor_id"), "{error_text}");

    incident.detected.failing_elsewhere = vec!["model.coffee_shop.stg_customers".into()];
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &original),
        )
        .await
        .expect("dbt runs");
    let steps = validated(verdict);
    let downstream = step(&steps, "downstream");
    assert!(
        downstream
            .output
            .contains("--exclude +stg_orders stg_customers+"),
        "{}",
        downstream.output
    );
}
