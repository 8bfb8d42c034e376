//! Writing a fix's blobs, trees and commits with one `git fast-import` process: how a
//! SHA-256 repository gets them (a SHA-1 one's are written in-process, `crate::loose`).
//!
//! fast-import builds each commit's tree from its parent's with the files replaced (no
//! index, temporary or otherwise), stores every object, and reports the commits' ids
//! through `--export-marks`. It never writes the branch: the stream ends by resetting the
//! branch it built to nothing, which leaves the ref alone, and the caller then creates the
//! ref with `git update-ref <ref> <new> <zero>` — create-only, whatever exists by then.
//! (fast-import's own ref update would move an existing branch whose tip is an ancestor of
//! the new commit.)
//!
//! The stream is written to a file before git starts, so a delivery process that dies
//! meanwhile cannot truncate it; with `--done`, a stream that ended early would be refused
//! rather than half imported. When fast-import fails it leaves a `fast_import_crash_<pid>`
//! report in the repository's git directory, as any fast-import run does.

use std::fmt::Write as _;
use std::path::Path;

use crate::git::Git;
use crate::objects::is_object_id;
use crate::LocalGitError;

/// The author and committer of every commit in the stream.
pub(crate) struct Ident<'a> {
    /// The name, already stripped the way git strips it.
    pub(crate) name: &'a str,
    /// The email, likewise.
    pub(crate) email: &'a str,
}

/// One file a commit replaces.
pub(crate) struct FileChange<'a> {
    /// Relative to the repository root, `/` separators.
    pub(crate) path: &'a str,
    /// The mode the file keeps (`100644` or `100755`).
    pub(crate) mode: &'a str,
    /// The new content.
    pub(crate) content: &'a [u8],
}

/// One commit to import.
pub(crate) struct ImportCommit<'a> {
    /// The commit's message, ending in a newline.
    pub(crate) message: &'a str,
    /// The files it replaces in its parent's tree; every other entry stays as it is.
    pub(crate) files: Vec<FileChange<'a>>,
}

/// Imports `commits` as a chain — the first one's parent is `base`, each later one's the
/// commit before it — and returns the last one's id. `reference` names the branch in the
/// stream only (fast-import needs one); it is not written.
pub(crate) fn import_commits(
    dir: &Path,
    reference: &str,
    base: &str,
    ident: &Ident<'_>,
    commits: &[ImportCommit<'_>],
) -> Result<String, LocalGitError> {
    let stream = stream(reference, base, ident, commits);
    let scratch = tempfile::Builder::new()
        .prefix("dbt-ops-import-")
        .tempdir()
        .map_err(|source| LocalGitError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let input = scratch.path().join("stream");
    std::fs::write(&input, &stream).map_err(|source| LocalGitError::Io {
        path: input.clone(),
        source,
    })?;
    let marks = scratch.path().join("marks");
    let mut export_marks = std::ffi::OsString::from("--export-marks=");
    export_marks.push(&marks);
    // --date-format=now: the "now" in the ident lines is the current time in the local
    // zone, as `git commit-tree` would stamp it. fast-import never signs a commit.
    let command = Git::new(dir)
        .args(["fast-import", "--quiet", "--done", "--date-format=now"])
        .arg(export_marks)
        .stdin_file(&input);
    command.run()?;
    let marks_text = std::fs::read_to_string(&marks).map_err(|source| LocalGitError::Io {
        path: marks.clone(),
        source,
    })?;
    let last = format!(":{}", commits.len());
    marks_text
        .lines()
        .find_map(|line| {
            line.split_once(' ')
                .filter(|(mark, oid)| *mark == last && is_object_id(oid))
                .map(|(_, oid)| oid.to_owned())
        })
        .ok_or_else(|| command.unexpected(&marks_text))
}

/// The fast-import stream: each commit marked `:1`, `:2`, …, then the branch reset so
/// that fast-import does not write it, then `done`.
fn stream(reference: &str, base: &str, ident: &Ident<'_>, commits: &[ImportCommit<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, commit) in commits.iter().enumerate() {
        let mark = index + 1;
        let parent = if index == 0 {
            base.to_owned()
        } else {
            format!(":{index}")
        };
        let mut head = String::new();
        // Infallible: writing to a String.
        let _ = write!(
            head,
            "commit {reference}\nmark :{mark}\nauthor {name} <{email}> now\ncommitter {name} <{email}> now\ndata {len}\n",
            name = ident.name,
            email = ident.email,
            len = commit.message.len()
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(commit.message.as_bytes());
        out.extend_from_slice(format!("\nfrom {parent}\n").as_bytes());
        for file in &commit.files {
            out.extend_from_slice(
                format!(
                    "M {} inline {}\ndata {}\n",
                    file.mode,
                    quote_path(file.path),
                    file.content.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(file.content);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out.extend_from_slice(format!("reset {reference}\n\ndone\n").as_bytes());
    out
}

/// A path in git's C-style quoting, which fast-import reads whatever the path holds.
fn quote_path(path: &str) -> String {
    let mut quoted = String::with_capacity(path.len() + 2);
    quoted.push('"');
    for c in path.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_ascii_control() => {
                let _ = write!(quoted, "\\{:03o}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_chains_commits_and_leaves_the_branch_unwritten() {
        let ident = Ident {
            name: "dbt-ops",
            email: "bot@example.invalid",
        };
        let commits = [
            ImportCommit {
                message: "snapshot\n",
                files: vec![FileChange {
                    path: "models/a \"b\".sql",
                    mode: "100644",
                    content: b"select 1",
                }],
            },
            ImportCommit {
                message: "fix\n",
                files: vec![FileChange {
                    path: "models/a.sql",
                    mode: "100755",
                    content: b"select 2\n",
                }],
            },
        ];
        let text = String::from_utf8(stream(
            "refs/heads/dbt-ops/fix/a/1",
            "ab12",
            &ident,
            &commits,
        ))
        .unwrap();
        assert_eq!(
            text,
            "commit refs/heads/dbt-ops/fix/a/1\nmark :1\n\
             author dbt-ops <bot@example.invalid> now\n\
             committer dbt-ops <bot@example.invalid> now\n\
             data 9\nsnapshot\n\nfrom ab12\n\
             M 100644 inline \"models/a \\\"b\\\".sql\"\ndata 8\nselect 1\n\n\
             commit refs/heads/dbt-ops/fix/a/1\nmark :2\n\
             author dbt-ops <bot@example.invalid> now\n\
             committer dbt-ops <bot@example.invalid> now\n\
             data 4\nfix\n\nfrom :1\n\
             M 100755 inline \"models/a.sql\"\ndata 9\nselect 2\n\n\n\
             reset refs/heads/dbt-ops/fix/a/1\n\ndone\n"
        );
    }
}
