//! The rules, and the table [`RULES`] that [`crate::propose_fix`] walks.
//!
//! A rule is data: a name, the error classes it answers, and a plain function from the
//! input to an optional fix. Adding a rule is one module and one row here; the order of
//! the rows is the order in which rules are tried for a class.

mod aggregate_in_where;
mod alias_in_where;
mod alias_typo;
mod ambiguous_column;
mod bad_cast;
mod dangling_connector;
mod division_by_zero;
mod double_equals;
mod double_quoted_string;
mod hardcoded_relation;
mod macro_keyword;
mod misplaced_condition;
mod missing_comma;
mod missing_group_by;
mod misspelt_column;
mod misspelt_cte;
mod misspelt_materialization;
mod misspelt_ref;
mod misspelt_source;
mod renamed_column;
mod reserved_alias;
mod stray_comma;
mod string_concat;
mod suggested_name;
mod syntax_repair;
mod syntax_slips;
mod trailing_comma;
mod trailing_semicolon;
mod type_mismatch;
mod unclosed_block;
mod unclosed_jinja;
mod undefined_macro;
pub mod unknown_function;
mod window_in_where;
mod wrong_alias;

pub use aggregate_in_where::{
    aggregate_in_where, refuses_aggregate_in_where, AGGREGATE_IN_WHERE_PATTERNS,
};
pub use alias_in_where::{alias_in_where, ALIAS_BLIND_WHERE_ADAPTERS};
pub use alias_typo::{alias_typo, parse_missing_alias};
pub use ambiguous_column::{ambiguous_column, parse_ambiguous_column};
pub use bad_cast::{
    bad_cast, looks_like_dirty_value, parse_failed_conversion, ConversionPattern, FailedConversion,
    CONVERSION_PATTERNS,
};
pub use dangling_connector::dangling_connector;
pub use division_by_zero::{division_by_zero, parse_division_by_zero, FailingDivision};
pub use double_equals::{double_equals, DOUBLE_EQUALS_PATTERNS};
pub use double_quoted_string::{double_quoted_string, DOUBLE_QUOTES_NAME_IDENTIFIERS};
pub use hardcoded_relation::{hardcoded_relation, parse_missing_relation};
pub use macro_keyword::{
    macro_keyword, parse_signature, parse_unknown_keyword, MacroParameter, MacroSignature,
    UnknownKeyword,
};
pub use missing_comma::missing_comma;
pub use missing_group_by::{missing_group_by, parse_group_by_column};
pub use misspelt_column::misspelt_column;
pub use misspelt_cte::misspelt_cte;
pub use misspelt_materialization::{
    misspelt_materialization, parse_unknown_materialization, UnknownMaterialization,
    MODEL_MATERIALIZATIONS,
};
pub use misspelt_ref::{misspelt_ref, parse_missing_ref, MissingRef};
pub use misspelt_source::{misspelt_source, parse_missing_source, MissingSource};
pub use renamed_column::{rename_kind, renamed_column, RenameKind};
pub use reserved_alias::reserved_alias;
pub use stray_comma::stray_comma;
pub use string_concat::{refuses_string_plus, string_concat, STRING_PLUS_PATTERNS};
pub use suggested_name::{
    parse_unknown_name, suggested_name, NameKind, UnknownName, UnknownNamePattern,
    UNKNOWN_NAME_PATTERNS,
};
pub use syntax_repair::{misspelt_keyword, unclosed_case, unclosed_parenthesis};
pub use syntax_slips::{doubled_keyword, using_without_parentheses};
pub use trailing_comma::trailing_comma;
pub use trailing_semicolon::trailing_semicolon;
pub use type_mismatch::{
    iso_basic_date, parse_mismatch, type_mismatch, Mismatch, MismatchPattern, MISMATCH_PATTERNS,
};
pub use unclosed_block::{parse_unclosed_block, unclosed_block};
pub use unclosed_jinja::{parse_unclosed_tags, unclosed_jinja, UnclosedTag};
pub use undefined_macro::{parse_undefined_name, undefined_macro, DBT_BUILTINS};
pub use unknown_function::{parse_unknown_function, unknown_function};
pub use window_in_where::{
    refuses_window_in_where, window_in_where, QualifySupport, QUALIFY_ADAPTERS,
    WINDOW_IN_WHERE_PATTERNS,
};
pub use wrong_alias::wrong_alias;

