//! deploy/docker-compose.yml, with the secrets deploy/gen-env.sh writes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::*;

/// The dbt-ops containers of the compose file (one image, the command picks the binary).
const DBT_OPS_SERVICES: [&str; 6] = [
    "detector",
    "fixer",
    "validator",
    "delivery",
    "layout",
    "cli",
];

/// Compose's variable interpolation: `$$`, `$NAME`, `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`, `${NAME:+alternative}`, defaults
/// nested. An unset required variable is an error naming it.
fn interpolate(text: &str, environment: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('{') {
            // The matching brace, counting nested ${…}.
            let mut depth = 1;
            let mut end = None;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            out.push_str(&expand(&inner[..end], environment)?);
            rest = &inner[end + 1..];
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..name_len];
            out.push_str(
                environment
                    .get(name)
                    .map(String::as_str)
                    .unwrap_or_default(),
            );
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(expression: &str, environment: &BTreeMap<String, String>) -> Result<String, String> {
    let name_len = expression
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expression.len());
    let (name, operator) = expression.split_at(name_len);
    let value = environment.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (op, argument) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|op| operator.strip_prefix(op).map(|arg| (*op, arg)))
        .unwrap_or(("", ""));
    Ok(match op {
        "" => value.cloned().unwrap_or_default(),
        ":-" if set_nonempty => value.cloned().unwrap_or_default(),
        ":-" => interpolate(argument, environment)?,
        "-" if value.is_some() => value.cloned().unwrap_or_default(),
        "-" => interpolate(argument, environment)?,
        ":?" if set_nonempty => value.cloned().unwrap_or_default(),
        "?" if value.is_some() => value.cloned().unwrap_or_default(),
        ":?" | "?" => return Err(format!("{name} is required: {argument}")),
        ":+" if set_nonempty => interpolate(argument, environment)?,
        "+" if value.is_some() => interpolate(argument, environment)?,
        _ => String::new(),
    })
}

fn interpolate_all(value: &Value, environment: &BTreeMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(interpolate(text, environment)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| interpolate_all(item, environment))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| Ok((key.clone(), interpolate_all(value, environment)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[test]
fn interpolation_follows_compose() {
    let environment = BTreeMap::from([
        ("SET".to_owned(), "yes".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]);
    for (text, expected) in [
        ("${SET}", "yes"),
        ("a-$SET-b", "a-yes-b"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET:-${SET:?x}}", "yes"),
        ("${SET:+alt}", "alt"),
        ("$$HOME", "$HOME"),
    ] {
        assert_eq!(interpolate(text, &environment).unwrap(), expected, "{text}");
    }
    let error = interpolate("${UNSET:?run gen-env}", &environment).unwrap_err();
    assert!(error.contains("UNSET"), "{error}");
    assert!(interpolate("${UNSET:-${MISSING:?x}}", &environment).is_err());
}

/// The `.env` gen-env.sh writes, as compose reads it; `uncomment` also takes the lines it
/// leaves commented out (switching traces to Langfuse).
fn generated_env(uncomment: bool) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".env");
    let status = std::process::Command::new("bash")
        .arg(deploy().join("gen-env.sh"))
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bash runs gen-env.sh");
    assert!(status.success(), "gen-env.sh failed");
    // It refuses to overwrite secrets already made.
    let again = std::process::Command::new("bash")
        .arg(deploy().join("gen-env.sh"))
        .arg(&file)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!again.success(), "gen-env.sh overwrote an existing file");
    let mut environment = BTreeMap::new();
    for line in read(&file).lines() {
        let line = if uncomment {
            line.strip_prefix('#')
                .filter(|l| l.starts_with("DBT_OPS_"))
                .unwrap_or(line)
        } else {
            line
        };
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, value) = line.split_once('=').expect("NAME=value");
        environment.insert(name.to_owned(), value.to_owned());
    }
    environment
}

struct Compose {
    /// The file as written (variables not expanded).
    raw: Value,
    /// As compose runs it, with `environment`.
    resolved: Value,
}

