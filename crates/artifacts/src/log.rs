//! dbt's logs: the debug-level text `dbt.log`, the JSON-lines log
//! (`--log-format-file json`), and the console output, read as one stream.
//!
//! The log is appended across runs, so only the last invocation counts. The reader walks
//! the bytes line by line and resets its state at every invocation boundary; what it keeps
//! is bounded by one invocation's node statuses and error messages, never the log.
//!
//! What dbt 1.11 writes, and what this relies on:
//! - text: each invocation opens with
//!   `============================== 13:36:13.393742 | 6e4501b8-… ==============================`;
//!   each event line is `HH:MM:SS.ffffff [level] [thread]: message` (after ANSI stripping),
//!   continuation lines carry no prefix. The end-of-run summary prints
//!   `[error] [MainThread]: Failure in model orders (models/marts/orders.sql)` followed by an
//!   `[error]` event holding the message; a parse-time error is
//!   `[error] [MainThread]: Encountered an error:` plus continuation lines; `Began running
//!   node <id>` then `N of M OK|ERROR|SKIP|PASS|FAIL …` on the same thread give each node's
//!   status, `Marking all children of '<id>' to be skipped because of status '<s>'` confirms
//!   it; `Command \`dbt build\` failed at …` ends the invocation.
//! - JSON: one object per line, `info.name` the event, `info.invocation_id` the run;
//!   `RunResultFailure` (`data.node_info.unique_id`, `data.path`, `data.resource_type`,
//!   `data.node_name`) then `RunResultError` (`data.msg`); `MainEncounteredError`
//!   (`data.exc`) for parse-time errors; `NodeFinished` (`data.node_info.node_status`,
//!   `node_path` relative to the model path); `CommandCompleted` (`data.success`).
//! - console: `HH:MM:SS  message`, no level, no thread, no invocation id.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::text::{byte_lines, strip_ansi};

/// Bounds on what one error message may hold.
const MAX_RECORD_LINES: usize = 400;
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Bounds on the number of failures kept for one invocation.
const MAX_FAILURES: usize = 1_000;

/// How the last invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Outcome {
    /// dbt reported success.
    Succeeded,
    /// dbt reported failure, or an error was seen.
    Failed,
    /// The log stops before dbt said (killed, still running, truncated).
    #[default]
    Unknown,
}

/// A node failure reported in the log's run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogFailure {
    /// dbt's unique id, when the log names it.
    pub unique_id: Option<String>,
    /// `model`, `test`, `seed`…
    pub resource_type: String,
    /// The node name.
    pub name: String,
    /// Project-relative path (`models/marts/orders.sql`) when the log gives one.
    pub path: Option<String>,
    /// JSON logs' `node_path`, relative to the model path (`marts/orders.sql`).
    pub node_path: Option<String>,
    /// The error text as dbt printed it (ANSI stripped).
    pub message: String,
}

/// What the last invocation in a log said.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogInvocation {
    /// dbt's invocation id, when the log carries it (text header, JSON `info`).
    pub invocation_id: Option<String>,
    pub dbt_version: Option<String>,
    pub adapter: Option<String>,
    pub project_name: Option<String>,
    pub outcome: Outcome,
    /// A parse-time error (`Encountered an error:` …): no node ran.
    pub parse_error: Option<String>,
    /// Failures from the run summary, in the order dbt printed them.
    pub failures: Vec<LogFailure>,
    /// unique id → status (`success`, `error`, `fail`, `skipped`, `pass`, `warn`).
    pub statuses: BTreeMap<String, String>,
    /// JSON `node_path`s by unique id, to place a node the summary did not.
    pub node_paths: BTreeMap<String, String>,
    /// The error message dbt gave when it marked a failed node's children skipped
    /// (`Marking all children of … Reason: …`): a run killed before its summary still
    /// says what failed.
    pub reasons: BTreeMap<String, String>,
}

/// The result of reading a log.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogSummary {
    /// The last invocation.
    pub last: LogInvocation,
    /// How many invocations the log holds.
    pub invocations: usize,
    /// Lines read as JSON events and as text events.
    pub json_events: usize,
    pub text_events: usize,
    /// Lines that looked like JSON events but did not parse (a truncated last line).
    pub bad_json_lines: usize,
}

