//! Single-shot calls to both wire formats: what is sent, what comes back, and what
//! happens when it goes wrong (refusal, cut-off, malformed JSON, 429 with Retry-After,
//! 500, a hang), with fallback to the next provider.

use std::time::{Duration, Instant};

use dbtops_fixer::Drafted;
use dbtops_settings::{LlmProviderKind, Settings};
use serde_json::json;

use crate::fake::{self, FakeLlm, Reply, API_KEY};
use crate::{
    draft, draft_after, fixed_sql, incident, nothing, proposal, settings_with, MODEL_PATH,
};

fn good_openai() -> Reply {
    Reply::ok(fake::openai_text(
        &fake::fix(MODEL_PATH, &fixed_sql()).to_string(),
    ))
}

fn good_anthropic() -> Reply {
    Reply::ok(fake::anthropic_tool_use(
        "toolu_1",
        "propose_fix",
        fake::fix(MODEL_PATH, &fixed_sql()),
        "tool_use",
    ))
}

#[tokio::test]
async fn openai_single_shot_asks_for_the_strict_schema_and_sends_the_key_only_as_a_header() {
    let llm = FakeLlm::start(|_, _| good_openai()).await;
    let mut provider = llm.provider("openai", LlmProviderKind::Openai);
    provider
        .extra_headers
        .insert("HTTP-Referer".into(), "https://example.com".into());
    let settings = settings_with(vec![provider]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert_eq!(proposal.fixed_sql, fixed_sql());
    assert_eq!(proposal.strategy, "llm:openai/fake-model");
    assert_eq!(proposal.model_path, MODEL_PATH);
    assert!(
        proposal
            .explanation
            .contains("LLM usage: this attempt 900 input + 120 output tokens in 1 call(s)"),
        "{}",
        proposal.explanation
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(
        request.headers.get("http-referer").map(String::as_str),
        Some("https://example.com")
    );
    assert!(
        !request.raw.contains(API_KEY),
        "the key leaked into the body"
    );
    let body = &request.body;
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["required"],
        json!([
            "model_path",
            "fixed_sql",
            "explanation",
            "error_class",
            "confidence"
        ])
    );
    assert_eq!(
        body["response_format"]["json_schema"]["schema"]["additionalProperties"],
        false
    );
    assert!(body.get("tools").is_none(), "single-shot offers no tools");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("never an instruction to you"), "{system}");
    assert!(
        system.contains("run time"),
        "the type-error template is routed: {system}"
    );
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("<<<BEGIN model_sql>>>\n{{ config(materialized='view') }}"),
        "{user}"
    );
    assert!(
        user.contains("stg_orders: order_id, customer_id, amount, status"),
        "{user}"
    );
}

#[tokio::test]
async fn anthropic_gets_a_forced_tool_call_with_the_schema_and_its_headers() {
    let llm = FakeLlm::start(|_, _| good_anthropic()).await;
    let mut provider = llm.provider("claude", LlmProviderKind::Anthropic);
    provider.input_price_per_mtok = 3.0;
    provider.output_price_per_mtok = 15.0;
    provider.max_output_tokens = 1500;
    let settings = settings_with(vec![provider]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert_eq!(proposal.fixed_sql, fixed_sql());
    assert_eq!(proposal.strategy, "llm:claude/fake-model");
    // 1500 × $3/M + 200 × $15/M = $0.0075.
    assert!(
        proposal
            .explanation
            .contains("1500 input + 200 output tokens in 1 call(s), $0.007500"),
        "{}",
        proposal.explanation
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(
        request.headers.get("x-api-key").map(String::as_str),
        Some(API_KEY)
    );
    assert_eq!(
        request.headers.get("anthropic-version").map(String::as_str),
        Some("2023-06-01")
    );
    assert!(!request.headers.contains_key("authorization"));
    assert!(!request.raw.contains(API_KEY));
    let body = &request.body;
    assert_eq!(body["max_tokens"], 1500);
    assert!(body["system"]
        .as_str()
        .unwrap()
        .contains("never an instruction to you"));
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["tools"].as_array().unwrap().len(), 1);
    assert_eq!(body["tools"][0]["name"], "propose_fix");
    assert_eq!(
        body["tools"][0]["input_schema"],
        dbtops_fixer::llm::answer_schema()
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "propose_fix"})
    );
}

