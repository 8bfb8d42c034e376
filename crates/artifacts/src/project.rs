//! The project's own files, as they are now: `dbt_project.yml`, the model and macro
//! sources, the YAML beside them and each seed's header line.
//!
//! This is the only module that touches a file system, and only in
//! [`collect_project_files`]; everything else reads the [`ProjectFiles`] value, so a run's
//! project can travel over the bus and be read on another machine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::error::ArtifactError;
use crate::yaml::{self, Yaml};

/// Files bigger than this are not evidence anyone can read; skip them.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Bounds for a whole project, so a mis-pointed directory cannot exhaust memory.
const MAX_FILES: usize = 20_000;
const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Longest seed header line read.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Directories never worth walking: build output, logs, installed packages, VCS, venvs.
const SKIP_DIRS: &[&str] = &[
    "target",
    "logs",
    "dbt_packages",
    "dbt_modules",
    ".venv",
    "venv",
    ".git",
    "node_modules",
    "__pycache__",
];

/// The text of a dbt project's files that evidence is drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFiles {
    /// `dbt_project.yml`, verbatim: the project name and where models, seeds and macros live.
    pub dbt_project_yml: String,
    /// Path relative to the project dir (always `/`-separated) → content. `.sql`/`.yml`
    /// files hold their whole text; `.csv` seeds hold only their header line.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl ProjectFiles {
    /// Reads the `project_files.json` form (`{"dbt_project_yml": …, "files": {…}}`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Where a project keeps things, from `dbt_project.yml` (dbt's defaults when unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectLayout {
    /// `name:`.
    pub name: Option<String>,
    /// `model-paths`, default `["models"]`.
    pub model_paths: Vec<String>,
    /// `seed-paths`, default `["seeds"]`.
    pub seed_paths: Vec<String>,
    /// `macro-paths`, default `["macros"]`.
    pub macro_paths: Vec<String>,
    /// `snapshot-paths`, default `["snapshots"]`.
    pub snapshot_paths: Vec<String>,
    /// `target-path`, `log-path`, `packages-install-path`: skipped when walking.
    pub output_dirs: Vec<String>,
}

impl Default for ProjectLayout {
    fn default() -> Self {
        ProjectLayout {
            name: None,
            model_paths: vec!["models".into()],
            seed_paths: vec!["seeds".into()],
            macro_paths: vec!["macros".into()],
            snapshot_paths: vec!["snapshots".into()],
            output_dirs: Vec::new(),
        }
    }
}

impl ProjectLayout {
    /// Reads the layout from `dbt_project.yml` text.
    pub(crate) fn from_project_yml(text: &str) -> Self {
        let doc = yaml::parse(text);
        let mut layout = ProjectLayout {
            name: doc
                .get("name")
                .and_then(Yaml::as_str)
                .map(str::to_owned)
                .filter(|n| !n.is_empty()),
            ..ProjectLayout::default()
        };
        let paths = |key: &str, default: &mut Vec<String>| {
            if let Some(v) = doc.get(key) {
                let list: Vec<String> = v
                    .as_str_list()
                    .into_iter()
                    .map(|p| p.trim_end_matches('/').trim_start_matches("./").to_owned())
                    .filter(|p| !p.is_empty())
                    .collect();
                if !list.is_empty() {
                    *default = list;
                }
            }
        };
        paths("model-paths", &mut layout.model_paths);
        paths("seed-paths", &mut layout.seed_paths);
        paths("macro-paths", &mut layout.macro_paths);
        paths("snapshot-paths", &mut layout.snapshot_paths);
        for key in ["target-path", "log-path", "packages-install-path"] {
            if let Some(p) = doc.get(key).and_then(Yaml::as_str) {
                layout.output_dirs.push(p.trim_end_matches('/').to_owned());
            }
        }
        layout
    }

    /// True when `path` (project-relative) lies under one of the model paths.
    pub(crate) fn is_model_path(&self, path: &str) -> bool {
        self.model_paths.iter().any(|m| under(path, m))
    }

    /// True when `path` lies under a seed path.
    pub(crate) fn is_seed_path(&self, path: &str) -> bool {
        self.seed_paths.iter().any(|m| under(path, m))
    }

