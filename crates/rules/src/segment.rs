//! Splits a dbt model's raw text into byte ranges of SQL code, SQL string literals,
//! quoted identifiers, SQL comments and Jinja.
//!
//! Every rewrite a rule makes goes through this: a column is renamed only inside
//! [`SegmentKind::Code`] (or a quoted identifier), a `ref()` only inside Jinja
//! expressions and statements. Getting these boundaries wrong is how a deterministic
//! fix silently breaks a string constant or a comment, so the scanner is deliberately
//! small and conservative: when in doubt (an unterminated string, an unclosed Jinja
//! tag) the rest of the file is classified as *not* code.
//!
//! Two languages are interleaved. Jinja is rendered first, so a `{{` opens Jinja
//! wherever it appears — even inside a SQL string or comment — and the SQL state (inside
//! a string, inside a block comment…) carries across the Jinja segment. All delimiters
//! are ASCII, so scanning bytes keeps every range on a UTF-8 character boundary.

use std::ops::Range;

/// What a byte range of a model file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// Plain SQL: keywords, identifiers, operators, numbers, whitespace.
    Code,
    /// A delimited identifier, quotes included: `"Order Date"` or `` `order date` ``.
    /// A piece of one when Jinja interrupts it.
    QuotedIdentifier,
    /// A SQL string literal, quotes included: `'…'` or a dollar-quoted `$$…$$`.
    /// A piece of one when Jinja interrupts it.
    StringLiteral,
    /// A SQL comment, `-- …` (without the newline) or `/* … */`.
    Comment,
    /// A Jinja expression, delimiters included: `{{ … }}`.
    JinjaExpression,
    /// A Jinja statement, delimiters included: `{% … %}`.
    JinjaStatement,
    /// A Jinja comment, delimiters included: `{# … #}`.
    JinjaComment,
    /// A `{% raw %} … {% endraw %}` block, tags included: passed to SQL verbatim, but we
    /// leave it alone rather than lex SQL inside it.
    JinjaRaw,
}

impl SegmentKind {
    /// True for the three Jinja tag kinds and raw blocks.
    pub fn is_jinja(self) -> bool {
        matches!(
            self,
            SegmentKind::JinjaExpression
                | SegmentKind::JinjaStatement
                | SegmentKind::JinjaComment
                | SegmentKind::JinjaRaw
        )
    }
}

/// One classified byte range of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// What the range holds.
    pub kind: SegmentKind,
    /// Byte offsets into the text that was segmented.
    pub range: Range<usize>,
}

/// The SQL lexer's state, carried across Jinja segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqlState {
    Code,
    /// Inside `'…'`.
    String,
    /// Inside a delimited identifier closed by this byte (`"` or `` ` ``).
    QuotedIdentifier(u8),
    /// Inside `-- …` up to the newline.
    LineComment,
    /// Inside `/* … */`.
    BlockComment,
    /// Inside `$tag$ … $tag$`; the tag is the byte range of the opening delimiter.
    DollarString {
        tag_start: usize,
        tag_end: usize,
    },
}

impl SqlState {
    fn kind(self) -> SegmentKind {
        match self {
            SqlState::Code => SegmentKind::Code,
            SqlState::String | SqlState::DollarString { .. } => SegmentKind::StringLiteral,
            SqlState::QuotedIdentifier(_) => SegmentKind::QuotedIdentifier,
            SqlState::LineComment | SqlState::BlockComment => SegmentKind::Comment,
        }
    }
}

