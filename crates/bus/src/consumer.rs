//! The one consumer loop every service runs.
//!
//! A handler is a function from one delivered message to an [`Outcome`]; this loop turns
//! the outcome into JetStream's answer: `Done` → ack (after the handler's effects are
//! durable, which is the handler's job), `Retry` → nak with a delay, or — on the last
//! allowed delivery — a copy to `dbtops.dlq.<service>` and `term`; `Reject` → dead letter
//! and `term` at once (a malformed message will not get better). Every replica of a service
//! binds the same durable consumer, so running more replicas spreads the work. A pull that
//! keeps failing, or finds the consumer gone (deleted, or a server back without it), binds
//! the consumer again with back-off rather than wait on a consumer that no longer exists.
//! A redelivered copy of a message that was answered meanwhile (it waited in the pull's
//! buffer past its ack wait) is dropped, not handled twice.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use dbtops_proto::{v1, WireMessage};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::connection::Bus;
use crate::error::BusError;
use crate::headers::{HeaderCarrier, HeaderReader, DEAD_LETTER_REASON, MESSAGE_ID, MESSAGE_TYPE};

/// What a handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled; its effects are durable. The message is acked.
    Done,
    /// Could not be handled now (a dependency is down, a transient failure): deliver it
    /// again after `after`, until the consumer's `max_deliver` is reached.
    Retry {
        /// Delay before redelivery.
        after: Duration,
        /// Why, for the log and, on the last delivery, the dead letter.
        reason: String,
    },
    /// Can never be handled (malformed, unknown type, refused by a guardrail): copy it to
    /// the dead-letter subject with the reason and stop delivering it.
    Reject {
        /// Why, carried in the dead letter.
        reason: String,
    },
}

impl Outcome {
    /// A retry after `after` with `reason`.
    pub fn retry(after: Duration, reason: impl Into<String>) -> Self {
        Outcome::Retry {
            after,
            reason: reason.into(),
        }
    }

    /// A rejection with `reason`.
    pub fn reject(reason: impl Into<String>) -> Self {
        Outcome::Reject {
            reason: reason.into(),
        }
    }
}

/// One delivered message, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// Its headers (trace context, type, message id).
    pub headers: HeaderMap,
    /// Its payload.
    pub payload: Bytes,
    /// How many times it has been delivered, this one included.
    pub delivered: i64,
    /// Its sequence in the stream.
    pub stream_sequence: u64,
}

impl Delivery {
    /// The `dbtops-type` header.
    pub fn type_name(&self) -> Option<&str> {
        self.headers.get(MESSAGE_TYPE).map(|value| value.as_str())
    }

    /// Decodes the payload as `M`; a mismatch or a malformed payload is a rejection that
    /// the handler can return as it is.
    pub fn decode<M: WireMessage>(&self) -> Result<M, Outcome> {
        decode_payload(self.type_name(), &self.payload).map_err(Outcome::reject)
    }
}

/// Decodes `payload` as `M` after checking the `dbtops-type` header names `M`.
pub(crate) fn decode_payload<M: WireMessage>(
    type_name: Option<&str>,
    payload: &[u8],
) -> Result<M, String> {
    match type_name {
        None => return Err(format!("missing {MESSAGE_TYPE} header")),
        Some(found) if found != M::TYPE_NAME => {
            return Err(format!(
                "unexpected message type {found:?}, expected {}",
                M::TYPE_NAME
            ));
        }
        Some(_) => {}
    }
    M::decode(payload).map_err(|error| format!("malformed {}: {error}", M::TYPE_NAME))
}

/// Which messages a service reads and how.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The service's name: the dead-letter subject's last token and a span attribute.
    pub service: &'static str,
    /// The durable consumer every replica binds.
    pub durable: String,
    /// The subjects it reads.
    pub filter_subjects: Vec<String>,
    /// How many messages one process handles at once.
    pub concurrency: usize,
}

