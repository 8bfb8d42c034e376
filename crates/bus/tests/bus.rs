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

/// A record at `generation` for the incident `id`, as the detector writes it.
fn record_at(id: &str, generation: u32) -> dbtops_bus::IncidentRecord {
    dbtops_bus::IncidentRecord {
        incident_id: id.into(),
        project: "coffee_shop".into(),
        unique_id: "model.coffee_shop.stg_orders".into(),
        model: "stg_orders".into(),
        model_path: "models/staging/stg_orders.sql".into(),
        class: "missing_column".into(),
        state: dbtops_bus::IncidentState::Detected,
        generation,
        attempts: 0,
        branch: None,
        url: None,
        reason: None,
        detail: None,
        recurrences: 0,
        first_seen: String::new(),
        last_seen: String::new(),
        updated_at: String::new(),
        trace_id: None,
        last_submission_id: String::new(),
        delivered_repo: None,
    }
}

fn incident_at(id: &str, generation: u32) -> v1::FailureDetected {
    v1::FailureDetected {
        incident_id: id.into(),
        generation,
        ..Default::default()
    }
}

#[tokio::test]
async fn an_event_of_an_earlier_generation_neither_moves_the_incident_nor_ends_it() {
    let (_server, bus, _dir) = start().await;
    let store = bus.incidents().await.unwrap();
    assert!(store.create(&record_at("inc1", 1)).await.unwrap());

    // Generation 0's events: reported stale, and they change nothing.
    let stale = incident_at("inc1", 0);
    assert_eq!(
        dbtops_bus::superseded_by(&bus, &stale).await.unwrap(),
        Some(1)
    );
    assert!(dbtops_bus::skip_superseded(&bus, &stale).await.is_some());
    let moved = dbtops_bus::advance_incident(
        &bus,
        &stale,
        dbtops_bus::IncidentState::MrOpened,
        |record| record.branch = Some("dbt-ops/fix/old".into()),
    )
    .await
    .unwrap();
    assert!(!moved);
    dbtops_bus::abandon_incident(&bus, &stale, "guardrail", "old checkout", 1)
        .await
        .unwrap();
    let record = store.get("inc1").await.unwrap().unwrap();
    assert_eq!(record.state, dbtops_bus::IncidentState::Detected);
    assert_eq!(record.branch, None);
    assert_eq!(record.reason, None);

    // The current generation's events do move it.
    let current = incident_at("inc1", 1);
    assert_eq!(
        dbtops_bus::superseded_by(&bus, &current).await.unwrap(),
        None
    );
    assert!(dbtops_bus::skip_superseded(&bus, &current).await.is_none());
    assert!(dbtops_bus::advance_incident(
        &bus,
        &current,
        dbtops_bus::IncidentState::Fixing,
        |_| {}
    )
    .await
    .unwrap());
    dbtops_bus::abandon_incident(&bus, &current, "no_fix_found", "none", 1)
        .await
        .unwrap();
    let record = store.get("inc1").await.unwrap().unwrap();
    assert_eq!(record.state, dbtops_bus::IncidentState::Abandoned);
    assert_eq!(record.reason.as_deref(), Some("no_fix_found"));

    // An incident nobody recorded is not stale: its events go on.
    assert_eq!(
        dbtops_bus::superseded_by(&bus, &incident_at("unknown", 0))
            .await
            .unwrap(),
        None
    );
}

/// The CI failure of 2026-11-25: the validator's `delivering` (its first write lost in a
/// node failover, retried) landed after delivery's `mr_opened`, and the incident showed
/// "still delivering" for ever.
#[tokio::test]
async fn a_late_event_does_not_move_an_ended_incident_back() {
    let (_server, bus, _dir) = start().await;
    let store = bus.incidents().await.unwrap();
    assert!(store.create(&record_at("inc2", 0)).await.unwrap());
    let incident = incident_at("inc2", 0);
    let state = || async { store.get("inc2").await.unwrap().unwrap() };

    // Work in progress moves back and forth (a compile failure goes back to fixing).
    for step in [
        dbtops_bus::IncidentState::Fixing,
        dbtops_bus::IncidentState::Validating,
        dbtops_bus::IncidentState::Fixing,
        dbtops_bus::IncidentState::Validating,
    ] {
        assert!(dbtops_bus::advance_incident(&bus, &incident, step, |_| {})
            .await
            .unwrap());
        assert_eq!(state().await.state, step);
    }
    assert!(dbtops_bus::skip_superseded(&bus, &incident).await.is_none());
    assert!(dbtops_bus::advance_incident(
        &bus,
        &incident,
        dbtops_bus::IncidentState::MrOpened,
        |record| record.branch = Some("dbt-ops/fix/stg_orders/inc2".into()),
    )
    .await
    .unwrap());

    // Late: the validator's `delivering`, a fixer's `fixing`, an abandonment.
    for late in [
        dbtops_bus::IncidentState::Delivering,
        dbtops_bus::IncidentState::Fixing,
        dbtops_bus::IncidentState::Detected,
    ] {
        assert!(
            !dbtops_bus::advance_incident(&bus, &incident, late, |record| { record.attempts = 99 })
                .await
                .unwrap()
        );
    }
    dbtops_bus::abandon_incident(&bus, &incident, "attempts_exhausted", "late", 3)
        .await
        .unwrap();
    let record = state().await;
    assert_eq!(record.state, dbtops_bus::IncidentState::MrOpened);
    assert_eq!(record.attempts, 0);
    assert_eq!(record.reason, None);
    assert_eq!(
        record.branch.as_deref(),
        Some("dbt-ops/fix/stg_orders/inc2")
    );
    // No abandonment was announced for it.
    let abandoned = bus
        .replay(&bus.subjects().incident_abandoned())
        .await
        .unwrap();
    assert!(abandoned.is_empty(), "{} announced", abandoned.len());
    // Handlers drop the late events; the human's verdict still lands.
    assert!(matches!(
        dbtops_bus::skip_superseded(&bus, &incident).await,
        Some(dbtops_bus::Outcome::Done)
    ));
    assert!(dbtops_bus::advance_incident(
        &bus,
        &incident,
        dbtops_bus::IncidentState::Merged,
        |_| {}
    )
    .await
    .unwrap());
    assert_eq!(state().await.state, dbtops_bus::IncidentState::Merged);

    // An abandoned incident is not picked up again in the same generation either.
    assert!(store.create(&record_at("inc3", 0)).await.unwrap());
    let other = incident_at("inc3", 0);
    dbtops_bus::abandon_incident(&bus, &other, "no_fix_found", "none", 1)
        .await
        .unwrap();
    assert!(!dbtops_bus::advance_incident(
        &bus,
        &other,
        dbtops_bus::IncidentState::Validating,
        |_| {}
    )
    .await
    .unwrap());
    assert_eq!(
        store.get("inc3").await.unwrap().unwrap().state,
        dbtops_bus::IncidentState::Abandoned
    );
}

