//! Shared by `aggregate_in_where` and `window_in_where`: a condition written in `WHERE`
//! that the warehouse only evaluates in a later clause (`HAVING` for an aggregate,
//! `QUALIFY` for a window function) is moved there.
//!
//! Only whole `AND`-terms of the `WHERE` move: a term is a condition of its own, so the
//! rows it keeps do not depend on the terms that stay, and the terms that stay still
//! filter rows before grouping or windowing, as they did. A `WHERE` whose top level mixes
//! `AND` and `OR` is one term. What a term reads is scanned at the select's own level: a
//! subquery is opaque, an aggregate inside a window (`sum(x) over (…)`) is a window.

use std::ops::Range;

use crate::rewrite::Edit;
use crate::segment::{Segment, SegmentKind};
use crate::structure::{Clause, ClauseKind, SelectScope};
use crate::tokens::{matching_close, Token, TokenKind};

use super::missing_group_by::{AGGREGATES, EXPRESSION_KEYWORDS};
use super::VALUE_WORDS;

/// The top-level conditions of a clause body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Conjuncts {
    /// Token ranges of the `AND`-terms, `AND` keywords excluded; one term when the body
    /// has a top-level `OR`.
    pub terms: Vec<Range<usize>>,
    /// True when the body has an `OR` at its top level: appended to, it needs
    /// parentheses.
    pub has_top_level_or: bool,
}

/// Splits a clause body at its top-level `AND`s. The `AND` of `x between a and b` and an
/// `AND` inside `case … end` do not split. `None` when the body is empty or holds Jinja
/// control flow (which branch renders is unknown).
pub(super) fn conjuncts(
    tokens: &[Token],
    sql: &str,
    body: Range<usize>,
    depth: usize,
) -> Option<Conjuncts> {
    if body.is_empty() {
        return None;
    }
    let mut terms = Vec::new();
    let mut start = body.start;
    let mut case_level = 0usize;
    let mut open_between = false;
    let mut has_top_level_or = false;
    for i in body.clone() {
        let t = &tokens[i];
        if t.kind == TokenKind::JinjaStatement {
            return None;
        }
        if t.depth != depth {
            continue;
        }
        if t.is_keyword(sql, "case") {
            case_level += 1;
        } else if t.is_keyword(sql, "end") {
            case_level = case_level.saturating_sub(1);
        } else if case_level == 0 && t.is_keyword(sql, "between") {
            open_between = true;
        } else if case_level == 0 && t.is_keyword(sql, "or") {
            has_top_level_or = true;
        } else if case_level == 0 && t.is_keyword(sql, "and") {
            if open_between {
                open_between = false;
            } else {
                terms.push(start..i);
                start = i + 1;
            }
        }
    }
    terms.push(start..body.end);
    if terms.iter().any(Range::is_empty) {
        return None;
    }
    if has_top_level_or {
        // `a and b or c` is `(a and b) or c`: nothing separates.
        terms = vec![body];
    }
    Some(Conjuncts {
        terms,
        has_top_level_or,
    })
}

/// What a condition reads, at its select's own level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TermReads {
    /// Calls of aggregate functions that are not windows: `sum(x)`, `count(*)`.
    pub aggregates: usize,
    /// Window function calls: `row_number() over (…)`, `sum(x) over w`.
    pub windows: usize,
    /// Columns read outside every aggregate and window call, unquoted, qualifier
    /// dropped: `status` of `o.status`.
    pub bare_columns: Vec<String>,
    /// True when the condition holds a subquery (`x > (select …)`, `exists (…)`).
    pub subquery: bool,
}

