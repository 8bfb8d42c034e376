//! LLM providers behind one provider-neutral conversation: OpenAI-compatible chat
//! completions ([`openai`]) and Anthropic Messages ([`anthropic`]).
//!
//! A [`Provider`] turns a [`ChatRequest`] into its wire format, sends it with retries
//! ([`retry`]: exponential back-off with jitter, `Retry-After` honoured) and parses the
//! answer into a [`ChatResponse`]. It knows nothing of incidents or prompts: the agent
//! (`crate::agent`) drives the conversation and checks what comes back.

pub mod anthropic;
pub mod openai;
pub mod retry;

use std::time::{Duration, SystemTime};

use dbtops_settings::{LlmMode, LlmProviderKind, LlmProviderSettings};
use serde::Deserialize;
use serde_json::{json, Value};

/// Why a provider gave no usable proposal. Each variant says whether retrying helps.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider could not be reached, timed out, answered 429/5xx after every retry,
    /// or refused our credentials: another provider, or this one later, may succeed. The
    /// incident waits rather than being abandoned.
    #[error("provider {provider} unavailable: {reason}")]
    Unavailable {
        /// The provider's name.
        provider: String,
        /// What happened.
        reason: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The provider answered, but not with a usable proposal (a 4xx, a refusal, a cut-off
    /// or malformed answer after one round of feedback). Asking again the same way will
    /// not help.
    #[error("provider {provider} gave no usable answer: {reason}")]
    Unusable {
        /// The provider's name.
        provider: String,
        /// What was wrong.
        reason: String,
    },
    /// The provider's proposal failed the fixer's checks (path, DDL, kept refs, change
    /// size…) even after the refusal was fed back once. Not retryable.
    #[error("provider {provider}'s proposal was refused: {reason}")]
    Refused {
        /// The provider's name.
        provider: String,
        /// The check that refused it.
        reason: String,
    },
    /// The call was not made: it could exceed a token budget or the cost cap. Not
    /// retryable — the budget does not refill.
    #[error("provider {provider} not called: {reason}")]
    OverBudget {
        /// The provider's name.
        provider: String,
        /// Which budget.
        reason: String,
    },
    /// The provider cannot be set up (the TLS stack, a bad header). A configuration
    /// error: retrying does not help.
    #[error("provider {provider} cannot be set up: {reason}")]
    Setup {
        /// The provider's name.
        provider: String,
        /// Why.
        reason: String,
    },
}

impl LlmError {
    /// True when the same request may succeed later.
    pub fn retry_helps(&self) -> bool {
        matches!(self, LlmError::Unavailable { .. })
    }
}

/// What the model must return: the FixProposal's fields the model decides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelAnswer {
    /// Must equal the incident's model path.
    pub model_path: String,
    /// The complete new content of the model file.
    pub fixed_sql: String,
    /// One or two sentences for the reviewer.
    pub explanation: String,
    /// The class the model believes the error is, as a label.
    pub error_class: String,
    /// 0–1.
    pub confidence: f64,
    /// Edits to ancestor models (only offered with `fixer.fix_scope = "lineage"`).
    #[serde(default)]
    pub upstream_edits: Vec<AnswerEdit>,
}

/// One ancestor model's new content in an answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnswerEdit {
    /// One of the ancestor paths the evidence lists.
    pub path: String,
    /// The complete new content of that file.
    pub fixed_sql: String,
    /// Why it changes.
    pub explanation: String,
}

/// Token counts, for spans, budgets and the merge request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (cache reads and writes included).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Both counts.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The JSON schema the answer must follow (strict: every key required, nothing else;
/// string lengths bounded because local grammars do not stop an unbounded string).
pub fn answer_schema() -> Value {
    answer_schema_for(&[])
}

