//! `renamed_column`: the model selects a column its parent no longer has because the
//! parent renamed it, and exactly one of the parent's columns is plainly the new name.
//! The fix selects the new name under the old one (`c.full_name as customer_name`), so
//! the model's own output — what its children select — does not change.

use crate::column_errors::parse_missing_column;
use crate::relations::{relation_node, same_node};
use crate::rewrite::{apply_edits, identifier_occurrences, recase_like, Edit};
use crate::segment::segment;
use crate::structure::{from_relations, select_scopes, ClauseKind, SelectScope};
use crate::tokens::{tokenize, Token};
use crate::{nearest, ParentColumns, RuleFix, RuleInput};

use super::{column_ref, snippet};

/// The rule's name.
pub(super) const NAME: &str = "renamed_column";

/// How the new name relates to the old one.
///
/// Ordered from the strongest evidence to the weakest: when candidates of several kinds
/// exist, only the strongest kind counts, and it must have exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RenameKind {
    /// The old name's tokens, in order, plus one or two more: `customer_name` →
    /// `customer_full_name`, `order_date` → `order_date_utc`.
    Extended,
    /// A leading token that names the parent's own entity dropped: `customer_name` →
    /// `name` in `stg_customers`.
    EntityDropped,
    /// That entity token replaced by one descriptive word, the last token kept:
    /// `customer_name` → `full_name` in `stg_customers` (and `full` names no entity).
    EntityReplaced,
}

impl RenameKind {
    fn describe(self) -> &'static str {
        match self {
            RenameKind::Extended => "the new name is the old one with words added",
            RenameKind::EntityDropped => "the new name drops the entity prefix the parent's name already carries",
            RenameKind::EntityReplaced => "the new name replaces the entity prefix the parent's name already carries with a descriptive word",
        }
    }

    fn confidence(self) -> f64 {
        match self {
            RenameKind::Extended => 0.75,
            RenameKind::EntityDropped | RenameKind::EntityReplaced => 0.7,
        }
    }
}

