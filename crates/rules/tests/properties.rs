//! Properties of `propose_fix` over generated inputs: it never panics, and a fix never
//! changes the model's Jinja, nor its string literals — except the literals
//! `unknown_function` translates (date formats, which must then be translatable) or
//! consumes (the `'day'` of a day difference).
//!
//! Two generators: one builds noisy dbt-shaped models from pieces that matter to the
//! rules (select items with and without aliases, missing and trailing commas, string
//! literals and comments that contain the names in play, Jinja expressions, statements
//! and comments, Jinja inside strings, joins, `group by` lists by name or position) and
//! pairs them with error texts shaped like the real ones in `real_errors*.rs`, naming
//! tokens that do and do not occur in the model — the rules rarely fire on those. The
//! other injects exactly one defect into a clean model and pairs it with the matching
//! error, so that every rule fires on a good share of its cases.

use dbtops_rules::rules::unknown_function::{
    postgres_format_to_strftime, strftime_format_to_postgres,
};
use dbtops_rules::segment::{segment, SegmentKind};
use dbtops_rules::{propose_fix, ErrorClass, ParentColumns, RuleInput};
use proptest::prelude::*;

/// Names the models use and the errors name; the first ones often, so that a token in
/// an error is often one the model has.
const COMMON_NAMES: &[&str] = &["order_id", "status", "city", "customer_name", "store_id"];
const RARE_NAMES: &[&str] = &[
    "customer_full_name",
    "full_name",
    "name",
    "o",
    "o2",
    "s",
    "c",
    "from",
    "as",
    "day",
];

const FUNCTIONS: &[&str] = &[
    "to_char",
    "strftime",
    "nvl",
    "ifnull",
    "isnull",
    "getdate",
    "datediff",
    "iff",
    "nvl2",
    "charindex",
    "len",
    "coalesce",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(COMMON_NAMES).prop_map(str::to_owned),
        1 => prop::sample::select(RARE_NAMES).prop_map(str::to_owned),
    ]
}

/// What an error names: a name, or a function the models call.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => name(),
        1 => prop::sample::select(FUNCTIONS).prop_map(str::to_owned),
    ]
}

/// A string literal whose text may look like SQL, a format or Jinja.
fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("'YYYY-MM'".to_owned()),
        Just("'%Y-%m'".to_owned()),
        Just("'day'".to_owned()),
        Just("'it''s, status'".to_owned()),
        Just("'{{ var(\"x\") }}'".to_owned()),
        Just("'a, b as c'".to_owned()),
        name().prop_map(|n| format!("'{n}'")),
        name().prop_map(|n| format!("'{n}, {n} from'")),
    ]
}

/// One select item.
fn item() -> impl Strategy<Value = String> {
    let simple = prop_oneof![
        6 => name(),
        4 => (prop::sample::select(&["o", "s"][..]), name()).prop_map(|(q, n)| format!("{q}.{n}")),
        1 => literal(),
        1 => Just("{{ cents_to_dollars('price_cents') }}".to_owned()),
        1 => Just("count(*)".to_owned()),
        1 => (prop::sample::select(FUNCTIONS), name(), literal())
            .prop_map(|(f, a, l)| format!("{f}({a}, {l})")),
        1 => (prop::sample::select(FUNCTIONS), name()).prop_map(|(f, a)| format!("{f}({a})")),
        1 => prop::sample::select(FUNCTIONS).prop_map(|f| format!("{f}()")),
        1 => (literal(), name(), name())
            .prop_map(|(l, a, b)| format!("datediff({l}, {a}, {b})")),
    ];
    let alias = prop_oneof![
        6 => Just(String::new()),
        3 => name().prop_map(|a| format!(" as {a}")),
        1 => name().prop_map(|a| format!(" {a}")),
    ];
    (simple, alias).prop_map(|(e, alias)| format!("{e}{alias}"))
}

