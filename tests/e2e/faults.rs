//! Fault drills: the bus going away in the middle of an incident, and a catalogue of bad
//! input — each with the clear error, dead letter or abandoned reason it must produce, and
//! the system still serving a good incident afterwards.

use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes};
use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_e2e::{ExampleRepo, TestSystem};
use dbtops_proto::v1;

const STG_ORDERS: &str = "models/staging/stg_orders.sql";
const WAIT: Duration = Duration::from_secs(300);

/// An artifact of a `RunSubmitted`: its kind and its bytes.
type Artifact = (&'static str, Vec<u8>);

/// Breaks `stg_orders` (a misspelt column a rule fixes) and runs real dbt on it.
fn broken_repo() -> ExampleRepo {
    let repo = ExampleRepo::new();
    repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok, "the broken project must fail:\n{output}");
    repo
}

/// Submits the repository's last run and asserts that its one incident got a branch.
async fn assert_good_incident_gets_a_branch(system: &TestSystem, repo: &ExampleRepo) {
    let submitted = submit(&system.bus, &repo.project, None, None)
        .await
        .expect("submit");
    let (outcomes, _notes) = wait_for_outcomes(&system.bus, &submitted.submission_id, WAIT)
        .await
        .expect("outcomes");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_incident_the_incident_still_reaches_its_branch() {
    let repo = broken_repo();
    let mut system = TestSystem::start(|_| {}).await;
    let submitted = submit(&system.bus, &repo.project, None, None)
        .await
        .expect("submit");
    // Once the detector has opened the incident (its record is written before it is
    // published), the bus dies under the fixer, validator and delivery while they work
    // on it, and comes back on the same port with the same store.
    let store = system.bus.incidents().await.expect("incident store");
    let verdict = store
        .wait_for_submission(&submitted.submission_id, WAIT)
        .await
        .expect("the detector answers")
        .expect("the detector processed the run");
    assert_eq!(verdict.new_incident_ids.len(), 1, "{verdict:?}");
    system.server.stop();
    system.server.restart().expect("nats-server restarts");

    let (outcomes, _notes) = wait_for_outcomes(&system.bus, &submitted.submission_id, WAIT)
        .await
        .expect("outcomes after the restart");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());

    // A second outage between incidents: the next incident is served too.
    system.server.restart().expect("nats-server restarts again");
    let other = broken_repo();
    assert_good_incident_gets_a_branch(&system, &other).await;
    system.stop().await;
}

