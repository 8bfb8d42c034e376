//! deploy/kubernetes: the manifests kustomization.yaml applies, and the example Secret.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;

/// Every object of every manifest in deploy/kubernetes, by file.
fn manifests() -> BTreeMap<String, Vec<Value>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(deploy().join("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, yaml_documents(&path));
        }
    }
    files
}

fn objects_of_kind<'a>(manifests: &'a BTreeMap<String, Vec<Value>>, kind: &str) -> Vec<&'a Value> {
    manifests
        .values()
        .flatten()
        .filter(|object| object["kind"] == kind)
        .collect()
}

fn named<'a>(manifests: &'a BTreeMap<String, Vec<Value>>, kind: &str, name: &str) -> &'a Value {
    objects_of_kind(manifests, kind)
        .into_iter()
        .find(|object| object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|entries| {
            entries
                .iter()
                .map(|(key, value)| (key.clone(), scalar(value)))
                .collect()
        })
        .unwrap_or_default()
}

/// What one container runs and gets.
struct Container {
    /// `<kind>/<name>`, for messages.
    owner: String,
    /// The component label (detector, fixer, …, layout).
    component: String,
    spec: Value,
    /// The pod's volumes.
    volumes: Vec<Value>,
    /// The pod's uid.
    run_as_user: Option<i64>,
}

fn containers(manifests: &BTreeMap<String, Vec<Value>>) -> Vec<Container> {
    let mut containers = Vec::new();
    for kind in ["Deployment", "Job"] {
        for object in objects_of_kind(manifests, kind) {
            let pod = &object["spec"]["template"]["spec"];
            for container in pod["containers"].as_array().unwrap() {
                containers.push(Container {
                    owner: format!("{kind}/{}", scalar(&object["metadata"]["name"])),
                    component: scalar(&object["metadata"]["labels"]["app.kubernetes.io/component"]),
                    spec: container.clone(),
                    volumes: pod["volumes"].as_array().cloned().unwrap_or_default(),
                    run_as_user: pod["securityContext"]["runAsUser"].as_i64(),
                });
            }
        }
    }
    containers
}

/// The environment a container starts with: `envFrom` ConfigMaps, then `env` (literal
/// values; Secret keys from the example Secret, which must hold each one).
fn environment_of(
    container: &Container,
    manifests: &BTreeMap<String, Vec<Value>>,
    secret: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut environment = BTreeMap::new();
    for source in container.spec["envFrom"].as_array().into_iter().flatten() {
        let name = scalar(&source["configMapRef"]["name"]);
        environment.extend(string_map(&named(manifests, "ConfigMap", &name)["data"]));
    }
    for variable in container.spec["env"].as_array().into_iter().flatten() {
        let name = scalar(&variable["name"]);
        let value = if let Some(value) = variable.get("value") {
            scalar(value)
        } else {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            assert_eq!(
                reference["name"], "dbt-ops-secrets",
                "{}: {name}",
                container.owner
            );
            let key = scalar(&reference["key"]);
            secret
                .get(&key)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: {name} from a key the Secret lacks: {key}",
                        container.owner
                    )
                })
                .clone()
        };
        environment.insert(name, value);
    }
    environment
}

/// The settings file a container is given with `--config`: the ConfigMap key mounted at
/// that path.
fn config_file_of(container: &Container, manifests: &BTreeMap<String, Vec<Value>>) -> String {
    let args: Vec<String> = container.spec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(scalar)
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--config")
        .unwrap_or_else(|| panic!("{}: no --config", container.owner));
    let path = std::path::Path::new(&args[at + 1]);
    let (dir, key) = (
        path.parent().unwrap().to_str().unwrap(),
        path.file_name().unwrap().to_str().unwrap(),
    );
    let mount = container.spec["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{}: nothing mounted at {dir}", container.owner));
    let volume = container
        .volumes
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("{}: no volume {}", container.owner, mount["name"]));
    let config_map = scalar(&volume["configMap"]["name"]);
    let data = string_map(&named(manifests, "ConfigMap", &config_map)["data"]);
    data.get(key)
        .unwrap_or_else(|| panic!("{}: ConfigMap {config_map} has no {key}", container.owner))
        .clone()
}

fn example_secret(manifests: &BTreeMap<String, Vec<Value>>) -> BTreeMap<String, String> {
    string_map(&named(manifests, "Secret", "dbt-ops-secrets")["stringData"])
}

#[test]
fn kustomization_lists_every_manifest_but_the_example_secret() {
    let manifests = manifests();
    let kustomization = &manifests["kustomization.yaml"][0];
    let resources: Vec<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(scalar)
        .collect();
    for resource in &resources {
        assert!(
            deploy().join("kubernetes").join(resource).is_file(),
            "{resource} is listed but missing"
        );
    }
    for file in manifests.keys() {
        let listed = resources.contains(file);
        match file.as_str() {
            "kustomization.yaml" => {}
            "secret.example.yaml" => assert!(!listed, "the example Secret would be applied"),
            _ => assert!(listed, "{file} is not applied"),
        }
    }
}

