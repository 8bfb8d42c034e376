//! One HTTP client for the forges and Langfuse: a timeout per call, retries with back-off
//! on 429, 5xx and network errors, and an answer the caller interprets for everything
//! else — so each provider decides what a 404 or a 409 means for it.

use std::time::Duration;

use dbtops_settings::DeliverySettings;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

/// The longest `Retry-After` waited for inside one call; a longer one ends the call with
/// [`HttpError::Unavailable`] carrying the wait, so the message is redelivered later
/// instead of holding its handler.
const MAX_IN_CALL_WAIT: Duration = Duration::from_secs(20);

/// The most of a response body kept for an error message.
const MAX_ERROR_BODY: usize = 500;

/// Why a call did not get an answer worth interpreting.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// 429, 5xx or a network error, still so after every retry: a later delivery may
    /// succeed.
    #[error("{service} is unavailable ({what}): {reason}")]
    Unavailable {
        /// `GitLab`, `GitHub`, `Langfuse`.
        service: &'static str,
        /// The call, e.g. `POST /projects/:id/merge_requests`.
        what: String,
        /// The last status or network error.
        reason: String,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build an HTTP client: {0}")]
    Client(String),
}

/// A response that is not retried: any 1xx–4xx status except 429 (and 403 rate limits).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its body as text.
    pub body: String,
}

impl Answer {
    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.body).map_err(|error| {
            format!(
                "unexpected body ({error}): {}",
                truncate(&self.body, MAX_ERROR_BODY)
            )
        })
    }

    /// The body shortened for an error message; the forges' error bodies never echo
    /// credentials.
    pub fn excerpt(&self) -> String {
        truncate(&self.body, MAX_ERROR_BODY)
    }
}

/// A client with the configured timeout and retry policy.
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// Pooled connections, shared by clones.
    client: reqwest::Client,
    /// Retries after the first try.
    max_retries: u32,
    /// The first pause between tries, doubled each time.
    backoff: Duration,
}

impl HttpClient {
    /// Builds the client from `[delivery]`'s `http_*` settings.
    pub fn new(settings: &DeliverySettings) -> Result<Self, HttpError> {
        // One TLS provider for the process; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.http_timeout_secs))
            .user_agent(concat!("dbt-ops/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| HttpError::Client(error.to_string()))?;
        Ok(Self {
            client,
            max_retries: settings.http_max_retries,
            backoff: Duration::from_millis(settings.http_backoff_ms),
        })
    }

    /// A request builder for `method url`, for [`HttpClient::send`].
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends the request `build` makes, again after a pause when the answer is 429, a 5xx,
    /// a 403 that is a rate limit, or a network error, up to the configured retries.
    ///
    /// `build` is called once per try because a sent request is consumed. Every try is
    /// idempotent for the callers here: creating calls either fail on the second try
    /// because the first one landed (and the caller reuses what exists) or never landed.
    pub async fn send(
        &self,
        service: &'static str,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, HttpError> {
        let mut pause = self.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let (reason, retry_after) = match build().send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    // A body that cannot be read is a network error like any other.
                    match response.text().await {
                        Ok(body) if !is_retryable(status, &headers) => {
                            return Ok(Answer { status, body })
                        }
                        Ok(body) => (
                            format!("HTTP {status}: {}", truncate(&body, MAX_ERROR_BODY)),
                            retry_after(&headers),
                        ),
                        Err(error) => (error.without_url().to_string(), None),
                    }
                }
                // Without the URL: a self-managed instance's URL may carry credentials.
                Err(error) => (error.without_url().to_string(), None),
            };
            let wait = retry_after.unwrap_or(pause);
            if tries > self.max_retries || wait > MAX_IN_CALL_WAIT {
                return Err(HttpError::Unavailable {
                    service,
                    what: what.to_owned(),
                    reason: format!("{reason} (after {tries} tries)"),
                    retry_after,
                });
            }
            tracing::warn!(
                message = "HTTP call failed; retrying.",
                service,
                what,
                %reason,
                wait_ms = wait.as_millis() as u64
            );
            tokio::time::sleep(wait).await;
            pause = pause.saturating_mul(2);
        }
    }
}

/// 429 and 5xx, and GitHub's way of saying "rate limited": 403 with no requests left.
fn is_retryable(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
        || (status == StatusCode::FORBIDDEN
            && headers
                .get("x-ratelimit-remaining")
                .is_some_and(|value| value.as_bytes() == b"0"))
}

/// `Retry-After` in seconds (the HTTP-date form is rare on these APIs and ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// At most `max` characters of `text`, marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Percent-encodes one URL path segment or query value: everything but RFC 3986's
/// unreserved characters, so `group/project` becomes `group%2Fproject`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `url?k=v&…` with keys and values percent-encoded.
pub fn with_query(url: &str, query: &[(&str, &str)]) -> String {
    if query.is_empty() {
        return url.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(key, value)| format!("{}={}", encode_component(key), encode_component(value)))
        .collect();
    format!("{url}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_encoded_slashes_included() {
        assert_eq!(
            encode_component("group/sub project"),
            "group%2Fsub%20project"
        );
        assert_eq!(encode_component("models/a-b_c.sql"), "models%2Fa-b_c.sql");
        assert_eq!(encode_component("ü"), "%C3%BC");
        assert_eq!(
            with_query(
                "http://h/p",
                &[("head", "o:dbt-ops/fix/a"), ("state", "open")]
            ),
            "http://h/p?head=o%3Adbt-ops%2Ffix%2Fa&state=open"
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_retried() {
        let none = HeaderMap::new();
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS, &none));
        assert!(is_retryable(StatusCode::BAD_GATEWAY, &none));
        assert!(!is_retryable(StatusCode::FORBIDDEN, &none));
        assert!(!is_retryable(StatusCode::CONFLICT, &none));
        let mut limited = HeaderMap::new();
        limited.insert("x-ratelimit-remaining", "0".parse().unwrap());
        assert!(is_retryable(StatusCode::FORBIDDEN, &limited));
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
