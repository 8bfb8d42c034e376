//! `misspelt_materialization`: the model's `config()` names a materialization dbt does
//! not have (`materialized='incremntal'`), and exactly one materialization dbt has for
//! models is clearly what was meant.
//!
//! dbt parses such a model without complaint and fails it only when it runs:
//! `Compilation Error in model fct_rentals (…)\n  No materialization 'incremntal' was
//! found for adapter duckdb! (searched types 'default' and 'duckdb')`. The detector files
//! it as a configuration error; the fix is one string inside the model's own `config()`
//! call. A materialization set in YAML or `dbt_project.yml` is not in the model, so the
//! rule does not fire for it.
//!
//! The candidates are dbt's own materializations: the evidence lists no custom
//! materializations a project defines (`{% materialization … %}`). A misspelling of a
//! project's own materialization that is also near a built-in one (`tabels` for a custom
//! `tables`) is the case this rule gets wrong, and the fix would build; the explanation
//! names the materialization chosen so that a reviewer sees it.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::jinja_calls::find_calls;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::segment::{is_ident_byte, jinja_string_end, segment};
use crate::{RuleFix, RuleInput};

use super::edits_phrase;

/// The rule's name.
pub(super) const NAME: &str = "misspelt_materialization";

/// dbt-core 1.11's wording (the same for dbt-duckdb and dbt-postgres, but for the
/// adapter's name).
const UNKNOWN_MATERIALIZATION_PATTERN: &str =
    r"No materialization '(?P<name>[^'\n]+)' was found for adapter (?P<adapter>[A-Za-z0-9_]+)";

/// The materializations dbt-core gives every adapter for a model: the only names the
/// rule writes into a model.
pub const MODEL_MATERIALIZATIONS: &[&str] = &[
    "view",
    "table",
    "incremental",
    "ephemeral",
    "materialized_view",
];

/// Materializations dbt knows but the rule never writes into a model, by adapter (`*`
/// for every one). They still compete for the nearest name: a slip of `seed` must not
/// become the next-best `view`.
const NEVER_PROPOSED: &[(&str, &str)] = &[
    // dbt-core 1.11's materializations of other resources: seeds, snapshots, data and
    // unit tests, `dbt clone`, user-defined functions.
    ("*", "seed"),
    ("*", "snapshot"),
    ("*", "test"),
    ("*", "unit"),
    ("*", "clone"),
    ("*", "function"),
    // dbt-duckdb 1.11.1 inherits the default but fails it: "`get_create_materialized_
    // view_as_sql` has not been implemented for this adapter".
    ("duckdb", "materialized_view"),
    // dbt-duckdb's own: `external` writes files outside the database, `table_function`
    // changes what the model is. Guessing either is a person's call.
    ("duckdb", "external"),
    ("duckdb", "table_function"),
];

/// What dbt's "No materialization … was found" error names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMaterialization {
    /// The materialization as the model's configuration spells it, e.g. `incremntal`.
    pub name: String,
    /// The adapter dbt searched, e.g. `duckdb`: which materializations exist.
    pub adapter: String,
}

/// Reads the materialization and the adapter out of dbt's error text.
pub fn parse_unknown_materialization(message: &str) -> Option<UnknownMaterialization> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, UNKNOWN_MATERIALIZATION_PATTERN, message)?;
    Some(UnknownMaterialization {
        name: caps.name("name")?.as_str().to_owned(),
        adapter: caps.name("adapter")?.as_str().to_owned(),
    })
}

fn applies_to(entry_adapter: &str, adapter: &str) -> bool {
    entry_adapter == "*" || entry_adapter.eq_ignore_ascii_case(adapter)
}

/// True when the rule may write `name` into a model built on `adapter`.
fn may_propose(name: &str, adapter: &str) -> bool {
    MODEL_MATERIALIZATIONS.contains(&name)
        && !NEVER_PROPOSED
            .iter()
            .any(|(a, n)| *n == name && applies_to(a, adapter))
}

