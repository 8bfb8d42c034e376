//! The conversation with one provider, in either mode, until it yields a proposal that
//! passes the checks or the attempt fails with the reason.
//!
//! - **single-shot**: the evidence inline, one call, the answer forced into the schema.
//! - **agentic**: the task and the error, tools that read the evidence, `submit_fix` to
//!   finish; at most `max_tool_turns` model turns, the last one forced to `submit_fix`.
//!
//! In both, an answer that does not parse is fed back once, and a proposal the checks
//! refuse is fed back once; a second failure of the same kind ends the attempt. Every
//! call is a `gen_ai.chat` span (OpenTelemetry GenAI conventions) with tokens and cost;
//! prompts and answers are recorded on it only when `capture_content` is on, redacted.

use dbtops_proto::v1;
use dbtops_settings::LlmMode;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::checks::{check_proposal_with_upstream, editable_ancestors, CheckPolicy, UpstreamEdit};
use crate::llm::{
    answer_from_value, answer_schema_for, parse_answer, ChatRequest, ChatResponse, Finish,
    LlmError, Message, ModelAnswer, Output, Provider, ToolResult, ToolSpec, ANSWER_TOOL,
};
use crate::prompt::{self, SystemPrompt};
use crate::redact;
use crate::tools::{self, EvidenceTools};
use crate::usage::{estimate_tokens, Budget, CallEstimate};

/// What the agent works from.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The incident and its evidence.
    pub incident: &'a v1::FailureDetected,
    /// Earlier attempts that failed validation.
    pub history: &'a [v1::AttemptRecord],
    /// The checks' limits.
    pub policy: &'a CheckPolicy,
    /// Record prompts and answers on spans (redacted).
    pub capture_content: bool,
    /// Values that must never be sent or recorded (the providers' API keys).
    pub secrets: &'a [String],
}

/// A proposal that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The model's answer.
    pub answer: ModelAnswer,
    /// The prompt templates used, `system@v2+single_shot@v1+missing_column@v1`.
    pub templates: String,
}

/// Asks `provider` for a checked proposal, within `budget`.
pub async fn ask(
    provider: &Provider,
    context: &Context<'_>,
    budget: &mut Budget,
) -> Result<Answered, LlmError> {
    let class = context
        .incident
        .error
        .as_ref()
        .map(|error| error.class())
        .unwrap_or_default();
    let system = prompt::system_prompt(class, provider.mode());
    let answer = match provider.mode() {
        LlmMode::SingleShot => single_shot(provider, context, budget, &system).await?,
        LlmMode::Agentic => agentic(provider, context, budget, &system).await?,
    };
    Ok(Answered {
        answer,
        templates: system.templates,
    })
}

/// Why an answer could not be used, and so which second chance it gets.
enum Problem {
    /// It did not parse into the schema.
    Parse(String),
    /// It parsed, and a check refused it.
    Check(String),
}

/// The one second chance of each kind.
struct Feedback {
    /// Parse failures that may still be fed back.
    parse_left: u8,
    /// Check refusals that may still be fed back.
    check_left: u8,
}

impl Feedback {
    fn new() -> Self {
        Self {
            parse_left: 1,
            check_left: 1,
        }
    }

    /// Uses up the second chance for `problem`, or ends the attempt with it.
    fn allow(&mut self, problem: &Problem, provider: &Provider) -> Result<String, LlmError> {
        match problem {
            Problem::Parse(reason) if self.parse_left > 0 => {
                self.parse_left -= 1;
                Ok(format!(
                    "Your answer could not be used: {reason}. Answer again in the FixProposal schema."
                ))
            }
            Problem::Check(reason) if self.check_left > 0 => {
                self.check_left -= 1;
                Ok(format!(
                    "Your proposal was refused: {reason}. Send a corrected proposal for the same model."
                ))
            }
            Problem::Parse(reason) => Err(LlmError::Unusable {
                provider: provider.name().to_owned(),
                reason: format!("{reason} (again, after the error was fed back)"),
            }),
            Problem::Check(reason) => Err(LlmError::Refused {
                provider: provider.name().to_owned(),
                reason: format!("{reason} (again, after the refusal was fed back)"),
            }),
        }
    }
}

fn check(answer: &ModelAnswer, context: &Context<'_>) -> Result<(), String> {
    let upstream: Vec<UpstreamEdit<'_>> = answer
        .upstream_edits
        .iter()
        .map(|edit| (edit.path.as_str(), edit.fixed_sql.as_str()))
        .collect();
    check_proposal_with_upstream(
        &answer.model_path,
        &answer.fixed_sql,
        &upstream,
        context.incident,
        context.history,
        context.policy,
    )
}

/// The answer's schema for this incident: with `upstream_edits` only when lineage fixes
/// are enabled and the evidence lists ancestors.
fn schema_for(context: &Context<'_>) -> Value {
    let paths: Vec<String> = editable_ancestors(context.incident, context.policy)
        .iter()
        .map(|ancestor| ancestor.path.clone())
        .collect();
    answer_schema_for(&paths)
}

