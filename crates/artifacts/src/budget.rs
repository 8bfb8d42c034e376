//! The token budget on what one incident ships.
//!
//! The error text and the evidence travel in every event of the incident and end up in a
//! prompt, so they are held to a budget (`detector.evidence_token_budget`, default 2,000
//! tokens), estimated at four characters a token. Over budget, the evidence is trimmed in
//! this order, each step only while still over, each recorded in `Evidence.trimmed`:
//!
//! 0. ancestor models' SQL (shipped only with `fixer.fix_scope = "lineage"`), farthest
//!    generation first, then the nearest ones, largest first;
//! 1. the compiled SQL, to the lines around the error line (when the error names one);
//! 2. the compiled SQL, dropped (the model's own SQL says the same with its Jinja);
//! 3. the project's node names, to the 50 nearest the names the error quotes, then 10;
//! 4. the YAML entry, to its first 20 lines, then dropped;
//! 5. the sources' column lists, dropped (their names stay: a bad `source()` needs them);
//! 6. far parents' columns, dropped: parents the error text and the error line do not
//!    name (near parents keep theirs);
//! 7. near parents' columns, to the 30 nearest the names the error quotes, then dropped;
//! 8. the error text, to its first 12 lines and its last line (the `[dbt-ops]` note on
//!    where the error is).
//!
//! The model's SQL is never cut: a fix is the whole new file, so a fixer that saw half of
//! it would write half of it. When it alone is over budget the evidence says so.

use std::sync::OnceLock;

use regex::Regex;

use crate::Failure;

/// The estimate: characters per token.
pub const CHARS_PER_TOKEN: usize = 4;
/// Lines of compiled SQL kept on each side of the error line.
const COMPILED_WINDOW: usize = 12;
/// Lines of a YAML entry kept in step 4.
const YAML_LINES: usize = 20;
/// Lines of the error text kept in step 8 (plus its last line).
const MESSAGE_LINES: usize = 12;

