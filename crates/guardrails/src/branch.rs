//! Which branches dbt-ops may create: its own namespace, never a protected branch.

use crate::glob::{glob_matches, Separator};
use crate::{GuardrailError, ProtectedReason};

/// The namespace every branch dbt-ops writes lives in.
pub const FIX_BRANCH_PREFIX: &str = "dbt-ops/fix/";

/// How many characters of the incident id a branch name carries.
const SHORT_ID_LEN: usize = 8;

/// Keeps branch names readable and well below ref-name limits of hosting services.
const MAX_MODEL_SEGMENT_LEN: usize = 64;

/// The branches a fix must never be written to, besides `main` and `master`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BranchPolicy {
    /// Configured protected branches, as names or globs (`release/*`; `*` also matches `/`).
    pub protected: Vec<String>,
    /// The branch the repository has checked out, when known: writing to it would move the
    /// user's work under their feet.
    pub current_branch: Option<String>,
    /// The branch the merge request targets, when known.
    pub target_branch: Option<String>,
}

/// Refuses `branch` unless it is a valid git branch name under `dbt-ops/fix/` that is not
/// `main`, `master`, the current branch, the target branch or a configured protected
/// branch.
///
/// Comparisons ignore case: on case-insensitive file systems `Main` and `main` are the
/// same loose ref.
pub fn check_branch(branch: &str, protected: &BranchPolicy) -> Result<(), GuardrailError> {
    check_branch_name_format(branch)?;
    let refuse = |reason| GuardrailError::ProtectedBranch {
        branch: branch.to_owned(),
        reason,
    };
    if branch.eq_ignore_ascii_case("main") || branch.eq_ignore_ascii_case("master") {
        return Err(refuse(ProtectedReason::MainOrMaster));
    }
    let same = |other: &Option<String>| {
        other
            .as_deref()
            .map(|other| other.trim_start_matches("refs/heads/"))
            .is_some_and(|other| other.eq_ignore_ascii_case(branch))
    };
    if same(&protected.current_branch) {
        return Err(refuse(ProtectedReason::CurrentBranch));
    }
    if same(&protected.target_branch) {
        return Err(refuse(ProtectedReason::TargetBranch));
    }
    for pattern in &protected.protected {
        let pattern = pattern.trim();
        if glob_matches(
            pattern.trim_start_matches("refs/heads/"),
            branch,
            Separator::Branch,
        ) {
            return Err(refuse(ProtectedReason::Pattern(pattern.to_owned())));
        }
    }
    match branch.strip_prefix(FIX_BRANCH_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(GuardrailError::NotAFixBranch {
            branch: branch.to_owned(),
            prefix: FIX_BRANCH_PREFIX,
        }),
    }
}

/// Git's rules for a branch name (`git check-ref-format --branch`), checked here so that a
/// bad name is refused with a reason before any tool sees it.
pub fn check_branch_name_format(branch: &str) -> Result<(), GuardrailError> {
    let invalid = |reason| {
        Err(GuardrailError::InvalidBranchName {
            branch: branch.to_owned(),
            reason,
        })
    };
    if branch.is_empty() {
        return invalid("it is empty");
    }
    if branch.starts_with('-') {
        return invalid("it starts with '-'");
    }
    if branch == "@" || branch == "HEAD" {
        return invalid("it is a reserved name");
    }
    if branch
        .chars()
        .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return invalid("it contains a control character, a space or one of ~ ^ : ? * [ \\");
    }
    if branch.contains("..") {
        return invalid("it contains '..'");
    }
    if branch.contains("@{") {
        return invalid("it contains '@{'");
    }
    if branch.ends_with('.') {
        return invalid("it ends with '.'");
    }
    for segment in branch.split('/') {
        if segment.is_empty() {
            return invalid("it has an empty component (leading, trailing or double '/')");
        }
        if segment.starts_with('.') {
            return invalid("a component starts with '.'");
        }
        if segment.ends_with(".lock") {
            return invalid("a component ends with '.lock'");
        }
    }
    Ok(())
}

