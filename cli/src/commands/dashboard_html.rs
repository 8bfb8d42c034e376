//! The dashboard's HTML, CSS and JavaScript: server-rendered pages, with a script that only
//! keeps them current from `/events`.
//!
//! Everything that comes from the bus or the store — error texts, SQL, explanations, dbt's
//! output — is attacker-reachable data (a model file can hold `<script>`), so every value
//! goes through [`escape`] on its way into the page, and the response's Content-Security
//! Policy allows no inline script as a second line of defence. The script itself never
//! builds HTML from event data: it inserts rows the server rendered, and writes the event
//! log with `textContent`.

use std::fmt::Write as _;

use dbtops_bus::IncidentRecord;
use dbtops_proto::v1;

use super::{Attempt, IncidentDetail, Verdict};

/// `text` with the five characters that can end an HTML text run or attribute value
/// replaced by character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for one URL path segment or query value: everything but RFC
/// 3986's unreserved characters.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The incident page's address.
pub fn incident_href(incident_id: &str) -> String {
    format!("/incidents/{}", encode_component(incident_id))
}

/// An RFC 3339 time as people read it (`2026-11-03 10:22:01 UTC`), inside a `<time>` that
/// keeps the exact value.
fn time(rfc3339: &str) -> String {
    if rfc3339.is_empty() {
        return "-".into();
    }
    let readable = match rfc3339.split_once('T') {
        Some((date, rest)) => {
            let clock: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ':')
                .collect();
            let zone = if rest.ends_with('Z') { " UTC" } else { "" };
            format!("{date} {clock}{zone}")
        }
        None => rfc3339.to_owned(),
    };
    format!(
        "<time datetime=\"{}\">{}</time>",
        escape(rfc3339),
        escape(&readable)
    )
}

/// A link when `url` is a web address; plain text otherwise, so a stored `javascript:` URL
/// never becomes a link.
fn external_link(url: &str, text: &str) -> String {
    if url.starts_with("https://") || url.starts_with("http://") {
        format!(
            "<a href=\"{}\" rel=\"noreferrer noopener\">{}</a>",
            escape(url),
            escape(text)
        )
    } else {
        escape(text)
    }
}

fn state_badge(label: &str) -> String {
    format!("<span class=\"state state-{0}\">{0}</span>", escape(label))
}

