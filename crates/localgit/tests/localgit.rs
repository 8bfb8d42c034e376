//! The local-git provider against real repositories in temporary directories.

mod common;

use std::path::Path;

use common::{git, model_repository_with, request, Fixture, TestResult, FIXED, MODEL, ORIGINAL};
use dbtops_guardrails::{GuardrailError, ProtectedReason};
use dbtops_localgit::{FileReplacement, LocalGitError, LocalRepo};

const BRANCH: &str = "dbt-ops/fix/stg_orders/3f2a9c1e";

/// Everything about the user's checkout that committing a fix must leave alone.
#[derive(Debug, PartialEq, Eq)]
struct Checkout {
    status: String,
    head_file: Vec<u8>,
    head: String,
    index: Vec<u8>,
    model_bytes: Vec<u8>,
    readme_bytes: Vec<u8>,
    untracked_bytes: Vec<u8>,
}

fn snapshot(root: &Path) -> Result<Checkout, Box<dyn std::error::Error>> {
    // Raw bytes first: `git status` could otherwise refresh the index before we read it.
    let index = std::fs::read(root.join(".git/index"))?;
    let head_file = std::fs::read(root.join(".git/HEAD"))?;
    Ok(Checkout {
        index,
        head_file,
        status: git(root, &["status", "--porcelain=v1", "--untracked-files=all"])?,
        head: git(root, &["rev-parse", "HEAD"])?,
        model_bytes: std::fs::read(root.join(MODEL))?,
        readme_bytes: std::fs::read(root.join("README.md"))?,
        untracked_bytes: std::fs::read(root.join("analytics/notes.txt"))?,
    })
}

#[test]
fn committing_a_fix_leaves_the_checkout_byte_identical() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    // The user is mid-work: an unstaged edit to the very model being fixed, a staged
    // edit elsewhere, and an untracked file.
    std::fs::write(root.join(MODEL), "-- my local experiment\nselect 42\n")?;
    std::fs::write(root.join("README.md"), "# repo, staged edit\n")?;
    git(root, &["add", "README.md"])?;
    std::fs::write(root.join("analytics/notes.txt"), "untracked\n")?;
    let before = snapshot(root)?;
    assert!(before
        .status
        .contains(" M analytics/models/staging/stg_orders.sql"));
    assert!(before.status.contains("M  README.md"));

    let repo = LocalRepo::open(&fixture.project())?;
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;

    assert_eq!(snapshot(root)?, before);
    assert_eq!(
        std::fs::read_to_string(root.join(MODEL))?,
        "-- my local experiment\nselect 42\n"
    );
    assert!(!committed.already_existed);
    assert_eq!(committed.branch, BRANCH);
    assert_eq!(
        git(root, &["rev-parse", BRANCH])?.trim(),
        committed.commit_sha
    );
    assert_eq!(git(root, &["show", &format!("{BRANCH}:{MODEL}")])?, FIXED);
    assert_eq!(
        git(root, &["rev-parse", &format!("{BRANCH}^")])?.trim(),
        base
    );
    assert_eq!(
        git(root, &["rev-list", "--count", &format!("{base}..{BRANCH}")])?.trim(),
        "1"
    );
    assert_eq!(
        git(root, &["diff", "--name-only", &base, BRANCH])?,
        format!("{MODEL}\n")
    );
    assert_eq!(
        git(root, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", BRANCH])?.trim(),
        "dbt-ops <dbt-ops@example.invalid>|dbt-ops <dbt-ops@example.invalid>|fix(stg_orders): custmer_id -> customer_id"
    );
    // The staged README change is not in the fix commit.
    assert_eq!(
        git(root, &["show", &format!("{BRANCH}:README.md")])?,
        "# repo\n"
    );
    Ok(())
}

#[test]
fn a_second_identical_call_is_idempotent() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let req = request(BRANCH, &base, MODEL, FIXED);
    let first = repo.commit_to_new_branch(&req)?;
    let second = repo.commit_to_new_branch(&req)?;
    assert!(!first.already_existed);
    assert!(second.already_existed);
    assert_eq!(first.commit_sha, second.commit_sha);
    assert_eq!(
        git(fixture.root(), &["rev-list", "--count", BRANCH])?.trim(),
        "2"
    );
    Ok(())
}

