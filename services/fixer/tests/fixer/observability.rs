//! Every LLM call is a span with the OpenTelemetry GenAI attributes and its cost; prompt
//! and answer text are recorded only when `capture_content` is on, and then redacted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use dbtops_settings::LlmProviderKind;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::fake::{self, FakeLlm, Reply, API_KEY};
use crate::{draft, fixed_sql, incident, proposal, settings_with, MODEL_PATH};

/// A span's name and every field recorded on it.
type SeenSpan = (String, HashMap<String, String>);

/// Every span of this test binary: open ones by id, closed ones in order (ids are reused
/// after a span closes).
#[derive(Clone, Default)]
struct Recorder {
    open: Arc<Mutex<HashMap<u64, SeenSpan>>>,
    closed: Arc<Mutex<Vec<SeenSpan>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        attributes.record(&mut Fields(&mut fields));
        self.open.lock().unwrap().insert(
            id.into_u64(),
            (attributes.metadata().name().to_owned(), fields),
        );
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

/// The process-wide recorder. A global subscriber rather than a per-test `set_default`:
/// tracing caches per call site whether anyone listens, and a thread-local default races
/// with tests that run the same call sites on other threads.
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Recorder::default();
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(recorder.clone()),
        );
        recorder
    })
}

impl Recorder {
    /// Closed spans called `name` whose `key` field is `value`.
    fn named(&self, name: &str, key: &str, value: &str) -> Vec<HashMap<String, String>> {
        self.closed
            .lock()
            .unwrap()
            .iter()
            .filter(|(span, fields)| {
                span == name && fields.get(key).map(String::as_str) == Some(value)
            })
            .map(|(_, fields)| fields.clone())
            .collect()
    }
}

/// An incident whose error text carries secrets, as a careless log line might.
fn leaky_incident() -> dbtops_proto::v1::FailureDetected {
    let mut incident = incident();
    if let Some(error) = incident.error.as_mut() {
        error.message.push_str(&format!(
            "\n  connecting to postgres://loader:hunter2@db:5432/shop with api_key={API_KEY}"
        ));
    }
    incident
}

#[tokio::test]
async fn each_call_is_a_gen_ai_span_with_tokens_and_cost_and_no_content_by_default() {
    let recorder = recorder();
    let llm = FakeLlm::start(|_, _| {
        Reply::ok(fake::anthropic_tool_use(
            "toolu_1",
            "propose_fix",
            fake::fix(MODEL_PATH, &fixed_sql()),
            "tool_use",
        ))
    })
    .await;
    let mut provider = llm.provider("claude-spans", LlmProviderKind::Anthropic);
    provider.input_price_per_mtok = 3.0;
    provider.output_price_per_mtok = 15.0;
    let settings = settings_with(vec![provider]);
    proposal(draft(&settings, &leaky_incident()).await);

    let spans = recorder.named("gen_ai.chat", "dbtops.llm.provider", "claude-spans");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span["gen_ai.operation.name"], "chat");
    assert_eq!(span["gen_ai.provider.name"], "anthropic");
    assert_eq!(span["gen_ai.request.model"], "fake-model");
    assert_eq!(span["gen_ai.usage.input_tokens"], "1500");
    assert_eq!(span["gen_ai.usage.output_tokens"], "200");
    assert_eq!(span["gen_ai.usage.cost"], "0.0075");

    assert!(
        span["dbtops.prompt.templates"].contains("types@v1"),
        "{span:?}"
    );
    for content in [
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
    ] {
        assert!(
            !span.contains_key(content),
            "{content} recorded with capture_content off"
        );
    }
    // The API key never reaches the provider, even when the evidence carries it.
    assert!(!llm.requests()[0].raw.contains(API_KEY));
}

#[tokio::test]
async fn captured_content_is_redacted() {
    let recorder = recorder();
    let llm = FakeLlm::start(|_, _| {
        Reply::ok(fake::openai_text(
            &fake::fix(MODEL_PATH, &fixed_sql()).to_string(),
        ))
    })
    .await;
    let mut settings = settings_with(vec![llm.provider("openai-capture", LlmProviderKind::Openai)]);
    settings.fixer.capture_content = true;
    proposal(draft(&settings, &leaky_incident()).await);

    let spans = recorder.named("gen_ai.chat", "dbtops.llm.provider", "openai-capture");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    let input = &span["gen_ai.input.messages"];
    assert!(
        input.contains("Conversion Error"),
        "the prompt is recorded: {input}"
    );
    assert!(input.contains("[REDACTED]"), "{input}");
    for secret in ["hunter2", API_KEY] {
        assert!(!input.contains(secret), "{secret} recorded: {input}");
    }
    assert!(span["gen_ai.output.messages"].contains("try_cast"));
    assert!(span["gen_ai.system_instructions"].contains("never an instruction"));
}

#[tokio::test]
async fn agentic_tool_calls_are_spans_too() {
    let recorder = recorder();
    let llm = FakeLlm::start(|call, _| {
        if call == 1 {
            Reply::ok(fake::openai_tool_calls(&[(
                "c1-spans",
                "list_upstream_columns",
                serde_json::json!({"parent": ""}),
            )]))
        } else {
            Reply::ok(fake::openai_tool_calls(&[(
                "c2",
                "submit_fix",
                fake::fix(MODEL_PATH, &fixed_sql()),
            )]))
        }
    })
    .await;
    let mut provider = llm.provider("openai-agentic-spans", LlmProviderKind::Openai);
    provider.mode = dbtops_settings::LlmMode::Agentic;
    proposal(draft(&settings_with(vec![provider]), &incident()).await);
    let chats = recorder.named("gen_ai.chat", "dbtops.llm.provider", "openai-agentic-spans");
    assert_eq!(chats.len(), 2);
    let tools = recorder.named("gen_ai.execute_tool", "gen_ai.tool.call.id", "c1-spans");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["gen_ai.tool.name"], "list_upstream_columns");
    assert_eq!(tools[0]["gen_ai.operation.name"], "execute_tool");
}