/// What goes between two select items.
/// Mostly a comma; now and then none (the defect `missing_comma` looks for).
fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just(", "),
        4 => Just(",\n    "),
        2 => Just(", -- a, b\n    "),
        2 => Just(",\n    {# status, city #}\n    "),
        2 => Just(", /* x, y */ "),
        1 => Just("\n    "),
        1 => Just(" "),
    ]
}

fn model() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec((item(), separator()), 1..6),
        prop::bool::weighted(0.1),
        prop::option::of((
            prop::sample::select(&["join", "left join", "full join"][..]),
            name(),
        )),
        prop::option::of(literal()),
        prop::option::of(prop::collection::vec(
            prop_oneof![
                name(),
                (name(), name()).prop_map(|(q, n)| format!("{q}.{n}")),
                (1u8..5).prop_map(|n| n.to_string())
            ],
            1..4,
        )),
        any::<bool>(),
    )
        .prop_map(|(config, items, trailing, join, filter, group, in_cte)| {
            let mut sql = String::new();
            if config {
                sql.push_str("{{ config(materialized='table') }}\n-- status, city\n");
            }
            let mut select = String::from("select\n    ");
            for (i, (it, sep)) in items.iter().enumerate() {
                select.push_str(it);
                if i + 1 < items.len() {
                    select.push_str(sep);
                }
            }
            if trailing {
                select.push(',');
            }
            select.push_str("\nfrom {{ ref('stg_orders') }} as o");
            if let Some((kind, on)) = join {
                select.push_str(&format!(
                    "\n{kind} {{{{ ref('stg_stores') }}}} as s on o.{on} = s.{on}"
                ));
            }
            if let Some(l) = filter {
                select.push_str(&format!(
                    "\nwhere status = {l} {{% if x %}}and 1 = 1{{% endif %}}"
                ));
            }
            if let Some(keys) = group {
                select.push_str("\ngroup by ");
                select.push_str(&keys.join(", "));
            }
            if in_cte {
                sql.push_str(&format!("with t as (\n{select}\n)\nselect * from t\n"));
            } else {
                sql.push_str(&select);
                sql.push('\n');
            }
            sql
        })
}

/// An error text shaped like a real one, naming `token`, and the class the detector
/// gives it (sometimes a wrong one: a rule must still not break anything).
fn message() -> impl Strategy<Value = (String, ErrorClass)> {
    (token(), name(), 0usize..12, 0usize..40, any::<bool>(), class()).prop_map(
        |(token, other, shape, caret, right_class, wrong_class)| {
            let echo = format!("\n  \n  LINE 7:     {token} as {other}\n{}^^^^", " ".repeat(caret));
            let (text, class) = match shape {
                0 => (format!("Runtime Error in model m (models/m.sql)\n  Parser Error: syntax error at or near \"{token}\"{echo}"), ErrorClass::SqlSyntax),
                1 => (format!("syntax error at or near \"{token}\"\nLINE 1: ... {other} {token} from ...\n{}^", " ".repeat(caret)), ErrorClass::SqlSyntax),
                2 => (format!("Binder Error: column \"{token}\" must appear in the GROUP BY clause or must be part of an aggregate function."), ErrorClass::MissingGroupBy),
                3 => (format!("column \"{other}.{token}\" must appear in the GROUP BY clause or be used in an aggregate function"), ErrorClass::MissingGroupBy),
                4 => (format!("Catalog Error: Scalar Function with name {token} does not exist!\nDid you mean \"{other}\"?"), ErrorClass::UnknownFunction),
                5 => (format!("function {token}(integer, unknown) does not exist"), ErrorClass::UnknownFunction),
                6 => (format!("Binder Error: Referenced column \"{token}\" not found in FROM clause!\n  Candidate bindings: \"{other}\""), ErrorClass::MissingColumn),
                7 => (format!("column \"{token}\" does not exist"), ErrorClass::MissingColumn),
                8 => (format!("Binder Error: Referenced table \"{token}\" not found!\nCandidate tables: \"{other}\""), ErrorClass::MissingColumn),
                9 => (format!("missing FROM-clause entry for table \"{token}\""), ErrorClass::UnknownRelation),
                10 => (format!("Binder Error: Ambiguous reference to column name \"{token}\" (use: '{other}.{token}' or 'o.{token}')"), ErrorClass::AmbiguousColumn),
                _ => (format!("column reference \"{token}\" is ambiguous"), ErrorClass::AmbiguousColumn),
            };
            (text, if right_class { class } else { wrong_class })
        },
    )
}

