//! What the CLI reads of a dbt project on disk: its name and paths from
//! `dbt_project.yml`, the git state it sits in, and the artifacts of its last run.

use std::path::{Path, PathBuf};

use dbtops_artifacts::RunArtifacts;
use dbtops_detector::artifact_kind;
use dbtops_proto::v1;

/// Why a project could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No dbt_project.yml in the directory.
    #[error("{0} is not a dbt project (no dbt_project.yml)")]
    NotAProject(PathBuf),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The project's files could not be collected.
    #[error("cannot collect the project's files: {0}")]
    Files(String),
}

/// Where a project's last run left its artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactPaths {
    /// The dbt project directory.
    pub project_dir: PathBuf,
    /// dbt's target directory (run_results.json, manifest.json).
    pub target_dir: PathBuf,
    /// dbt's log file.
    pub log_file: PathBuf,
}

impl ArtifactPaths {
    /// The usual places: `<project>/target` (or `target-path` from dbt_project.yml) and
    /// `<project>/logs/dbt.log`, unless given.
    pub fn for_project(
        project_dir: &Path,
        target_dir: Option<&Path>,
        log_file: Option<&Path>,
    ) -> Result<Self, ProjectError> {
        let project_dir = project_dir
            .canonicalize()
            .map_err(|source| ProjectError::Read {
                path: project_dir.to_path_buf(),
                source,
            })?;
        let project_yml = read_project_yml(&project_dir)?;
        let target_dir = match target_dir {
            Some(dir) => dir.to_path_buf(),
            None => project_dir
                .join(yaml_scalar(&project_yml, "target-path").unwrap_or_else(|| "target".into())),
        };
        let log_file = match log_file {
            Some(file) => file.to_path_buf(),
            None => project_dir
                .join(yaml_scalar(&project_yml, "log-path").unwrap_or_else(|| "logs".into()))
                .join("dbt.log"),
        };
        Ok(Self {
            project_dir,
            target_dir,
            log_file,
        })
    }

    /// The artifacts as the detector reads them; a missing file is simply absent.
    pub fn read(&self) -> Result<RunArtifacts, ProjectError> {
        let read_optional = |path: PathBuf| -> Result<Option<Vec<u8>>, ProjectError> {
            match std::fs::read(&path) {
                Ok(content) => Ok(Some(content)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ProjectError::Read { path, source }),
            }
        };
        let project_files = dbtops_artifacts::collect_project_files(&self.project_dir)
            .map_err(|error| ProjectError::Files(error.to_string()))?;
        Ok(RunArtifacts {
            run_results: read_optional(self.target_dir.join("run_results.json"))?,
            manifest: read_optional(self.target_dir.join("manifest.json"))?,
            dbt_log: read_optional(self.log_file.clone())?,
            console: None,
            project_files: Some(project_files),
        })
    }
}

/// The project as the bus carries it: name, paths and git state.
pub fn project_ref(project_dir: &Path) -> Result<v1::ProjectRef, ProjectError> {
    let project_yml = read_project_yml(project_dir)?;
    let mut project = v1::ProjectRef {
        name: yaml_scalar(&project_yml, "name").unwrap_or_default(),
        project_dir: project_dir.display().to_string(),
        model_paths: yaml_list(&project_yml, "model-paths")
            .filter(|paths| !paths.is_empty())
            .unwrap_or_else(|| vec!["models".to_owned()]),
        ..Default::default()
    };
    // Outside a git repository there is no branch to deliver to; delivery says so.
    if let Ok(repo) = dbtops_localgit::LocalRepo::open(project_dir) {
        project.repo_dir = repo.root().display().to_string();
        project.commit_sha = repo.head_commit().unwrap_or_default();
        project.branch = repo.current_branch().ok().flatten().unwrap_or_default();
    }
    Ok(project)
}