/// What a dead letter carries of the message it copies: the payload as it was, or — for
/// a service whose input may hold secrets — a redacted copy.
pub type DeadLetterPayload = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// Reads `spec`'s subjects until `shutdown` resolves, handing each message to `handler`.
/// On shutdown it stops pulling, lets the handlers in flight finish and answers them, then
/// returns.
pub async fn run_consumer<H, Fut>(
    bus: Bus,
    spec: ConsumerSpec,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let as_it_was: DeadLetterPayload = Arc::new(|payload: &[u8]| payload.to_vec());
    run_consumer_with_dead_letters(bus, spec, as_it_was, handler, shutdown).await
}

/// [`run_consumer`], with `dead_letter_payload` deciding what a dead letter carries of
/// the message (e.g. the detector's artifacts with their secrets redacted).
pub async fn run_consumer_with_dead_letters<H, Fut>(
    bus: Bus,
    spec: ConsumerSpec,
    dead_letter_payload: DeadLetterPayload,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    // Readiness and the lag metrics see this consumer from now until the loop returns.
    let mut binding = bus.track_consumer(&spec.durable);
    let mut consumer = bind_consumer(&bus, &spec).await?;
    binding.bound();
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    // Set when the durable consumer itself may be gone — deleted, or the server came back
    // without it (a lost or replaced store): pulls through the old handle then go nowhere
    // and nothing is ever delivered again, so it is created (or found) again first.
    let mut bind_again = false;
    tokio::pin!(shutdown);

    'pulling: loop {
        if bind_again {
            // Paced: a server that keeps failing is not hammered.
            tokio::select! {
                _ = &mut shutdown => break 'pulling,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
            match bind_consumer(&bus, &spec).await {
                Ok(bound) => {
                    tracing::info!(message = "Consumer bound again.", service = spec.service);
                    consumer = bound;
                    bind_again = false;
                }
                Err(error) => {
                    tracing::warn!(message = "Cannot bind the consumer; retrying.", service = spec.service, %error);
                    continue;
                }
            }
        }
        // Pull no more than we can start now: a message waiting in a local buffer still
        // burns its ack wait.
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(spec.concurrency.max(1))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(message = "Cannot pull; retrying.", service = spec.service, %error);
                tokio::select! {
                    _ = &mut shutdown => break 'pulling,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        // Pull errors since the last message: one may be a blip the stream recovers from
        // on its own; a second in a row means it is not recovering.
        let mut errors_in_a_row = 0;
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break 'pulling,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => break 'pulling,
                },
            };
            let next = tokio::select! {
                _ = &mut shutdown => break 'pulling,
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => {
                    backoff = Duration::from_millis(100);
                    errors_in_a_row = 0;
                    let bus = bus.clone();
                    let spec = spec.clone();
                    let handler = handler.clone();
                    let payload = dead_letter_payload.clone();
                    let bound = consumer.clone();
                    in_flight.spawn(async move {
                        if !is_stale_copy(&bound, &message).await {
                            handle_one(&bus, &spec, &payload, message, handler).await;
                        }
                        drop(permit);
                    });
                }
                Some(Err(error)) => {
                    // Missed heartbeats and server restarts surface here; the stream
                    // itself reconnects, but not to a consumer that no longer exists.
                    tracing::warn!(message = "Pull error.", service = spec.service, %error);
                    errors_in_a_row += 1;
                    if bind_again_after(&error) || errors_in_a_row >= 2 {
                        bind_again = true;
                        break;
                    }
                }
                None => {
                    tracing::warn!(
                        message = "Pull stream ended; binding the consumer again.",
                        service = spec.service
                    );
                    bind_again = true;
                    break;
                }
            }
            // Reap finished handlers so the set does not grow without bound.
            while in_flight.try_join_next().is_some() {}
        }
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!(message = "Consumer stopped.", service = spec.service);
    Ok(())
}