fn compose_with(environment: &BTreeMap<String, String>) -> Compose {
    let raw = yaml_document(&deploy().join("docker-compose.yml"));
    let resolved = interpolate_all(&raw, environment).unwrap_or_else(|error| panic!("{error}"));
    Compose { raw, resolved }
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a serde_json::Map<String, Value> {
    compose["services"][name]
        .as_object()
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// A service's environment (mapping or `NAME=value` list syntax).
fn environment_of(service: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(name, value)| (name.clone(), scalar(value)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let text = scalar(item);
                let (name, value) = text.split_once('=').unwrap_or((&text, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment: {other}"),
    }
}

fn list_of_text(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(scalar).collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
        Some(other) => panic!("not a list: {other}"),
    }
}

/// `"HOST:CONTAINER"` / `"CONTAINER"` / long syntax → the container ports.
fn container_ports(service: &serde_json::Map<String, Value>) -> Vec<u16> {
    service
        .get("ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(|port| match port {
                    Value::Object(long) => scalar(&long["target"]).parse().unwrap(),
                    short => {
                        let text = scalar(short);
                        let container = text.rsplit(':').next().unwrap_or_default();
                        container.split('/').next().unwrap().parse().unwrap()
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_required_variable_is_written_by_gen_env() {
    let raw = read(&deploy().join("docker-compose.yml"));
    let environment = generated_env(false);
    let mut required = Vec::new();
    let mut rest = raw.as_str();
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if rest[name.len()..].starts_with(":?") || rest[name.len()..].starts_with('?') {
            required.push(name);
        }
    }
    assert!(required.len() >= 8, "{required:?}");
    for name in &required {
        assert!(
            environment.contains_key(name),
            "gen-env.sh does not write {name}"
        );
    }
    // Without them compose refuses to start, naming the variable.
    let error = interpolate_all(
        &yaml_document(&deploy().join("docker-compose.yml")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(error.contains("is required"), "{error}");
}

#[test]
fn the_services_run_workspace_binaries_with_settings_dbt_ops_accepts() {
    let workspace = workspace();
    let compose = compose_with(&generated_env(false)).resolved;
    let mut started = Vec::new();
    for name in DBT_OPS_SERVICES {
        let service = service(&compose, name);
        assert_eq!(scalar(&service["image"]), "dbt-ops:dev", "{name}");
        let build = &service["build"];
        let context = deploy().join(scalar(&build["context"]));
        assert!(
            context.join(scalar(&build["dockerfile"])).is_file(),
            "{name}: no Dockerfile at {build}"
        );
        // The entrypoint (tini) then the command: the first word after `--` is run.
        let mut argv = list_of_text(service.get("entrypoint"));
        argv.extend(list_of_text(service.get("command")));
        let program = match argv.iter().position(|word| word == "--") {
            Some(dashes) => argv[dashes + 1].clone(),
            None => argv[0].clone(),
        };
        assert!(
            workspace.binaries.contains(&program),
            "{name} runs {program:?}, not a [[bin]] of the workspace: {:?}",
            workspace.binaries
        );
        started.push(program);
        settings_of(name, None, &environment_of(service));
    }
    for binary in SERVICE_BINARIES {
        assert!(
            started.iter().any(|b| b == binary),
            "{binary} is not started"
        );
    }
}

#[test]
fn every_service_connects_as_its_own_nats_user_with_the_servers_password() {
    let users = nats_users();
    let compose = compose_with(&generated_env(false));
    let nats = environment_of(service(&compose.resolved, "nats"));
    // The server gets every password auth.conf reads.
    for variable in users.values() {
        assert!(
            nats.get(variable).is_some_and(|v| !v.is_empty()),
            "nats lacks {variable}"
        );
    }
    for name in DBT_OPS_SERVICES {
        let environment = environment_of(service(&compose.resolved, name));
        let settings = settings_of(name, None, &environment);
        let user = nats_user_for(name);
        assert_eq!(settings.nats.user, user, "{name}");
        let variable = users
            .get(&user)
            .unwrap_or_else(|| panic!("{name}: no user {user} in auth.conf"));
        assert_eq!(
            settings.nats.password.expose(),
            nats[variable],
            "{name}: not the password the server has for {user}"
        );
        // And the file names that variable, so a value set by hand cannot drift.
        let raw = environment_of(service(&compose.raw, name));
        assert!(
            raw["DBT_OPS__NATS__PASSWORD"].contains(&format!("${{{variable}")),
            "{name}: {}",
            raw["DBT_OPS__NATS__PASSWORD"]
        );
    }
}

#[test]
fn ports_agree_with_the_settings_and_the_nats_config() {
    let compose = compose_with(&generated_env(false)).resolved;
    let conf = read(&deploy().join("nats/dbt-ops.conf"));
    let (client_port, monitoring_port) = nats::listen_and_http_ports(&conf);
    let nats = service(&compose, "nats");
    let published = container_ports(nats);
    assert!(published.contains(&client_port), "{published:?}");
    assert!(published.contains(&monitoring_port), "{published:?}");
    let nats_health = list_of_text(nats["healthcheck"].get("test")).join(" ");
    assert!(
        nats_health.contains(&format!(":{monitoring_port}/healthz")),
        "{nats_health}"
    );
    // Clients: the settings' default port, and the port the server listens on.
    assert_eq!(
        port_of(&dbtops_settings::Settings::default().nats.url),
        client_port
    );

    for name in ["detector", "fixer", "validator", "delivery"] {
        let service = service(&compose, name);
        let settings = settings_of(name, None, &environment_of(service));
        assert_eq!(port_of(&settings.nats.url), client_port, "{name}");
        assert_eq!(host_of(&settings.nats.url), "nats", "{name}");
        // The readiness check asks the port the service serves /readyz on.
        let metrics_port = port_of(&settings.telemetry.metrics_listen);
        let check = list_of_text(service["healthcheck"].get("test")).join(" ");
        assert!(
            check.contains(&format!("127.0.0.1:{metrics_port}/readyz")),
            "{name}: {check}"
        );
        // Traces go to a service of this file, on a port it listens on.
        let endpoint = &settings.telemetry.otlp_endpoint;
        let collector = self::service(&compose, &host_of(endpoint));
        assert!(
            container_ports(collector).contains(&port_of(endpoint)),
            "{name}: {endpoint}"
        );
    }
    let detector = service(&compose, "detector");
    let settings = settings_of("detector", None, &environment_of(detector));
    assert!(
        !settings.detector.grpc_token.is_empty(),
        "Ingest without a token"
    );
    assert!(container_ports(detector).contains(&port_of(&settings.detector.grpc_listen)));
}

/// The Langfuse lines gen-env.sh leaves commented out: traces over OTLP/HTTP to the
/// profile's langfuse-web with the Basic header of the keys Langfuse is created with.
#[test]
fn switching_traces_to_langfuse_yields_valid_settings_and_a_reachable_endpoint() {
    let environment = generated_env(true);
    let compose = compose_with(&environment).resolved;
    let web = service(&compose, "langfuse-web");
    let web_environment = environment_of(web);
    for name in ["detector", "fixer", "validator", "delivery"] {
        let settings = settings_of(name, None, &environment_of(service(&compose, name)));
        let telemetry = &settings.telemetry;
        assert_eq!(telemetry.otlp_protocol, dbtops_settings::OtlpProtocol::Http);
        assert_eq!(host_of(&telemetry.otlp_endpoint), "langfuse-web");
        let port = port_of(&telemetry.otlp_endpoint);
        assert_eq!(web_environment["PORT"], port.to_string());
        assert!(container_ports(web).contains(&port));
        let header = telemetry.otlp_headers["authorization"].expose();
        let expected = format!(
            "{}:{}",
            web_environment["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"],
            web_environment["LANGFUSE_INIT_PROJECT_SECRET_KEY"]
        );
        assert_eq!(
            header,
            format!("Basic {}", base64(expected.as_bytes())),
            "{name}"
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_shape_nats_with_jetstream_scalable_fixer_jaeger_and_optional_langfuse() {
    let compose = compose_with(&generated_env(false)).resolved;
    let services = compose["services"].as_object().unwrap();
    for required in [
        "nats",
        "jaeger",
        "layout",
        "detector",
        "fixer",
        "validator",
        "delivery",
    ] {
        assert!(services.contains_key(required), "no {required}");
    }
    // `--scale fixer=3` by construction: nothing a second fixer container would clash on.
    let fixer = service(&compose, "fixer");
    for clash in ["container_name", "ports", "hostname"] {
        assert!(!fixer.contains_key(clash), "the fixer has {clash}");
    }
    // NATS runs from a config file (with JetStream) that is mounted, as is every file it
    // includes.
    let nats = service(&compose, "nats");
    let command = list_of_text(nats.get("command"));
    let config = command
        .iter()
        .position(|word| word == "--config" || word == "-c")
        .map(|at| command[at + 1].clone())
        .expect("nats-server --config");
    let mounts = bind_mounts(nats);
    let config_source = mounts
        .get(&config)
        .unwrap_or_else(|| panic!("{config} is not mounted: {mounts:?}"));
    let config_dir = Path::new(&config).parent().unwrap();
    let mut seen_jetstream = false;
    for (written, source) in nats::with_includes(config_source) {
        // Inside the container an include resolves beside the including file.
        let mounted = config_dir.join(&written);
        let mounted_from = mounts
            .get(mounted.to_str().unwrap())
            .and_then(|path| path.canonicalize().ok());
        assert_eq!(
            mounted_from.as_ref(),
            Some(&source),
            "{mounted:?} is not mounted from {source:?}"
        );
        seen_jetstream |= read(&source).contains("jetstream {");
    }
    assert!(seen_jetstream, "no jetstream block in NATS' config");
    // Every file any service mounts exists.
    for (name, service) in services {
        for (target, source) in bind_mounts(service.as_object().unwrap()) {
            assert!(source.exists(), "{name}: {target} from missing {source:?}");
        }
    }
    // The services wait for the layout, which waits for NATS.
    for name in ["detector", "fixer", "validator", "delivery"] {
        let depends = &service(&compose, name)["depends_on"];
        assert_eq!(
            depends["layout"]["condition"],
            "service_completed_successfully"
        );
        assert_eq!(depends["nats"]["condition"], "service_healthy");
    }
    // Langfuse only on request, and nothing by default depends on it.
    let langfuse: Vec<_> = services
        .keys()
        .filter(|n| n.starts_with("langfuse"))
        .collect();
    assert!(langfuse.len() >= 2, "{langfuse:?}");
    for name in &langfuse {
        assert_eq!(
            list_of_text(services[*name].get("profiles")),
            ["langfuse"],
            "{name}"
        );
    }
    for (name, service) in services {
        if list_of_text(service.get("profiles")).is_empty() {
            if let Some(Value::Object(depends)) = service.get("depends_on") {
                for dependency in depends.keys() {
                    assert!(services.contains_key(dependency), "{name} → {dependency}");
                    assert!(
                        !dependency.starts_with("langfuse"),
                        "{name} needs {dependency}"
                    );
                }
            }
        }
    }
}

/// Bind mounts of a service: container path → host path (relative ones from deploy/).
fn bind_mounts(service: &serde_json::Map<String, Value>) -> BTreeMap<String, std::path::PathBuf> {
    let mut mounts = BTreeMap::new();
    for volume in service
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (source, target) = match volume {
            Value::Object(long) => (scalar(&long["source"]), scalar(&long["target"])),
            short => {
                let text = scalar(short);
                let mut parts = text.split(':');
                (
                    parts.next().unwrap().to_owned(),
                    parts.next().unwrap_or_default().to_owned(),
                )
            }
        };
        // Named volumes are not files.
        if source.starts_with('.') || source.starts_with('/') {
            mounts.insert(target, deploy().join(Path::new(&source)));
        }
    }
    mounts
}
