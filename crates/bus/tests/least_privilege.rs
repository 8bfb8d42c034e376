//! Least privilege on a real nats-server started with `deploy/nats/auth.conf` — the very
//! file deploy/ ships, with test passwords in the environment it reads them from.
//!
//! Shown here: the administrator creates the layout and the services cannot; each service,
//! under its own user, binds its durable consumer, reads and writes the incident store,
//! publishes what it says and dead-letters what it cannot read; the submitter sends a run
//! whose artifact goes through the object store and follows it in the KV bucket; the
//! dashboard reads everything and writes nothing; a fixer publishing
//! `dbtops.fix.validated` is refused at once with the server's words naming the subject,
//! and nothing is stored; and no short-lived reader can take over a service's durable.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use dbtops_bus::{
    advance_incident, run_consumer, stage_id, Bus, BusError, ConsumerSpec, IncidentRecord,
    IncidentState, Outcome, SubmissionRecord,
};
use dbtops_proto::v1;
use dbtops_settings::{NatsSettings, Secret};
use futures::StreamExt;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// The users of `deploy/nats/auth.conf`, by the service name in their user name.
const USERS: &[&str] = &[
    "admin",
    "detector",
    "fixer",
    "validator",
    "delivery",
    "submitter",
    "dashboard",
];

/// The configuration deploy/ ships.
fn shipped_auth_conf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nats/auth.conf")
}

/// A test password per user; none appears in the shipped file.
fn password(user: &str) -> String {
    format!("test{user}Pw7c1e9a")
}

/// nats-server on a free loopback port with JetStream and the shipped users.
struct AuthServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AuthServer {
    /// A port picked free can be taken before the server binds it; then another.
    fn start() -> Self {
        for _ in 0..3 {
            if let Some(server) = Self::try_start() {
                return server;
            }
        }
        panic!("nats-server exited three times on ports picked free");
    }

