//! The webhook endpoint over real HTTP, with a real nats-server and a Langfuse stand-in.

use dbtops_bus::IncidentState;
use dbtops_delivery::webhook::{serve, WebhookState};
use dbtops_proto::v1;
use dbtops_settings::{DeliveryProvider, Settings};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::oneshot;

use crate::support::{base64, FakeServer, Reply};
use crate::{settings, TestBus, BRANCH, INCIDENT};

const GITLAB_TOKEN: &str = "gitlab-hook-token";
const GITHUB_SECRET: &str = "github-hook-secret";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

struct Endpoint {
    system: TestBus,
    url: String,
    langfuse: FakeServer,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

async fn endpoint() -> Endpoint {
    let langfuse = FakeServer::start(|_| Reply::json(200, json!({ "id": "score" }))).await;
    let mut configured: Settings = settings(DeliveryProvider::LocalGit);
    configured.delivery.gitlab.webhook_token = GITLAB_TOKEN.into();
    configured.delivery.github.webhook_secret = GITHUB_SECRET.into();
    configured.delivery.langfuse.base_url = langfuse.base.clone();
    configured.delivery.langfuse.public_key = "pk-lf-test".into();
    configured.delivery.langfuse.secret_key = "sk-lf-test".into();
    let system = TestBus::start(configured).await;
    system.create_incident(INCIDENT, Some(TRACE)).await;
    system
        .bus
        .incidents()
        .await
        .unwrap()
        .update(INCIDENT, |record| {
            record.state = IncidentState::MrOpened;
            record.branch = Some(BRANCH.into());
        })
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = WebhookState::new(system.bus.clone(), &system.settings).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    Endpoint {
        system,
        url,
        langfuse,
        client: reqwest::Client::new(),
        _stop: stop,
    }
}

fn gitlab_event(action: &str, description: &str) -> Value {
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "project": { "id": 42, "path_with_namespace": "data/shop" },
        "object_attributes": {
            "iid": 1,
            "action": action,
            "state": if action == "merge" { "merged" } else { "closed" },
            "url": "https://gitlab.example/data/shop/-/merge_requests/1",
            "source_branch": BRANCH,
            "target_branch": "main",
            "description": description,
        }
    })
}

