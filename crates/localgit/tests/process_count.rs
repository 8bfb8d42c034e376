//! How many git processes a delivery runs: the figure this crate was made cheap for
//! (sixteen before reads went through one `cat-file --batch`, six while writes went
//! through `fast-import`; three since the objects are written in-process and `HEAD` is
//! read from its file; two with a [`RepoCache`]), held here so that it does not creep
//! back up.
//!
//! Every git process started while `GIT_TRACE2_EVENT` names a directory writes its own
//! event file there — a child such as fast-import's `unpack-objects` included — so the
//! files count the processes. Its own test binary with a single test, because it changes the
//! process environment, which must not race with other tests reading it.

mod common;

use std::path::Path;

use common::{request, Fixture, TestResult, FIXED, ORIGINAL};
use dbtops_localgit::{FileReplacement, LocalGitError, LocalRepo, RepoCache};

const BRANCH: &str = "dbt-ops/fix/stg_orders/3f2a9c1e";
const OTHER_BRANCH: &str = "dbt-ops/fix/stg_orders/77aa0011";
const PROJECT_MODEL: &str = "models/staging/stg_orders.sql";

/// What a delivery does with a repository (services/delivery `deliver_local_git`): open it
/// from the project directory, address the model, commit over the file the run failed on,
/// write the description.
fn deliver(
    repos: &RepoCache,
    branch: &str,
    project: &Path,
    base: &str,
    content: &str,
    failing: &str,
) -> Result<bool, LocalGitError> {
    let repo = repos.open(project)?;
    let path = repo.path_in_repo(project, PROJECT_MODEL)?;
    let committed =
        repo.commit_to_new_branch_over(&request(branch, base, &path, content), failing)?;
    repo.write_description(branch, "# Fix stg_orders\n")?;
    Ok(committed.already_existed)
}

/// Runs `work` and returns its result with the names of the git processes it started.
fn traced<T>(work: impl FnOnce() -> T) -> Result<(T, Vec<String>), Box<dyn std::error::Error>> {
    let events = tempfile::tempdir()?;
    std::env::set_var("GIT_TRACE2_EVENT", events.path());
    let result = work();
    std::env::remove_var("GIT_TRACE2_EVENT");
    let mut processes = Vec::new();
    for file in std::fs::read_dir(events.path())? {
        let text = std::fs::read_to_string(file?.path())?;
        // {"event":"cmd_name",…,"name":"cat-file",…}: the first one is the process's own.
        let name = text
            .lines()
            .find(|line| line.contains(r#""event":"cmd_name""#))
            .and_then(|line| line.split(r#""name":""#).nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?")
            .to_owned();
        processes.push(name);
    }
    processes.sort();
    Ok((result, processes))
}

#[test]
fn a_delivery_runs_three_git_processes_and_two_once_the_repository_is_known() -> TestResult {
    // Neither the machine's configuration (e.g. fastimport.unpackLimit, trace2 targets)
    // nor its identity may change the count. Sound only because this binary runs no other
    // test that could read the environment concurrently.
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    let fixture = Fixture::new()?;
    let project = fixture.project();
    let base = fixture.head()?;

    // A fresh branch: rev-parse (open), cat-file (every read), update-ref (the branch).
    // The objects, HEAD and the description need no git.
    let repos = RepoCache::default();
    let (existed, processes) =
        traced(|| deliver(&repos, BRANCH, &project, &base, FIXED, ORIGINAL))?;
    assert!(!existed?);
    assert_eq!(processes, ["cat-file", "rev-parse", "update-ref"]);

    // The same message again: nothing is written, and the branch is confirmed exactly
    // (cat-file, then rev-parse of the branch); the repository is known by now.
    let (existed, processes) =
        traced(|| deliver(&repos, BRANCH, &project, &base, FIXED, ORIGINAL))?;
    assert!(existed?);
    assert!(processes.len() <= 2, "{processes:?}");
    assert!(
        !processes.iter().any(|name| name == "update-ref"),
        "{processes:?}"
    );

    // Another incident's fix in the known repository: cat-file and update-ref only.
    let (existed, processes) = traced(|| {
        let fixed = FIXED.replace("select", "select distinct");
        deliver(&repos, OTHER_BRANCH, &project, &base, &fixed, ORIGINAL)
    })?;
    assert!(!existed?);
    assert_eq!(processes, ["cat-file", "update-ref"]);

    // A snapshot of an uncommitted edit and an ancestor model: still one import.
    let other_base = fixture.head()?;
    let failing = ORIGINAL.replace("order_id", "ordr_id");
    let fixed = failing.replace("custmer_id", "customer_id");
    let repo = LocalRepo::open(&project)?;
    let (committed, processes) = traced(|| {
        let mut req = request(
            "dbt-ops/fix/stg_orders/0badc0de",
            &other_base,
            common::MODEL,
            &fixed,
        );
        req.also_replace = vec![FileReplacement {
            path_in_repo: "analytics/models/marts/exec_model.sql".into(),
            content: "select 2 as x\n".into(),
        }];
        repo.commit_to_new_branch_over(&req, &failing)
    })?;
    assert!(!committed?.already_existed);
    // No open and no description here: cat-file and update-ref.
    assert_eq!(processes, ["cat-file", "update-ref"]);
    Ok(())
}