#[test]
fn different_content_on_an_existing_branch_is_an_error() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let first = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    let other = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, "select 'other fix'\n"));
    assert!(
        matches!(other, Err(LocalGitError::BranchConflict { ref tip, .. }) if *tip == first.commit_sha),
        "{other:?}"
    );
    // Never forced: the branch still points at the first fix.
    assert_eq!(
        git(fixture.root(), &["rev-parse", BRANCH])?.trim(),
        first.commit_sha
    );
    Ok(())
}

#[test]
fn concurrent_deliveries_create_the_branch_once() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let req = request(BRANCH, &base, MODEL, FIXED);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| repo.commit_to_new_branch(&req)))
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut outcomes = Vec::new();
    for result in results {
        match result {
            Ok(outcome) => outcomes.push(outcome?),
            Err(_) => return Err("a delivery thread panicked".into()),
        }
    }
    let tip = git(fixture.root(), &["rev-parse", BRANCH])?
        .trim()
        .to_owned();
    assert!(outcomes.iter().all(|o| o.commit_sha == tip), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| !o.already_existed).count(),
        1,
        "{outcomes:?}"
    );
    Ok(())
}

#[test]
fn protected_and_foreign_branches_are_refused() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let main_before = git(fixture.root(), &["rev-parse", "main"])?;

    let main = repo.commit_to_new_branch(&request("main", &base, MODEL, FIXED));
    assert!(
        matches!(
            main,
            Err(LocalGitError::Guardrail(GuardrailError::ProtectedBranch {
                reason: ProtectedReason::MainOrMaster,
                ..
            }))
        ),
        "{main:?}"
    );
    let feature = repo.commit_to_new_branch(&request("feature/x", &base, MODEL, FIXED));
    assert!(
        matches!(
            feature,
            Err(LocalGitError::Guardrail(
                GuardrailError::NotAFixBranch { .. }
            ))
        ),
        "{feature:?}"
    );
    assert_eq!(git(fixture.root(), &["rev-parse", "main"])?, main_before);

    // The user has a fix branch checked out: it is their current branch now.
    git(fixture.root(), &["checkout", "-q", "-b", BRANCH])?;
    let current = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED));
    assert!(
        matches!(
            current,
            Err(LocalGitError::Guardrail(GuardrailError::ProtectedBranch {
                reason: ProtectedReason::CurrentBranch,
                ..
            }))
        ),
        "{current:?}"
    );
    Ok(())
}

#[test]
fn the_file_mode_is_preserved() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let path = "analytics/models/marts/exec_model.sql";
    let branch = "dbt-ops/fix/exec_model/12345678";
    repo.commit_to_new_branch(&request(branch, &base, path, "select 2 as x\n"))?;
    let entry = git(fixture.root(), &["ls-tree", branch, "--", path])?;
    assert!(entry.starts_with("100755 blob "), "{entry}");
    let entry = git(fixture.root(), &["ls-tree", "-r", branch, "--", MODEL])?;
    assert!(entry.starts_with("100644 blob "), "{entry}");
    Ok(())
}

#[test]
fn a_project_in_a_subdirectory_is_found_and_addressed() -> TestResult {
    let fixture = Fixture::new()?;
    let project = fixture.project();
    let from_project = LocalRepo::open(&project)?;
    let from_file = LocalRepo::open(&project.join("models/staging/stg_orders.sql"))?;
    let root = std::fs::canonicalize(fixture.root())?;
    assert_eq!(from_project.root(), root);
    assert_eq!(from_file.root(), root);

    let path = from_project.path_in_repo(&project, "models/staging/stg_orders.sql")?;
    assert_eq!(path, MODEL);
    assert_eq!(
        from_project.path_in_repo(fixture.root(), "README.md")?,
        "README.md"
    );
    assert!(matches!(
        from_project.path_in_repo(&project, "../README.md"),
        Err(LocalGitError::Guardrail(
            GuardrailError::ParentSegment { .. }
        ))
    ));
    let elsewhere = tempfile::tempdir()?;
    assert!(matches!(
        from_project.path_in_repo(elsewhere.path(), "models/x.sql"),
        Err(LocalGitError::OutsideRepository { .. })
    ));

    let base = from_project.head_commit()?;
    assert_eq!(
        from_project.read_file_at(&base, &path)?.as_deref(),
        Some(ORIGINAL)
    );
    let committed = from_project.commit_to_new_branch(&request(BRANCH, &base, &path, FIXED))?;
    assert_eq!(
        from_project
            .read_file_at(&committed.commit_sha, &path)?
            .as_deref(),
        Some(FIXED)
    );
    Ok(())
}

