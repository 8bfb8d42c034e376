//! The webhook endpoint: forges tell dbt-ops when a merge request it opened is merged or
//! closed.
//!
//! `POST /webhooks/gitlab` takes GitLab merge request events, authenticated by the
//! `X-Gitlab-Token` header (compared in constant time); `POST /webhooks/github` takes
//! GitHub `pull_request` events, authenticated by `X-Hub-Signature-256`, an HMAC-SHA256
//! of the raw body. Anything unauthenticated gets 401 and publishes nothing. A merge or a
//! close of a dbt-ops merge request (found by the incident marker in its description, or
//! by its branch) publishes `dbtops.mr.merged` / `dbtops.mr.closed`, moves the incident to
//! `merged` / `closed`, and — with Langfuse configured — scores the incident's trace.
//! Everything is idempotent, because forges redeliver.
//!
//! A merge also carries the model file as merged, for the golden dataset: read from the
//! configured forge at the merge commit (else the source branch's head) and compared with
//! the validated proposal, found on the stream, to say whether a reviewer changed it. A
//! read that fails or takes too long costs that content, never the merge event: forges do
//! not redeliver on their own, so a 503 here would lose the merge. Local git has no merge
//! to hear of: nothing tells dbt-ops when a local fix branch is merged.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use dbtops_bus::{stage_id, Bus, BusError, IncidentRecord, IncidentState};
use dbtops_proto::v1;
use dbtops_settings::{Secret, Settings};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::forge::Forge;
use crate::langfuse::Langfuse;
use crate::{DeliveryError, Failure};

/// The longest a webhook waits for its Langfuse score.
const SCORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest a merge webhook spends reading the merged model file (the validated fix
/// from the stream, the file from the forge, retries included). Forges time webhooks out
/// after about ten seconds, and the Langfuse score may need its five after this.
const CONTENT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(4);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct WebhookState {
    /// Where events are published and incidents recorded.
    bus: Bus,
    /// GitLab's shared token (`X-Gitlab-Token`); empty: every GitLab call is refused.
    gitlab_token: Secret,
    /// GitHub's HMAC secret; empty: every GitHub call is refused.
    github_secret: Secret,
    /// Scores on traces, when configured.
    langfuse: Option<Langfuse>,
    /// The configured forge, to read the model file as merged; `None` for local git and
    /// shadow.
    forge: Option<Forge>,
    /// Where the model file sits in the forge's repository (`delivery.project_subdir`,
    /// `delivery.model_paths`).
    settings: Settings,
}

impl WebhookState {
    /// The state for `settings.delivery`'s secrets, forge and Langfuse.
    pub fn new(bus: Bus, settings: &Settings) -> Result<Self, DeliveryError> {
        Ok(Self {
            bus,
            gitlab_token: settings.delivery.gitlab.webhook_token.clone(),
            github_secret: settings.delivery.github.webhook_secret.clone(),
            langfuse: Langfuse::from_settings(&settings.delivery)?,
            forge: Forge::from_settings(&settings.delivery)?,
            settings: settings.clone(),
        })
    }
}

/// The routes, for [`serve`] and for tests that bring their own server.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/gitlab", post(gitlab))
        .route("/webhooks/github", post(github))
        .with_state(Arc::new(state))
}

/// Serves the webhooks on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebhookState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(message = "Serving webhooks.", %address);
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Merged or closed without merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Merged.
    Merged,
    /// Closed unmerged.
    Closed,
}

/// A merge request that ended, whichever forge said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRequestEnded {
    /// `gitlab` or `github`.
    pub provider: &'static str,
    /// How it ended.
    pub ending: Ending,
    /// Its web page.
    pub url: String,
    /// Its source branch.
    pub branch: String,
    /// Its description (where the incident marker is).
    pub description: String,
    /// When, RFC 3339.
    pub at: String,
    /// The commit the forge merged with; empty when it named none (a fast-forward merge
    /// on GitLab) or for a close.
    pub merge_commit_sha: String,
    /// The source branch's head commit, where the file is read when there is no merge
    /// commit (the branch itself may be deleted by the merge).
    pub head_sha: String,
}

