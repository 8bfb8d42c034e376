//! Branches read and created in this process, the way git's "files" ref backend stores
//! them (gitrepository-layout(5)): a loose ref is the file `<git-common-dir>/<ref>`
//! holding `<oid>\n`; `packed-refs` lists the rest; a ref is created by writing
//! `<ref>.lock` (created exclusively: the lock every git writer takes) and renaming it onto
//! the ref, with a line appended to `logs/<ref>` first when reflogs are kept.
//!
//! Starting `git update-ref` to create one branch cost more than the rest of a delivery.
//! What this module does not handle with certainty it declines — a reftable repository, a
//! lock held by someone else, a name that clashes with another ref, a symbolic ref, an
//! unclear config file — and the caller runs git, whose answer and error message are then
//! the ones the user sees. It never replaces an existing ref: it only creates one that, with
//! the lock held, is neither a loose file nor in `packed-refs`.

use std::cell::OnceCell;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::RepoConfig;
use crate::import::Ident;
use crate::objects::is_object_id;
use crate::LocalGitError;

/// A ref as this module found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefLookup {
    /// The ref exists and points at this object.
    Found(String),
    /// No such ref, loose or packed.
    Absent,
    /// Something this module does not read (a symbolic ref, a directory where the file
    /// would be, a `packed-refs` line it does not understand): git must be asked.
    Unknown,
}

/// The outcome of [`FilesRefs::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Creation {
    /// The ref was created.
    Created,
    /// The ref exists already (found with the lock held), pointing at this object; nothing
    /// was written.
    Exists(String),
    /// Not done here, nothing written: the caller asks git, which either does it or says
    /// why not (a held lock, a name conflict).
    Declined,
}

/// The refs of one repository whose ref storage is the files backend.
#[derive(Debug)]
pub(crate) struct FilesRefs {
    /// The git directory shared by all worktrees: where `refs/heads`, `packed-refs` and
    /// `logs` are.
    common_dir: PathBuf,
    /// Whether a new branch gets a reflog: `core.logAllRefUpdates`, which defaults to true
    /// in a repository with a work tree (every repository this crate opens has one).
    log_new_refs: bool,
    /// Whether refs may be created here: not when `core.sharedRepository` asks for
    /// permissions this module does not set.
    writable: bool,
    /// `packed-refs` as first read, for the lookups made before any lock is taken (the
    /// creation reads it again under its lock): a large file is read once per operation.
    packed_snapshot: OnceCell<Result<Option<String>, Unclear>>,
}

/// What a reflog line says besides the old and new values.
pub(crate) struct ReflogEntry<'a> {
    /// Who made the change.
    pub(crate) ident: &'a Ident<'a>,
    /// Why, on one line.
    pub(crate) message: &'a str,
}

impl FilesRefs {
    /// The refs of the repository whose common git directory is `common_dir`, or `None`
    /// when they are not surely in the files backend (a `reftable` directory,
    /// `extensions.refStorage`, a config file this crate cannot read).
    pub(crate) fn open(common_dir: &Path) -> Option<Self> {
        if !surely_absent(&common_dir.join("reftable")) {
            return None;
        }
        let config = RepoConfig::read(&common_dir.join("config")).ok()?;
        if !config.ref_storage_is_files() {
            return None;
        }
        Some(Self {
            common_dir: common_dir.to_path_buf(),
            log_new_refs: config.log_all_ref_updates().unwrap_or(true),
            writable: !config.shared_repository(),
            packed_snapshot: OnceCell::new(),
        })
    }

    /// The ref `name` (e.g. `refs/heads/main`), loose or packed.
    pub(crate) fn lookup(&self, name: &str) -> RefLookup {
        match self.loose(name) {
            Loose::Found(oid) => RefLookup::Found(oid),
            Loose::Other => RefLookup::Unknown,
            Loose::Missing => match self.packed_snapshot() {
                Ok(Some(packed)) => match packed_lookup(packed, name) {
                    Ok(Some(oid)) => RefLookup::Found(oid.to_owned()),
                    Ok(None) => RefLookup::Absent,
                    Err(Unclear) => RefLookup::Unknown,
                },
                Ok(None) => RefLookup::Absent,
                Err(Unclear) => RefLookup::Unknown,
            },
        }
    }

