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

use crate::text::strip_ansi;

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
    /// The last SQL statement each failed node executed, as the debug log recorded it
    /// (dbt's comment and `create … as (` wrapper included): what a database's `LINE n`
    /// counts.
    pub statements: BTreeMap<String, String>,
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
    failure: Regex,
    marking: Regex,
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
            failure: Regex::new(r"^Failure in (\S+) (\S+) \((.*)\)\s*$").ok()?,
            marking: Regex::new(
                r"^Marking all children of '([^']+)' to be skipped because of status '(\w[\w ]*)'",
            )
            .ok()?,
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

/// Bounds on an executed statement kept for mapping a database's `LINE n` back to the
/// model: a compiled model is rarely over a few thousand lines.
const MAX_STATEMENT_LINES: usize = 20_000;
const MAX_STATEMENT_BYTES: usize = 2 * 1024 * 1024;
/// Statements of nodes still running that are kept at once; beyond it the oldest go
/// (a log of a killed run can name nodes that never finish).
const MAX_PENDING_STATEMENTS: usize = 256;
/// Longest line the streaming reader hands on whole; the rest of a longer line is skipped
/// so one pathological line cannot grow the buffer without bound.
pub(crate) const MAX_LINE_BYTES: usize = 1024 * 1024;
/// The streaming reader's buffer.
const READ_CHUNK: usize = 4 * 1024 * 1024;

/// What a record keeps of the continuation lines that follow its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Nothing: the first line says everything this parser reads.
    Nothing,
    /// The lines of an error message (bounded), ANSI stripped.
    Message,
    /// The SQL statement dbt executed for a node, byte for byte (bounded).
    Statement,
}

/// One event of the text log or console: its first line and, when worth keeping, the
/// continuation lines that follow it.
struct Record {
    /// `[error]` in the text log, or any console line (the console has no levels).
    error_level: bool,
    thread: String,
    first: String,
    extra: Vec<String>,
    /// For [`Keep::Statement`]: the statement, its lines joined by `\n`.
    statement: Vec<u8>,
    keep: Keep,
    bytes: usize,
    lines: usize,
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
    /// The last statement each running node executed (bytes as logged); settled when its
    /// status is known.
    statements: BTreeMap<String, Vec<u8>>,
    /// A statement buffer to reuse: most statements are dropped (their node passed), and a
    /// debug log holds one per node per run.
    spare: Vec<u8>,
}

/// The time prefix of a text event line, parsed without a regex: the text log's
/// `HH:MM:SS.ffffff [level] [thread]: message`, or the console's `HH:MM:SS  message`.
struct Event<'a> {
    /// Empty for the console.
    level: &'a [u8],
    thread: &'a [u8],
    message: &'a [u8],
}

fn two_digits_colon(b: &[u8]) -> bool {
    b.len() >= 8
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b':'
        && b[3].is_ascii_digit()
        && b[4].is_ascii_digit()
        && b[5] == b':'
        && b[6].is_ascii_digit()
        && b[7].is_ascii_digit()
}

/// Matches what `^\d{2}:\d{2}:\d{2}\.\d+ \[(\w+)\s*\] \[([^\]]*)\]: ?(.*)$` and the
/// console's `^\d{2}:\d{2}:\d{2}(?:  (.*))?\s*$` match, byte by byte: this runs on every
/// line of a log that may be gigabytes long.
fn parse_event(b: &[u8]) -> Option<Event<'_>> {
    if !two_digits_colon(b) {
        return None;
    }
    let rest = &b[8..];
    if let Some(after_dot) = rest.strip_prefix(b".") {
        let digits = after_dot.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let rest = after_dot[digits..].strip_prefix(b" [")?;
        let level_len = rest
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        if level_len == 0 {
            return None;
        }
        let level = &rest[..level_len];
        let rest = &rest[level_len..];
        let spaces = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let rest = rest[spaces..].strip_prefix(b"] [")?;
        let close = rest.iter().position(|c| *c == b']')?;
        let thread = &rest[..close];
        let rest = rest[close + 1..].strip_prefix(b":")?;
        let message = rest.strip_prefix(b" ").unwrap_or(rest);
        return Some(Event {
            level,
            thread,
            message,
        });
    }
    if rest.iter().all(u8::is_ascii_whitespace) {
        return Some(Event {
            level: b"",
            thread: b"",
            message: b"",
        });
    }
    rest.strip_prefix(b"  ").map(|message| Event {
        level: b"",
        thread: b"",
        message,
    })
}

