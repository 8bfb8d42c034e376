//! Branches created in-process, checked by git itself; existing branches never moved,
//! loose or packed; and the repository shapes that go to git instead (a held lock, a
//! name clash, reftable, alternates), which must behave as they did before.

mod common;

use std::path::Path;

use common::{git, model_repository_with, request, Fixture, TestResult, FIXED, MODEL, ORIGINAL};
use dbtops_localgit::{LocalGitError, LocalRepo};

const BRANCH: &str = "dbt-ops/fix/stg_orders/3f2a9c1e";

/// The branch's reflog as git reads it: `<who>|<message>` per entry.
fn reflog(root: &Path, branch: &str) -> Result<String, Box<dyn std::error::Error>> {
    git(
        root,
        &["reflog", "show", "--format=%gn <%ge>|%gs|%H", branch, "--"],
    )
}

#[test]
fn a_branch_created_in_process_is_one_git_accepts_with_its_reflog() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;

    git(root, &["fsck", "--strict", "--no-dangling"])?;
    assert_eq!(
        git(
            root,
            &[
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                "refs/heads/dbt-ops/"
            ]
        )?,
        format!("{} refs/heads/{BRANCH}\n", committed.commit_sha)
    );
    assert_eq!(
        reflog(root, BRANCH)?,
        format!(
            "dbt-ops <dbt-ops@example.invalid>|dbt-ops: create fix branch|{}\n",
            committed.commit_sha
        )
    );
    // The file as git's files backend writes it, and no lock left behind.
    let loose = root.join(".git/refs/heads").join(BRANCH);
    assert_eq!(
        std::fs::read_to_string(&loose)?,
        format!("{}\n", committed.commit_sha)
    );
    assert!(!root.join(format!(".git/refs/heads/{BRANCH}.lock")).exists());
    let log = std::fs::read_to_string(root.join(".git/logs/refs/heads").join(BRANCH))?;
    assert!(
        log.starts_with(&format!(
            "{} {} dbt-ops <dbt-ops@example.invalid> ",
            "0".repeat(40),
            committed.commit_sha
        )),
        "{log}"
    );
    assert!(
        log.ends_with(" +0000\tdbt-ops: create fix branch\n"),
        "{log}"
    );
    // git can move on from it as from any branch.
    git(
        root,
        &["branch", "-m", BRANCH, "dbt-ops/fix/stg_orders/renamed0"],
    )?;
    assert_eq!(
        git(root, &["rev-parse", "dbt-ops/fix/stg_orders/renamed0"])?.trim(),
        committed.commit_sha
    );
    Ok(())
}

#[test]
fn no_reflog_is_started_when_the_repository_keeps_none() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    git(root, &["config", "core.logAllRefUpdates", "false"])?;
    let repo = LocalRepo::open(root)?;
    repo.commit_to_new_branch(&request(BRANCH, &fixture.head()?, MODEL, FIXED))?;
    assert!(!root.join(".git/logs/refs/heads").join(BRANCH).exists());
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    Ok(())
}

#[test]
fn existing_branches_loose_or_packed_are_never_moved() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    let loose = "dbt-ops/fix/stg_orders/10000001";
    let packed = "dbt-ops/fix/stg_orders/10000002";
    let first_loose = repo.commit_to_new_branch(&request(loose, &base, MODEL, FIXED))?;
    let first_packed = repo.commit_to_new_branch(&request(packed, &base, MODEL, FIXED))?;
    git(root, &["pack-refs", "--all", "--prune"])?;
    // Recreated loose after the packing, so one of each.
    git(root, &["update-ref", "-d", &format!("refs/heads/{loose}")])?;
    git(
        root,
        &[
            "update-ref",
            &format!("refs/heads/{loose}"),
            &first_loose.commit_sha,
        ],
    )?;
    assert!(root.join(".git/refs/heads").join(loose).is_file());
    assert!(!root.join(".git/refs/heads").join(packed).exists());

    for (branch, first) in [(loose, &first_loose), (packed, &first_packed)] {
        let again = repo.commit_to_new_branch(&request(branch, &base, MODEL, FIXED))?;
        assert!(again.already_existed, "{branch}");
        assert_eq!(again.commit_sha, first.commit_sha);
        let other = repo.commit_to_new_branch(&request(branch, &base, MODEL, "select 'other'\n"));
        assert!(
            matches!(other, Err(LocalGitError::BranchConflict { ref tip, .. }) if *tip == first.commit_sha),
            "{branch}: {other:?}"
        );
        assert_eq!(git(root, &["rev-parse", branch])?.trim(), first.commit_sha);
        assert_eq!(
            repo.branch_exists(branch)?.as_deref(),
            Some(first.commit_sha.as_str())
        );
    }
    assert!(!root.join(".git/refs/heads").join(packed).exists());
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    Ok(())
}

