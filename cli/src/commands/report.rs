//! `dbt-ops report [--since 7d]`: numbers computed from the stream — incidents by class and
//! outcome, time from detection to merge request, validation pass rates, attempts, merge
//! rate, tokens and cost.

use std::collections::BTreeMap;
use std::time::Duration;

use dbtops_bus::{Bus, StoredMessage};
use dbtops_proto::v1;
use prost::Message;
use serde::Serialize;
use time::OffsetDateTime;

/// What the stream says about one incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IncidentFacts {
    /// The incident's id.
    pub incident_id: String,
    /// The error class label.
    pub class: String,
    /// When `failure.detected` was stored.
    #[serde(skip)]
    pub detected_at: Option<OffsetDateTime>,
    /// Seconds from detection to the first `mr.opened`.
    pub time_to_mr_seconds: Option<f64>,
    /// `open`, `mr_opened`, `merged`, `closed`, `abandoned` or `resolved`.
    pub outcome: String,
    /// True once a merge request or branch was opened.
    pub mr_opened: bool,
    /// Proposals made.
    pub attempts: u32,
    /// True when the first proposal validated.
    pub validated_first_attempt: bool,
    /// True when any proposal validated.
    pub validated: bool,
    /// Proposals that failed validation.
    pub validation_failures: u32,
    /// LLM tokens in and out, and cost, of the incident.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
}

/// The numbers of a group of incidents (all, or one class).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Incidents in the group.
    pub incidents: usize,
    /// Incidents by outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Incidents that got a branch or merge request (merged or closed later included).
    pub mr_opened: usize,
    /// Merged among `mr_opened`.
    pub merged: usize,
    /// `merged / mr_opened`.
    pub merge_rate: Option<f64>,
    /// Median seconds from detection to merge request.
    pub time_to_mr_p50_seconds: Option<f64>,
    /// 90th percentile.
    pub time_to_mr_p90_seconds: Option<f64>,
    /// Incidents with at least one proposal.
    pub with_proposal: usize,
    /// Share of those whose first proposal validated.
    pub first_attempt_pass_rate: Option<f64>,
    /// Share of those with any validated proposal.
    pub any_attempt_pass_rate: Option<f64>,
    /// Proposals per incident with a proposal.
    pub attempts_per_incident: Option<f64>,
    /// Proposals in all.
    pub attempts: u64,
    /// LLM input tokens.
    pub input_tokens: u64,
    /// LLM output tokens.
    pub output_tokens: u64,
    /// LLM cost, USD.
    pub cost_usd: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The window, as given.
    pub since: String,
    /// Every incident in the window.
    pub total: Summary,
    /// By error class.
    pub by_class: BTreeMap<String, Summary>,
}

