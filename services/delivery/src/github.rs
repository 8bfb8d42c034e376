//! GitHub (github.com or Enterprise Server) through its REST API.
//!
//! Opening a pull request: look for an open one from the branch (a redelivery reuses it);
//! then the git data API — the target's head (`git/ref`), its tree (`git/commits`), the
//! file's blob at the base (`contents`, so only an existing file is ever replaced), a new
//! blob, a tree on `base_tree`, a commit, and the branch (`POST git/refs`, which fails
//! rather than move an existing branch); then the pull request, its labels, assignee and
//! reviewers. The token travels in `Authorization: Bearer` and nowhere else.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use dbtops_settings::Secret;

use crate::forge::{
    check_branch, ours, ChangeRequest, ForgeError, OpenMergeRequest, OpenedMergeRequest,
};
use crate::gitlab::with_marker;
use crate::http::{encode_component, with_query, Answer, HttpClient};
use crate::owners::{user_names, Owner};

const FORGE: &str = "GitHub";
const TOKEN_HINT: &str =
    "delivery.github.token (or the variable named in delivery.github.token_env)";
const REPOSITORY_HINT: &str = "delivery.github.repository and delivery.github.api_url";
/// The REST API version this client speaks.
const API_VERSION: &str = "2022-11-28";
/// GitHub refuses bodies above 65,536 characters; keep a margin for the marker.
pub const MAX_BODY_CHARS: usize = 60_000;

/// A GitHub repository, ready to call.
#[derive(Debug, Clone)]
pub struct Github {
    /// Shared client with retries.
    http: HttpClient,
    /// `https://api.github.com` or `https://HOST/api/v3`.
    api: String,
    /// The repository's owner (a user or an organisation).
    owner: String,
    /// The repository's name.
    name: String,
    /// The token; only ever put in the `Authorization` header.
    token: Secret,
}

/// A pull request as the API lists it.
#[derive(Debug, Deserialize)]
struct PullRequest {
    number: u64,
    html_url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    head: Option<BranchRef>,
    #[serde(default)]
    base: Option<BranchRef>,
    #[serde(default)]
    requested_reviewers: Vec<Value>,
    #[serde(default)]
    assignees: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct BranchRef {
    #[serde(rename = "ref", default)]
    name: String,
    #[serde(default)]
    sha: String,
}

#[derive(Deserialize)]
struct Sha {
    sha: String,
}

impl From<&PullRequest> for OpenMergeRequest {
    fn from(pull: &PullRequest) -> Self {
        OpenMergeRequest {
            number: pull.number,
            url: pull.html_url.clone(),
            description: pull.body.clone().unwrap_or_default(),
            head_sha: pull
                .head
                .as_ref()
                .map(|head| head.sha.clone())
                .unwrap_or_default(),
            target_branch: pull
                .base
                .as_ref()
                .map(|base| base.name.clone())
                .unwrap_or_default(),
        }
    }
}

impl Github {
    /// A client for `repository` (`owner/name`) at `api_url`.
    pub fn new(http: HttpClient, api_url: &str, repository: &str, token: Secret) -> Self {
        let (owner, name) = repository.split_once('/').unwrap_or((repository, ""));
        Self {
            http,
            api: api_url.trim_end_matches('/').to_owned(),
            owner: owner.trim().to_owned(),
            name: name.trim().to_owned(),
            token,
        }
    }

    fn repo_url(&self, rest: &str) -> String {
        format!(
            "{}/repos/{}/{}{rest}",
            self.api,
            encode_component(&self.owner),
            encode_component(&self.name)
        )
    }