/// Classifies all of `text` into contiguous, non-empty segments in order.
///
/// The segments cover the input exactly: the end of one is the start of the next, the
/// first starts at 0 and the last ends at `text.len()`.
pub fn segment(text: &str) -> Vec<Segment> {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut state = SqlState::Code;
    // Start of the SQL run currently being accumulated in `state`.
    let mut run_start = 0;
    let mut i = 0;

    while i < bytes.len() {
        if let Some((kind, end)) = jinja_at(bytes, i) {
            push(&mut segments, state.kind(), run_start..i);
            push(&mut segments, kind, i..end);
            i = end;
            run_start = end;
            continue;
        }
        let b = bytes[i];
        match state {
            SqlState::Code => match b {
                b'\'' => {
                    push(&mut segments, SegmentKind::Code, run_start..i);
                    run_start = i;
                    state = SqlState::String;
                    i += 1;
                }
                b'"' | b'`' => {
                    push(&mut segments, SegmentKind::Code, run_start..i);
                    run_start = i;
                    state = SqlState::QuotedIdentifier(b);
                    i += 1;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    push(&mut segments, SegmentKind::Code, run_start..i);
                    run_start = i;
                    state = SqlState::LineComment;
                    i += 2;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    push(&mut segments, SegmentKind::Code, run_start..i);
                    run_start = i;
                    state = SqlState::BlockComment;
                    i += 2;
                }
                b'$' => match dollar_tag_at(bytes, i) {
                    Some(tag_end) => {
                        push(&mut segments, SegmentKind::Code, run_start..i);
                        run_start = i;
                        state = SqlState::DollarString {
                            tag_start: i,
                            tag_end,
                        };
                        i = tag_end;
                    }
                    None => i += 1,
                },
                _ => i += 1,
            },
            SqlState::String => {
                if b == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        // `''` is an escaped quote, not the end of the literal.
                        i += 2;
                    } else {
                        i += 1;
                        push(&mut segments, SegmentKind::StringLiteral, run_start..i);
                        run_start = i;
                        state = SqlState::Code;
                    }
                } else {
                    i += 1;
                }
            }
            SqlState::QuotedIdentifier(close) => {
                if b == close {
                    if bytes.get(i + 1) == Some(&close) {
                        i += 2;
                    } else {
                        i += 1;
                        push(&mut segments, SegmentKind::QuotedIdentifier, run_start..i);
                        run_start = i;
                        state = SqlState::Code;
                    }
                } else {
                    i += 1;
                }
            }
            SqlState::LineComment => {
                if b == b'\n' {
                    // The newline itself is code: it separates tokens.
                    push(&mut segments, SegmentKind::Comment, run_start..i);
                    run_start = i;
                    state = SqlState::Code;
                }
                i += 1;
            }
            SqlState::BlockComment => {
                if b == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    i += 2;
                    push(&mut segments, SegmentKind::Comment, run_start..i);
                    run_start = i;
                    state = SqlState::Code;
                } else {
                    i += 1;
                }
            }
            SqlState::DollarString { tag_start, tag_end } => {
                let tag = &bytes[tag_start..tag_end];
                if bytes[i..].starts_with(tag) {
                    i += tag.len();
                    push(&mut segments, SegmentKind::StringLiteral, run_start..i);
                    run_start = i;
                    state = SqlState::Code;
                } else {
                    i += 1;
                }
            }
        }
    }
    // Whatever is left keeps the state it was in: an unterminated string stays a string,
    // so nothing after a stray quote is ever treated as code.
    push(&mut segments, state.kind(), run_start..bytes.len());
    segments
}

/// Appends a segment unless it is empty; merges it into the previous one when both are
/// of the same kind and adjacent, so callers see one code run, not fragments.
fn push(segments: &mut Vec<Segment>, kind: SegmentKind, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    if let Some(last) = segments.last_mut() {
        // Only code merges: two adjacent string literals (`'a''b'` never reaches here,
        // but `'a' 'b'` is separated by code anyway) must stay distinct tokens, and a
        // quoted identifier split by Jinja must keep its pieces apart.
        if last.kind == kind && kind == SegmentKind::Code && last.range.end == range.start {
            last.range.end = range.end;
            return;
        }
    }
    segments.push(Segment { kind, range });
}

