//! Deterministic, zero-token fixes for dbt failures whose answer is unambiguous.
//!
//! The fixer tries these before any LLM: a misspelt column, `ref()` or `source()` has
//! one right answer when exactly one existing name is clearly nearest; a missing comma,
//! a misspelt keyword, an unbalanced parenthesis, a `case` without `end`, a trailing
//! comma, a doubled or stray comma, a semicolon ending the model, a dangling `and`/`or`,
//! `==` where the warehouse wants `=`, a column missing from `GROUP BY` (or the whole
//! clause), an aggregate condition in `WHERE` (moved to `HAVING`), a window condition in
//! `WHERE` (moved to `QUALIFY` where the warehouse has it), a string literal written in
//! double quotes, a select alias read in `WHERE` (PostgreSQL), a function the warehouse
//! spells differently, a function, type or table name the warehouse suggests a spelling
//! for, a renamed upstream column (or source column, when the database lists the new
//! name), a materialization misspelt in `config()`, a reserved word used as a select
//! item's name without `as` or read as a column (quoted, DuckDB and PostgreSQL), a
//! keyword written twice (`as as`, `from from`), `using` without its parentheses, a
//! mistyped table alias, a column read through the
//! wrong alias, an ambiguous join column, a misspelt CTE name, a misspelt macro call, a
//! keyword argument the called macro does not take, a Jinja tag left open on one line,
//! an `{% if %}` or `{% for %}` block left open to the end of its CTE, a hard-coded table
//! that should be a `ref()`, a division by a zero divisor, a date compared with an
//! integer written as a date, a string compared with a number (the explicit cast the
//! warehouse asks for), strings joined with `+` instead of `||` and a cast that fails on
//! dirty data (its safe form)
//! often do too. Finding it costs microseconds and no tokens. Every rule returns `None`
//! unless it is sure — a wrong fix is worse than no fix, because a reviewer has to
//! notice it.
//!
//! A pure library: no I/O, no async, no wire types. The fixer converts its evidence
//! into a [`RuleInput`] and a [`RuleFix`] back into a proposal.
//!
//! # Module layout
//!
//! - [`error_class`] — the detector's error-class labels as an enum.
//! - [`segment`] — splits model text into SQL code, strings, comments and Jinja; every
//!   rewrite is confined by it.
//! - [`tokens`] — SQL tokens over those segments, with parenthesis depth; Jinja is one
//!   opaque token.
//! - [`structure`] — select scopes (list, items, clauses), `FROM` relations and CTEs,
//!   read off the tokens.
//! - [`relations`] — which dbt node a `FROM` relation reads (`ref`, `source`, an import
//!   CTE).
//! - [`sqlcheck`] — Jinja masked, does the model parse in the adapter's dialect
//!   (sqlparser)? The syntax rules only propose edits this check accepts.
//! - [`jinja_calls`] — finds `ref(…)` / `source(…)` calls and their string arguments.
//! - [`column_errors`] — the table of adapter error wordings for a missing column.
//! - [`error_spot`] — the token and echoed line of a parser error, and where its carets
//!   point in the model.
//! - [`expressions`] — casts and binary operations with their operands, for the type
//!   rules.
//! - [`sql_types`] — type names as warehouses print them and models write them, per
//!   adapter.
//! - [`nearest`] — picks the one nearest existing name, or refuses.
//! - [`rewrite`] — identifier occurrences, byte-range edits, rejected-attempt checks.
//! - [`rules`] — the rules themselves and the table [`rules::RULES`] that
//!   [`propose_fix`] walks.

#![warn(missing_docs)]

pub mod column_errors;
pub mod error_class;
pub mod error_spot;
pub mod expressions;
pub mod jinja_calls;
pub mod nearest;
pub mod patterns;
pub mod relations;
pub mod rewrite;
pub mod rules;
pub mod segment;
pub mod sql_types;
pub mod sqlcheck;
pub mod structure;
pub mod tokens;

pub use error_class::{ErrorClass, UnknownErrorClass};
pub use rules::{Rule, RULES};

/// What a rule sees of an incident: the evidence the detector assembled, borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleInput<'a> {
    /// The detector's classification; selects which rules are tried.
    pub error_class: ErrorClass,
    /// dbt's error text, ANSI colour codes stripped; the rules read names out of it.
    pub error_message: &'a str,
    /// The failing model's name, e.g. `orders`; used in explanations.
    pub model_name: &'a str,
    /// The model's raw SQL with Jinja, exactly as in its `.sql` file: the text a fix
    /// rewrites.
    pub model_sql: &'a str,
    /// The columns each direct parent exposes: candidates for a misspelt column.
    pub parents: &'a [ParentColumns<'a>],
    /// Every model, seed and snapshot name in the project: candidates for a bad `ref`.
    pub project_node_names: &'a [&'a str],
    /// Every macro the project itself defines: candidates for a misspelt macro call.
    pub project_macro_names: &'a [&'a str],
    /// The signatures (`name(a, b=1)`) of the project's macros that the error names, as
    /// their `{% macro %}` tags write them: what a call may pass.
    pub macro_signatures: &'a [&'a str],
    /// Every declared source table: candidates for a bad `source`.
    pub source_tables: &'a [SourceTable<'a>],
    /// The dbt adapter type (`duckdb`, `postgres`, …): whose error wordings to try first.
    pub adapter: &'a str,
    /// The `fixed_sql` of earlier attempts that failed validation: a rule never proposes
    /// one of these again.
    pub rejected_sql: &'a [&'a str],
}

/// The columns one direct parent of the failing model exposes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParentColumns<'a> {
    /// The parent's name (model, seed, snapshot or `source.table`).
    pub name: &'a str,
    /// Its column names, as the catalog or manifest spells them.
    pub columns: &'a [&'a str],
}

/// One declared source table.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceTable<'a> {
    /// The source's `name:` in YAML, the first argument of `source()`.
    pub source_name: &'a str,
    /// The table's `name:`, the second argument of `source()`.
    pub table_name: &'a str,
}

/// A fix a rule proposes: the whole new model file and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFix {
    /// The complete new content of the model's `.sql` file.
    pub fixed_sql: String,
    /// One or two sentences for the merge request: what was wrong, what changed.
    pub explanation: String,
    /// The rule that produced it, e.g. `misspelt_column`: for metrics and the MR label.
    pub rule: &'static str,
    /// A heuristic in `[0, 1]`: how clear-cut the choice was. Not a probability.
    pub confidence: f64,
}

/// Tries the rules registered for the input's error class, in order, and returns the
/// first fix that changes the SQL and was not rejected before; `None` when no rule is
/// sure.
pub fn propose_fix(input: &RuleInput) -> Option<RuleFix> {
    rules::rules_for(input.error_class).find_map(|rule| {
        let fix = (rule.apply)(input)?;
        let usable = fix.fixed_sql != input.model_sql
            && !rewrite::is_rejected(&fix.fixed_sql, input.rejected_sql);
        usable.then_some(fix)
    })
}
