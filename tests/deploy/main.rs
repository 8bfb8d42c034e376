//! The deploy files, checked where they are built: no Docker engine or Kubernetes cluster
//! runs here, so each file is parsed and held to the workspace it deploys.
//!
//! - every binary a file starts is a `[[bin]]` of the workspace, every package it builds a
//!   member;
//! - every `DBT_OPS__SECTION__KEY` a container gets (with the settings file it is given) is
//!   accepted by the real settings loader, which refuses unknown keys;
//! - every port agrees with the settings or config that opens it;
//! - every file a container mounts, includes or copies exists;
//! - every service connects as its own NATS user of `deploy/nats/auth.conf`, with the
//!   password the NATS server gets for that user;
//! - every NATS config passes the real `nats-server -t` (2.15, from `.venv`).
//!
//! Four parts: `compose` (deploy/docker-compose.yml and gen-env.sh), `kubernetes`
//! (deploy/kubernetes), `dockerfile` (deploy/Dockerfile) and `nats` (deploy/nats).

mod compose;
mod dockerfile;
mod kubernetes;
mod nats;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use dbtops_settings::{Settings, SettingsError};
use serde_json::Value;

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path:?}: {error}"))
}

/// What the workspace builds, from `cargo metadata`.
struct Workspace {
    /// Package names (what `cargo build -p` takes).
    packages: BTreeSet<String>,
    /// `[[bin]]` target names (what a container can run).
    binaries: BTreeSet<String>,
    /// The workspace's `rust-version`.
    rust_version: String,
}

fn workspace() -> Workspace {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let mut workspace = Workspace {
        packages: BTreeSet::new(),
        binaries: BTreeSet::new(),
        rust_version: String::new(),
    };
    for package in metadata["packages"].as_array().expect("packages") {
        workspace
            .packages
            .insert(package["name"].as_str().expect("name").to_owned());
        if let Some(version) = package["rust_version"].as_str() {
            workspace.rust_version = version.to_owned();
        }
        for target in package["targets"].as_array().expect("targets") {
            let is_bin = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
            if is_bin {
                workspace
                    .binaries
                    .insert(target["name"].as_str().expect("name").to_owned());
            }
        }
    }
    workspace
}

/// The services' binaries: the image must hold each, and each must be deployed.
const SERVICE_BINARIES: [&str; 4] = [
    "dbt-ops-detector",
    "dbt-ops-fixer",
    "dbt-ops-validator",
    "dbt-ops-delivery",
];

// ---------------------------------------------------------------------------------------
// YAML, as JSON values.
// ---------------------------------------------------------------------------------------

/// Every document of a YAML file, anchors and aliases resolved, `<<` merge keys applied
/// (YAML 1.1, which Compose uses and yaml-rust2 leaves as a plain `<<` key).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    yaml_rust2::YamlLoader::load_from_str(&text)
        .unwrap_or_else(|error| panic!("{path:?} is not YAML: {error}"))
        .iter()
        .map(|document| to_json(document, path))
        .collect()
}

fn yaml_document(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{path:?} holds one document");
    documents.remove(0)
}

fn to_json(yaml: &yaml_rust2::Yaml, path: &Path) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(value) => Value::Bool(*value),
        Yaml::Integer(value) => Value::from(*value),
        Yaml::Real(text) => Value::from(text.parse::<f64>().expect("a YAML real")),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(|item| to_json(item, path)).collect()),
        Yaml::Hash(hash) => {
            let mut object = serde_json::Map::new();
            let mut merged = Vec::new();
            for (key, value) in hash {
                let key = scalar(&to_json(key, path));
                if key == "<<" {
                    merged.push(to_json(value, path));
                } else {
                    object.insert(key, to_json(value, path));
                }
            }
            // Keys written next to a merge win over the merged ones.
            for source in merged {
                let sources = match source {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    let Value::Object(entries) = source else {
                        panic!("{path:?}: `<<` merges a non-mapping");
                    };
                    for (key, value) in entries {
                        object.entry(key).or_insert(value);
                    }
                }
            }
            Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => panic!("{path:?}: an unresolved alias or bad value"),
    }
}