#[test]
fn the_base_need_not_be_head() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let failing = fixture.head()?;
    std::fs::write(root.join("README.md"), "# moved on\n")?;
    git(root, &["commit", "-q", "-am", "later work"])?;
    let repo = LocalRepo::open(root)?;
    let short = &failing[..12];
    let committed = repo.commit_to_new_branch(&request(BRANCH, short, MODEL, FIXED))?;
    assert_eq!(
        git(root, &["rev-parse", &format!("{}^", committed.commit_sha)])?.trim(),
        failing
    );
    assert_eq!(
        git(root, &["show", &format!("{BRANCH}:README.md")])?,
        "# repo\n"
    );
    Ok(())
}

#[test]
fn reading_files_and_refs() -> TestResult {
    let fixture = Fixture::new()?;
    let repo = LocalRepo::open(fixture.root())?;
    let head = repo.head_commit()?;
    assert_eq!(head, fixture.head()?);
    assert_eq!(repo.current_branch()?.as_deref(), Some("main"));
    assert_eq!(repo.branch_exists("main")?.as_deref(), Some(head.as_str()));
    assert_eq!(repo.branch_exists(BRANCH)?, None);
    // A branch below a missing one is not mistaken for it.
    git(
        fixture.root(),
        &["branch", "dbt-ops/fix/stg_orders/3f2a9c1e-x"],
    )?;
    assert_eq!(repo.branch_exists(BRANCH)?, None);

    assert_eq!(repo.read_file_at("HEAD", MODEL)?.as_deref(), Some(ORIGINAL));
    assert_eq!(
        repo.read_file_at(&head, "analytics/models/missing.sql")?,
        None
    );
    assert!(matches!(
        repo.read_file_at(&head, "analytics/models"),
        Err(LocalGitError::NotARegularFile { .. })
    ));
    assert!(matches!(
        repo.read_file_at(&"0".repeat(40), MODEL),
        Err(LocalGitError::UnknownCommit { .. })
    ));
    assert!(matches!(
        repo.read_file_at("--all", MODEL),
        Err(LocalGitError::UnknownCommit { .. })
    ));
    // Glob characters are literal.
    assert_eq!(
        repo.read_file_at(&head, "analytics/models/*/stg_orders.sql")?,
        None
    );

    git(fixture.root(), &["checkout", "-q", "--detach"])?;
    assert_eq!(repo.current_branch()?, None);
    Ok(())
}

