//! Seeing what dbt-ops did: `dbt-ops status`, `dbt-ops report` and the metrics endpoints,
//! after a real run (real nats-server, real dbt, real git) with one fixed and one
//! abandoned incident; and one incident's trace across the four services running as
//! separate processes, each under its own least-privilege NATS user, exported over
//! OTLP/gRPC to a collector in the test.

mod support;

use support::{broken_project, free_port, repo_root};

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const DBT_OPS: &str = env!("CARGO_BIN_EXE_dbt-ops");

/// `dbt-ops up` as a child, killed if the test ends.
struct Up {
    child: Child,
}

impl Up {
    fn start(cwd: &Path, nats_url: &str, envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(DBT_OPS)
            .arg("up")
            .current_dir(cwd)
            .env("NATS_URL", nats_url)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("dbt-ops is up") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("dbt-ops up becomes ready");
        Self { child }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        support::stop_gracefully(&mut self.child, Duration::from_secs(15));
    }
}

fn dbt_ops(nats_url: &str, args: &[&str]) -> Output {
    Command::new(DBT_OPS)
        .args(args)
        .env("NATS_URL", nats_url)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Submits and waits; returns the one outcome line.
fn submit(project: &Path, nats_url: &str) -> serde_json::Value {
    let output = Command::new(DBT_OPS)
        .args(["submit", "--wait", "--timeout", "300", "--project-dir"])
        .arg(project)
        .env("NATS_URL", nats_url)
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{lines:?} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    lines[0].clone()
}

#[test]
fn status_report_and_metrics_after_one_fixed_and_one_abandoned_incident() {
    let scratch = tempfile::tempdir().unwrap();
    let fixable = broken_project(
        &scratch.path().join("fixable"),
        "models/staging/stg_orders.sql",
        "    customer_id,\n",
        "    custmer_id,\n",
    );
    // Broken Jinja: no rule fixes it and no LLM is configured, so it is abandoned.
    let unfixable = broken_project(
        &scratch.path().join("unfixable"),
        "models/marts/customers.sql",
        "{{ ref('stg_customers') }}",
        "{{ ref('stg_customers') ",
    );
    let nats_url = format!("nats://127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let _up = Up::start(
        scratch.path(),
        &nats_url,
        &[("DBT_OPS__TELEMETRY__METRICS_LISTEN", metrics.as_str())],
    );
    assert_eq!(http_get(&metrics, "/healthz").0, 200);
    // Ready once every service's consumer is bound, which may follow "up" by a moment.
    let (code, body) = http_get_until(&metrics, "/readyz", 200);
    assert_eq!(code, 200, "{body}");

    let fixed = submit(&fixable, &nats_url);
    assert_eq!(fixed["outcome"], "branch_opened", "{fixed}");
    let abandoned = submit(&unfixable, &nats_url);
    assert_eq!(abandoned["outcome"], "abandoned", "{abandoned}");
    let fixed_id = fixed["incident_id"].as_str().unwrap();
    let abandoned_id = abandoned["incident_id"].as_str().unwrap();

    // The table lists both incidents with their states.
    let table = dbt_ops(&nats_url, &["status"]);
    assert!(table.status.success());
    let table = stdout(&table);
    let row = |id: &str| {
        table
            .lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id} in\n{table}"))
            .to_owned()
    };
    assert!(row(fixed_id).contains("mr_opened"), "{table}");
    assert!(row(fixed_id).contains("stg_orders"), "{table}");
    assert!(row(abandoned_id).contains("abandoned"), "{table}");

    // One incident: its record and its timeline, in order.
    let one = dbt_ops(&nats_url, &["status", fixed_id, "--json"]);
    assert!(one.status.success());
    let one: serde_json::Value = serde_json::from_str(&stdout(&one)).unwrap();
    assert_eq!(one["incident"]["state"], "mr_opened");
    let subjects: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "dbtops.failure.detected",
            "dbtops.fix.proposed",
            "dbtops.fix.validated",
            "dbtops.mr.opened"
        ],
        "{one:#}"
    );
    assert!(one["timeline"][0]["at"].is_string());
    let text = stdout(&dbt_ops(&nats_url, &["status", fixed_id]));
    assert!(
        text.contains("timeline:") && text.contains("dbtops.mr.opened"),
        "{text}"
    );
    let unknown = dbt_ops(&nats_url, &["status", "no-such-incident"]);
    assert!(!unknown.status.success());

    // The report counts what just happened.
    let report = dbt_ops(&nats_url, &["report", "--json"]);
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout(&report)).unwrap();
    let total = &report["total"];
    assert_eq!(total["incidents"], 2, "{report:#}");
    assert_eq!(total["mr_opened"], 1, "{report:#}");
    assert_eq!(total["outcomes"]["abandoned"], 1, "{report:#}");
    assert_eq!(total["outcomes"]["mr_opened"], 1, "{report:#}");
    assert_eq!(total["with_proposal"], 1, "{report:#}");
    assert_eq!(total["first_attempt_pass_rate"], 1.0, "{report:#}");
    assert_eq!(total["any_attempt_pass_rate"], 1.0, "{report:#}");
    assert_eq!(total["merge_rate"], 0.0, "{report:#}");
    assert!(total["time_to_mr_p50_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        total["input_tokens"], 0,
        "rules spend no tokens: {report:#}"
    );
    let table = stdout(&dbt_ops(&nats_url, &["report"]));
    assert!(
        table.contains("TTM p50") && table.contains("total"),
        "{table}"
    );

    // /metrics counted the same run, observed live inside `dbt-ops up`.
    let (code, text) = http_get(&metrics, "/metrics");
    assert_eq!(code, 200);
    let class = fixed_class(&nats_url, fixed_id);
    for line in [
        format!("dbtops_incidents_total{{class=\"{class}\",outcome=\"mr_opened\"}} 1"),
        "dbtops_attempts_total 1".to_owned(),
        "dbtops_validation_total{result=\"passed\"} 1".to_owned(),
        "dbtops_time_to_mr_seconds_count 1".to_owned(),
        "# TYPE dbtops_dlq_total counter".to_owned(),
        "# TYPE dbtops_llm_tokens_total counter".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("dbtops_incidents_total{")
                && l.ends_with("outcome=\"abandoned\"} 1")),
        "{text}"
    );
}