fn class() -> impl Strategy<Value = ErrorClass> {
    prop::sample::select(
        &[
            ErrorClass::SqlSyntax,
            ErrorClass::MissingGroupBy,
            ErrorClass::UnknownFunction,
            ErrorClass::MissingColumn,
            ErrorClass::AmbiguousColumn,
            ErrorClass::UnknownRelation,
        ][..],
    )
}

/// The texts of the segments of the kinds `keep` selects, in order.
fn pieces(sql: &str, keep: impl Fn(SegmentKind) -> bool) -> Vec<&str> {
    segment(sql)
        .into_iter()
        .filter(|s| keep(s.kind))
        .map(|s| &sql[s.range])
        .collect()
}

const PARENT_COLUMNS: &[&str] = &[
    "order_id",
    "order_date",
    "status",
    "customer_full_name",
    "full_name",
    "store_id",
    "city",
];

fn check(sql: &str, message: &str, class: ErrorClass, adapter: &str) -> Result<(), TestCaseError> {
    let parents = [ParentColumns {
        name: "stg_orders",
        columns: PARENT_COLUMNS,
    }];
    let input = RuleInput {
        error_class: class,
        error_message: message,
        model_name: "m",
        model_sql: sql,
        parents: &parents,
        adapter,
        ..RuleInput::default()
    };
    let Some(fix) = propose_fix(&input) else {
        return Ok(());
    };
    prop_assert_ne!(&fix.fixed_sql, sql);
    prop_assert_eq!(
        pieces(sql, |k| k.is_jinja()),
        pieces(&fix.fixed_sql, |k| k.is_jinja()),
        "Jinja changed by {}",
        fix.rule
    );
    let before = pieces(sql, |k| k == SegmentKind::StringLiteral);
    let after = pieces(&fix.fixed_sql, |k| k == SegmentKind::StringLiteral);
    if fix.rule == "unknown_function" {
        // Every literal that is gone is a date format the rule translated, or the
        // `'day'` part of a day difference it turned into a subtraction.
        for gone in before.iter().filter(|l| !after.contains(l)) {
            let inner = gone.trim_matches('\'');
            prop_assert!(
                postgres_format_to_strftime(inner).is_some()
                    || strftime_format_to_postgres(inner).is_some()
                    || inner.eq_ignore_ascii_case("day")
                    || inner.eq_ignore_ascii_case("days"),
                "literal {} changed by unknown_function",
                gone
            );
        }
    } else if fix.rule == "missing_group_by" {
        // A GROUP BY written from scratch copies its keys from the select list, string
        // literals included: the old literals are all still there, in order, and every
        // new one is a copy of an old one.
        let mut rest = after.iter();
        prop_assert!(
            before.iter().all(|b| rest.any(|a| a == b)),
            "a string literal changed by missing_group_by"
        );
        prop_assert!(
            after.iter().all(|a| before.contains(a)),
            "a new string literal from missing_group_by"
        );
    } else {
        prop_assert_eq!(before, after, "a string literal changed by {}", fix.rule);
    }
    Ok(())
}

/// A select item of a clean model: its SQL and, when it is a plain column, its name.
#[derive(Debug, Clone)]
struct CleanItem {
    sql: String,
    column: Option<String>,
    function: Option<&'static str>,
}

