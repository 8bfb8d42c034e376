//! A local repository, and the one write this crate makes to it: a new branch.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use dbtops_guardrails::{
    check_branch, check_branch_name_format, check_relative_path, BranchPolicy,
};

use crate::git::Git;
use crate::import::{import_commits, FileChange, Ident, ImportCommit};
use crate::loose::LooseWriter;
use crate::objects::{is_object_id, ObjectReader, ResolvedCommit, TreeEntry};
use crate::odb::Odb;
use crate::refs::{surely_absent, Creation, FilesRefs, RefLookup, ReflogEntry};
use crate::LocalGitError;

/// The git modes of a regular file; a fix may replace only these, and keeps the one it
/// finds (a model that is executable for some reason stays executable).
const REGULAR_FILE_MODES: &[&str] = &["100644", "100755"];

/// The reflog message of a branch this crate creates.
const REFLOG_MESSAGE: &str = "dbt-ops: create fix branch";

/// A local git repository, addressed by the root of its work tree.
///
/// Methods read the repository's files in-process where they can (objects, refs, `HEAD`)
/// and run the `git` executable for everything else; they block, so call them from
/// `tokio::task::spawn_blocking` in async code. No method changes the work tree, the
/// index, `HEAD` or the checked-out branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRepo {
    /// The work tree's top-level directory, canonicalised, so that paths under it can be
    /// turned into paths inside the repository by stripping a prefix.
    root: PathBuf,
    /// The git directory shared by all worktrees (`.git` of the main one), canonicalised:
    /// where merge-request descriptions live and objects are written. Read with the root,
    /// in the same process.
    common_dir: PathBuf,
    /// This work tree's own git directory (a linked worktree's differs from the common
    /// one): where its `HEAD` is.
    git_dir: PathBuf,
    /// Whether object ids are SHA-1, which [`LooseWriter`] writes and [`Odb`] reads; a
    /// SHA-256 repository's objects go through `git fast-import` and `git cat-file`.
    sha1_objects: bool,
}

/// Repositories opened before, by the path they were opened with: a delivery process
/// opens the same few repositories over and over, and each `git rev-parse` costs a process
/// start. A repository is opened again when its directories are gone.
#[derive(Debug, Default)]
pub struct RepoCache {
    opened: std::sync::Mutex<std::collections::HashMap<PathBuf, LocalRepo>>,
}

impl RepoCache {
    /// More paths than one delivery process serves: the cache starts over.
    const MAX_REPOSITORIES: usize = 256;

    /// [`LocalRepo::open`], or the repository opened before from `path`.
    pub fn open(&self, path: &Path) -> Result<LocalRepo, LocalGitError> {
        let known: Option<LocalRepo> = self.opened().get(path).cloned();
        if let Some(repo) = known.filter(LocalRepo::still_there) {
            return Ok(repo);
        }
        let repo = LocalRepo::open(path)?;
        let mut map = self.opened();
        if map.len() >= Self::MAX_REPOSITORIES {
            map.clear();
        }
        map.insert(path.to_path_buf(), repo.clone());
        Ok(repo)
    }

