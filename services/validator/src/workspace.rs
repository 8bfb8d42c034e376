//! Scratch workspaces: a private copy of the dbt project for one validation, so the
//! user's checkout is never written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
/// Marks a vacated workspace awaiting removal: `<prefix><pid>-trash-<time>-<n>`. The
/// owner's pid comes first, as in a named workspace, so the sweeps treat trash like the
/// workspace it was: left alone while its validator lives, removed once it is gone.
const TRASH_MARK: &str = "trash";
/// Bytes compared at once when looking for zero pages in a warehouse file: the file
/// system's usual block, so a skipped page is a hole the copy need not allocate.
const ZERO_PAGE_BYTES: usize = 4096;
/// Bytes read at once when copying a warehouse file.
const WAREHOUSE_READ_BYTES: usize = 256 * 1024;

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
                    && is_warehouse_file(&name)
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
                let name = entry.file_name().to_string_lossy();
                let copied = if is_warehouse_file(&name) {
                    copy_skipping_zero_pages(entry.path(), &target)
                } else {
                    std::fs::copy(entry.path(), &target).map(|_| ())
                };
                copied.map_err(|error| {
                    WorkspaceError::Copy(format!("{}: {error}", relative.display()))
                })?;
            }
            // Symlinks are not copied: a fix never needs one, and one could point anywhere.
        }
        Ok(Self { dir })
    }

    /// Moves the workspace away from its path at once — a rename to a unique trash name
    /// under the same root — and returns the trash, to be removed at leisure: the path is
    /// free for the next workspace of its name as soon as this returns, however long the
    /// removal takes. A workspace that cannot be moved comes back as it was.
    pub fn vacate(self) -> Result<Trash, Self> {
        let path = self.dir.path().to_path_buf();
        let Some(root) = path.parent() else {
            return Err(self);
        };
        let trash = root.join(trash_name(std::process::id()));
        match std::fs::rename(&path, &trash) {
            Ok(()) => {
                // The directory is no longer at the temp dir's path: the trash owns it now.
                let _moved = self.dir.keep();
                Ok(Trash { path: trash })
            }
            Err(error) => {
                tracing::debug!(message = "Cannot move the workspace to the trash.", %error);
                Err(self)
            }
        }
    }

    /// The workspace's project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A vacated workspace awaiting removal ([`Workspace::vacate`]): removed by
/// [`Trash::remove`], or when dropped.
#[derive(Debug)]
pub struct Trash {
    /// The directory; empty once [`Trash::remove`] took it.
    path: PathBuf,
}

impl Trash {
    /// Where the trash is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory. Already gone (a sweep got there first) is not an error.
    pub fn remove(mut self) -> std::io::Result<()> {
        let path = std::mem::take(&mut self.path);
        match std::fs::remove_dir_all(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            removed => removed,
        }
    }
}

impl Drop for Trash {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            // Best effort, like a dropped workspace: a sweep removes what is left.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A trash name of `pid`'s, unique in this process; the time keeps it apart from a
/// leftover of an earlier process that had the same pid.
fn trash_name(pid: u32) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{WORKSPACE_PREFIX}{pid}-{TRASH_MARK}-{nanos:x}-{n}")
}

