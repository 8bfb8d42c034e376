//! Small shared pieces for turning a decision into new SQL: finding identifiers in code,
//! applying byte-range edits, and checking a result against earlier rejected attempts.

use std::ops::Range;

use crate::segment::{is_ident_byte, Segment, SegmentKind};

/// One replacement of a byte range of the model text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The bytes replaced.
    pub range: Range<usize>,
    /// What they are replaced with.
    pub replacement: String,
}

/// Applies non-overlapping edits to `text`. Edits may come in any order; `None` if two
/// overlap or one falls outside the text or off a character boundary — a rule bug that
/// must produce no fix rather than a corrupted file.
pub fn apply_edits(text: &str, edits: &[Edit]) -> Option<String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.range.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in sorted {
        if edit.range.start < at
            || edit.range.end < edit.range.start
            || !text.is_char_boundary(edit.range.start)
            || !text.is_char_boundary(edit.range.end)
        {
            return None;
        }
        out.push_str(text.get(at..edit.range.start)?);
        out.push_str(&edit.replacement);
        at = edit.range.end;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

/// An occurrence of a name in the SQL that a rename may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierOccurrence {
    /// The bytes to replace: the bare identifier, or the inside of a quoted one.
    pub range: Range<usize>,
    /// True for the inside of `"…"` or `` `…` ``: written verbatim, never re-cased.
    pub quoted: bool,
    /// True when the occurrence follows the keyword `AS` (`… as ordr_date`): it names
    /// an output column or a CTE rather than reading one, and renaming it would change
    /// the model's contract with its children.
    pub after_as: bool,
    /// True when a `.` directly precedes the occurrence (`o.ordr_date`): the relation is
    /// named, so a column that several relations share is still unambiguous.
    pub qualified: bool,
}

