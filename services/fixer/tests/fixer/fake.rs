//! A local stand-in for OpenAI-compatible and Anthropic servers: it serves
//! `/v1/chat/completions` and `/v1/messages`, records every request exactly as received
//! (path, headers, raw body), and answers what the test scripts — including error
//! statuses, `Retry-After` headers and hangs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use dbtops_settings::{LlmMode, LlmProviderKind, LlmProviderSettings};
use serde_json::{json, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/v1/chat/completions` or `/v1/messages`.
    pub path: String,
    /// Lower-cased header names.
    pub headers: HashMap<String, String>,
    /// The body as sent, to look for secrets.
    pub raw: String,
    /// The body as JSON.
    pub body: Value,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
    delay: Duration,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: Value) -> Self {
        Self::status(200, body)
    }

    /// Any status with `body`.
    pub fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Answers only after `delay` (a hang, when longer than the client's timeout).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(usize, &Recorded) -> Reply + Send + Sync;

#[derive(Clone)]
struct FakeState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Responder>,
}

/// A running fake on a loopback port.
pub struct FakeLlm {
    address: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts the fake; `responder(call, request)` answers the `call`-th request (1-based).
    pub async fn start(
        responder: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            requests: requests.clone(),
            responder: Arc::new(responder),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/messages", post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            requests,
            server,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Provider settings pointing at the fake: `kind`'s base URL convention, key
    /// `test-key-0123456789`, quick back-off.
    pub fn provider(&self, name: &str, kind: LlmProviderKind) -> LlmProviderSettings {
        let base_url = match kind {
            LlmProviderKind::Openai => format!("http://{}/v1", self.address),
            LlmProviderKind::Anthropic => format!("http://{}", self.address),
        };
        LlmProviderSettings {
            name: name.into(),
            kind,
            base_url,
            api_key: API_KEY.into(),
            model: "fake-model".into(),
            timeout_secs: 10,
            backoff_initial_ms: 10,
            backoff_max_secs: 5,
            mode: LlmMode::SingleShot,
            ..Default::default()
        }
    }
}

/// The API key every fake provider is configured with.
pub const API_KEY: &str = "test-key-0123456789";

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(state): State<FakeState>,
    uri: Uri,
    headers: HeaderMap,
    raw: String,
) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    };
    let call = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(recorded.clone());
        requests.len()
    };
    let reply = (state.responder)(call, &recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", "application/json");
    for (name, value) in reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(reply.body.to_string())).unwrap()
}

/// A FixProposal as the model would send it.
pub fn fix(path: &str, sql: &str) -> Value {
    json!({
        "model_path": path,
        "fixed_sql": sql,
        "explanation": "Cast with try_cast so bad values become null.",
        "error_class": "type_mismatch",
        "confidence": 0.8,
    })
}

/// A chat completion whose content is `content`.
pub fn openai_text(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content},
        }],
        "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020},
    })
}

/// A chat completion calling tools: `(id, name, arguments)`.
pub fn openai_tool_calls(calls: &[(&str, &str, Value)]) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(|(id, name, arguments)| json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                })).collect::<Vec<_>>(),
            },
        }],
        "usage": {"prompt_tokens": 400, "completion_tokens": 30, "total_tokens": 430},
    })
}

/// A Messages response with one `tool_use` block.
pub fn anthropic_tool_use(id: &str, name: &str, input: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "fake-model",
        "content": [{"type": "tool_use", "id": id, "name": name, "input": input}],
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": 1500, "output_tokens": 200},
    })
}

/// A Messages response with text only.
pub fn anthropic_text(text: &str, stop_reason: &str) -> Value {
    json!({
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "fake-model",
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1500, "output_tokens": 10},
    })
}
