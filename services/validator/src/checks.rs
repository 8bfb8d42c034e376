//! In-process checks: cheap, certain refusals before any file is written or dbt starts.
//!
//! - [`check_jinja_delimiters`]: every `{{`, `{%` and `{#` is closed, and block tags
//!   (`if`, `for`, `macro`, …) are closed in order. dbt would say the same, seconds later.
//! - [`check_refs_kept`]: every `ref()` and `source()` of the original model is still in
//!   the fix, unless the incident's error was about it. A fix that drops a dependency
//!   "compiles" and silently changes what the model reads.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use dbtops_proto::v1;
use regex::Regex;

/// Block tags and the tag that closes each.
const BLOCK_TAGS: &[(&str, &str)] = &[
    ("if", "endif"),
    ("for", "endfor"),
    ("macro", "endmacro"),
    ("call", "endcall"),
    ("filter", "endfilter"),
    ("set", "endset"),
    ("block", "endblock"),
    ("with", "endwith"),
    ("autoescape", "endautoescape"),
    ("materialization", "endmaterialization"),
    ("test", "endtest"),
    ("snapshot", "endsnapshot"),
    ("docs", "enddocs"),
];

/// Tags valid only inside an open block.
const MIDDLE_TAGS: &[(&str, &[&str])] = &[("elif", &["if"]), ("else", &["if", "for"])];

/// Checks that the Jinja delimiters of `sql` balance.
///
/// `}}` outside Jinja is not an error: DuckDB struct literals (`{'a': {'b': 1}}`) end that
/// way. A stray `%}` or `#}` is, as no SQL writes those.
pub fn check_jinja_delimiters(sql: &str) -> Result<(), String> {
    let bytes = sql.as_bytes();
    let line_at = |position: usize| bytes[..position].iter().filter(|&&b| b == b'\n').count() + 1;
    let mut open_blocks: Vec<(&'static str, usize)> = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let pair = &bytes[i..i + 2];
        match pair {
            b"{#" => match find(bytes, i + 2, b"#}") {
                Some(end) => i = end + 2,
                None => return Err(format!("`{{#` on line {} is never closed", line_at(i))),
            },
            b"{{" | b"{%" => {
                let closer: &[u8] = if pair == b"{{" { b"}}" } else { b"%}" };
                let Some(end) = find_closer(bytes, i + 2, closer) else {
                    return Err(format!(
                        "`{}` on line {} is never closed with `{}`",
                        String::from_utf8_lossy(pair),
                        line_at(i),
                        String::from_utf8_lossy(closer)
                    ));
                };
                if pair == b"{%" {
                    let inner = String::from_utf8_lossy(&bytes[i + 2..end]);
                    let line = line_at(i);
                    let tag = tag_name(&inner);
                    if tag == "raw" {
                        // Everything up to `{% endraw %}` is output, not Jinja.
                        match find_endraw(sql, end + 2) {
                            Some(after) => {
                                i = after;
                                continue;
                            }
                            None => {
                                return Err(format!(
                                    "`{{% raw %}}` on line {line} is never closed with `{{% endraw %}}`"
                                ));
                            }
                        }
                    }
                    check_block_tag(&tag, &inner, line, &mut open_blocks)?;
                }
                i = end + 2;
            }
            b"%}" | b"#}" => {
                return Err(format!(
                    "`{}` on line {} closes nothing",
                    String::from_utf8_lossy(pair),
                    line_at(i)
                ));
            }
            _ => i += 1,
        }
    }
    match open_blocks.last() {
        Some((tag, line)) => Err(format!(
            "`{{% {tag} %}}` on line {line} is never closed with `{{% {} %}}`",
            closing_tag(tag)
        )),
        None => Ok(()),
    }
}

