//! `misspelt_cte`: the model reads a relation the warehouse does not have (`left join
//! loan l`), and the model itself defines a CTE that is clearly what was meant (`loans`):
//! the name becomes the CTE's.
//!
//! Tried before `hardcoded_relation`, which would otherwise turn the slip into a `ref()`
//! of a project node with a similar name — a seed or staging model the CTE reads from,
//! which compiles but skips whatever the CTE does to it.

use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::structure::ctes;
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

use super::{edits_phrase, parse_missing_relation};

/// The rule's name.
pub(super) const NAME: &str = "misspelt_cte";

/// The largest edit distance accepted between the written name and a CTE's: a slip, not
/// a different relation.
const MAX_DISTANCE: usize = 2;

/// Token indexes of every unqualified relation name right after `from` or `join` that is
/// `name` (ignoring case and quotes): a qualified name (`main.loan`) or a table function
/// (`loan(…)`) is no CTE reference.
fn unqualified_occurrences(tokens: &[Token], sql: &str, name: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !(t.is_keyword(sql, "from") || t.is_keyword(sql, "join")) {
            continue;
        }
        let at = i + 1;
        let Some(relation) = tokens.get(at) else {
            continue;
        };
        if !matches!(relation.kind, TokenKind::Word | TokenKind::QuotedIdent) {
            continue;
        }
        let followed_by = |c: char| {
            tokens
                .get(at + 1)
                .is_some_and(|n| n.is_punct(sql, c) && n.range.start == relation.range.end)
        };
        let qualified = at >= 1 && tokens[at - 1].is_punct(sql, '.');
        if followed_by('.') || followed_by('(') || qualified {
            continue;
        }
        if relation.unquoted(sql).eq_ignore_ascii_case(name) {
            found.push(at);
        }
    }
    found
}

/// Renames a relation the warehouse does not have to the model's own CTE it is clearly a
/// slip of.
///
/// Fires only when the error is the warehouse's "does not exist" for a table, the model
/// reads that name unqualified right after `from` or `join` (outside Jinja, strings and
/// comments), the name is neither a CTE of the model nor a project node (a hard-coded
/// node is `hardcoded_relation`'s), and [`nearest::choose`] picks exactly one CTE within
/// [`MAX_DISTANCE`] edits.
pub fn misspelt_cte(input: &RuleInput) -> Option<RuleFix> {
    let table = parse_missing_relation(input.error_message)?;
    if input
        .project_node_names
        .iter()
        .any(|node| node.eq_ignore_ascii_case(&table))
    {
        return None;
    }
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let names: Vec<&str> = ctes(&tokens, sql)
        .iter()
        .map(|cte| tokens[cte.name].unquoted(sql))
        .collect();
    let (cte, distance, confidence) = match nearest::choose(&table, names.iter().copied()) {
        Choice::Unique { best, runner_up } if best.distance <= MAX_DISTANCE => {
            let confidence = nearest::confidence(&table, &best, runner_up.as_ref());
            (best.name, best.distance, confidence)
        }
        _ => return None,
    };
    let occurrences = unqualified_occurrences(&tokens, sql, &table);
    if occurrences.is_empty() {
        return None;
    }
    let edits: Vec<Edit> = occurrences
        .iter()
        .map(|&at| Edit {
            range: tokens[at].range.clone(),
            replacement: cte.to_owned(),
        })
        .collect();
    let fixed_sql = apply_edits(sql, &edits)?;
    let explanation = format!(
        "The warehouse has no relation `{table}`; `{}` defines the CTE `{cte}` ({} away), \
         which is what the {} meant. Renamed it.",
        input.model_name,
        edits_phrase(distance),
        if edits.len() == 1 {
            "reference".to_owned()
        } else {
            format!("{} references", edits.len())
        },
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

    const MODEL: &str = "with loans as (\n    select * from {{ ref('stg_loans') }}\n),\n\nmembers as (\n    select * from {{ ref('stg_members') }}\n)\n\nselect m.member_id, count(l.loan_id) as loan_count\nfrom members m\nleft join loan l on l.member_id = m.member_id\ngroup by m.member_id\n";

    fn run(sql: &str, message: &str, nodes: &[&str]) -> Option<RuleFix> {
        misspelt_cte(&RuleInput {
            error_class: ErrorClass::UnknownRelation,
            error_message: message,
            model_name: "member_activity",
            model_sql: sql,
            project_node_names: nodes,
            adapter: "duckdb",
            ..RuleInput::default()
        })
    }

    // Real texts, the join above broken as shown. DuckDB: dbt-core 1.11.16 with dbt-duckdb
    // 1.11.1, `dbt build` of a project whose member_activity.sql is this model with one
    // more column (a macro call), hence line 25; its "Did you mean" names the seed
    // `loans`, which is not what the model meant. PostgreSQL 15: this model run with psql,
    // the refs rendered as tables of a scratch schema.
    const DUCKDB: &str = "Runtime Error in model member_activity (models/marts/member_activity.sql)\n  Catalog Error: Table with name loan does not exist!\n  Did you mean \"loans\"?\n  \n  LINE 25: left join loan l on l.member_id = m.member_id\n                     ^^^^^^";
    const POSTGRES: &str = "relation \"loan\" does not exist\nLINE 11: left join loan l on l.member_id = m.member_id\n                   ^";

    #[test]
    fn a_slip_of_a_cte_name_becomes_the_cte_not_a_ref() {
        let nodes = ["loans", "members", "stg_loans", "stg_members"];
        for message in [DUCKDB, POSTGRES] {
            let fix = run(MODEL, message, &nodes).unwrap();
            assert_eq!(
                fix.fixed_sql,
                MODEL.replace("left join loan l", "left join loans l"),
                "{message}"
            );
            assert_eq!(fix.rule, NAME);
        }
    }

    #[test]
    fn qualified_names_nodes_and_far_names_are_left_alone() {
        let nodes = ["loans", "loan"];
        // The missing name is a project node: a hard-coded relation, not a CTE slip.
        assert_eq!(run(MODEL, DUCKDB, &nodes), None);
        // Qualified: a table elsewhere, not a CTE.
        let qualified = MODEL.replace("left join loan l", "left join main.loan l");
        assert_eq!(run(&qualified, DUCKDB, &[]), None);
        // Nothing near.
        let far = MODEL.replace("left join loan l", "left join payments l");
        let message = DUCKDB.replace("loan does", "payments does");
        assert_eq!(run(&far, &message, &[]), None);
        // Two CTEs equally near.
        let two = MODEL.replace("members as (", "loane as (");
        assert_eq!(run(&two, DUCKDB, &[]), None);
    }
}