/// Estimated tokens of a text: characters / 4, rounded up.
pub fn estimate_tokens(text: &str) -> u32 {
    let chars = text.chars().count();
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

fn list_tokens(items: &[String]) -> u32 {
    // Joined with ", " in a prompt: two characters of separator each.
    let chars: usize = items.iter().map(|s| s.chars().count() + 2).sum();
    u32::try_from(chars.div_ceil(CHARS_PER_TOKEN)).unwrap_or(u32::MAX)
}

/// Estimated tokens of what a failure ships: its error text and evidence.
pub fn failure_tokens(f: &Failure) -> u32 {
    let ev = &f.evidence;
    let mut total = estimate_tokens(&f.message)
        .saturating_add(estimate_tokens(&ev.model_sql))
        .saturating_add(estimate_tokens(&ev.compiled_sql))
        .saturating_add(estimate_tokens(&ev.yaml_entry))
        .saturating_add(list_tokens(&ev.project_node_names))
        .saturating_add(list_tokens(&ev.macro_signatures));
    for p in &ev.parents {
        total = total
            .saturating_add(estimate_tokens(&p.name))
            .saturating_add(list_tokens(&p.columns))
            .saturating_add(1);
    }
    for s in &ev.sources {
        total = total
            .saturating_add(estimate_tokens(&s.source_name))
            .saturating_add(estimate_tokens(&s.table_name))
            .saturating_add(list_tokens(&s.columns))
            .saturating_add(1);
    }
    if let Some(loc) = &ev.error_location {
        total = total.saturating_add(estimate_tokens(&loc.model_line_text) + 4);
    }
    for a in &ev.ancestors {
        total = total
            .saturating_add(estimate_tokens(&a.path))
            .saturating_add(estimate_tokens(&a.raw_sql))
            .saturating_add(4);
    }
    total
}

/// Names the error quotes (`"custmer_id"`, `'stg_ordrs'`): what nearness is measured to.
fn quoted_names(message: &str) -> Vec<String> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| Regex::new(r#"["'`]([A-Za-z_][A-Za-z0-9_.]*)["'`]"#).ok())
        .as_ref()
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for c in re.captures_iter(message) {
        if let Some(m) = c.get(1) {
            let name = m.as_str().rsplit('.').next().unwrap_or(m.as_str());
            let name = name.to_ascii_lowercase();
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Edit distance, for ranking names by nearness (names are short).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// How far `name` is from the nearest quoted name (0 = equal); names when nothing is
/// quoted are all equally near.
fn distance(name: &str, targets: &[String]) -> usize {
    let lower = name.to_ascii_lowercase();
    targets
        .iter()
        .map(|t| levenshtein(&lower, t))
        .min()
        .unwrap_or(0)
}

/// Keeps the `keep` items nearest the quoted names, in their original order.
fn keep_nearest(items: &mut Vec<String>, keep: usize, targets: &[String]) -> usize {
    if items.len() <= keep {
        return 0;
    }
    let mut ranked: Vec<(usize, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, s)| (distance(s, targets), i))
        .collect();
    ranked.sort();
    let mut chosen: Vec<usize> = ranked.iter().take(keep).map(|(_, i)| *i).collect();
    chosen.sort_unstable();
    let dropped = items.len() - chosen.len();
    *items = chosen
        .into_iter()
        .filter_map(|i| items.get(i).cloned())
        .collect();
    dropped
}

/// Holds a failure's error text and evidence to `budget` estimated tokens, trimming in the
/// documented order; records what it did, the estimate and the budget on the evidence.
pub fn apply_token_budget(f: &mut Failure, budget: u32) {
    let targets = quoted_names(&f.message);
    let mut steps: Vec<String> = Vec::new();
    let over = |f: &Failure| failure_tokens(f) > budget;

    // 0. Ancestors: the farthest generation first, the largest file first within one.
    if over(f) && !f.evidence.ancestors.is_empty() {
        let mut order: Vec<(u32, usize, String)> = f
            .evidence
            .ancestors
            .iter()
            .map(|a| (a.depth, a.raw_sql.len(), a.unique_id.clone()))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        let mut dropped = Vec::new();
        for (_, _, unique_id) in order {
            if !over(f) {
                break;
            }
            f.evidence.ancestors.retain(|a| a.unique_id != unique_id);
            dropped.push(unique_id);
        }
        if !dropped.is_empty() {
            steps.push(format!("ancestors: dropped {}", dropped.join(", ")));
        }
    }

    // 1–2. Compiled SQL: the window around the error line, then nothing.
    if over(f) && !f.evidence.compiled_sql.is_empty() {
        let line = f
            .evidence
            .error_location
            .as_ref()
            .map_or(0, |l| l.compiled_line as usize);
        let compiled = std::mem::take(&mut f.evidence.compiled_sql);
        let lines: Vec<&str> = compiled.lines().collect();
        if line > 0 && line <= lines.len() && lines.len() > 2 * COMPILED_WINDOW + 1 {
            let from = line.saturating_sub(COMPILED_WINDOW + 1);
            let to = (line + COMPILED_WINDOW).min(lines.len());
            let window = format!(
                "-- [dbt-ops] lines {}-{to} of {}, around the error line {line}\n{}",
                from + 1,
                lines.len(),
                lines[from..to].join("\n")
            );
            f.evidence.compiled_sql = window;
            steps.push(format!(
                "compiled_sql: kept lines {}-{to} of {} around the error",
                from + 1,
                lines.len()
            ));
        } else {
            f.evidence.compiled_sql = compiled.clone();
        }
        if over(f) {
            f.evidence.compiled_sql.clear();
            steps.push("compiled_sql: dropped".into());
        }
    }
    // 3. Node names nearest the quoted names.
    for keep in [50, 10] {
        if over(f) {
            let dropped = keep_nearest(&mut f.evidence.project_node_names, keep, &targets);
            if dropped > 0 {
                steps.push(format!(
                    "project_node_names: kept the {keep} nearest the error's names, dropped {dropped}"
                ));
            }
        }
    }
    // 4. YAML.
    if over(f) && !f.evidence.yaml_entry.is_empty() {
        let lines: Vec<&str> = f.evidence.yaml_entry.lines().collect();
        if lines.len() > YAML_LINES {
            f.evidence.yaml_entry = format!(
                "{}\n# [dbt-ops] {} more lines trimmed",
                lines[..YAML_LINES].join("\n"),
                lines.len() - YAML_LINES
            );
            steps.push(format!("yaml_entry: kept its first {YAML_LINES} lines"));
        }
        if over(f) {
            f.evidence.yaml_entry.clear();
            steps.push("yaml_entry: dropped".into());
        }
    }
    // 5. Sources' columns.
    if over(f) && f.evidence.sources.iter().any(|s| !s.columns.is_empty()) {
        for s in &mut f.evidence.sources {
            s.columns.clear();
        }
        steps.push("sources: column lists dropped, names kept".into());
    }
    // 6. Far parents' columns.
    if over(f) {
        let line_text = f
            .evidence
            .error_location
            .as_ref()
            .map(|l| l.model_line_text.to_ascii_lowercase())
            .unwrap_or_default();
        let message = f.message.to_ascii_lowercase();
        let mut dropped = Vec::new();
        for p in &mut f.evidence.parents {
            let name = p.name.to_ascii_lowercase();
            let near = p.origin == "error_hint"
                || message.contains(&name)
                || (!line_text.is_empty() && line_text.contains(&name));
            if !near && !p.columns.is_empty() {
                p.columns.clear();
                dropped.push(p.name.clone());
            }
        }
        if !dropped.is_empty() {
            steps.push(format!(
                "parents: columns of far parents dropped ({})",
                dropped.join(", ")
            ));
        }
    }
    // 7. Near parents' columns: the nearest, then none.
    for keep in [30, 0] {
        if over(f) {
            let mut total = 0;
            for p in &mut f.evidence.parents {
                if keep == 0 {
                    total += p.columns.len();
                    p.columns.clear();
                } else {
                    total += keep_nearest(&mut p.columns, keep, &targets);
                }
            }
            if total > 0 {
                steps.push(if keep == 0 {
                    "parents: all column lists dropped".to_owned()
                } else {
                    format!("parents: kept the {keep} columns nearest the error's names per parent")
                });
            }
        }
    }
    // 8. The error text: its head and its last line.
    if over(f) {
        let lines: Vec<&str> = f.message.lines().collect();
        if lines.len() > MESSAGE_LINES + 1 {
            let last = lines.last().copied().unwrap_or_default();
            f.message = format!("{}\n…\n{last}", lines[..MESSAGE_LINES].join("\n"));
            steps.push(format!(
                "error: kept its first {MESSAGE_LINES} lines and its last"
            ));
        }
    }
    let tokens = failure_tokens(f);
    if tokens > budget {
        steps.push(format!(
            "over budget by {} tokens: the model's SQL ({} tokens) is kept whole, as a fix rewrites the whole file",
            tokens - budget,
            estimate_tokens(&f.evidence.model_sql)
        ));
    }
    f.evidence.trimmed.extend(steps);
    f.evidence.estimated_tokens = tokens;
    f.evidence.token_budget = budget;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorClass, ErrorLocation, Evidence, ParentColumns, SourceDef};

    fn failure(compiled_lines: usize, names: usize, cols: usize) -> Failure {
        Failure {
            unique_id: "model.shop.orders".into(),
            name: "orders".into(),
            path: "models/orders.sql".into(),
            resource_type: "model".into(),
            class: ErrorClass::MissingColumn,
            message: "Runtime Error in model orders (models/orders.sql)\n  Binder Error: Referenced column \"custmer_id\" not found in FROM clause!\n  LINE 40:     custmer_id,".into(),
            signature: "missing_column:x".into(),
            needs_human: false,
            blast_radius: Vec::new(),
            evidence: Evidence {
                model_sql: "select custmer_id from {{ ref('stg_orders') }}".into(),
                compiled_sql: (1..=compiled_lines).map(|i| format!("    line_{i} as column_{i},")).collect::<Vec<_>>().join("\n"),
                yaml_entry: (0..40).map(|i| format!("      - name: c{i}\n        description: a column")).collect::<Vec<_>>().join("\n"),
                parents: vec![
                    ParentColumns { unique_id: "model.shop.stg_orders".into(), name: "stg_orders".into(), columns: (0..cols).map(|i| format!("col_{i}")).chain(["customer_id".to_owned()]).collect(), origin: "manifest" },
                    ParentColumns { unique_id: "model.shop.far".into(), name: "far_away".into(), columns: (0..cols).map(|i| format!("far_{i}")).collect(), origin: "manifest" },
                ],
                sources: vec![SourceDef { source_name: "raw".into(), table_name: "orders".into(), columns: (0..cols).map(|i| format!("src_{i}")).collect() }],
                project_node_names: (0..names).map(|i| format!("model_{i}")).chain(["stg_orders".to_owned()]).collect(),
                error_location: Some(ErrorLocation { statement_line: 40, compiled_line: 31, model_line: 1, model_line_text: "select custmer_id from {{ ref('stg_orders') }}".into(), method: "compiled_sql" }),
                ..Evidence::default()
            },
        }
    }

    #[test]
    fn small_evidence_is_untouched() {
        let mut f = failure(10, 5, 5);
        let before = f.clone();
        apply_token_budget(&mut f, 2_000);
        assert!(f.evidence.trimmed.is_empty());
        assert_eq!(f.evidence.compiled_sql, before.evidence.compiled_sql);
        assert_eq!(f.evidence.estimated_tokens, failure_tokens(&before));
        assert_eq!(f.evidence.token_budget, 2_000);
    }

    #[test]
    fn the_trimming_order_holds() {
        let mut f = failure(400, 5_000, 600);
        assert!(failure_tokens(&f) > 10_000, "{}", failure_tokens(&f));
        apply_token_budget(&mut f, 2_000);
        assert!(
            f.evidence.estimated_tokens <= 2_000,
            "{:?}",
            f.evidence.trimmed
        );
        let steps = f.evidence.trimmed.join("\n");
        assert!(
            steps.starts_with("compiled_sql: kept lines 19-43 of 400"),
            "{steps}"
        );
        // Nearest names survive: the quoted column's parent keeps customer_id, the far
        // parent is emptied first.
        assert!(f.evidence.parents[1].columns.is_empty());
        assert!(
            f.evidence.parents[0]
                .columns
                .contains(&"customer_id".to_owned()),
            "{steps}"
        );
        assert!(f.evidence.project_node_names.len() <= 50);
        // The error and the model's SQL are whole.
        assert!(f.message.contains("custmer_id"));
        assert_eq!(
            f.evidence.model_sql,
            "select custmer_id from {{ ref('stg_orders') }}"
        );
        let order = [
            "compiled_sql",
            "project_node_names",
            "yaml_entry",
            "sources",
            "parents",
        ];
        let mut last = 0;
        for step in &f.evidence.trimmed {
            let at = order
                .iter()
                .position(|o| step.starts_with(o))
                .unwrap_or(usize::MAX);
            assert!(at >= last, "{steps}");
            last = at;
        }
    }

    #[test]
    fn a_huge_model_is_kept_whole_and_said_to_be_over() {
        let mut f = failure(10, 5, 5);
        f.evidence.model_sql = "select 1 as x\n".repeat(2_000);
        apply_token_budget(&mut f, 2_000);
        assert_eq!(f.evidence.model_sql.lines().count(), 2_000);
        assert!(f
            .evidence
            .trimmed
            .last()
            .is_some_and(|s| s.starts_with("over budget by")));
    }

    #[test]
    fn nearness_is_edit_distance_to_quoted_names() {
        assert_eq!(levenshtein("custmer_id", "customer_id"), 1);
        assert_eq!(
            quoted_names("column \"o.custmer_id\" not in 'stg_ordrs'"),
            ["custmer_id", "stg_ordrs"]
        );
        let mut names: Vec<String> = ["zeta", "stg_orders", "alpha", "stg_order_items"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        keep_nearest(&mut names, 2, &["stg_ordrs".to_owned()]);
        assert_eq!(names, ["stg_orders", "stg_order_items"]);
        assert_eq!(estimate_tokens("abcde"), 2);
    }
}