/// Every materialization dbt has on `adapter`, proposable or not.
fn known_materializations(adapter: &str) -> impl Iterator<Item = &'static str> + '_ {
    MODEL_MATERIALIZATIONS.iter().copied().chain(
        NEVER_PROPOSED
            .iter()
            .filter(move |(a, _)| applies_to(a, adapter))
            .map(|(_, n)| *n),
    )
}

/// The materialization to write instead of `wrong`, with the number of edits and a
/// confidence; `None` unless exactly one proposable materialization is clearly nearest.
fn replacement(wrong: &str, adapter: &str) -> Option<(&'static str, usize, f64)> {
    // dbt looks materializations up by their exact name, so `Table` fails; the nearest
    // chooser compares without case and would call it an existing name.
    if let Some(exact) = MODEL_MATERIALIZATIONS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(wrong))
    {
        return (*exact != wrong && may_propose(exact, adapter)).then_some((*exact, 0, 0.95));
    }
    match nearest::choose(wrong, known_materializations(adapter)) {
        Choice::Unique { best, runner_up } if may_propose(best.name, adapter) => Some((
            best.name,
            best.distance,
            nearest::confidence(wrong, &best, runner_up.as_ref()),
        )),
        _ => None,
    }
}

/// The byte ranges (quotes excluded) of every string literal passed as `materialized=`
/// to a `config(…)` call in the model's Jinja.
fn materialized_values(sql: &str) -> Vec<Range<usize>> {
    let segments = segment(sql);
    let bytes = sql.as_bytes();
    let mut values = Vec::new();
    for call in find_calls(sql, &segments, "config") {
        // `model.config(…)` or `x.config` is some object's method, not dbt's `config()`.
        let attribute = call
            .name_range
            .start
            .checked_sub(1)
            .is_some_and(|before| bytes[before] == b'.');
        if attribute {
            continue;
        }
        let Some(tag_end) = segments
            .iter()
            .find(|s| s.range.contains(&call.name_range.start))
            .map(|s| s.range.end)
        else {
            continue;
        };
        let open = skip_whitespace(bytes, call.name_range.end, tag_end);
        if bytes.get(open) == Some(&b'(') && open < tag_end {
            keyword_values(bytes, open + 1..tag_end, b"materialized", &mut values);
        }
    }
    values
}

/// Scans a call's arguments from just after its `(` and collects the string value of
/// every top-level `keyword=` argument; stops at the call's closing parenthesis.
fn keyword_values(bytes: &[u8], args: Range<usize>, keyword: &[u8], out: &mut Vec<Range<usize>>) {
    let end = args.end;
    let mut i = args.start;
    let mut depth = 0usize;
    // A keyword argument's name is the first thing after `(` or a top-level comma: the
    // same word elsewhere (`other=materialized`) is a value.
    let mut at_argument_start = true;
    while i < end {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if b == b'\'' || b == b'"' {
            i = jinja_string_end(bytes, i + 1, b).min(end);
            at_argument_start = false;
            continue;
        }
        if is_ident_byte(b) {
            let start = i;
            while i < end && is_ident_byte(bytes[i]) {
                i += 1;
            }
            if depth == 0 && at_argument_start && &bytes[start..i] == keyword {
                if let Some(value) = string_value(bytes, i, end) {
                    out.push(value);
                }
            }
            at_argument_start = false;
            continue;
        }
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => return,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        at_argument_start = b == b',' && depth == 0;
        i += 1;
    }
}

