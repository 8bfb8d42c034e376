//! Writing a fix's blobs, trees and commits straight into the repository's object store,
//! as loose objects, in this process.
//!
//! A loose object is the zlib-compressed `<kind> <size>\0<content>`, stored under
//! `objects/<first two hex digits>/<the other 38>` of its SHA-1 (gitformat-loose(5)). A fix
//! changes one to a few files, so it writes a blob each, the trees on their paths (each a
//! copy of the base's tree with one object id replaced: the entries' names, order and the
//! other ids stay as they are) and the commits. `git fast-import` did the same in a
//! process of its own plus an `unpack-objects` child, which cost more than everything
//! else in a delivery; `git fsck` checks what this module writes in its tests.
//!
//! Only SHA-1 repositories are written this way; a SHA-256 repository goes through
//! fast-import (`crate::import`). Objects are written aside and renamed into place, read
//! only, as git does, so a reader never sees half an object, and an object that exists
//! already is left as it is. Nothing here writes a ref.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::import::{Ident, ImportCommit};
use crate::objects::{hex, ObjectReader};
use crate::LocalGitError;

/// Bytes in a SHA-1 object id.
const SHA1_LEN: usize = 20;

/// Writes loose objects into one object directory.
pub(crate) struct LooseWriter {
    /// `<git-common-dir>/objects`.
    objects_dir: PathBuf,
    /// Trees written by this writer, by id: a chain of commits reads its own trees back
    /// without asking git.
    written_trees: HashMap<String, Vec<u8>>,
}

impl LooseWriter {
    /// A writer for the object directory of the repository whose common git directory is
    /// `common_dir`.
    pub(crate) fn new(common_dir: &Path) -> Self {
        Self {
            objects_dir: common_dir.join("objects"),
            written_trees: HashMap::new(),
        }
    }

