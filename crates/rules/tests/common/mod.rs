//! The harness of the rule tests on real error texts: one failing model and dbt's words
//! for it, the fix a rule must propose, and what every fix must leave as it was.

#![allow(dead_code)]

use dbtops_rules::segment::{segment, SegmentKind};
use dbtops_rules::{propose_fix, ErrorClass, ParentColumns, RuleInput};

/// One real failure: the model as broken, and what dbt (or the warehouse) said.
pub struct Case {
    pub class: ErrorClass,
    pub adapter: &'static str,
    pub model: &'static str,
    pub message: &'static str,
    pub sql: &'static str,
    pub parents: &'static [ParentColumns<'static>],
}

impl Case {
    pub fn input(&self) -> RuleInput<'static> {
        RuleInput {
            error_class: self.class,
            error_message: self.message,
            model_name: self.model,
            model_sql: self.sql,
            parents: self.parents,
            adapter: self.adapter,
            ..RuleInput::default()
        }
    }

    /// The rule `rule` fixes the model to exactly `expected`, names the model in its
    /// explanation, keeps the model's Jinja and string literals as [`literals_kept`]
    /// allows for that rule, and does not propose the same fix again once it was
    /// rejected.
    pub fn fixes_to(&self, rule: &str, expected: &str) {
        let input = self.input();
        let Some(fix) = propose_fix(&input) else {
            panic!("no fix for {:?}", self.message);
        };
        assert_eq!(fix.rule, rule, "{}", fix.explanation);
        assert_eq!(fix.fixed_sql, expected, "{}", fix.explanation);
        assert!(
            fix.explanation.contains(self.model),
            "the explanation names the model: {}",
            fix.explanation
        );
        assert!((0.5..=0.95).contains(&fix.confidence), "{}", fix.confidence);
        jinja_kept(rule, self.sql, &fix.fixed_sql);
        literals_kept(rule, self.sql, &fix.fixed_sql);
        let rejected = [expected];
        let again = RuleInput {
            rejected_sql: &rejected,
            ..input
        };
        assert_eq!(propose_fix(&again), None, "a rejected fix came back");
    }

    /// No rule fires.
    pub fn refused(&self) {
        assert_eq!(propose_fix(&self.input()), None);
    }
}

/// The model's Jinja is untouched; closing a block is the one fix that adds Jinja: the
/// end tag, nothing else.
fn jinja_kept(rule: &str, before: &str, after: &str) {
    let jinja = |sql| pieces(sql, SegmentKind::is_jinja);
    if rule == "unclosed_block" {
        let fixed = jinja(after);
        let added: Vec<&str> = fixed
            .iter()
            .filter(|p| p.contains("endif") || p.contains("endfor"))
            .copied()
            .collect();
        assert_eq!(added.len(), 1, "{fixed:?}");
        let rest: Vec<&str> = fixed.into_iter().filter(|p| *p != added[0]).collect();
        assert_eq!(rest, jinja(before), "Jinja changed");
    } else {
        assert_eq!(jinja(before), jinja(after), "Jinja changed");
    }
}

/// The string literals stay as they were, in order, except where a rule's fix changes
/// them by design: translated date formats (`unknown_function`), a GROUP BY that copies a
/// literal of its select list, a double-quoted value that becomes a literal or an alias
/// replaced by an expression holding one (only new literals), and conditions moved to
/// another clause (the same literals, in another order).
fn literals_kept(rule: &str, before: &str, after: &str) {
    let literals = |sql| pieces(sql, |kind| kind == SegmentKind::StringLiteral);
    let (before, after) = (literals(before), literals(after));
    match rule {
        "unknown_function" => {}
        "missing_group_by" => {
            assert!(after.iter().all(|a| before.contains(a)), "a new literal");
        }
        "double_quoted_string" | "alias_in_where" => {
            assert!(before.iter().all(|b| after.contains(b)), "a literal lost");
        }
        "aggregate_in_where" | "window_in_where" => {
            let (mut before, mut after) = (before, after);
            before.sort_unstable();
            after.sort_unstable();
            assert_eq!(before, after, "a string literal changed");
        }
        _ => assert_eq!(before, after, "a string literal changed"),
    }
}

/// The texts of the segments of the kinds `keep` selects, in order.
pub fn pieces(sql: &str, keep: impl Fn(SegmentKind) -> bool) -> Vec<&str> {
    segment(sql)
        .into_iter()
        .filter(|s| keep(s.kind))
        .map(|s| &sql[s.range])
        .collect()
}
