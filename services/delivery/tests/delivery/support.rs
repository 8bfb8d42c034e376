//! A local HTTP server that records every request and answers through a handler, with
//! injectable faults (a status for the next N matching requests) — what the GitLab,
//! GitHub and Langfuse fakes are built on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The raw path, percent-encoding kept (`/projects/group%2Fshop`).
    pub path: String,
    /// Decoded query pairs.
    pub query: HashMap<String, String>,
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
    /// A body sent as it is (`text/plain`) instead of `body`: a raw file.
    pub raw: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            raw: None,
        }
    }

    pub fn text(status: u16, text: &str) -> Self {
        Self {
            raw: Some(text.to_owned()),
            ..Self::json(status, Value::Null)
        }
    }
}

struct Fault {
    method: String,
    path_contains: String,
    remaining: usize,
    reply: Reply,
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The server: its base URL and what it received.
pub struct FakeServer {
    pub base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Handler = Arc::new(handler);
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let app = {
            let requests = requests.clone();
            let faults = faults.clone();
            axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let requests = requests.clone();
                    let faults = faults.clone();
                    let handler = handler.clone();
                    async move {
                        let recorded = Recorded {
                            method: method.to_string(),
                            path: uri.path().to_owned(),
                            query: parse_query(uri.query().unwrap_or_default()),
                            headers: headers
                                .iter()
                                .map(|(name, value)| {
                                    (
                                        name.as_str().to_lowercase(),
                                        value.to_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect(),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        };
                        requests.lock().unwrap().push(recorded.clone());
                        let faulted = {
                            let mut faults = faults.lock().unwrap();
                            faults
                                .iter_mut()
                                .find(|fault| {
                                    fault.remaining > 0
                                        && fault.method == recorded.method
                                        && recorded.path.contains(&fault.path_contains)
                                })
                                .map(|fault| {
                                    fault.remaining -= 1;
                                    fault.reply.clone()
                                })
                        };
                        let reply = faulted.unwrap_or_else(|| handler(&recorded));
                        to_response(reply)
                    }
                },
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            requests,
            faults,
            _task: task,
        }
    }

    /// The next `times` requests `method` on a path containing `path_contains` get `status`.
    pub fn fail(
        &self,
        method: &str,
        path_contains: &str,
        times: usize,
        status: u16,
        body: Value,
        retry_after: Option<&str>,
    ) {
        let mut reply = Reply::json(status, body);
        if let Some(seconds) = retry_after {
            reply.headers.push(("retry-after".into(), seconds.into()));
        }
        self.faults.lock().unwrap().push(Fault {
            method: method.into(),
            path_contains: path_contains.into(),
            remaining: times,
            reply,
        });
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|request| format!("{} {}", request.method, request.path))
            .collect()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.is(method, path))
            .count()
    }

    pub fn last(&self, method: &str, path: &str) -> Recorded {
        self.requests()
            .into_iter()
            .rev()
            .find(|request| request.is(method, path))
            .unwrap_or_else(|| panic!("no {method} {path} in {:?}", self.calls()))
    }
}

fn to_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap();
    let mut response = match reply.raw {
        Some(text) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (status, axum::Json(reply.body)).into_response(),
    };
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Standard base64 with padding, as GitHub's contents API and HTTP Basic use it.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