/// Skips ANSI CSI sequences at the start of `b` (dbt opens each line with `ESC[0m`).
fn skip_leading_ansi(mut b: &[u8]) -> &[u8] {
    while let Some(rest) = b.strip_prefix(b"\x1b[") {
        // Parameters and intermediates, then one final byte in `@`..=`~`.
        match rest.iter().position(|c| (0x40..=0x7e).contains(c)) {
            Some(end) => b = &rest[end + 1..],
            None => return b,
        }
    }
    b
}

/// Message prefixes of non-error events that the parser reads.
const READ_PREFIXES: &[&[u8]] = &[
    b"Began running node ",
    b"Running with dbt=",
    b"Registered adapter: ",
    b"Partial parsing: ",
    b"Command `",
    b"Done. PASS=",
];

/// `On model.shop.orders: <first line of SQL>` (debug level): the statement dbt ran for a
/// node. Transaction chatter (`BEGIN`, `ROLLBACK`, `Close`) is not a statement worth
/// keeping: it would overwrite the one that failed.
fn is_statement_start(message: &[u8]) -> bool {
    let Some(rest) = message.strip_prefix(b"On ") else {
        return false;
    };
    let Some(colon) = rest.windows(2).position(|w| w == b": ") else {
        return false;
    };
    let id = &rest[..colon];
    let node = [
        &b"model."[..],
        b"seed.",
        b"snapshot.",
        b"test.",
        b"unit_test.",
    ]
    .iter()
    .any(|p| id.starts_with(p));
    let sql = rest[colon + 2..].trim_ascii();
    let chatter = [
        &b"BEGIN"[..],
        b"COMMIT",
        b"ROLLBACK",
        b"Close",
        b"commit",
        b"rollback",
    ]
    .contains(&sql);
    node && !id.contains(&b' ') && !sql.is_empty() && !chatter
}

/// Which events are worth a record, and what each keeps; `None` skips the event and its
/// continuation lines without decoding them (most of a debug log).
fn keep_for(level: &[u8], message: &[u8]) -> Option<Keep> {
    // Continuation lines matter only for errors (and for the console, which has no
    // levels), a failed node's skip reason, and the statement a node executed; a debug
    // SQL statement of any other kind is dropped.
    if level.is_empty() || level == b"error" {
        return Some(Keep::Message);
    }
    let m = skip_leading_ansi(message);
    if m.starts_with(b"Marking all children of ") {
        return Some(Keep::Message);
    }
    if is_statement_start(m) {
        return Some(Keep::Statement);
    }
    if m.first().is_some_and(u8::is_ascii_digit) || READ_PREFIXES.iter().any(|p| m.starts_with(p)) {
        return Some(Keep::Nothing);
    }
    None
}

fn lossy_clean(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    if b.contains(&0x1b) {
        strip_ansi(&text)
    } else {
        text.into_owned()
    }
}

/// The log reader: fed one line at a time, in one pass, keeping only one invocation's
/// statuses, failures and the statements of failed nodes — never the log.
pub(crate) struct LogParser {
    p: &'static Patterns,
    summary: LogSummary,
    inv: LogInvocation,
    scratch: Scratch,
    record: Option<Record>,
    /// Lines seen, for the streaming reader's report.
    pub(crate) lines: u64,
}

impl LogParser {
    /// A parser, or `None` if the patterns failed to compile (unreachable: they are
    /// literals exercised by the unit tests).
    pub(crate) fn new() -> Option<Self> {
        Some(LogParser {
            p: patterns()?,
            summary: LogSummary::default(),
            inv: LogInvocation::default(),
            scratch: Scratch::default(),
            record: None,
            lines: 0,
        })
    }

    fn flush(&mut self) {
        if let Some(r) = self.record.take() {
            handle_text_record(self.p, r, &mut self.inv, &mut self.scratch);
        }
    }