impl LogSummary {
    /// True when nothing in the input looked like a dbt log.
    pub(crate) fn is_empty(&self) -> bool {
        self.json_events == 0 && self.text_events == 0 && self.invocations == 0
    }

    /// `json`, `text` or `mixed`, for notes.
    pub(crate) fn format(&self) -> &'static str {
        match (self.json_events > 0, self.text_events > 0) {
            (true, false) => "json",
            (true, true) => "mixed",
            _ => "text",
        }
    }
}

struct Patterns {
    header: Regex,
    text_event: Regex,
    console_event: Regex,
    failure: Regex,
    result_line: Regex,
    marking: Regex,
    began: Regex,
    command: Regex,
    version: Regex,
    adapter: Regex,
    partial: Regex,
    done: Regex,
}

fn patterns() -> Option<&'static Patterns> {
    static P: OnceLock<Option<Patterns>> = OnceLock::new();
    P.get_or_init(|| {
        Some(Patterns {
            header: Regex::new(r"^=+ \d{2}:\d{2}:\d{2}(?:\.\d+)? \| ([0-9A-Fa-f-]{36}) =+\s*$")
                .ok()?,
            text_event: Regex::new(r"^\d{2}:\d{2}:\d{2}\.\d+ \[(\w+)\s*\] \[([^\]]*)\]: ?(.*)$")
                .ok()?,
            console_event: Regex::new(r"^\d{2}:\d{2}:\d{2}(?:  (.*))?\s*$").ok()?,
            failure: Regex::new(r"^Failure in (\S+) (\S+) \((.*)\)\s*$").ok()?,
            result_line: Regex::new(r"^\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b").ok()?,
            marking: Regex::new(
                r"^Marking all children of '([^']+)' to be skipped because of status '(\w[\w ]*)'",
            )
            .ok()?,
            began: Regex::new(r"^Began running node (\S+)").ok()?,
            command: Regex::new(r"^Command `[^`]*` (failed|succeeded) at").ok()?,
            version: Regex::new(r"^Running with dbt=(\S+)").ok()?,
            adapter: Regex::new(r"^Registered adapter: (\w+)=").ok()?,
            partial: Regex::new(r"^Partial parsing: (?:updated|added|deleted) file: (\w+)://")
                .ok()?,
            done: Regex::new(r"^Done\. PASS=\d+ WARN=\d+ ERROR=(\d+)").ok()?,
        })
    })
    .as_ref()
}

/// One event of the text log or console: its first line and, when worth keeping, the
/// continuation lines that follow it.
struct Record {
    level: String,
    thread: String,
    first: String,
    extra: Vec<String>,
    keep_extra: bool,
    bytes: usize,
}

impl Record {
    fn text(&self) -> String {
        if self.extra.is_empty() {
            self.first.clone()
        } else {
            format!("{}\n{}", self.first, self.extra.join("\n"))
        }
    }
}

/// Per-invocation working state that is not part of the result.
#[derive(Default)]
struct Scratch {
    /// Text log: which node each thread is running, to attach `N of M STATUS` lines.
    thread_node: BTreeMap<String, String>,
    /// Text log: (resource type, name) → unique id, to name the summary's failures.
    ids_by_name: BTreeMap<(String, String), String>,
    /// The summary printed `Failure in …` and its message has not come yet.
    awaiting_message: bool,
}

