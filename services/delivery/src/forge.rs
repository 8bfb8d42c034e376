//! What delivery asks of a forge (GitLab, GitHub), independent of which one: open a merge
//! request for one change, find the open one for a branch, add a note, close it, read a
//! file as a merge left it.

use std::time::Duration;

use dbtops_settings::{DeliveryProvider, DeliverySettings, Secret};

use crate::github::Github;
use crate::gitlab::Gitlab;
use crate::http::{HttpClient, HttpError};
use crate::owners::Owner;

/// One more file a merge request's commit replaces.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    /// Relative to the repository root.
    pub file_path: String,
    /// Its new content.
    pub content: String,
}

/// Everything a forge needs to open one merge request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest {
    /// The incident; its marker must be in `description`.
    pub incident_id: String,
    /// The source branch, `dbt-ops/fix/<model>/<short id>`.
    pub branch: String,
    /// The model file, relative to the repository root.
    pub file_path: String,
    /// The file's new content.
    pub content: String,
    /// More files the same commit replaces (a lineage-scoped fix's ancestor models),
    /// relative to the repository root; usually empty.
    pub also_replace: Vec<FileChange>,
    /// The commit message.
    pub commit_message: String,
    /// `fix(dbt): <model> — <class>`.
    pub title: String,
    /// The rendered description, marker included.
    pub description: String,
    /// Labels, `needs-owner-review` included when `draft`.
    pub labels: Vec<String>,
    /// Open as a draft (a sensitive path under `sensitive_action = "draft"`).
    pub draft: bool,
    /// The path's owners: the first user is assigned, all are asked to review.
    pub owners: Vec<Owner>,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
    /// Configured target branch; `None`: the project's default branch.
    pub target_branch: Option<String>,
    /// Configured protected branches (globs), checked against the branch once the target
    /// is known.
    pub protected_branches: Vec<String>,
}

/// A merge request dbt-ops opened, or found already open for the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMergeRequest {
    /// GitLab's `iid`, GitHub's pull request number.
    pub number: u64,
    /// Its web page.
    pub url: String,
    /// The fix commit on the branch.
    pub commit_sha: String,
    /// The branch it targets.
    pub target_branch: String,
    /// True when it already existed (a redelivery): nothing new was written.
    pub reused: bool,
}

/// An open merge request, as a lookup by branch finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMergeRequest {
    /// GitLab's `iid`, GitHub's number.
    pub number: u64,
    /// Its web page.
    pub url: String,
    /// Its description (where the incident marker is).
    pub description: String,
    /// The source branch's head, when the forge says.
    pub head_sha: String,
    /// The branch it targets.
    pub target_branch: String,
}

/// Why a forge call failed, and so what the handler does next.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Transient (429, 5xx, network), still so after the retries: deliver again later.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The token is missing or refused.
    #[error("{forge} refused the credentials for {what} (HTTP {status}); check {hint}")]
    Unauthorized {
        /// `GitLab` or `GitHub`.
        forge: &'static str,
        /// The call.
        what: String,
        /// 401 or 403.
        status: u16,
        /// Which settings hold the token.
        hint: &'static str,
    },
    /// The project, repository or a thing in it does not exist (or the token cannot see
    /// it).
    #[error("{forge}: {what} not found (HTTP 404); check {hint}")]
    NotFound {
        /// `GitLab` or `GitHub`.
        forge: &'static str,
        /// What was looked for.
        what: String,
        /// Which settings name it.
        hint: &'static str,
    },
    /// The forge refused the request for a reason retrying cannot change.
    #[error("{forge} refused {what} (HTTP {status}): {message}")]
    Refused {
        /// `GitLab` or `GitHub`.
        forge: &'static str,
        /// The call.
        what: String,
        /// The status.
        status: u16,
        /// The forge's message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("{forge} answered {what} unexpectedly: {reason}")]
    Unexpected {
        /// `GitLab` or `GitHub`.
        forge: &'static str,
        /// The call.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// A guardrail refused the change once the forge's facts were known (the target
    /// branch, a branch with other content, a merge request dbt-ops did not open).
    #[error("{0}")]
    Guardrail(String),
    /// No token was configured or found in the named variable.
    #[error("no {forge} token: set {hint}")]
    NoToken {
        /// `GitLab` or `GitHub`.
        forge: &'static str,
        /// Where to put it.
        hint: &'static str,
    },
}

impl ForgeError {
    /// How long to wait before a later delivery, when one can help.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForgeError::Http(HttpError::Unavailable { retry_after, .. }) => {
                Some(retry_after.unwrap_or(Duration::from_secs(10)))
            }
            _ => None,
        }
    }

    /// A guardrail refusal (the incident is abandoned as `guardrail`), as opposed to a
    /// configuration or forge problem (`delivery_failed`).
    pub fn is_guardrail(&self) -> bool {
        matches!(self, ForgeError::Guardrail(_))
    }
}

