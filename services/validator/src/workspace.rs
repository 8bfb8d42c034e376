//! Scratch workspaces: a private copy of the dbt project for one validation, so the
//! user's checkout is never written.

use std::path::{Path, PathBuf};

/// Directories never copied: build output, logs, VCS data, virtualenvs.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "logs",
    ".git",
    ".venv",
    "venv",
    "node_modules",
    ".dbt-ops",
];
/// Local warehouse files (DuckDB) are copied so sources that live only in the warehouse
/// still exist in the copy; one larger than this is left out and the copy starts fresh.
const MAX_WAREHOUSE_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Suffixes of local warehouse files.
const WAREHOUSE_SUFFIXES: &[&str] = &[".duckdb", ".duckdb.wal"];
/// The prefix of every workspace directory, so a sweep can find leftovers of a crash.
pub const WORKSPACE_PREFIX: &str = "dbt-ops-validate-";

/// Why a workspace could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The project directory cannot be read.
    #[error("cannot read the project at {path}: {source}")]
    Project {
        /// The project directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The copy failed.
    #[error("cannot copy the project into a workspace: {0}")]
    Copy(String),
}

/// A private copy of a project; removed when dropped.
#[derive(Debug)]
pub struct Workspace {
    /// Owns the directory: dropping it removes the copy.
    dir: tempfile::TempDir,
}

impl Workspace {
    /// Copies `project_dir` into a new directory under `root` (the system temp dir when
    /// `None`), skipping build output, logs, VCS data and oversized local warehouse files.
    pub fn copy_of(project_dir: &Path, root: Option<&Path>) -> Result<Self, WorkspaceError> {
        Self::copy_named(project_dir, root, None)
    }

    /// [`Workspace::copy_of`] into `root/<name>` exactly (`name` must start with
    /// [`WORKSPACE_PREFIX`]); a directory left there by a crash is replaced.
    ///
    /// dbt's partial-parse file records absolute paths (a seed's CSV is loaded from the
    /// project root it was parsed in), so a parse is reusable only in a workspace at the
    /// same path: the validator gives each project's concurrent validations fixed names.
    pub fn copy_named(
        project_dir: &Path,
        root: Option<&Path>,
        name: Option<&str>,
    ) -> Result<Self, WorkspaceError> {
        if !project_dir.join("dbt_project.yml").is_file() {
            return Err(WorkspaceError::Project {
                path: project_dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no dbt_project.yml there",
                ),
            });
        }
        let dir = make_dir(root, name)?;
        let walker = walkdir::WalkDir::new(project_dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|entry| {
                let name = entry.file_name().to_string_lossy();
                let skipped_dir = entry.file_type().is_dir()
                    && entry.depth() > 0
                    && SKIPPED_DIRS.contains(&name.as_ref());
                let oversized_warehouse = entry.file_type().is_file()
                    && WAREHOUSE_SUFFIXES
                        .iter()
                        .any(|suffix| name.ends_with(suffix))
                    && entry
                        .metadata()
                        .map(|metadata| metadata.len() > MAX_WAREHOUSE_FILE_BYTES)
                        .unwrap_or(true);
                !skipped_dir && !oversized_warehouse
            });
        for entry in walker {
            let entry = entry.map_err(|error| WorkspaceError::Copy(error.to_string()))?;
            let relative = entry
                .path()
                .strip_prefix(project_dir)
                .map_err(|error| WorkspaceError::Copy(error.to_string()))?;
            let target = dir.path().join(relative);
            let file_type = entry.file_type();
            if file_type.is_dir() {
                std::fs::create_dir_all(&target)
                    .map_err(|error| WorkspaceError::Copy(error.to_string()))?;
            } else if file_type.is_file() {
                std::fs::copy(entry.path(), &target).map_err(|error| {
                    WorkspaceError::Copy(format!("{}: {error}", relative.display()))
                })?;
            }
            // Symlinks are not copied: a fix never needs one, and one could point anywhere.
        }
        Ok(Self { dir })
    }

    /// The workspace's project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The workspace directory: `root/<name>`, or a random name with the workspace prefix.
fn make_dir(root: Option<&Path>, name: Option<&str>) -> Result<tempfile::TempDir, WorkspaceError> {
    let root = root.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let copy_error = |error: std::io::Error| WorkspaceError::Copy(error.to_string());
    let Some(name) = name else {
        return tempfile::Builder::new()
            .prefix(WORKSPACE_PREFIX)
            .tempdir_in(&root)
            .map_err(copy_error);
    };
    if !name.starts_with(WORKSPACE_PREFIX) || name.contains('/') {
        return Err(WorkspaceError::Copy(format!(
            "workspace name {name:?} must start with {WORKSPACE_PREFIX} and have no /"
        )));
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(name).rand_bytes(0);
    match builder.tempdir_in(&root) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by a crashed process that had the same pid: ours to replace.
            std::fs::remove_dir_all(root.join(name)).map_err(copy_error)?;
            builder.tempdir_in(&root).map_err(copy_error)
        }
        made => made.map_err(copy_error),
    }
}

