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
    check_branch, ours, ChangeRequest, FileChange, ForgeError, OpenMergeRequest, OpenedMergeRequest,
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
/// JSON, the media type of every call but one.
const JSON_MEDIA_TYPE: &str = "application/vnd.github+json";
/// The contents API's media type for a file's bytes as they are (files up to 100 MB,
/// where the JSON form stops carrying content at 1 MB).
const RAW_MEDIA_TYPE: &str = "application/vnd.github.raw+json";
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
        self.call_accepting(method, url, what, query, body, JSON_MEDIA_TYPE)
            .await
    }

    /// [`Github::call`] asking for the media type `accept`.
    async fn call_accepting(
        &self,
        method: Method,
        url: &str,
        what: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        accept: &str,
    ) -> Result<Answer, ForgeError> {
        let url = with_query(url, query);
        let answer = self
            .http
            .send(FORGE, what, || {
                let mut request = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(self.token.expose())
                    .header("Accept", accept)
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
        let main_file = FileChange {
            file_path: change.file_path.clone(),
            content: change.content.clone(),
        };
        let (base_blob, blob) = self.replacement_blob(&main_file, &base, target).await?;
        let mut entries = vec![tree_entry(&change.file_path, &blob)];
        let mut changed = blob != base_blob;
        for other in &change.also_replace {
            let (other_base, other_blob) = self.replacement_blob(other, &base, target).await?;
            changed |= other_blob != other_base;
            entries.push(tree_entry(&other.file_path, &other_blob));
        }
        if !changed {
            return Err(ForgeError::Guardrail(format!(
                "the fix is identical to {} on {target}: nothing to deliver",
                change.file_path
            )));
        }

        let what = "POST /repos/:owner/:repo/git/trees";
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/trees"),
                what,
                &[],
                Some(&json!({ "base_tree": base_tree, "tree": entries })),
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

    /// For a file the fix replaces: its blob at the base (it must exist: an edit never
    /// creates a file) and the blob of its new content.
    async fn replacement_blob(
        &self,
        other: &FileChange,
        base: &str,
        target: &str,
    ) -> Result<(String, String), ForgeError> {
        let base_blob = self
            .file_sha(&other.file_path, base)
            .await?
            .ok_or_else(|| {
                ForgeError::Guardrail(format!(
                    "{} does not exist as a regular file on {target}; dbt-ops only replaces \
                 existing model files",
                    other.file_path
                ))
            })?;
        let what = "POST /repos/:owner/:repo/git/blobs";
        let answer = self
            .call(
                Method::POST,
                &self.repo_url("/git/blobs"),
                what,
                &[],
                Some(&json!({ "content": other.content, "encoding": "utf-8" })),
            )
            .await?;
        Ok((base_blob, success::<Sha>(answer, what)?.sha))
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

    /// The content of `path` at `reference` (a commit), as raw bytes from the contents
    /// API (`GET /repos/:owner/:repo/contents/:path?ref=`), or `None` when no such file is
    /// there.
    pub async fn file_content(
        &self,
        path: &str,
        reference: &str,
    ) -> Result<Option<String>, ForgeError> {
        let what = "GET /repos/:owner/:repo/contents/:path";
        let url = self.repo_url(&format!("/contents/{}", encode_path(path)));
        let answer = self
            .call_accepting(
                Method::GET,
                &url,
                what,
                &[("ref", reference)],
                None,
                RAW_MEDIA_TYPE,
            )
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(failure(&answer, what));
        }
        // A server (or proxy) that ignores the raw media type answers with the JSON
        // object, its content in base64; a model file never parses as that object.
        #[derive(Deserialize)]
        struct Encoded {
            #[serde(rename = "type")]
            kind: String,
            encoding: String,
            content: String,
        }
        match serde_json::from_str::<Encoded>(&answer.body) {
            Ok(encoded) if encoded.kind == "file" && encoded.encoding == "base64" => {
                let bytes =
                    decode_base64(&encoded.content).ok_or_else(|| ForgeError::Unexpected {
                        forge: FORGE,
                        what: what.to_owned(),
                        reason: "the file's base64 content does not decode".into(),
                    })?;
                Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
            }
            _ => Ok(Some(answer.body)),
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
    Err(failure(&answer, what))
}

/// The error a non-2xx answer means.
fn failure(answer: &Answer, what: &str) -> ForgeError {
    if answer.status == StatusCode::NOT_FOUND {
        return ForgeError::NotFound {
            forge: FORGE,
            what: format!("{what}: {}", message_of(answer)),
            hint: REPOSITORY_HINT,
        };
    }
    ForgeError::Refused {
        forge: FORGE,
        what: what.to_owned(),
        status: answer.status.as_u16(),
        message: message_of(answer),
    }
}

/// Standard base64 as the contents API sends it (wrapped lines, `=` padding), or `None`
/// when it is not base64. Small enough not to be worth a dependency.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |byte: u8| -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    let digits = match digits.iter().position(|&byte| byte == b'=') {
        // Padding only at the end, at most two.
        Some(at) if digits[at..].iter().all(|&byte| byte == b'=') && digits.len() - at <= 2 => {
            &digits[..at]
        }
        Some(_) => return None,
        None => &digits[..],
    };
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut group = 0u32;
        for (index, &byte) in chunk.iter().enumerate() {
            group |= value(byte)? << (18 - 6 * index);
        }
        let bytes = group.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
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

/// A tree entry replacing `path` with `blob`; 100644 because the contents API does not
/// report modes, and a model is a plain file.
fn tree_entry(path: &str, blob: &str) -> Value {
    json!({ "path": path, "mode": "100644", "type": "blob", "sha": blob })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_content_decodes_across_wrapped_lines() {
        // "select 1\n" as the contents API wraps it.
        assert_eq!(
            decode_base64("c2VsZWN0\nIDEK\n").as_deref(),
            Some(&b"select 1\n"[..])
        );
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("Y=Q="), None);
        assert_eq!(decode_base64("Y"), None);
        assert_eq!(decode_base64("c2Vs*"), None);
    }
}