/// Parses `7d`, `12h`, `30m`, `45s` (or a bare number of seconds).
pub fn parse_since(since: &str) -> anyhow::Result<Duration> {
    let since = since.trim();
    let (number, unit) = since.split_at(
        since
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(since.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--since {since:?}: expected e.g. 7d, 12h, 30m"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => anyhow::bail!("--since {since:?}: the unit must be s, m, h, d or w"),
    };
    Ok(Duration::from_secs(number * seconds))
}

/// Replays the stream and prints the report of the incidents detected within `since`.
pub async fn print(bus: &Bus, since: &str, json: bool) -> anyhow::Result<()> {
    let window = parse_since(since)?;
    let messages = bus.replay(&bus.subjects().all()).await?;
    let report = compute(&messages, since, OffsetDateTime::now_utc() - window);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn nested_id(incident: &Option<v1::FailureDetected>) -> String {
    incident
        .as_ref()
        .map(|incident| incident.incident_id.clone())
        .unwrap_or_default()
}

/// The facts of every incident in `messages` (oldest first), by id.
pub fn incident_facts(messages: &[StoredMessage]) -> BTreeMap<String, IncidentFacts> {
    let mut facts: BTreeMap<String, IncidentFacts> = BTreeMap::new();
    fn entry<'a>(
        facts: &'a mut BTreeMap<String, IncidentFacts>,
        id: &str,
    ) -> &'a mut IncidentFacts {
        facts.entry(id.to_owned()).or_insert_with(|| IncidentFacts {
            incident_id: id.to_owned(),
            outcome: "open".into(),
            ..Default::default()
        })
    }
    for message in messages {
        let payload = &message.payload[..];
        match message.type_name().unwrap_or_default() {
            "dbtops.v1.FailureDetected" => {
                let Ok(m) = v1::FailureDetected::decode(payload) else {
                    continue;
                };
                let f = entry(&mut facts, &m.incident_id);
                if f.class.is_empty() {
                    f.class = m
                        .error
                        .map(|e| e.class().label().to_owned())
                        .unwrap_or_default();
                }
                if f.detected_at.is_none() {
                    f.detected_at = message.published;
                }
            }
            "dbtops.v1.FixProposed" => {
                let Ok(m) = v1::FixProposed::decode(payload) else {
                    continue;
                };
                let f = entry(&mut facts, &nested_id(&m.incident));
                f.attempts = f.attempts.max(m.attempt);
                if let Some(usage) = m.proposal.and_then(|p| p.incident_usage) {
                    f.input_tokens = f.input_tokens.max(usage.input_tokens);
                    f.output_tokens = f.output_tokens.max(usage.output_tokens);
                    f.cost_usd = f.cost_usd.max(usage.cost_usd);
                }
            }
            "dbtops.v1.FixValidated" => {
                let Ok(m) = v1::FixValidated::decode(payload) else {
                    continue;
                };
                let f = entry(&mut facts, &nested_id(&m.incident));
                f.validated = true;
                f.validated_first_attempt |= m.attempt == 1;
            }
            "dbtops.v1.CompileFailed" => {
                let Ok(m) = v1::CompileFailed::decode(payload) else {
                    continue;
                };
                entry(&mut facts, &nested_id(&m.incident)).validation_failures += 1;
            }
            "dbtops.v1.MergeRequestOpened" => {
                let Ok(m) = v1::MergeRequestOpened::decode(payload) else {
                    continue;
                };
                let f = entry(&mut facts, &m.incident_id);
                if !f.mr_opened {
                    f.time_to_mr_seconds = match (f.detected_at, message.published) {
                        (Some(from), Some(to)) => Some((to - from).as_seconds_f64().max(0.0)),
                        _ => None,
                    };
                }
                f.mr_opened = true;
                f.outcome = "mr_opened".into();
            }
            "dbtops.v1.MergeRequestMerged" => {
                let Ok(m) = v1::MergeRequestMerged::decode(payload) else {
                    continue;
                };
                entry(&mut facts, &m.incident_id).outcome = "merged".into();
            }
            "dbtops.v1.MergeRequestClosed" => {
                let Ok(m) = v1::MergeRequestClosed::decode(payload) else {
                    continue;
                };
                entry(&mut facts, &m.incident_id).outcome = "closed".into();
            }
            "dbtops.v1.IncidentAbandoned" => {
                let Ok(m) = v1::IncidentAbandoned::decode(payload) else {
                    continue;
                };
                entry(&mut facts, &m.incident_id).outcome = "abandoned".into();
            }
            "dbtops.v1.IncidentResolved" => {
                let Ok(m) = v1::IncidentResolved::decode(payload) else {
                    continue;
                };
                entry(&mut facts, &m.incident_id).outcome = "resolved".into();
            }
            _ => {}
        }
    }
    facts.retain(|id, _| !id.is_empty());
    facts
}