/// Removes workspaces a crashed validator left under `root`; a workspace whose owner
/// (the pid in its name) is still running belongs to another validator sharing the root
/// and is left alone.
pub fn sweep_leftovers(root: &Path) -> usize {
    sweep(root, true)
}

/// Removes workspaces of validators that are gone, leaving this process's own (in use)
/// and live validators' alone: run before each validation, it also catches what a killed
/// validator's last dbt process wrote after the start-up sweep.
pub fn sweep_dead_owners(root: &Path) -> usize {
    sweep(root, false)
}

fn sweep(root: &Path, including_own: bool) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(WORKSPACE_PREFIX) else {
            continue;
        };
        let keep = match owner_pid(rest) {
            Some(pid) if pid == own => !including_own,
            Some(pid) => is_running(pid),
            // A random name belongs to an unnamed workspace, possibly in use right now.
            None => !including_own,
        };
        if keep {
            continue;
        }
        if entry.path().is_dir() && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The pid a named workspace starts with (`<pid>-<project hash>-<slot>`); `None` for a
/// random name.
fn owner_pid(name_after_prefix: &str) -> Option<u32> {
    let (pid, _) = name_after_prefix.split_once('-')?;
    pid.parse().ok()
}

/// Whether a process with this pid exists (Linux's /proc; elsewhere, assume not, so the
/// sweep behaves as before).
fn is_running(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_skips_build_output_keeps_the_warehouse_and_is_removed_on_drop() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("dbt_project.yml"), "name: p\n").unwrap();
        std::fs::create_dir_all(project.path().join("models/marts")).unwrap();
        std::fs::write(project.path().join("models/marts/a.sql"), "select 1").unwrap();
        std::fs::create_dir_all(project.path().join("target")).unwrap();
        std::fs::write(project.path().join("target/run_results.json"), "{}").unwrap();
        std::fs::write(project.path().join("dev.duckdb"), "db").unwrap();
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::copy_of(project.path(), Some(root.path())).unwrap();
        assert!(workspace.path().join("models/marts/a.sql").is_file());
        assert!(!workspace.path().join("target").exists());
        assert!(workspace.path().join("dev.duckdb").exists());
        let copy = workspace.path().to_path_buf();
        drop(workspace);
        assert!(!copy.exists());
    }

    #[test]
    fn a_named_workspace_has_exactly_that_path_and_replaces_a_leftover() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("dbt_project.yml"), "name: p\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let name = format!("{WORKSPACE_PREFIX}p-0");
        std::fs::create_dir(root.path().join(&name)).unwrap();
        std::fs::write(root.path().join(&name).join("stale"), "x").unwrap();
        let workspace =
            Workspace::copy_named(project.path(), Some(root.path()), Some(&name)).unwrap();
        assert_eq!(workspace.path(), root.path().join(&name));
        assert!(!workspace.path().join("stale").exists());
        assert!(workspace.path().join("dbt_project.yml").is_file());
        drop(workspace);
        assert!(!root.path().join(&name).exists());
        assert!(
            Workspace::copy_named(project.path(), Some(root.path()), Some("elsewhere")).is_err()
        );
    }

    #[test]
    fn a_directory_without_dbt_project_yml_is_refused() {
        let empty = tempfile::tempdir().unwrap();
        assert!(Workspace::copy_of(empty.path(), None).is_err());
    }

    #[test]
    fn leftovers_are_swept() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(format!("{WORKSPACE_PREFIX}old"))).unwrap();
        std::fs::create_dir(root.path().join("someone-else")).unwrap();
        assert_eq!(sweep_leftovers(root.path()), 1);
        assert!(root.path().join("someone-else").exists());
    }

    #[test]
    fn a_live_validators_workspace_is_never_swept_and_our_own_only_at_start_up() {
        let root = tempfile::tempdir().unwrap();
        // pid 1 is always running; a pid above the kernel's maximum never is.
        let live = format!("{WORKSPACE_PREFIX}1-00ff-0");
        let dead = format!("{WORKSPACE_PREFIX}4294967294-00ff-0");
        let ours = format!("{WORKSPACE_PREFIX}{}-00ff-0", std::process::id());
        for name in [&live, &dead, &ours] {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        // Before a validation: only the dead validator's.
        assert_eq!(sweep_dead_owners(root.path()), 1);
        assert!(root.path().join(&live).exists());
        assert!(!root.path().join(&dead).exists());
        assert!(root.path().join(&ours).exists());
        // At start-up, our pid's leftovers are a crashed predecessor's.
        assert_eq!(sweep_leftovers(root.path()), 1);
        assert!(root.path().join(&live).exists());
        assert!(!root.path().join(&ours).exists());
    }
}