/// Every place `name` is used as an identifier in SQL code, compared case-insensitively:
/// whole unquoted words in [`SegmentKind::Code`], and complete quoted identifiers whose
/// content is the name. Never inside string literals, comments or Jinja.
///
/// A word that touches a Jinja tag (`{{ prefix }}ordr_date`) is skipped: after rendering
/// it is part of a longer name we cannot see.
pub fn identifier_occurrences(
    text: &str,
    segments: &[Segment],
    name: &str,
) -> Vec<IdentifierOccurrence> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (index, seg) in segments.iter().enumerate() {
        let touches_jinja_before = index > 0 && segments[index - 1].kind.is_jinja();
        let touches_jinja_after = segments.get(index + 1).is_some_and(|s| s.kind.is_jinja());
        match seg.kind {
            SegmentKind::Code => {
                let mut i = seg.range.start;
                while i < seg.range.end {
                    if !is_ident_byte(bytes[i]) {
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < seg.range.end && is_ident_byte(bytes[i]) {
                        i += 1;
                    }
                    let abuts_jinja = (start == seg.range.start && touches_jinja_before)
                        || (i == seg.range.end && touches_jinja_after);
                    if !abuts_jinja && eq_ignore_case(&text[start..i], name) {
                        found.push(IdentifierOccurrence {
                            range: start..i,
                            quoted: false,
                            after_as: follows_as_keyword(text, start),
                            qualified: follows_dot(text, start),
                        });
                    }
                }
            }
            SegmentKind::QuotedIdentifier => {
                let piece = &text[seg.range.clone()];
                let Some(quote) = piece.chars().next() else {
                    continue;
                };
                // Only a complete identifier: opened and closed here, no escaped quotes
                // inside, not interrupted by Jinja.
                let inner = piece
                    .strip_prefix(quote)
                    .and_then(|rest| rest.strip_suffix(quote));
                if let Some(inner) = inner {
                    if !inner.contains(quote)
                        && !touches_jinja_before
                        && !touches_jinja_after
                        && eq_ignore_case(inner, name)
                    {
                        let start = seg.range.start + quote.len_utf8();
                        found.push(IdentifierOccurrence {
                            range: start..start + inner.len(),
                            quoted: true,
                            after_as: follows_as_keyword(text, seg.range.start),
                            qualified: follows_dot(text, seg.range.start),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// True when the last non-blank character before `at` is a `.`.
fn follows_dot(text: &str, at: usize) -> bool {
    text[..at]
        .trim_end_matches(|c: char| c.is_ascii_whitespace())
        .ends_with('.')
}

/// True when the word before `at`, across whitespace, is the keyword `as`.
fn follows_as_keyword(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end_matches(|c: char| c.is_ascii_whitespace());
    if before.len() == at {
        // `as` must be a separate word: `alias_x` is not `as x`.
        return false;
    }
    let word_start = before
        .bytes()
        .rposition(|b| !is_ident_byte(b))
        .map_or(0, |i| i + 1);
    before[word_start..].eq_ignore_ascii_case("as")
}

/// Case-insensitive comparison that also folds non-ASCII letters.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// The replacement for one occurrence: a quoted identifier gets the new name verbatim;
/// an unquoted one keeps the writer's all-upper or all-lower style when the new name is
/// in a single case (`ORDR_DATE` → `ORDER_DATE` for candidate `order_date`).
pub fn recase_like(occurrence: &str, new_name: &str, quoted: bool) -> String {
    if quoted {
        return new_name.to_owned();
    }
    let has_letters = occurrence.chars().any(char::is_alphabetic);
    let new_single_case =
        new_name == new_name.to_lowercase() || new_name == new_name.to_uppercase();
    if has_letters && new_single_case {
        if occurrence == occurrence.to_uppercase() {
            return new_name.to_uppercase();
        }
        if occurrence == occurrence.to_lowercase() {
            return new_name.to_lowercase();
        }
    }
    new_name.to_owned()
}

/// True when `sql` is one of the earlier attempts that failed validation, compared after
/// collapsing whitespace so a re-indented copy of a rejected fix is still recognised.
pub fn is_rejected(sql: &str, rejected: &[&str]) -> bool {
    let normalized = collapse_whitespace(sql);
    rejected
        .iter()
        .any(|r| *r == sql || collapse_whitespace(r) == normalized)
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::segment;

    fn occurrences<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        identifier_occurrences(text, &segment(text), name)
            .into_iter()
            .map(|o| &text[o.range])
            .collect()
    }

    #[test]
    fn edits_apply_in_any_order() {
        let edits = [
            Edit {
                range: 7..8,
                replacement: "bb".into(),
            },
            Edit {
                range: 0..1,
                replacement: "S".into(),
            },
        ];
        assert_eq!(
            apply_edits("select a", &edits).as_deref(),
            Some("Select bb")
        );
    }

    #[test]
    fn overlapping_or_out_of_range_edits_are_refused() {
        let overlap = [
            Edit {
                range: 0..3,
                replacement: String::new(),
            },
            Edit {
                range: 2..4,
                replacement: String::new(),
            },
        ];
        assert_eq!(apply_edits("abcdef", &overlap), None);
        let outside = [Edit {
            range: 4..9,
            replacement: String::new(),
        }];
        assert_eq!(apply_edits("abcdef", &outside), None);
        let mid_char = [Edit {
            range: 1..2,
            replacement: String::new(),
        }];
        assert_eq!(apply_edits("é", &mid_char), None);
    }

    #[test]
    fn whole_words_only_case_insensitive() {
        assert_eq!(
            occurrences(
                "select ordr_date, ORDR_DATE, ordr_dates, x_ordr_date from t",
                "ordr_date"
            ),
            vec!["ordr_date", "ORDR_DATE"]
        );
    }

    #[test]
    fn qualified_words_match_on_the_column_part() {
        assert_eq!(
            occurrences("select o.ordr_date, ordr_date.x from t as o", "ordr_date"),
            vec!["ordr_date", "ordr_date"]
        );
    }

    #[test]
    fn strings_comments_and_jinja_are_left_alone() {
        let text = "select ordr_date, 'ordr_date' -- ordr_date\n/* ordr_date */ {# ordr_date #} {{ 'ordr_date' }}";
        assert_eq!(occurrences(text, "ordr_date"), vec!["ordr_date"]);
    }

    #[test]
    fn quoted_identifiers_match_whole_content() {
        let text = r#"select "Ordr_Date", "ordr_date x", `ordr_date` from t"#;
        let found = identifier_occurrences(text, &segment(text), "ordr_date");
        let texts: Vec<(&str, bool)> = found
            .iter()
            .map(|o| (&text[o.range.clone()], o.quoted))
            .collect();
        assert_eq!(texts, vec![("Ordr_Date", true), ("ordr_date", true)]);
    }

    #[test]
    fn words_glued_to_jinja_are_skipped() {
        assert_eq!(
            occurrences(
                "select {{ p }}ordr_date, ordr_date{{ s }}, {{ p }} ordr_date",
                "ordr_date"
            ),
            vec!["ordr_date"]
        );
    }

    #[test]
    fn qualified_occurrences_are_marked() {
        let text = r#"select o.ordr_date, ordr_date, "o"."ordr_date" from t"#;
        let found = identifier_occurrences(text, &segment(text), "ordr_date");
        let flags: Vec<bool> = found.iter().map(|o| o.qualified).collect();
        assert_eq!(flags, vec![true, false, true]);
    }

    #[test]
    fn alias_definitions_are_marked() {
        let text = "select o.ordr_date AS ordr_date, x as\n  \"ordr_date\", has ordr_date from t";
        let found = identifier_occurrences(text, &segment(text), "ordr_date");
        let flags: Vec<bool> = found.iter().map(|o| o.after_as).collect();
        assert_eq!(flags, vec![false, true, true, false]);
    }

    #[test]
    fn recasing_follows_the_writer() {
        assert_eq!(recase_like("ORDR_DATE", "order_date", false), "ORDER_DATE");
        assert_eq!(recase_like("ordr_date", "ORDER_DATE", false), "order_date");
        assert_eq!(recase_like("Ordr_Date", "order_date", false), "order_date");
        assert_eq!(recase_like("ORDR", "OrderDate", false), "OrderDate");
        assert_eq!(recase_like("Ordr_Date", "order_date", true), "order_date");
    }

    #[test]
    fn rejected_attempts_match_modulo_whitespace() {
        assert!(is_rejected("select a\nfrom t", &["select a from t"]));
        assert!(!is_rejected("select b from t", &["select a from t"]));
        assert!(!is_rejected("select a from t", &[]));
    }
}