    fn opened(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PathBuf, LocalRepo>> {
        self.opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What to commit, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchCommit {
    /// The branch to create, e.g. `dbt-ops/fix/stg_orders/3f2a9c1e`; must pass
    /// [`dbtops_guardrails::check_branch`].
    pub branch: String,
    /// The commit the fix applies to (usually the failing run's commit); becomes the
    /// parent of the new commit. A full or abbreviated object id, or any revision git
    /// resolves to a commit.
    pub base_commit: String,
    /// The file to replace, relative to the repository root with `/` separators (see
    /// [`LocalRepo::path_in_repo`] for a project in a subdirectory). It must exist in the
    /// base commit as a regular file.
    pub path_in_repo: String,
    /// The file's new content.
    pub content: String,
    /// More files the same commit replaces (a lineage-scoped fix's ancestor models), each
    /// under the same rules as `path_in_repo`; usually empty.
    pub also_replace: Vec<FileReplacement>,
    /// The commit message.
    pub message: String,
    /// The author and committer name.
    pub author_name: String,
    /// The author and committer email.
    pub author_email: String,
}

/// One more file a fix commit replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReplacement {
    /// Relative to the repository root, `/` separators; must exist in the base commit as
    /// a regular file.
    pub path_in_repo: String,
    /// Its new content.
    pub content: String,
}

/// The branch a fix was committed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBranch {
    /// The branch name (without `refs/heads/`).
    pub branch: String,
    /// The branch's tip: the fix commit.
    pub commit_sha: String,
    /// Whether the branch already existed with exactly this content (a redelivered
    /// message), so nothing was written.
    pub already_existed: bool,
}

impl LocalRepo {
    /// Opens the repository whose work tree contains `path` (a directory or a file).
    ///
    /// One `git rev-parse` finds the work tree's root, the common git directory (where
    /// [`LocalRepo::write_description`] writes), this work tree's git directory and the
    /// object format. Nothing is cached between calls: opening again is how a caller sees
    /// a repository that moved or changed shape ([`RepoCache`] keeps what it opened).
    pub fn open(path: &Path) -> Result<Self, LocalGitError> {
        let dir = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(path)
        };
        // Checked first so that a missing directory is not reported as a missing `git`.
        std::fs::metadata(dir).map_err(|source| LocalGitError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let command = Git::new(dir).args([
            "rev-parse",
            "--show-toplevel",
            "--git-common-dir",
            "--absolute-git-dir",
            "--show-object-format",
        ]);
        let output = command.output()?;
        if !output.status.success() {
            return Err(LocalGitError::NotARepository {
                path: path.to_path_buf(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let text = command.text(&output)?;
        let mut lines = text.lines();
        let (Some(top), Some(common), Some(git_dir), Some(format), None) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
        ) else {
            return Err(command.unexpected(&text));
        };
        let canonical = |path: PathBuf| {
            std::fs::canonicalize(&path).map_err(|source| LocalGitError::Io { path, source })
        };
        let root = canonical(PathBuf::from(top))?;
        // Printed relative to the directory git ran in, unless it is elsewhere.
        let common_dir = canonical(dir.join(common))?;
        let git_dir = canonical(PathBuf::from(git_dir))?;
        Ok(Self {
            root,
            common_dir,
            git_dir,
            sha1_objects: format == "sha1",
        })
    }

    /// Whether the directories this repository was opened with are still there: what
    /// [`RepoCache`] checks before it hands out a repository it opened before.
    fn still_there(&self) -> bool {
        self.root.is_dir() && self.common_dir.join("objects").is_dir() && self.git_dir.is_dir()
    }

    /// The root of the work tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn git(&self) -> Git<'_> {
        Git::new(&self.root)
    }

    /// The path of `path_in_project` (relative to `project_dir`) relative to the repository
    /// root, with `/` separators: what [`BranchCommit::path_in_repo`] and
    /// [`LocalRepo::read_file_at`] expect when the dbt project sits in a subdirectory.
    pub fn path_in_repo(
        &self,
        project_dir: &Path,
        path_in_project: &str,
    ) -> Result<String, LocalGitError> {
        check_relative_path(path_in_project)?;
        let project = std::fs::canonicalize(project_dir).map_err(|source| LocalGitError::Io {
            path: project_dir.to_path_buf(),
            source,
        })?;
        let outside = || LocalGitError::OutsideRepository {
            path: project_dir.to_path_buf(),
            root: self.root.clone(),
        };
        let relative = project.strip_prefix(&self.root).map_err(|_| outside())?;
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_str().ok_or_else(outside)?),
                _ => return Err(outside()),
            }
        }
        parts.push(path_in_project);
        Ok(parts.join("/"))
    }

    /// The checked-out branch, or `None` when `HEAD` is detached.
    ///
    /// Read from the `HEAD` file where it is the plain file of the files ref backend
    /// (`ref: <ref>` or an object id); otherwise — a reftable repository's placeholder, a
    /// symbolic link, anything else — `git symbolic-ref` answers.
    pub fn current_branch(&self) -> Result<Option<String>, LocalGitError> {
        if let Some(answer) = self.head_from_file() {
            return Ok(answer);
        }
        let command = self.git().args(["symbolic-ref", "--quiet", "HEAD"]);
        let output = command.output()?;
        match output.status.code() {
            Some(0) => {
                let reference = command.text(&output)?;
                Ok(Some(
                    reference
                        .strip_prefix("refs/heads/")
                        .unwrap_or(&reference)
                        .to_owned(),
                ))
            }
            // Exit status 1 with --quiet: HEAD is not a symbolic ref, i.e. detached.
            Some(1) => Ok(None),
            _ => Err(command.failed(&output)),
        }
    }

