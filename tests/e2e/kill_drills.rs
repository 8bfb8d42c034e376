//! Kill drills: each service, running as its own OS process, is killed with SIGKILL while
//! it has an incident in hand and started again; and nats-server is killed right after a
//! submission. Every incident must still reach its outcome, with exactly one branch, one
//! `MergeRequestOpened`, no dead letter and no validation workspace left behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes, IncidentOutcome};
use dbtops_bus::{Bus, IncidentRecord, IncidentState};
use dbtops_e2e::processes::{
    consumer_info, is_alive, wait_until_idle, wait_until_pulling, SERVICES,
};
use dbtops_e2e::{ExampleRepo, ProcessSystem, TestSystem};
use dbtops_proto::v1;

use crate::fake_llm;

/// The service binary the drills start (see `tests/src/bin/dbtops-e2e-service.rs`).
const SERVICE_BINARY: &str = env!("CARGO_BIN_EXE_dbtops-e2e-service");
const STG_ORDERS: &str = "models/staging/stg_orders.sql";
const WAIT: Duration = Duration::from_secs(180);

/// A checkout of the example project whose `path` is broken by `from` → `to` (committed),
/// with a real, failing dbt run of `model` and its parents — cheaper than a full build.
fn broken_checkout(path: &str, from: &str, to: &str, model: &str) -> ExampleRepo {
    let repo = ExampleRepo::new();
    repo.break_model(path, from, to);
    let (ok, output) = repo.dbt(&["build", "--select", &format!("+{model}")]);
    assert!(!ok, "the broken project must fail:\n{output}");
    repo
}

/// `stg_orders` with a misspelt column, which a rule fixes.
fn misspelt_column_checkout() -> ExampleRepo {
    broken_checkout(
        STG_ORDERS,
        "    customer_id,\n",
        "    custmer_id,\n",
        "stg_orders",
    )
}

/// Submits the checkout's last run; returns the submission id.
async fn submit_run(bus: &Bus, repo: &ExampleRepo) -> String {
    submit(bus, &repo.project, None, None)
        .await
        .expect("submit")
        .submission_id
}

/// Every incident record there is (one system per drill: at most one).
async fn records(bus: &Bus) -> Vec<IncidentRecord> {
    let store = bus.incidents().await.expect("incident store");
    store.list().await.unwrap_or_default()
}

