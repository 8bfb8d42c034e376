//! The crate's one error type.
//!
//! `detect` is forgiving: an artifact that cannot be read becomes a note and the others are
//! still used. It fails only when nothing usable is left, and `collect_project_files` fails
//! when the directory is not a dbt project or cannot be read.

use std::path::PathBuf;

/// Why artifacts could not be turned into a detection.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// No artifact was handed in at all.
    #[error("no artifacts given: need run_results.json, dbt.log or the console output")]
    NoArtifacts,
    /// Every artifact that was handed in was unreadable; the notes say why, one per artifact.
    #[error("no usable artifact: {}", .notes.join("; "))]
    NothingUsable {
        /// One line per artifact that could not be used.
        notes: Vec<String>,
    },
    /// A file of the project directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory that failed.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `dbt_project.yml`.
    #[error("{path} is not a dbt project: {detail}")]
    NotAProject {
        /// The directory that was given.
        path: PathBuf,
        /// What was missing.
        detail: String,
    },
}

impl ArtifactError {
    /// Whether trying the same input again can help. Artifacts are data: a corrupt file stays
    /// corrupt, so only I/O errors (a file still being written, a flaky mount) are retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ArtifactError::Io { .. })
    }
}
