//! Connecting to NATS, laying out JetStream, and publishing with the headers every
//! dbt-ops message carries.
//!
//! Credentials (user and password, token, `.creds` file, or `user:password@` in the URL)
//! and TLS (`tls://` URLs, a private CA in `nats.tls_ca_file`) are set on the connection
//! options and never appear in a log line or an error: the URL is named without its
//! credentials. With user/password authentication, replies (JetStream API answers, pulled
//! messages) come to the inbox `_INBOX_<user>.>` instead of the shared `_INBOX.>`, so a
//! server configuration can let each user read only its own replies (see
//! `deploy/nats/auth.conf`). A permission the server refuses fails the operation at once
//! with the server's words (`Permissions Violation for Publish to "…"`), instead of a
//! timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use dbtops_proto::WireMessage;
use dbtops_settings::NatsSettings;
use futures::TryStreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

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
    /// The artifacts object store, opened on first use and kept: opening asks the server
    /// for the bucket's stream, a round trip each artifact would otherwise pay.
    artifacts: Arc<ArtifactsStore>,
    /// The server's permission refusals as they arrive. The server answers a refused
    /// publish with an asynchronous `-ERR`, not on the request, so without this a refused
    /// publish is only a timeout.
    refusals: broadcast::Sender<String>,
    /// The durable consumers this process reads and whether each is bound yet: readiness
    /// and the consumer lag metrics read it.
    consumers: Arc<ConsumerBindings>,
}

/// The artifacts object store once opened (the client's handle has no `Debug`).
#[derive(Default)]
struct ArtifactsStore(tokio::sync::OnceCell<jetstream::object_store::ObjectStore>);

impl std::fmt::Debug for ArtifactsStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ArtifactsStore")
            .field("opened", &self.0.initialized())
            .finish()
    }
}

/// Waits before publishing again when no stream answered a publish (JetStream's "no
/// responders"): about 3 s in all, longer than a replicated stream's leader election
/// usually takes; a stream that really is missing is reported after them.
const NO_RESPONDERS_RETRY_DELAYS: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
];

/// Room left in an object-store chunk for the message's headers and subject.
const CHUNK_HEADROOM_BYTES: usize = 8 * 1024;
/// The chunk size's bounds, whatever the server says its max_payload is.
const MIN_CHUNK_BYTES: usize = 64 * 1024;
const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// How many refusals wait for slow listeners before the oldest are dropped; an operation
/// only waits for its own, and a burst of refusals is a misconfiguration, not traffic.
const REFUSALS_BUFFERED: usize = 64;

/// The durable consumers a process reads, by name: how many readers started binding each
/// and how many are bound.
#[derive(Debug, Default)]
struct ConsumerBindings {
    by_durable: Mutex<BTreeMap<String, (usize, usize)>>,
}

impl ConsumerBindings {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (usize, usize)>> {
        // A panicking holder leaves plain counts behind: still usable.
        self.by_durable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One durable consumer a process reads, as readiness sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    /// The durable consumer's name.
    pub durable: String,
    /// True once every reader of it in this process has bound it on the server.
    pub bound: bool,
}

/// A reader's claim on a durable consumer, from before it binds until it stops: dropping
/// it takes the claim back. See [`Bus::track_consumer`].
#[derive(Debug)]
pub struct ConsumerBinding {
    /// Where the claim is counted.
    bindings: Arc<ConsumerBindings>,
    /// The durable consumer's name.
    durable: String,
    /// Whether this reader counted itself bound.
    bound: bool,
}

impl ConsumerBinding {
    /// Records that the consumer is bound on the server (created or found).
    pub fn bound(&mut self) {
        if !self.bound {
            self.bound = true;
            if let Some(counts) = self.bindings.lock().get_mut(&self.durable) {
                counts.1 += 1;
            }
        }
    }
}

impl Drop for ConsumerBinding {
    fn drop(&mut self) {
        let mut by_durable = self.bindings.lock();
        if let Some(counts) = by_durable.get_mut(&self.durable) {
            counts.0 = counts.0.saturating_sub(1);
            if self.bound {
                counts.1 = counts.1.saturating_sub(1);
            }
            if counts.0 == 0 {
                by_durable.remove(&self.durable);
            }
        }
    }
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
    ///
    /// The layout is read first and changed only when it is missing or differs from the
    /// settings, so a user allowed only to read it (every service under
    /// `deploy/nats/auth.conf`) connects once an administrator has created it.
    pub async fn connect(settings: &NatsSettings) -> Result<Self, BusError> {
        let target = ServerUrl::parse(&settings.url);
        let (refusals, _) = broadcast::channel(REFUSALS_BUFFERED);
        let options = connect_options(settings, &target, refusals.clone()).await?;
        // A server that accepts TCP but never answers must not hang start-up.
        let client = tokio::time::timeout(
            Duration::from_secs(10),
            options.connect(target.address.as_str()),
        )
        .await
        .map_err(|_| BusError::Unreachable {
            url: target.address.clone(),
            reason: "no answer within 10 s".into(),
        })?
        .map_err(|error| BusError::Unreachable {
            url: target.address.clone(),
            reason: error.to_string(),
        })?;
        check_server_version(&client.server_info().version)?;
        let mut bus = Self {
            jetstream: jetstream::new(client.clone()),
            client,
            subjects: Subjects::new(settings.subject_prefix.clone()),
            settings: settings.clone(),
            incidents: None,
            artifacts: Arc::default(),
            refusals,
            consumers: Arc::default(),
        };
        bus.ensure_layout().await?;
        bus.incidents = Some(bus.open_incidents().await?);
        Ok(bus)
    }

