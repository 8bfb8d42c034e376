//! Commits a fix to a new branch of a local git repository without touching its work tree.
//!
//! This is delivery's "local git" provider, the offline default: a branch and one commit
//! in the user's repository, plus the merge-request description kept inside `.git`. It
//! drives the `git` executable (plumbing commands only) and is synchronous; async callers
//! use `tokio::task::spawn_blocking`.
//!
//! A delivery costs five git processes (`rev-parse` to open, then `symbolic-ref`,
//! `cat-file --batch`, `fast-import` and `update-ref`; `tests/process_count.rs` holds the
//! figure): each process start costs milliseconds, far more than the work inside.
//!
//! Module layout:
//! - `repo`: [`LocalRepo`], [`BranchCommit`], [`CommittedBranch`];
//! - `git`: running `git` with a scrubbed environment, hooks disabled, no prompts;
//! - `objects`: every read through one `git cat-file --batch` process;
//! - `import`: every object a fix writes through one `git fast-import` process;
//! - `error`: [`LocalGitError`].
//!
//! Invariants: the user's work tree, index, `HEAD` and checked-out branch are never
//! changed; an existing branch is never moved; every branch written passes
//! [`dbtops_guardrails::check_branch`].

#![warn(missing_docs)]

mod error;
mod git;
mod import;
mod objects;
mod repo;

pub use error::LocalGitError;
pub use repo::{BranchCommit, CommittedBranch, FileReplacement, LocalRepo};
