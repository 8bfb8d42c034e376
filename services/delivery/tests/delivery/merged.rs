//! A merge webhook carries the model file as merged: read from the GitLab and GitHub
//! stand-ins at the merge commit, compared with the proposal, published on
//! `dbtops.mr.merged` and exported in the golden dataset — and a failed read costs the
//! content, never the merge.

use dbtops_bus::{IncidentState, Outcome};
use dbtops_delivery::webhook::{serve, WebhookState};
use dbtops_delivery::{dataset, handle};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::fake_github::{self, FakeGithub};
use crate::fake_gitlab::{self, FakeGitlab, FIXED, MODEL_FILE};
use crate::{delivery_of, github_settings, gitlab_settings, validated, TestBus, BRANCH, INCIDENT};

const GITLAB_HOOK_TOKEN: &str = "gitlab-hook-token";
const GITHUB_HOOK_SECRET: &str = "github-hook-secret";
/// The proposal as a reviewer rewrote it before merging.
const EDITED: &str = "with orders as (\n    select * from {{ ref('raw_orders') }}\n)\n\nselect\n    order_id,\n    customer_id,\n    amount::decimal(12, 2) as amount\nfrom orders\n";
const RAW_FILE_PATH: &str = "/api/v4/projects/data%2Fshop/repository/files/analytics%2Fshop%2Fmodels%2Fstaging%2Fstg_orders.sql/raw";

