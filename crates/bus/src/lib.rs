//! The NATS JetStream bus every dbt-ops service talks through.
//!
//! - [`connection`]: [`Bus`] — connect (refusing servers older than 2.10), create or update
//!   the stream, KV bucket and object store, publish with `Nats-Msg-Id`, `traceparent` and
//!   `dbtops-type`.
//! - [`consumer`]: the one consumer loop: a handler returns an [`Outcome`], the loop acks,
//!   naks with delay, or dead-letters to `dbtops.dlq.<service>` and terms.
//! - [`incidents`]: each incident's state in the KV bucket.
//! - [`subjects`]: subject names under the configured prefix.
//! - [`headers`]: header names and the trace-context carriers.
//! - [`server`]: a private `nats-server -js` child for `dbt-ops up` and the tests.

pub mod connection;
pub mod consumer;
pub mod error;
pub mod headers;
pub mod incidents;
pub mod server;
pub mod subjects;

pub use connection::{Bus, Published, StoredMessage};
pub use consumer::{run_consumer, ConsumerSpec, Delivery, Outcome};
pub use error::BusError;
pub use incidents::{IncidentRecord, IncidentState, IncidentStore, SubmissionRecord};
pub use server::NatsServer;
pub use subjects::Subjects;
