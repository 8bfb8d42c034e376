//! The guardrails once more, in delivery (defence in depth: delivery trusts no upstream
//! service with the repository), and where the model file sits in the repository.

use std::path::{Component, Path, PathBuf};

use dbtops_guardrails::{GuardrailError, LineageScope, PathPolicy};
use dbtops_proto::v1;
use dbtops_settings::{FixScope, SensitiveAction, Settings};

use crate::Failure;

/// Largest file delivery will commit, in bytes.
pub const MAX_SQL_BYTES: usize = 512 * 1024;

/// What the checks found that changes how the fix is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedFix {
    /// The path matches `delivery.sensitive_paths` and `sensitive_action = "draft"`: open
    /// it for its owners' review instead of refusing it.
    pub needs_owner_review: bool,
}

/// Where the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkout {
    /// The project directory is on this machine and will be written through (local git):
    /// it must exist, and symbolic links in it are checked.
    Required,
    /// The change goes through a forge's API (or nowhere, in shadow mode): symbolic links
    /// are checked when the project happens to be on this machine.
    IfPresent,
}

/// The model paths a fix may touch: configured, else the project's own, else `models`.
pub fn model_paths(settings: &Settings, project: &v1::ProjectRef) -> Vec<String> {
    if !settings.delivery.model_paths.is_empty() {
        settings.delivery.model_paths.clone()
    } else if !project.model_paths.is_empty() {
        project.model_paths.clone()
    } else {
        vec!["models".to_owned()]
    }
}

/// Every check a proposal passes before delivery writes anything: the incident's own model
/// file under the model paths, no symbolic-link escape, SQL content and size, no new Jinja
/// side effects, the share of lines changed, and the sensitive paths.
pub fn check_fix(
    settings: &Settings,
    validated: &v1::FixValidated,
    checkout: Checkout,
) -> Result<CheckedFix, Failure> {
    let default_incident = v1::FailureDetected::default();
    let incident = validated.incident.as_ref().unwrap_or(&default_incident);
    let default_proposal = v1::FixProposal::default();
    let proposal = validated.proposal.as_ref().unwrap_or(&default_proposal);
    let model = incident.model.clone().unwrap_or_default();
    let project = incident.project.clone().unwrap_or_default();
    let project_dir = PathBuf::from(&project.project_dir);

    let policy = PathPolicy {
        model_paths: model_paths(settings, &project),
        sensitive_globs: settings.delivery.sensitive_paths.clone(),
    };
    let refused = |error: GuardrailError| Failure::Refused(error.to_string());
    dbtops_guardrails::check_model_path(&proposal.model_path, &model.path, &policy)
        .map_err(refused)?;
    let sensitive = dbtops_guardrails::is_sensitive(&proposal.model_path, &policy);
    if sensitive && settings.delivery.sensitive_action == SensitiveAction::Refuse {
        return Err(refused_as_sensitive(&proposal.model_path));
    }
    let check_links = match checkout {
        Checkout::Required => true,
        Checkout::IfPresent => !project.project_dir.is_empty() && project_dir.is_dir(),
    };
    if check_links {
        dbtops_guardrails::check_no_symlink_escape(&project_dir, &proposal.model_path)
            .map_err(refused)?;
    }
    dbtops_guardrails::check_sql_content(&proposal.fixed_sql, MAX_SQL_BYTES).map_err(refused)?;
    let original = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    dbtops_guardrails::check_jinja_side_effects(original, &proposal.fixed_sql).map_err(refused)?;
    if !original.is_empty() {
        dbtops_guardrails::check_change_size(
            original,
            &proposal.fixed_sql,
            settings.delivery.max_changed_share,
        )
        .map_err(refused)?;
    }
    let upstream_sensitive = check_upstream_edits(settings, incident, proposal, &policy, checkout)?;
    Ok(CheckedFix {
        needs_owner_review: sensitive || upstream_sensitive,
    })
}

fn refused_as_sensitive(path: &str) -> Failure {
    Failure::Refused(format!(
        "{path} matches delivery.sensitive_paths: refused for owner review \
         (delivery.sensitive_action = \"refuse\")"
    ))
}