/// Waits until some incident's record satisfies `check`, polling the KV bucket.
async fn wait_for_record(
    bus: &Bus,
    what: &str,
    check: impl Fn(&IncidentRecord) -> bool,
) -> IncidentRecord {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(record) = records(bus).await.into_iter().find(|record| check(record)) {
            return record;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no incident {what}: {:?}",
            records(bus).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many messages on `subject` name `incident_id`, decoded with `incident_of`.
async fn count_for<M: dbtops_proto::WireMessage>(
    bus: &Bus,
    subject: &str,
    incident_id: &str,
    incident_of: impl Fn(&M) -> String,
) -> usize {
    bus.replay(subject)
        .await
        .expect("replay")
        .iter()
        .filter_map(|stored| stored.decode::<M>().ok())
        .filter(|message| incident_of(message) == incident_id)
        .count()
}

/// The submission's one incident reached a branch exactly once: one outcome, one fix
/// branch, one `FailureDetected` and one `MergeRequestOpened` in the stream, no dead
/// letter, and no validation workspace left.
async fn assert_delivered_once(
    bus: &Bus,
    repo: &ExampleRepo,
    submission_id: &str,
    workspace_root: &Path,
    logs: impl Fn() -> String,
) -> IncidentOutcome {
    let (outcomes, notes) = wait_for_outcomes(bus, submission_id, WAIT)
        .await
        .unwrap_or_else(|error| panic!("no outcome: {error}\n{}", logs()));
    assert_eq!(outcomes.len(), 1, "{outcomes:?} {notes:?}\n{}", logs());
    let outcome = outcomes[0].clone();
    assert_eq!(outcome.outcome, "branch_opened", "{outcome:?}\n{}", logs());
    let branches = repo.fix_branches();
    assert_eq!(branches.len(), 1, "{branches:?}");
    assert_eq!(Some(&branches[0]), outcome.branch.as_ref());

    let subjects = bus.subjects().clone();
    let detected = count_for(
        bus,
        &subjects.failure_detected(),
        &outcome.incident_id,
        |message: &v1::FailureDetected| message.incident_id.clone(),
    )
    .await;
    assert_eq!(detected, 1, "FailureDetected stored {detected} times");
    let opened = count_for(
        bus,
        &subjects.mr_opened(),
        &outcome.incident_id,
        |message: &v1::MergeRequestOpened| message.incident_id.clone(),
    )
    .await;
    assert_eq!(opened, 1, "MergeRequestOpened stored {opened} times");
    let letters = bus
        .replay(&format!("{}.dlq.>", bus.settings().subject_prefix))
        .await
        .expect("replay dead letters");
    assert!(
        letters.is_empty(),
        "dead letters: {:?}",
        letters
            .iter()
            .map(|letter| letter.decode::<v1::DeadLetter>().map(|l| l.reason))
            .collect::<Vec<_>>()
    );
    // A message redelivered around the kill may still be handled (idempotently): the
    // workspaces are counted once everything is answered.
    assert!(
        wait_until_idle(bus, &SERVICES).await,
        "the services never went idle:\n{}",
        logs()
    );
    assert_no_workspace_left(workspace_root, &logs).await;
    outcome
}

/// The validator's workspace root ends empty. A workspace is removed when its validation
/// ends, so this waits a little for the last one rather than assume it is gone.
async fn assert_no_workspace_left(workspace_root: &Path, logs: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = walkdir::WalkDir::new(workspace_root)
            .min_depth(1)
            .max_depth(3)
            .into_iter()
            .flatten()
            .map(|entry| entry.path().display().to_string())
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "validation workspaces left behind: {left:#?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The four services as processes, each pulling, with a 5 s ack wait.
async fn process_system(extra_toml: &str) -> ProcessSystem {
    let system = ProcessSystem::start(Path::new(SERVICE_BINARY), extra_toml).await;
    for durable in SERVICES {
        system.wait_until_pulling(durable).await;
    }
    system
}

/// Waits until the server's view of the durable consumer `durable` satisfies `check`.
async fn wait_for_consumer(
    system: &ProcessSystem,
    durable: &str,
    what: &str,
    check: impl Fn(&async_nats::jetstream::consumer::Info) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = consumer_info(&system.bus, durable).await;
        if info.as_ref().is_some_and(&check) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{durable}: never {what}: {info:?}\n{}",
            system.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detector_killed_holding_a_submission_the_restarted_detector_opens_the_incident() {
    let repo = misspelt_column_checkout();
    let mut system = process_system("").await;
    // Frozen while its pull request waits at the server, the detector is handed the
    // submission and cannot act on it: SIGKILL then lands with the submission delivered
    // and unacknowledged, before any incident is recorded.
    system.service("detector").freeze();
    let submission_id = submit_run(&system.bus, &repo).await;
    wait_for_consumer(&system, "detector", "delivered the submission", |info| {
        info.num_ack_pending >= 1
    })
    .await;
    assert!(records(&system.bus).await.is_empty(), "detected already");
    system.service("detector").kill_9();
    system.service("detector").restart();

    let logs = || system.logs();
    assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &system.workspace_root(),
        logs,
    )
    .await;
}

/// A stand-in for an OpenAI-compatible server whose first answer never comes (the fixer
/// is killed while it waits) and whose later answers restore the model's original SQL.
struct HeldLlm {
    /// Where it listens.
    address: std::net::SocketAddr,
    /// Requests so far.
    calls: Arc<AtomicUsize>,
    /// The server task.
    server: tokio::task::JoinHandle<()>,
}

impl HeldLlm {
    async fn start(path: &'static str, sql: String) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post({
                let calls = calls.clone();
                move || {
                    let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let answer = fake_llm::answer(path, &sql);
                    async move {
                        if call == 1 {
                            std::future::pending::<()>().await;
                        }
                        axum::Json(answer)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            calls,
            server,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The fixer's settings pointing here, as the drill's settings file has them: rules
    /// off, so the incident goes to the model whatever rules the fixer has.
    fn provider_toml(&self) -> String {
        format!(
            "[fixer]\nrules_enabled = false\n\n\
             [[fixer.providers]]\nname = \"held\"\nkind = \"openai\"\n\
             base_url = \"http://{}/v1\"\napi_key = \"test-key\"\n\
             model = \"fake-model\"\ntimeout_secs = 120\n",
            self.address
        )
    }
}

impl Drop for HeldLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixer_killed_while_it_waits_for_the_model_the_restarted_fixer_proposes_again() {
    let repo = misspelt_column_checkout();
    let original = std::fs::read_to_string(
        dbtops_e2e::repo_root()
            .join("examples/coffee_shop")
            .join(STG_ORDERS),
    )
    .expect("the example's model");
    let llm = HeldLlm::start(STG_ORDERS, original).await;
    let mut system = process_system(&llm.provider_toml()).await;
    let submission_id = submit_run(&system.bus, &repo).await;
    // The fixer has the incident in hand: it asked the model, which does not answer.
    let deadline = tokio::time::Instant::now() + WAIT;
    while llm.calls() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fixer never asked the model:\n{}",
            system.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = wait_for_record(&system.bus, "fixing", |record| {
        record.state == IncidentState::Fixing
    })
    .await;
    system.service("fixer").kill_9();
    system.service("fixer").restart();

    let logs = || system.logs();
    let outcome = assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &system.workspace_root(),
        logs,
    )
    .await;
    assert_eq!(outcome.incident_id, record.incident_id);
    // Asked once by the killed fixer, once by the restarted one: the attempt was redone,
    // not counted twice.
    assert_eq!(llm.calls(), 2);
    let store = system.bus.incidents().await.expect("incident store");
    let record = store
        .get(&outcome.incident_id)
        .await
        .expect("record")
        .expect("the incident");
    assert_eq!(record.attempts, 1, "{record:?}");
}

/// Waits until a validation workspace under `root` holds dbt's `target/`: the
/// validator is running dbt in it.
async fn wait_for_dbt_in_a_workspace(system: &ProcessSystem) -> PathBuf {
    let root = system.workspace_root();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let busy = std::fs::read_dir(&root)
            .expect("workspace root")
            .flatten()
            .map(|entry| entry.path())
            .find(|workspace| workspace.join("target").is_dir());
        if let Some(workspace) = busy {
            return workspace;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no validation ran dbt:\n{}",
            system.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_killed_while_dbt_runs_the_restarted_validator_validates_and_cleans_up() {
    let repo = misspelt_column_checkout();
    let mut system = process_system("").await;
    let submission_id = submit_run(&system.bus, &repo).await;
    let workspace = wait_for_dbt_in_a_workspace(&system).await;
    let record = wait_for_record(&system.bus, "validating", |record| {
        record.state == IncidentState::Validating
    })
    .await;
    // Its warm dbt workers run in process groups of their own: SIGKILL of the validator
    // does not reach them.
    let workers = system.service("validator").children();
    assert!(
        !workers.is_empty(),
        "the validator runs dbt in no child process"
    );
    system.service("validator").kill_9();
    assert!(
        workspace.exists(),
        "the killed validation left no workspace?"
    );
    system.service("validator").restart();

    // Nor do they outlive it: a worker of the killed validator ends once its call is done
    // and it finds its stdin closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while workers.iter().any(|pid| is_alive(*pid)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dbt workers {workers:?} of the killed validator are still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = || system.logs();
    let outcome = assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &system.workspace_root(),
        logs,
    )
    .await;
    assert_eq!(outcome.incident_id, record.incident_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_killed_right_after_writing_the_branch_the_restarted_delivery_opens_no_second() {
    let repo = misspelt_column_checkout();
    let mut system = process_system("").await;
    let submission_id = submit_run(&system.bus, &repo).await;
    // The fix branch's ref appears: delivery wrote it and has (most likely) not yet
    // recorded or acknowledged it. It is killed at once — a blocking poll, to be quick.
    let refs = repo.root.join(".git/refs/heads/dbt-ops/fix/stg_orders");
    let delivery = system.service("delivery");
    tokio::task::block_in_place(|| {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let written = std::fs::read_dir(&refs).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|entry| !entry.file_name().to_string_lossy().ends_with(".lock"))
            });
            if written {
                delivery.kill_9();
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no fix branch written"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    // Which side of the acknowledgement the kill landed on, for the record: either way
    // the incident must end with one branch and one merge request.
    let unacknowledged = consumer_info(&system.bus, "delivery")
        .await
        .map(|info| info.num_ack_pending);
    eprintln!("delivery killed with {unacknowledged:?} message(s) unacknowledged");
    system.service("delivery").restart();

    let logs = || system.logs();
    assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &system.workspace_root(),
        logs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_killed_right_after_a_submission_the_submission_is_still_processed() {
    let repo = misspelt_column_checkout();
    let mut system = TestSystem::start(|_| {}).await;
    for durable in SERVICES {
        assert!(
            wait_until_pulling(&system.bus, durable).await,
            "{durable} is not pulling"
        );
    }
    let submission_id = submit_run(&system.bus, &repo).await;
    // The publish was acked: the submission is stored. The server dies at once — before,
    // or while, the detector handles it — and comes back on the same port and store. (A
    // handler's request in flight at that moment is answered by nobody: the handler waits
    // out the request timeout, ~10 s, then retries.)
    system.server.stop();
    system.server.restart().expect("nats-server restarts");
    let workspace_root = system.workspace_root();
    assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &workspace_root,
        String::new,
    )
    .await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_back_without_the_detectors_consumer_the_detector_binds_it_again() {
    let repo = misspelt_column_checkout();
    let mut system = TestSystem::start(|_| {}).await;
    for durable in SERVICES {
        assert!(
            wait_until_pulling(&system.bus, durable).await,
            "{durable} is not pulling"
        );
    }
    // The server dies and comes back with its store, less the detector's durable consumer
    // (a lost or restored-from-backup store, an operator's cleanup): the detector's pulls
    // then reach nobody, and before the fix nothing was ever delivered to it again.
    system.server.stop();
    let consumer_dir = system
        .scratch
        .path()
        .join("nats/jetstream/$G/streams")
        .join(&system.settings.nats.stream)
        .join("obs/detector");
    assert!(
        consumer_dir.is_dir(),
        "{} is missing",
        consumer_dir.display()
    );
    std::fs::remove_dir_all(&consumer_dir).expect("remove the consumer's store");
    system.server.restart().expect("nats-server restarts");

    let submission_id = submit_run(&system.bus, &repo).await;
    let workspace_root = system.workspace_root();
    assert_delivered_once(
        &system.bus,
        &repo,
        &submission_id,
        &workspace_root,
        String::new,
    )
    .await;
    system.stop().await;
}
