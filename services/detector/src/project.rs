//! What the detector reads of a dbt project directory it watches: its name and model paths
//! from `dbt_project.yml`, where its last run left its artifacts, and the git state it sits
//! in. The same facts `dbt-ops submit` sends (the CLI's `project.rs` has its own copy; the
//! two agree on `ProjectRef`).

use std::path::{Path, PathBuf};

use dbtops_proto::v1;

/// Why a project directory could not be read.
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
}

/// Where a project's runs leave their artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectPaths {
    /// The project directory, canonical.
    pub dir: PathBuf,
    /// `target/run_results.json` (or under `target-path`).
    pub run_results: PathBuf,
    /// `target/manifest.json`.
    pub manifest: PathBuf,
    /// `logs/dbt.log` (or under `log-path`).
    pub log: PathBuf,
}

impl ProjectPaths {
    pub(crate) fn for_project(dir: &Path) -> Result<Self, ProjectError> {
        let dir = dir.canonicalize().map_err(|source| ProjectError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let settings = dbtops_artifacts::project_settings(&read_project_yml(&dir)?);
        let target = dir.join(&settings.target_path);
        Ok(Self {
            run_results: target.join("run_results.json"),
            manifest: target.join("manifest.json"),
            log: dir.join(&settings.log_path).join("dbt.log"),
            dir,
        })
    }
}

fn read_project_yml(dir: &Path) -> Result<String, ProjectError> {
    let path = dir.join("dbt_project.yml");
    if !path.is_file() {
        return Err(ProjectError::NotAProject(dir.to_path_buf()));
    }
    std::fs::read_to_string(&path).map_err(|source| ProjectError::Read { path, source })
}

/// The project as the bus carries it: name, paths and git state (blocking: runs git).
pub fn project_ref(project_dir: &Path) -> Result<v1::ProjectRef, ProjectError> {
    let settings = dbtops_artifacts::project_settings(&read_project_yml(project_dir)?);
    let mut project = v1::ProjectRef {
        name: settings.name.unwrap_or_default(),
        project_dir: project_dir.display().to_string(),
        model_paths: settings.model_paths,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_dbt_project_yml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dbt_project.yml"),
            "name: 'shop'\nmodel-paths: [\"models\", \"more\"]\ntarget-path: build\n",
        )
        .unwrap();
        let paths = ProjectPaths::for_project(dir.path()).unwrap();
        assert!(paths.run_results.ends_with("build/run_results.json"));
        assert!(paths.log.ends_with("logs/dbt.log"));
        let project = project_ref(&paths.dir).unwrap();
        assert_eq!(project.name, "shop");
        assert_eq!(project.model_paths, ["models", "more"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            project_ref(empty.path()),
            Err(ProjectError::NotAProject(_))
        ));
    }
}
