//! From a failed dbt run's artifacts to failures with evidence.
//!
//! A pure library: it is handed the bytes a run left behind ([`RunArtifacts`]) and returns
//! a [`Detection`] — one [`Failure`] per root failing node, classified, with a stable
//! signature and the minimum viable [`Evidence`] a fixer needs. No bus, no async, and no
//! file I/O except [`collect_project_files`], which snapshots a project directory into
//! [`ProjectFiles`] so the rest can run anywhere.
//!
//! Module layout:
//! - `detect`: the orchestration — which artifact to believe, roots versus blast radius.
//! - `manifest`: narrow serde models of `manifest.json` and `run_results.json`.
//! - `log`: the text `dbt.log`, the JSON-lines log and the console output, read in one
//!   pass with bounded state ([`scan_log`] streams from any reader), and the statements
//!   dbt executed for failed nodes.
//! - `classify`: the `(adapter, regex, class)` table.
//! - `evidence`: model SQL, YAML entry, parents' columns, sources, node names.
//! - `location`: a database's `LINE n` (which counts dbt's wrapper) mapped back to the
//!   compiled SQL and the model's own line ([`ErrorLocation`], [`annotate_error`]).
//! - `redact`: secrets out of every text ([`Redactor`]).
//! - `budget`: the token budget and its trimming order ([`apply_token_budget`]).
//! - `sql`: refs/sources in raw SQL and the columns a `SELECT` produces.
//! - `yaml`: a reader for the YAML subset dbt projects use.
//! - `project`: [`ProjectFiles`] and [`collect_project_files`].
//! - `text`: ANSI stripping, message trimming, signature normalisation.
//!
//! Invariants: nothing here panics on bad input (corrupt JSON, binary garbage, invalid
//! UTF-8 all become notes or an [`ArtifactError`]; property tests hold it to that); the
//! same failure seen in two runs has the same signature and so the same [`incident_id`];
//! memory for a log is bounded by one invocation's state, never by the log's size.

mod budget;
mod classify;
mod detect;
mod error;
mod evidence;
mod location;
mod log;
mod manifest;
mod project;
mod redact;
mod sql;
mod submission;
mod text;
mod yaml;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use budget::{apply_token_budget, estimate_tokens, failure_tokens, CHARS_PER_TOKEN};
pub use classify::{class_needs_human, classify, ClassRule, Classification, CLASS_RULES};
pub use dbtops_proto::v1::ErrorClass;
pub use detect::{detect, detect_with};
pub use error::ArtifactError;
pub use location::{annotate_error, ErrorLocation};
pub use log::{scan_log, scan_log_bytes, LogScan};
pub use project::{collect_project_files, project_settings, ProjectFiles, ProjectSettings};
pub use redact::{is_secret_env_name, Redactor, REDACTED};
pub use submission::{manifest_for_submission, MANIFEST_KEYS_LEFT_OUT, SLIM_MANIFESTS_UP_TO_BYTES};
pub use text::{normalise_error, signature, strip_ansi, trim_message};

/// Everything one dbt run left behind, as bytes. Any may be missing; more is better.
#[derive(Debug, Clone, Default)]
pub struct RunArtifacts {
    /// `target/run_results.json`: per-node statuses and messages (absent after a
    /// parse-time error, or stale from an earlier run).
    pub run_results: Option<Vec<u8>>,
    /// `target/manifest.json`: the graph, the nodes' SQL and YAML columns.
    pub manifest: Option<Vec<u8>>,
    /// `logs/dbt.log`, text or JSON lines: the only record of parse-time errors.
    pub dbt_log: Option<Vec<u8>>,
    /// What dbt printed to the terminal: the last resort when nothing else exists.
    pub console: Option<Vec<u8>>,
    /// The project's files as they are now (the model SQL wins over the manifest's copy).
    pub project_files: Option<ProjectFiles>,
}

/// What a run's artifacts say went wrong.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Detection {
    /// One per root failing node; skipped descendants are in each failure's blast radius.
    pub failures: Vec<Failure>,
    /// Unique ids that passed in this run (success, pass, warn).
    pub succeeded_nodes: Vec<String>,
    /// dbt's invocation id of the run the failures come from.
    pub invocation_id: Option<String>,
    /// dbt-core version that ran.
    pub dbt_version: Option<String>,
    /// The adapter type (`duckdb`, `postgres`, …).
    pub adapter: Option<String>,
    /// The dbt project's name.
    pub project_name: Option<String>,
    /// What was stale, unreadable or skipped, and why: one sentence each.
    pub notes: Vec<String>,
}