/// The artifacts as a submission carries them, in kind order: the manifest without the
/// sections the detector never reads (`dbtops_artifacts::manifest_for_submission`).
pub fn artifact_list(
    artifacts: &RunArtifacts,
) -> Result<Vec<(&'static str, Vec<u8>)>, ProjectError> {
    let mut list = Vec::new();
    if let Some(content) = &artifacts.run_results {
        list.push((artifact_kind::RUN_RESULTS, content.clone()));
    }
    if let Some(content) = &artifacts.manifest {
        let sent =
            dbtops_artifacts::manifest_for_submission(content).unwrap_or_else(|| content.clone());
        list.push((artifact_kind::MANIFEST, sent));
    }
    if let Some(content) = &artifacts.dbt_log {
        list.push((artifact_kind::DBT_LOG, content.clone()));
    }
    if let Some(content) = &artifacts.console {
        list.push((artifact_kind::CONSOLE, content.clone()));
    }
    if let Some(files) = &artifacts.project_files {
        let json =
            serde_json::to_vec(files).map_err(|error| ProjectError::Files(error.to_string()))?;
        list.push((artifact_kind::PROJECT_FILES, json));
    }
    Ok(list)
}

fn read_project_yml(project_dir: &Path) -> Result<String, ProjectError> {
    let path = project_dir.join("dbt_project.yml");
    if !path.is_file() {
        return Err(ProjectError::NotAProject(project_dir.to_path_buf()));
    }
    std::fs::read_to_string(&path).map_err(|source| ProjectError::Read { path, source })
}

/// A top-level `key: value` of dbt_project.yml (quotes removed). dbt_project.yml's top
/// level is flat enough that a YAML library is not needed for these keys.
fn yaml_scalar(yaml: &str, key: &str) -> Option<String> {
    yaml.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.trim_start().strip_prefix(':')?;
        let value = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// A top-level list, inline (`key: ["a", "b"]`) or as a block of `- a` lines.
fn yaml_list(yaml: &str, key: &str) -> Option<Vec<String>> {
    let mut lines = yaml.lines();
    let rest = lines.by_ref().find_map(|line| {
        line.strip_prefix(key)?
            .trim_start()
            .strip_prefix(':')
            .map(str::trim)
    })?;
    let clean = |item: &str| item.trim().trim_matches(['"', '\'']).to_owned();
    if let Some(inline) = rest.strip_prefix('[') {
        let inner = inline.split(']').next().unwrap_or_default();
        return Some(
            inner
                .split(',')
                .map(clean)
                .filter(|item| !item.is_empty())
                .collect(),
        );
    }
    Some(
        lines
            .take_while(|line| line.trim_start().starts_with('-') || line.trim().is_empty())
            .filter_map(|line| line.trim_start().strip_prefix('-'))
            .map(clean)
            .filter(|item| !item.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "name: 'coffee_shop'\nversion: '1.0.0'\nprofile: coffee_shop\nmodel-paths: [\"models\", \"more_models\"]\nseed-paths:\n  - seeds\n  - data\ntarget-path: build  # where\n";

    #[test]
    fn top_level_scalars_and_lists_are_read() {
        assert_eq!(yaml_scalar(PROJECT, "name").as_deref(), Some("coffee_shop"));
        assert_eq!(
            yaml_scalar(PROJECT, "target-path").as_deref(),
            Some("build")
        );
        assert_eq!(yaml_scalar(PROJECT, "log-path"), None);
        assert_eq!(
            yaml_list(PROJECT, "model-paths").unwrap(),
            vec!["models".to_string(), "more_models".to_string()]
        );
        assert_eq!(
            yaml_list(PROJECT, "seed-paths").unwrap(),
            vec!["seeds".to_string(), "data".to_string()]
        );
    }

    #[test]
    fn a_directory_without_dbt_project_yml_is_not_a_project() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            project_ref(dir.path()),
            Err(ProjectError::NotAProject(_))
        ));
    }

    #[test]
    fn paths_default_to_target_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dbt_project.yml"), "name: p\n").unwrap();
        let paths = ArtifactPaths::for_project(dir.path(), None, None).unwrap();
        assert!(paths.target_dir.ends_with("target"));
        assert!(paths.log_file.ends_with("logs/dbt.log"));
        let project = project_ref(&paths.project_dir).unwrap();
        assert_eq!(project.name, "p");
        assert_eq!(project.model_paths, vec!["models".to_string()]);
    }
}