/// What the endpoint did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Published and recorded for this incident.
    Recorded {
        /// The incident.
        incident_id: String,
    },
    /// Not something dbt-ops follows (another event, another action, another's MR).
    Ignored(String),
}

fn unauthorized(why: &str) -> Response {
    tracing::warn!(message = "Webhook refused.", reason = why);
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": why }))).into_response()
}

fn answer(result: Result<Handled, BusError>) -> Response {
    match result {
        Ok(Handled::Recorded { incident_id }) => {
            (StatusCode::OK, Json(json!({ "recorded": incident_id }))).into_response()
        }
        Ok(Handled::Ignored(why)) => {
            (StatusCode::OK, Json(json!({ "ignored": why }))).into_response()
        }
        // 503 so the forge retries a delivery whose effect is not durable.
        Err(error) => {
            tracing::error!(message = "Webhook not recorded.", %error);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": error.to_string() })),
            )
                .into_response()
        }
    }
}

#[tracing::instrument(name = "delivery.webhook.gitlab", skip_all)]
async fn gitlab(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = verify_gitlab_token(&state.gitlab_token, &headers) {
        return unauthorized(why);
    }
    match parse_gitlab(&body) {
        Ok(Some(event)) => answer(record(&state, &event).await),
        Ok(None) => answer(Ok(Handled::Ignored(
            "not a merge or close of a merge request".into(),
        ))),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response(),
    }
}

#[tracing::instrument(name = "delivery.webhook.github", skip_all)]
async fn github(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = verify_github_signature(&state.github_secret, &headers, &body) {
        return unauthorized(why);
    }
    let event = headers
        .get("x-github-event")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if event != "pull_request" {
        return answer(Ok(Handled::Ignored(format!(
            "{event:?} events are not followed"
        ))));
    }
    match parse_github(&body) {
        Ok(Some(event)) => answer(record(&state, &event).await),
        Ok(None) => answer(Ok(Handled::Ignored("not a close of a pull request".into()))),
        Err(error) => (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response(),
    }
}

/// `X-Gitlab-Token` equals the configured token, compared in constant time (its length
/// aside) so the token cannot be guessed byte by byte from response times.
pub fn verify_gitlab_token(expected: &Secret, headers: &HeaderMap) -> Result<(), &'static str> {
    if expected.is_empty() {
        return Err("no GitLab webhook token is configured (delivery.gitlab.webhook_token)");
    }
    let provided = headers
        .get("x-gitlab-token")
        .ok_or("missing X-Gitlab-Token")?
        .as_bytes();
    if bool::from(provided.ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err("wrong X-Gitlab-Token")
    }
}

/// `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body under the
/// configured secret; the comparison is the MAC's own constant-time one.
pub fn verify_github_signature(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    if secret.is_empty() {
        return Err("no GitHub webhook secret is configured (delivery.github.webhook_secret)");
    }
    let header = headers
        .get("x-hub-signature-256")
        .ok_or("missing X-Hub-Signature-256")?
        .to_str()
        .map_err(|_| "unreadable X-Hub-Signature-256")?;
    let signature = header
        .strip_prefix("sha256=")
        .and_then(|hex_digits| hex::decode(hex_digits).ok())
        .ok_or("malformed X-Hub-Signature-256")?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| "unusable webhook secret")?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| "wrong X-Hub-Signature-256")
}

/// A GitLab merge request event that merges or closes, or `None` for anything else.
pub fn parse_gitlab(body: &[u8]) -> Result<Option<MergeRequestEnded>, String> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(default)]
        object_kind: String,
        #[serde(default)]
        object_attributes: Option<Attributes>,
    }
    #[derive(Deserialize)]
    struct Attributes {
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        url: Option<String>,
        #[serde(default)]
        source_branch: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        merge_commit_sha: Option<String>,
        #[serde(default)]
        last_commit: Option<Commit>,
    }
    #[derive(Deserialize)]
    struct Commit {
        #[serde(default)]
        id: String,
    }
    let event: Event =
        serde_json::from_slice(body).map_err(|error| format!("not a GitLab event: {error}"))?;
    if event.object_kind != "merge_request" {
        return Ok(None);
    }
    let Some(attributes) = event.object_attributes else {
        return Err("merge request event without object_attributes".into());
    };
    let ending = match attributes.action.as_deref() {
        Some("merge") => Ending::Merged,
        Some("close") => Ending::Closed,
        _ => return Ok(None),
    };
    Ok(Some(MergeRequestEnded {
        provider: "gitlab",
        ending,
        url: attributes.url.unwrap_or_default(),
        branch: attributes.source_branch,
        description: attributes.description.unwrap_or_default(),
        // GitLab's own times are not RFC 3339 ("2024-01-01 10:00:00 UTC"); the event
        // arrives within seconds of the action.
        at: dbtops_bus::incidents::now_rfc3339(),
        merge_commit_sha: attributes.merge_commit_sha.unwrap_or_default(),
        head_sha: attributes
            .last_commit
            .map(|commit| commit.id)
            .unwrap_or_default(),
    }))
}