#[test]
fn bad_requests_are_refused_before_anything_is_written() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let objects_before = git(fixture.root(), &["count-objects", "-v"])?;

    let missing =
        repo.commit_to_new_branch(&request(BRANCH, &base, "analytics/models/new.sql", FIXED));
    assert!(
        matches!(missing, Err(LocalGitError::PathNotInCommit { .. })),
        "{missing:?}"
    );
    let unchanged = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, ORIGINAL));
    assert!(
        matches!(unchanged, Err(LocalGitError::NoChange { .. })),
        "{unchanged:?}"
    );
    let traversal =
        repo.commit_to_new_branch(&request(BRANCH, &base, "analytics/../../x.sql", FIXED));
    assert!(
        matches!(
            traversal,
            Err(LocalGitError::Guardrail(
                GuardrailError::ParentSegment { .. }
            ))
        ),
        "{traversal:?}"
    );
    let unknown_base = repo.commit_to_new_branch(&request(BRANCH, "no-such-rev", MODEL, FIXED));
    assert!(
        matches!(unknown_base, Err(LocalGitError::UnknownCommit { .. })),
        "{unknown_base:?}"
    );
    let mut bad_author = request(BRANCH, &base, MODEL, FIXED);
    bad_author.author_email = "x>\nsigned-off-by: y".to_owned();
    assert!(matches!(
        repo.commit_to_new_branch(&bad_author),
        Err(LocalGitError::InvalidAuthor(_))
    ));
    let mut no_message = request(BRANCH, &base, MODEL, FIXED);
    no_message.message = " \n".to_owned();
    assert!(matches!(
        repo.commit_to_new_branch(&no_message),
        Err(LocalGitError::EmptyMessage)
    ));
    #[cfg(unix)]
    {
        let link = repo.commit_to_new_branch(&request(
            BRANCH,
            &base,
            "analytics/models/linked.sql",
            FIXED,
        ));
        assert!(
            matches!(link, Err(LocalGitError::NotARegularFile { ref mode, .. }) if mode == "120000"),
            "{link:?}"
        );
    }
    assert_eq!(repo.branch_exists(BRANCH)?, None);
    assert_eq!(
        git(fixture.root(), &["count-objects", "-v"])?,
        objects_before
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn repository_hooks_do_not_run() -> TestResult {
    use std::os::unix::fs::PermissionsExt;

    let fixture = Fixture::new()?;
    let root = fixture.root();
    let marker = root.join(".git/hook-ran");
    let hook = root.join(".git/hooks/reference-transaction");
    std::fs::create_dir_all(root.join(".git/hooks"))?;
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;

    let repo = LocalRepo::open(root)?;
    repo.commit_to_new_branch(&request(BRANCH, &fixture.head()?, MODEL, FIXED))?;
    assert!(!marker.exists());
    Ok(())
}

#[test]
fn the_description_is_written_inside_git_dir() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let repo = LocalRepo::open(&fixture.project())?;
    let status_before = git(
        root,
        &[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--ignored",
        ],
    )?;
    let path = repo.write_description(BRANCH, "# Fix stg_orders\n\nbody\n")?;
    let expected = std::fs::canonicalize(root)?
        .join(".git/dbt-ops/merge-requests/dbt-ops__fix__stg_orders__3f2a9c1e.md");
    assert_eq!(std::fs::canonicalize(&path)?, expected);
    assert_eq!(
        std::fs::read_to_string(&path)?,
        "# Fix stg_orders\n\nbody\n"
    );
    // Rewriting replaces it.
    repo.write_description(BRANCH, "v2\n")?;
    assert_eq!(std::fs::read_to_string(&path)?, "v2\n");
    assert_eq!(
        git(
            root,
            &[
                "status",
                "--porcelain",
                "--untracked-files=all",
                "--ignored"
            ]
        )?,
        status_before
    );
    assert!(matches!(
        repo.write_description("../../escape", "x"),
        Err(LocalGitError::Guardrail(
            GuardrailError::InvalidBranchName { .. }
        ))
    ));
    Ok(())
}

#[test]
fn linked_worktrees_share_branches_and_descriptions() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let other = tempfile::tempdir()?;
    let worktree = other.path().join("wt");
    let worktree_arg = worktree.to_string_lossy().into_owned();
    git(
        root,
        &["worktree", "add", "-q", "-b", "feature/wt", &worktree_arg],
    )?;

    let repo = LocalRepo::open(&worktree.join("analytics"))?;
    assert_eq!(repo.root(), std::fs::canonicalize(&worktree)?);
    assert_eq!(repo.current_branch()?.as_deref(), Some("feature/wt"));
    let committed =
        repo.commit_to_new_branch(&request(BRANCH, &repo.head_commit()?, MODEL, FIXED))?;
    assert_eq!(
        git(root, &["rev-parse", BRANCH])?.trim(),
        committed.commit_sha
    );
    let path = repo.write_description(BRANCH, "x\n")?;
    assert!(std::fs::canonicalize(&path)?.starts_with(std::fs::canonicalize(root.join(".git"))?));
    Ok(())
}

#[test]
fn opening_something_that_is_not_a_repository_fails_clearly() -> TestResult {
    let dir = tempfile::tempdir()?;
    match LocalRepo::open(dir.path()) {
        Err(LocalGitError::NotARepository { stderr, .. }) => {
            assert!(stderr.contains("not a git repository"), "{stderr}")
        }
        other => return Err(format!("unexpected {other:?}").into()),
    }
    assert!(matches!(
        LocalRepo::open(&dir.path().join("missing/dir")),
        Err(LocalGitError::Io { .. })
    ));
    Ok(())
}

