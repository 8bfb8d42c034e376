//! The checks every proposal passes before it leaves the fixer, whoever drafted it (a
//! rule or a model). A refusal's text is what the model is told when it gets a second
//! chance, so each one says what to keep or change.
//!
//! The guardrails crate holds the checks shared with the validator and delivery (path,
//! DDL/DML/GRANT, side-effecting Jinja, change size); what only makes sense with the
//! incident at hand lives here: refs, sources and Jinja blocks of the original are kept
//! unless the error is about them, no compiled table name replaces a ref, no redaction
//! marker is written back, no failed attempt is repeated.

use std::collections::HashMap;
use std::sync::OnceLock;

use dbtops_guardrails::{LineageScope, PathPolicy};
use dbtops_proto::v1;
use regex::Regex;

/// Largest proposal the fixer sends on, in bytes.
pub const MAX_SQL_BYTES: usize = 512 * 1024;

/// The configured limits the checks apply.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPolicy {
    /// Most of the original's lines a fix may change (delivery refuses more anyway).
    pub max_changed_share: f64,
    /// `fixer.fix_scope = "lineage"`: a proposal may edit the incident's ancestor models.
    pub lineage_enabled: bool,
}

/// The ancestor models a proposal for `incident` may edit: those the evidence lists, when
/// lineage-scoped fixes are enabled; none otherwise.
pub fn editable_ancestors<'a>(
    incident: &'a v1::FailureDetected,
    policy: &CheckPolicy,
) -> &'a [v1::AncestorModel] {
    match incident.evidence.as_ref() {
        Some(evidence) if policy.lineage_enabled => &evidence.ancestor_models,
        _ => &[],
    }
}

/// One ancestor model's new content: (path, fixed SQL).
pub type UpstreamEdit<'a> = (&'a str, &'a str);

/// Checks a proposal to write `fixed_sql` to `model_path` for `incident`.
pub fn check_proposal(
    model_path: &str,
    fixed_sql: &str,
    incident: &v1::FailureDetected,
    history: &[v1::AttemptRecord],
    policy: &CheckPolicy,
) -> Result<(), String> {
    check_proposal_with_upstream(model_path, fixed_sql, &[], incident, history, policy)
}