/// A GitHub `pull_request` event that closes (merged or not), or `None` for anything else.
pub fn parse_github(body: &[u8]) -> Result<Option<MergeRequestEnded>, String> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(default)]
        action: String,
        pull_request: Option<Pull>,
    }
    #[derive(Deserialize)]
    struct Pull {
        #[serde(default)]
        html_url: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        merged: bool,
        #[serde(default)]
        merged_at: Option<String>,
        #[serde(default)]
        closed_at: Option<String>,
        #[serde(default)]
        merge_commit_sha: Option<String>,
        head: Head,
    }
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "ref")]
        name: String,
        #[serde(default)]
        sha: String,
    }
    let event: Event = serde_json::from_slice(body)
        .map_err(|error| format!("not a GitHub pull_request event: {error}"))?;
    if event.action != "closed" {
        return Ok(None);
    }
    let Some(pull) = event.pull_request else {
        return Err("pull_request event without pull_request".into());
    };
    let (ending, at, merge_commit_sha) = if pull.merged {
        (
            Ending::Merged,
            pull.merged_at,
            pull.merge_commit_sha.unwrap_or_default(),
        )
    } else {
        // An unmerged pull request's merge_commit_sha is GitHub's test merge, not a merge.
        (Ending::Closed, pull.closed_at, String::new())
    };
    Ok(Some(MergeRequestEnded {
        provider: "github",
        ending,
        url: pull.html_url,
        branch: pull.head.name,
        description: pull.body.unwrap_or_default(),
        at: at.unwrap_or_else(dbtops_bus::incidents::now_rfc3339),
        merge_commit_sha,
        head_sha: pull.head.sha,
    }))
}

/// The incident id in a description's marker (`<!-- dbt-ops incident: ID -->`).
pub fn incident_from_marker(description: &str) -> Option<String> {
    let start = description.find("<!-- dbt-ops incident: ")? + "<!-- dbt-ops incident: ".len();
    let rest = &description[start..];
    let id = rest[..rest.find("-->")?].trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_owned())
}

/// The incident a merge request belongs to: by its marker, else by its branch (recorded
/// on the incident, or `dbt-ops/fix/<model>/<short id>` rebuilt from each record).
async fn find_incident(
    bus: &Bus,
    event: &MergeRequestEnded,
) -> Result<Option<(String, Option<IncidentRecord>)>, BusError> {
    let store = bus.incidents().await?;
    if let Some(incident_id) = incident_from_marker(&event.description) {
        let record = store.get(&incident_id).await?;
        return Ok(Some((incident_id, record)));
    }
    if !event
        .branch
        .starts_with(dbtops_guardrails::FIX_BRANCH_PREFIX)
    {
        return Ok(None);
    }
    let records = store.list().await?;
    let found = records
        .iter()
        .find(|record| record.branch.as_deref() == Some(event.branch.as_str()))
        .or_else(|| {
            records.iter().find(|record| {
                dbtops_guardrails::fix_branch_name(&record.model, &record.incident_id)
                    == event.branch
            })
        })
        .cloned();
    Ok(found.map(|record| (record.incident_id.clone(), Some(record))))
}

