//! GitLab (gitlab.com or self-managed) through REST API v4.
//!
//! Opening a merge request is three steps, each safe to repeat: look for an open merge
//! request from the branch (a redelivery reuses it); create the branch and the fix commit
//! in one call (`POST /projects/:id/repository/commits` with `start_branch`), reusing a
//! branch that already holds exactly this content; create the merge request. The token
//! travels in `PRIVATE-TOKEN` and nowhere else: not in URLs, errors or logs.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use dbtops_settings::Secret;

use crate::forge::{
    check_branch, ours, ChangeRequest, ForgeError, OpenMergeRequest, OpenedMergeRequest,
};
use crate::http::{encode_component, with_query, Answer, HttpClient};
use crate::owners::{user_names, Owner};

const FORGE: &str = "GitLab";
const TOKEN_HINT: &str =
    "delivery.gitlab.token (or the variable named in delivery.gitlab.token_env)";
const PROJECT_HINT: &str = "delivery.gitlab.project and delivery.gitlab.base_url";
/// The prefix GitLab reads as "draft" on a title, on every version that has drafts.
const DRAFT_PREFIX: &str = "Draft: ";

/// A GitLab project, ready to call.
#[derive(Debug, Clone)]
pub struct Gitlab {
    /// Shared client with retries.
    http: HttpClient,
    /// `<base_url>/api/v4`.
    api: String,
    /// The project id or path, encoded as one path segment (`group%2Fproject`).
    project: String,
    /// The access token; only ever put in the `PRIVATE-TOKEN` header.
    token: Secret,
}

/// A merge request as the API lists it.
#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    web_url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    target_branch: String,
}

impl From<MergeRequest> for OpenMergeRequest {
    fn from(mr: MergeRequest) -> Self {
        OpenMergeRequest {
            number: mr.iid,
            url: mr.web_url,
            description: mr.description.unwrap_or_default(),
            head_sha: mr.sha.unwrap_or_default(),
            target_branch: mr.target_branch,
        }
    }
}

impl Gitlab {
    /// A client for `project` (id or `group/project` path) on the instance at `base_url`.
    pub fn new(http: HttpClient, base_url: &str, project: &str, token: Secret) -> Self {
        Self {
            http,
            api: format!("{}/api/v4", base_url.trim_end_matches('/')),
            project: encode_component(project.trim()),
            token,
        }
    }

