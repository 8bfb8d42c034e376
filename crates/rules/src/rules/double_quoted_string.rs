//! `double_quoted_string`: a string value written in double quotes (`where status =
//! "completed"`, the habit of MySQL, BigQuery and Python). Where double quotes delimit
//! identifiers, the warehouse reads it as a column and says that column does not exist;
//! single quotes make it the string the author meant.
//!
//! The error proves the quoted word is no column of any relation in scope. The rule is
//! sure it is a value only when, besides, every place the model writes it is a value
//! position — an operand of a comparison or `LIKE` against an expression, or an item of
//! an `IN` list — the model uses the word nowhere as a name, and no upstream column is
//! spelt like it (`"complete"` next to a column `completed` may be a misspelt column).
//! Other double-quoted values in the same model (the next error dbt would report) are
//! converted too when the parents' columns are known and none of them is the word.

use crate::column_errors::parse_missing_column;
use crate::expressions::COMPARISONS;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{sqlcheck, RuleFix, RuleInput};

use super::{snippet, warehouse_name};

/// The rule's name.
pub(super) const NAME: &str = "double_quoted_string";

/// The adapters whose warehouse reads `"…"` as an identifier. (BigQuery, Databricks,
/// Spark and MySQL read it as a string: there the model never fails this way.)
pub const DOUBLE_QUOTES_NAME_IDENTIFIERS: &[&str] = &[
    "duckdb",
    "motherduck",
    "postgres",
    "postgresql",
    "redshift",
    "snowflake",
];

/// Words that end a condition or an operand: what may follow a value in a comparison.
const BOOLEAN_CONTEXT: &[&str] = &[
    "where", "and", "or", "not", "when", "on", "having", "qualify", "then", "else",
];

