//! Prometheus `/metrics`, `/healthz` and `/readyz` for a dbt-ops process (`dbt-ops up` and
//! each service binary), when `telemetry.metrics_listen` is set.
//!
//! - [`registry`]: labelled counters, gauges and histograms, hand-written in the Prometheus
//!   text format (no metrics crate).
//! - [`observer`]: [`Metrics`] counts the dbt-ops events it sees on a core NATS
//!   subscription to `<prefix>.>` inside the process, so no service code changes to be
//!   measured. Every process that serves metrics counts every event of the system: when
//!   several processes are scraped, aggregate with `max`, not `sum`.
//! - [`lag`]: the backlog of each durable consumer the process reads
//!   (`dbtops_consumer_pending_messages`, `dbtops_consumer_ack_pending_messages`), read
//!   from the server every few seconds.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 while the NATS
//! connection is up and every durable consumer the process reads (and every one named in
//! [`MetricsOptions::consumers`]) is bound; 503 with the reason otherwise — so a process
//! whose consumer loop has not bound yet, or has stopped, is not ready.

pub mod lag;
pub mod observer;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use dbtops_bus::Bus;

pub use observer::Metrics;
pub use registry::Registry;

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// `telemetry.metrics_listen` is not an address.
    #[error("telemetry.metrics_listen: {listen:?} is not an address like 127.0.0.1:9464")]
    BadAddress {
        /// The configured value.
        listen: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {listen} for metrics: {source}")]
    Bind {
        /// The configured value.
        listen: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The running endpoint and observer; both stop when this is dropped.
#[derive(Debug)]
pub struct MetricsServer {
    /// Where the endpoint listens (the bound port when 0 was configured).
    pub address: SocketAddr,
    /// The counts served.
    pub metrics: Arc<Metrics>,
    /// The HTTP server and the observer tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What a process serves beyond the event counters.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    /// Durable consumers whose lag is reported, and which must be bound by this process
    /// for it to be ready, besides those it binds anyway. Empty for the services: they are
    /// found as the consumer loops bind them.
    pub consumers: Vec<String>,
    /// How often consumer lag is read from the server.
    pub lag_interval: Duration,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self {
            consumers: Vec::new(),
            // Well under Prometheus' usual 15 s scrape, and one small request per consumer.
            lag_interval: Duration::from_secs(5),
        }
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    bus: Bus,
    required: Arc<Vec<String>>,
}

/// Starts the endpoint on `listen`, the observer and the lag poller on `bus`; `None` when
/// `listen` is empty (metrics off).
pub async fn start(bus: &Bus, listen: &str) -> Result<Option<MetricsServer>, MetricsError> {
    start_with(bus, listen, MetricsOptions::default()).await
}

/// Like [`start`], with `options`.
pub async fn start_with(
    bus: &Bus,
    listen: &str,
    options: MetricsOptions,
) -> Result<Option<MetricsServer>, MetricsError> {
    if listen.is_empty() {
        return Ok(None);
    }
    let address: SocketAddr = listen.parse().map_err(|_| MetricsError::BadAddress {
        listen: listen.to_owned(),
    })?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| MetricsError::Bind {
            listen: listen.to_owned(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| MetricsError::Bind {
        listen: listen.to_owned(),
        source,
    })?;
    let metrics = Arc::new(Metrics::new());
    let observer = tokio::spawn(observer::observe(
        bus.client().clone(),
        bus.settings().subject_prefix.clone(),
        metrics.clone(),
    ));
    let lag = tokio::spawn(lag::poll(
        bus.clone(),
        options.consumers.clone(),
        options.lag_interval,
        metrics.clone(),
    ));
    let app = router(AppState {
        metrics: metrics.clone(),
        bus: bus.clone(),
        required: Arc::new(options.consumers),
    });
    let server = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(message = "The metrics endpoint stopped.", %error);
        }
    });
    tracing::info!(message = "Serving metrics.", %address);
    Ok(Some(MetricsServer {
        address,
        metrics,
        tasks: vec![observer, lag, server],
    }))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.registry.render(),
    )
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match readiness(&state.bus, &state.required) {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

/// Ready: NATS connected, at least one durable consumer read, and every consumer the
/// process reads or is required to read bound on the server.
fn readiness(bus: &Bus, required: &[String]) -> Result<(), String> {
    match bus.client().connection_state() {
        async_nats::connection::State::Connected => {}
        other => return Err(format!("NATS is not connected ({other})")),
    }
    let consumers = bus.consumers();
    if consumers.is_empty() && required.is_empty() {
        return Err("no durable consumer is bound yet".into());
    }
    for durable in required {
        if !consumers.iter().any(|c| &c.durable == durable && c.bound) {
            return Err(format!("consumer {durable} is not bound"));
        }
    }
    match consumers.iter().find(|c| !c.bound) {
        Some(unbound) => Err(format!("consumer {} is not bound yet", unbound.durable)),
        None => Ok(()),
    }
}