    /// Makes sure the stream exists as configured, creating or updating it only when it
    /// is missing or differs. Idempotent, and safe when several replicas start at once: a
    /// lost creation race is retried as an update.
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
        let layout_error = |reason: String| BusError::Layout {
            what: format!("stream {}", self.settings.stream),
            reason,
        };
        let info_subject = format!("$JS.API.STREAM.INFO.{}", config.name);
        let found = self
            .unless_refused(&[info_subject], self.jetstream.get_stream(&config.name))
            .await
            .map_err(|refusal| layout_error(refused(&refusal)))?;
        if let Ok(stream) = found {
            if stream_is_as_configured(&stream.cached_info().config, &config) {
                self.artifacts_store().await?;
                return Ok(());
            }
        }
        let change_subjects = [
            format!("$JS.API.STREAM.CREATE.{}", config.name),
            format!("$JS.API.STREAM.UPDATE.{}", config.name),
        ];
        let mut last_error = None;
        for _ in 0..3 {
            let applied = self
                .unless_refused(
                    &change_subjects,
                    self.jetstream.create_or_update_stream(config.clone()),
                )
                .await
                .map_err(|refusal| layout_error(refused(&refusal)))?;
            match applied {
                Ok(_) => {
                    last_error = None;
                    break;
                }
                Err(error) => last_error = Some(error.to_string()),
            }
        }
        if let Some(reason) = last_error {
            return Err(layout_error(reason));
        }
        self.artifacts_store().await?;
        Ok(())
    }

    /// Runs `operation` unless the server refuses a publish to one of `subjects` first;
    /// then the refusal, in the server's words, is the error.
    async fn unless_refused<T>(
        &self,
        subjects: &[String],
        operation: impl Future<Output = T>,
    ) -> Result<T, String> {
        // Listening starts before the operation sends anything, so no refusal is missed.
        let mut refusals = self.refusals.subscribe();
        let refusal = async {
            loop {
                match refusals.recv().await {
                    Ok(text) if names_any(&text, subjects) => return text,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => {
                        futures::future::pending::<()>().await
                    }
                }
            }
        };
        tokio::select! {
            done = operation => Ok(done),
            text = refusal => Err(text),
        }
    }

    /// Claims the durable consumer `durable` for one reader of this process: the consumer
    /// loop calls it before binding, [`ConsumerBinding::bound`] once bound, and drops it
    /// when it stops. Readiness (`/readyz`) and the consumer lag metrics read the claims.
    pub fn track_consumer(&self, durable: &str) -> ConsumerBinding {
        self.consumers
            .lock()
            .entry(durable.to_owned())
            .or_default()
            .0 += 1;
        ConsumerBinding {
            bindings: self.consumers.clone(),
            durable: durable.to_owned(),
            bound: false,
        }
    }

