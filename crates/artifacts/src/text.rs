//! Text helpers shared by every parser: ANSI stripping, trimming an error to the lines that
//! matter, and the normalisation an error signature is built from.

use std::sync::OnceLock;

use regex::Regex;

/// Longest message kept on a failure. dbt's messages are short, but DuckDB's "Candidate
/// functions" lists run to sixty lines and a Jinja traceback further; the fixer needs the
/// head, not the tail.
const MAX_MESSAGE_LINES: usize = 40;
const MAX_MESSAGE_CHARS: usize = 8_000;
/// Longest normalised error text inside a signature: enough to tell two columns apart,
/// short enough to be a readable key.
const MAX_SIGNATURE_CHARS: usize = 300;

fn regex(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    // Patterns here are literals checked by the unit tests, so `None` is unreachable in
    // practice; returning it instead of panicking keeps bad input from ever aborting.
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// Removes ANSI escape sequences (dbt colours its text log and console output).
pub fn strip_ansi(text: &str) -> String {
    static ANSI: OnceLock<Option<Regex>> = OnceLock::new();
    // CSI sequences (`ESC [ … final`), OSC sequences (`ESC ] … BEL`), and two-byte escapes.
    match regex(
        &ANSI,
        r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]",
    ) {
        Some(re) if text.contains('\u{1b}') => re.replace_all(text, "").into_owned(),
        _ => text.to_owned(),
    }
}

/// True for a line that only frames an error rather than stating it: dbt's
/// "Runtime Error in model x (path)" headers, the caret under a `LINE n:` excerpt, hints.
pub(crate) fn is_framing_line(line: &str) -> bool {
    static FRAMING: OnceLock<Option<Regex>> = OnceLock::new();
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '^' || c.is_whitespace()) {
        return true;
    }
    match regex(
        &FRAMING,
        r"(?x)^(?:
            (?:Runtime|Compilation|Database|Parsing|Dependency|Internal|Unhandled|Env\ var)\ Error
                (?:\ in\ \S+\ \S+\ \(.*\))?:?$
          | Encountered\ an\ error:?$
          | Failure\ in\ \S+\ \S+\ \(.*\)$
          | LINE\ \d+:
          | Did\ you\ mean
          | Candidate\ (?:bindings|functions):
          | HINT:
          | compiled\ code\ at
          | -{5,}
        )",
    ) {
        Some(re) => re.is_match(trimmed),
        None => false,
    }
}

/// Cleans an error message for people and the fixer: ANSI stripped, trailing spaces gone,
/// blank edges dropped, dbt's "compiled code at" pointer removed, bounded in size.
pub fn trim_message(message: &str) -> String {
    let clean = strip_ansi(message);
    let mut lines: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim_start().starts_with("compiled code at "))
        .collect();
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    // dbt indents the error body by two spaces under its header; keep that shape but drop a
    // common indent so the text reads cleanly in a merge request.
    let truncated = lines.len() > MAX_MESSAGE_LINES;
    lines.truncate(MAX_MESSAGE_LINES);
    let mut out = lines.join("\n");
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push_str("\n…");
    } else if truncated {
        out.push_str("\n…");
    }
    out
}

