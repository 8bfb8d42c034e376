//! `alias_typo`: a column is qualified with a table alias the query does not define, and
//! exactly one alias it does define is one keystroke away.

use std::sync::OnceLock;

use regex::Regex;

use crate::rewrite::{apply_edits, Edit};
use crate::sqlcheck::breaks_parse;
use crate::structure::{ctes, from_relations, select_scopes, ClauseKind, SelectScope};
use crate::tokens::{separated, tokenize, Token, TokenKind};
use crate::{RuleFix, RuleInput};

/// The rule's name.
pub(super) const NAME: &str = "alias_typo";

/// The undefined alias and the warehouse's suggestions, from DuckDB's `Referenced table
/// "o2" not found! Candidate tables: "o"` or PostgreSQL's `missing FROM-clause entry for
/// table "o2"`.
pub fn parse_missing_alias(message: &str) -> Option<(String, Vec<String>)> {
    static RES: OnceLock<Vec<Regex>> = OnceLock::new();
    let res = RES.get_or_init(|| {
        [
            r#"Referenced table "(?P<alias>[^"]+)" not found"#,
            r#"missing FROM-clause entry for table "(?P<alias>[^"]+)""#,
        ]
        .iter()
        .filter_map(|p| Regex::new(p).ok())
        .collect()
    });
    let alias = res
        .iter()
        .find_map(|re| re.captures(message))?
        .name("alias")?
        .as_str()
        .to_owned();
    let hints = message
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate tables:"))
        .map(|list| {
            list.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some((alias, hints))
}

/// True when `a` and `b` are one keystroke apart (an extra, missing, wrong or swapped
/// character), ignoring case.
fn one_keystroke(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    a != b && strsim::osa_distance(&a, &b) <= 1
}

/// Replaces an undefined qualifier with the one alias in scope it is a keystroke from.
///
/// Fires when the error names an undefined table alias `B`, the model uses `B.` as a
/// qualifier in SQL code, nothing in the model defines `B` (no relation, alias or CTE of
/// that name), and for every such use the select it sits in has exactly one relation
/// alias (or unaliased relation name) one keystroke from `B` — the same one for every
/// use. With two relations aliased `s` and `o`, `o2` becomes `o`; `c` is one keystroke
/// from both and is refused.
pub fn alias_typo(input: &RuleInput) -> Option<RuleFix> {
    let (bad, hints) = parse_missing_alias(input.error_message)?;
    let sql = input.model_sql;
    let tokens = tokenize(sql);
    let scopes = select_scopes(&tokens, sql);

    let same = |t: &Token, name: &str| {
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
            && t.text(sql).trim_matches('"').eq_ignore_ascii_case(name)
    };
    // `B` must not be defined anywhere.
    if ctes(&tokens, sql)
        .iter()
        .any(|c| same(&tokens[c.name], &bad))
    {
        return None;
    }
    let mut defined_per_scope: Vec<(usize, Vec<String>)> = Vec::new();
    for scope in &scopes {
        let names = scope_names(&tokens, sql, scope);
        if names.iter().any(|n| n.eq_ignore_ascii_case(&bad)) {
            return None;
        }
        defined_per_scope.push((scope.select, names));
    }

    let mut chosen: Option<String> = None;
    let mut edits = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let qualifies = same(t, &bad)
            && tokens.get(i + 1).is_some_and(|n| n.is_punct(sql, '.'))
            && !separated(&tokens, i + 1)
            && !(i > 0 && tokens[i - 1].is_punct(sql, '.'));
        if !qualifies {
            continue;
        }
        let scope = scopes
            .iter()
            .filter(|s| s.select < i && i < s.end && t.depth >= s.depth)
            .max_by_key(|s| s.select)?;
        let names = &defined_per_scope
            .iter()
            .find(|(s, _)| *s == scope.select)?
            .1;
        let near: Vec<&String> = names.iter().filter(|n| one_keystroke(n, &bad)).collect();
        let [alias] = near[..] else {
            return None;
        };
        if !hints.is_empty() && !hints.iter().any(|h| h.eq_ignore_ascii_case(alias)) {
            // The warehouse suggested other tables: we would be guessing against it.
            return None;
        }
        match &chosen {
            Some(c) if !c.eq_ignore_ascii_case(alias) => return None,
            _ => chosen = Some(alias.clone()),
        }
        let replacement = if t.kind == TokenKind::QuotedIdent {
            format!("\"{alias}\"")
        } else {
            alias.clone()
        };
        edits.push(Edit {
            range: t.range.clone(),
            replacement,
        });
    }
    let alias = chosen?;
    let fixed_sql = apply_edits(sql, &edits)?;
    if breaks_parse(sql, &fixed_sql, input.adapter) {
        return None;
    }
    let places = if edits.len() == 1 {
        "1 place".to_owned()
    } else {
        format!("{} places", edits.len())
    };
    let explanation = format!(
        "`{}` qualifies a column with `{bad}`, which no relation in scope is called; the only alias \
         one keystroke away is `{alias}`. Replaced the qualifier in {places}.",
        input.model_name,
    );
    Some(RuleFix {
        fixed_sql,
        explanation,
        rule: NAME,
        confidence: 0.85,
    })
}

/// The names a select's relations go by: each alias, or an unaliased relation's name.
fn scope_names(tokens: &[Token], sql: &str, scope: &SelectScope) -> Vec<String> {
    let Some(from) = scope.clause(ClauseKind::From) else {
        return Vec::new();
    };
    let Some(relations) = from_relations(tokens, sql, from.body.clone(), scope.depth) else {
        return Vec::new();
    };
    relations
        .iter()
        .filter_map(|r| match r.alias {
            Some(a) => Some(tokens[a].text(sql).trim_matches('"').to_owned()),
            None => {
                let last = tokens.get(r.relation.end.checked_sub(1)?)?;
                matches!(last.kind, TokenKind::Word | TokenKind::QuotedIdent)
                    .then(|| last.text(sql).trim_matches('"').to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordings() {
        assert_eq!(
            parse_missing_alias(
                "Binder Error: Referenced table \"o2\" not found!\nCandidate tables: \"o\""
            ),
            Some(("o2".to_owned(), vec!["o".to_owned()]))
        );
        assert_eq!(
            parse_missing_alias("missing FROM-clause entry for table \"o2\""),
            Some(("o2".to_owned(), vec![]))
        );
    }

    #[test]
    fn keystrokes() {
        assert!(one_keystroke("o2", "o"));
        assert!(one_keystroke("c", "o"));
        assert!(one_keystroke("ordres", "orders"));
        assert!(!one_keystroke("o", "O"));
        assert!(!one_keystroke("s", "o2"));
    }
}