/// Reads a dbt log (text, JSON lines, console output, or a mix) and returns what its last
/// invocation said. Never fails: unreadable lines are counted.
pub(crate) fn parse_log(bytes: &[u8]) -> LogSummary {
    let mut summary = LogSummary::default();
    let Some(p) = patterns() else {
        return summary;
    };
    let mut inv = LogInvocation::default();
    let mut scratch = Scratch::default();
    let mut record: Option<Record> = None;

    for raw in byte_lines(bytes) {
        let line = strip_ansi(&raw);
        let trimmed = line.trim_start();
        if trimmed.starts_with('{') {
            if let Some(event) = json_event(trimmed) {
                if let Some(r) = record.take() {
                    handle_text_record(p, r, &mut inv, &mut scratch);
                }
                summary.json_events += 1;
                handle_json_event(&event, &mut inv, &mut scratch, &mut summary);
                continue;
            }
            if summary.json_events > 0 && summary.text_events == 0 {
                summary.bad_json_lines += 1;
                continue;
            }
        }
        if let Some(c) = p.header.captures(&line) {
            if let Some(r) = record.take() {
                handle_text_record(p, r, &mut inv, &mut scratch);
            }
            summary.invocations += 1;
            inv = LogInvocation {
                invocation_id: c.get(1).map(|m| m.as_str().to_lowercase()),
                ..LogInvocation::default()
            };
            scratch = Scratch::default();
            continue;
        }
        let event = p
            .text_event
            .captures(&line)
            .map(|c| {
                (
                    c.get(1).map_or("", |m| m.as_str()).to_owned(),
                    c.get(2).map_or("", |m| m.as_str()).trim().to_owned(),
                    c.get(3).map_or("", |m| m.as_str()).to_owned(),
                )
            })
            .or_else(|| {
                p.console_event.captures(&line).map(|c| {
                    (
                        String::new(),
                        String::new(),
                        c.get(1).map_or("", |m| m.as_str()).to_owned(),
                    )
                })
            });
        match event {
            Some((level, thread, first)) => {
                if let Some(r) = record.take() {
                    handle_text_record(p, r, &mut inv, &mut scratch);
                }
                summary.text_events += 1;
                // Continuation lines matter only for errors (and for the console, which
                // has no levels, and a failed node's skip reason); a debug SQL statement's
                // hundred lines are dropped.
                let keep_extra = level.is_empty()
                    || level == "error"
                    || first.starts_with("Marking all children of ");
                record = Some(Record {
                    bytes: first.len(),
                    level,
                    thread,
                    first,
                    extra: Vec::new(),
                    keep_extra,
                });
            }
            None => {
                if let Some(r) = record.as_mut() {
                    if r.keep_extra
                        && r.extra.len() < MAX_RECORD_LINES
                        && r.bytes < MAX_RECORD_BYTES
                    {
                        r.bytes += line.len();
                        r.extra.push(line.trim_end().to_owned());
                    }
                }
            }
        }
    }
    if let Some(r) = record.take() {
        handle_text_record(p, r, &mut inv, &mut scratch);
    }
    if summary.invocations == 0 && !summary.is_empty() {
        summary.invocations = 1;
    }
    summary.last = inv;
    summary
}

