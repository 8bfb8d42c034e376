//! What a fixed model's SQL may contain: one query, no statements that create, change,
//! drop or grant anything, and no new Jinja that runs SQL on its own.
//!
//! The check works in two layers, like dbt itself. First the Jinja layer: `{# … #}`,
//! `{% … %}` and `{{ … }}` are blanked out (byte for byte, newlines kept, so line numbers
//! stay right), except the contents of `{% raw %}` blocks, which Jinja emits verbatim.
//! Then the SQL layer: comments, string literals and quoted identifiers are skipped and
//! the first word of each statement is looked at.
//!
//! SQL dialects disagree on how literals and comments end (backslash escapes, `#`
//! comments, nested `/* */`, `$$` quoting, MySQL's executable `/*! */`). A text that one
//! dialect reads as a comment another may execute, so the SQL layer runs once per
//! combination and refuses when any reading finds a forbidden statement.

use std::sync::OnceLock;

use crate::GuardrailError;

/// Statement keywords refused where a statement starts: at the beginning, after `;`, and
/// also after `(` or `)`, which is where data-modifying CTEs (`with d as (delete …)`,
/// `with x as (…) insert …`) put them. None of these is a plausible column name in a
/// valid query there.
const FORBIDDEN_ANYWHERE_A_STATEMENT_STARTS: &[&str] = &[
    "create", "drop", "alter", "truncate", "insert", "update", "delete", "merge", "grant", "revoke",
];

/// Further statements with side effects (files, extensions, sessions, transactions,
/// stages, procedures), refused only at the very start of a statement: several are common
/// column names (`comment`, `load`, `set`), so they are not refused after a parenthesis.
const FORBIDDEN_AT_TOP_LEVEL: &[&str] = &[
    "copy",
    "unload",
    "attach",
    "detach",
    "install",
    "load",
    "force",
    "call",
    "execute",
    "exec",
    "prepare",
    "pragma",
    "set",
    "reset",
    "use",
    "vacuum",
    "analyze",
    "explain",
    "export",
    "import",
    "comment",
    "upsert",
    "replace",
    "undrop",
    "rename",
    "refresh",
    "lock",
    "begin",
    "start",
    "commit",
    "rollback",
    "savepoint",
    "checkpoint",
    "put",
    "get",
    "remove",
    "do",
    "declare",
];

/// Refuses empty (whitespace-only) SQL, SQL over `max_bytes`, SQL with a NUL byte, and
/// SQL that contains a statement creating, changing, dropping or granting anything
/// (create/drop/alter/truncate/insert/update/delete/merge/grant/revoke and other
/// side-effecting statements) outside of Jinja, comments, string literals and quoted
/// identifiers.
///
/// A keyword followed by `(` is a function call (`truncate(x, 2)`, `replace(a, 'b', 'c')`)
/// and allowed. Jinja output is not evaluated: check the compiled SQL too where it exists.
pub fn check_sql_content(fixed_sql: &str, max_bytes: usize) -> Result<(), GuardrailError> {
    // The raw text, not the Jinja-masked SQL: a model that is one macro call is no query
    // to this check, but it is not empty.
    if fixed_sql.trim().is_empty() {
        return Err(GuardrailError::EmptySql);
    }
    if fixed_sql.len() > max_bytes {
        return Err(GuardrailError::SqlTooLarge {
            bytes: fixed_sql.len(),
            max_bytes,
        });
    }
    if let Some(position) = fixed_sql.bytes().position(|b| b == 0) {
        return Err(GuardrailError::SqlContainsNul {
            line: line_of(fixed_sql.as_bytes(), position),
        });
    }
    let masked = mask_jinja(fixed_sql.as_bytes()).sql;
    for flags in 0u8..32 {
        let dialect = Dialect {
            backslash_escapes: flags & 1 != 0,
            hash_comments: flags & 2 != 0,
            nested_comments: flags & 4 != 0,
            dollar_quotes: flags & 8 != 0,
            executable_comments: flags & 16 != 0,
        };
        if let Some((keyword, position)) = find_forbidden_statement(&masked, dialect) {
            return Err(GuardrailError::ForbiddenStatement {
                keyword,
                line: line_of(&masked, position),
            });
        }
    }
    Ok(())
}