    /// `HEAD` read as the files backend writes it: `Some(Some(branch))`, `Some(None)` when
    /// detached, `None` when the file is not in that form and git must be asked.
    fn head_from_file(&self) -> Option<Option<String>> {
        Some(match self.head_file()? {
            Head::Symbolic(reference) => Some(
                reference
                    .strip_prefix("refs/heads/")
                    .unwrap_or(&reference)
                    .to_owned(),
            ),
            Head::Detached(_) => None,
        })
    }

    /// This work tree's `HEAD` file, when it is the plain file of the files backend.
    fn head_file(&self) -> Option<Head> {
        let head = self.git_dir.join("HEAD");
        if !std::fs::symlink_metadata(&head).ok()?.file_type().is_file() {
            return None;
        }
        let text = std::fs::read_to_string(&head).ok()?;
        let text = text.strip_suffix('\n')?;
        if let Some(reference) = text.strip_prefix("ref: ") {
            // The reftable backend keeps this placeholder; the real HEAD is in the table.
            if reference == "refs/heads/.invalid" || !reference.starts_with("refs/") {
                return None;
            }
            return Some(Head::Symbolic(reference.to_owned()));
        }
        is_object_id(text).then(|| Head::Detached(text.to_owned()))
    }

    /// The refs, when they are in the files backend and readable in-process.
    fn files_refs(&self) -> Option<FilesRefs> {
        FilesRefs::open(&self.common_dir)
    }

    /// The in-process object reader, for a repository whose objects are all where it
    /// looks: SHA-1, no alternates (objects borrowed from another repository), no replace
    /// refs (with which git reads another object in place of the one named) — which takes
    /// refs readable in-process to know.
    fn odb(&self, refs: Option<&FilesRefs>) -> Option<Odb> {
        let plain = self.sha1_objects
            && surely_absent(&self.common_dir.join("objects/info/alternates"))
            && std::env::var_os("GIT_REPLACE_REF_BASE").is_none()
            && !refs?.may_have_replace_refs();
        plain.then(|| Odb::new(&self.common_dir.join("objects")))
    }

    /// Every object read of one operation, in-process where it can be.
    fn objects(&self, refs: Option<&FilesRefs>) -> ObjectReader {
        ObjectReader::new(&self.root, self.odb(refs))
    }

    /// The commit `HEAD` points at, read in-process: `None` when git must be asked (an
    /// unborn branch, `HEAD` at something other than a commit, a repository this crate
    /// does not read).
    fn head_commit_in_process(&self) -> Option<String> {
        let refs = self.files_refs()?;
        let oid = match self.head_file()? {
            Head::Detached(oid) => oid,
            // Per-worktree refs (refs/bisect/…) live elsewhere: branches only.
            Head::Symbolic(reference) if reference.starts_with("refs/heads/") => {
                match refs.lookup(&reference) {
                    RefLookup::Found(oid) => oid,
                    RefLookup::Absent | RefLookup::Unknown => return None,
                }
            }
            Head::Symbolic(_) => return None,
        };
        let object = self.odb(Some(&refs))?.read(&oid).ok()?;
        (object.kind == "commit").then_some(oid)
    }

    /// The commit `HEAD` points at.
    ///
    /// Read in-process (the `HEAD` file, the branch's ref, the commit object) where the
    /// repository allows it; otherwise `git rev-parse` answers.
    pub fn head_commit(&self) -> Result<String, LocalGitError> {
        if let Some(oid) = self.head_commit_in_process() {
            return Ok(oid);
        }
        let rev = "HEAD";
        let unknown = || LocalGitError::UnknownCommit {
            rev: rev.to_owned(),
        };
        let command = self
            .git()
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{rev}^{{commit}}"));
        let output = command.output()?;
        if !output.status.success() {
            return Err(unknown());
        }
        let oid = command.text(&output)?;
        if !is_object_id(&oid) {
            return Err(command.unexpected(&oid));
        }
        Ok(oid)
    }

