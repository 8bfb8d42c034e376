//! Who owns a path: a map in CODEOWNERS syntax (`pattern owner…` per line, the last
//! matching line wins), so a team reuses the file its forge already reads.
//!
//! Patterns follow CODEOWNERS / `.gitignore`: a leading `/` or a `/` inside anchors the
//! pattern at the repository root, otherwise it matches at any depth; `*` and `?` stay
//! within one segment, `**` crosses segments; a pattern that matches a directory covers
//! everything below it. GitLab's `[Section]` headers are accepted and ignored (all lines
//! form one list), as are lines with no owners (they un-own a path, as on both forges).

use regex::Regex;

/// One owner as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// `@username`.
    User(String),
    /// `@org/team` (GitHub) or `@group/subgroup` (GitLab).
    Group(String),
    /// `someone@example.com`: kept, but forges do not resolve e-mails for reviewers.
    Email(String),
}

/// The parsed map.
#[derive(Debug, Clone, Default)]
pub struct OwnersMap {
    /// Rules in file order; the last match wins.
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The anchored pattern.
    pattern: Regex,
    /// Its owners (possibly none).
    owners: Vec<Owner>,
}

/// A line that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("owners file line {line}: {problem}")]
pub struct OwnersError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl OwnersMap {
    /// Parses CODEOWNERS text.
    pub fn parse(text: &str) -> Result<Self, OwnersError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            // Comments, blank lines and GitLab section headers (`[Docs]`, `^[Optional][2]`).
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with('[')
                || line.starts_with("^[")
            {
                continue;
            }
            let mut tokens = split_tokens(line).into_iter();
            let Some(pattern) = tokens.next() else {
                continue;
            };
            let owners = tokens
                .take_while(|token| !token.starts_with('#'))
                .map(|token| parse_owner(&token))
                .collect();
            let pattern = Regex::new(&pattern_to_regex(&pattern)).map_err(|error| OwnersError {
                line: index + 1,
                problem: format!("pattern {pattern:?}: {error}"),
            })?;
            rules.push(Rule { pattern, owners });
        }
        Ok(Self { rules })
    }

    /// The owners of `path` (relative to the repository root, `/`-separated): those of the
    /// last line whose pattern matches, or none.
    pub fn owners_of(&self, path: &str) -> Vec<Owner> {
        let path = path.trim_start_matches('/');
        self.rules
            .iter()
            .rev()
            .find(|rule| rule.pattern.is_match(path))
            .map(|rule| rule.owners.clone())
            .unwrap_or_default()
    }

    /// True when the map has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The user names among `owners`, in order.
pub fn user_names(owners: &[Owner]) -> Vec<String> {
    owners
        .iter()
        .filter_map(|owner| match owner {
            Owner::User(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn parse_owner(token: &str) -> Owner {
    match token.strip_prefix('@') {
        Some(name) if name.contains('/') => Owner::Group(name.to_owned()),
        Some(name) => Owner::User(name.to_owned()),
        None => Owner::Email(token.to_owned()),
    }
}

/// Splits on whitespace, honouring `\ ` (an escaped space inside a pattern).
fn split_tokens(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push('\\');
                    current.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Translates a CODEOWNERS pattern into an anchored regular expression over a path
/// relative to the repository root.
fn pattern_to_regex(pattern: &str) -> String {
    let trimmed = pattern.trim_end_matches('/');
    let anchored = trimmed.starts_with('/') || trimmed.trim_start_matches('/').contains('/');
    let body = trimmed.trim_start_matches('/');
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::from("^");
    if !anchored {
        out.push_str("(?:.*/)?");
    }
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                let mut j = i;
                while chars.get(j) == Some(&'*') {
                    j += 1;
                }
                let at_segment_start = i == 0 || chars[i - 1] == '/';
                if at_segment_start && chars.get(j) == Some(&'/') {
                    out.push_str("(?:.*/)?");
                    j += 1;
                } else {
                    out.push_str(".*");
                }
                i = j;
            }
            '*' => {
                out.push_str("[^/]*");
                i += 1;
            }
            '?' => {
                out.push_str("[^/]");
                i += 1;
            }
            '\\' if i + 1 < chars.len() => {
                out.push_str(&regex::escape(&chars[i + 1].to_string()));
                i += 2;
            }
            c => {
                out.push_str(&regex::escape(&c.to_string()));
                i += 1;
            }
        }
    }
    // A pattern naming a directory covers everything below it.
    out.push_str("(?:/.*)?$");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# Data team owns everything by default.
*                      @data-lead
[Finance]
/models/finance/       @alice @acme/finance-reviewers
models/**/pii_*.sql    @privacy-officer privacy@example.com
*.md                   @docs  # inline comment
/analytics/coffee_shop/models/staging/stg_orders.sql @bob @carol
/models/finance/public/
";

    fn map() -> OwnersMap {
        OwnersMap::parse(FILE).unwrap()
    }

    #[test]
    fn the_last_matching_line_wins() {
        assert_eq!(
            map().owners_of("models/finance/revenue.sql"),
            vec![
                Owner::User("alice".into()),
                Owner::Group("acme/finance-reviewers".into())
            ]
        );
        assert_eq!(
            map().owners_of("models/other.sql"),
            vec![Owner::User("data-lead".into())]
        );
        assert_eq!(
            map().owners_of("analytics/coffee_shop/models/staging/stg_orders.sql"),
            vec![Owner::User("bob".into()), Owner::User("carol".into())]
        );
    }

    #[test]
    fn a_line_without_owners_unowns() {
        assert!(map().owners_of("models/finance/public/x.sql").is_empty());
    }

    #[test]
    fn double_star_and_unanchored_patterns() {
        assert_eq!(
            map().owners_of("models/a/b/pii_users.sql"),
            vec![
                Owner::User("privacy-officer".into()),
                Owner::Email("privacy@example.com".into())
            ]
        );
        assert_eq!(
            map().owners_of("docs/deep/readme.md"),
            vec![Owner::User("docs".into())]
        );
        // Anchored: a finance directory elsewhere is not /models/finance/.
        assert_eq!(
            map().owners_of("other/models/finance/x.sql"),
            vec![Owner::User("data-lead".into())]
        );
    }

    #[test]
    fn user_names_skip_groups_and_emails() {
        assert_eq!(
            user_names(&map().owners_of("models/finance/x.sql")),
            vec!["alice".to_string()]
        );
    }

    #[test]
    fn escaped_spaces_stay_in_the_pattern() {
        let map = OwnersMap::parse("/models/odd\\ name.sql @x\n").unwrap();
        assert_eq!(
            map.owners_of("models/odd name.sql"),
            vec![Owner::User("x".into())]
        );
    }
}
