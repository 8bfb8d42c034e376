//! Reading objects: in-process where `crate::odb` can, else through one
//! `git cat-file --batch` process started on first need.
//!
//! Every read a delivery makes — the base commit, the trees down to each file, the files'
//! contents, the tip of a branch that exists already — goes through one [`ObjectReader`].
//! An object named by its full id is read from the object directory in this process; a
//! revision git must resolve (an abbreviated id, `HEAD~1`, a branch name), an object the
//! in-process reader misses, and every object of a repository it does not read (SHA-256,
//! alternates, replace refs) are one request each to the same `cat-file --batch`, instead
//! of a `rev-parse`, an `ls-tree` and a `cat-file` process each. The process lives for one
//! operation only. Keeping one per repository between deliveries would save one more start
//! per delivery, but it would need an owner to serialise its users, restart it when it dies
//! and stop it, and it would hold open the packs a `git gc` deletes.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout};

use crate::git::Git;
use crate::odb::Odb;
use crate::LocalGitError;

/// How the session is named in errors.
const COMMAND: &str = "cat-file --batch";

/// An object as `git cat-file --batch` returns it.
pub(crate) struct RawObject {
    /// The object id, full length, lower-case hex.
    pub(crate) oid: String,
    /// `commit`, `tree`, `blob` or `tag`.
    pub(crate) kind: String,
    /// The object's content (for a tree, git's binary entry list).
    pub(crate) data: Vec<u8>,
}

/// A commit the reader resolved: its id and its root tree's id.
pub(crate) struct ResolvedCommit {
    /// The commit's full object id.
    pub(crate) oid: String,
    /// The id of its root tree.
    pub(crate) tree: String,
}

/// One entry of a git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeEntry {
    /// The mode as `git ls-tree` prints it: `100644`, `100755`, `120000`, `160000` or
    /// `040000` (canonicalised the way git does, so an old tree's `100664` reads `100644`).
    pub(crate) mode: String,
    /// The entry's object id.
    pub(crate) oid: String,
}

/// Every object read of one operation: in-process first, then `git cat-file --batch`.
pub(crate) struct ObjectReader {
    /// Where git runs: the work tree's root.
    dir: PathBuf,
    /// The in-process reader, or `None` for a repository whose objects it does not read.
    odb: Option<Odb>,
    /// The git process, once something needed it; then reused for the rest of the
    /// operation.
    cat_file: Option<CatFile>,
}

impl ObjectReader {
    /// A reader for the repository whose work tree is `dir`; `odb` reads its objects
    /// in-process where it can. Nothing is started yet.
    pub(crate) fn new(dir: &Path, odb: Option<Odb>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            odb,
            cat_file: None,
        }
    }

    /// Whether `git cat-file --batch` has been started (for tests of the fast path).
    #[cfg(test)]
    pub(crate) fn started_git(&self) -> bool {
        self.cat_file.is_some()
    }

    /// The object `name` names (any revision git understands, e.g. `<rev>^{commit}` or an
    /// object id), or `None` when it names nothing or is ambiguous.
    ///
    /// `name` must not contain a newline; callers refuse control characters before asking.
    pub(crate) fn object(&mut self, name: &str) -> Result<Option<RawObject>, LocalGitError> {
        if let Some(object) = self.in_process(name) {
            return Ok(Some(object));
        }
        if self.cat_file.is_none() {
            self.cat_file = Some(CatFile::start(&self.dir)?);
        }
        match self.cat_file.as_mut() {
            Some(cat_file) => cat_file.object(name),
            None => Err(unexpected(name)),
        }
    }

    /// `name` read in-process, when it is a full object id or `<full id>^{commit}` of a
    /// commit and the object is there; `None` sends the request to git, which answers
    /// everything else (and says "missing" for what truly is).
    fn in_process(&mut self, name: &str) -> Option<RawObject> {
        let odb = self.odb.as_mut()?;
        let (oid, want_commit) = match name.strip_suffix("^{commit}") {
            Some(oid) => (oid, true),
            None => (name, false),
        };
        if !is_object_id(oid) {
            return None;
        }
        // A miss is not an error here: git gets the same question.
        let object = odb.read(oid).ok()?;
        // Peeling a tag to its commit is left to git.
        (!want_commit || object.kind == "commit").then_some(object)
    }

    /// The commit `rev` names, or `None` when it names none.
    pub(crate) fn commit(&mut self, rev: &str) -> Result<Option<ResolvedCommit>, LocalGitError> {
        let Some(object) = self.object(&format!("{rev}^{{commit}}"))? else {
            return Ok(None);
        };
        // A commit starts with its "tree <oid>" line.
        let tree = object
            .data
            .split(|b| *b == b'\n')
            .next()
            .and_then(|line| line.strip_prefix(b"tree "))
            .and_then(|oid| std::str::from_utf8(oid).ok())
            .filter(|oid| is_object_id(oid))
            .map(str::to_owned);
        match (object.kind.as_str(), tree) {
            ("commit", Some(tree)) => Ok(Some(ResolvedCommit {
                oid: object.oid,
                tree,
            })),
            _ => Err(unexpected(&format!("{} {}", object.oid, object.kind))),
        }
    }

    /// The entry at `path` (relative, `/`-separated, normalised) below `tree`, if any.
    /// Like `git ls-tree <tree> -- <path>`: names compare byte for byte, and a path that
    /// runs through a file, a symbolic link or a submodule does not exist.
    pub(crate) fn tree_entry(
        &mut self,
        tree: &str,
        path: &str,
    ) -> Result<Option<TreeEntry>, LocalGitError> {
        let mut tree = tree.to_owned();
        let mut components = path.split('/').peekable();
        while let Some(name) = components.next() {
            let object = self.object(&tree)?;
            let Some(object) = object.filter(|object| object.kind == "tree") else {
                return Err(unexpected(&format!("{tree} is not a tree")));
            };
            let Some(entry) = find_entry(&object.data, name.as_bytes(), tree.len() / 2)
                .map_err(|()| unexpected(&format!("tree {tree}")))?
            else {
                return Ok(None);
            };
            if components.peek().is_none() {
                return Ok(Some(entry));
            }
            if entry.mode != TREE_MODE {
                return Ok(None);
            }
            tree = entry.oid;
        }
        Ok(None)
    }

    /// The content of the blob `oid`.
    pub(crate) fn blob(&mut self, oid: &str) -> Result<Vec<u8>, LocalGitError> {
        match self.object(oid)? {
            Some(object) if object.kind == "blob" => Ok(object.data),
            _ => Err(unexpected(&format!("{oid} is not a blob"))),
        }
    }
}

