//! How many git processes a delivery runs: the figure this crate was made cheap for
//! (sixteen before reads went through one `cat-file --batch`, six while writes went
//! through `fast-import`; three since the objects are written in-process and `HEAD` is
//! read from its file, two with a [`RepoCache`]; one, the open, since objects are read,
//! refs resolved and the branch created in-process too, none with a [`RepoCache`]), held
//! here so that it does not creep back up — for a repository fresh from `git init`, and
//! for one after `git gc`, its objects packed (deltas included) and its refs packed.
//!
//! Every git process started while `GIT_TRACE2_EVENT` names a directory writes its own
//! event file there — a child such as fast-import's `unpack-objects` included — so the
//! files count the processes. Its own test binary with a single test, because it changes the
//! process environment, which must not race with other tests reading it.

mod common;

use std::path::Path;

use common::{git, request, Fixture, TestResult, FIXED, MODEL, ORIGINAL};
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
fn a_delivery_runs_one_git_process_to_open_and_none_once_the_repository_is_known() -> TestResult {
    // Neither the machine's configuration (e.g. fastimport.unpackLimit, trace2 targets)
    // nor its identity may change the count. Sound only because this binary runs no other
    // test that could read the environment concurrently.
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let project = fixture.project();
    let base = fixture.head()?;

    // A fresh branch: rev-parse (open). The objects (read and written), the branch, HEAD
    // and the description need no git.
    let repos = RepoCache::default();
    let (existed, processes) =
        traced(|| deliver(&repos, BRANCH, &project, &base, FIXED, ORIGINAL))?;
    assert!(!existed?);
    assert_eq!(processes, ["rev-parse"]);

    // The same message again: nothing is written, the branch is found and its tip read
    // in-process; the repository is known by now.
    let (existed, processes) =
        traced(|| deliver(&repos, BRANCH, &project, &base, FIXED, ORIGINAL))?;
    assert!(existed?);
    assert_eq!(processes, Vec::<String>::new());

    // Another incident's fix in the known repository.
    let (existed, processes) = traced(|| {
        let fixed = FIXED.replace("select", "select distinct");
        deliver(&repos, OTHER_BRANCH, &project, &base, &fixed, ORIGINAL)
    })?;
    assert!(!existed?);
    assert_eq!(processes, Vec::<String>::new());

    // A snapshot of an uncommitted edit and an ancestor model: two commits, still no git.
    let failing = ORIGINAL.replace("order_id", "ordr_id");
    let fixed = failing.replace("custmer_id", "customer_id");
    let repo = LocalRepo::open(&project)?;
    let (committed, processes) = traced(|| {
        let mut req = request("dbt-ops/fix/stg_orders/0badc0de", &base, MODEL, &fixed);
        req.also_replace = vec![FileReplacement {
            path_in_repo: "analytics/models/marts/exec_model.sql".into(),
            content: "select 2 as x\n".into(),
        }];
        repo.commit_to_new_branch_over(&req, &failing)
    })?;
    assert!(!committed?.already_existed);
    assert_eq!(processes, Vec::<String>::new());

    // History worth packing: the model in several versions, so that gc stores most of
    // them as deltas; then everything packed, objects and refs.
    let version = |n: usize| {
        let columns: Vec<String> = (0..60)
            .map(|column| format!("    column_{column}_{}", if column == n { n } else { 0 }))
            .collect();
        format!(
            "-- version {n}\nselect\n{}\nfrom {{{{ ref('raw_orders') }}}}\n",
            columns.join(",\n")
        )
    };
    for n in 1..=8 {
        std::fs::write(root.join(MODEL), version(n))?;
        git(root, &["commit", "-q", "-am", &format!("version {n}")])?;
    }
    git(root, &["gc", "-q"])?;
    assert_eq!(git(root, &["count-objects"])?, "0 objects, 0 kilobytes\n");
    assert!(!root.join(format!(".git/refs/heads/{BRANCH}")).exists());
    assert!(std::fs::read_to_string(root.join(".git/packed-refs"))?.contains(BRANCH));

    // A base whose model is stored as a delta in the pack.
    let (delta_base, delta_version) = deltified_model(root)?;
    let (existed, processes) = traced(|| {
        let fixed = format!("{delta_version}-- fixed\n");
        deliver(
            &repos,
            "dbt-ops/fix/stg_orders/5eed0001",
            &project,
            &delta_base,
            &fixed,
            &delta_version,
        )
    })?;
    assert!(!existed?);
    assert_eq!(processes, Vec::<String>::new());
    // The first fix again, its branch now a packed ref and its objects packed.
    let (existed, processes) =
        traced(|| deliver(&repos, BRANCH, &project, &base, FIXED, ORIGINAL))?;
    assert!(existed?);
    assert_eq!(processes, Vec::<String>::new());
    // Another fix on the packed base beside the packed branches.
    let (existed, processes) = traced(|| {
        let fixed = FIXED.replace("from", "from  ");
        deliver(
            &repos,
            "dbt-ops/fix/stg_orders/5eed0002",
            &project,
            &base,
            &fixed,
            ORIGINAL,
        )
    })?;
    assert!(!existed?);
    assert_eq!(processes, Vec::<String>::new());

    // What was written in-process is what git would have written.
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    assert_eq!(
        git(
            root,
            &["show", &format!("dbt-ops/fix/stg_orders/5eed0001:{MODEL}")]
        )?,
        format!("{delta_version}-- fixed\n")
    );
    assert_eq!(
        git(root, &["rev-parse", "dbt-ops/fix/stg_orders/5eed0001^"])?.trim(),
        delta_base
    );
    Ok(())
}

/// A commit whose model blob the pack stores as a delta, and the model's content there.
fn deltified_model(root: &Path) -> Result<(String, String), Box<dyn std::error::Error>> {
    let pack_dir = root.join(".git/objects/pack");
    let mut deltas = String::new();
    for entry in std::fs::read_dir(&pack_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "idx") {
            // `<oid> <type> <size> <size in pack> <offset> <depth> <base>` for a delta.
            let listing = git(root, &["verify-pack", "-v", path.to_str().ok_or("path")?])?;
            for line in listing.lines() {
                if line.split_whitespace().count() == 7 {
                    deltas.push_str(line);
                    deltas.push('\n');
                }
            }
        }
    }
    for commit in git(root, &["rev-list", "main"])?.lines() {
        let blob = git(root, &["rev-parse", &format!("{commit}:{MODEL}")])?;
        if deltas.contains(&format!("{} blob", blob.trim())) {
            let content = git(root, &["show", &format!("{commit}:{MODEL}")])?;
            return Ok((commit.to_owned(), content));
        }
    }
    Err(format!("no model version is stored as a delta:\n{deltas}").into())
}
