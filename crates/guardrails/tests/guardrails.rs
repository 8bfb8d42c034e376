//! The guardrails against real inputs: hostile paths, real symbolic links in a temporary
//! directory, every branch protection, and diffs applied with real `git apply` and `patch`.

use std::path::Path;
use std::process::Command;

use dbtops_guardrails::{
    check_branch, check_change_size, check_model_path, check_no_symlink_escape, check_sql_content,
    fix_branch_name, is_sensitive, unified_diff, BranchPolicy, GuardrailError, PathPolicy,
    ProtectedReason,
};

const MODEL: &str = "models/staging/stg_orders.sql";

fn policy() -> PathPolicy {
    PathPolicy {
        model_paths: vec!["models".into()],
        sensitive_globs: vec!["models/finance/**".into(), "models/**/pii_*.sql".into()],
    }
}

fn check(proposed: &str) -> Result<(), GuardrailError> {
    check_model_path(proposed, proposed, &policy())
}

#[test]
fn the_incident_model_is_accepted() {
    assert!(check_model_path(MODEL, MODEL, &policy()).is_ok());
}

#[test]
fn traversal_and_absolute_paths_are_refused() {
    assert!(matches!(
        check("../x.sql"),
        Err(GuardrailError::ParentSegment { .. })
    ));
    assert!(matches!(
        check("models/../../etc/passwd.sql"),
        Err(GuardrailError::ParentSegment { .. })
    ));
    assert!(matches!(
        check("models/.."),
        Err(GuardrailError::ParentSegment { .. })
    ));
    assert!(matches!(
        check("/abs.sql"),
        Err(GuardrailError::AbsolutePath { .. })
    ));
    assert!(matches!(
        check("/work/models/x.sql"),
        Err(GuardrailError::AbsolutePath { .. })
    ));
    assert!(matches!(
        check("models\\x.sql"),
        Err(GuardrailError::Backslash { .. })
    ));
    assert!(matches!(
        check("models\\..\\..\\x.sql"),
        Err(GuardrailError::Backslash { .. })
    ));
    assert!(matches!(
        check("models/x.sql\0.txt"),
        Err(GuardrailError::ControlCharacter { .. })
    ));
    assert!(matches!(check(""), Err(GuardrailError::EmptyPath { .. })));
}

#[test]
fn paths_must_be_normalised() {
    for path in [
        "./models/x.sql",
        "models/./x.sql",
        "models//x.sql",
        "models/x.sql/",
    ] {
        assert!(
            matches!(check(path), Err(GuardrailError::NotNormalised { .. })),
            "{path}"
        );
    }
}

#[test]
fn only_sql_files_are_accepted() {
    for path in [
        "models/schema.yml",
        "profiles.yml",
        "dbt_project.yml",
        "models/x.sql.bak",
        "models/x.SQL",
        "models/x",
    ] {
        assert!(
            matches!(check(path), Err(GuardrailError::NotSql { .. })),
            "{path}"
        );
    }
    // CI files are hidden directories, and not .sql either.
    assert!(matches!(
        check(".github/workflows/ci.yml"),
        Err(GuardrailError::HiddenSegment { .. })
    ));
    assert!(matches!(
        check("models/.git/hooks/x.sql"),
        Err(GuardrailError::HiddenSegment { .. })
    ));
}

#[test]
fn paths_outside_the_model_paths_are_refused() {
    for path in [
        "macros/x.sql",
        "x.sql",
        "analyses/x.sql",
        "modelsx/x.sql",
        "models.sql",
    ] {
        assert!(
            matches!(check(path), Err(GuardrailError::OutsideModelPaths { .. })),
            "{path}"
        );
    }
    let no_model_paths = PathPolicy::default();
    assert!(matches!(
        check_model_path(MODEL, MODEL, &no_model_paths),
        Err(GuardrailError::OutsideModelPaths { .. })
    ));
}

