//! A local stand-in for an OpenAI-compatible chat-completions server: it speaks the
//! documented wire format, records every request, and answers with what the test says.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The Authorization header.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

type Responder = dyn Fn(usize, &Value) -> Value + Send + Sync;

#[derive(Clone)]
struct FakeState {
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    responder: Arc<Responder>,
}

/// A running fake on a loopback port.
pub struct FakeLlm {
    address: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts the fake; `responder(call, request_body)` gives the chat-completion JSON for
    /// the `call`-th request (1-based).
    pub async fn start(responder: impl Fn(usize, &Value) -> Value + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = FakeState {
            requests: requests.clone(),
            responder: Arc::new(responder),
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
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

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn complete(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let call = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(RecordedRequest {
            authorization: headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
        });
        requests.len()
    };
    Json((state.responder)(call, &body))
}

/// A chat completion whose content is a FixProposal for `path` with `sql`.
pub fn answer(path: &str, sql: &str) -> Value {
    let content = json!({
        "model_path": path,
        "fixed_sql": sql,
        "explanation": "Compared the date with a date, not an integer.",
        "error_class": "type_mismatch",
        "confidence": 0.8,
    });
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content.to_string()},
        }],
        "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020},
    })
}

/// The model SQL the fixer put in the prompt, between its delimiters.
pub fn model_sql_from(request: &Value) -> String {
    let prompt = request["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    let start = prompt
        .find("<<<BEGIN model_sql>>>\n")
        .map(|i| i + "<<<BEGIN model_sql>>>\n".len());
    let end = prompt.find("\n<<<END model_sql>>>");
    match (start, end) {
        (Some(start), Some(end)) if start <= end => format!("{}\n", &prompt[start..end]),
        _ => String::new(),
    }
}