/// [`answer_schema`], and — when `ancestor_paths` is not empty (a lineage-scoped fix) —
/// `upstream_edits`: new contents for those files only (an `enum`, so a constrained
/// decoder cannot name another file), possibly none.
pub fn answer_schema_for(ancestor_paths: &[String]) -> Value {
    let mut schema = model_answer_schema();
    if ancestor_paths.is_empty() {
        return schema;
    }
    schema["properties"]["upstream_edits"] = json!({
        "type": "array",
        "maxItems": ancestor_paths.len(),
        "description": "Only when the cause is in an ancestor model: the complete new content of each ancestor file that must change. Empty otherwise.",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "required": ["path", "fixed_sql", "explanation"],
            "properties": {
                "path": {"type": "string", "enum": ancestor_paths},
                "fixed_sql": {"type": "string", "maxLength": 60000,
                    "description": "The complete new content of that ancestor's file."},
                "explanation": {"type": "string", "maxLength": 600}
            }
        }
    });
    if let Some(required) = schema["required"].as_array_mut() {
        required.push(json!("upstream_edits"));
    }
    schema
}

fn model_answer_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["model_path", "fixed_sql", "explanation", "error_class", "confidence"],
        "properties": {
            "model_path": {"type": "string", "maxLength": 300,
                "description": "The incident's model path, exactly as given."},
            "fixed_sql": {"type": "string", "maxLength": 60000,
                "description": "The complete new content of the model file."},
            "explanation": {"type": "string", "maxLength": 600,
                "description": "One or two sentences for the reviewer."},
            "error_class": {"type": "string", "maxLength": 40},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        }
    })
}

/// Parses the model's JSON, tolerating a Markdown fence around it (small models add one
/// even under a schema), and checks what the schema cannot enforce everywhere.
pub fn parse_answer(content: &str) -> Result<ModelAnswer, String> {
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    let answer: ModelAnswer = serde_json::from_str(unfenced.trim())
        .map_err(|error| format!("the answer does not fit the FixProposal schema: {error}"))?;
    check_answer(answer)
}

/// Like [`parse_answer`] for an answer that arrived as a tool call's arguments.
pub fn answer_from_value(value: &Value) -> Result<ModelAnswer, String> {
    let answer = ModelAnswer::deserialize(value)
        .map_err(|error| format!("the answer does not fit the FixProposal schema: {error}"))?;
    check_answer(answer)
}

fn check_answer(answer: ModelAnswer) -> Result<ModelAnswer, String> {
    if !(0.0..=1.0).contains(&answer.confidence) {
        return Err(format!("confidence {} is outside 0–1", answer.confidence));
    }
    if answer.fixed_sql.trim().is_empty() {
        return Err("fixed_sql is empty".into());
    }
    Ok(answer)
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Its name.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// JSON schema of its arguments (an object; strict-compatible).
    pub parameters: Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id, echoed in the result.
    pub id: String,
    /// Which tool.
    pub name: String,
    /// The arguments as received (OpenAI sends a JSON string that may be malformed).
    pub raw_arguments: String,
}

impl ToolCall {
    /// The arguments as JSON.
    pub fn arguments(&self) -> Result<Value, String> {
        serde_json::from_str(&self.raw_arguments)
            .map_err(|error| format!("the arguments of {} are not JSON: {error}", self.name))
    }
}

/// What a tool answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The call it answers.
    pub call_id: String,
    /// The tool's name (OpenAI-compatible servers that lack ids use it).
    pub name: String,
    /// The result text.
    pub content: String,
    /// True when the call failed (unknown tool, bad arguments, a refused proposal).
    pub is_error: bool,
}

/// One message of the conversation after the system prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Our words: the evidence, feedback.
    User(String),
    /// The model's turn as it came back.
    Assistant {
        /// Text, if any.
        text: Option<String>,
        /// Tool calls, if any.
        tool_calls: Vec<ToolCall>,
    },
    /// The results of the model's tool calls, in call order.
    ToolResults(Vec<ToolResult>),
}

