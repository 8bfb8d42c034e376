//! `dbt-ops dashboard`: a live web page of the incidents, for people.
//!
//! - `/` — every incident in the KV bucket (state, class, model, attempts, last change,
//!   outcome) and a log of the bus's events, kept current from `/events`.
//! - `/incidents/{id}` — one incident: the error, each attempt with its diff and validation
//!   steps (with dbt's output), the branch / merge request or why it was abandoned, the
//!   trace link (`telemetry.trace_url_prefix`), the timeline and the evidence.
//! - `/events` — server-sent events: `bus` for each message of the stream (an ordered,
//!   ephemeral consumer from now, from `?since=all|<window>|seq:<n>`, or from the
//!   `Last-Event-ID` a reconnecting browser sends), and `incident` for each change of an
//!   incident's record (a watch of the KV bucket, which first replays each record's current
//!   value, so a page never misses a change made while it was loading). `?incident=<id>`
//!   narrows both to one incident.
//!
//! Read-only: it reads the stream and the bucket through short-lived consumers and never
//! publishes (the `dbtops-dashboard` user of `deploy/nats/auth.conf` is enough). The data
//! comes from the same functions as `dbt-ops status` and `watch`; the HTML is in
//! [`html`]. It binds 127.0.0.1 unless told otherwise and then refuses requests whose
//! `Host` is not a loopback name, so a web page elsewhere cannot read it through DNS
//! rebinding; it has no authentication of its own.

#[path = "dashboard_html.rs"]
pub mod html;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::commands::status::{self, IncidentStatus};
use crate::commands::{report, watch};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use async_nats::jetstream::kv;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use dbtops_bus::{Bus, IncidentRecord};
use dbtops_proto::v1;
use futures::stream::{self, BoxStream, StreamExt};
use prost::Message;
use serde::Serialize;
use time::OffsetDateTime;

/// Where the dashboard listens unless `--listen` says otherwise: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8480";

/// The policy every page is served with: the stylesheet and script come from the
/// dashboard itself, nothing inline runs, and the page connects only back to it — so even
/// markup that slipped through escaping could not run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Why the dashboard could not serve.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// `--listen` is not an address.
    #[error("--listen {listen:?} is not an address like 127.0.0.1:8480")]
    BadAddress {
        /// The value given.
        listen: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {listen} for the dashboard: {source}")]
    Bind {
        /// The value given.
        listen: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The HTTP server stopped with an error.
    #[error("the dashboard stopped: {0}")]
    Serve(std::io::Error),
}

/// What the dashboard shows beyond the bus.
#[derive(Debug, Clone, Default)]
pub struct DashboardOptions {
    /// Prefix of a trace's web page (Jaeger, Tempo, Langfuse); the incident's trace id is
    /// appended. Empty: the trace id is shown without a link.
    pub trace_url_prefix: String,
}

impl DashboardOptions {
    /// The options from the settings every dbt-ops process loads.
    pub fn from_settings(settings: &dbtops_settings::Settings) -> Self {
        Self {
            trace_url_prefix: settings.telemetry.trace_url_prefix.clone(),
        }
    }
}

/// Binds `listen` (e.g. `127.0.0.1:8480`; port 0 picks a free one).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener, DashboardError> {
    let address: SocketAddr = listen.parse().map_err(|_| DashboardError::BadAddress {
        listen: listen.to_owned(),
    })?;
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| DashboardError::Bind {
            listen: listen.to_owned(),
            source,
        })
}

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    /// The read-only view of the system.
    bus: Bus,
    /// Trace link prefix.
    options: DashboardOptions,
    /// True when bound to loopback: then only loopback `Host` names are served (DNS
    /// rebinding).
    loopback_only: bool,
    /// Flips to true on shutdown, ending every open event stream so the server can drain.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Serves the dashboard on `listener` until `shutdown` resolves; open event streams end