/// [`SIDE_EFFECTING_JINJA`] compiled once: these case-insensitive patterns take far
/// longer to compile than to run, and every proposal is checked by three services.
#[allow(clippy::type_complexity)]
fn side_effect_patterns() -> &'static [(&'static str, &'static str, Result<regex::Regex, String>)] {
    static COMPILED: OnceLock<Vec<(&str, &str, Result<regex::Regex, String>)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        SIDE_EFFECTING_JINJA
            .iter()
            .map(|(construct, pattern)| {
                let compiled = regex::Regex::new(pattern).map_err(|error| error.to_string());
                (*construct, *pattern, compiled)
            })
            .collect()
    })
}

/// Side-effecting Jinja constructs: each runs SQL while dbt compiles or runs the model,
/// outside the model's own query (and `dbt compile` alone executes `run_query`).
const SIDE_EFFECTING_JINJA: &[(&str, &str)] = &[
    ("run_query", r"(?i)\brun_query\b"),
    ("statement", r"(?i)\bstatement\s*\("),
    ("adapter.execute", r"(?i)\badapter\s*\.\s*execute\b"),
    (
        "adapter.drop/truncate/rename/create_*",
        r"(?i)\badapter\s*\.\s*(?:drop|truncate|rename|create)_\w*",
    ),
    ("pre_hook/post_hook", r"(?i)\b(?:pre|post)[-_]hook\b"),
    ("sql_header", r"(?i)sql_header"),
];

/// Refuses a fix that adds a side-effecting Jinja construct — `run_query`, `statement(…)`,
/// `adapter.execute`, `adapter.drop_*`/`truncate_*`/`rename_*`/`create_*`, pre/post hooks,
/// `sql_header` — that the original model does not already use as often.
///
/// Existing uses are allowed because dbt projects use `run_query` legitimately (e.g. to
/// pivot over distinct values); a fix has no reason to add one. Only Jinja code is looked
/// at, not comments or `{% raw %}` contents.
pub fn check_jinja_side_effects(original: &str, fixed: &str) -> Result<(), GuardrailError> {
    let original_code = mask_jinja(original.as_bytes()).code;
    let fixed_code = mask_jinja(fixed.as_bytes()).code;
    for (construct, pattern, compiled) in side_effect_patterns() {
        // The patterns are constants exercised by the tests; should one ever fail to
        // compile, refusing is the safe answer.
        let re = compiled.as_ref().map_err(|error| {
            GuardrailError::InvalidPolicy(format!("side-effect pattern {pattern:?}: {error}"))
        })?;
        let original_count = re.find_iter(&original_code).count();
        let fixed_count = re.find_iter(&fixed_code).count();
        if fixed_count > original_count {
            return Err(GuardrailError::SideEffectingJinja {
                construct,
                original_count,
                fixed_count,
            });
        }
    }
    Ok(())
}

fn line_of(text: &[u8], position: usize) -> usize {
    text[..position].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The two layers of a Jinja-SQL template.
struct Masked {
    /// The template with every Jinja construct replaced by spaces (newlines kept), same
    /// length as the input; `{% raw %}` contents stay, as Jinja emits them verbatim.
    sql: Vec<u8>,
    /// The code inside `{{ … }}` and `{% … %}`, newline-separated.
    code: String,
}

fn mask_jinja(src: &[u8]) -> Masked {
    let mut sql = src.to_vec();
    let mut code = String::new();
    let blank = |sql: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut sql[from..to] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let mut i = 0;
    while i + 1 < src.len() {
        if src[i] != b'{' || !matches!(src[i + 1], b'#' | b'{' | b'%') {
            i += 1;
            continue;
        }
        if src[i + 1] == b'#' {
            let end = find(src, i + 2, b"#}").map_or(src.len(), |p| p + 2);
            blank(&mut sql, i, end);
            i = end;
            continue;
        }
        let closer: &[u8] = if src[i + 1] == b'{' { b"}}" } else { b"%}" };
        let (code_end, end) = match find_jinja_closer(src, i + 2, closer) {
            Some(p) => (p, p + 2),
            None => (src.len(), src.len()),
        };
        let inner = &src[i + 2..code_end];
        code.push_str(&String::from_utf8_lossy(inner));
        code.push('\n');
        blank(&mut sql, i, end);
        if src[i + 1] == b'%' && tag_name(inner) == b"raw" {
            // Everything up to `{% endraw %}` is template output, i.e. SQL.
            match find_endraw(src, end) {
                Some((content_end, tag_end)) => {
                    blank(&mut sql, content_end, tag_end);
                    i = tag_end;
                }
                None => i = src.len(),
            }
            continue;
        }
        i = end;
    }
    Masked { sql, code }
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|p| from + p)
}