    /// Writes `commits` as a chain — the first one's parent is `base` (whose root tree is
    /// `base_tree`), each later one's the commit before it — and returns the last one's id.
    pub(crate) fn write_commits(
        &mut self,
        reader: &mut ObjectReader,
        base: &str,
        base_tree: &str,
        ident: &Ident<'_>,
        commits: &[ImportCommit<'_>],
    ) -> Result<String, LocalGitError> {
        let mut parent = base.to_owned();
        let mut tree = base_tree.to_owned();
        let stamp = timestamp();
        for commit in commits {
            let mut changes = Vec::new();
            for file in &commit.files {
                let blob = self.write("blob", file.content)?;
                changes.push(Change {
                    components: file.path.split('/').collect(),
                    mode: file.mode,
                    oid: blob,
                });
            }
            tree = self.replace_in_tree(reader, &tree, &changes, 0)?;
            let body = format!(
                "tree {tree}\nparent {parent}\nauthor {name} <{email}> {stamp}\ncommitter {name} <{email}> {stamp}\n\n{message}",
                name = ident.name,
                email = ident.email,
                message = commit.message,
            );
            parent = self.write("commit", body.as_bytes())?;
        }
        Ok(parent)
    }

    /// Writes a copy of `tree` with every change below it applied (`depth`: how many of
    /// each change's path components lead to `tree`), and returns the copy's id.
    fn replace_in_tree(
        &mut self,
        reader: &mut ObjectReader,
        tree: &str,
        changes: &[Change<'_>],
        depth: usize,
    ) -> Result<String, LocalGitError> {
        let data = self.read_tree(reader, tree)?;
        let entries = parse_tree(&data).ok_or_else(|| corrupt(tree))?;
        let mut rewritten = Vec::with_capacity(data.len());
        let mut applied = 0;
        for entry in entries {
            let here: Vec<&Change<'_>> = changes
                .iter()
                .filter(|change| change.components.get(depth).copied() == Some(entry.name))
                .collect();
            let (mode, oid) = if here.is_empty() {
                (entry.mode.to_vec(), entry.oid.to_vec())
            } else if let [file] = here.as_slice() {
                if file.components.len() == depth + 1 {
                    (file.mode.as_bytes().to_vec(), from_hex(&file.oid)?)
                } else {
                    self.descend(reader, &entry, &here, depth)?
                }
            } else {
                self.descend(reader, &entry, &here, depth)?
            };
            applied += here.len();
            rewritten.extend_from_slice(&mode);
            rewritten.push(b' ');
            rewritten.extend_from_slice(entry.name.as_bytes());
            rewritten.push(0);
            rewritten.extend_from_slice(&oid);
        }
        // Every path was found in the base before anything was written.
        if applied != changes.len() {
            return Err(corrupt(tree));
        }
        let oid = self.write("tree", &rewritten)?;
        self.written_trees.insert(oid.clone(), rewritten);
        Ok(oid)
    }

    /// The new mode and id of the subtree `entry`, with `changes` (all below it) applied.
    fn descend(
        &mut self,
        reader: &mut ObjectReader,
        entry: &Entry<'_>,
        changes: &[&Change<'_>],
        depth: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), LocalGitError> {
        // A path can only run through a directory; anything else was refused earlier.
        if entry.mode != b"40000" {
            return Err(corrupt(&hex(entry.oid)));
        }
        if changes
            .iter()
            .any(|change| change.components.len() == depth + 1)
        {
            // One path names this directory itself as the file to replace.
            return Err(corrupt(&hex(entry.oid)));
        }
        let below: Vec<Change<'_>> = changes.iter().map(|change| (*change).clone()).collect();
        let subtree = self.replace_in_tree(reader, &hex(entry.oid), &below, depth + 1)?;
        Ok((entry.mode.to_vec(), from_hex(&subtree)?))
    }

    /// A tree's content: one this writer wrote, or git's.
    fn read_tree(&self, reader: &mut ObjectReader, oid: &str) -> Result<Vec<u8>, LocalGitError> {
        if let Some(data) = self.written_trees.get(oid) {
            return Ok(data.clone());
        }
        match reader.object(oid)? {
            Some(object) if object.kind == "tree" => Ok(object.data),
            _ => Err(corrupt(oid)),
        }
    }

    /// Stores one object (unless it exists) and returns its id.
    pub(crate) fn write(&self, kind: &str, content: &[u8]) -> Result<String, LocalGitError> {
        let header = format!("{kind} {}\0", content.len());
        let mut hasher = sha1_smol::Sha1::new();
        hasher.update(header.as_bytes());
        hasher.update(content);
        let oid = hasher.digest().to_string();
        let dir = self.objects_dir.join(&oid[..2]);
        let path = dir.join(&oid[2..]);
        if path.exists() {
            return Ok(oid);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalGitError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut file = tempfile::Builder::new()
            .prefix("tmp_obj_")
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        let mut encoder =
            flate2::write::ZlibEncoder::new(file.as_file_mut(), flate2::Compression::default());
        encoder
            .write_all(header.as_bytes())
            .and_then(|()| encoder.write_all(content))
            .and_then(|()| encoder.finish().map(drop))
            .map_err(io(file.path()))?;
        read_only(file.as_file()).map_err(io(file.path()))?;
        // Another writer may have stored the same object meanwhile: same bytes, same name.
        match file.persist_noclobber(&path) {
            Ok(_) => Ok(oid),
            Err(_) if path.exists() => Ok(oid),
            Err(error) => Err(io(&path)(error.error)),
        }
    }
}

/// One file a commit replaces, its path split into components.
#[derive(Clone)]
struct Change<'a> {
    components: Vec<&'a str>,
    mode: &'a str,
    /// The new blob's id, hex.
    oid: String,
}

/// One entry of a tree's binary content, borrowed from it.
struct Entry<'a> {
    /// The octal mode as stored (`40000` for a tree, no leading zero).
    mode: &'a [u8],
    name: &'a str,
    oid: &'a [u8],
}

/// A SHA-1 tree's entries: `<octal mode> SP <name> NUL <20-byte id>` each; `None` when the
/// content is not in that shape (or a name is not UTF-8, which no path we replace has —
/// such an entry could not be compared with one).
fn parse_tree(data: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let mode = &rest[..space];
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|b| *b == 0)?;
        let name = std::str::from_utf8(&rest[..nul]).ok()?;
        let oid = rest.get(nul + 1..nul + 1 + SHA1_LEN)?;
        rest = &rest[nul + 1 + SHA1_LEN..];
        entries.push(Entry { mode, name, oid });
    }
    Some(entries)
}

fn from_hex(oid: &str) -> Result<Vec<u8>, LocalGitError> {
    (0..oid.len())
        .step_by(2)
        .map(|index| {
            oid.get(index..index + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| corrupt(oid))
}

fn corrupt(oid: &str) -> LocalGitError {
    LocalGitError::UnexpectedOutput {
        command: "cat-file --batch".into(),
        output: format!("tree {oid} is not what the fix's paths need"),
    }
}

/// `<seconds since the epoch> +0000`: the committer's time, in UTC.
fn timestamp() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    format!("{seconds} +0000")
}

#[cfg(unix)]
fn read_only(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o444))
}

#[cfg(not(unix))]
fn read_only(file: &std::fs::File) -> std::io::Result<()> {
    let mut permissions = file.metadata()?.permissions();
    permissions.set_readonly(true);
    file.set_permissions(permissions)
}