    /// Reads one line (without its `\n`).
    pub(crate) fn line(&mut self, raw: &[u8]) {
        self.lines += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let body = skip_leading_ansi(raw);
        let trimmed = body.trim_ascii_start();
        if trimmed.first() == Some(&b'{') {
            let text = lossy_clean(trimmed);
            if let Some(event) = json_event(&text) {
                self.flush();
                self.summary.json_events += 1;
                handle_json_event(&event, &mut self.inv, &mut self.scratch, &mut self.summary);
                return;
            }
            if self.summary.json_events > 0 && self.summary.text_events == 0 {
                self.summary.bad_json_lines += 1;
                return;
            }
        }
        if body.first() == Some(&b'=') {
            let text = lossy_clean(body);
            if let Some(c) = self.p.header.captures(&text) {
                self.flush();
                self.summary.invocations += 1;
                self.inv = LogInvocation {
                    invocation_id: c.get(1).map(|m| m.as_str().to_lowercase()),
                    ..LogInvocation::default()
                };
                self.scratch = Scratch::default();
                return;
            }
        }
        match parse_event(body) {
            Some(event) => {
                self.flush();
                self.summary.text_events += 1;
                let Some(keep) = keep_for(event.level, event.message) else {
                    return;
                };
                let error_level = event.level.is_empty() || event.level == b"error";
                if !error_level && self.fast_event(keep, event.thread, event.message) {
                    return;
                }
                let thread = String::from_utf8_lossy(event.thread).trim().to_owned();
                let first = lossy_clean(event.message);
                self.record = Some(Record {
                    bytes: first.len(),
                    lines: 1,
                    error_level,
                    thread,
                    first,
                    extra: Vec::new(),
                    statement: Vec::new(),
                    keep,
                });
            }
            None => {
                let Some(r) = self.record.as_mut() else {
                    return;
                };
                match r.keep {
                    Keep::Nothing => {}
                    Keep::Message => {
                        if r.extra.len() < MAX_RECORD_LINES && r.bytes < MAX_RECORD_BYTES {
                            let line = lossy_clean(raw);
                            r.bytes += line.len();
                            r.extra.push(line.trim_end().to_owned());
                        }
                    }
                    Keep::Statement => {
                        if r.lines < MAX_STATEMENT_LINES && r.statement.len() < MAX_STATEMENT_BYTES
                        {
                            r.lines += 1;
                            r.statement.push(b'\n');
                            r.statement.extend_from_slice(raw.trim_ascii_end());
                        }
                    }
                }
            }
        }
    }

    /// The events every node logs — `Began running node`, `N of M STATUS`, and the
    /// statements it executes — read straight from the bytes, without the allocations and
    /// patterns of a record: they are most of what the parser keeps. Returns false for an
    /// event that is none of these.
    fn fast_event(&mut self, keep: Keep, thread: &[u8], message: &[u8]) -> bool {
        let m = skip_leading_ansi(message).trim_ascii();
        if keep == Keep::Statement {
            // `On model.shop.orders: /* {"app": "dbt", …} */`: the record holds the node id
            // as its first line and the statement's bytes.
            let Some(rest) = m.strip_prefix(b"On ") else {
                return false;
            };
            let Some(colon) = rest.windows(2).position(|w| w == b": ") else {
                return false;
            };
            let mut statement = std::mem::take(&mut self.scratch.spare);
            statement.clear();
            statement.extend_from_slice(rest[colon + 2..].trim_ascii_end());
            self.record = Some(Record {
                error_level: false,
                thread: String::new(),
                first: String::from_utf8_lossy(&rest[..colon]).into_owned(),
                extra: Vec::new(),
                statement,
                keep,
                bytes: 0,
                lines: 1,
            });
            return true;
        }
        if let Some(rest) = m.strip_prefix(b"Began running node ") {
            let id = rest
                .split(u8::is_ascii_whitespace)
                .next()
                .unwrap_or_default();
            if !id.is_empty() {
                let id = String::from_utf8_lossy(id);
                let thread = String::from_utf8_lossy(thread);
                began(&mut self.inv, &mut self.scratch, thread.trim(), &id);
            }
            return true;
        }
        if m.first().is_some_and(u8::is_ascii_digit) {
            if let Some(status) = result_status(m) {
                let thread = String::from_utf8_lossy(thread);
                node_result(&mut self.inv, &mut self.scratch, thread.trim(), status);
            }
            // A digit-led line that is not a result line is nothing else either.
            return true;
        }
        false
    }