/// then, so the server stops promptly.
pub async fn serve(
    listener: tokio::net::TcpListener,
    bus: Bus,
    options: DashboardOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let loopback_only = listener
        .local_addr()
        .map(|address| address.ip().is_loopback())
        .unwrap_or(true);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let app = router(AppState {
        bus,
        options,
        loopback_only,
        stopping,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
        .map_err(DashboardError::Serve)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/incidents/{id}", get(incident))
        .route("/events", get(events))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/static/dashboard.js", get(script))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Refuses foreign `Host` names on a loopback listener and puts the security headers on
/// every response.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.loopback_only {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok());
        if let Some(host) = host.filter(|host| !is_loopback_host(host)) {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                format!("this dashboard answers to localhost only, not {host:?}\n"),
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// True for `localhost`, `127.x.x.x` and `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::CSS,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::JS,
    )
}

fn error_response(status: StatusCode, title: &str, message: &str) -> Response {
    (status, Html(html::error_page(title, message))).into_response()
}

/// The query of `/` and `/events`.
#[derive(Debug, Clone, PartialEq, Default)]
struct EventsQuery {
    /// Where the event stream starts.
    since: Since,
    /// `since` as given, for the page to pass on to `/events`.
    since_text: String,
    /// Only this incident's events and record.
    incident: Option<String>,
}

/// Where `/events` starts reading the stream.
#[derive(Debug, Clone, PartialEq, Default)]
enum Since {
    /// Only what is published from now on.
    #[default]
    Now,
    /// The oldest stored event.
    All,
    /// This stream sequence, inclusive.
    Sequence(u64),
    /// Events stored within this long before now.
    Window(Duration),
}

impl Since {
    /// `all`, `now`, `seq:<n>`, or a window in `dbt-ops report --since`'s syntax (`30m`,
    /// `12h`, `7d`, bare seconds).
    fn parse(raw: &str) -> Result<Since, String> {
        match raw.trim() {
            "" | "now" => Ok(Since::Now),
            "all" => Ok(Since::All),
            other => match other.strip_prefix("seq:") {
                Some(sequence) => sequence
                    .parse()
                    .map(Since::Sequence)
                    .map_err(|_| format!("since={other:?}: seq: takes a stream sequence")),
                None => report::parse_since(other)
                    .map(Since::Window)
                    .map_err(|error| format!("since={other:?}: {error} (or all, seq:<n>)")),
            },
        }
    }

    fn deliver_policy(&self) -> DeliverPolicy {
        match self {
            Since::Now => DeliverPolicy::New,
            Since::All => DeliverPolicy::All,
            Since::Sequence(start_sequence) => DeliverPolicy::ByStartSequence {
                start_sequence: (*start_sequence).max(1),
            },
            Since::Window(window) => DeliverPolicy::ByStartTime {
                start_time: OffsetDateTime::now_utc() - *window,
            },
        }
    }
}

impl EventsQuery {
    fn parse(query: Option<&str>) -> Result<EventsQuery, String> {
        let mut parsed = EventsQuery::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match name {
                "since" => {
                    parsed.since = Since::parse(&value)?;
                    parsed.since_text = value;
                }
                "incident" if !value.is_empty() => {
                    if !is_incident_id(&value) {
                        return Err(format!("incident={value:?} is not an incident id"));
                    }
                    parsed.incident = Some(value);
                }
                // Unknown parameters are ignored, as browsers and proxies add their own.
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// The `/events` address for this query.
    fn events_url(&self) -> String {
        let mut url = String::from("/events");
        let mut separator = '?';
        if !self.since_text.is_empty() {
            url.push_str(&format!(
                "{separator}since={}",
                html::encode_component(&self.since_text)
            ));
            separator = '&';
        }
        if let Some(incident) = &self.incident {
            url.push_str(&format!(
                "{separator}incident={}",
                html::encode_component(incident)
            ));
        }
        url
    }
}

/// `%XX` and `+` decoded, as browsers encode query values; bad escapes stay as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Incident ids are 16 hex digits today; anything of letters, digits, `-` and `_` is
/// accepted, which keeps them safe as KV keys and subject tokens.
fn is_incident_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn index(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let query = match EventsQuery::parse(query.as_deref()) {
        Ok(query) => query,
        Err(problem) => return error_response(StatusCode::BAD_REQUEST, "Bad query", &problem),
    };
    match status::list(&state.bus).await {
        Ok(incidents) => Html(html::index(&incidents, &query.events_url())).into_response(),
        Err(error) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot read the incidents",
            &format!("{error:#}"),
        ),
    }
}

/// One fix attempt as the stream tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The incident's generation the attempt belongs to (0 unless it was reopened).
    pub generation: u32,
    /// 1-based attempt number.
    pub number: u32,
    /// When the proposal was stored (RFC 3339).
    pub proposed_at: Option<String>,
    /// The proposal, once seen.
    pub proposal: Option<v1::FixProposal>,
    /// What validation made of it.
    pub verdict: Verdict,
    /// The validation ladder's steps, with dbt's output.
    pub steps: Vec<v1::ValidationStep>,
    /// Unified diff of the model file: the validator's for a validated proposal, else
    /// computed from the evidence's SQL.
    pub diff: String,
}

/// What validation made of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Proposed, not validated yet (or never: the incident moved on).
    Pending,
    /// dbt accepted it.
    Validated,
    /// A step failed.
    Failed {
        /// The step, e.g. `dbt build --empty`.
        step: String,
        /// dbt's error text.
        error_text: String,
    },
}

/// Everything the incident page shows.
#[derive(Debug, Clone)]
pub struct IncidentDetail {
    /// The record and its timeline, as `dbt-ops status INCIDENT` has them.
    pub status: IncidentStatus,
    /// The latest `failure.detected` of the incident: error and evidence.
    pub detected: Option<v1::FailureDetected>,
    /// Each attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The latest `mr.opened`.
    pub merge_request: Option<v1::MergeRequestOpened>,
    /// The latest `incident.abandoned`.
    pub abandoned: Option<v1::IncidentAbandoned>,
    /// The trace's web page, when a prefix is configured and the incident has a trace.
    pub trace_url: Option<String>,
}

/// The incident page's content from its record and the stream's messages (oldest first).
pub fn incident_detail(
    record: IncidentRecord,
    messages: &[dbtops_bus::StoredMessage],
    options: &DashboardOptions,
) -> IncidentDetail {
    let incident_id = record.incident_id.clone();
    let trace_url = record
        .trace_id
        .as_ref()
        .filter(|_| !options.trace_url_prefix.is_empty())
        .map(|trace_id| format!("{}{trace_id}", options.trace_url_prefix));
    let mut detail = IncidentDetail {
        status: IncidentStatus {
            timeline: status::timeline(messages, &incident_id),
            incident: record,
        },
        detected: None,
        attempts: Vec::new(),
        merge_request: None,
        abandoned: None,
        trace_url,
    };
    for message in messages {
        let type_name = message.type_name().unwrap_or_default();
        let payload = &message.payload[..];
        match status::incident_of(type_name, payload) {
            Some((id, _)) if id == incident_id => {}
            _ => continue,
        }
        let at = message.published.and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        match type_name {
            "dbtops.v1.FailureDetected" => {
                detail.detected = v1::FailureDetected::decode(payload).ok();
            }
            "dbtops.v1.FixProposed" => {
                let Ok(m) = v1::FixProposed::decode(payload) else {
                    continue;
                };
                let attempt = attempt_entry(&mut detail.attempts, m.incident.as_ref(), m.attempt);
                attempt.proposed_at = at;
                if let (Some(proposal), Some(incident)) = (&m.proposal, &m.incident) {
                    attempt.diff = proposal_diff(incident, proposal);
                }
                attempt.proposal = m.proposal;
            }
            "dbtops.v1.CompileFailed" => {
                let Ok(m) = v1::CompileFailed::decode(payload) else {
                    continue;
                };
                let attempt = attempt_entry(&mut detail.attempts, m.incident.as_ref(), m.attempt);
                if attempt.proposal.is_none() {
                    if let (Some(proposal), Some(incident)) = (&m.proposal, &m.incident) {
                        attempt.diff = proposal_diff(incident, proposal);
                    }
                    attempt.proposal = m.proposal;
                }
                attempt.verdict = Verdict::Failed {
                    step: m.failed_step,
                    error_text: m.error_text,
                };
                attempt.steps = m.steps;
            }
            "dbtops.v1.FixValidated" => {
                let Ok(m) = v1::FixValidated::decode(payload) else {
                    continue;
                };
                let attempt = attempt_entry(&mut detail.attempts, m.incident.as_ref(), m.attempt);
                if attempt.proposal.is_none() {
                    attempt.proposal = m.proposal;
                }
                if !m.diff.is_empty() {
                    attempt.diff = m.diff;
                }
                attempt.verdict = Verdict::Validated;
                attempt.steps = m.steps;
            }
            "dbtops.v1.MergeRequestOpened" => {
                detail.merge_request = v1::MergeRequestOpened::decode(payload).ok();
            }
            "dbtops.v1.IncidentAbandoned" => {
                detail.abandoned = v1::IncidentAbandoned::decode(payload).ok();
            }
            _ => {}
        }
    }
    detail
}

/// The attempt `number` of the incident copy's generation, added when first seen.
fn attempt_entry<'a>(
    attempts: &'a mut Vec<Attempt>,
    incident: Option<&v1::FailureDetected>,
    number: u32,
) -> &'a mut Attempt {
    let generation = incident.map_or(0, |incident| incident.generation);
    let index = match attempts
        .iter()
        .position(|a| a.generation == generation && a.number == number)
    {
        Some(index) => index,
        None => {
            attempts.push(Attempt {
                generation,
                number,
                proposed_at: None,
                proposal: None,
                verdict: Verdict::Pending,
                steps: Vec::new(),
                diff: String::new(),
            });
            attempts.len() - 1
        }
    };
    &mut attempts[index]
}

