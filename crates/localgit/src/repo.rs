//! A local repository, and the one write this crate makes to it: a new branch.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use dbtops_guardrails::{
    check_branch, check_branch_name_format, check_relative_path, BranchPolicy,
};

use crate::git::Git;
use crate::LocalGitError;

/// The git modes of a regular file; a fix may replace only these, and keeps the one it
/// finds (a model that is executable for some reason stays executable).
const REGULAR_FILE_MODES: &[&str] = &["100644", "100755"];

/// A local git repository, addressed by the root of its work tree.
///
/// Every method runs the `git` executable and blocks; call it from
/// `tokio::task::spawn_blocking` in async code. No method changes the work tree, the
/// index, `HEAD` or the checked-out branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRepo {
    /// The work tree's top-level directory, canonicalised, so that paths under it can be
    /// turned into paths inside the repository by stripping a prefix.
    root: PathBuf,
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

/// One entry of a git tree, as `git ls-tree` prints it.
struct TreeEntry {
    mode: String,
    oid: String,
}

impl LocalRepo {
    /// Opens the repository whose work tree contains `path` (a directory or a file).
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
        let command = Git::new(dir).args(["rev-parse", "--show-toplevel"]);
        let output = command.output()?;
        if !output.status.success() {
            return Err(LocalGitError::NotARepository {
                path: path.to_path_buf(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let top = command.text(&output)?;
        let root = std::fs::canonicalize(&top).map_err(|source| LocalGitError::Io {
            path: PathBuf::from(&top),
            source,
        })?;
        Ok(Self { root })
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
    pub fn current_branch(&self) -> Result<Option<String>, LocalGitError> {
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

    /// The commit `HEAD` points at.
    pub fn head_commit(&self) -> Result<String, LocalGitError> {
        self.resolve_commit("HEAD")
    }

    /// The full object id of the commit `rev` names.
    fn resolve_commit(&self, rev: &str) -> Result<String, LocalGitError> {
        let unknown = || LocalGitError::UnknownCommit {
            rev: rev.to_owned(),
        };
        // A leading '-' would be read as an option.
        if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_control) {
            return Err(unknown());
        }
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
    pub fn branch_exists(&self, branch: &str) -> Result<Option<String>, LocalGitError> {
        check_branch_name_format(branch)?;
        let reference = format!("refs/heads/{branch}");
        // for-each-ref also lists refs below the pattern, hence the exact comparison.
        let command = self
            .git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"])
            .arg(&reference);
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
        let commit = self.resolve_commit(commit)?;
        let Some(entry) = self.tree_entry(&commit, path_in_repo)? else {
            return Ok(None);
        };
        self.require_regular_file(&entry, &commit, path_in_repo)?;
        let output = self
            .git()
            .args(["cat-file", "blob"])
            .arg(&entry.oid)
            .run()?;
        String::from_utf8(output.stdout)
            .map(Some)
            .map_err(|_| LocalGitError::NotUtf8 {
                path: path_in_repo.to_owned(),
                commit,
            })
    }

    /// The tree entry at `path` in `commit`, if any.
    fn tree_entry(&self, commit: &str, path: &str) -> Result<Option<TreeEntry>, LocalGitError> {
        let command = self
            .git()
            .args(["ls-tree", "-z", "--full-tree", commit, "--", path]);
        let output = command.run()?;
        // Records are "<mode> SP <type> SP <oid> TAB <path> NUL".
        for record in output.stdout.split(|b| *b == 0) {
            let record = String::from_utf8_lossy(record);
            let Some((meta, name)) = record.split_once('\t') else {
                continue;
            };
            if name != path {
                continue;
            }
            let mut fields = meta.split(' ');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(mode), Some(_kind), Some(oid)) if is_object_id(oid) => {
                    return Ok(Some(TreeEntry {
                        mode: mode.to_owned(),
                        oid: oid.to_owned(),
                    }))
                }
                _ => return Err(command.unexpected(&record)),
            }
        }
        Ok(None)
    }

    fn require_regular_file(
        &self,
        entry: &TreeEntry,
        commit: &str,
        path: &str,
    ) -> Result<(), LocalGitError> {
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

    /// The object id `content` has (or gets) as a blob; `write` stores it.
    fn hash_blob(&self, content: &str, write: bool) -> Result<String, LocalGitError> {
        // From stdin and without --path, git hashes the bytes as they are: no clean
        // filters or end-of-line conversion, so the blob is exactly `content`.
        let mut command = self.git().arg("hash-object");
        if write {
            command = command.arg("-w");
        }
        let command = command.arg("--stdin").stdin(content.as_bytes());
        let oid = command.run_text()?;
        if is_object_id(&oid) {
            Ok(oid)
        } else {
            Err(command.unexpected(&oid))
        }
    }

    /// Creates `branch` pointing at a new commit whose parent is `base_commit` and whose
    /// tree is the base's tree with `path_in_repo` replaced by `content` (file mode kept).
    ///
    /// Plumbing only: `hash-object -w`, a temporary index file (`GIT_INDEX_FILE`) for
    /// `read-tree` / `update-index --cacheinfo` / `write-tree`, `commit-tree`, then
    /// `update-ref refs/heads/<branch> <new> <zero-oid>`, which creates the branch
    /// atomically and fails if it exists. The work tree, the index, `HEAD` and the current
    /// branch are never changed; repository hooks do not run.
    ///
    /// Idempotent: when the branch already exists and its tip has exactly `content` at the
    /// path (a redelivery, or a concurrent replica that won the race), returns that commit
    /// with `already_existed = true`. With different content it returns
    /// [`LocalGitError::BranchConflict`] and leaves the branch alone.
    ///
    /// Refused: a branch [`check_branch`] refuses (including the repository's current
    /// branch), a path that is not relative and normalised, a path missing from the base
    /// or not a regular file there, content identical to the base, an empty message, and
    /// an author containing `<`, `>` or a newline.
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
        // Defence in depth: delivery checks the branch too, with the full policy.
        let policy = BranchPolicy {
            protected: Vec::new(),
            current_branch: self.current_branch()?,
            target_branch: None,
        };
        check_branch(&req.branch, &policy)?;
        let reference = format!("refs/heads/{}", req.branch);
        self.git()
            .args(["check-ref-format", reference.as_str()])
            .run()?;
        check_relative_path(&req.path_in_repo)?;
        check_author(&req.author_name, &req.author_email)?;
        if req.message.trim().is_empty() {
            return Err(LocalGitError::EmptyMessage);
        }

        let base = self.resolve_commit(&req.base_commit)?;
        let entry = self.tree_entry(&base, &req.path_in_repo)?.ok_or_else(|| {
            LocalGitError::PathNotInCommit {
                path: req.path_in_repo.clone(),
                commit: base.clone(),
            }
        })?;
        self.require_regular_file(&entry, &base, &req.path_in_repo)?;
        let blob = self.hash_blob(&req.content, false)?;
        let mut others = Vec::new();
        // A lineage fix may leave the failing model as it is and change an ancestor.
        let mut others_change = false;
        for other in &req.also_replace {
            check_relative_path(&other.path_in_repo)?;
            if other.path_in_repo == req.path_in_repo
                || others
                    .iter()
                    .any(|(path, _, _): &(String, String, String)| *path == other.path_in_repo)
            {
                return Err(LocalGitError::DuplicatePath {
                    path: other.path_in_repo.clone(),
                });
            }
            let other_entry = self
                .tree_entry(&base, &other.path_in_repo)?
                .ok_or_else(|| LocalGitError::PathNotInCommit {
                    path: other.path_in_repo.clone(),
                    commit: base.clone(),
                })?;
            self.require_regular_file(&other_entry, &base, &other.path_in_repo)?;
            let other_blob = self.hash_blob(&other.content, false)?;
            others_change |= other_entry.oid != other_blob;
            others.push((other.path_in_repo.clone(), other_entry.mode, other_blob));
        }

        if let Some(tip) = self.branch_exists(&req.branch)? {
            return self.existing_branch(req, tip, &blob, &others);
        }
        // The parent of the fix: the base, or a snapshot of the failing file on top of it.
        let (parent, parent_oid) = match failing_content {
            Some(failing) => {
                let failing_blob = self.hash_blob(failing, false)?;
                if failing_blob == entry.oid {
                    (base.clone(), entry.oid.clone())
                } else {
                    self.hash_blob(failing, true)?;
                    let tree = self.tree_with_replaced_files(
                        &base,
                        &[(
                            req.path_in_repo.clone(),
                            entry.mode.clone(),
                            failing_blob.clone(),
                        )],
                    )?;
                    let message = format!(
                        "dbt-ops: {} as it failed (uncommitted in the work tree)\n",
                        req.path_in_repo
                    );
                    let snapshot = self.commit_tree_with_message(&tree, &base, req, &message)?;
                    (snapshot, failing_blob)
                }
            }
            None => (base.clone(), entry.oid.clone()),
        };
        if blob == parent_oid && !others_change {
            return Err(LocalGitError::NoChange {
                path: req.path_in_repo.clone(),
                base,
            });
        }

        self.hash_blob(&req.content, true)?;
        for other in &req.also_replace {
            self.hash_blob(&other.content, true)?;
        }
        let mut replacements = vec![(req.path_in_repo.clone(), entry.mode.clone(), blob.clone())];
        replacements.extend(others.iter().cloned());
        let tree = self.tree_with_replaced_files(&parent, &replacements)?;
        let commit = self.commit_tree(&tree, &parent, req)?;

        // The all-zero old value makes update-ref create the ref or fail: never overwrite.
        let zero = "0".repeat(base.len());
        let command = self
            .git()
            .args(["update-ref", "-m", "dbt-ops: create fix branch"])
            .args([reference.as_str(), commit.as_str(), zero.as_str()]);
        let output = command.output()?;
        if !output.status.success() {
            // Someone created the branch between our check and now: fine if it holds
            // the same fix.
            if let Some(tip) = self.branch_exists(&req.branch)? {
                return self.existing_branch(req, tip, &blob, &others);
            }
            return Err(command.failed(&output));
        }
        Ok(CommittedBranch {
            branch: req.branch.clone(),
            commit_sha: commit,
            already_existed: false,
        })
    }

    /// The outcome for a branch that exists already: the same fix, or a conflict.
    fn existing_branch(
        &self,
        req: &BranchCommit,
        tip: String,
        blob: &str,
        others: &[(String, String, String)],
    ) -> Result<CommittedBranch, LocalGitError> {
        let expected = std::iter::once((req.path_in_repo.as_str(), blob)).chain(
            others
                .iter()
                .map(|(path, _, oid)| (path.as_str(), oid.as_str())),
        );
        for (path, oid) in expected {
            match self.tree_entry(&tip, path)? {
                Some(entry)
                    if entry.oid == oid && REGULAR_FILE_MODES.contains(&entry.mode.as_str()) => {}
                _ => {
                    return Err(LocalGitError::BranchConflict {
                        branch: req.branch.clone(),
                        tip,
                        path: path.to_owned(),
                    })
                }
            }
        }
        Ok(CommittedBranch {
            branch: req.branch.clone(),
            commit_sha: tip,
            already_existed: true,
        })
    }

    /// Builds `base`'s tree with entries (path, mode, blob) replaced, in a temporary index
    /// file that is deleted afterwards; the repository's own index is never read or
    /// written.
    fn tree_with_replaced_files(
        &self,
        base: &str,
        replacements: &[(String, String, String)],
    ) -> Result<String, LocalGitError> {
        // A fresh directory, because git refuses an existing empty file as an index.
        let scratch = tempfile::Builder::new()
            .prefix("dbt-ops-index-")
            .tempdir()
            .map_err(|source| LocalGitError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let index = scratch.path().join("index");
        self.git()
            .env("GIT_INDEX_FILE", &index)
            .args(["read-tree", base])
            .run()?;
        for (path, mode, blob) in replacements {
            self.git()
                .env("GIT_INDEX_FILE", &index)
                .args(["update-index", "--cacheinfo"])
                .arg(format!("{mode},{blob},{path}"))
                .run()?;
        }
        let command = self.git().env("GIT_INDEX_FILE", &index).arg("write-tree");
        let tree = command.run_text()?;
        if is_object_id(&tree) {
            Ok(tree)
        } else {
            Err(command.unexpected(&tree))
        }
    }

    fn commit_tree(
        &self,
        tree: &str,
        parent: &str,
        req: &BranchCommit,
    ) -> Result<String, LocalGitError> {
        self.commit_tree_with_message(tree, parent, req, &req.message)
    }

    fn commit_tree_with_message(
        &self,
        tree: &str,
        parent: &str,
        req: &BranchCommit,
        message: &str,
    ) -> Result<String, LocalGitError> {
        let mut message = message.to_owned();
        if !message.ends_with('\n') {
            message.push('\n');
        }
        // The identity comes from the environment so that a machine without
        // `user.name`/`user.email` configured works; signing is off because there is no
        // one to type a passphrase and a bot must not use a person's key.
        let command = self
            .git()
            .env("GIT_AUTHOR_NAME", &req.author_name)
            .env("GIT_AUTHOR_EMAIL", &req.author_email)
            .env("GIT_COMMITTER_NAME", &req.author_name)
            .env("GIT_COMMITTER_EMAIL", &req.author_email)
            .args(["commit-tree", "--no-gpg-sign", tree, "-p", parent])
            .stdin(message.as_bytes());
        let commit = command.run_text()?;
        if is_object_id(&commit) {
            Ok(commit)
        } else {
            Err(command.unexpected(&commit))
        }
    }

    /// Writes the merge-request description for `branch` to
    /// `<git-common-dir>/dbt-ops/merge-requests/<branch with / replaced by __>.md` and
    /// returns its path. Inside `.git`, so it is never part of the work tree or a commit;
    /// in the common directory, so every linked worktree sees the same file. The file is
    /// replaced atomically (written aside, then renamed).
    pub fn write_description(
        &self,
        branch: &str,
        markdown: &str,
    ) -> Result<PathBuf, LocalGitError> {
        check_branch_name_format(branch)?;
        let common = self
            .git()
            .args(["rev-parse", "--git-common-dir"])
            .run_text()?;
        // Printed relative to the working directory, which is the root.
        let dir = self
            .root
            .join(common)
            .join("dbt-ops")
            .join("merge-requests");
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

/// A full SHA-1 or SHA-256 object id in lower-case hex.
fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
