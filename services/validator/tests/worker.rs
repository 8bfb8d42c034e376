//! The warm dbt worker: survives dbt's exceptions, is replaced after a crash, is retired
//! past its memory limit — with real dbt.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use dbtops_proto::v1;
use dbtops_validator::{Validator, Verdict};

fn kill_now(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn worker_pid(steps: &[v1::ValidationStep]) -> u32 {
    let output = &steps
        .iter()
        .find(|step| step.name == "dbt compile")
        .unwrap()
        .output;
    let start = output.find("pid ").expect("run by a worker") + 4;
    output[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warm_worker_survives_a_dbt_exception_and_is_replaced_after_a_crash() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::MissingColumn, "custmer_id");
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    settings.validator.downstream = "off".into();
    settings.validator.data_check = "off".into();
    let validator = Validator::new(&settings).unwrap();
    let pool = validator.workers().unwrap().clone();
    let key = project.path.display().to_string();

    // dbt raises while compiling the proposal: the attempt fails, the worker lives.
    let raising = good.replacen(
        "select",
        "{{ exceptions.raise_compiler_error('boom from the fix') }}\nselect",
        1,
    );
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &raising),
        )
        .await
        .unwrap();
    let Verdict::Failed {
        failed_step,
        error_text,
        steps,
    } = verdict
    else {
        panic!("validated a model that raises")
    };
    assert_eq!(failed_step, "dbt compile");
    assert!(error_text.contains("boom from the fix"), "{error_text}");
    let first = worker_pid(&steps);
    assert_eq!(pool.idle_pids(), vec![first]);

    // Exceptions dbtRunner hands back (a usage error, a missing project) leave it alive.
    let mut lease = pool.checkout(&key).await.unwrap();
    assert_eq!(lease.pid(), Some(first));
    let reply = lease
        .call(
            &["no-such-command".into()],
            &project.path,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(!reply.ok);
    assert!(
        reply
            .exception
            .as_deref()
            .unwrap_or_default()
            .contains("No such command"),
        "{reply:?}"
    );
    let reply = lease
        .call(
            &[
                "compile".into(),
                "--project-dir".into(),
                "/nonexistent/project".into(),
            ],
            &project.path,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(!reply.ok, "{reply:?}");
    assert_eq!(lease.pid(), Some(first));

    // Killed in the middle of a call: the call reports the death, the next call gets a
    // new worker.
    let args: Vec<String> = ["parse", "--project-dir", &key, "--profiles-dir", &key]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    let (died, ()) = tokio::join!(
        lease.call(&args, &project.path, Duration::from_secs(120)),
        async { kill_now(first) }
    );
    assert!(died.is_err(), "{died:?}");
    let reply = lease
        .call(&args, &project.path, Duration::from_secs(120))
        .await
        .unwrap();
    assert!(reply.ok, "{}", reply.output);
    let second = lease.pid().unwrap();
    assert_ne!(second, first);
    drop(lease);

    // The same worker validates the right fix.
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &good),
        )
        .await
        .unwrap();
    let Verdict::Validated { steps } = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(worker_pid(&steps), second);

    // Killed while idle: the next validation starts a new one.
    kill_now(second);
    let verdict = validator
        .validate(
            &incident.detected,
            &incident.model,
            &proposal(STG_ORDERS, &good),
        )
        .await
        .unwrap();
    let Verdict::Validated { steps } = verdict else {
        panic!("{verdict:?}")
    };
    let third = worker_pid(&steps);
    assert!(third != second && third != first);
    assert!(!is_running(first) && !is_running(second));
    assert_eq!(pool.started(), 3);
    assert_eq!(pool.idle_pids(), vec![third]);
    assert_eq!(pool.live(), 1);

    // Dropping the validator ends its workers.
    drop(validator);
    pool.shutdown();
    assert!(!is_running(third), "an idle worker outlived its pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_memory_limit_is_retired_after_its_call() {
    let project = Project::copy();
    project.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let incident = project.incident(STG_ORDERS, v1::ErrorClass::MissingColumn, "custmer_id");
    let good = project
        .read(STG_ORDERS)
        .replace("custmer_id", "customer_id");
    let root = tempfile::tempdir().unwrap();
    let mut settings = settings(root.path());
    // A dbt process needs ~200 MB: every call goes over.
    settings.validator.worker_max_memory_mb = 64;
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
        .unwrap();
    assert!(matches!(verdict, Verdict::Validated { .. }), "{verdict:?}");
    let pool = validator.workers().unwrap();
    // Two dbt calls, two workers; none kept.
    assert_eq!(pool.started(), 2);
    assert!(pool.idle_pids().is_empty());
    assert_eq!(pool.live(), 0);
}
