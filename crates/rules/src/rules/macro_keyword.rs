//! A macro called with a keyword argument it does not take: the keyword renamed to the
//! parameter it meant.
//!
//! dbt (Jinja) says `macro 'dbt_macro__pence_to_pounds' takes no keyword argument
//! 'decimals'`. The macro's signature comes with the evidence
//! ([`RuleInput::macro_signatures`], read from the project's macro files), so the rule
//! knows which parameters the call has not passed yet, positionally or by keyword. The
//! keyword becomes the one of those it is clearly nearest to (a misspelling:
//! `precison=2`), or, when no name is near, the only one left (a synonym: `decimals=2`
//! for the one optional `precision`). Anything else — several parameters left and none
//! near, a macro whose signature is unknown, a keyword written in several ways — is left
//! to a person or the LLM. Only the keyword's characters change; its value stays.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

use crate::jinja_calls::find_calls;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::segment::{is_ident_byte, jinja_string_end, segment};
use crate::{RuleFix, RuleInput};

/// The rule's name.
pub const NAME: &str = "macro_keyword";

/// dbt's wording; Jinja names the macro `dbt_macro__<name>` (older versions: `<name>`).
const UNKNOWN_KEYWORD_PATTERN: &str = r"macro '(?:dbt_macro__)?(?P<macro>[A-Za-z_][A-Za-z0-9_]*)' takes no keyword argument '(?P<keyword>[A-Za-z_][A-Za-z0-9_]*)'";

/// The macro and the keyword of dbt's "takes no keyword argument" error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKeyword {
    /// The macro's name as the model calls it, e.g. `pence_to_pounds`.
    pub macro_name: String,
    /// The keyword it does not take, e.g. `decimals`.
    pub keyword: String,
}

/// Reads the macro and the keyword out of dbt's error text.
pub fn parse_unknown_keyword(message: &str) -> Option<UnknownKeyword> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, UNKNOWN_KEYWORD_PATTERN, message)?;
    Some(UnknownKeyword {
        macro_name: caps.name("macro")?.as_str().to_owned(),
        keyword: caps.name("keyword")?.as_str().to_owned(),
    })
}

/// One parameter of a macro's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroParameter {
    /// Its name.
    pub name: String,
    /// Whether it has a default value (`precision=2`).
    pub has_default: bool,
}

/// A macro's signature as written in its `{% macro %}` tag: `pence_to_pounds(column_name,
/// precision=2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroSignature {
    /// The macro's name.
    pub name: String,
    /// Its parameters, in order.
    pub parameters: Vec<MacroParameter>,
}

/// Parses `name(a, b=1, c='x, y')`; `None` for anything that is not a name followed by a
/// parenthesised parameter list, or a parameter that is not `name` or `name=default`.
pub fn parse_signature(signature: &str) -> Option<MacroSignature> {
    let signature = signature.trim();
    let open = signature.find('(')?;
    let name = signature[..open].trim();
    if name.is_empty() || !name.bytes().all(is_ident_byte) {
        return None;
    }
    let inner = signature[open + 1..].trim_end().strip_suffix(')')?;
    let mut parameters = Vec::new();
    for range in split_arguments(inner.as_bytes(), 0..inner.len())? {
        let text = inner[range].trim();
        if text.is_empty() {
            // `macro m()` or a trailing comma.
            continue;
        }
        let (param, has_default) = match text.split_once('=') {
            Some((param, _)) => (param.trim(), true),
            None => (text, false),
        };
        if param.is_empty() || !param.bytes().all(is_ident_byte) {
            return None;
        }
        parameters.push(MacroParameter {
            name: param.to_owned(),
            has_default,
        });
    }
    Some(MacroSignature {
        name: name.to_owned(),
        parameters,
    })
}

/// The byte ranges of the top-level, comma-separated items of `bytes[range]`: commas in
/// strings and inside brackets of any kind do not split. `None` when the brackets do not
/// balance or a string is not closed.
fn split_arguments(bytes: &[u8], range: Range<usize>) -> Option<Vec<Range<usize>>> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = range.start;
    let mut i = range.start;
    while i < range.end {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                let close = jinja_string_end(bytes, i + 1, quote);
                if close > range.end || bytes.get(close - 1) != Some(&quote) {
                    return None;
                }
                i = close;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                items.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return None;
    }
    items.push(start..range.end);
    Some(items)
}

/// What one call passes: how many positional arguments, and each keyword with the byte
/// range of its name in the model.
struct CallArguments {
    positional: usize,
    keywords: Vec<(String, Range<usize>)>,
}