/// The proposal's change to the model file, from the SQL the evidence carried; empty when
/// the evidence has none.
fn proposal_diff(incident: &v1::FailureDetected, proposal: &v1::FixProposal) -> String {
    let original = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    if original.is_empty() {
        return String::new();
    }
    let path = if proposal.model_path.is_empty() {
        incident
            .model
            .as_ref()
            .map(|model| model.path.as_str())
            .unwrap_or_default()
    } else {
        proposal.model_path.as_str()
    };
    dbtops_guardrails::unified_diff(path, original, &proposal.fixed_sql)
}

async fn incident(State(state): State<AppState>, Path(incident_id): Path<String>) -> Response {
    if !is_incident_id(&incident_id) {
        return error_response(
            StatusCode::NOT_FOUND,
            "No such incident",
            &format!("{incident_id:?} is not an incident id"),
        );
    }
    let record = match state.bus.incidents().await {
        Ok(store) => store.get(&incident_id).await,
        Err(error) => Err(error),
    };
    let record = match record {
        Ok(Some(record)) => record,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                "No such incident",
                &format!("no incident {incident_id} in the store"),
            )
        }
        Err(error) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot read the incident",
                &error.to_string(),
            )
        }
    };
    let messages = match state.bus.replay(&state.bus.subjects().all()).await {
        Ok(messages) => messages,
        Err(error) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot read the event stream",
                &error.to_string(),
            )
        }
    };
    let detail = incident_detail(record, &messages, &state.options);
    let events_url = EventsQuery {
        incident: Some(incident_id),
        ..EventsQuery::default()
    }
    .events_url();
    Html(html::incident_page(&detail, &events_url)).into_response()
}

