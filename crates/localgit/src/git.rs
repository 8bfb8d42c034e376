//! Running the `git` executable with a controlled environment.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::LocalGitError;

/// Configuration every call carries. `core.hooksPath=/dev/null`: `update-ref` runs the
/// repository's `reference-transaction` hook, and a repository's hooks are its owner's
/// code, not ours to execute. (No command this crate runs reads or writes an index.)
const CONFIG_OVERRIDES: &[&str] = &["-c", "core.hooksPath=/dev/null"];

/// Inherited variables that would point git at another repository, index or identity than
/// the one this crate chooses (e.g. when the service itself runs inside a git hook).
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_COMMITTER_DATE",
];

/// What a git invocation reads on its standard input.
enum Input<'a> {
    /// Nothing: standard input is `/dev/null`.
    Nothing,
    /// This file, complete before git starts, so that git reads the whole of it even if
    /// this process dies meanwhile (see `crate::import`).
    File(&'a Path),
}

/// One git invocation in a directory.
pub(crate) struct Git<'a> {
    dir: &'a Path,
    args: Vec<OsString>,
    stdin: Input<'a>,
    /// Variables this crate sets itself, after the inherited ones are scrubbed.
    env: Vec<(&'static str, OsString)>,
}

impl<'a> Git<'a> {
    pub(crate) fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            args: Vec::new(),
            stdin: Input::Nothing,
            env: Vec::new(),
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets `key` for this invocation (e.g. the committer identity a reflog line records),
    /// whatever the inherited environment holds.
    pub(crate) fn env(mut self, key: &'static str, value: impl Into<OsString>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    pub(crate) fn stdin_file(mut self, path: &'a Path) -> Self {
        self.stdin = Input::File(path);
        self
    }

    /// The command as shown in errors.
    fn describe(&self) -> String {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command with this crate's configuration and environment, stdin not yet set.
    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(self.dir)
            .args(CONFIG_OVERRIDES)
            .args(&self.args)
            // Never ask for credentials or a passphrase: there is nobody to answer.
            .env("GIT_TERMINAL_PROMPT", "0")
            // Paths are file names, never glob patterns.
            .env("GIT_LITERAL_PATHSPECS", "1")
            // Do not take optional locks (e.g. an index refresh) on the user's repository.
            .env("GIT_OPTIONAL_LOCKS", "0")
            // Stable, English messages for the error texts we pass on.
            .env("LC_ALL", "C")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for key in SCRUBBED_ENV {
            command.env_remove(key);
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Starts the command with all three standard streams piped, for a conversation
    /// (`git cat-file --batch`): the caller writes requests and reads answers.
    pub(crate) fn spawn_session(&self) -> Result<Child, LocalGitError> {
        self.command()
            .stdin(Stdio::piped())
            .spawn()
            .map_err(LocalGitError::Spawn)
    }

    /// Runs the command and returns its output whatever the exit status.
    pub(crate) fn output(&self) -> Result<Output, LocalGitError> {
        let mut command = self.command();
        match self.stdin {
            Input::Nothing => {
                command.stdin(Stdio::null());
            }
            Input::File(path) => {
                let file = File::open(path).map_err(|source| LocalGitError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                command.stdin(Stdio::from(file));
            }
        }
        command.output().map_err(LocalGitError::Spawn)
    }

    /// Runs the command and fails unless it exits with status 0.
    pub(crate) fn run(&self) -> Result<Output, LocalGitError> {
        let output = self.output()?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.failed(&output))
        }
    }

    /// Runs the command and returns its standard output, trimmed of the final newline.
    pub(crate) fn run_text(&self) -> Result<String, LocalGitError> {
        let output = self.run()?;
        self.text(&output)
    }

    /// The standard output as UTF-8, without the final newline.
    pub(crate) fn text(&self, output: &Output) -> Result<String, LocalGitError> {
        let text = String::from_utf8(output.stdout.clone()).map_err(|_| {
            LocalGitError::UnexpectedOutput {
                command: self.describe(),
                output: String::from_utf8_lossy(&output.stdout).into_owned(),
            }
        })?;
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
    }

    /// The error for a command that exited unsuccessfully.
    pub(crate) fn failed(&self, output: &Output) -> LocalGitError {
        LocalGitError::GitFailed {
            command: self.describe(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
    }

    /// The error for output that does not have the expected shape.
    pub(crate) fn unexpected(&self, output: &str) -> LocalGitError {
        LocalGitError::UnexpectedOutput {
            command: self.describe(),
            output: output.to_owned(),
        }
    }
}