    /// Whether the repository may have replace refs (`refs/replace/*`), which make git
    /// read one object in place of another: then objects are read through git. True when
    /// unsure.
    pub(crate) fn may_have_replace_refs(&self) -> bool {
        if !surely_absent(&self.common_dir.join("refs/replace")) {
            return true;
        }
        match self.packed_snapshot() {
            Ok(Some(packed)) => match packed_entries(packed) {
                Ok(entries) => entries
                    .iter()
                    .any(|(name, _)| name.starts_with("refs/replace/")),
                Err(Unclear) => true,
            },
            Ok(None) => false,
            Err(Unclear) => true,
        }
    }

    /// Creates the ref `name` pointing at `oid`, unless it exists: git's files-backend
    /// creation (lock, check, write, reflog, rename), or [`Creation::Declined`] for
    /// anything it does not handle with certainty. `name` has passed
    /// `git check-ref-format` rules ([`dbtops_guardrails::check_branch`]).
    pub(crate) fn create(
        &self,
        name: &str,
        oid: &str,
        log: &ReflogEntry<'_>,
    ) -> Result<Creation, LocalGitError> {
        if !self.writable || !name.starts_with("refs/") || !is_object_id(oid) {
            return Ok(Creation::Declined);
        }
        // Before any directory is made for it: a name that clashes with a packed ref.
        match packed_state(self.packed_snapshot(), name) {
            Packed::Free => {}
            Packed::Exists(tip) => return Ok(Creation::Exists(tip)),
            Packed::Conflict | Packed::Unclear => return Ok(Creation::Declined),
        }
        let path = self.common_dir.join(name);
        let Some(parent) = path.parent() else {
            return Ok(Creation::Declined);
        };
        // Fails where a prefix of the name is a loose ref (a file): git's name conflict.
        if std::fs::create_dir_all(parent).is_err() {
            return Ok(Creation::Declined);
        }
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        // O_EXCL, as git takes the lock: if it exists, another writer holds it (or died
        // holding it), and git waits for it a little and reports it properly.
        let Ok(mut lock_file) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
        else {
            return Ok(Creation::Declined);
        };
        let lock = Lock {
            path: lock_path,
            held: true,
        };

        // With the lock held, nobody creates the ref through git meanwhile: check again.
        match self.loose(name) {
            Loose::Missing => {}
            Loose::Found(tip) => return Ok(Creation::Exists(tip)),
            Loose::Other => return Ok(Creation::Declined),
        }
        let fresh = self.packed();
        match packed_state(fresh.as_ref().map(Option::as_deref).map_err(|u| *u), name) {
            Packed::Free => {}
            Packed::Exists(tip) => return Ok(Creation::Exists(tip)),
            Packed::Conflict | Packed::Unclear => return Ok(Creation::Declined),
        }
        if lock_file.write_all(format!("{oid}\n").as_bytes()).is_err() {
            return Ok(Creation::Declined);
        }
        drop(lock_file);
        // git writes the reflog before it renames the lock, and fails without renaming
        // if it cannot: so does this, leaving git to say why.
        if self.append_reflog(name, oid, log).is_err() {
            return Ok(Creation::Declined);
        }
        // Past this point a failure is not git's to explain: the reflog already has the
        // line, and an error that says so is better than a second attempt.
        lock.commit_to(&path)
            .map_err(|source| LocalGitError::Io { path, source })?;
        Ok(Creation::Created)
    }

