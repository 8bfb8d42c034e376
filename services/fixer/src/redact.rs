//! Secret redaction for what the fixer records or sends: the exact values of configured
//! API keys (which must never reach a prompt), and, for content captured on spans,
//! anything shaped like a password, token, key or credentialed URL.
//!
//! The detector already redacts the evidence; this is the second line, for the copies the
//! fixer makes.

use std::sync::OnceLock;

use regex::Regex;

/// What a redacted value becomes.
pub const MARKER: &str = "[REDACTED]";

/// Replaces every occurrence of each known secret (API keys of the configured
/// providers) with the marker. Secrets shorter than 8 characters are ignored: replacing
/// `"a"` everywhere would mangle the text and such a value is no secret.
pub fn scrub_known(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 8) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MARKER);
        }
    }
    out
}

/// Patterns of secrets and what replaces them.
fn patterns() -> Option<&'static [(Regex, &'static str)]> {
    static PATTERNS: OnceLock<Option<Vec<(Regex, &'static str)>>> = OnceLock::new();
    PATTERNS
        .get_or_init(|| {
            [
                // key = value, key: value, "key": "value" for secret-sounding keys.
                (
                    r#"(?i)\b([a-z0-9_\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?)[a-z0-9_\-]*)("?\s*[:=]\s*)("[^"\n]*"|'[^'\n]*'|[^\s,;"'}]+)"#,
                    "${1}${2}[REDACTED]",
                ),
                (r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=\-]{8,}", "${1} [REDACTED]"),
                // user:password@ in URLs and connection strings.
                (r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+):[^\s@/]+@", "${1}:[REDACTED]@"),
                // Well-known token shapes: OpenAI/Anthropic keys, GitHub, GitLab, AWS, Slack.
                (r"\bsk-[A-Za-z0-9_\-]{16,}", "[REDACTED]"),
                (r"\bgh[pousr]_[A-Za-z0-9]{20,}", "[REDACTED]"),
                (r"\bglpat-[A-Za-z0-9_\-]{20,}", "[REDACTED]"),
                (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[REDACTED]"),
                (r"\bxox[abpr]-[A-Za-z0-9\-]{10,}", "[REDACTED]"),
            ]
            .into_iter()
            .map(|(pattern, replacement)| Regex::new(pattern).ok().map(|re| (re, replacement)))
            .collect()
        })
        .as_deref()
}

/// Redacts known secrets and secret-shaped text, for content recorded on spans. Should
/// a pattern ever fail to compile, nothing is returned but a note: recording unredacted
/// content is the one thing this function must not do.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let Some(patterns) = patterns() else {
        return "[content withheld: redaction unavailable]".into();
    };
    let mut out = scrub_known(text, secrets);
    for (pattern, replacement) in patterns {
        out = pattern.replace_all(&out, *replacement).into_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_sql_is_left_alone() {
        let secrets = vec!["my-provider-key-123".to_owned(), "short".to_owned()];
        let text = "key my-provider-key-123 and short\npassword=hunter2 token: 'abc def'\n\"api_key\": \"zzz\"\npostgres://app:s3cret@db:5432/x\nAuthorization: Bearer abcdefghijkl\nsk-proj-ABCDEFGHIJKLMNOPQRST ghp_abcdefghijklmnopqrstuvwx AKIAABCDEFGHIJKLMNOP\nselect customer_id, password_changed_at from users";
        let redacted = redact(text, &secrets);
        for secret in [
            "my-provider-key-123",
            "hunter2",
            "abc def",
            "zzz",
            "s3cret",
            "abcdefghijkl",
            "sk-proj",
            "ghp_",
            "AKIA",
        ] {
            assert!(!redacted.contains(secret), "{secret} survived:\n{redacted}");
        }
        assert!(
            redacted.contains("short"),
            "short values are not treated as secrets"
        );
        assert!(
            redacted.contains("postgres://app:[REDACTED]@db:5432/x"),
            "{redacted}"
        );
        assert!(
            redacted.contains("select customer_id, password_changed_at from users"),
            "{redacted}"
        );
        assert_eq!(
            scrub_known("a my-provider-key-123 b", &secrets),
            "a [REDACTED] b"
        );
    }
}