/// One root failing node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// dbt's unique id (`model.shop.orders`); empty when the error names no node (a
    /// broken macro file at parse time).
    pub unique_id: String,
    /// The node's name (`orders`).
    pub name: String,
    /// The node's file relative to the project dir (`models/marts/orders.sql`); the YAML
    /// file for YAML errors and tests; empty when unknown.
    pub path: String,
    /// `model`, `seed`, `snapshot`, `test`, `macro`, `yaml`…
    pub resource_type: String,
    /// The classified error.
    #[serde(serialize_with = "serialize_class")]
    pub class: ErrorClass,
    /// The error text, ANSI stripped, trimmed to the relevant lines.
    pub message: String,
    /// `<class label>:<normalised error>`: equal for the same failure across runs.
    pub signature: String,
    /// True when editing the model's SQL cannot fix it (tests, connections, permissions,
    /// errors in files that are not model SQL).
    pub needs_human: bool,
    /// Unique ids skipped because of this failure.
    pub blast_radius: Vec<String>,
    /// What a fixer needs to know, so it never reads a file system.
    pub evidence: Evidence,
}

/// The minimum viable evidence for one failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The model's raw SQL, Jinja included (the file as it is now when project files were
    /// given, else the manifest's `raw_code`).
    pub model_sql: String,
    /// The compiled SQL, when dbt got that far.
    pub compiled_sql: String,
    /// The model's YAML entry as written, or the manifest's description and columns.
    pub yaml_entry: String,
    /// The columns of each direct parent.
    pub parents: Vec<ParentColumns>,
    /// Source definitions the model reads (all of the project's when the model names one
    /// that does not exist).
    pub sources: Vec<SourceDef>,
    /// Every model, seed and snapshot name in the project: candidates for a bad `ref()`.
    pub project_node_names: Vec<String>,
    /// Every macro the project defines in its macro paths: candidates for a misspelt
    /// macro call.
    pub project_macro_names: Vec<String>,
    /// The signatures (`name(a, b=1)`) of the project's macros that the error text names
    /// (`macro 'dbt_macro__name' …`), as their `{% macro %}` tags write them: what a call
    /// of them may pass.
    pub macro_signatures: Vec<String>,
    /// Where the database's `LINE n` is in the model's own file, when the error names a
    /// line.
    pub error_location: Option<ErrorLocation>,
    /// What [`apply_token_budget`] removed, one line per step, in order.
    pub trimmed: Vec<String>,
    /// Estimated tokens of the error text and this evidence after the budget was applied
    /// (0 until it was).
    pub estimated_tokens: u32,
    /// The budget it was held to (0 until it was).
    pub token_budget: u32,
    /// Fields in which [`Redactor::redact_failure`] replaced secrets.
    pub redacted_fields: Vec<String>,
    /// With [`DetectOptions::lineage_depth`] > 0: the failing model's ancestor models,
    /// nearest first, for fixes whose cause sits upstream.
    pub ancestors: Vec<AncestorModel>,
}

/// An ancestor model of the failing one, with its SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AncestorModel {
    /// `model.shop.stg_orders`.
    pub unique_id: String,
    /// `stg_orders`.
    pub name: String,
    /// Its file, relative to the project dir.
    pub path: String,
    /// Its raw SQL (the file as it is now when project files were given).
    pub raw_sql: String,
    /// 1 for a direct parent, 2 for a grandparent…
    pub depth: u32,
    /// `view`, `table`, `ephemeral`… (empty when the manifest does not say).
    pub materialized: String,
}

/// What [`detect_with`] assembles beyond the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectOptions {
    /// Generations of ancestor models whose SQL the evidence carries (0: none, the
    /// default; `fixer.fix_scope = "lineage"` asks for `fixer.lineage_depth`).
    pub lineage_depth: u32,
}

/// The columns one upstream node exposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParentColumns {
    /// The parent's unique id (empty for columns only an error hint names).
    pub unique_id: String,
    /// The parent's name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Where they came from: `manifest`, `sql`, `seed_header` or `error_hint`.
    pub origin: &'static str,
}

/// A source table definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDef {
    /// The `sources:` entry's name.
    pub source_name: String,
    /// The table's name.
    pub table_name: String,
    /// Declared columns (often none).
    pub columns: Vec<String>,
}

/// Entry points for `benches/parse.rs`, which can only reach the public API; not part of
/// the API.
#[doc(hidden)]
pub mod bench {
    /// Parses manifest.json as [`crate::detect`] does; returns its node count.
    pub fn parse_manifest(bytes: &[u8]) -> Result<usize, String> {
        let mut notes = Vec::new();
        crate::manifest::parse_manifest(bytes, &mut notes).map(|m| m.nodes.len())
    }
}

fn serialize_class<S: serde::Serializer>(class: &ErrorClass, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(class.label())
}

/// Deterministic incident id: the first 16 hex characters of
/// `sha256(project_name \0 unique_id \0 signature)`.
pub fn incident_id(project_name: &str, unique_id: &str, signature: &str) -> String {
    let mut h = Sha256::new();
    h.update(project_name.as_bytes());
    h.update([0u8]);
    h.update(unique_id.as_bytes());
    h.update([0u8]);
    h.update(signature.as_bytes());
    let digest = hex::encode(h.finalize());
    digest[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_are_deterministic_and_separated() {
        let a = incident_id("shop", "model.shop.orders", "missing_column:x");
        assert_eq!(a.len(), 16);
        assert_eq!(
            a,
            incident_id("shop", "model.shop.orders", "missing_column:x")
        );
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(incident_id("ab", "c", "s"), incident_id("a", "bc", "s"));
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