    /// True when `path` lies under a snapshot path.
    pub(crate) fn is_snapshot_path(&self, path: &str) -> bool {
        self.snapshot_paths.iter().any(|m| under(path, m))
    }
}

/// What `dbt_project.yml` says about where a project keeps things, for tools that find a
/// project's run artifacts on disk (the detector's watch, `dbt-ops submit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectSettings {
    /// `name:`.
    pub name: Option<String>,
    /// `model-paths`, default `["models"]`.
    pub model_paths: Vec<String>,
    /// `target-path`, default `target`: where run_results.json and manifest.json are.
    pub target_path: String,
    /// `log-path`, default `logs`: where dbt.log is.
    pub log_path: String,
}

/// Reads [`ProjectSettings`] from `dbt_project.yml` text (dbt's defaults when unset).
pub fn project_settings(dbt_project_yml: &str) -> ProjectSettings {
    let layout = ProjectLayout::from_project_yml(dbt_project_yml);
    let doc = yaml::parse(dbt_project_yml);
    let path = |key: &str, default: &str| {
        doc.get(key)
            .and_then(Yaml::as_str)
            .map(|p| p.trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    ProjectSettings {
        name: layout.name,
        model_paths: layout.model_paths,
        target_path: path("target-path", "target"),
        log_path: path("log-path", "logs"),
    }
}

/// `path` is `dir` itself or inside it (project-relative, `/`-separated).
pub(crate) fn under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A project-relative directory from `dbt_project.yml` that is safe to read: relative, no
/// `..`, so a hostile project file cannot point the walk outside the project.
fn safe_relative(dir: &str) -> bool {
    let p = Path::new(dir);
    !dir.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Reads a project directory: `dbt_project.yml`, every `.sql`/`.yml`/`.yaml` file under its
/// model, macro and snapshot paths, and each seed's header line. Bounded: files over 1 MiB
/// are skipped, build output (`target/`, `logs/`, `dbt_packages/`), `.venv` and `.git` are
/// never walked, symlinks are not followed.
pub fn collect_project_files(project_dir: &Path) -> Result<ProjectFiles, ArtifactError> {
    let project_yml = project_dir.join("dbt_project.yml");
    if !project_yml.is_file() {
        return Err(ArtifactError::NotAProject {
            path: project_dir.to_path_buf(),
            detail: "no dbt_project.yml".into(),
        });
    }
    let dbt_project_yml = read_bounded(&project_yml)?.unwrap_or_default();
    let layout = ProjectLayout::from_project_yml(&dbt_project_yml);
    let mut files = BTreeMap::new();
    let mut total = 0usize;

    let source_dirs = layout
        .model_paths
        .iter()
        .chain(&layout.macro_paths)
        .chain(&layout.snapshot_paths);
    for dir in source_dirs {
        walk(project_dir, dir, &layout, |rel, path| {
            let ext = rel.rsplit('.').next().unwrap_or("");
            if !matches!(ext, "sql" | "yml" | "yaml") || files.contains_key(rel) {
                return Ok(true);
            }
            if let Some(text) = read_bounded(path)? {
                total += text.len();
                files.insert(rel.to_owned(), text);
            }
            Ok(files.len() < MAX_FILES && total < MAX_TOTAL_BYTES)
        })?;
    }
    for dir in &layout.seed_paths {
        walk(project_dir, dir, &layout, |rel, path| {
            if !rel.ends_with(".csv") {
                return Ok(true);
            }
            if let Some(header) = read_first_line(path)? {
                total += header.len();
                files.insert(rel.to_owned(), header);
            }
            Ok(files.len() < MAX_FILES && total < MAX_TOTAL_BYTES)
        })?;
    }
    Ok(ProjectFiles {
        dbt_project_yml,
        files,
    })
}

/// Walks `project_dir/dir`, calling `visit(relative_path, absolute_path)` for each file;
/// `visit` returns `false` to stop (a bound was reached).
fn walk(
    project_dir: &Path,
    dir: &str,
    layout: &ProjectLayout,
    mut visit: impl FnMut(&str, &Path) -> Result<bool, ArtifactError>,
) -> Result<(), ArtifactError> {
    if !safe_relative(dir) {
        return Ok(());
    }
    let root = project_dir.join(dir);
    if !root.is_dir() {
        return Ok(());
    }
    let walker = walkdir::WalkDir::new(&root)
        .follow_links(false)
        .max_depth(32)
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            if e.depth() == 0 || !e.file_type().is_dir() {
                return true;
            }
            !SKIP_DIRS.contains(&name.as_ref())
                && !layout.output_dirs.iter().any(|o| o == name.as_ref())
        });
    for entry in walker {
        // An unreadable subdirectory is skipped, not fatal: the rest is still evidence.
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(project_dir) else {
            continue;
        };
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let rel = rel.join("/");
        if !visit(&rel, entry.path())? {
            break;
        }
    }
    Ok(())
}

/// The whole file as text (lossy), or `None` when it is larger than the bound.
fn read_bounded(path: &Path) -> Result<Option<String>, ArtifactError> {
    let io = |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The first line of a file (a seed's CSV header), bounded.
fn read_first_line(path: &Path) -> Result<Option<String>, ArtifactError> {
    let io = |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file.take(MAX_HEADER_BYTES));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(io)?;
    let text = String::from_utf8_lossy(&line);
    let text = text.trim_start_matches('\u{feff}').trim_end();
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn collects_sources_yaml_and_seed_headers_only() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            "dbt_project.yml",
            "name: shop\nmodel-paths: [\"models\", \"../outside\"]\nseed-paths: [data]\n",
        );
        write(d, "models/marts/orders.sql", "select 1 as id");
        write(d, "models/marts/schema.yml", "version: 2\n");
        write(d, "models/readme.md", "not evidence");
        write(d, "models/target/compiled.sql", "skipped");
        write(d, "macros/m.sql", "{% macro m() %}1{% endmacro %}");
        write(
            d,
            "data/raw_orders.csv",
            "\u{feff}id,customer_id,amount\n1,2,3\n",
        );
        write(d, "target/run_results.json", "{}");
        write(d, "outside/x.sql", "never read");
        write(d, "models/big.sql", &"x".repeat(2 * 1024 * 1024));
        let pf = collect_project_files(d).unwrap();
        let keys: Vec<&str> = pf.files.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "data/raw_orders.csv",
                "macros/m.sql",
                "models/marts/orders.sql",
                "models/marts/schema.yml"
            ]
        );
        assert_eq!(pf.files["data/raw_orders.csv"], "id,customer_id,amount");
        assert!(pf.dbt_project_yml.contains("name: shop"));
    }

    #[test]
    fn a_directory_without_dbt_project_yml_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = collect_project_files(tmp.path()).unwrap_err();
        assert!(matches!(err, ArtifactError::NotAProject { .. }));
        assert!(!err.is_retryable());
    }

    #[test]
    fn project_settings_say_where_runs_leave_artifacts() {
        let s = project_settings(
            "name: 'shop'\nmodel-paths: [\"models\", \"more\"]\ntarget-path: build/\n",
        );
        assert_eq!(s.name.as_deref(), Some("shop"));
        assert_eq!(s.model_paths, ["models", "more"]);
        assert_eq!(s.target_path, "build");
        assert_eq!(s.log_path, "logs");
        let d = project_settings("");
        assert_eq!((d.target_path.as_str(), d.model_paths.len()), ("target", 1));
    }

    #[test]
    fn layout_defaults_and_overrides() {
        let l = ProjectLayout::from_project_yml("name: 'coffee_shop'\nmodel-paths: [\"models\"]\nmacro-paths:\n  - macros\n  - more_macros\n");
        assert_eq!(l.name.as_deref(), Some("coffee_shop"));
        assert_eq!(l.macro_paths, ["macros", "more_macros"]);
        assert_eq!(l.seed_paths, ["seeds"]);
        assert!(l.is_model_path("models/a.sql"));
        assert!(!l.is_model_path("modelsx/a.sql"));
        assert!(!safe_relative("../x"));
        assert!(!safe_relative("/etc"));
        assert!(safe_relative("./models"));
    }

    #[test]
    fn project_files_json_round_trips() {
        let json = br#"{"dbt_project_yml": "name: x", "files": {"models/a.sql": "select 1"}}"#;
        let pf = ProjectFiles::from_json(json).unwrap();
        assert_eq!(pf.files["models/a.sql"], "select 1");
    }
}
