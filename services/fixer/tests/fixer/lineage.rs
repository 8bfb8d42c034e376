//! Lineage-scoped fixes (`fixer.fix_scope = "lineage"`): the ancestors the evidence lists
//! reach the model and its schema, an answer may edit them, and every edit is checked as
//! the failing model's own is — while the default scope never offers them.

use dbtops_proto::v1;
use dbtops_settings::{FixScope, LlmProviderKind, LlmProviderSettings, Settings};
use serde_json::{json, Value};

use crate::fake::{self, FakeLlm, Reply};
use crate::{draft, fixed_sql, incident, nothing, proposal, settings_with, MODEL_PATH};

const STG_PATH: &str = "models/staging/stg_orders.sql";
const STG_SQL: &str = "select\n    id as order_id,\n    customer_id,\n    amount,\n    status\nfrom {{ source('shop', 'raw_orders') }}\n";

fn stg_fixed() -> String {
    STG_SQL.replace(
        "    amount,\n",
        "    try_cast(amount as integer) as amount,\n",
    )
}

fn lineage_incident() -> v1::FailureDetected {
    let mut incident = incident();
    incident.evidence.as_mut().unwrap().ancestor_models = vec![v1::AncestorModel {
        unique_id: "model.shop.stg_orders".into(),
        name: "stg_orders".into(),
        path: STG_PATH.into(),
        raw_sql: STG_SQL.into(),
        depth: 1,
        materialized: "view".into(),
    }];
    incident
}

fn settings(provider: LlmProviderSettings, scope: FixScope) -> Settings {
    let mut settings = settings_with(vec![provider]);
    settings.fixer.fix_scope = scope;
    settings
}

/// A single-shot answer that fixes the model and edits `path` upstream.
fn answer_with_upstream(path: &str, sql: &str) -> Reply {
    let mut answer = fake::fix(MODEL_PATH, &fixed_sql());
    answer["upstream_edits"] = json!([{
        "path": path,
        "fixed_sql": sql,
        "explanation": "the cast belongs in staging",
    }]);
    Reply::ok(fake::openai_text(&answer.to_string()))
}

fn schema(body: &Value) -> &Value {
    &body["response_format"]["json_schema"]["schema"]
}

#[tokio::test]
async fn a_lineage_answer_carries_its_upstream_edit_into_the_proposal() {
    let llm = FakeLlm::start(|_, _| answer_with_upstream(STG_PATH, &stg_fixed())).await;
    let settings = settings(
        llm.provider("openai", LlmProviderKind::Openai),
        FixScope::Lineage,
    );
    let proposal = proposal(draft(&settings, &lineage_incident()).await);
    assert_eq!(proposal.upstream_edits.len(), 1);
    assert_eq!(proposal.upstream_edits[0].path, STG_PATH);
    assert_eq!(proposal.upstream_edits[0].fixed_sql, stg_fixed());

    let body = &llm.requests()[0].body;
    let schema = schema(body);
    assert!(schema["required"]
        .as_array()
        .unwrap()
        .contains(&json!("upstream_edits")));
    assert_eq!(
        schema["properties"]["upstream_edits"]["items"]["properties"]["path"]["enum"],
        json!([STG_PATH])
    );
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("ancestor stg_orders (models/staging/stg_orders.sql, view, generation 1)"),
        "{user}"
    );
    assert!(user.contains("id as order_id"), "{user}");
    assert!(user.contains("upstream_edits"), "{user}");
}

#[tokio::test]
async fn the_default_scope_offers_no_ancestors_and_refuses_an_upstream_edit() {
    let llm = FakeLlm::start(|_, _| answer_with_upstream(STG_PATH, &stg_fixed())).await;
    let settings = settings(
        llm.provider("openai", LlmProviderKind::Openai),
        FixScope::Model,
    );
    let (reason, detail) = nothing(draft(&settings, &lineage_incident()).await);
    assert_eq!(reason, "guardrail", "{detail}");
    assert!(detail.contains("fix_scope"), "{detail}");
    let requests = llm.requests();
    // The refusal was fed back once, then the attempt ended.
    assert_eq!(requests.len(), 2);
    let body = &requests[0].body;
    assert!(schema(body)["properties"].get("upstream_edits").is_none());
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(!user.contains("id as order_id"), "{user}");
}

#[tokio::test]
async fn upstream_edits_are_held_to_the_model_rules() {
    for (path, sql, expected) in [
        // Not an ancestor.
        ("models/staging/stg_customers.sql", stg_fixed(), "ancestor"),
        // The ancestor's source() is dropped.
        (
            STG_PATH,
            STG_SQL.replace("{{ source('shop', 'raw_orders') }}", "main.raw_orders"),
            "source",
        ),
        // DDL.
        (STG_PATH, "drop table raw_orders".to_owned(), "drop"),
        // Unchanged.
        (STG_PATH, STG_SQL.to_owned(), "unchanged"),
    ] {
        let reply_sql = sql.clone();
        let llm = FakeLlm::start(move |_, _| answer_with_upstream(path, &reply_sql)).await;
        let settings = settings(
            llm.provider("openai", LlmProviderKind::Openai),
            FixScope::Lineage,
        );
        let (reason, detail) = nothing(draft(&settings, &lineage_incident()).await);
        assert_eq!(reason, "guardrail", "{path}: {detail}");
        assert!(
            detail.to_lowercase().contains(expected),
            "{path} {expected}: {detail}"
        );
    }
}