/// How the answer is constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One answer in the FixProposal schema: `response_format: json_schema` (OpenAI) or a
    /// forced `propose_fix` tool call (Anthropic).
    Answer,
    /// A tool loop: the model must call one of the offered tools, or `force`d one.
    Tools {
        /// A tool the model must call this turn (the last turn forces `submit_fix`).
        force: Option<&'static str>,
    },
}

/// A provider-neutral request.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    /// The system prompt.
    pub system: &'a str,
    /// The conversation so far.
    pub messages: &'a [Message],
    /// Tools offered (agentic mode).
    pub tools: &'a [ToolSpec],
    /// How the answer is constrained.
    pub output: Output,
    /// The schema of the answer ([`answer_schema_for`]): the response format, the forced
    /// answer tool's input.
    pub answer_schema: &'a Value,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// It finished its answer.
    Complete,
    /// It called tools.
    ToolUse,
    /// It hit `max_tokens` or its context window: the answer is incomplete.
    CutOff(String),
    /// It declined.
    Refusal(String),
}

/// A provider-neutral answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// Text content, if any.
    pub text: Option<String>,
    /// Tool calls, if any (Anthropic's forced `propose_fix` arrives here).
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish: Finish,
    /// Tokens used.
    pub usage: Usage,
}

/// How a single HTTP exchange failed; decides between retrying, falling back and giving up.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// 408/409/429/5xx, a timeout or a connection error: back off and retry.
    Transient {
        /// What happened.
        reason: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The provider cannot serve us until someone acts (bad key, wrong model or URL, a
    /// spend limit): retrying now is pointless, but the incident should wait, not die.
    Down {
        /// What happened.
        reason: String,
    },
    /// The request or the answer is unusable (400, malformed JSON): do not retry.
    Unusable {
        /// What was wrong.
        reason: String,
    },
}

/// The name of the forced answer tool in Anthropic's single-shot mode.
pub const ANSWER_TOOL: &str = "propose_fix";

/// One configured provider, ready to call.
#[derive(Debug, Clone)]
pub struct Provider {
    /// As configured.
    settings: LlmProviderSettings,
    /// The API key, resolved from the settings or the environment. Sent only in a header.
    api_key: String,
    /// A client with the provider's per-request timeout.
    client: reqwest::Client,
}

impl Provider {
    /// Builds the client; fails only when the TLS stack cannot be set up.
    pub fn new(settings: &LlmProviderSettings) -> Result<Self, LlmError> {
        // One TLS provider for the process; a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let api_key = if !settings.api_key.is_empty() {
            settings.api_key.expose().to_owned()
        } else if !settings.api_key_env.is_empty() {
            std::env::var(&settings.api_key_env).unwrap_or_default()
        } else {
            String::new()
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.timeout_secs.min(10)))
            .build()
            .map_err(|error| LlmError::Setup {
                provider: settings.name.clone(),
                reason: format!("cannot build an HTTP client: {error}"),
            })?;
        Ok(Self {
            settings: settings.clone(),
            api_key,
            client,
        })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &LlmProviderSettings {
        &self.settings
    }

    /// Single-shot or agentic.
    pub fn mode(&self) -> LlmMode {
        self.settings.mode
    }

    /// The API key, so prompts and captured content can be scrubbed of it.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The OpenTelemetry `gen_ai.provider.name` of its wire format.
    pub fn system_name(&self) -> &'static str {
        match self.settings.kind {
            LlmProviderKind::Openai => "openai",
            LlmProviderKind::Anthropic => "anthropic",
        }
    }

    /// The request body in the provider's wire format.
    pub fn body(&self, request: &ChatRequest<'_>) -> Value {
        match self.settings.kind {
            LlmProviderKind::Openai => openai::body(&self.settings, request),
            LlmProviderKind::Anthropic => anthropic::body(&self.settings, request),
        }
    }

    /// Cost in US dollars of `usage` at this provider's prices.
    pub fn cost_usd(&self, usage: Usage) -> f64 {
        (usage.input_tokens as f64 * self.settings.input_price_per_mtok
            + usage.output_tokens as f64 * self.settings.output_price_per_mtok)
            / 1_000_000.0
    }

    /// Sends `body`, retrying transient failures with back-off; returns the answer and how
    /// many times the request was re-sent.
    pub async fn send(&self, body: &Value) -> Result<(ChatResponse, u32), LlmError> {
        let initial = Duration::from_millis(self.settings.backoff_initial_ms);
        let max = Duration::from_secs(self.settings.backoff_max_secs);
        let mut retries = 0;
        loop {
            match self.send_once(body).await {
                Ok(response) => return Ok((response, retries)),
                Err(CallFailure::Transient {
                    reason,
                    retry_after,
                }) => {
                    let delay = if retries < self.settings.max_retries {
                        retry::retry_delay(retries, initial, max, retry_after)
                    } else {
                        None
                    };
                    let Some(delay) = delay else {
                        let reason = match retry_after {
                            Some(asked) if asked > max => format!(
                                "{reason}; it asks to retry after {} s, longer than backoff_max_secs",
                                asked.as_secs()
                            ),
                            _ => format!("{reason} (tried {} time(s))", retries + 1),
                        };
                        return Err(LlmError::Unavailable {
                            provider: self.settings.name.clone(),
                            reason,
                            retry_after,
                        });
                    };
                    tracing::info!(
                        message = "LLM call failed; retrying.",
                        provider = %self.settings.name,
                        %reason,
                        delay_ms = delay.as_millis() as u64,
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
                Err(CallFailure::Down { reason }) => {
                    return Err(LlmError::Unavailable {
                        provider: self.settings.name.clone(),
                        reason,
                        retry_after: None,
                    });
                }
                Err(CallFailure::Unusable { reason }) => {
                    return Err(LlmError::Unusable {
                        provider: self.settings.name.clone(),
                        reason,
                    });
                }
            }
        }
    }

    async fn send_once(&self, body: &Value) -> Result<ChatResponse, CallFailure> {
        let base = self.settings.base_url.trim_end_matches('/');
        let mut request = match self.settings.kind {
            LlmProviderKind::Openai => {
                let request = self.client.post(format!("{base}/chat/completions"));
                if self.api_key.is_empty() {
                    request
                } else {
                    request.bearer_auth(&self.api_key)
                }
            }
            LlmProviderKind::Anthropic => {
                // The documented base is the host; tolerate a base that already ends in /v1.
                let url = if base.ends_with("/v1") {
                    format!("{base}/messages")
                } else {
                    format!("{base}/v1/messages")
                };
                self.client
                    .post(url)
                    .header("x-api-key", &self.api_key)
                    .header("anthropic-version", anthropic::API_VERSION)
            }
        };
        for (name, value) in &self.settings.extra_headers {
            request = request.header(name, value);
        }
        let response = request.json(body).send().await.map_err(|error| {
            let what = if error.is_timeout() {
                format!("no answer within {} s", self.settings.timeout_secs)
            } else {
                error.without_url().to_string()
            };
            CallFailure::Transient {
                reason: what,
                retry_after: None,
            }
        })?;
        let status = response.status();
        let retry_after = retry::retry_after(response.headers(), SystemTime::now());
        let text = response
            .text()
            .await
            .map_err(|error| CallFailure::Transient {
                reason: format!(
                    "HTTP {status}, the body could not be read: {}",
                    error.without_url()
                ),
                retry_after,
            })?;
        let payload: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            return Err(classify_status(
                status.as_u16(),
                payload.as_ref(),
                retry_after,
            ));
        }
        let payload = payload.ok_or_else(|| CallFailure::Unusable {
            reason: format!("HTTP {status}, but the body is not JSON"),
        })?;
        match self.settings.kind {
            LlmProviderKind::Openai => openai::parse(&payload),
            LlmProviderKind::Anthropic => anthropic::parse(&payload),
        }
        .map_err(|reason| CallFailure::Unusable { reason })
    }
}

