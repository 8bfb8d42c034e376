//! A small glob matcher (`**`, `*`, `?`) for sensitive paths and protected branches.
//!
//! Globs are translated into an anchored regular expression; the `regex` crate then does
//! the matching in linear time, so a hostile pattern or path cannot make a check slow.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

/// How `*` treats the `/` separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Separator {
    /// Paths: `*` and `?` stay within one segment, `**` crosses segments, and a pattern
    /// that matches a directory also matches everything below it (as in `.gitignore`).
    Path,
    /// Branch names: `*` also matches `/`, as in GitLab's protected-branch wildcards, so
    /// `release/*` protects `release/1.0/hotfix` too. Matching more is the safe direction
    /// for a pattern that refuses.
    Branch,
}

/// Whether `text` matches `pattern`, case-insensitively.
///
/// Case-insensitive on purpose: on macOS and Windows file systems `Models/Finance` and
/// `models/finance` are the same directory, and loose refs `Main` and `main` the same file.
/// A pattern that cannot be compiled matches everything, because these checks refuse or
/// label, and failing open would be the wrong way round.
pub(crate) fn glob_matches(pattern: &str, text: &str, separator: Separator) -> bool {
    match compiled(pattern, separator) {
        Some(re) => re.is_match(text),
        None => true,
    }
}

/// Patterns compiled before, kept: they come from the settings, so there are few, and each
/// delivery checks the same ones again (compiling costs far more than matching).
/// `None`: the pattern does not compile.
fn compiled(pattern: &str, separator: Separator) -> Option<regex::Regex> {
    /// More distinct patterns than any settings file holds: the cache starts over.
    const MAX_CACHED: usize = 1024;
    type Cache = HashMap<(String, Separator), Option<regex::Regex>>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let key = (pattern.to_owned(), separator);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return found.clone();
    }
    let made = regex::Regex::new(&glob_to_regex(pattern, separator)).ok();
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(key, made.clone());
    made
}

/// Translates a glob into an anchored regular expression.
fn glob_to_regex(pattern: &str, separator: Separator) -> String {
    let (star, one) = match separator {
        Separator::Path => ("[^/]*", "[^/]"),
        Separator::Branch => (".*", "."),
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?is)^(?:");
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                // Swallow runs like `***`: they mean the same as `**`.
                let mut j = i;
                while chars.get(j) == Some(&'*') {
                    j += 1;
                }
                let at_segment_start = i == 0 || chars[i - 1] == '/';
                if at_segment_start && chars.get(j) == Some(&'/') {
                    // `**/` matches zero or more whole directories.
                    out.push_str("(?:.*/)?");
                    j += 1;
                } else {
                    out.push_str(".*");
                }
                i = j;
            }
            '*' => {
                out.push_str(star);
                i += 1;
            }
            '?' => {
                out.push_str(one);
                i += 1;
            }
            c => {
                out.push_str(&regex::escape(c.encode_utf8(&mut [0u8; 4])));
                i += 1;
            }
        }
    }
    out.push(')');
    if separator == Separator::Path {
        // A pattern naming a directory covers its contents.
        out.push_str("(?:/.*)?");
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str, t: &str) -> bool {
        glob_matches(p, t, Separator::Path)
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(path("models/finance/**", "models/finance/x.sql"));
        assert!(path("models/finance/**", "models/finance/a/b/x.sql"));
        assert!(path("**/secret.sql", "secret.sql"));
        assert!(path("**/secret.sql", "models/a/secret.sql"));
        assert!(path("models/**/pii_*.sql", "models/pii_users.sql"));
        assert!(path("models/**/pii_*.sql", "models/a/b/pii_users.sql"));
        assert!(!path("models/**/pii_*.sql", "models/a/b/users.sql"));
    }

    #[test]
    fn single_star_and_question_mark_stay_in_a_segment() {
        assert!(path("models/*.sql", "models/x.sql"));
        assert!(!path("models/*.sql", "models/a/x.sql"));
        assert!(path("models/?.sql", "models/x.sql"));
        assert!(!path("models/?.sql", "models/xy.sql"));
        assert!(!path("models/?x.sql", "models//x.sql"));
    }

    #[test]
    fn a_directory_pattern_covers_its_contents() {
        assert!(path("models/finance", "models/finance/x.sql"));
        assert!(path("models/fin*", "models/finance/deep/x.sql"));
        assert!(!path("models/finance", "models/finance_public/x.sql"));
    }

    #[test]
    fn regex_metacharacters_are_literal() {
        assert!(path("models/a+b (1).sql", "models/a+b (1).sql"));
        assert!(!path("models/a.sql", "models/abSql"));
        assert!(path("models/[x].sql", "models/[x].sql"));
    }

    #[test]
    fn matching_ignores_case() {
        assert!(path("models/finance/**", "Models/Finance/x.sql"));
        assert!(glob_matches("Release/*", "release/1.0", Separator::Branch));
    }

    #[test]
    fn branch_star_crosses_slashes() {
        assert!(glob_matches(
            "release/*",
            "release/1.0/hotfix",
            Separator::Branch
        ));
        assert!(!glob_matches("release/*", "releases", Separator::Branch));
        assert!(glob_matches(
            "dbt-ops/*",
            "dbt-ops/fix/a/b",
            Separator::Branch
        ));
    }
}
