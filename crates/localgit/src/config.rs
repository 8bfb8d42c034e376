//! The repository's own `config` file (`<git-common-dir>/config`), read without git, for
//! the few settings that decide how a branch is created in-process (`crate::refs`).
//!
//! Only that one file: the user's and the system's configuration are not read, which is
//! why every question asked here has a safe answer when the file is silent or unclear.
//! The syntax is git-config(1)'s, read conservatively: a value with quotes or escapes is
//! "unreadable" (never guessed at), and a line this reader does not understand makes the
//! whole file unreadable, so that the caller asks git.

use std::path::Path;

/// One value as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// `key` alone on its line: a boolean true.
    Flag,
    /// `key = text`, comments and surrounding blanks removed.
    Text(String),
    /// A value with quotes or escapes, which this reader does not interpret.
    Unreadable,
}

/// The entries of one config file, in order.
#[derive(Debug, Default)]
pub(crate) struct RepoConfig {
    /// `(name, value)`, the name as `section.key` or `section.subsection.key`, section and
    /// key lower-cased (they are case-insensitive), the subsection as written.
    entries: Vec<(String, Value)>,
    /// Whether other files may add to or override these entries (`include.path`,
    /// `includeIf.*.path`, `extensions.worktreeConfig`): then a value missing here may
    /// still be set, and one set here may be overridden.
    partial: bool,
}

/// The file could not be read, or not with confidence.
#[derive(Debug, thiserror::Error)]
#[error("the repository's config file cannot be read without git: {0}")]
pub(crate) struct Unreadable(String);

impl RepoConfig {
    /// Reads the file at `path`; a missing file is an empty configuration.
    pub(crate) fn read(path: &Path) -> Result<Self, Unreadable> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| Unreadable(format!("{} is not UTF-8", path.display())))?;
                Self::parse(&text)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(Unreadable(format!("{}: {error}", path.display()))),
        }
    }

    fn parse(text: &str) -> Result<Self, Unreadable> {
        let mut config = Self::default();
        let mut section: Option<String> = None;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (number, line) in text.lines().enumerate() {
            let unclear = || Unreadable(format!("line {} is not understood", number + 1));
            let mut rest = line.trim_start();
            if rest.starts_with('[') {
                let (name, after) = parse_section(rest).ok_or_else(unclear)?;
                section = Some(name);
                rest = after.trim_start();
            }
            if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
                continue;
            }
            let section = section.as_deref().ok_or_else(unclear)?;
            let (key, value) = parse_entry(rest).ok_or_else(unclear)?;
            let name = format!("{section}.{key}");
            let section_name = section.split('.').next().unwrap_or_default();
            if name == "include.path"
                || (section_name == "includeif" && key == "path")
                || name == "extensions.worktreeconfig"
            {
                config.partial = true;
            }
            config.entries.push((name, value));
        }
        Ok(config)
    }

    /// The last value of `name` (`section.key`, lower case), which is the one git uses.
    fn last(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .rev()
            .find(|(entry, _)| entry == name)
            .map(|(_, value)| value)
    }

    /// Whether the refs are surely in the "files" backend as far as this file says:
    /// `extensions.refStorage` unset or `files`. (A reftable repository also has a
    /// `reftable` directory, which the caller checks too.)
    pub(crate) fn ref_storage_is_files(&self) -> bool {
        match self.last("extensions.refstorage") {
            None => true,
            Some(Value::Text(format)) => format == "files",
            Some(_) => false,
        }
    }

    /// `core.logAllRefUpdates` as far as this file surely says: `Some(false)` for false,
    /// `Some(true)` for true or `always`, `None` when unset, unclear, or possibly
    /// overridden by another file.
    pub(crate) fn log_all_ref_updates(&self) -> Option<bool> {
        if self.partial {
            return None;
        }
        match self.last("core.logallrefupdates")? {
            Value::Flag => Some(true),
            Value::Text(text) if text.eq_ignore_ascii_case("always") => Some(true),
            Value::Text(text) => parse_bool(text),
            Value::Unreadable => None,
        }
    }

    /// Whether `core.sharedRepository` is set at all: then git gives the files it creates
    /// group or other permissions, which this crate does not reproduce.
    pub(crate) fn shared_repository(&self) -> bool {
        self.last("core.sharedrepository").is_some()
    }
}

