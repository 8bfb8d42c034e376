//! Secrets out of evidence, before anything leaves the detector.
//!
//! Error texts, model SQL, YAML and compiled SQL can all carry credentials: a DuckDB
//! `ATTACH 'postgresql://user:pass@host/db'`, a `password:` in a YAML block, a token a
//! macro printed, the value of `DBT_ENV_SECRET_…` rendered into compiled SQL. The
//! [`Redactor`] replaces, in this order:
//!
//! 1. the values of chosen environment variables (configured names, plus every variable
//!    whose name ends in `_PASSWORD`, `_PASS`, `_PWD`, `_TOKEN`, `_KEY`, `_SECRET` or
//!    `_CREDENTIALS`, or starts with `DBT_ENV_SECRET_`), with `[REDACTED:NAME]`;
//! 2. private key blocks (`-----BEGIN … PRIVATE KEY-----`);
//! 3. the password of a URL (`scheme://user:pass@host` → `scheme://user:[REDACTED]@host`);
//! 4. well-known token shapes (AWS access key ids, GitHub/GitLab/Slack/OpenAI/Anthropic
//!    tokens, Google API keys, JWTs, `Bearer …`);
//! 5. values after a secret-looking key: `password: x` (YAML), `"token": "x"` (JSON),
//!    `password=x` (libpq and ODBC strings), `secret_key = 'x'` (SQL), `PASSWORD 'x'`.
//!
//! Replacements never add or remove a newline, so line numbers in the evidence still hold.
//! Values written as Jinja (`{{ env_var('DBT_PASSWORD') }}`) are not secrets and are kept.
//! A bare value after `=` is redacted only for password keys: in SQL, `token_count = 5`
//! is a comparison, not a credential.

use std::borrow::Cow;

use regex::{Captures, Regex};

use crate::Failure;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Environment values shorter than this are not redacted: they would match everywhere.
const MIN_ENV_VALUE_CHARS: usize = 6;

/// Replaces secrets in text. Built once at start (it compiles its patterns and reads the
/// chosen environment values) and shared.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Environment values to replace, longest first (so a value containing another wins),
    /// with the variable's name for the marker.
    env_values: Vec<(String, String)>,
    /// The patterns of steps 2–5, compiled.
    patterns: Vec<(Regex, Replacement)>,
}

#[derive(Debug, Clone, Copy)]
enum Replacement {
    /// Keep the BEGIN/END lines of a key block, blank its body (newlines kept).
    KeyBlock,
    /// `scheme://user:` + marker + `@`.
    UrlPassword,
    /// The whole match.
    Whole,
    /// `Bearer ` + marker.
    Bearer,
    /// Keep the key, separator and quotes; replace the value.
    KeyValue,
}

/// True for an environment variable whose value is a secret by its name alone.
pub fn is_secret_env_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const SUFFIXES: &[&str] = &[
        "_PASSWORD",
        "_PASS",
        "_PWD",
        "_TOKEN",
        "_KEY",
        "_SECRET",
        "_CREDENTIALS",
        "_API_KEY",
    ];
    SUFFIXES.iter().any(|s| upper.ends_with(s))
        || upper.starts_with("DBT_ENV_SECRET_")
        || matches!(
            upper.as_str(),
            "PASSWORD" | "TOKEN" | "SECRET" | "PGPASSWORD" | "API_KEY"
        )
}

impl Redactor {
    /// A redactor for `env_values`: `(variable name, value)` pairs whose values are
    /// replaced wherever they appear (values under six characters are ignored).
    pub fn new(env_values: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut env_values: Vec<(String, String)> = env_values
            .into_iter()
            .filter(|(_, v)| v.trim().chars().count() >= MIN_ENV_VALUE_CHARS)
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect();
        env_values.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        env_values.dedup_by(|a, b| a.1 == b.1);
        Redactor {
            env_values,
            patterns: compile_patterns(),
        }
    }

