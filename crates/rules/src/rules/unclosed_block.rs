//! `unclosed_block`: a `{% if %}` or `{% for %}` lost its `{% endif %}` / `{% endfor %}`,
//! and Jinja reached the end of the template looking for it.
//!
//! Where the end tag goes is read from the model's shape, and only one shape is answered:
//! the block runs to the end of the SQL scope it opens in — the closing parenthesis of
//! its CTE or subquery, or the end of the file — the way an incremental filter
//! (`{% if is_incremental() %} where … {% endif %}`) closes a CTE. Every line of SQL in
//! between must be indented at least as deep as the tag, or the block could end earlier
//! and which line ends it would be a guess.

use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, Edit};
use crate::segment::{segment, SegmentKind};
use crate::tokens::{tokenize_segments, TokenKind};
use crate::{RuleFix, RuleInput};

/// The rule's name.
pub(super) const NAME: &str = "unclosed_block";

/// Jinja's wording, as dbt reports it: `Unexpected end of template. Jinja was looking
/// for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs
/// to be closed is 'if'.`
const END_OF_TEMPLATE: &str = r"Unexpected end of template\. Jinja was looking for the following tags: [^\n]*?The innermost block that needs to be closed is '(?P<block>\w+)'";

/// The blocks this rule closes, with their end tags.
const BLOCKS: [(&str, &str); 2] = [("if", "endif"), ("for", "endfor")];

/// The block Jinja says is open (`if`, `for`), when the message is that error.
pub fn parse_unclosed_block(message: &str) -> Option<String> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, END_OF_TEMPLATE, message)?;
    Some(caps.name("block")?.as_str().to_owned())
}

/// The first word of a `{% … %}` statement: `if`, `endfor`, `set`.
fn statement_word(text: &str) -> &str {
    let inner = text
        .trim_start_matches("{%")
        .trim_start_matches(['-', '+'])
        .trim_start();
    let end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    &inner[..end]
}

