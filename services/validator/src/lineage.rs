//! A lineage-scoped proposal's edits to ancestor models (`fixer.fix_scope = "lineage"`):
//! each is held to the rules the failing model's own edit is held to.

use std::path::Path;

use dbtops_guardrails::{GuardrailError, LineageScope, PathPolicy};
use dbtops_proto::v1;

use crate::checks;
use crate::ladder::MAX_SQL_BYTES;

/// A proposal's upstream edits, each with the ancestor it rewrites (when the evidence
/// lists one at that path).
pub struct UpstreamEdits<'a> {
    edits: Vec<(&'a v1::ModelEdit, Option<&'a v1::AncestorModel>)>,
    ancestor_paths: Vec<String>,
}

impl<'a> UpstreamEdits<'a> {
    /// The upstream edits of `proposal`, matched to the incident's ancestor models.
    pub fn of(proposal: &'a v1::FixProposal, evidence: Option<&'a v1::Evidence>) -> Self {
        let ancestors = evidence
            .map(|evidence| evidence.ancestor_models.as_slice())
            .unwrap_or_default();
        let edits = proposal
            .upstream_edits
            .iter()
            .map(|edit| {
                let ancestor = ancestors.iter().find(|ancestor| ancestor.path == edit.path);
                (edit, ancestor)
            })
            .collect();
        Self {
            edits,
            ancestor_paths: ancestors
                .iter()
                .map(|ancestor| ancestor.path.clone())
                .collect(),
        }
    }

    /// Path, scope, content, Jinja side effects and symbolic links of every edit; no edit
    /// twice.
    pub fn check(
        &self,
        lineage_enabled: bool,
        policy: &PathPolicy,
        project_dir: &Path,
    ) -> Result<(), GuardrailError> {
        let scope = LineageScope {
            enabled: lineage_enabled,
            ancestor_paths: self.ancestor_paths.clone(),
        };
        let mut seen = Vec::new();
        for (edit, ancestor) in &self.edits {
            if seen.contains(&edit.path.as_str()) {
                return Err(GuardrailError::InvalidPolicy(format!(
                    "the proposal edits {} twice",
                    edit.path
                )));
            }
            seen.push(edit.path.as_str());
            let original = ancestor.map(|ancestor| ancestor.raw_sql.as_str());
            dbtops_guardrails::check_upstream_edit(
                &edit.path,
                &edit.fixed_sql,
                original.unwrap_or_default(),
                &scope,
                policy,
                Some(project_dir),
                MAX_SQL_BYTES,
            )?;
        }
        Ok(())
    }

    /// Jinja delimiters balanced, and every `ref()`, `source()` and Jinja block of the
    /// ancestor kept: the error is the failing model's, never about an ancestor's refs.
    pub fn check_refs_and_jinja(&self) -> Result<(), String> {
        for (edit, ancestor) in &self.edits {
            checks::check_jinja_delimiters(&edit.fixed_sql)
                .map_err(|problem| format!("{}: {problem}", edit.path))?;
            let original = ancestor.map(|ancestor| ancestor.raw_sql.as_str());
            checks::check_refs_kept(original.unwrap_or_default(), &edit.fixed_sql, None, None)
                .map_err(|problem| format!("{}: {problem}", edit.path))?;
        }
        Ok(())
    }

    /// The edited ancestors' model names, for dbt selections.
    pub fn names(&self) -> Vec<String> {
        self.edits
            .iter()
            .filter_map(|(_, ancestor)| ancestor.map(|ancestor| ancestor.name.clone()))
            .collect()
    }
}

/// The unified diff of every file the proposal writes: the edited ancestors (nearest
/// first, as the evidence lists them), then the failing model.
pub fn proposal_diff(proposal: &v1::FixProposal, evidence: Option<&v1::Evidence>) -> String {
    let edits = UpstreamEdits::of(proposal, evidence);
    let mut diff = String::new();
    for (edit, ancestor) in &edits.edits {
        let original = ancestor.map(|ancestor| ancestor.raw_sql.as_str());
        diff.push_str(&dbtops_guardrails::unified_diff(
            &edit.path,
            original.unwrap_or_default(),
            &edit.fixed_sql,
        ));
    }
    let original = evidence
        .map(|evidence| evidence.model_sql.as_str())
        .unwrap_or_default();
    diff.push_str(&dbtops_guardrails::unified_diff(
        &proposal.model_path,
        original,
        &proposal.fixed_sql,
    ));
    diff
}
