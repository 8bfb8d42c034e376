//! `renamed_column`: the model selects a column its parent no longer has because the
//! parent renamed it, and exactly one of the parent's columns is plainly the new name.
//! The fix selects the new name under the old one (`c.full_name as customer_name`), so
//! the model's own output — what its children select — does not change.
//!
//! The parent's columns come from the evidence; for a relation the evidence knows no
//! columns of (a seed read through `source()` whose YAML declares none), the
//! warehouse's own list of candidates stands in, for the plainest kind of rename only.

use crate::column_errors::{hinted_qualifiers, parse_missing_column, MissingColumn};
use crate::relations::{relation_node, same_node};
use crate::rewrite::{
    apply_edits, identifier_occurrences, recase_like, Edit, IdentifierOccurrence,
};
use crate::segment::{segment, Segment};
use crate::structure::{
    ctes, from_relations, select_scopes, ClauseKind, FromRelation, SelectScope,
};
use crate::tokens::{tokenize, Token, TokenKind};
use crate::{nearest, ParentColumns, RuleFix, RuleInput};

use super::{column_ref, snippet, warehouse_name};

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

/// How much less sure a rename is when the warehouse's candidates stand in for the
/// parent's columns: they show the names near the old one, not every column.
const HINTED_DISCOUNT: f64 = 0.1;

/// One way to apply a rename.
struct Plan {
    /// The parent as the explanation names it.
    parent: String,
    /// True when the new name comes from the warehouse's candidates, not from the
    /// parent's columns: the explanation says so, for the reviewer to weigh.
    from_hint: bool,
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
///
/// When no parent in the evidence gives a plan, the warehouse's candidates (DuckDB's
/// `Candidate bindings`, PostgreSQL's `Perhaps you meant`) may stand in for the columns
/// of the relation `M` is read from — see [`hinted_plan`] for how strictly.
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
    let plan = match plans.iter().map(|p| p.kind).min() {
        // The strongest kind that has candidates decides; within it there must be one.
        Some(strongest) => {
            plans.retain(|p| p.kind == strongest);
            let [plan] = <[Plan; 1]>::try_from(plans).ok()?;
            plan
        }
        None => hinted_plan(input, &missing, &segments, &tokens, &scopes, &occurrences)?,
    };
    let fixed_sql = apply_edits(sql, &plan.edits)?;
    let mut explanation = format!(
        "Column `{old}` no longer exists in `{}`, which now exposes `{}` ({}). Selected `{}` under the old \
         name in `{}` (`{}` before), so the model's output columns — and its children — are unchanged.",
        plan.parent,
        plan.new_name,
        plan.kind.describe(),
        plan.new_name,
        input.model_name,
        plan.item_before,
    );
    if plan.from_hint {
        explanation.push_str(&format!(
            " No column list of `{}` was at hand: {} named `{}` as the one candidate extending `{old}`.",
            plan.parent,
            warehouse_name(input.adapter),
            plan.new_name,
        ));
    }
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: if plan.from_hint {
            plan.kind.confidence() - HINTED_DISCOUNT
        } else {
            plan.kind.confidence()
        },
    })
}