/// Turns the double-quoted value the warehouse took for a missing column into a string
/// literal, with the other double-quoted values that are plainly values too.
///
/// `None` unless the adapter reads double quotes as identifiers, the error names an
/// unqualified missing column that the model writes double-quoted, every occurrence of
/// it is a value position, the model never uses it as a name, and it is neither a
/// column nor a near-miss of a column the parents or the warehouse's hints list.
pub fn double_quoted_string(input: &RuleInput) -> Option<RuleFix> {
    if !DOUBLE_QUOTES_NAME_IDENTIFIERS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(input.adapter))
    {
        return None;
    }
    let missing = parse_missing_column(input.error_message, input.adapter)?;
    if missing.qualifier.is_some() {
        // `o."completed"`: a qualified name is a column read through a relation.
        return None;
    }
    let word = missing.column.trim_matches('"');
    let known_columns: Vec<&str> = input
        .parents
        .iter()
        .flat_map(|p| p.columns.iter().copied())
        .chain(missing.hinted_candidates.iter().map(String::as_str))
        .collect();
    if could_be_a_column(word, &known_columns) {
        return None;
    }

    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let quoted_words: Vec<(usize, &str)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| double_quoted_inner(t, sql).map(|inner| (i, inner)))
        .collect();
    let values: Vec<usize> = quoted_words
        .iter()
        .filter(|(i, _)| in_value_position(&tokens, sql, *i))
        .map(|(i, _)| *i)
        .collect();
    let occurrences: Vec<usize> = quoted_words
        .iter()
        .filter(|(_, inner)| *inner == word)
        .map(|(i, _)| *i)
        .collect();
    if occurrences.is_empty()
        || occurrences.iter().any(|i| !values.contains(i))
        || used_as_name(&tokens, sql, word, &values)
    {
        return None;
    }
    // Other double-quoted values: proven values by the parents' columns, or by sitting
    // in an `IN` list with the word (a list of literals and one column is no list).
    let parents_known =
        !input.parents.is_empty() && input.parents.iter().all(|p| !p.columns.is_empty());
    let word_lists: Vec<usize> = occurrences
        .iter()
        .filter_map(|&i| enclosing_in_list(&tokens, sql, i))
        .collect();
    let mut converted: Vec<usize> = Vec::new();
    for &(i, inner) in &quoted_words {
        let is_word = inner == word;
        let listed_with_word =
            enclosing_in_list(&tokens, sql, i).is_some_and(|open| word_lists.contains(&open));
        let other_value = !is_word
            && (parents_known || listed_with_word)
            && values.contains(&i)
            && !inner.is_empty()
            && !could_be_a_column(inner, &known_columns)
            && !used_as_name(&tokens, sql, inner, &values);
        if is_word || other_value {
            converted.push(i);
        }
    }
    let edits: Vec<Edit> = converted
        .iter()
        .map(|&i| {
            let inner = double_quoted_inner(&tokens[i], sql).unwrap_or_default();
            Edit {
                range: tokens[i].range.clone(),
                replacement: single_quoted(inner),
            }
        })
        .collect();
    let fixed_sql = apply_edits(sql, &edits)?;
    if sqlcheck::breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let others = converted.len() - occurrences.len();
    let also = match others {
        0 => String::new(),
        1 => " and 1 other double-quoted value, which is no upstream column either".to_owned(),
        n => format!(" and {n} other double-quoted values, which are no upstream columns either"),
    };
    let explanation = format!(
        "{} reads `\"{word}\"` as a column name, and no relation has that column: it is \
         compared as a value in `{}`. Wrote it as the string literal `{}`{also}.",
        warehouse_name(input.adapter),
        input.model_name,
        snippet(&single_quoted(word)),
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

/// True when `word` is a known column, or so near one that it may be a misspelling.
fn could_be_a_column(word: &str, known_columns: &[&str]) -> bool {
    known_columns.iter().any(|c| c.eq_ignore_ascii_case(word))
        || matches!(
            nearest::choose(word, known_columns.iter().copied()),
            Choice::Unique { .. } | Choice::Ambiguous(_) | Choice::ExactExists
        )
}

/// The inside of a complete `"…"` token without Jinja, `""` escapes kept.
fn double_quoted_inner<'s>(token: &Token, sql: &'s str) -> Option<&'s str> {
    if token.kind != TokenKind::QuotedIdent {
        return None;
    }
    let text = token.text(sql);
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains("{{") && !inner.contains("{%")).then_some(inner)
}

/// `"it""s o'k"` → `'it"s o''k'`.
fn single_quoted(inner: &str) -> String {
    format!("'{}'", inner.replace("\"\"", "\"").replace('\'', "''"))
}

/// True when some name token other than the value positions in `values` is `word`: the
/// model defines or reads it as a name (`as completed`, `t.completed`).
fn used_as_name(tokens: &[Token], sql: &str, word: &str, values: &[usize]) -> bool {
    tokens.iter().enumerate().any(|(i, t)| {
        if values.contains(&i) {
            return false;
        }
        match t.kind {
            TokenKind::Word => t.text(sql).eq_ignore_ascii_case(word),
            TokenKind::QuotedIdent => {
                double_quoted_inner(t, sql).is_some_and(|inner| inner.eq_ignore_ascii_case(word))
            }
            _ => false,
        }
    })
}

