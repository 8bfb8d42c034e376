//! Commits a fix to a new branch of a local git repository without touching its work tree.
//!
//! This is delivery's "local git" provider, the offline default: a branch and one commit
//! in the user's repository, plus the merge-request description kept inside `.git`. It
//! drives the `git` executable (plumbing commands only) and is synchronous; async callers
//! use `tokio::task::spawn_blocking`.
//!
//! A delivery costs three git processes (`rev-parse` to open, `cat-file --batch` for
//! every read, `update-ref` to create the branch), two when a [`RepoCache`] knows the
//! repository already; `tests/process_count.rs` holds the figures. Each process start
//! costs milliseconds, far more than the work inside, so the objects are written in this
//! process and `HEAD` is read from its file.
//!
//! Module layout:
//! - `repo`: [`LocalRepo`], [`RepoCache`], [`BranchCommit`], [`CommittedBranch`];
//! - `git`: running `git` with a scrubbed environment, hooks disabled, no prompts;
//! - `objects`: every read through one `git cat-file --batch` process;
//! - `loose`: a fix's blobs, trees and commits written as loose objects (SHA-1
//!   repositories);
//! - `import`: the same through one `git fast-import` process (SHA-256 repositories);
//! - `error`: [`LocalGitError`].
//!
//! Invariants: the user's work tree, index, `HEAD` and checked-out branch are never
//! changed; an existing branch is never moved; every branch written passes
//! [`dbtops_guardrails::check_branch`].

#![warn(missing_docs)]

mod error;
mod git;
mod import;
mod loose;
mod objects;
mod repo;

pub use error::LocalGitError;
pub use repo::{BranchCommit, CommittedBranch, FileReplacement, LocalRepo, RepoCache};