/// The `data` of a `bus` event.
#[derive(Debug, Serialize)]
struct BusEvent {
    /// The stream sequence (also the event's id, for `Last-Event-ID`).
    seq: u64,
    /// When the stream stored it.
    at: Option<String>,
    subject: String,
    /// The incident it belongs to, if any.
    incident_id: Option<String>,
    attempt: Option<u32>,
    /// `dbt-ops watch`'s one-line summary.
    summary: String,
}

/// The `data` of an `incident` event.
#[derive(Debug, Serialize)]
struct IncidentChange {
    incident_id: String,
    state: &'static str,
    updated_at: String,
    /// The table row, rendered (and escaped) by the server.
    row: String,
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut query = match EventsQuery::parse(query.as_deref()) {
        Ok(query) => query,
        Err(problem) => return (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response(),
    };
    // A reconnecting EventSource resumes after the last event it saw.
    if let Some(last) = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
    {
        query.since = Since::Sequence(last + 1);
    }
    let bus_events = match bus_events(&state.bus, &query).await {
        Ok(events) => events,
        Err(problem) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")).into_response()
        }
    };
    let incident_events = match incident_events(&state.bus, query.incident.as_deref()).await {
        Ok(events) => events,
        Err(problem) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")).into_response()
        }
    };
    let mut stopping = state.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    // Tell the browser how soon to reconnect if the stream breaks.
    let hello = stream::once(async { Event::default().retry(Duration::from_secs(2)) });
    let events = hello
        .chain(stream::select(bus_events, incident_events))
        .take_until(stopped)
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A failure event; the stream ends after it and the browser reconnects.
fn failure_event(what: &str, error: impl std::fmt::Display) -> Event {
    tracing::warn!(message = "A dashboard event stream broke.", what, %error);
    Event::default()
        .event("stream-error")
        .data(format!("{what}: {error}"))
}