/// True when the token at `i` stands where only a value makes sense: compared with an
/// expression (`status = "x"`, `"x" = status`, `name like "a%"`) or an item of an `IN`
/// list against one (`status in ("a", "b")`).
fn in_value_position(tokens: &[Token], sql: &str, i: usize) -> bool {
    let at = |k: usize| tokens.get(k);
    let next = at(i + 1);
    // A name with a qualifier or a call is a name: `"x".y`, `t."x"`, `"f"(…)`.
    let glued = next.is_some_and(|n| n.is_punct(sql, '.') || n.is_punct(sql, '('))
        || (i > 0 && tokens[i - 1].is_punct(sql, '.'));
    if glued {
        return false;
    }
    let ends_operand = next.is_none_or(|n| {
        n.is_punct(sql, ')')
            || n.is_punct(sql, ',')
            || n.is_punct(sql, ';')
            || (n.kind == TokenKind::Operator && n.text(sql) == "::")
            || n.kind == TokenKind::Word
            || n.kind == TokenKind::JinjaStatement
    });
    let is_comparison = |k: usize| {
        at(k).is_some_and(|t| {
            (t.kind == TokenKind::Operator && COMPARISONS.contains(&t.text(sql)))
                || t.is_keyword(sql, "like")
                || t.is_keyword(sql, "ilike")
        })
    };
    // Right operand: `<expression> = "x"`.
    if i >= 2 && is_comparison(i - 1) && ends_operand {
        let operator = i - 1;
        let left = if tokens[operator].kind == TokenKind::Word
            && tokens[operator - 1].is_keyword(sql, "not")
        {
            operator.checked_sub(2)
        } else {
            Some(operator - 1)
        };
        return left.is_some_and(|l| ends_expression(&tokens[l], sql));
    }
    // Left operand: `"x" = <expression>`, at the start of a condition.
    if is_comparison(i + 1) {
        let starts_condition = i == 0
            || tokens[i - 1].is_punct(sql, '(')
            || BOOLEAN_CONTEXT
                .iter()
                .any(|w| tokens[i - 1].is_keyword(sql, w));
        let right = at(i + 2).is_some_and(|r| {
            (r.kind == TokenKind::Word && !is_syntax_word(r, sql))
                || r.kind == TokenKind::Jinja
                || (r.kind == TokenKind::QuotedIdent && double_quoted_inner(r, sql).is_none())
        });
        return starts_condition && right;
    }
    // An item of `<expression> [not] in ("a", "b")`.
    in_list_item(tokens, sql, i)
}

/// True for the item `i` of a parenthesized list of literals after `IN`.
fn in_list_item(tokens: &[Token], sql: &str, i: usize) -> bool {
    let Some(open) = enclosing_in_list(tokens, sql, i) else {
        return false;
    };
    let Some(close) = crate::tokens::matching_close(tokens, sql, open) else {
        return false;
    };
    // Every item one literal: `("a", 'b', "c")`.
    let items_are_literals = tokens[open + 1..close].iter().enumerate().all(|(n, t)| {
        if n % 2 == 1 {
            t.is_punct(sql, ',')
        } else {
            t.kind == TokenKind::StringLit || double_quoted_inner(t, sql).is_some()
        }
    });
    let before_in = if open >= 2 && tokens[open - 2].is_keyword(sql, "not") {
        open.checked_sub(3)
    } else {
        open.checked_sub(2)
    };
    items_are_literals && before_in.is_some_and(|b| ends_expression(&tokens[b], sql))
}

/// The index of the `(` of the `IN (…)` list token `i` sits in directly, if any.
fn enclosing_in_list(tokens: &[Token], sql: &str, i: usize) -> Option<usize> {
    let outer = tokens[i].depth.checked_sub(1)?;
    let open = (0..i)
        .rev()
        .find(|&k| tokens[k].depth == outer && tokens[k].is_punct(sql, '('))?;
    (open > 0 && tokens[open - 1].is_keyword(sql, "in")).then_some(open)
}

/// True when a token can end an expression a value is compared with: a column, a call,
/// a parenthesis, Jinja.
fn ends_expression(token: &Token, sql: &str) -> bool {
    match token.kind {
        TokenKind::Word => !is_syntax_word(token, sql),
        TokenKind::QuotedIdent | TokenKind::Jinja => true,
        TokenKind::Punct => token.is_punct(sql, ')'),
        _ => false,
    }
}

/// Keywords that cannot be (or end) an operand.
fn is_syntax_word(token: &Token, sql: &str) -> bool {
    BOOLEAN_CONTEXT.iter().any(|w| token.is_keyword(sql, w))
        || [
            "select", "from", "in", "is", "like", "ilike", "case", "by", "as", "null", "true",
            "false",
        ]
        .iter()
        .any(|w| token.is_keyword(sql, w))
}