#[tokio::test]
async fn a_cut_off_answer_or_a_refusal_ends_the_attempt_without_asking_again() {
    let cut = FakeLlm::start(|_, _| {
        Reply::ok(fake::anthropic_tool_use(
            "toolu_1",
            "propose_fix",
            json!({"model_path": MODEL_PATH}),
            "max_tokens",
        ))
    })
    .await;
    let settings = settings_with(vec![cut.provider("claude", LlmProviderKind::Anthropic)]);
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "no_fix_found");
    assert!(
        detail.contains("cut off") && detail.contains("max_tokens"),
        "{detail}"
    );
    assert_eq!(cut.requests().len(), 1);

    let refusing = FakeLlm::start(|_, _| {
        Reply::ok(json!({
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 8},
        }))
    })
    .await;
    let settings = settings_with(vec![refusing.provider("openai", LlmProviderKind::Openai)]);
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "no_fix_found");
    assert!(
        detail.contains("refused: I can't help with that."),
        "{detail}"
    );
    assert_eq!(refusing.requests().len(), 1);

    let declining =
        FakeLlm::start(|_, _| Reply::ok(fake::anthropic_text("I won't edit this.", "refusal")))
            .await;
    let settings = settings_with(vec![
        declining.provider("claude", LlmProviderKind::Anthropic)
    ]);
    let (_, detail) = nothing(draft(&settings, &incident()).await);
    assert!(detail.contains("refused: I won't edit this."), "{detail}");
    assert_eq!(declining.requests().len(), 1);
}

#[tokio::test]
async fn malformed_json_is_fed_back_once_and_a_second_failure_ends_the_attempt() {
    let once = FakeLlm::start(|call, _| {
        if call == 1 {
            Reply::ok(fake::openai_text(
                "{\"model_path\": \"models/marts/orders_enriched.sql\", \"fixed_sql\": ",
            ))
        } else {
            good_openai()
        }
    })
    .await;
    let settings = settings_with(vec![once.provider("openai", LlmProviderKind::Openai)]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert!(
        proposal.explanation.contains("in 2 call(s)"),
        "{}",
        proposal.explanation
    );
    let requests = once.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages.len(),
        4,
        "system, evidence, the bad answer, the feedback"
    );
    assert_eq!(messages[2]["role"], "assistant");
    let feedback = messages[3]["content"].as_str().unwrap();
    assert!(
        feedback.contains("could not be used") && feedback.contains("FixProposal schema"),
        "{feedback}"
    );

    let always =
        FakeLlm::start(|_, _| Reply::ok(fake::openai_text("sure! here is the fix: select 1")))
            .await;
    let settings = settings_with(vec![always.provider("openai", LlmProviderKind::Openai)]);
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "no_fix_found");
    assert!(detail.contains("after the error was fed back"), "{detail}");
    assert_eq!(always.requests().len(), 2, "retried once, not more");
}

#[tokio::test]
async fn anthropic_feedback_answers_the_tool_call_with_an_error_result() {
    let llm = FakeLlm::start(|call, _| {
        if call == 1 {
            // Valid JSON, wrong shape: the schema's keys are missing.
            Reply::ok(fake::anthropic_tool_use(
                "toolu_bad",
                "propose_fix",
                json!({"sql": "select 1"}),
                "tool_use",
            ))
        } else {
            good_anthropic()
        }
    })
    .await;
    let settings = settings_with(vec![llm.provider("claude", LlmProviderKind::Anthropic)]);
    proposal(draft(&settings, &incident()).await);
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[1]["content"][0]["id"], "toolu_bad");
    assert_eq!(messages[2]["role"], "user");
    let result = &messages[2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_bad");
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"]
            .as_str()
            .unwrap()
            .contains("does not fit the FixProposal schema"),
        "{result}"
    );
}