/// The class label of an incident, from `status --json`.
fn fixed_class(nats_url: &str, incident_id: &str) -> String {
    let one = dbt_ops(nats_url, &["status", incident_id, "--json"]);
    let one: serde_json::Value = serde_json::from_str(&stdout(&one)).unwrap();
    one["incident"]["class"].as_str().unwrap().to_owned()
}

/// A plain HTTP/1.1 GET: (status code, body).
fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Polls `path` until it answers `wanted` or a minute passes; the last answer.
fn http_get_until(address: &str, path: &str, wanted: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = std::net::TcpStream::connect(address)
            .ok()
            .map(|_| http_get(address, path))
            .unwrap_or((0, String::new()));
        if answer.0 == wanted || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// One incident, four processes, one trace.

/// The users of deploy/nats/auth.conf this test runs processes as.
const NATS_USERS: &[&str] = &[
    "admin",
    "detector",
    "fixer",
    "validator",
    "delivery",
    "submitter",
];

/// A test password per user, substituted for `$DBTOPS_<USER>_PASSWORD`.
fn nats_password(user: &str) -> String {
    format!("{user}Pw5d2e8f0c7b")
}

/// The fixer's LLM key: configured, never needed (a rule fixes the column), never shown.
const FAKE_API_KEY: &str = "sk-test-9c4f1e7a2b3d5e6f";

/// nats-server with JetStream and the users of `deploy/nats/auth.conf` (the file deploy/
/// ships), killed when dropped.
struct SecuredNats {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl SecuredNats {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth = repo_root()
            .join("deploy/nats/auth.conf")
            .canonicalize()
            .unwrap();
        // nats-server resolves `include` against the including file's directory, even
        // for an absolute path: name the shipped file relative to ours.
        let mut relative = PathBuf::new();
        for component in dir.path().canonicalize().unwrap().components() {
            if matches!(component, Component::Normal(_)) {
                relative.push("..");
            }
        }
        for component in auth.components() {
            if let Component::Normal(part) = component {
                relative.push(part);
            }
        }
        let config = dir.path().join("server.conf");
        std::fs::write(
            &config,
            format!(
                "include \"{}\"\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n",
                relative.display(),
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("nats-server.log")).unwrap();
        let mut command = Command::new(dbtops_bus::server::find_nats_server().unwrap());
        command
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for user in NATS_USERS.iter().chain(&["dashboard"]) {
            command.env(
                format!("DBTOPS_{}_PASSWORD", user.to_uppercase()),
                nats_password(user),
            );
        }
        let child = command.spawn().unwrap();
        let server = Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }

    /// `DBT_OPS__NATS__USER` and `__PASSWORD` for `user`.
    fn credentials(user: &str) -> [(String, String); 2] {
        [
            ("DBT_OPS__NATS__USER".into(), format!("dbtops-{user}")),
            ("DBT_OPS__NATS__PASSWORD".into(), nats_password(user)),
        ]
    }
}

impl Drop for SecuredNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// Every attribute of the span, its events and its resource, as text.
    attributes: Vec<(String, String)>,
}

/// A small OTLP/gRPC trace collector: records what it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn attribute_text(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|pair| {
            use opentelemetry_proto::tonic::common::v1::any_value::Value;
            let value = match pair.value.as_ref().and_then(|value| value.value.as_ref()) {
                Some(Value::StringValue(text)) => text.clone(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (pair.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| attribute_text(&resource.attributes))
                .unwrap_or_default();
            let service = resource
                .iter()
                .find(|(key, _)| key == "service.name")
                .map(|(_, value)| value.clone())
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    let mut attributes = attribute_text(&span.attributes);
                    for event in &span.events {
                        attributes.push(("event".into(), event.name.clone()));
                        attributes.extend(attribute_text(&event.attributes));
                    }
                    if let Some(status) = &span.status {
                        attributes.push(("status".into(), status.message.clone()));
                    }
                    attributes.extend(resource.iter().cloned());
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes,
                    });
                }
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(Default::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The four service binaries, built (or found up to date) next to `dbt-ops`: a test of
/// this package cannot name another package's binaries, so it asks cargo for them.
fn service_binaries() -> PathBuf {
    let bin_dir = Path::new(DBT_OPS).parent().unwrap().to_path_buf();
    let profile = match bin_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", &profile, "--manifest-path"])
        .arg(repo_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(bin_dir.parent().unwrap())
        .args([
            "-p",
            "dbtops-detector",
            "-p",
            "dbtops-fixer",
            "-p",
            "dbtops-validator",
            "-p",
            "dbtops-delivery",
            "--bins",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "cannot build the service binaries");
    bin_dir
}

/// A service binary running as its own process, its log in a file.
struct ServiceProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
    metrics: String,
}

impl ServiceProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as an orchestrator stops it: it drains, flushes its spans and exits 0.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exited with {status}: {}",
                    self.name,
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop: {}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_incident_is_one_trace_across_four_service_processes_without_secrets() {
    let bin_dir = service_binaries();
    let scratch = tempfile::tempdir().unwrap();
    let project = broken_project(
        &scratch.path().join("repo"),
        "models/staging/stg_orders.sql",
        "    customer_id,\n",
        "    custmer_id,\n",
    );

    // The collector, on its own runtime while the test drives processes.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    let otlp_endpoint = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{address}")
    });

    // NATS with one user per service; the administrator lays out the stream and buckets,
    // which the services may only read.
    let nats = SecuredNats::start();
    runtime.block_on(async {
        let admin = dbtops_settings::NatsSettings {
            url: nats.url.clone(),
            user: "dbtops-admin".into(),
            password: dbtops_settings::Secret::from(nats_password("admin").as_str()),
            ..Default::default()
        };
        dbtops_bus::Bus::connect(&admin).await.unwrap();
    });

    let fixer_config = scratch.path().join("fixer.toml");
    std::fs::write(
        &fixer_config,
        format!(
            "[[fixer.providers]]\nname = \"unused\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
             api_key = \"{FAKE_API_KEY}\"\nmodel = \"none\"\ntimeout_secs = 2\nmax_retries = 0\n",
            free_port()
        ),
    )
    .unwrap();
    let dbt = repo_root().join(".venv/bin/dbt");
    let mut services: Vec<ServiceProcess> = Vec::new();
    for name in ["detector", "fixer", "validator", "delivery"] {
        let metrics = format!("127.0.0.1:{}", free_port());
        let log = scratch.path().join(format!("{name}.log"));
        let mut command = Command::new(bin_dir.join(format!("dbt-ops-{name}")));
        if name == "fixer" {
            command.arg("--config").arg(&fixer_config);
        }
        command
            .current_dir(scratch.path())
            .env_remove("RUST_LOG")
            .env("NATS_URL", &nats.url)
            .envs(SecuredNats::credentials(name))
            .env("DBT_OPS__TELEMETRY__OTLP_ENDPOINT", &otlp_endpoint)
            .env("DBT_OPS__TELEMETRY__METRICS_LISTEN", &metrics)
            .env("DBT_OPS__VALIDATOR__DBT_BIN", &dbt)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        services.push(ServiceProcess {
            name,
            child: command.spawn().unwrap(),
            log,
            metrics,
        });
    }
    // Ready means connected and the service's durable consumer bound.
    for service in &services {
        let (code, body) = http_get_until(&service.metrics, "/readyz", 200);
        assert_eq!(
            code,
            200,
            "{} is not ready: {body}\n{}\n{}",
            service.name,
            service.log(),
            nats.log()
        );
    }

    let output = Command::new(DBT_OPS)
        .args(["submit", "--wait", "--timeout", "300", "--project-dir"])
        .arg(&project)
        .env_remove("RUST_LOG")
        .env("NATS_URL", &nats.url)
        .envs(SecuredNats::credentials("submitter"))
        .env("DBT_OPS__TELEMETRY__OTLP_ENDPOINT", &otlp_endpoint)
        .output()
        .unwrap();
    let logs = || {
        services
            .iter()
            .map(|service| format!("--- {}\n{}", service.name, service.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let outcome: serde_json::Value =
        serde_json::from_str(stdout(&output).trim()).unwrap_or_else(|_| {
            panic!(
                "{}\n{}\n{}\n{}",
                stdout(&output),
                String::from_utf8_lossy(&output.stderr),
                logs(),
                nats.log()
            )
        });
    assert_eq!(outcome["outcome"], "branch_opened", "{outcome}\n{}", logs());
    let incident_id = outcome["incident_id"].as_str().unwrap().to_owned();

    // Stopping the services flushes what their exporters still hold.
    for service in &mut services {
        service.terminate();
    }
    // Nobody needed a permission the shipped configuration does not give.
    assert!(
        !nats.log().contains("Violation"),
        "a process was refused something its job needs:\n{}",
        nats.log()
    );

    let trace_id = runtime.block_on(async {
        let admin = dbtops_settings::NatsSettings {
            url: nats.url.clone(),
            user: "dbtops-admin".into(),
            password: dbtops_settings::Secret::from(nats_password("admin").as_str()),
            ..Default::default()
        };
        let bus = dbtops_bus::Bus::connect(&admin).await.unwrap();
        let record = bus
            .incidents()
            .await
            .unwrap()
            .get(&incident_id)
            .await
            .unwrap();
        record.and_then(|record| record.trace_id)
    });
    let trace_id = trace_id.expect("the incident records its trace id");
    let spans = collector.spans.lock().unwrap().clone();
    let in_trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let by_id: HashMap<&str, &ReceivedSpan> = in_trace
        .iter()
        .map(|span| (span.span_id.as_str(), *span))
        .collect();
    let summary = || {
        in_trace
            .iter()
            .map(|span| {
                format!(
                    "{} {} {} <- {}",
                    span.service, span.name, span.span_id, span.parent_span_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Each hop's handler span is a child of a span of the previous process.
    let hops = [
        ("dbt-ops-detector", "detector dbtops.run.submitted"),
        ("dbt-ops-fixer", "fixer dbtops.failure.detected"),
        ("dbt-ops-validator", "validator dbtops.fix.proposed"),
        ("dbt-ops-delivery", "delivery dbtops.fix.validated"),
    ];
    let mut handlers = Vec::new();
    for (service, name) in hops {
        let handler = in_trace
            .iter()
            .find(|span| span.service == service && span.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no {name:?} span from {service} in trace {trace_id}:\n{}",
                    summary()
                )
            });
        handlers.push(*handler);
    }
    for pair in handlers.windows(2) {
        let (upstream, downstream) = (pair[0], pair[1]);
        let parent = by_id
            .get(downstream.parent_span_id.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "{}'s parent is not in the trace:\n{}",
                    downstream.name,
                    summary()
                )
            });
        assert_eq!(
            parent.service,
            upstream.service,
            "{} is not a child of {}'s process:\n{}",
            downstream.name,
            upstream.service,
            summary()
        );
        // ... and, up the chain, of the upstream handler span itself.
        let mut ancestor = *parent;
        while ancestor.span_id != upstream.span_id {
            ancestor = by_id
                .get(ancestor.parent_span_id.as_str())
                .copied()
                .unwrap_or_else(|| {
                    panic!(
                        "{} does not descend from {}:\n{}",
                        downstream.name,
                        upstream.name,
                        summary()
                    )
                });
        }
    }
    let processes: std::collections::BTreeSet<&str> =
        in_trace.iter().map(|span| span.service.as_str()).collect();
    for (service, _) in hops {
        assert!(processes.contains(service), "{processes:?}");
    }

    // The attributes were received (so the check below is not vacuous)...
    assert!(
        handlers[3]
            .attributes
            .iter()
            .any(|(key, value)| key == "messaging.destination" && value == "dbtops.fix.validated"),
        "{:?}",
        handlers[3].attributes
    );
    // ... and no secret configured anywhere in the test is in any span, event or resource.
    let mut secrets: Vec<String> = NATS_USERS.iter().map(|user| nats_password(user)).collect();
    secrets.push(FAKE_API_KEY.to_owned());
    assert!(spans.len() >= in_trace.len() && !spans.is_empty());
    for span in &spans {
        for (key, value) in &span.attributes {
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()) && !key.contains(secret.as_str()),
                    "a secret is in attribute {key} of {} from {}",
                    span.name,
                    span.service
                );
            }
        }
        for secret in &secrets {
            assert!(
                !span.name.contains(secret.as_str()),
                "a secret is in a span name"
            );
        }
    }
}