/// Closes the one block left open at the end of its SQL scope.
///
/// Fires only when Jinja names the block (`if` or `for`), exactly one block of the
/// model's `if`/`for` statements is left open and it is that kind, its tag starts its
/// line, and the scope it opens in ends (a closing parenthesis at the start of a line, or
/// the end of the file) with no line of SQL in between indented less than the tag.
pub fn unclosed_block(input: &RuleInput) -> Option<RuleFix> {
    let block = parse_unclosed_block(input.error_message)?;
    let (_, end_word) = BLOCKS.iter().find(|(open, _)| *open == block)?;
    let sql = input.model_sql;
    let segments = segment(sql);
    // The if/for statements still open at the end of the file.
    let mut open: Vec<(usize, &str)> = Vec::new();
    for seg in segments
        .iter()
        .filter(|s| s.kind == SegmentKind::JinjaStatement)
    {
        let text = &sql[seg.range.clone()];
        let word = statement_word(text);
        if let Some((opener, _)) = BLOCKS.iter().find(|(o, _)| *o == word) {
            open.push((seg.range.start, opener));
        } else if let Some((opener, _)) = BLOCKS.iter().find(|(_, e)| *e == word) {
            // An end tag for a block that is not the innermost one: nested wrongly,
            // nothing to read off.
            match open.pop() {
                Some((_, innermost)) if innermost == *opener => {}
                _ => return None,
            }
        }
    }
    let [(tag_start, kind)] = open.as_slice() else {
        return None;
    };
    if *kind != block {
        return None;
    }
    let line_start = sql[..*tag_start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &sql[line_start..*tag_start];
    if !indent.chars().all(|c| c == ' ' || c == '\t') {
        return None;
    }
    let tag_text = &sql[*tag_start..];
    let trim_left = tag_text.starts_with("{%-");

    let tokens = tokenize_segments(sql, &segments);
    let tag_token = tokens.iter().position(|t| t.range.start == *tag_start)?;
    if tokens[tag_token].kind != TokenKind::JinjaStatement {
        return None;
    }
    let depth = tokens[tag_token].depth;
    // The end of the scope: the parenthesis that closes it, or the end of the file.
    let scope_end = tokens[tag_token + 1..]
        .iter()
        .find(|t| t.depth < depth)
        .map(|t| (t.range.start, t.is_punct(sql, ')')));
    let insert_at = match scope_end {
        Some((at, true)) => {
            let end_line_start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
            if !sql[end_line_start..at].trim().is_empty() || end_line_start <= *tag_start {
                return None;
            }
            end_line_start
        }
        Some((_, false)) => return None,
        None => sql.len(),
    };
    let tag_line_end = sql[*tag_start..]
        .find('\n')
        .map_or(sql.len(), |i| tag_start + i + 1);
    let body = sql.get(tag_line_end..insert_at).unwrap_or("");
    let shallower = body.lines().any(|line| {
        let content = line.trim_start();
        !content.is_empty() && line.len() - content.len() < indent.len()
    });
    if shallower || body.trim().is_empty() {
        return None;
    }
    let end_tag = format!(
        "{indent}{{%{} {end_word} %}}",
        if trim_left { "-" } else { "" }
    );
    let replacement = if insert_at == sql.len() {
        let newline = if sql.ends_with('\n') { "" } else { "\n" };
        format!("{newline}{end_tag}\n")
    } else {
        format!("{end_tag}\n")
    };
    let fixed_sql = apply_edits(
        sql,
        &[Edit {
            range: insert_at..insert_at,
            replacement,
        }],
    )?;
    let tag_line = sql[line_start..tag_line_end].trim();
    let place = if insert_at == sql.len() {
        "at the end of the model".to_owned()
    } else {
        "where the scope it opens in closes".to_owned()
    };
    let explanation = format!(
        "Jinja reached the end of `{}` with `{tag_line}` still open. Every line after it up \
         to the end of its SQL scope is indented under it, so `{{% {end_word} %}}` goes {place}.",
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.75,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    const MESSAGE: &str = "Compilation Error in model m (models/m.sql)\n  Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.\n    line 38\n      from x";

    fn run(sql: &str, message: &str) -> Option<String> {
        unclosed_block(&RuleInput {
            error_class: ErrorClass::JinjaCompilation,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            adapter: "duckdb",
            ..RuleInput::default()
        })
        .map(|f| f.fixed_sql)
    }

    #[test]
    fn an_incremental_filter_is_closed_with_its_cte() {
        let sql = "with r as (\n    select a\n    from {{ ref('x') }}\n    {% if is_incremental() %}\n    where a > (select max(a) from {{ this }})\n),\n\np as (select 1 as b)\n\nselect * from r\n";
        assert_eq!(
            run(sql, MESSAGE).as_deref(),
            Some("with r as (\n    select a\n    from {{ ref('x') }}\n    {% if is_incremental() %}\n    where a > (select max(a) from {{ this }})\n    {% endif %}\n),\n\np as (select 1 as b)\n\nselect * from r\n")
        );
    }

    #[test]
    fn a_block_at_the_end_of_the_file_is_closed_there() {
        let sql = "select a from {{ ref('x') }}\n{%- if is_incremental() %}\nwhere a > 1";
        assert_eq!(
            run(sql, MESSAGE).as_deref(),
            Some("select a from {{ ref('x') }}\n{%- if is_incremental() %}\nwhere a > 1\n{%- endif %}\n")
        );
    }

    #[test]
    fn where_the_block_ends_is_not_guessed() {
        // A loop in a select list: the line after it could be in it or not.
        let looping = "select\n    {% for c in ['a', 'b'] %}\n    sum({{ c }}) as {{ c }}_total,\n    count(*) as n\nfrom t\n";
        let message = MESSAGE
            .replace("'elif' or 'else' or 'endif'", "'endfor' or 'else'")
            .replace("is 'if'", "is 'for'");
        assert_eq!(run(looping, &message), None);
        // A line less indented than the tag inside the scope.
        let shallower = "with r as (\n    select a\n    {% if is_incremental() %}\n    where a > 1\ngroup by a\n)\nselect * from r\n";
        assert_eq!(run(shallower, MESSAGE), None);
        // The kind Jinja names is not the one left open.
        let other_kind = "select a\n{% for c in x %}\nwhere a > 1\n";
        assert_eq!(run(other_kind, MESSAGE), None);
        // Two blocks open.
        let two = "select a\n{% if x %}\n{% if y %}\nwhere a > 1\n";
        assert_eq!(run(two, MESSAGE), None);
        // Not this error.
        assert_eq!(
            run(
                "select 1\n{% if x %}\nwhere 1",
                "expected token 'end of print statement', got 'where'"
            ),
            None
        );
    }

    #[test]
    fn the_error_names_the_block() {
        assert_eq!(parse_unclosed_block(MESSAGE).as_deref(), Some("if"));
        assert_eq!(
            parse_unclosed_block("Unexpected end of template. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.").as_deref(),
            Some("for")
        );
    }
}