/// True for the pull errors after which the consumer is bound again at once: it is gone
/// (deleted, or a server back without it answers a pull with "no responders"), or the
/// server stopped sending the pull's heartbeats — the stream reconnects by itself, but not
/// to a consumer that no longer exists, and binding again costs one request.
fn bind_again_after(error: &pull::MessagesError) -> bool {
    matches!(
        error.kind(),
        pull::MessagesErrorKind::ConsumerDeleted
            | pull::MessagesErrorKind::NoResponders
            | pull::MessagesErrorKind::MissingHeartbeat
    )
}

/// True for a redelivered copy of a message whose earlier copy has since been answered.
/// async-nats keeps a pull request open while every handler is busy (it pulls again after
/// a reconnect and on its own timer), so a message can wait in the local buffer past its
/// ack wait; the server then delivers it again, and both copies reach the loop one after
/// the other. Handling the second would run the handler twice for one message (dbt
/// twice, in the validator). An acked message is at or below the consumer's ack floor;
/// when the server cannot say, the copy is handled (handlers are idempotent).
async fn is_stale_copy(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    message: &jetstream::Message,
) -> bool {
    let Ok(info) = message.info() else {
        return false;
    };
    if info.delivered < 2 {
        return false;
    }
    let stream_sequence = info.stream_sequence;
    match consumer.get_info().await {
        Ok(state) if state.ack_floor.stream_sequence >= stream_sequence => {
            tracing::info!(
                message = "Redelivered copy of a message already answered; dropped.",
                stream_sequence,
                delivered = info.delivered
            );
            true
        }
        _ => false,
    }
}

async fn bind_consumer(
    bus: &Bus,
    spec: &ConsumerSpec,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
    let settings = bus.settings();
    let stream = bus
        .jetstream()
        .get_stream(&settings.stream)
        .await
        .map_err(|error| BusError::Layout {
            what: format!("stream {}", settings.stream),
            reason: error.to_string(),
        })?;
    let config = pull::Config {
        durable_name: Some(spec.durable.clone()),
        description: Some(format!("dbt-ops {}", spec.service)),
        filter_subjects: spec.filter_subjects.clone(),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(settings.ack_wait_secs),
        max_deliver: settings.max_deliver,
        ..Default::default()
    };
    let mut last_error = String::new();
    // Replicas starting together race to create the same durable; the loser retries.
    for _ in 0..3 {
        match stream.create_consumer(config.clone()).await {
            Ok(consumer) => return Ok(consumer),
            Err(error) => last_error = error.to_string(),
        }
    }
    Err(BusError::Layout {
        what: format!("consumer {}", spec.durable),
        reason: last_error,
    })
}

async fn handle_one<H, Fut>(
    bus: &Bus,
    spec: &ConsumerSpec,
    dead_letter_payload: &DeadLetterPayload,
    message: jetstream::Message,
    handler: Arc<H>,
) where
    H: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let (delivered, stream_sequence) = match message.info() {
        Ok(info) => (info.delivered, info.stream_sequence),
        Err(_) => (1, 0),
    };
    let delivery = Delivery {
        subject: message.subject.to_string(),
        headers: message.headers.clone().unwrap_or_default(),
        payload: message.payload.clone(),
        delivered,
        stream_sequence,
    };
    let span = tracing::info_span!(
        "handle",
        otel.name = %format!("{} {}", spec.service, delivery.subject),
        dbtops.service = spec.service,
        messaging.destination = %delivery.subject,
        messaging.delivery_count = delivered,
    );
    dbtops_telemetry::set_parent_from(&span, &HeaderReader(&delivery.headers));
    let message = Arc::new(message);

    // Long handlers (dbt runs) tell the server they are alive so it does not redeliver.
    let heartbeat = {
        let message = message.clone();
        let every = Duration::from_secs(bus.settings().ack_wait_secs.max(3) / 3);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if message.ack_with(AckKind::Progress).await.is_err() {
                    break;
                }
            }
        })
    };
    // Run the handler in its own task so a panic becomes a retry, not a dead consumer.
    let handled = tokio::spawn({
        let delivery = delivery.clone();
        async move { handler(delivery).await }.instrument(span.clone())
    })
    .await;
    heartbeat.abort();
    let outcome = handled.unwrap_or_else(|error| {
        Outcome::retry(Duration::from_secs(5), format!("handler panicked: {error}"))
    });

    let answered = async {
        match outcome {
            Outcome::Done => message
                .double_ack()
                .await
                .map_err(|error| format!("ack failed: {error}")),
            Outcome::Retry { after, reason } if delivered < bus.settings().max_deliver => {
                tracing::warn!(message = "Handling failed; will retry.", %reason, delivered, service = spec.service);
                message
                    .ack_with(AckKind::Nak(Some(after)))
                    .await
                    .map_err(|error| format!("nak failed: {error}"))
            }
            Outcome::Retry { reason, .. } => {
                let reason = format!("gave up after {delivered} deliveries: {reason}");
                dead_letter(bus, spec, dead_letter_payload, &delivery, &message, &reason).await
            }
            Outcome::Reject { reason } => {
                dead_letter(bus, spec, dead_letter_payload, &delivery, &message, &reason).await
            }
        }
    }
    .instrument(span)
    .await;
    if let Err(error) = answered {
        // The server will redeliver after the ack wait; handlers are idempotent.
        tracing::warn!(message = "Could not answer the server.", %error, service = spec.service);
    }
}