    /// The tip of `branch` (a name without `refs/heads/`), or `None` when it does not exist.
    ///
    /// Read from the ref files in-process where they are the files backend's; otherwise
    /// `git for-each-ref` answers.
    pub fn branch_exists(&self, branch: &str) -> Result<Option<String>, LocalGitError> {
        check_branch_name_format(branch)?;
        let reference = format!("refs/heads/{branch}");
        match self.files_refs().map(|refs| refs.lookup(&reference)) {
            Some(RefLookup::Found(tip)) => Ok(Some(tip)),
            Some(RefLookup::Absent) => Ok(None),
            Some(RefLookup::Unknown) | None => self.branch_tip_from_git(&reference),
        }
    }

    /// The tip of the branch `reference` (`refs/heads/…`) as `git for-each-ref` lists it.
    fn branch_tip_from_git(&self, reference: &str) -> Result<Option<String>, LocalGitError> {
        // for-each-ref also lists refs below the pattern, hence the exact comparison.
        let command = self
            .git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"])
            .arg(reference);
        let listing = command.run_text()?;
        for line in listing.lines() {
            if let Some((oid, name)) = line.split_once(' ') {
                if name == reference {
                    return Ok(Some(oid.to_owned()));
                }
            }
        }
        Ok(None)
    }

    /// The content of `path_in_repo` at `commit`, or `None` when the path does not exist
    /// there. A directory, symbolic link or submodule at the path is an error, and so is
    /// content that is not UTF-8.
    pub fn read_file_at(
        &self,
        commit: &str,
        path_in_repo: &str,
    ) -> Result<Option<String>, LocalGitError> {
        check_relative_path(path_in_repo)?;
        let mut objects = self.objects(self.files_refs().as_ref());
        let commit = resolve_commit(&mut objects, commit)?;
        let Some(entry) = objects.tree_entry(&commit.tree, path_in_repo)? else {
            return Ok(None);
        };
        require_regular_file(&entry, &commit.oid, path_in_repo)?;
        let content = objects.blob(&entry.oid)?;
        String::from_utf8(content)
            .map(Some)
            .map_err(|_| LocalGitError::NotUtf8 {
                path: path_in_repo.to_owned(),
                commit: commit.oid,
            })
    }

    /// Creates `branch` pointing at a new commit whose parent is `base_commit` and whose
    /// tree is the base's tree with `path_in_repo` replaced by `content` (file mode kept).
    ///
    /// No git process in the common case (a SHA-1 repository with the files ref backend,
    /// its objects loose or packed, the base named by its full id): every read (the base,
    /// the trees down to each file, the files as they are, an existing branch's tip) is
    /// made in-process, the blobs, trees and commits are written as loose objects, and the
    /// branch is created the way git's files backend creates it — under its `.lock`, only
    /// if it exists neither loose nor packed, with its reflog line. Whatever that does not
    /// handle with certainty goes to git, plumbing only: reads to one `cat-file --batch`
    /// (an abbreviated or symbolic base, an object not found, a SHA-256 repository,
    /// alternates, replace refs, a reftable repository), the branch to
    /// `update-ref refs/heads/<branch> <new> <zero-oid>`, which creates it atomically and
    /// fails if it exists (a held lock, a name clashing with another ref, reftable), and a
    /// SHA-256 repository's objects to one `fast-import`, which touches no ref or index.
    /// The checked-out branch, which is refused, is read from `HEAD` (or asked of
    /// `symbolic-ref` where that is not a plain file). The work tree, the index, `HEAD` and
    /// the current branch are never changed; repository hooks do not run.
    ///
    /// Idempotent: when the branch already exists and its tip has exactly `content` at the
    /// path (a redelivery, or a concurrent replica that won the race), returns that commit
    /// with `already_existed = true`. With different content it returns
    /// [`LocalGitError::BranchConflict`] and leaves the branch alone.
    ///
    /// Refused: a branch [`check_branch`] refuses (including the repository's current
    /// branch), a path that is not relative and normalised, a path missing from the base
    /// or not a regular file there, content identical to the base, an empty message, and
    /// an author containing `<`, `>` or a newline, or nothing but the punctuation git
    /// strips from names. Nothing is written before every check has passed.
    pub fn commit_to_new_branch(
        &self,
        req: &BranchCommit,
    ) -> Result<CommittedBranch, LocalGitError> {
        self.commit_fix(req, None)
    }