/// The configured forge.
#[derive(Debug, Clone)]
pub enum Forge {
    /// GitLab REST v4.
    Gitlab(Gitlab),
    /// GitHub REST.
    Github(Github),
}

impl Forge {
    /// The forge `settings.provider` names, or `None` for local git and shadow.
    pub fn from_settings(settings: &DeliverySettings) -> Result<Option<Self>, ForgeError> {
        match settings.provider {
            DeliveryProvider::LocalGit | DeliveryProvider::Shadow => Ok(None),
            DeliveryProvider::Gitlab => {
                let http = HttpClient::new(settings)?;
                let token = resolve_token(&settings.gitlab.token, &settings.gitlab.token_env)
                    .ok_or(ForgeError::NoToken {
                    forge: "GitLab",
                    hint:
                        "delivery.gitlab.token or the variable named in delivery.gitlab.token_env",
                })?;
                Ok(Some(Forge::Gitlab(Gitlab::new(
                    http,
                    &settings.gitlab.base_url,
                    &settings.gitlab.project,
                    token,
                ))))
            }
            DeliveryProvider::Github => {
                let http = HttpClient::new(settings)?;
                let token = resolve_token(&settings.github.token, &settings.github.token_env)
                    .ok_or(ForgeError::NoToken {
                    forge: "GitHub",
                    hint:
                        "delivery.github.token or the variable named in delivery.github.token_env",
                })?;
                Ok(Some(Forge::Github(Github::new(
                    http,
                    &settings.github.api_url,
                    &settings.github.repository,
                    token,
                ))))
            }
        }
    }

    /// `gitlab` or `github`: the provider name on `dbtops.mr.*` events.
    pub fn provider(&self) -> &'static str {
        match self {
            Forge::Gitlab(_) => "gitlab",
            Forge::Github(_) => "github",
        }
    }

    /// Opens the merge request for `change`, or finds the one already open for its
    /// branch.
    pub async fn open(&self, change: &ChangeRequest) -> Result<OpenedMergeRequest, ForgeError> {
        match self {
            Forge::Gitlab(gitlab) => gitlab.open(change).await,
            Forge::Github(github) => github.open(change).await,
        }
    }

    /// The open merge request from `branch`, if any.
    pub async fn find_open(&self, branch: &str) -> Result<Option<OpenMergeRequest>, ForgeError> {
        match self {
            Forge::Gitlab(gitlab) => gitlab.find_open(branch).await,
            Forge::Github(github) => github.find_open(branch).await,
        }
    }

    /// Adds a note (comment) unless one containing `marker` is already there, so a
    /// redelivered event does not comment twice. Returns whether it added one.
    pub async fn add_note_once(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<bool, ForgeError> {
        match self {
            Forge::Gitlab(gitlab) => gitlab.add_note_once(number, marker, body).await,
            Forge::Github(github) => github.add_note_once(number, marker, body).await,
        }
    }

    /// The content of `path` (relative to the repository root) at the commit
    /// `reference`, or `None` when no such file is there: the model file as a merge left
    /// it.
    pub async fn file_content(
        &self,
        path: &str,
        reference: &str,
    ) -> Result<Option<String>, ForgeError> {
        match self {
            Forge::Gitlab(gitlab) => gitlab.file_content(path, reference).await,
            Forge::Github(github) => github.file_content(path, reference).await,
        }
    }

    /// Closes the merge request without merging it.
    pub async fn close(&self, number: u64) -> Result<(), ForgeError> {
        match self {
            Forge::Gitlab(gitlab) => gitlab.close(number).await,
            Forge::Github(github) => github.close(number).await,
        }
    }
}

/// The token from the settings, else from the named environment variable.
fn resolve_token(token: &Secret, token_env: &str) -> Option<Secret> {
    if !token.is_empty() {
        return Some(token.clone());
    }
    if token_env.is_empty() {
        return None;
    }
    std::env::var(token_env)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| Secret::from(value.trim()))
}

/// Checks the branch against the policy once the target is known.
pub(crate) fn check_branch(change: &ChangeRequest, target: &str) -> Result<(), ForgeError> {
    let policy = dbtops_guardrails::BranchPolicy {
        protected: change.protected_branches.clone(),
        current_branch: None,
        target_branch: Some(target.to_owned()),
    };
    dbtops_guardrails::check_branch(&change.branch, &policy)
        .map_err(|error| ForgeError::Guardrail(error.to_string()))
}

/// The marker check every reuse goes through: an open merge request from our branch that
/// dbt-ops did not open is someone else's work, and is left alone.
pub(crate) fn ours(
    forge: &'static str,
    open: &OpenMergeRequest,
    change: &ChangeRequest,
) -> Result<(), ForgeError> {
    let marker = crate::description::incident_marker(&change.incident_id);
    if open.description.contains(&marker) {
        Ok(())
    } else {
        Err(ForgeError::Guardrail(format!(
            "{forge} merge request {} from {} was not opened by dbt-ops for incident {} \
             (no incident marker in its description); leaving it alone",
            open.url, change.branch, change.incident_id
        )))
    }
}