/// The rename the warehouse's candidate list shows for a relation whose columns the
/// evidence does not know.
///
/// The list is partial — DuckDB shows its five nearest bindings at most, above a
/// similarity floor; PostgreSQL only names within three edits — so it proves less than
/// a parent's column list, and the rule asks more of it:
/// - the list is not as long as the warehouse ever makes it (it may have been cut);
/// - exactly one listed name is [`RenameKind::Extended`] from `M` (the other kinds rest on
///   the parent's name and on every column it has), and no listed name or parent
///   column is a closer misspelling of `M` than it;
/// - every use of `M` reads one and the same `ref()`/`source()` (directly or through an
///   import CTE) of which no parent in the evidence has columns, or a CTE of the model
///   (which outputs `M` after the fix, as before); each use is in a top-level select or
///   a CTE body — a nested select also sees the bindings around it, and DuckDB lists
///   those too — qualified by the relation's alias, or unqualified where it is the
///   select's only relation;
/// - where the warehouse names the relation (`Table "m"`, `column o.created`,
///   `"raw_orders.created_at"`), it is that relation, and only that one.
///
/// A column that extends `M` but that the warehouse left out as too far cannot be seen
/// (`monthly_plan_fee` for `plan` scores below DuckDB's floor, and only `plan_name` is
/// listed): the explanation says where the name came from, and the confidence is lower.
fn hinted_plan(
    input: &RuleInput,
    missing: &MissingColumn,
    segments: &[Segment],
    tokens: &[Token],
    scopes: &[SelectScope],
    occurrences: &[IdentifierOccurrence],
) -> Option<Plan> {
    let sql = input.model_sql;
    let old = missing.column.as_str();
    if missing.hints_may_be_cut {
        return None;
    }
    let no_parent = ParentColumns::default();
    let extended: Vec<&str> = missing
        .hinted_candidates
        .iter()
        .map(String::as_str)
        .filter(|c| rename_kind(old, c, &no_parent) == Some(RenameKind::Extended))
        .collect();
    let [new_name] = extended[..] else {
        return None;
    };
    if !identifier_occurrences(sql, segments, new_name).is_empty() {
        return None;
    }
    let parent_columns = input.parents.iter().flat_map(|p| p.columns.iter().copied());
    let hinted = missing.hinted_candidates.iter().map(String::as_str);
    let misspelling = match nearest::choose(old, parent_columns.chain(hinted)) {
        nearest::Choice::Unique { best, .. } => !best.name.eq_ignore_ascii_case(new_name),
        nearest::Choice::Ambiguous(names) => {
            names.iter().any(|n| !n.eq_ignore_ascii_case(new_name))
        }
        _ => false,
    };
    if misspelling {
        return None;
    }
    // The relation the warehouse says it looked in, when it says; a name it lists under
    // two relations belongs to neither for sure.
    let hint_qualifiers = hinted_qualifiers(input.error_message, new_name);
    let named = match (&missing.qualifier, &hint_qualifiers[..]) {
        (_, [_, _, ..]) => return None,
        (Some(q), [h]) if !q.eq_ignore_ascii_case(h) => return None,
        (Some(q), _) => Some(q.as_str()),
        (None, [h]) => Some(h.as_str()),
        (None, []) => None,
    };

    let model_ctes = ctes(tokens, sql);
    let is_model_cte = |relation: &FromRelation| match &tokens[relation.relation.clone()] {
        [only] if matches!(only.kind, TokenKind::Word | TokenKind::QuotedIdent) => {
            let name = only.text(sql).trim_matches('"');
            model_ctes.iter().any(|c| {
                tokens[c.name]
                    .text(sql)
                    .trim_matches('"')
                    .eq_ignore_ascii_case(name)
            })
        }
        _ => false,
    };
    let mut node: Option<String> = None;
    for occurrence in occurrences {
        let index = tokens.iter().position(|t| {
            t.range.start <= occurrence.range.start && occurrence.range.end <= t.range.end
        })?;
        let scope = scopes
            .iter()
            .filter(|s| s.select < index && index < s.end && tokens[index].depth >= s.depth)
            .max_by_key(|s| s.select)?;
        if scope.depth > 0 && !model_ctes.iter().any(|c| c.select == scope.select) {
            return None;
        }
        let from = scope.clause(ClauseKind::From)?;
        let relations = from_relations(tokens, sql, from.body.clone(), scope.depth)?;
        let relation = match qualifier_of(tokens, sql, index) {
            Some(q) => relations
                .iter()
                .find(|r| binding_name(tokens, sql, r, None).eq_ignore_ascii_case(&q))?,
            None => match &relations[..] {
                [only] => only,
                _ => return None,
            },
        };
        let Some(read) = relation_node(tokens, sql, relation) else {
            if is_model_cte(relation) {
                // A CTE of the model with its own select list reads the model's own
                // output names, and the fix keeps `M` among them.
                continue;
            }
            return None;
        };
        let known = input
            .parents
            .iter()
            .any(|p| same_node(p.name, &read) && !p.columns.is_empty());
        if known {
            return None;
        }
        if let Some(named) = named {
            if !binding_name(tokens, sql, relation, Some(&read)).eq_ignore_ascii_case(named) {
                return None;
            }
        }
        match &node {
            Some(n) if !same_node(n, &read) => return None,
            Some(_) => {}
            None => node = Some(read),
        }
    }
    let node = node?;
    let parent = ParentColumns {
        name: &node,
        columns: &[],
    };
    let plan = plan_rename(
        input,
        tokens,
        scopes,
        occurrences,
        &parent,
        new_name,
        RenameKind::Extended,
    )?;
    Some(Plan {
        from_hint: true,
        ..plan
    })
}