/// Scans the tokens of one condition (or select item). `None` when a parenthesis does
/// not close inside the range.
pub(super) fn term_reads(tokens: &[Token], sql: &str, term: Range<usize>) -> Option<TermReads> {
    let mut reads = TermReads::default();
    let in_term = |i: usize| i < term.end;
    let mut k = term.start;
    while k < term.end {
        let t = &tokens[k];
        let next_opens = in_term(k + 1) && tokens[k + 1].is_punct(sql, '(');
        if t.is_punct(sql, '(')
            && in_term(k + 1)
            && (tokens[k + 1].is_keyword(sql, "select") || tokens[k + 1].is_keyword(sql, "with"))
        {
            reads.subquery = true;
            k = matching_close(tokens, sql, k).filter(|&c| in_term(c))? + 1;
            continue;
        }
        if t.kind == TokenKind::Word && next_opens {
            let close = matching_close(tokens, sql, k + 1).filter(|&c| in_term(c))?;
            let mut after = close + 1;
            let kw = |at: usize, w: &str| in_term(at) && tokens[at].is_keyword(sql, w);
            let opens = |at: usize| in_term(at) && tokens[at].is_punct(sql, '(');
            if kw(after, "filter") && opens(after + 1) {
                after = matching_close(tokens, sql, after + 1).filter(|&c| in_term(c))? + 1;
            } else if kw(after, "within") && kw(after + 1, "group") && opens(after + 2) {
                after = matching_close(tokens, sql, after + 2).filter(|&c| in_term(c))? + 1;
            }
            if kw(after, "ignore") || kw(after, "respect") {
                after += 2;
            }
            if kw(after, "over") {
                reads.windows += 1;
                after += 1;
                if opens(after) {
                    after = matching_close(tokens, sql, after).filter(|&c| in_term(c))? + 1;
                } else if in_term(after) && tokens[after].kind == TokenKind::Word {
                    // A named window: `over w`.
                    after += 1;
                }
                k = after;
                continue;
            }
            if AGGREGATES
                .iter()
                .any(|a| t.text(sql).eq_ignore_ascii_case(a))
            {
                reads.aggregates += 1;
                k = after;
                continue;
            }
            // A scalar function: what its arguments read is read by the condition.
            k += 1;
            continue;
        }
        let after_type_marker = k > term.start
            && (tokens[k - 1].is_keyword(sql, "as")
                || (tokens[k - 1].kind == TokenKind::Operator && tokens[k - 1].text(sql) == "::"));
        let is_name = match t.kind {
            TokenKind::QuotedIdent => !after_type_marker,
            TokenKind::Word => {
                !after_type_marker
                    && !EXPRESSION_KEYWORDS.iter().any(|w| t.is_keyword(sql, w))
                    && !VALUE_WORDS.iter().any(|w| t.is_keyword(sql, w))
            }
            _ => false,
        };
        if is_name {
            // `o.status`: the last name of a dotted chain is the column.
            let mut last = k;
            while in_term(last + 2)
                && tokens[last + 1].is_punct(sql, '.')
                && matches!(
                    tokens[last + 2].kind,
                    TokenKind::Word | TokenKind::QuotedIdent
                )
            {
                last += 2;
            }
            reads
                .bare_columns
                .push(tokens[last].unquoted(sql).to_owned());
            k = last + 1;
            continue;
        }
        k += 1;
    }
    Some(reads)
}

/// The bytes of a non-empty token range.
pub(super) fn byte_range(tokens: &[Token], range: &Range<usize>) -> Range<usize> {
    tokens[range.start].range.start..tokens[range.end - 1].range.end
}

/// Where moved conditions go: a clause after `WHERE` that the scope may not have yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Destination {
    /// The clause the conditions move into.
    pub kind: ClauseKind,
    /// Its keyword, lower case.
    pub keyword: &'static str,
    /// The clauses that come before it in a select, in order: a new clause is written
    /// after the last of them the scope has.
    pub after: &'static [ClauseKind],
    /// True when the warehouse wants a `WHERE` next to it (BigQuery's `QUALIFY`): a
    /// `WHERE` left without conditions keeps `where true`.
    pub keeps_where: bool,
}

/// A `WHERE` split into its conditions, and which of them move.
#[derive(Debug, Clone, Copy)]
pub(super) struct WhereSplit<'a> {
    /// The `WHERE` clause.
    pub clause: &'a Clause,
    /// Its top-level conditions.
    pub conjuncts: &'a Conjuncts,
    /// One flag per condition: true for those that move.
    pub moved: &'a [bool],
}

