//! The fixer's own integration tests: LLM providers against local servers that speak the
//! OpenAI chat-completions and Anthropic Messages wire formats (and assert what they
//! receive), the agentic tool loop, budgets and spans, prompt injection, and the service
//! on a real nats-server — three `dbt-ops-fixer` processes sharing one durable consumer.

mod agentic;
mod evidence;
mod fake;
mod lineage;
mod observability;
mod providers;
mod scale;
mod service;

use dbtops_fixer::{Drafted, Drafter, ProposalRequest};
use dbtops_proto::v1;
use dbtops_settings::{LlmProviderSettings, Settings};

/// The failing model's path.
pub const MODEL_PATH: &str = "models/marts/orders_enriched.sql";

/// The failing model: a cast that fails on bad data. No rule fixes this class, so the
/// LLM providers are asked.
pub const ORIGINAL: &str = "{{ config(materialized='view') }}\n\n-- Orders with their amounts in cents.\nselect\n    order_id,\n    customer_id,\n    cast(amount as integer) as amount_cents,\n    status\nfrom {{ ref('stg_orders') }}\n";

/// The fix the fake models propose.
pub fn fixed_sql() -> String {
    ORIGINAL.replace("cast(amount as integer)", "try_cast(amount as integer)")
}

/// An incident of the model above.
pub fn incident() -> v1::FailureDetected {
    v1::FailureDetected {
        incident_id: "0123456789abcdef".into(),
        submission_id: "s1".into(),
        project: Some(v1::ProjectRef {
            name: "shop".into(),
            model_paths: vec!["models".into()],
            ..Default::default()
        }),
        model: Some(v1::ModelRef {
            unique_id: "model.shop.orders_enriched".into(),
            name: "orders_enriched".into(),
            path: MODEL_PATH.into(),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::TypeMismatch as i32,
            message: "Runtime Error in model orders_enriched\n  Conversion Error: Could not convert string 'n/a' to INT32".into(),
            signature: "sig".into(),
            needs_human: false,
        }),
        evidence: Some(v1::Evidence {
            model_sql: ORIGINAL.into(),
            parents: vec![v1::ParentColumns {
                unique_id: "model.shop.stg_orders".into(),
                name: "stg_orders".into(),
                columns: vec![
                    "order_id".into(),
                    "customer_id".into(),
                    "amount".into(),
                    "status".into(),
                ],
                origin: "manifest".into(),
            }],
            sources: vec![v1::SourceDefinition {
                source_name: "shop".into(),
                table_name: "raw_orders".into(),
                columns: vec!["id".into(), "amount".into()],
            }],
            adapter: "duckdb".into(),
            dbt_version: "1.11.2".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Default settings with these providers.
pub fn settings_with(providers: Vec<LlmProviderSettings>) -> Settings {
    let mut settings = Settings::default();
    settings.fixer.providers = providers;
    settings
}

/// Runs the chain once for `incident` with no history.
pub async fn draft(settings: &Settings, incident: &v1::FailureDetected) -> Drafted {
    draft_after(settings, incident, &[]).await
}

/// Runs the chain once after `history`.
pub async fn draft_after(
    settings: &Settings,
    incident: &v1::FailureDetected,
    history: &[v1::AttemptRecord],
) -> Drafted {
    settings.validate().expect("valid settings");
    let drafter = Drafter::new(settings).expect("providers build");
    drafter.draft(&ProposalRequest { incident, history }).await
}

/// The proposal, or a panic naming what came instead.
pub fn proposal(drafted: Drafted) -> v1::FixProposal {
    match drafted {
        Drafted::Proposal { proposal, .. } => proposal,
        other => panic!("expected a proposal, got {other:?}"),
    }
}

/// The reason and detail of `Nothing`, or a panic.
pub fn nothing(drafted: Drafted) -> (&'static str, String) {
    match drafted {
        Drafted::Nothing { reason, detail, .. } => (reason, detail),
        other => panic!("expected no proposal, got {other:?}"),
    }
}