/// Copies the message to `dbtops.dlq.<service>` with the reason, then terms it. If the
/// copy cannot be stored the message is nak'ed instead, so nothing is lost.
async fn dead_letter(
    bus: &Bus,
    spec: &ConsumerSpec,
    dead_letter_payload: &DeadLetterPayload,
    delivery: &Delivery,
    message: &jetstream::Message,
    reason: &str,
) -> Result<(), String> {
    tracing::error!(message = "Dead-lettering.", service = spec.service, subject = %delivery.subject, %reason);
    let letter = v1::DeadLetter {
        service: spec.service.to_owned(),
        original_subject: delivery.subject.clone(),
        reason: reason.to_owned(),
        payload: dead_letter_payload(&delivery.payload),
        deliveries: delivery.delivered.max(0) as u64,
    };
    let mut headers = HeaderMap::new();
    dbtops_telemetry::inject_current_context(&mut HeaderCarrier(&mut headers));
    headers.insert(MESSAGE_TYPE, <v1::DeadLetter as WireMessage>::TYPE_NAME);
    // Header values cannot hold line breaks.
    let one_line: String = reason
        .chars()
        .take(500)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    headers.insert(DEAD_LETTER_REASON, one_line.as_str());
    headers.insert(
        MESSAGE_ID,
        format!("dlq.{}.{}", spec.service, delivery.stream_sequence).as_str(),
    );
    let subject = bus.subjects().dead_letter(spec.service);
    match bus
        .publish_raw(
            &subject,
            headers,
            Bytes::from(prost::Message::encode_to_vec(&letter)),
        )
        .await
    {
        Ok(_) => message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(|error| format!("term failed: {error}")),
        Err(error) => {
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            Err(format!("dead letter not stored, nak'ed instead: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_checks_the_type_header() {
        let message = v1::RunProcessed {
            submission_id: "s".into(),
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&message);
        let decoded: v1::RunProcessed =
            decode_payload(Some("dbtops.v1.RunProcessed"), &bytes).unwrap();
        assert_eq!(decoded, message);
        let wrong =
            decode_payload::<v1::RunProcessed>(Some("dbtops.v1.FixProposed"), &bytes).unwrap_err();
        assert!(wrong.contains("unexpected message type"), "{wrong}");
        let missing = decode_payload::<v1::RunProcessed>(None, &bytes).unwrap_err();
        assert!(missing.contains("missing"), "{missing}");
        let garbage = decode_payload::<v1::FailureDetected>(
            Some("dbtops.v1.FailureDetected"),
            b"\xff\xff\xff",
        )
        .unwrap_err();
        assert!(garbage.contains("malformed"), "{garbage}");
    }
}
