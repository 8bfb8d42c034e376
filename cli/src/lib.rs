//! The `dbt-ops` command line as a library, so the end-to-end tests drive the same code a
//! user does.
//!
//! - [`system`]: the four services in one process (`dbt-ops up`).
//! - [`commands`]: one module per subcommand.
//! - [`project`]: what the CLI reads of a dbt project on disk (name, paths, git state).

pub mod commands;
pub mod project;
pub mod system;