    /// A redactor for the given environment (`std::env::vars()` in the detector): the
    /// values of the variables named in `names` and of every variable
    /// [`is_secret_env_name`] accepts.
    pub fn from_env(env: impl IntoIterator<Item = (String, String)>, names: &[String]) -> Redactor {
        Redactor::new(env.into_iter().filter(|(k, _)| {
            is_secret_env_name(k) || names.iter().any(|n| n.eq_ignore_ascii_case(k))
        }))
    }

    /// How many environment values it replaces.
    pub fn env_value_count(&self) -> usize {
        self.env_values.len()
    }

    /// `text` with every secret replaced; borrowed when there was none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        for (name, value) in &self.env_values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[REDACTED:{name}]")));
            }
        }
        for (re, how) in &self.patterns {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = re
                .replace_all(&out, |c: &Captures<'_>| replace(c, *how))
                .into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }

    /// Redacts every text of a failure that leaves the detector — the message, the
    /// signature, the model SQL, the compiled SQL, the YAML entry, the line the error is
    /// on — and records in `evidence.redacted_fields` where secrets were found.
    pub fn redact_failure(&self, failure: &mut Failure) {
        let mut fields: Vec<String> = Vec::new();
        let mut apply = |field: &str, text: &mut String| {
            if let Cow::Owned(clean) = self.redact(text) {
                if clean != *text {
                    *text = clean;
                    fields.push(field.to_owned());
                }
            }
        };
        apply("error.message", &mut failure.message);
        apply("error.signature", &mut failure.signature);
        let ev = &mut failure.evidence;
        apply("model_sql", &mut ev.model_sql);
        apply("compiled_sql", &mut ev.compiled_sql);
        apply("yaml_entry", &mut ev.yaml_entry);
        if let Some(loc) = ev.error_location.as_mut() {
            apply("error_location", &mut loc.model_line_text);
        }
        for source in &mut ev.sources {
            for column in &mut source.columns {
                apply("sources", column);
            }
        }
        for parent in &mut ev.parents {
            for column in &mut parent.columns {
                apply("parents", column);
            }
        }
        // An ancestor is shipped to be edited, and an edit is its whole new file: one
        // that held a secret is withheld rather than shipped with a marker a fix would
        // write back.
        let before = ev.ancestors.len();
        ev.ancestors
            .retain(|ancestor| *self.redact(&ancestor.raw_sql) == *ancestor.raw_sql);
        if ev.ancestors.len() < before {
            fields.push("ancestors".to_owned());
        }
        fields.dedup();
        for field in fields {
            if !ev.redacted_fields.contains(&field) {
                ev.redacted_fields.push(field);
            }
        }
    }
}

fn replace(c: &Captures<'_>, how: Replacement) -> String {
    let whole = c.get(0).map_or("", |m| m.as_str());
    match how {
        Replacement::KeyBlock => {
            let begin = c.name("begin").map_or("", |m| m.as_str());
            let end = c.name("end").map_or("", |m| m.as_str());
            let inner_newlines = whole.matches('\n').count();
            let mut out = String::from(begin);
            out.push_str(REDACTED);
            for _ in 0..inner_newlines {
                out.push('\n');
            }
            out.push_str(end);
            out
        }
        Replacement::UrlPassword => format!(
            "{}{}:{REDACTED}@",
            c.name("scheme").map_or("", |m| m.as_str()),
            c.name("user").map_or("", |m| m.as_str())
        ),
        Replacement::Whole => REDACTED.to_owned(),
        Replacement::Bearer => format!("{}{REDACTED}", c.name("bearer").map_or("", |m| m.as_str())),
        Replacement::KeyValue => {
            if c.name("prose").is_some() {
                // "expected token 'x'": a parser describing what it wanted, no secret.
                return whole.to_owned();
            }
            let value = c.name("value").map_or("", |m| m.as_str());
            let trimmed = value.trim();
            // Jinja is not a secret, an empty value has nothing to hide, and a marker
            // is already redacted.
            if trimmed.is_empty()
                || trimmed.starts_with("{{")
                || trimmed.starts_with("[REDACTED")
                || matches!(
                    trimmed.to_ascii_lowercase().as_str(),
                    "null" | "none" | "true" | "false" | "~" | "''" | "\"\""
                )
            {
                return whole.to_owned();
            }
            format!(
                "{}{}{REDACTED}{}",
                c.name("key").map_or("", |m| m.as_str()),
                c.name("sep").map_or("", |m| m.as_str()),
                c.name("close").map_or("", |m| m.as_str()),
            )
        }
    }
}

