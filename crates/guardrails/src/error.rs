//! The one error type of this crate: every refusal names what was refused and why.

use std::path::PathBuf;

/// Why a proposal, a path, a branch or a piece of SQL was refused.
///
/// Paths and branch names are printed with `{:?}` so that control characters, NUL bytes
/// and trailing spaces show up in logs instead of hiding in them.
#[derive(Debug, thiserror::Error)]
pub enum GuardrailError {
    /// The path is empty.
    #[error("refused path {path:?}: the path is empty")]
    EmptyPath {
        /// The refused path.
        path: String,
    },

    /// The path is absolute (`/x.sql`, `C:/x.sql`) instead of relative to the project.
    #[error("refused path {path:?}: absolute paths are not allowed, only paths relative to the project directory")]
    AbsolutePath {
        /// The refused path.
        path: String,
    },

    /// The path contains a backslash, which is a separator on Windows and a way to smuggle
    /// a second path component past a `/`-based check.
    #[error("refused path {path:?}: backslashes are not allowed, use '/' as the separator")]
    Backslash {
        /// The refused path.
        path: String,
    },

    /// The path contains a NUL byte (which truncates it in C-based tools) or another
    /// control character (a newline breaks line-based tool output).
    #[error("refused path {path:?}: NUL bytes and other control characters are not allowed")]
    ControlCharacter {
        /// The refused path.
        path: String,
    },

    /// The path contains a `..` segment.
    #[error("refused path {path:?}: '..' segments (path traversal) are not allowed")]
    ParentSegment {
        /// The refused path.
        path: String,
    },

    /// The path is not normalised: a `.` segment, an empty segment (`a//b`) or a
    /// trailing `/`.
    #[error("refused path {path:?}: the path is not normalised ('.' segment, empty segment or trailing '/')")]
    NotNormalised {
        /// The refused path.
        path: String,
    },

    /// A proposal edits a second model file while lineage-scoped fixes are off.
    #[error("refused path {path:?}: this fix edits a model other than the failing one, and fix_scope is not \"lineage\"")]
    LineageDisabled {
        /// The refused path.
        path: String,
    },

    /// A lineage-scoped edit names a file that is not one of the failing model's ancestors.
    #[error("refused path {path:?}: not one of the failing model's ancestor models {ancestors:?}")]
    NotAnAncestor {
        /// The refused path.
        path: String,
        /// The ancestors' paths the incident's evidence lists.
        ancestors: Vec<String>,
    },

    /// A segment starts with `.` (`.git`, `.github`, a hidden file): never a dbt model.
    #[error("refused path {path:?}: hidden files and directories (segments starting with '.') are not allowed")]
    HiddenSegment {
        /// The refused path.
        path: String,
    },

    /// The path does not end in `.sql`, so it is not a model file (this is also what keeps
    /// `profiles.yml`, `dbt_project.yml` and CI files out of reach).
    #[error("refused path {path:?}: only '.sql' model files may be written")]
    NotSql {
        /// The refused path.
        path: String,
    },

    /// The path is not under any of the project's model paths.
    #[error("refused path {path:?}: it is not under any of the model paths {model_paths:?}")]
    OutsideModelPaths {
        /// The refused path.
        path: String,
        /// The model paths it was checked against.
        model_paths: Vec<String>,
    },

    /// The proposal writes a different file than the incident's model.
    #[error("refused path {proposed:?}: the incident's model is {expected:?}, and only that file may be written")]
    NotTheIncidentModel {
        /// The path the proposal wants to write.
        proposed: String,
        /// The incident's model file.
        expected: String,
    },

    /// A component of the path is a symbolic link that resolves outside the project.
    #[error("refused path {path:?}: {symlink:?} is a symbolic link that resolves to {resolved:?}, outside the project directory {project_dir:?}")]
    SymlinkEscape {
        /// The refused path (relative to the project).
        path: String,
        /// The symbolic link found on the way.
        symlink: PathBuf,
        /// Where the link resolves to.
        resolved: PathBuf,
        /// The project directory, canonicalised.
        project_dir: PathBuf,
    },

    /// A component of the path is a symbolic link whose target does not exist: it could be
    /// created later, pointing anywhere.
    #[error("refused path {path:?}: {symlink:?} is a dangling symbolic link")]
    DanglingSymlink {
        /// The refused path (relative to the project).
        path: String,
        /// The dangling link.
        symlink: PathBuf,
    },

