//! Fault drills: the bus going away in the middle of an incident, and the system still
//! serving a good incident afterwards. (The bad-input catalogue is in `bad_input.rs`.)

use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes};
use dbtops_e2e::{ExampleRepo, TestSystem};

const STG_ORDERS: &str = "models/staging/stg_orders.sql";
const WAIT: Duration = Duration::from_secs(300);

/// Breaks `stg_orders` (a misspelt column a rule fixes) and runs real dbt on it.
fn broken_repo() -> ExampleRepo {
    let repo = ExampleRepo::new();
    repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok, "the broken project must fail:\n{output}");
    repo
}

/// Submits the repository's last run and asserts that its one incident got a branch.
async fn assert_good_incident_gets_a_branch(system: &TestSystem, repo: &ExampleRepo) {
    let submitted = submit(&system.bus, &repo.project, None, None)
        .await
        .expect("submit");
    let (outcomes, _notes) = wait_for_outcomes(&system.bus, &submitted.submission_id, WAIT)
        .await
        .expect("outcomes");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_restarted_mid_incident_the_incident_still_reaches_its_branch() {
    let repo = broken_repo();
    let mut system = TestSystem::start(|_| {}).await;
    let submitted = submit(&system.bus, &repo.project, None, None)
        .await
        .expect("submit");
    // Once the detector has opened the incident (its record is written before it is
    // published), the bus dies under the fixer, validator and delivery while they work
    // on it, and comes back on the same port with the same store.
    let store = system.bus.incidents().await.expect("incident store");
    let verdict = store
        .wait_for_submission(&submitted.submission_id, WAIT)
        .await
        .expect("the detector answers")
        .expect("the detector processed the run");
    assert_eq!(verdict.new_incident_ids.len(), 1, "{verdict:?}");
    system.server.stop();
    system.server.restart().expect("nats-server restarts");

    let (outcomes, _notes) = wait_for_outcomes(&system.bus, &submitted.submission_id, WAIT)
        .await
        .expect("outcomes after the restart");
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
    assert_eq!(repo.fix_branches().len(), 1, "{:?}", repo.fix_branches());

    // A second outage between incidents: the next incident is served too.
    system.server.restart().expect("nats-server restarts again");
    let other = broken_repo();
    assert_good_incident_gets_a_branch(&system, &other).await;
    system.stop().await;
}
