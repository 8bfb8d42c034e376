//! One `FixValidated` at a time through `handle`, with a real nats-server: what is
//! published, what the incident records, what the forge received.

use std::process::Command;

use dbtops_bus::{IncidentState, Outcome};
use dbtops_delivery::{dataset, feedback, handle, Context};
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, SensitiveAction};
use serde_json::{json, Value};

use crate::fake_github::FakeGithub;
use crate::fake_gitlab::{FakeGitlab, FIXED, ORIGINAL};
use crate::{
    delivery_of, github_settings, gitlab_settings, settings, validated, TestBus, BRANCH, INCIDENT,
    MODEL_PATH,
};

async fn deliver(system: &TestBus, fix: &v1::FixValidated) -> Outcome {
    let subject = system.bus.subjects().fix_validated();
    handle(&system.bus, &system.settings, delivery_of(&subject, fix)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fix_validated_twice_opens_one_merge_request() {
    let gitlab = FakeGitlab::start().await;
    let system = TestBus::start(gitlab_settings(&gitlab.server.base)).await;
    system.create_incident(INCIDENT, None).await;
    let fix = validated(INCIDENT);

    assert_eq!(deliver(&system, &fix).await, Outcome::Done);
    assert_eq!(deliver(&system, &fix).await, Outcome::Done);

    assert_eq!(gitlab.merge_requests().len(), 1);
    assert_eq!(
        gitlab
            .server
            .count("POST", "/api/v4/projects/data%2Fshop/merge_requests"),
        1
    );
    let opened: Vec<v1::MergeRequestOpened> =
        system.stored(&system.bus.subjects().mr_opened()).await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].provider, "gitlab");
    assert_eq!(opened[0].branch, BRANCH);
    assert_eq!(opened[0].url, gitlab.web_url(1));
    let record = system.record(INCIDENT).await;
    assert_eq!(record.state, IncidentState::MrOpened);
    assert_eq!(record.url.as_deref(), Some(gitlab.web_url(1).as_str()));
    assert_eq!(record.branch.as_deref(), Some(BRANCH));

    // The description carries the error, the diff, the validation and the marker.
    let description = &gitlab.merge_requests()[0].description;
    for needle in [
        "ordr_id\" not found",
        "+    order_id,",
        "| dbt compile | passed |",
        &format!("<!-- dbt-ops incident: {INCIDENT} -->"),
    ] {
        assert!(description.contains(needle), "{needle:?} in {description}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_pull_request_is_recorded_on_the_incident() {
    let github = FakeGithub::start().await;
    let system = TestBus::start(github_settings(&github.server.base)).await;
    system.create_incident(INCIDENT, None).await;
    assert_eq!(deliver(&system, &validated(INCIDENT)).await, Outcome::Done);
    assert_eq!(deliver(&system, &validated(INCIDENT)).await, Outcome::Done);
    assert_eq!(github.pulls().len(), 1);
    let opened: Vec<v1::MergeRequestOpened> =
        system.stored(&system.bus.subjects().mr_opened()).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].provider, "github");
    assert_eq!(opened[0].url, "https://github.example/acme/shop/pull/1");
    assert_eq!(system.record(INCIDENT).await.state, IncidentState::MrOpened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_path_is_refused_or_opened_as_a_labelled_draft() {
    let gitlab = FakeGitlab::start().await;
    let mut configured = gitlab_settings(&gitlab.server.base);
    configured.delivery.sensitive_paths = vec!["models/staging/**".into()];
    let system = TestBus::start(configured.clone()).await;
    system.create_incident(INCIDENT, None).await;

    // refuse (the default): abandoned, nothing asked of the forge.
    assert_eq!(deliver(&system, &validated(INCIDENT)).await, Outcome::Done);
    assert!(gitlab.server.requests().is_empty());
    let abandoned: Vec<v1::IncidentAbandoned> = system
        .stored(&system.bus.subjects().incident_abandoned())
        .await;
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].reason, "guardrail");
    assert!(abandoned[0].detail.contains("sensitive"), "{abandoned:?}");

    // draft: a draft merge request labelled for its owners.
    let mut system = system;
    system.settings.delivery.sensitive_action = SensitiveAction::Draft;
    let other = "77aa0b1c3f2a9c1e";
    system.create_incident(other, None).await;
    assert_eq!(deliver(&system, &validated(other)).await, Outcome::Done);
    let mr = &gitlab.merge_requests()[0];
    assert!(
        mr.title.starts_with("Draft: fix(dbt): stg_orders"),
        "{}",
        mr.title
    );
    assert_eq!(mr.labels, "dbt-ops,needs-owner-review");
    assert!(
        mr.description.contains("**Needs owner review.**"),
        "{}",
        mr.description
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_abandon_the_incident_and_dead_letter_the_fix() {
    let gitlab = FakeGitlab::start().await;
    let mut configured = gitlab_settings(&gitlab.server.base);
    configured.delivery.gitlab.token = "glpat-wrong".into();
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, None).await;
    let outcome = deliver(&system, &validated(INCIDENT)).await;
    let Outcome::Reject { reason } = outcome else {
        panic!("expected a rejection, got {outcome:?}");
    };
    assert!(reason.contains("delivery.gitlab.token"), "{reason}");
    assert!(!reason.contains("glpat-wrong"), "{reason}");
    let abandoned: Vec<v1::IncidentAbandoned> = system
        .stored(&system.bus.subjects().incident_abandoned())
        .await;
    assert_eq!(abandoned[0].reason, "delivery_failed");
    assert_eq!(
        system.record(INCIDENT).await.state,
        IncidentState::Abandoned
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forge_outage_asks_for_a_later_delivery() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .server
        .fail("GET", "/merge_requests", 100, 503, json!({}), None);
    let system = TestBus::start(gitlab_settings(&gitlab.server.base)).await;
    system.create_incident(INCIDENT, None).await;
    let outcome = deliver(&system, &validated(INCIDENT)).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    assert!(system
        .stored::<v1::IncidentAbandoned>(&system.bus.subjects().incident_abandoned())
        .await
        .is_empty());
    assert_eq!(
        system.record(INCIDENT).await.state,
        IncidentState::Delivering
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_for_another_file_reaches_no_forge() {
    let gitlab = FakeGitlab::start().await;
    let system = TestBus::start(gitlab_settings(&gitlab.server.base)).await;
    system.create_incident(INCIDENT, None).await;
    let mut fix = validated(INCIDENT);
    if let Some(proposal) = fix.proposal.as_mut() {
        proposal.model_path = "models/staging/../../profiles.yml".into();
    }
    assert_eq!(deliver(&system, &fix).await, Outcome::Done);
    assert!(gitlab.server.requests().is_empty());
    let abandoned: Vec<v1::IncidentAbandoned> = system
        .stored(&system.bus.subjects().incident_abandoned())
        .await;
    assert_eq!(abandoned[0].reason, "guardrail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recurrences_add_one_note_and_resolution_closes_the_merge_request() {
    let gitlab = FakeGitlab::start().await;
    let system = TestBus::start(gitlab_settings(&gitlab.server.base)).await;
    system.create_incident(INCIDENT, None).await;
    assert_eq!(deliver(&system, &validated(INCIDENT)).await, Outcome::Done);
    let context = Context::new(&system.settings).unwrap();

    let processed = v1::RunProcessed {
        submission_id: "sub-2".into(),
        recurring_incident_ids: vec![INCIDENT.into()],
        ..Default::default()
    };
    let subject = system.bus.subjects().run_processed();
    for _ in 0..2 {
        let outcome =
            feedback::handle(&system.bus, &context, delivery_of(&subject, &processed)).await;
        assert_eq!(outcome, Outcome::Done);
    }
    let notes = gitlab.merge_requests()[0].notes.clone();
    assert_eq!(
        notes.len(),
        1,
        "a redelivery does not comment twice: {notes:?}"
    );
    assert!(notes[0].contains("sub-2"));

    let resolved = v1::IncidentResolved {
        incident_id: INCIDENT.into(),
        model: validated(INCIDENT).incident.unwrap().model,
        submission_id: "sub-3".into(),
        previous_state: "mr_opened".into(),
        ..Default::default()
    };
    let subject = system.bus.subjects().incident_resolved();
    for _ in 0..2 {
        let outcome =
            feedback::handle(&system.bus, &context, delivery_of(&subject, &resolved)).await;
        assert_eq!(outcome, Outcome::Done);
    }
    let mr = &gitlab.merge_requests()[0];
    assert_eq!(mr.state, "closed");
    assert_eq!(mr.notes.len(), 2, "{:?}", mr.notes);
    assert!(mr.notes[1].contains("pass again"), "{:?}", mr.notes);
    assert_eq!(
        gitlab
            .server
            .count("PUT", "/api/v4/projects/data%2Fshop/merge_requests/1"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dataset_holds_each_merged_incident_once() {
    let system = TestBus::start(settings(DeliveryProvider::Shadow)).await;
    let bus = &system.bus;
    let subjects = bus.subjects();
    let other = "0000aaaa1111bbbb";
    for (incident, id) in [(INCIDENT, "a.validated.1"), (other, "b.validated.1")] {
        bus.publish(&subjects.fix_validated(), id, &validated(incident))
            .await
            .unwrap();
    }
    for (at, id) in [
        ("2026-01-01T00:00:00Z", "a.mr_merged.0"),
        ("2026-01-02T00:00:00Z", "a-g1.mr_merged.0"),
    ] {
        let merged = v1::MergeRequestMerged {
            incident_id: INCIDENT.into(),
            provider: "gitlab".into(),
            url: "https://gitlab.example/mr/1".into(),
            merged_at: at.into(),
            ..Default::default()
        };
        bus.publish(&subjects.mr_merged(), id, &merged)
            .await
            .unwrap();
    }
    let mut out = Vec::new();
    let written = dataset::export_dataset(bus, &mut out).await.unwrap();
    assert_eq!(written, 1);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let record: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(record["incident_id"], INCIDENT);
    assert_eq!(record["model"]["name"], "stg_orders");
    assert_eq!(record["error"]["class"], "missing_column");
    assert_eq!(record["evidence"]["model_sql"], ORIGINAL);
    assert_eq!(record["proposal"]["fixed_sql"], FIXED);
    assert_eq!(record["proposal"]["strategy"], "rule:misspelt_column");
    assert!(record["diff"].as_str().unwrap().contains("+    order_id,"));
    assert_eq!(record["merge"]["merged_at"], "2026-01-02T00:00:00Z");
    // A merge recorded without the merged file: unknown, not "unchanged".
    assert_eq!(record["merged_content"], Value::Null);
    assert_eq!(record["changed_by_human"], Value::Null);
    assert_eq!(record["merged_diff"], Value::Null);
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A git repository under `dir` holding the shop project in `analytics/shop`, its model
/// committed as [`ORIGINAL`] on `main`: the repository and the project directory.
fn shop_repository(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let repo = dir.join("repo");
    let project = repo.join("analytics/shop");
    std::fs::create_dir_all(project.join("models/staging")).unwrap();
    std::fs::write(project.join(MODEL_PATH), ORIGINAL).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "shop"]);
    (repo, project)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_git_says_owner_review_in_the_description() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, project) = shop_repository(dir.path());

    let mut configured = settings(DeliveryProvider::LocalGit);
    configured.delivery.sensitive_paths = vec!["models/staging/**".into()];
    configured.delivery.sensitive_action = SensitiveAction::Draft;
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, None).await;
    let mut fix = validated(INCIDENT);
    if let Some(incident) = fix.incident.as_mut() {
        if let Some(reference) = incident.project.as_mut() {
            reference.project_dir = project.display().to_string();
            reference.repo_dir = repo.display().to_string();
        }
    }
    assert_eq!(deliver(&system, &fix).await, Outcome::Done);
    let content = git(
        &repo,
        &["show", &format!("{BRANCH}:analytics/shop/{MODEL_PATH}")],
    );
    assert_eq!(content, FIXED);
    let opened: Vec<v1::MergeRequestOpened> =
        system.stored(&system.bus.subjects().mr_opened()).await;
    let description = std::fs::read_to_string(&opened[0].description_path).unwrap();
    assert!(
        description.contains("**Needs owner review.**"),
        "{description}"
    );
    assert!(description.contains("needs-owner-review"), "{description}");
    assert_eq!(git(&repo, &["branch", "--show-current"]).trim(), "main");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_incident_gets_its_own_branch_beside_the_earlier_generations() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, project) = shop_repository(dir.path());
    let system = TestBus::start(settings(DeliveryProvider::LocalGit)).await;
    system.create_incident(INCIDENT, None).await;
    let located = |mut fix: v1::FixValidated| {
        if let Some(reference) = fix.incident.as_mut().and_then(|i| i.project.as_mut()) {
            reference.project_dir = project.display().to_string();
            reference.repo_dir = repo.display().to_string();
        }
        fix
    };
    assert_eq!(
        deliver(&system, &located(validated(INCIDENT))).await,
        Outcome::Done
    );

    // The first branch was neither merged nor deleted; the run passed, the failure came
    // back, and the detector opened the incident again (generation 1). The new fix differs.
    let store = system.bus.incidents().await.unwrap();
    store
        .update(INCIDENT, |record| {
            record.generation = 1;
            record.state = IncidentState::Delivering;
            record.branch = None;
        })
        .await
        .unwrap();
    let second_fix = format!("{FIXED}-- reviewed again\n");
    let mut reopened = located(validated(INCIDENT));
    if let Some(incident) = reopened.incident.as_mut() {
        incident.generation = 1;
    }
    if let Some(proposal) = reopened.proposal.as_mut() {
        proposal.fixed_sql = second_fix.clone();
    }
    assert_eq!(deliver(&system, &reopened).await, Outcome::Done);

    let record = system.record(INCIDENT).await;
    assert_eq!(record.state, IncidentState::MrOpened, "{record:?}");
    let second_branch = format!("{BRANCH}-g1");
    assert_eq!(record.branch.as_deref(), Some(second_branch.as_str()));
    let at = |branch: &str| {
        git(
            &repo,
            &["show", &format!("{branch}:analytics/shop/{MODEL_PATH}")],
        )
    };
    assert_eq!(at(&second_branch), second_fix);
    assert_eq!(
        at(BRANCH),
        FIXED,
        "the first generation's branch is left as it was"
    );
}
