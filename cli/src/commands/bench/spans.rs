//! The spans the overhead benchmark reads back: an OpenTelemetry exporter that keeps, of
//! every finished span it cares about, only its trace, name, start and end — enough to
//! take the time inside dbt and LLM calls out of an incident's wall time and to split
//! the rest along the pipeline's hops, and small enough to hold for a thousand incidents.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// dbt's time: one span per dbt invocation of the validation ladder
/// (services/validator/src/ladder.rs).
pub const DBT_SPAN: &str = "validator.dbt";
/// An LLM's time: one span per model call, its retries inside (services/fixer/src/agent.rs).
/// Exported under its `otel.name` (`chat <model>`), so it is recognised by its
/// `gen_ai.operation.name` and kept under this name.
pub const LLM_SPAN: &str = "gen_ai.chat";
/// The spans that start each hop of an incident, in pipeline order: the submission, then
/// each service's handler. A hop runs from its span's start to the next one's (the last:
/// to the outcome event's arrival), so the hops add up to the wall time exactly.
pub const HOPS: [(&str, &str); 5] = [
    ("submit", "submit → detector starts"),
    ("detector.submission", "detector → fixer starts"),
    (
        "fixer.attempt",
        "fixer → validator starts (LLM calls taken out)",
    ),
    (
        "validator.attempt",
        "validator → delivery starts (dbt taken out)",
    ),
    ("delivery.fix", "delivery → outcome event arrives"),
];

/// One finished span, as far as the benchmark cares.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanTiming {
    /// The trace (32 hex digits): one per submitted run, so one per incident here.
    pub trace_id: String,
    /// The span's name.
    pub name: String,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
}

impl SpanTiming {
    /// From start to end (zero if the clock stepped backwards in between).
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }
}

/// Collects finished spans in memory; clones share the collection.
#[derive(Debug, Clone, Default)]
pub struct SpanCollector {
    /// Every finished span, in the order they ended (LLM calls under [`LLM_SPAN`]).
    spans: Arc<Mutex<Vec<SpanTiming>>>,
}

impl SpanCollector {
    /// Every span collected so far, grouped by trace.
    pub fn by_trace(&self) -> BTreeMap<String, Vec<SpanTiming>> {
        let spans = self.spans.lock().unwrap_or_else(PoisonError::into_inner);
        let mut traces: BTreeMap<String, Vec<SpanTiming>> = BTreeMap::new();
        for span in spans.iter() {
            traces
                .entry(span.trace_id.clone())
                .or_default()
                .push(span.clone());
        }
        traces
    }
}

/// The name a span is kept under: its own, or [`LLM_SPAN`] for an LLM call (whose name
/// carries the model).
fn kept_name(span: &SpanData) -> String {
    let is_llm_call = span.attributes.iter().any(|attribute| {
        attribute.key.as_str() == "gen_ai.operation.name" && attribute.value.as_str() == "chat"
    });
    if is_llm_call {
        LLM_SPAN.to_owned()
    } else {
        span.name.to_string()
    }
}

impl SpanExporter for SpanCollector {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let kept = batch.into_iter().map(|span| SpanTiming {
            name: kept_name(&span),
            trace_id: span.span_context.trace_id().to_string(),
            start: span.start_time,
            end: span.end_time,
        });
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(kept);
        std::future::ready(Ok(()))
    }
}

/// One hop of one incident, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    /// What the report calls it.
    pub label: &'static str,
    /// The whole hop, dbt or LLM time taken out.
    pub total_ms: f64,
    /// Of it, inside the span that starts it (its publishes' acks included) — the rest
    /// is the bus: the delivery to the next service and its pull.
    pub in_handler_ms: f64,
}

/// What one incident's trace says about where its time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceTimes {
    /// Inside dbt invocations.
    pub dbt: Duration,
    /// How many dbt invocations.
    pub dbt_steps: u32,
    /// Inside LLM calls.
    pub llm: Duration,
    /// How many LLM calls.
    pub llm_calls: u32,
    /// The first span of each hop's name (a later attempt's spans fall inside the
    /// validator's hop).
    pub first: BTreeMap<String, SpanTiming>,
    /// Every span's name: how many there were and their summed time, in milliseconds.
    pub by_name: BTreeMap<String, (u32, f64)>,
}