fn check_block_tag(
    tag: &str,
    inner: &str,
    line: usize,
    open_blocks: &mut Vec<(&'static str, usize)>,
) -> Result<(), String> {
    if let Some((opener, _)) = BLOCK_TAGS.iter().find(|(opener, _)| *opener == tag) {
        // `{% set x = … %}` is a statement; only `{% set x %}…{% endset %}` is a block.
        let is_block = *opener != "set" || !inner.contains('=');
        if is_block {
            open_blocks.push((opener, line));
        }
        return Ok(());
    }
    if let Some((opener, _)) = BLOCK_TAGS.iter().find(|(_, closer)| *closer == tag) {
        return match open_blocks.pop() {
            Some((open, _)) if open == *opener => Ok(()),
            Some((open, open_line)) => Err(format!(
                "`{{% {tag} %}}` on line {line} closes `{{% {open} %}}` from line {open_line}, which needs `{{% {} %}}`",
                closing_tag(open)
            )),
            None => Err(format!("`{{% {tag} %}}` on line {line} closes nothing")),
        };
    }
    if let Some((_, parents)) = MIDDLE_TAGS.iter().find(|(middle, _)| *middle == tag) {
        let inside = open_blocks
            .last()
            .is_some_and(|(open, _)| parents.contains(open));
        if !inside {
            return Err(format!(
                "`{{% {tag} %}}` on line {line} is outside any `{{% {} %}}`",
                parents.join(" %}` or `{% ")
            ));
        }
    }
    Ok(())
}

fn closing_tag(opener: &str) -> &'static str {
    BLOCK_TAGS
        .iter()
        .find(|(open, _)| *open == opener)
        .map(|(_, close)| *close)
        .unwrap_or("end")
}

/// The first word of a tag's body, without whitespace-control dashes.
fn tag_name(inner: &str) -> String {
    inner
        .trim_start_matches(['-', '+'])
        .trim_start()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|position| position + from)
}

/// The closer of a `{{`/`{%` block, skipping string literals inside it.
fn find_closer(bytes: &[u8], from: usize, closer: &[u8]) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut i = from;
    while i < bytes.len() {
        let byte = bytes[i];
        match quote {
            Some(_) if byte == b'\\' => {
                i += 2;
                continue;
            }
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'\'' || byte == b'"' => quote = Some(byte),
            None if bytes[i..].starts_with(closer) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The byte after `{% endraw %}`, searching from `from`.
fn find_endraw(sql: &str, from: usize) -> Option<usize> {
    static ENDRAW: OnceLock<Option<Regex>> = OnceLock::new();
    let pattern = ENDRAW
        .get_or_init(|| Regex::new(r"\{%-?\s*endraw\s*-?%\}").ok())
        .as_ref()?;
    pattern.find_at(sql, from).map(|found| found.end())
}

/// One dependency a model declares: `ref('name')`, `ref('package', 'name')` or
/// `source('source', 'table')`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependency {
    /// `ref(…)`: the last argument is the node's name.
    Ref {
        /// The package, when given.
        package: Option<String>,
        /// The node's name.
        name: String,
    },
    /// `source(source_name, table_name)`.
    Source {
        /// The source's name.
        source: String,
        /// The table's name.
        table: String,
    },
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ref {
                package: Some(package),
                name,
            } => write!(f, "ref('{package}', '{name}')"),
            Self::Ref {
                package: None,
                name,
            } => write!(f, "ref('{name}')"),
            Self::Source { source, table } => write!(f, "source('{source}', '{table}')"),
        }
    }
}

/// The `ref()` and `source()` calls of a model, Jinja comments left out. Calls with
/// computed arguments (`ref(name)`) are not literal and not listed.
pub fn dependencies(sql: &str) -> BTreeSet<Dependency> {
    static CALL: OnceLock<Option<Regex>> = OnceLock::new();
    static COMMENT: OnceLock<Option<Regex>> = OnceLock::new();
    let (Some(call), Some(comment)) = (
        CALL.get_or_init(|| {
            Regex::new(
                r#"\b(ref|source)\s*\(\s*(?:'([^']*)'|"([^"]*)")\s*(?:,\s*(?:'([^']*)'|"([^"]*)"))?"#,
            )
            .ok()
        }),
        COMMENT.get_or_init(|| Regex::new(r"(?s)\{#.*?#\}").ok()),
    ) else {
        return BTreeSet::new();
    };
    let without_comments = comment.replace_all(sql, "");
    call.captures_iter(&without_comments)
        .filter_map(|captures| {
            let function = captures.get(1)?.as_str();
            let first = captures.get(2).or(captures.get(3))?.as_str().to_owned();
            let second = captures
                .get(4)
                .or(captures.get(5))
                .map(|m| m.as_str().to_owned());
            Some(match (function, second) {
                ("ref", Some(name)) => Dependency::Ref {
                    package: Some(first),
                    name,
                },
                ("ref", None) => Dependency::Ref {
                    package: None,
                    name: first,
                },
                (_, Some(table)) => Dependency::Source {
                    source: first,
                    table,
                },
                // `source('x')` is not valid dbt; nothing to keep.
                (_, None) => return None,
            })
        })
        .collect()
}

