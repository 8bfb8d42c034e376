//! Lineage-scoped fixes (`fixer.fix_scope = "lineage"`): a proposal that also edits an
//! ancestor model is delivered as one commit when this delivery's settings allow it, and
//! refused — nothing written — when they don't or the file is no ancestor.

use std::process::Command;

use dbtops_bus::{IncidentState, Outcome};
use dbtops_delivery::handle;
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, FixScope};
use serde_json::json;

use crate::fake_gitlab::{FakeGitlab, FIXED, MODEL_FILE, ORIGINAL};
use crate::{delivery_of, gitlab_settings, settings, validated, TestBus, BRANCH, INCIDENT};

const ANCESTOR_PATH: &str = "models/staging/base_orders.sql";
const ANCESTOR_SQL: &str = "select\n    id,\n    customer_id,\n    status,\n    ordered_at,\n    amount\nfrom {{ source('shop', 'orders') }}\n";
const ANCESTOR_FIXED: &str = "select\n    id,\n    customer_id,\n    status,\n    ordered_at,\n    cast(amount as decimal(10, 2)) as amount\nfrom {{ source('shop', 'orders') }}\n";

/// The validated fix, with `base_orders` as an ancestor in the evidence and an edit of it
/// in the proposal (at `edit_path`).
fn lineage_fix(edit_path: &str) -> v1::FixValidated {
    let mut fix = validated(INCIDENT);
    let incident = fix.incident.as_mut().unwrap();
    incident.evidence.as_mut().unwrap().ancestor_models = vec![v1::AncestorModel {
        unique_id: "model.shop.base_orders".into(),
        name: "base_orders".into(),
        path: ANCESTOR_PATH.into(),
        raw_sql: ANCESTOR_SQL.into(),
        depth: 1,
        materialized: "view".into(),
    }];
    fix.proposal.as_mut().unwrap().upstream_edits = vec![v1::ModelEdit {
        path: edit_path.into(),
        fixed_sql: ANCESTOR_FIXED.into(),
        explanation: "the cast belongs upstream".into(),
    }];
    fix
}

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A repository holding the project at `analytics/shop` with the model and its ancestor;
/// the fix pointed at it.
fn local_repo(fix: &mut v1::FixValidated) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let project = repo.join("analytics/shop");
    std::fs::create_dir_all(project.join("models/staging")).unwrap();
    std::fs::write(project.join(crate::MODEL_PATH), ORIGINAL).unwrap();
    std::fs::write(project.join(ANCESTOR_PATH), ANCESTOR_SQL).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "shop"]);
    let reference = fix.incident.as_mut().unwrap().project.as_mut().unwrap();
    reference.project_dir = project.display().to_string();
    reference.repo_dir = repo.display().to_string();
    (dir, repo)
}

async fn deliver(system: &TestBus, fix: &v1::FixValidated) -> Outcome {
    let subject = system.bus.subjects().fix_validated();
    handle(&system.bus, &system.settings, delivery_of(&subject, fix)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_git_commits_the_model_and_its_ancestor_together_when_lineage_is_on() {
    let mut fix = lineage_fix(ANCESTOR_PATH);
    let (_dir, repo) = local_repo(&mut fix);
    let mut configured = settings(DeliveryProvider::LocalGit);
    configured.fixer.fix_scope = FixScope::Lineage;
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, None).await;

    assert_eq!(deliver(&system, &fix).await, Outcome::Done);
    let record = system.record(INCIDENT).await;
    assert_eq!(record.state, IncidentState::MrOpened, "{:?}", record.detail);
    let changed = git(&repo, &["diff", "--name-only", "main", BRANCH]);
    assert_eq!(
        changed,
        format!(
            "analytics/shop/{ANCESTOR_PATH}\nanalytics/shop/{}\n",
            crate::MODEL_PATH
        )
    );
    assert_eq!(
        git(
            &repo,
            &["show", &format!("{BRANCH}:analytics/shop/{ANCESTOR_PATH}")]
        ),
        ANCESTOR_FIXED
    );
    assert_eq!(
        git(
            &repo,
            &[
                "show",
                &format!("{BRANCH}:analytics/shop/{}", crate::MODEL_PATH)
            ]
        ),
        FIXED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_edit_is_refused_without_lineage_or_outside_the_ancestors() {
    for (scope, path, expected) in [
        (FixScope::Model, ANCESTOR_PATH, "fix_scope"),
        (FixScope::Lineage, "models/staging/other.sql", "ancestor"),
        (FixScope::Lineage, "models/../profiles.sql", ".."),
    ] {
        let mut fix = lineage_fix(path);
        let (_dir, repo) = local_repo(&mut fix);
        let mut configured = settings(DeliveryProvider::LocalGit);
        configured.fixer.fix_scope = scope;
        let system = TestBus::start(configured).await;
        system.create_incident(INCIDENT, None).await;

        deliver(&system, &fix).await;
        let record = system.record(INCIDENT).await;
        assert_eq!(record.state, IncidentState::Abandoned, "{scope:?} {path}");
        assert_eq!(record.reason.as_deref(), Some("guardrail"));
        assert!(
            record
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains(expected),
            "{scope:?} {path}: {:?}",
            record.detail
        );
        assert!(git(&repo, &["branch", "--list", "dbt-ops/*"])
            .trim()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_gets_one_commit_with_an_update_action_per_file() {
    let gitlab = FakeGitlab::start().await;
    let ancestor_file = format!("analytics/shop/{ANCESTOR_PATH}");
    gitlab.add_main_file(&ancestor_file, ANCESTOR_SQL);
    let mut configured = gitlab_settings(&gitlab.server.base);
    configured.fixer.fix_scope = FixScope::Lineage;
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, None).await;

    assert_eq!(
        deliver(&system, &lineage_fix(ANCESTOR_PATH)).await,
        Outcome::Done
    );
    let commit = gitlab
        .server
        .last("POST", "/api/v4/projects/data%2Fshop/repository/commits")
        .body;
    assert_eq!(
        commit["actions"],
        json!([
            { "action": "update", "file_path": MODEL_FILE, "content": FIXED },
            { "action": "update", "file_path": ancestor_file, "content": ANCESTOR_FIXED },
        ])
    );
    assert_eq!(
        gitlab.branch_file(BRANCH, &ancestor_file).as_deref(),
        Some(ANCESTOR_FIXED)
    );
}
