//! Agentic mode: the tool loop in both wire formats, the evidence tools, the turn cap and
//! the same checks on the submitted fix.

use dbtops_settings::{LlmMode, LlmProviderKind};
use serde_json::{json, Value};

use crate::fake::{self, FakeLlm, Reply};
use crate::{draft, fixed_sql, incident, nothing, proposal, settings_with, MODEL_PATH};

fn tool_names(body: &Value, key: &str) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| {
            tool.pointer(key)
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_openai_model_reads_the_evidence_through_tools_then_submits() {
    let llm = FakeLlm::start(|call, _| match call {
        1 => Reply::ok(fake::openai_tool_calls(&[(
            "call_1",
            "read_model_file",
            json!({}),
        )])),
        2 => Reply::ok(fake::openai_tool_calls(&[
            (
                "call_2",
                "list_upstream_columns",
                json!({"parent": "stg_orders"}),
            ),
            ("call_3", "read_source_definitions", json!({})),
        ])),
        _ => Reply::ok(fake::openai_tool_calls(&[(
            "call_4",
            "submit_fix",
            fake::fix(MODEL_PATH, &fixed_sql()),
        )])),
    })
    .await;
    let mut provider = llm.provider("openai", LlmProviderKind::Openai);
    provider.mode = LlmMode::Agentic;
    let settings = settings_with(vec![provider]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert_eq!(proposal.fixed_sql, fixed_sql());
    assert!(
        proposal.explanation.contains("in 3 call(s)"),
        "{}",
        proposal.explanation
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0].body;
    assert_eq!(
        tool_names(first, "/function/name"),
        [
            "read_model_file",
            "list_upstream_columns",
            "read_source_definitions",
            "submit_fix"
        ]
    );
    assert!(first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .all(|tool| tool["function"]["strict"] == true));
    assert_eq!(first["tool_choice"], "required");
    assert!(
        first.get("response_format").is_none(),
        "a response format would suppress tool calls"
    );
    let task = first["messages"][1]["content"].as_str().unwrap();
    assert!(
        !task.contains("cast(amount as integer)"),
        "the evidence comes through tools: {task}"
    );
    assert!(first["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("submit_fix"));

    let second = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(
        second[2]["tool_calls"][0]["function"]["name"],
        "read_model_file"
    );
    assert_eq!(second[3]["role"], "tool");
    assert_eq!(second[3]["tool_call_id"], "call_1");
    assert!(second[3]["content"]
        .as_str()
        .unwrap()
        .contains("cast(amount as integer)"));
    let third = requests[2].body["messages"].as_array().unwrap().clone();
    let columns = third[5]["content"].as_str().unwrap();
    assert!(
        columns.contains("stg_orders: order_id, customer_id, amount, status"),
        "{columns}"
    );
    assert!(third[6]["content"]
        .as_str()
        .unwrap()
        .contains("source('shop', 'raw_orders')"));
}

#[tokio::test]
async fn an_anthropic_model_gets_tool_results_and_the_last_turn_forces_submit_fix() {
    let llm = FakeLlm::start(|call, request| {
        let forced = request.body["tool_choice"]["type"] == "tool";
        if forced {
            Reply::ok(fake::anthropic_tool_use(
                "toolu_9",
                "submit_fix",
                fake::fix(MODEL_PATH, &fixed_sql()),
                "tool_use",
            ))
        } else {
            Reply::ok(fake::anthropic_tool_use(
                &format!("toolu_{call}"),
                "read_model_file",
                json!({}),
                "tool_use",
            ))
        }
    })
    .await;
    let mut provider = llm.provider("claude", LlmProviderKind::Anthropic);
    provider.mode = LlmMode::Agentic;
    provider.max_tool_turns = 3;
    let settings = settings_with(vec![provider]);
    proposal(draft(&settings, &incident()).await);

    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].body["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        tool_names(&requests[0].body, "/name"),
        [
            "read_model_file",
            "list_upstream_columns",
            "read_source_definitions",
            "submit_fix"
        ]
    );
    assert_eq!(
        requests[0].body["tools"][3]["input_schema"],
        dbtops_fixer::llm::answer_schema()
    );
    assert_eq!(
        requests[2].body["tool_choice"],
        json!({"type": "tool", "name": "submit_fix"})
    );
    let messages = requests[2].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 5, "task, (tool_use, tool_result) × 2");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][0]["tool_use_id"], "toolu_1");
    assert_eq!(messages[2]["content"][0]["is_error"], false);
    let repeated = messages[4]["content"][0]["content"].as_str().unwrap();
    assert!(repeated.contains("asked this before"), "{repeated}");
}

#[tokio::test]
async fn a_refused_submission_is_returned_as_a_tool_error_once_then_the_attempt_fails() {
    let llm = FakeLlm::start(|call, _| {
        Reply::ok(fake::openai_tool_calls(&[(
            &format!("call_{call}"),
            "submit_fix",
            fake::fix(
                MODEL_PATH,
                &format!("{}\n;grant all on orders to public", fixed_sql()),
            ),
        )]))
    })
    .await;
    let mut provider = llm.provider("openai", LlmProviderKind::Openai);
    provider.mode = LlmMode::Agentic;
    let settings = settings_with(vec![provider]);
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "guardrail");
    assert!(detail.contains("grant"), "{detail}");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let result = &requests[1].body["messages"][3];
    assert_eq!(result["role"], "tool");
    assert!(
        result["content"].as_str().unwrap().contains("was refused"),
        "{result}"
    );
}

#[tokio::test]
async fn a_model_that_never_submits_stops_at_the_turn_cap() {
    let llm = FakeLlm::start(|call, _| {
        Reply::ok(fake::openai_tool_calls(&[(
            &format!("call_{call}"),
            "read_model_file",
            json!({}),
        )]))
    })
    .await;
    let mut provider = llm.provider("openai", LlmProviderKind::Openai);
    provider.mode = LlmMode::Agentic;
    provider.max_tool_turns = 4;
    let settings = settings_with(vec![provider]);
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "no_fix_found");
    assert!(detail.contains("within 4 model turns"), "{detail}");
    assert_eq!(llm.requests().len(), 4);
}

#[tokio::test]
async fn a_small_model_answering_in_text_is_taken_at_its_word() {
    let llm = FakeLlm::start(|_, _| {
        Reply::ok(fake::openai_text(&format!(
            "```json\n{}\n```",
            fake::fix(MODEL_PATH, &fixed_sql())
        )))
    })
    .await;
    let mut provider = llm.provider("local", LlmProviderKind::Openai);
    provider.mode = LlmMode::Agentic;
    let settings = settings_with(vec![provider]);
    assert_eq!(
        proposal(draft(&settings, &incident()).await).fixed_sql,
        fixed_sql()
    );
    assert_eq!(llm.requests().len(), 1);
}
