//! The merge request a reviewer reads: title and description, rendered from the
//! validated fix.

use dbtops_proto::v1;

/// Marks a description as dbt-ops'; a provider looks for it before opening a second one.
pub fn incident_marker(incident_id: &str) -> String {
    format!("<!-- dbt-ops incident: {incident_id} -->")
}

/// `fix(dbt): <model> — <class>`.
pub fn title(validated: &v1::FixValidated) -> String {
    let incident = validated.incident.as_ref();
    let model = incident
        .and_then(|incident| incident.model.as_ref())
        .map(|model| model.name.as_str())
        .unwrap_or("model");
    let class = incident
        .and_then(|incident| incident.error.as_ref())
        .map(|error| error.class().label())
        .unwrap_or("failure");
    format!("fix(dbt): {model} — {class}")
}

/// The label a fix under a sensitive path carries when it is opened as a draft.
pub const OWNER_REVIEW_LABEL: &str = "needs-owner-review";

/// The description in Markdown: the error, the explanation, the diff, the validation
/// steps with their output, the attempts and the trace link.
pub fn render(
    validated: &v1::FixValidated,
    trace_url: Option<&str>,
    trace_id: Option<&str>,
) -> String {
    render_with_notice(validated, trace_url, trace_id, None)
}

/// Like [`render`], with `notice` (e.g. why the change needs its owner's review) quoted
/// right under the heading, where a reviewer reads first.
pub fn render_with_notice(
    validated: &v1::FixValidated,
    trace_url: Option<&str>,
    trace_id: Option<&str>,
    notice: Option<&str>,
) -> String {
    let default_incident = v1::FailureDetected::default();
    let incident = validated.incident.as_ref().unwrap_or(&default_incident);
    let default_proposal = v1::FixProposal::default();
    let proposal = validated.proposal.as_ref().unwrap_or(&default_proposal);
    let model = incident.model.clone().unwrap_or_default();
    let error = incident.error.clone().unwrap_or_default();
    let mut text = String::new();
    text.push_str(&format!("# {}\n\n", title(validated)));
    if let Some(notice) = notice {
        for line in notice.lines() {
            text.push_str(&format!("> {line}\n"));
        }
        text.push('\n');
    }
    text.push_str(&format!(
        "dbt-ops found `{}` (`{}`) failing and drafted this fix; dbt itself validated it. \
         A human decides whether it merges.\n\n",
        model.name, model.path
    ));
    text.push_str("## Error\n\n");
    text.push_str(&fenced("text", &error.message));
    text.push_str(&format!(
        "Class: `{}` · incident `{}`\n\n",
        error.class().label(),
        incident.incident_id
    ));
    text.push_str("## Explanation\n\n");
    text.push_str(&format!(
        "{}\n\nStrategy: `{}` · confidence {:.2} · attempt {} of this incident\n\n",
        proposal.explanation.trim(),
        proposal.strategy,
        proposal.confidence,
        validated.attempt
    ));
    text.push_str("## Diff\n\n");
    text.push_str(&fenced("diff", &validated.diff));
    text.push_str("## Validation\n\n| step | result | time |\n|---|---|---|\n");
    for step in &validated.steps {
        text.push_str(&format!(
            "| {} | {} | {} ms |\n",
            step.name,
            if step.ok { "passed" } else { "failed" },
            step.duration_ms
        ));
    }
    text.push('\n');
    for step in validated
        .steps
        .iter()
        .filter(|step| !step.output.is_empty())
    {
        text.push_str(&format!("<details><summary>{}</summary>\n\n", step.name));
        text.push_str(&fenced("text", &step.output));
        text.push_str("</details>\n\n");
    }
    if !validated.history.is_empty() {
        text.push_str("## Earlier attempts\n\n");
        for record in &validated.history {
            let strategy = record
                .proposal
                .as_ref()
                .map(|proposal| proposal.strategy.as_str())
                .unwrap_or_default();
            text.push_str(&format!(
                "- attempt {} (`{}`) failed at {}: {}\n",
                record.attempt,
                strategy,
                record.failed_step,
                record.error_text.lines().next().unwrap_or_default()
            ));
        }
        text.push('\n');
    }
    if !incident.blast_radius.is_empty() {
        text.push_str(&format!(
            "Skipped downstream because of this failure: {}\n\n",
            incident.blast_radius.join(", ")
        ));
    }
    match (trace_url, trace_id) {
        (Some(url), _) => text.push_str(&format!("Trace of every step: {url}\n\n")),
        (None, Some(trace_id)) => text.push_str(&format!(
            "Trace id: `{trace_id}` (set telemetry.trace_url_prefix for a link)\n\n"
        )),
        (None, None) => text.push_str("Trace: none recorded.\n\n"),
    }
    text.push_str(&incident_marker(&incident.incident_id));
    text.push('\n');
    text
}

