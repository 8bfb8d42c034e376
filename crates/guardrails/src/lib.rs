//! The checks every proposal must pass before it is written anywhere: which paths, which
//! branches, how big a change, what SQL.
//!
//! Pure functions with no I/O, except [`check_no_symlink_escape`], which has to look at the
//! file system to resolve links. Every refusal is a [`GuardrailError`] that says what was
//! refused and why.
//!
//! Module layout:
//! - `path`: [`check_model_path`], [`check_relative_path`], [`check_no_symlink_escape`],
//!   [`is_sensitive`] and the [`PathPolicy`] they read;
//! - `branch`: [`check_branch`], [`fix_branch_name`], [`generation_branch_name`] and the [`BranchPolicy`];
//! - `diff`: [`unified_diff`], [`changed_line_share`], [`check_change_size`];
//! - `sql`: [`check_sql_content`], [`check_jinja_side_effects`];
//! - `glob`: the small `**`/`*`/`?` matcher behind sensitive paths and protected branches;
//! - `error`: [`GuardrailError`].
//!
//! Invariant: these checks only ever refuse more, never less, when in doubt — an
//! unparseable pattern matches everything, every SQL dialect's reading of a literal is
//! tried, a dangling symbolic link is an escape.

#![warn(missing_docs)]

mod branch;
mod diff;
mod error;
mod glob;
mod path;
mod sql;

pub use branch::{
    check_branch, check_branch_name_format, fix_branch_name, generation_branch_name, BranchPolicy,
    FIX_BRANCH_PREFIX,
};
pub use diff::{changed_line_share, check_change_size, unified_diff};
pub use error::{GuardrailError, ProtectedReason};
pub use path::{
    check_model_path, check_no_symlink_escape, check_relative_path, check_upstream_edit,
    check_upstream_edit_path, is_sensitive, LineageScope, PathPolicy,
};
pub use sql::{check_jinja_side_effects, check_sql_content};
