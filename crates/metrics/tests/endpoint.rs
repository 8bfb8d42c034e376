//! The metrics endpoint against a real `nats-server -js` on a free loopback port.

use std::time::{Duration, Instant};

use dbtops_bus::{Bus, NatsServer};
use dbtops_proto::v1;
use dbtops_settings::NatsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    assert_eq!(get(address, "/readyz").await.0, 200);

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
    server.stop();
    let (code, body) = get_until(address, "/readyz", |code, _| code == 503).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(get(address, "/healthz").await.0, 200);
}