/// [`check_proposal`] for a lineage-scoped proposal that also rewrites ancestor models:
/// each edit is held to the failing model's rules (path, content, kept refs and Jinja,
/// no compiled names or redaction markers, change size), and the failing model may stay
/// as it is when an ancestor changes.
pub fn check_proposal_with_upstream(
    model_path: &str,
    fixed_sql: &str,
    upstream: &[UpstreamEdit<'_>],
    incident: &v1::FailureDetected,
    history: &[v1::AttemptRecord],
    policy: &CheckPolicy,
) -> Result<(), String> {
    let expected = incident
        .model
        .as_ref()
        .map(|model| model.path.as_str())
        .unwrap_or_default();
    let original = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    let error = incident.error.clone().unwrap_or_default();
    let path_policy = PathPolicy {
        model_paths: incident
            .project
            .as_ref()
            .map(|project| project.model_paths.clone())
            .filter(|paths| !paths.is_empty())
            .unwrap_or_else(|| vec!["models".into()]),
        sensitive_globs: Vec::new(),
    };
    dbtops_guardrails::check_model_path(model_path, expected, &path_policy)
        .map_err(|refusal| format!("{refusal}; model_path must be {expected:?}"))?;
    if fixed_sql.trim().is_empty() {
        return Err("fixed_sql is empty: return the complete content of the model file".into());
    }
    if fixed_sql.trim() == original.trim() && upstream.is_empty() {
        return Err("fixed_sql is the original model unchanged: it would fail the same way".into());
    }
    check_upstream(upstream, incident, &path_policy, policy)?;
    dbtops_guardrails::check_sql_content(fixed_sql, MAX_SQL_BYTES)
        .map_err(|refusal| format!("{refusal}; a model is one select statement"))?;
    dbtops_guardrails::check_jinja_side_effects(original, fixed_sql)
        .map_err(|refusal| refusal.to_string())?;
    check_kept_jinja(original, fixed_sql, &error)?;
    check_no_compiled_names(original, fixed_sql)?;
    let markers = |text: &str| text.to_ascii_lowercase().matches("redacted").count();
    if markers(fixed_sql) > markers(original) {
        return Err("fixed_sql contains a redaction marker: secrets were removed from the evidence, and a marker must never be written into the model file".into());
    }
    dbtops_guardrails::check_change_size(original, fixed_sql, policy.max_changed_share)
        .map_err(|refusal| format!("{refusal}; change only the lines the error is about"))?;
    let same_upstream = |proposal: &v1::FixProposal| {
        proposal.upstream_edits.len() == upstream.len()
            && upstream.iter().all(|(path, sql)| {
                proposal
                    .upstream_edits
                    .iter()
                    .any(|edit| edit.path == *path && edit.fixed_sql.trim() == sql.trim())
            })
    };
    if let Some(record) = history.iter().find(|record| {
        record.proposal.as_ref().is_some_and(|proposal| {
            proposal.fixed_sql.trim() == fixed_sql.trim() && same_upstream(proposal)
        })
    }) {
        return Err(format!(
            "fixed_sql repeats attempt {}, which failed validation",
            record.attempt
        ));
    }
    Ok(())
}

/// The upstream edits of a lineage-scoped proposal, each under the failing model's rules.
fn check_upstream(
    upstream: &[UpstreamEdit<'_>],
    incident: &v1::FailureDetected,
    path_policy: &PathPolicy,
    policy: &CheckPolicy,
) -> Result<(), String> {
    if upstream.is_empty() {
        return Ok(());
    }
    let ancestors = editable_ancestors(incident, policy);
    let scope = LineageScope {
        enabled: policy.lineage_enabled,
        ancestor_paths: ancestors.iter().map(|a| a.path.clone()).collect(),
    };
    let no_error = v1::FailureError::default();
    for (index, (path, fixed_sql)) in upstream.iter().enumerate() {
        if upstream[..index].iter().any(|(other, _)| other == path) {
            return Err(format!("upstream_edits names {path} twice"));
        }
        let original = ancestors
            .iter()
            .find(|ancestor| ancestor.path == *path)
            .map(|ancestor| ancestor.raw_sql.as_str())
            .unwrap_or_default();
        dbtops_guardrails::check_upstream_edit(
            path,
            fixed_sql,
            original,
            &scope,
            path_policy,
            None,
            MAX_SQL_BYTES,
        )
        .map_err(|refusal| format!("upstream edit of {path}: {refusal}"))?;
        if fixed_sql.trim() == original.trim() {
            return Err(format!(
                "upstream edit of {path} leaves it unchanged: leave it out of upstream_edits"
            ));
        }
        // The error is the failing model's: every ref, source and Jinja block of an
        // ancestor stays.
        check_kept_jinja(original, fixed_sql, &no_error)
            .and_then(|()| check_no_compiled_names(original, fixed_sql))
            .map_err(|refusal| format!("upstream edit of {path}: {refusal}"))?;
        let markers = |text: &str| text.to_ascii_lowercase().matches("redacted").count();
        if markers(fixed_sql) > markers(original) {
            return Err(format!(
                "upstream edit of {path} contains a redaction marker, which must never be written into a model file"
            ));
        }
        dbtops_guardrails::check_change_size(original, fixed_sql, policy.max_changed_share)
            .map_err(|refusal| {
                format!("upstream edit of {path}: {refusal}; change only what the fix needs")
            })?;
    }
    Ok(())
}

/// Each Jinja construct (`{{ … }}` or `{% … %}`, not comments) as (normalised, as
/// written). Normalised: whitespace and whitespace-control dashes dropped, double quotes
/// as single, so reformatting a block does not count as changing it.
fn jinja_constructs(sql: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let closer = match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') => "}}",
            (b'{', b'%') => "%}",
            (b'{', b'#') => "#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i + 2;
        let end = sql[start..].find(closer).map_or(sql.len(), |at| start + at);
        if closer != "#}" {
            let inner = sql[start..end]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .replace('"', "'");
            let normalised: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
            let written = &sql[i..(end + closer.len()).min(sql.len())];
            found.push((
                format!("{}{normalised}{}", &sql[i..start], closer),
                written.to_owned(),
            ));
        }
        i = (end + closer.len()).min(sql.len()).max(i + 2);
    }
    found
}

/// The same text with every Jinja construct blanked (lengths kept).
fn mask_jinja(sql: &str) -> String {
    let mut masked = sql.to_owned().into_bytes();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let closer: &[u8] = match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') => b"}}",
            (b'{', b'%') => b"%}",
            (b'{', b'#') => b"#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let end = bytes[i + 2..]
            .windows(2)
            .position(|window| window == closer)
            .map_or(bytes.len(), |at| i + 2 + at + 2);
        for byte in &mut masked[i..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        i = end;
    }
    String::from_utf8_lossy(&masked).into_owned()
}

/// Jinja words that say nothing about which construct an error is about.
const JINJA_WORDS: &[&str] = &[
    "ref",
    "source",
    "config",
    "var",
    "env_var",
    "this",
    "if",
    "endif",
    "else",
    "elif",
    "for",
    "endfor",
    "in",
    "set",
    "endset",
    "not",
    "and",
    "or",
    "is",
    "true",
    "false",
    "none",
    "macro",
    "endmacro",
    "call",
    "endcall",
    "materialized",
    "incremental",
    "is_incremental",
    "return",
    "do",
    "adapter",
    "target",
    "name",
    "schema",
];

/// Refuses a fix that drops or changes a `ref()`, `source()` or other Jinja block of the
/// original, unless the error is about it: its class is about Jinja (any block may
/// change), about relations (refs) or sources (sources), or the error text names one of
/// the block's identifiers.
fn check_kept_jinja(original: &str, fixed: &str, error: &v1::FailureError) -> Result<(), String> {
    let mut available: HashMap<String, usize> = HashMap::new();
    for (construct, _) in jinja_constructs(fixed) {
        *available.entry(construct).or_default() += 1;
    }
    let class = error.class();
    let message = error.message.to_ascii_lowercase();
    for (construct, written) in jinja_constructs(original) {
        if let Some(count) = available.get_mut(&construct).filter(|count| **count > 0) {
            *count -= 1;
            continue;
        }
        let construct = written;
        let lower = construct.to_ascii_lowercase();
        let about_class = match class {
            v1::ErrorClass::JinjaCompilation
            | v1::ErrorClass::UndefinedMacro
            | v1::ErrorClass::YamlConfig => true,
            v1::ErrorClass::BadRef | v1::ErrorClass::UnknownRelation => lower.contains("ref("),
            v1::ErrorClass::UnknownSource => lower.contains("source("),
            _ => false,
        };
        let named_in_error = identifier_words(&lower)
            .any(|word| !JINJA_WORDS.contains(&word) && contains_word(&message, word));
        if !about_class && !named_in_error {
            return Err(format!(
                "fixed_sql drops or changes `{construct}` of the original; keep every ref(), source() and Jinja block the error is not about, exactly as written"
            ));
        }
    }
    Ok(())
}

fn identifier_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.len() >= 3 && !word.chars().all(|c| c.is_ascii_digit()))
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        boundary(before) && boundary(after)
    })
}

