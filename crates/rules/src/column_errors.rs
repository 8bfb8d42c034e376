//! Reads the missing column's name — and any candidates the warehouse suggests — out of
//! an adapter's error text.
//!
//! The knowledge lives in two tables of data, [`MISSING_COLUMN_PATTERNS`] and
//! [`CANDIDATE_HINT_PATTERNS`]: supporting another adapter or another wording is a new
//! row, not new code. Each row names the adapters it was seen on; the input's adapter
//! decides which rows are tried first, and the rest are tried after, because the text
//! is the authority (a `motherduck` or `redshift` target speaks its parent's dialect).

use std::sync::OnceLock;

use regex::Regex;

/// One way an adapter reports a column that does not exist.
#[derive(Debug, Clone, Copy)]
pub struct MissingColumnPattern {
    /// A short name for logs and explanations.
    pub name: &'static str,
    /// The adapters (dbt `type`) that produce this wording, tried first for them.
    pub adapters: &'static [&'static str],
    /// A regex with a `column` group (the missing name, possibly qualified and quoted,
    /// e.g. `'STG.START_TIME'`), and optionally a `qualifier` group (the table alias).
    pub regex: &'static str,
}

/// The wordings of "this column does not exist", as produced by the warehouses.
///
/// The DuckDB and Postgres rows were captured from real runs (see
/// `tests/real_errors.rs`); the Snowflake and BigQuery rows follow the wording in their
/// error references and in public dbt issue reports.
pub const MISSING_COLUMN_PATTERNS: &[MissingColumnPattern] = &[
    MissingColumnPattern {
        name: "duckdb_referenced_column",
        adapters: &["duckdb"],
        regex: r#"Referenced column "(?P<column>[^"]+)" not found in FROM clause"#,
    },
    MissingColumnPattern {
        name: "duckdb_values_list",
        adapters: &["duckdb"],
        regex: r#"Values list "(?P<qualifier>[^"]+)" does not have a column named "(?P<column>[^"]+)""#,
    },
    MissingColumnPattern {
        name: "duckdb_table",
        adapters: &["duckdb"],
        regex: r#"Table "(?P<qualifier>[^"]+)" does not have a column named "(?P<column>[^"]+)""#,
    },
    MissingColumnPattern {
        name: "postgres_quoted",
        adapters: &["postgres", "redshift"],
        regex: r#"column "(?P<column>[^"]+)"(?: of relation "[^"]+")? does not exist"#,
    },
    MissingColumnPattern {
        name: "postgres_qualified",
        adapters: &["postgres", "redshift"],
        regex: r#"column (?P<qualifier>[^\s".]+(?:\.[^\s".]+)*)\.(?P<column>[^\s".]+) does not exist"#,
    },
    MissingColumnPattern {
        name: "snowflake_invalid_identifier",
        adapters: &["snowflake"],
        regex: r#"invalid identifier '(?P<column>[^']+)'"#,
    },
    MissingColumnPattern {
        name: "bigquery_unrecognized_name",
        adapters: &["bigquery"],
        regex: r#"Unrecognized name: (?P<column>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)"#,
    },
];

/// One way an adapter suggests existing columns next to the error.
#[derive(Debug, Clone, Copy)]
pub struct CandidateHintPattern {
    /// A short name for logs and explanations.
    pub name: &'static str,
    /// A regex whose `list` group holds one or more double-quoted or bare names.
    pub regex: &'static str,
    /// The most names the warehouse puts in one list of this wording, when it cuts the
    /// list there: a list that long may have left out columns as near as those shown.
    pub most: Option<usize>,
}