    /// Ends the input and returns what the last invocation said.
    pub(crate) fn finish(mut self) -> LogSummary {
        self.flush();
        if self.summary.invocations == 0 && !self.summary.is_empty() {
            self.summary.invocations = 1;
        }
        self.summary.last = self.inv;
        self.summary
    }
}

/// Reads a dbt log (text, JSON lines, console output, or a mix) and returns what its last
/// invocation said. Never fails: unreadable lines are counted.
pub(crate) fn parse_log(bytes: &[u8]) -> LogSummary {
    let Some(mut parser) = LogParser::new() else {
        return LogSummary::default();
    };
    for line in lines(bytes) {
        parser.line(&line[..line.len().min(MAX_LINE_BYTES)]);
    }
    parser.finish()
}

/// Reads a dbt log from `reader` in one pass with a fixed-size buffer: a 2 GB appended
/// `dbt.log` costs the buffer plus one invocation's state, never the file.
pub(crate) fn parse_log_reader<R: std::io::Read>(
    mut reader: R,
) -> std::io::Result<(LogParser, u64)> {
    let Some(mut parser) = LogParser::new() else {
        return Err(std::io::Error::other("the log patterns did not compile"));
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    let mut total: u64 = 0;
    // True while the rest of an over-long line is being skipped.
    let mut skipping = false;
    loop {
        if filled == buf.len() {
            // A whole buffer without a newline: hand on its head, skip the rest.
            if !skipping {
                parser.line(&buf[..MAX_LINE_BYTES.min(filled)]);
            }
            skipping = true;
            filled = 0;
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        let end = filled + n;
        let mut start = 0;
        // Only the new bytes can hold a newline: the carried-over head has none.
        let mut search_from = filled;
        while let Some(pos) = find_newline(&buf[search_from..end]) {
            let nl = search_from + pos;
            if skipping {
                skipping = false;
            } else {
                let line = &buf[start..nl];
                parser.line(&line[..line.len().min(MAX_LINE_BYTES)]);
            }
            start = nl + 1;
            search_from = start;
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
    }
    if filled > 0 && !skipping {
        parser.line(&buf[..filled.min(MAX_LINE_BYTES)]);
    }
    Ok((parser, total))
}

/// The lines of a buffer, split at `\n` with a word-at-a-time search; like `str::lines`,
/// a final `\n` ends the last line rather than starting an empty one (so the streaming
/// reader, which sees no line after it, reads the same lines).
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = (!bytes.is_empty()).then_some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_newline(current) {
            Some(i) if i + 1 == current.len() => {
                rest = None;
                Some(&current[..i])
            }
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Position of the first `\n`, eight bytes at a time (the SWAR "has zero byte" test on
/// the bytes XOR-ed with `\n`): the parser's inner loop on multi-gigabyte logs.
pub(crate) fn find_newline(haystack: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NL;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| offset + i)
}

/// What one streaming pass over a dbt log found (see [`scan_log`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogScan {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Invocations the log holds.
    pub invocations: usize,
    /// `text`, `json` or `mixed`; `text` also for an empty log.
    pub format: &'static str,
    /// dbt's invocation id of the last invocation, when the log carries one.
    pub last_invocation_id: Option<String>,
    /// How the last invocation ended: `succeeded`, `failed` or `unknown` (still running,
    /// killed, or no end line).
    pub last_outcome: &'static str,
    /// The last invocation's failed nodes (unique ids where the log names them, else
    /// `<resource type> <name>`), in the order dbt reported them.
    pub failed_nodes: Vec<String>,
    /// The last invocation's parse-time error, if it had one.
    pub parse_error: Option<String>,
}

impl LogScan {
    fn from_parser(parser: LogParser, bytes: u64) -> LogScan {
        let lines = parser.lines;
        let summary = parser.finish();
        let last = &summary.last;
        let mut failed_nodes: Vec<String> = last
            .failures
            .iter()
            .map(|f| {
                f.unique_id
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", f.resource_type, f.name))
            })
            .collect();
        for id in last.reasons.keys() {
            if !failed_nodes.contains(id) {
                failed_nodes.push(id.clone());
            }
        }
        LogScan {
            lines,
            bytes,
            invocations: summary.invocations,
            format: summary.format(),
            last_invocation_id: last.invocation_id.clone(),
            last_outcome: match last.outcome {
                Outcome::Succeeded => "succeeded",
                Outcome::Failed => "failed",
                Outcome::Unknown => "unknown",
            },
            failed_nodes,
            parse_error: last.parse_error.clone(),
        }
    }
}

/// Reads a dbt log (text, JSON lines or console output) from `reader` in one pass with a
/// fixed buffer and returns what its last invocation said. Memory is bounded by the buffer
/// and one invocation's state, never by the log: a 2 GB appended `dbt.log` is fine.
pub fn scan_log<R: std::io::Read>(reader: R) -> std::io::Result<LogScan> {
    parse_log_reader(reader).map(|(parser, bytes)| LogScan::from_parser(parser, bytes))
}

/// Like [`scan_log`], over bytes already in memory.
pub fn scan_log_bytes(bytes: &[u8]) -> LogScan {
    let Some(mut parser) = LogParser::new() else {
        return LogScan::default();
    };
    for line in lines(bytes) {
        parser.line(&line[..line.len().min(MAX_LINE_BYTES)]);
    }
    LogScan::from_parser(parser, bytes.len() as u64)
}

/// Records a node's status and settles its executed statement: kept (bounded) for a node
/// that failed, dropped for one that did not.
fn settle(inv: &mut LogInvocation, scratch: &mut Scratch, id: &str, status: &str) {
    let Some(statement) = scratch.statements.remove(id) else {
        return;
    };
    if matches!(status, "error" | "fail" | "runtime error") && inv.statements.len() < MAX_FAILURES {
        inv.statements.insert(
            id.to_owned(),
            String::from_utf8_lossy(&statement).into_owned(),
        );
    }
    scratch.spare = statement;
}

fn remember_statement(scratch: &mut Scratch, id: &str, statement: Vec<u8>) {
    if let Some(old) = scratch.statements.get_mut(id) {
        scratch.spare = std::mem::replace(old, statement);
        return;
    }
    if scratch.statements.len() >= MAX_PENDING_STATEMENTS {
        if let Some(first) = scratch.statements.keys().next().cloned() {
            scratch.statements.remove(&first);
        }
    }
    scratch.statements.insert(id.to_owned(), statement);
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
                    let status = status.to_lowercase();
                    settle(inv, scratch, id, &status);
                    inv.statuses.insert(id.to_owned(), status);
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
                settle(inv, scratch, id, &status);
                inv.statuses.insert(id.to_owned(), status);
            }
        }
        "SQLQuery" => {
            if let (Some(id), Some(sql)) = (node_id, str_at(data, &["sql"])) {
                let sql = sql.trim_end();
                let is_chatter = ["BEGIN", "COMMIT", "ROLLBACK", "Close"]
                    .iter()
                    .any(|c| sql.eq_ignore_ascii_case(c));
                if !is_chatter && !sql.is_empty() {
                    let mut end = sql.len().min(MAX_STATEMENT_BYTES);
                    while !sql.is_char_boundary(end) {
                        end -= 1;
                    }
                    remember_statement(scratch, id, sql.as_bytes()[..end].to_vec());
                }
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

/// `Began running node <id>` on a thread: the `N of M STATUS` line that follows on the
/// same thread is that node's.
fn began(inv: &mut LogInvocation, scratch: &mut Scratch, thread: &str, id: &str) {
    let mut parts = id.split('.');
    if let (Some(kind), Some(project), Some(name)) = (parts.next(), parts.next(), parts.next()) {
        let key = (kind.to_owned(), name.to_owned());
        if scratch.ids_by_name.get(&key).map(String::as_str) != Some(id) {
            scratch.ids_by_name.insert(key, id.to_owned());
        }
        if inv.project_name.is_none() {
            inv.project_name = Some(project.to_owned());
        }
    }
    match scratch.thread_node.get_mut(thread) {
        Some(current) => {
            current.clear();
            current.push_str(id);
        }
        None => {
            scratch.thread_node.insert(thread.to_owned(), id.to_owned());
        }
    }
}

/// The status of `^\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b`, read from bytes.
fn result_status(m: &[u8]) -> Option<&'static str> {
    let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = digits(m);
    if n == 0 {
        return None;
    }
    let rest = m[n..].strip_prefix(b" of ")?;
    let n = digits(rest);
    if n == 0 {
        return None;
    }
    let rest = rest[n..].strip_prefix(b" ")?;
    const WORDS: [(&[u8], &str); 7] = [
        (b"OK", "success"),
        (b"PASS", "pass"),
        (b"WARN", "warn"),
        (b"ERROR", "error"),
        (b"FAIL", "fail"),
        (b"SKIP", "skipped"),
        (b"NO-OP", "success"),
    ];
    WORDS.iter().find_map(|(word, status)| {
        let boundary = rest
            .get(word.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
        (rest.starts_with(word) && boundary).then_some(*status)
    })
}

/// A node's `N of M STATUS` line: its status, unless `Marking all children…` already
/// said (that is authoritative).
fn node_result(inv: &mut LogInvocation, scratch: &mut Scratch, thread: &str, status: &str) {
    let Some(id) = scratch.thread_node.get(thread) else {
        return;
    };
    let status = match inv.statuses.get(id) {
        Some(existing) => existing.clone(),
        None => {
            inv.statuses.insert(id.clone(), status.to_owned());
            status.to_owned()
        }
    };
    if scratch.statements.contains_key(id) {
        let id = id.clone();
        settle(inv, scratch, &id, &status);
    }
}

fn handle_text_record(p: &Patterns, r: Record, inv: &mut LogInvocation, scratch: &mut Scratch) {
    if r.keep == Keep::Statement {
        // The node id (see `fast_event`) and the statement it executed.
        remember_statement(scratch, &r.first, r.statement);
        return;
    }
    let msg = r.first.trim();
    // Each pattern runs only behind its literal prefix: this is called for every event
    // the parser keeps, thousands per run.
    if let Some(rest) = msg.strip_prefix("Began running node ") {
        if let Some(id) = rest.split_whitespace().next() {
            began(inv, scratch, &r.thread, id);
        }
        return;
    }
    if msg.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        if let Some(status) = result_status(msg.as_bytes()) {
            node_result(inv, scratch, &r.thread, status);
        }
        return;
    }
    if let Some(c) = msg
        .starts_with("Marking all children of ")
        .then(|| p.marking.captures(msg))
        .flatten()
    {
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
            settle(inv, scratch, id.as_str(), &status);
            inv.statuses.insert(id.as_str().to_owned(), status);
        }
        return;
    }
    if let Some(c) = msg
        .starts_with("Running with dbt=")
        .then(|| p.version.captures(msg))
        .flatten()
    {
        inv.dbt_version = c.get(1).map(|m| m.as_str().to_owned());
        return;
    }
    if let Some(c) = msg
        .starts_with("Registered adapter: ")
        .then(|| p.adapter.captures(msg))
        .flatten()
    {
        inv.adapter = c.get(1).map(|m| m.as_str().to_owned());
        return;
    }
    if let Some(c) = msg
        .starts_with("Partial parsing: ")
        .then(|| p.partial.captures(msg))
        .flatten()
    {
        if inv.project_name.is_none() {
            inv.project_name = c.get(1).map(|m| m.as_str().to_owned());
        }
        return;
    }
    if let Some(c) = msg
        .starts_with("Command `")
        .then(|| p.command.captures(msg))
        .flatten()
    {
        let failed = c.get(1).is_some_and(|m| m.as_str() == "failed");
        inv.outcome = if failed || !inv.failures.is_empty() || inv.parse_error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        return;
    }
    if let Some(c) = msg
        .starts_with("Done. PASS=")
        .then(|| p.done.captures(msg))
        .flatten()
    {
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
    if !r.error_level {
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
    if let Some(c) = msg
        .starts_with("Failure in ")
        .then(|| p.failure.captures(msg))
        .flatten()
    {
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

    /// The byte-level event parser reads lines exactly as the regular expressions it
    /// replaced did (kept here as the specification).
    #[test]
    fn the_fast_event_parser_agrees_with_the_regexes() {
        use proptest::prelude::*;
        let text_event =
            Regex::new(r"^\d{2}:\d{2}:\d{2}\.\d+ \[(\w+)\s*\] \[([^\]]*)\]: ?(.*)$").unwrap();
        let console_event = Regex::new(r"^\d{2}:\d{2}:\d{2}(?:  (.*))?\s*$").unwrap();
        let line = (
            prop::sample::select(vec!["13:36:14", "1:36:14", "13:36:1x", "99:99:99", ""]),
            prop::sample::select(vec![".533474", ".", "", ".1"]),
            prop::sample::select(vec![
                " [error] ",
                " [info ] ",
                " [debug]",
                " [] ",
                "  ",
                " ",
                "",
            ]),
            prop::sample::select(vec!["[MainThread]: ", "[Thread-1 (]:", "[x]] ", "[]: ", ""]),
            "[ -~]{0,30}",
        )
            .prop_map(|(t, f, l, th, m)| format!("{t}{f}{l}{th}{m}"));
        let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
            cases: 2_000,
            failure_persistence: None,
            ..Default::default()
        });
        runner
            .run(&line, |line| {
                let fast = parse_event(line.as_bytes()).map(|e| {
                    (
                        String::from_utf8_lossy(e.level).into_owned(),
                        String::from_utf8_lossy(e.thread).trim().to_owned(),
                        String::from_utf8_lossy(e.message).trim().to_owned(),
                    )
                });
                let slow = text_event
                    .captures(&line)
                    .map(|c| {
                        (
                            c[1].to_owned(),
                            c[2].trim().to_owned(),
                            c[3].trim().to_owned(),
                        )
                    })
                    .or_else(|| {
                        console_event.captures(&line).map(|c| {
                            (
                                String::new(),
                                String::new(),
                                c.get(1).map_or("", |m| m.as_str()).trim().to_owned(),
                            )
                        })
                    });
                prop_assert_eq!(fast, slow, "{:?}", line);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn result_lines_are_read_as_the_regex_read_them() {
        let re = Regex::new(r"^\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b").unwrap();
        for line in [
            "3 of 8 OK created sql view model main.stg_orders",
            "5 of 8 ERROR creating sql view model main.orders",
            "8 of 8 SKIP relation main.customer_orders",
            "2 of 9 NO-OP x",
            "2 of 9 NO-OPS",
            "2 of 9 OKAY",
            "2 of 9 ERROR",
            "2 of 9 ERROR-ish",
            "12 of 23 START sql table model main.orders",
            "1 of  2 OK",
            "of 2 OK",
            "1 of 2OK",
            "1 of 2 PASS_x",
        ] {
            let want = re.captures(line).map(|c| c[1].to_owned());
            let got = result_status(line.as_bytes());
            assert_eq!(want.is_some(), got.is_some(), "{line}");
        }
        assert_eq!(result_status(b"5 of 8 ERROR creating"), Some("error"));
        assert_eq!(result_status(b"2 of 9 NO-OP"), Some("success"));
    }

    #[test]
    fn newlines_are_found_a_word_at_a_time() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b'\n';
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_newline(&vec![0x8a; len]), None);
        }
        let parts: Vec<&[u8]> = lines(b"a\nb\n\nc\n").collect();
        assert_eq!(parts, [&b"a"[..], b"b", b"", b"c"]);
        assert_eq!(lines(b"").count(), 0);
    }

    /// The statement dbt executed for a node that failed is kept (what `LINE n` counts);
    /// those of nodes that passed are not.
    #[test]
    fn executed_statements_of_failed_nodes_are_kept() {
        let s = parse_log(TEXT_LOG.as_bytes());
        let statement = &s.last.statements["model.shop.orders"];
        assert!(statement.starts_with("/* {\"app\": \"dbt\""), "{statement}");
        assert!(statement.contains("create view \"shop\".\"main\".\"orders__dbt_tmp\" as ("));
        assert_eq!(statement.lines().count(), 5);
        assert_eq!(s.last.statements.len(), 1);
    }

    #[test]
    fn garbage_is_not_a_log() {
        let s = parse_log(b"\x00\x01\x02\xff\xfe binary garbage \n\n more");
        assert!(s.is_empty());
        assert!(s.last.failures.is_empty());
    }
}