/// A delivered incident — its validated fix on the stream, its merge request open on the
/// forge — and the webhook endpoint over real HTTP.
struct Merging {
    system: TestBus,
    url: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

async fn delivered(mut configured: Settings) -> Merging {
    configured.delivery.gitlab.webhook_token = GITLAB_HOOK_TOKEN.into();
    configured.delivery.github.webhook_secret = GITHUB_HOOK_SECRET.into();
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, None).await;
    let fix = validated(INCIDENT);
    let subject = system.bus.subjects().fix_validated();
    // As the validator published it: the webhook finds the proposal here.
    system
        .bus
        .publish(&subject, &format!("{INCIDENT}.fix_validated.1"), &fix)
        .await
        .unwrap();
    assert_eq!(
        handle(&system.bus, &system.settings, delivery_of(&subject, &fix)).await,
        Outcome::Done
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = WebhookState::new(system.bus.clone(), &system.settings).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    Merging {
        system,
        url,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Merging {
    async fn gitlab_merged(&self, merge_commit: Option<&str>, head: &str) -> Value {
        let event = json!({
            "object_kind": "merge_request",
            "event_type": "merge_request",
            "project": { "id": 42, "path_with_namespace": fake_gitlab::PROJECT_PATH },
            "object_attributes": {
                "iid": 1,
                "action": "merge",
                "state": "merged",
                "url": format!("https://gitlab.example/{}/-/merge_requests/1", fake_gitlab::PROJECT_PATH),
                "source_branch": BRANCH,
                "target_branch": "main",
                "description": format!("fix\n<!-- dbt-ops incident: {INCIDENT} -->\n"),
                "merge_commit_sha": merge_commit,
                "last_commit": { "id": head, "message": "fix(dbt): stg_orders" },
            }
        });
        let response = self
            .client
            .post(format!("{}/webhooks/gitlab", self.url))
            .header("X-Gitlab-Event", "Merge Request Hook")
            .header("X-Gitlab-Token", GITLAB_HOOK_TOKEN)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    async fn github_merged(&self, merge_commit: &str, head: &str) -> Value {
        let event = json!({
            "action": "closed",
            "number": 1,
            "pull_request": {
                "number": 1,
                "html_url": format!("https://github.example/{}/{}/pull/1", fake_github::OWNER, fake_github::REPO),
                "body": format!("<!-- dbt-ops incident: {INCIDENT} -->"),
                "merged": true,
                "merged_at": "2026-03-01T10:00:00Z",
                "closed_at": "2026-03-01T10:00:00Z",
                "merge_commit_sha": merge_commit,
                "head": { "ref": BRANCH, "sha": head },
                "base": { "ref": "main" },
            },
        });
        let body = serde_json::to_vec(&event).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_HOOK_SECRET.as_bytes()).unwrap();
        mac.update(&body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let response = self
            .client
            .post(format!("{}/webhooks/github", self.url))
            .header("X-GitHub-Event", "pull_request")
            .header("X-Hub-Signature-256", signature)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }

    /// The one `MergeRequestMerged` published.
    async fn merged(&self) -> v1::MergeRequestMerged {
        let mut merged: Vec<v1::MergeRequestMerged> = self
            .system
            .stored(&self.system.bus.subjects().mr_merged())
            .await;
        assert_eq!(merged.len(), 1, "{merged:?}");
        merged.remove(0)
    }

    /// The one line `dbt-ops dataset export` writes.
    async fn dataset_line(&self) -> Value {
        let mut out = Vec::new();
        let written = dataset::export_dataset(&self.system.bus, &mut out)
            .await
            .unwrap();
        assert_eq!(written, 1);
        let text = String::from_utf8(out).unwrap();
        serde_json::from_str(text.lines().next().unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_merge_as_proposed_carries_the_file_read_at_the_merge_commit() {
    let gitlab = FakeGitlab::start().await;
    let merging = delivered(gitlab_settings(&gitlab.server.base)).await;
    let (merge_commit, head) = gitlab.merge(BRANCH, false);
    let merge_commit = merge_commit.unwrap();

    let answer = merging.gitlab_merged(Some(&merge_commit), &head).await;
    assert_eq!(answer["recorded"], INCIDENT, "{answer}");

    // One raw-file read, at the merge commit (the source branch is gone), with the token.
    assert_eq!(
        gitlab.server.count("GET", RAW_FILE_PATH),
        1,
        "{:?}",
        gitlab.server.calls()
    );
    let read = gitlab.server.last("GET", RAW_FILE_PATH);
    assert_eq!(read.query.get("ref"), Some(&merge_commit));
    assert_eq!(read.header("private-token"), Some(fake_gitlab::TOKEN));

    let merged = merging.merged().await;
    assert_eq!(merged.provider, "gitlab");
    assert_eq!(merged.merge_commit_sha, merge_commit);
    assert_eq!(merged.merged_content, FIXED);
    assert_eq!(merged.merged_content_sha, merge_commit);
    assert!(!merged.changed_by_human);
    assert_eq!(merged.merged_content_error, "");
    assert_eq!(
        merging.system.record(INCIDENT).await.state,
        IncidentState::Merged
    );

    let line = merging.dataset_line().await;
    assert_eq!(line["merged_content"], FIXED);
    assert_eq!(line["changed_by_human"], false);
    assert_eq!(line["merged_diff"], Value::Null);
    assert_eq!(line["merge"]["merge_commit_sha"], merge_commit.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_fast_forward_merge_of_a_human_edit_is_read_at_the_branch_head() {
    let gitlab = FakeGitlab::start().await;
    let merging = delivered(gitlab_settings(&gitlab.server.base)).await;
    let edit = gitlab.push(BRANCH, EDITED);
    let (merge_commit, head) = gitlab.merge(BRANCH, true);
    assert_eq!(
        (merge_commit.as_deref(), head.as_str()),
        (None, edit.as_str())
    );

    merging.gitlab_merged(None, &head).await;

    let read = gitlab.server.last("GET", RAW_FILE_PATH);
    assert_eq!(read.query.get("ref"), Some(&head));
    assert_eq!(read.header("private-token"), Some(fake_gitlab::TOKEN));
    let merged = merging.merged().await;
    assert_eq!(merged.merge_commit_sha, "");
    assert_eq!(merged.merged_content, EDITED);
    assert_eq!(merged.merged_content_sha, head);
    assert!(merged.changed_by_human);

    let line = merging.dataset_line().await;
    assert_eq!(line["proposal"]["fixed_sql"], FIXED);
    assert_eq!(line["merged_content"], EDITED);
    assert_eq!(line["changed_by_human"], true);
    let diff = line["merged_diff"].as_str().unwrap();
    assert!(diff.contains("-    amount\n"), "{diff}");
    assert!(
        diff.contains("+    amount::decimal(12, 2) as amount\n"),
        "{diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_publishes_the_merge_without_the_file() {
    let gitlab = FakeGitlab::start().await;
    gitlab.server.fail(
        "GET",
        "/raw",
        100,
        503,
        json!({ "message": "503 Service Unavailable" }),
        None,
    );
    let merging = delivered(gitlab_settings(&gitlab.server.base)).await;
    let (merge_commit, head) = gitlab.merge(BRANCH, false);
    let merge_commit = merge_commit.unwrap();

    let answer = merging.gitlab_merged(Some(&merge_commit), &head).await;
    assert_eq!(answer["recorded"], INCIDENT, "{answer}");

    // Retried as every forge call is (three retries here), then given up.
    assert_eq!(gitlab.server.count("GET", RAW_FILE_PATH), 4);
    let merged = merging.merged().await;
    assert_eq!(merged.merge_commit_sha, merge_commit);
    assert_eq!(merged.merged_content, "");
    assert_eq!(merged.merged_content_sha, "");
    assert!(!merged.changed_by_human);
    assert!(
        merged
            .merged_content_error
            .contains("GitLab is unavailable"),
        "{:?}",
        merged.merged_content_error
    );
    assert_eq!(
        merging.system.record(INCIDENT).await.state,
        IncidentState::Merged
    );

    let line = merging.dataset_line().await;
    assert_eq!(line["merged_content"], Value::Null);
    assert_eq!(line["changed_by_human"], Value::Null);
    assert_eq!(line["proposal"]["fixed_sql"], FIXED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_merge_as_proposed_carries_the_raw_file_at_the_merge_commit() {
    let github = FakeGithub::start().await;
    let merging = delivered(github_settings(&github.server.base)).await;
    let (merge_commit, head) = github.merge(BRANCH);

    merging.github_merged(&merge_commit, &head).await;

    let path = FakeGithub::repo_path(&format!("/contents/{MODEL_FILE}"));
    let read = github.server.last("GET", &path);
    assert_eq!(read.query.get("ref"), Some(&merge_commit));
    assert_eq!(
        read.header("accept"),
        Some("application/vnd.github.raw+json")
    );
    assert_eq!(
        read.header("authorization"),
        Some(format!("Bearer {}", fake_github::TOKEN).as_str())
    );
    let merged = merging.merged().await;
    assert_eq!(merged.provider, "github");
    assert_eq!(merged.merge_commit_sha, merge_commit);
    assert_eq!(merged.merged_content, FIXED);
    assert_eq!(merged.merged_content_sha, merge_commit);
    assert!(!merged.changed_by_human);

    let line = merging.dataset_line().await;
    assert_eq!(line["merged_content"], FIXED);
    assert_eq!(line["changed_by_human"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_merge_of_a_human_edit_is_flagged_even_from_base64_content() {
    let github = FakeGithub::start().await;
    github.state.lock().unwrap().ignore_raw_media_type = true;
    let merging = delivered(github_settings(&github.server.base)).await;
    github.push(BRANCH, EDITED);
    let (merge_commit, head) = github.merge(BRANCH);

    merging.github_merged(&merge_commit, &head).await;

    let path = FakeGithub::repo_path(&format!("/contents/{MODEL_FILE}"));
    assert_eq!(
        github.server.last("GET", &path).query.get("ref"),
        Some(&merge_commit)
    );
    let merged = merging.merged().await;
    assert_eq!(merged.merged_content, EDITED);
    assert!(merged.changed_by_human);

    let line = merging.dataset_line().await;
    assert_eq!(line["merged_content"], EDITED);
    assert_eq!(line["changed_by_human"], true);
    assert!(line["merged_diff"]
        .as_str()
        .unwrap()
        .contains("+    amount::decimal(12, 2) as amount"));
}
