//! Scale: three `dbt-ops-fixer` processes bound to one durable consumer on a real
//! nats-server share 30 incidents — each attempt is handled exactly once, and every
//! process does some of the work.
//!
//! Who handled what is read from each process's own log: the fixer logs one
//! `Proposal published.` line per proposal with the incident id, and each process's
//! stderr is a separate pipe. The server's consumer state adds that nothing was delivered
//! twice.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbtops_bus::{Bus, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::service::{wait_for, WAIT};

const INCIDENTS: usize = 30;
const PROCESSES: usize = 3;

/// An incident the `misspelt_column` rule fixes: no LLM, no dbt needed.
pub fn misspelt_column_incident(n: usize) -> v1::FailureDetected {
    let name = format!("orders_{n:02}");
    v1::FailureDetected {
        incident_id: format!("scale{n:011}"),
        submission_id: "scale".into(),
        project: Some(v1::ProjectRef {
            name: "shop".into(),
            model_paths: vec!["models".into()],
            ..Default::default()
        }),
        model: Some(v1::ModelRef {
            unique_id: format!("model.shop.{name}"),
            name: name.clone(),
            path: format!("models/{name}.sql"),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::MissingColumn as i32,
            message: format!("Runtime Error in model {name} (models/{name}.sql)\n  Binder Error: Referenced column \"custmer_id\" not found in FROM clause!\n  Candidate bindings: \"stg_orders.customer_id\""),
            signature: format!("sig-{n}"),
            needs_human: false,
        }),
        evidence: Some(v1::Evidence {
            model_sql: "select\n    order_id,\n    custmer_id,\n    amount,\n    status\nfrom {{ ref('stg_orders') }}\n".into(),
            parents: vec![v1::ParentColumns {
                unique_id: "model.shop.stg_orders".into(),
                name: "stg_orders".into(),
                columns: vec!["order_id".into(), "customer_id".into(), "amount".into(), "status".into()],
                origin: "manifest".into(),
            }],
            adapter: "duckdb".into(),
            dbt_version: "1.11.2".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Polls the durable's state until `done` holds (the server has no event for it).
async fn wait_for_consumer(
    bus: &Bus,
    what: &str,
    done: impl Fn(&async_nats::jetstream::consumer::Info) -> bool,
) -> async_nats::jetstream::consumer::Info {
    let stream = bus
        .jetstream()
        .get_stream(&bus.settings().stream)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(info) = stream.consumer_info(dbtops_fixer::SERVICE).await {
            if done(&info) {
                return info;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}: {info:?}");
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: no consumer yet"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_fixer_processes_share_one_durable_consumer_and_handle_each_attempt_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&dir.path().join("nats")).expect("nats-server starts");
    let mut settings = Settings::default();
    settings.nats.url = server.url();
    let bus = Bus::connect(&settings.nats).await.unwrap();

    let mut processes = Vec::new();
    for _ in 0..PROCESSES {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbt-ops-fixer"))
            // An empty directory: no dbt-ops.toml to pick up.
            .current_dir(dir.path())
            .env("NATS_URL", server.url())
            .env("DBT_OPS__FIXER__CONCURRENCY", "1")
            .env("DBT_OPS__TELEMETRY__LOG_FORMAT", "json")
            .env("DBT_OPS__TELEMETRY__OTLP_ENDPOINT", "")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("dbt-ops-fixer starts");
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take().unwrap();
        let reader = tokio::spawn({
            let lines = lines.clone();
            async move {
                let mut stderr = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = stderr.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        processes.push((child, lines, reader));
    }

    // Publish only once all three are pulling, so none can drain the queue alone before
    // the others have bound.
    wait_for_consumer(&bus, "three replicas pulling", |info| {
        info.num_waiting >= PROCESSES
    })
    .await;
    for n in 0..INCIDENTS {
        let incident = misspelt_column_incident(n);
        bus.publish(
            &bus.subjects().failure_detected(),
            &format!("{}.detected.1", incident.incident_id),
            &incident,
        )
        .await
        .unwrap();
    }

    let proposals = wait_for(&bus, &bus.subjects().fix_proposed(), INCIDENTS).await;
    let info = wait_for_consumer(&bus, "every message acked", |info| {
        info.num_pending == 0 && info.num_ack_pending == 0
    })
    .await;
    assert_eq!(
        info.num_redelivered, 0,
        "a message was delivered twice: {info:?}"
    );

    // Stop the processes (SIGTERM to the ids of the children this test started) and
    // read what each one logged.
    for (child, _, _) in &processes {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    let mut handled_by: Vec<Vec<String>> = Vec::new();
    for (mut child, lines, reader) in processes {
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        let published: Vec<String> = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["fields"]["message"] == "Proposal published.")
            .map(|event| {
                event["fields"]["incident_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        handled_by.push(published);
    }

    let mut times: HashMap<&str, usize> = HashMap::new();
    for incident_id in handled_by.iter().flatten() {
        *times.entry(incident_id.as_str()).or_default() += 1;
    }
    assert_eq!(times.len(), INCIDENTS, "{handled_by:?}");
    assert!(
        times.values().all(|&n| n == 1),
        "handled more than once: {times:?}"
    );
    let counts: Vec<usize> = handled_by.iter().map(Vec::len).collect();
    eprintln!("proposals published per process: {counts:?}");
    assert!(
        counts.iter().all(|&n| n > 0),
        "a process did no work: {counts:?}"
    );

    // On the bus: one proposal per incident, from the rule.
    let mut proposed = HashSet::new();
    for stored in &proposals {
        let message: v1::FixProposed = stored.decode().unwrap();
        let incident_id = message.incident.unwrap().incident_id;
        assert!(
            proposed.insert(incident_id.clone()),
            "two proposals for {incident_id}"
        );
        assert_eq!(message.attempt, 1);
        let proposal = message.proposal.unwrap();
        assert_eq!(proposal.strategy, "rule:misspelt_column");
        assert!(proposal.fixed_sql.contains("    customer_id,\n"));
    }
    assert_eq!(proposed.len(), INCIDENTS);
    drop(server);
}