    /// Like [`LocalRepo::commit_to_new_branch`], for a run that failed on a file that
    /// differs from the base commit (an uncommitted edit in the work tree): when
    /// `failing_content` differs from the base's file, the branch gets two commits — first
    /// the file as it failed (a snapshot, so the reviewer sees what broke), then the fix
    /// on top — so the fix's own diff stays readable, and a fix that merely restores the
    /// committed version still yields a branch that builds. The work tree is still never
    /// touched.
    pub fn commit_to_new_branch_over(
        &self,
        req: &BranchCommit,
        failing_content: &str,
    ) -> Result<CommittedBranch, LocalGitError> {
        self.commit_fix(req, Some(failing_content))
    }

    fn commit_fix(
        &self,
        req: &BranchCommit,
        failing_content: Option<&str>,
    ) -> Result<CommittedBranch, LocalGitError> {
        // Defence in depth: delivery checks the branch too, with its configured protected
        // and target branches; the checked-out branch is checked here, read just before.
        let policy = BranchPolicy {
            protected: Vec::new(),
            current_branch: self.current_branch()?,
            target_branch: None,
        };
        // The same rules as `git check-ref-format --branch`; update-ref checks again.
        check_branch(&req.branch, &policy)?;
        let reference = format!("refs/heads/{}", req.branch);
        check_relative_path(&req.path_in_repo)?;
        let ident = commit_ident(&req.author_name, &req.author_email)?;
        if req.message.trim().is_empty() {
            return Err(LocalGitError::EmptyMessage);
        }

        let refs = self.files_refs();
        let mut objects = self.objects(refs.as_ref());
        let base = resolve_commit(&mut objects, &req.base_commit)?;
        let entry = base_file(&mut objects, &base, &req.path_in_repo)?;
        let base_content = objects.blob(&entry.oid)?;
        // (path, mode, new content) of the ancestor models a lineage fix replaces too.
        let mut others: Vec<(&str, String, &[u8])> = Vec::new();
        // A lineage fix may leave the failing model as it is and change an ancestor.
        let mut others_change = false;
        for other in &req.also_replace {
            check_relative_path(&other.path_in_repo)?;
            if other.path_in_repo == req.path_in_repo
                || others
                    .iter()
                    .any(|(path, _, _)| *path == other.path_in_repo)
            {
                return Err(LocalGitError::DuplicatePath {
                    path: other.path_in_repo.clone(),
                });
            }
            let other_entry = base_file(&mut objects, &base, &other.path_in_repo)?;
            // Equal content is an equal blob id: nothing needs hashing to compare.
            others_change |= objects.blob(&other_entry.oid)? != other.content.as_bytes();
            others.push((
                other.path_in_repo.as_str(),
                other_entry.mode,
                other.content.as_bytes(),
            ));
        }
        let expected: Vec<(&str, &[u8])> =
            std::iter::once((req.path_in_repo.as_str(), req.content.as_bytes()))
                .chain(others.iter().map(|(path, _, content)| (*path, *content)))
                .collect();

        if let Some(tip) = self.existing_tip(refs.as_ref(), &mut objects, &reference)? {
            return self.existing_branch(&mut objects, &req.branch, tip, &expected);
        }
        // The parent of the fix: the base, or a snapshot of the failing file on top of it.
        let snapshot = failing_content.filter(|failing| failing.as_bytes() != base_content);
        let parent_content = snapshot.map_or(base_content.as_slice(), str::as_bytes);
        if req.content.as_bytes() == parent_content && !others_change {
            return Err(LocalGitError::NoChange {
                path: req.path_in_repo.clone(),
                base: base.oid,
            });
        }

        let snapshot_message = format!(
            "dbt-ops: {} as it failed (uncommitted in the work tree)\n",
            req.path_in_repo
        );
        let mut message = req.message.clone();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        let mut commits = Vec::new();
        if let Some(failing) = snapshot {
            commits.push(ImportCommit {
                message: &snapshot_message,
                files: vec![FileChange {
                    path: &req.path_in_repo,
                    mode: &entry.mode,
                    content: failing.as_bytes(),
                }],
            });
        }
        let mut files = vec![FileChange {
            path: &req.path_in_repo,
            mode: &entry.mode,
            content: req.content.as_bytes(),
        }];
        files.extend(others.iter().map(|(path, mode, content)| FileChange {
            path,
            mode,
            content,
        }));
        commits.push(ImportCommit {
            message: &message,
            files,
        });
        let commit = if self.sha1_objects {
            LooseWriter::new(&self.common_dir).write_commits(
                &mut objects,
                &base.oid,
                &base.tree,
                &ident,
                &commits,
            )?
        } else {
            import_commits(&self.root, &reference, &base.oid, &ident, &commits)?
        };

        let created = match &refs {
            Some(refs) => refs.create(
                &reference,
                &commit,
                &ReflogEntry {
                    ident: &ident,
                    message: REFLOG_MESSAGE,
                },
            )?,
            None => Creation::Declined,
        };
        match created {
            Creation::Created => {
                return Ok(CommittedBranch {
                    branch: req.branch.clone(),
                    commit_sha: commit,
                    already_existed: false,
                })
            }
            // Created meanwhile by someone else (found under the lock).
            Creation::Exists(tip) => {
                return self.existing_branch(&mut objects, &req.branch, tip, &expected)
            }
            Creation::Declined => {}
        }

        // The all-zero old value makes update-ref create the ref or fail: never overwrite.
        // The reflog line names the fix's committer, as the in-process creation does,
        // rather than whatever identity the machine would lend git.
        let zero = "0".repeat(base.oid.len());
        let command = self
            .git()
            .args(["update-ref", "-m", REFLOG_MESSAGE])
            .args([reference.as_str(), commit.as_str(), zero.as_str()])
            .env("GIT_COMMITTER_NAME", ident.name)
            .env("GIT_COMMITTER_EMAIL", ident.email);
        let output = command.output()?;
        if !output.status.success() {
            // Someone created the branch between our check and now: fine if it holds
            // the same fix.
            if let Some(tip) = self.branch_exists(&req.branch)? {
                return self.existing_branch(&mut objects, &req.branch, tip, &expected);
            }
            return Err(command.failed(&output));
        }
        Ok(CommittedBranch {
            branch: req.branch.clone(),
            commit_sha: commit,
            already_existed: false,
        })
    }

