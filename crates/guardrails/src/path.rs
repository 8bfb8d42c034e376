//! Which files a proposal may write: path shape, model paths, symbolic links, sensitivity.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::glob::{glob_matches, Separator};
use crate::GuardrailError;

/// Where in a dbt project a fix may be written, and which paths need an owner's review.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPolicy {
    /// The project's model directories relative to the project directory (dbt's
    /// `model-paths`, usually `["models"]`); a fix may be written only below one of them.
    pub model_paths: Vec<String>,
    /// Globs (`**`, `*`, `?`) relative to the project directory, e.g. `models/finance/**`,
    /// marking paths whose fixes are refused or labelled for owner review.
    pub sensitive_globs: Vec<String>,
}

/// Checks that `path` is relative and normalised: not empty, no NUL byte or other control
/// character, no backslash, not absolute, no `..`, no `.` and no empty segments.
///
/// This is the purely lexical part of [`check_model_path`]; other crates use it for any
/// path they are about to hand to a tool (e.g. a path inside a git tree).
pub fn check_relative_path(path: &str) -> Result<(), GuardrailError> {
    let refused = || path.to_owned();
    if path.is_empty() {
        return Err(GuardrailError::EmptyPath { path: refused() });
    }
    if path.chars().any(char::is_control) {
        return Err(GuardrailError::ControlCharacter { path: refused() });
    }
    if path.contains('\\') {
        return Err(GuardrailError::Backslash { path: refused() });
    }
    if path.starts_with('/') || has_drive_prefix(path) {
        return Err(GuardrailError::AbsolutePath { path: refused() });
    }
    // Traversal is reported before mere untidiness because it is the more serious finding.
    if path.split('/').any(|segment| segment == "..") {
        return Err(GuardrailError::ParentSegment { path: refused() });
    }
    if path
        .split('/')
        .any(|segment| segment.is_empty() || segment == ".")
    {
        return Err(GuardrailError::NotNormalised { path: refused() });
    }
    Ok(())
}

/// `C:` or `c:/…`: absolute on Windows, and a colon has no business in a model path anyway.
fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Checks that a proposal may write `proposed`.
///
/// The proposal may write only `expected_model_path` (the incident's model), and that path
/// must be relative and normalised (see [`check_relative_path`]), contain no hidden segment
/// (`.git`, `.github`), end in `.sql` and sit under one of `policy.model_paths`. Because
/// only `.sql` files pass, `profiles.yml`, `dbt_project.yml` and CI files are out of reach
/// by construction.
pub fn check_model_path(
    proposed: &str,
    expected_model_path: &str,
    policy: &PathPolicy,
) -> Result<(), GuardrailError> {
    check_relative_path(proposed)?;
    if proposed.split('/').any(|segment| segment.starts_with('.')) {
        return Err(GuardrailError::HiddenSegment {
            path: proposed.to_owned(),
        });
    }
    // Lower-case `.sql` only: dbt ignores `x.SQL`, so such a file is not a model.
    if !proposed.ends_with(".sql") {
        return Err(GuardrailError::NotSql {
            path: proposed.to_owned(),
        });
    }
    let mut inside = false;
    for model_path in &policy.model_paths {
        match normalise_model_path(model_path)? {
            // `model-paths: ["."]` makes the whole project the model directory.
            None => inside = true,
            Some(prefix) => {
                inside |= proposed
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'));
            }
        }
    }
    if !inside {
        return Err(GuardrailError::OutsideModelPaths {
            path: proposed.to_owned(),
            model_paths: policy.model_paths.clone(),
        });
    }
    if proposed != expected_model_path {
        return Err(GuardrailError::NotTheIncidentModel {
            proposed: proposed.to_owned(),
            expected: expected_model_path.to_owned(),
        });
    }
    Ok(())
}