/// Suggestions the warehouses print with the error. They are only candidates — scored
/// like every other — because the hints can be wrong (DuckDB's "Did you mean" proposes
/// `to_hours` for `to_char`) and are sometimes partial (DuckDB lists the bindings
/// nearest by its own measure, not all of them).
pub const CANDIDATE_HINT_PATTERNS: &[CandidateHintPattern] = &[
    CandidateHintPattern {
        // `Candidate bindings: "customer_id", "order_id"`, and after a `Table … does not
        // have a column` error `Candidate bindings: : "order_date"`.
        name: "duckdb_candidate_bindings",
        regex: r#"Candidate bindings:[\s:]*(?P<list>"[^"\n]*"(?:,\s*"[^"\n]*")*)"#,
        // DuckDB keeps its five nearest bindings (`StringUtil::TopNStrings`, n = 5).
        most: Some(5),
    },
    CandidateHintPattern {
        // `HINT:  Perhaps you meant to reference the column "o.order_date".`, or
        // `… the column "a.x" or the column "b.x".`
        name: "postgres_perhaps_you_meant",
        regex: r#"Perhaps you meant to reference the column (?P<list>"[^"\n]*"(?: or the column "[^"\n]*")*)"#,
        // Only the nearest names (within three edits), ties included: never cut by count.
        most: None,
    },
    CandidateHintPattern {
        // `Unrecognized name: custmer_id; Did you mean customer_id?`
        name: "bigquery_did_you_mean",
        regex: r#"Unrecognized name: [^;\n]*; Did you mean (?P<list>[A-Za-z_][A-Za-z0-9_]*)\?"#,
        most: None,
    },
];

/// The missing column as read from an error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumn {
    /// The column name, unquoted, as the warehouse printed it (Snowflake upper-cases).
    pub column: String,
    /// The table alias or name the column was qualified with, if the error says.
    pub qualifier: Option<String>,
    /// Existing column names the warehouse suggested, unqualified, in its order.
    pub hinted_candidates: Vec<String>,
    /// Suggested names the warehouse listed under two or more relations
    /// (`"c.order_date", "o.order_date"`): used unqualified they would be ambiguous.
    pub hinted_in_several_relations: Vec<String>,
    /// True when a list of suggestions is as long as its wording's
    /// [`CandidateHintPattern::most`]: columns as near as those listed may be missing
    /// from it, so it cannot show that a candidate is the only one of its kind.
    pub hints_may_be_cut: bool,
    /// The [`MissingColumnPattern::name`] that matched.
    pub pattern: &'static str,
}

struct Compiled {
    missing: Vec<(MissingColumnPattern, Regex)>,
    hints: Vec<(CandidateHintPattern, Regex)>,
}

/// The tables, compiled once. A row whose regex does not compile is skipped rather than
/// panicking in a service; the unit test `every_pattern_compiles` keeps that from ever
/// happening silently.
fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| Compiled {
        missing: MISSING_COLUMN_PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p.regex).ok().map(|r| (*p, r)))
            .collect(),
        hints: CANDIDATE_HINT_PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p.regex).ok().map(|r| (*p, r)))
            .collect(),
    })
}

/// True when a pattern row lists `adapter` (dbt's adapter `type`, case-insensitive;
/// `motherduck` counts as `duckdb`).
fn speaks(pattern: &MissingColumnPattern, adapter: &str) -> bool {
    let adapter = adapter.to_ascii_lowercase();
    let adapter = match adapter.as_str() {
        "motherduck" => "duckdb",
        other => other,
    };
    pattern.adapters.contains(&adapter)
}

/// Reads the missing column from `message`, trying `adapter`'s wordings first.
pub fn parse_missing_column(message: &str, adapter: &str) -> Option<MissingColumn> {
    let compiled = compiled();
    let preferred = compiled.missing.iter().filter(|(p, _)| speaks(p, adapter));
    let others = compiled.missing.iter().filter(|(p, _)| !speaks(p, adapter));
    let (pattern, caps) = preferred
        .chain(others)
        .find_map(|(p, re)| re.captures(message).map(|c| (p, c)))?;
    let raw_column = caps.name("column")?.as_str();
    let (mut qualifier, column) = split_qualified(raw_column);
    if let Some(q) = caps.name("qualifier") {
        qualifier = Some(unquote(q.as_str()).to_owned());
    }
    if column.is_empty() {
        return None;
    }
    let hints = hints(message);
    let mut hinted_in_several_relations = Vec::new();
    for (_, name) in &hints {
        let relations: Vec<&String> = hints
            .iter()
            .filter(|(q, n)| n == name && q.is_some())
            .filter_map(|(q, _)| q.as_ref())
            .collect();
        let distinct = relations
            .iter()
            .enumerate()
            .filter(|(i, q)| !relations[..*i].contains(q))
            .count();
        if distinct >= 2 && !hinted_in_several_relations.contains(name) {
            hinted_in_several_relations.push(name.clone());
        }
    }
    Some(MissingColumn {
        column,
        qualifier,
        hinted_candidates: unique_names(&hints),
        hinted_in_several_relations,
        hints_may_be_cut: hints_may_be_cut(message),
        pattern: pattern.name,
    })
}

