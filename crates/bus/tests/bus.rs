//! The bus against a real `nats-server -js` on a free loopback port with a temp store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_bus::{run_consumer, Bus, ConsumerSpec, Delivery, NatsServer, Outcome};
use dbtops_proto::v1;
use dbtops_settings::NatsSettings;
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(20);

async fn start() -> (NatsServer, Bus, tempfile::TempDir) {
    let store = tempfile::tempdir().unwrap();
    let server = NatsServer::start(store.path()).unwrap();
    let settings = NatsSettings {
        url: server.url(),
        max_deliver: 3,
        ack_wait_secs: 5,
        ..Default::default()
    };
    let bus = Bus::connect(&settings).await.unwrap();
    (server, bus, store)
}

fn processed(id: &str) -> v1::RunProcessed {
    v1::RunProcessed {
        submission_id: id.into(),
        ..Default::default()
    }
}

fn spec(durable: &str, subject: String) -> ConsumerSpec {
    ConsumerSpec {
        service: "tester",
        durable: durable.into(),
        filter_subjects: vec![subject],
        concurrency: 2,
    }
}

#[tokio::test]
async fn a_repeated_message_id_is_stored_once() {
    let (_server, bus, _store) = start().await;
    let subject = bus.subjects().run_processed();
    let first = bus
        .publish(&subject, "same-id", &processed("a"))
        .await
        .unwrap();
    let second = bus
        .publish(&subject, "same-id", &processed("a"))
        .await
        .unwrap();
    let other = bus
        .publish(&subject, "other-id", &processed("b"))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(second.sequence, first.sequence);
    assert!(!other.duplicate);
    let stored = bus.replay(&subject).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].decode::<v1::RunProcessed>().unwrap(),
        processed("a")
    );
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_and_the_next_good_one_is_handled() {
    let (_server, bus, _store) = start().await;
    let subject = bus.subjects().run_processed();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<String>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let consumer = tokio::spawn(run_consumer(
        bus.clone(),
        spec("tester", subject.clone()),
        move |delivery: Delivery| {
            let seen_tx = seen_tx.clone();
            async move {
                match delivery.decode::<v1::RunProcessed>() {
                    Ok(message) => {
                        seen_tx.send(message.submission_id).unwrap();
                        Outcome::Done
                    }
                    Err(rejection) => rejection,
                }
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));

    let mut headers = async_nats::HeaderMap::new();
    headers.insert(MESSAGE_TYPE, "dbtops.v1.RunProcessed");
    bus.publish_raw(
        &subject,
        headers,
        bytes::Bytes::from_static(b"\xff\xfe garbage"),
    )
    .await
    .unwrap();
    bus.publish_raw(
        &subject,
        async_nats::HeaderMap::new(),
        bytes::Bytes::from_static(b"no type"),
    )
    .await
    .unwrap();
    bus.publish(&subject, "good", &processed("good"))
        .await
        .unwrap();

    let seen = tokio::time::timeout(WAIT, seen_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, "good");

    let dlq = bus.subjects().dead_letter("tester");
    let letters = wait_for_messages(&bus, &dlq, 2).await;
    let reasons: Vec<String> = letters
        .iter()
        .map(|letter| letter.decode::<v1::DeadLetter>().unwrap().reason)
        .collect();
    assert!(reasons[0].contains("malformed"), "{reasons:?}");
    assert!(reasons[1].contains("missing dbtops-type"), "{reasons:?}");
    let first = letters[0].decode::<v1::DeadLetter>().unwrap();
    assert_eq!(first.original_subject, subject);
    assert_eq!(first.payload, b"\xff\xfe garbage");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, consumer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn retries_end_in_the_dead_letter_subject_after_max_deliver() {
    let (_server, bus, _store) = start().await;
    let subject = bus.subjects().run_processed();
    let attempts = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let consumer = tokio::spawn(run_consumer(
        bus.clone(),
        spec("tester", subject.clone()),
        {
            let attempts = attempts.clone();
            move |_delivery: Delivery| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Outcome::retry(Duration::from_millis(50), "dependency down") }
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    bus.publish(&subject, "flaky", &processed("flaky"))
        .await
        .unwrap();
    let letters = wait_for_messages(&bus, &bus.subjects().dead_letter("tester"), 1).await;
    let letter = letters[0].decode::<v1::DeadLetter>().unwrap();
    assert!(
        letter.reason.contains("gave up after 3 deliveries"),
        "{}",
        letter.reason
    );
    assert!(letter.reason.contains("dependency down"));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, consumer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn replicas_on_one_durable_share_the_work_and_each_message_is_handled_once() {
    let (_server, bus, _store) = start().await;
    let subject = bus.subjects().run_processed();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut stops = Vec::new();
    let mut replicas = Vec::new();
    for replica in 0..3 {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stops.push(stop_tx);
        let seen_tx = seen_tx.clone();
        replicas.push(tokio::spawn(run_consumer(
            bus.clone(),
            spec("shared", subject.clone()),
            move |delivery: Delivery| {
                let seen_tx = seen_tx.clone();
                async move {
                    let message = delivery.decode::<v1::RunProcessed>().unwrap();
                    // Hold the message a little so the others get some.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    seen_tx.send((replica, message.submission_id)).unwrap();
                    Outcome::Done
                }
            },
            async {
                let _ = stop_rx.await;
            },
        )));
    }
    for i in 0..60 {
        bus.publish(&subject, &format!("m{i}"), &processed(&format!("m{i}")))
            .await
            .unwrap();
    }
    let mut by_message: HashMap<String, usize> = HashMap::new();
    let mut by_replica: HashMap<usize, usize> = HashMap::new();
    for _ in 0..60 {
        let (replica, id) = tokio::time::timeout(WAIT, seen_rx.recv())
            .await
            .unwrap()
            .unwrap();
        *by_message.entry(id).or_default() += 1;
        *by_replica.entry(replica).or_default() += 1;
    }
    for stop in stops {
        stop.send(()).unwrap();
    }
    for replica in replicas {
        tokio::time::timeout(WAIT, replica)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    assert_eq!(by_message.len(), 60);
    assert!(
        by_message.values().all(|count| *count == 1),
        "{by_message:?}"
    );
    assert!(
        by_replica.len() >= 2,
        "work went to one replica only: {by_replica:?}"
    );
    // Nothing left over for a late duplicate.
    assert!(seen_rx.try_recv().is_err());
}

#[tokio::test]
async fn shutdown_lets_the_message_in_flight_finish_and_acks_it() {
    let (_server, bus, _store) = start().await;
    let subject = bus.subjects().run_processed();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<()>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let consumer = tokio::spawn(run_consumer(
        bus.clone(),
        spec("slow", subject.clone()),
        move |_delivery: Delivery| {
            let started_tx = started_tx.clone();
            let finished_tx = finished_tx.clone();
            async move {
                started_tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished_tx.send(()).unwrap();
                Outcome::Done
            }
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    bus.publish(&subject, "slow", &processed("slow"))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(WAIT, consumer)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(finished_rx.try_recv().is_ok(), "the handler was cut off");
    let consumer_info = bus
        .jetstream()
        .get_stream("DBTOPS")
        .await
        .unwrap()
        .consumer_info("slow")
        .await
        .unwrap();
    assert_eq!(consumer_info.num_ack_pending, 0);
    assert_eq!(consumer_info.num_pending, 0);
}

#[tokio::test]
async fn layout_set_up_is_idempotent_across_replicas_starting_together() {
    let (server, _bus, _store) = start().await;
    let settings = NatsSettings {
        url: server.url(),
        ..Default::default()
    };
    let connects = (0..4).map(|_| Bus::connect(&settings));
    for bus in futures::future::join_all(connects).await {
        bus.unwrap();
    }
}

async fn wait_for_messages(
    bus: &Bus,
    subject: &str,
    count: usize,
) -> Vec<dbtops_bus::StoredMessage> {
    // The dead letters are in the stream: read them as a dashboard would, with a live
    // subscription after the stored ones.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut subscription = bus.client().subscribe(subject.to_owned()).await.unwrap();
    loop {
        let stored = bus.replay(subject).await.unwrap();
        if stored.len() >= count {
            return stored;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(
            !remaining.is_zero(),
            "only {} of {count} messages on {subject}",
            stored.len()
        );
        // Wake on the next publish rather than polling blindly.
        let _ = tokio::time::timeout(remaining, futures::StreamExt::next(&mut subscription)).await;
    }
}