/// A refused or cut-off answer ends the attempt: asking the same again costs the same
/// and ends the same way.
fn usable(response: &ChatResponse, provider: &Provider) -> Result<(), LlmError> {
    let unusable = |reason: String| LlmError::Unusable {
        provider: provider.name().to_owned(),
        reason,
    };
    match &response.finish {
        Finish::Refusal(why) => Err(unusable(format!("the model refused: {why}"))),
        Finish::CutOff(why) => Err(unusable(format!(
            "the answer was cut off ({why}); raise max_output_tokens"
        ))),
        Finish::Complete | Finish::ToolUse => Ok(()),
    }
}

async fn single_shot(
    provider: &Provider,
    context: &Context<'_>,
    budget: &mut Budget,
    system: &SystemPrompt,
) -> Result<ModelAnswer, LlmError> {
    let ancestors = editable_ancestors(context.incident, context.policy);
    let evidence = prompt::render_evidence_with(context.incident, context.history, ancestors);
    let mut messages = vec![Message::User(redact::scrub_known(
        &evidence,
        context.secrets,
    ))];
    let mut feedback = Feedback::new();
    loop {
        let response = call(
            provider,
            context,
            budget,
            system,
            &messages,
            &[],
            Output::Answer,
        )
        .await?;
        usable(&response, provider)?;
        // Anthropic answers through the forced tool, OpenAI-compatible servers in text.
        let answer_call = response
            .tool_calls
            .iter()
            .find(|call| call.name == ANSWER_TOOL);
        let parsed = match (answer_call, response.text.as_deref()) {
            (Some(call), _) => call.arguments().and_then(|value| answer_from_value(&value)),
            (None, Some(text)) => parse_answer(text),
            (None, None) => Err("the answer is empty".to_owned()),
        };
        let problem = match parsed {
            Ok(answer) => match check(&answer, context) {
                Ok(()) => return Ok(answer),
                Err(refusal) => Problem::Check(refusal),
            },
            Err(error) => Problem::Parse(error),
        };
        let told = feedback.allow(&problem, provider)?;
        messages.push(Message::Assistant {
            text: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
        });
        // Every tool_use must be answered by a tool_result (Anthropic's rule).
        if response.tool_calls.is_empty() {
            messages.push(Message::User(told));
        } else {
            messages.push(Message::ToolResults(
                response
                    .tool_calls
                    .iter()
                    .map(|call| ToolResult {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        content: told.clone(),
                        is_error: true,
                    })
                    .collect(),
            ));
        }
    }
}

async fn agentic(
    provider: &Provider,
    context: &Context<'_>,
    budget: &mut Budget,
    system: &SystemPrompt,
) -> Result<ModelAnswer, LlmError> {
    let schema = schema_for(context);
    let specs = tools::specs_with(
        &schema,
        !editable_ancestors(context.incident, context.policy).is_empty(),
    );
    let mut evidence_tools = EvidenceTools::new(context.incident);
    let ancestors = editable_ancestors(context.incident, context.policy);
    let task = prompt::render_task_with(context.incident, context.history, ancestors);
    let mut messages = vec![Message::User(redact::scrub_known(&task, context.secrets))];
    let mut feedback = Feedback::new();
    let turns = provider.settings().max_tool_turns.max(1);
    for turn in 1..=turns {
        // The last turn may only submit: a model that keeps reading must answer now.
        let force = (turn == turns).then_some(tools::SUBMIT_FIX);
        let response = call(
            provider,
            context,
            budget,
            system,
            &messages,
            &specs,
            Output::Tools { force },
        )
        .await?;
        usable(&response, provider)?;
        if response.tool_calls.is_empty() {
            // Small models often answer with the JSON as text instead of calling a tool.
            let problem = match response.text.as_deref().map(parse_answer) {
                Some(Ok(answer)) => match check(&answer, context) {
                    Ok(()) => return Ok(answer),
                    Err(refusal) => Problem::Check(refusal),
                },
                _ => Problem::Parse(format!(
                    "no tool was called; call {}, {}, {} or {}",
                    tools::READ_MODEL_FILE,
                    tools::LIST_UPSTREAM_COLUMNS,
                    tools::READ_SOURCE_DEFINITIONS,
                    tools::SUBMIT_FIX
                )),
            };
            let told = feedback.allow(&problem, provider)?;
            messages.push(Message::Assistant {
                text: response.text.clone(),
                tool_calls: Vec::new(),
            });
            messages.push(Message::User(told));
            continue;
        }
        messages.push(Message::Assistant {
            text: response.text.clone(),
            tool_calls: response.tool_calls.clone(),
        });
        let mut results = Vec::with_capacity(response.tool_calls.len());
        for tool_call in &response.tool_calls {
            if tool_call.name == tools::SUBMIT_FIX {
                let problem = match tool_call
                    .arguments()
                    .and_then(|value| answer_from_value(&value))
                {
                    Ok(answer) => match check(&answer, context) {
                        Ok(()) => return Ok(answer),
                        Err(refusal) => Problem::Check(refusal),
                    },
                    Err(error) => Problem::Parse(error),
                };
                results.push(ToolResult {
                    call_id: tool_call.id.clone(),
                    name: tool_call.name.clone(),
                    content: feedback.allow(&problem, provider)?,
                    is_error: true,
                });
            } else {
                let span = tracing::info_span!(
                    "gen_ai.execute_tool",
                    otel.name = %format!("execute_tool {}", tool_call.name),
                    gen_ai.operation.name = "execute_tool",
                    gen_ai.tool.name = %tool_call.name,
                    gen_ai.tool.call.id = %tool_call.id,
                );
                let mut result = span.in_scope(|| evidence_tools.run(tool_call));
                result.content = redact::scrub_known(&result.content, context.secrets);
                results.push(result);
            }
        }
        messages.push(Message::ToolResults(results));
    }
    Err(LlmError::Unusable {
        provider: provider.name().to_owned(),
        reason: format!("no acceptable fix submitted within {turns} model turns (max_tool_turns)"),
    })
}