/// The error for an answer that is not what was asked for.
fn unexpected(output: &str) -> LocalGitError {
    LocalGitError::UnexpectedOutput {
        command: COMMAND.to_owned(),
        output: output.to_owned(),
    }
}

/// A running `git cat-file --batch`.
struct CatFile {
    /// The process; waited for when the reader is dropped.
    child: Child,
    /// Requests, one object name a line. `None` once closed.
    stdin: Option<ChildStdin>,
    /// Answers: a header line, then the content. `None` once closed.
    stdout: Option<BufReader<ChildStdout>>,
}

impl CatFile {
    /// Starts `git cat-file --batch` in `dir`.
    fn start(dir: &Path) -> Result<Self, LocalGitError> {
        // Standard error stays a pipe that is read only once the process has ended: git
        // writes to it at most a warning per ambiguous name and a fatal message, far less
        // than a pipe holds, so it cannot block the process while we wait for an answer.
        let mut child = Git::new(dir)
            .args(["cat-file", "--batch"])
            .spawn_session()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// The object `name` names, or `None` when it names nothing or is ambiguous.
    fn object(&mut self, name: &str) -> Result<Option<RawObject>, LocalGitError> {
        if name.contains('\n') {
            return Err(self.unexpected(name));
        }
        match self.exchange(name) {
            Ok(answer) => Ok(answer),
            Err(Exchange::Io(error)) => Err(self.failed(error)),
            Err(Exchange::Unexpected(output)) => Err(self.unexpected(&output)),
        }
    }

    /// Writes one request and reads its answer.
    fn exchange(&mut self, name: &str) -> Result<Option<RawObject>, Exchange> {
        let (Some(stdin), Some(stdout)) = (self.stdin.as_mut(), self.stdout.as_mut()) else {
            return Err(Exchange::Io(std::io::ErrorKind::BrokenPipe.into()));
        };
        stdin.write_all(name.as_bytes()).map_err(Exchange::Io)?;
        stdin.write_all(b"\n").map_err(Exchange::Io)?;
        stdin.flush().map_err(Exchange::Io)?;

        // Without --buffer git flushes each answer, so this read returns as soon as the
        // answer is written.
        let mut header = Vec::new();
        stdout
            .read_until(b'\n', &mut header)
            .map_err(Exchange::Io)?;
        if header.pop() != Some(b'\n') {
            // End of output: git has exited; its status and message tell why.
            return Err(Exchange::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let header = String::from_utf8(header).map_err(|error| {
            Exchange::Unexpected(String::from_utf8_lossy(error.as_bytes()).into_owned())
        })?;
        // Not found: git echoes the name, then why.
        if let Some(reason) = header
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
        {
            if matches!(reason, "missing" | "ambiguous") {
                return Ok(None);
            }
        }
        let mut fields = header.split(' ');
        let (Some(oid), Some(kind), Some(size), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Exchange::Unexpected(header));
        };
        let Ok(size) = size.parse::<usize>() else {
            return Err(Exchange::Unexpected(header));
        };
        if !is_object_id(oid) {
            return Err(Exchange::Unexpected(header));
        }
        // The content, then the newline git writes after it.
        let mut data = vec![0; size + 1];
        stdout.read_exact(&mut data).map_err(Exchange::Io)?;
        if data.pop() != Some(b'\n') {
            return Err(Exchange::Unexpected(header));
        }
        Ok(Some(RawObject {
            oid: oid.to_owned(),
            kind: kind.to_owned(),
            data,
        }))
    }

    /// The error for a session that broke: git's exit status and message.
    fn failed(&mut self, error: std::io::Error) -> LocalGitError {
        self.close();
        // The process may be stuck writing an answer nobody reads; it is a reader, so
        // stopping it loses nothing.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map(|status| status.to_string())
            .unwrap_or_else(|_| error.to_string());
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        if stderr.trim().is_empty() {
            stderr = error.to_string();
        }
        LocalGitError::GitFailed {
            command: COMMAND.to_owned(),
            status,
            stderr: stderr.trim().to_owned(),
        }
    }

    fn unexpected(&self, output: &str) -> LocalGitError {
        LocalGitError::UnexpectedOutput {
            command: COMMAND.to_owned(),
            output: output.to_owned(),
        }
    }

    /// Closes both pipes: git sees the end of its input, and a write it was blocked on
    /// fails, so it exits either way.
    fn close(&mut self) {
        self.stdin = None;
        self.stdout = None;
    }
}

impl Drop for CatFile {
    fn drop(&mut self) {
        self.close();
        // Reap the process rather than leave a zombie; it has nothing left to say.
        let _ = self.child.wait();
    }
}

/// Why one request failed.
enum Exchange {
    /// Writing the request or reading the answer failed (git exited).
    Io(std::io::Error),
    /// The answer was not in the documented shape.
    Unexpected(String),
}

/// The mode of a tree entry that is itself a tree, as `git ls-tree` prints it.
pub(crate) const TREE_MODE: &str = "040000";

/// The entry called `name` in a tree's binary content: entries are
/// `<octal mode> SP <name> NUL <raw object id>`; `hash_len` is the id's length in bytes.
fn find_entry(data: &[u8], name: &[u8], hash_len: usize) -> Result<Option<TreeEntry>, ()> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or(())?;
        let mode = std::str::from_utf8(&rest[..space]).map_err(|_| ())?;
        let mode = u32::from_str_radix(mode, 8).map_err(|_| ())?;
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|b| *b == 0).ok_or(())?;
        let entry_name = &rest[..nul];
        let oid = rest.get(nul + 1..nul + 1 + hash_len).ok_or(())?;
        rest = &rest[nul + 1 + hash_len..];
        if entry_name == name {
            return Ok(Some(TreeEntry {
                mode: canonical_mode(mode).to_owned(),
                oid: hex(oid),
            }));
        }
    }
    Ok(None)
}

