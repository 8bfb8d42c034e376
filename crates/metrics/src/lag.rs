//! Consumer lag: each durable consumer's backlog, read from the server periodically
//! (`$JS.API.CONSUMER.INFO.<stream>.<durable>`, which each service's NATS user may ask
//! about its own consumers only).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use dbtops_bus::Bus;

use crate::observer::Metrics;
use crate::registry::Registry;

/// Messages in the stream that match the consumer's filter and were not delivered yet.
pub const PENDING: &str = "dbtops_consumer_pending_messages";
/// Messages delivered to the consumer and not acknowledged yet (being handled, or lost
/// with a crashed handler until the ack wait passes).
pub const ACK_PENDING: &str = "dbtops_consumer_ack_pending_messages";

/// Declares the lag gauges in `registry`.
pub fn declare(registry: &Registry) {
    registry.gauge(
        PENDING,
        "Messages waiting for a durable consumer: stored, matching its filter, not yet delivered (JetStream num_pending).",
        &["consumer"],
    );
    registry.gauge(
        ACK_PENDING,
        "Messages delivered to a durable consumer and not yet acknowledged (JetStream num_ack_pending).",
        &["consumer"],
    );
}

/// Reads the lag of `watched` and of every consumer `bus` reads, every `every`, until the
/// task is aborted. A consumer the server does not know (any more) loses its series
/// rather than keep a stale value.
pub async fn poll(bus: Bus, watched: Vec<String>, every: Duration, metrics: Arc<Metrics>) {
    let stream = bus.settings().stream.clone();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut durables: BTreeSet<String> = watched.iter().cloned().collect();
        durables.extend(bus.consumers().into_iter().map(|state| state.durable));
        for durable in &durables {
            let info = bus
                .jetstream()
                .get_consumer_from_stream::<pull::Config, _, _>(durable.as_str(), stream.as_str())
                .await;
            match info {
                Ok(consumer) => {
                    let info = consumer.cached_info();
                    let labels = [durable.as_str()];
                    metrics
                        .registry
                        .set(PENDING, &labels, info.num_pending as f64);
                    metrics
                        .registry
                        .set(ACK_PENDING, &labels, info.num_ack_pending as f64);
                    reported.insert(durable.clone());
                }
                Err(error) => {
                    // Not created yet, or NATS is away: readiness says so; no stale value.
                    tracing::debug!(message = "No lag for this consumer.", durable, %error);
                    forget(&metrics, durable);
                    reported.remove(durable);
                }
            }
        }
        // A consumer this process stopped reading, and nobody asked to watch, is dropped.
        for gone in reported
            .iter()
            .filter(|durable| !durables.contains(*durable))
        {
            forget(&metrics, gone);
        }
        reported.retain(|durable| durables.contains(durable));
        tokio::time::sleep(every).await;
    }
}

fn forget(metrics: &Metrics, durable: &str) {
    metrics.registry.remove(PENDING, &[durable]);
    metrics.registry.remove(ACK_PENDING, &[durable]);
}
