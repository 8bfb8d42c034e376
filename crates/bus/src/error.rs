//! The bus's errors. Each says what it was doing; none carries a secret.

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No server answered at the URL.
    #[error("cannot reach NATS at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// The server is older than 2.10, whose consumer features dbt-ops needs.
    #[error(
        "nats-server {found} is too old: dbt-ops needs 2.10 or newer (2.9 silently ignores a consumer's filter_subjects); set NATS_SERVER_BIN or NATS_URL to a newer server"
    )]
    ServerTooOld {
        /// The version the server reported.
        found: String,
    },
    /// The credentials file could not be read.
    #[error("cannot read NATS credentials file {path}: {source}")]
    Credentials {
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stream, consumer, bucket or object store could not be created or updated.
    #[error("cannot set up {what}: {reason}")]
    Layout {
        /// Which part of the layout.
        what: String,
        /// The server's answer.
        reason: String,
    },
    /// A publish was not acknowledged by JetStream.
    #[error("cannot publish on {subject}: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// The client's or server's answer.
        reason: String,
    },
    /// Reading from the stream failed.
    #[error("cannot consume {what}: {reason}")]
    Consume {
        /// What was being read.
        what: String,
        /// Why.
        reason: String,
    },
    /// The incident store refused a read or write.
    #[error("incident store: {0}")]
    Incidents(String),
    /// An artifact could not be stored or fetched.
    #[error("artifact {name}: {reason}")]
    Artifact {
        /// The object name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An artifact in the object store is larger than the reader accepts: reading it
    /// again will not make it smaller, so retrying cannot help.
    #[error("artifact {name} is {size} bytes, over the limit of {limit}")]
    ArtifactTooLarge {
        /// The object name.
        name: String,
        /// Its size in the store.
        size: u64,
        /// The reader's limit.
        limit: u64,
    },
    /// A private nats-server could not be started.
    #[error("cannot start nats-server: {0}")]
    Server(String),
}