#[test]
fn a_run_that_failed_on_an_uncommitted_edit_gets_a_snapshot_then_the_fix() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    // The committed file is ORIGINAL; the work tree held a different, failing version.
    let failing = ORIGINAL.replace("order_id", "ordr_id");
    let fixed_from_failing = failing.replace("custmer_id", "customer_id");
    let committed = repo.commit_to_new_branch_over(
        &request(BRANCH, &base, MODEL, &fixed_from_failing),
        &failing,
    )?;
    assert_eq!(
        git(fixture.root(), &["rev-list", "--count", BRANCH])?.trim(),
        "3"
    );
    let snapshot = git(fixture.root(), &["show", &format!("{BRANCH}~1:{MODEL}")])?;
    assert_eq!(snapshot, failing);
    let tip = git(fixture.root(), &["show", &format!("{BRANCH}:{MODEL}")])?;
    assert_eq!(tip, fixed_from_failing);
    assert_eq!(
        git(fixture.root(), &["rev-parse", &format!("{BRANCH}~2")])?.trim(),
        base
    );
    // The fix commit's own diff is the fix alone.
    let fix_diff = git(fixture.root(), &["diff", &format!("{BRANCH}~1"), BRANCH])?;
    assert!(fix_diff.contains("-    custmer_id") && fix_diff.contains("+    customer_id"));
    assert!(!fix_diff.contains("ordr_id\n+"), "{fix_diff}");
    assert!(!committed.already_existed);
    Ok(())
}

#[test]
fn a_fix_that_restores_the_committed_file_over_an_uncommitted_break_still_gets_a_branch(
) -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let failing = ORIGINAL.replace("order_id", "ordr_id");
    repo.commit_to_new_branch_over(&request(BRANCH, &base, MODEL, ORIGINAL), &failing)?;
    let tip = git(fixture.root(), &["show", &format!("{BRANCH}:{MODEL}")])?;
    assert_eq!(tip, ORIGINAL);
    // Same failing content as the base: one commit, exactly as commit_to_new_branch.
    let other = "dbt-ops/fix/stg_orders/0badc0de";
    repo.commit_to_new_branch_over(&request(other, &base, MODEL, FIXED), ORIGINAL)?;
    assert_eq!(
        git(fixture.root(), &["rev-list", "--count", other])?.trim(),
        "2"
    );
    Ok(())
}

#[test]
fn a_lineage_fix_replaces_several_files_in_one_commit() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    let upstream = "analytics/models/marts/exec_model.sql";
    let mut req = request(BRANCH, &base, MODEL, FIXED);
    req.also_replace = vec![dbtops_localgit::FileReplacement {
        path_in_repo: upstream.into(),
        content: "select 2 as x\n".into(),
    }];
    let committed = repo.commit_to_new_branch(&req)?;
    assert_eq!(
        git(root, &["diff", "--name-only", &base, BRANCH])?,
        format!("{upstream}\n{MODEL}\n")
    );
    assert_eq!(
        git(root, &["show", &format!("{BRANCH}:{upstream}")])?,
        "select 2 as x\n"
    );
    // The executable bit of the replaced ancestor is kept.
    assert!(git(root, &["ls-tree", BRANCH, upstream])?.starts_with("100755"));
    // Idempotent, and a different upstream content is a conflict.
    assert!(repo.commit_to_new_branch(&req)?.already_existed);
    req.also_replace[0].content = "select 3 as x\n".into();
    let conflict = repo.commit_to_new_branch(&req);
    assert!(
        matches!(conflict, Err(LocalGitError::BranchConflict { ref path, .. }) if path == upstream),
        "{conflict:?}"
    );
    assert_eq!(
        git(root, &["rev-parse", BRANCH])?.trim(),
        committed.commit_sha
    );
    Ok(())
}