/// Checks that a lineage-scoped proposal may also write `proposed`, an ancestor of the
/// failing model: only when lineage fixes are enabled (`lineage_enabled`, from the
/// checking service's own settings, never from the message), only the path of one of the
/// incident's ancestor models, and under the same rules as the failing model's path.
pub fn check_upstream_edit_path(
    proposed: &str,
    ancestor_paths: &[String],
    lineage_enabled: bool,
    policy: &PathPolicy,
) -> Result<(), GuardrailError> {
    if !lineage_enabled {
        return Err(GuardrailError::LineageDisabled {
            path: proposed.to_owned(),
        });
    }
    check_model_path(proposed, proposed, policy)?;
    if !ancestor_paths.iter().any(|ancestor| ancestor == proposed) {
        return Err(GuardrailError::NotAnAncestor {
            path: proposed.to_owned(),
            ancestors: ancestor_paths.to_vec(),
        });
    }
    Ok(())
}

/// What a lineage-scoped fix may reach besides the failing model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageScope {
    /// `fixer.fix_scope = "lineage"` in the checking service's own settings.
    pub enabled: bool,
    /// The paths of the failing model's ancestor models, as the evidence lists them.
    pub ancestor_paths: Vec<String>,
}

/// Every check one upstream edit of a lineage-scoped proposal passes, as the failing
/// model's own edit does: the path ([`check_upstream_edit_path`]), symbolic links when
/// the project is on this machine, content and size, and no new Jinja side effects
/// against the ancestor's `original_sql`.
pub fn check_upstream_edit(
    path: &str,
    fixed_sql: &str,
    original_sql: &str,
    scope: &LineageScope,
    policy: &PathPolicy,
    project_dir: Option<&Path>,
    max_bytes: usize,
) -> Result<(), GuardrailError> {
    check_upstream_edit_path(path, &scope.ancestor_paths, scope.enabled, policy)?;
    if let Some(project_dir) = project_dir {
        check_no_symlink_escape(project_dir, path)?;
    }
    crate::check_sql_content(fixed_sql, max_bytes)?;
    crate::check_jinja_side_effects(original_sql, fixed_sql)
}

/// Trims `./` prefixes and trailing `/` from a configured model path; `None` means the
/// project root. A model path that would itself escape the project is a policy error.
fn normalise_model_path(model_path: &str) -> Result<Option<&str>, GuardrailError> {
    let mut trimmed = model_path.trim();
    while let Some(rest) = trimmed.strip_prefix("./") {
        trimmed = rest;
    }
    let trimmed = trimmed.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        return Ok(None);
    }
    check_relative_path(trimmed).map_err(|error| {
        GuardrailError::InvalidPolicy(format!("model path {model_path:?}: {error}"))
    })?;
    Ok(Some(trimmed))
}

/// Resolves `project_dir.join(relative_path)` on the file system and refuses it when the
/// path, or any directory on the way inside the project, is a symbolic link that resolves
/// outside `project_dir` (or dangles), or when the file itself is a symbolic link.
///
/// Directory links that stay inside the project are allowed. Components that do not exist
/// yet end the walk: nothing below them can be a link. The file-system state can change
/// after the check, so writers should still write through this path only, promptly.
pub fn check_no_symlink_escape(
    project_dir: &Path,
    relative_path: &str,
) -> Result<(), GuardrailError> {
    check_relative_path(relative_path)?;
    let root = canonicalize(project_dir)?;
    let segments: Vec<&str> = relative_path.split('/').collect();
    let mut current = root.clone();
    for (index, segment) in segments.iter().enumerate() {
        current.push(segment);
        let metadata = match std::fs::symlink_metadata(&current) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(GuardrailError::Io {
                    path: current,
                    source,
                })
            }
        };
        if !metadata.file_type().is_symlink() {
            continue;
        }
        let resolved = match std::fs::canonicalize(&current) {
            Ok(resolved) => resolved,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(GuardrailError::DanglingSymlink {
                    path: relative_path.to_owned(),
                    symlink: current,
                })
            }
            Err(source) => {
                return Err(GuardrailError::Io {
                    path: current,
                    source,
                })
            }
        };
        if !resolved.starts_with(&root) {
            return Err(GuardrailError::SymlinkEscape {
                path: relative_path.to_owned(),
                symlink: current,
                resolved,
                project_dir: root,
            });
        }
        if index + 1 == segments.len() {
            return Err(GuardrailError::SymlinkedFile {
                path: relative_path.to_owned(),
                resolved,
            });
        }
    }
    // Belt and braces: the whole path, resolved at once, must still be inside.
    let resolved = canonicalize(&current)?;
    if !resolved.starts_with(&root) {
        return Err(GuardrailError::SymlinkEscape {
            path: relative_path.to_owned(),
            symlink: current,
            resolved,
            project_dir: root,
        });
    }
    Ok(())
}