/// The edits that move the `WHERE` terms marked in `moved` to `destination`: the terms
/// leave the `WHERE` (the keyword too when none stays) and are `AND`-ed onto the
/// destination clause, or start it. `None` when a comment would be lost with the text
/// between terms, or the layout is one this does not write.
pub(super) fn move_terms(
    tokens: &[Token],
    sql: &str,
    segments: &[Segment],
    scope: &SelectScope,
    split: WhereSplit<'_>,
    destination: Destination,
) -> Option<Vec<Edit>> {
    let WhereSplit {
        clause: where_clause,
        conjuncts,
        moved,
    } = split;
    let terms = &conjuncts.terms;
    if terms.len() != moved.len() || !moved.iter().any(|&m| m) {
        return None;
    }
    let term_bytes: Vec<Range<usize>> = terms.iter().map(|t| byte_range(tokens, t)).collect();
    let moved_texts: Vec<&str> = term_bytes
        .iter()
        .zip(moved)
        .filter(|(_, &m)| m)
        .map(|(r, _)| &sql[r.clone()])
        .collect();
    let where_keyword = &tokens[where_clause.keyword];
    let upper = where_keyword
        .text(sql)
        .starts_with(|c: char| c.is_ascii_uppercase());
    let and = if upper { "AND" } else { "and" };
    let keyword = if upper {
        destination.keyword.to_ascii_uppercase()
    } else {
        destination.keyword.to_owned()
    };

    let mut edits = Vec::new();
    let mut removed: Vec<Range<usize>> = Vec::new();
    let all_move = moved.iter().all(|&m| m);
    let keep_where_true = all_move && destination.keeps_where;
    let existing = scope.clause(destination.kind);
    // The conditions already in the destination, and whether they need parentheses.
    let existing_conditions = match existing {
        Some(clause) => Some(conjuncts_of(tokens, sql, clause, scope.depth)?),
        None => None,
    };
    let pieces = moved_texts.len() + usize::from(existing.is_some());
    let joined = moved_texts
        .iter()
        .map(|text| {
            // Only a lone term can hold a top-level `or` (the WHERE was one term).
            if pieces > 1 && conjuncts.has_top_level_or {
                format!("({text})")
            } else {
                (*text).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(&format!(" {and} "));

    // Where the new clause goes when the scope has none: after the last clause that
    // precedes it. When that is the WHERE and nothing stays there, the clause takes the
    // WHERE's place.
    let anchor = destination
        .after
        .iter()
        .rev()
        .find_map(|kind| scope.clause(*kind));
    let replaces_where = existing.is_none()
        && all_move
        && !keep_where_true
        && anchor.is_some_and(|a| a.kind == ClauseKind::Where);

    // The WHERE side.
    if all_move && !keep_where_true {
        let before = where_clause.keyword.checked_sub(1)?;
        let range = tokens[before].range.end..term_bytes.last()?.end;
        removed.push(range.clone());
        let replacement = if replaces_where {
            format!(
                "{}{keyword} {joined}",
                clause_break(sql, where_keyword.range.start)
            )
        } else {
            String::new()
        };
        edits.push(Edit { range, replacement });
    } else if keep_where_true {
        let range = term_bytes.first()?.start..term_bytes.last()?.end;
        removed.push(range.clone());
        edits.push(Edit {
            range,
            replacement: if upper { "TRUE" } else { "true" }.to_owned(),
        });
    } else {
        // Each run of moved terms goes with the `and` that joins it to a kept neighbour:
        // the one after it, or for a run at the end, the one before.
        let mut i = 0;
        while i < terms.len() {
            if !moved[i] {
                i += 1;
                continue;
            }
            let run_start = i;
            while i < terms.len() && moved[i] {
                i += 1;
            }
            let range = if i < terms.len() {
                term_bytes[run_start].start..term_bytes[i].start
            } else {
                term_bytes[run_start - 1].end..term_bytes[i - 1].end
            };
            removed.push(range.clone());
            edits.push(Edit {
                range,
                replacement: String::new(),
            });
        }
    }
    // Text that leaves with the terms but is not part of one: a comment there would be
    // lost.
    let loses_comment = segments.iter().any(|s| {
        s.kind == SegmentKind::Comment
            && removed
                .iter()
                .any(|r| s.range.start < r.end && r.start < s.range.end)
            && !term_bytes
                .iter()
                .zip(moved)
                .any(|(t, &m)| m && t.start <= s.range.start && s.range.end <= t.end)
    });
    if loses_comment {
        return None;
    }

    // The destination side. An insertion sits at the end of a clause, where a removal
    // may end too: insertions go first so the edits apply in that order.
    match (existing, existing_conditions) {
        (Some(clause), Some(conditions)) => {
            let body = byte_range(tokens, &clause.body);
            if conditions.has_top_level_or {
                edits.insert(
                    0,
                    Edit {
                        range: body.start..body.start,
                        replacement: "(".to_owned(),
                    },
                );
                edits.insert(
                    0,
                    Edit {
                        range: body.end..body.end,
                        replacement: format!(") {and} {joined}"),
                    },
                );
            } else {
                edits.insert(
                    0,
                    Edit {
                        range: body.end..body.end,
                        replacement: format!(" {and} {joined}"),
                    },
                );
            }
        }
        _ if replaces_where => {}
        _ => {
            let anchor = anchor?;
            if anchor.body.is_empty() {
                return None;
            }
            let at = tokens[anchor.body.end - 1].range.end;
            // A new clause must not land inside Jinja control flow around the anchor.
            if tokens[anchor.keyword..anchor.body.end]
                .iter()
                .any(|t| t.kind == TokenKind::JinjaStatement)
            {
                return None;
            }
            let layout_from = if anchor.kind == ClauseKind::Where && !all_move {
                where_keyword.range.start
            } else {
                tokens[anchor.keyword].range.start
            };
            edits.insert(
                0,
                Edit {
                    range: at..at,
                    replacement: format!("{}{keyword} {joined}", clause_break(sql, layout_from)),
                },
            );
        }
    }
    Some(edits)
}

fn conjuncts_of(tokens: &[Token], sql: &str, clause: &Clause, depth: usize) -> Option<Conjuncts> {
    conjuncts(tokens, sql, clause.body.clone(), depth)
}

/// What goes before a new clause keyword: a line break and the indentation of the
/// clause at `at` when that clause starts its line, else one space.
fn clause_break(sql: &str, at: usize) -> String {
    let line_start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = &sql[line_start..at];
    if indent.chars().all(|c| c == ' ' || c == '\t') {
        format!("\n{indent}")
    } else {
        " ".to_owned()
    }
}

/// True when a select item or condition calls an aggregate outside any window: the
/// select is grouped.
pub(super) fn aggregates_outside_windows(tokens: &[Token], sql: &str, range: Range<usize>) -> bool {
    term_reads(tokens, sql, range).is_none_or(|reads| reads.aggregates > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::select_scopes;
    use crate::tokens::tokenize;

    fn term_texts(sql: &str) -> (Vec<String>, bool) {
        let tokens = tokenize(sql);
        let scope = &select_scopes(&tokens, sql)[0];
        let clause = scope.clause(ClauseKind::Where).unwrap();
        let c = conjuncts(&tokens, sql, clause.body.clone(), scope.depth).unwrap();
        (
            c.terms
                .iter()
                .map(|t| sql[byte_range(&tokens, t)].to_owned())
                .collect(),
            c.has_top_level_or,
        )
    }

    #[test]
    fn between_and_case_do_not_split() {
        let (terms, or) = term_texts(
            "select a from t where x between 1 and 2 and case when a and b then 1 end = 1 and sum(y) > 0",
        );
        assert_eq!(
            terms,
            vec![
                "x between 1 and 2",
                "case when a and b then 1 end = 1",
                "sum(y) > 0"
            ]
        );
        assert!(!or);
    }

    #[test]
    fn a_top_level_or_is_one_term() {
        let (terms, or) = term_texts("select a from t where x = 1 and y = 2 or sum(z) > 0");
        assert_eq!(terms, vec!["x = 1 and y = 2 or sum(z) > 0"]);
        assert!(or);
    }

    #[test]
    fn reads_at_the_select_level() {
        let sql = "coalesce(sum(o.amount), 0) > (select avg(x) from u) and row_number() over (partition by c order by d) = 1 and cast(s.k as int) = 2 and count(*) filter (where z) > 1";
        let tokens = tokenize(sql);
        let reads = term_reads(&tokens, sql, 0..tokens.len()).unwrap();
        assert_eq!(reads.aggregates, 2);
        assert_eq!(reads.windows, 1);
        assert_eq!(reads.bare_columns, vec!["k"]);
        assert!(reads.subquery);
    }
}