#[test]
fn names_that_clash_with_existing_refs_are_refused_by_git_as_before() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    // A branch where the new one's directory would be, loose and then packed; and one
    // below the new branch's name.
    git(root, &["branch", "dbt-ops/fix/stg_orders"])?;
    let refs_before = git(root, &["for-each-ref"])?;
    for packed in [false, true] {
        if packed {
            git(root, &["pack-refs", "--all", "--prune"])?;
        }
        let result = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED));
        match result {
            Err(LocalGitError::GitFailed {
                ref command,
                ref stderr,
                ..
            }) => {
                assert!(command.starts_with("update-ref"), "{command}");
                assert!(stderr.contains("dbt-ops/fix/stg_orders"), "{stderr}");
            }
            other => return Err(format!("packed {packed}: {other:?}").into()),
        }
        assert_eq!(git(root, &["for-each-ref"])?, refs_before);
    }
    git(root, &["branch", "-D", "dbt-ops/fix/stg_orders"])?;
    git(root, &["branch", &format!("{BRANCH}/below"), &base])?;
    let result = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED));
    assert!(
        matches!(result, Err(LocalGitError::GitFailed { .. })),
        "{result:?}"
    );
    assert_eq!(repo.branch_exists(BRANCH)?, None);
    // No lock or stray reflog left behind.
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    assert!(!root.join(format!(".git/refs/heads/{BRANCH}.lock")).exists());
    Ok(())
}

#[test]
fn a_held_lock_goes_to_git_which_reports_it_as_before() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let lock = root.join(format!(".git/refs/heads/{BRANCH}.lock"));
    std::fs::create_dir_all(lock.parent().ok_or("parent")?)?;
    std::fs::write(&lock, "")?;
    let repo = LocalRepo::open(root)?;
    let result = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED));
    match &result {
        Err(error @ LocalGitError::GitFailed { stderr, .. }) => {
            assert!(stderr.contains(".lock"), "{stderr}");
            assert!(error.is_retryable());
        }
        other => return Err(format!("{other:?}").into()),
    }
    // Someone else's lock stays; the branch was not created.
    assert!(lock.exists());
    assert_eq!(repo.branch_exists(BRANCH)?, None);
    // Once it is gone, the delivery goes through.
    std::fs::remove_file(&lock)?;
    assert!(
        !repo
            .commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?
            .already_existed
    );
    Ok(())
}

#[test]
fn a_reftable_repository_works_through_git() -> TestResult {
    let Some(dir) = model_repository_with("--ref-format=reftable")? else {
        return Ok(());
    };
    let root = dir.path();
    let repo = LocalRepo::open(root)?;
    let base = repo.head_commit()?;
    assert_eq!(base, git(root, &["rev-parse", "HEAD"])?.trim());
    assert_eq!(repo.current_branch()?.as_deref(), Some("main"));
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    assert!(!committed.already_existed);
    assert_eq!(git(root, &["show", &format!("{BRANCH}:{MODEL}")])?, FIXED);
    assert_eq!(
        reflog(root, BRANCH)?,
        format!(
            "dbt-ops <dbt-ops@example.invalid>|dbt-ops: create fix branch|{}\n",
            committed.commit_sha
        )
    );
    assert!(!root.join(".git/refs/heads").join(BRANCH).exists());
    assert!(
        repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?
            .already_existed
    );
    let other = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, "select 1\n"));
    assert!(
        matches!(other, Err(LocalGitError::BranchConflict { .. })),
        "{other:?}"
    );
    assert_eq!(
        repo.branch_exists(BRANCH)?.as_deref(),
        Some(committed.commit_sha.as_str())
    );
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    Ok(())
}

#[test]
fn a_repository_borrowing_objects_through_alternates_works_through_git() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let clones = tempfile::tempdir()?;
    let clone = clones.path().join("shared");
    git(
        clones.path(),
        &[
            "clone",
            "-q",
            "--shared",
            fixture.root().to_str().ok_or("path")?,
            clone.to_str().ok_or("path")?,
        ],
    )?;
    assert!(clone.join(".git/objects/info/alternates").exists());
    // The clone's own object directory has none of the base's objects.
    assert_eq!(git(&clone, &["count-objects"])?, "0 objects, 0 kilobytes\n");
    let repo = LocalRepo::open(&clone)?;
    assert_eq!(repo.head_commit()?, base);
    assert_eq!(repo.read_file_at(&base, MODEL)?.as_deref(), Some(ORIGINAL));
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    assert_eq!(git(&clone, &["show", &format!("{BRANCH}:{MODEL}")])?, FIXED);
    assert!(
        repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?
            .already_existed
    );
    assert_eq!(
        git(&clone, &["rev-parse", BRANCH])?.trim(),
        committed.commit_sha
    );
    git(&clone, &["fsck", "--strict", "--no-dangling"])?;
    Ok(())
}

#[test]
fn head_and_branches_read_in_process_agree_with_git_after_gc() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let repo = LocalRepo::open(root)?;
    let base = fixture.head()?;
    repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    for packed in [false, true] {
        if packed {
            git(root, &["gc", "-q"])?;
            assert!(!root.join(".git/refs/heads/main").exists());
        }
        assert_eq!(
            repo.head_commit()?,
            git(root, &["rev-parse", "HEAD"])?.trim()
        );
        assert_eq!(
            repo.branch_exists(BRANCH)?.as_deref(),
            Some(git(root, &["rev-parse", BRANCH])?.trim())
        );
        assert_eq!(repo.branch_exists("dbt-ops/fix/stg_orders/none0000")?, None);
        assert_eq!(repo.read_file_at(BRANCH, MODEL)?.as_deref(), Some(FIXED));
    }
    // Detached, and on an unborn branch (which git reports as no commit).
    git(root, &["checkout", "-q", "--detach", BRANCH])?;
    assert_eq!(
        repo.head_commit()?,
        git(root, &["rev-parse", "HEAD"])?.trim()
    );
    git(root, &["checkout", "-q", "--orphan", "unborn"])?;
    assert!(matches!(
        repo.head_commit(),
        Err(LocalGitError::UnknownCommit { .. })
    ));
    Ok(())
}