fn canonicalize(path: &Path) -> Result<PathBuf, GuardrailError> {
    std::fs::canonicalize(path).map_err(|source| GuardrailError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether `path` (relative to the project directory) matches one of the sensitive globs.
///
/// `**` crosses directories, `*` and `?` stay within one; a glob that matches a directory
/// also covers everything below it; matching ignores case (see the `glob` module).
pub fn is_sensitive(path: &str, policy: &PathPolicy) -> bool {
    let mut path = path;
    while let Some(rest) = path.strip_prefix("./") {
        path = rest;
    }
    policy
        .sensitive_globs
        .iter()
        .any(|glob| glob_matches(glob.trim(), path, Separator::Path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PathPolicy {
        PathPolicy {
            model_paths: vec!["models".into(), "./other_models/".into()],
            sensitive_globs: vec!["models/finance/**".into(), "**/pii_*.sql".into()],
        }
    }

    #[test]
    fn an_upstream_edit_needs_lineage_an_ancestor_path_and_the_model_path_rules() {
        let ancestors = vec![
            "models/staging/stg_orders.sql".to_owned(),
            "models/staging/../../profiles.sql".to_owned(),
        ];
        let ok = "models/staging/stg_orders.sql";
        assert!(check_upstream_edit_path(ok, &ancestors, true, &policy()).is_ok());
        assert!(matches!(
            check_upstream_edit_path(ok, &ancestors, false, &policy()),
            Err(GuardrailError::LineageDisabled { .. })
        ));
        assert!(matches!(
            check_upstream_edit_path("models/marts/orders.sql", &ancestors, true, &policy()),
            Err(GuardrailError::NotAnAncestor { .. })
        ));
        // An ancestor list from the message does not widen the path rules.
        assert!(matches!(
            check_upstream_edit_path(&ancestors[1], &ancestors, true, &policy()),
            Err(GuardrailError::ParentSegment { .. })
        ));
    }

    #[test]
    fn model_paths_are_normalised_before_comparing() {
        let p = "other_models/x.sql";
        assert!(check_model_path(p, p, &policy()).is_ok());
    }

    #[test]
    fn a_model_path_prefix_is_not_a_directory_prefix() {
        let p = "models_old/x.sql";
        assert!(matches!(
            check_model_path(p, p, &policy()),
            Err(GuardrailError::OutsideModelPaths { .. })
        ));
    }

    #[test]
    fn a_project_root_model_path_allows_any_sql_file() {
        let policy = PathPolicy {
            model_paths: vec![".".into()],
            sensitive_globs: vec![],
        };
        assert!(check_model_path("x.sql", "x.sql", &policy).is_ok());
    }

    #[test]
    fn an_escaping_model_path_is_a_policy_error() {
        let policy = PathPolicy {
            model_paths: vec!["../elsewhere".into()],
            sensitive_globs: vec![],
        };
        let p = "../elsewhere/x.sql";
        // The proposed path fails first; a clean path then meets the broken policy.
        assert!(matches!(
            check_model_path(p, p, &policy),
            Err(GuardrailError::ParentSegment { .. })
        ));
        assert!(matches!(
            check_model_path("m/x.sql", "m/x.sql", &policy),
            Err(GuardrailError::InvalidPolicy(_))
        ));
    }

    #[test]
    fn drive_letters_are_absolute() {
        assert!(matches!(
            check_relative_path("C:/models/x.sql"),
            Err(GuardrailError::AbsolutePath { .. })
        ));
    }

    #[test]
    fn sensitivity_ignores_a_leading_dot_slash() {
        assert!(is_sensitive("./models/finance/rev.sql", &policy()));
        assert!(is_sensitive("models/marts/pii_users.sql", &policy()));
        assert!(!is_sensitive("models/marts/users.sql", &policy()));
    }
}