fn clean_item() -> impl Strategy<Value = CleanItem> {
    let plain = |sql: String, column: &str| CleanItem {
        sql,
        column: Some(column.to_owned()),
        function: None,
    };
    let other = |sql: String, function: Option<&'static str>| CleanItem {
        sql,
        column: None,
        function,
    };
    prop_oneof![
        3 => prop::sample::select(COMMON_NAMES).prop_map(move |n| plain(n.to_owned(), n)),
        3 => prop::sample::select(COMMON_NAMES).prop_map(move |n| plain(format!("o.{n}"), n)),
        1 => (prop::sample::select(COMMON_NAMES), prop::sample::select(&["a1", "a2", "a3"][..]))
            .prop_map(move |(n, a)| plain(format!("o.{n} as {a}"), n)),
        1 => literal().prop_map(move |l| other(format!("{l} as lit"), None)),
        1 => Just(other("{{ cents_to_dollars('o.order_id') }} as revenue".to_owned(), None)),
        1 => Just(other("count(*) as n".to_owned(), None)),
        1 => prop::sample::select(&[
            ("to_char(o.order_date, 'YYYY-MM') as m", "to_char"),
            ("to_char(o.order_date, 'Month') as m", "to_char"),
            ("to_char(o.order_date, '{{ var(\"f\") }}') as m", "to_char"),
            ("strftime(o.order_date, '%Y-%m') as m", "strftime"),
            ("nvl(o.status, 'n/a') as s1", "nvl"),
            ("ifnull(o.status, '{{ var(\"x\") }}') as s2", "ifnull"),
            ("getdate() as loaded_at", "getdate"),
            ("datediff('day', o.order_date, current_date) as d", "datediff"),
            ("iff(o.status = 'a, b', 'x', 'y') as f", "iff"),
            ("charindex('e', o.status) as p", "charindex"),
        ][..]).prop_map(move |(sql, f)| other(sql.to_owned(), Some(f))),
    ]
}

/// One defect injected into an otherwise clean model.
#[derive(Debug, Clone, Copy)]
enum Defect {
    MissingComma,
    TrailingComma,
    MissingGroupKey,
    UnknownFunction,
    AliasTypo,
    Ambiguous,
    Renamed,
}

