//! Connecting to NATS, laying out JetStream, and publishing with the headers every
//! dbt-ops message carries.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use dbtops_proto::WireMessage;
use dbtops_settings::NatsSettings;
use futures::TryStreamExt;
use tokio::io::AsyncReadExt;

use crate::error::BusError;
use crate::headers::{HeaderCarrier, MESSAGE_ID, MESSAGE_TYPE};
use crate::incidents::IncidentStore;
use crate::subjects::Subjects;

/// The oldest nats-server whose JetStream features dbt-ops relies on (2.9 silently drops a
/// consumer's `filter_subjects`).
const MINIMUM_SERVER: (u64, u64) = (2, 10);

/// A connection to NATS with the dbt-ops layout: cheap to clone, one per process.
#[derive(Clone, Debug)]
pub struct Bus {
    /// The core NATS client (plain subscriptions, e.g. `dbt-ops watch`).
    client: async_nats::Client,
    /// JetStream on that client.
    jetstream: jetstream::Context,
    /// Subject names under the configured prefix.
    subjects: Subjects,
    /// Layout and limits, as configured.
    settings: NatsSettings,
    /// The incidents KV bucket, opened once.
    incidents: Option<IncidentStore>,
}

/// What the server said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream sequence the message was stored at.
    pub sequence: u64,
    /// True when the server had already stored a message with the same `Nats-Msg-Id`.
    pub duplicate: bool,
}