/// True when the name token at `index` is compared (`=`, `<>`, `like`, …) with a column
/// called `name`: renamed to `name`, it would compare that column with itself.
pub(super) fn compared_with_name(tokens: &[Token], sql: &str, index: usize, name: &str) -> bool {
    let is_comparison = |k: usize| {
        tokens.get(k).is_some_and(|t| {
            (t.kind == TokenKind::Operator && COMPARISONS.contains(&t.text(sql)))
                || t.is_keyword(sql, "like")
                || t.is_keyword(sql, "ilike")
        })
    };
    let names = |t: &Token| match t.kind {
        TokenKind::Word => t.text(sql).eq_ignore_ascii_case(name),
        TokenKind::QuotedIdent => double_quoted_inner(t, sql) == Some(name),
        _ => false,
    };
    // `<other> = x`: the other operand's last name is right before the operator.
    let left = index >= 2 && is_comparison(index - 1) && names(&tokens[index - 2]);
    // `x = <other>`: walk the other operand's dotted chain to its last name.
    let right = is_comparison(index + 1) && {
        let mut last = index + 2;
        while tokens.get(last + 1).is_some_and(|t| t.is_punct(sql, '.'))
            && tokens.get(last + 2).is_some()
        {
            last += 2;
        }
        tokens.get(last).is_some_and(names)
    };
    left || right
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, ParentColumns};

    fn fixed(sql: &str, word: &str, adapter: &str, columns: &[&str]) -> Option<String> {
        let message =
            format!("Binder Error: Referenced column \"{word}\" not found in FROM clause!");
        let parents = [ParentColumns { name: "t", columns }];
        let input = RuleInput {
            error_class: ErrorClass::MissingColumn,
            error_message: &message,
            model_name: "m",
            model_sql: sql,
            parents: &parents,
            adapter,
            ..RuleInput::default()
        };
        double_quoted_string(&input).map(|f| f.fixed_sql)
    }

    #[test]
    fn values_on_either_side_and_other_proven_values() {
        let columns = ["status", "kind", "city"];
        assert_eq!(
            fixed("select * from t where \"done\" = status and kind not like \"x%\" or city <> \"it's\"", "done", "duckdb", &columns).as_deref(),
            Some("select * from t where 'done' = status and kind not like 'x%' or city <> 'it''s'")
        );
    }

    #[test]
    fn refusals() {
        let columns = ["status", "done_at"];
        // An argument, not an operand: a position the rule does not judge.
        assert_eq!(
            fixed(
                "select coalesce(status, \"done\") from t",
                "done",
                "duckdb",
                &columns
            ),
            None
        );
        // The word is also a name the model uses.
        assert_eq!(
            fixed(
                "select status as done from t where status = \"done\"",
                "done",
                "duckdb",
                &columns
            ),
            None
        );
        // Selected, not compared.
        assert_eq!(
            fixed("select \"done\" from t", "done", "duckdb", &columns),
            None
        );
        // Double quotes are strings on BigQuery: the error is something else.
        assert_eq!(
            fixed(
                "select * from t where status = \"done\"",
                "done",
                "bigquery",
                &columns
            ),
            None
        );
        // Close to a column: perhaps a misspelt `"done_at"`.
        assert_eq!(
            fixed(
                "select * from t where status = \"done_a\"",
                "done_a",
                "duckdb",
                &columns
            ),
            None
        );
    }

    #[test]
    fn a_rename_may_not_compare_a_column_with_itself() {
        let sql = "where f.completed = \"completed\"";
        let tokens = tokenize(sql);
        assert!(compared_with_name(&tokens, sql, 5, "completed"));
        assert!(!compared_with_name(&tokens, sql, 5, "complete"));
    }
}
