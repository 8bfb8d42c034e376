//! A local OpenAI-compatible chat-completions server for the benchmarks: every call is
//! answered with the same proposal after a fixed delay, standing in for a model whose
//! latency is known, so what is measured is dbt-ops and not the model.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use dbtops_settings::{LlmProviderKind, LlmProviderSettings};
use serde_json::{json, Value};

use super::BenchError;

/// The provider name the fixer gives it (its proposals' strategy is `llm:<name>/<model>`).
pub const PROVIDER_NAME: &str = "bench";
/// The model name it answers as.
pub const MODEL: &str = "fake-fixed-delay";

/// What the server counts, shared with its handler.
#[derive(Debug, Default)]
struct Counters {
    /// Calls answered or in progress.
    calls: AtomicUsize,
    /// Calls in progress now.
    in_flight: AtomicUsize,
    /// The most calls in progress at once: how many LLM calls the fixers really overlap.
    peak_in_flight: AtomicUsize,
}

#[derive(Clone)]
struct FakeState {
    /// The chat completion every call gets.
    answer: Arc<Value>,
    /// How long each call takes.
    delay: Duration,
    /// Shared with [`FakeLlm`].
    counters: Arc<Counters>,
}

/// A running fake on a loopback port; dropping it stops it.
pub struct FakeLlm {
    /// Where it listens.
    address: SocketAddr,
    /// Calls so far and their overlap.
    counters: Arc<Counters>,
    /// The server task.
    server: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts a server that answers every call, after `delay`, with a proposal to write
    /// `fixed_sql` to `model_path`.
    pub async fn start(
        delay: Duration,
        model_path: &str,
        fixed_sql: &str,
        error_class: &str,
    ) -> Result<Self, BenchError> {
        let counters = Arc::new(Counters::default());
        let state = FakeState {
            answer: Arc::new(chat_completion(model_path, fixed_sql, error_class)),
            delay,
            counters: counters.clone(),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|error| BenchError::Setup(format!("cannot bind the fake LLM: {error}")))?;
        let address = listener
            .local_addr()
            .map_err(|error| BenchError::Setup(format!("the fake LLM has no address: {error}")))?;
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(message = "The fake LLM server stopped.", %error);
            }
        });
        Ok(Self {
            address,
            counters,
            server,
        })
    }

    /// The fixer's provider settings for this server.
    pub fn provider(&self) -> LlmProviderSettings {
        LlmProviderSettings {
            name: PROVIDER_NAME.into(),
            kind: LlmProviderKind::Openai,
            base_url: self.base_url(),
            api_key: "bench-key".into(),
            model: MODEL.into(),
            // Well above any delay a benchmark asks for: a timeout would be a retry,
            // which is not what is being measured.
            timeout_secs: 600,
            ..Default::default()
        }
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Calls received so far.
    pub fn calls(&self) -> usize {
        self.counters.calls.load(Ordering::SeqCst)
    }

    /// The most calls that were in progress at once.
    pub fn peak_in_flight(&self) -> usize {
        self.counters.peak_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Lowers the in-flight count when a call ends, however it ends (a client that hangs up
/// drops the handler's future).
struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn complete(State(state): State<FakeState>, Json(_request): Json<Value>) -> Json<Value> {
    let counters = state.counters.clone();
    counters.calls.fetch_add(1, Ordering::SeqCst);
    let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    counters.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(counters);
    tokio::time::sleep(state.delay).await;
    Json(state.answer.as_ref().clone())
}

/// A chat completion whose content is a FixProposal, in the shape the fixer's strict
/// schema asks for.
fn chat_completion(model_path: &str, fixed_sql: &str, error_class: &str) -> Value {
    let content = json!({
        "model_path": model_path,
        "fixed_sql": fixed_sql,
        "explanation": "Benchmark answer: the same fix for every incident.",
        "error_class": error_class,
        "confidence": 0.9,
    });
    json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content.to_string()},
        }],
        "usage": {"prompt_tokens": 1500, "completion_tokens": 200, "total_tokens": 1700},
    })
}
