//! Finds calls such as `ref('x')` or `source('raw', 'orders')` inside the Jinja of a
//! model, with the byte range of each leading string argument, so a rule can rewrite one
//! argument and leave everything else — quotes, spacing, keyword arguments — as written.

use std::ops::Range;

use crate::segment::{is_ident_byte, jinja_string_end, Segment, SegmentKind};

/// One call of a Jinja function with its leading string-literal arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JinjaCall {
    /// Byte range of the function name in the model text.
    pub name_range: Range<usize>,
    /// The positional string-literal arguments, in order, up to the first argument that
    /// is not a plain string literal (a variable, a keyword argument like `v=2`, …).
    pub string_args: Vec<StringArg>,
}

/// A string-literal argument of a Jinja call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringArg {
    /// The text between the quotes, as written (escapes are not interpreted: the names
    /// dbt accepts here never contain any).
    pub value: String,
    /// Byte range of that text in the model, quotes excluded.
    pub value_range: Range<usize>,
}

/// Every call of `function` inside Jinja expressions and statements of `text`.
///
/// Jinja comments and raw blocks are skipped, as are occurrences of the name inside
/// Jinja string literals and attribute or longer names (`my_ref(`, `x.ref_name`). A
/// qualified call such as `builtins.ref(…)` does count: it is the same function.
pub fn find_calls(text: &str, segments: &[Segment], function: &str) -> Vec<JinjaCall> {
    let mut calls = Vec::new();
    for seg in segments {
        if matches!(
            seg.kind,
            SegmentKind::JinjaExpression | SegmentKind::JinjaStatement
        ) {
            find_calls_in_tag(text.as_bytes(), seg.range.clone(), function, &mut calls);
        }
    }
    calls
}

fn find_calls_in_tag(bytes: &[u8], range: Range<usize>, function: &str, out: &mut Vec<JinjaCall>) {
    let end = range.end;
    // Skip the opening delimiter; the closing one can never look like a call.
    let mut i = range.start + 2;
    while i < end {
        let b = bytes[i];
        if b == b'\'' || b == b'"' {
            i = jinja_string_end(bytes, i + 1, b).min(end);
            continue;
        }
        if is_ident_byte(b) {
            let start = i;
            while i < end && is_ident_byte(bytes[i]) {
                i += 1;
            }
            if &bytes[start..i] == function.as_bytes() {
                if let Some(call) = parse_call(bytes, start..i, end) {
                    out.push(call);
                }
            }
            continue;
        }
        i += 1;
    }
}

/// Parses `(` and the leading string arguments after a function name.
fn parse_call(bytes: &[u8], name_range: Range<usize>, end: usize) -> Option<JinjaCall> {
    let mut i = skip_whitespace(bytes, name_range.end, end);
    if bytes.get(i) != Some(&b'(') || i >= end {
        return None;
    }
    i += 1;
    let mut string_args = Vec::new();
    loop {
        i = skip_whitespace(bytes, i, end);
        let Some(&quote) = bytes.get(i).filter(|_| i < end) else {
            break;
        };
        if quote != b'\'' && quote != b'"' {
            break;
        }
        let close = jinja_string_end(bytes, i + 1, quote);
        if close > end || bytes.get(close - 1) != Some(&quote) {
            // Unterminated literal: not a call we can safely rewrite.
            break;
        }
        let value_range = i + 1..close - 1;
        let after = skip_whitespace(bytes, close, end);
        // `'a' ~ 'b'` or `'a' + x` is an expression, not a plain literal argument.
        let next = bytes.get(after).copied().filter(|_| after < end);
        if !matches!(next, Some(b',') | Some(b')')) {
            break;
        }
        string_args.push(StringArg {
            value: String::from_utf8_lossy(&bytes[value_range.clone()]).into_owned(),
            value_range,
        });
        if next == Some(b')') {
            break;
        }
        i = after + 1;
    }
    Some(JinjaCall {
        name_range,
        string_args,
    })
}

fn skip_whitespace(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment;

    fn args(text: &str, function: &str) -> Vec<Vec<String>> {
        find_calls(text, &segment(text), function)
            .into_iter()
            .map(|c| {
                for a in &c.string_args {
                    assert_eq!(&text[a.value_range.clone()], a.value);
                }
                c.string_args.into_iter().map(|a| a.value).collect()
            })
            .collect()
    }

    #[test]
    fn single_and_double_quotes_and_packages() {
        let text =
            r#"select * from {{ ref('a') }} join {{ref("b")}} join {{ ref( 'pkg' , "c" ) }}"#;
        assert_eq!(
            args(text, "ref"),
            vec![vec!["a"], vec!["b"], vec!["pkg", "c"]]
        );
    }

    #[test]
    fn keyword_arguments_end_the_string_arguments() {
        assert_eq!(
            args("{{ ref('a', v=2) }} {{ ref('p', 'b', version=1) }}", "ref"),
            vec![vec!["a"], vec!["p", "b"]]
        );
    }

    #[test]
    fn statements_count_comments_and_strings_do_not() {
        let text = "{% set r = ref('a') %}{# ref('b') #}{{ 'ref(\"c\")' }} -- ref('d')";
        assert_eq!(args(text, "ref"), vec![vec!["a"]]);
    }

    #[test]
    fn longer_names_and_non_calls_are_not_matches() {
        let text = "{{ my_ref('a') }} {{ refs('b') }} {{ ref }} {{ builtins.ref('c') }}";
        assert_eq!(args(text, "ref"), vec![vec!["c"]]);
    }

    #[test]
    fn concatenated_literals_are_not_plain_arguments() {
        assert_eq!(
            args("{{ ref('stg_' ~ x) }} {{ ref(name) }}", "ref"),
            vec![Vec::<String>::new(), vec![]]
        );
    }

    #[test]
    fn source_calls() {
        assert_eq!(
            args("from {{ source('raw', 'raw_orders') }}", "source"),
            vec![vec!["raw", "raw_orders"]]
        );
    }
}