#[test]
fn a_different_model_than_the_incidents_is_refused() {
    let error = check_model_path("models/staging/stg_customers.sql", MODEL, &policy());
    assert!(matches!(
        error,
        Err(GuardrailError::NotTheIncidentModel { .. })
    ));
    let message = error.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("stg_customers.sql") && message.contains("stg_orders.sql"));
}

#[cfg(unix)]
#[test]
fn symbolic_links_out_of_the_project_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::symlink;

    let outside = tempfile::tempdir()?;
    std::fs::write(outside.path().join("secret.sql"), "select 1")?;
    let project = tempfile::tempdir()?;
    let models = project.path().join("models");
    std::fs::create_dir_all(models.join("staging"))?;
    std::fs::write(models.join("staging/stg_orders.sql"), "select 1")?;

    // A plain file, and a file that does not exist yet, are fine.
    check_no_symlink_escape(project.path(), MODEL)?;
    check_no_symlink_escape(project.path(), "models/staging/new_model.sql")?;

    // A directory link pointing outside.
    symlink(outside.path(), models.join("linked"))?;
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/linked/secret.sql"),
        Err(GuardrailError::SymlinkEscape { .. })
    ));
    // Also when the file below it does not exist.
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/linked/new.sql"),
        Err(GuardrailError::SymlinkEscape { .. })
    ));

    // A file link pointing outside.
    symlink(outside.path().join("secret.sql"), models.join("escape.sql"))?;
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/escape.sql"),
        Err(GuardrailError::SymlinkEscape { .. })
    ));

    // A relative link that climbs out.
    symlink("../../..", models.join("staging/up"))?;
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/staging/up/x.sql"),
        Err(GuardrailError::SymlinkEscape { .. })
    ));

    // A dangling link.
    symlink(outside.path().join("gone"), models.join("dangling"))?;
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/dangling/x.sql"),
        Err(GuardrailError::DanglingSymlink { .. })
    ));

    // A directory link that stays inside is fine; a file link inside would edit another
    // file, so it is refused.
    symlink("staging", models.join("also_staging"))?;
    check_no_symlink_escape(project.path(), "models/also_staging/stg_orders.sql")?;
    symlink("../dbt_project.yml", models.join("sneaky.sql"))?;
    std::fs::write(project.path().join("dbt_project.yml"), "name: x")?;
    assert!(matches!(
        check_no_symlink_escape(project.path(), "models/sneaky.sql"),
        Err(GuardrailError::SymlinkedFile { .. })
    ));

    // The project directory may itself be reached through a link.
    let via_link = outside.path().join("project_link");
    symlink(project.path(), &via_link)?;
    check_no_symlink_escape(&via_link, MODEL)?;

    // Lexical checks apply here too.
    assert!(matches!(
        check_no_symlink_escape(project.path(), "../x.sql"),
        Err(GuardrailError::ParentSegment { .. })
    ));
    Ok(())
}

fn protected_reason(branch: &str, policy: &BranchPolicy) -> Option<ProtectedReason> {
    match check_branch(branch, policy) {
        Err(GuardrailError::ProtectedBranch { reason, .. }) => Some(reason),
        _ => None,
    }
}