/// The whole page around `main`; `body_data` are `data-*` attributes of `<body>` the
/// script reads (already escaped names, raw values).
fn page(title: &str, body_data: &[(&str, &str)], main: &str) -> String {
    let mut attributes = String::new();
    for (name, value) in body_data {
        let _ = write!(attributes, " data-{name}=\"{}\"", escape(value));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/static/dashboard.css\">\n\
         <script src=\"/static/dashboard.js\" defer></script>\n\
         </head>\n<body{attributes}>\n\
         <header><a class=\"brand\" href=\"/\">dbt-ops</a>\
         <span id=\"live\" data-state=\"connecting\">connecting…</span></header>\n\
         <main>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// What became of the incident, for a table cell: the MR link, the branch, or the reason.
fn outcome_cell(record: &IncidentRecord) -> String {
    let mut out = String::new();
    if let Some(url) = record.url.as_deref().filter(|url| !url.is_empty()) {
        out.push_str(&external_link(url, "merge request"));
        out.push(' ');
    }
    if let Some(branch) = &record.branch {
        let _ = write!(out, "<code>{}</code>", escape(branch));
    } else if let Some(reason) = &record.reason {
        let _ = write!(out, "<span class=\"reason\">{}</span>", escape(reason));
    }
    out
}

/// One row of the incident table; the script swaps in a new one from each `incident` event,
/// found by `data-incident` and ordered by `data-updated`.
pub fn incident_row(record: &IncidentRecord) -> String {
    format!(
        "<tr data-incident=\"{id}\" data-state=\"{state}\" data-updated=\"{updated}\">\
         <td><a href=\"{href}\"><code>{id}</code></a></td>\
         <td>{badge}</td>\
         <td>{class}</td>\
         <td title=\"{path}\">{model}</td>\
         <td class=\"number\">{attempts}</td>\
         <td>{updated_time}</td>\
         <td>{outcome}</td></tr>",
        id = escape(&record.incident_id),
        state = escape(record.state.label()),
        updated = escape(&record.updated_at),
        href = escape(&incident_href(&record.incident_id)),
        badge = state_badge(record.state.label()),
        class = escape(&record.class),
        path = escape(&record.model_path),
        model = escape(&record.model),
        attempts = record.attempts,
        updated_time = time(&record.updated_at),
        outcome = outcome_cell(record),
    )
}

/// `/`: every incident, newest change first, and the live event log; `events_url` is the
/// `/events` address the script subscribes to.
pub fn index(incidents: &[IncidentRecord], events_url: &str) -> String {
    let mut main = String::from(
        "<h1>Incidents</h1>\n<table id=\"incidents\">\n<thead><tr><th>Incident</th>\
         <th>State</th><th>Class</th><th>Model</th><th class=\"number\">Attempts</th><th>Updated</th>\
         <th>Outcome</th></tr></thead>\n<tbody id=\"incident-rows\">\n",
    );
    for record in incidents {
        main.push_str(&incident_row(record));
        main.push('\n');
    }
    if incidents.is_empty() {
        main.push_str(
            "<tr id=\"no-incidents\"><td colspan=\"7\">No incidents yet. Submit a failed \
             dbt run (<code>dbt-ops submit --project-dir …</code>) and it appears here.</td></tr>\n",
        );
    }
    main.push_str(
        "</tbody>\n</table>\n<h2>Events</h2>\n<p class=\"hint\">Every event on the bus as it \
         happens (<a href=\"/?since=1h\">replay the last hour</a>, \
         <a href=\"/?since=all\">everything</a>).</p>\n<ol id=\"event-log\"></ol>\n",
    );
    page("dbt-ops incidents", &[("events", events_url)], &main)
}

/// A `<pre>` of a unified diff, each line marked for colour.
fn diff_block(diff: &str) -> String {
    if diff.is_empty() {
        return "<p class=\"hint\">No diff: the proposal leaves the file as it is, or the \
                evidence did not carry the original SQL.</p>\n"
            .into();
    }
    let mut out = String::from("<pre class=\"diff\">");
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            "file"
        } else if line.starts_with("@@") {
            "hunk"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        };
        let _ = writeln!(out, "<span class=\"{class}\">{}</span>", escape(line));
    }
    out.push_str("</pre>\n");
    out
}

