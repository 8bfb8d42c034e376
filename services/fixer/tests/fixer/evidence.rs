//! The fixer on evidence exactly as the live pipeline delivered it.
//!
//! `broken_jinja` of `eval/corpus` (`{{ ref('orders')` left open in the example's
//! `customers.sql`) ended `no_fix_found` — "no rule matched" — through `dbt-ops up` and
//! `dbt-ops submit --wait`, while the `unclosed_jinja` rule passed its own tests. The
//! `FailureDetected` below was read back from the stream of that run (dbt-core 1.11.16,
//! dbt-duckdb 1.11.1): the detector's redactor had taken Jinja's `expected token 'end of
//! print statement'` for a `TOKEN '…'` credential, so the message the rule reads says
//! `expected token '[REDACTED]'`, and `redacted_fields` names the message.

use dbtops_fixer::Drafted;
use dbtops_proto::v1;
use dbtops_settings::Settings;

use crate::{draft, nothing, proposal};

/// `models/marts/customers.sql` of the example, broken as the corpus case breaks it.
const BROKEN: &str = "with customers as (\n    select\n        customer_id,\n        customer_name,\n        email,\n        signup_date,\n        home_store_id,\n        loyalty_points\n    from {{ ref('stg_customers') }}\n),\n\ncompleted_orders as (\n    select\n        order_id,\n        customer_id,\n        order_date,\n        order_total\n    from {{ ref('orders')\n    where order_status = 'completed'\n),\n\ncustomer_orders as (\n    select\n        customer_id,\n        min(order_date) as first_order_date,\n        max(order_date) as last_order_date,\n        count(*) as number_of_orders,\n        sum(order_total) as lifetime_value\n    from completed_orders\n    group by customer_id\n)\n\nselect\n    c.customer_id,\n    c.customer_name,\n    c.email,\n    c.signup_date,\n    c.home_store_id,\n    c.loyalty_points,\n    co.first_order_date,\n    co.last_order_date,\n    coalesce(co.number_of_orders, 0) as number_of_orders,\n    coalesce(co.lifetime_value, 0) as lifetime_value\nfrom customers as c\nleft join customer_orders as co on c.customer_id = co.customer_id\n";

/// The incident as the fixer received it (the YAML entry and timestamps left out).
fn broken_jinja_incident() -> v1::FailureDetected {
    let parent = |name: &str, columns: &[&str]| v1::ParentColumns {
        unique_id: format!("model.coffee_shop.{name}"),
        name: name.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        origin: "sql".into(),
    };
    v1::FailureDetected {
        incident_id: "bbf246e276891a54".into(),
        submission_id: "6c6ccf5b-f3ef-40fe-b480-b7c0788aa97f".into(),
        project: Some(v1::ProjectRef {
            name: "coffee_shop".into(),
            model_paths: vec!["models".into()],
            ..Default::default()
        }),
        model: Some(v1::ModelRef {
            unique_id: "model.coffee_shop.customers".into(),
            name: "customers".into(),
            path: "models/marts/customers.sql".into(),
            resource_type: "model".into(),
        }),
        error: Some(v1::FailureError {
            class: v1::ErrorClass::JinjaCompilation as i32,
            message: "Compilation Error in model customers (models/marts/customers.sql)\n  expected token '[REDACTED]', got 'where'\n    line 19\n      where order_status = 'completed'".into(),
            signature: "jinja_compilation:expected token '[REDACTED]', got 'where'".into(),
            needs_human: false,
        }),
        evidence: Some(v1::Evidence {
            model_sql: BROKEN.into(),
            parents: vec![
                parent(
                    "stg_customers",
                    &[
                        "customer_id",
                        "first_name",
                        "last_name",
                        "customer_name",
                        "email",
                        "signup_date",
                        "home_store_id",
                        "loyalty_points",
                    ],
                ),
                parent(
                    "orders",
                    &[
                        "order_id",
                        "customer_id",
                        "store_id",
                        "ordered_at",
                        "order_date",
                        "order_status",
                        "item_count",
                        "order_total_cents",
                        "order_total",
                    ],
                ),
            ],
            project_node_names: [
                "customers",
                "orders",
                "raw_customers",
                "raw_order_items",
                "raw_orders",
                "raw_products",
                "raw_stores",
                "revenue_daily",
                "stg_customers",
                "stg_order_items",
                "stg_orders",
                "stg_products",
                "stg_stores",
                "store_revenue",
            ]
            .iter()
            .map(|n| n.to_string())
            .collect(),
            dbt_version: "1.11.16".into(),
            adapter: "duckdb".into(),
            estimated_tokens: 631,
            token_budget: 2000,
            redacted_fields: vec!["error.message".into(), "error.signature".into()],
            ..Default::default()
        }),
        invocation_id: "61a04ff8-c8bc-4a2a-8f59-84347f6e3fff".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_unclosed_jinja_expression_is_closed_from_the_redacted_evidence() {
    let drafted = draft(&Settings::default(), &broken_jinja_incident()).await;
    let rule_stage = match &drafted {
        Drafted::Proposal { rule_stage, .. } => *rule_stage,
        _ => None,
    };
    let proposal = proposal(drafted);
    assert_eq!(proposal.strategy, "rule:unclosed_jinja");
    assert_eq!(
        proposal.fixed_sql,
        BROKEN.replacen("{{ ref('orders')\n", "{{ ref('orders') }}\n", 1)
    );
    assert!(proposal.usage.is_none(), "a rule spends no tokens");
    assert!(rule_stage.is_some(), "the rule stage is timed");
}

#[tokio::test]
async fn with_rules_off_the_same_incident_goes_to_the_providers_alone() {
    let mut settings = Settings::default();
    settings.fixer.rules_enabled = false;
    let drafted = draft(&settings, &broken_jinja_incident()).await;
    assert!(
        matches!(
            drafted,
            Drafted::Nothing {
                rule_stage: None,
                ..
            }
        ),
        "{drafted:?}"
    );
    let (reason, detail) = nothing(drafted);
    assert_eq!(reason, "no_fix_found");
    assert!(detail.contains("fixer.rules_enabled = false"), "{detail}");
}
