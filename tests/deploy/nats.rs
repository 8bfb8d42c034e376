//! deploy/nats: every config checked by the real nats-server (`nats-server -t -c FILE`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// `listen: host:port` and `http: host:port` of a server config.
pub fn listen_and_http_ports(conf: &str) -> (u16, u16) {
    let value = |key: &str| {
        conf.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(key))
            .map(|rest| port_of(rest.trim()))
            .unwrap_or_else(|| panic!("no `{key}` line"))
    };
    (value("listen:"), value("http:"))
}

/// `file` and every file it includes (recursively), each as (the path written in the
/// including file, or the file's own name for `file`; the file on disk, canonical).
pub fn with_includes(file: &Path) -> Vec<(PathBuf, PathBuf)> {
    let canonical = file
        .canonicalize()
        .unwrap_or_else(|error| panic!("{file:?}: {error}"));
    let mut files = vec![(PathBuf::from(file.file_name().unwrap()), canonical.clone())];
    for line in read(&canonical).lines().map(str::trim) {
        if let Some(included) = line.strip_prefix("include ") {
            let included = included.trim().trim_matches(|c| c == '"' || c == '\'');
            // nats-server resolves an include relative to the including file.
            let path = canonical.parent().unwrap().join(included);
            assert!(path.is_file(), "{file:?} includes missing {included}");
            let mut nested = with_includes(&path);
            nested[0].0 = PathBuf::from(included);
            files.extend(nested);
        }
    }
    files
}

fn nats_server() -> PathBuf {
    dbtops_bus::server::find_nats_server().expect("nats-server 2.15 (scripts/setup.sh)")
}

/// `nats-server -t -c FILE` with `environment` added: Ok, or the server's complaint.
fn check(file: &Path, environment: &BTreeMap<String, String>) -> Result<(), String> {
    let output = Command::new(nats_server())
        .arg("-t")
        .arg("-c")
        .arg(file)
        .envs(environment)
        .output()
        .expect("nats-server runs");
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The passwords auth.conf reads, as gen-env.sh would make them.
fn passwords() -> BTreeMap<String, String> {
    nats_users()
        .into_values()
        .map(|variable| {
            (
                variable.clone(),
                format!("{}0123456789abcdef", variable.len()),
            )
        })
        .collect()
}

fn configs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [deploy().join("nats"), deploy().join("nats/cluster")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "conf") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_nats_config_passes_nats_server_t() {
    let files = configs();
    assert!(files.len() >= 6, "{files:?}");
    for file in &files {
        check(file, &passwords()).unwrap_or_else(|error| panic!("{file:?}: {error}"));
    }
}

/// auth.conf takes every password from the server's environment: without one the server
/// refuses to start, naming it (so the deployments must pass all of them).
#[test]
fn the_auth_config_needs_every_password() {
    let file = deploy().join("nats/dbt-ops-auth.conf");
    let users = nats_users();
    for (user, variable) in &users {
        let mut environment = passwords();
        environment.remove(variable);
        let error = check(&file, &environment)
            .err()
            .unwrap_or_else(|| panic!("started without {user}'s password"));
        assert!(error.contains(variable.as_str()), "{error}");
    }
}

/// The durability setting deploy/README.md documents, left commented out in every server
/// config, is one the shipped server accepts where it stands (in the jetstream block).
#[test]
fn the_documented_sync_interval_is_valid_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for file in configs() {
        let text = read(&file);
        if !text.contains("jetstream {") {
            continue;
        }
        assert!(
            text.contains("# sync_interval: always"),
            "{file:?} does not show the fsync choice"
        );
        let enabled = text.replace("# sync_interval: always", "sync_interval: always");
        // Keep includes resolvable: the copy sits beside copies of its neighbours.
        for neighbour in std::fs::read_dir(file.parent().unwrap()).unwrap() {
            let neighbour = neighbour.unwrap().path();
            if neighbour.is_file() {
                std::fs::copy(&neighbour, dir.path().join(neighbour.file_name().unwrap())).unwrap();
            }
        }
        let copy = dir.path().join(file.file_name().unwrap());
        std::fs::write(&copy, enabled).unwrap();
        check(&copy, &passwords()).unwrap_or_else(|error| panic!("{file:?}: {error}"));
        // And the check itself can fail: a misspelt key is refused.
        std::fs::write(
            &copy,
            text.replace("# sync_interval: always", "sync_intervl: always"),
        )
        .unwrap();
        assert!(check(&copy, &passwords()).is_err(), "{file:?}");
    }
}

#[test]
fn the_cluster_nodes_agree_and_route_to_each_other() {
    let mut names = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let text = read(&deploy().join(format!("nats/cluster/{node}.conf")));
        assert!(text.contains(&format!("server_name: {node}")), "{node}");
        assert_eq!(listen_and_http_ports(&text), (4222, 8222), "{node}");
        for other in ["n1", "n2", "n3"].iter().filter(|o| **o != node) {
            assert!(
                text.contains(&format!("nats-route://{other}:6222")),
                "{node} → {other}"
            );
        }
        names.push(node);
    }
    let compose = yaml_document(&deploy().join("nats/cluster/docker-compose.yml"));
    for node in names {
        let service = &compose["services"][node];
        let command: Vec<String> = service["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(scalar)
            .collect();
        let config = command.last().unwrap();
        let mounted = service["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(scalar)
            .find(|v| v.ends_with(&format!(":{config}:ro")))
            .unwrap_or_else(|| panic!("{node}: {config} not mounted"));
        let source = mounted.split(':').next().unwrap();
        assert!(
            deploy().join("nats/cluster").join(source).is_file(),
            "{node}: {source}"
        );
    }
}

#[test]
fn the_helm_values_make_a_three_node_jetstream_cluster_with_every_user_password() {
    let values = yaml_document(&deploy().join("nats/helm-values.yaml"));
    let config = &values["config"];
    assert_eq!(config["cluster"]["enabled"], true);
    assert_eq!(config["cluster"]["replicas"], 3);
    assert_eq!(config["jetstream"]["enabled"], true);
    assert_eq!(config["jetstream"]["fileStore"]["pvc"]["enabled"], true);
    // The included auth file is the one mounted from the ConfigMap made of auth.conf.
    let include = config["merge"]["$include"].as_str().expect("$include");
    let mount = values["container"]["patch"][0]["value"]["mountPath"]
        .as_str()
        .expect("mountPath");
    assert_eq!(include, format!("{mount}/auth.conf"));
    let volume = &values["podTemplate"]["patch"][0]["value"];
    assert_eq!(volume["configMap"]["name"], "nats-auth");
    // Every password auth.conf reads reaches the server's environment, from the Secret.
    let env = values["container"]["env"].as_object().expect("env");
    for variable in nats_users().values() {
        let entry = env
            .get(variable)
            .unwrap_or_else(|| panic!("{variable} is not in the chart's env"));
        assert_eq!(entry["valueFrom"]["secretKeyRef"]["key"], variable.as_str());
    }
    // The replicas the chart runs are the replicas dbt-ops asks its stream for.
    let configmap = read(&deploy().join("kubernetes/configmap.yaml"));
    assert!(configmap.contains("replicas = 3"), "{configmap}");
}
