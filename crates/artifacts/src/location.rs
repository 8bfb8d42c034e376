//! Where a database error points, in the model's own file.
//!
//! DuckDB and Postgres say `LINE 65: <text of the line>`, counting lines of the statement
//! dbt executed: its `/* {"app": "dbt", …} */` comment and the `create … as (` wrapper come
//! before the compiled SQL, and Jinja may have turned one model line into several (or none).
//! In one real case `LINE 65` was line 56 of the model. Three ways back, best first:
//!
//! 1. `executed_statement`: the debug log recorded the statement (`On model.x: …`, or the
//!    JSON log's `SQLQuery`). The reported line is read off it; the compiled SQL is found
//!    inside it (so the compiled line is exact); the model's lines are aligned to it.
//! 2. `compiled_sql`: no statement, but the compiled SQL (run_results, manifest): the
//!    database's excerpt of the line is found in it (the candidate nearest below `LINE n`,
//!    since the wrapper only adds lines), and the model is aligned to it.
//! 3. `line_text`: only the model's SQL: the excerpt is found among its lines.
//!
//! Alignment is a weighted longest-common-subsequence over lines: equal lines match, a
//! model line with Jinja matches a compiled line that holds its literal parts in order, and
//! a compiled line Jinja produced out of nothing maps to the model line that made it.

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// Files longer than this are not aligned (the table is lines², two bytes a cell).
const MAX_ALIGN_LINES: usize = 2_000;
/// Lines of the compiled SQL compared when finding it inside the executed statement.
const MAX_BLOCK_PROBE: usize = 50;

/// A database error's line, mapped back to the compiled SQL and the model's file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorLocation {
    /// The line the database reported, counting the executed statement (1-based).
    pub statement_line: u32,
    /// The same line in the compiled SQL (1-based; 0 when unknown).
    pub compiled_line: u32,
    /// The same line in the model's SQL (1-based; 0 when unknown).
    pub model_line: u32,
    /// The text of that model line (trailing spaces trimmed).
    pub model_line_text: String,
    /// `executed_statement`, `compiled_sql` or `line_text` (see the module comment).
    pub method: &'static str,
}

/// `LINE 65:     o.ordr_date,` → (65, `o.ordr_date,`). Postgres elides long lines with
/// `...` at either end; those dots are not part of the line.
pub(crate) fn line_reference(message: &str) -> Option<(u32, String)> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r"(?m)^\s*LINE (\d+):(.*)$").ok())
        .as_ref()?;
    let c = re.captures(message)?;
    let n: u32 = c.get(1)?.as_str().parse().ok()?;
    if n == 0 {
        return None;
    }
    let excerpt = c.get(2).map_or("", |m| m.as_str()).trim();
    let excerpt = excerpt.strip_prefix("...").unwrap_or(excerpt);
    let excerpt = excerpt.strip_suffix("...").unwrap_or(excerpt);
    Some((n, excerpt.trim().to_owned()))
}