/// The arguments of the call whose name ends at `name_end`, inside a tag ending at
/// `tag_end`; `None` when they cannot be read safely.
fn call_arguments(sql: &str, name_end: usize, tag_end: usize) -> Option<CallArguments> {
    let bytes = sql.as_bytes();
    let mut open = name_end;
    while open < tag_end && bytes[open].is_ascii_whitespace() {
        open += 1;
    }
    if bytes.get(open) != Some(&b'(') {
        return None;
    }
    let close = matching_parenthesis(bytes, open, tag_end)?;
    let mut arguments = CallArguments {
        positional: 0,
        keywords: Vec::new(),
    };
    for item in split_arguments(bytes, open + 1..close)? {
        let text = &sql[item.clone()];
        let leading = text.len() - text.trim_start().len();
        let start = item.start + leading;
        let mut end = start;
        while end < item.end && is_ident_byte(bytes[end]) {
            end += 1;
        }
        let mut after = end;
        while after < item.end && bytes[after].is_ascii_whitespace() {
            after += 1;
        }
        let is_keyword =
            end > start && bytes.get(after) == Some(&b'=') && bytes.get(after + 1) != Some(&b'=');
        if is_keyword {
            arguments
                .keywords
                .push((sql[start..end].to_owned(), start..end));
        } else if !text.trim().is_empty() {
            arguments.positional += 1;
        }
    }
    Some(arguments)
}

