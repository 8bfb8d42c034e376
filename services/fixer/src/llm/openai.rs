//! The OpenAI chat-completions wire format (`POST {base_url}/chat/completions`), as spoken
//! by OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio and OpenRouter.
//!
//! Single-shot: `response_format: {type: json_schema, strict: true}` and the answer in
//! `message.content`. Agentic: `tools` (functions, strict) with `tool_choice` `required`
//! (or the named function on the last turn) and the calls in `message.tool_calls`; tool
//! results go back as `role: tool` messages. Never both at once: servers that see a
//! response format and tools enforce the format and drop the calls.

use dbtops_settings::LlmProviderSettings;
use serde_json::{json, Value};

use super::{ChatRequest, ChatResponse, Finish, Message, Output, ToolCall, Usage};

/// The request body.
pub fn body(settings: &LlmProviderSettings, request: &ChatRequest<'_>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for message in request.messages {
        match message {
            Message::User(text) => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, tool_calls } => {
                let mut turn = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    turn["tool_calls"] = tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.raw_arguments},
                            })
                        })
                        .collect();
                }
                messages.push(turn);
            }
            Message::ToolResults(results) => {
                for result in results {
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": result.call_id,
                        "content": result.content,
                    }));
                }
            }
        }
    }
    let mut body = json!({
        "model": settings.model,
        "temperature": settings.temperature,
        "max_tokens": settings.max_output_tokens,
        "messages": messages,
    });
    match request.output {
        Output::Answer => {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "fix_proposal", "strict": true, "schema": request.answer_schema},
            });
        }
        Output::Tools { force } => {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                            "strict": true,
                        },
                    })
                })
                .collect();
            body["tool_choice"] = match force {
                Some(name) => json!({"type": "function", "function": {"name": name}}),
                None => json!("required"),
            };
        }
    }
    body
}

/// Reads a chat completion.
pub fn parse(payload: &Value) -> Result<ChatResponse, String> {
    let usage = Usage {
        input_tokens: payload
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: payload
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    let choice = payload
        .pointer("/choices/0")
        .ok_or_else(|| "no choices in the answer".to_owned())?;
    let message = choice.get("message").cloned().unwrap_or(Value::Null);
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned);
    let tool_calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(index, call)| ToolCall {
                    id: call
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("call_{index}")),
                    name: call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    raw_arguments: match call.pointer("/function/arguments") {
                        Some(Value::String(raw)) => raw.clone(),
                        // Some local servers send the object itself.
                        Some(other) => other.to_string(),
                        None => "{}".to_owned(),
                    },
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let finish = if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
        Finish::Refusal(refusal.to_owned())
    } else {
        match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => Finish::CutOff("finish_reason: length".into()),
            Some("content_filter") => Finish::Refusal("finish_reason: content_filter".into()),
            _ if !tool_calls.is_empty() => Finish::ToolUse,
            _ => Finish::Complete,
        }
    };
    Ok(ChatResponse {
        text,
        tool_calls,
        finish,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{answer_schema, ToolResult, ToolSpec};

    #[test]
    fn single_shot_asks_for_the_strict_schema_and_offers_no_tools() {
        let settings = LlmProviderSettings {
            model: "m".into(),
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
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "evidence");
        assert_eq!(body["response_format"]["json_schema"]["strict"], true);
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn a_tool_loop_replays_calls_and_results_in_the_wire_shape() {
        let settings = LlmProviderSettings::default();
        let call = ToolCall {
            id: "call_1".into(),
            name: "read_model_file".into(),
            raw_arguments: "{}".into(),
        };
        let messages = [
            Message::User("task".into()),
            Message::Assistant {
                text: None,
                tool_calls: vec![call],
            },
            Message::ToolResults(vec![ToolResult {
                call_id: "call_1".into(),
                name: "read_model_file".into(),
                content: "select 1".into(),
                is_error: false,
            }]),
        ];
        let tools = [ToolSpec {
            name: "read_model_file",
            description: "d",
            parameters: json!({"type": "object"}),
        }];
        let body = body(
            &settings,
            &ChatRequest {
                system: "sys",
                messages: &messages,
                tools: &tools,
                output: Output::Tools {
                    force: Some("submit_fix"),
                },
                answer_schema: &answer_schema(),
            },
        );
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
        assert_eq!(body["messages"][3]["role"], "tool");
        assert_eq!(body["messages"][3]["tool_call_id"], "call_1");
        assert_eq!(body["tools"][0]["function"]["strict"], true);
        assert_eq!(body["tool_choice"]["function"]["name"], "submit_fix");
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn refusals_cut_offs_and_tool_calls_are_told_apart() {
        let refusal = json!({"choices": [{"finish_reason": "stop", "message": {"content": null, "refusal": "no"}}]});
        assert_eq!(
            parse(&refusal).unwrap().finish,
            Finish::Refusal("no".into())
        );
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "{\"a"}}]});
        assert!(matches!(parse(&cut).unwrap().finish, Finish::CutOff(_)));
        let calls = json!({
            "choices": [{"finish_reason": "tool_calls", "message": {"content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "list_upstream_columns", "arguments": "{\"parent\":\"x\"}"}}
            ]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2}
        });
        let parsed = parse(&calls).unwrap();
        assert_eq!(parsed.finish, Finish::ToolUse);
        assert_eq!(parsed.tool_calls[0].arguments().unwrap()["parent"], "x");
        assert_eq!(parsed.usage.total(), 12);
        assert!(parse(&json!({"choices": []})).is_err());
    }
}