#[test]
fn every_protected_branch_is_refused() {
    let fix = fix_branch_name("stg_orders", "3f2a9c1e-7b7d-4c6e-9d55-0a1b2c3d4e5f");
    let policy = BranchPolicy {
        protected: vec![
            "release/*".into(),
            "dbt-ops/fix/finance_*".into(),
            "prod".into(),
        ],
        current_branch: Some("dbt-ops/fix/current_model/aaaaaaaa".into()),
        target_branch: Some("develop".into()),
    };
    assert!(check_branch(&fix, &policy).is_ok());

    for branch in ["main", "master", "MAIN", "Master"] {
        assert_eq!(
            protected_reason(branch, &policy),
            Some(ProtectedReason::MainOrMaster)
        );
    }
    assert_eq!(
        protected_reason("dbt-ops/fix/current_model/aaaaaaaa", &policy),
        Some(ProtectedReason::CurrentBranch)
    );
    assert_eq!(
        protected_reason("develop", &policy),
        Some(ProtectedReason::TargetBranch)
    );
    let target_is_a_fix_branch = BranchPolicy {
        target_branch: Some(fix.clone()),
        ..BranchPolicy::default()
    };
    assert_eq!(
        protected_reason(&fix, &target_is_a_fix_branch),
        Some(ProtectedReason::TargetBranch)
    );
    assert_eq!(
        protected_reason("release/2026.11", &policy),
        Some(ProtectedReason::Pattern("release/*".into()))
    );
    assert_eq!(
        protected_reason("release/2026/hotfix", &policy),
        Some(ProtectedReason::Pattern("release/*".into()))
    );
    assert_eq!(
        protected_reason("dbt-ops/fix/finance_revenue/12345678", &policy),
        Some(ProtectedReason::Pattern("dbt-ops/fix/finance_*".into()))
    );
    assert_eq!(
        protected_reason("prod", &policy),
        Some(ProtectedReason::Pattern("prod".into()))
    );

    // Outside the namespace.
    for branch in ["feature/x", "dbt-ops/fix", "dbt-ops/fixes/x/y", "dbt-ops/x"] {
        assert!(
            matches!(
                check_branch(branch, &policy),
                Err(GuardrailError::NotAFixBranch { .. })
            ),
            "{branch}"
        );
    }
    // Not a valid ref name at all.
    for branch in [
        "dbt-ops/fix/",
        "dbt-ops/fix/a..b/c",
        "dbt-ops/fix/a b/c",
        "-dbt-ops/fix/a/b",
        "dbt-ops/fix/a/b.lock",
    ] {
        assert!(
            matches!(
                check_branch(branch, &policy),
                Err(GuardrailError::InvalidBranchName { .. })
            ),
            "{branch}"
        );
    }
}

