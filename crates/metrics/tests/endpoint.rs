//! The metrics endpoint against a real `nats-server -js` on a free loopback port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbtops_bus::{run_consumer, Bus, ConsumerSpec, NatsServer, Outcome};
use dbtops_metrics::MetricsOptions;
use dbtops_proto::v1;
use dbtops_settings::NatsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, Semaphore};

const WAIT: Duration = Duration::from_secs(20);

/// A plain HTTP/1.1 GET: (status code, body).
async fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
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

/// Polls `path` until `accept` holds or the deadline passes; returns the last answer.
async fn get_until(
    address: std::net::SocketAddr,
    path: &str,
    accept: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = get(address, path).await;
        if accept(code, &body) || Instant::now() > deadline {
            return (code, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_published_events_and_readyz_follows_the_connection() {
    let store = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(store.path()).unwrap();
    let settings = NatsSettings {
        url: server.url(),
        ..Default::default()
    };
    let bus = Bus::connect(&settings).await.unwrap();
    assert!(dbtops_metrics::start(&bus, "").await.unwrap().is_none());
    let metrics = dbtops_metrics::start(&bus, "127.0.0.1:0")
        .await
        .unwrap()
        .unwrap();
    let address = metrics.address;
    assert_eq!(get(address, "/healthz").await.0, 200);
    // Connected, but reading nothing yet: not ready.
    let (code, body) = get(address, "/readyz").await;
    assert_eq!(
        (code, body.as_str()),
        (503, "no durable consumer is bound yet\n")
    );
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let consumer = tokio::spawn(run_consumer(
        bus.clone(),
        ConsumerSpec {
            service: "fixer",
            durable: "fixer".into(),
            filter_subjects: vec![bus.subjects().failure_detected()],
            concurrency: 1,
        },
        |_| async { Outcome::Done },
        async {
            let _ = stop_rx.await;
        },
    ));
    let (code, body) = get_until(address, "/readyz", |code, _| code == 200).await;
    assert_eq!(code, 200, "{body}");

    // Published until counted: the observer's subscription starts in the background.
    let mut error = v1::FailureError::default();
    error.set_class(v1::ErrorClass::MissingColumn);
    let abandoned = v1::IncidentAbandoned {
        incident_id: "i1".into(),
        reason: "needs_human".into(),
        ..Default::default()
    };
    let deadline = Instant::now() + WAIT;
    let mut sent = 0;
    while metrics
        .metrics
        .registry
        .value("dbtops_dlq_total", &["fixer"])
        == 0.0
    {
        assert!(Instant::now() < deadline, "the observer never counted");
        bus.publish(
            &bus.subjects().dead_letter("fixer"),
            &format!("dlq-{sent}"),
            &v1::DeadLetter::default(),
        )
        .await
        .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bus.publish(
        &bus.subjects().failure_detected(),
        "i1.detected.0",
        &v1::FailureDetected {
            incident_id: "i1".into(),
            error: Some(error),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    bus.publish(
        &bus.subjects().incident_abandoned(),
        "i1.abandoned.0",
        &abandoned,
    )
    .await
    .unwrap();
    let class = v1::ErrorClass::MissingColumn.label();
    let expected = format!("dbtops_incidents_total{{class=\"{class}\",outcome=\"abandoned\"}} 1");
    let (code, text) = get_until(address, "/metrics", |_, body| {
        body.lines().any(|line| line == expected)
    })
    .await;
    assert_eq!(code, 200);
    assert!(text.lines().any(|line| line == expected), "{text}");
    assert!(
        text.contains("# TYPE dbtops_time_to_mr_seconds histogram"),
        "{text}"
    );

    // Without NATS the process is alive but not ready.
    let _ = stop_tx.send(());
    consumer.await.unwrap().unwrap();
    let (code, body) = get(address, "/readyz").await;
    assert_eq!(
        (code, body.as_str()),
        (503, "no durable consumer is bound yet\n")
    );
    server.stop();
    let (code, body) = get_until(address, "/readyz", |code, _| code == 503).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(get(address, "/healthz").await.0, 200);
}

/// The value of the series `name{consumer="<durable>"}` on the page, if present.
fn series(page: &str, name: &str, durable: &str) -> Option<f64> {
    let prefix = format!("{name}{{consumer=\"{durable}\"}} ");
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn consumer_lag_is_reported_and_readyz_waits_for_the_consumer_to_be_bound() {
    const PENDING: &str = "dbtops_consumer_pending_messages";
    const ACK_PENDING: &str = "dbtops_consumer_ack_pending_messages";
    let store = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(store.path()).unwrap();
    let bus = Bus::connect(&NatsSettings {
        url: server.url(),
        ..Default::default()
    })
    .await
    .unwrap();
    let metrics = dbtops_metrics::start_with(
        &bus,
        "127.0.0.1:0",
        MetricsOptions {
            consumers: vec!["fixer".into()],
            lag_interval: Duration::from_millis(100),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let address = metrics.address;
    let spec = ConsumerSpec {
        service: "fixer",
        durable: "fixer".into(),
        filter_subjects: vec![bus.subjects().failure_detected()],
        concurrency: 1,
    };

    // Before the consumer exists: not ready, and no lag series.
    let (code, body) = get(address, "/readyz").await;
    assert_eq!(
        (code, body.as_str()),
        (503, "consumer fixer is not bound\n")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, page) = get(address, "/metrics").await;
    assert!(page.contains(&format!("# TYPE {PENDING} gauge")), "{page}");
    assert_eq!(series(&page, PENDING, "fixer"), None, "{page}");

    // The durable exists (a first run bound it), but nothing reads it now.
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let first = tokio::spawn(run_consumer(
        bus.clone(),
        spec.clone(),
        |_| async { Outcome::Done },
        async {
            let _ = stop_rx.await;
        },
    ));
    get_until(address, "/readyz", |code, _| code == 200).await;
    let _ = stop_tx.send(());
    first.await.unwrap().unwrap();
    let (code, _) = get(address, "/readyz").await;
    assert_eq!(code, 503);

    // N messages published with no consumer running: N pending.
    const N: usize = 5;
    for n in 0..N {
        bus.publish(
            &bus.subjects().failure_detected(),
            &format!("i{n}.detected.0"),
            &v1::FailureDetected {
                incident_id: format!("i{n}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let (_, page) = get_until(address, "/metrics", |_, page| {
        series(page, PENDING, "fixer") == Some(N as f64)
    })
    .await;
    assert_eq!(series(&page, PENDING, "fixer"), Some(N as f64), "{page}");
    assert_eq!(series(&page, ACK_PENDING, "fixer"), Some(0.0), "{page}");

    // A consumer holding its first message: one awaiting its ack, the rest pending; ready.
    let gate = Arc::new(Semaphore::new(0));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let second = tokio::spawn(run_consumer(
        bus.clone(),
        spec.clone(),
        {
            let gate = gate.clone();
            move |_| {
                let gate = gate.clone();
                async move {
                    if let Ok(permit) = gate.acquire().await {
                        permit.forget();
                    }
                    Outcome::Done
                }
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let (_, page) = get_until(address, "/metrics", |_, page| {
        series(page, ACK_PENDING, "fixer") == Some(1.0)
            && series(page, PENDING, "fixer") == Some((N - 1) as f64)
    })
    .await;
    assert_eq!(series(&page, ACK_PENDING, "fixer"), Some(1.0), "{page}");
    assert_eq!(
        series(&page, PENDING, "fixer"),
        Some((N - 1) as f64),
        "{page}"
    );
    assert_eq!(get(address, "/readyz").await.0, 200);

    // Let it work through the backlog: nothing waits any more.
    gate.add_permits(N);
    let (_, page) = get_until(address, "/metrics", |_, page| {
        series(page, PENDING, "fixer") == Some(0.0)
            && series(page, ACK_PENDING, "fixer") == Some(0.0)
    })
    .await;
    assert_eq!(series(&page, PENDING, "fixer"), Some(0.0), "{page}");
    assert_eq!(series(&page, ACK_PENDING, "fixer"), Some(0.0), "{page}");

    // NATS gone: not ready, and the series goes rather than go stale.
    server.stop();
    let (code, body) = get_until(address, "/readyz", |code, _| code == 503).await;
    assert_eq!(code, 503);
    assert!(body.starts_with("NATS is not connected"), "{body}");
    let (_, page) = get_until(address, "/metrics", |_, page| {
        series(page, PENDING, "fixer").is_none()
    })
    .await;
    assert_eq!(series(&page, PENDING, "fixer"), None, "{page}");
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(WAIT, second).await;
}
