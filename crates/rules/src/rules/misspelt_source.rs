//! `misspelt_source`: a `source()` names a source table that is not declared, and
//! exactly one declared source table is clearly what was meant.

use std::sync::OnceLock;

use regex::Regex;

use crate::jinja_calls::find_calls;
use crate::nearest::{self, Choice, Match};
use crate::rewrite::{apply_edits, Edit};
use crate::segment::segment;
use crate::{RuleFix, RuleInput, SourceTable};

use super::edits_phrase;

/// The rule's name.
pub(super) const NAME: &str = "misspelt_source";

/// dbt's wording, e.g. `Model 'model.coffee_shop.orders' (models/orders.sql) depends on
/// a source named 'raw.raw_ordrs' which was not found`. dbt joins source and table with
/// a dot; source names are identifiers, so the first dot separates them.
const MISSING_SOURCE_PATTERN: &str =
    r"depends on a source named '(?P<source>[^'.]+)\.(?P<table>[^']+)' which was not found";

/// The source table a failing `source()` asked for, as dbt reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingSource {
    /// The first argument of `source()`.
    pub source_name: String,
    /// The second argument of `source()`.
    pub table_name: String,
}

/// Reads dbt's "depends on a source named '…' which was not found" error.
pub fn parse_missing_source(message: &str) -> Option<MissingSource> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, MISSING_SOURCE_PATTERN, message)?;
    Some(MissingSource {
        source_name: caps.name("source")?.as_str().to_owned(),
        table_name: caps.name("table")?.as_str().to_owned(),
    })
}

/// The declared table chosen, and how clear the choice was.
struct Chosen<'a> {
    table: SourceTable<'a>,
    /// Edit distance on what was compared (the table name, or `source.table`).
    distance: usize,
    /// [`nearest::confidence`] of the choice.
    confidence: f64,
}

impl<'a> Chosen<'a> {
    fn new(
        table: SourceTable<'a>,
        wrong: &str,
        best: &Match<'_>,
        runner_up: Option<&Match<'_>>,
    ) -> Self {
        Chosen {
            table,
            distance: best.distance,
            confidence: nearest::confidence(wrong, best, runner_up),
        }
    }
}

/// Picks the declared table meant: first among the tables of the same source (a typo in
/// the table name is the common case); only if none is near, among the other sources'
/// tables by the whole `source.table` (a typo in the source name).
fn choose_table<'a>(missing: &MissingSource, declared: &[SourceTable<'a>]) -> Option<Chosen<'a>> {
    let same_source: Vec<&SourceTable<'a>> = declared
        .iter()
        .filter(|t| t.source_name == missing.source_name)
        .collect();
    match nearest::choose(
        &missing.table_name,
        same_source.iter().map(|t| t.table_name),
    ) {
        Choice::Unique { best, runner_up } => {
            let table = **same_source.iter().find(|t| t.table_name == best.name)?;
            return Some(Chosen::new(
                table,
                &missing.table_name,
                &best,
                runner_up.as_ref(),
            ));
        }
        // A tie or an existing name is a real "no"; looking further would only find a
        // worse answer.
        Choice::Ambiguous(_) | Choice::ExactExists => return None,
        Choice::TooFar | Choice::NoCandidates => {}
    }

    let others: Vec<(SourceTable<'a>, String)> = declared
        .iter()
        .filter(|t| t.source_name != missing.source_name)
        .map(|t| (*t, format!("{}.{}", t.source_name, t.table_name)))
        .collect();
    let wanted = format!("{}.{}", missing.source_name, missing.table_name);
    match nearest::choose(&wanted, others.iter().map(|(_, full)| full.as_str())) {
        Choice::Unique { best, runner_up } => {
            let table = others.iter().find(|(_, full)| full == best.name)?.0;
            Some(Chosen::new(table, &wanted, &best, runner_up.as_ref()))
        }
        _ => None,
    }
}

/// Rewrites the failing `source('src', 'table')` calls to the nearest declared source
/// table, changing only the argument(s) that differ.
pub fn misspelt_source(input: &RuleInput) -> Option<RuleFix> {
    let missing = parse_missing_source(input.error_message)?;
    let chosen = choose_table(&missing, input.source_tables)?;

    let segments = segment(input.model_sql);
    let mut edits = Vec::new();
    for call in find_calls(input.model_sql, &segments, "source") {
        let [source_arg, table_arg] = call.string_args.as_slice() else {
            continue;
        };
        if source_arg.value != missing.source_name || table_arg.value != missing.table_name {
            continue;
        }
        if source_arg.value != chosen.table.source_name {
            edits.push(Edit {
                range: source_arg.value_range.clone(),
                replacement: chosen.table.source_name.to_owned(),
            });
        }
        if table_arg.value != chosen.table.table_name {
            edits.push(Edit {
                range: table_arg.value_range.clone(),
                replacement: chosen.table.table_name.to_owned(),
            });
        }
    }
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(input.model_sql, &edits)?;

    let explanation = format!(
        "`source('{}', '{}')` is not declared. The nearest declared source table is \
         `source('{}', '{}')` ({} away); rewrote the call in `{}`.",
        missing.source_name,
        missing.table_name,
        chosen.table.source_name,
        chosen.table.table_name,
        edits_phrase(chosen.distance),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: chosen.confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_compiles() {
        assert!(Regex::new(MISSING_SOURCE_PATTERN).is_ok());
    }

    fn tables() -> Vec<SourceTable<'static>> {
        vec![
            SourceTable {
                source_name: "raw",
                table_name: "raw_orders",
            },
            SourceTable {
                source_name: "raw",
                table_name: "raw_customers",
            },
            SourceTable {
                source_name: "stripe",
                table_name: "payments",
            },
        ]
    }

    fn chosen(source: &str, table: &str) -> Option<(&'static str, &'static str)> {
        let missing = MissingSource {
            source_name: source.into(),
            table_name: table.into(),
        };
        let tables = tables();
        choose_table(&missing, &tables).map(|c| (c.table.source_name, c.table.table_name))
    }

    #[test]
    fn table_typo_within_the_source() {
        assert_eq!(chosen("raw", "raw_ordrs"), Some(("raw", "raw_orders")));
    }

    #[test]
    fn source_typo_across_sources() {
        assert_eq!(chosen("rwa", "raw_orders"), Some(("raw", "raw_orders")));
        assert_eq!(chosen("strpe", "payments"), Some(("stripe", "payments")));
    }

    #[test]
    fn nothing_near() {
        assert_eq!(chosen("raw", "inventory_snapshots"), None);
        assert_eq!(chosen("raw", "raw_orders"), None);
    }
}