/// The report over the incidents detected at or after `cutoff` (incidents whose
/// detection time is unknown are kept).
pub fn compute(messages: &[StoredMessage], since: &str, cutoff: OffsetDateTime) -> Report {
    let facts: Vec<IncidentFacts> = incident_facts(messages)
        .into_values()
        .filter(|f| f.detected_at.is_none_or(|at| at >= cutoff))
        .collect();
    let mut classes: BTreeMap<String, Vec<&IncidentFacts>> = BTreeMap::new();
    for f in &facts {
        let class = if f.class.is_empty() {
            "unknown"
        } else {
            &f.class
        };
        classes.entry(class.to_owned()).or_default().push(f);
    }
    Report {
        since: since.to_owned(),
        total: summarize(facts.iter()),
        by_class: classes
            .into_iter()
            .map(|(class, group)| (class, summarize(group.into_iter())))
            .collect(),
    }
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn summarize<'a>(facts: impl Iterator<Item = &'a IncidentFacts>) -> Summary {
    let mut summary = Summary::default();
    let mut times = Vec::new();
    let (mut first, mut any) = (0, 0);
    for f in facts {
        summary.incidents += 1;
        *summary.outcomes.entry(f.outcome.clone()).or_default() += 1;
        summary.mr_opened += usize::from(f.mr_opened);
        summary.merged += usize::from(f.outcome == "merged");
        times.extend(f.time_to_mr_seconds);
        if f.attempts > 0 {
            summary.with_proposal += 1;
            first += usize::from(f.validated_first_attempt);
            any += usize::from(f.validated);
        }
        summary.attempts += u64::from(f.attempts);
        summary.input_tokens += f.input_tokens;
        summary.output_tokens += f.output_tokens;
        summary.cost_usd += f.cost_usd;
    }
    times.sort_by(f64::total_cmp);
    summary.time_to_mr_p50_seconds = percentile(&times, 50.0);
    summary.time_to_mr_p90_seconds = percentile(&times, 90.0);
    summary.merge_rate = ratio(summary.merged, summary.mr_opened);
    summary.first_attempt_pass_rate = ratio(first, summary.with_proposal);
    summary.any_attempt_pass_rate = ratio(any, summary.with_proposal);
    summary.attempts_per_incident =
        (summary.with_proposal > 0).then(|| summary.attempts as f64 / summary.with_proposal as f64);
    summary
}