/// If a Jinja tag opens at `i`, its kind and the end offset (exclusive) of the tag — or
/// of the whole block for `{% raw %}`.
fn jinja_at(bytes: &[u8], i: usize) -> Option<(SegmentKind, usize)> {
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    match bytes.get(i + 1) {
        Some(b'{') => Some((
            SegmentKind::JinjaExpression,
            jinja_tag_end(bytes, i + 2, b'}'),
        )),
        Some(b'%') => {
            let end = jinja_tag_end(bytes, i + 2, b'%');
            if is_tag_named(&bytes[i..end], b"raw") {
                Some((SegmentKind::JinjaRaw, raw_block_end(bytes, end)))
            } else {
                Some((SegmentKind::JinjaStatement, end))
            }
        }
        Some(b'#') => Some((SegmentKind::JinjaComment, find(bytes, i + 2, b"#}"))),
        _ => None,
    }
}

/// End (exclusive) of a `{{ … }}` or `{% … %}` tag whose body starts at `from`, closed
/// by `close` followed by `}`. Jinja string literals inside the tag may contain the
/// closing delimiter, so they are skipped. An unclosed tag runs to the end of the text.
fn jinja_tag_end(bytes: &[u8], from: usize, close: u8) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => i = jinja_string_end(bytes, i + 1, quote),
            b if b == close && bytes.get(i + 1) == Some(&b'}') => return i + 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// End (exclusive) of a Jinja string literal whose body starts at `from`; backslash
/// escapes the next byte, as in Python.
pub(crate) fn jinja_string_end(bytes: &[u8], from: usize, quote: u8) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// True when the `{% … %}` tag's body (whitespace-control dashes and spaces trimmed) is
/// exactly `name`.
fn is_tag_named(tag: &[u8], name: &[u8]) -> bool {
    if tag.len() < 4 {
        return false;
    }
    let body = &tag[2..tag.len() - 2];
    let body = trim_ascii(body);
    let body = body.strip_prefix(b"-").unwrap_or(body);
    let body = body.strip_suffix(b"-").unwrap_or(body);
    trim_ascii(body) == name
}