/// A section header at the start of `line`: its name (`section` or `section.subsection`)
/// and what follows the `]`.
fn parse_section(line: &str) -> Option<(String, &str)> {
    let inner = line.strip_prefix('[')?;
    let close = inner.find(']')?;
    let (header, after) = (&inner[..close], &inner[close + 1..]);
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if let Some((name, subsection)) = header.split_once(char::is_whitespace) {
        // `[section "subsection"]`: quotes around the subsection, no escapes handled.
        let subsection = subsection
            .trim_start()
            .strip_prefix('"')?
            .strip_suffix('"')?;
        if !name_ok(name) || name.contains('.') || subsection.contains(['"', '\\']) {
            return None;
        }
        return Some((format!("{}.{subsection}", name.to_ascii_lowercase()), after));
    }
    // `[section]`, or the old `[section.subsection]`, which git lower-cases whole.
    name_ok(header).then(|| (header.to_ascii_lowercase(), after))
}

/// `key`, `key = value` or `key=value`, with an optional comment: the key lower-cased and
/// the value.
fn parse_entry(line: &str) -> Option<(String, Value)> {
    let key_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(line.len());
    let key = &line[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = line[key_end..].trim_start();
    let value = if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
        Value::Flag
    } else {
        let raw = rest.strip_prefix('=')?;
        let raw = raw.find(['#', ';']).map_or(raw, |comment| &raw[..comment]);
        if raw.contains(['"', '\\']) {
            // A trailing backslash continues the value on the next line, which this
            // line-by-line reader would misread: the whole file is unclear then.
            if raw.trim_end().ends_with('\\') {
                return None;
            }
            Value::Unreadable
        } else {
            Value::Text(raw.trim().to_owned())
        }
    };
    Some((key.to_ascii_lowercase(), value))
}

/// git's boolean words and numbers; `None` for anything else.
fn parse_bool(text: &str) -> Option<bool> {
    let lower = text.to_ascii_lowercase();
    match lower.as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" | "" => Some(false),
        _ => lower.parse::<i64>().ok().map(|number| number != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_that_matter_are_read_as_git_reads_them() {
        let config = RepoConfig::parse(
            "\u{feff}[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tlogAllRefUpdates = false ; no\n[remote \"Origin\"]\n\turl = x\n",
        )
        .unwrap();
        assert_eq!(config.log_all_ref_updates(), Some(false));
        assert!(config.ref_storage_is_files());
        assert!(!config.shared_repository());
        assert_eq!(
            config.last("remote.Origin.url"),
            Some(&Value::Text("x".into()))
        );

        // The last value wins; a flag is true; `always` logs too.
        let config =
            RepoConfig::parse("[core]\nlogallrefupdates = false\n[CORE]\nLogAllRefUpdates\n")
                .unwrap();
        assert_eq!(config.log_all_ref_updates(), Some(true));
        let config = RepoConfig::parse("[core] logAllRefUpdates = always\n").unwrap();
        assert_eq!(config.log_all_ref_updates(), Some(true));
        assert_eq!(
            RepoConfig::parse("[core]\n").unwrap().log_all_ref_updates(),
            None
        );
    }

    #[test]
    fn anything_unclear_is_not_guessed() {
        // Another file may override: the default applies.
        let config = RepoConfig::parse(
            "[core]\nlogallrefupdates = false\n[includeIf \"gitdir:/x/\"]\npath = other\n",
        )
        .unwrap();
        assert_eq!(config.log_all_ref_updates(), None);
        let config =
            RepoConfig::parse("[include]\npath = x\n[core]\nlogallrefupdates = false\n").unwrap();
        assert_eq!(config.log_all_ref_updates(), None);
        // Quotes are not interpreted.
        let config = RepoConfig::parse("[core]\nlogallrefupdates = \"false\"\n").unwrap();
        assert_eq!(config.log_all_ref_updates(), None);
        // A reftable repository, or a format this reader cannot be sure of.
        assert!(
            !RepoConfig::parse("[extensions]\n\trefStorage = reftable\n")
                .unwrap()
                .ref_storage_is_files()
        );
        assert!(!RepoConfig::parse("[extensions]\n\trefStorage = \"x\"\n")
            .unwrap()
            .ref_storage_is_files());
        assert!(RepoConfig::parse("[core]\nsharedRepository = group\n")
            .unwrap()
            .shared_repository());
        // Lines it does not understand: the whole file is unreadable.
        assert!(RepoConfig::parse("key = value\n").is_err());
        assert!(RepoConfig::parse("[core\n").is_err());
        assert!(RepoConfig::parse("[core]\nx = a \\\n b\n").is_err());
        assert!(RepoConfig::parse("[core]\n1x = a\n").is_err());
    }
}