    /// The tip of the branch `reference` if it exists: from the refs read in-process, or,
    /// where they cannot say, from git.
    fn existing_tip(
        &self,
        refs: Option<&FilesRefs>,
        objects: &mut ObjectReader,
        reference: &str,
    ) -> Result<Option<String>, LocalGitError> {
        match refs.map(|refs| refs.lookup(reference)) {
            Some(RefLookup::Found(tip)) => return Ok(Some(tip)),
            Some(RefLookup::Absent) => return Ok(None),
            Some(RefLookup::Unknown) | None => {}
        }
        // Asked of the cat-file session, which a repository read through git has running
        // anyway. It resolves the name as a revision, so a differently placed ref (e.g.
        // refs/heads/refs/heads/<branch>) could answer too: a hit is confirmed exactly.
        if objects
            .object(&format!("{reference}^{{commit}}"))?
            .is_some()
        {
            return self.branch_tip_from_git(reference);
        }
        Ok(None)
    }

    /// The outcome for a branch that exists already: the same fix (every expected path a
    /// regular file with exactly the expected content), or a conflict.
    fn existing_branch(
        &self,
        objects: &mut ObjectReader,
        branch: &str,
        tip: String,
        expected: &[(&str, &[u8])],
    ) -> Result<CommittedBranch, LocalGitError> {
        let tip_commit = resolve_commit(objects, &tip)?;
        for (path, content) in expected {
            let same = match objects.tree_entry(&tip_commit.tree, path)? {
                Some(entry) if REGULAR_FILE_MODES.contains(&entry.mode.as_str()) => {
                    objects.blob(&entry.oid)? == *content
                }
                _ => false,
            };
            if !same {
                return Err(LocalGitError::BranchConflict {
                    branch: branch.to_owned(),
                    tip,
                    path: (*path).to_owned(),
                });
            }
        }
        Ok(CommittedBranch {
            branch: branch.to_owned(),
            commit_sha: tip,
            already_existed: true,
        })
    }