/// The patterns of steps 2–5. A pattern that fails to compile is left out (the unit tests
/// compile each one, so that never ships).
fn compile_patterns() -> Vec<(Regex, Replacement)> {
    pattern_rows()
        .into_iter()
        .filter_map(|(p, how)| Regex::new(&p).ok().map(|re| (re, how)))
        .collect()
}

fn pattern_rows() -> Vec<(String, Replacement)> {
    // Key names that hold secrets. `pass` and `pwd` only as whole words, so that
    // `passenger_count` and `bypass_flag` are not keys.
    const KEY: &str = r"(?:[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|credentials?)[A-Za-z0-9_.-]*|pass|pwd)";
    let rows: Vec<(String, Replacement)> = vec![
        (
            r"(?s)(?P<begin>-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(?P<end>-----END [A-Z ]*PRIVATE KEY-----)"
                .into(),
            Replacement::KeyBlock,
        ),
        (
            r#"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s:/@'"]*):(?P<pass>[^\s@/'"]+)@"#
                .into(),
            Replacement::UrlPassword,
        ),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b".into(), Replacement::Whole),
        (r"\bgh[pousr]_[A-Za-z0-9]{30,}\b".into(), Replacement::Whole),
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}\b".into(), Replacement::Whole),
        (r"\bglpat-[A-Za-z0-9_-]{20,}".into(), Replacement::Whole),
        (r"\bxox[abposr]-[A-Za-z0-9-]{10,}".into(), Replacement::Whole),
        (r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}".into(), Replacement::Whole),
        (r"\bAIza[0-9A-Za-z_-]{35}\b".into(), Replacement::Whole),
        (
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}".into(),
            Replacement::Whole,
        ),
        (
            r"(?P<bearer>(?i:\bbearer)\s+)[A-Za-z0-9._~+/=-]{16,}".into(),
            Replacement::Bearer,
        ),
        // key: value / "key": "value" (YAML, JSON, Python reprs). `::` is a SQL cast.
        (
            format!(
                r#"(?i)(?P<key>["']?\b{KEY}\b["']?)(?P<sep>\s*:(?:[ \t]*)["']?)(?P<value>[^\s"',}}\]:][^\s"',}}\]]*)(?P<close>["']?)"#
            ),
            Replacement::KeyValue,
        ),
        // key = 'value' / key = "value" (SQL, ODBC, Python).
        (
            format!(
                r#"(?i)(?P<key>\b{KEY}\b)(?P<sep>\s*=>?\s*["'])(?P<value>[^"'\n]*)(?P<close>["'])"#
            ),
            Replacement::KeyValue,
        ),
        // password=value (libpq keyword strings, ODBC `PWD=`), unquoted: password keys only.
        (
            r#"(?i)(?P<key>\b(?:password|passwd|pwd|pass)\b)(?P<sep>\s*=\s*)(?P<value>[^\s;,'"&)]+)(?P<close>)"#
                .into(),
            Replacement::KeyValue,
        ),
        // SQL `PASSWORD 'x'` (CREATE USER … WITH PASSWORD 'x', Snowflake, DuckDB secrets).
        // A parser's prose names tokens too: Jinja's "expected token 'end of print
        // statement', got 'where'", "unexpected token 'x'". The optional `prose` group
        // takes the word in front, so such a match starts there and is kept whole (the
        // regex crate has no look-behind).
        (
            r#"(?i)(?P<prose>\b(?:un)?expect(?:ed|ing)\s+)?(?P<key>\b(?:password|secret|token)\b)(?P<sep>\s+')(?P<value>[^'\n]*)(?P<close>')"#
                .into(),
            Replacement::KeyValue,
        ),
    ];
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new([("DBT_PG_PASSWORD".to_owned(), "s3cr3t-Pa55".to_owned())])
    }

    #[test]
    fn an_ancestor_holding_a_secret_is_withheld_not_shipped_redacted() {
        let ancestor = |name: &str, sql: &str| crate::AncestorModel {
            unique_id: format!("model.shop.{name}"),
            name: name.into(),
            path: format!("models/staging/{name}.sql"),
            raw_sql: sql.into(),
            depth: 1,
            materialized: "view".into(),
        };
        let mut failure = Failure {
            unique_id: "model.shop.orders".into(),
            name: "orders".into(),
            path: "models/orders.sql".into(),
            resource_type: "model".into(),
            class: crate::ErrorClass::MissingColumn,
            message: "Binder Error".into(),
            signature: String::new(),
            needs_human: false,
            blast_radius: Vec::new(),
            evidence: crate::Evidence::default(),
        };
        failure.evidence.ancestors = vec![
            ancestor("stg_orders", "select * from {{ ref('raw_orders') }}"),
            ancestor(
                "stg_payments",
                "select * from read_csv('s3://k', secret 'wJalrXUtnFEMI')",
            ),
        ];
        r().redact_failure(&mut failure);
        let names: Vec<&str> = failure
            .evidence
            .ancestors
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, ["stg_orders"]);
        assert!(failure
            .evidence
            .redacted_fields
            .contains(&"ancestors".to_owned()));
    }

    #[test]
    fn every_pattern_compiles() {
        for (pattern, _) in pattern_rows() {
            assert!(Regex::new(&pattern).is_ok(), "{pattern}");
        }
        assert_eq!(compile_patterns().len(), pattern_rows().len());
    }

    #[test]
    fn connection_strings_lose_their_password() {
        assert_eq!(
            r().redact("attach 'postgresql://dbt:hunter2@db.internal:5432/shop' as pg"),
            "attach 'postgresql://dbt:[REDACTED]@db.internal:5432/shop' as pg"
        );
        assert_eq!(
            r().redact("host=127.0.0.1 user=postgres password=hunter2 dbname=test"),
            "host=127.0.0.1 user=postgres password=[REDACTED] dbname=test"
        );
        assert_eq!(
            r().redact("Driver={x};Server=s;UID=u;PWD=hunter2;"),
            "Driver={x};Server=s;UID=u;PWD=[REDACTED];"
        );
    }

    #[test]
    fn yaml_json_and_sql_values_are_redacted() {
        assert_eq!(
            r().redact("  password: hunter2\n  user: dbt\n  api_key: \"abc123def\""),
            "  password: [REDACTED]\n  user: dbt\n  api_key: \"[REDACTED]\""
        );
        assert_eq!(
            r().redact(r#"{"token": "abcdef12345", "name": "x"}"#),
            r#"{"token": "[REDACTED]", "name": "x"}"#
        );
        assert_eq!(
            r().redact(
                "create secret (type s3, key_id 'AKIAABCDEFGHIJKLMNOP', secret 'wJalrXUtnFEMI')"
            ),
            "create secret (type s3, key_id '[REDACTED]', secret '[REDACTED]')"
        );
        assert_eq!(
            r().redact("select * from t where client_secret = 'abc'"),
            "select * from t where client_secret = '[REDACTED]'"
        );
    }

    #[test]
    fn sql_that_merely_names_tokens_is_kept() {
        for sql in [
            "select token_count, passenger_count from t where token_count = 5",
            "select o.amount::text as amount from orders",
            "select o.token::text as token from orders",
            "meta:\n  author: data-team",
            "password: \"{{ env_var('DBT_PASSWORD') }}\"",
            "password: ''",
            "where t.api_token = s.api_token",
        ] {
            assert_eq!(r().redact(sql), sql);
        }
    }

    #[test]
    fn parser_prose_about_tokens_is_kept() {
        for text in [
            // dbt 1.11's Jinja error for `{{ ref('stg_orders') where … }}`, verbatim.
            "Compilation Error in model p_jinja_token (models/probe/p_jinja_token.sql)\n  expected token 'end of print statement', got 'where'\n    line 2\n      from {{ ref('stg_orders') where order_status = 'completed' }}",
            "expected token ',', got 'string'",
            "Unexpected token 'abc' in expression",
            "parser error: expecting token ')' here",
        ] {
            assert_eq!(r().redact(text), text);
        }
    }

    #[test]
    fn sql_credentials_after_token_or_secret_are_still_redacted() {
        assert_eq!(
            r().redact("create secret http_auth (type http, token 'abc123def456')"),
            "create secret http_auth (type http, token '[REDACTED]')"
        );
        assert_eq!(
            r().redact("select * from read_json('https://x', token 'abc123')"),
            "select * from read_json('https://x', token '[REDACTED]')"
        );
        // Prose elsewhere on the line does not shield a credential.
        assert_eq!(
            r().redact("expected a result; create user u with password 'hunter2'"),
            "expected a result; create user u with password '[REDACTED]'"
        );
    }

    #[test]
    fn token_shapes_and_env_values_are_redacted() {
        let text = "ghp_abcdefghijklmnopqrstuvwxyz0123456789 glpat-abcdefghij0123456789 Authorization: Bearer abcdefghijklmnopqrstuvwxyz sk-ant-api03-abcdefghijklmnopqrstuv and s3cr3t-Pa55 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N";
        let out = r().redact(text);
        for secret in [
            "ghp_abc",
            "glpat-abc",
            "abcdefghijklmnopqrstuvwxyz ",
            "sk-ant",
            "s3cr3t",
            "eyJhbGci",
        ] {
            assert!(!out.contains(secret), "{secret} survived in {out}");
        }
        assert!(out.contains("[REDACTED:DBT_PG_PASSWORD]"));
        assert!(out.contains("Bearer [REDACTED]"));
    }

    #[test]
    fn key_blocks_keep_their_line_count() {
        let text =
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nb";
        let out = r().redact(text);
        assert_eq!(out.lines().count(), text.lines().count());
        assert!(!out.contains("MIIEow"));
    }

    #[test]
    fn secret_env_names() {
        for name in [
            "DBT_PG_PASSWORD",
            "SNOWFLAKE_TOKEN",
            "aws_secret_access_key",
            "DBT_ENV_SECRET_GIT",
            "OPENAI_API_KEY",
        ] {
            assert!(is_secret_env_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "DBT_PROFILES_DIR", "KEYBOARD"] {
            assert!(!is_secret_env_name(name), "{name}");
        }
        let r = Redactor::from_env(
            [
                ("MY_PASSWORD".to_owned(), "abcdefgh".to_owned()),
                ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
                ("WAREHOUSE_DSN".to_owned(), "dsn-value-1".to_owned()),
                ("SHORT_TOKEN".to_owned(), "abc".to_owned()),
            ],
            &["WAREHOUSE_DSN".to_owned()],
        );
        assert_eq!(r.env_value_count(), 2);
        assert_eq!(
            r.redact("x abcdefgh y dsn-value-1 /usr/bin"),
            "x [REDACTED:MY_PASSWORD] y [REDACTED:WAREHOUSE_DSN] /usr/bin"
        );
    }
}
