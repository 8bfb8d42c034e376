//! `misspelt_column`: the model selects a column that does not exist, and exactly one
//! existing upstream column is clearly what was meant.

use crate::column_errors::parse_missing_column;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, identifier_occurrences, recase_like, Edit};
use crate::segment::segment;
use crate::tokens::tokenize;
use crate::{RuleFix, RuleInput};

use super::double_quoted_string::compared_with_name;
use super::edits_phrase;

/// The rule's name.
pub(super) const NAME: &str = "misspelt_column";

/// Renames a misspelt column to the nearest column the parents (or the warehouse's own
/// hint) expose, everywhere it is used as an identifier in the model's SQL code.
///
/// Occurrences right after `AS` are aliases the model defines and are kept. When the
/// warehouse lists the chosen column under several relations and the SQL uses the name
/// unqualified, the rename would be ambiguous, so there is no fix.
/// `None` when the error names no column, when the name is not misspelt (it exists
/// upstream), when no candidate or more than one is nearest, or when the name occurs
/// only inside strings, comments or Jinja — there the rule cannot see what renders.
pub fn misspelt_column(input: &RuleInput) -> Option<RuleFix> {
    let missing = parse_missing_column(input.error_message, input.adapter)?;

    // The parents' columns first, so an explanation can name the parent; the
    // warehouse's hints add columns of CTEs and joins the manifest does not know.
    let parent_columns = input
        .parents
        .iter()
        .flat_map(|parent| parent.columns.iter().copied());
    let hinted = missing.hinted_candidates.iter().map(String::as_str);
    let (best, runner_up) = match nearest::choose(&missing.column, parent_columns.chain(hinted)) {
        Choice::Unique { best, runner_up } => (best, runner_up),
        _ => return None,
    };

    let segments = segment(input.model_sql);
    // An alias definition (`… as ordr_date`) is the model's own output name: keep it,
    // so children that select it do not break.
    let occurrences: Vec<_> = identifier_occurrences(input.model_sql, &segments, &missing.column)
        .into_iter()
        .filter(|o| !o.after_as)
        .collect();
    if occurrences.is_empty() {
        return None;
    }
    // DuckDB listing the column under two relations means an unqualified use would be
    // ambiguous after the rename: a fix that fails validation is worse than none.
    let shared = missing
        .hinted_in_several_relations
        .iter()
        .any(|name| name.eq_ignore_ascii_case(best.name));
    if shared && occurrences.iter().any(|o| !o.qualified) {
        return None;
    }
    // `f.completed = "complete"` renamed would compare the column with itself: the
    // quoted word was a value, not a misspelt column.
    let tokens = tokenize(input.model_sql);
    let compares_with_itself = occurrences.iter().any(|o| {
        tokens
            .iter()
            .position(|t| t.range.contains(&o.range.start))
            .is_some_and(|i| compared_with_name(&tokens, input.model_sql, i, best.name))
    });
    if compares_with_itself {
        return None;
    }
    let edits: Vec<Edit> = occurrences
        .iter()
        .map(|o| Edit {
            range: o.range.clone(),
            replacement: recase_like(&input.model_sql[o.range.clone()], best.name, o.quoted),
        })
        .collect();
    let fixed_sql = apply_edits(input.model_sql, &edits)?;

    let origin = input
        .parents
        .iter()
        .find(|p| p.columns.iter().any(|c| c.eq_ignore_ascii_case(best.name)))
        .map_or_else(
            || "suggested by the warehouse".to_owned(),
            |p| format!("exposed by `{}`", p.name),
        );
    let qualified = match &missing.qualifier {
        Some(q) => format!("{q}.{}", missing.column),
        None => missing.column.clone(),
    };
    let times = if occurrences.len() == 1 {
        "1 place".to_owned()
    } else {
        format!("{} places", occurrences.len())
    };
    let explanation = format!(
        "Column `{qualified}` does not exist. The nearest existing column is `{}` ({origin}, {} away); \
         renamed it in {times} in `{}`, leaving strings, comments and Jinja untouched.",
        best.name,
        edits_phrase(best.distance),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: nearest::confidence(&missing.column, &best, runner_up.as_ref()),
    })
}