/// Maps the `LINE n` of `message` back to the model. `None` when the message names no
/// line or nothing could be mapped.
pub(crate) fn locate(
    message: &str,
    model_sql: &str,
    compiled_sql: &str,
    executed: Option<&str>,
) -> Option<ErrorLocation> {
    let (n, excerpt) = line_reference(message)?;
    let model: Vec<&str> = model_sql.lines().collect();
    let compiled: Vec<&str> = compiled_sql.lines().collect();

    if let Some(statement) = executed {
        let lines: Vec<&str> = statement.lines().collect();
        let at = n as usize - 1;
        // The statement must be the one the error is about: its line n holds the excerpt.
        if at < lines.len() && (excerpt.is_empty() || contains_normalised(lines[at], &excerpt)) {
            let compiled_line = find_block(&lines, &compiled)
                .and_then(|k| at.checked_sub(k))
                .filter(|c| *c < compiled.len())
                .map_or(0, |c| c as u32 + 1);
            let model_line = map_line(&model, &lines, at);
            return Some(location(
                n,
                compiled_line,
                model_line,
                &model,
                "executed_statement",
            ));
        }
    }
    if !compiled.is_empty() {
        // The excerpt is the whole line unless the database elided it: a line equal to it
        // beats one that merely contains it (`store_id,` is also inside `group by
        // s.store_id, …`, which sits nearer to Postgres' longer wrapper).
        if let Some(c) = nearest_candidate(&compiled, &excerpt, n, equal_normalised)
            .or_else(|| nearest_candidate(&compiled, &excerpt, n, contains_normalised))
        {
            let model_line = map_line(&model, &compiled, c);
            return Some(location(
                n,
                c as u32 + 1,
                model_line,
                &model,
                "compiled_sql",
            ));
        }
    }
    let m = nearest_candidate(&model, &excerpt, n, |line, e| {
        equal_normalised(line, e) || jinja_matches(line.trim_start(), e)
    })
    .or_else(|| nearest_candidate(&model, &excerpt, n, contains_normalised))?;
    Some(location(n, 0, Some(m), &model, "line_text"))
}

fn location(
    statement_line: u32,
    compiled_line: u32,
    model_line: Option<usize>,
    model: &[&str],
    method: &'static str,
) -> ErrorLocation {
    let model_line_text = model_line
        .and_then(|m| model.get(m))
        .map(|t| t.trim_end().to_owned())
        .unwrap_or_default();
    ErrorLocation {
        statement_line,
        compiled_line,
        model_line: model_line.map_or(0, |m| m as u32 + 1),
        model_line_text,
        method,
    }
}

/// The line (0-based) holding the excerpt; of several, the last one at or above the
/// reported line (a wrapper only ever adds lines before the SQL), else the first.
fn nearest_candidate(
    lines: &[&str],
    excerpt: &str,
    reported: u32,
    matches: impl Fn(&str, &str) -> bool,
) -> Option<usize> {
    if excerpt.is_empty() {
        return None;
    }
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|i| matches(lines[*i], excerpt))
        .collect();
    let reported = reported as usize;
    candidates
        .iter()
        .copied()
        .filter(|i| *i < reported)
        .max()
        .or_else(|| candidates.first().copied())
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn equal_normalised(line: &str, excerpt: &str) -> bool {
    let e = normalise(excerpt);
    !e.is_empty() && normalise(line) == e
}

fn contains_normalised(line: &str, excerpt: &str) -> bool {
    let e = normalise(excerpt);
    !e.is_empty() && normalise(line).contains(&e)
}

/// Where the compiled SQL starts inside the executed statement (0-based line).
fn find_block(statement: &[&str], compiled: &[&str]) -> Option<usize> {
    // Leading blank lines of the compiled SQL may have been trimmed by the wrapper.
    let first = compiled.iter().position(|l| !l.trim().is_empty())?;
    let probe: Vec<&str> = compiled[first..]
        .iter()
        .take(MAX_BLOCK_PROBE)
        .map(|l| l.trim_end())
        .collect();
    // The wrapper's template indents the first line (`as (\n    {{ sql }}`), so that one
    // is compared without its indentation.
    (0..statement.len())
        .find(|k| {
            probe.iter().enumerate().all(|(i, want)| {
                let got = statement.get(k + i).map(|l| l.trim_end());
                if i == 0 {
                    got.map(str::trim_start) == Some(want.trim_start())
                } else {
                    got == Some(*want)
                }
            })
        })
        .and_then(|k| k.checked_sub(first))
}