/// Publishes the ending, records it on the incident, scores the trace.
pub async fn record(state: &WebhookState, event: &MergeRequestEnded) -> Result<Handled, BusError> {
    let bus = &state.bus;
    let Some((incident_id, record)) = find_incident(bus, event).await? else {
        return Ok(Handled::Ignored(format!(
            "{} is not a dbt-ops merge request",
            event.url
        )));
    };
    // A marker is text anyone can paste into a description: one that names no incident
    // must not announce a merge (or a close) of an incident that never existed.
    if record.is_none() {
        return Ok(Handled::Ignored(format!(
            "{} names incident {incident_id}, but there is no such incident",
            event.url
        )));
    }
    let generation = record.as_ref().map(|record| record.generation).unwrap_or(0);
    match event.ending {
        Ending::Merged => {
            let content = merged_content(state, event, &incident_id, generation).await;
            let merged = v1::MergeRequestMerged {
                incident_id: incident_id.clone(),
                provider: event.provider.to_owned(),
                url: event.url.clone(),
                merged_at: event.at.clone(),
                merge_commit_sha: event.merge_commit_sha.clone(),
                merged_content: content.content,
                merged_content_sha: content.read_at,
                changed_by_human: content.changed_by_human,
                merged_content_error: content.error,
            };
            bus.publish(
                &bus.subjects().mr_merged(),
                &stage_id(&incident_id, generation, "mr_merged", 0),
                &merged,
            )
            .await?;
        }
        Ending::Closed => {
            let closed = v1::MergeRequestClosed {
                incident_id: incident_id.clone(),
                provider: event.provider.to_owned(),
                url: event.url.clone(),
                closed_at: event.at.clone(),
            };
            bus.publish(
                &bus.subjects().mr_closed(),
                &stage_id(&incident_id, generation, "mr_closed", 0),
                &closed,
            )
            .await?;
        }
    }
    let ending = event.ending;
    let url = event.url.clone();
    let provider = event.provider;
    bus.incidents()
        .await?
        .update(&incident_id, |record| {
            match ending {
                Ending::Merged => record.state = IncidentState::Merged,
                // dbt-ops closes the merge request of a resolved incident itself: it stays
                // resolved. A merged one cannot be closed.
                Ending::Closed => {
                    if !matches!(
                        record.state,
                        IncidentState::Resolved | IncidentState::Merged
                    ) {
                        record.state = IncidentState::Closed;
                    }
                }
            }
            if !url.is_empty() {
                record.url = Some(url.clone());
            }
            record.detail = Some(format!(
                "{} {} on {provider}",
                url,
                match ending {
                    Ending::Merged => "merged",
                    Ending::Closed => "closed",
                }
            ));
        })
        .await?;
    score(state, &incident_id, record.as_ref(), event).await;
    tracing::info!(message = "Merge request ended.", %incident_id, ending = ?event.ending, url = %event.url);
    Ok(Handled::Recorded { incident_id })
}

/// The model file as a merge left it, or why that is not known.
#[derive(Debug, Default)]
struct MergedContent {
    /// The file's content; empty when not read.
    content: String,
    /// The commit it was read at; empty when not read.
    read_at: String,
    /// It differs from the validated proposal, trailing whitespace aside.
    changed_by_human: bool,
    /// Why it was not read; empty when it was.
    error: String,
}

/// Best effort within [`CONTENT_DEADLINE`]: whatever goes wrong is logged and said in
/// the event, and the merge is published without the content.
async fn merged_content(
    state: &WebhookState,
    event: &MergeRequestEnded,
    incident_id: &str,
    generation: u32,
) -> MergedContent {
    let read = tokio::time::timeout(
        CONTENT_DEADLINE,
        read_merged_content(state, event, incident_id, generation),
    )
    .await
    .unwrap_or_else(|_elapsed| {
        Err(format!(
            "reading the merged file took longer than {} s",
            CONTENT_DEADLINE.as_secs()
        ))
    });
    match read {
        Ok(content) => {
            tracing::info!(
                message = "Merged model file read.",
                incident_id,
                commit = %content.read_at,
                changed_by_human = content.changed_by_human
            );
            content
        }
        Err(reason) => {
            tracing::warn!(
                message = "Merged model file not read; publishing the merge without it.",
                incident_id,
                %reason
            );
            MergedContent {
                error: reason,
                ..MergedContent::default()
            }
        }
    }
}