    /// The model file itself is a symbolic link: writing the fix through it would edit a
    /// different file than the one the incident names.
    #[error("refused path {path:?}: the file is a symbolic link (to {resolved:?}); a fix is written only to the model's own file")]
    SymlinkedFile {
        /// The refused path (relative to the project).
        path: String,
        /// Where the link resolves to.
        resolved: PathBuf,
    },

    /// The file system could not be inspected while resolving symbolic links.
    #[error("could not inspect {path:?} while checking for symbolic links: {source}")]
    Io {
        /// The path being inspected.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The branch name is not a valid git branch name.
    #[error("refused branch {branch:?}: not a valid git branch name ({reason})")]
    InvalidBranchName {
        /// The refused branch.
        branch: String,
        /// Which git ref-name rule it breaks.
        reason: &'static str,
    },

    /// The branch is protected.
    #[error("refused branch {branch:?}: {reason}")]
    ProtectedBranch {
        /// The refused branch.
        branch: String,
        /// Which protection applies.
        reason: ProtectedReason,
    },

    /// The branch is outside the namespace dbt-ops writes to.
    #[error("refused branch {branch:?}: dbt-ops only writes branches under '{prefix}<model>/<incident>'")]
    NotAFixBranch {
        /// The refused branch.
        branch: String,
        /// The required prefix.
        prefix: &'static str,
    },

    /// The change rewrites a larger share of the file than allowed.
    #[error("refused change: it touches {share:.3} of the file's lines, more than the allowed {max_share:.3}")]
    ChangeTooLarge {
        /// The share of the original lines touched (0.0–1.0).
        share: f64,
        /// The configured maximum.
        max_share: f64,
    },

    /// The SQL is larger than allowed.
    #[error("refused SQL: {bytes} bytes, more than the allowed {max_bytes}")]
    SqlTooLarge {
        /// The size of the SQL.
        bytes: usize,
        /// The configured maximum.
        max_bytes: usize,
    },

    /// The SQL is empty or only whitespace: written, it would replace the model with
    /// nothing (no query at all).
    #[error("refused SQL: the file is empty; a model is a single query")]
    EmptySql,

    /// The SQL contains a NUL byte, which truncates it in C-based drivers and can hide
    /// what follows from a reviewer.
    #[error("refused SQL: it contains a NUL byte (line {line})")]
    SqlContainsNul {
        /// The 1-based line of the first NUL byte.
        line: usize,
    },

    /// The SQL contains a statement that changes data, schema or permissions.
    #[error("refused SQL: a '{keyword}' statement on line {line}; a model is a single query and may not create, change, drop or grant anything")]
    ForbiddenStatement {
        /// The statement keyword, lower case.
        keyword: String,
        /// The 1-based line where it starts.
        line: usize,
    },

    /// The fix adds a Jinja construct that executes SQL while dbt compiles or runs the
    /// model (`run_query`, `statement`, hooks, …).
    #[error("refused SQL: the fix adds the side-effecting Jinja construct '{construct}' (the original has {original_count}, the fix {fixed_count})")]
    SideEffectingJinja {
        /// The construct, as matched.
        construct: &'static str,
        /// How often it occurs in the original.
        original_count: usize,
        /// How often it occurs in the fix.
        fixed_count: usize,
    },

    /// A policy value is unusable (a model path with `..`, a share outside 0.0–1.0).
    #[error("invalid guardrail policy: {0}")]
    InvalidPolicy(String),
}

/// Which branch protection refused a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtectedReason {
    /// `main` or `master`, always protected.
    MainOrMaster,
    /// The branch the repository currently has checked out.
    CurrentBranch,
    /// The branch the merge request targets.
    TargetBranch,
    /// A configured protected-branch pattern.
    Pattern(String),
}

impl std::fmt::Display for ProtectedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MainOrMaster => f.write_str("'main' and 'master' are always protected"),
            Self::CurrentBranch => f.write_str("it is the repository's current branch"),
            Self::TargetBranch => f.write_str("it is the merge request's target branch"),
            Self::Pattern(pattern) => {
                write!(f, "it matches the protected-branch pattern {pattern:?}")
            }
        }
    }
}

impl GuardrailError {
    /// Whether trying the same thing again could succeed.
    ///
    /// Refusals are decisions about the input and never change on retry; only a failure to
    /// inspect the file system might be transient.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}