use std::ops::Range;

use crate::tokens::{Token, TokenKind};
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
        name: double_quoted_string::NAME,
        // First for a missing column: a double-quoted word compared as a value that no
        // relation has is a string, and the rename rules would otherwise look for a
        // column spelt like it.
        classes: &[ErrorClass::MissingColumn],
        apply: double_quoted_string,
    },
    Rule {
        name: alias_in_where::NAME,
        // Before the rename rules: a name the same select defines as an alias is no
        // misspelling, whatever upstream column is spelt like it.
        classes: &[ErrorClass::MissingColumn],
        apply: alias_in_where,
    },
    Rule {
        name: renamed_column::NAME,
        // Before `misspelt_column`: a name that differs by whole words (`customer_name`
        // → `customer_full_name`) is a rename, and the edit distance of those words
        // would otherwise pass for a typo and rename the model's output column.
        classes: &[ErrorClass::MissingColumn],
        apply: renamed_column,
    },
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
    Rule {
        name: alias_typo::NAME,
        // DuckDB's `Referenced table "o2" not found` is classified as a missing column;
        // PostgreSQL's `missing FROM-clause entry for table "o2"` reads like a missing
        // relation.
        classes: &[ErrorClass::MissingColumn, ErrorClass::UnknownRelation],
        apply: alias_typo,
    },
    Rule {
        name: wrong_alias::NAME,
        // After the rules for a misspelt or renamed column: here the column exists, in
        // another relation of the select.
        classes: &[ErrorClass::MissingColumn],
        apply: wrong_alias,
    },
    Rule {
        name: misspelt_cte::NAME,
        // Before `hardcoded_relation`: a slip of the model's own CTE name (`loan` for the
        // CTE `loans`) would otherwise become a `ref()` of the node the CTE reads.
        classes: &[ErrorClass::UnknownRelation],
        apply: misspelt_cte,
    },
    Rule {
        name: hardcoded_relation::NAME,
        // After the rules that read dbt's own wordings: this one answers the
        // warehouse's "table does not exist" for a name written without `ref()`.
        classes: &[ErrorClass::UnknownRelation],
        apply: hardcoded_relation,
    },
    Rule {
        name: ambiguous_column::NAME,
        classes: &[ErrorClass::AmbiguousColumn],
        apply: ambiguous_column,
    },
    Rule {
        name: syntax_repair::KEYWORD_NAME,
        // Before `missing_comma`: `b form {{ ref('x') }}` also parses with a comma after
        // `b` — as a select without FROM reading a column `form`, which dbt then fails
        // on. A word one letter from a keyword that makes the model parse is the typo.
        classes: &[ErrorClass::SqlSyntax],
        apply: misspelt_keyword,
    },
    Rule {
        name: syntax_slips::DOUBLED_NAME,
        // Before `reserved_alias`, which reads PostgreSQL's stop at `from from` as a
        // reserved word to quote, and `missing_comma`: sqlparser takes `min(d) as as,
        // first_d` as a select item named `as`, a comma away from parsing.
        classes: &[ErrorClass::SqlSyntax],
        apply: doubled_keyword,
    },
    Rule {
        name: reserved_alias::NAME,
        // Early: it answers only a word the warehouse was measured to refuse, where the
        // parser stopped. sqlparser takes some of these models as written (`max(x)
        // end`), so the rules that need it to fail too pass them by; none of the other
        // syntax rules fired on the captured texts. After `misspelt_keyword`, which
        // never touches a word that is already a keyword.
        classes: &[ErrorClass::SqlSyntax],
        apply: reserved_alias,
    },
    Rule {
        name: syntax_slips::USING_NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: using_without_parentheses,
    },
    Rule {
        name: missing_comma::NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: missing_comma,
    },
    Rule {
        name: trailing_comma::NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: trailing_comma,
    },
    Rule {
        name: stray_comma::NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: stray_comma,
    },
    Rule {
        name: trailing_semicolon::NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: trailing_semicolon,
    },
    Rule {
        name: dangling_connector::NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: dangling_connector,
    },
    Rule {
        name: syntax_repair::PARENTHESIS_NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: unclosed_parenthesis,
    },
    Rule {
        name: syntax_repair::CASE_NAME,
        classes: &[ErrorClass::SqlSyntax],
        apply: unclosed_case,
    },
    Rule {
        name: missing_group_by::NAME,
        classes: &[ErrorClass::MissingGroupBy],
        apply: missing_group_by,
    },
    Rule {
        name: aggregate_in_where::NAME,
        // PostgreSQL files an aggregate in WHERE under the same SQLSTATE as a column
        // missing from GROUP BY (42803, grouping_error); the rule insists on its wording.
        classes: &[ErrorClass::MissingGroupBy],
        apply: aggregate_in_where,
    },
    Rule {
        name: unknown_function::NAME,
        classes: &[ErrorClass::UnknownFunction],
        apply: unknown_function,
    },
    Rule {
        name: suggested_name::NAME,
        // After the rules with their own knowledge of each class: the table of
        // equivalents for functions (`to_char` has a right answer, DuckDB's hint
        // `to_hours` is not it) and `ref()` for a hard-coded table. A misspelt type
        // name is classified a syntax error.
        classes: &[
            ErrorClass::UnknownFunction,
            ErrorClass::SqlSyntax,
            ErrorClass::UnknownRelation,
        ],
        apply: suggested_name,
    },
    Rule {
        name: division_by_zero::NAME,
        classes: &[ErrorClass::DivisionByZero],
        apply: division_by_zero,
    },
    Rule {
        name: double_equals::NAME,
        // PostgreSQL reads `==` as an operator no type has: before the rules that answer
        // a type mismatch with a cast.
        classes: &[ErrorClass::TypeMismatch],
        apply: double_equals,
    },
    Rule {
        name: string_concat::NAME,
        // Before `type_mismatch`, which leaves two strings alone.
        classes: &[ErrorClass::TypeMismatch],
        apply: string_concat,
    },
    Rule {
        name: type_mismatch::NAME,
        classes: &[ErrorClass::TypeMismatch],
        apply: type_mismatch,
    },
    Rule {
        name: bad_cast::NAME,
        // DuckDB's `Conversion Error` and PostgreSQL's `invalid input syntax` are data
        // errors: the SQL is valid, a value is not.
        classes: &[ErrorClass::RuntimeData],
        apply: bad_cast,
    },
    Rule {
        name: undefined_macro::NAME,
        // dbt's "'x' is undefined" is a compilation error; a detector may label it
        // either way. The rule insists on that wording.
        classes: &[ErrorClass::UndefinedMacro, ErrorClass::JinjaCompilation],
        apply: undefined_macro,
    },
    Rule {
        name: macro_keyword::NAME,
        // dbt's "takes no keyword argument" is a compilation error; the rule insists on
        // that wording.
        classes: &[ErrorClass::JinjaCompilation],
        apply: macro_keyword,
    },
    Rule {
        name: unclosed_jinja::NAME,
        classes: &[ErrorClass::JinjaCompilation],
        apply: unclosed_jinja,
    },
    Rule {
        name: unclosed_block::NAME,
        classes: &[ErrorClass::JinjaCompilation],
        apply: unclosed_block,
    },
    Rule {
        name: window_in_where::NAME,
        // A window in WHERE is a clause the query must be written with, not a value
        // problem; the rule insists on the warehouse's wording, so the syntax rules
        // before it never see it as theirs.
        classes: &[ErrorClass::SqlSyntax],
        apply: window_in_where,
    },
    Rule {
        name: misspelt_materialization::NAME,
        // dbt's "No materialization 'x' was found" is a configuration error made in the
        // model's own `config()`; the rule insists on that wording.
        classes: &[ErrorClass::YamlConfig],
        apply: misspelt_materialization,
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

/// How explanations name the warehouse of an adapter.
fn warehouse_name(adapter: &str) -> &'static str {
    match adapter.to_ascii_lowercase().as_str() {
        "duckdb" | "motherduck" => "DuckDB",
        "postgres" | "postgresql" => "PostgreSQL",
        "redshift" => "Redshift",
        "snowflake" => "Snowflake",
        "bigquery" => "BigQuery",
        _ => "The warehouse",
    }
}