/// The stream's messages as `bus` events, from an ordered consumer of its own (named, so a
/// server can limit what a read-only user may create, as for `Bus::replay`).
async fn bus_events(bus: &Bus, query: &EventsQuery) -> Result<BoxStream<'static, Event>, String> {
    let stream = bus
        .jetstream()
        .get_stream(&bus.settings().stream)
        .await
        .map_err(|error| format!("cannot open the event stream: {error}"))?;
    let inbox = bus.client().new_inbox();
    let token = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
    let consumer = stream
        .create_consumer(OrderedConfig {
            name: Some(format!("dashboard_{token}")),
            filter_subject: bus.subjects().all(),
            deliver_policy: query.since.deliver_policy(),
            ..Default::default()
        })
        .await
        .map_err(|error| format!("cannot follow the event stream: {error}"))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|error| format!("cannot follow the event stream: {error}"))?;
    let only = query.incident.clone();
    let events = stream::unfold(Some(messages), move |state| {
        let only = only.clone();
        async move {
            let mut messages = state?;
            loop {
                match messages.next().await {
                    Some(Ok(message)) => {
                        if let Some(event) = bus_event(&message, only.as_deref()) {
                            return Some((event, Some(messages)));
                        }
                    }
                    Some(Err(error)) => {
                        return Some((failure_event("the event stream", error), None))
                    }
                    None => return None,
                }
            }
        }
    });
    Ok(events.boxed())
}

/// One stream message as a `bus` event; `None` when it belongs to another incident than
/// `only`.
fn bus_event(message: &async_nats::jetstream::Message, only: Option<&str>) -> Option<Event> {
    let type_name = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(dbtops_bus::headers::MESSAGE_TYPE))
        .map(|value| value.as_str().to_owned())
        .unwrap_or_default();
    let belongs = status::incident_of(&type_name, &message.payload);
    if let Some(only) = only {
        if belongs.as_ref().map(|(id, _)| id.as_str()) != Some(only) {
            return None;
        }
    }
    let info = message.info().ok();
    let (incident_id, attempt) = belongs.map_or((None, None), |(id, attempt)| (Some(id), attempt));
    let event = BusEvent {
        seq: info.as_ref().map_or(0, |info| info.stream_sequence),
        at: info.as_ref().and_then(|info| {
            info.published
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        }),
        subject: message.subject.to_string(),
        incident_id,
        attempt,
        summary: watch::describe(&type_name, &message.payload),
    };
    let data = serde_json::to_string(&event).ok()?;
    Some(
        Event::default()
            .event("bus")
            .id(event.seq.to_string())
            .data(data),
    )
}

/// Each incident record's current value, then every change, as `incident` events.
async fn incident_events(
    bus: &Bus,
    only: Option<&str>,
) -> Result<BoxStream<'static, Event>, String> {
    let bucket = &bus.settings().incidents_bucket;
    let store = bus
        .jetstream()
        .get_key_value(bucket)
        .await
        .map_err(|error| format!("cannot open the incidents bucket {bucket}: {error}"))?;
    // The key layout is the incident store's: `incident.<id>`.
    let key = format!("incident.{}", only.unwrap_or(">"));
    let watch = store
        .watch_with_history(&key)
        .await
        .map_err(|error| format!("cannot watch the incidents bucket: {error}"))?;
    let events = stream::unfold(Some(watch), |state| async move {
        let mut watch = state?;
        loop {
            match watch.next().await {
                Some(Ok(entry)) => {
                    if let Some(event) = incident_event(&entry) {
                        return Some((event, Some(watch)));
                    }
                }
                Some(Err(error)) => {
                    return Some((failure_event("the incidents bucket", error), None))
                }
                None => return None,
            }
        }
    });
    Ok(events.boxed())
}