    /// The server, or `None` when it exited before it was ready (its port was taken).
    fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // nats-server resolves `include` against the including file's directory, even for
        // an absolute path: include the shipped file by a path relative to ours.
        let auth = relative_to(dir.path(), &shipped_auth_conf().canonicalize().unwrap());
        let config = dir.path().join("server.conf");
        std::fs::write(
            &config,
            format!(
                "include \"{}\"\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n",
                auth.display(),
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
        for user in USERS {
            command.env(
                format!("DBTOPS_{}_PASSWORD", user.to_uppercase()),
                password(user),
            );
        }
        let child = command.spawn().unwrap();
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        // Ready is this server's own log line: the port may answer for another server
        // that took it between the pick and the bind.
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err()
            || !dbtops_bus::server::says_ready(&server._dir.path().join("nats-server.log"))
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                eprintln!("nats-server exited with {status}: {}", server.log());
                return None;
            }
            assert!(Instant::now() < deadline, "nats-server never listened");
            std::thread::sleep(Duration::from_millis(25));
        }
        Some(server)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("nats-server.log")).unwrap_or_default()
    }

    fn settings(&self, user: &str) -> NatsSettings {
        NatsSettings {
            url: format!("nats://127.0.0.1:{}", self.port),
            user: format!("dbtops-{user}"),
            password: Secret::from(password(user).as_str()),
            ack_wait_secs: 5,
            max_deliver: 3,
            ..Default::default()
        }
    }

    async fn connect(&self, user: &str) -> Bus {
        Bus::connect(&self.settings(user))
            .await
            .unwrap_or_else(|error| panic!("{user} cannot connect: {error}\n{}", self.log()))
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target` as a path relative to `from` (both absolute).
fn relative_to(from: &Path, target: &Path) -> PathBuf {
    let from = from.canonicalize().unwrap();
    let mut relative = PathBuf::new();
    for component in from.components() {
        if matches!(component, Component::Normal(_)) {
            relative.push("..");
        }
    }
    for component in target.components() {
        if let Component::Normal(part) = component {
            relative.push(part);
        }
    }
    relative
}

/// Waits until every consumer `bus` tracks is bound.
async fn wait_bound(bus: &Bus, durables: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let consumers = bus.consumers();
        if durables
            .iter()
            .all(|durable| consumers.iter().any(|c| c.durable == *durable && c.bound))
        {
            return;
        }
        assert!(Instant::now() < deadline, "never bound: {consumers:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages stored on `subject`, read by the administrator.
async fn stored(admin: &Bus, subject: &str) -> Vec<dbtops_bus::StoredMessage> {
    admin.replay(subject).await.unwrap()
}

/// Waits until `subject` holds `count` messages.
async fn wait_stored(admin: &Bus, subject: &str, count: usize) -> Vec<dbtops_bus::StoredMessage> {
    let deadline = Instant::now() + WAIT;
    loop {
        let messages = stored(admin, subject).await;
        if messages.len() >= count {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{subject} holds {} messages, expected {count}",
            messages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn record(incident_id: &str) -> IncidentRecord {
    let now = dbtops_bus::incidents::now_rfc3339();
    IncidentRecord {
        incident_id: incident_id.into(),
        project: "coffee_shop".into(),
        unique_id: "model.coffee_shop.stg_orders".into(),
        model: "stg_orders".into(),
        model_path: "models/staging/stg_orders.sql".into(),
        class: "missing_column".into(),
        state: IncidentState::Detected,
        generation: 0,
        attempts: 0,
        branch: None,
        url: None,
        reason: None,
        detail: None,
        recurrences: 0,
        first_seen: now.clone(),
        last_seen: now.clone(),
        updated_at: now,
        trace_id: None,
        last_submission_id: String::new(),
        delivered_repo: None,
    }
}

fn stopped(receiver: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> {
    let mut receiver = receiver.clone();
    async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// Turns a handler's bus error into a retry.
fn retry(error: BusError) -> Outcome {
    Outcome::retry(Duration::from_millis(200), error.to_string())
}

#[tokio::test]
async fn services_cannot_create_the_layout_and_the_error_names_the_refused_permission() {
    let server = AuthServer::start();
    let started = Instant::now();
    let error = Bus::connect(&server.settings("fixer")).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, BusError::Layout { .. }),
        "{text}\n{}",
        server.log()
    );
    // It reads the stream first (allowed), then tries to update it (refused).
    assert!(
        text.contains("Permissions Violation for Publish to \"$JS.API.STREAM.UPDATE.DBTOPS\""),
        "{text}"
    );
    assert!(text.contains("lacks that permission"), "{text}");
    // Refused at once, not after a request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Once the administrator has created it, the same user connects.
    let _admin = server.connect("admin").await;
    let fixer = server.connect("fixer").await;
    assert_eq!(fixer.settings().user, "dbtops-fixer");
    // A wrong password is refused as such, without the password in the message.
    let mut wrong = server.settings("fixer");
    wrong.password = Secret::from("not-the-password-4e1f");
    let error = Bus::connect(&wrong).await.unwrap_err().to_string();
    assert!(error.contains("authorization violation"), "{error}");
    assert!(!error.contains("not-the-password-4e1f"), "{error}");
}

#[tokio::test]
async fn a_fixer_publishing_a_validation_is_refused_and_nothing_is_stored() {
    let server = AuthServer::start();
    let admin = server.connect("admin").await;
    let fixer = server.connect("fixer").await;
    let validated = v1::FixValidated {
        incident: Some(v1::FailureDetected {
            incident_id: "forged".into(),
            ..Default::default()
        }),
        attempt: 1,
        ..Default::default()
    };
    let started = Instant::now();
    let error = fixer
        .publish(
            &fixer.subjects().fix_validated(),
            "forged.validated.1",
            &validated,
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, BusError::Publish { .. }), "{text}");
    assert!(
        text.starts_with("cannot publish on dbtops.fix.validated: NATS refused it"),
        "{text}"
    );
    assert!(
        text.contains("Permissions Violation for Publish to \"dbtops.fix.validated\""),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(stored(&admin, "dbtops.fix.validated").await.is_empty());

    // Nor may it write another service's keys, or anything outside its own subjects.
    let kv = fixer
        .jetstream()
        .get_key_value("dbtops-incidents")
        .await
        .unwrap();
    let put = tokio::time::timeout(
        Duration::from_secs(10),
        kv.put("submission.forged", "{}".into()),
    )
    .await;
    assert!(!matches!(put, Ok(Ok(_))), "the fixer wrote a submission");
    // The server's own log names the user and the subject.
    assert!(
        server.log().contains(
            "\"$G/user:dbtops-fixer\" - Publish Violation - Subject \"$KV.dbtops-incidents.submission.forged\""
        ),
        "{}",
        server.log()
    );
    for subject in [
        "dbtops.mr.opened",
        "dbtops.run.submitted",
        "dbtops.dlq.validator",
    ] {
        let error = fixer
            .publish(subject, &format!("forged.{subject}"), &validated)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(&format!("\"{subject}\"")), "{error}");
    }
    // What it may publish is stored.
    let proposed = fixer
        .publish(
            &fixer.subjects().fix_proposed(),
            "real.proposed.1",
            &v1::FixProposed::default(),
        )
        .await
        .unwrap();
    assert!(!proposed.duplicate);
    let everything = stored(&admin, "dbtops.>").await;
    let subjects: Vec<&str> = everything.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, ["dbtops.fix.proposed"]);
}

#[tokio::test]
async fn every_service_does_its_job_under_its_own_user() {
    let server = AuthServer::start();
    let admin = server.connect("admin").await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut services = Vec::new();

    // detector: run.submitted → the artifact from the object store, the incident and
    // submission records, the open index, failure.detected and run.processed.
    let detector = server.connect("detector").await;
    services.push(tokio::spawn(run_consumer(
        detector.clone(),
        ConsumerSpec {
            service: "detector",
            durable: "detector".into(),
            filter_subjects: vec![detector.subjects().run_submitted()],
            concurrency: 1,
        },
        {
            let bus = detector.clone();
            move |delivery| {
                let bus = bus.clone();
                async move {
                    let run: v1::RunSubmitted = match delivery.decode() {
                        Ok(run) => run,
                        Err(outcome) => return outcome,
                    };
                    for artifact in &run.artifacts {
                        if let Some(v1::artifact::Body::ObjectName(name)) = &artifact.body {
                            if let Err(error) = bus.get_artifact(name, 1 << 20).await {
                                return retry(error);
                            }
                        }
                    }
                    let incident_id = format!("{}-i", run.submission_id);
                    let store = match bus.incidents().await {
                        Ok(store) => store,
                        Err(error) => return retry(error),
                    };
                    if let Err(error) = store.create(&record(&incident_id)).await {
                        return retry(error);
                    }
                    let index = bus
                        .jetstream()
                        .get_key_value(&bus.settings().incidents_bucket)
                        .await;
                    if let Ok(index) = index {
                        if index
                            .put("open.0123456789abcdef", "{}".into())
                            .await
                            .is_err()
                        {
                            return Outcome::retry(Duration::from_millis(200), "open index");
                        }
                    }
                    let detected = v1::FailureDetected {
                        incident_id: incident_id.clone(),
                        submission_id: run.submission_id.clone(),
                        ..Default::default()
                    };
                    let published = bus
                        .publish(
                            &bus.subjects().failure_detected(),
                            &stage_id(&incident_id, 0, "detected", 0),
                            &detected,
                        )
                        .await;
                    if let Err(error) = published {
                        return retry(error);
                    }
                    let verdict = SubmissionRecord {
                        submission_id: run.submission_id.clone(),
                        new_incident_ids: vec![incident_id.clone()],
                        ..Default::default()
                    };
                    if let Err(error) = store.put_submission(&verdict).await {
                        return retry(error);
                    }
                    let processed = v1::RunProcessed {
                        submission_id: run.submission_id.clone(),
                        new_incident_ids: vec![incident_id],
                        ..Default::default()
                    };
                    match bus
                        .publish(
                            &bus.subjects().run_processed(),
                            &format!("{}.processed", run.submission_id),
                            &processed,
                        )
                        .await
                    {
                        Ok(_) => Outcome::Done,
                        Err(error) => retry(error),
                    }
                }
            }
        },
        stopped(&stop_rx),
    )));

    // fixer: failure.detected → fixing → fix.proposed; an unreadable message → its dead
    // letters.
    let fixer = server.connect("fixer").await;
    services.push(tokio::spawn(run_consumer(
        fixer.clone(),
        ConsumerSpec {
            service: "fixer",
            durable: "fixer".into(),
            filter_subjects: vec![
                fixer.subjects().failure_detected(),
                fixer.subjects().compile_failed(),
            ],
            concurrency: 1,
        },
        {
            let bus = fixer.clone();
            move |delivery| {
                let bus = bus.clone();
                async move {
                    let incident: v1::FailureDetected = match delivery.decode() {
                        Ok(incident) => incident,
                        Err(outcome) => return outcome,
                    };
                    let id = incident.incident_id.clone();
                    let advanced = advance_incident(&bus, &incident, IncidentState::Fixing, |r| {
                        r.attempts = 1
                    })
                    .await;
                    if let Err(error) = advanced {
                        return retry(error);
                    }
                    let proposed = v1::FixProposed {
                        incident: Some(incident),
                        attempt: 1,
                        ..Default::default()
                    };
                    match bus
                        .publish(
                            &bus.subjects().fix_proposed(),
                            &stage_id(&id, 0, "proposed", 1),
                            &proposed,
                        )
                        .await
                    {
                        Ok(_) => Outcome::Done,
                        Err(error) => retry(error),
                    }
                }
            }
        },
        stopped(&stop_rx),
    )));

    // validator: fix.proposed → validating → fix.validated.
    let validator = server.connect("validator").await;
    services.push(tokio::spawn(run_consumer(
        validator.clone(),
        ConsumerSpec {
            service: "validator",
            durable: "validator".into(),
            filter_subjects: vec![validator.subjects().fix_proposed()],
            concurrency: 1,
        },
        {
            let bus = validator.clone();
            move |delivery| {
                let bus = bus.clone();
                async move {
                    let proposed: v1::FixProposed = match delivery.decode() {
                        Ok(proposed) => proposed,
                        Err(outcome) => return outcome,
                    };
                    let incident = proposed.incident.clone().unwrap_or_default();
                    let id = incident.incident_id.clone();
                    if let Err(error) =
                        advance_incident(&bus, &incident, IncidentState::Validating, |_| {}).await
                    {
                        return retry(error);
                    }
                    let validated = v1::FixValidated {
                        incident: proposed.incident,
                        attempt: proposed.attempt,
                        ..Default::default()
                    };
                    match bus
                        .publish(
                            &bus.subjects().fix_validated(),
                            &stage_id(&id, 0, "validated", 1),
                            &validated,
                        )
                        .await
                    {
                        Ok(_) => Outcome::Done,
                        Err(error) => retry(error),
                    }
                }
            }
        },
        stopped(&stop_rx),
    )));

    // delivery: fix.validated → re-read from the stream and the incident list (as its
    // webhook does) → mr_opened → mr.opened.
    let delivery = server.connect("delivery").await;
    services.push(tokio::spawn(run_consumer(
        delivery.clone(),
        ConsumerSpec {
            service: "delivery",
            durable: "delivery".into(),
            filter_subjects: vec![delivery.subjects().fix_validated()],
            concurrency: 1,
        },
        {
            let bus = delivery.clone();
            move |delivery| {
                let bus = bus.clone();
                async move {
                    let validated: v1::FixValidated = match delivery.decode() {
                        Ok(validated) => validated,
                        Err(outcome) => return outcome,
                    };
                    let incident = validated.incident.clone().unwrap_or_default();
                    let id = incident.incident_id.clone();
                    match bus.replay(&bus.subjects().fix_validated()).await {
                        Ok(stored) if !stored.is_empty() => {}
                        Ok(_) => return Outcome::retry(Duration::from_millis(200), "not yet"),
                        Err(error) => return retry(error),
                    }
                    let listed = match bus.incidents().await {
                        Ok(store) => store.list().await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = listed {
                        return retry(error);
                    }
                    let advanced =
                        advance_incident(&bus, &incident, IncidentState::MrOpened, |r| {
                            r.branch = Some("dbt-ops/fix/stg_orders/x".into())
                        })
                        .await;
                    if let Err(error) = advanced {
                        return retry(error);
                    }
                    let opened = v1::MergeRequestOpened {
                        incident_id: id.clone(),
                        provider: "local_git".into(),
                        branch: "dbt-ops/fix/stg_orders/x".into(),
                        ..Default::default()
                    };
                    match bus
                        .publish(
                            &bus.subjects().mr_opened(),
                            &stage_id(&id, 0, "opened", 1),
                            &opened,
                        )
                        .await
                    {
                        Ok(_) => Outcome::Done,
                        Err(error) => retry(error),
                    }
                }
            }
        },
        stopped(&stop_rx),
    )));

    // Every service process also runs the metrics observer's core subscription to
    // `dbtops.>`; with it, the server filters what it delivers to the connection by the
    // user's subscribe denials — pulled messages included.
    let mut observers = Vec::new();
    for bus in [&detector, &fixer, &validator, &delivery] {
        observers.push(bus.client().subscribe(bus.subjects().all()).await.unwrap());
        bus.client().flush().await.unwrap();
    }
    wait_bound(&detector, &["detector"]).await;
    wait_bound(&fixer, &["fixer"]).await;
    wait_bound(&validator, &["validator"]).await;
    wait_bound(&delivery, &["delivery"]).await;

    // The fixer's metrics observer sees events, but not the raw submissions.
    let mut observed = fixer
        .client()
        .subscribe(fixer.subjects().all())
        .await
        .unwrap();
    // A round trip, so the subscription is in place before anything is published.
    fixer.client().flush().await.unwrap();

    // submitter: a run whose manifest is over the inline limit goes through the object
    // store; then it follows the submission and the incident in the KV bucket.
    let submitter = server.connect("submitter").await;
    let big = vec![b'x'; (submitter.settings().inline_artifact_limit_bytes + 1) as usize];
    let sent = submitter
        .submit_run(
            v1::ProjectRef {
                name: "coffee_shop".into(),
                ..Default::default()
            },
            vec![("manifest.json", big), ("run_results.json", b"{}".to_vec())],
            "sub1",
        )
        .await
        .unwrap();
    assert_eq!(sent, 2);
    let store = submitter.incidents().await.unwrap();
    let verdict = store
        .wait_for_submission("sub1", WAIT)
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", server.log()))
        .unwrap_or_else(|| panic!("no verdict\n{}", server.log()));
    assert_eq!(verdict.new_incident_ids, ["sub1-i"]);
    let outcome = store
        .wait_for_outcome("sub1-i", WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, IncidentState::MrOpened, "{}", server.log());
    wait_stored(&admin, "dbtops.mr.opened", 1).await;
    wait_stored(&admin, "dbtops.run.processed", 1).await;

    // An unreadable message on the fixer's subject goes to the fixer's dead letters.
    admin
        .publish_raw(
            &admin.subjects().failure_detected(),
            async_nats::HeaderMap::new(),
            bytes::Bytes::from_static(b"\xff"),
        )
        .await
        .unwrap();
    let letters = wait_stored(&admin, "dbtops.dlq.fixer", 1).await;
    assert_eq!(letters.len(), 1);

    // Each service may read its own consumer's lag (the metrics do), nobody else's.
    let own = fixer
        .jetstream()
        .get_consumer_from_stream::<pull::Config, _, _>("fixer", "DBTOPS")
        .await
        .unwrap();
    assert_eq!(own.cached_info().num_ack_pending, 0);

    let mut seen = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), observed.next()).await
    {
        seen.push(message.subject.to_string());
    }
    assert!(seen.iter().any(|s| s == "dbtops.mr.opened"), "{seen:?}");
    assert!(
        !seen.iter().any(|s| s == "dbtops.run.submitted"),
        "the fixer saw raw submissions: {seen:?}"
    );

    // dashboard: reads the timeline, the incidents and the consumers; writes nothing.
    let dashboard = server.connect("dashboard").await;
    let timeline: Vec<String> = dashboard
        .replay("dbtops.>")
        .await
        .unwrap()
        .into_iter()
        .map(|message| message.subject)
        .collect();
    for subject in [
        "dbtops.run.submitted",
        "dbtops.failure.detected",
        "dbtops.fix.proposed",
        "dbtops.fix.validated",
        "dbtops.mr.opened",
    ] {
        assert!(timeline.iter().any(|s| s == subject), "{timeline:?}");
    }
    let incidents = dashboard.incidents().await.unwrap().list().await.unwrap();
    assert_eq!(incidents.len(), 1);
    let info = dashboard
        .jetstream()
        .get_consumer_from_stream::<pull::Config, _, _>("validator", "DBTOPS")
        .await
        .unwrap();
    assert_eq!(info.cached_info().name, "validator");
    let error = dashboard
        .publish(
            "dbtops.mr.opened",
            "forged.opened",
            &v1::MergeRequestOpened::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Permissions Violation"), "{error}");

    let _ = stop_tx.send(true);
    for service in services {
        service.await.unwrap().unwrap();
    }
    assert!(detector.consumers().is_empty());
    assert!(
        !server.log().contains("Permissions Violation")
            || server
                .log()
                .lines()
                .filter(|line| line.contains("Permissions Violation"))
                .all(|line| line.contains("dashboard")),
        "a service was refused something its job needs:\n{}",
        server.log()
    );
}

#[test]
fn the_shipped_single_node_config_with_users_is_valid_and_needs_every_password() {
    let check = |skip: Option<&str>| {
        let config = shipped_auth_conf().with_file_name("dbt-ops-auth.conf");
        let mut command = Command::new(dbtops_bus::server::find_nats_server().unwrap());
        command.arg("-c").arg(config).arg("-t");
        for user in USERS.iter().filter(|user| Some(**user) != skip) {
            command.env(
                format!("DBTOPS_{}_PASSWORD", user.to_uppercase()),
                password(user),
            );
        }
        if let Some(user) = skip {
            command.env_remove(format!("DBTOPS_{}_PASSWORD", user.to_uppercase()));
        }
        command.output().unwrap()
    };
    let valid = check(None);
    assert!(
        valid.status.success(),
        "{}",
        String::from_utf8_lossy(&valid.stderr)
    );
    let missing = check(Some("fixer"));
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(error.contains("DBTOPS_FIXER_PASSWORD"), "{error}");
}

#[tokio::test]
async fn short_lived_readers_cannot_take_over_a_services_durable() {
    let server = AuthServer::start();
    let admin = server.connect("admin").await;
    let fixer = server.connect("fixer").await;
    // The fixer's durable, as its consumer loop creates it.
    let (stop_tx, stop_rx) = watch::channel(false);
    let loop_task = tokio::spawn(run_consumer(
        fixer.clone(),
        ConsumerSpec {
            service: "fixer",
            durable: "fixer".into(),
            filter_subjects: vec![fixer.subjects().failure_detected()],
            concurrency: 1,
        },
        |_| async { Outcome::Done },
        stopped(&stop_rx),
    ));
    wait_bound(&fixer, &["fixer"]).await;

    // Delivery may create named readers of dbtops.fix.validated, but not one named like
    // the fixer's durable (which would rewrite its filter); the dashboard neither.
    for user in ["delivery", "dashboard"] {
        let bus = server.connect(user).await;
        let mut jetstream = async_nats::jetstream::new(bus.client().clone());
        // A refused request is only a timeout to the client: keep it short.
        jetstream.set_timeout(Duration::from_millis(500));
        let takeover = jetstream
            .create_consumer_on_stream(
                pull::Config {
                    name: Some("fixer".into()),
                    filter_subject: "dbtops.fix.validated".into(),
                    ..Default::default()
                },
                "DBTOPS",
            )
            .await;
        assert!(takeover.is_err(), "{user} rewrote the fixer's durable");
        let subject = "$JS.API.CONSUMER.CREATE.DBTOPS.fixer.dbtops.fix.validated";
        assert!(
            server.log().contains(&format!(
                "\"$G/user:dbtops-{user}\" - Publish Violation - Subject \"{subject}\""
            )),
            "{}",
            server.log()
        );
        // Its own kind of reader is fine.
        let replayed = bus.replay("dbtops.fix.validated").await.unwrap();
        assert!(replayed.is_empty());
    }
    let info = admin
        .jetstream()
        .get_consumer_from_stream::<pull::Config, _, _>("fixer", "DBTOPS")
        .await
        .unwrap();
    assert_eq!(
        info.cached_info().config.filter_subjects,
        ["dbtops.failure.detected"]
    );
    let _ = stop_tx.send(true);
    loop_task.await.unwrap().unwrap();
}