/// What an error status means for us. Both wire formats put `error.message` (and a
/// `type`/`code`) in the body.
fn classify_status(
    status: u16,
    payload: Option<&Value>,
    retry_after: Option<Duration>,
) -> CallFailure {
    let error = payload.and_then(|payload| payload.get("error"));
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let code = |pointer: &str| {
        error
            .and_then(|error| error.pointer(pointer))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    // A spend limit or an exhausted quota answers 429 but will not lift within minutes:
    // retrying now only burns time. Anthropic: error.details.error_code; OpenAI: code.
    let quota = code("/details/error_code") == "enforced_spend_limit_reached"
        || code("/code") == "insufficient_quota";
    let reason = format!("HTTP {status}: {message}");
    match status {
        429 if quota => CallFailure::Down { reason },
        408 | 409 | 429 | 500..=599 => CallFailure::Transient {
            reason,
            retry_after,
        },
        401 | 403 | 404 => CallFailure::Down {
            reason: format!("{reason} (check the provider's api_key, base_url and model)"),
        },
        _ => CallFailure::Unusable { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_or_without_a_fence_and_bad_ones_are_refused() {
        let raw = r#"{"model_path":"models/a.sql","fixed_sql":"select 1","explanation":"x","error_class":"missing_column","confidence":0.7}"#;
        assert_eq!(parse_answer(raw).unwrap().fixed_sql, "select 1");
        assert_eq!(
            parse_answer(&format!("```json\n{raw}\n```"))
                .unwrap()
                .confidence,
            0.7
        );
        assert!(parse_answer("not json").is_err());
        assert!(parse_answer(&raw.replace("0.7", "7")).is_err());
        assert!(parse_answer(&raw.replace("select 1", " ")).is_err());
        assert!(parse_answer(&raw.replace('}', r#","extra":1}"#)).is_err());
        let value: Value = serde_json::from_str(raw).unwrap();
        assert_eq!(
            answer_from_value(&value).unwrap().model_path,
            "models/a.sql"
        );
    }

    #[test]
    fn error_statuses_decide_between_retry_fallback_and_giving_up() {
        let body = |json: &str| serde_json::from_str::<Value>(json).ok();
        assert!(matches!(
            classify_status(429, None, Some(Duration::from_secs(3))),
            CallFailure::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify_status(529, None, None),
            CallFailure::Transient { .. }
        ));
        assert!(matches!(
            classify_status(503, None, None),
            CallFailure::Transient { .. }
        ));
        assert!(matches!(
            classify_status(401, None, None),
            CallFailure::Down { .. }
        ));
        assert!(matches!(
            classify_status(
                429,
                body(r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend","details":{"error_code":"enforced_spend_limit_reached"}}}"#).as_ref(),
                None
            ),
            CallFailure::Down { .. }
        ));
        assert!(matches!(
            classify_status(
                429,
                body(r#"{"error":{"message":"quota","code":"insufficient_quota"}}"#).as_ref(),
                None
            ),
            CallFailure::Down { .. }
        ));
        match classify_status(
            400,
            body(r#"{"error":{"message":"prompt is too long"}}"#).as_ref(),
            None,
        ) {
            CallFailure::Unusable { reason } => assert!(reason.contains("prompt is too long")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_unavailability_is_worth_retrying() {
        let provider = "p".to_owned();
        assert!(LlmError::Unavailable {
            provider: provider.clone(),
            reason: String::new(),
            retry_after: None
        }
        .retry_helps());
        assert!(!LlmError::Unusable {
            provider: provider.clone(),
            reason: String::new()
        }
        .retry_helps());
        assert!(!LlmError::Refused {
            provider: provider.clone(),
            reason: String::new()
        }
        .retry_helps());
        assert!(!LlmError::OverBudget {
            provider,
            reason: String::new()
        }
        .retry_helps());
    }
}
