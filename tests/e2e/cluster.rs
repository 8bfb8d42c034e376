//! The cluster, tested: three nats-server nodes in one JetStream cluster, the stream, the
//! incidents KV bucket and the artifacts object store with three replicas, the four
//! services connected to one node — and that node killed during a burst of incidents.
//!
//! The bus connects to one URL (`nats.url` holds one server); the client learns the other
//! nodes from the cluster's INFO and reconnects to one of them, which this drill relies on
//! and checks.

use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes, IncidentOutcome};
use dbtops_bus::Bus;
use dbtops_e2e::processes::{wait_until_idle, wait_until_pulling, SERVICES};
use dbtops_e2e::{dbt_bin, ExampleRepo, NatsCluster};
use dbtops_proto::v1;
use dbtops_settings::Settings;

const WAIT: Duration = Duration::from_secs(240);

/// One broken staging model: its file, the text replaced, its replacement, its name.
type Breakage = (&'static str, &'static str, &'static str, &'static str);

/// Three checkouts with two misspelt columns each (a rule fixes every one): six incidents
/// with six different signatures, so none is a recurrence of another.
const CHECKOUTS: [[Breakage; 2]; 3] = [
    [
        (
            "models/staging/stg_orders.sql",
            "    customer_id,\n",
            "    custmer_id,\n",
            "stg_orders",
        ),
        (
            "models/staging/stg_stores.sql",
            "    seat_count\n",
            "    seat_cont\n",
            "stg_stores",
        ),
    ],
    [
        (
            "models/staging/stg_products.sql",
            "    category as product_category,",
            "    categry as product_category,",
            "stg_products",
        ),
        (
            "models/staging/stg_customers.sql",
            "    home_store_id,\n",
            "    home_stor_id,\n",
            "stg_customers",
        ),
    ],
    [
        (
            "models/staging/stg_order_items.sql",
            "    quantity\n",
            "    quantty\n",
            "stg_order_items",
        ),
        (
            "models/staging/stg_orders.sql",
            "    store_id,\n",
            "    stor_id,\n",
            "stg_orders",
        ),
    ],
];

/// A checkout with `breakages` committed and a real, failing dbt run of the broken models
/// and their parents.
fn broken_checkout(breakages: &[Breakage]) -> ExampleRepo {
    let repo = ExampleRepo::new();
    let mut selection = Vec::new();
    for (path, from, to, model) in breakages {
        repo.break_model(path, from, to);
        selection.push(format!("+{model}"));
    }
    let mut args = vec!["build", "--select"];
    args.extend(selection.iter().map(String::as_str));
    let (ok, output) = repo.dbt(&args);
    assert!(!ok, "the broken project must fail:\n{output}");
    repo
}

/// How many `MergeRequestOpened` the stream holds, or `None` while it cannot be read.
async fn merge_requests_opened(bus: &Bus) -> Option<usize> {
    let subject = bus.subjects().mr_opened();
    let read = tokio::time::timeout(Duration::from_secs(10), bus.replay(&subject)).await;
    match read {
        Ok(Ok(stored)) => Some(stored.len()),
        _ => None,
    }
}