/// Checks that the fix keeps every `ref()`/`source()` of the original, except those the
/// incident's error was about: a dependency the error message names, or — for an unknown
/// ref, relation or source — one that names no node (source) the project has.
pub fn check_refs_kept(
    original: &str,
    fixed: &str,
    error: Option<&v1::FailureError>,
    evidence: Option<&v1::Evidence>,
) -> Result<String, String> {
    if original.trim().is_empty() {
        return Ok("no original SQL in the evidence: nothing to compare".into());
    }
    let before = dependencies(original);
    let after = dependencies(fixed);
    let message = error
        .map(|error| error.message.to_ascii_lowercase())
        .unwrap_or_default();
    let class = error
        .and_then(|error| v1::ErrorClass::try_from(error.class).ok())
        .unwrap_or(v1::ErrorClass::Unspecified);
    let mut dropped = Vec::new();
    let mut excused = Vec::new();
    for dependency in before.difference(&after) {
        let named_in_error = match dependency {
            Dependency::Ref { name, .. } => mentions(&message, name),
            Dependency::Source { source, table } => {
                mentions(&message, table) || mentions(&message, source)
            }
        };
        let unknown_name = match dependency {
            Dependency::Ref { name, .. } => {
                matches!(
                    class,
                    v1::ErrorClass::BadRef | v1::ErrorClass::UnknownRelation
                ) && evidence.is_some_and(|evidence| {
                    !evidence
                        .project_node_names
                        .iter()
                        .any(|node| node.eq_ignore_ascii_case(name))
                })
            }
            Dependency::Source { source, table } => {
                matches!(
                    class,
                    v1::ErrorClass::UnknownSource | v1::ErrorClass::UnknownRelation
                ) && evidence.is_some_and(|evidence| {
                    !evidence.sources.iter().any(|known| {
                        known.source_name.eq_ignore_ascii_case(source)
                            && known.table_name.eq_ignore_ascii_case(table)
                    })
                })
            }
        };
        if named_in_error || unknown_name {
            excused.push(dependency.to_string());
        } else {
            dropped.push(dependency.to_string());
        }
    }
    if !dropped.is_empty() {
        return Err(format!(
            "the fix drops {} of the original model, which the error was not about: keep every ref() and source() the model had",
            dropped.join(", ")
        ));
    }
    let mut summary = format!("{} ref()/source() kept", before.len() - excused.len());
    if !excused.is_empty() {
        summary.push_str(&format!(
            "; replaced because the error was about them: {}",
            excused.join(", ")
        ));
    }
    Ok(summary)
}