/// Every name the warehouse suggested anywhere in `message`, qualifiers stripped
/// (`"c.order_date"` → `order_date`), duplicates removed.
pub fn hinted_candidates(message: &str) -> Vec<String> {
    unique_names(&hints(message))
}

/// The relations the warehouse suggested reading `column` from
/// (`Perhaps you meant to reference the column "o.order_status"` → `o`), in order,
/// compared without case; empty when its hints name no relation for it.
pub fn hinted_qualifiers(message: &str, column: &str) -> Vec<String> {
    let mut qualifiers: Vec<String> = Vec::new();
    for (qualifier, name) in hints(message) {
        if let Some(q) = qualifier {
            if name.eq_ignore_ascii_case(column) && !qualifiers.contains(&q) {
                qualifiers.push(q);
            }
        }
    }
    qualifiers
}

fn unique_names(hints: &[(Option<String>, String)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, name) in hints {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// True when some list of suggestions in `message` holds as many names as its wording
/// ever shows.
fn hints_may_be_cut(message: &str) -> bool {
    compiled().hints.iter().any(|(pattern, re)| {
        pattern.most.is_some_and(|most| {
            re.captures_iter(message)
                .filter_map(|caps| caps.name("list"))
                .any(|list| list_items(list.as_str()).len() >= most)
        })
    })
}

/// Every (qualifier, name) the warehouse suggested, in order, duplicates kept.
fn hints(message: &str) -> Vec<(Option<String>, String)> {
    let compiled = compiled();
    let mut found = Vec::new();
    for (_, re) in &compiled.hints {
        for caps in re.captures_iter(message) {
            let Some(list) = caps.name("list") else {
                continue;
            };
            for raw in list_items(list.as_str()) {
                let (qualifier, name) = split_qualified(raw);
                if !name.is_empty() {
                    found.push((qualifier, name));
                }
            }
        }
    }
    found
}

/// The names in a hint list: every double-quoted item when there are quotes
/// (`"a", "b"`, `"a" or the column "b"`), else the whole list as one bare name.
fn list_items(list: &str) -> Vec<&str> {
    if !list.contains('"') {
        return vec![list.trim()];
    }
    // Splitting on `"` leaves the quoted items at the odd positions.
    list.split('"').skip(1).step_by(2).collect()
}

/// Splits `o.order_date`, `"STG"."START_TIME"` or `STG.START_TIME` at the last dot that
/// is outside quotes, and removes the quotes.
fn split_qualified(raw: &str) -> (Option<String>, String) {
    let raw = raw.trim();
    let mut in_quotes = None;
    let mut split_at = None;
    for (i, c) in raw.char_indices() {
        match (c, in_quotes) {
            ('"' | '`', None) => in_quotes = Some(c),
            (c, Some(q)) if c == q => in_quotes = None,
            ('.', None) => split_at = Some(i),
            _ => {}
        }
    }
    match split_at {
        Some(i) => (
            Some(unquote(&raw[..i]).to_owned()),
            unquote(&raw[i + 1..]).to_owned(),
        ),
        None => (None, unquote(raw).to_owned()),
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '`'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for p in MISSING_COLUMN_PATTERNS {
            let re = Regex::new(p.regex).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(
                re.capture_names().any(|n| n == Some("column")),
                "{}",
                p.name
            );
        }
        for p in CANDIDATE_HINT_PATTERNS {
            let re = Regex::new(p.regex).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(re.capture_names().any(|n| n == Some("list")), "{}", p.name);
        }
        assert_eq!(compiled().missing.len(), MISSING_COLUMN_PATTERNS.len());
        assert_eq!(compiled().hints.len(), CANDIDATE_HINT_PATTERNS.len());
    }

    #[test]
    fn qualified_names_split_outside_quotes() {
        assert_eq!(
            split_qualified("STG.START_TIME"),
            (Some("STG".into()), "START_TIME".into())
        );
        assert_eq!(
            split_qualified(r#""a.b"."c d""#),
            (Some("a.b".into()), "c d".into())
        );
        assert_eq!(
            split_qualified(r#""Company Symbol""#),
            (None, "Company Symbol".into())
        );
        assert_eq!(split_qualified("x"), (None, "x".into()));
    }

    #[test]
    fn adapter_rows_are_preferred_but_others_still_apply() {
        // A Postgres-worded message under an unknown adapter name is still read.
        let m = parse_missing_column(r#"column "ordr_date" does not exist"#, "mystery");
        assert_eq!(m.map(|m| m.pattern), Some("postgres_quoted"));
    }

    #[test]
    fn motherduck_speaks_duckdb() {
        let p = MISSING_COLUMN_PATTERNS[0];
        assert!(speaks(&p, "MotherDuck"));
        assert!(!speaks(&p, "postgres"));
    }

    #[test]
    fn postgres_hint_with_two_columns() {
        assert_eq!(
            hinted_candidates(
                r#"HINT:  Perhaps you meant to reference the column "a.order_date" or the column "b.order_day"."#
            ),
            vec!["order_date".to_owned(), "order_day".to_owned()]
        );
    }

    #[test]
    fn names_bound_in_several_relations() {
        let m = parse_missing_column(
            "Binder Error: Referenced column \"ordr_date\" not found in FROM clause!\n  \
             Candidate bindings: \"c.order_date\", \"o.order_date\", \"c.order_id\"",
            "duckdb",
        );
        let m = m.unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(m.hinted_candidates, vec!["order_date", "order_id"]);
        assert_eq!(m.hinted_in_several_relations, vec!["order_date"]);
    }

    #[test]
    fn a_full_duckdb_list_may_be_cut() {
        // duckdb 2.0.1's own client, a table with `plan_name`, `plankton`, `plant_code`,
        // `planetarium`, `planet_name`, `id` and `email`: five names shown, two left out.
        let full = "Binder Error: Referenced column \"plan\" not found in FROM clause!\n\
                    Candidate bindings: \"plankton\", \"plan_name\", \"plant_code\", \
                    \"planetarium\", \"planet_name\"\n\nLINE 1: select plan from raw_members";
        let m = parse_missing_column(full, "duckdb").unwrap_or_else(|| panic!("not parsed"));
        assert!(m.hints_may_be_cut);
        let short = "Binder Error: Referenced column \"plan\" not found in FROM clause!\n  \
                     Candidate bindings: \"plan_name\", \"full_name\"\n";
        let m = parse_missing_column(short, "duckdb").unwrap_or_else(|| panic!("not parsed"));
        assert!(!m.hints_may_be_cut);
        // PostgreSQL's hint holds the nearest names only, however many columns exist.
        let pg = "column \"created\" does not exist\n  HINT:  Perhaps you meant to reference \
                  the column \"raw_orders.created_at\".";
        let m = parse_missing_column(pg, "postgres").unwrap_or_else(|| panic!("not parsed"));
        assert!(!m.hints_may_be_cut);
    }

    #[test]
    fn nothing_to_read() {
        assert_eq!(
            parse_missing_column("Catalog Error: Table with name x does not exist!", "duckdb"),
            None
        );
        assert!(hinted_candidates("no hints here").is_empty());
    }
}
