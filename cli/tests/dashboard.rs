//! `dbt-ops dashboard` as a user runs it, against a real nats-server: the pages with a
//! seeded incident, HTML escaping of hostile evidence, the server-sent events, the `Host`
//! check — and, with `DBTOPS_TEST_CHROMIUM=1`, headless Chromium watching a real incident
//! (real `dbt-ops up`, real dbt, real git) appear and progress without a reload.

mod support;

use support::{broken_project, free_port};

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dbtops_bus::{Bus, IncidentRecord, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::Settings;
use serde_json::{json, Value};

const DBT_OPS: &str = env!("CARGO_BIN_EXE_dbt-ops");

fn http_client() -> reqwest::Client {
    // reqwest is built without a TLS provider of its own (Cargo.toml); plain HTTP still
    // needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}

/// `dbt-ops dashboard --listen 127.0.0.1:0` as a child, killed when dropped.
struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    base: String,
}

impl Dashboard {
    fn start(nats_url: &str, envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(DBT_OPS)
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .env("NATS_URL", nats_url)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (address_tx, address_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("dashboard on http://") {
                    let address = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = address_tx.send(address);
                } else {
                    eprintln!("dashboard: {line}");
                }
            }
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("dbt-ops dashboard prints its address");
        Self {
            child,
            base: format!("http://{address}"),
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private nats-server and a client of it.
async fn bus() -> (NatsServer, Bus, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&scratch.path().join("nats")).expect("nats-server starts");
    let mut settings = Settings::default();
    settings.nats.url = server.url();
    let bus = Bus::connect(&settings.nats).await.expect("bus connects");
    (server, bus, scratch)
}

fn record(incident_id: &str, model: &str, state: &str, extra: Value) -> IncidentRecord {
    let mut value = json!({
        "incident_id": incident_id,
        "project": "coffee_shop",
        "unique_id": format!("model.coffee_shop.{model}"),
        "model": model,
        "model_path": format!("models/staging/{model}.sql"),
        "class": "missing_column",
        "state": state,
        "generation": 0,
        "attempts": 0,
        "branch": null,
        "url": null,
        "reason": null,
        "detail": null,
        "recurrences": 0,
        "first_seen": "2026-11-03T10:00:00Z",
        "last_seen": "2026-11-03T10:00:00Z",
        "updated_at": "2026-11-03T10:05:00Z",
        "trace_id": null,
    });
    for (key, extra_value) in extra.as_object().cloned().unwrap_or_default() {
        value[key] = extra_value;
    }
    serde_json::from_value(value).expect("an incident record")
}

const HOSTILE_SQL: &str =
    "select <script>alert(\"evidence\")</script> as custmer_id\nfrom {{ ref('raw_orders') }}\n";
const HOSTILE_DETAIL: &str = "Jinja does not close: <unclosed {{ ref('stg_customers') ";
const HOSTILE_ERROR: &str =
    "Binder Error: column \"custmer_id\" not found <img src=x onerror=alert(1)>";

fn detected(incident_id: &str, model: &str) -> v1::FailureDetected {
    let mut error = v1::FailureError {
        message: HOSTILE_ERROR.into(),
        ..Default::default()
    };
    error.set_class(v1::ErrorClass::MissingColumn);
    v1::FailureDetected {
        incident_id: incident_id.into(),
        model: Some(v1::ModelRef {
            unique_id: format!("model.coffee_shop.{model}"),
            name: model.into(),
            path: format!("models/staging/{model}.sql"),
            resource_type: "model".into(),
        }),
        error: Some(error),
        evidence: Some(v1::Evidence {
            model_sql: HOSTILE_SQL.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn proposal(model: &str, fixed_sql: &str, strategy: &str) -> v1::FixProposal {
    v1::FixProposal {
        model_path: format!("models/staging/{model}.sql"),
        fixed_sql: fixed_sql.into(),
        explanation: "Use the column that exists upstream <b>customer_id</b>.".into(),
        strategy: strategy.into(),
        confidence: 0.9,
        ..Default::default()
    }
}

/// The messages a fixed incident leaves on the stream: detected, a proposal that fails
/// `dbt build --empty`, a second that validates, a branch.
async fn seed_fixed_incident(bus: &Bus, incident_id: &str) {
    let subjects = bus.subjects().clone();
    let incident = detected(incident_id, "stg_orders");
    let first = proposal(
        "stg_orders",
        "select nope as customer_id\n",
        "rule:misspelt_column",
    );
    let second = proposal(
        "stg_orders",
        "select <script>alert(\"evidence\")</script> as customer_id\nfrom {{ ref('raw_orders') }}\n",
        "rule:misspelt_column",
    );
    let id = |stage: &str, attempt: u32| format!("{incident_id}.{stage}.{attempt}");
    bus.publish(&subjects.failure_detected(), &id("detected", 0), &incident)
        .await
        .unwrap();
    bus.publish(
        &subjects.fix_proposed(),
        &id("proposed", 1),
        &v1::FixProposed {
            incident: Some(incident.clone()),
            attempt: 1,
            proposal: Some(first.clone()),
            history: Vec::new(),
        },
    )
    .await
    .unwrap();
    bus.publish(
        &subjects.compile_failed(),
        &id("compile_failed", 1),
        &v1::CompileFailed {
            incident: Some(incident.clone()),
            attempt: 1,
            proposal: Some(first),
            failed_step: "dbt build --empty".into(),
            error_text: "Referenced column \"nope\" not found </pre><script>alert(2)</script>"
                .into(),
            steps: vec![v1::ValidationStep {
                name: "dbt build --empty".into(),
                ok: false,
                duration_ms: 812,
                output: "1 of 1 ERROR creating view model stg_orders".into(),
                flagged: false,
            }],
            history: Vec::new(),
        },
    )
    .await
    .unwrap();
    bus.publish(
        &subjects.fix_proposed(),
        &id("proposed", 2),
        &v1::FixProposed {
            incident: Some(incident.clone()),
            attempt: 2,
            proposal: Some(second.clone()),
            history: Vec::new(),
        },
    )
    .await
    .unwrap();
    bus.publish(
        &subjects.fix_validated(),
        &id("validated", 2),
        &v1::FixValidated {
            incident: Some(incident.clone()),
            attempt: 2,
            proposal: Some(second),
            steps: vec![
                v1::ValidationStep {
                    name: "dbt compile".into(),
                    ok: true,
                    duration_ms: 301,
                    output: "Compiled node 'stg_orders' is: <select>".into(),
                    flagged: false,
                },
                v1::ValidationStep {
                    name: "dbt build --empty".into(),
                    ok: true,
                    duration_ms: 655,
                    output: "1 of 1 OK created sql view model main.stg_orders".into(),
                    flagged: false,
                },
            ],
            diff: "--- a/models/staging/stg_orders.sql\n+++ b/models/staging/stg_orders.sql\n@@ -1 +1 @@\n-select <script>alert(\"evidence\")</script> as custmer_id\n+select <script>alert(\"evidence\")</script> as customer_id\n".into(),
            history: Vec::new(),
        },
    )
    .await
    .unwrap();
    bus.publish(
        &subjects.mr_opened(),
        &id("mr_opened", 2),
        &v1::MergeRequestOpened {
            incident_id: incident_id.into(),
            model: incident.model.clone(),
            provider: "gitlab".into(),
            branch: format!("dbt-ops/fix/stg_orders/{incident_id}"),
            url: "https://gitlab.example/data/shop/-/merge_requests/7".into(),
            commit_sha: "0123abcd".into(),
            description_path: String::new(),
            attempts: 2,
        },
    )
    .await
    .unwrap();
    let store = bus.incidents().await.unwrap();
    assert!(store
        .create(&record(
            incident_id,
            "stg_orders",
            "mr_opened",
            json!({
                "attempts": 2,
                "branch": format!("dbt-ops/fix/stg_orders/{incident_id}"),
                "url": "https://gitlab.example/data/shop/-/merge_requests/7",
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
            }),
        ))
        .await
        .unwrap());
}

async fn seed_abandoned_incident(bus: &Bus, incident_id: &str) {
    let incident = detected(incident_id, "customers");
    bus.publish(
        &bus.subjects().failure_detected(),
        &format!("{incident_id}.detected.0"),
        &incident,
    )
    .await
    .unwrap();
    dbtops_bus::abandon_incident(bus, &incident, "needs_human", HOSTILE_DETAIL, 0)
        .await
        .unwrap();
    let store = bus.incidents().await.unwrap();
    assert!(store
        .create(&record(
            incident_id,
            "customers",
            "abandoned",
            json!({
                "class": "jinja_compilation",
                "reason": "needs_human",
                "detail": HOSTILE_DETAIL,
                "updated_at": "2026-11-03T09:00:00Z",
            }),
        ))
        .await
        .unwrap());
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("the dashboard answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// Markup the seeded evidence carries, which must never reach a page as markup.
fn assert_no_injected_markup(html: &str) {
    for raw in [
        "<script>alert",
        "<img src=x",
        "</pre><script>",
        "<b>customer_id</b>",
        "<select>",
        "<unclosed",
    ] {
        assert!(!html.contains(raw), "{raw:?} reached the page unescaped");
    }
    // The only script element is the dashboard's own.
    assert_eq!(html.matches("<script").count(), 1, "{html}");
}

#[tokio::test]
async fn pages_show_seeded_incidents_with_every_value_escaped() {
    let (server, bus, _scratch) = bus().await;
    seed_fixed_incident(&bus, "feedbeef00000001").await;
    seed_abandoned_incident(&bus, "feedbeef00000002").await;
    let dashboard = Dashboard::start(
        &server.url(),
        &[(
            "DBT_OPS__TELEMETRY__TRACE_URL_PREFIX",
            "http://jaeger.example/trace/",
        )],
    );
    let client = http_client();

    let (status, index) = get(&client, &format!("{}/", dashboard.base)).await;
    assert_eq!(status, 200, "{index}");
    let fixed_row = index
        .lines()
        .find(|line| line.contains("data-incident=\"feedbeef00000001\""))
        .unwrap_or_else(|| panic!("no row for the fixed incident in {index}"));
    for expected in [
        "href=\"/incidents/feedbeef00000001\"",
        "mr_opened",
        "missing_column",
        "stg_orders",
        "<td class=\"number\">2</td>",
        "2026-11-03 10:05:00 UTC",
        "dbt-ops/fix/stg_orders/feedbeef00000001",
        "href=\"https://gitlab.example/data/shop/-/merge_requests/7\"",
    ] {
        assert!(
            fixed_row.contains(expected),
            "{expected:?} not in {fixed_row}"
        );
    }
    // Newest change first.
    let first = index.find("feedbeef00000001").unwrap();
    let second = index.find("feedbeef00000002").unwrap();
    assert!(first < second);
    assert!(index.contains("needs_human"));
    assert!(index.contains("data-events=\"/events\""));

    let (status, page) = get(
        &client,
        &format!("{}/incidents/feedbeef00000001", dashboard.base),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    for expected in [
        // The record.
        "models/staging/stg_orders.sql",
        "coffee_shop",
        // The error and the evidence, escaped.
        "Binder Error: column &quot;custmer_id&quot; not found &lt;img src=x onerror=alert(1)&gt;",
        "select &lt;script&gt;alert(&quot;evidence&quot;)&lt;/script&gt; as custmer_id",
        // Attempt 1 failed, with its computed diff and dbt's error.
        "Attempt 1 — <span class=\"verdict failed\">failed at dbt build --empty</span>",
        "<span class=\"add\">+select nope as customer_id</span>",
        "Referenced column &quot;nope&quot; not found &lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;",
        "812 ms",
        "1 of 1 ERROR creating view model stg_orders",
        // Attempt 2 validated, with the validator's diff and each step's output.
        "Attempt 2 — <span class=\"verdict ok\">validated</span>",
        "<span class=\"add\">+select &lt;script&gt;alert(&quot;evidence&quot;)&lt;/script&gt; as customer_id</span>",
        "Compiled node &#39;stg_orders&#39; is: &lt;select&gt;",
        "1 of 1 OK created sql view model main.stg_orders",
        "Use the column that exists upstream &lt;b&gt;customer_id&lt;/b&gt;.",
        // The outcome and the trace.
        "Branch <code>dbt-ops/fix/stg_orders/feedbeef00000001</code>",
        "<a href=\"https://gitlab.example/data/shop/-/merge_requests/7\"",
        "<a href=\"http://jaeger.example/trace/0af7651916cd43dd8448eb211c80319c\"",
        // The timeline.
        "dbtops.fix.compile_failed",
        "dbtops.mr.opened",
    ] {
        assert!(page.contains(expected), "{expected:?} not in the page:\n{page}");
    }
    assert_no_injected_markup(&page);
    assert_no_injected_markup(&index);

    let (status, abandoned) = get(
        &client,
        &format!("{}/incidents/feedbeef00000002", dashboard.base),
    )
    .await;
    assert_eq!(status, 200, "{abandoned}");
    assert!(abandoned.contains("Abandoned: <strong>needs_human</strong>"));
    assert!(abandoned.contains("No proposal yet."));
    assert!(
        abandoned.contains("Jinja does not close: &lt;unclosed {{ ref(&#39;stg_customers&#39;) "),
        "{abandoned}"
    );
    assert!(abandoned.contains("No trace recorded."));
    assert_no_injected_markup(&abandoned);

    let (status, _) = get(
        &client,
        &format!("{}/incidents/0000000000000000", dashboard.base),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &client,
        &format!("{}/incidents/%3Cscript%3E", dashboard.base),
    )
    .await;
    assert_eq!(status, 404);

    // The assets are served with a policy that forbids inline script.
    let response = client
        .get(format!("{}/static/dashboard.js", dashboard.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
}

/// The server-sent events of one `/events` response, parsed as they arrive.
struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

/// One server-sent event.
#[derive(Debug, Clone)]
struct ServerEvent {
    event: String,
    id: Option<String>,
    data: Value,
}

impl EventReader {
    async fn open(client: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client.get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the event stream opens");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event with data (retry hints and keep-alive comments skipped).
    async fn next(&mut self) -> ServerEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, None);
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data = Some(value.trim().to_owned());
                    }
                }
                if let Some(data) = data {
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return ServerEvent { event, id, data };
                }
                continue;
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the event stream stays readable")
                .expect("the event stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first event that `wanted` accepts, within 20 s.
    async fn until(&mut self, what: &str, wanted: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let event = self.next().await;
                if wanted(&event) {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no event {what} within 20 s"))
    }
}

#[tokio::test]
async fn the_event_stream_bridges_new_messages_and_record_changes() {
    let (server, bus, _scratch) = bus().await;
    let dashboard = Dashboard::start(&server.url(), &[]);
    let client = http_client();
    let earlier = detected("cafe000000000001", "stg_orders");
    let published = bus
        .publish(
            &bus.subjects().failure_detected(),
            "cafe000000000001.detected.0",
            &earlier,
        )
        .await
        .unwrap();

    // From now: the response is there once the consumer exists, so nothing published
    // after it can be missed.
    let mut live = EventReader::open(&client, &format!("{}/events", dashboard.base), None).await;
    let incident = detected("cafe000000000002", "orders");
    let second = bus
        .publish(
            &bus.subjects().failure_detected(),
            "cafe000000000002.detected.0",
            &incident,
        )
        .await
        .unwrap();
    let event = live
        .until("for the new message", |e| e.event == "bus")
        .await;
    assert_eq!(event.data["subject"], "dbtops.failure.detected");
    assert_eq!(event.data["incident_id"], "cafe000000000002", "{event:?}");
    assert_eq!(event.id, Some(second.sequence.to_string()));
    assert_eq!(event.data["seq"], second.sequence);
    assert!(event.data["summary"]
        .as_str()
        .unwrap()
        .contains("model=orders"));
    assert!(event.data["at"].is_string());

    // A record written to the bucket arrives as an `incident` event with its row.
    let store = bus.incidents().await.unwrap();
    store
        .create(&record(
            "cafe000000000002",
            "orders",
            "detected",
            json!({ "model": "<orders>" }),
        ))
        .await
        .unwrap();
    let change = live
        .until("for the new record", |e| e.event == "incident")
        .await;
    assert_eq!(change.data["incident_id"], "cafe000000000002");
    assert_eq!(change.data["state"], "detected");
    let row = change.data["row"].as_str().unwrap();
    assert!(
        row.starts_with("<tr data-incident=\"cafe000000000002\""),
        "{row}"
    );
    assert!(
        row.contains("&lt;orders&gt;") && !row.contains("<orders>"),
        "{row}"
    );

    // Replay: `since=all` starts at the oldest message.
    let mut replay = EventReader::open(
        &client,
        &format!("{}/events?since=all", dashboard.base),
        None,
    )
    .await;
    let first = replay.until("replayed", |e| e.event == "bus").await;
    assert_eq!(first.data["incident_id"], "cafe000000000001");
    assert_eq!(first.data["seq"], published.sequence);

    // A reconnecting browser resumes after the last event it saw.
    let mut resumed = EventReader::open(
        &client,
        &format!("{}/events", dashboard.base),
        Some(&published.sequence.to_string()),
    )
    .await;
    let next = resumed
        .until("after Last-Event-ID", |e| e.event == "bus")
        .await;
    assert_eq!(next.data["incident_id"], "cafe000000000002");

    // One incident: its record first (the watch replays current values), then only its
    // own events.
    let mut one = EventReader::open(
        &client,
        &format!(
            "{}/events?since=all&incident=cafe000000000002",
            dashboard.base
        ),
        None,
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = one.next().await;
        seen.push((event.event.clone(), event.data["incident_id"].clone()));
    }
    assert!(
        seen.iter().all(|(_, id)| id == "cafe000000000002"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|(kind, _)| kind == "incident"), "{seen:?}");
    assert!(seen.iter().any(|(kind, _)| kind == "bus"), "{seen:?}");

    let response = client
        .get(format!("{}/events?since=yesterday", dashboard.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_loopback_dashboard_refuses_foreign_host_names() {
    let (server, _bus, _scratch) = bus().await;
    let dashboard = Dashboard::start(&server.url(), &[]);
    let client = http_client();
    let refused = client
        .get(format!("{}/", dashboard.base))
        .header("Host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 421);
    let port = dashboard.base.rsplit(':').next().unwrap();
    let allowed = client
        .get(format!("{}/", dashboard.base))
        .header("Host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
}

// ---------------------------------------------------------------------------------------
// Headless Chromium, through chromedriver's W3C WebDriver API.

/// Says, on the real standard error (past the test harness' capture), that the browser
/// test did not run and why.
fn say_not_run(why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\nNOTE: the dashboard's browser test did not run: {why}\n"
    );
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        support::stop_gracefully(&mut self.0, Duration::from_secs(15));
    }
}

/// `dbt-ops up` in `cwd` on `nats_url`, once it says it is up.
fn start_up(cwd: &Path, nats_url: &str) -> Killed {
    let mut child = Command::new(DBT_OPS)
        .arg("up")
        .current_dir(cwd)
        .env("NATS_URL", nats_url)
        // `up` records its URL under $HOME too; keep this private system out of the real
        // home, where another `dbt-ops submit` on the machine would find and use it.
        .env("HOME", cwd)
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
    let up = Killed(child);
    ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("dbt-ops up becomes ready");
    up
}

/// One WebDriver session.
struct Browser {
    client: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.session);
        let response = self
            .client
            .request(method, &url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("WebDriver {path}: {error}"));
        let status = response.status();
        let value: Value = response.json().await.expect("WebDriver answers JSON");
        assert!(status.is_success(), "WebDriver {path}: {status} {value}");
        value["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits — on DOM changes, not by polling — until `condition` (a JavaScript function
    /// body) returns something truthy, and returns it; fails after the session's script
    /// timeout.
    async fn wait_for(&self, condition: &str) -> Value {
        let script = format!(
            r#"const done = arguments[arguments.length - 1];
            const check = () => {{ try {{ {condition} }} catch (error) {{ return null; }} }};
            const found = check();
            if (found) {{ done(found); return; }}
            const observer = new MutationObserver(() => {{
              const value = check();
              if (value) {{ observer.disconnect(); done(value); }}
            }});
            observer.observe(document.documentElement,
              {{ subtree: true, childList: true, attributes: true, characterData: true }});"#
        );
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_sees_a_real_incident_appear_and_progress_without_a_reload() {
    if std::env::var("DBTOPS_TEST_CHROMIUM").as_deref() != Ok("1") {
        say_not_run(
            "set DBTOPS_TEST_CHROMIUM=1 to run it (it needs Debian's chromium and \
             chromium-driver: apt-get install -y chromium chromium-driver)",
        );
        return;
    }
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let chromedriver =
        std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for binary in [&chromium, &chromedriver] {
        assert!(
            Path::new(binary).is_file(),
            "DBTOPS_TEST_CHROMIUM=1 but {binary} is missing: apt-get install -y chromium chromium-driver"
        );
    }

    let scratch = tempfile::tempdir().unwrap();
    let project = broken_project(
        &scratch.path().join("repo"),
        "models/staging/stg_orders.sql",
        "    customer_id,\n",
        "    custmer_id,\n",
    );
    let nats_url = format!("nats://127.0.0.1:{}", free_port());
    let _up = start_up(scratch.path(), &nats_url);
    let dashboard = Dashboard::start(&nats_url, &[]);

    let driver_port = free_port();
    let mut driver = Command::new(&chromedriver)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let stdout = driver.stdout.take().unwrap();
    let _driver = Killed(driver);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("started successfully") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromedriver says it started");
    let client = http_client();
    let driver = format!("http://127.0.0.1:{driver_port}");
    let profile = scratch.path().join("chromium-profile");
    let created: Value = client
        .post(format!("{driver}/session"))
        .json(&json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-proxy-server",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }},
        }))
        .send()
        .await
        .expect("chromedriver answers")
        .json()
        .await
        .expect("a session");
    let session_id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"))
        .to_owned();
    let browser = Browser {
        client: client.clone(),
        session: format!("{driver}/session/{session_id}"),
    };
    // Waits below end when the DOM says so; this is only the deadline.
    browser
        .call(
            reqwest::Method::POST,
            "/timeouts",
            json!({ "script": 300_000, "pageLoad": 30_000 }),
        )
        .await;

    browser.open(&format!("{}/", dashboard.base)).await;
    let live = browser
        .wait_for(r#"const l = document.getElementById("live"); return l.dataset.state === "open" && l.textContent;"#)
        .await;
    assert_eq!(live, "live");
    assert_eq!(
        browser
            .run(r#"return !!document.getElementById("no-incidents");"#)
            .await,
        true
    );
    // A reload would lose this.
    browser
        .run(r#"window.dbtopsSamePage = "yes"; return null;"#)
        .await;

    // Submit the failed run; the page was loaded before it and is never reloaded.
    let submit = Command::new(DBT_OPS)
        .args(["submit", "--project-dir"])
        .arg(&project)
        .env("NATS_URL", &nats_url)
        .output()
        .unwrap();
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );

    let row = browser
        .wait_for(
            r##"const row = [...document.querySelectorAll("#incident-rows tr[data-incident]")]
                 .find((r) => r.textContent.includes("stg_orders"));
               return row && { id: row.dataset.incident, state: row.dataset.state };"##,
        )
        .await;
    let incident_id = row["id"].as_str().unwrap().to_owned();
    eprintln!("the incident appeared on the page as {row}");
    // It goes on to a branch, still on the same page.
    let done = browser
        .wait_for(&format!(
            r#"const row = document.querySelector('#incident-rows tr[data-incident="{incident_id}"]');
               return row && row.dataset.state === "mr_opened" && row.textContent;"#
        ))
        .await;
    let done = done.as_str().unwrap().to_owned();
    assert!(done.contains("dbt-ops/fix/stg_orders/"), "{done}");
    assert!(done.contains("missing_column"), "{done}");
    let log = browser
        .wait_for(
            r##"const items = [...document.querySelectorAll("#event-log li")].map((li) => li.dataset.subject);
               return items.includes("dbtops.mr.opened") && items;"##,
        )
        .await;
    for subject in [
        "dbtops.run.submitted",
        "dbtops.failure.detected",
        "dbtops.fix.proposed",
        "dbtops.fix.validated",
    ] {
        assert!(
            log.as_array().unwrap().iter().any(|s| s == subject),
            "{subject} not in the event log {log}"
        );
    }
    assert_eq!(
        browser.run("return window.dbtopsSamePage || null;").await,
        "yes",
        "the page was reloaded"
    );
    assert_eq!(
        browser
            .run(r#"return !!document.getElementById("no-incidents");"#)
            .await,
        false
    );

    // The incident's page, reached by its link: the validated attempt, its diff and steps.
    let href = browser
        .run(&format!(
            r#"return document.querySelector('#incident-rows tr[data-incident="{incident_id}"] a').href;"#
        ))
        .await;
    browser.open(href.as_str().unwrap()).await;
    let text = browser
        .wait_for(r##"return document.querySelector("#attempts .verdict.ok") && document.querySelector("main").innerText;"##)
        .await;
    let text = text.as_str().unwrap();
    for expected in [
        "Attempt 1",
        "validated",
        "+    customer_id,",
        "-    custmer_id,",
        "dbt compile",
        "dbt-ops/fix/stg_orders/",
        "dbtops.mr.opened",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not on the incident page:\n{text}"
        );
    }
    browser.call(reqwest::Method::DELETE, "", json!({})).await;
}
