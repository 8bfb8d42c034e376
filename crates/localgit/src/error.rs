//! The one error type of this crate.

use std::path::PathBuf;

use dbtops_guardrails::GuardrailError;

/// What went wrong while reading from or writing a fix branch to a local repository.
#[derive(Debug, thiserror::Error)]
pub enum LocalGitError {
    /// The `git` executable could not be started.
    #[error("could not run git: {0}")]
    Spawn(#[source] std::io::Error),

    /// The path is not inside a git work tree.
    #[error("{path:?} is not inside a git work tree: {stderr}")]
    NotARepository {
        /// The path that was opened.
        path: PathBuf,
        /// What git said.
        stderr: String,
    },

    /// A path is not inside the repository's work tree.
    #[error("{path:?} is not inside the repository at {root:?}")]
    OutsideRepository {
        /// The path.
        path: PathBuf,
        /// The repository root.
        root: PathBuf,
    },

    /// A git command failed.
    #[error("`git {command}` failed ({status}): {stderr}")]
    GitFailed {
        /// The command, without the configuration overrides every call carries.
        command: String,
        /// The exit status.
        status: String,
        /// What git said.
        stderr: String,
    },

    /// A git command succeeded but printed something this crate cannot read.
    #[error("unexpected output from `git {command}`: {output:?}")]
    UnexpectedOutput {
        /// The command.
        command: String,
        /// Its output.
        output: String,
    },

    /// A guardrail refused the branch or the path.
    #[error(transparent)]
    Guardrail(#[from] GuardrailError),

    /// The revision does not name a commit in this repository.
    #[error("unknown commit {rev:?}")]
    UnknownCommit {
        /// The revision as given.
        rev: String,
    },

    /// The file to replace does not exist in the base commit. A fix replaces the model's
    /// file; creating a new one means the path was computed wrongly.
    #[error("{path:?} does not exist in commit {commit}")]
    PathNotInCommit {
        /// The path in the repository.
        path: String,
        /// The commit.
        commit: String,
    },

    /// The path is a symbolic link, a submodule or a directory, not a regular file.
    #[error("{path:?} in commit {commit} is not a regular file (git mode {mode})")]
    NotARegularFile {
        /// The path in the repository.
        path: String,
        /// The commit.
        commit: String,
        /// The git file mode found (`120000` link, `160000` submodule, `040000` tree).
        mode: String,
    },

    /// The file is not UTF-8 text.
    #[error("{path:?} in commit {commit} is not valid UTF-8")]
    NotUtf8 {
        /// The path in the repository.
        path: String,
        /// The commit.
        commit: String,
    },

    /// The branch exists and holds different content: dbt-ops never overwrites a branch.
    #[error("branch {branch:?} already exists at {tip} with different content at {path:?}; refusing to overwrite it")]
    BranchConflict {
        /// The branch.
        branch: String,
        /// Its current tip.
        tip: String,
        /// The path whose content differs.
        path: String,
    },

    /// The new content equals the base commit's: there is nothing to commit.
    #[error("the content for {path:?} is identical to commit {base}; nothing to commit")]
    NoChange {
        /// The path in the repository.
        path: String,
        /// The base commit.
        base: String,
    },

    /// One commit would replace the same file twice.
    #[error("the fix names {path:?} twice")]
    DuplicatePath {
        /// The path in the repository.
        path: String,
    },

    /// The author name or email cannot go into a commit.
    #[error("invalid commit author: {0}")]
    InvalidAuthor(String),

    /// The commit message is empty.
    #[error("the commit message is empty")]
    EmptyMessage,

    /// A file-system operation failed.
    #[error("{path:?}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl LocalGitError {
    /// Whether trying again could succeed: a lock held by a concurrent git process, or a
    /// transient file-system failure. Refusals and conflicts never change on retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::GitFailed { stderr, .. } => {
                stderr.contains(".lock") || stderr.contains("Unable to create")
            }
            Self::Io { .. } => true,
            // A missing `git` stays missing; anything else (e.g. too many processes) may pass.
            Self::Spawn(error) => error.kind() != std::io::ErrorKind::NotFound,
            Self::Guardrail(error) => error.is_retryable(),
            _ => false,
        }
    }
}