    /// Appends the creation of `name` at `oid` to its reflog, when reflogs are kept for new
    /// refs or this one has a reflog already (as git appends to an existing one whatever
    /// the setting).
    fn append_reflog(&self, name: &str, oid: &str, log: &ReflogEntry<'_>) -> std::io::Result<()> {
        let path = self.common_dir.join("logs").join(name);
        if !self.log_new_refs && surely_absent(&path) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or_default();
        // git's reflog line: old and new ids, the identity and time as in a commit, a tab,
        // the message on one line.
        let message = log.message.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = format!(
            "{zero} {oid} {name} <{email}> {seconds} +0000\t{message}\n",
            zero = "0".repeat(oid.len()),
            name = log.ident.name,
            email = log.ident.email,
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)?;
        file.write_all(line.as_bytes())
    }

    /// The loose ref file of `name`.
    fn loose(&self, name: &str) -> Loose {
        let path = self.common_dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Loose::Missing,
            Ok(metadata) if metadata.file_type().is_file() => {
                match std::fs::read_to_string(&path) {
                    // git accepts trailing blanks after the id.
                    Ok(text) if is_object_id(text.trim_end()) => {
                        Loose::Found(text.trim_end().to_owned())
                    }
                    _ => Loose::Other,
                }
            }
            // A directory (refs below it, or an empty leftover), a symbolic link, an error.
            _ => Loose::Other,
        }
    }

    /// `packed-refs` as first read in this operation.
    fn packed_snapshot(&self) -> Result<Option<&str>, Unclear> {
        match self.packed_snapshot.get_or_init(|| self.packed()) {
            Ok(packed) => Ok(packed.as_deref()),
            Err(unclear) => Err(*unclear),
        }
    }

    /// `packed-refs` as it is now, or `None` when there is none.
    fn packed(&self) -> Result<Option<String>, Unclear> {
        match std::fs::read_to_string(self.common_dir.join("packed-refs")) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(Unclear),
        }
    }
}

/// Whether `packed-refs` (its text) has `name`, or a ref that clashes with it: one whose name is
/// a directory prefix of `name`, or that lies below `name/`.
fn packed_state(packed: Result<Option<&str>, Unclear>, name: &str) -> Packed {
    let packed = match packed {
        Ok(Some(packed)) => packed,
        Ok(None) => return Packed::Free,
        Err(Unclear) => return Packed::Unclear,
    };
    let Ok(entries) = packed_entries(packed) else {
        return Packed::Unclear;
    };
    for (other, oid) in entries {
        if other == name {
            return Packed::Exists(oid.to_owned());
        }
        let prefix_of_name = name
            .strip_prefix(other)
            .is_some_and(|rest| rest.starts_with('/'));
        let below_name = other
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('/'));
        if prefix_of_name || below_name {
            return Packed::Conflict;
        }
    }
    Packed::Free
}

/// A loose ref file as found.
enum Loose {
    Found(String),
    Missing,
    Other,
}

/// A name as `packed-refs` sees it.
enum Packed {
    Free,
    Exists(String),
    Conflict,
    Unclear,
}

/// `packed-refs` could not be read, or not in a form this module reads.
#[derive(Debug, Clone, Copy)]
struct Unclear;

/// The object `name` points at in `packed-refs`' text.
fn packed_lookup<'a>(packed: &'a str, name: &str) -> Result<Option<&'a str>, Unclear> {
    Ok(packed_entries(packed)?
        .into_iter()
        .find(|(other, _)| *other == name)
        .map(|(_, oid)| oid))
}

/// `(name, oid)` of every ref in `packed-refs`: an optional `# pack-refs with: …` header,
/// then `<oid> <name>` lines, each possibly followed by a `^<oid>` line (the tag's peeled
/// value).
fn packed_entries(packed: &str) -> Result<Vec<(&str, &str)>, Unclear> {
    let mut entries = Vec::new();
    for (number, line) in packed.lines().enumerate() {
        if number == 0 && line.starts_with('#') {
            continue;
        }
        if let Some(peeled) = line.strip_prefix('^') {
            if is_object_id(peeled) && !entries.is_empty() {
                continue;
            }
            return Err(Unclear);
        }
        let Some((oid, name)) = line.split_once(' ') else {
            return Err(Unclear);
        };
        if !is_object_id(oid) || !name.starts_with("refs/") {
            return Err(Unclear);
        }
        entries.push((name, oid));
    }
    Ok(entries)
}