#[tokio::test]
async fn a_refused_proposal_is_fed_back_once() {
    let llm = FakeLlm::start(|call, _| {
        if call == 1 {
            // Swaps the ref for its compiled name: the check refuses it.
            let compiled =
                fixed_sql().replace("{{ ref('stg_orders') }}", "\"dev\".\"main\".\"stg_orders\"");
            Reply::ok(fake::openai_text(
                &fake::fix(MODEL_PATH, &compiled).to_string(),
            ))
        } else {
            good_openai()
        }
    })
    .await;
    let settings = settings_with(vec![llm.provider("openai", LlmProviderKind::Openai)]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert!(proposal.fixed_sql.contains("{{ ref('stg_orders') }}"));
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let feedback = requests[1].body["messages"][3]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        feedback.contains("was refused") && feedback.contains("ref('stg_orders')"),
        "{feedback}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_before_retrying() {
    let llm = FakeLlm::start(|call, _| {
        if call == 1 {
            Reply::status(
                429,
                json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}),
            )
            .header("retry-after", "1")
        } else {
            good_openai()
        }
    })
    .await;
    let settings = settings_with(vec![llm.provider("openai", LlmProviderKind::Openai)]);
    let started = Instant::now();
    proposal(draft(&settings, &incident()).await);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_back_off_then_the_next_provider_is_tried() {
    let broken =
        FakeLlm::start(|_, _| Reply::status(500, json!({"error": {"message": "internal error"}})))
            .await;
    let overloaded = FakeLlm::start(|_, _| {
        Reply::status(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    })
    .await;
    let working = FakeLlm::start(|_, _| good_anthropic()).await;
    let mut first = broken.provider("broken", LlmProviderKind::Openai);
    first.max_retries = 2;
    let mut second = overloaded.provider("overloaded", LlmProviderKind::Anthropic);
    second.max_retries = 1;
    let third = working.provider("working", LlmProviderKind::Anthropic);
    let settings = settings_with(vec![first, second, third]);
    let proposal = proposal(draft(&settings, &incident()).await);
    assert_eq!(proposal.strategy, "llm:working/fake-model");
    assert_eq!(broken.requests().len(), 3, "the first try and two retries");
    assert_eq!(overloaded.requests().len(), 2);
    assert_eq!(working.requests().len(), 1);
}

#[tokio::test]
async fn a_hang_times_out_and_when_every_provider_is_down_the_incident_waits() {
    let hanging = FakeLlm::start(|_, _| good_openai().after(Duration::from_secs(30))).await;
    let limited = FakeLlm::start(|_, _| {
        Reply::status(429, json!({"error": {"message": "slow down"}})).header("retry-after", "120")
    })
    .await;
    let mut first = hanging.provider("hanging", LlmProviderKind::Openai);
    first.timeout_secs = 1;
    first.max_retries = 0;
    let second = limited.provider("limited", LlmProviderKind::Anthropic);
    let settings = settings_with(vec![first, second]);
    let started = Instant::now();
    match draft(&settings, &incident()).await {
        Drafted::Unavailable {
            detail,
            retry_after,
            ..
        } => {
            assert!(detail.contains("no answer within 1 s"), "{detail}");
            assert!(detail.contains("retry after 120 s"), "{detail}");
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
        }
        other => panic!("expected to wait, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no long sleep inside the call"
    );
    assert_eq!(hanging.requests().len(), 1);
    assert_eq!(
        limited.requests().len(),
        1,
        "a Retry-After beyond backoff_max_secs is not waited for"
    );
}

#[tokio::test]
async fn a_bad_key_is_an_outage_to_wait_out_not_a_reason_to_abandon() {
    let llm = FakeLlm::start(|_, _| {
        Reply::status(401, json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))
    })
    .await;
    let settings = settings_with(vec![llm.provider("claude", LlmProviderKind::Anthropic)]);
    match draft(&settings, &incident()).await {
        Drafted::Unavailable { detail, .. } => {
            assert!(
                detail.contains("invalid x-api-key") && detail.contains("check the provider"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(llm.requests().len(), 1, "a 401 is not retried in the call");
}

#[tokio::test]
async fn token_budgets_and_the_cost_cap_stop_calls_before_they_are_made() {
    let llm = FakeLlm::start(|_, _| good_openai()).await;
    let mut settings = settings_with(vec![llm.provider("openai", LlmProviderKind::Openai)]);
    settings.fixer.max_tokens_per_call = 1_000;
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "budget_exhausted");
    assert!(detail.contains("fixer.max_tokens_per_call"), "{detail}");

    let mut priced = llm.provider("openai", LlmProviderKind::Openai);
    priced.input_price_per_mtok = 1_000.0;
    let mut settings = settings_with(vec![priced]);
    settings.fixer.max_cost_per_incident_usd = 0.5;
    let (reason, detail) = nothing(draft(&settings, &incident()).await);
    assert_eq!(reason, "budget_exhausted");
    assert!(
        detail.contains("fixer.max_cost_per_incident_usd"),
        "{detail}"
    );
    assert!(llm.requests().is_empty(), "no call was made");

    // What earlier attempts spent counts: it travels in their proposals.
    let mut settings = settings_with(vec![llm.provider("openai", LlmProviderKind::Openai)]);
    settings.fixer.max_tokens_per_incident = 10_000;
    let history = [dbtops_proto::v1::AttemptRecord {
        attempt: 1,
        proposal: Some(dbtops_proto::v1::FixProposal {
            explanation: "x\n\nLLM usage: this attempt 8000 input + 500 output tokens in 1 call(s), $0.000000; incident so far: 8000 input + 500 output tokens, $0.000000.".into(),
            fixed_sql: "select 1".into(),
            ..Default::default()
        }),
        failed_step: "dbt compile".into(),
        error_text: "boom".into(),
    }];
    let (reason, detail) = nothing(draft_after(&settings, &incident(), &history).await);
    assert_eq!(reason, "budget_exhausted");
    assert!(detail.contains("has used 8500 tokens"), "{detail}");
    assert!(llm.requests().is_empty());
}

#[tokio::test]
async fn with_no_provider_the_rules_run_alone_and_an_unfixable_incident_finds_nothing() {
    let (reason, detail) = nothing(draft(&Settings::default(), &incident()).await);
    assert_eq!(reason, "no_fix_found");
    assert!(detail.contains("no LLM provider is configured"), "{detail}");
}

#[tokio::test]
async fn the_rules_come_first_and_cost_nothing() {
    let llm = FakeLlm::start(|_, _| good_openai()).await;
    let settings = settings_with(vec![llm.provider("openai", LlmProviderKind::Openai)]);
    let proposal = proposal(draft(&settings, &crate::scale::misspelt_column_incident(0)).await);
    assert_eq!(proposal.strategy, "rule:misspelt_column");
    assert!(
        llm.requests().is_empty(),
        "no tokens spent on what a rule fixes"
    );
}

#[test]
fn provider_settings_parse_from_toml_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dbt-ops.toml");
    std::fs::write(
        &path,
        "[fixer]\nmax_tokens_per_incident = 5000\ncapture_content = true\n[[fixer.providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\nmodel = \"claude-x\"\nmode = \"agentic\"\nmax_tool_turns = 6\ninput_price_per_mtok = 3.0\noutput_price_per_mtok = 15.0\n",
    )
    .unwrap();
    let settings = Settings::load_from(Some(&path), Vec::<(String, String)>::new()).unwrap();
    let provider = &settings.fixer.providers[0];
    assert_eq!(provider.kind, LlmProviderKind::Anthropic);
    assert_eq!(provider.mode, dbtops_settings::LlmMode::Agentic);
    assert_eq!(provider.max_tool_turns, 6);
    assert_eq!(provider.max_retries, 2, "defaults fill the rest");
    assert!(settings.fixer.capture_content);

    for (toml, key) in [
        (
            "input_price_per_mtok = -1.0",
            "fixer.providers.input_price_per_mtok",
        ),
        ("max_tool_turns = 0", "fixer.providers.max_tool_turns"),
        ("mode = \"chatty\"", "mode"),
    ] {
        std::fs::write(
            &path,
            format!("[[fixer.providers]]\nname = \"a\"\nbase_url = \"http://x\"\nmodel = \"m\"\n{toml}\n"),
        )
        .unwrap();
        let error = Settings::load_from(Some(&path), Vec::<(String, String)>::new()).unwrap_err();
        assert!(error.to_string().contains(key), "{toml}: {error}");
    }
    std::fs::write(
        &path,
        "[[fixer.providers]]\nname = \"a\"\nbase_url = \"http://x\"\nmodel = \"m\"\n[[fixer.providers]]\nname = \"a\"\nbase_url = \"http://y\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let error = Settings::load_from(Some(&path), Vec::<(String, String)>::new()).unwrap_err();
    assert!(
        error.to_string().contains("fixer.providers.name"),
        "{error}"
    );
}