    fn project_url(&self, rest: &str) -> String {
        format!("{}/projects/{}{rest}", self.api, self.project)
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
                    .header("PRIVATE-TOKEN", self.token.expose());
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

    /// The project's default branch (`GET /projects/:id`).
    pub async fn default_branch(&self) -> Result<String, ForgeError> {
        let what = "GET /projects/:id";
        let answer = self
            .call(Method::GET, &self.project_url(""), what, &[], None)
            .await?;
        #[derive(Deserialize)]
        struct Project {
            #[serde(default)]
            default_branch: Option<String>,
        }
        let project: Project = success(answer, what)?;
        project
            .default_branch
            .filter(|branch| !branch.is_empty())
            .ok_or_else(|| ForgeError::Unexpected {
                forge: FORGE,
                what: what.to_owned(),
                reason: "the project has no default branch (an empty repository?); \
                         set delivery.target_branch"
                    .into(),
            })
    }

    /// The open merge request from `branch`, if any.
    pub async fn find_open(&self, branch: &str) -> Result<Option<OpenMergeRequest>, ForgeError> {
        let what = "GET /projects/:id/merge_requests";
        let answer = self
            .call(
                Method::GET,
                &self.project_url("/merge_requests"),
                what,
                &[("source_branch", branch), ("state", "opened")],
                None,
            )
            .await?;
        let list: Vec<MergeRequest> = success(answer, what)?;
        Ok(list.into_iter().next().map(OpenMergeRequest::from))
    }

    /// Opens the merge request for `change` (see the module documentation).
    pub async fn open(&self, change: &ChangeRequest) -> Result<OpenedMergeRequest, ForgeError> {
        // Idempotency first: a redelivered message finds its merge request.
        if let Some(open) = self.find_open(&change.branch).await? {
            ours(FORGE, &open, change)?;
            tracing::info!(message = "Merge request already open; reusing it.", url = %open.url);
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
        let (assignee, reviewers) = self.owner_ids(&change.owners).await;
        let what = "POST /projects/:id/merge_requests";
        let title = if change.draft {
            format!("{DRAFT_PREFIX}{}", change.title)
        } else {
            change.title.clone()
        };
        let mut body = json!({
            "source_branch": change.branch,
            "target_branch": target,
            "title": title,
            "description": change.description,
            "labels": change.labels.join(","),
            "remove_source_branch": true,
        });
        if let Some(assignee) = assignee {
            body["assignee_id"] = json!(assignee);
        }
        if !reviewers.is_empty() {
            body["reviewer_ids"] = json!(reviewers);
        }
        let answer = self
            .call(
                Method::POST,
                &self.project_url("/merge_requests"),
                what,
                &[],
                Some(&body),
            )
            .await?;
        if answer.status == StatusCode::CONFLICT {
            // Another delivery (a replica, or a retried call that landed) opened it first.
            if let Some(open) = self.find_open(&change.branch).await? {
                ours(FORGE, &open, change)?;
                return Ok(OpenedMergeRequest {
                    number: open.number,
                    url: open.url,
                    commit_sha,
                    target_branch: target,
                    reused: true,
                });
            }
        }
        let created: MergeRequest = success(answer, what)?;
        tracing::info!(message = "Merge request opened.", url = %created.web_url);
        Ok(OpenedMergeRequest {
            number: created.iid,
            url: created.web_url,
            commit_sha,
            target_branch: target,
            reused: false,
        })
    }

    /// Creates the branch from `target` with the fix commit, in one call; a branch that
    /// already exists is reused only when it holds exactly this content.
    async fn commit(&self, change: &ChangeRequest, target: &str) -> Result<String, ForgeError> {
        let what = "POST /projects/:id/repository/commits";
        // `update` fails on a file that does not exist: an edit never creates one.
        let actions: Vec<Value> = std::iter::once((&change.file_path, &change.content))
            .chain(
                change
                    .also_replace
                    .iter()
                    .map(|other| (&other.file_path, &other.content)),
            )
            .map(|(file_path, content)| {
                json!({ "action": "update", "file_path": file_path, "content": content })
            })
            .collect();
        let body = json!({
            "branch": change.branch,
            "start_branch": target,
            "commit_message": change.commit_message,
            "author_name": change.author_name,
            "author_email": change.author_email,
            "actions": actions,
        });
        let answer = self
            .call(
                Method::POST,
                &self.project_url("/repository/commits"),
                what,
                &[],
                Some(&body),
            )
            .await?;
        let branch_exists = matches!(
            answer.status,
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST
        ) && message_of(&answer)
            .to_lowercase()
            .contains("already exists");
        if branch_exists {
            return self.existing_branch(change).await;
        }
        #[derive(Deserialize)]
        struct Commit {
            id: String,
        }
        let commit: Commit = success(answer, what)?;
        Ok(commit.id)
    }

    /// The branch exists (a redelivery after the commit landed, or a retried call): reuse
    /// it when its file is exactly the fix, else leave it alone — never force.
    async fn existing_branch(&self, change: &ChangeRequest) -> Result<String, ForgeError> {
        let what = "GET /projects/:id/repository/files/:file_path";
        let url = self.project_url(&format!(
            "/repository/files/{}",
            encode_component(&change.file_path)
        ));
        let answer = self
            .call(Method::GET, &url, what, &[("ref", &change.branch)], None)
            .await?;
        let conflict = || {
            ForgeError::Guardrail(format!(
                "branch {} already exists on GitLab with other content for {}; \
                 dbt-ops never moves an existing branch",
                change.branch, change.file_path
            ))
        };
        if answer.status == StatusCode::NOT_FOUND {
            return Err(conflict());
        }
        #[derive(Deserialize)]
        struct File {
            content_sha256: String,
            last_commit_id: String,
        }
        let file: File = success(answer, what)?;
        let ours = hex::encode(Sha256::digest(change.content.as_bytes()));
        if file.content_sha256.eq_ignore_ascii_case(&ours) {
            tracing::info!(message = "Branch already holds the fix; reusing it.", branch = %change.branch);
            Ok(file.last_commit_id)
        } else {
            Err(conflict())
        }
    }

    /// User ids of the owners: the first user is the assignee, every user a reviewer.
    /// Groups and e-mails cannot be reviewers through this API and are skipped; a lookup
    /// that fails costs a reviewer, not the merge request.
    async fn owner_ids(&self, owners: &[Owner]) -> (Option<u64>, Vec<u64>) {
        let mut ids = Vec::new();
        for name in user_names(owners) {
            match self.user_id(&name).await {
                Ok(Some(id)) => ids.push(id),
                Ok(None) => {
                    tracing::warn!(message = "Owner is not a GitLab user; skipped.", user = %name)
                }
                Err(error) => {
                    tracing::warn!(message = "Cannot look up owner; skipped.", user = %name, %error)
                }
            }
        }
        (ids.first().copied(), ids)
    }

    async fn user_id(&self, username: &str) -> Result<Option<u64>, ForgeError> {
        let what = "GET /users?username=";
        let answer = self
            .call(
                Method::GET,
                &format!("{}/users", self.api),
                what,
                &[("username", username)],
                None,
            )
            .await?;
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        let users: Vec<User> = success(answer, what)?;
        Ok(users.first().map(|user| user.id))
    }

    /// Adds a note unless one with `marker` exists (see [`crate::forge::Forge::add_note_once`]).
    pub async fn add_note_once(
        &self,
        iid: u64,
        marker: &str,
        body: &str,
    ) -> Result<bool, ForgeError> {
        let url = self.project_url(&format!("/merge_requests/{iid}/notes"));
        let what = "GET /projects/:id/merge_requests/:iid/notes";
        let answer = self
            .call(
                Method::GET,
                &url,
                what,
                &[("per_page", "100"), ("sort", "desc")],
                None,
            )
            .await?;
        #[derive(Deserialize)]
        struct Note {
            #[serde(default)]
            body: String,
        }
        let notes: Vec<Note> = success(answer, what)?;
        if notes.iter().any(|note| note.body.contains(marker)) {
            return Ok(false);
        }
        let what = "POST /projects/:id/merge_requests/:iid/notes";
        let body = json!({ "body": with_marker(body, marker) });
        let answer = self
            .call(Method::POST, &url, what, &[], Some(&body))
            .await?;
        success::<Value>(answer, what)?;
        Ok(true)
    }

    /// The content of `path` at `reference` (a commit), through the raw-file endpoint
    /// (`GET /projects/:id/repository/files/:file_path/raw?ref=`), or `None` when no such
    /// file is there (GitLab does not tell a missing file from an unreadable project).
    pub async fn file_content(
        &self,
        path: &str,
        reference: &str,
    ) -> Result<Option<String>, ForgeError> {
        let what = "GET /projects/:id/repository/files/:file_path/raw";
        let url = self.project_url(&format!("/repository/files/{}/raw", encode_component(path)));
        let answer = self
            .call(Method::GET, &url, what, &[("ref", reference)], None)
            .await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.is_success() {
            return Err(failure(&answer, what));
        }
        // The body is the file itself, not JSON.
        Ok(Some(answer.body))
    }

    /// Closes the merge request (`state_event: close`).
    pub async fn close(&self, iid: u64) -> Result<(), ForgeError> {
        let what = "PUT /projects/:id/merge_requests/:iid";
        let url = self.project_url(&format!("/merge_requests/{iid}"));
        let body = json!({ "state_event": "close" });
        let answer = self.call(Method::PUT, &url, what, &[], Some(&body)).await?;
        success::<Value>(answer, what)?;
        Ok(())
    }
}

/// `body`, with `marker` appended when it is not in it yet.
pub(crate) fn with_marker(body: &str, marker: &str) -> String {
    if body.contains(marker) {
        body.to_owned()
    } else {
        format!("{}\n\n{marker}\n", body.trim_end())
    }
}

/// GitLab's `{"message": …}` (a string, a list or an object), or the body.
fn message_of(answer: &Answer) -> String {
    match serde_json::from_str::<Value>(&answer.body) {
        Ok(value) => match value.get("message").or_else(|| value.get("error")) {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => answer.excerpt(),
        },
        Err(_) => answer.excerpt(),
    }
}

/// The body of a 2xx as `T`; anything else as the error it means.
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
            hint: PROJECT_HINT,
        };
    }
    ForgeError::Refused {
        forge: FORGE,
        what: what.to_owned(),
        status: answer.status.as_u16(),
        message: message_of(answer),
    }
}