#[test]
fn a_lineage_fix_may_leave_the_failing_model_alone_but_not_change_nothing() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    let upstream = "analytics/models/marts/exec_model.sql";
    // Only the ancestor changes.
    let mut req = request(BRANCH, &base, MODEL, ORIGINAL);
    req.also_replace = vec![dbtops_localgit::FileReplacement {
        path_in_repo: upstream.into(),
        content: "select 2 as x\n".into(),
    }];
    repo.commit_to_new_branch(&req)?;
    assert_eq!(
        git(fixture.root(), &["diff", "--name-only", &base, BRANCH])?,
        format!("{upstream}\n")
    );
    // Nothing changes anywhere: refused.
    let mut unchanged = request("dbt-ops/fix/stg_orders/00000000", &base, MODEL, ORIGINAL);
    unchanged.also_replace = vec![dbtops_localgit::FileReplacement {
        path_in_repo: upstream.into(),
        content: "select 1 as x\n".into(),
    }];
    assert!(matches!(
        repo.commit_to_new_branch(&unchanged),
        Err(LocalGitError::NoChange { .. })
    ));
    // A path twice, a path outside the base, a symbolic link, traversal: refused.
    for bad in [
        MODEL,
        "analytics/models/missing.sql",
        "analytics/models/linked.sql",
        "analytics/../x.sql",
    ] {
        let mut req = request("dbt-ops/fix/stg_orders/11111111", &base, MODEL, FIXED);
        req.also_replace = vec![dbtops_localgit::FileReplacement {
            path_in_repo: bad.into(),
            content: "select 9\n".into(),
        }];
        assert!(repo.commit_to_new_branch(&req).is_err(), "{bad}");
    }
    assert!(git(
        fixture.root(),
        &["branch", "--list", "dbt-ops/fix/stg_orders/11111111"]
    )?
    .trim()
    .is_empty());
    Ok(())
}

#[test]
fn the_import_writes_objects_and_the_one_branch_only() -> TestResult {
    let (fixture, repo, base) = opened()?;
    let root = fixture.root();
    let (failing, fixed) = failing_and_fixed();
    repo.commit_to_new_branch_over(&request(BRANCH, &base, MODEL, &fixed), &failing)?;
    // The objects were written without any ref: the branch is update-ref's, created from
    // nothing.
    assert_eq!(
        git(root, &["for-each-ref", "--format=%(refname)"])?,
        format!("refs/heads/{BRANCH}\nrefs/heads/main\n")
    );
    assert_eq!(
        git(root, &["reflog", "show", "--format=%gs", BRANCH])?,
        "dbt-ops: create fix branch\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(root.join(".git"))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("fast_import_crash"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Well-formed trees and commits (written by this crate, not git's porcelain).
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    Ok(())
}

#[test]
fn a_branch_already_at_the_base_is_never_moved() -> TestResult {
    // The branch name exists, at an ancestor of the commit a fix would make: a fast-forward
    // by fast-import's own rules, and still refused.
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    git(fixture.root(), &["branch", BRANCH, &base])?;
    let repo = LocalRepo::open(fixture.root())?;
    let result = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED));
    assert!(
        matches!(result, Err(LocalGitError::BranchConflict { ref tip, .. }) if *tip == base),
        "{result:?}"
    );
    assert_eq!(git(fixture.root(), &["rev-parse", BRANCH])?.trim(), base);
    Ok(())
}

#[test]
fn a_ref_elsewhere_that_git_would_also_resolve_is_not_taken_for_the_branch() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    // A commit holding exactly the fix, under a name `refs/heads/<branch>` also resolves
    // to (as `refs/tags/refs/heads/<branch>`) while the branch itself does not exist.
    let decoy = repo.commit_to_new_branch(&request(
        "dbt-ops/fix/stg_orders/decoy000",
        &base,
        MODEL,
        FIXED,
    ))?;
    git(
        root,
        &[
            "update-ref",
            &format!("refs/tags/refs/heads/{BRANCH}"),
            &decoy.commit_sha,
        ],
    )?;
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    assert!(!committed.already_existed);
    assert_eq!(
        git(root, &["rev-parse", &format!("refs/heads/{BRANCH}")])?.trim(),
        committed.commit_sha
    );
    Ok(())
}

#[test]
fn the_author_is_written_as_commit_tree_writes_it() -> TestResult {
    let fixture = Fixture::new()?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(fixture.root())?;
    // git drops spaces and ,:;"'\ at either end of a name or an email.
    let mut req = request(BRANCH, &base, MODEL, FIXED);
    req.author_name = " 'dbt-ops bot', ".to_owned();
    req.author_email = " bot@example.invalid; ".to_owned();
    repo.commit_to_new_branch(&req)?;
    assert_eq!(
        git(
            fixture.root(),
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", BRANCH]
        )?
        .trim(),
        "dbt-ops bot <bot@example.invalid>|dbt-ops bot <bot@example.invalid>"
    );
    // Nothing left once stripped: refused, as commit-tree refuses it.
    let mut punctuation = request("dbt-ops/fix/stg_orders/22222222", &base, MODEL, FIXED);
    punctuation.author_name = ",;".to_owned();
    assert!(matches!(
        repo.commit_to_new_branch(&punctuation),
        Err(LocalGitError::InvalidAuthor(_))
    ));
    Ok(())
}