impl TraceTimes {
    /// Sums the spans of one trace.
    pub fn of(spans: &[SpanTiming]) -> Self {
        let mut times = Self::default();
        for span in spans {
            let (count, total_ms) = times.by_name.entry(span.name.clone()).or_default();
            *count += 1;
            *total_ms += millis(span.duration());
            match span.name.as_str() {
                DBT_SPAN => {
                    times.dbt += span.duration();
                    times.dbt_steps += 1;
                }
                LLM_SPAN => {
                    times.llm += span.duration();
                    times.llm_calls += 1;
                }
                name if HOPS.iter().any(|(hop, _)| *hop == name) => {
                    let earlier = times
                        .first
                        .get(name)
                        .is_some_and(|first| first.start <= span.start);
                    if !earlier {
                        times.first.insert(name.to_owned(), span.clone());
                    }
                }
                _ => {}
            }
        }
        times
    }

    /// The incident's hops, given when it was submitted and how long it took to its
    /// outcome; `None` when a hop's span is missing (an abandoned incident has no
    /// delivery).
    pub fn hops(&self, submitted_at: SystemTime, wall: Duration) -> Option<Vec<Hop>> {
        let outcome_at = submitted_at + wall;
        let mut hops = Vec::new();
        for (index, (name, label)) in HOPS.iter().enumerate() {
            let span = self.first.get(*name)?;
            // The submission's hop starts when the bench started its clock.
            let begin = if index == 0 { submitted_at } else { span.start };
            let next = match HOPS.get(index + 1) {
                Some((next, _)) => self.first.get(*next)?.start,
                None => outcome_at,
            };
            let inside = match *name {
                "fixer.attempt" => millis(self.llm),
                "validator.attempt" => millis(self.dbt),
                _ => 0.0,
            };
            hops.push(Hop {
                label,
                total_ms: between(begin, next) - inside,
                in_handler_ms: between(begin, span.end.min(next)) - inside,
            });
        }
        Some(hops)
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Milliseconds from `from` to `to`, negative when `to` is earlier.
fn between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(later) => millis(later),
        Err(earlier) => -millis(earlier.duration()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(ms)
    }

    fn span(name: &str, start: u64, end: u64) -> SpanTiming {
        SpanTiming {
            trace_id: "t".into(),
            name: name.into(),
            start: at(start),
            end: at(end),
        }
    }

    #[test]
    fn a_trace_splits_into_dbt_llm_and_hops_that_add_up_to_the_wall_time() {
        let spans = [
            span("submit", 0, 5),
            // The detector goes on after publishing: its span outlasts the next start.
            span("detector.submission", 8, 30),
            span("fixer.attempt", 20, 130),
            span(LLM_SPAN, 25, 125),
            span("validator.attempt", 135, 640),
            span(DBT_SPAN, 140, 440),
            span(DBT_SPAN, 450, 600),
            span("delivery.fix", 645, 700),
            span("bus.publish", 10, 12),
            span("bus.publish", 20, 23),
        ];
        let times = TraceTimes::of(&spans);
        assert_eq!(times.dbt, Duration::from_millis(450));
        assert_eq!(times.dbt_steps, 2);
        assert_eq!(times.llm, Duration::from_millis(100));
        assert_eq!(times.llm_calls, 1);
        assert_eq!(times.by_name["bus.publish"], (2, 5.0));
        assert_eq!(times.by_name[DBT_SPAN], (2, 450.0));
        let hops = times
            .hops(at(0), Duration::from_millis(690))
            .expect("every hop's span is there");
        let totals: Vec<f64> = hops.iter().map(|hop| hop.total_ms).collect();
        assert_eq!(totals, [8.0, 12.0, 15.0, 60.0, 45.0]);
        let inside: Vec<f64> = hops.iter().map(|hop| hop.in_handler_ms).collect();
        assert_eq!(inside, [5.0, 12.0, 10.0, 55.0, 45.0]);
        let overhead: f64 = totals.iter().sum();
        assert_eq!(overhead, 690.0 - 450.0 - 100.0);
        // No delivery: no hops.
        let undelivered = TraceTimes::of(&spans[..7]);
        assert!(undelivered
            .hops(at(0), Duration::from_millis(690))
            .is_none());
    }
}