/// Waits until the stream holds at least `count` `MergeRequestOpened`.
async fn wait_for_merge_requests(bus: &Bus, count: usize, cluster: &NatsCluster) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if merge_requests_opened(bus).await.unwrap_or(0) >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {count} merge requests opened:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_incidents_survives_losing_the_node_the_services_are_connected_to() {
    dbtops_e2e::span_exporter();
    // The checkouts' dbt runs, side by side.
    let preparing: Vec<_> = CHECKOUTS
        .iter()
        .map(|breakages| tokio::task::spawn_blocking(move || broken_checkout(breakages)))
        .collect();
    let mut repos = Vec::new();
    for prepared in preparing {
        repos.push(prepared.await.expect("checkout prepared"));
    }

    let scratch = tempfile::tempdir().expect("temp dir");
    let mut cluster = NatsCluster::start(&scratch.path().join("cluster")).await;
    let workspaces = scratch.path().join("workspaces");
    std::fs::create_dir_all(&workspaces).expect("workspace root");
    let mut settings = Settings::default();
    settings.nats.url = cluster.url(0);
    settings.nats.replicas = 3;
    settings.nats.ack_wait_secs = 10;
    settings.validator.dbt_bin = dbt_bin().display().to_string();
    settings.validator.workspace_root = workspaces.display().to_string();
    settings.validator.dbt_timeout_secs = 240;
    // Each checkout has two broken staging models, and their children's other parents
    // are the other broken one: the downstream rung would refuse every fix for a failure
    // that is not the incident's. This drill is about the bus, not that rung.
    settings.validator.downstream = "off".into();
    let bus = Bus::connect(&settings.nats).await.expect("bus connects");

    // The layout is replicated: the stream, the KV bucket and the object store each
    // have a leader and two current replicas.
    for stream_name in [
        settings.nats.stream.clone(),
        format!("KV_{}", settings.nats.incidents_bucket),
        format!("OBJ_{}", settings.nats.artifacts_bucket),
    ] {
        let mut stream = bus
            .jetstream()
            .get_stream(&stream_name)
            .await
            .unwrap_or_else(|error| panic!("{stream_name}: {error}"));
        let info = stream.info().await.expect("stream info");
        assert_eq!(info.config.num_replicas, 3, "{stream_name}");
        let cluster_info = info.cluster.clone().expect("cluster info");
        assert!(
            cluster_info.leader.is_some(),
            "{stream_name}: {cluster_info:?}"
        );
        assert_eq!(
            cluster_info.replicas.len(),
            2,
            "{stream_name}: {cluster_info:?}"
        );
    }

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let services = tokio::spawn(dbt_ops::system::run_all(
        bus.clone(),
        settings.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    for durable in SERVICES {
        assert!(
            wait_until_pulling(&bus, durable).await,
            "{durable} is not pulling"
        );
    }

    // The burst: three submissions, six incidents.
    let mut submissions = Vec::new();
    for repo in &repos {
        let submitted = submit(&bus, &repo.project, None, None)
            .await
            .expect("submit");
        submissions.push(submitted.submission_id);
    }
    // Once the first incident is delivered the others are in flight: the node the
    // services are connected to dies, and stays down while more incidents are delivered
    // through the two that remain (a quorum of the three replicas).
    wait_for_merge_requests(&bus, 1, &cluster).await;
    let connected = bus.client().server_info().server_name;
    let killed = cluster
        .index_of(&connected)
        .unwrap_or_else(|| panic!("connected to an unknown node {connected:?}"));
    cluster.kill(killed);
    wait_for_merge_requests(&bus, 3, &cluster).await;
    let now_connected = bus.client().server_info().server_name;
    assert_ne!(
        now_connected,
        cluster.name(killed),
        "the services did not move to another node"
    );
    // It comes back and catches up while the rest of the burst is handled.
    cluster.restart(killed).await;

    let mut outcomes: Vec<IncidentOutcome> = Vec::new();
    for submission_id in &submissions {
        let (found, notes) = wait_for_outcomes(&bus, submission_id, WAIT)
            .await
            .unwrap_or_else(|error| panic!("{submission_id}: {error}\n{}", cluster.logs()));
        assert_eq!(found.len(), 2, "{submission_id}: {found:?} {notes:?}");
        outcomes.extend(found);
    }
    for outcome in &outcomes {
        assert_eq!(outcome.outcome, "branch_opened", "{outcomes:#?}");
        assert!(!outcome.recurrence, "{outcomes:#?}");
    }
    let mut incident_ids: Vec<&str> = outcomes.iter().map(|o| o.incident_id.as_str()).collect();
    incident_ids.sort_unstable();
    incident_ids.dedup();
    assert_eq!(incident_ids.len(), 6, "{outcomes:#?}");

    // Exactly once: one branch per incident, one FailureDetected and one
    // MergeRequestOpened per incident in the stream, nothing dead-lettered.
    for repo in &repos {
        let branches = repo.fix_branches();
        assert_eq!(branches.len(), 2, "{branches:?}");
    }
    let subjects = bus.subjects().clone();
    let opened: Vec<String> = bus
        .replay(&subjects.mr_opened())
        .await
        .expect("replay")
        .iter()
        .map(|stored| {
            stored
                .decode::<v1::MergeRequestOpened>()
                .expect("MergeRequestOpened")
                .incident_id
        })
        .collect();
    let detected: Vec<String> = bus
        .replay(&subjects.failure_detected())
        .await
        .expect("replay")
        .iter()
        .map(|stored| {
            stored
                .decode::<v1::FailureDetected>()
                .expect("FailureDetected")
                .incident_id
        })
        .collect();
    for incident_id in &incident_ids {
        let times_opened = opened.iter().filter(|id| id == incident_id).count();
        assert_eq!(times_opened, 1, "{incident_id}: {opened:?}");
        let times_detected = detected.iter().filter(|id| id == incident_id).count();
        assert_eq!(times_detected, 1, "{incident_id}: {detected:?}");
    }
    assert_eq!(opened.len(), 6, "{opened:?}");
    let letters = bus
        .replay(&format!("{}.dlq.>", settings.nats.subject_prefix))
        .await
        .expect("replay dead letters");
    assert!(letters.is_empty(), "{} dead letters", letters.len());
    // A message redelivered around the failover may still be handled (idempotently):
    // the workspaces are counted once everything is answered.
    assert!(
        wait_until_idle(&bus, &SERVICES).await,
        "the services never went idle"
    );
    let left: Vec<String> = walkdir::WalkDir::new(&workspaces)
        .min_depth(1)
        .max_depth(3)
        .into_iter()
        .flatten()
        .map(|entry| entry.path().display().to_string())
        .collect();
    assert!(
        left.is_empty(),
        "validation workspaces left behind: {left:#?}"
    );

    let _ = stop.send(());
    services
        .await
        .expect("services task")
        .expect("services stop cleanly");
}