#[test]
fn fix_branch_names_are_sanitised_and_short() {
    assert_eq!(
        fix_branch_name("stg_orders", "3f2a9c1e-7b7d-4c6e-9d55-0a1b2c3d4e5f"),
        "dbt-ops/fix/stg_orders/3f2a9c1e"
    );
    assert_eq!(
        fix_branch_name("Marts.Finance Revenue/../x", "INC:42"),
        "dbt-ops/fix/marts-finance-revenue-x/inc-42"
    );
    for (model, incident) in [
        ("..", ".."),
        ("a.lock", "b.lock"),
        ("@{x}", "~^:?*[\\"),
        ("", ""),
    ] {
        let name = fix_branch_name(model, incident);
        assert!(
            check_branch(&name, &BranchPolicy::default()).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn sensitive_globs() {
    let policy = policy();
    assert!(is_sensitive("models/finance/revenue.sql", &policy));
    assert!(is_sensitive("models/finance/deep/er/revenue.sql", &policy));
    assert!(is_sensitive("models/pii_users.sql", &policy));
    assert!(is_sensitive("models/marts/pii_users.sql", &policy));
    assert!(!is_sensitive("models/marts/users.sql", &policy));
    assert!(!is_sensitive("models/financial_public/x.sql", &policy));
    assert!(!is_sensitive("models/finance.sql", &policy));
    assert!(!is_sensitive(MODEL, &PathPolicy::default()));
}

#[test]
fn ddl_is_refused_but_the_same_words_in_strings_comments_and_jinja_are_not() {
    let max = 64 * 1024;
    assert!(matches!(
        check_sql_content("select 1;\ndrop table analytics.orders", max),
        Err(GuardrailError::ForbiddenStatement { ref keyword, line: 2 }) if keyword == "drop"
    ));
    for sql in [
        "select 'drop table x' as s",
        "-- drop table x\nselect 1",
        "/* drop table x */ select 1",
        "{# drop table x #} select 1",
        "{% set s = 'drop table x' %} select 1",
        "{{ 'drop table x' }}",
    ] {
        assert!(check_sql_content(sql, max).is_ok(), "{sql}");
    }
}

#[test]
fn the_change_size_cap_applies() {
    let original: String = (1..=20)
        .map(|i| format!("select {i} as c{i} union all\n"))
        .collect();
    let fixed = original.replacen("select 3 as c3", "select 3 as c_three", 1);
    assert!(check_change_size(&original, &fixed, 0.2).is_ok());
    let rewritten: String = (1..=20)
        .map(|i| format!("select {i} as d{i} union all\n"))
        .collect();
    assert!(matches!(
        check_change_size(&original, &rewritten, 0.2),
        Err(GuardrailError::ChangeTooLarge { .. })
    ));
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let output = Command::new(program).args(args).current_dir(dir).output()?;
    if !output.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Writes `original` to `models/m.sql` in a fresh directory, applies the diff with `tool`
/// and returns the resulting file.
fn apply_with(
    tool: &str,
    original: &str,
    fixed: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("models"))?;
    std::fs::write(dir.path().join("models/m.sql"), original)?;
    let diff = unified_diff("models/m.sql", original, fixed);
    std::fs::write(dir.path().join("fix.patch"), &diff)?;
    match tool {
        "git" => {
            run(dir.path(), "git", &["apply", "--check", "fix.patch"])?;
            run(dir.path(), "git", &["apply", "fix.patch"])?;
        }
        _ => {
            run(
                dir.path(),
                "patch",
                &["-p1", "--dry-run", "-i", "fix.patch"],
            )?;
            run(dir.path(), "patch", &["-p1", "-i", "fix.patch"])?;
        }
    }
    Ok(std::fs::read_to_string(dir.path().join("models/m.sql"))?)
}

#[test]
fn the_diff_applies_with_git_apply_and_patch() -> Result<(), Box<dyn std::error::Error>> {
    let original = "with orders as (\n    select * from {{ ref('raw_orders') }}\n),\n\nfinal as (\n    select\n        order_id,\n        custmer_id,\n        amount\n    from orders\n)\n\nselect * from final\n";
    let fixed = original.replace("custmer_id", "customer_id");
    for tool in ["git", "patch"] {
        assert_eq!(apply_with(tool, original, &fixed)?, fixed, "{tool}");
    }
    Ok(())
}

#[test]
fn generated_diffs_apply_with_git_apply() -> Result<(), Box<dyn std::error::Error>> {
    // Deterministic pseudo-random edits, including edits at both ends and to the final
    // newline, each checked by applying the diff with git and comparing the bytes.
    let mut state = 42u64;
    let mut next = |bound: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % bound
    };
    let mut cases = vec![
        ("a\nb\nc".to_owned(), "a\nb\nc\n".to_owned()),
        ("a\nb\nc\n".to_owned(), "a\nb\nc".to_owned()),
        ("x\n".to_owned(), "y\nx\n".to_owned()),
    ];
    for _ in 0..25 {
        let lines = 5 + next(40);
        let original: Vec<String> = (0..lines).map(|i| format!("  col_{i},")).collect();
        let mut fixed = original.clone();
        for _ in 0..1 + next(4) {
            let at = next(fixed.len() as u64 + 1) as usize;
            match next(3) {
                0 if at < fixed.len() => {
                    fixed.remove(at);
                }
                1 if at < fixed.len() => fixed[at] = format!("  changed_{at},"),
                _ => fixed.insert(at, format!("  inserted_{at},")),
            }
        }
        let end = if next(4) == 0 { "" } else { "\n" };
        cases.push((original.join("\n") + "\n", fixed.join("\n") + end));
    }
    for (original, fixed) in cases {
        if original == fixed {
            continue;
        }
        assert_eq!(apply_with("git", &original, &fixed)?, fixed);
    }
    Ok(())
}
