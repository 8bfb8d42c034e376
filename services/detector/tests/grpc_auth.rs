//! The gRPC `Ingest` service behind `detector.grpc_token`, against a real `nats-server -js`
//! (a free loopback port, a temp store) and a real dbt failure (a fixture of
//! `crates/artifacts/tests/fixtures`).
//!
//! A call without the token, or with a wrong one, is `UNAUTHENTICATED` and leaves the stream
//! empty; the right token gets the verdict; the health service answers without a token; the
//! token appears in no log line and no error message.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbtops_bus::{Bus, NatsServer};
use dbtops_detector::Detector;
use dbtops_proto::v1;
use dbtops_proto::v1::ingest_client::IngestClient;
use dbtops_settings::{Secret, Settings};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const WAIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "grpc-token-7f3a9c1e5b";

/// A real failure (a misspelt column in a mart), every artifact inline, as a CI job sends it.
fn submission(submission_id: &str) -> v1::RunSubmitted {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/artifacts/tests/fixtures/misspelt_column_mart");
    let artifacts = [
        "run_results.json",
        "manifest.json",
        "dbt.log",
        "console.txt",
    ]
    .iter()
    .filter_map(|kind| {
        std::fs::read(dir.join(kind))
            .ok()
            .map(|content| v1::Artifact {
                kind: (*kind).to_owned(),
                size_bytes: content.len() as u64,
                body: Some(v1::artifact::Body::Inline(content)),
            })
    })
    .collect::<Vec<_>>();
    assert!(!artifacts.is_empty(), "no fixture artifacts in {dir:?}");
    v1::RunSubmitted {
        submission_id: submission_id.to_owned(),
        project: Some(v1::ProjectRef {
            name: "coffee_shop".into(),
            ..Default::default()
        }),
        artifacts,
        submitted_at: String::new(),
    }
}

/// Every log line of this test binary, fields included, so a test can look for the token
/// in it.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<String>>);

impl CapturedLogs {
    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// The logs of every test in this binary. A global subscriber, because a scoped one
/// misses events whose callsite another thread registered first with no subscriber
/// (tracing caches a callsite's interest process-wide).
fn captured_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        tracing::subscriber::set_global_default(logs.clone())
            .expect("no other global subscriber in this test binary");
        logs
    })
    .clone()
}

struct FieldsToText<'a>(&'a mut String);

impl tracing::field::Visit for FieldsToText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for CapturedLogs {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.0.lock().unwrap();
        text.push_str(span.metadata().name());
        span.record(&mut FieldsToText(&mut text));
        text.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.0.lock().unwrap();
        values.record(&mut FieldsToText(&mut text));
        text.push('\n');
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap();
        text.push_str(event.metadata().level().as_str());
        event.record(&mut FieldsToText(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

struct Served {
    _server: NatsServer,
    _store: tempfile::TempDir,
    bus: Bus,
    address: String,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn serve(token: &str) -> Served {
    let store = tempfile::tempdir().unwrap();
    let server = NatsServer::start(store.path()).unwrap();
    let mut settings = Settings::default();
    settings.nats.url = server.url();
    settings.detector.grpc_token = Secret::from(token);
    let bus = Bus::connect(&settings.nats).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let detector = Detector::with_env(settings, Vec::<(String, String)>::new());
    let served_bus = bus.clone();
    let handle = tokio::spawn(async move {
        dbtops_detector::grpc::serve(served_bus, detector, listener, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
    });
    Served {
        _server: server,
        _store: store,
        bus,
        address,
        stop,
        handle,
    }
}

impl Served {
    /// Every message on the stream under the subject prefix (run.submitted, run.processed,
    /// failure.detected, …).
    async fn stored_subjects(&self) -> Vec<String> {
        self.bus
            .replay(&self.bus.subjects().all())
            .await
            .unwrap()
            .iter()
            .map(|message| message.subject.clone())
            .collect()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.handle)
            .await
            .unwrap()
            .unwrap();
    }
}

fn with_authorization(
    submitted: v1::RunSubmitted,
    authorization: Option<&str>,
) -> tonic::Request<v1::RunSubmitted> {
    let mut request = tonic::Request::new(submitted);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

/// No token and wrong tokens are refused before anything is processed: the answer is
/// UNAUTHENTICATED, the stream holds no message at all (no RunSubmitted, no RunProcessed,
/// no FailureDetected) and the KV bucket no verdict. The right token then gets one.
#[tokio::test(flavor = "current_thread")]
async fn submit_run_without_the_token_is_unauthenticated_and_publishes_nothing() {
    let logs = captured_logs();
    let served = serve(TOKEN).await;
    let mut client = IngestClient::connect(served.address.clone()).await.unwrap();

    let wrong_token = format!("Bearer {TOKEN}x");
    let refused_cases = [
        ("no-token", None),
        ("empty", Some("")),
        ("wrong-token", Some(wrong_token.as_str())),
        ("prefix-of-token", Some("Bearer grpc-token")),
        ("not-bearer", Some(TOKEN)),
        ("basic-scheme", Some("Basic Z3JwYzp0b2tlbg==")),
    ];
    for (id, authorization) in refused_cases {
        let status = client
            .submit_run(with_authorization(submission(id), authorization))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{id}: {status:?}"
        );
        assert!(!status.message().contains(TOKEN), "{}", status.message());
    }
    assert_eq!(served.stored_subjects().await, Vec::<String>::new());
    let store = served.bus.incidents().await.unwrap();
    for (id, _) in refused_cases {
        assert!(
            store
                .wait_for_submission(id, Duration::from_millis(200))
                .await
                .unwrap()
                .is_none(),
            "{id} has a verdict"
        );
    }

    let admitted = client
        .submit_run(with_authorization(
            submission("right-token"),
            Some(&format!("Bearer {TOKEN}")),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(admitted.submission_id, "right-token");
    assert_eq!(admitted.new_incident_ids.len(), 1, "{admitted:?}");
    let subjects = served.stored_subjects().await;
    let prefix = served.bus.subjects();
    assert!(
        subjects.contains(&prefix.run_processed()),
        "the admitted call published its verdict: {subjects:?}"
    );
    assert!(
        subjects.contains(&prefix.failure_detected()),
        "{subjects:?}"
    );

    let logged = logs.text();
    assert!(
        logged.contains("Refused a gRPC Ingest call"),
        "the refusals are logged: {logged}"
    );
    assert!(!logged.contains(TOKEN), "the token was logged: {logged}");
    assert!(
        !logged.contains("grpc-token"),
        "part of the token was logged"
    );
    served.stop().await;
}

/// Probes carry no credentials: the health service answers SERVING for Ingest without the
/// token, while Ingest itself refuses.
#[tokio::test(flavor = "current_thread")]
async fn the_health_service_stays_open() {
    let served = serve(TOKEN).await;
    let channel = tonic::transport::Endpoint::from_shared(served.address.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["dbtops.v1.Ingest", ""] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let refused = IngestClient::new(channel)
        .submit_run(submission("no-token"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    served.stop().await;
}
