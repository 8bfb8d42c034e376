//! Committing works on a machine with no git identity configured at all.
//!
//! Its own test binary with a single test, because it changes the process environment,
//! which must not race with other tests reading it.

mod common;

use common::{git, request, Fixture, TestResult, FIXED, MODEL};
use dbtops_localgit::LocalRepo;

#[test]
fn commits_without_user_name_or_email_configured() -> TestResult {
    let fixture = Fixture::new()?;
    let home = tempfile::tempdir()?;
    // Changing the environment is sound here only because this binary runs no other test
    // that could read it concurrently.
    std::env::set_var("HOME", home.path());
    std::env::set_var("XDG_CONFIG_HOME", home.path());
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    for key in [
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ] {
        std::env::remove_var(key);
    }
    let root = fixture.root();
    // The fixture's repository has no local identity either.
    assert!(git(root, &["config", "--local", "user.name"]).is_err());

    let repo = LocalRepo::open(root)?;
    let committed = repo.commit_to_new_branch(&request(
        "dbt-ops/fix/stg_orders/3f2a9c1e",
        &repo.head_commit()?,
        MODEL,
        FIXED,
    ))?;
    assert_eq!(
        git(
            root,
            &["log", "-1", "--format=%an <%ae>", &committed.commit_sha]
        )?
        .trim(),
        "dbt-ops <dbt-ops@example.invalid>"
    );
    Ok(())
}