impl Report {
    /// A table for people: one row per class, then the total.
    pub fn table(&self) -> String {
        fn rate(value: Option<f64>) -> String {
            value.map_or("-".into(), |v| format!("{:.0}%", v * 100.0))
        }
        fn secs(value: Option<f64>) -> String {
            value.map_or("-".into(), |v| format!("{v:.1}s"))
        }
        let mut out = format!("incidents detected in the last {}\n", self.since);
        out.push_str(&format!(
            "{:<22} {:>5} {:>6} {:>9} {:>7} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>10} {:>9}\n",
            "CLASS",
            "INC",
            "MR",
            "ABANDONED",
            "MERGED",
            "TTM p50",
            "TTM p90",
            "PASS@1",
            "PASS",
            "ATT/INC",
            "MERGE%",
            "TOKENS",
            "COST"
        ));
        let rows = self
            .by_class
            .iter()
            .map(|(class, s)| (class.as_str(), s))
            .chain(std::iter::once(("total", &self.total)));
        for (class, s) in rows {
            out.push_str(&format!(
                "{:<22} {:>5} {:>6} {:>9} {:>7} {:>8} {:>8} {:>7} {:>7} {:>8} {:>6} {:>10} {:>9}\n",
                class,
                s.incidents,
                s.mr_opened,
                s.outcomes.get("abandoned").copied().unwrap_or(0),
                s.merged,
                secs(s.time_to_mr_p50_seconds),
                secs(s.time_to_mr_p90_seconds),
                rate(s.first_attempt_pass_rate),
                rate(s.any_attempt_pass_rate),
                s.attempts_per_incident
                    .map_or("-".into(), |v| format!("{v:.2}")),
                rate(s.merge_rate),
                s.input_tokens + s.output_tokens,
                format!("${:.4}", s.cost_usd),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::HeaderMap;

    fn stored(type_name: &str, payload: Vec<u8>, at: i64) -> StoredMessage {
        let mut headers = HeaderMap::new();
        headers.insert(dbtops_bus::headers::MESSAGE_TYPE, type_name);
        StoredMessage {
            subject: "dbtops.x".into(),
            headers,
            payload: payload.into(),
            published: OffsetDateTime::from_unix_timestamp(1_000_000 + at).ok(),
        }
    }

    fn detected(id: &str, class: v1::ErrorClass) -> v1::FailureDetected {
        let mut error = v1::FailureError::default();
        error.set_class(class);
        v1::FailureDetected {
            incident_id: id.into(),
            error: Some(error),
            ..Default::default()
        }
    }

    fn proposed(incident: &v1::FailureDetected, attempt: u32, tokens: u64) -> Vec<u8> {
        v1::FixProposed {
            incident: Some(incident.clone()),
            attempt,
            proposal: Some(v1::FixProposal {
                incident_usage: Some(v1::LlmUsage {
                    input_tokens: tokens,
                    output_tokens: tokens / 10,
                    calls: attempt,
                    cost_usd: tokens as f64 / 1e6,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn one_fixed_and_one_abandoned_incident() {
        let a = detected("a", v1::ErrorClass::MissingColumn);
        let b = detected("b", v1::ErrorClass::MissingColumn);
        let messages = vec![
            stored("dbtops.v1.FailureDetected", a.encode_to_vec(), 0),
            stored("dbtops.v1.FailureDetected", b.encode_to_vec(), 1),
            stored("dbtops.v1.FixProposed", proposed(&a, 1, 1000), 2),
            stored(
                "dbtops.v1.CompileFailed",
                v1::CompileFailed {
                    incident: Some(a.clone()),
                    attempt: 1,
                    ..Default::default()
                }
                .encode_to_vec(),
                3,
            ),
            stored("dbtops.v1.FixProposed", proposed(&a, 2, 2500), 4),
            stored(
                "dbtops.v1.FixValidated",
                v1::FixValidated {
                    incident: Some(a.clone()),
                    attempt: 2,
                    ..Default::default()
                }
                .encode_to_vec(),
                5,
            ),
            stored(
                "dbtops.v1.MergeRequestOpened",
                v1::MergeRequestOpened {
                    incident_id: "a".into(),
                    attempts: 2,
                    ..Default::default()
                }
                .encode_to_vec(),
                10,
            ),
            stored(
                "dbtops.v1.IncidentAbandoned",
                v1::IncidentAbandoned {
                    incident_id: "b".into(),
                    reason: "needs_human".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
                11,
            ),
        ];
        let report = compute(&messages, "7d", OffsetDateTime::UNIX_EPOCH);
        let total = &report.total;
        assert_eq!(total.incidents, 2);
        assert_eq!(total.mr_opened, 1);
        assert_eq!(total.outcomes["abandoned"], 1);
        assert_eq!(total.outcomes["mr_opened"], 1);
        assert_eq!(total.time_to_mr_p50_seconds, Some(10.0));
        assert_eq!(total.with_proposal, 1);
        assert_eq!(total.first_attempt_pass_rate, Some(0.0));
        assert_eq!(total.any_attempt_pass_rate, Some(1.0));
        assert_eq!(total.attempts_per_incident, Some(2.0));
        assert_eq!(total.input_tokens, 2500);
        assert_eq!(total.output_tokens, 250);
        assert_eq!(total.merge_rate, Some(0.0));
        assert_eq!(report.by_class.len(), 1);
        assert!(report.table().contains("total"));
        // A cutoff after both detections leaves nothing.
        let later = OffsetDateTime::from_unix_timestamp(1_000_005).unwrap();
        assert_eq!(compute(&messages, "1s", later).total.incidents, 0);
    }

    #[test]
    fn since_parses_units() {
        assert_eq!(parse_since("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("90").unwrap(), Duration::from_secs(90));
        assert!(parse_since("7y").is_err());
        assert!(parse_since("d").is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(5.0));
        assert_eq!(percentile(&values, 90.0), Some(9.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