    /// The durable consumers this process reads (on any clone of this bus), by name.
    pub fn consumers(&self) -> Vec<ConsumerState> {
        self.consumers
            .lock()
            .iter()
            .map(|(durable, (started, bound))| ConsumerState {
                durable: durable.clone(),
                bound: *started > 0 && bound >= started,
            })
            .collect()
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

    /// Opens the incidents bucket, creating or updating it only when it is missing or
    /// differs from the settings (see [`Bus::connect`]).
    async fn open_incidents(&self) -> Result<IncidentStore, BusError> {
        let bucket = &self.settings.incidents_bucket;
        let layout_error = |reason: String| BusError::Layout {
            what: format!("KV bucket {bucket}"),
            reason,
        };
        let info_subject = format!("$JS.API.STREAM.INFO.KV_{bucket}");
        let found = self
            .unless_refused(&[info_subject], self.jetstream.get_key_value(bucket))
            .await
            .map_err(|refusal| layout_error(refused(&refusal)))?;
        if let Ok(store) = found {
            let current = &store.stream.cached_info().config;
            if current.max_messages_per_subject == INCIDENT_HISTORY
                && current.num_replicas == self.settings.replicas
                && current.storage == stream::StorageType::File
            {
                return Ok(IncidentStore::new(store));
            }
        }
        let change_subjects = [
            format!("$JS.API.STREAM.CREATE.KV_{bucket}"),
            format!("$JS.API.STREAM.UPDATE.KV_{bucket}"),
        ];
        let store = self
            .unless_refused(
                &change_subjects,
                self.jetstream
                    .create_or_update_key_value(jetstream::kv::Config {
                        bucket: bucket.clone(),
                        description: "dbt-ops: each incident's state, and signature → incident"
                            .into(),
                        history: INCIDENT_HISTORY,
                        storage: stream::StorageType::File,
                        num_replicas: self.settings.replicas,
                        ..Default::default()
                    }),
            )
            .await
            .map_err(|refusal| layout_error(refused(&refusal)))?
            .map_err(|error| layout_error(error.to_string()))?;
        Ok(IncidentStore::new(store))
    }

    async fn artifacts_store(&self) -> Result<jetstream::object_store::ObjectStore, BusError> {
        self.artifacts
            .0
            .get_or_try_init(|| self.open_artifacts_store())
            .await
            .cloned()
    }

    async fn open_artifacts_store(&self) -> Result<jetstream::object_store::ObjectStore, BusError> {
        let bucket = self.settings.artifacts_bucket.clone();
        let layout_error = |reason: String| BusError::Layout {
            what: format!("object store {bucket}"),
            reason,
        };
        let info_subject = format!("$JS.API.STREAM.INFO.OBJ_{bucket}");
        let found = self
            .unless_refused(&[info_subject], self.jetstream.get_object_store(&bucket))
            .await
            .map_err(|refusal| layout_error(refused(&refusal)))?;
        match found {
            Ok(store) => Ok(store),
            Err(_) => self
                .unless_refused(
                    &[format!("$JS.API.STREAM.CREATE.OBJ_{bucket}")],
                    self.jetstream
                        .create_object_store(jetstream::object_store::Config {
                            bucket: bucket.clone(),
                            description: Some(
                                "dbt-ops: run artifacts too large for a message".into(),
                            ),
                            max_age: Duration::from_secs(7 * 24 * 3600),
                            storage: stream::StorageType::File,
                            num_replicas: self.settings.replicas,
                            ..Default::default()
                        }),
                )
                .await
                .map_err(|refusal| layout_error(refused(&refusal)))?
                .map_err(|error| layout_error(error.to_string())),
        }
    }

    /// Stores an artifact in the object store under `name`.
    #[tracing::instrument(name = "bus.artifact_put", skip_all)]
    pub async fn put_artifact(&self, name: &str, content: &[u8]) -> Result<(), BusError> {
        let store = self.artifacts_store().await?;
        let mut reader = content;
        // Each chunk is one publish awaiting its ack, so the chunks are as large as a
        // message may be (the server's max_payload, less room for headers), not the
        // client's default 128 KB: a 40 MB manifest is 40-odd round trips, not 320.
        let max_payload = self.client.server_info().max_payload;
        let chunk_size = max_payload
            .saturating_sub(CHUNK_HEADROOM_BYTES)
            .clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES);
        let meta = jetstream::object_store::ObjectMetadata {
            name: name.to_owned(),
            chunk_size: Some(chunk_size),
            ..Default::default()
        };
        store
            .put(meta, &mut reader)
            .await
            .map_err(|error| BusError::Artifact {
                name: name.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(())
    }

    /// Reads an artifact back from the object store, refusing one over `limit` bytes
    /// ([`BusError::ArtifactTooLarge`], which retrying cannot help).
    #[tracing::instrument(name = "bus.artifact_get", skip_all)]
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
        let size = object.info().size as u64;
        if size > limit {
            return Err(BusError::ArtifactTooLarge {
                name: name.to_owned(),
                size,
                limit,
            });
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
    #[tracing::instrument(name = "bus.publish", skip_all)]
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
        let subjects = [subject.to_owned()];
        let ack = self
            .unless_refused(&subjects, async {
                let mut waits = NO_RESPONDERS_RETRY_DELAYS.iter();
                loop {
                    let attempt = async {
                        self.jetstream
                            .publish_with_headers(
                                subject.to_owned(),
                                headers.clone(),
                                payload.clone(),
                            )
                            .await?
                            .await
                    }
                    .await;
                    match attempt {
                        // No stream answered: while a stream elects its leader (a node
                        // lost, a cluster just formed) JetStream has no responder for a
                        // moment. The message id makes a second publish safe.
                        Err(error) if error.kind() == PublishErrorKind::StreamNotFound => {
                            match waits.next() {
                                Some(wait) => tokio::time::sleep(*wait).await,
                                None => return Err(publish_error(error.to_string())),
                            }
                        }
                        other => return other.map_err(|error| publish_error(error.to_string())),
                    }
                }
            })
            .await
            .map_err(|refusal| publish_error(refused(&refusal)))??;
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
                // Named, so that the filter travels in the API subject
                // ($JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>) and a server can limit
                // which subjects a user may replay (deploy/nats/auth.conf).
                name: Some(format!("replay_{}", unique_token(&self.client))),
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
                    });
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

/// A fresh token for a consumer's name: the unique last token of a new inbox.
fn unique_token(client: &async_nats::Client) -> String {
    let inbox = client.new_inbox();
    inbox.rsplit('.').next().unwrap_or(&inbox).to_owned()
}

/// Versions of an incident the KV bucket keeps.
const INCIDENT_HISTORY: i64 = 5;

/// The parts of the stream's configuration dbt-ops sets, compared with what the server has.
fn stream_is_as_configured(current: &stream::Config, wanted: &stream::Config) -> bool {
    current.subjects == wanted.subjects
        && current.storage == wanted.storage
        && current.retention == wanted.retention
        && current.duplicate_window == wanted.duplicate_window
        && current.num_replicas == wanted.num_replicas
}

/// True when the server's refusal names one of `subjects` (it quotes the subject).
fn names_any(refusal: &str, subjects: &[String]) -> bool {
    subjects
        .iter()
        .any(|subject| refusal.contains(&format!("\"{subject}\"")))
}

/// The reason given for an operation the server refused.
fn refused(refusal: &str) -> String {
    format!("NATS refused it ({refusal}): this NATS user lacks that permission")
}

/// A server URL with any `user:password@` or `token@` taken out of it.
#[derive(PartialEq, Eq)]
struct ServerUrl {
    /// The URL without credentials: what is dialled, logged and named in errors.
    address: String,
    /// `user:password@` from the URL.
    user_and_password: Option<(String, String)>,
    /// `token@` from the URL.
    token: Option<String>,
}

impl std::fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials are left out on purpose.
        f.debug_struct("ServerUrl")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl ServerUrl {
    /// Splits the credentials off `url`. async-nats would use them as they are, but it logs
    /// server addresses with `Debug` (the whole URL, password included) and dbt-ops' errors
    /// name the URL: as options they are sent and never shown.
    fn parse(url: &str) -> Self {
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), rest),
            None => (None, url),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            return Self {
                address: url.to_owned(),
                user_and_password: None,
                token: None,
            };
        };
        let address = match scheme {
            Some(scheme) => format!("{scheme}://{host}{path}"),
            None => format!("{host}{path}"),
        };
        let (user_and_password, token) = match userinfo.split_once(':') {
            Some((user, password)) => (
                Some((percent_decoded(user), percent_decoded(password))),
                None,
            ),
            None => (None, Some(percent_decoded(userinfo))),
        };
        Self {
            address,
            user_and_password,
            token,
        }
    }
}