/// Picks the line of an error message that states the error: the line the classifier
/// matched if it is a statement, else the first line that is not framing.
pub(crate) fn key_line<'a>(message: &'a str, matched: Option<&'a str>) -> &'a str {
    if let Some(m) = matched {
        if !is_framing_line(m) {
            return m.trim();
        }
    }
    message
        .lines()
        .map(str::trim)
        .find(|l| !is_framing_line(l))
        .or_else(|| matched.map(str::trim))
        .or_else(|| message.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("")
}

/// Normalises an error line so the same failure gives the same text in every run:
/// lowercase, ANSI gone, uuids, long hex ids, temp relation names and /tmp paths masked,
/// digit runs replaced by `N`, whitespace collapsed, bounded length.
pub fn normalise_error(line: &str) -> String {
    static UUID: OnceLock<Option<Regex>> = OnceLock::new();
    static TMP_PATH: OnceLock<Option<Regex>> = OnceLock::new();
    static TMP_REL: OnceLock<Option<Regex>> = OnceLock::new();
    static HEX: OnceLock<Option<Regex>> = OnceLock::new();
    static DIGITS: OnceLock<Option<Regex>> = OnceLock::new();
    static SPACE: OnceLock<Option<Regex>> = OnceLock::new();
    let mut s = strip_ansi(line).to_lowercase();
    let steps: [(&'static OnceLock<Option<Regex>>, &str, &str); 6] = [
        (
            &UUID,
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<uuid>",
        ),
        // Temp dirs differ per run (pytest, CI runners, our own validator's scratch copies).
        (
            &TMP_PATH,
            r#"(?:/private)?/(?:tmp|var/folders)/[^\s"'`)]*"#,
            "<tmp>",
        ),
        // dbt's intermediate relations: `orders__dbt_tmp`, `orders__dbt_backup`, and
        // adapters' `dbt_tmp_<hash>` names.
        (
            &TMP_REL,
            r"[a-z0-9_]*__dbt_(?:tmp|backup)[a-z0-9_]*|dbt_tmp_[a-z0-9_]+",
            "<tmp_rel>",
        ),
        // Test hashes (`fed79b3a6e`), object ids: hex runs with at least one digit.
        (&HEX, r"\b[0-9a-f]{8,}\b", "<hex>"),
        (&DIGITS, r"[0-9]+", "N"),
        (&SPACE, r"\s+", " "),
    ];
    for (cell, pattern, replacement) in steps {
        if let Some(re) = regex(cell, pattern) {
            // The hex mask must not eat ordinary words (`deadbeef` is rare, `accepted` is
            // not): only runs that mix digits and letters are ids.
            if replacement == "<hex>" {
                s = re
                    .replace_all(&s, |c: &regex::Captures<'_>| {
                        let m = c.get(0).map_or("", |m| m.as_str());
                        let digit = m.bytes().any(|b| b.is_ascii_digit());
                        let letter = m.bytes().any(|b| b.is_ascii_alphabetic());
                        if digit && letter {
                            "<hex>".to_owned()
                        } else {
                            m.to_owned()
                        }
                    })
                    .into_owned();
            } else {
                s = re.replace_all(&s, replacement).into_owned();
            }
        }
    }
    let s = s.trim();
    if s.chars().count() > MAX_SIGNATURE_CHARS {
        s.chars().take(MAX_SIGNATURE_CHARS).collect()
    } else {
        s.to_owned()
    }
}

/// The signature of a failure: its class label and its normalised key error line.
pub fn signature(class_label: &str, message: &str, matched_line: Option<&str>) -> String {
    let clean = strip_ansi(message);
    let key = key_line(&clean, matched_line);
    format!("{class_label}:{}", normalise_error(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        // From a real dbt 1.11 text log line.
        let line = "\u{1b}[0m13:36:14.533474 [error] [MainThread]: \u{1b}[31mFailure in model orders (models/marts/orders.sql)\u{1b}[0m";
        assert_eq!(
            strip_ansi(line),
            "13:36:14.533474 [error] [MainThread]: Failure in model orders (models/marts/orders.sql)"
        );
    }

    #[test]
    fn framing_lines_are_recognised() {
        assert!(is_framing_line(
            "Runtime Error in model orders (models/marts/orders.sql)"
        ));
        assert!(is_framing_line("Compilation Error"));
        assert!(is_framing_line("  LINE 12:     o.amout"));
        assert!(is_framing_line("               ^^^^^^^"));
        assert!(!is_framing_line(
            "Binder Error: Values list \"o\" does not have a column named \"amout\""
        ));
    }

    #[test]
    fn same_error_in_two_runs_normalises_the_same() {
        let a = "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"amout\"\n  \n  LINE 12:     o.amout";
        let b = "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"amout\"\n  \n  LINE 15:     o.amout";
        assert_eq!(
            signature("missing_column", a, None),
            signature("missing_column", b, None)
        );
        let c = a.replace("amout", "amnt");
        assert_ne!(
            signature("missing_column", a, None),
            signature("missing_column", &c, None)
        );
    }

    #[test]
    fn volatile_parts_are_masked() {
        let n = normalise_error(
            "Catalog Error: Table with name orders__dbt_tmp does not exist in /tmp/pytest-12/p0/x.duckdb id 6e4501b8-72e1-46bd-b9b0-a1e34bdc0b8c test.shop.unique_orders_order_id.fed79b3a6e",
        );
        assert_eq!(
            n,
            "catalog error: table with name <tmp_rel> does not exist in <tmp> id <uuid> test.shop.unique_orders_order_id.<hex>"
        );
    }

    #[test]
    fn messages_are_trimmed() {
        let m = "\n\u{1b}[31mRuntime Error in model a (models/a.sql)\u{1b}[0m   \n  x\n  compiled code at target/compiled/a.sql\n\n";
        assert_eq!(
            trim_message(m),
            "Runtime Error in model a (models/a.sql)\n  x"
        );
        let long = (0..100)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(trim_message(&long).lines().count(), MAX_MESSAGE_LINES + 1);
    }
}