/// After a keyword's name: `= 'value'` or `= "value"` ending the argument; the range of
/// `value`. `None` for anything else (`== x`, `= var('m')`, `= 'a' ~ b`).
fn string_value(bytes: &[u8], after_name: usize, end: usize) -> Option<Range<usize>> {
    let equals = skip_whitespace(bytes, after_name, end);
    if bytes.get(equals) != Some(&b'=') || bytes.get(equals + 1) == Some(&b'=') {
        return None;
    }
    let open = skip_whitespace(bytes, equals + 1, end);
    let quote = *bytes.get(open).filter(|q| **q == b'\'' || **q == b'"')?;
    let close = jinja_string_end(bytes, open + 1, quote);
    if close > end || bytes.get(close - 1) != Some(&quote) {
        return None;
    }
    let next = skip_whitespace(bytes, close, end);
    (next < end && matches!(bytes[next], b',' | b')')).then_some(open + 1..close - 1)
}

fn skip_whitespace(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Renames the materialization in the model's `config()` call to the nearest one dbt has.
///
/// Fires only when dbt said `No materialization '<name>' was found for adapter <a>`, the
/// model passes exactly that string as `materialized=` to `config()` exactly once (either
/// quote style, spaces around `=` allowed), and exactly one materialization dbt has for a
/// model on that adapter is clearly nearest ([`nearest::choose`]; a case slip such as
/// `Table` counts). The nearest being a seed, snapshot or test materialization, or one
/// the adapter lacks, is a refusal, not a reason to take the next one. Only the
/// characters between the quotes change.
pub fn misspelt_materialization(input: &RuleInput) -> Option<RuleFix> {
    let unknown = parse_unknown_materialization(input.error_message)?;
    let occurrences: Vec<Range<usize>> = materialized_values(input.model_sql)
        .into_iter()
        .filter(|range| input.model_sql.get(range.clone()) == Some(unknown.name.as_str()))
        .collect();
    let [range] = occurrences.as_slice() else {
        return None;
    };
    let (best, distance, confidence) = replacement(&unknown.name, &unknown.adapter)?;
    let fixed_sql = apply_edits(
        input.model_sql,
        &[Edit {
            range: range.clone(),
            replacement: best.to_owned(),
        }],
    )?;
    let how_far = if distance == 0 {
        "materialization names are case-sensitive".to_owned()
    } else {
        format!("{} away", edits_phrase(distance))
    };
    let explanation = format!(
        "dbt has no materialization `{}` for the {} adapter; the nearest it has is `{best}` \
         ({how_far}). Set `materialized` to `{best}` in the `config()` of `{}`.",
        unknown.name, unknown.adapter, input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    /// dbt-core 1.11.16 with dbt-duckdb 1.11.1, `run_results.json`.
    const DUCKDB: &str = "Compilation Error in model fct_rentals (models/marts/core/fct_rentals.sql)\n  No materialization 'incremntal' was found for adapter duckdb! (searched types 'default' and 'duckdb')";

    fn message(name: &str, adapter: &str) -> String {
        format!(
            "Compilation Error in model m (models/m.sql)\n  No materialization '{name}' was found for adapter {adapter}! (searched types 'default' and '{adapter}')"
        )
    }

    fn run(sql: &str, message: &str) -> Option<String> {
        misspelt_materialization(&RuleInput {
            error_class: ErrorClass::YamlConfig,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            ..RuleInput::default()
        })
        .map(|fix| fix.fixed_sql)
    }

    #[test]
    fn pattern_compiles_and_reads_name_and_adapter() {
        assert!(Regex::new(UNKNOWN_MATERIALIZATION_PATTERN).is_ok());
        assert_eq!(
            parse_unknown_materialization(DUCKDB),
            Some(UnknownMaterialization {
                name: "incremntal".into(),
                adapter: "duckdb".into()
            })
        );
        assert_eq!(
            parse_unknown_materialization("Compilation Error\n  'x' is undefined"),
            None
        );
    }

    #[test]
    fn fires_on_the_config_value_only() {
        let sql = "{{\n    config(\n        materialized='incremntal',\n        unique_key='id'\n    )\n}}\n-- incremntal\nselect 'incremntal' as id";
        assert_eq!(
            run(sql, DUCKDB).as_deref(),
            Some("{{\n    config(\n        materialized='incremental',\n        unique_key='id'\n    )\n}}\n-- incremntal\nselect 'incremntal' as id")
        );
    }

    #[test]
    fn double_quotes_and_spaces_are_kept() {
        let sql = "{{ config(materialized = \"tabel\") }}\nselect 1 as id";
        assert_eq!(
            run(sql, &message("tabel", "postgres")).as_deref(),
            Some("{{ config(materialized = \"table\") }}\nselect 1 as id")
        );
    }

    #[test]
    fn a_case_slip_is_fixed() {
        let sql = "{{ config(materialized='Table') }}\nselect 1 as id";
        assert_eq!(
            run(sql, &message("Table", "duckdb")).as_deref(),
            Some("{{ config(materialized='table') }}\nselect 1 as id")
        );
    }

    #[test]
    fn refuses_a_tie() {
        // Two edits from both `view` and `test`.
        assert!(matches!(
            nearest::choose("viest", known_materializations("duckdb")),
            Choice::Ambiguous(_)
        ));
        let sql = "{{ config(materialized='viest') }}\nselect 1 as id";
        assert_eq!(run(sql, &message("viest", "duckdb")), None);
    }

    #[test]
    fn refuses_when_the_nearest_is_no_model_materialization() {
        for wrong in ["seeds", "snapshop"] {
            let sql = format!("{{{{ config(materialized='{wrong}') }}}}\nselect 1 as id");
            assert_eq!(run(&sql, &message(wrong, "duckdb")), None, "{wrong}");
        }
    }

    #[test]
    fn materialized_view_only_where_the_adapter_has_it() {
        let sql = "{{ config(materialized='materialised_view') }}\nselect 1 as id";
        assert_eq!(
            run(sql, &message("materialised_view", "postgres")).as_deref(),
            Some("{{ config(materialized='materialized_view') }}\nselect 1 as id")
        );
        assert_eq!(run(sql, &message("materialised_view", "duckdb")), None);
    }

    #[test]
    fn refuses_a_name_outside_a_config_call() {
        for sql in [
            // Set in YAML: the model only mentions the word.
            "select 'incremntal' as materialized",
            // Another macro's keyword argument.
            "{{ my_config(materialized='incremntal') }}\nselect 1 as id",
            // A method of some object, not dbt's `config()`.
            "{% do model.config(materialized='incremntal') %}\nselect 1 as id",
            // Not a keyword argument of `config()`: a key inside another one's value.
            "{{ config(meta={'materialized': 'incremntal'}) }}\nselect 1 as id",
            // A Jinja comment is never rendered.
            "{# config(materialized='incremntal') #}\nselect 1 as id",
            // An expression, not a plain literal.
            "{{ config(materialized='incremntal' ~ suffix) }}\nselect 1 as id",
        ] {
            assert_eq!(run(sql, DUCKDB), None, "{sql}");
        }
    }

    #[test]
    fn refuses_two_occurrences() {
        let sql = "{% if target.name == 'prod' %}{{ config(materialized='incremntal') }}{% else %}{{ config(materialized='incremntal') }}{% endif %}\nselect 1 as id";
        assert_eq!(run(sql, DUCKDB), None);
    }

    #[test]
    fn another_config_value_does_not_count() {
        let sql = "{{ config(materialized='table') }}\n{{ config(materialized='incremntal') }}\nselect 1 as id";
        assert_eq!(
            run(sql, DUCKDB).as_deref(),
            Some("{{ config(materialized='table') }}\n{{ config(materialized='incremental') }}\nselect 1 as id")
        );
    }

    #[test]
    fn refuses_a_far_name() {
        let sql = "{{ config(materialized='insert_overwrite') }}\nselect 1 as id";
        assert_eq!(run(sql, &message("insert_overwrite", "duckdb")), None);
    }
}