/// `%XX` escapes decoded, as URL userinfo carries reserved characters.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The inbox prefix for `user`: `_INBOX_<user>`, one subject token, so a server can let
/// each user subscribe to its own replies only.
fn inbox_prefix(user: &str) -> String {
    let token: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("_INBOX_{token}")
}

/// The connection options: name, timeouts, credentials (settings first, then the URL's),
/// TLS, and an event callback that logs the server's complaints and passes refusals on.
async fn connect_options(
    settings: &NatsSettings,
    target: &ServerUrl,
    refusals: broadcast::Sender<String>,
) -> Result<async_nats::ConnectOptions, BusError> {
    let mut options = async_nats::ConnectOptions::new()
        .name("dbt-ops")
        .connection_timeout(Duration::from_secs(5));
    let mut user = None;
    if !settings.user.is_empty() {
        user = Some(settings.user.as_str());
        options =
            options.user_and_password(settings.user.clone(), settings.password.expose().to_owned());
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
    } else if let Some((url_user, password)) = &target.user_and_password {
        user = Some(url_user.as_str());
        options = options.user_and_password(url_user.clone(), password.clone());
    } else if let Some(token) = &target.token {
        options = options.token(token.clone());
    }
    if let Some(user) = user {
        options = options.custom_inbox_prefix(inbox_prefix(user));
    }
    if !settings.tls_ca_file.is_empty() {
        // Read now, so a wrong path is named here rather than failing the handshake.
        if let Err(source) = tokio::fs::metadata(&settings.tls_ca_file).await {
            return Err(BusError::Credentials {
                path: settings.tls_ca_file.clone(),
                source,
            });
        }
        options = options
            .add_root_certificates(PathBuf::from(&settings.tls_ca_file))
            .require_tls(true);
    }
    Ok(options.event_callback(move |event| {
        let refusals = refusals.clone();
        async move {
            match event {
                async_nats::Event::ServerError(async_nats::ServerError::Other(text))
                    if text
                        .to_ascii_lowercase()
                        .starts_with("permissions violation") =>
                {
                    tracing::error!(
                        message = "NATS refused an operation: this NATS user lacks the permission.",
                        refusal = %text
                    );
                    // Nobody listening is fine: the refusal is logged.
                    let _ = refusals.send(text);
                }
                async_nats::Event::ServerError(error) => {
                    tracing::warn!(message = "NATS server error.", %error);
                }
                async_nats::Event::Disconnected => {
                    tracing::warn!(message = "Disconnected from NATS; reconnecting.");
                }
                other => tracing::debug!(message = "NATS connection event.", event = %other),
            }
        }
    }))
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

    #[test]
    fn credentials_in_the_url_are_taken_out_of_it() {
        let url = ServerUrl::parse("nats://fixer:s3cr%40t@nats.example:4222");
        assert_eq!(url.address, "nats://nats.example:4222");
        assert_eq!(
            url.user_and_password,
            Some(("fixer".to_owned(), "s3cr@t".to_owned()))
        );
        assert!(!format!("{url:?}").contains("s3cr"));

        let url = ServerUrl::parse("tls://t0ken@127.0.0.1:4222/");
        assert_eq!(url.address, "tls://127.0.0.1:4222/");
        assert_eq!(url.token.as_deref(), Some("t0ken"));

        let plain = ServerUrl::parse("nats://127.0.0.1:4222");
        assert_eq!(plain.address, "nats://127.0.0.1:4222");
        assert!(plain.user_and_password.is_none() && plain.token.is_none());
        assert_eq!(ServerUrl::parse("a:b@host:1").address, "host:1");
    }

    #[test]
    fn a_users_inbox_is_one_subject_token() {
        assert_eq!(inbox_prefix("dbtops-fixer"), "_INBOX_dbtops-fixer");
        assert_eq!(inbox_prefix("a.b c*>"), "_INBOX_a_b_c__");
    }

    #[test]
    fn refusals_are_matched_by_the_quoted_subject() {
        let refusal = "Permissions Violation for Publish to \"dbtops.fix.validated\"";
        assert!(names_any(refusal, &["dbtops.fix.validated".to_owned()]));
        assert!(!names_any(refusal, &["dbtops.fix".to_owned()]));
    }

    #[test]
    fn a_consumer_is_bound_while_all_its_readers_are() {
        let bindings = Arc::new(ConsumerBindings::default());
        let track = |durable: &str| {
            bindings.lock().entry(durable.to_owned()).or_default().0 += 1;
            ConsumerBinding {
                bindings: bindings.clone(),
                durable: durable.to_owned(),
                bound: false,
            }
        };
        let mut first = track("fixer");
        let second = track("fixer");
        first.bound();
        assert_eq!(bindings.lock()["fixer"], (2, 1));
        drop(second);
        assert_eq!(bindings.lock()["fixer"], (1, 1));
        drop(first);
        assert!(bindings.lock().is_empty());
    }
}