/// git's `canon_mode`: what `ls-tree` prints for a mode stored in a tree.
fn canonical_mode(mode: u32) -> &'static str {
    match mode & 0o170000 {
        0o100000 if mode & 0o100 != 0 => "100755",
        0o100000 => "100644",
        0o120000 => "120000",
        0o040000 => TREE_MODE,
        _ => "160000",
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A full SHA-1 or SHA-256 object id in lower-case hex.
pub(crate) fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &str, oid: u8) -> Vec<u8> {
        let mut bytes = format!("{mode} {name}\0").into_bytes();
        bytes.extend(std::iter::repeat_n(oid, 20));
        bytes
    }

    #[test]
    fn tree_entries_are_found_by_exact_name_with_git_modes() {
        let mut tree = entry("100664", "a.sql", 0xab);
        tree.extend(entry("40000", "models", 0x01));
        tree.extend(entry("120000", "link", 0x02));
        let found = find_entry(&tree, b"a.sql", 20).unwrap().unwrap();
        assert_eq!(found.mode, "100644");
        assert_eq!(found.oid, "ab".repeat(20));
        assert_eq!(
            find_entry(&tree, b"models", 20).unwrap().unwrap().mode,
            "040000"
        );
        assert_eq!(
            find_entry(&tree, b"link", 20).unwrap().unwrap().mode,
            "120000"
        );
        assert_eq!(find_entry(&tree, b"A.sql", 20).unwrap(), None);
        assert_eq!(find_entry(&tree, b"a", 20).unwrap(), None);
        assert!(find_entry(&tree[..tree.len() - 3], b"zzz", 20).is_err());
        assert_eq!(canonical_mode(0o100775), "100755");
        assert_eq!(canonical_mode(0o160000), "160000");
    }
}