#[test]
fn containers_run_workspace_binaries_with_settings_dbt_ops_accepts() {
    let workspace = workspace();
    let manifests = manifests();
    let secret = example_secret(&manifests);
    let containers = containers(&manifests);
    let mut started = Vec::new();
    for container in &containers {
        let program = scalar(&container.spec["args"][0]);
        assert!(
            workspace.binaries.contains(&program),
            "{} runs {program:?}, not a [[bin]] of the workspace",
            container.owner
        );
        started.push(program);
        let toml = config_file_of(container, &manifests);
        let environment = environment_of(container, &manifests, &secret);
        settings_of(&container.owner, Some(&toml), &environment);
    }
    for binary in SERVICE_BINARIES {
        assert!(
            started.iter().any(|b| b == binary),
            "{binary} is not deployed"
        );
    }
    // The image's user (deploy/Dockerfile) is the pods' user.
    let image_user = dockerfile::user();
    for container in &containers {
        assert_eq!(
            container.run_as_user,
            Some(image_user),
            "{}",
            container.owner
        );
    }
}

#[test]
fn every_pod_connects_as_its_own_nats_user_from_the_secret() {
    let users = nats_users();
    let manifests = manifests();
    let secret = example_secret(&manifests);
    for variable in users.values() {
        assert!(
            secret.contains_key(variable),
            "the Secret lacks {variable} (the server needs it)"
        );
    }
    for container in containers(&manifests) {
        let user = nats_user_for(&container.component);
        let env = container.spec["env"].as_array().unwrap();
        let find = |name: &str| {
            env.iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{}: no {name}", container.owner))
        };
        assert_eq!(
            scalar(&find("DBT_OPS__NATS__USER")["value"]),
            user,
            "{}",
            container.owner
        );
        let reference = &find("DBT_OPS__NATS__PASSWORD")["valueFrom"]["secretKeyRef"];
        assert_eq!(
            scalar(&reference["key"]),
            users[&user],
            "{}: not the key auth.conf reads {user}'s password from",
            container.owner
        );
        // No start without it: a pod never runs without NATS credentials.
        assert_ne!(reference["optional"], true, "{}", container.owner);
    }
}

#[test]
fn probes_and_ports_agree_with_the_settings() {
    let manifests = manifests();
    let secret = example_secret(&manifests);
    for container in containers(&manifests) {
        let settings = settings_of(
            &container.owner,
            Some(&config_file_of(&container, &manifests)),
            &environment_of(&container, &manifests, &secret),
        );
        assert_eq!(
            port_of(&settings.nats.url),
            port_of(&Settings::default().nats.url),
            "{}",
            container.owner
        );
        if container.owner.starts_with("Job/") {
            continue;
        }
        let ports: BTreeMap<String, i64> = container.spec["ports"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no ports", container.owner))
            .iter()
            .map(|p| (scalar(&p["name"]), p["containerPort"].as_i64().unwrap()))
            .collect();
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container.spec[probe]["httpGet"];
            assert_eq!(get["path"], path, "{}: {probe}", container.owner);
            let port = ports[&scalar(&get["port"])];
            assert_eq!(
                port,
                i64::from(port_of(&settings.telemetry.metrics_listen)),
                "{}: {probe} asks a port the service does not serve",
                container.owner
            );
        }
        if container.component == "detector" {
            assert_eq!(
                ports["grpc"],
                i64::from(port_of(&settings.detector.grpc_listen))
            );
            assert!(
                !settings.detector.grpc_token.is_empty(),
                "Ingest without a token"
            );
            let service = named(&manifests, "Service", "dbt-ops-detector");
            let deployment = named(&manifests, "Deployment", "dbt-ops-detector");
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            for (key, value) in service["spec"]["selector"].as_object().unwrap() {
                assert_eq!(&labels[key], value, "the Service selects {key}={value}");
            }
            let port = &service["spec"]["ports"][0];
            assert_eq!(port["targetPort"], "grpc");
            assert_eq!(port["port"].as_i64(), Some(ports["grpc"]));
        }
    }
}

#[test]
fn the_fixer_is_its_own_deployment_scaled_by_an_hpa() {
    let manifests = manifests();
    let fixer = named(&manifests, "Deployment", "dbt-ops-fixer");
    assert!(
        fixer["spec"].get("replicas").is_none(),
        "a fixed replica count fights the autoscaler"
    );
    let hpa = named(&manifests, "HorizontalPodAutoscaler", "dbt-ops-fixer");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(target["name"], "dbt-ops-fixer");
    assert!(hpa["spec"]["maxReplicas"].as_i64() > hpa["spec"]["minReplicas"].as_i64());
    // One Deployment per service.
    for service in ["detector", "fixer", "validator", "delivery"] {
        named(&manifests, "Deployment", &format!("dbt-ops-{service}"));
    }
    // Settings in a ConfigMap, secrets in a Secret, nothing secret in the ConfigMaps.
    let secret = example_secret(&manifests);
    for config_map in objects_of_kind(&manifests, "ConfigMap") {
        let text = config_map["data"].to_string();
        for value in secret.values() {
            assert!(
                !text.contains(value.as_str()),
                "a secret value in a ConfigMap"
            );
        }
        for key in ["PASSWORD", "TOKEN", "API_KEY", "SECRET"] {
            assert!(
                !string_map(&config_map["data"])
                    .keys()
                    .any(|k| k.contains(key)),
                "ConfigMap {} holds a {key}",
                config_map["metadata"]["name"]
            );
        }
    }
}