fn github_event(merged: bool, body: &str) -> Value {
    json!({
        "action": "closed",
        "number": 5,
        "pull_request": {
            "number": 5,
            "html_url": "https://github.example/acme/shop/pull/5",
            "body": body,
            "merged": merged,
            "merged_at": if merged { json!("2026-03-01T10:00:00Z") } else { Value::Null },
            "closed_at": "2026-03-01T10:00:00Z",
            "head": { "ref": BRANCH, "sha": "abc" },
            "base": { "ref": "main" },
        },
        "repository": { "full_name": "acme/shop" },
    })
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Endpoint {
    async fn gitlab(&self, token: Option<&str>, event: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/webhooks/gitlab", self.url))
            .header("X-Gitlab-Event", "Merge Request Hook")
            .json(event);
        if let Some(token) = token {
            request = request.header("X-Gitlab-Token", token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn github(&self, signature: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/webhooks/github", self.url))
            .header("X-GitHub-Event", "pull_request")
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn merged(&self) -> Vec<v1::MergeRequestMerged> {
        self.system
            .stored(&self.system.bus.subjects().mr_merged())
            .await
    }

    async fn closed(&self) -> Vec<v1::MergeRequestClosed> {
        self.system
            .stored(&self.system.bus.subjects().mr_closed())
            .await
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_merge_is_published_recorded_and_scored_once() {
    let endpoint = endpoint().await;
    let description = format!("fix\n<!-- dbt-ops incident: {INCIDENT} -->\n");
    let event = gitlab_event("merge", &description);

    let (status, body) = endpoint.gitlab(Some(GITLAB_TOKEN), &event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recorded"], INCIDENT);
    // GitLab redelivers.
    let (status, _) = endpoint.gitlab(Some(GITLAB_TOKEN), &event).await;
    assert_eq!(status, 200);

    let merged = endpoint.merged().await;
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(merged[0].incident_id, INCIDENT);
    assert_eq!(merged[0].provider, "gitlab");
    assert_eq!(
        merged[0].url,
        "https://gitlab.example/data/shop/-/merge_requests/1"
    );
    // Local git delivery has no forge to read the merged file from: said, not guessed.
    assert_eq!(merged[0].merged_content, "");
    assert!(!merged[0].changed_by_human);
    assert!(
        merged[0]
            .merged_content_error
            .contains("no gitlab client is configured"),
        "{:?}",
        merged[0].merged_content_error
    );
    let record = endpoint.system.record(INCIDENT).await;
    assert_eq!(record.state, IncidentState::Merged);
    assert_eq!(record.url.as_deref(), Some(merged[0].url.as_str()));

    let scores = endpoint.langfuse.requests();
    assert_eq!(scores.len(), 2);
    for score in &scores {
        assert_eq!(score.path, "/api/public/scores");
        assert_eq!(
            score.header("authorization"),
            Some(basic("pk-lf-test", "sk-lf-test").as_str())
        );
        assert_eq!(score.body["traceId"], TRACE);
        assert_eq!(score.body["name"], "merged");
        assert_eq!(score.body["value"], 1);
    }
    assert_eq!(
        scores[0].body["id"], scores[1].body["id"],
        "a redelivered webhook updates the same score"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_event_without_the_right_token_is_refused_and_publishes_nothing() {
    let endpoint = endpoint().await;
    let description = format!("<!-- dbt-ops incident: {INCIDENT} -->");
    let event = gitlab_event("merge", &description);
    let (status, _) = endpoint.gitlab(Some("wrong-token"), &event).await;
    assert_eq!(status, 401);
    let (status, _) = endpoint.gitlab(None, &event).await;
    assert_eq!(status, 401);
    let (status, _) = endpoint
        .gitlab(Some(&format!("{GITLAB_TOKEN}x")), &event)
        .await;
    assert_eq!(status, 401);
    assert!(endpoint.merged().await.is_empty());
    assert!(endpoint.closed().await.is_empty());
    assert!(endpoint.langfuse.requests().is_empty());
    assert_eq!(
        endpoint.system.record(INCIDENT).await.state,
        IncidentState::MrOpened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_close_found_by_branch_is_published_and_scored_zero() {
    let endpoint = endpoint().await;
    // No marker in the body: the branch names the incident.
    let body = serde_json::to_vec(&github_event(false, "edited by a human")).unwrap();
    let (status, answer) = endpoint
        .github(Some(&sign(&body, GITHUB_SECRET)), &body)
        .await;
    assert_eq!(status, 200, "{answer}");
    let closed = endpoint.closed().await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].incident_id, INCIDENT);
    assert_eq!(closed[0].provider, "github");
    assert_eq!(closed[0].closed_at, "2026-03-01T10:00:00Z");
    assert!(endpoint.merged().await.is_empty());
    assert_eq!(
        endpoint.system.record(INCIDENT).await.state,
        IncidentState::Closed
    );
    let scores = endpoint.langfuse.requests();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].body["value"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_merge_is_published() {
    let endpoint = endpoint().await;
    let body = serde_json::to_vec(&github_event(
        true,
        &format!("<!-- dbt-ops incident: {INCIDENT} -->"),
    ))
    .unwrap();
    let (status, _) = endpoint
        .github(Some(&sign(&body, GITHUB_SECRET)), &body)
        .await;
    assert_eq!(status, 200);
    let merged = endpoint.merged().await;
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].merged_at, "2026-03-01T10:00:00Z");
    assert_eq!(
        endpoint.system.record(INCIDENT).await.state,
        IncidentState::Merged
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_event_with_a_bad_or_missing_signature_is_refused() {
    let endpoint = endpoint().await;
    let body = serde_json::to_vec(&github_event(true, "x")).unwrap();
    let (status, _) = endpoint
        .github(Some(&sign(&body, "another-secret")), &body)
        .await;
    assert_eq!(status, 401);
    // Signed, then tampered with.
    let signature = sign(&body, GITHUB_SECRET);
    let tampered = serde_json::to_vec(&github_event(false, "x")).unwrap();
    let (status, _) = endpoint.github(Some(&signature), &tampered).await;
    assert_eq!(status, 401);
    let (status, _) = endpoint.github(None, &body).await;
    assert_eq!(status, 401);
    let (status, _) = endpoint.github(Some("sha256=not-hex"), &body).await;
    assert_eq!(status, 401);
    assert!(endpoint.merged().await.is_empty());
    assert!(endpoint.closed().await.is_empty());
    assert!(endpoint.langfuse.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_request_dbt_ops_did_not_open_is_ignored() {
    let endpoint = endpoint().await;
    let mut event = gitlab_event("merge", "a human's change");
    event["object_attributes"]["source_branch"] = json!("feature/new-dashboard");
    let (status, body) = endpoint.gitlab(Some(GITLAB_TOKEN), &event).await;
    assert_eq!(status, 200);
    assert!(body["ignored"].is_string(), "{body}");
    let (status, body) = endpoint
        .gitlab(Some(GITLAB_TOKEN), &gitlab_event("update", "x"))
        .await;
    assert_eq!(status, 200);
    assert!(body["ignored"].is_string(), "{body}");
    assert!(endpoint.merged().await.is_empty());
    assert!(endpoint.closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_the_webhooks_until_its_shutdown() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut configured = settings(DeliveryProvider::LocalGit);
    configured.delivery.webhook_listen = format!("127.0.0.1:{port}");
    configured.delivery.gitlab.webhook_token = GITLAB_TOKEN.into();
    let system = TestBus::start(configured).await;
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(dbtops_delivery::run(
        system.bus.clone(),
        system.settings.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/webhooks/gitlab");
    // run binds before it serves; the first requests may race the bind.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        match client.post(&url).json(&json!({})).send().await {
            Ok(response) => break response.status().as_u16(),
            Err(_) if tokio::time::Instant::now() < deadline => tokio::task::yield_now().await,
            Err(error) => panic!("webhook endpoint never answered: {error}"),
        }
    };
    assert_eq!(status, 401);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    assert!(client.post(&url).json(&json!({})).send().await.is_err());
}