/// The `)` that closes the `(` at `open`, before `end`.
fn matching_parenthesis(bytes: &[u8], open: usize, end: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < end {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i = jinja_string_end(bytes, i + 1, quote);
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Renames a keyword argument the called macro does not take to the parameter it meant.
///
/// Fires only when dbt said `takes no keyword argument`, exactly one signature of that
/// macro came with the evidence and does not list the keyword, every call of the macro
/// in the model that passes the keyword can be read, and they all leave the same
/// parameters unpassed; then the keyword becomes the one of those that
/// [`nearest::choose`] picks, or the only one there is when no name is near.
pub fn macro_keyword(input: &RuleInput) -> Option<RuleFix> {
    let unknown = parse_unknown_keyword(input.error_message)?;
    let mut signatures = input
        .macro_signatures
        .iter()
        .filter_map(|s| parse_signature(s))
        .filter(|s| s.name == unknown.macro_name);
    let signature = signatures.next()?;
    // Two definitions (a project macro and a package's, or two packages'): which one
    // dbt called is not ours to guess.
    if signatures.next().is_some()
        || signature
            .parameters
            .iter()
            .any(|p| p.name == unknown.keyword)
    {
        return None;
    }

    let segments = segment(input.model_sql);
    let bytes = input.model_sql.as_bytes();
    let mut edits = Vec::new();
    let mut unpassed: Option<Vec<&str>> = None;
    for call in find_calls(input.model_sql, &segments, &unknown.macro_name) {
        let tag_end = segments
            .iter()
            .find(|s| s.range.contains(&call.name_range.start))?
            .range
            .end;
        let arguments = call_arguments(input.model_sql, call.name_range.end, tag_end)?;
        let Some((_, keyword_range)) = arguments
            .keywords
            .iter()
            .find(|(name, _)| *name == unknown.keyword)
        else {
            continue;
        };
        let left: Vec<&str> = signature
            .parameters
            .iter()
            .skip(arguments.positional)
            .map(|p| p.name.as_str())
            .filter(|p| !arguments.keywords.iter().any(|(name, _)| name == p))
            .collect();
        if unpassed.as_ref().is_some_and(|seen| *seen != left) {
            return None;
        }
        unpassed = Some(left);
        // An attribute call (`other_package.pence_to_pounds(`) may be another macro.
        if call
            .name_range
            .start
            .checked_sub(1)
            .is_some_and(|before| bytes[before] == b'.')
        {
            return None;
        }
        edits.push(keyword_range.clone());
    }
    let unpassed = unpassed?;
    let (parameter, confidence) = match nearest::choose(&unknown.keyword, unpassed.iter().copied())
    {
        Choice::Unique { best, runner_up } => (
            best.name,
            nearest::confidence(&unknown.keyword, &best, runner_up.as_ref()),
        ),
        // Nothing near by spelling: the keyword names the one parameter left.
        Choice::TooFar | Choice::NoCandidates if unpassed.len() == 1 => (unpassed[0], 0.6),
        _ => return None,
    };
    let edits: Vec<Edit> = edits
        .into_iter()
        .map(|range| Edit {
            range,
            replacement: parameter.to_owned(),
        })
        .collect();
    let fixed_sql = apply_edits(input.model_sql, &edits)?;
    let parameters: Vec<&str> = signature
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let explanation = format!(
        "`{}` takes no keyword argument `{}` (its parameters: {}); `{parameter}` is the one \
         the call had not passed{}. Renamed the keyword in `{}`; its value is unchanged.",
        unknown.macro_name,
        unknown.keyword,
        parameters.join(", "),
        if confidence > 0.6 {
            " and the nearest by spelling"
        } else {
            ""
        },
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
    use crate::ErrorClass;

    const MESSAGE: &str = "Compilation Error in model int_rental_payments (models/intermediate/int_rental_payments.sql)\n  macro 'dbt_macro__pence_to_pounds' takes no keyword argument 'decimals'";

    fn run(sql: &str, signatures: &[&str], message: &str) -> Option<RuleFix> {
        macro_keyword(&RuleInput {
            error_class: ErrorClass::JinjaCompilation,
            error_message: message,
            model_name: "int_rental_payments",
            model_sql: sql,
            macro_signatures: signatures,
            ..RuleInput::default()
        })
    }

    #[test]
    fn reads_dbt_wording() {
        assert_eq!(
            parse_unknown_keyword(MESSAGE),
            Some(UnknownKeyword {
                macro_name: "pence_to_pounds".into(),
                keyword: "decimals".into()
            })
        );
        assert_eq!(parse_unknown_keyword("'x' is undefined"), None);
    }

    #[test]
    fn signatures_with_defaults_holding_commas_and_brackets() {
        let s = parse_signature("m(a, b='x, y', c=[1, 2], d=f(1, 2))").unwrap();
        let names: Vec<(&str, bool)> = s
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.has_default))
            .collect();
        assert_eq!(names, [("a", false), ("b", true), ("c", true), ("d", true)]);
        assert_eq!(parse_signature("m()").unwrap().parameters, []);
        assert_eq!(parse_signature("m(a b)"), None);
        assert_eq!(parse_signature("m(a, (b)"), None);
    }

    #[test]
    fn the_one_parameter_left_takes_a_synonym() {
        let sql =
            "select\n    {{ pence_to_pounds('sum(amount_pence)', decimals=2) }} as paid\nfrom x";
        let fix = run(sql, &["pence_to_pounds(column_name, precision=2)"], MESSAGE).unwrap();
        assert_eq!(
            fix.fixed_sql,
            "select\n    {{ pence_to_pounds('sum(amount_pence)', precision=2) }} as paid\nfrom x"
        );
        assert!(fix.explanation.contains("precision"), "{}", fix.explanation);
    }

    #[test]
    fn a_misspelt_keyword_goes_to_the_nearest_of_several() {
        let message = "macro 'dbt_macro__money' takes no keyword argument 'precison'";
        let sql = "{{ money(column_name='amount', precison=3) }}";
        let fix = run(sql, &["money(column_name, scale=2, precision=2)"], message).unwrap();
        assert_eq!(
            fix.fixed_sql,
            "{{ money(column_name='amount', precision=3) }}"
        );
    }

    #[test]
    fn several_parameters_left_and_none_near_is_refused() {
        let message = "macro 'dbt_macro__money' takes no keyword argument 'decimals'";
        let sql = "{{ money('amount', decimals=3) }}";
        assert_eq!(
            run(sql, &["money(column_name, scale=2, precision=2)"], message),
            None
        );
    }

    #[test]
    fn unknown_or_doubly_defined_macros_are_refused() {
        let sql = "{{ pence_to_pounds('x', decimals=2) }}";
        assert_eq!(run(sql, &[], MESSAGE), None);
        assert_eq!(
            run(
                sql,
                &[
                    "pence_to_pounds(column_name, precision=2)",
                    "pence_to_pounds(column_name, scale=2)"
                ],
                MESSAGE
            ),
            None
        );
        // The signature does take it: the error is about something else.
        assert_eq!(
            run(sql, &["pence_to_pounds(column_name, decimals=2)"], MESSAGE),
            None
        );
    }

    #[test]
    fn every_call_passing_the_keyword_is_renamed_and_others_kept() {
        let sql = "{{ pence_to_pounds('a', decimals=2) }}, {{ pence_to_pounds('b') }}, {{ pence_to_pounds('c', decimals = 1) }} -- decimals=2";
        let fix = run(sql, &["pence_to_pounds(column_name, precision=2)"], MESSAGE).unwrap();
        assert_eq!(
            fix.fixed_sql,
            "{{ pence_to_pounds('a', precision=2) }}, {{ pence_to_pounds('b') }}, {{ pence_to_pounds('c', precision = 1) }} -- decimals=2"
        );
    }

    #[test]
    fn calls_leaving_different_parameters_are_refused() {
        let message = "macro 'dbt_macro__m' takes no keyword argument 'dec'";
        let sql = "{{ m('a', dec=2) }} {{ m('a', 'b', dec=2) }}";
        assert_eq!(run(sql, &["m(x, y=1, decimals=2)"], message), None);
    }

    #[test]
    fn a_comparison_is_not_a_keyword() {
        // `decimals == 2` is a positional expression: nothing to rename.
        let sql = "{{ pence_to_pounds('x', decimals == 2) }}";
        assert_eq!(
            run(sql, &["pence_to_pounds(column_name, precision=2)"], MESSAGE),
            None
        );
    }
}
