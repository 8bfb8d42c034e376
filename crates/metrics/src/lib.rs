//! Prometheus `/metrics`, `/healthz` and `/readyz` for a dbt-ops process (`dbt-ops up` and
//! each service binary), when `telemetry.metrics_listen` is set.
//!
//! - [`registry`]: labelled counters and histograms, hand-written in the Prometheus text
//!   format (no metrics crate).
//! - [`observer`]: [`Metrics`] counts the dbt-ops events it sees on a core NATS
//!   subscription to `<prefix>.>` inside the process, so no service code changes to be
//!   measured. Every process that serves metrics counts every event of the system: when
//!   several processes are scraped, aggregate with `max`, not `sum`.
//!
//! `/healthz` answers 200 while the process runs; `/readyz` answers 200 while the NATS
//! connection is up, 503 otherwise.

pub mod observer;
pub mod registry;

use std::net::SocketAddr;
use std::sync::Arc;

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

/// Shared state of the HTTP handlers.
#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    client: async_nats::Client,
}

/// Starts the endpoint on `listen` and the observer on `bus`; `None` when `listen` is
/// empty (metrics off).
pub async fn start(bus: &Bus, listen: &str) -> Result<Option<MetricsServer>, MetricsError> {
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
    let app = router(AppState {
        metrics: metrics.clone(),
        client: bus.client().clone(),
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
        tasks: vec![observer, server],
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
    match state.client.connection_state() {
        async_nats::connection::State::Connected => (StatusCode::OK, "ready\n".to_owned()),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("NATS is not connected ({other})\n"),
        ),
    }
}
