//! `undefined_macro`: the model calls a macro that does not exist (`{{ cents_to_dolars(…)
//! }}`), and exactly one of the project's own macros — or, for a plain slip, one of
//! dbt's built-ins — is clearly what was meant.

use std::sync::OnceLock;

use regex::Regex;

use crate::jinja_calls::find_calls;
use crate::nearest::{self, Choice};
use crate::rewrite::{apply_edits, Edit};
use crate::segment::segment;
use crate::{RuleFix, RuleInput};

use super::edits_phrase;

/// The rule's name.
pub(super) const NAME: &str = "undefined_macro";

/// dbt's wording (a Jinja `UndefinedError` during compilation), e.g. `Compilation Error
/// in model stg_products (models/staging/stg_products.sql)\n  'cents_to_dolars' is
/// undefined. This can happen when calling a macro that does not exist. …`.
const UNDEFINED_PATTERN: &str = r"'(?P<name>[A-Za-z_][A-Za-z0-9_]*)' is undefined";

/// Functions and macros dbt itself provides in a model's Jinja context. A call is
/// rewritten to one of these only when it is one edit away (`confg` → `config`): a
/// project macro with a near name is far more often what was meant.
pub const DBT_BUILTINS: &[&str] = &[
    "ref",
    "source",
    "var",
    "env_var",
    "config",
    "is_incremental",
    "this",
    "log",
    "print",
    "return",
    "run_query",
    "statement",
    "load_result",
    "adapter",
    "exceptions",
    "target",
    "modules",
    "fromjson",
    "tojson",
    "fromyaml",
    "toyaml",
    "local_md5",
    "zip",
    "set",
    "doc",
    "graph",
    "model",
    "invocation_id",
    "run_started_at",
];

/// Reads the undefined name out of dbt's "'x' is undefined" error.
pub fn parse_undefined_name(message: &str) -> Option<String> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let caps = crate::patterns::captures(&RE, UNDEFINED_PATTERN, message)?;
    Some(caps.name("name")?.as_str().to_owned())
}

/// Renames the calls of the undefined macro to the nearest macro name.
///
/// Fires only when dbt said `'<name>' is undefined`, the model calls `<name>(` inside
/// Jinja (not as an attribute such as `pkg.<name>(`; not in a Jinja string or comment),
/// `<name>` is no candidate itself, and [`nearest::choose`] picks exactly one candidate
/// among the project's macros and [`DBT_BUILTINS`] — a built-in only at one edit.
/// Only the name's characters change.
pub fn undefined_macro(input: &RuleInput) -> Option<RuleFix> {
    let name = parse_undefined_name(input.error_message)?;
    let candidates = input.project_macro_names.iter().copied().chain(
        DBT_BUILTINS
            .iter()
            .copied()
            .filter(|b| !input.project_macro_names.contains(b)),
    );
    let (best, runner_up) = match nearest::choose(&name, candidates) {
        Choice::Unique { best, runner_up } => (best, runner_up),
        _ => return None,
    };
    let builtin = !input.project_macro_names.contains(&best.name);
    if builtin && best.distance > 1 {
        return None;
    }

    let segments = segment(input.model_sql);
    let bytes = input.model_sql.as_bytes();
    let edits: Vec<Edit> = find_calls(input.model_sql, &segments, &name)
        .into_iter()
        .filter(|call| {
            call.name_range
                .start
                .checked_sub(1)
                .is_none_or(|before| bytes[before] != b'.')
        })
        .map(|call| Edit {
            range: call.name_range,
            replacement: best.name.to_owned(),
        })
        .collect();
    if edits.is_empty() {
        return None;
    }
    let fixed_sql = apply_edits(input.model_sql, &edits)?;
    let whose = if builtin {
        "dbt's built-in"
    } else {
        "the project's macro"
    };
    let calls = if edits.len() == 1 {
        "the call".to_owned()
    } else {
        format!("{} calls", edits.len())
    };
    let explanation = format!(
        "`{name}` is no macro dbt knows; the nearest is {whose} `{}` ({} away). Renamed {calls} \
         in `{}`.",
        best.name,
        edits_phrase(best.distance),
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: nearest::confidence(&name, &best, runner_up.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    const MESSAGE: &str =
        "'cents_to_dolars' is undefined. This can happen when calling a macro that does not exist.";

    fn run(sql: &str, macros: &[&str], message: &str) -> Option<RuleFix> {
        undefined_macro(&RuleInput {
            error_class: ErrorClass::UndefinedMacro,
            error_message: message,
            model_name: "m",
            model_sql: sql,
            project_macro_names: macros,
            macro_signatures: &[],
            ..RuleInput::default()
        })
    }

    #[test]
    fn pattern_compiles() {
        assert!(Regex::new(UNDEFINED_PATTERN).is_ok());
    }

    #[test]
    fn only_calls_in_jinja_are_renamed() {
        let sql = "select {{ cents_to_dolars('x') }} as a, {{ pkg.cents_to_dolars('y') }} as b, \
                   'cents_to_dolars(' as c -- cents_to_dolars(\n{# cents_to_dolars(z) #}";
        let fix = run(sql, &["cents_to_dollars"], MESSAGE).map(|f| f.fixed_sql);
        assert_eq!(
            fix.as_deref(),
            Some(
                "select {{ cents_to_dollars('x') }} as a, {{ pkg.cents_to_dolars('y') }} as b, \
                 'cents_to_dolars(' as c -- cents_to_dolars(\n{# cents_to_dolars(z) #}"
            )
        );
    }

    #[test]
    fn two_equally_near_macros_are_left_alone() {
        let sql = "select {{ cents_to_dolars('x') }}";
        assert_eq!(
            run(sql, &["cents_to_dollars", "cents_to_dolar"], MESSAGE),
            None
        );
    }

    #[test]
    fn builtins_only_for_a_one_edit_slip() {
        let confg = "{{ confg(materialized='table') }}\nselect 1";
        let fix = run(confg, &[], "'confg' is undefined").map(|f| f.fixed_sql);
        assert_eq!(
            fix.as_deref(),
            Some("{{ config(materialized='table') }}\nselect 1")
        );
        // Two edits from `source`, and no project macro near: no guess.
        assert_eq!(
            run("select {{ sorce_x('a') }}", &[], "'sorce_x' is undefined"),
            None
        );
    }

    #[test]
    fn a_name_that_is_not_called_is_left_alone() {
        assert_eq!(
            run(
                "select {{ cents_to_dolars }}",
                &["cents_to_dollars"],
                MESSAGE
            ),
            None
        );
    }
}