fn name_tokens(name: &str) -> Vec<String> {
    name.to_lowercase()
        .split(|c: char| c == '_' || c == '.' || c == '-' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// True when `word` names the same thing as `noun`, singular or plural.
fn same_noun(word: &str, noun: &str) -> bool {
    word == noun
        || noun.strip_suffix('s') == Some(word)
        || noun.strip_suffix("es") == Some(word)
        || word.strip_suffix('s') == Some(noun)
        || (word.ends_with('y') && noun.strip_suffix("ies") == word.strip_suffix('y'))
}

/// True when `word` names an entity of `parent`: a word of the parent's own name
/// (`customer` for `stg_customers`).
fn names_parent(word: &str, parent: &ParentColumns<'_>) -> bool {
    let table = parent.name.rsplit('.').next().unwrap_or(parent.name);
    name_tokens(table).iter().any(|t| same_noun(word, t))
}

/// True when `word` names some entity the parent refers to: a word of its name, or the
/// head of one of its `…_id` columns (`store` for `store_id`).
fn names_an_entity(word: &str, parent: &ParentColumns<'_>) -> bool {
    names_parent(word, parent)
        || parent.columns.iter().any(|c| {
            let t = name_tokens(c);
            t.len() >= 2 && t.last().is_some_and(|l| l == "id") && same_noun(word, &t[0])
        })
}

/// True when `needle` appears in `hay` in order (not necessarily contiguously).
fn is_subsequence(needle: &[String], hay: &[String]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
}

/// How `new` could be the renamed `old` in `parent`, by token structure alone.
pub fn rename_kind(old: &str, new: &str, parent: &ParentColumns<'_>) -> Option<RenameKind> {
    let (m, c) = (name_tokens(old), name_tokens(new));
    if m.is_empty() || c.is_empty() || m == c {
        return None;
    }
    if c.len() > m.len() && c.len() - m.len() <= 2 && is_subsequence(&m, &c) {
        return Some(RenameKind::Extended);
    }
    if c.len() < m.len() && m.ends_with(&c) {
        let dropped = &m[..m.len() - c.len()];
        if dropped.iter().all(|t| names_parent(t, parent)) {
            return Some(RenameKind::EntityDropped);
        }
    }
    if c.len() == m.len() && m.len() >= 2 && m.last() == c.last() {
        let removed: Vec<&String> = m.iter().filter(|t| !c.contains(t)).collect();
        let added: Vec<&String> = c.iter().filter(|t| !m.contains(t)).collect();
        if let ([gone], [came]) = (&removed[..], &added[..]) {
            if names_parent(gone, parent) && !names_an_entity(came, parent) {
                return Some(RenameKind::EntityReplaced);
            }
        }
    }
    None
}

/// One way to apply a rename.
struct Plan {
    parent: String,
    new_name: String,
    kind: RenameKind,
    edits: Vec<Edit>,
    item_before: String,
}

/// Selects the parent's renamed column under the old name.
///
/// Fires when all of these hold:
/// - the error names a missing column `M` (the same wordings `misspelt_column` reads);
/// - no parent has `M`, and no parent column other than the rename candidates is what
///   [`nearest::choose`] would take for a typo of it (that is `misspelt_column`'s case);
/// - among the parent columns that relate to `M` by a [`RenameKind`], appear nowhere in
///   the model's SQL code yet and can be applied as below, exactly one has the
///   strongest kind present (`customer_full_name` beats `first_name` for
///   `customer_name`; `first_name` and `last_name` alone tie, and the rule refuses);
/// - the selects that read `M` from that parent (its `ref()`/`source()` directly, or an
///   import CTE that is `select *` of it; qualified by its alias, or unqualified when it
///   is the select's only relation) select it exactly once, as a bare column item
///   (`M`, `p.M`, `p.M as x`) — never inside an expression.
///
/// The item becomes `p.C as M` (an existing alias is kept); other uses of `M` in those
/// same selects (`where`, `group by`, `order by`, join conditions) become `C`. Selects
/// that read the first one's output are left alone: they still see `M`.
pub fn renamed_column(input: &RuleInput) -> Option<RuleFix> {
    let missing = parse_missing_column(input.error_message, input.adapter)?;
    let old = missing.column.as_str();
    if old.chars().count() < nearest::MIN_NAME_LEN {
        return None;
    }
    let all_columns = || input.parents.iter().flat_map(|p| p.columns.iter().copied());
    if all_columns().any(|c| c.eq_ignore_ascii_case(old)) {
        return None;
    }

    // Candidates: (parent, column, kind).
    let mut candidates: Vec<(&ParentColumns<'_>, &str, RenameKind)> = Vec::new();
    for parent in input.parents {
        for &column in parent.columns {
            if let Some(kind) = rename_kind(old, column, parent) {
                candidates.push((parent, column, kind));
            }
        }
    }
    // A typo-shaped alternative that is not itself a rename candidate means the name
    // may just be misspelt: that is `misspelt_column`'s call, not a rename.
    let is_candidate = |name: &str| {
        candidates
            .iter()
            .any(|(_, n, _)| n.eq_ignore_ascii_case(name))
    };
    let typo_alternative = match nearest::choose(old, all_columns()) {
        nearest::Choice::Unique { best, .. } => !is_candidate(best.name),
        nearest::Choice::Ambiguous(names) => names.iter().any(|n| !is_candidate(n)),
        _ => false,
    };
    if typo_alternative {
        return None;
    }

    let sql = input.model_sql;
    let segments = segment(sql);
    let tokens = tokenize(sql);
    let scopes = select_scopes(&tokens, sql);
    let occurrences: Vec<_> = identifier_occurrences(sql, &segments, old)
        .into_iter()
        .filter(|o| !o.after_as)
        .collect();

    let mut plans = Vec::new();
    for (parent, new_name, kind) in candidates {
        if !identifier_occurrences(sql, &segments, new_name).is_empty() {
            continue;
        }
        if let Some(plan) = plan_rename(
            input,
            &tokens,
            &scopes,
            &occurrences,
            parent,
            new_name,
            kind,
        ) {
            plans.push(plan);
        }
    }
    // The strongest kind that has candidates decides; within it there must be one.
    let strongest = plans.iter().map(|p| p.kind).min()?;
    plans.retain(|p| p.kind == strongest);
    let [plan] = <[Plan; 1]>::try_from(plans).ok()?;
    let fixed_sql = apply_edits(sql, &plan.edits)?;
    let explanation = format!(
        "Column `{old}` no longer exists in `{}`, which now exposes `{}` ({}). Selected `{}` under the old \
         name in `{}` (`{}` before), so the model's output columns — and its children — are unchanged.",
        plan.parent,
        plan.new_name,
        plan.kind.describe(),
        plan.new_name,
        input.model_name,
        plan.item_before,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: plan.kind.confidence(),
    })
}

fn plan_rename(
    input: &RuleInput,
    tokens: &[Token],
    scopes: &[SelectScope],
    occurrences: &[crate::rewrite::IdentifierOccurrence],
    parent: &ParentColumns<'_>,
    new_name: &str,
    kind: RenameKind,
) -> Option<Plan> {
    let sql = input.model_sql;
    // The selects that read this parent, with the alias (or name) that qualifies it
    // and whether it is their only relation.
    let mut readers: Vec<(&SelectScope, Vec<String>, bool)> = Vec::new();
    for scope in scopes {
        let Some(from) = scope.clause(ClauseKind::From) else {
            continue;
        };
        let Some(relations) = from_relations(tokens, sql, from.body.clone(), scope.depth) else {
            continue;
        };
        for relation in &relations {
            let reads =
                relation_node(tokens, sql, relation).is_some_and(|n| same_node(parent.name, &n));
            if !reads {
                continue;
            }
            let mut names = Vec::new();
            if let Some(alias) = relation.alias {
                names.push(tokens[alias].text(sql).trim_matches('"').to_owned());
            } else if let [only] = &tokens[relation.relation.clone()] {
                names.push(only.text(sql).trim_matches('"').to_owned());
            }
            readers.push((scope, names, relations.len() == 1));
        }
    }

    let mut edits = Vec::new();
    let mut bare_items = 0;
    let mut item_before = String::new();
    for occurrence in occurrences {
        let Some(index) = tokens.iter().position(|t| {
            t.range.start <= occurrence.range.start && occurrence.range.end <= t.range.end
        }) else {
            continue;
        };
        // The innermost select around the occurrence.
        let Some(scope) = scopes
            .iter()
            .filter(|s| s.select < index && index < s.end && tokens[index].depth >= s.depth)
            .max_by_key(|s| s.select)
        else {
            continue;
        };
        let Some((_, names, only)) = readers.iter().find(|(s, _, _)| s.select == scope.select)
        else {
            continue;
        };
        let qualifier = qualifier_of(tokens, sql, index);
        let resolves_here = match &qualifier {
            Some(q) => names.iter().any(|n| n.eq_ignore_ascii_case(q)),
            None => *only,
        };
        if !resolves_here {
            continue;
        }
        let replacement = recase_like(&sql[occurrence.range.clone()], new_name, occurrence.quoted);
        match scope.item_containing(index) {
            Some(item_index) => {
                let item = scope.items[item_index].clone();
                let reference = column_ref(tokens, sql, item.clone())?;
                if reference.name_token != index {
                    return None;
                }
                bare_items += 1;
                item_before =
                    snippet(&sql[tokens[item.start].range.start..tokens[item.end - 1].range.end]);
                edits.push(crate::rewrite::Edit {
                    range: occurrence.range.clone(),
                    replacement,
                });
                if reference.alias.is_none() {
                    let name_end = tokens[index].range.end;
                    edits.push(crate::rewrite::Edit {
                        range: name_end..name_end,
                        replacement: format!(" as {}", tokens[index].text(sql)),
                    });
                }
            }
            None => edits.push(crate::rewrite::Edit {
                range: occurrence.range.clone(),
                replacement,
            }),
        }
    }
    if bare_items != 1 {
        return None;
    }
    Some(Plan {
        parent: parent.name.to_owned(),
        new_name: new_name.to_owned(),
        kind,
        edits,
        item_before,
    })
}

/// The qualifier of the name at token `index` (`o` of `o.x`), unquoted.
fn qualifier_of(tokens: &[Token], sql: &str, index: usize) -> Option<String> {
    if index < 2 || !tokens[index - 1].is_punct(sql, '.') {
        return None;
    }
    Some(tokens[index - 2].text(sql).trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(name: &'static str, columns: &'static [&'static str]) -> ParentColumns<'static> {
        ParentColumns { name, columns }
    }

    #[test]
    fn kinds_of_rename() {
        let customers = parent("stg_customers", &["customer_id", "full_name", "store_id"]);
        assert_eq!(
            rename_kind("customer_name", "customer_full_name", &customers),
            Some(RenameKind::Extended)
        );
        assert_eq!(
            rename_kind("customer_name", "name", &customers),
            Some(RenameKind::EntityDropped)
        );
        assert_eq!(
            rename_kind("customer_name", "full_name", &customers),
            Some(RenameKind::EntityReplaced)
        );
        // `store` names an entity of the parent (store_id): not a descriptive word.
        assert_eq!(rename_kind("customer_name", "store_name", &customers), None);
        // In stg_orders, `customer` is not the parent's own entity.
        let orders = parent("stg_orders", &["order_id", "customer_id"]);
        assert_eq!(rename_kind("customer_name", "full_name", &orders), None);
        assert_eq!(
            rename_kind("order_status", "status", &orders),
            Some(RenameKind::EntityDropped)
        );
        assert_eq!(
            rename_kind("status", "order_status", &orders),
            Some(RenameKind::Extended)
        );
        // Character-level changes are typos, not renames.
        assert_eq!(rename_kind("cust_id", "customer_id", &orders), None);
        assert_eq!(rename_kind("ordr_date", "order_date", &orders), None);
    }

    #[test]
    fn nouns_singular_and_plural() {
        assert!(same_noun("customer", "customers"));
        assert!(same_noun("category", "categories"));
        assert!(same_noun("box", "boxes"));
        assert!(!same_noun("store", "customers"));
    }
}