/// The branch for an incident's fix: `dbt-ops/fix/<model>/<incident-short-id>`.
///
/// The model name is lower-cased and sanitised to `[a-z0-9_-]` (anything else becomes
/// `-`, runs collapse, at most 64 characters); the short id is the first 8 characters of
/// the incident id after the same sanitising. Empty results fall back to `model` and
/// `incident` so the name is always valid.
pub fn fix_branch_name(model_name: &str, incident_id: &str) -> String {
    let mut model = sanitise_segment(model_name);
    if model.len() > MAX_MODEL_SEGMENT_LEN {
        model.truncate(MAX_MODEL_SEGMENT_LEN);
        model = model.trim_end_matches('-').to_owned();
    }
    if model.is_empty() {
        model = "model".to_owned();
    }
    let mut short_id: String = sanitise_segment(incident_id)
        .chars()
        .take(SHORT_ID_LEN)
        .collect();
    short_id = short_id.trim_end_matches('-').to_owned();
    if short_id.is_empty() {
        short_id = "incident".to_owned();
    }
    format!("{FIX_BRANCH_PREFIX}{model}/{short_id}")
}

/// The branch for one generation of an incident: [`fix_branch_name`] for the first
/// (generation 0), with `-g<n>` after the short id once the incident was opened again.
/// A reopened incident gets a branch of its own: the earlier generation's may still exist,
/// unmerged, with another fix, and a branch is never moved.
pub fn generation_branch_name(model_name: &str, incident_id: &str, generation: u32) -> String {
    let first = fix_branch_name(model_name, incident_id);
    if generation == 0 {
        first
    } else {
        format!("{first}-g{generation}")
    }
}

/// Lower-cases and keeps `[a-z0-9_-]`; every other run of characters becomes one `-`.
/// Leading and trailing `-` are trimmed so the segment never starts like an option.
fn sanitise_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars().flat_map(char::to_lowercase) {
        let keep = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        let next = if keep { c } else { '-' };
        if next == '-' && out.ends_with('-') {
            continue;
        }
        out.push(next);
    }
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_collapses_and_trims() {
        assert_eq!(sanitise_segment("  Stg Orders.v2!! "), "stg-orders-v2");
        assert_eq!(sanitise_segment("../../etc"), "etc");
        assert_eq!(sanitise_segment("Ünïcode_model"), "n-code_model");
    }

    #[test]
    fn long_model_names_are_capped() {
        let name = fix_branch_name(&"a".repeat(300), "12345678-aaaa");
        assert_eq!(name.len(), FIX_BRANCH_PREFIX.len() + 64 + 1 + 8);
    }

    #[test]
    fn a_reopened_incident_has_a_branch_of_its_own() {
        assert_eq!(
            generation_branch_name("stg_orders", "3f2a9c1e77", 0),
            fix_branch_name("stg_orders", "3f2a9c1e77")
        );
        let second = generation_branch_name("stg_orders", "3f2a9c1e77", 2);
        assert_eq!(second, "dbt-ops/fix/stg_orders/3f2a9c1e-g2");
        assert!(check_branch_name_format(&second).is_ok());
    }

    #[test]
    fn empty_parts_fall_back() {
        assert_eq!(fix_branch_name("!!!", "///"), "dbt-ops/fix/model/incident");
    }

    #[test]
    fn ref_format_rules() {
        for bad in [
            "",
            "-x",
            "@",
            "a b",
            "a~b",
            "a^b",
            "a:b",
            "a?b",
            "a*b",
            "a[b",
            "a\\b",
            "a..b",
            "a@{b",
            "a.",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a\nb",
        ] {
            assert!(
                check_branch_name_format(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(check_branch_name_format("dbt-ops/fix/stg_orders/3f2a9c1e").is_ok());
    }
}