async fn read_merged_content(
    state: &WebhookState,
    event: &MergeRequestEnded,
    incident_id: &str,
    generation: u32,
) -> Result<MergedContent, String> {
    let Some(forge) = state
        .forge
        .as_ref()
        .filter(|forge| forge.provider() == event.provider)
    else {
        return Err(format!(
            "no {0} client is configured (delivery.provider is not {0})",
            event.provider
        ));
    };
    // The merge commit holds the file as merged, squashes and edits included; without
    // one (GitLab's fast-forward merges) the source branch's head is what was merged.
    let reference = [&event.merge_commit_sha, &event.head_sha]
        .into_iter()
        .find(|sha| !sha.is_empty())
        .ok_or("the webhook named neither a merge commit nor the source branch's head")?;
    let fix = validated_fix(&state.bus, incident_id, generation)
        .await
        .map_err(|error| format!("cannot read the validated fixes: {error}"))?
        .ok_or("no validated fix for the incident on the stream")?;
    let proposal = fix.proposal.unwrap_or_default();
    let project = fix
        .incident
        .and_then(|incident| incident.project)
        .unwrap_or_default();
    let reason = |failure: Failure| match failure {
        Failure::Refused(reason) | Failure::Failed(reason) => reason,
        Failure::Retry { reason, .. } => reason,
    };
    let path = crate::checks::path_in_repository(&state.settings, &project, &proposal.model_path)
        .map_err(reason)?;
    match forge.file_content(&path, reference).await {
        Ok(Some(content)) => Ok(MergedContent {
            changed_by_human: !same_content(&content, &proposal.fixed_sql),
            content,
            read_at: reference.clone(),
            error: String::new(),
        }),
        Ok(None) => Err(format!(
            "{path} is not in the repository at {reference} (removed or renamed before the \
             merge, or the token cannot read it)"
        )),
        Err(error) => Err(format!("cannot read {path} at {reference}: {error}")),
    }
}

/// The incident's validated fix, from the stream: the latest of its current generation,
/// else its latest.
async fn validated_fix(
    bus: &Bus,
    incident_id: &str,
    generation: u32,
) -> Result<Option<v1::FixValidated>, BusError> {
    let stored = bus.replay(&bus.subjects().fix_validated()).await?;
    let mut latest = None;
    let mut latest_of_generation = None;
    for message in &stored {
        // An undecodable message is the dataset's and the dead letters' concern, not this.
        let Ok(fix) = message.decode::<v1::FixValidated>() else {
            continue;
        };
        let Some(incident) = fix.incident.as_ref() else {
            continue;
        };
        if incident.incident_id != incident_id {
            continue;
        }
        if incident.generation == generation {
            latest_of_generation = Some(fix.clone());
        }
        latest = Some(fix);
    }
    Ok(latest_of_generation.or(latest))
}

/// The same file but for trailing whitespace (on lines and at the end) and line endings,
/// which editors and forges' web editors add or strip and which change nothing dbt runs.
pub fn same_content(left: &str, right: &str) -> bool {
    fn normalised(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|line| line.is_empty()) {
            lines.pop();
        }
        lines
    }
    normalised(left) == normalised(right)
}