fn steps_table(steps: &[v1::ValidationStep]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<table class=\"steps\"><thead><tr><th></th><th>Step</th><th class=\"number\">Time</th>\
         <th>Output</th></tr></thead><tbody>\n",
    );
    for step in steps {
        let (mark, class) = match (step.ok, step.flagged) {
            (true, false) => ("✓", "ok"),
            (true, true) => ("⚑", "flagged"),
            (false, _) => ("✗", "failed"),
        };
        let output = if step.output.trim().is_empty() {
            "<span class=\"hint\">no output</span>".to_owned()
        } else {
            format!(
                "<details><summary>{} line(s)</summary><pre>{}</pre></details>",
                step.output.lines().count(),
                escape(&step.output)
            )
        };
        let _ = writeln!(
            out,
            "<tr class=\"step {class}\"><td>{mark}</td><td>{}</td><td class=\"number\">{} ms</td><td>{output}</td></tr>",
            escape(&step.name),
            step.duration_ms,
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

fn attempt_section(attempt: &Attempt) -> String {
    let generation = if attempt.generation > 0 {
        format!(" (reopened, generation {})", attempt.generation)
    } else {
        String::new()
    };
    let verdict = match &attempt.verdict {
        Verdict::Pending => "<span class=\"verdict pending\">being validated</span>".to_owned(),
        Verdict::Validated => "<span class=\"verdict ok\">validated</span>".to_owned(),
        Verdict::Failed { step, .. } => format!(
            "<span class=\"verdict failed\">failed at {}</span>",
            escape(if step.is_empty() { "validation" } else { step })
        ),
    };
    let mut out = format!(
        "<article class=\"attempt\" id=\"attempt-{g}-{n}\">\n<h3>Attempt {n}{generation} — {verdict}</h3>\n",
        g = attempt.generation,
        n = attempt.number,
    );
    if let Some(at) = &attempt.proposed_at {
        let _ = writeln!(out, "<p class=\"hint\">proposed {}</p>", time(at));
    }
    if let Some(proposal) = &attempt.proposal {
        let _ = writeln!(
            out,
            "<p>by <code>{}</code>, confidence {:.2}</p>",
            escape(&proposal.strategy),
            proposal.confidence
        );
        if !proposal.explanation.trim().is_empty() {
            let _ = writeln!(
                out,
                "<p class=\"explanation\">{}</p>",
                escape(proposal.explanation.trim())
            );
        }
        if let Some(usage) = proposal.usage.as_ref().filter(|usage| usage.calls > 0) {
            let _ = writeln!(
                out,
                "<p class=\"hint\">LLM: {} call(s), {} tokens in, {} out, ${:.4}</p>",
                usage.calls, usage.input_tokens, usage.output_tokens, usage.cost_usd
            );
        }
        for edit in &proposal.upstream_edits {
            let _ = writeln!(
                out,
                "<p>Also edits <code>{}</code>: {}</p>",
                escape(&edit.path),
                escape(&edit.explanation)
            );
        }
    }
    out.push_str("<h4>Diff</h4>\n");
    out.push_str(&diff_block(&attempt.diff));
    if !attempt.steps.is_empty() {
        out.push_str("<h4>Validation</h4>\n");
        out.push_str(&steps_table(&attempt.steps));
    }
    if let Verdict::Failed { error_text, .. } = &attempt.verdict {
        if !error_text.trim().is_empty() {
            let _ = writeln!(
                out,
                "<h4>dbt's error</h4>\n<pre class=\"error\">{}</pre>",
                escape(error_text)
            );
        }
    }
    out.push_str("</article>\n");
    out
}

/// `/incidents/{id}`: the record, the error, each attempt with its diff and validation, the
/// outcome, the trace, the timeline and the evidence.
pub fn incident_page(detail: &IncidentDetail, events_url: &str) -> String {
    let record = &detail.status.incident;
    let mut main = format!(
        "<p><a href=\"/\">← all incidents</a></p>\n<h1>Incident <code>{}</code> {}</h1>\n<dl class=\"facts\">\n",
        escape(&record.incident_id),
        state_badge(record.state.label())
    );
    let facts = [
        ("Project", escape(&record.project)),
        (
            "Model",
            format!(
                "{} <code>{}</code>",
                escape(&record.model),
                escape(&record.model_path)
            ),
        ),
        ("Class", escape(&record.class)),
        ("Attempts", record.attempts.to_string()),
        ("First seen", time(&record.first_seen)),
        ("Last seen", time(&record.last_seen)),
        ("Updated", time(&record.updated_at)),
        ("Recurrences", record.recurrences.to_string()),
    ];
    for (name, value) in facts {
        let _ = writeln!(main, "<dt>{name}</dt><dd>{value}</dd>");
    }
    main.push_str("</dl>\n");

    main.push_str("<section id=\"outcome\">\n<h2>Outcome</h2>\n");
    main.push_str(&outcome_text(detail));
    main.push_str("</section>\n");

    main.push_str("<section id=\"trace\">\n<h2>Trace</h2>\n");
    match (&detail.trace_url, &record.trace_id) {
        (Some(url), Some(trace_id)) => {
            let _ = writeln!(
                main,
                "<p>{} — every step of this incident, one trace.</p>",
                external_link(url, trace_id)
            );
        }
        (None, Some(trace_id)) => {
            let _ = writeln!(
                main,
                "<p>Trace id <code>{}</code> (set <code>telemetry.trace_url_prefix</code> for a link).</p>",
                escape(trace_id)
            );
        }
        (_, None) => main.push_str("<p class=\"hint\">No trace recorded.</p>\n"),
    }
    main.push_str("</section>\n");

    if let Some(error) = detail.detected.as_ref().and_then(|d| d.error.as_ref()) {
        let _ = writeln!(
            main,
            "<section id=\"error\">\n<h2>Error</h2>\n<pre class=\"error\">{}</pre>",
            escape(&error.message)
        );
        if let Some(location) = detail
            .detected
            .as_ref()
            .and_then(|d| d.evidence.as_ref())
            .and_then(|e| e.error_location.as_ref())
            .filter(|l| l.model_line > 0)
        {
            let _ = writeln!(
                main,
                "<p>At line {} of the model: <code>{}</code></p>",
                location.model_line,
                escape(location.model_line_text.trim())
            );
        }
        main.push_str("</section>\n");
    }

    main.push_str("<section id=\"attempts\">\n<h2>Attempts</h2>\n");
    if detail.attempts.is_empty() {
        main.push_str("<p class=\"hint\">No proposal yet.</p>\n");
    }
    for attempt in &detail.attempts {
        main.push_str(&attempt_section(attempt));
    }
    main.push_str("</section>\n");

    main.push_str(
        "<section id=\"timeline\">\n<h2>Timeline</h2>\n<table class=\"timeline\"><thead><tr>\
         <th>When</th><th>Subject</th><th class=\"number\">Attempt</th><th>What</th></tr></thead><tbody>\n",
    );
    for event in &detail.status.timeline {
        let _ = writeln!(
            main,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"number\">{}</td><td>{}</td></tr>",
            event.at.as_deref().map(time).unwrap_or_else(|| "-".into()),
            escape(&event.subject),
            event.attempt.map(|a| a.to_string()).unwrap_or_default(),
            escape(&event.summary)
        );
    }
    main.push_str("</tbody></table>\n</section>\n");

    if let Some(evidence) = detail.detected.as_ref().and_then(|d| d.evidence.as_ref()) {
        main.push_str("<section id=\"evidence\">\n<h2>Evidence</h2>\n");
        for (name, text) in [
            ("Model SQL", &evidence.model_sql),
            ("Compiled SQL", &evidence.compiled_sql),
            ("YAML entry", &evidence.yaml_entry),
        ] {
            if !text.is_empty() {
                let _ = writeln!(
                    main,
                    "<details><summary>{name}</summary><pre>{}</pre></details>",
                    escape(text)
                );
            }
        }
        if !evidence.parents.is_empty() {
            main.push_str("<details><summary>Parents' columns</summary><ul>\n");
            for parent in &evidence.parents {
                let _ = writeln!(
                    main,
                    "<li><code>{}</code> ({}): {}</li>",
                    escape(&parent.name),
                    escape(&parent.origin),
                    escape(&parent.columns.join(", "))
                );
            }
            main.push_str("</ul></details>\n");
        }
        main.push_str("</section>\n");
    }

    page(
        &format!("dbt-ops incident {}", record.incident_id),
        &[
            ("events", events_url),
            ("incident", &record.incident_id),
            ("updated", &record.updated_at),
        ],
        &main,
    )
}

/// The outcome paragraph: the branch and merge request, or why it was abandoned, or that
/// dbt-ops is still at it.
fn outcome_text(detail: &IncidentDetail) -> String {
    let record = &detail.status.incident;
    let mut out = String::new();
    if let Some(branch) = &record.branch {
        let _ = writeln!(out, "<p>Branch <code>{}</code></p>", escape(branch));
    }
    if let Some(url) = record.url.as_deref().filter(|url| !url.is_empty()) {
        let _ = writeln!(out, "<p>Merge request: {}</p>", external_link(url, url));
    }
    if let Some(opened) = &detail.merge_request {
        if !opened.description_path.is_empty() {
            let _ = writeln!(
                out,
                "<p>Description written to <code>{}</code> ({}).</p>",
                escape(&opened.description_path),
                escape(&opened.provider)
            );
        }
    }
    let reason = record
        .reason
        .clone()
        .or_else(|| detail.abandoned.as_ref().map(|a| a.reason.clone()));
    if let Some(reason) = reason {
        let detail_text = detail
            .abandoned
            .as_ref()
            .map(|a| a.detail.clone())
            .or_else(|| record.detail.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<p class=\"abandoned\">Abandoned: <strong>{}</strong></p>\n<pre class=\"error\">{}</pre>",
            escape(&reason),
            escape(&detail_text)
        );
    }
    if out.is_empty() {
        let _ = writeln!(
            out,
            "<p>{} — no branch yet.</p>",
            escape(record.state.label())
        );
    }
    out
}

/// A page for a failure: `message` escaped, in the same layout.
pub fn error_page(title: &str, message: &str) -> String {
    page(
        title,
        &[],
        &format!(
            "<p><a href=\"/\">← all incidents</a></p>\n<h1>{}</h1>\n<pre class=\"error\">{}</pre>\n",
            escape(title),
            escape(message)
        ),
    )
}

/// The stylesheet (served at `/static/dashboard.css`, so the policy can forbid inline
/// styles too).
pub const CSS: &str = r#"
:root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --ok: #15803d; --bad: #b91c1c; --warn: #b45309; --busy: #1d4ed8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; }
header { display: flex; gap: 1rem; align-items: center; padding: .6rem 1.2rem; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 700; text-decoration: none; color: inherit; }
#live { font-size: 12px; padding: .1rem .5rem; border-radius: 1rem; border: 1px solid var(--line); color: var(--muted); }
#live[data-state="open"] { color: var(--ok); border-color: var(--ok); }
#live[data-state="reconnecting"], #live[data-state="broken"] { color: var(--bad); border-color: var(--bad); }
main { padding: 0 1.2rem 2rem; max-width: 1400px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.number, th.number { text-align: right; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { padding: .6rem; overflow-x: auto; border: 1px solid var(--line); border-radius: 4px; white-space: pre-wrap; }
pre.diff { white-space: pre; }
pre.diff .add { color: var(--ok); }
pre.diff .del { color: var(--bad); }
pre.diff .hunk, pre.diff .file { color: var(--muted); }
pre.error { border-color: var(--bad); }
.state { display: inline-block; padding: 0 .45rem; border-radius: .3rem; font-size: 12px; border: 1px solid currentColor; }
.state-mr_opened, .state-merged, .state-resolved { color: var(--ok); }
.state-abandoned, .state-closed { color: var(--bad); }
.state-detected, .state-fixing, .state-validating, .state-delivering { color: var(--busy); }
.verdict.ok { color: var(--ok); } .verdict.failed { color: var(--bad); } .verdict.pending { color: var(--busy); }
tr.step.failed td:first-child { color: var(--bad); } tr.step.ok td:first-child { color: var(--ok); } tr.step.flagged td:first-child { color: var(--warn); }
tr.changed { animation: changed 2s ease-out; }
@keyframes changed { from { background: rgba(250, 204, 21, .45); } to { background: transparent; } }
.hint { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
article.attempt { border: 1px solid var(--line); border-radius: 6px; padding: 0 1rem .6rem; margin: .8rem 0; }
#event-log { list-style: none; padding: 0; font: 12.5px/1.5 ui-monospace, monospace; max-height: 28rem; overflow-y: auto; }
#event-log li { border-bottom: 1px solid var(--line); padding: .15rem 0; }
#event-log .subject { color: var(--busy); }
"#;

/// The script (served at `/static/dashboard.js`): subscribes to `body[data-events]`, swaps
/// in server-rendered rows on `incident` events, appends `bus` events to the log with
/// `textContent`, and on an incident's page re-fetches the page when the incident changes.
pub const JS: &str = r#"
"use strict";
(() => {
  const body = document.body;
  const url = body.dataset.events;
  const live = document.getElementById("live");
  const setLive = (state, text) => {
    if (live) { live.dataset.state = state; live.textContent = text; }
  };
  if (!url || !window.EventSource) { setLive("off", "not live"); return; }
  const rows = document.getElementById("incident-rows");
  const log = document.getElementById("event-log");
  const incidentPage = body.dataset.incident;

  const newer = (a, b) => (Date.parse(a) || 0) > (Date.parse(b) || 0);
  const upsertRow = (data) => {
    const template = document.createElement("template");
    template.innerHTML = data.row.trim();
    const row = template.content.firstElementChild;
    if (!row) return;
    const old = [...rows.rows].find((r) => r.dataset.incident === data.incident_id);
    if (old) {
      if (old.dataset.updated === row.dataset.updated && old.dataset.state === row.dataset.state) return;
      old.remove();
    }
    const empty = document.getElementById("no-incidents");
    if (empty) empty.remove();
    const before = [...rows.rows].find((r) => newer(row.dataset.updated, r.dataset.updated));
    rows.insertBefore(row, before || null);
    row.classList.add("changed");
  };

  const appendLog = (data) => {
    if (!log) return;
    const item = document.createElement("li");
    const at = document.createElement("span");
    at.textContent = (data.at || "").replace("T", " ").replace(/\.\d+/, "") + " ";
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = data.subject + " ";
    item.append(at, subject);
    if (data.incident_id) {
      const link = document.createElement("a");
      link.href = "/incidents/" + encodeURIComponent(data.incident_id);
      link.textContent = data.incident_id;
      item.append(link, " ");
    }
    item.append(data.summary);
    item.dataset.subject = data.subject;
    log.prepend(item);
    while (log.children.length > 200) log.lastElementChild.remove();
  };

  let refresh = null;
  const refreshSoon = () => {
    clearTimeout(refresh);
    refresh = setTimeout(async () => {
      try {
        const response = await fetch(location.href, { headers: { Accept: "text/html" } });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const main = doc.querySelector("main");
        if (main) document.querySelector("main").replaceWith(document.adoptNode(main));
        body.dataset.updated = doc.body.dataset.updated || "";
      } catch (_) { /* the next event tries again */ }
    }, 300);
  };

  const source = new EventSource(url);
  source.onopen = () => setLive("open", "live");
  source.onerror = () => setLive("reconnecting", "reconnecting…");
  source.addEventListener("incident", (event) => {
    const data = JSON.parse(event.data);
    if (rows) upsertRow(data);
    if (incidentPage && data.updated_at !== body.dataset.updated) refreshSoon();
  });
  source.addEventListener("bus", (event) => {
    const data = JSON.parse(event.data);
    appendLog(data);
    if (incidentPage) refreshSoon();
  });
  source.addEventListener("stream-error", (event) => {
    setLive("broken", "stream error: " + event.data);
  });
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain text ✓"), "plain text ✓");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("ab12-_.~"), "ab12-_.~");
        assert_eq!(encode_component("a/b c\"<"), "a%2Fb%20c%22%3C");
        assert_eq!(incident_href("x y"), "/incidents/x%20y");
    }

    #[test]
    fn only_web_addresses_become_links() {
        assert!(external_link("https://gitlab.example/mr/1", "mr").starts_with("<a href="));
        assert_eq!(external_link("javascript:alert(1)", "<mr>"), "&lt;mr&gt;");
    }

    #[test]
    fn times_read_as_utc_and_keep_the_exact_value() {
        assert_eq!(
            time("2026-11-03T10:22:01.123456Z"),
            "<time datetime=\"2026-11-03T10:22:01.123456Z\">2026-11-03 10:22:01 UTC</time>"
        );
        assert_eq!(time(""), "-");
    }

    #[test]
    fn a_diff_is_escaped_and_marked_per_line() {
        let html = diff_block("--- a/m.sql\n+++ b/m.sql\n@@ -1 +1 @@\n-select <a>\n+select b\n");
        assert!(html.contains("<span class=\"del\">-select &lt;a&gt;</span>"));
        assert!(html.contains("<span class=\"add\">+select b</span>"));
        assert!(html.contains("<span class=\"hunk\">"));
    }
}
