//! The rules, and the table [`RULES`] that [`crate::propose_fix`] walks.
//!
//! A rule is data: a name, the error classes it answers, and a plain function from the
//! input to an optional fix. Adding a rule is one module and one row here; the order of
//! the rows is the order in which rules are tried for a class.

mod misspelt_column;
mod misspelt_ref;
mod misspelt_source;

pub use misspelt_column::misspelt_column;
pub use misspelt_ref::{misspelt_ref, parse_missing_ref, MissingRef};
pub use misspelt_source::{misspelt_source, parse_missing_source, MissingSource};

use crate::{ErrorClass, RuleFix, RuleInput};

/// One deterministic rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The rule's name, also [`RuleFix::rule`]: `misspelt_column`, …
    pub name: &'static str,
    /// The error classes this rule is tried for.
    pub classes: &'static [ErrorClass],
    /// Proposes a fix, or `None` when the rule is not sure. Pure: no I/O.
    pub apply: fn(&RuleInput) -> Option<RuleFix>,
}

/// Every rule, in the order they are tried.
pub const RULES: &[Rule] = &[
    Rule {
        name: misspelt_column::NAME,
        classes: &[ErrorClass::MissingColumn],
        apply: misspelt_column,
    },
    Rule {
        name: misspelt_ref::NAME,
        // dbt reports a bad ref at parse time (`bad_ref`); a detector that only sees the
        // text may call it an unknown relation. The rule itself insists on dbt's
        // "depends on a node named" wording, so a warehouse "table does not exist" is
        // never rewritten as a ref.
        classes: &[ErrorClass::BadRef, ErrorClass::UnknownRelation],
        apply: misspelt_ref,
    },
    Rule {
        name: misspelt_source::NAME,
        classes: &[ErrorClass::UnknownSource, ErrorClass::UnknownRelation],
        apply: misspelt_source,
    },
];

/// The rules registered for `class`, in order.
pub fn rules_for(class: ErrorClass) -> impl Iterator<Item = &'static Rule> {
    RULES
        .iter()
        .filter(move |rule| rule.classes.contains(&class))
}

/// "1 edit" / "3 edits", for explanations.
fn edits_phrase(distance: usize) -> String {
    if distance == 1 {
        "1 edit".to_owned()
    } else {
        format!("{distance} edits")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_unique_and_match_their_fixes() {
        let mut names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }

    #[test]
    fn classes_select_rules() {
        let names = |class| rules_for(class).map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(ErrorClass::MissingColumn), vec!["misspelt_column"]);
        assert_eq!(names(ErrorClass::BadRef), vec!["misspelt_ref"]);
        assert_eq!(names(ErrorClass::UnknownSource), vec!["misspelt_source"]);
        assert_eq!(
            names(ErrorClass::UnknownRelation),
            vec!["misspelt_ref", "misspelt_source"]
        );
        assert!(names(ErrorClass::Connection).is_empty());
        assert!(names(ErrorClass::Other).is_empty());
    }
}
