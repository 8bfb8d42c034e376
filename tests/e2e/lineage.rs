//! A lineage-scoped fix end to end (`fixer.fix_scope = "lineage"`): the detector ships the
//! failing model's ancestors, the model edits one of them, the validator builds it and its
//! other descendants, and the branch holds both files in one commit.

use serde_json::json;

use dbtops_e2e::{ExampleRepo, TestSystem};
use dbtops_proto::v1;
use dbtops_settings::FixScope;

use crate::{fake_llm, submit_and_wait, ProviderFor};

const REVENUE_DAILY: &str = "models/marts/finance/revenue_daily.sql";
const ORDERS: &str = "models/marts/orders.sql";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_edit_reaches_the_branch_with_the_model() {
    let repo = ExampleRepo::new();
    // revenue_daily asks orders for a column it does not have.
    repo.break_model(
        REVENUE_DAILY,
        "sum(item_count) as items_sold",
        "sum(items_count) as items_sold",
    );
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok, "the broken project must fail:\n{output}");
    let revenue_daily = std::fs::read_to_string(repo.project.join(REVENUE_DAILY)).unwrap();
    let orders_fixed = std::fs::read_to_string(repo.project.join(ORDERS))
        .unwrap()
        .replace(
            "    coalesce(t.item_count, 0) as item_count,\n",
            "    coalesce(t.item_count, 0) as item_count,\n    coalesce(t.item_count, 0) as items_count,\n",
        );
    let answer_sql = orders_fixed.clone();
    let answer_model = revenue_daily.clone();
    let llm = fake_llm::FakeLlm::start(move |_, _| {
        let content = json!({
            "model_path": REVENUE_DAILY,
            "fixed_sql": answer_model,
            "explanation": "orders gains the items_count column revenue_daily reads.",
            "error_class": "missing_column",
            "confidence": 0.7,
            "upstream_edits": [{
                "path": ORDERS,
                "fixed_sql": answer_sql,
                "explanation": "add items_count",
            }],
        });
        json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "fake-model",
            "choices": [{
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content.to_string()},
            }],
            "usage": {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020},
        })
    })
    .await;
    let system = TestSystem::start(|settings| {
        // The misspelt-column rule would fix revenue_daily itself: the lineage path is
        // under test.
        settings.fixer.rules_enabled = false;
        settings.fixer.fix_scope = FixScope::Lineage;
        settings.fixer.providers = vec![llm.provider("fake")];
    })
    .await;

    let outcomes = submit_and_wait(&system, &repo).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    let branch = outcomes[0].branch.clone().unwrap();
    // The detector shipped orders' SQL, and the prompt carried it.
    let requests = llm.requests();
    let prompt = requests[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        prompt.contains("ancestor orders (models/marts/orders.sql"),
        "{prompt}"
    );
    // One commit holds the ancestor's edit; the model itself was already as it should be.
    let changed = repo.git(&["diff", "--name-only", "main", &branch]);
    assert_eq!(changed, format!("analytics/coffee_shop/{ORDERS}\n"));
    assert_eq!(
        repo.git(&["show", &format!("{branch}:analytics/coffee_shop/{ORDERS}")]),
        orders_fixed
    );
    // The validator built orders' other descendants too.
    let validated = system
        .bus
        .replay(&system.bus.subjects().fix_validated())
        .await
        .unwrap();
    let validated: v1::FixValidated = validated[0].decode().unwrap();
    assert!(
        validated.diff.contains("+++ b/models/marts/orders.sql"),
        "{}",
        validated.diff
    );
    let downstream = validated
        .steps
        .iter()
        .find(|step| step.name == "downstream")
        .expect("a downstream step");
    assert!(downstream.ok);
    system.stop().await;
}