fn incident_event(entry: &kv::Entry) -> Option<Event> {
    if entry.operation != kv::Operation::Put {
        return None;
    }
    let record: IncidentRecord = match serde_json::from_slice(&entry.value) {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(message = "An incident record does not parse.", key = %entry.key, %error);
            return None;
        }
    };
    let change = IncidentChange {
        row: html::incident_row(&record),
        state: record.state.label(),
        updated_at: record.updated_at,
        incident_id: record.incident_id,
    };
    let data = serde_json::to_string(&change).ok()?;
    Some(Event::default().event("incident").data(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_all_a_window_or_a_sequence() {
        assert_eq!(Since::parse("").unwrap(), Since::Now);
        assert_eq!(Since::parse("all").unwrap(), Since::All);
        assert_eq!(Since::parse("seq:42").unwrap(), Since::Sequence(42));
        assert_eq!(
            Since::parse("10m").unwrap(),
            Since::Window(Duration::from_secs(600))
        );
        assert!(Since::parse("seq:x").is_err());
        assert!(Since::parse("soon").is_err());
    }

    #[test]
    fn the_query_is_decoded_and_checked() {
        let query = EventsQuery::parse(Some("since=1h&incident=abc123&utm=x")).unwrap();
        assert_eq!(query.since, Since::Window(Duration::from_secs(3600)));
        assert_eq!(query.incident.as_deref(), Some("abc123"));
        assert!(EventsQuery::parse(Some("incident=a.%3E")).is_err());
        assert_eq!(percent_decode("seq%3A7+x%zz"), "seq:7 x%zz");
        assert_eq!(query.events_url(), "/events?since=1h&incident=abc123");
        assert_eq!(EventsQuery::default().events_url(), "/events");
    }

    #[test]
    fn only_loopback_host_names_pass() {
        for host in [
            "localhost:8480",
            "127.0.0.1:8480",
            "[::1]:8480",
            "localhost",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:8480", "10.0.0.1", "[2001:db8::1]:80"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    fn stored(type_name: &str, payload: Vec<u8>) -> dbtops_bus::StoredMessage {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(dbtops_bus::headers::MESSAGE_TYPE, type_name);
        dbtops_bus::StoredMessage {
            subject: "dbtops.x".into(),
            headers,
            payload: payload.into(),
            published: None,
        }
    }

    #[test]
    fn attempts_gather_proposal_verdict_steps_and_diff() {
        let incident = v1::FailureDetected {
            incident_id: "a1".into(),
            evidence: Some(v1::Evidence {
                model_sql: "select custmer_id\n".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let proposal = |sql: &str| v1::FixProposal {
            model_path: "models/m.sql".into(),
            fixed_sql: sql.into(),
            ..Default::default()
        };
        let messages = vec![
            stored("dbtops.v1.FailureDetected", incident.encode_to_vec()),
            stored(
                "dbtops.v1.FixProposed",
                v1::FixProposed {
                    incident: Some(incident.clone()),
                    attempt: 1,
                    proposal: Some(proposal("select nope\n")),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            stored(
                "dbtops.v1.CompileFailed",
                v1::CompileFailed {
                    incident: Some(incident.clone()),
                    attempt: 1,
                    failed_step: "dbt compile".into(),
                    error_text: "no such column".into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            stored(
                "dbtops.v1.FixValidated",
                v1::FixValidated {
                    incident: Some(incident.clone()),
                    attempt: 2,
                    proposal: Some(proposal("select customer_id\n")),
                    diff: "--- a/models/m.sql\n".into(),
                    steps: vec![v1::ValidationStep {
                        name: "dbt compile".into(),
                        ok: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ];
        let record: IncidentRecord = serde_json::from_value(serde_json::json!({
            "incident_id": "a1", "project": "p", "unique_id": "model.p.m", "model": "m",
            "model_path": "models/m.sql", "class": "missing_column", "state": "delivering",
            "generation": 0, "attempts": 2, "branch": null, "url": null, "reason": null,
            "detail": null, "recurrences": 0, "first_seen": "", "last_seen": "",
            "updated_at": "", "trace_id": "abc"
        }))
        .unwrap();
        let detail = incident_detail(
            record,
            &messages,
            &DashboardOptions {
                trace_url_prefix: "http://jaeger/trace/".into(),
            },
        );
        assert_eq!(detail.trace_url.as_deref(), Some("http://jaeger/trace/abc"));
        assert_eq!(detail.status.timeline.len(), 4);
        assert_eq!(detail.attempts.len(), 2);
        let first = &detail.attempts[0];
        assert_eq!(
            first.verdict,
            Verdict::Failed {
                step: "dbt compile".into(),
                error_text: "no such column".into()
            }
        );
        assert!(first.diff.contains("-select custmer_id"), "{}", first.diff);
        assert!(first.diff.contains("+select nope"));
        let second = &detail.attempts[1];
        assert_eq!(second.verdict, Verdict::Validated);
        assert_eq!(second.diff, "--- a/models/m.sql\n");
        assert_eq!(second.steps.len(), 1);
    }
}