impl Bus {
    /// Connects to `settings.url`, refuses servers older than 2.10, and makes sure the
    /// stream, the incidents KV bucket and the artifacts object store exist.
    pub async fn connect(settings: &NatsSettings) -> Result<Self, BusError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("dbt-ops")
            .connection_timeout(Duration::from_secs(5));
        if !settings.user.is_empty() {
            options = options
                .user_and_password(settings.user.clone(), settings.password.expose().to_owned());
        } else if !settings.token.is_empty() {
            options = options.token(settings.token.expose().to_owned());
        } else if !settings.credentials_file.is_empty() {
            options = options
                .credentials_file(&settings.credentials_file)
                .await
                .map_err(|source| BusError::Credentials {
                    path: settings.credentials_file.clone(),
                    source,
                })?;
        }
        // A server that accepts TCP but never answers must not hang start-up.
        let client = tokio::time::timeout(
            Duration::from_secs(10),
            options.connect(settings.url.as_str()),
        )
        .await
        .map_err(|_| BusError::Unreachable {
            url: settings.url.clone(),
            reason: "no answer within 10 s".into(),
        })?
        .map_err(|error| BusError::Unreachable {
            url: settings.url.clone(),
            reason: error.to_string(),
        })?;
        check_server_version(&client.server_info().version)?;
        let mut bus = Self {
            jetstream: jetstream::new(client.clone()),
            client,
            subjects: Subjects::new(settings.subject_prefix.clone()),
            settings: settings.clone(),
            incidents: None,
        };
        bus.ensure_layout().await?;
        bus.incidents = Some(bus.open_incidents().await?);
        Ok(bus)
    }

    /// Creates or updates the stream, the KV bucket and the object store. Idempotent, and
    /// safe when several replicas start at once: a lost creation race is retried as an
    /// update.
    async fn ensure_layout(&self) -> Result<(), BusError> {
        let config = stream::Config {
            name: self.settings.stream.clone(),
            subjects: vec![self.subjects.all()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(self.settings.duplicate_window_secs),
            description: Some("dbt-ops: every event of every incident".into()),
            num_replicas: self.settings.replicas,
            ..Default::default()
        };
        let mut last_error = None;
        for _ in 0..3 {
            match self.jetstream.create_or_update_stream(config.clone()).await {
                Ok(_) => {
                    last_error = None;
                    break;
                }
                Err(error) => last_error = Some(error.to_string()),
            }
        }
        if let Some(reason) = last_error {
            return Err(BusError::Layout {
                what: format!("stream {}", self.settings.stream),
                reason,
            });
        }
        self.artifacts_store().await?;
        Ok(())
    }

    /// The subject names.
    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    /// The settings this bus was made with.
    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    /// The core client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The incident store (KV bucket).
    pub async fn incidents(&self) -> Result<IncidentStore, BusError> {
        match &self.incidents {
            Some(store) => Ok(store.clone()),
            None => self.open_incidents().await,
        }
    }

    async fn open_incidents(&self) -> Result<IncidentStore, BusError> {
        let store = self
            .jetstream
            .create_or_update_key_value(jetstream::kv::Config {
                bucket: self.settings.incidents_bucket.clone(),
                description: "dbt-ops: each incident's state, and signature → incident".into(),
                history: 5,
                storage: stream::StorageType::File,
                num_replicas: self.settings.replicas,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::Layout {
                what: format!("KV bucket {}", self.settings.incidents_bucket),
                reason: error.to_string(),
            })?;
        Ok(IncidentStore::new(store))
    }

    async fn artifacts_store(&self) -> Result<jetstream::object_store::ObjectStore, BusError> {
        let bucket = self.settings.artifacts_bucket.clone();
        match self.jetstream.get_object_store(&bucket).await {
            Ok(store) => Ok(store),
            Err(_) => self
                .jetstream
                .create_object_store(jetstream::object_store::Config {
                    bucket: bucket.clone(),
                    description: Some("dbt-ops: run artifacts too large for a message".into()),
                    max_age: Duration::from_secs(7 * 24 * 3600),
                    storage: stream::StorageType::File,
                    num_replicas: self.settings.replicas,
                    ..Default::default()
                })
                .await
                .map_err(|error| BusError::Layout {
                    what: format!("object store {bucket}"),
                    reason: error.to_string(),
                }),
        }
    }

    /// Stores an artifact in the object store under `name`.
    pub async fn put_artifact(&self, name: &str, content: &[u8]) -> Result<(), BusError> {
        let store = self.artifacts_store().await?;
        let mut reader = content;
        store
            .put(name, &mut reader)
            .await
            .map_err(|error| BusError::Artifact {
                name: name.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(())
    }

    /// Reads an artifact back from the object store, refusing one over `limit` bytes.
    pub async fn get_artifact(&self, name: &str, limit: u64) -> Result<Vec<u8>, BusError> {
        let store = self.artifacts_store().await?;
        let artifact_error = |reason: String| BusError::Artifact {
            name: name.to_owned(),
            reason,
        };
        let object = store
            .get(name)
            .await
            .map_err(|error| artifact_error(error.to_string()))?;
        if object.info().size as u64 > limit {
            return Err(artifact_error(format!(
                "{} bytes is over the limit of {limit}",
                object.info().size
            )));
        }
        let mut content = Vec::new();
        let mut object = object;
        object
            .read_to_end(&mut content)
            .await
            .map_err(|error| artifact_error(error.to_string()))?;
        Ok(content)
    }

    /// Publishes `message` on `subject` and waits until JetStream has stored it.
    ///
    /// `message_id` becomes `Nats-Msg-Id`, so a retried publish within the duplicate
    /// window is stored once; the current span's trace context and the message's type
    /// name travel in the headers.
    pub async fn publish<M: WireMessage>(
        &self,
        subject: &str,
        message_id: &str,
        message: &M,
    ) -> Result<Published, BusError> {
        let mut headers = HeaderMap::new();
        dbtops_telemetry::inject_current_context(&mut HeaderCarrier(&mut headers));
        headers.insert(MESSAGE_TYPE, M::TYPE_NAME);
        // Set last: nothing after this may replace the header map (STACK.md trap).
        headers.insert(MESSAGE_ID, message_id);
        self.publish_raw(subject, headers, Bytes::from(message.encode_to_vec()))
            .await
    }

    /// Publishes a finished run's artifacts on `run.submitted` as `submission_id`:
    /// artifacts over `inline_artifact_limit_bytes` go through the object store, the rest
    /// inline. Returns how many artifacts were sent. The one path behind `dbt-ops submit`
    /// and the detector's watch mode.
    pub async fn submit_run(
        &self,
        project: dbtops_proto::v1::ProjectRef,
        files: Vec<(&str, Vec<u8>)>,
        submission_id: &str,
    ) -> Result<usize, BusError> {
        use dbtops_proto::v1;
        let limit = self.settings.inline_artifact_limit_bytes;
        let mut artifacts = Vec::new();
        for (kind, content) in files {
            let size_bytes = content.len() as u64;
            let body = if size_bytes > limit {
                let name = format!("{submission_id}/{kind}");
                self.put_artifact(&name, &content).await?;
                v1::artifact::Body::ObjectName(name)
            } else {
                v1::artifact::Body::Inline(content)
            };
            artifacts.push(v1::Artifact {
                kind: kind.to_owned(),
                body: Some(body),
                size_bytes,
            });
        }
        let sent = artifacts.len();
        let message = v1::RunSubmitted {
            submission_id: submission_id.to_owned(),
            project: Some(project),
            artifacts,
            submitted_at: crate::incidents::now_rfc3339(),
        };
        self.publish(
            &self.subjects.run_submitted(),
            &format!("{submission_id}.submitted"),
            &message,
        )
        .await?;
        Ok(sent)
    }

    /// Publishes bytes as they are, with the given headers (dead letters, tests of bad
    /// input).
    pub async fn publish_raw(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> Result<Published, BusError> {
        let publish_error = |reason: String| BusError::Publish {
            subject: subject.to_owned(),
            reason,
        };
        let ack = self
            .jetstream
            .publish_with_headers(subject.to_owned(), headers, payload)
            .await
            .map_err(|error| publish_error(error.to_string()))?
            .await
            .map_err(|error| publish_error(error.to_string()))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Every message stored on `subject` (wildcards allowed), oldest first, read without a
    /// durable consumer: for `dbt-ops watch`, tests and reports.
    pub async fn replay(&self, subject: &str) -> Result<Vec<StoredMessage>, BusError> {
        let stream = self
            .jetstream
            .get_stream(&self.settings.stream)
            .await
            .map_err(|error| BusError::Consume {
                what: "the stream".into(),
                reason: error.to_string(),
            })?;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::Consume {
                what: format!("a replay of {subject}"),
                reason: error.to_string(),
            })?;
        let pending = consumer.cached_info().num_pending;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|error| BusError::Consume {
                what: format!("a replay of {subject}"),
                reason: error.to_string(),
            })?;
        let mut stored = Vec::new();
        while (stored.len() as u64) < pending {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.try_next()).await;
            match next {
                Ok(Ok(Some(message))) => stored.push(StoredMessage::from_message(&message)),
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(error)) => {
                    return Err(BusError::Consume {
                        what: format!("a replay of {subject}"),
                        reason: error.to_string(),
                    })
                }
            }
        }
        Ok(stored)
    }
}

/// A message as stored in the stream, for readers that do not ack.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The subject it was published on.
    pub subject: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its protobuf payload.
    pub payload: Bytes,
    /// When the stream stored it (from the JetStream message info), for reports.
    pub published: Option<time::OffsetDateTime>,
}

impl StoredMessage {
    fn from_message(message: &jetstream::Message) -> Self {
        Self {
            subject: message.subject.to_string(),
            headers: message.headers.clone().unwrap_or_default(),
            payload: message.payload.clone(),
            published: message.info().ok().map(|info| info.published),
        }
    }

    /// The `dbtops-type` header.
    pub fn type_name(&self) -> Option<&str> {
        self.headers.get(MESSAGE_TYPE).map(|value| value.as_str())
    }

    /// Decodes the payload as `M`, checking the type header first.
    pub fn decode<M: WireMessage>(&self) -> Result<M, String> {
        crate::consumer::decode_payload(self.type_name(), &self.payload)
    }
}

fn check_server_version(version: &str) -> Result<(), BusError> {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MINIMUM_SERVER {
        return Err(BusError::ServerTooOld {
            found: version.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_older_than_2_10_are_refused() {
        assert!(check_server_version("2.9.10").is_err());
        assert!(check_server_version("1.4.0").is_err());
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0-beta").is_ok());
    }
}