/// A clean model with one defect, the error a warehouse gives for it, its class and the
/// adapter.
fn defective() -> impl Strategy<Value = (String, String, ErrorClass, &'static str)> {
    (
        prop::collection::vec(clean_item(), 2..6),
        prop::collection::vec(prop::sample::select(&[", ", ",\n    ", ", -- a, b\n    ", ",\n    {# x, y #}\n    "][..]), 5),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(&[
            Defect::MissingComma,
            Defect::TrailingComma,
            Defect::MissingGroupKey,
            Defect::UnknownFunction,
            Defect::AliasTypo,
            Defect::Ambiguous,
            Defect::Renamed,
        ][..]),
        any::<prop::sample::Index>(),
        prop::sample::select(&["duckdb", "postgres"][..]),
    )
        .prop_map(|(mut items, seps, join, positional, defect, pick, adapter)| {
            let k = pick.index(items.len());
            let mut message = String::new();
            let mut class = ErrorClass::Other;
            let mut drop_comma = None;
            let mut trailing = false;
            let mut drop_key = None;
            match defect {
                Defect::MissingComma if k + 1 < items.len() => {
                    drop_comma = Some(k);
                    let next = items[k + 1].sql.split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("").to_owned();
                    message = format!("Parser Error: syntax error at or near \"{next}\"");
                    class = ErrorClass::SqlSyntax;
                }
                Defect::TrailingComma => {
                    trailing = true;
                    message = "syntax error at or near \"from\"".to_owned();
                    class = ErrorClass::SqlSyntax;
                }
                Defect::MissingGroupKey => {
                    if let Some(c) = &items[k].column {
                        drop_key = Some(k);
                        message = format!("Binder Error: column \"{c}\" must appear in the GROUP BY clause or must be part of an aggregate function.");
                        class = ErrorClass::MissingGroupBy;
                    }
                }
                Defect::UnknownFunction => {
                    if let Some(f) = items.iter().find_map(|i| i.function) {
                        message = if adapter == "duckdb" {
                            format!("Catalog Error: Scalar Function with name {f} does not exist!")
                        } else {
                            format!("function {f}(date, unknown) does not exist")
                        };
                        class = ErrorClass::UnknownFunction;
                    }
                }
                Defect::AliasTypo => {
                    items[k].sql = items[k].sql.replacen("o.", "o2.", 1);
                    message = "Binder Error: Referenced table \"o2\" not found!\nCandidate tables: \"o\"".to_owned();
                    class = ErrorClass::MissingColumn;
                }
                Defect::Ambiguous => {
                    items[k] = CleanItem { sql: "store_id".to_owned(), column: Some("store_id".to_owned()), function: None };
                    message = "Binder Error: Ambiguous reference to column name \"store_id\" (use: 'o.store_id' or 's.store_id')".to_owned();
                    class = ErrorClass::AmbiguousColumn;
                }
                Defect::Renamed => {
                    items[k] = CleanItem { sql: "o.customer_name".to_owned(), column: Some("customer_name".to_owned()), function: None };
                    message = "Binder Error: Referenced column \"customer_name\" not found in FROM clause!".to_owned();
                    class = ErrorClass::MissingColumn;
                }
                Defect::MissingComma => {}
            }
            let mut sql = String::from("{{ config(materialized='view') }}\nselect\n    ");
            for (i, item) in items.iter().enumerate() {
                sql.push_str(&item.sql);
                if i + 1 < items.len() {
                    if drop_comma == Some(i) {
                        sql.push_str("\n    ");
                    } else {
                        sql.push_str(seps[i % seps.len()]);
                    }
                }
            }
            if trailing {
                sql.push(',');
            }
            sql.push_str("\nfrom {{ ref('stg_orders') }} as o\n");
            if join || matches!(defect, Defect::Ambiguous) {
                sql.push_str("left join {{ ref('stg_stores') }} as s on o.store_id = s.store_id\n");
            }
            sql.push_str("where o.status <> 'it''s -- not, a comment'\n");
            let keys: Vec<String> = items
                .iter()
                .enumerate()
                .filter(|(i, item)| item.column.is_some() && Some(*i) != drop_key)
                .map(|(i, item)| {
                    if positional {
                        (i + 1).to_string()
                    } else {
                        item.sql.split(" as ").next().unwrap_or("").to_owned()
                    }
                })
                .collect();
            let aggregated = items.iter().any(|i| i.sql.starts_with("count("));
            if (aggregated || drop_key.is_some()) && !keys.is_empty() {
                sql.push_str("group by ");
                sql.push_str(&keys.join(", "));
                sql.push('\n');
            }
            (sql, message, class, adapter)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fixes_keep_jinja_and_strings(
        sql in model(),
        (message, class) in message(),
        adapter in prop::sample::select(&["duckdb", "postgres", ""][..]),
    ) {
        check(&sql, &message, class, adapter)?;
    }

    #[test]
    fn fixes_of_single_defects_keep_jinja_and_strings((sql, message, class, adapter) in defective()) {
        check(&sql, &message, class, adapter)?;
    }

    #[test]
    fn arbitrary_text_never_panics(
        sql in "[a-z_ ,.()'\"{}%#*\n\\-/:;=0-9]{0,160}",
        (message, class) in message(),
    ) {
        check(&sql, &message, class, "duckdb")?;
    }

    #[test]
    fn arbitrary_unicode_never_panics(sql in any::<String>(), message in any::<String>(), class in class()) {
        let input = RuleInput {
            error_class: class,
            error_message: &message,
            model_sql: &sql,
            adapter: "postgres",
            ..RuleInput::default()
        };
        let _ = propose_fix(&input);
    }
}