/// Whether nothing is at `path` for sure: an error other than "not found" (permissions,
/// say) counts as something there, which makes every caller choose the safe way.
pub(crate) fn surely_absent(path: &Path) -> bool {
    matches!(
        std::fs::symlink_metadata(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound
    )
}

/// A held `<ref>.lock`, removed when dropped unless it was renamed onto the ref.
struct Lock {
    path: PathBuf,
    /// Whether the file is still ours to remove.
    held: bool,
}

impl Lock {
    /// Renames the lock onto `target`: the ref now exists, and there is nothing to remove.
    fn commit_to(mut self, target: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, target)?;
        self.held = false;
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.held {
            // Best effort: a lock left behind is what a crashed git leaves too, and the
            // next writer reports it.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn packed_refs_are_read_with_their_header_and_peeled_lines() {
        let packed = format!(
            "# pack-refs with: peeled fully-peeled sorted \n{A} refs/heads/dbt-ops/fix/a\n{B} refs/tags/v1\n^{A}\n"
        );
        assert_eq!(
            packed_lookup(&packed, "refs/heads/dbt-ops/fix/a").unwrap(),
            Some(A)
        );
        assert_eq!(packed_lookup(&packed, "refs/tags/v1").unwrap(), Some(B));
        assert_eq!(packed_lookup(&packed, "refs/heads/dbt-ops").unwrap(), None);
        assert!(packed_entries(&format!("{A} refs/heads/a\n# late comment\n")).is_err());
        assert!(packed_entries(&format!("^{A}\n")).is_err());
        assert!(packed_entries("garbage\n").is_err());
    }

    #[test]
    fn names_that_clash_with_packed_refs_are_declined() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("packed-refs"),
            format!("{A} refs/heads/dbt-ops/fix/a\n{B} refs/heads/x/y/z\n"),
        )
        .unwrap();
        let refs = FilesRefs::open(dir.path()).unwrap();
        let state = |name| packed_state(refs.packed_snapshot(), name);
        assert!(matches!(
            state("refs/heads/dbt-ops/fix/a/b"),
            Packed::Conflict
        ));
        assert!(matches!(state("refs/heads/x/y"), Packed::Conflict));
        assert!(matches!(state("refs/heads/x/yy"), Packed::Free));
        assert!(matches!(
            state("refs/heads/dbt-ops/fix/a"),
            Packed::Exists(ref tip) if tip == A
        ));
        assert_eq!(
            refs.lookup("refs/heads/dbt-ops/fix/a"),
            RefLookup::Found(A.to_owned())
        );
        assert_eq!(refs.lookup("refs/heads/x/y"), RefLookup::Absent);
        assert!(!refs.may_have_replace_refs());
    }

    fn entry() -> (Ident<'static>, &'static str) {
        (
            Ident {
                name: "dbt-ops",
                email: "dbt-ops@example.invalid",
            },
            "dbt-ops:  create\tfix branch ",
        )
    }

    #[test]
    fn creation_writes_the_ref_and_its_reflog_and_never_replaces_anything() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path();
        let (ident, message) = entry();
        let log = ReflogEntry {
            ident: &ident,
            message,
        };
        let refs = FilesRefs::open(common).unwrap();
        let name = "refs/heads/dbt-ops/fix/m/1";
        assert_eq!(refs.create(name, A, &log).unwrap(), Creation::Created);
        assert_eq!(
            std::fs::read_to_string(common.join(name)).unwrap(),
            format!("{A}\n")
        );
        let line = std::fs::read_to_string(common.join("logs").join(name)).unwrap();
        assert!(line.starts_with(&format!(
            "{} {A} dbt-ops <dbt-ops@example.invalid> ",
            "0".repeat(40)
        )));
        assert!(
            line.ends_with(" +0000\tdbt-ops: create fix branch\n"),
            "{line}"
        );
        assert!(!common.join(format!("{name}.lock")).exists());

        // Loose or packed, an existing ref is reported with its value and left alone.
        assert_eq!(
            refs.create(name, B, &log).unwrap(),
            Creation::Exists(A.to_owned())
        );
        assert_eq!(
            std::fs::read_to_string(common.join(name)).unwrap(),
            format!("{A}\n")
        );
        std::fs::write(
            common.join("packed-refs"),
            format!(
                "# pack-refs with: peeled fully-peeled sorted \n{B} refs/heads/dbt-ops/fix/m/2\n"
            ),
        )
        .unwrap();
        let refs = FilesRefs::open(common).unwrap();
        assert_eq!(
            refs.create("refs/heads/dbt-ops/fix/m/2", A, &log).unwrap(),
            Creation::Exists(B.to_owned())
        );
        assert!(!common.join("refs/heads/dbt-ops/fix/m/2").exists());
        // A clash with a ref where a directory would be, or below the name: declined.
        assert_eq!(
            refs.create("refs/heads/dbt-ops/fix/m/1/x", A, &log)
                .unwrap(),
            Creation::Declined
        );
        assert_eq!(
            refs.create("refs/heads/dbt-ops/fix/m/2/x", A, &log)
                .unwrap(),
            Creation::Declined
        );
        assert_eq!(
            refs.create("refs/heads/dbt-ops/fix", A, &log).unwrap(),
            Creation::Declined
        );
        assert!(!common.join("refs/heads/dbt-ops/fix.lock").exists());
    }

    #[test]
    fn a_lock_held_by_another_writer_is_left_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path();
        let (ident, message) = entry();
        let log = ReflogEntry {
            ident: &ident,
            message,
        };
        let name = "refs/heads/dbt-ops/fix/m/1";
        std::fs::create_dir_all(common.join("refs/heads/dbt-ops/fix/m")).unwrap();
        std::fs::write(common.join(format!("{name}.lock")), "").unwrap();
        let refs = FilesRefs::open(common).unwrap();
        assert_eq!(refs.create(name, A, &log).unwrap(), Creation::Declined);
        // Not ours to remove, and nothing written.
        assert!(common.join(format!("{name}.lock")).exists());
        assert!(!common.join(name).exists());
        assert!(!common.join("logs").join(name).exists());
    }

    #[test]
    fn repositories_not_surely_in_the_files_backend_are_left_to_git() {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path();
        std::fs::create_dir(common.join("reftable")).unwrap();
        assert!(FilesRefs::open(common).is_none());
        std::fs::remove_dir(common.join("reftable")).unwrap();
        std::fs::write(
            common.join("config"),
            "[extensions]\nrefstorage = reftable\n",
        )
        .unwrap();
        assert!(FilesRefs::open(common).is_none());
        std::fs::write(common.join("config"), "[core]\nsharedRepository = group\n").unwrap();
        let (ident, message) = entry();
        let log = ReflogEntry {
            ident: &ident,
            message,
        };
        let refs = FilesRefs::open(common).unwrap();
        assert_eq!(
            refs.create("refs/heads/x", A, &log).unwrap(),
            Creation::Declined
        );
        // A symbolic ref is not followed here.
        std::fs::create_dir_all(common.join("refs/heads")).unwrap();
        std::fs::write(common.join("refs/heads/sym"), "ref: refs/heads/x\n").unwrap();
        assert_eq!(refs.lookup("refs/heads/sym"), RefLookup::Unknown);
        std::fs::create_dir_all(common.join("refs/replace")).unwrap();
        assert!(refs.may_have_replace_refs());
    }
}
