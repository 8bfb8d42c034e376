//! Lineage-scoped proposals (`fixer.fix_scope = "lineage"`) with real dbt: an edit to an
//! ancestor model is checked like the model's own edit, and the ancestor's other
//! descendants are built too.

mod common;

use common::*;
use dbtops_proto::v1;
use dbtops_settings::FixScope;
use dbtops_validator::{Validator, Verdict};

/// `revenue_daily` selects `items_count`, which `orders` does not have (yet).
fn broken_revenue_daily(project: &Project) -> Incident {
    project.break_model(
        REVENUE_DAILY,
        "sum(item_count) as items_sold",
        "sum(items_count) as items_sold",
    );
    let mut incident = project.incident(
        REVENUE_DAILY,
        v1::ErrorClass::MissingColumn,
        "Binder Error: Referenced column \"items_count\" not found in FROM clause!",
    );
    let evidence = incident.detected.evidence.as_mut().unwrap();
    evidence.ancestor_models = vec![v1::AncestorModel {
        unique_id: "model.coffee_shop.orders".into(),
        name: "orders".into(),
        path: ORDERS.into(),
        raw_sql: project.read(ORDERS),
        depth: 1,
        materialized: "table".into(),
    }];
    incident
}

/// Leaves `revenue_daily` as it is and gives `orders` the column it asks for, with
/// `extra` applied to `orders` too.
fn upstream_proposal(project: &Project, extra: (&str, &str)) -> v1::FixProposal {
    let orders = project
        .read(ORDERS)
        .replace(
            "    coalesce(t.item_count, 0) as item_count,\n",
            "    coalesce(t.item_count, 0) as item_count,\n    coalesce(t.item_count, 0) as items_count,\n",
        )
        .replace(extra.0, extra.1);
    let mut proposal = proposal(REVENUE_DAILY, &project.read(REVENUE_DAILY));
    proposal.upstream_edits = vec![v1::ModelEdit {
        path: ORDERS.into(),
        fixed_sql: orders,
        explanation: "orders gains items_count".into(),
    }];
    proposal
}

fn validator(root: &std::path::Path, scope: FixScope) -> Validator {
    let mut settings = settings(root);
    settings.fixer.fix_scope = scope;
    Validator::new(&settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ancestor_edit_validates_only_with_lineage_enabled() {
    let project = Project::copy();
    let incident = broken_revenue_daily(&project);
    let proposal = upstream_proposal(&project, ("", ""));
    let root = tempfile::tempdir().unwrap();

    let verdict = validator(root.path(), FixScope::Model)
        .validate(&incident.detected, &incident.model, &proposal)
        .await
        .expect("validation runs");
    match verdict {
        Verdict::Failed {
            failed_step,
            error_text,
            ..
        } => {
            assert_eq!(failed_step, "guardrails");
            assert!(error_text.contains("fix_scope"), "{error_text}");
        }
        Verdict::Validated { steps } => panic!("validated without lineage: {steps:#?}"),
    }

    let verdict = validator(root.path(), FixScope::Lineage)
        .validate(&incident.detected, &incident.model, &proposal)
        .await
        .expect("validation runs");
    match verdict {
        Verdict::Validated { steps } => {
            assert!(steps
                .iter()
                .any(|step| step.name == "downstream" && step.ok));
        }
        Verdict::Failed {
            failed_step,
            error_text,
            steps,
        } => panic!("failed at {failed_step}: {error_text}\n{steps:#?}"),
    }
    // The user's project is untouched: the edits lived in the workspace.
    assert!(project.read(ORDERS).contains("as item_count,\n"));
    assert!(!project.read(ORDERS).contains("items_count"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ancestor_edit_that_breaks_another_descendant_fails_downstream() {
    let project = Project::copy();
    let incident = broken_revenue_daily(&project);
    // `customers` reads orders.customer_id; `revenue_daily` does not.
    let proposal = upstream_proposal(
        &project,
        ("    o.customer_id,\n", "    o.customer_id as cust_id,\n"),
    );
    let root = tempfile::tempdir().unwrap();
    let verdict = validator(root.path(), FixScope::Lineage)
        .validate(&incident.detected, &incident.model, &proposal)
        .await
        .expect("validation runs");
    match verdict {
        Verdict::Failed {
            failed_step,
            error_text,
            steps,
        } => {
            assert_eq!(failed_step, "downstream", "{error_text}\n{steps:#?}");
            assert!(error_text.contains("customer_id"), "{error_text}");
        }
        Verdict::Validated { steps } => panic!("validated: {steps:#?}"),
    }
}
