//! `hardcoded_relation`: the model reads a hard-coded table name (`from
//! main.raw_order_item`) that the warehouse does not have, and exactly one project node
//! is clearly what was meant: the name becomes `{{ ref('<node>') }}`.
//!
//! A `ref()` is the right repair, not just the corrected name: it lets dbt order the
//! build and resolve the schema of every target.

use std::sync::OnceLock;

use regex::Regex;

use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{edits_phrase, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "hardcoded_relation";

/// The largest edit distance accepted between the hard-coded name and a node name: a
/// slip, not a different table.
const MAX_DISTANCE: usize = 2;

/// The warehouses' wordings for a missing table. DuckDB: `Catalog Error: Table with name
/// raw_order_item does not exist!` (its "Did you mean" suggestion is a catalog table and
/// is ignored). PostgreSQL: `relation "main.raw_order_item" does not exist`.
const MISSING_RELATION_PATTERNS: &[&str] = &[
    r#"Table with name "?(?P<name>[^\s"!]+)"? does not exist"#,
    r#"relation "(?P<name>[^"]+)" does not exist"#,
];

/// The table name (last part, unquoted) a warehouse says does not exist.
pub fn parse_missing_relation(message: &str) -> Option<String> {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        MISSING_RELATION_PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p).ok())
            .collect()
    });
    let name = res
        .iter()
        .find_map(|re| re.captures(message)?.name("name"))?
        .as_str();
    let table = name.rsplit('.').next()?.trim_matches('"');
    (!table.is_empty()).then(|| table.to_owned())
}

/// Byte ranges of every relation right after `from` or `join` whose last name part is
/// `table` (ignoring case and quotes): `raw_order_item`, `main.raw_order_item`,
/// `"db"."main"."raw_order_item"`.
fn hardcoded_occurrences(sql: &str, table: &str) -> Vec<std::ops::Range<usize>> {
    let tokens = tokenize(sql);
    let is_name = |t: &Token| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent);
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !(t.is_keyword(sql, "from") || t.is_keyword(sql, "join")) {
            continue;
        }
        let start = i + 1;
        if !tokens.get(start).is_some_and(is_name) {
            continue;
        }
        let mut last = start;
        while last + 2 < tokens.len()
            && tokens[last + 1].is_punct(sql, '.')
            && is_name(&tokens[last + 2])
            && tokens[last + 1].range.start == tokens[last].range.end
            && tokens[last + 2].range.start == tokens[last + 1].range.end
        {
            last += 2;
        }
        // Not a table function call (`from read_csv(…)`) and at most db.schema.table.
        let is_call = tokens
            .get(last + 1)
            .is_some_and(|n| n.is_punct(sql, '(') && n.range.start == tokens[last].range.end);
        if is_call || (last - start) / 2 + 1 > 3 {
            continue;
        }
        if tokens[last].unquoted(sql).eq_ignore_ascii_case(table) {
            found.push(tokens[start].range.start..tokens[last].range.end);
        }
    }
    found
}

/// Replaces a hard-coded relation the warehouse does not have with a `ref()` of the one
/// project node whose name is within [`MAX_DISTANCE`] edits of it (or equal to it).
///
/// Fires only when the error is the warehouse's "does not exist" for a table (never
/// dbt's own "depends on a node named" error, which `misspelt_ref` answers), the model
/// names that table right after `from` or `join` outside Jinja, strings and comments,
/// and exactly one node other than the model itself is clearly nearest.
pub fn hardcoded_relation(input: &RuleInput) -> Option<RuleFix> {
    let table = parse_missing_relation(input.error_message)?;
    let occurrences = hardcoded_occurrences(input.model_sql, &table);
    if occurrences.is_empty() {
        return None;
    }
    let candidates: Vec<&str> = input
        .project_node_names
        .iter()
        .copied()
        .filter(|name| *name != input.model_name)
        .collect();
    let (node, distance, confidence) = match nearest::choose(&table, candidates.iter().copied()) {
        Choice::Unique { best, runner_up } if best.distance <= MAX_DISTANCE => {
            let confidence = nearest::confidence(&table, &best, runner_up.as_ref());
            (best.name, best.distance, confidence)
        }
        Choice::ExactExists => {
            let exact: Vec<&str> = candidates
                .iter()
                .copied()
                .filter(|c| c.eq_ignore_ascii_case(&table))
                .collect();
            match exact.as_slice() {
                [one] => (*one, 0, 0.9),
                _ => return None,
            }
        }
        _ => return None,
    };
    let written = input.model_sql[occurrences[0].clone()].to_owned();
    let edits: Vec<Edit> = occurrences
        .into_iter()
        .map(|range| Edit {
            range,
            replacement: format!("{{{{ ref('{node}') }}}}"),
        })
        .collect();
    let fixed_sql = apply_edits(input.model_sql, &edits)?;
    let how_close = if distance == 0 {
        "the project node of that name".to_owned()
    } else {
        format!("the nearest project node, {} away", edits_phrase(distance))
    };
    let explanation = format!(
        "{} has no table `{table}`: `{}` hard-codes `{written}`. Replaced it with \
         `{{{{ ref('{node}') }}}}` ({how_close}), so dbt resolves the relation and builds \
         `{node}` first.",
        warehouse_name(input.adapter),
        input.model_name,
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

    #[test]
    fn patterns_compile() {
        for p in MISSING_RELATION_PATTERNS {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn names_are_read_without_schema_or_quotes() {
        assert_eq!(
            parse_missing_relation("relation \"main.raw_order_item\" does not exist"),
            Some("raw_order_item".into())
        );
        assert_eq!(
            parse_missing_relation("Catalog Error: Table with name raw_order_item does not exist!\n  Did you mean \"pragma_database_list\"?"),
            Some("raw_order_item".into())
        );
    }

    #[test]
    fn occurrences_cover_qualified_and_quoted_names() {
        let sql = "select 1 from \"main\".\"Raw_Order_Item\" r join raw_order_item x on 1=1\n\
                   -- from raw_order_item\nwhere 'from raw_order_item' <> ''";
        let found: Vec<&str> = hardcoded_occurrences(sql, "raw_order_item")
            .into_iter()
            .map(|r| &sql[r])
            .collect();
        assert_eq!(found, vec!["\"main\".\"Raw_Order_Item\"", "raw_order_item"]);
    }

    #[test]
    fn table_functions_and_other_tables_are_left_alone() {
        assert!(
            hardcoded_occurrences("select * from raw_order_item(1)", "raw_order_item").is_empty()
        );
        assert!(
            hardcoded_occurrences("select * from raw_order_items", "raw_order_item").is_empty()
        );
    }
}