/// The incident a proposal or a validated fix belongs to, pointing at the real repository
/// so only the thing under test is wrong.
fn incident(id: &str, repo: &ExampleRepo) -> v1::FailureDetected {
    v1::FailureDetected {
        incident_id: id.into(),
        submission_id: format!("{id}-submission"),
        project: Some(v1::ProjectRef {
            name: "coffee_shop".into(),
            project_dir: repo.project.display().to_string(),
            repo_dir: repo.root.display().to_string(),
            commit_sha: repo.git(&["rev-parse", "HEAD"]).trim().to_owned(),
            branch: "main".into(),
            model_paths: vec!["models".into()],
        }),
        model: Some(v1::ModelRef {
            unique_id: "model.coffee_shop.stg_orders".into(),
            name: "stg_orders".into(),
            path: STG_ORDERS.into(),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::MissingColumn as i32,
            message: "Binder Error: Referenced column \"custmer_id\" not found".into(),
            ..Default::default()
        }),
        evidence: Some(v1::Evidence {
            model_sql: std::fs::read_to_string(repo.project.join(STG_ORDERS)).expect("model"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn proposal(path: &str, sql: &str) -> v1::FixProposal {
    v1::FixProposal {
        model_path: path.into(),
        fixed_sql: sql.into(),
        explanation: "fault drill".into(),
        error_class: v1::ErrorClass::MissingColumn as i32,
        confidence: 1.0,
        strategy: "drill".into(),
        ..Default::default()
    }
}

fn run_submitted(id: &str, repo: &ExampleRepo, artifacts: Vec<Artifact>) -> v1::RunSubmitted {
    v1::RunSubmitted {
        submission_id: id.into(),
        project: Some(v1::ProjectRef {
            name: "coffee_shop".into(),
            project_dir: repo.project.display().to_string(),
            repo_dir: repo.root.display().to_string(),
            commit_sha: repo.git(&["rev-parse", "HEAD"]).trim().to_owned(),
            branch: "main".into(),
            model_paths: vec!["models".into()],
        }),
        artifacts: artifacts
            .into_iter()
            .map(|(kind, content)| v1::Artifact {
                kind: kind.into(),
                size_bytes: content.len() as u64,
                body: Some(v1::artifact::Body::Inline(content)),
            })
            .collect(),
        submitted_at: "2026-11-25T00:00:00Z".into(),
    }
}

/// Everything the system said about the bad input, for the assertions' messages.
#[derive(Debug)]
struct Observed {
    /// Dead letters: (service, the submission or incident id when the payload decodes,
    /// reason).
    letters: Vec<(String, String, String)>,
    /// Abandoned incidents: (incident, reason, detail).
    abandoned: Vec<(String, String, String)>,
    /// Processed submissions: (submission, new incidents, notes).
    processed: Vec<(String, usize, String)>,
    /// Proposals the validator refused: (incident, failed step, dbt's or the check's error).
    refused: Vec<(String, String, String)>,
}

impl Observed {
    async fn collect(system: &TestSystem) -> Self {
        let bus = &system.bus;
        let mut letters = Vec::new();
        for service in ["detector", "fixer", "validator", "delivery"] {
            for stored in bus
                .replay(&bus.subjects().dead_letter(service))
                .await
                .unwrap()
            {
                let letter: v1::DeadLetter = stored.decode().unwrap();
                let id = prost::Message::decode(letter.payload.as_slice())
                    .map(|run: v1::RunSubmitted| run.submission_id)
                    .unwrap_or_default();
                letters.push((service.to_owned(), id, letter.reason));
            }
        }
        let abandoned = bus
            .replay(&bus.subjects().incident_abandoned())
            .await
            .unwrap()
            .iter()
            .map(|stored| {
                let message: v1::IncidentAbandoned = stored.decode().unwrap();
                (message.incident_id, message.reason, message.detail)
            })
            .collect();
        let processed = bus
            .replay(&bus.subjects().run_processed())
            .await
            .unwrap()
            .iter()
            .map(|stored| {
                let message: v1::RunProcessed = stored.decode().unwrap();
                (
                    message.submission_id,
                    message.new_incident_ids.len(),
                    message.notes.join(" | "),
                )
            })
            .collect();
        let refused = bus
            .replay(&bus.subjects().compile_failed())
            .await
            .unwrap()
            .iter()
            .map(|stored| {
                let message: v1::CompileFailed = stored.decode().unwrap();
                let incident = message.incident.map(|i| i.incident_id).unwrap_or_default();
                (incident, message.failed_step, message.error_text)
            })
            .collect();
        Self {
            letters,
            abandoned,
            processed,
            refused,
        }
    }

    /// The dead letter of `service` about `id`, if any.
    fn letter(&self, service: &str, id: &str) -> Option<&str> {
        self.letters
            .iter()
            .find(|(s, letter_id, _)| s == service && letter_id == id)
            .map(|(_, _, reason)| reason.as_str())
    }

    /// The reason and detail `incident` was abandoned with, if it was.
    fn abandoned(&self, incident: &str) -> Option<(&str, &str)> {
        self.abandoned
            .iter()
            .find(|(id, _, _)| id == incident)
            .map(|(_, reason, detail)| (reason.as_str(), detail.as_str()))
    }

    /// The step and error the validator refused `incident`'s proposal with, if it did.
    fn refused(&self, incident: &str) -> Option<(&str, &str)> {
        self.refused
            .iter()
            .find(|(id, _, _)| id == incident)
            .map(|(_, step, error)| (step.as_str(), error.as_str()))
    }

    /// The verdict on `submission`: (new incidents, notes), if processed.
    fn processed(&self, submission: &str) -> Option<(usize, &str)> {
        self.processed
            .iter()
            .find(|(id, _, _)| id == submission)
            .map(|(_, incidents, notes)| (*incidents, notes.as_str()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_or_abandoned_and_the_system_keeps_serving() {
    let repo = broken_repo();
    let system = TestSystem::start(|_| {}).await;
    let bus = &system.bus;
    let subjects = bus.subjects().clone();
    let raw = |subject: String, type_name: &'static str, payload: Vec<u8>| async move {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MESSAGE_TYPE, type_name);
        bus.publish_raw(&subject, headers, bytes::Bytes::from(payload))
            .await
            .unwrap();
    };

    // 1. Undecodable protobuf on run.submitted.
    raw(
        subjects.run_submitted(),
        "dbtops.v1.RunSubmitted",
        b"\x0a\xff\xff not protobuf".to_vec(),
    )
    .await;
    // 2. An unknown message type on a service subject.
    raw(
        subjects.fix_proposed(),
        "dbtops.v1.SomethingElse",
        b"\x0a\x03abc".to_vec(),
    )
    .await;
    // 3–6. Artifacts that are corrupt, truncated, binary; and none at all.
    let good_results =
        std::fs::read(repo.project.join("target/run_results.json")).expect("run_results");
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let cases: Vec<(&str, Vec<Artifact>)> = vec![
        (
            "corrupt",
            vec![("run_results.json", b"{ this is not json".to_vec())],
        ),
        (
            "truncated",
            vec![(
                "run_results.json",
                good_results[..good_results.len() / 2].to_vec(),
            )],
        ),
        (
            "binary",
            vec![
                ("run_results.json", binary.clone()),
                ("dbt.log", binary.clone()),
                ("manifest.json", binary.clone()),
            ],
        ),
        (
            "wrong-schema",
            vec![(
                "run_results.json",
                br#"{"results": "not a list", "metadata": 7}"#.to_vec(),
            )],
        ),
        ("empty", vec![]),
        ("unknown-kind", vec![("core.dump", binary.clone())]),
    ];
    for (id, artifacts) in &cases {
        let message = run_submitted(id, &repo, artifacts.clone());
        bus.publish(
            &subjects.run_submitted(),
            &format!("{id}.submitted"),
            &message,
        )
        .await
        .unwrap();
    }
    // 7. Oversized fields: a 512 KB model name and error message.
    let mut oversized = incident("oversized0000001", &repo);
    if let Some(model) = oversized.model.as_mut() {
        model.name = "m".repeat(512 * 1024);
    }
    bus.publish(
        &subjects.failure_detected(),
        "oversized.detected.0",
        &oversized,
    )
    .await
    .unwrap();
    // 8–10. Proposals no validator may accept, published straight onto fix.proposed.
    let clean_sql = std::fs::read_to_string(
        dbtops_e2e::repo_root()
            .join("examples/coffee_shop")
            .join(STG_ORDERS),
    )
    .expect("clean model");
    let proposals = [
        (
            "traversal0000001",
            proposal("../../../etc/passwd.sql", &clean_sql),
        ),
        (
            "nonsql0000000001",
            proposal("models/staging/_staging.yml", &clean_sql),
        ),
        (
            "ddl0000000000001",
            proposal(STG_ORDERS, "drop table main.raw_orders"),
        ),
    ];
    for (id, proposal) in &proposals {
        let message = v1::FixProposed {
            incident: Some(incident(id, &repo)),
            attempt: 1,
            proposal: Some(proposal.clone()),
            history: vec![],
        };
        bus.publish(
            &subjects.fix_proposed(),
            &format!("{id}.proposed.1"),
            &message,
        )
        .await
        .unwrap();
    }
    // 11. A validated fix for a file outside the model paths, straight to delivery.
    let outside = v1::FixValidated {
        incident: Some(incident("outside000000001", &repo)),
        attempt: 1,
        proposal: Some(proposal("macros/cents_to_dollars.sql", "select 1")),
        steps: vec![],
        diff: String::new(),
        history: vec![],
    };
    bus.publish(&subjects.fix_validated(), "outside.validated.1", &outside)
        .await
        .unwrap();

    // After all that, a good incident is still processed end to end.
    assert_good_incident_gets_a_branch(&system, &repo).await;

    // The abandonments come from other services than the good incident's last hop: wait
    // for all five rather than assume they are done.
    wait_for_count(&system, &subjects.incident_abandoned(), 5).await;
    let observed = Observed::collect(&system).await;
    let all = format!("{observed:#?}");

    // The detector: undecodable messages and unusable artifacts are dead-lettered with a
    // reason naming the artifact and what is wrong with it; none opens an incident.
    assert!(
        observed
            .letters
            .iter()
            .any(|(service, _, reason)| service == "detector"
                && reason.starts_with("malformed dbtops.v1.RunSubmitted")),
        "1 undecodable: {all}"
    );
    let expect_letter = |id: &str, needles: &[&str]| {
        let reason = observed
            .letter("detector", id)
            .unwrap_or_else(|| panic!("{id}: no dead letter: {all}"));
        for needle in needles {
            assert!(reason.contains(needle), "{id}: {reason:?} lacks {needle:?}");
        }
        assert!(
            observed.processed(id).is_none(),
            "{id} opened incidents: {all}"
        );
    };
    expect_letter("corrupt", &["run_results.json is not valid JSON"]);
    expect_letter("truncated", &["run_results.json is truncated"]);
    expect_letter(
        "binary",
        &[
            "manifest.json is not a JSON object",
            "run_results.json is not a JSON object",
            "no dbt log lines found",
        ],
    );
    expect_letter("wrong-schema", &["unexpected shape", "expected a sequence"]);
    expect_letter("empty", &["no artifacts given"]);
    expect_letter("unknown-kind", &["no artifacts given"]);

    // 2. An unknown message type is dead-lettered by the service whose subject it was on.
    assert!(
        observed
            .letters
            .iter()
            .any(|(service, _, reason)| service == "validator"
                && reason.contains("unexpected message type \"dbtops.v1.SomethingElse\"")),
        "2 unknown type: {all}"
    );

    // 7. An oversized incident is handled, not dropped: abandoned with a reason.
    assert_eq!(
        observed
            .abandoned("oversized0000001")
            .map(|(reason, _)| reason),
        Some("no_fix_found"),
        "7 oversized: {all}"
    );

    // 8–10. The validator's guardrails refuse the proposal before any dbt runs; the
    // fixer, with nothing better, abandons the incident.
    for (id, needle) in [
        ("traversal0000001", ".."),
        ("nonsql0000000001", ".sql"),
        ("ddl0000000000001", "drop"),
    ] {
        let (step, error) = observed
            .refused(id)
            .unwrap_or_else(|| panic!("{id}: not refused: {all}"));
        assert_eq!(step, "guardrails", "{id}: {error}");
        assert!(
            error.to_lowercase().contains(needle),
            "{id}: {error:?} lacks {needle:?}"
        );
        assert_eq!(
            observed.abandoned(id).map(|(reason, _)| reason),
            Some("no_fix_found"),
            "{id}: {all}"
        );
    }

    // 11. Delivery refuses a validated fix outside the model paths.
    let (reason, detail) = observed
        .abandoned("outside000000001")
        .unwrap_or_else(|| panic!("11 outside: {all}"));
    assert_eq!(reason, "guardrail", "{detail}");
    assert!(
        detail.contains("not under any of the model paths"),
        "{detail}"
    );

    // Nothing but the good incident made a branch, and nothing was left half-done.
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());
    system.stop().await;
}

/// Waits until `count` messages are stored on `subject`, woken by each new one.
async fn wait_for_count(system: &TestSystem, subject: &str, count: usize) {
    use futures::StreamExt;
    let mut live = system
        .bus
        .client()
        .subscribe(subject.to_owned())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stored = system.bus.replay(subject).await.unwrap().len();
        if stored >= count {
            return;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!remaining.is_zero(), "{subject}: {stored} of {count}");
        let _ = tokio::time::timeout(remaining, live.next()).await;
    }
}