fn trim_ascii(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if first.is_ascii_whitespace() {
            bytes = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = bytes {
        if last.is_ascii_whitespace() {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

/// End (exclusive) of the `{% endraw %}` tag closing a raw block whose body starts at
/// `from`; the end of the text when it is missing.
fn raw_block_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'{' && bytes.get(i + 1) == Some(&b'%') {
            let end = jinja_tag_end(bytes, i + 2, b'%');
            if is_tag_named(&bytes[i..end], b"endraw") {
                return end;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Offset just past the first `needle` at or after `from`, or the end of the text.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> usize {
    bytes
        .get(from..)
        .and_then(|rest| rest.windows(needle.len()).position(|w| w == needle))
        .map_or(bytes.len(), |pos| from + pos + needle.len())
}

/// If a dollar-quote delimiter (`$$` or `$tag$`) opens at `i`, the offset just past it.
/// `$1` (a positional parameter) and `a$b` (a `$` inside an identifier) are not quotes.
fn dollar_tag_at(bytes: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident_byte(bytes[i - 1]) {
        return None;
    }
    let mut j = i + 1;
    if let Some(first) = bytes.get(j) {
        if first.is_ascii_digit() {
            return None;
        }
    }
    while let Some(&b) = bytes.get(j) {
        if b == b'$' {
            return Some(j + 1);
        }
        if !(b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        j += 1;
    }
    None
}

/// A byte that can continue an unquoted SQL identifier. Non-ASCII bytes count, so a
/// UTF-8 letter is never split from its word.
pub(crate) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, text) pairs, the most readable form to assert on.
    fn kinds(text: &str) -> Vec<(SegmentKind, &str)> {
        let segments = segment(text);
        // The segments must tile the input exactly.
        let mut at = 0;
        for s in &segments {
            assert_eq!(s.range.start, at, "gap or overlap in {segments:?}");
            assert!(!s.range.is_empty());
            at = s.range.end;
        }
        assert_eq!(at, text.len());
        segments
            .iter()
            .map(|s| (s.kind, &text[s.range.clone()]))
            .collect()
    }

    use SegmentKind::*;

    #[test]
    fn empty_text_has_no_segments() {
        assert!(segment("").is_empty());
    }

    #[test]
    fn plain_sql_is_one_code_segment() {
        assert_eq!(
            kinds("select a, b from t"),
            vec![(Code, "select a, b from t")]
        );
    }

    #[test]
    fn strings_with_doubled_quotes() {
        assert_eq!(
            kinds("select 'it''s', x"),
            vec![(Code, "select "), (StringLiteral, "'it''s'"), (Code, ", x")]
        );
    }

    #[test]
    fn quoted_identifiers_double_quote_and_backtick() {
        assert_eq!(
            kinds(r#"select "Order ""Date""", `a b` from t"#),
            vec![
                (Code, "select "),
                (QuotedIdentifier, r#""Order ""Date""""#),
                (Code, ", "),
                (QuotedIdentifier, "`a b`"),
                (Code, " from t"),
            ]
        );
    }

    #[test]
    fn line_and_block_comments() {
        assert_eq!(
            kinds("a -- x 'y\nb /* c\n'd */ e"),
            vec![
                (Code, "a "),
                (Comment, "-- x 'y"),
                (Code, "\nb "),
                (Comment, "/* c\n'd */"),
                (Code, " e"),
            ]
        );
    }

    #[test]
    fn comment_markers_inside_strings_are_string() {
        assert_eq!(
            kinds("select '--not a comment', '/*'"),
            vec![
                (Code, "select "),
                (StringLiteral, "'--not a comment'"),
                (Code, ", "),
                (StringLiteral, "'/*'"),
            ]
        );
    }

    #[test]
    fn minus_and_division_are_code() {
        assert_eq!(kinds("a - b / c"), vec![(Code, "a - b / c")]);
    }

    #[test]
    fn dollar_quoted_strings() {
        assert_eq!(
            kinds("select $$it's$$, $fn$ a $$ b $fn$, $1, a$b"),
            vec![
                (Code, "select "),
                (StringLiteral, "$$it's$$"),
                (Code, ", "),
                (StringLiteral, "$fn$ a $$ b $fn$"),
                (Code, ", $1, a$b"),
            ]
        );
    }

    #[test]
    fn jinja_tags_of_each_kind() {
        assert_eq!(
            kinds("{% set x = 1 %}select {{ x }} {# note #}"),
            vec![
                (JinjaStatement, "{% set x = 1 %}"),
                (Code, "select "),
                (JinjaExpression, "{{ x }}"),
                (Code, " "),
                (JinjaComment, "{# note #}"),
            ]
        );
    }

    #[test]
    fn jinja_whitespace_control() {
        assert_eq!(
            kinds("{%- if a -%}x{{- y -}}"),
            vec![
                (JinjaStatement, "{%- if a -%}"),
                (Code, "x"),
                (JinjaExpression, "{{- y -}}"),
            ]
        );
    }

    #[test]
    fn jinja_strings_may_hold_closing_delimiters() {
        assert_eq!(
            kinds(r#"{{ "}}" ~ '%}' }} a {% set s = "%}" %} b"#),
            vec![
                (JinjaExpression, r#"{{ "}}" ~ '%}' }}"#),
                (Code, " a "),
                (JinjaStatement, r#"{% set s = "%}" %}"#),
                (Code, " b"),
            ]
        );
    }

    #[test]
    fn jinja_comment_ends_at_first_close_even_after_quotes() {
        // Jinja comments are not tokenised: a quote inside does not protect `#}`.
        assert_eq!(
            kinds("{# it's #} a"),
            vec![(JinjaComment, "{# it's #}"), (Code, " a")]
        );
    }

    #[test]
    fn jinja_inside_a_sql_string_keeps_the_string_state() {
        assert_eq!(
            kinds("where d > '{{ var(\"start\") }}' and x"),
            vec![
                (Code, "where d > "),
                (StringLiteral, "'"),
                (JinjaExpression, "{{ var(\"start\") }}"),
                (StringLiteral, "'"),
                (Code, " and x"),
            ]
        );
    }

    #[test]
    fn jinja_inside_a_sql_comment_is_still_jinja() {
        assert_eq!(
            kinds("-- {{ ref('a') }} x\ny"),
            vec![
                (Comment, "-- "),
                (JinjaExpression, "{{ ref('a') }}"),
                (Comment, " x"),
                (Code, "\ny"),
            ]
        );
    }

    #[test]
    fn quote_inside_jinja_does_not_open_a_sql_string() {
        assert_eq!(
            kinds("select {{ ref('a') }} as x"),
            vec![
                (Code, "select "),
                (JinjaExpression, "{{ ref('a') }}"),
                (Code, " as x"),
            ]
        );
    }

    #[test]
    fn raw_blocks_are_opaque() {
        assert_eq!(
            kinds("a {% raw %}{{ not jinja }} 'x{%- endraw -%} b"),
            vec![
                (Code, "a "),
                (JinjaRaw, "{% raw %}{{ not jinja }} 'x{%- endraw -%}"),
                (Code, " b"),
            ]
        );
    }

    #[test]
    fn unterminated_constructs_swallow_the_rest() {
        assert_eq!(
            kinds("select 'oops, x from t"),
            vec![(Code, "select "), (StringLiteral, "'oops, x from t")]
        );
        assert_eq!(
            kinds("select {{ x from t"),
            vec![(Code, "select "), (JinjaExpression, "{{ x from t")]
        );
        assert_eq!(kinds("a /* b"), vec![(Code, "a "), (Comment, "/* b")]);
        assert_eq!(kinds("a {# b"), vec![(Code, "a "), (JinjaComment, "{# b")]);
        assert_eq!(
            kinds("a {% raw %} b"),
            vec![(Code, "a "), (JinjaRaw, "{% raw %} b")]
        );
    }

    #[test]
    fn lone_braces_are_code() {
        assert_eq!(kinds("a { b } {"), vec![(Code, "a { b } {")]);
    }

    #[test]
    fn every_short_string_of_tricky_pieces_is_tiled_without_panicking() {
        // Exhaustive over all sequences of up to four pieces: every delimiter prefix,
        // unterminated construct and multi-byte character meets every other.
        const PIECES: &[&str] = &[
            "'", "\"", "`", "{", "}", "%", "#", "-", "/", "*", "$", "a", "\n", "é", "\\", "(",
        ];
        let mut stack = vec![String::new()];
        let mut checked = 0usize;
        while let Some(text) = stack.pop() {
            let segments = segment(&text);
            let mut at = 0;
            for s in &segments {
                assert_eq!(s.range.start, at, "{text:?}: {segments:?}");
                assert!(s.range.end > s.range.start, "{text:?}: {segments:?}");
                assert!(text.is_char_boundary(s.range.end), "{text:?}");
                at = s.range.end;
            }
            assert_eq!(at, text.len(), "{text:?}");
            checked += 1;
            let _ = crate::jinja_calls::find_calls(&text, &segments, "a");
            let _ = crate::rewrite::identifier_occurrences(&text, &segments, "a");
            if text.chars().count() < 4 {
                for piece in PIECES {
                    stack.push(format!("{text}{piece}"));
                }
            }
        }
        // 1 + 16 + 16² + 16³ + 16⁴ strings.
        assert_eq!(checked, 69_905);
    }

    #[test]
    fn non_ascii_text_keeps_char_boundaries() {
        let text = "select 'café' as naïve -- é\n";
        for s in segment(text) {
            assert!(text.is_char_boundary(s.range.start));
            assert!(text.is_char_boundary(s.range.end));
        }
    }
}