    /// One call: retries inside, 401 mapped to [`ForgeError::Unauthorized`], anything
    /// else handed back to interpret.
    async fn call(
        &self,
        method: Method,
        url: &str,
        what: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let url = with_query(url, query);
        let answer = self
            .http
            .send(FORGE, what, || {
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(self.token.expose())
                    .header("Accept", "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", API_VERSION);
                if let Some(body) = body {
                    request = request.json(body);
                }
                request
            })
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(ForgeError::Unauthorized {
                forge: FORGE,
                what: what.to_owned(),
                status: answer.status.as_u16(),
                hint: TOKEN_HINT,
            });
        }
        Ok(answer)
    }

    /// The repository's default branch.
    pub async fn default_branch(&self) -> Result<String, ForgeError> {
        let what = "GET /repos/:owner/:repo";
        let answer = self
            .call(Method::GET, &self.repo_url(""), what, &[], None)
            .await?;
        #[derive(Deserialize)]
        struct Repository {
            #[serde(default)]
            default_branch: String,
        }
        let repository: Repository = success(answer, what)?;
        if repository.default_branch.is_empty() {
            return Err(ForgeError::Unexpected {
                forge: FORGE,
                what: what.to_owned(),
                reason: "the repository has no default branch; set delivery.target_branch".into(),
            });
        }
        Ok(repository.default_branch)
    }

    async fn open_pulls(&self, branch: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let what = "GET /repos/:owner/:repo/pulls";
        let head = format!("{}:{branch}", self.owner);
        let answer = self
            .call(
                Method::GET,
                &self.repo_url("/pulls"),
                what,
                &[("head", &head), ("state", "open")],
                None,
            )
            .await?;
        success(answer, what)
    }

    /// The open pull request from `branch`, if any.
    pub async fn find_open(&self, branch: &str) -> Result<Option<OpenMergeRequest>, ForgeError> {
        Ok(self
            .open_pulls(branch)
            .await?
            .first()
            .map(OpenMergeRequest::from))
    }

    /// Opens the pull request for `change` (see the module documentation).
    pub async fn open(&self, change: &ChangeRequest) -> Result<OpenedMergeRequest, ForgeError> {
        // Idempotency first: a redelivered message finds its pull request.
        if let Some(pull) = self.open_pulls(&change.branch).await?.into_iter().next() {
            let open = OpenMergeRequest::from(&pull);
            ours(FORGE, &open, change)?;
            tracing::info!(message = "Pull request already open; reusing it.", url = %open.url);
            // The first delivery may have stopped between the pull request and its labels
            // or reviewers; labels are idempotent, people are asked only if nobody is.
            self.decorate(
                pull.number,
                change,
                pull.assignees.is_empty(),
                pull.requested_reviewers.is_empty(),
            )
            .await?;
            return Ok(OpenedMergeRequest {
                number: open.number,
                url: open.url,
                commit_sha: open.head_sha,
                target_branch: open.target_branch,
                reused: true,
            });
        }
        let target = match &change.target_branch {
            Some(target) => target.clone(),
            None => self.default_branch().await?,
        };
        check_branch(change, &target)?;
        let commit_sha = self.commit(change, &target).await?;
        let pull = self.create_pull(change, &target).await?;
        let (number, url, reused) = match pull {
            Created::New(number, url) => (number, url, false),
            Created::Existing(number, url) => (number, url, true),
        };
        self.decorate(number, change, true, true).await?;
        tracing::info!(message = "Pull request opened.", %url, reused);
        Ok(OpenedMergeRequest {
            number,
            url,
            commit_sha,
            target_branch: target,
            reused,
        })
    }

