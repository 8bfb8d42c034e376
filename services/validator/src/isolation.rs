//! Validation against a shared warehouse, in a schema of its own.
//!
//! The scratch copy keeps a DuckDB file private, but a PostgreSQL, Snowflake or BigQuery
//! target is one database for everyone: `dbt build --select +m --empty` there would
//! replace the model and every ancestor in the profile's own schema — a developer's dev
//! schema, or production where that is the profile's default — with empty relations. So
//! for any target that is not a local file, the validator writes a profile of its own into
//! the workspace: the user's target, copied, with its schema (BigQuery: dataset) suffixed
//! [`SCHEMA_SUFFIX`], and runs every dbt step with that profile and [`VALIDATION_TARGET`].
//! Sources still read their own schemas; only what dbt builds goes to the suffixed one.
//!
//! When the profile cannot be read that way (no `profiles.yml`, a target chosen by an
//! expression other than `env_var`, no schema key), nothing is isolated and the caller
//! runs no step that writes to the warehouse.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// The target name of the validator's own profile.
pub const VALIDATION_TARGET: &str = "dbt_ops_validation";
/// Appended to the target's schema (or dataset): where validation builds.
pub const SCHEMA_SUFFIX: &str = "_dbt_ops_validation";
/// Where the validator's profile is written, inside the workspace.
const PROFILE_DIR: &str = ".dbt-ops-profile";
/// Adapters whose target is a file the workspace copy already made private.
const LOCAL_FILE_ADAPTERS: &[&str] = &["duckdb", "sqlite"];

/// Why a target could not be isolated.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// No `profiles.yml` where dbt would look.
    #[error("no profiles.yml at {0}")]
    NoProfiles(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A file is not YAML this module can read.
    #[error("{file} is not readable YAML: {reason}")]
    Yaml {
        /// `dbt_project.yml` or `profiles.yml`.
        file: &'static str,
        /// The parser's words.
        reason: String,
    },
    /// The profile or the target is missing, or chosen by an expression.
    #[error("{0}")]
    Unresolved(String),
}

/// How validation reaches the warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// The target is a local file (DuckDB) that the workspace copied: the user's profile
    /// and target as they are.
    LocalFile,
    /// dbt runs with `--profiles-dir profiles_dir --target` [`VALIDATION_TARGET`].
    OwnSchema {
        /// The directory holding the validator's `profiles.yml`.
        profiles_dir: PathBuf,
        /// The adapter (`postgres`, …).
        adapter: String,
        /// The schema value as written in the new profile (it may be Jinja, which dbt
        /// renders), for the validation report.
        schema: String,
    },
}

/// What [`isolated_profile`] makes of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsolatedProfile {
    /// A local-file target: nothing to change.
    LocalFile,
    /// The text of the validator's `profiles.yml`.
    OwnSchema {
        /// The YAML to write.
        profiles_yml: String,
        /// The adapter.
        adapter: String,
        /// The new schema value.
        schema: String,
    },
}

/// Writes the validator's profile into `workspace` when its target is not a local file.
///
/// `profiles_dir` is where dbt would read `profiles.yml` (`None`: `DBT_PROFILES_DIR`, else
/// `~/.dbt`), `target` the configured target (`None`: the profile's default).
pub fn isolate_workspace(
    workspace: &Path,
    profiles_dir: Option<&Path>,
    target: Option<&str>,
) -> Result<Isolation, IsolationError> {
    let profiles_dir = match profiles_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_profiles_dir()
            .ok_or_else(|| IsolationError::Unresolved("no home directory for ~/.dbt".into()))?,
    };
    let profiles_path = profiles_dir.join("profiles.yml");
    if !profiles_path.is_file() {
        return Err(IsolationError::NoProfiles(profiles_path));
    }
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| IsolationError::Io { path, source })
    };
    let project_yml = read(workspace.join("dbt_project.yml"))?;
    let profiles_yml = read(profiles_path)?;
    let env = |key: &str| std::env::var(key).ok();
    match isolated_profile(&project_yml, &profiles_yml, target, &env)? {
        IsolatedProfile::LocalFile => Ok(Isolation::LocalFile),
        IsolatedProfile::OwnSchema {
            profiles_yml,
            adapter,
            schema,
        } => {
            let dir = workspace.join(PROFILE_DIR);
            let path = dir.join("profiles.yml");
            write_private(&dir, &path, &profiles_yml)
                .map_err(|source| IsolationError::Io { path, source })?;
            Ok(Isolation::OwnSchema {
                profiles_dir: dir,
                adapter,
                schema,
            })
        }
    }
}