/// The name the warehouse binds `relation` under: its alias, the name written, or for
/// an unaliased `ref()`/`source()` the table the node renders to (the last part of
/// `read`).
fn binding_name(
    tokens: &[Token],
    sql: &str,
    relation: &FromRelation,
    read: Option<&str>,
) -> String {
    if let Some(alias) = relation.alias {
        return tokens[alias].text(sql).trim_matches('"').to_owned();
    }
    match &tokens[relation.relation.clone()] {
        [only] if only.kind != TokenKind::Jinja => only.text(sql).trim_matches('"').to_owned(),
        _ => read
            .and_then(|r| r.rsplit('.').next())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn plan_rename(
    input: &RuleInput,
    tokens: &[Token],
    scopes: &[SelectScope],
    occurrences: &[IdentifierOccurrence],
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
        from_hint: false,
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
    /// dbt 1.11 + DuckDB 2.0.1, `examples/bike_rentals` with the seed's `plan` renamed
    /// `plan_name` (eval case `bikes_renamed_source_column`): `run_results.json`'s message.
    const DUCKDB_PLAN: &str = "Runtime Error in model stg_members (models/staging/stg_members.sql)\n  Binder Error: Referenced column \"plan\" not found in FROM clause!\n  Candidate bindings: \"plan_name\", \"full_name\"\n  \n  LINE 12:     plan as membership_plan,\n               ^^^^";

    const SOURCE: &str = "{{ source('bike_share_raw', 'raw_members') }}";

    fn fix(
        message: &str,
        sql: &str,
        parents: &[ParentColumns<'_>],
        adapter: &str,
    ) -> Option<String> {
        let input = RuleInput {
            error_class: crate::ErrorClass::MissingColumn,
            error_message: message,
            model_name: "stg_members",
            model_sql: sql,
            parents,
            adapter,
            ..RuleInput::default()
        };
        renamed_column(&input).map(|f| {
            assert!(f.explanation.contains("stg_members"), "{}", f.explanation);
            f.fixed_sql
        })
    }

    fn duckdb(message: &str, sql: &str) -> Option<String> {
        fix(message, sql, &[], "duckdb")
    }

    #[test]
    fn candidate_bindings_name_the_renamed_column_of_a_source() {
        let sql =
            format!("select\n    id as member_id,\n    plan as membership_plan\nfrom {SOURCE}\n");
        let fixed = format!(
            "select\n    id as member_id,\n    plan_name as membership_plan\nfrom {SOURCE}\n"
        );
        assert_eq!(duckdb(DUCKDB_PLAN, &sql), Some(fixed.clone()));
        // What the detector's evidence holds for that run: the seed the comment
        // `depends_on` names (not the relation read), and DuckDB's bindings.
        let parents = [
            parent(
                "raw_members",
                &[
                    "id",
                    "full_name",
                    "email",
                    "plan_name",
                    "joined_at",
                    "birth_year",
                ],
            ),
            parent("candidate_bindings", &["plan_name", "full_name"]),
        ];
        assert_eq!(fix(DUCKDB_PLAN, &sql, &parents, "duckdb"), Some(fixed));
    }

    #[test]
    fn a_bare_item_keeps_the_old_name_and_other_uses_are_renamed() {
        let sql = format!("select id, plan\nfrom {SOURCE}\nwhere plan <> 'none'\norder by plan\n");
        assert_eq!(
            duckdb(DUCKDB_PLAN, &sql),
            Some(format!("select id, plan_name as plan\nfrom {SOURCE}\nwhere plan_name <> 'none'\norder by plan_name\n"))
        );
    }

    #[test]
    fn two_extensions_of_the_name_are_refused() {
        let message = DUCKDB_PLAN.replace(
            r#""plan_name", "full_name""#,
            r#""plan_code", "plan_name", "full_name""#,
        );
        let sql = format!("select plan as membership_plan\nfrom {SOURCE}\n");
        assert_eq!(duckdb(&message, &sql), None);
        // The same list without `plan_code` fires: the second extension is the reason.
        assert!(duckdb(DUCKDB_PLAN, &sql).is_some());
    }

    #[test]
    fn a_misspelling_is_not_a_rename() {
        let sql = format!("select plan as membership_plan\nfrom {SOURCE}\n");
        // `plans` is one edit from `plan`, no word added: misspelt_column's case.
        let typo = DUCKDB_PLAN.replace(r#""plan_name", "full_name""#, r#""plans", "full_name""#);
        assert_eq!(duckdb(&typo, &sql), None);
        // Next to an extension, the closer misspelling still makes it a typo, not a rename.
        let both = DUCKDB_PLAN.replace(r#""plan_name", "full_name""#, r#""plans", "plan_name""#);
        assert_eq!(duckdb(&both, &sql), None);
        // Character-level changes are never an extension (`ordr_date` → `order_date`).
        let ordr = "Binder Error: Referenced column \"ordr_date\" not found in FROM clause!\n  Candidate bindings: \"order_date\", \"order_id\"\n";
        let sql = format!("select ordr_date\nfrom {SOURCE}\n");
        assert_eq!(duckdb(ordr, &sql), None);
    }

    #[test]
    fn a_list_that_may_have_been_cut_is_refused() {
        // duckdb 2.0.1's client on a table of `id`, `membership_id`, `membership_plan_name`,
        // `membership_start`, `membership_end`, `membership_status` and `email`: five
        // bindings shown, its most.
        let full = "Binder Error: Referenced column \"membership_plan\" not found in FROM clause!\nCandidate bindings: \"membership_plan_name\", \"membership_end\", \"membership_id\", \"membership_start\", \"membership_status\"\n\nLINE 1: select membership_plan from raw_members\n               ^^^^^^^^^^^^^^^";
        let sql = format!("select membership_plan\nfrom {SOURCE}\n");
        assert_eq!(duckdb(full, &sql), None);
        // One name fewer and the same list is taken at its word.
        let four = full.replace(r#", "membership_status""#, "");
        assert_eq!(
            duckdb(&four, &sql),
            Some(format!(
                "select membership_plan_name as membership_plan\nfrom {SOURCE}\n"
            ))
        );
    }

    #[test]
    fn the_named_relation_must_be_the_one_read() {
        // PostgreSQL 15 hints qualify the name with the relation it is in.
        let sql = "select\n    o.created\nfrom {{ source('shop_raw', 'raw_orders') }} as o\n";
        let hinted = |hint: &str| {
            format!("column o.created does not exist\n  LINE 3:     o.created\n  HINT:  Perhaps you meant to reference the column \"{hint}\".")
        };
        assert_eq!(
            fix(&hinted("o.created_at"), sql, &[], "postgres"),
            Some("select\n    o.created_at as created\nfrom {{ source('shop_raw', 'raw_orders') }} as o\n".to_owned())
        );
        assert_eq!(fix(&hinted("c.created_at"), sql, &[], "postgres"), None);
        let in_two = r#"a.created_at" or the column "o.created_at"#;
        assert_eq!(fix(&hinted(in_two), sql, &[], "postgres"), None);
        // Unqualified, an unaliased source binds under its table's name.
        let sql = "select created\nfrom {{ source('shop_raw', 'raw_orders') }}\n";
        let unqualified = |hint: &str| {
            format!("column \"created\" does not exist\n  HINT:  Perhaps you meant to reference the column \"{hint}\".")
        };
        assert!(fix(&unqualified("raw_orders.created_at"), sql, &[], "postgres").is_some());
        assert_eq!(
            fix(&unqualified("orders.created_at"), sql, &[], "postgres"),
            None
        );
    }

    #[test]
    fn columns_the_evidence_has_for_the_relation_win() {
        // The evidence knows the relation's columns and `plan_name` is not one of them.
        let sql = format!("select plan as membership_plan\nfrom {SOURCE}\n");
        let known = [parent("bike_share_raw.raw_members", &["id", "tier"])];
        assert_eq!(fix(DUCKDB_PLAN, &sql, &known, "duckdb"), None);
    }

    #[test]
    fn uses_the_hints_cannot_place_are_refused() {
        // Two relations and an unqualified name: the hint does not say whose column it is.
        let join = format!(
            "select m.id, plan\nfrom {SOURCE} as m\njoin {{{{ ref('stg_rentals') }}}} as r on r.member_id = m.id\n"
        );
        assert_eq!(duckdb(DUCKDB_PLAN, &join), None);
        // A nested select also sees the relations around it, and DuckDB lists theirs.
        let nested = format!(
            "select\n    m.id,\n    (select plan from {SOURCE} as s where s.id = m.id) as membership_plan\nfrom {{{{ ref('stg_rentals') }}}} as m\n"
        );
        assert_eq!(duckdb(DUCKDB_PLAN, &nested), None);
        // Two different unknown relations read the name: the hint describes one of them.
        let two_sources = format!(
            "with a as (\n    select plan from {SOURCE}\n),\nb as (\n    select plan as p from {{{{ source('bike_share_raw', 'raw_rentals') }}}}\n)\nselect * from a join b on true\n"
        );
        assert_eq!(duckdb(DUCKDB_PLAN, &two_sources), None);
    }
}
