//! `misspelt_ref`: a `ref()` names a node the project does not have, and exactly one
//! existing node name is clearly what was meant.

use std::sync::OnceLock;

use regex::Regex;

use crate::jinja_calls::find_calls;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::segment::segment;
use crate::{RuleFix, RuleInput};

use super::edits_phrase;

/// The rule's name.
pub(super) const NAME: &str = "misspelt_ref";

/// dbt's wording (dbt-core `TargetNotFoundError`), e.g.
/// `Model 'model.coffee_shop.orders' (models/orders.sql) depends on a node named
/// 'stg_ordrs' in package or project 'coffee_shop' which was not found`. "… which is
/// disabled" is deliberately not matched: that node exists, its name is right.
const MISSING_REF_PATTERN: &str = r"depends on a node named '(?P<name>[^']+)' (?:with version '(?P<version>[^']+)' )?(?:in package (?:or project )?'(?P<package>[^']+)' )?which was not found";

/// The node a failing `ref()` asked for, as dbt reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRef {
    /// The node name in the `ref()`.
    pub name: String,
    /// The package or project argument, when the `ref()` had two.
    pub package: Option<String>,
    /// The `v=`/`version=` argument, when the `ref()` had one.
    pub version: Option<String>,
}

/// Reads dbt's "depends on a node named … which was not found" error.
pub fn parse_missing_ref(message: &str) -> Option<MissingRef> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, MISSING_REF_PATTERN, message)?;
    Some(MissingRef {
        name: caps.name("name")?.as_str().to_owned(),
        package: caps.name("package").map(|m| m.as_str().to_owned()),
        version: caps.name("version").map(|m| m.as_str().to_owned()),
    })
}

/// Rewrites the node name in the failing `ref()` calls to the nearest node name in the
/// project.
///
/// Only calls that match the error exactly are changed: `ref('x')` when dbt named no
/// package, `ref('pkg', 'x')` when it named `pkg`. Only the name's characters change;
/// quotes, spacing and keyword arguments stay as written. The model itself is never a
/// candidate (a model cannot ref itself).
pub fn misspelt_ref(input: &RuleInput) -> Option<RuleFix> {
    let missing = parse_missing_ref(input.error_message)?;
    let candidates = input
        .project_node_names
        .iter()
        .copied()
        .filter(|name| *name != input.model_name);
    let (best, runner_up) = match nearest::choose(&missing.name, candidates) {
        Choice::Unique { best, runner_up } => (best, runner_up),
        _ => return None,
    };

    let segments = segment(input.model_sql);
    let edits: Vec<Edit> = find_calls(input.model_sql, &segments, "ref")
        .into_iter()
        .filter_map(|call| {
            let name_arg = match (call.string_args.as_slice(), &missing.package) {
                ([name], None) => name,
                ([package, name], Some(expected)) if package.value == *expected => name,
                _ => return None,
            };
            (name_arg.value == missing.name).then(|| Edit {
                range: name_arg.value_range.clone(),
                replacement: best.name.to_owned(),
            })
        })
        .collect();
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(input.model_sql, &edits)?;

    let calls = if edits.len() == 1 {
        "the `ref()` call".to_owned()
    } else {
        format!("{} `ref()` calls", edits.len())
    };
    let explanation = format!(
        "`ref('{}')` names no node in the project. The nearest existing node is `{}` ({} away); \
         rewrote {calls} in `{}`.",
        missing.name,
        best.name,
        edits_phrase(best.distance),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: nearest::confidence(&missing.name, &best, runner_up.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_compiles() {
        assert!(Regex::new(MISSING_REF_PATTERN).is_ok());
    }

    #[test]
    fn version_and_package_are_read() {
        // The shape dbt-core's TargetNotFoundError builds with both optional parts.
        let m = parse_missing_ref(
            "Model 'model.p.a' (models/a.sql) depends on a node named 'b' with version '2' \
             in package or project 'p' which was not found",
        );
        assert_eq!(
            m,
            Some(MissingRef {
                name: "b".into(),
                package: Some("p".into()),
                version: Some("2".into()),
            })
        );
    }

    #[test]
    fn disabled_nodes_are_not_misspellings() {
        assert_eq!(
            parse_missing_ref(
                "Model 'model.p.a' (models/a.sql) depends on a node named 'b' which is disabled"
            ),
            None
        );
    }
}