    /// Writes the merge-request description for `branch` to
    /// `<git-common-dir>/dbt-ops/merge-requests/<branch with / replaced by __>.md` and
    /// returns its path. Inside `.git`, so it is never part of the work tree or a commit;
    /// in the common directory (found when the repository was opened), so every linked
    /// worktree sees the same file. The file is replaced atomically (written aside, then
    /// renamed).
    pub fn write_description(
        &self,
        branch: &str,
        markdown: &str,
    ) -> Result<PathBuf, LocalGitError> {
        check_branch_name_format(branch)?;
        let dir = self.common_dir.join("dbt-ops").join("merge-requests");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalGitError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{}.md", branch.replace('/', "__")));
        let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
        file.write_all(markdown.as_bytes()).map_err(io(&path))?;
        file.persist(&path).map_err(|error| LocalGitError::Io {
            path: path.clone(),
            source: error.error,
        })?;
        Ok(path)
    }
}

/// This work tree's `HEAD` as its file says.
enum Head {
    /// `ref: <reference>`: the branch checked out (which may be unborn).
    Symbolic(String),
    /// A detached `HEAD`: the commit's id.
    Detached(String),
}

/// The commit `rev` names, read through `objects`.
fn resolve_commit(objects: &mut ObjectReader, rev: &str) -> Result<ResolvedCommit, LocalGitError> {
    let unknown = || LocalGitError::UnknownCommit {
        rev: rev.to_owned(),
    };
    // A leading '-' reads as an option to most git commands; a control character (a
    // newline above all) would end the request early.
    if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_control) {
        return Err(unknown());
    }
    objects.commit(rev)?.ok_or_else(unknown)
}

/// The entry of `path` in `commit`, which must be there as a regular file.
fn base_file(
    objects: &mut ObjectReader,
    commit: &ResolvedCommit,
    path: &str,
) -> Result<TreeEntry, LocalGitError> {
    let entry =
        objects
            .tree_entry(&commit.tree, path)?
            .ok_or_else(|| LocalGitError::PathNotInCommit {
                path: path.to_owned(),
                commit: commit.oid.clone(),
            })?;
    require_regular_file(&entry, &commit.oid, path)?;
    Ok(entry)
}

fn require_regular_file(entry: &TreeEntry, commit: &str, path: &str) -> Result<(), LocalGitError> {
    if REGULAR_FILE_MODES.contains(&entry.mode.as_str()) {
        Ok(())
    } else {
        Err(LocalGitError::NotARegularFile {
            path: path.to_owned(),
            commit: commit.to_owned(),
            mode: entry.mode.clone(),
        })
    }
}

/// The author (and committer) as `git commit-tree` would write it: checked, then stripped
/// of the leading and trailing characters git drops from identities.
fn commit_ident<'a>(name: &'a str, email: &'a str) -> Result<Ident<'a>, LocalGitError> {
    check_author(name, email)?;
    let name = without_crud(name);
    let email = without_crud(email);
    for (what, value) in [("name", name), ("email", email)] {
        if value.is_empty() {
            return Err(LocalGitError::InvalidAuthor(format!(
                "the {what} has nothing but spaces and punctuation git drops"
            )));
        }
    }
    Ok(Ident { name, email })
}

/// git's `strbuf_addstr_without_crud` (ident.c): ASCII control characters, spaces and
/// `,:;<>"\'` are dropped from both ends. The objects are written with identities as
/// given, so the stripping `commit-tree` did is done here.
fn without_crud(value: &str) -> &str {
    value.trim_matches(|c: char| {
        u32::from(c) <= 32 || matches!(c, ',' | ':' | ';' | '<' | '>' | '"' | '\\' | '\'')
    })
}

/// git strips or refuses `<`, `>` and newlines in identities; refuse them up front with a
/// clear message rather than commit under a mangled name.
fn check_author(name: &str, email: &str) -> Result<(), LocalGitError> {
    for (what, value) in [("name", name), ("email", email)] {
        if value.trim().is_empty() {
            return Err(LocalGitError::InvalidAuthor(format!("the {what} is empty")));
        }
        if value
            .chars()
            .any(|c| c == '<' || c == '>' || c.is_control())
        {
            return Err(LocalGitError::InvalidAuthor(format!(
                "the {what} {value:?} contains '<', '>' or a control character"
            )));
        }
    }
    Ok(())
}