/// Finds the end of a `{{ … }}` or `{% … %}` block, skipping Jinja string literals, which
/// may contain the closer (`{{ "}}" }}`).
fn find_jinja_closer(src: &[u8], from: usize, closer: &[u8]) -> Option<usize> {
    let mut i = from;
    while i < src.len() {
        match src[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < src.len() && src[i] != quote {
                    i += if src[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ if src[i..].starts_with(closer) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The first word of a `{% … %}` tag, without whitespace control (`{%- raw -%}`).
fn tag_name(inner: &[u8]) -> &[u8] {
    let start = inner
        .iter()
        .position(|b| !(b.is_ascii_whitespace() || *b == b'-' || *b == b'+'))
        .unwrap_or(inner.len());
    let rest = &inner[start..];
    let len = rest
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// Finds the `{% endraw %}` tag after `from`: (where the raw content ends, where the tag ends).
fn find_endraw(src: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut search = from;
    while let Some(open) = find(src, search, b"{%") {
        let close = find(src, open + 2, b"%}")?;
        if tag_name(&src[open + 2..close]) == b"endraw" {
            return Some((open, close + 2));
        }
        search = open + 2;
    }
    None
}

/// One reading of the SQL lexical rules that differ between dialects.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    /// `'it\'s'` (MySQL, BigQuery, Postgres `E''`) versus only `''` (standard, DuckDB).
    backslash_escapes: bool,
    /// `#` starts a line comment (MySQL, BigQuery).
    hash_comments: bool,
    /// `/* /* */ */` nests (Postgres, DuckDB, Snowflake) or ends at the first `*/`.
    nested_comments: bool,
    /// `$$ … $$` and `$tag$ … $tag$` are string literals (Postgres, DuckDB, Snowflake).
    dollar_quotes: bool,
    /// MySQL executes the contents of `/*! … */`.
    executable_comments: bool,
}

/// Scans for a forbidden statement keyword; returns it (lower case) and its position.
fn find_forbidden_statement(s: &[u8], dialect: Dialect) -> Option<(String, usize)> {
    // At the start of the text or after `;`.
    let mut top_level_start = true;
    // After `(` or `)`.
    let mut nested_start = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if s[i..].starts_with(b"--") || (dialect.hash_comments && c == b'#') {
            i = find(s, i, b"\n").unwrap_or(s.len());
            continue;
        }
        if dialect.executable_comments && s[i..].starts_with(b"/*!") {
            // The contents are code: skip the opener and an optional version number.
            i += 3;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        if dialect.executable_comments && s[i..].starts_with(b"*/") {
            i += 2;
            continue;
        }
        if s[i..].starts_with(b"/*") {
            i = skip_block_comment(s, i, dialect.nested_comments);
            continue;
        }
        match c {
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(s, i, c, dialect.backslash_escapes && c != b'`');
                top_level_start = false;
                nested_start = false;
                continue;
            }
            b'$' if dialect.dollar_quotes => {
                if let Some(end) = skip_dollar_quoted(s, i) {
                    i = end;
                    top_level_start = false;
                    nested_start = false;
                    continue;
                }
            }
            _ => {}
        }
        if is_word_start(c) {
            let start = i;
            while i < s.len() && is_word_byte(s[i]) {
                i += 1;
            }
            let word = String::from_utf8_lossy(&s[start..i]).to_ascii_lowercase();
            let forbidden = (top_level_start
                && (FORBIDDEN_ANYWHERE_A_STATEMENT_STARTS.contains(&word.as_str())
                    || FORBIDDEN_AT_TOP_LEVEL.contains(&word.as_str())))
                || (nested_start && FORBIDDEN_ANYWHERE_A_STATEMENT_STARTS.contains(&word.as_str()));
            let next = s[i..].iter().find(|b| !b.is_ascii_whitespace());
            if forbidden && next != Some(&b'(') {
                return Some((word, start));
            }
            top_level_start = false;
            nested_start = false;
            continue;
        }
        if c.is_ascii_digit() {
            // A number (`1`, `1e5`, `0x1f`) is an operand, never a statement keyword.
            while i < s.len() && is_word_byte(s[i]) {
                i += 1;
            }
            top_level_start = false;
            nested_start = false;
            continue;
        }
        top_level_start = c == b';';
        nested_start = c == b'(' || c == b')';
        i += 1;
    }
    None
}

fn is_word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Skips a block comment starting at `i`; an unterminated one runs to the end.
fn skip_block_comment(s: &[u8], mut i: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    while i < s.len() {
        if s[i..].starts_with(b"/*") && (nested || depth == 0) {
            depth += 1;
            i += 2;
        } else if s[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// Skips a literal or quoted identifier opened by `quote` at `i` (doubled quotes escape;
/// so does a backslash where the dialect says so); an unterminated one runs to the end.
fn skip_quoted(s: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    i += 1;
    while i < s.len() {
        if backslash_escapes && s[i] == b'\\' {
            i += 2;
        } else if s[i] == quote {
            if s.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// Skips `$tag$ … $tag$` starting at `i`, or returns `None` when `$` does not open one
/// (`$1` is a parameter).
fn skip_dollar_quoted(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if j < s.len() && (s[j].is_ascii_alphabetic() || s[j] == b'_') {
        while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
            j += 1;
        }
    }
    if s.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &s[i..=j];
    Some(find(s, j + 1, tag).map_or(s.len(), |end| end + tag.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn refused(sql: &str) -> Option<String> {
        match check_sql_content(sql, MAX) {
            Err(GuardrailError::ForbiddenStatement { keyword, .. }) => Some(keyword),
            Err(other) => panic!("unexpected error {other}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn plain_queries_pass() {
        for sql in [
            "select 1",
            "with a as (select 1 as x) select * from a;",
            "{{ config(materialized='table') }}\nselect id, comment, load, set from {{ ref('x') }}",
            "select truncate(amount, 2), replace(name, 'a', 'b'), insert(s, 1, 2, 'x') from t",
            "select t.update, t.\"delete\" from t",
            "select coalesce(comment, '') as c from t where x in (select 1)",
            "from t select a",
            "select $1, $$x$$ from t",
            "select count(*) filter (where a > 1) as n from t",
            "select 1e5 as x, 0x1f as y",
        ] {
            assert_eq!(refused(sql), None, "{sql}");
        }
    }

    #[test]
    fn statements_are_refused_where_they_start() {
        for (sql, keyword) in [
            ("drop table x", "drop"),
            ("select 1;\n DROP TABLE x", "drop"),
            (
                "select 1; /* c */ -- c\n grant select on t to public",
                "grant",
            ),
            (
                "with d as (delete from t returning *) select * from d",
                "delete",
            ),
            (
                "with x as (select 1) insert into t select * from x",
                "insert",
            ),
            ("select 1; copy t to '/tmp/x.csv'", "copy"),
            ("ATTACH 'other.duckdb'", "attach"),
            (
                "{{ config(materialized='table') }}\ncreate table x as select 1",
                "create",
            ),
            (
                "{% if true %}select 1;{% endif %} update t set a = 1",
                "update",
            ),
            ("{% raw %}merge into t using s on true{% endraw %}", "merge"),
        ] {
            assert_eq!(refused(sql).as_deref(), Some(keyword), "{sql}");
        }
    }

    #[test]
    fn the_same_words_inside_strings_comments_and_jinja_pass() {
        for sql in [
            "select 'drop table x; delete from y' as s",
            "select 'it''s; drop table x' as s",
            "-- drop table x\nselect 1",
            "/* ; truncate t */ select 1",
            "select \"drop\" from t",
            "select `delete` from t",
            "{# drop table x #}\nselect 1",
            "{% set note = 'drop table x; grant all' %}\nselect '{{ note }}'",
            "select {{ \"}}; drop table x\" }} from t",
            "select $$ drop table x $$",
            "select $tag$ delete from t $tag$",
        ] {
            assert_eq!(refused(sql), None, "{sql}");
        }
    }

    #[test]
    fn every_dialect_reading_is_checked() {
        // DuckDB ends the string at `\'`; MySQL would not. Either way something runs.
        assert_eq!(
            refused(r"select 'a\'; drop table x; --'").as_deref(),
            Some("drop")
        );
        // MySQL ends the string at `'` after `\'`, leaving the drop outside.
        assert_eq!(
            refused(r"select 'x\'; ' ; drop table y; -- '").as_deref(),
            Some("drop")
        );
        // MySQL ends the comment at the first `*/`.
        assert_eq!(
            refused("/* /* */ drop table x; */ select 1").as_deref(),
            Some("drop")
        );
        // `$$` quotes in DuckDB but is an identifier in MySQL, where the drop would run.
        assert_eq!(
            refused("select 1 as $$; drop table x; $$").as_deref(),
            Some("drop")
        );
        // MySQL executes `/*! … */`.
        assert_eq!(
            refused("select 1; /*!50000 drop table x */").as_deref(),
            Some("drop")
        );
    }

    #[test]
    fn line_numbers_survive_jinja_masking() {
        let sql = "{{ config(\n  materialized='table'\n) }}\nselect 1;\ndrop table x";
        match check_sql_content(sql, MAX) {
            Err(GuardrailError::ForbiddenStatement { line, .. }) => assert_eq!(line, 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_file_is_refused_but_a_model_that_is_one_macro_call_is_not() {
        for empty in ["", "  \n\t\n"] {
            assert!(
                matches!(check_sql_content(empty, MAX), Err(GuardrailError::EmptySql)),
                "{empty:?}"
            );
        }
        assert!(check_sql_content("{{ dbt_utils.union_relations(relations=[]) }}", MAX).is_ok());
    }

    #[test]
    fn size_and_nul_are_refused() {
        assert!(matches!(
            check_sql_content("select 1", 4),
            Err(GuardrailError::SqlTooLarge {
                bytes: 8,
                max_bytes: 4
            })
        ));
        assert!(matches!(
            check_sql_content("select 1\n\0", MAX),
            Err(GuardrailError::SqlContainsNul { line: 2 })
        ));
    }

    #[test]
    fn new_side_effecting_jinja_is_refused() {
        let original = "{% set rows = run_query('select distinct k from t') %}\nselect 1";
        assert!(check_jinja_side_effects(original, original).is_ok());
        let added = format!("{original}\n{{% do run_query('drop table t') %}}");
        assert!(matches!(
            check_jinja_side_effects(original, &added),
            Err(GuardrailError::SideEffectingJinja {
                construct: "run_query",
                ..
            })
        ));
        for fixed in [
            "{{ config(post_hook='grant select on {{ this }} to x') }} select 1",
            "{{ config({'pre-hook': 'delete from t'}) }} select 1",
            "{% call statement('x') %}select 1{% endcall %} select 1",
            "{% do adapter.drop_relation(this) %} select 1",
            "{% do adapter . execute('x') %} select 1",
            "{% call set_sql_header(config) %}set x = 1;{% endcall %} select 1",
        ] {
            assert!(
                check_jinja_side_effects("select 1", fixed).is_err(),
                "{fixed}"
            );
        }
        // Comments and raw blocks are not code.
        assert!(check_jinja_side_effects(
            "select 1",
            "{# run_query #}{% raw %}{{ run_query() }}{% endraw %} select 1"
        )
        .is_ok());
    }
}
