//! Commits a fix to a new branch of a local git repository without touching its work tree.
//!
//! This is delivery's "local git" provider, the offline default: a branch and one commit
//! in the user's repository, plus the merge-request description kept inside `.git`. It
//! reads and writes the repository's files itself where their format is plain (objects,
//! refs, `HEAD`) and drives the `git` executable (plumbing commands only) for everything
//! else; it is synchronous, and async callers use `tokio::task::spawn_blocking`.
//!
//! A delivery to a SHA-1 repository with the files ref backend — loose or packed objects,
//! loose or packed refs, the base named by its full id — costs one git process
//! (`rev-parse`, to open the repository), none when a [`RepoCache`] knows the repository
//! already; `tests/process_count.rs` holds the figures. Each process start costs
//! milliseconds, far more than the work inside, so objects are read and written, the
//! branch looked up and created, and `HEAD` read in this process. Whatever the in-process
//! paths do not handle with certainty goes to git, which then answers as it did before:
//! one `cat-file --batch` for the reads (SHA-256, alternates, replace refs, an abbreviated
//! or symbolic base, an object not found or not readable), `update-ref` for the branch (a
//! reftable repository, a held lock, a name clashing with another ref), `fast-import`
//! for a SHA-256 repository's objects.
//!
//! Module layout:
//! - `repo`: [`LocalRepo`], [`RepoCache`], [`BranchCommit`], [`CommittedBranch`];
//! - `git`: running `git` with a scrubbed environment, hooks disabled, no prompts;
//! - `objects`: the reader every read goes through — in-process first, then one
//!   `git cat-file --batch` process started on first need;
//! - `odb`: loose objects and version-2 packs read in-process (SHA-1 repositories);
//! - `refs`: branches looked up and created as git's files backend does;
//! - `config`: the repository's own config file, for the settings `refs` needs;
//! - `loose`: a fix's blobs, trees and commits written as loose objects (SHA-1
//!   repositories);
//! - `import`: the same through one `git fast-import` process (SHA-256 repositories);
//! - `error`: [`LocalGitError`].
//!
//! Invariants: the user's work tree, index, `HEAD` and checked-out branch are never
//! changed; an existing branch is never moved; every branch written passes
//! [`dbtops_guardrails::check_branch`].

#![warn(missing_docs)]

mod config;
mod error;
mod git;
mod import;
mod loose;
mod objects;
mod odb;
mod refs;
mod repo;

pub use error::LocalGitError;
pub use repo::{BranchCommit, CommittedBranch, FileReplacement, LocalRepo, RepoCache};
