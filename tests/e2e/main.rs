//! End to end: a broken model in a real git repository, a real dbt run, a real
//! nats-server, the four services — and what comes out the other end.

mod bad_input;
mod cluster;
mod fake_llm;
mod faults;
mod kill_drills;
mod lineage;

use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes, IncidentOutcome};
use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_e2e::{span_exporter, ExampleRepo, TestSystem};
use dbtops_proto::v1;
use dbtops_settings::{LlmProviderKind, LlmProviderSettings};

const STG_ORDERS: &str = "models/staging/stg_orders.sql";
const CUSTOMERS: &str = "models/marts/customers.sql";
/// A date compared to an integer: no rule fixes it, so these tests reach the LLM.
const COMPLETED: &str = "    where order_status = 'completed'\n";
const DATE_AS_INTEGER: &str =
    "    where order_status = 'completed'\n      and order_date >= 20240101\n";
const WAIT: Duration = Duration::from_secs(300);

async fn submit_and_wait(system: &TestSystem, repo: &ExampleRepo) -> Vec<IncidentOutcome> {
    let submitted = submit(&system.bus, &repo.project, None, None)
        .await
        .expect("submit");
    let (outcomes, _notes) = wait_for_outcomes(&system.bus, &submitted.submission_id, WAIT)
        .await
        .expect("outcomes");
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_column_becomes_a_validated_branch_in_one_trace() {
    let repo = ExampleRepo::new();
    let original = repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok, "the broken project must fail:\n{output}");
    assert!(output.contains("custmer_id"), "{output}");
    let head_before = repo.git(&["rev-parse", "HEAD"]);
    let status_before = repo.git(&["status", "--porcelain"]);

    let system = TestSystem::start(|_| {}).await;
    let outcomes = submit_and_wait(&system, &repo).await;

    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let outcome = &outcomes[0];
    assert_eq!(outcome.outcome, "branch_opened", "{outcome:?}");
    assert_eq!(outcome.model, "stg_orders");
    let branch = outcome.branch.clone().expect("a branch");
    assert!(branch.starts_with("dbt-ops/fix/stg_orders/"), "{branch}");

    // The branch restores the column, changing nothing else.
    let fixed = repo.git(&[
        "show",
        &format!("{branch}:analytics/coffee_shop/{STG_ORDERS}"),
    ]);
    assert_eq!(fixed, original);
    let changed = repo.git(&["diff", "--name-only", "main", &branch]);
    assert_eq!(
        changed.trim(),
        format!("analytics/coffee_shop/{STG_ORDERS}")
    );

    // The user's checkout was not touched.
    assert_eq!(repo.git(&["rev-parse", "HEAD"]), head_before);
    assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
    assert_eq!(repo.git(&["branch", "--show-current"]).trim(), "main");

    // dbt passes on the branch.
    let checkout = repo.root.join("../fixed-checkout");
    repo.git(&["worktree", "add", "-q", checkout.to_str().unwrap(), &branch]);
    let (ok, output) = dbtops_e2e::run_dbt(&checkout.join("analytics/coffee_shop"), &["build"]);
    assert!(ok, "dbt build fails on the fix branch:\n{output}");

    // The merge request description sits beside the branch, inside .git.
    let store = system.bus.incidents().await.unwrap();
    let record = store.get(&outcome.incident_id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1);
    let description_dir = repo.root.join(".git/dbt-ops/merge-requests");
    let description = std::fs::read_dir(&description_dir)
        .expect("descriptions dir")
        .next()
        .expect("one description")
        .unwrap()
        .path();
    let description = std::fs::read_to_string(description).unwrap();
    assert!(description.contains("custmer_id"), "{description}");
    assert!(description.contains("+    customer_id,"), "{description}");
    assert!(
        description.contains("| dbt build --empty | passed |"),
        "{description}"
    );

    // Every hop is one trace: submit → detector → fixer → validator → delivery.
    let trace_id = record.trace_id.clone().expect("a trace id on the incident");
    let spans = span_exporter().get_finished_spans().unwrap();
    let in_trace: Vec<String> = spans
        .iter()
        .filter(|span| span.span_context.trace_id().to_string() == trace_id)
        .map(|span| span.name.to_string())
        .collect();
    for hop in [
        "submit",
        "detector.submission",
        "fixer.attempt",
        "validator.attempt",
        "validator.dbt",
        "delivery.fix",
    ] {
        assert!(
            in_trace.iter().any(|name| name == hop),
            "no {hop} span in trace {trace_id}: {in_trace:?}"
        );
    }
    let spans_of_incident_elsewhere = spans
        .iter()
        .filter(|span| span.span_context.trace_id().to_string() != trace_id)
        .filter(|span| {
            span.attributes
                .iter()
                .any(|kv| kv.value.as_str() == outcome.incident_id.as_str())
        })
        .count();
    assert_eq!(
        spans_of_incident_elsewhere, 0,
        "spans of the incident outside its trace"
    );

    assert!(
        std::fs::read_dir(system.workspace_root())
            .unwrap()
            .next()
            .is_none(),
        "validation workspaces left behind"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_run_submitted_twice_is_one_incident_and_one_branch() {
    let repo = ExampleRepo::new();
    repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, _) = repo.dbt(&["build"]);
    assert!(!ok);
    let system = TestSystem::start(|_| {}).await;

    // Twice at once, then once more after the first outcome.
    let (first, second) = tokio::join!(
        submit_and_wait(&system, &repo),
        submit_and_wait(&system, &repo)
    );
    let third = submit_and_wait(&system, &repo).await;
    let all: Vec<&IncidentOutcome> = first.iter().chain(&second).chain(&third).collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all
        .iter()
        .all(|outcome| outcome.incident_id == first[0].incident_id));
    assert!(
        all.iter().all(|outcome| outcome.outcome == "branch_opened"),
        "{all:?}"
    );
    assert!(third[0].recurrence, "the third submission is a recurrence");
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());

    let opened = system
        .bus
        .replay(&system.bus.subjects().mr_opened())
        .await
        .unwrap();
    assert_eq!(opened.len(), 1, "one mr.opened event");
    let record = system
        .bus
        .incidents()
        .await
        .unwrap()
        .get(&first[0].incident_id)
        .await
        .unwrap()
        .unwrap();
    assert!(record.recurrences >= 1, "{record:?}");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_that_never_validates_is_abandoned_after_max_attempts() {
    let repo = ExampleRepo::new();
    repo.break_model(CUSTOMERS, COMPLETED, DATE_AS_INTEGER);
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok);
    assert!(
        output.contains("Cannot compare values of type DATE"),
        "{output}"
    );
    // A model that always answers, and always wrongly: a new unknown function each time.
    let llm = fake_llm::FakeLlm::start(|call, request| {
        let sql = fake_llm::model_sql_from(request)
            .replace("20240101", &format!("to_chr_{call}(20240101)"));
        fake_llm::answer(CUSTOMERS, &sql)
    })
    .await;
    let system = TestSystem::start(|settings| {
        settings.fixer.max_attempts = 3;
        // The type_mismatch rule would fix this breakage: the LLM path is under test.
        settings.fixer.rules_enabled = false;
        settings.fixer.providers = vec![llm.provider("fake")];
    })
    .await;
    let outcomes = submit_and_wait(&system, &repo).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let outcome = &outcomes[0];
    assert_eq!(outcome.outcome, "abandoned", "{outcome:?}");
    assert_eq!(outcome.reason.as_deref(), Some("attempts_exhausted"));
    assert!(
        outcome
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("to_chr_3"),
        "{outcome:?}"
    );
    assert!(repo.fix_branches().is_empty());

    // Three calls; each after the first carried dbt's error for the attempt before
    // (reflection), and every call asked for the strict schema with the key.
    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    for (index, request) in requests.iter().enumerate() {
        assert_eq!(request.authorization.as_deref(), Some("Bearer test-key"));
        assert_eq!(
            request.body["response_format"]["json_schema"]["strict"],
            true
        );
        let prompt = request.body["messages"][1]["content"].as_str().unwrap();
        for earlier in 1..=index {
            assert!(
                prompt.contains(&format!("to_chr_{earlier}")),
                "call {index}: {prompt}"
            );
        }
    }
    let failed = system
        .bus
        .replay(&system.bus.subjects().compile_failed())
        .await
        .unwrap();
    assert_eq!(failed.len(), 3);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_proposal_is_validated_and_delivered() {
    let repo = ExampleRepo::new();
    let original = repo.break_model(CUSTOMERS, COMPLETED, DATE_AS_INTEGER);
    let (ok, _) = repo.dbt(&["build"]);
    assert!(!ok);
    let fixed = original.clone();
    let llm = fake_llm::FakeLlm::start(move |_, _| fake_llm::answer(CUSTOMERS, &fixed)).await;
    let system = TestSystem::start(|settings| {
        // The type_mismatch rule would fix this breakage: the LLM path is under test.
        settings.fixer.rules_enabled = false;
        settings.fixer.providers = vec![llm.provider("fake")];
    })
    .await;
    let outcomes = submit_and_wait(&system, &repo).await;
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    let branch = outcomes[0].branch.clone().unwrap();
    let content = repo.git(&[
        "show",
        &format!("{branch}:analytics/coffee_shop/{CUSTOMERS}"),
    ]);
    assert_eq!(content, original);
    let validated = system
        .bus
        .replay(&system.bus.subjects().fix_validated())
        .await
        .unwrap();
    let validated: v1::FixValidated = validated[0].decode().unwrap();
    assert_eq!(validated.proposal.unwrap().strategy, "llm:fake/fake-model");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_dead_lettered_and_the_next_one_is_handled() {
    let system = TestSystem::start(|_| {}).await;
    let bus = &system.bus;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MESSAGE_TYPE, "dbtops.v1.FailureDetected");
    bus.publish_raw(
        &bus.subjects().failure_detected(),
        headers,
        bytes::Bytes::from_static(b"\x0a\xff\xff this is not protobuf"),
    )
    .await
    .unwrap();
    // A well-formed incident no rule can fix, with no LLM configured: abandoned.
    let good = v1::FailureDetected {
        incident_id: "feedfacecafebeef".into(),
        model: Some(v1::ModelRef {
            unique_id: "model.p.m".into(),
            name: "m".into(),
            path: "models/m.sql".into(),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::JinjaCompilation as i32,
            message: "Compilation Error".into(),
            ..Default::default()
        }),
        evidence: Some(v1::Evidence {
            model_sql: "select {{ broken".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    bus.publish(&bus.subjects().failure_detected(), "good.detected.0", &good)
        .await
        .unwrap();

    let abandoned = wait_for(&system, &bus.subjects().incident_abandoned(), 1).await;
    let abandoned: v1::IncidentAbandoned = abandoned[0].decode().unwrap();
    assert_eq!(abandoned.incident_id, "feedfacecafebeef");
    assert_eq!(abandoned.reason, "no_fix_found");
    let letters = wait_for(&system, &bus.subjects().dead_letter("fixer"), 1).await;
    let letter: v1::DeadLetter = letters[0].decode().unwrap();
    assert_eq!(letter.original_subject, bus.subjects().failure_detected());
    assert!(letter.reason.contains("malformed"), "{}", letter.reason);
    system.stop().await;
}

/// Waits until `count` messages are stored on `subject`, woken by each new one.
async fn wait_for(
    system: &TestSystem,
    subject: &str,
    count: usize,
) -> Vec<dbtops_bus::StoredMessage> {
    let mut live = system
        .bus
        .client()
        .subscribe(subject.to_owned())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = system.bus.replay(subject).await.unwrap();
        if stored.len() >= count {
            return stored;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "{subject}: {} of {count}",
            stored.len()
        );
        let _ = tokio::time::timeout(remaining, futures_next(&mut live)).await;
    }
}

async fn futures_next(subscriber: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    use futures::StreamExt;
    subscriber.next().await
}

/// The provider settings pointing at a fake.
trait ProviderFor {
    fn provider(&self, name: &str) -> LlmProviderSettings;
}

impl ProviderFor for fake_llm::FakeLlm {
    fn provider(&self, name: &str) -> LlmProviderSettings {
        LlmProviderSettings {
            name: name.into(),
            kind: LlmProviderKind::Openai,
            base_url: self.base_url(),
            api_key: "test-key".into(),
            model: "fake-model".into(),
            timeout_secs: 30,
            ..Default::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_failure_in_two_checkouts_gets_a_branch_in_each() {
    let first = ExampleRepo::new();
    let second = ExampleRepo::new();
    for repo in [&first, &second] {
        repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
        let (ok, _) = repo.dbt(&["build"]);
        assert!(!ok);
    }
    let system = TestSystem::start(|_| {}).await;
    let in_first = submit_and_wait(&system, &first).await;
    let in_second = submit_and_wait(&system, &second).await;
    assert_eq!(in_first[0].outcome, "branch_opened", "{in_first:?}");
    assert_eq!(in_second[0].outcome, "branch_opened", "{in_second:?}");
    // One failure, one incident id — but each checkout's repository got its own branch.
    assert_eq!(in_first[0].incident_id, in_second[0].incident_id);
    assert_eq!(first.fix_branches().len(), 1);
    assert_eq!(
        second.fix_branches().len(),
        1,
        "no branch in the second checkout"
    );
    let opened = system
        .bus
        .replay(&system.bus.subjects().mr_opened())
        .await
        .unwrap();
    assert_eq!(opened.len(), 2, "one mr.opened per checkout");
    // A third submission from the second checkout is a recurrence there.
    let again = submit_and_wait(&system, &second).await;
    assert!(again[0].recurrence, "{again:?}");
    assert_eq!(second.fix_branches().len(), 1);
    system.stop().await;
}