#[test]
fn a_sha256_repository_gets_its_branch_too() -> TestResult {
    let Some(dir) = model_repository_with("--object-format=sha256")? else {
        return Ok(());
    };
    let root = dir.path();
    let repo = LocalRepo::open(root)?;
    let base = repo.head_commit()?;
    assert_eq!(base.len(), 64);
    assert_eq!(repo.read_file_at(&base, MODEL)?.as_deref(), Some(ORIGINAL));
    let committed = repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?;
    assert_eq!(committed.commit_sha.len(), 64);
    assert_eq!(git(root, &["show", &format!("{BRANCH}:{MODEL}")])?, FIXED);
    assert!(
        repo.commit_to_new_branch(&request(BRANCH, &base, MODEL, FIXED))?
            .already_existed
    );
    Ok(())
}

#[test]
fn a_path_with_spaces_quotes_and_accents_is_replaced_in_place() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let odd = "analytics/models/odd \"name\" café.sql";
    std::fs::write(root.join(odd), "select 1\n")?;
    git(root, &["add", "-A"])?;
    git(root, &["commit", "-q", "-m", "odd"])?;
    let base = fixture.head()?;
    let repo = LocalRepo::open(root)?;
    repo.commit_to_new_branch(&request(BRANCH, &base, odd, "select 2\n"))?;
    assert_eq!(
        repo.read_file_at(BRANCH, odd)?.as_deref(),
        Some("select 2\n")
    );
    assert_eq!(
        git(root, &["diff", "--name-only", "-z", &base, BRANCH])?,
        format!("{odd}\0")
    );
    Ok(())
}

/// The fixture, its repository opened, and its head.
fn opened() -> Result<(Fixture, LocalRepo, String), Box<dyn std::error::Error>> {
    let fixture = Fixture::new()?;
    let repo = LocalRepo::open(fixture.root())?;
    let base = fixture.head()?;
    Ok((fixture, repo, base))
}

/// The model as the run failed on it (an uncommitted edit on top of the committed
/// misspelling), and its fix.
fn failing_and_fixed() -> (String, String) {
    let failing = ORIGINAL.replace("order_id", "ordr_id");
    let fixed = failing.replace("custmer_id", "customer_id");
    (failing, fixed)
}

/// The tree git itself makes of `base` with `files` replaced: read into a scratch index,
/// the new contents hashed in, the index written out. Nothing of it touches the work tree.
fn tree_git_would_write(
    root: &Path,
    base: &str,
    files: &[(&str, &str, &str)],
) -> Result<String, Box<dyn std::error::Error>> {
    let scratch = tempfile::tempdir()?;
    let index = scratch.path().join("index");
    let with_index = |args: &[&str]| -> Result<String, Box<dyn std::error::Error>> {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()?;
        assert!(output.status.success(), "git {args:?}: {output:?}");
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    };
    with_index(&["read-tree", base])?;
    for (path, mode, content) in files {
        let blob_file = scratch.path().join("blob");
        std::fs::write(&blob_file, content)?;
        let blob = with_index(&["hash-object", "-w", blob_file.to_str().ok_or("path")?])?;
        with_index(&[
            "update-index",
            "--cacheinfo",
            &format!("{mode},{blob},{path}"),
        ])?;
    }
    with_index(&["write-tree"])
}