fn is_warehouse_file(name: &str) -> bool {
    WAREHOUSE_SUFFIXES
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Copies a local warehouse file byte for byte, leaving its all-zero pages as holes.
///
/// A DuckDB file can be mostly zeros: the example project's 2.6 MB file, after one
/// `dbt build`, has 21 of 643 pages with data. Reading it and writing only those took
/// about half the time of a plain copy (0.5 against 1 ms), which allocates and later
/// writes back every zero page too; a hole reads back as zeros, so DuckDB sees the same
/// bytes.
fn copy_skipping_zero_pages(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    let mut source = std::fs::File::open(from)?;
    let permissions = source.metadata()?.permissions();
    let target = std::fs::File::create(to)?;
    let mut buffer = vec![0_u8; WAREHOUSE_READ_BYTES];
    let mut offset: u64 = 0;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match source.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let chunk = &buffer[..filled];
        // Runs of pages with data, written where they belong; zero pages are skipped.
        let mut run_start = None;
        for (index, page) in chunk.chunks(ZERO_PAGE_BYTES).enumerate() {
            let page_start = index * ZERO_PAGE_BYTES;
            match (is_zero(page), run_start) {
                (false, None) => run_start = Some(page_start),
                (true, Some(start)) => {
                    target.write_all_at(&chunk[start..page_start], offset + start as u64)?;
                    run_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run_start {
            target.write_all_at(&chunk[start..], offset + start as u64)?;
        }
        offset += filled as u64;
        if filled < buffer.len() {
            break;
        }
    }
    // Trailing zero pages were never written: the length makes them part of the file.
    target.set_len(offset)?;
    target.set_permissions(permissions)?;
    Ok(())
}

fn is_zero(bytes: &[u8]) -> bool {
    // A fold, not `all`: with no early exit the compiler vectorises it.
    bytes.iter().fold(0, |any, byte| any | byte) == 0
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

/// The pid a named workspace or a trash starts with (`<pid>-<project hash>-<slot>`,
/// `<pid>-trash-…`); `None` for a random name.
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
    fn vacating_frees_the_path_at_once_and_the_trash_goes_when_removed() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("dbt_project.yml"), "name: p\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let name = format!("{WORKSPACE_PREFIX}{}-00ff-0", std::process::id());
        let workspace =
            Workspace::copy_named(project.path(), Some(root.path()), Some(&name)).unwrap();
        let trash = workspace.vacate().unwrap();
        assert!(!root.path().join(&name).exists());
        // Under the same root, with the owner's pid where the sweeps look for it.
        assert_eq!(trash.path().parent(), Some(root.path()));
        let trash_name = trash.path().file_name().unwrap().to_string_lossy();
        let rest = trash_name.strip_prefix(WORKSPACE_PREFIX).unwrap();
        assert_eq!(owner_pid(rest), Some(std::process::id()));
        assert!(trash.path().join("dbt_project.yml").is_file());
        // The next workspace of the name is made while the trash is still there.
        let next = Workspace::copy_named(project.path(), Some(root.path()), Some(&name)).unwrap();
        assert!(next.path().join("dbt_project.yml").is_file());
        let trash_path = trash.path().to_path_buf();
        trash.remove().unwrap();
        assert!(!trash_path.exists());
        // A dropped trash is removed too.
        let dropped = next.vacate().unwrap().path().to_path_buf();
        assert!(!dropped.exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_dead_validators_trash_is_swept_and_ours_only_at_start_up() {
        let root = tempfile::tempdir().unwrap();
        let dead = trash_name(4_294_967_294);
        let ours = trash_name(std::process::id());
        for name in [&dead, &ours] {
            std::fs::create_dir(root.path().join(name)).unwrap();
            std::fs::write(root.path().join(name).join("dbt_project.yml"), "x").unwrap();
        }
        // Before a validation: ours may still be being removed; the dead one's is not.
        assert_eq!(sweep_dead_owners(root.path()), 1);
        assert!(!root.path().join(&dead).exists());
        assert!(root.path().join(&ours).exists());
        // At start-up, our pid's trash is a crashed predecessor's.
        assert_eq!(sweep_leftovers(root.path()), 1);
        assert!(!root.path().join(&ours).exists());
    }

    #[test]
    fn a_warehouse_file_is_copied_byte_for_byte_with_its_zero_pages_as_holes() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};

        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join("dbt_project.yml"), "name: p\n").unwrap();
        // Data, zero pages, data straddling a page and a read boundary, a zero tail, and a
        // length that is no multiple of a page; an empty WAL.
        let mut bytes = vec![0_u8; 3 * WAREHOUSE_READ_BYTES + 1234];
        bytes[..100].fill(7);
        bytes[WAREHOUSE_READ_BYTES - 10..WAREHOUSE_READ_BYTES + 10].fill(9);
        bytes[2 * WAREHOUSE_READ_BYTES + 5] = 1;
        let database = project.path().join("dev.duckdb");
        std::fs::write(&database, &bytes).unwrap();
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(project.path().join("dev.duckdb.wal"), "").unwrap();
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::copy_of(project.path(), Some(root.path())).unwrap();

        let copy = workspace.path().join("dev.duckdb");
        assert!(std::fs::read(&copy).unwrap() == bytes, "the bytes differ");
        let (original, copied) = (database.metadata().unwrap(), copy.metadata().unwrap());
        assert_eq!(copied.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            std::fs::read(workspace.path().join("dev.duckdb.wal")).unwrap(),
            b""
        );
        // Where the file system stored the original's zeros, the copy has holes.
        if original.blocks() * 512 >= original.len() {
            assert!(
                copied.blocks() * 4 < original.blocks(),
                "{} blocks copied of {}",
                copied.blocks(),
                original.blocks()
            );
        }
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