/// A piece of SQL for an explanation: whitespace collapsed, at most 60 characters.
fn snippet(sql: &str) -> String {
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= 60 {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(57).collect();
    cut.push('…');
    cut
}

/// The text from the start of `at`'s line up to `at`; `None` when it holds Jinja (its
/// rendered form is unknown).
fn line_before(sql: &str, at: usize) -> Option<&str> {
    let start = sql[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &sql[start..at];
    (!before.contains("{{") && !before.contains("{%") && !before.contains("{#")).then_some(before)
}

/// A select item that is a plain column reference: `city`, `s.city`, `"City"`,
/// optionally with an alias (`s.city as town`, `s.city town`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnRef {
    /// The qualifier (`s` of `s.city`), unquoted.
    qualifier: Option<String>,
    /// The column name, unquoted.
    name: String,
    /// The reference as written, alias excluded: `s.city`.
    text: String,
    /// Token range of the reference, alias excluded.
    tokens: Range<usize>,
    /// Token index of the name.
    name_token: usize,
    /// Token index of the alias, if any.
    alias: Option<usize>,
}

impl ColumnRef {
    /// Case-insensitive: DuckDB's names are, and PostgreSQL folds unquoted ones.
    fn name_matches(&self, other: &str) -> bool {
        self.name.eq_ignore_ascii_case(other)
    }
}

/// Words that look like names but are values.
const VALUE_WORDS: &[&str] = &[
    "null",
    "true",
    "false",
    "current_date",
    "current_timestamp",
    "current_time",
    "localtimestamp",
    "localtime",
    "current_user",
    "session_user",
    "user",
];

/// The item as a plain column reference, if it is one.
fn column_ref(tokens: &[Token], sql: &str, item: Range<usize>) -> Option<ColumnRef> {
    let t = tokens.get(item.clone())?;
    let is_name = |t: &Token| {
        matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent)
            && !VALUE_WORDS.iter().any(|w| t.is_keyword(sql, w))
    };
    // name (. name)*
    let mut n = 1;
    if !t.first().is_some_and(is_name) {
        return None;
    }
    while n + 1 < t.len()
        && t[n].is_punct(sql, '.')
        && is_name(&t[n + 1])
        && !crate::tokens::separated(t, n)
        && !crate::tokens::separated(t, n + 1)
    {
        n += 2;
    }
    let alias = match &t[n..] {
        [] => None,
        [a] if a.kind == TokenKind::QuotedIdent
            || (a.kind == TokenKind::Word && !a.is_keyword(sql, "as")) =>
        {
            Some(item.start + n)
        }
        [kw, a]
            if kw.is_keyword(sql, "as")
                && matches!(a.kind, TokenKind::Word | TokenKind::QuotedIdent) =>
        {
            Some(item.start + n + 1)
        }
        _ => return None,
    };
    let unquote = |t: &Token| {
        let text = t.text(sql);
        if t.kind == TokenKind::QuotedIdent {
            text.get(1..text.len().saturating_sub(1))
                .unwrap_or(text)
                .to_owned()
        } else {
            text.to_owned()
        }
    };
    let name_token = item.start + n - 1;
    let qualifier = (n >= 3).then(|| unquote(&t[n - 3]));
    Some(ColumnRef {
        qualifier,
        name: unquote(&t[n - 1]),
        text: sql[t[0].range.start..t[n - 1].range.end].to_owned(),
        tokens: item.start..item.start + n,
        name_token,
        alias,
    })
}