#[test]
fn the_objects_written_in_process_are_the_ones_git_would_write_and_pass_fsck() -> TestResult {
    let (fixture, repo, base) = opened()?;
    let root = fixture.root();
    let (failing, fixed) = failing_and_fixed();
    let exec_model = "analytics/models/marts/exec_model.sql";
    let mut req = request("dbt-ops/fix/stg_orders/f5c0ffee", &base, MODEL, &fixed);
    req.also_replace = vec![FileReplacement {
        path_in_repo: exec_model.into(),
        content: "select 2 as x\n".into(),
    }];
    let committed = repo.commit_to_new_branch_over(&req, &failing)?;

    // git checks every object it can reach, strictly.
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    // Two commits: the failing snapshot, then the fix; each tree exactly git's.
    let tip = committed.commit_sha.as_str();
    let snapshot = git(root, &["rev-parse", &format!("{tip}^")])?;
    assert_eq!(git(root, &["rev-parse", &format!("{tip}^^")])?.trim(), base);
    assert_eq!(
        git(
            root,
            &["rev-parse", &format!("{}^{{tree}}", snapshot.trim())]
        )?
        .trim(),
        tree_git_would_write(root, &base, &[(MODEL, "100644", &failing)])?
    );
    assert_eq!(
        git(root, &["rev-parse", &format!("{tip}^{{tree}}")])?.trim(),
        tree_git_would_write(
            root,
            &base,
            &[
                (MODEL, "100644", &fixed),
                (exec_model, "100755", "select 2 as x\n")
            ]
        )?
    );
    // The commit reads as git writes one: author, committer, the message as given.
    let log = git(root, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", tip])?;
    assert!(
        log.starts_with("dbt-ops <dbt-ops@example.invalid>|dbt-ops <dbt-ops@example.invalid>|fix(stg_orders): custmer_id -> customer_id\n\nIncident 3f2a9c1e."),
        "{log}"
    );
    assert_eq!(git(root, &["show", &format!("{tip}:{MODEL}")])?, fixed);
    // Loose objects are read-only, as git leaves them.
    let blob = git(root, &["rev-parse", &format!("{tip}:{MODEL}")])?;
    let blob = blob.trim();
    let stored = root.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&stored)?.permissions().mode() & 0o777,
            0o444
        );
    }
    // Nothing outside the new branch moved.
    assert_eq!(fixture.head()?, base);
    assert_eq!(git(root, &["status", "--porcelain"])?, "");
    Ok(())
}

#[test]
fn a_sha256_repository_gets_the_same_fix_through_fast_import() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    git(
        root,
        &["init", "-q", "-b", "main", "--object-format=sha256", "."],
    )?;
    std::fs::create_dir_all(root.join("analytics/models/staging"))?;
    std::fs::write(root.join("analytics/dbt_project.yml"), "name: analytics\n")?;
    std::fs::write(root.join(MODEL), ORIGINAL)?;
    git(root, &["add", "-A"])?;
    git(root, &["commit", "-q", "-m", "initial"])?;
    let base = git(root, &["rev-parse", "HEAD"])?.trim().to_owned();
    assert_eq!(base.len(), 64);
    let repo = LocalRepo::open(root)?;
    let committed = repo.commit_to_new_branch(&request(
        "dbt-ops/fix/stg_orders/5a256000",
        &base,
        MODEL,
        FIXED,
    ))?;
    assert_eq!(committed.commit_sha.len(), 64);
    git(root, &["fsck", "--strict", "--no-dangling"])?;
    assert_eq!(
        git(
            root,
            &["show", &format!("{}:{MODEL}", committed.commit_sha)]
        )?,
        FIXED
    );
    assert_eq!(
        git(root, &["rev-parse", &format!("{}^", committed.commit_sha)])?.trim(),
        base
    );
    Ok(())
}

#[test]
fn the_checked_out_branch_is_read_from_head_in_a_linked_worktree_and_refused() -> TestResult {
    let fixture = Fixture::new()?;
    let root = fixture.root();
    let base = fixture.head()?;
    let linked = tempfile::tempdir()?;
    let linked_dir = linked.path().join("wt");
    let branch = "dbt-ops/fix/stg_orders/0c0c0c0c";
    git(
        root,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            linked_dir.to_str().ok_or("path")?,
        ],
    )?;
    let repo = LocalRepo::open(&linked_dir)?;
    assert_eq!(repo.current_branch()?.as_deref(), Some(branch));
    assert_eq!(
        LocalRepo::open(root)?.current_branch()?.as_deref(),
        Some("main")
    );
    // Detached: no branch.
    git(root, &["checkout", "-q", "--detach"])?;
    assert_eq!(LocalRepo::open(root)?.current_branch()?, None);
    // The linked worktree's own branch is refused before anything is written.
    let error = repo
        .commit_to_new_branch(&request(branch, &base, MODEL, FIXED))
        .expect_err("the checked-out branch must be refused");
    assert!(error.to_string().contains(branch), "{error}");
    Ok(())
}
