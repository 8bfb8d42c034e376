//! Does a model's SQL parse? Jinja masked out, parsed with sqlparser in the adapter's
//! dialect.
//!
//! A syntax rule proposes an edit only when the warehouse's parser and sqlparser agree
//! on the story: the model as written does not parse, and the edited model does. Jinja
//! cannot be rendered here, so [`mask_jinja`] stands a placeholder identifier in for each
//! `{{ … }}` (a `ref()` renders to a relation name, a macro usually to an expression) and
//! blanks out `{% … %}` and `{# … #}` — both branches of an `{% if %}` are kept, which
//! either still parses or makes the rule refuse. The masked text has the same length as
//! the original, so byte offsets carry over.

use sqlparser::dialect::{
    BigQueryDialect, Dialect, DuckDbDialect, GenericDialect, PostgreSqlDialect, RedshiftSqlDialect,
    SnowflakeDialect,
};
use sqlparser::parser::Parser;

use crate::segment::{segment, SegmentKind};

/// The model text with Jinja replaced, byte for byte: each expression by an identifier
/// of underscores (`{{ ref('x') }}` → `______________`), `{{ config(…) }}` and every
/// statement, comment and raw block by blanks (newlines kept).
pub fn mask_jinja(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for seg in segment(text) {
        let piece = &text[seg.range.clone()];
        match seg.kind {
            SegmentKind::JinjaExpression if !renders_nothing(piece) => {
                out.extend(std::iter::repeat_n('_', piece.len()));
            }
            kind if kind.is_jinja() => {
                out.extend(piece.bytes().map(|b| if b == b'\n' { '\n' } else { ' ' }));
            }
            _ => out.push_str(piece),
        }
    }
    out
}

/// `{{ config(…) }}` renders to nothing.
fn renders_nothing(expression: &str) -> bool {
    let inner = expression
        .trim_start_matches("{{")
        .trim_start_matches('-')
        .trim_start();
    inner.starts_with("config(") || inner.starts_with("config (")
}

/// The sqlparser dialect closest to a dbt adapter type.
pub fn dialect_for(adapter: &str) -> Box<dyn Dialect> {
    match adapter.to_ascii_lowercase().as_str() {
        "duckdb" | "motherduck" => Box::new(DuckDbDialect {}),
        "postgres" | "postgresql" => Box::new(PostgreSqlDialect {}),
        "redshift" => Box::new(RedshiftSqlDialect {}),
        "snowflake" => Box::new(SnowflakeDialect {}),
        "bigquery" => Box::new(BigQueryDialect {}),
        _ => Box::new(GenericDialect {}),
    }
}

/// `Ok` when the model text (Jinja masked) parses as SQL in `adapter`'s dialect;
/// otherwise sqlparser's error. A text of only comments parses.
pub fn parse_model(text: &str, adapter: &str) -> Result<(), String> {
    let masked = mask_jinja(text);
    let dialect = dialect_for(adapter);
    Parser::parse_sql(dialect.as_ref(), &masked)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// True when an edit turned a model that parsed into one that does not: a rule's fix
/// must never do that. (A model that did not parse before says nothing either way:
/// sqlparser may not know the warehouse's dialect.)
pub fn breaks_parse(original: &str, fixed: &str, adapter: &str) -> bool {
    parse_model(original, adapter).is_ok() && parse_model(fixed, adapter).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_offsets_and_strings() {
        let text = "{{ config(materialized='table') }}\nselect {{ col }}, '{{ v }}'\n{% if x %}from {{ ref('t') }}{% endif %}";
        let masked = mask_jinja(text);
        assert_eq!(masked.len(), text.len());
        assert!(
            masked.starts_with("                                  \nselect _________, '_______'")
        );
        assert!(masked.ends_with("          from ______________           "));
    }

    #[test]
    fn the_real_fixture_models_parse() {
        // models/marts/finance/store_revenue.sql of the example project.
        let text = "with s as (select store_id, seat_count from {{ ref('stg_stores') }})\nselect s.store_id, {{ cents_to_dollars('x') }} as revenue,\n    coalesce(sum(o.c), 0) // nullif(s.seat_count, 0) as per_seat\nfrom s left join {{ ref('orders') }} as o on s.store_id = o.store_id\ngroup by s.store_id\n";
        assert_eq!(parse_model(text, "duckdb"), Ok(()));
        assert!(parse_model("select a b c from t", "duckdb").is_err());
    }

    #[test]
    fn trailing_commas_follow_the_dialect() {
        assert_eq!(parse_model("select a, b, from t", "duckdb"), Ok(()));
        assert!(parse_model("select a, b, from t", "postgres").is_err());
        assert_eq!(parse_model("select a, b from t", "postgres"), Ok(()));
    }
}