    /// Blob → tree → commit → ref, on the target's head. Returns the fix commit.
    async fn commit(&self, change: &ChangeRequest, target: &str) -> Result<String, ForgeError> {
        let base = self
            .branch_head(target)
            .await?
            .ok_or_else(|| ForgeError::NotFound {
                forge: FORGE,
                what: format!("target branch {target}"),
                hint: "delivery.target_branch",
            })?;
        let what = "GET /repos/:owner/:repo/git/commits/:sha";
        let answer = self
            .call(
                Method::GET,
                &self.repo_url(&format!("/git/commits/{}", encode_component(&base))),
                what,
                &[],
                None,
            )
            .await?;
        #[derive(Deserialize)]
        struct Commit {
            tree: Sha,
        }
        let base_tree = success::<Commit>(answer, what)?.tree.sha;

        // Only a file that exists at the base is ever replaced, never created.
        let base_blob = self
            .file_sha(&change.file_path, &base)
            .await?
            .ok_or_else(|| {
                ForgeError::Guardrail(format!(
                    "{} does not exist as a regular file on {target}; dbt-ops only replaces the \
                 incident's existing model file",
                    change.file_path
                ))
            })?;

        let what = "POST /repos/:owner/:repo/git/blobs";
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/blobs"),
                what,
                &[],
                Some(&json!({ "content": change.content, "encoding": "utf-8" })),
            )
            .await?;
        let blob = success::<Sha>(answer, what)?.sha;
        if blob == base_blob {
            return Err(ForgeError::Guardrail(format!(
                "the fix is identical to {} on {target}: nothing to deliver",
                change.file_path
            )));
        }