/// `ref('x')` / `ref('pkg', 'x')` targets and `source('s', 't')` tables named in `sql`.
fn referenced_names(sql: &str) -> Vec<String> {
    static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        Regex::new(r#"(?i)\b(ref|source)\s*\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"])?"#).ok()
    });
    let Some(pattern) = pattern else {
        return Vec::new();
    };
    pattern
        .captures_iter(sql)
        .filter_map(|captures| {
            // The second argument, when there is one, is the model (package form) or the
            // table (source form): the name a compiled relation ends in.
            captures
                .get(3)
                .or_else(|| captures.get(2))
                .map(|name| name.as_str().to_ascii_lowercase())
        })
        .collect()
}

/// Refuses a fix that writes a schema-qualified name (`main.stg_orders`,
/// `"db"."main"."stg_orders"`) of a relation the original reaches through `ref()` or
/// `source()`: the compiled name pins one environment and hides the dependency from dbt.
fn check_no_compiled_names(original: &str, fixed: &str) -> Result<(), String> {
    // With unbalanced delimiters (the very error a Jinja fix repairs) the original cannot
    // be masked reliably: an unclosed `{{` would blank the rest of the file and make every
    // later name look new in the fix.
    let balanced = |sql: &str| {
        sql.matches("{{").count() == sql.matches("}}").count()
            && sql.matches("{%").count() == sql.matches("%}").count()
    };
    if !balanced(original) {
        return Ok(());
    }
    let original_sql = mask_jinja(original).to_ascii_lowercase();
    let fixed_sql = mask_jinja(fixed).to_ascii_lowercase();
    for name in referenced_names(original) {
        let Ok(qualified) = Regex::new(&format!(
            r#"(?:"[^"]+"|[a-z0-9_]+)\s*\.\s*(?:"{0}"|{0}\b)"#,
            regex::escape(&name)
        )) else {
            continue;
        };
        let count = |sql: &str| qualified.find_iter(sql).count();
        if count(&fixed_sql) > count(&original_sql) {
            return Err(format!(
                "fixed_sql names the relation {name:?} by its compiled, schema-qualified name; keep the original ref() or source() call"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "{{ config(materialized='table') }}\n\nwith orders as (\n    select * from {{ ref('stg_orders') }}\n),\n\npayments as (\n    select * from {{ source('shop', 'payments') }}\n)\n\nselect\n    orders.order_id,\n    orders.custmer_id,\n    payments.amount\nfrom orders\nleft join payments using (order_id)\n";

    fn incident(class: v1::ErrorClass, message: &str) -> v1::FailureDetected {
        v1::FailureDetected {
            model: Some(v1::ModelRef {
                name: "orders".into(),
                path: "models/orders.sql".into(),
                ..Default::default()
            }),
            error: Some(v1::FailureError {
                class: class as i32,
                message: message.into(),
                ..Default::default()
            }),
            evidence: Some(v1::Evidence {
                model_sql: ORIGINAL.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn check(fixed: &str, incident: &v1::FailureDetected) -> Result<(), String> {
        check_proposal(
            "models/orders.sql",
            fixed,
            incident,
            &[],
            &CheckPolicy {
                max_changed_share: 0.5,
                lineage_enabled: false,
            },
        )
    }

    fn missing_column() -> v1::FailureDetected {
        incident(
            v1::ErrorClass::MissingColumn,
            "Binder Error: Referenced column \"custmer_id\" not found in FROM clause!",
        )
    }

    #[test]
    fn a_minimal_fix_passes_and_reformatted_jinja_counts_as_kept() {
        let incident = missing_column();
        assert_eq!(
            check(&ORIGINAL.replace("custmer_id", "customer_id"), &incident),
            Ok(())
        );
        let reformatted = ORIGINAL
            .replace("custmer_id", "customer_id")
            .replace("{{ ref('stg_orders') }}", "{{ref(\"stg_orders\")}}");
        assert_eq!(check(&reformatted, &incident), Ok(()));
    }

    #[test]
    fn dropping_a_ref_or_writing_its_compiled_name_is_refused() {
        let incident = missing_column();
        let compiled = ORIGINAL
            .replace("custmer_id", "customer_id")
            .replace("{{ ref('stg_orders') }}", "\"dev\".\"main\".\"stg_orders\"");
        let refusal = check(&compiled, &incident).unwrap_err();
        assert!(refusal.contains("ref('stg_orders')"), "{refusal}");
        let config_dropped = ORIGINAL
            .replace("custmer_id", "customer_id")
            .replace("{{ config(materialized='table') }}\n", "");
        assert!(check(&config_dropped, &incident)
            .unwrap_err()
            .contains("config("));
        assert!(check_no_compiled_names(ORIGINAL, &compiled).is_err());
        assert!(check_no_compiled_names(
            ORIGINAL,
            &compiled.replace("\"dev\".\"main\".\"stg_orders\"", "main.stg_orders")
        )
        .is_err());
        assert!(
            check_no_compiled_names(ORIGINAL, "select stg_orders.stg_orders_id from x").is_ok()
        );
    }

    #[test]
    fn a_ref_the_error_is_about_may_change() {
        let bad_ref = incident(
            v1::ErrorClass::BadRef,
            "Model 'model.shop.orders' depends on a node named 'stg_ordrs' which was not found",
        );
        let fixed = ORIGINAL.replace("stg_orders", "stg_orders_v2");
        assert_eq!(check(&fixed, &bad_ref), Ok(()));
        let named = incident(
            v1::ErrorClass::Other,
            "relation payments: something about source shop.payments",
        );
        let fixed = ORIGINAL.replace(
            "source('shop', 'payments')",
            "source('shop', 'payments_v2')",
        );
        assert_eq!(check(&fixed, &named), Ok(()));
    }

    #[test]
    fn ddl_paths_size_markers_and_repeats_are_refused() {
        let incident = missing_column();
        let fixed = ORIGINAL.replace("custmer_id", "customer_id");
        assert!(check(&format!("drop table x;\n{fixed}"), &incident)
            .unwrap_err()
            .contains("drop"));
        assert!(check_proposal(
            "models/other.sql",
            &fixed,
            &incident,
            &[],
            &CheckPolicy {
                max_changed_share: 0.5,
                lineage_enabled: false,
            }
        )
        .is_err());
        assert!(check_proposal(
            "../models/orders.sql",
            &fixed,
            &incident,
            &[],
            &CheckPolicy {
                max_changed_share: 0.5,
                lineage_enabled: false,
            }
        )
        .is_err());
        assert!(check(ORIGINAL, &incident)
            .unwrap_err()
            .contains("unchanged"));
        assert!(check("  ", &incident).is_err());
        let rewritten = "{{ config(materialized='table') }}\nselect 1 as a from {{ ref('stg_orders') }} join {{ source('shop', 'payments') }} using (x)\n";
        let refusal = check(rewritten, &incident).unwrap_err();
        assert!(refusal.contains("change only the lines"), "{refusal}");
        let marked = fixed.replace("payments.amount", "payments.amount -- [REDACTED]");
        assert!(check(&marked, &incident).unwrap_err().contains("redaction"));
        let side_effect =
            fixed.replace("select\n", "select\n{% do run_query('delete from t') %}\n");
        assert!(check(&side_effect, &incident).is_err());
        let history = [v1::AttemptRecord {
            attempt: 1,
            proposal: Some(v1::FixProposal {
                fixed_sql: fixed.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let refusal = check_proposal(
            "models/orders.sql",
            &fixed,
            &incident,
            &history,
            &CheckPolicy {
                max_changed_share: 0.5,
                lineage_enabled: false,
            },
        )
        .unwrap_err();
        assert!(refusal.contains("repeats attempt 1"), "{refusal}");
    }

    #[test]
    fn closing_an_unclosed_expression_is_not_mistaken_for_compiled_names() {
        let original = "with orders as (\n    select * from {{ ref('orders')\n    where status = 'ok'\n)\nselect c.id, orders.total from customers c join orders on orders.id = c.id\n";
        let fixed = original.replace("{{ ref('orders')", "{{ ref('orders') }}");
        assert_eq!(check_no_compiled_names(original, &fixed), Ok(()));
        // Balanced originals are still checked.
        let balanced = "select * from {{ ref('orders') }}\n";
        assert!(check_no_compiled_names(balanced, "select * from main.orders\n").is_err());
    }

    #[test]
    fn jinja_constructs_are_found_and_comments_skipped() {
        let found: Vec<String> = jinja_constructs(
            "{#- note -#} {{- ref( \"a\" ) -}} {% if x %}y{% endif %} {{ unclosed",
        )
        .into_iter()
        .map(|(normalised, _)| normalised)
        .collect();
        assert_eq!(
            found,
            ["{{ref('a')}}", "{%ifx%}", "{%endif%}", "{{unclosed}}"]
        );
        assert_eq!(mask_jinja("a {{ b }} c"), format!("a{}c", " ".repeat(9)));
    }
}