/// Words that end a select item without being an implicit alias (`case … end`,
/// `x is null`).
const NOT_AN_ALIAS: &[&str] = &[
    "end", "null", "true", "false", "and", "or", "not", "is", "in", "as", "then", "else", "when",
    "distinct", "asc", "desc",
];

/// True when a select item that is not a plain column ends in an alias: `… as n`, or an
/// implicit one after a call, a literal or Jinja (`count(*) n`, `1 k`).
fn ends_in_alias(item: &[Token], sql: &str) -> bool {
    let [.., before, last] = item else {
        return false;
    };
    matches!(last.kind, TokenKind::Word | TokenKind::QuotedIdent)
        && !NOT_AN_ALIAS.iter().any(|w| last.is_keyword(sql, w))
        && (before.is_keyword(sql, "as")
            || matches!(
                before.kind,
                TokenKind::Number | TokenKind::StringLit | TokenKind::Jinja
            )
            || before.is_punct(sql, ')'))
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
        assert_eq!(
            names(ErrorClass::MissingColumn),
            vec![
                "double_quoted_string",
                "alias_in_where",
                "renamed_column",
                "misspelt_column",
                "alias_typo",
                "wrong_alias"
            ]
        );
        assert_eq!(
            names(ErrorClass::SqlSyntax),
            vec![
                "misspelt_keyword",
                "doubled_keyword",
                "reserved_alias",
                "using_without_parentheses",
                "missing_comma",
                "trailing_comma",
                "stray_comma",
                "trailing_semicolon",
                "dangling_connector",
                "unclosed_parenthesis",
                "unclosed_case",
                "suggested_name",
                "window_in_where"
            ]
        );
        assert_eq!(
            names(ErrorClass::MissingGroupBy),
            vec!["missing_group_by", "aggregate_in_where"]
        );
        assert_eq!(
            names(ErrorClass::UnknownFunction),
            vec!["unknown_function", "suggested_name"]
        );
        assert_eq!(names(ErrorClass::AmbiguousColumn), vec!["ambiguous_column"]);
        assert_eq!(names(ErrorClass::BadRef), vec!["misspelt_ref"]);
        assert_eq!(names(ErrorClass::UnknownSource), vec!["misspelt_source"]);
        assert_eq!(
            names(ErrorClass::UnknownRelation),
            vec![
                "misspelt_ref",
                "misspelt_source",
                "alias_typo",
                "misspelt_cte",
                "hardcoded_relation",
                "suggested_name"
            ]
        );
        assert_eq!(names(ErrorClass::UndefinedMacro), vec!["undefined_macro"]);
        assert_eq!(names(ErrorClass::DivisionByZero), vec!["division_by_zero"]);
        assert_eq!(
            names(ErrorClass::JinjaCompilation),
            vec![
                "undefined_macro",
                "macro_keyword",
                "unclosed_jinja",
                "unclosed_block"
            ]
        );
        assert_eq!(
            names(ErrorClass::TypeMismatch),
            vec!["double_equals", "string_concat", "type_mismatch"]
        );
        assert_eq!(names(ErrorClass::RuntimeData), vec!["bad_cast"]);
        assert_eq!(
            names(ErrorClass::YamlConfig),
            vec!["misspelt_materialization"]
        );
        assert!(names(ErrorClass::Connection).is_empty());
        assert!(names(ErrorClass::Other).is_empty());
    }
}