        let what = "POST /repos/:owner/:repo/git/trees";
        // 100644: the contents API does not report modes, and a model is a plain file.
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/trees"),
                what,
                &[],
                Some(&json!({
                    "base_tree": base_tree,
                    "tree": [{
                        "path": change.file_path,
                        "mode": "100644",
                        "type": "blob",
                        "sha": blob,
                    }],
                })),
            )
            .await?;
        let tree = success::<Sha>(answer, what)?.sha;

        let what = "POST /repos/:owner/:repo/git/commits";
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/commits"),
                what,
                &[],
                Some(&json!({
                    "message": change.commit_message,
                    "tree": tree,
                    "parents": [base],
                    "author": { "name": change.author_name, "email": change.author_email },
                })),
            )
            .await?;
        let commit = success::<Sha>(answer, what)?.sha;

        let what = "POST /repos/:owner/:repo/git/refs";
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/refs"),
                what,
                &[],
                Some(&json!({ "ref": format!("refs/heads/{}", change.branch), "sha": commit })),
            )
            .await?;
        if answer.status == StatusCode::UNPROCESSABLE_ENTITY
            && message_of(&answer)
                .to_lowercase()
                .contains("already exists")
        {
            return self.existing_branch(change, &blob).await;
        }
        success::<Value>(answer, what)?;
        Ok(commit)
    }

    /// The branch exists: reuse it when its file is exactly the fix (same blob), else
    /// leave it alone — never force.
    async fn existing_branch(
        &self,
        change: &ChangeRequest,
        blob: &str,
    ) -> Result<String, ForgeError> {
        let on_branch = self.file_sha(&change.file_path, &change.branch).await?;
        if on_branch.as_deref() != Some(blob) {
            return Err(ForgeError::Guardrail(format!(
                "branch {} already exists on GitHub with other content for {}; \
                 dbt-ops never moves an existing branch",
                change.branch, change.file_path
            )));
        }
        tracing::info!(message = "Branch already holds the fix; reusing it.", branch = %change.branch);
        self.branch_head(&change.branch)
            .await?
            .ok_or_else(|| ForgeError::Unexpected {
                forge: FORGE,
                what: "GET /repos/:owner/:repo/git/ref/heads/:branch".into(),
                reason: format!("branch {} vanished", change.branch),
            })
    }

    /// The commit at the head of `branch`, or `None` when there is no such branch.
    async fn branch_head(&self, branch: &str) -> Result<Option<String>, ForgeError> {
        let what = "GET /repos/:owner/:repo/git/ref/heads/:branch";
        let url = self.repo_url(&format!("/git/ref/heads/{}", encode_path(branch)));
        let answer = self.call(Method::GET, &url, what, &[], None).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Ref {
            object: Sha,
        }
        Ok(Some(success::<Ref>(answer, what)?.object.sha))
    }

    /// The blob id of `path` at `reference`, or `None` when it is missing or is not a
    /// regular file.
    async fn file_sha(&self, path: &str, reference: &str) -> Result<Option<String>, ForgeError> {
        let what = "GET /repos/:owner/:repo/contents/:path";
        let url = self.repo_url(&format!("/contents/{}", encode_path(path)));
        let answer = self
            .call(Method::GET, &url, what, &[("ref", reference)], None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Content {
            #[serde(rename = "type", default)]
            kind: String,
            sha: String,
        }
        // A directory answers with a list, which does not parse as one file.
        match success::<Content>(answer, what) {
            Ok(content) if content.kind == "file" => Ok(Some(content.sha)),
            Ok(_) => Ok(None),
            Err(ForgeError::Unexpected { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn create_pull(
        &self,
        change: &ChangeRequest,
        target: &str,
    ) -> Result<Created, ForgeError> {
        let what = "POST /repos/:owner/:repo/pulls";
        let mut draft = change.draft;
        loop {
            let body = json!({
                "title": change.title,
                "head": change.branch,
                "base": target,
                "body": change.description,
                "draft": draft,
            });
            let answer = self
                .call(
                    Method::POST,
                    &self.repo_url("/pulls"),
                    what,
                    &[],
                    Some(&body),
                )
                .await?;
            if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
                let message = message_of(&answer).to_lowercase();
                if message.contains("already exists") {
                    // A replica or a retried call opened it first.
                    if let Some(open) = self.find_open(&change.branch).await? {
                        ours(FORGE, &open, change)?;
                        return Ok(Created::Existing(open.number, open.url));
                    }
                }
                if draft && message.contains("draft") {
                    // Plans without draft pull requests: open it ready, the
                    // needs-owner-review label still says who must decide.
                    tracing::warn!(
                        message =
                            "Draft pull requests are not supported here; opening a labelled one."
                    );
                    draft = false;
                    continue;
                }
            }
            let created: PullRequest = success(answer, what)?;
            return Ok(Created::New(created.number, created.html_url));
        }
    }

    /// Labels, assignee and reviewers. A person GitHub will not accept (not a
    /// collaborator, the token's own user) costs that person, not the pull request.
    async fn decorate(
        &self,
        number: u64,
        change: &ChangeRequest,
        assign: bool,
        request_reviews: bool,
    ) -> Result<(), ForgeError> {
        if !change.labels.is_empty() {
            let what = "POST /repos/:owner/:repo/issues/:number/labels";
            let answer = self
                .call(
                    Method::POST,
                    &self.repo_url(&format!("/issues/{number}/labels")),
                    what,
                    &[],
                    Some(&json!({ "labels": change.labels })),
                )
                .await?;
            success::<Value>(answer, what)?;
        }
        let users = user_names(&change.owners);
        if assign {
            if let Some(first) = users.first() {
                let what = "POST /repos/:owner/:repo/issues/:number/assignees";
                let answer = self
                    .call(
                        Method::POST,
                        &self.repo_url(&format!("/issues/{number}/assignees")),
                        what,
                        &[],
                        Some(&json!({ "assignees": [first] })),
                    )
                    .await?;
                tolerate(answer, what)?;
            }
        }
        let teams: Vec<String> = change
            .owners
            .iter()
            .filter_map(|owner| match owner {
                Owner::Group(group) => group
                    .split_once('/')
                    .filter(|(org, _)| org.eq_ignore_ascii_case(&self.owner))
                    .map(|(_, team)| team.to_owned()),
                _ => None,
            })
            .collect();
        if request_reviews && (!users.is_empty() || !teams.is_empty()) {
            let what = "POST /repos/:owner/:repo/pulls/:number/requested_reviewers";
            let answer = self
                .call(
                    Method::POST,
                    &self.repo_url(&format!("/pulls/{number}/requested_reviewers")),
                    what,
                    &[],
                    Some(&json!({ "reviewers": users, "team_reviewers": teams })),
                )
                .await?;
            tolerate(answer, what)?;
        }
        Ok(())
    }

    /// Adds a comment unless one with `marker` exists (see
    /// [`crate::forge::Forge::add_note_once`]).
    pub async fn add_note_once(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<bool, ForgeError> {
        let url = self.repo_url(&format!("/issues/{number}/comments"));
        let what = "GET /repos/:owner/:repo/issues/:number/comments";
        let answer = self
            .call(Method::GET, &url, what, &[("per_page", "100")], None)
            .await?;
        #[derive(Deserialize)]
        struct Comment {
            #[serde(default)]
            body: Option<String>,
        }
        let comments: Vec<Comment> = success(answer, what)?;
        if comments
            .iter()
            .any(|comment| comment.body.as_deref().unwrap_or_default().contains(marker))
        {
            return Ok(false);
        }
        let what = "POST /repos/:owner/:repo/issues/:number/comments";
        let answer = self
            .call(
                Method::POST,
                &url,
                what,
                &[],
                Some(&json!({ "body": with_marker(body, marker) })),
            )
            .await?;
        success::<Value>(answer, what)?;
        Ok(true)
    }

    /// Closes the pull request without merging it.
    pub async fn close(&self, number: u64) -> Result<(), ForgeError> {
        let what = "PATCH /repos/:owner/:repo/pulls/:number";
        let answer = self
            .call(
                Method::PATCH,
                &self.repo_url(&format!("/pulls/{number}")),
                what,
                &[],
                Some(&json!({ "state": "closed" })),
            )
            .await?;
        success::<Value>(answer, what)?;
        Ok(())
    }
}

/// A pull request created now, or found open when creating it collided.
enum Created {
    New(u64, String),
    Existing(u64, String),
}

/// Encodes each segment of a `/`-separated path, keeping the separators (GitHub's
/// `contents/:path` and `git/ref/heads/:branch` take them literally).
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

/// GitHub's `message` plus each `errors[].message`, or the body.
fn message_of(answer: &Answer) -> String {
    let Ok(value) = serde_json::from_str::<Value>(&answer.body) else {
        return answer.excerpt();
    };
    let mut parts = Vec::new();
    if let Some(message) = value.get("message").and_then(Value::as_str) {
        parts.push(message.to_owned());
    }
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        for error in errors {
            match error.get("message").and_then(Value::as_str) {
                Some(message) => parts.push(message.to_owned()),
                None => parts.push(error.to_string()),
            }
        }
    }
    if parts.is_empty() {
        answer.excerpt()
    } else {
        parts.join("; ")
    }
}

/// A 2xx as `T`; anything else as the error it means.
fn success<T: serde::de::DeserializeOwned>(answer: Answer, what: &str) -> Result<T, ForgeError> {
    if answer.is_success() {
        return answer.json().map_err(|reason| ForgeError::Unexpected {
            forge: FORGE,
            what: what.to_owned(),
            reason,
        });
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Err(ForgeError::NotFound {
            forge: FORGE,
            what: format!("{what}: {}", message_of(&answer)),
            hint: REPOSITORY_HINT,
        });
    }
    Err(ForgeError::Refused {
        forge: FORGE,
        what: what.to_owned(),
        status: answer.status.as_u16(),
        message: message_of(&answer),
    })
}

/// A 422 on an optional step (an assignee or reviewer GitHub will not take) is logged and
/// passed over; other failures are errors.
fn tolerate(answer: Answer, what: &str) -> Result<(), ForgeError> {
    if answer.status == StatusCode::UNPROCESSABLE_ENTITY {
        tracing::warn!(message = "GitHub refused an optional step.", what, reason = %message_of(&answer));
        return Ok(());
    }
    success::<Value>(answer, what).map(|_| ())
}
