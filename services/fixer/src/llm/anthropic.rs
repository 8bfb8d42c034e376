//! The Anthropic Messages wire format (`POST {base_url}/v1/messages`, headers `x-api-key`
//! and `anthropic-version`).
//!
//! Single-shot: the answer is a forced tool call — `tools: [propose_fix]` with the
//! FixProposal schema as `input_schema` and `tool_choice: {type: tool, name: propose_fix}`
//! — read from the `tool_use` content block's `input`. Agentic: the evidence tools with
//! `tool_choice: {type: any}` (or the named `submit_fix` on the last turn); results go back
//! as `tool_result` blocks in a user message. `stop_reason` `max_tokens` (or
//! `model_context_window_exceeded`) means the answer was cut off, `refusal` that the model
//! declined.

use dbtops_settings::LlmProviderSettings;
use serde_json::{json, Value};

use super::{ChatRequest, ChatResponse, Finish, Message, Output, ToolCall, Usage, ANSWER_TOOL};

/// The `anthropic-version` header value.
pub const API_VERSION: &str = "2023-06-01";

/// The request body.
pub fn body(settings: &LlmProviderSettings, request: &ChatRequest<'_>) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|message| match message {
            Message::User(text) => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if let Some(text) = text {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    // `input` must be an object; a call we could not parse is replayed empty.
                    let input = call
                        .arguments()
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                json!({"role": "assistant", "content": blocks})
            }
            Message::ToolResults(results) => json!({
                "role": "user",
                "content": results
                    .iter()
                    .map(|result| {
                        json!({
                            "type": "tool_result",
                            "tool_use_id": result.call_id,
                            "content": result.content,
                            "is_error": result.is_error,
                        })
                    })
                    .collect::<Vec<_>>(),
            }),
        })
        .collect();
    let (tools, tool_choice) = match request.output {
        Output::Answer => (
            vec![json!({
                "name": ANSWER_TOOL,
                "description": "Submit the fix: the complete corrected content of the incident's model file.",
                "input_schema": request.answer_schema,
            })],
            json!({"type": "tool", "name": ANSWER_TOOL}),
        ),
        Output::Tools { force } => (
            request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect(),
            match force {
                Some(name) => json!({"type": "tool", "name": name}),
                None => json!({"type": "any"}),
            },
        ),
    };
    json!({
        "model": settings.model,
        "max_tokens": settings.max_output_tokens,
        "temperature": settings.temperature,
        "system": request.system,
        "messages": messages,
        "tools": tools,
        "tool_choice": tool_choice,
    })
}

/// Reads a Messages response.
pub fn parse(payload: &Value) -> Result<ChatResponse, String> {
    if payload.get("type").and_then(Value::as_str) == Some("error") {
        let message = payload
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(format!("error in a successful response: {message}"));
    }
    let count = |key: &str| {
        payload
            .pointer(&format!("/usage/{key}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let usage = Usage {
        input_tokens: count("input_tokens")
            + count("cache_creation_input_tokens")
            + count("cache_read_input_tokens"),
        output_tokens: count("output_tokens"),
    };
    let blocks = payload
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| "the answer has no content blocks".to_owned())?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(part) = block.get("text").and_then(Value::as_str) {
                    text.push_str(part);
                }
            }
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                raw_arguments: block
                    .get("input")
                    .cloned()
                    .unwrap_or(Value::Null)
                    .to_string(),
            }),
            // Thinking and other block types carry nothing we use.
            _ => {}
        }
    }
    let finish = match payload.get("stop_reason").and_then(Value::as_str) {
        Some(reason @ ("max_tokens" | "model_context_window_exceeded")) => {
            Finish::CutOff(format!("stop_reason: {reason}"))
        }
        Some("refusal") => Finish::Refusal(if text.is_empty() {
            "stop_reason: refusal".to_owned()
        } else {
            text.clone()
        }),
        Some("tool_use") => Finish::ToolUse,
        _ if !tool_calls.is_empty() => Finish::ToolUse,
        _ => Finish::Complete,
    };
    Ok(ChatResponse {
        text: Some(text).filter(|text| !text.trim().is_empty()),
        tool_calls,
        finish,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{answer_schema, ToolResult};

    #[test]
    fn single_shot_forces_the_answer_tool_with_the_schema() {
        let settings = LlmProviderSettings {
            model: "claude-x".into(),
            max_output_tokens: 1000,
            ..Default::default()
        };
        let messages = [Message::User("evidence".into())];
        let body = body(
            &settings,
            &ChatRequest {
                system: "sys",
                messages: &messages,
                tools: &[],
                output: Output::Answer,
                answer_schema: &answer_schema(),
            },
        );
        assert_eq!(body["system"], "sys");
        assert_eq!(body["max_tokens"], 1000);
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(body["tools"][0]["name"], ANSWER_TOOL);
        assert_eq!(body["tools"][0]["input_schema"], answer_schema());
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": ANSWER_TOOL})
        );
    }

    #[test]
    fn tool_use_and_results_round_trip() {
        let response = json!({
            "type": "message", "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "read_model_file", "input": {}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 5}
        });
        let parsed = parse(&response).unwrap();
        assert_eq!(parsed.finish, Finish::ToolUse);
        assert_eq!(
            parsed.usage,
            Usage {
                input_tokens: 105,
                output_tokens: 20
            }
        );
        assert_eq!(parsed.tool_calls[0].name, "read_model_file");
        let messages = [
            Message::User("task".into()),
            Message::Assistant {
                text: parsed.text.clone(),
                tool_calls: parsed.tool_calls.clone(),
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "toolu_1".into(),
                name: "read_model_file".into(),
                content: "select 1".into(),
                is_error: false,
            }]),
        ];
        let body = body(
            &LlmProviderSettings::default(),
            &ChatRequest {
                system: "s",
                messages: &messages,
                tools: &[],
                output: Output::Tools { force: None },
                answer_schema: &answer_schema(),
            },
        );
        assert_eq!(body["messages"][1]["content"][1]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][1]["input"], json!({}));
        assert_eq!(body["messages"][2]["content"][0]["tool_use_id"], "toolu_1");
        assert_eq!(body["tool_choice"], json!({"type": "any"}));
    }

    #[test]
    fn max_tokens_is_a_cut_off_and_refusal_a_refusal() {
        let cut = json!({"content": [{"type": "tool_use", "id": "t", "name": ANSWER_TOOL, "input": {}}], "stop_reason": "max_tokens"});
        assert!(matches!(parse(&cut).unwrap().finish, Finish::CutOff(_)));
        let refused = json!({"content": [], "stop_reason": "refusal"});
        assert!(matches!(
            parse(&refused).unwrap().finish,
            Finish::Refusal(_)
        ));
        assert!(parse(&json!({"type": "error", "error": {"message": "x"}})).is_err());
    }
}