/// The notice on a fix under a sensitive path; `draft` says whether a forge opened it as
/// a draft (local git has no drafts, so the description is where it is said).
pub fn owner_review_notice(path: &str, draft: bool) -> String {
    let how = if draft {
        format!("It is opened as a draft labelled `{OWNER_REVIEW_LABEL}`.")
    } else {
        format!(
            "This branch is `{OWNER_REVIEW_LABEL}`: have one of the path's owners review it \
             before it is merged."
        )
    };
    format!("**Needs owner review.** `{path}` matches `delivery.sensitive_paths`. {how}")
}

/// `text` cut to at most `max_chars` characters, keeping the incident marker (the line a
/// later delivery looks for) at the end: GitHub refuses bodies over 65,536 characters.
pub fn fit(text: &str, max_chars: usize, incident_id: &str) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let marker = incident_marker(incident_id);
    let note = "\n\n… (cut to fit the forge's limit; the full description is in the trace)\n\n";
    let keep = max_chars.saturating_sub(marker.chars().count() + note.chars().count() + 1);
    let cut: String = text.chars().take(keep).collect();
    format!("{cut}{note}{marker}\n")
}

fn fenced(language: &str, body: &str) -> String {
    // A body containing a fence must not close ours early.
    let fence = if body.contains("```") { "~~~~" } else { "```" };
    format!("{fence}{language}\n{}\n{fence}\n\n", body.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_carries_error_explanation_diff_steps_and_marker() {
        let validated = v1::FixValidated {
            incident: Some(v1::FailureDetected {
                incident_id: "abc123".into(),
                model: Some(v1::ModelRef {
                    name: "orders".into(),
                    path: "models/orders.sql".into(),
                    ..Default::default()
                }),
                error: Some(v1::FailureError {
                    class: v1::ErrorClass::MissingColumn as i32,
                    message: "Binder Error: Referenced column \"ordr_id\" not found".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            attempt: 1,
            proposal: Some(v1::FixProposal {
                explanation: "ordr_id is a typo of order_id".into(),
                strategy: "rule:misspelt_column".into(),
                confidence: 0.9,
                ..Default::default()
            }),
            steps: vec![v1::ValidationStep {
                name: "dbt compile".into(),
                ok: true,
                duration_ms: 1200,
                output: "Compiled".into(),
                ..Default::default()
            }],
            diff: "-select ordr_id\n+select order_id".into(),
            history: vec![],
        };
        let text = render(&validated, Some("http://jaeger/trace/1"), Some("abc"));
        assert!(text.starts_with("# fix(dbt): orders — missing_column"));
        for needle in [
            "ordr_id\" not found",
            "ordr_id is a typo",
            "+select order_id",
            "| dbt compile | passed | 1200 ms |",
            "http://jaeger/trace/1",
            "<!-- dbt-ops incident: abc123 -->",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn a_long_description_is_cut_but_keeps_its_marker() {
        let long = format!("{}\n{}\n", "x".repeat(1000), incident_marker("abc"));
        let cut = fit(&long, 200, "abc");
        assert!(cut.chars().count() <= 200, "{}", cut.len());
        assert!(cut.trim_end().ends_with(&incident_marker("abc")));
        assert_eq!(fit("short", 200, "abc"), "short");
    }

    #[test]
    fn the_owner_review_notice_is_quoted_under_the_heading() {
        let notice = owner_review_notice("models/finance/revenue.sql", false);
        let text = render_with_notice(&v1::FixValidated::default(), None, None, Some(&notice));
        let second_block = text.split("\n\n").nth(1).unwrap_or_default();
        assert!(
            second_block.starts_with("> **Needs owner review.**"),
            "{text}"
        );
        assert!(text.contains(OWNER_REVIEW_LABEL));
    }
}