/// Best effort: the event and the state are what must be durable; a Langfuse outage costs
/// one score, logged.
async fn score(
    state: &WebhookState,
    incident_id: &str,
    record: Option<&IncidentRecord>,
    event: &MergeRequestEnded,
) {
    let Some(langfuse) = &state.langfuse else {
        return;
    };
    let Some(record) = record else {
        return;
    };
    let Some(trace_id) = record.trace_id.as_deref().filter(|id| !id.is_empty()) else {
        tracing::info!(message = "Incident has no trace id; no score.", incident_id);
        return;
    };
    // Closed because the model passed again is no verdict on the fix.
    if event.ending == Ending::Closed && record.state == IncidentState::Resolved {
        return;
    }
    let merged = event.ending == Ending::Merged;
    // Forges time webhooks out after about ten seconds and disable endpoints that keep
    // failing: a slow Langfuse must not cost the webhook.
    match tokio::time::timeout(
        SCORE_DEADLINE,
        langfuse.score_merged(incident_id, trace_id, merged, &event.url),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(message = "Langfuse score not recorded.", incident_id, %error)
        }
        Err(_elapsed) => {
            tracing::warn!(
                message = "Langfuse score timed out; not recorded.",
                incident_id
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_names_the_incident() {
        let text = "body\n<!-- dbt-ops incident: abc123 -->\n";
        assert_eq!(incident_from_marker(text).as_deref(), Some("abc123"));
        assert_eq!(incident_from_marker("no marker"), None);
        assert_eq!(incident_from_marker("<!-- dbt-ops incident:  -->"), None);
    }

    #[test]
    fn github_signatures_are_checked_over_the_raw_body() {
        let secret = Secret::from("s3cret");
        let body = br#"{"action":"closed"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", good.parse().unwrap());
        assert!(verify_github_signature(&secret, &headers, body).is_ok());
        assert!(verify_github_signature(&secret, &headers, b"{}").is_err());
        assert!(verify_github_signature(&Secret::default(), &headers, body).is_err());
        headers.insert("x-hub-signature-256", "sha256=zz".parse().unwrap());
        assert!(verify_github_signature(&secret, &headers, body).is_err());
    }

    #[test]
    fn trailing_whitespace_and_line_endings_are_no_change() {
        let fixed = "select\n    order_id\nfrom orders\n";
        assert!(same_content(
            fixed,
            "select  \r\n    order_id\t\r\nfrom orders"
        ));
        assert!(same_content(
            fixed,
            "select\n    order_id\nfrom orders\n\n\n"
        ));
        assert!(!same_content(fixed, "select\n    order_id,\nfrom orders\n"));
        // Leading whitespace is indentation, which a reviewer may well have changed.
        assert!(!same_content(fixed, "select\n  order_id\nfrom orders\n"));
        assert!(!same_content(
            fixed,
            "select\n\n    order_id\nfrom orders\n"
        ));
    }

    #[test]
    fn merges_name_their_merge_commit_and_head() {
        let gitlab = br#"{"object_kind":"merge_request","object_attributes":{"action":"merge","source_branch":"b","merge_commit_sha":"m1","last_commit":{"id":"h1"}}}"#;
        let merged = parse_gitlab(gitlab).unwrap().unwrap();
        assert_eq!(
            (merged.merge_commit_sha.as_str(), merged.head_sha.as_str()),
            ("m1", "h1")
        );
        let fast_forward = br#"{"object_kind":"merge_request","object_attributes":{"action":"merge","source_branch":"b","merge_commit_sha":null,"last_commit":{"id":"h1"}}}"#;
        assert_eq!(
            parse_gitlab(fast_forward)
                .unwrap()
                .unwrap()
                .merge_commit_sha,
            ""
        );
        let github = |merged: bool| {
            format!(
                r#"{{"action":"closed","pull_request":{{"merged":{merged},"merge_commit_sha":"m2","head":{{"ref":"b","sha":"h2"}}}}}}"#
            )
        };
        let merged = parse_github(github(true).as_bytes()).unwrap().unwrap();
        assert_eq!(
            (merged.merge_commit_sha.as_str(), merged.head_sha.as_str()),
            ("m2", "h2")
        );
        let closed = parse_github(github(false).as_bytes()).unwrap().unwrap();
        assert_eq!(closed.merge_commit_sha, "", "a test merge is no merge");
    }

    #[test]
    fn gitlab_merge_and_close_are_the_only_endings() {
        let event = |action: &str| {
            format!(
                r#"{{"object_kind":"merge_request","object_attributes":{{"action":"{action}","url":"u","source_branch":"b","description":"d"}}}}"#
            )
        };
        let merged = parse_gitlab(event("merge").as_bytes()).unwrap().unwrap();
        assert_eq!(merged.ending, Ending::Merged);
        assert_eq!(merged.branch, "b");
        let closed = parse_gitlab(event("close").as_bytes()).unwrap().unwrap();
        assert_eq!(closed.ending, Ending::Closed);
        assert!(parse_gitlab(event("update").as_bytes()).unwrap().is_none());
        assert!(parse_gitlab(br#"{"object_kind":"push"}"#)
            .unwrap()
            .is_none());
        assert!(parse_gitlab(b"not json").is_err());
    }
}