/// Whether `name` appears in `message` as a whole word (case-insensitive; `message` is
/// already lower case).
fn mentions(message: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    message.match_indices(&name).any(|(start, _)| {
        let before = message[..start].chars().next_back();
        let after = message[start + name.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_jinja_passes() {
        let sql = "{%- set cats = ['a', 'b'] -%}\n{# a comment with {{ #}\nselect\n{%- for c in cats %}\n  {{ c }}{% if not loop.last %},{% endif %}\n{%- endfor %}\nfrom {{ ref('x') }} where y = '}}' and s = {'a': {'b': 1}}\n{% raw %}{{ not jinja {% endraw %}";
        assert_eq!(check_jinja_delimiters(sql), Ok(()));
    }

    #[test]
    fn unbalanced_jinja_is_named_with_its_line() {
        let cases = [
            (
                "select {{ ref('x') from y",
                "`{{` on line 1 is never closed",
            ),
            ("select 1\n{# note", "`{#` on line 2 is never closed"),
            ("select 1 %}", "`%}` on line 1 closes nothing"),
            (
                "{% for x in y %}\nselect 1",
                "`{% for %}` on line 1 is never closed with `{% endfor %}`",
            ),
            (
                "{% if a %}{% for b in c %}{% endif %}{% endfor %}",
                "`{% endif %}` on line 1 closes `{% for %}` from line 1",
            ),
            (
                "select 1 {% endif %}",
                "`{% endif %}` on line 1 closes nothing",
            ),
            ("{% else %}", "`{% else %}` on line 1 is outside any"),
            (
                "{% set x %}select 1",
                "`{% set %}` on line 1 is never closed",
            ),
        ];
        for (sql, expected) in cases {
            let error = check_jinja_delimiters(sql).unwrap_err();
            assert!(error.starts_with(expected), "{sql:?}: {error}");
        }
        // `{% set x = 1 %}` is a statement, not a block.
        assert_eq!(
            check_jinja_delimiters("{% set x = 1 %}select {{ x }}"),
            Ok(())
        );
    }

    #[test]
    fn dependencies_are_read_from_refs_and_sources_but_not_comments() {
        let sql = "-- depends_on: {{ ref('raw_a') }}\nselect * from {{ ref(\"pkg\", 'b') }} join {{ source('raw', 'c') }} join {{ ref('d', v=2) }}\n{# {{ ref('gone') }} #}";
        let found: Vec<String> = dependencies(sql).iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            vec![
                "ref('d')",
                "ref('raw_a')",
                "ref('pkg', 'b')",
                "source('raw', 'c')"
            ]
        );
    }

    fn error(class: v1::ErrorClass, message: &str) -> v1::FailureError {
        v1::FailureError {
            class: class as i32,
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_dropped_ref_is_refused_unless_the_error_was_about_it() {
        let original = "select * from {{ ref('stg_ordrs') }} join {{ ref('stg_products') }}";
        let fixed = "select * from {{ ref('stg_orders') }}";
        let unrelated = error(v1::ErrorClass::MissingColumn, "column x not found");
        let refusal = check_refs_kept(original, fixed, Some(&unrelated), None).unwrap_err();
        assert!(refusal.contains("ref('stg_ordrs')"), "{refusal}");
        assert!(refusal.contains("ref('stg_products')"), "{refusal}");

        let about_it = error(
            v1::ErrorClass::BadRef,
            "Model 'model.p.orders' depends on a node named 'stg_ordrs' which was not found",
        );
        let refusal = check_refs_kept(original, fixed, Some(&about_it), None).unwrap_err();
        assert!(!refusal.contains("stg_ordrs"), "{refusal}");
        assert!(refusal.contains("ref('stg_products')"), "{refusal}");

        let fixed_keeping = "select * from {{ ref('stg_orders') }} join {{ ref('stg_products') }}";
        let summary = check_refs_kept(original, fixed_keeping, Some(&about_it), None).unwrap();
        assert!(summary.contains("ref('stg_ordrs')"), "{summary}");
    }

    #[test]
    fn an_unknown_name_may_be_replaced_when_the_class_says_so() {
        let original = "select * from {{ source('raw', 'ordrs') }}";
        let fixed = "select * from {{ source('raw', 'orders') }}";
        let evidence = v1::Evidence {
            sources: vec![v1::SourceDefinition {
                source_name: "raw".into(),
                table_name: "orders".into(),
                columns: vec![],
            }],
            ..Default::default()
        };
        let vague = error(v1::ErrorClass::UnknownSource, "a source was not found");
        assert!(check_refs_kept(original, fixed, Some(&vague), Some(&evidence)).is_ok());
        let other = error(v1::ErrorClass::SqlSyntax, "syntax error");
        assert!(check_refs_kept(original, fixed, Some(&other), Some(&evidence)).is_err());
    }

    #[test]
    fn names_match_as_whole_words_only() {
        assert!(mentions("node named 'orders' was", "orders"));
        assert!(!mentions("node named 'stg_orders' was", "orders"));
        assert!(!mentions("node named 'orders_v2' was", "orders"));
    }
}