/// A scalar as text (ports and versions are often numbers in YAML).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(value) => value.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other}"),
    }
}

/// The port of an address such as `0.0.0.0:9464`, `http://jaeger:4317/x` or `nats://n:4222`.
fn port_of(address: &str) -> u16 {
    let without_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = without_scheme.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// The host of a URL such as `http://jaeger:4317`.
fn host_of(url: &str) -> String {
    let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = without_scheme.split('/').next().unwrap_or_default();
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// Settings.
// ---------------------------------------------------------------------------------------

/// Loads the settings a container would: `toml` as its settings file (none: an empty one)
/// and the environment variables dbt-ops reads (`DBT_OPS__…`, `NATS_URL`).
fn load_settings(
    toml: Option<&str>,
    environment: &BTreeMap<String, String>,
) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("dbt-ops.toml");
    std::fs::write(&file, toml.unwrap_or_default()).expect("the settings file is written");
    let read_by_dbt_ops = environment
        .iter()
        .filter(|(name, _)| name.starts_with("DBT_OPS__") || name.as_str() == "NATS_URL")
        .map(|(name, value)| (name.clone(), value.clone()));
    Settings::load_from(Some(&file), read_by_dbt_ops)
}

/// Like [`load_settings`], failing the test with the loader's own words (which name an
/// unknown key) and `what` names the container.
fn settings_of(what: &str, toml: Option<&str>, environment: &BTreeMap<String, String>) -> Settings {
    load_settings(toml, environment).unwrap_or_else(|error| {
        panic!("{what}: its settings do not load: {error}\nenvironment: {environment:?}")
    })
}

/// The check above can fail: a misspelt key in the environment is refused, and so is an
/// unknown section, exactly as a container would be at start.
#[test]
fn the_settings_check_refuses_an_unknown_key() {
    for (name, value) in [
        ("DBT_OPS__TELEMETRY__METRICS_LISTN", "0.0.0.0:9464"),
        ("DBT_OPS__DETECTOR__GRPC_TOKN", "x"),
        ("DBT_OPS__NOPE__URL", "x"),
    ] {
        let environment = BTreeMap::from([(name.to_owned(), value.to_owned())]);
        let error = load_settings(None, &environment).expect_err(name);
        assert!(
            error.to_string().contains("unknown field"),
            "{name}: {error}"
        );
    }
    let environment = BTreeMap::from([(
        "DBT_OPS__TELEMETRY__METRICS_LISTEN".to_owned(),
        "0.0.0.0:9464".to_owned(),
    )]);
    assert_eq!(
        load_settings(None, &environment)
            .unwrap()
            .telemetry
            .metrics_listen,
        "0.0.0.0:9464"
    );
}

// ---------------------------------------------------------------------------------------
// NATS users.
// ---------------------------------------------------------------------------------------

/// The users of deploy/nats/auth.conf and the environment variable holding each one's
/// password (`user: dbtops-fixer` followed by `password: $DBTOPS_FIXER_PASSWORD`).
fn nats_users() -> BTreeMap<String, String> {
    let text = read(&deploy().join("nats/auth.conf"));
    let mut users = BTreeMap::new();
    let mut user: Option<String> = None;
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if let Some(name) = line.strip_prefix("user:") {
            user = Some(name.trim().to_owned());
        } else if let Some(password) = line.strip_prefix("password:") {
            let name = user.take().expect("a password follows its user");
            let variable = password
                .trim()
                .strip_prefix('$')
                .unwrap_or_else(|| panic!("{name}'s password is not from the environment"));
            users.insert(name, variable.to_owned());
        }
    }
    assert!(users.len() >= 7, "auth.conf users: {users:?}");
    users
}

/// The NATS user each dbt-ops process runs as.
fn nats_user_for(component: &str) -> String {
    match component {
        "layout" => "dbtops-admin".to_owned(),
        "cli" => "dbtops-submitter".to_owned(),
        service => format!("dbtops-{service}"),
    }
}