/// A lineage-scoped proposal's edits to ancestor models, each under the rules of the
/// failing model's own edit (refused unless this delivery's own settings enable lineage
/// fixes). Returns whether one of them is a sensitive path.
fn check_upstream_edits(
    settings: &Settings,
    incident: &v1::FailureDetected,
    proposal: &v1::FixProposal,
    policy: &PathPolicy,
    checkout: Checkout,
) -> Result<bool, Failure> {
    if proposal.upstream_edits.is_empty() {
        return Ok(false);
    }
    let refused = |error: GuardrailError| Failure::Refused(error.to_string());
    let project = incident.project.clone().unwrap_or_default();
    let project_dir = PathBuf::from(&project.project_dir);
    let on_this_machine = match checkout {
        Checkout::Required => true,
        Checkout::IfPresent => !project.project_dir.is_empty() && project_dir.is_dir(),
    };
    let ancestors = incident
        .evidence
        .as_ref()
        .map(|evidence| evidence.ancestor_models.as_slice())
        .unwrap_or_default();
    let scope = LineageScope {
        enabled: settings.fixer.fix_scope == FixScope::Lineage,
        ancestor_paths: ancestors
            .iter()
            .map(|ancestor| ancestor.path.clone())
            .collect(),
    };
    let mut sensitive = false;
    for edit in &proposal.upstream_edits {
        let original = ancestors
            .iter()
            .find(|ancestor| ancestor.path == edit.path)
            .map(|ancestor| ancestor.raw_sql.as_str())
            .unwrap_or_default();
        dbtops_guardrails::check_upstream_edit(
            &edit.path,
            &edit.fixed_sql,
            original,
            &scope,
            policy,
            on_this_machine.then_some(project_dir.as_path()),
            MAX_SQL_BYTES,
        )
        .map_err(refused)?;
        if !original.is_empty() {
            dbtops_guardrails::check_change_size(
                original,
                &edit.fixed_sql,
                settings.delivery.max_changed_share,
            )
            .map_err(refused)?;
        }
        if dbtops_guardrails::is_sensitive(&edit.path, policy) {
            if settings.delivery.sensitive_action == SensitiveAction::Refuse {
                return Err(refused_as_sensitive(&edit.path));
            }
            sensitive = true;
        }
    }
    Ok(sensitive)
}

/// The model file's path in the forge repository: the project's directory inside the
/// repository (`delivery.project_subdir`, else the incident's `project_dir` relative to
/// its `repo_dir`, else the root) joined with the model path.
///
/// Lexical on purpose: the delivery service need not have the checkout, only the paths
/// the submitting machine reported.
pub fn path_in_repository(
    settings: &Settings,
    project: &v1::ProjectRef,
    model_path: &str,
) -> Result<String, Failure> {
    let refused = |error: GuardrailError| Failure::Refused(error.to_string());
    let configured = settings
        .delivery
        .project_subdir
        .trim()
        .trim_end_matches('/');
    let subdir = if configured == "." {
        String::new()
    } else if !configured.is_empty() {
        dbtops_guardrails::check_relative_path(configured).map_err(|error| {
            Failure::Failed(format!("delivery.project_subdir is not usable: {error}"))
        })?;
        configured.to_owned()
    } else if project.repo_dir.is_empty() || project.project_dir.is_empty() {
        String::new()
    } else {
        relative_dir(
            Path::new(&project.repo_dir),
            Path::new(&project.project_dir),
        )
        .ok_or_else(|| {
            Failure::Refused(format!(
                "the project {} is not inside its repository {}; set delivery.project_subdir",
                project.project_dir, project.repo_dir
            ))
        })?
    };
    let path = if subdir.is_empty() {
        model_path.to_owned()
    } else {
        format!("{subdir}/{model_path}")
    };
    dbtops_guardrails::check_relative_path(&path).map_err(refused)?;
    Ok(path)
}

/// `dir` relative to `root` as `a/b`, lexically; `None` when it is not below `root` or
/// either path has `..` in it.
fn relative_dir(root: &Path, dir: &Path) -> Option<String> {
    let normal = |path: &Path| -> Option<Vec<String>> {
        path.components()
            .filter(|component| !matches!(component, Component::CurDir))
            .map(|component| match component {
                Component::Normal(part) => part.to_str().map(str::to_owned),
                Component::RootDir | Component::Prefix(_) => Some(String::new()),
                _ => None,
            })
            .collect()
    };
    let root = normal(root)?;
    let dir = normal(dir)?;
    let rest = dir.strip_prefix(root.as_slice())?;
    Some(rest.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(repo: &str, dir: &str) -> v1::ProjectRef {
        v1::ProjectRef {
            repo_dir: repo.into(),
            project_dir: dir.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_path_joins_the_projects_place_in_the_repository() {
        let settings = Settings::default();
        let path = |repo: &str, dir: &str| {
            path_in_repository(&settings, &project(repo, dir), "models/a.sql").ok()
        };
        assert_eq!(
            path("/r", "/r/analytics/shop").as_deref(),
            Some("analytics/shop/models/a.sql")
        );
        assert_eq!(path("/r", "/r").as_deref(), Some("models/a.sql"));
        assert_eq!(path("/r/", "/r/./x/").as_deref(), Some("x/models/a.sql"));
        assert_eq!(path("", "/elsewhere").as_deref(), Some("models/a.sql"));
        assert_eq!(path("/r", "/other/x"), None);
        assert_eq!(path("/r", "/r/../etc"), None);
    }

    #[test]
    fn a_configured_subdir_wins() {
        let mut settings = Settings::default();
        settings.delivery.project_subdir = "dbt/".into();
        let found = path_in_repository(&settings, &project("/r", "/r/x"), "models/a.sql").ok();
        assert_eq!(found.as_deref(), Some("dbt/models/a.sql"));
        settings.delivery.project_subdir = ".".into();
        let found = path_in_repository(&settings, &project("/r", "/r/x"), "models/a.sql").ok();
        assert_eq!(found.as_deref(), Some("models/a.sql"));
        settings.delivery.project_subdir = "../up".into();
        assert!(path_in_repository(&settings, &project("/r", "/r/x"), "models/a.sql").is_err());
    }
}