fn json_event(line: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.get("info")?.get("name")?.as_str()?;
    Some(v)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

fn handle_json_event(
    event: &Value,
    inv: &mut LogInvocation,
    scratch: &mut Scratch,
    summary: &mut LogSummary,
) {
    // A new invocation id starts a new run: reset, keep only the counters.
    if let Some(id) = str_at(event, &["info", "invocation_id"]) {
        let id = id.to_lowercase();
        if inv.invocation_id.as_deref() != Some(id.as_str()) {
            summary.invocations += 1;
            *inv = LogInvocation {
                invocation_id: Some(id),
                ..LogInvocation::default()
            };
            *scratch = Scratch::default();
        }
    }
    let name = str_at(event, &["info", "name"]).unwrap_or("");
    let data = event.get("data").unwrap_or(&Value::Null);
    let node_id = str_at(data, &["node_info", "unique_id"]).filter(|s| !s.is_empty());
    match name {
        "MainReportVersion" => {
            inv.dbt_version =
                str_at(data, &["version"]).map(|v| v.trim_start_matches('=').to_owned());
        }
        "AdapterRegistered" => {
            inv.adapter = str_at(data, &["adapter_name"]).map(str::to_owned);
        }
        "NodeFinished" => {
            if let Some(id) = node_id {
                let status = str_at(data, &["node_info", "node_status"])
                    .or_else(|| str_at(data, &["run_result", "status"]));
                if let Some(status) = status {
                    inv.statuses.insert(id.to_owned(), status.to_lowercase());
                }
                if let Some(p) = str_at(data, &["node_info", "node_path"]) {
                    inv.node_paths.insert(id.to_owned(), p.to_owned());
                }
            }
        }
        "MarkSkippedChildren" => {
            if let (Some(id), Some(status)) =
                (str_at(data, &["unique_id"]), str_at(data, &["status"]))
            {
                let status = status.to_lowercase();
                if matches!(status.as_str(), "error" | "fail") && inv.reasons.len() < MAX_FAILURES {
                    if let Some(m) = str_at(data, &["run_result", "message"]) {
                        inv.reasons.insert(id.to_owned(), strip_ansi(m));
                    }
                }
                inv.statuses.insert(id.to_owned(), status);
            }
        }
        "RunResultFailure" => {
            if inv.failures.len() < MAX_FAILURES {
                inv.failures.push(LogFailure {
                    unique_id: node_id.map(str::to_owned),
                    resource_type: str_at(data, &["resource_type"]).unwrap_or("").to_owned(),
                    name: str_at(data, &["node_name"]).unwrap_or("").to_owned(),
                    path: str_at(data, &["path"])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    node_path: str_at(data, &["node_info", "node_path"]).map(str::to_owned),
                    message: String::new(),
                });
            }
            inv.outcome = Outcome::Failed;
        }
        "RunResultError" | "RunResultErrorNoMessage" => {
            let msg = str_at(data, &["msg"])
                .map(str::to_owned)
                .or_else(|| str_at(data, &["status"]).map(|s| format!("Status: {s}")))
                .unwrap_or_default();
            // The message belongs to the failure of the same node printed just before it.
            let target = inv.failures.iter_mut().rev().find(|f| {
                f.message.is_empty() && (node_id.is_none() || f.unique_id.as_deref() == node_id)
            });
            if let Some(f) = target {
                f.message = strip_ansi(&msg);
            }
        }
        "MainEncounteredError" => {
            let exc = str_at(data, &["exc"])
                .map(str::to_owned)
                .or_else(|| {
                    str_at(event, &["info", "msg"])
                        .map(|m| m.trim_start_matches("Encountered an error:").to_owned())
                })
                .unwrap_or_default();
            inv.parse_error = Some(strip_ansi(exc.trim()));
            inv.outcome = Outcome::Failed;
        }
        "CommandCompleted" => {
            inv.outcome = match data.get("success").and_then(Value::as_bool) {
                Some(true) if inv.failures.is_empty() && inv.parse_error.is_none() => {
                    Outcome::Succeeded
                }
                Some(true) => inv.outcome,
                _ => Outcome::Failed,
            };
        }
        "PartialParsingFile" | "PartialParsingEnabled" => {}
        _ => {}
    }
    if inv.project_name.is_none() {
        if let Some(id) = node_id {
            inv.project_name = id.split('.').nth(1).map(str::to_owned);
        }
    }
}

fn handle_text_record(p: &Patterns, r: Record, inv: &mut LogInvocation, scratch: &mut Scratch) {
    let msg = r.first.trim();
    if let Some(c) = p.began.captures(msg) {
        if let Some(id) = c.get(1).map(|m| m.as_str().to_owned()) {
            let parts: Vec<&str> = id.split('.').collect();
            if parts.len() >= 3 {
                scratch
                    .ids_by_name
                    .insert((parts[0].to_owned(), parts[2].to_owned()), id.clone());
                if inv.project_name.is_none() {
                    inv.project_name = Some(parts[1].to_owned());
                }
            }
            scratch.thread_node.insert(r.thread.clone(), id);
        }
        return;
    }
    if let Some(c) = p.result_line.captures(msg) {
        if let Some(id) = scratch.thread_node.get(&r.thread) {
            let status = match c.get(1).map_or("", |m| m.as_str()) {
                "OK" | "NO-OP" => "success",
                "PASS" => "pass",
                "WARN" => "warn",
                "ERROR" => "error",
                "FAIL" => "fail",
                _ => "skipped",
            };
            // `Marking all children…` is authoritative; do not overwrite it.
            inv.statuses
                .entry(id.clone())
                .or_insert_with(|| status.to_owned());
        }
        return;
    }
    if let Some(c) = p.marking.captures(msg) {
        if let (Some(id), Some(status)) = (c.get(1), c.get(2)) {
            let status = status.as_str().to_lowercase();
            if matches!(status.as_str(), "error" | "fail") && inv.reasons.len() < MAX_FAILURES {
                if let Some((_, reason)) = r.text().split_once("Reason: ") {
                    // dbt appends a full stop to the message.
                    let reason = reason.trim_end();
                    let reason = reason.strip_suffix('.').unwrap_or(reason);
                    inv.reasons
                        .insert(id.as_str().to_owned(), reason.to_owned());
                }
            }
            inv.statuses.insert(id.as_str().to_owned(), status);
        }
        return;
    }
    if let Some(c) = p.version.captures(msg) {
        inv.dbt_version = c.get(1).map(|m| m.as_str().to_owned());
        return;
    }
    if let Some(c) = p.adapter.captures(msg) {
        inv.adapter = c.get(1).map(|m| m.as_str().to_owned());
        return;
    }
    if let Some(c) = p.partial.captures(msg) {
        if inv.project_name.is_none() {
            inv.project_name = c.get(1).map(|m| m.as_str().to_owned());
        }
        return;
    }
    if let Some(c) = p.command.captures(msg) {
        let failed = c.get(1).is_some_and(|m| m.as_str() == "failed");
        inv.outcome = if failed || !inv.failures.is_empty() || inv.parse_error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        return;
    }
    if let Some(c) = p.done.captures(msg) {
        // The console has no `Command … failed` line; its `Done.` line says as much.
        if inv.outcome == Outcome::Unknown {
            let errors: u64 = c.get(1).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
            inv.outcome = if errors > 0 {
                Outcome::Failed
            } else {
                Outcome::Succeeded
            };
        }
        return;
    }
    let is_error_level = r.level.is_empty() || r.level == "error";
    if !is_error_level {
        return;
    }
    if let Some(rest) = msg.strip_prefix("Encountered an error:") {
        let mut text = rest.trim().to_owned();
        if !r.extra.is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&r.extra.join("\n"));
        }
        inv.parse_error = Some(text.trim().to_owned());
        inv.outcome = Outcome::Failed;
        scratch.awaiting_message = false;
        return;
    }
    if let Some(c) = p.failure.captures(msg) {
        let resource_type = c.get(1).map_or("", |m| m.as_str()).to_owned();
        let name = c.get(2).map_or("", |m| m.as_str()).to_owned();
        let path = c.get(3).map(|m| m.as_str().to_owned());
        let unique_id = scratch
            .ids_by_name
            .get(&(resource_type.clone(), name.clone()))
            .cloned();
        if inv.failures.len() < MAX_FAILURES {
            inv.failures.push(LogFailure {
                unique_id,
                resource_type,
                name,
                path,
                node_path: None,
                message: String::new(),
            });
        }
        inv.outcome = Outcome::Failed;
        scratch.awaiting_message = true;
        return;
    }
    if scratch.awaiting_message && !r.text().trim().is_empty() {
        if let Some(f) = inv.failures.last_mut() {
            // dbt indents the summary's message by two spaces (`"  {msg}"`); the message
            // itself, as run_results.json holds it, starts at the first character.
            let mut text = r.first.trim_start().to_owned();
            for line in &r.extra {
                text.push('\n');
                text.push_str(line);
            }
            f.message = text;
        }
        scratch.awaiting_message = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from a real dbt 1.11.16 `logs/dbt.log` (dbt-duckdb, `dbt build`): one good
    /// run, then a run where `orders` selects `o.amout`. ANSI codes kept as dbt wrote them.
    pub(crate) const TEXT_LOG: &str = concat!(
        "\u{1b}[0m13:36:08.035037 [debug] [MainThread]: Sending event: {'category': 'dbt', 'action': 'invocation', 'label': 'start'}\n",
        "\n\n",
        "============================== 13:36:08.037447 | d0e67d96-ff2f-48e5-b8f2-0af8906c5d39 ==============================\n",
        "\u{1b}[0m13:36:08.037447 [info ] [MainThread]: Running with dbt=1.11.16\n",
        "\u{1b}[0m13:36:09.853000 [info ] [MainThread]: Done. PASS=8 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=8\n",
        "\u{1b}[0m13:36:09.851000 [debug] [MainThread]: Command `dbt build` succeeded at 13:36:09.850000 after 1.80 seconds\n",
        "\n\n",
        "============================== 13:36:13.393742 | 6e4501b8-72e1-46bd-b9b0-a1e34bdc0b8c ==============================\n",
        "\u{1b}[0m13:36:13.393742 [info ] [MainThread]: Running with dbt=1.11.16\n",
        "\u{1b}[0m13:36:13.598438 [info ] [MainThread]: Registered adapter: duckdb=1.11.1\n",
        "\u{1b}[0m13:36:13.742011 [debug] [MainThread]: Partial parsing enabled: 0 files deleted, 0 files added, 1 files changed.\n",
        "\u{1b}[0m13:36:14.460000 [debug] [Thread-2 (]: Began running node model.shop.stg_orders\n",
        "\u{1b}[0m13:36:14.479250 [info ] [Thread-2 (]: 3 of 8 OK created sql view model main.stg_orders ............................... [\u{1b}[32mOK\u{1b}[0m in 0.08s]\n",
        "\u{1b}[0m13:36:14.481869 [debug] [Thread-1 (]: Began running node model.shop.orders\n",
        "\u{1b}[0m13:36:14.489875 [debug] [Thread-1 (]: On model.shop.orders: /* {\"app\": \"dbt\", \"node_id\": \"model.shop.orders\"} */\n",
        "\n",
        "  create view \"shop\".\"main\".\"orders__dbt_tmp\" as (\n",
        "{\"not\": \"an event\"}\n",
        "  );\n",
        "\u{1b}[0m13:36:14.491526 [debug] [Thread-1 (]: DuckDB adapter: duckdb error: Binder Error: Values list \"o\" does not have a column named \"amout\"\n",
        "\u{1b}[0m13:36:14.495566 [debug] [Thread-1 (]: Runtime Error in model orders (models/marts/orders.sql)\n",
        "  Binder Error: Values list \"o\" does not have a column named \"amout\"\n",
        "\u{1b}[0m13:36:14.496433 [error] [Thread-1 (]: 5 of 8 ERROR creating sql view model main.orders ............................... [\u{1b}[31mERROR\u{1b}[0m in 0.01s]\n",
        "\u{1b}[0m13:36:14.497061 [debug] [Thread-5 (]: Marking all children of 'model.shop.orders' to be skipped because of status 'error'.  Reason: Runtime Error in model orders (models/marts/orders.sql)\n",
        "  Binder Error: Values list \"o\" does not have a column named \"amout\"\n",
        "\u{1b}[0m13:36:15.501077 [debug] [Thread-2 (]: Began running node model.shop.customer_orders\n",
        "\u{1b}[0m13:36:14.501391 [info ] [Thread-2 (]: 8 of 8 SKIP relation main.customer_orders ...................................... [\u{1b}[33mSKIP\u{1b}[0m]\n",
        "\u{1b}[0m13:36:14.533107 [info ] [MainThread]: \u{1b}[31mCompleted with 1 error, 0 partial successes, and 0 warnings:\u{1b}[0m\n",
        "\u{1b}[0m13:36:14.533274 [info ] [MainThread]: \n",
        "\u{1b}[0m13:36:14.533474 [error] [MainThread]: \u{1b}[31mFailure in model orders (models/marts/orders.sql)\u{1b}[0m\n",
        "\u{1b}[0m13:36:14.533648 [error] [MainThread]:   Runtime Error in model orders (models/marts/orders.sql)\n",
        "  Binder Error: Values list \"o\" does not have a column named \"amout\"\n",
        "  \n",
        "  LINE 12:     o.amout\n",
        "               ^^^^^^^\n",
        "\u{1b}[0m13:36:14.533777 [info ] [MainThread]: \n",
        "\u{1b}[0m13:36:14.533968 [info ] [MainThread]:   compiled code at target/compiled/shop/models/marts/orders.sql\n",
        "\u{1b}[0m13:36:14.534288 [info ] [MainThread]: Done. PASS=4 WARN=0 ERROR=1 SKIP=3 NO-OP=0 TOTAL=8\n",
        "\u{1b}[0m13:36:14.535326 [debug] [MainThread]: Command `dbt build` failed at 13:36:14.535268 after 1.19 seconds\n",
    );

    #[test]
    fn reads_the_last_text_invocation() {
        let s = parse_log(TEXT_LOG.as_bytes());
        assert_eq!(s.invocations, 2);
        assert_eq!(s.format(), "text");
        let inv = &s.last;
        assert_eq!(
            inv.invocation_id.as_deref(),
            Some("6e4501b8-72e1-46bd-b9b0-a1e34bdc0b8c")
        );
        assert_eq!(inv.dbt_version.as_deref(), Some("1.11.16"));
        assert_eq!(inv.adapter.as_deref(), Some("duckdb"));
        assert_eq!(inv.project_name.as_deref(), Some("shop"));
        assert_eq!(inv.outcome, Outcome::Failed);
        assert_eq!(inv.failures.len(), 1);
        let f = &inv.failures[0];
        assert_eq!(f.unique_id.as_deref(), Some("model.shop.orders"));
        assert_eq!(f.path.as_deref(), Some("models/marts/orders.sql"));
        assert!(
            f.message.contains("does not have a column named \"amout\""),
            "{}",
            f.message
        );
        assert!(f.message.contains("LINE 12"));
        assert_eq!(inv.statuses["model.shop.stg_orders"], "success");
        assert_eq!(inv.statuses["model.shop.orders"], "error");
        assert_eq!(inv.statuses["model.shop.customer_orders"], "skipped");
    }

    /// From a real run where `ref('stg_orders')` was misspelt: dbt 1.11.16 exits 2 and
    /// writes no run_results.json.
    #[test]
    fn reads_a_parse_time_error() {
        let log = concat!(
            "============================== 13:36:22.324016 | 2d38da55-a798-49c5-a5cc-65f5bfd09adf ==============================\n",
            "\u{1b}[0m13:36:22.324016 [info ] [MainThread]: Running with dbt=1.11.16\n",
            "\u{1b}[0m13:36:22.745598 [debug] [MainThread]: Partial parsing: updated file: shop://models/marts/orders.sql\n",
            "\u{1b}[0m13:36:23.130858 [error] [MainThread]: Encountered an error:\n",
            "Compilation Error\n",
            "  Model 'model.shop.orders' (models/marts/orders.sql) depends on a node named 'stg_ordrs' which was not found\n",
            "\u{1b}[0m13:36:23.131917 [debug] [MainThread]: Resource report: {\"command_name\": \"build\"}\n",
            "\u{1b}[0m13:36:23.132313 [debug] [MainThread]: Command `dbt build` failed at 13:36:23.132224 after 0.87 seconds\n",
        );
        let s = parse_log(log.as_bytes());
        let inv = &s.last;
        assert_eq!(inv.outcome, Outcome::Failed);
        assert_eq!(inv.project_name.as_deref(), Some("shop"));
        assert_eq!(
            inv.parse_error.as_deref(),
            Some("Compilation Error\n  Model 'model.shop.orders' (models/marts/orders.sql) depends on a node named 'stg_ordrs' which was not found")
        );
    }

    /// Real `--log-format-file json` lines (dbt 1.11.16), trimmed of fields not read.
    #[test]
    fn reads_json_lines() {
        let log = concat!(
            r#"{"data": {"log_version": 3, "version": "=1.11.16"}, "info": {"invocation_id": "e1b2fcfb-a235-4a79-8d5b-6559f3c93511", "level": "info", "name": "MainReportVersion"}}"#,
            "\n",
            r#"{"data": {"command": "dbt build", "success": true}, "info": {"invocation_id": "e1b2fcfb-a235-4a79-8d5b-6559f3c93511", "name": "CommandCompleted"}}"#,
            "\n",
            r#"{"data": {"log_version": 3, "version": "=1.11.16"}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "level": "info", "name": "MainReportVersion"}}"#,
            "\n",
            r#"{"data": {"adapter_name": "duckdb", "adapter_version": "=1.11.1"}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "name": "AdapterRegistered"}}"#,
            "\n",
            r#"{"data": {"node_info": {"node_path": "staging/stg_orders.sql", "node_status": "success", "resource_type": "model", "unique_id": "model.shop.stg_orders"}}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "name": "NodeFinished"}}"#,
            "\n",
            r#"{"data": {"node_info": {"node_path": "marts/customer_orders.sql", "node_status": "skipped", "resource_type": "model", "unique_id": "model.shop.customer_orders"}}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "name": "NodeFinished"}}"#,
            "\n",
            r#"{"data": {"node_info": {"node_name": "orders", "node_path": "marts/orders.sql", "resource_type": "model", "unique_id": "model.shop.orders"}, "node_name": "orders", "path": "models/marts/orders.sql", "resource_type": "model"}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "level": "error", "msg": "\u001b[31mFailure in model orders (models/marts/orders.sql)\u001b[0m", "name": "RunResultFailure"}}"#,
            "\n",
            r#"{"data": {"msg": "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"amout\"\n  \n  LINE 12:     o.amout\n               ^^^^^^^", "node_info": {"node_path": "marts/orders.sql", "unique_id": "model.shop.orders"}}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "name": "RunResultError"}}"#,
            "\n",
            r#"{"data": {"command": "dbt build", "success": false}, "info": {"invocation_id": "c78f6424-3034-4850-90a7-258c9317ee67", "name": "CommandCompleted"}}"#,
            "\n",
            r#"{"data": {"truncated"#,
        );
        let s = parse_log(log.as_bytes());
        assert_eq!(s.format(), "json");
        assert_eq!(s.invocations, 2);
        assert_eq!(s.bad_json_lines, 1);
        let inv = &s.last;
        assert_eq!(
            inv.invocation_id.as_deref(),
            Some("c78f6424-3034-4850-90a7-258c9317ee67")
        );
        assert_eq!(inv.outcome, Outcome::Failed);
        assert_eq!(inv.adapter.as_deref(), Some("duckdb"));
        assert_eq!(inv.failures.len(), 1);
        assert_eq!(
            inv.failures[0].unique_id.as_deref(),
            Some("model.shop.orders")
        );
        assert_eq!(
            inv.failures[0].path.as_deref(),
            Some("models/marts/orders.sql")
        );
        assert!(inv.failures[0]
            .message
            .starts_with("Runtime Error in model orders"));
        assert_eq!(inv.statuses["model.shop.customer_orders"], "skipped");
        assert_eq!(
            inv.node_paths["model.shop.customer_orders"],
            "marts/customer_orders.sql"
        );
    }

    /// Real console output of the same parse-time failure.
    #[test]
    fn reads_console_output() {
        let console = "\u{1b}[0m13:36:22  Running with dbt=1.11.16\n\u{1b}[0m13:36:22  Registered adapter: duckdb=1.11.1\n\u{1b}[0m13:36:23  Encountered an error:\nCompilation Error\n  Model 'model.shop.orders' (models/marts/orders.sql) depends on a node named 'stg_ordrs' which was not found\n";
        let s = parse_log(console.as_bytes());
        assert_eq!(s.last.adapter.as_deref(), Some("duckdb"));
        assert!(s
            .last
            .parse_error
            .as_deref()
            .unwrap_or("")
            .contains("stg_ordrs"));
        assert_eq!(s.last.invocation_id, None);
    }

    /// The same run cut off right after the failure (a CI job killed mid-run): no summary,
    /// but the skip reason carries the message.
    #[test]
    fn a_run_killed_before_its_summary_still_names_the_failure() {
        let cut = TEXT_LOG
            .find("\u{1b}[0m13:36:15.501077")
            .map_or(TEXT_LOG, |i| &TEXT_LOG[..i]);
        let s = parse_log(cut.as_bytes());
        let inv = &s.last;
        assert!(inv.failures.is_empty());
        assert_eq!(inv.outcome, Outcome::Unknown);
        assert_eq!(
            inv.reasons["model.shop.orders"],
            "Runtime Error in model orders (models/marts/orders.sql)\n  Binder Error: Values list \"o\" does not have a column named \"amout\""
        );
    }

    #[test]
    fn garbage_is_not_a_log() {
        let s = parse_log(b"\x00\x01\x02\xff\xfe binary garbage \n\n more");
        assert!(s.is_empty());
        assert!(s.last.failures.is_empty());
    }
}