/// The literal parts of a line with Jinja, in order; `None` for a line without Jinja or
/// with only Jinja.
fn literal_parts(line: &str) -> Option<Vec<&str>> {
    static TAG: OnceLock<Option<Regex>> = OnceLock::new();
    let tag = TAG
        .get_or_init(|| Regex::new(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}").ok())
        .as_ref()?;
    if !line.contains("{{") && !line.contains("{%") && !line.contains("{#") {
        return None;
    }
    let parts: Vec<&str> = tag.split(line).collect();
    parts.iter().any(|p| !p.trim().is_empty()).then_some(parts)
}

/// True when a compiled line could have come from a model line with Jinja: it starts
/// with the first literal part, ends with the last, and holds the rest in order.
fn jinja_matches(model_line: &str, compiled_line: &str) -> bool {
    let Some(parts) = literal_parts(model_line.trim_end()) else {
        return false;
    };
    let target = compiled_line.trim_end();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if !target.starts_with(first) || target.len() < first.len() + last.len() {
        return false;
    }
    // `{{ ref('orders') }}` renders to a relation named orders: a line reading another
    // relation is not its rendering.
    let lower = target.to_ascii_lowercase();
    if !crate::sql::refs_in(model_line)
        .iter()
        .all(|r| lower.contains(&r.to_ascii_lowercase()))
    {
        return false;
    }
    let mut rest = &target[first.len()..];
    if !rest.ends_with(last) {
        return false;
    }
    rest = &rest[..rest.len() - last.len()];
    for part in &parts[1..parts.len().saturating_sub(1)] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// How well a model line matches a target line: 3 equal text, 2 Jinja-compatible,
/// 1 both blank, 0 no match.
fn weight(model_line: &str, target_line: &str) -> u16 {
    let (m, t) = (model_line.trim_end(), target_line.trim_end());
    if m.trim().is_empty() || t.trim().is_empty() {
        return u16::from(m.trim().is_empty() && t.trim().is_empty());
    }
    if m == t {
        3
    } else if jinja_matches(m, t) {
        2
    } else {
        0
    }
}

/// Maps target line `at` (0-based) to a model line (0-based) through an alignment.
fn map_line(model: &[&str], target: &[&str], at: usize) -> Option<usize> {
    if model.is_empty() || target.is_empty() {
        return None;
    }
    if model.len() > MAX_ALIGN_LINES || target.len() > MAX_ALIGN_LINES {
        return None;
    }
    let pairs = align(model, target);
    if let Some((m, _)) = pairs.iter().find(|(_, t)| *t == at) {
        return Some(*m);
    }
    // Not aligned: Jinja made it (a loop's second pass, a macro's lines). Between the
    // aligned neighbours, a model line that could render to it is the answer (a loop body
    // aligned to its first pass); else the first of the model lines in between, which is
    // the Jinja that produced it; else the line before.
    let before = pairs.iter().rev().find(|(_, t)| *t < at).copied();
    let after = pairs.iter().find(|(_, t)| *t > at).copied();
    let lo = before.map_or(0, |(m, _)| m);
    let hi = after.map_or(model.len() - 1, |(m, _)| m);
    if let Some(m) = (lo..=hi.min(model.len() - 1)).find(|m| weight(model[*m], target[at]) > 1) {
        return Some(m);
    }
    match (before, after) {
        (Some((mb, _)), Some((ma, _))) if ma > mb + 1 => Some(mb + 1),
        (Some((mb, _)), _) => Some(mb),
        (None, Some((ma, _))) if ma > 0 => Some(0),
        (None, Some((ma, _))) => Some(ma),
        (None, None) => None,
    }
}

/// A weighted longest common subsequence of lines: (model line, target line) pairs in
/// increasing order of both.
fn align(model: &[&str], target: &[&str]) -> Vec<(usize, usize)> {
    let (n, m) = (model.len(), target.len());
    let width = m + 1;
    let mut score = vec![0u16; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            let w = weight(model[i], target[j]);
            let take = if w > 0 {
                score[(i + 1) * width + j + 1].saturating_add(w)
            } else {
                0
            };
            let skip = score[(i + 1) * width + j].max(score[i * width + j + 1]);
            score[i * width + j] = take.max(skip);
        }
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        let w = weight(model[i], target[j]);
        if w > 0 && score[i * width + j] == score[(i + 1) * width + j + 1].saturating_add(w) {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if score[(i + 1) * width + j] >= score[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// The error text with a last line saying where `LINE n` is in the model's file, for the
/// merge request and the fixer.
pub fn annotate_error(message: &str, location: &ErrorLocation, model_path: &str) -> String {
    let place = if location.model_line > 0 {
        let path = if model_path.is_empty() {
            "the model"
        } else {
            model_path
        };
        let compiled = if location.compiled_line > 0 {
            format!(" (line {} of the compiled SQL)", location.compiled_line)
        } else {
            String::new()
        };
        format!(
            "line {} of {path}{compiled}: {}",
            location.model_line,
            location.model_line_text.trim()
        )
    } else if location.compiled_line > 0 {
        format!("line {} of the compiled SQL", location.compiled_line)
    } else {
        return message.to_owned();
    };
    format!(
        "{message}\n[dbt-ops] LINE {} counts the statement dbt executed; it is {place}",
        location.statement_line
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the real `json_log_misspelt_column` fixture (dbt 1.11.16, dbt-duckdb 1.11.1):
    /// the statement as the JSON log's `SQLQuery` recorded it, abridged after the error.
    const STATEMENT: &str = "/* {\"app\": \"dbt\", \"node_id\": \"model.coffee_shop.stg_orders\"} */\n\n  \n  create view \"coffee_shop\".\"main\".\"stg_orders__dbt_tmp\" as (\n    select\n    id as order_id,\n    custmer_id,\n    store_id\nfrom \"coffee_shop\".\"main\".\"raw_orders\"\n  );";
    const MODEL: &str = "select\n    id as order_id,\n    custmer_id,\n    store_id\nfrom {{ ref('raw_orders') }}\n";
    const COMPILED: &str = "select\n    id as order_id,\n    custmer_id,\n    store_id\nfrom \"coffee_shop\".\"main\".\"raw_orders\"";
    const MESSAGE: &str = "Runtime Error in model stg_orders (models/staging/stg_orders.sql)\n  Binder Error: Referenced column \"custmer_id\" not found in FROM clause!\n  \n  LINE 7:     custmer_id,\n              ^^^^^^^^^^";

    #[test]
    fn the_line_reference_is_read() {
        assert_eq!(line_reference(MESSAGE), Some((7, "custmer_id,".to_owned())));
        // Postgres elides long lines.
        assert_eq!(
            line_reference(
                "ERROR:  column \"x\" does not exist\nLINE 1: ...ect x from t where y = 1\n               ^"
            ),
            Some((1, "ect x from t where y = 1".to_owned()))
        );
        assert_eq!(line_reference("no line here"), None);
    }

    #[test]
    fn the_executed_statement_maps_exactly() {
        let loc = locate(MESSAGE, MODEL, COMPILED, Some(STATEMENT)).unwrap();
        assert_eq!(loc.method, "executed_statement");
        assert_eq!(loc.statement_line, 7);
        assert_eq!(loc.compiled_line, 3);
        assert_eq!(loc.model_line, 3);
        assert_eq!(loc.model_line_text, "    custmer_id,");
    }

    #[test]
    fn without_a_statement_the_excerpt_is_found_in_the_compiled_sql() {
        let loc = locate(MESSAGE, MODEL, COMPILED, None).unwrap();
        assert_eq!(loc.method, "compiled_sql");
        assert_eq!((loc.compiled_line, loc.model_line), (3, 3));
        let loc = locate(MESSAGE, MODEL, "", None).unwrap();
        assert_eq!(loc.method, "line_text");
        assert_eq!((loc.compiled_line, loc.model_line), (0, 3));
    }

    #[test]
    fn a_statement_for_another_error_is_not_trusted() {
        let other = "select 1\nselect 2\nselect 3\nselect 4\nselect 5\nselect 6\nselect 7";
        let loc = locate(MESSAGE, MODEL, COMPILED, Some(other)).unwrap();
        assert_eq!(loc.method, "compiled_sql");
    }

    #[test]
    fn jinja_that_adds_lines_is_aligned_around() {
        // A `{% for %}` loop turns two model lines into four compiled ones.
        let model = "select\n    id,\n    {% for c in ['a', 'b'] %}\n    sum({{ c }}) as {{ c }}_total,\n    {% endfor %}\n    bad_col\nfrom {{ ref('t') }}";
        let compiled = "select\n    id,\n    \n    sum(a) as a_total,\n    \n    sum(b) as b_total,\n    \n    bad_col\nfrom \"db\".\"main\".\"t\"";
        let message = "Binder Error: Referenced column \"bad_col\" not found\nLINE 8:     bad_col";
        let loc = locate(message, model, compiled, None).unwrap();
        assert_eq!(loc.compiled_line, 8);
        assert_eq!(loc.model_line, 6);
        assert_eq!(loc.model_line_text, "    bad_col");
        // A line inside the loop maps to the loop's body line.
        let loc = locate("x\nLINE 6:     sum(b) as b_total,", model, compiled, None).unwrap();
        assert_eq!(loc.model_line, 4);
    }

    /// A real PostgreSQL text (`psql -c`, which sends the statement whole as psycopg2
    /// does, on a statement with dbt-postgres' view wrapper): `LINE 13` counts the comment
    /// and the `create view … as (` lines. (`psql -f` strips the leading comment and says
    /// `LINE 11`.)
    #[test]
    fn a_postgres_line_maps_back_too() {
        let statement = "/* {\"app\": \"dbt\", \"node_id\": \"model.shop.orders\"} */\n\n  create view \"test\".\"public\".\"orders__dbt_tmp\"\n    \n    \n  as (\n    with o as (\n    select 1 as order_id, 10 as amount\n)\n\nselect\n    o.order_id,\n    o.amout\nfrom o\n  );";
        let model = "with o as (\n    select 1 as order_id, 10 as amount\n)\n\nselect\n    o.order_id,\n    o.amout\nfrom o\n";
        let message = "Database Error in model orders (models/orders.sql)\n  column o.amout does not exist\n  LINE 13:     o.amout\n               ^\n  HINT:  Perhaps you meant to reference the column \"o.amount\".";
        let loc = locate(message, model, model, Some(statement)).unwrap();
        assert_eq!(loc.method, "executed_statement");
        assert_eq!(
            (loc.statement_line, loc.compiled_line, loc.model_line),
            (13, 7, 7)
        );
        let loc = locate(message, model, model, None).unwrap();
        assert_eq!((loc.compiled_line, loc.model_line), (7, 7));
    }

    #[test]
    fn jinja_lines_match_their_rendering() {
        assert!(jinja_matches(
            "from {{ ref('raw_orders') }} as o",
            "from \"coffee_shop\".\"main\".\"raw_orders\" as o"
        ));
        assert!(!jinja_matches("from {{ ref('a') }} as o", "from x as p"));
        assert!(!jinja_matches(
            "from {{ ref('orders') }}",
            "from \"coffee_shop\".\"main\".\"customers\""
        ));
        assert!(!jinja_matches("{% if true %}", ""));
    }

    #[test]
    fn the_annotation_names_the_model_line() {
        let loc = locate(MESSAGE, MODEL, COMPILED, Some(STATEMENT)).unwrap();
        let text = annotate_error(MESSAGE, &loc, "models/staging/stg_orders.sql");
        assert!(text.starts_with(MESSAGE));
        assert!(text.ends_with("[dbt-ops] LINE 7 counts the statement dbt executed; it is line 3 of models/staging/stg_orders.sql (line 3 of the compiled SQL): custmer_id,"), "{text}");
    }
}