/// One model call: checked against the budget, sent with retries, recorded on a span.
async fn call(
    provider: &Provider,
    context: &Context<'_>,
    budget: &mut Budget,
    system: &SystemPrompt,
    messages: &[Message],
    tools: &[ToolSpec],
    output: Output,
) -> Result<ChatResponse, LlmError> {
    let schema = schema_for(context);
    let request = ChatRequest {
        system: &system.text,
        messages,
        tools,
        output,
        answer_schema: &schema,
    };
    let body = provider.body(&request);
    let settings = provider.settings();
    let estimate = CallEstimate {
        input_tokens: estimate_tokens(body.to_string().len()),
        max_output_tokens: u64::from(settings.max_output_tokens),
        input_price_per_mtok: settings.input_price_per_mtok,
        output_price_per_mtok: settings.output_price_per_mtok,
    };
    budget
        .admit(&estimate)
        .map_err(|reason| LlmError::OverBudget {
            provider: provider.name().to_owned(),
            reason,
        })?;
    let span = tracing::info_span!(
        "gen_ai.chat",
        otel.name = %format!("chat {}", provider.model()),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider.system_name(),
        gen_ai.request.model = provider.model(),
        gen_ai.request.max_tokens = settings.max_output_tokens,
        gen_ai.request.temperature = settings.temperature,
        dbtops.llm.provider = provider.name(),
        dbtops.llm.mode = ?provider.mode(),
        dbtops.prompt.templates = %system.templates,
        dbtops.llm.estimated_input_tokens = estimate.input_tokens,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cost = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        http.request.resend_count = tracing::field::Empty,
        error.type = tracing::field::Empty,
        gen_ai.system_instructions = tracing::field::Empty,
        gen_ai.input.messages = tracing::field::Empty,
        gen_ai.output.messages = tracing::field::Empty,
    );
    let mut secrets = context.secrets.to_vec();
    secrets.push(provider.api_key().to_owned());
    if context.capture_content {
        let input = body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default();
        span.record(
            "gen_ai.system_instructions",
            redact::redact(&system.text, &secrets).as_str(),
        );
        span.record(
            "gen_ai.input.messages",
            redact::redact(&input, &secrets).as_str(),
        );
    }
    match provider.send(&body).instrument(span.clone()).await {
        Ok((response, resent)) => {
            let cost = provider.cost_usd(response.usage);
            budget.record(response.usage, cost);
            span.record("gen_ai.usage.input_tokens", response.usage.input_tokens);
            span.record("gen_ai.usage.output_tokens", response.usage.output_tokens);
            span.record("gen_ai.usage.cost", cost);
            span.record("http.request.resend_count", resent);
            span.record(
                "gen_ai.response.finish_reasons",
                format!("{:?}", response.finish).as_str(),
            );
            if context.capture_content {
                let output = json!({
                    "text": response.text,
                    "tool_calls": response
                        .tool_calls
                        .iter()
                        .map(|call| json!({"name": call.name, "arguments": call.raw_arguments}))
                        .collect::<Vec<_>>(),
                });
                span.record(
                    "gen_ai.output.messages",
                    redact::redact(&output.to_string(), &secrets).as_str(),
                );
            }
            Ok(response)
        }
        Err(error) => {
            let kind = match &error {
                LlmError::Unavailable { .. } => "unavailable",
                LlmError::Unusable { .. } => "unusable",
                LlmError::Refused { .. } => "refused",
                LlmError::OverBudget { .. } => "over_budget",
                LlmError::Setup { .. } => "setup",
            };
            span.record("error.type", kind);
            Err(error)
        }
    }
}