#[tokio::test]
async fn waiting_for_a_submission_survives_a_server_restart() {
    let (mut server, bus, _dir) = start().await;
    let store = bus.incidents().await.unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .wait_for_submission("sub-restart", Duration::from_secs(60))
                .await
        })
    };
    // The watch is open when the server goes away, and comes back on the same port and
    // store; only then is the record written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart().unwrap();
    let record = dbtops_bus::SubmissionRecord {
        submission_id: "sub-restart".into(),
        new_incident_ids: vec!["inc-1".into()],
        recurring_incident_ids: Vec::new(),
        notes: Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.put_submission(&record).await {
            Ok(()) => break,
            Err(error) if tokio::time::Instant::now() < deadline => {
                eprintln!("put after restart: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the store never came back: {error}"),
        }
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the wait ends")
        .unwrap()
        .expect("no error after the restart")
        .expect("the record written after the restart is seen");
    assert_eq!(seen.new_incident_ids, ["inc-1"]);
}

/// An update starts from the record this process saw last (saving a read), so a record
/// another process changed since must still be read before anything is decided: the change
/// lands on the newer record, and a stale guess never declines an update.
#[tokio::test]
async fn an_update_after_another_process_wrote_applies_to_the_newer_record() {
    let (server, bus, _dir) = start().await;
    let other = Bus::connect(bus.settings()).await.unwrap();
    let ours = bus.incidents().await.unwrap();
    let theirs = other.incidents().await.unwrap();
    assert!(ours.create(&record_at("inc3", 0)).await.unwrap());
    // We read (and so guess) generation 0, detected.
    assert!(dbtops_bus::skip_superseded(&bus, &incident_at("inc3", 0))
        .await
        .is_none());
    // The other process reopens the incident: generation 1, with a detail.
    theirs
        .update("inc3", |record| {
            record.generation = 1;
            record.detail = Some("reopened".into());
        })
        .await
        .unwrap()
        .unwrap();
    // Our plain update keeps their change.
    let updated = ours
        .update("inc3", |record| record.attempts += 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.generation, 1);
    assert_eq!(updated.detail.as_deref(), Some("reopened"));
    assert_eq!(updated.attempts, 1);
    // They move on again; our guess (generation 1, detected) is stale but would accept.
    theirs
        .update("inc3", |record| record.attempts = 7)
        .await
        .unwrap()
        .unwrap();
    assert!(dbtops_bus::advance_incident(
        &bus,
        &incident_at("inc3", 1),
        dbtops_bus::IncidentState::Fixing,
        |_| {}
    )
    .await
    .unwrap());
    let record = theirs.get("inc3").await.unwrap().unwrap();
    assert_eq!(record.attempts, 7);
    assert_eq!(record.state, dbtops_bus::IncidentState::Fixing);
    // A stale guess that would decline: we saw generation 1; they reopen to 2. An event of
    // generation 2 must still move the incident.
    theirs
        .update("inc3", |record| {
            record.generation = 2;
            record.state = dbtops_bus::IncidentState::Detected;
        })
        .await
        .unwrap()
        .unwrap();
    assert!(dbtops_bus::advance_incident(
        &bus,
        &incident_at("inc3", 2),
        dbtops_bus::IncidentState::Fixing,
        |_| {}
    )
    .await
    .unwrap());
    assert_eq!(
        theirs.get("inc3").await.unwrap().unwrap().state,
        dbtops_bus::IncidentState::Fixing
    );
    drop(other);
    drop(server);
}

/// A publish that no stream answers (JetStream's "no responders", as while a replicated
/// stream elects its leader) is tried again for a while: a stream that appears 300 ms
/// later stores it, once; one that never appears is reported.
#[tokio::test]
async fn a_publish_no_stream_answers_yet_is_stored_once_the_stream_is_there() {
    let (_server, bus, _store) = start().await;
    let jetstream = async_nats::jetstream::new(bus.client().clone());
    let creator = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: "LATE".into(),
                subjects: vec!["late.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let published = bus
        .publish("late.run", "late-1", &processed("late"))
        .await
        .unwrap();
    creator.await.unwrap();
    assert!(!published.duplicate);
    assert_eq!(published.sequence, 1);

    let started = std::time::Instant::now();
    let error = bus
        .publish("never.run", "never-1", &processed("never"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no stream found"), "{error}");
    // Retried before it was reported, not refused at once.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