/// dbt's own default: `DBT_PROFILES_DIR`, else `~/.dbt`.
fn default_profiles_dir() -> Option<PathBuf> {
    std::env::var_os("DBT_PROFILES_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".dbt")))
}

/// The profile may hold a password: readable by this user only.
fn write_private(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// The validator's profile for the project's profile and `target` (`None`: the profile's
/// default, which may be `{{ env_var('NAME', 'default') }}`, read through `env`).
pub fn isolated_profile(
    project_yml: &str,
    profiles_yml: &str,
    target: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IsolatedProfile, IsolationError> {
    let project = first_document(project_yml, "dbt_project.yml")?;
    let profile_name = project["profile"]
        .as_str()
        .map(|name| resolve_env(name, env))
        .transpose()?
        .ok_or_else(|| IsolationError::Unresolved("dbt_project.yml names no profile".into()))?;
    let profiles = first_document(profiles_yml, "profiles.yml")?;
    let profile = &profiles[profile_name.as_str()];
    if profile.is_badvalue() {
        return Err(IsolationError::Unresolved(format!(
            "profiles.yml has no profile {profile_name:?}"
        )));
    }
    let target_name = match target {
        Some(target) => target.to_owned(),
        None => profile["target"]
            .as_str()
            .map(|name| resolve_env(name, env))
            .transpose()?
            .ok_or_else(|| {
                IsolationError::Unresolved(format!("profile {profile_name:?} names no target"))
            })?,
    };
    let Some(output) = profile["outputs"][target_name.as_str()].as_hash() else {
        return Err(IsolationError::Unresolved(format!(
            "profile {profile_name:?} has no output {target_name:?}"
        )));
    };
    let mut output = merged(output);
    let adapter = output
        .get(&key("type"))
        .and_then(Yaml::as_str)
        .map(|adapter| resolve_env(adapter, env))
        .transpose()?
        .unwrap_or_default()
        .to_ascii_lowercase();
    if LOCAL_FILE_ADAPTERS.contains(&adapter.as_str()) {
        // A relative path (or none: in memory) is the workspace's own copy; an absolute
        // one is the user's file, which a build would write.
        let path = output
            .get(&key("path"))
            .and_then(Yaml::as_str)
            .map(|path| resolve_env(path, env))
            .transpose()?
            .unwrap_or_default();
        if Path::new(&path).is_absolute() {
            return Err(IsolationError::Unresolved(format!(
                "output {target_name:?} writes the {adapter} file {path}, outside the scratch copy"
            )));
        }
        return Ok(IsolatedProfile::LocalFile);
    }
    let schema_key = ["schema", "dataset"]
        .into_iter()
        .find(|name| output.contains_key(&key(name)))
        .ok_or_else(|| {
            IsolationError::Unresolved(format!(
                "output {target_name:?} ({adapter}) has no schema or dataset to set apart"
            ))
        })?;
    let schema = match output.get(&key(schema_key)) {
        Some(Yaml::String(text)) => format!("{text}{SCHEMA_SUFFIX}"),
        Some(Yaml::Integer(number)) => format!("{number}{SCHEMA_SUFFIX}"),
        _ => {
            return Err(IsolationError::Unresolved(format!(
                "the {schema_key} of output {target_name:?} is not text"
            )))
        }
    };
    output.insert(key(schema_key), Yaml::String(schema.clone()));

    let mut outputs = Hash::new();
    outputs.insert(key(VALIDATION_TARGET), Yaml::Hash(output));
    let mut own = Hash::new();
    own.insert(key("target"), key(VALIDATION_TARGET));
    own.insert(key("outputs"), Yaml::Hash(outputs));
    let mut document = Hash::new();
    // dbt < 1.8 read global settings from here.
    if let Some(config) = profiles["config"].as_hash() {
        document.insert(key("config"), Yaml::Hash(config.clone()));
    }
    document.insert(Yaml::String(profile_name), Yaml::Hash(own));
    let mut text = String::new();
    YamlEmitter::new(&mut text)
        .dump(&Yaml::Hash(document))
        .map_err(|error| IsolationError::Yaml {
            file: "profiles.yml",
            reason: error.to_string(),
        })?;
    text.push('\n');
    Ok(IsolatedProfile::OwnSchema {
        profiles_yml: text,
        adapter,
        schema,
    })
}

fn key(text: &str) -> Yaml {
    Yaml::String(text.to_owned())
}

fn first_document(text: &str, file: &'static str) -> Result<Yaml, IsolationError> {
    YamlLoader::load_from_str(text)
        .map_err(|error| IsolationError::Yaml {
            file,
            reason: error.to_string(),
        })?
        .into_iter()
        .next()
        .ok_or(IsolationError::Yaml {
            file,
            reason: "empty".into(),
        })
}

/// An output with its `<<` merge keys applied (PyYAML, which dbt uses, supports them; the
/// YAML 1.2 loader here keeps them as a key): the output's own keys win.
fn merged(output: &Hash) -> Hash {
    let mut result = Hash::new();
    for (name, value) in output {
        if name.as_str() != Some("<<") {
            result.insert(name.clone(), value.clone());
        }
    }
    let bases: Vec<&Hash> = match output.get(&key("<<")) {
        Some(Yaml::Hash(base)) => vec![base],
        Some(Yaml::Array(list)) => list.iter().filter_map(Yaml::as_hash).collect(),
        _ => Vec::new(),
    };
    for base in bases {
        for (name, value) in merged(base) {
            result.entry(name).or_insert(value);
        }
    }
    result
}

/// A profile value that names a profile or target: plain text, or dbt's
/// `{{ env_var('NAME') }}` / `{{ env_var('NAME', 'default') }}`. Anything else is refused.
fn resolve_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, IsolationError> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.trim().to_owned());
    }
    static ENV_VAR: OnceLock<Option<Regex>> = OnceLock::new();
    let captures = ENV_VAR
        .get_or_init(|| {
            Regex::new(
                r#"^\s*\{\{\s*env_var\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]*)['"]\s*)?\)\s*\}\}\s*$"#,
            )
            .ok()
        })
        .as_ref()
        .and_then(|pattern| pattern.captures(text));
    let unresolved = || IsolationError::Unresolved(format!("cannot tell what {text:?} renders to"));
    let captures = captures.ok_or_else(unresolved)?;
    let name = captures.get(1).map(|m| m.as_str()).ok_or_else(unresolved)?;
    env(name)
        .or_else(|| captures.get(2).map(|m| m.as_str().to_owned()))
        .ok_or_else(unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROJECT: &str = "name: shop\nprofile: shop\nmodel-paths: [models]\n";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn own(profiles: &str, target: Option<&str>) -> (String, String, String) {
        match isolated_profile(PROJECT, profiles, target, &no_env).unwrap() {
            IsolatedProfile::OwnSchema {
                profiles_yml,
                adapter,
                schema,
            } => (profiles_yml, adapter, schema),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_postgres_target_is_copied_with_its_schema_set_apart() {
        let profiles = "shop:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      host: \"{{ env_var('PG_HOST', '127.0.0.1') }}\"\n      port: 5432\n      user: postgres\n      password: \"12345\"\n      dbname: test\n      schema: \"{{ env_var('PG_SCHEMA', 'analytics') }}\"\n      threads: 4\n    prod:\n      type: postgres\n      schema: prod\n";
        let (yml, adapter, schema) = own(profiles, None);
        assert_eq!(adapter, "postgres");
        assert_eq!(
            schema,
            "{{ env_var('PG_SCHEMA', 'analytics') }}_dbt_ops_validation"
        );
        let parsed = &YamlLoader::load_from_str(&yml).unwrap()[0];
        let shop = &parsed["shop"];
        assert_eq!(shop["target"].as_str(), Some(VALIDATION_TARGET));
        let output = &shop["outputs"][VALIDATION_TARGET];
        assert_eq!(output["schema"].as_str(), Some(schema.as_str()));
        assert_eq!(
            output["host"].as_str(),
            Some("{{ env_var('PG_HOST', '127.0.0.1') }}")
        );
        assert_eq!(output["port"].as_i64(), Some(5432));
        assert_eq!(output["password"].as_str(), Some("12345"), "{yml}");
        assert_eq!(output["threads"].as_i64(), Some(4));
        assert!(shop["outputs"]["prod"].is_badvalue(), "only the one target");
        // An explicit target wins over the default.
        let (_, _, schema) = own(profiles, Some("prod"));
        assert_eq!(schema, "prod_dbt_ops_validation");
    }

    #[test]
    fn duckdb_is_left_to_the_workspace_copy() {
        let profiles = "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: shop.duckdb\n";
        assert_eq!(
            isolated_profile(PROJECT, profiles, None, &no_env).unwrap(),
            IsolatedProfile::LocalFile
        );
    }

    #[test]
    fn an_absolute_duckdb_path_is_the_users_own_file() {
        let profiles = "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: \"{{ env_var('WAREHOUSE', '/srv/warehouse.duckdb') }}\"\n";
        assert!(isolated_profile(PROJECT, profiles, None, &no_env).is_err());
        let relative = |_: &str| Some("local.duckdb".to_owned());
        assert_eq!(
            isolated_profile(PROJECT, profiles, None, &relative).unwrap(),
            IsolatedProfile::LocalFile
        );
    }

    #[test]
    fn merge_keys_bigquery_datasets_and_env_var_targets() {
        let profiles = "defaults: &defaults\n  type: bigquery\n  project: acme\n  dataset: base\nshop:\n  target: \"{{ env_var('DBT_TARGET', 'dev') }}\"\n  outputs:\n    dev:\n      <<: *defaults\n      dataset: dbt_alice\n    ci:\n      <<: *defaults\n";
        let (yml, adapter, schema) = own(profiles, None);
        assert_eq!(adapter, "bigquery");
        assert_eq!(schema, "dbt_alice_dbt_ops_validation");
        let parsed = &YamlLoader::load_from_str(&yml).unwrap()[0];
        assert_eq!(
            parsed["shop"]["outputs"][VALIDATION_TARGET]["project"].as_str(),
            Some("acme")
        );
        let ci = |name: &str| (name == "DBT_TARGET").then(|| "ci".to_owned());
        match isolated_profile(PROJECT, profiles, None, &ci).unwrap() {
            IsolatedProfile::OwnSchema { schema, .. } => {
                assert_eq!(schema, "base_dbt_ops_validation")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_cannot_be_read_is_refused_not_guessed() {
        let no_schema =
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: snowflake\n      account: x\n";
        let computed = "shop:\n  target: \"{{ 'dev' if true else 'prod' }}\"\n  outputs:\n    dev:\n      type: postgres\n      schema: a\n";
        let missing =
            "other:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      schema: a\n";
        for profiles in [no_schema, computed, missing, "shop: ["] {
            assert!(
                isolated_profile(PROJECT, profiles, None, &no_env).is_err(),
                "{profiles}"
            );
        }
    }

    #[test]
    fn the_profile_is_written_into_the_workspace_for_its_user_only() {
        use std::os::unix::fs::PermissionsExt;
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(workspace.path().join("dbt_project.yml"), PROJECT).unwrap();
        std::fs::write(
            workspace.path().join("profiles.yml"),
            "shop:\n  target: dev\n  outputs:\n    dev:\n      type: postgres\n      schema: analytics\n",
        )
        .unwrap();
        let isolation = isolate_workspace(workspace.path(), Some(workspace.path()), None).unwrap();
        let Isolation::OwnSchema { profiles_dir, .. } = isolation else {
            panic!("{isolation:?}");
        };
        let written = profiles_dir.join("profiles.yml");
        assert!(std::fs::read_to_string(&written)
            .unwrap()
            .contains("analytics_dbt_ops_validation"));
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            isolate_workspace(workspace.path(), Some(empty.path()), None),
            Err(IsolationError::NoProfiles(_))
        ));
    }
}
