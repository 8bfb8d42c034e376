//! Each incident's current state, in the JetStream KV bucket `dbtops-incidents`.
//!
//! Keys: `incident.<id>` → [`IncidentRecord`] (JSON), `submission.<id>` →
//! [`SubmissionRecord`] (JSON). The incident id is derived from the error's signature, so
//! the record under it doubles as the signature index: the same failure seen again finds
//! its open incident here instead of opening a second one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::error::BusError;

/// Where an incident is on its way to a merge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// The detector opened it.
    Detected,
    /// The fixer is drafting a proposal.
    Fixing,
    /// The validator is running dbt on a proposal.
    Validating,
    /// Delivery is opening the branch or merge request.
    Delivering,
    /// A branch or merge request exists; a human decides.
    MrOpened,
    /// No merge request will come of it (see `reason`).
    Abandoned,
    /// The merge request was merged.
    Merged,
    /// The merge request was closed unmerged.
    Closed,
    /// A later run showed the model passing.
    Resolved,
}

impl IncidentState {
    /// True once dbt-ops has nothing more to do for the incident.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            IncidentState::MrOpened
                | IncidentState::Abandoned
                | IncidentState::Merged
                | IncidentState::Closed
                | IncidentState::Resolved
        )
    }

    /// True while a new run's identical failure is a recurrence, not a new incident.
    pub fn absorbs_recurrences(self) -> bool {
        !matches!(
            self,
            IncidentState::Merged | IncidentState::Closed | IncidentState::Resolved
        )
    }

    /// Whether a record at `self` may be moved to `next` within one generation. Events
    /// arrive out of order when an ack is lost (a validator redelivered after delivery
    /// finished would set `delivering` over `mr_opened`), so an ended incident does not go
    /// back to work, and one with a branch is not abandoned; a new generation starts
    /// over.
    pub fn may_move_to(self, next: IncidentState) -> bool {
        match self {
            IncidentState::MrOpened | IncidentState::Merged | IncidentState::Closed => {
                next.is_outcome() && next != IncidentState::Abandoned
            }
            IncidentState::Abandoned | IncidentState::Resolved => next.is_outcome(),
            _ => true,
        }
    }

    /// The snake_case name, as stored.
    pub fn label(self) -> &'static str {
        match self {
            IncidentState::Detected => "detected",
            IncidentState::Fixing => "fixing",
            IncidentState::Validating => "validating",
            IncidentState::Delivering => "delivering",
            IncidentState::MrOpened => "mr_opened",
            IncidentState::Abandoned => "abandoned",
            IncidentState::Merged => "merged",
            IncidentState::Closed => "closed",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One incident as the services last left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// Deterministic id (project + model + normalized error).
    pub incident_id: String,
    /// The dbt project's name.
    pub project: String,
    /// The failing node's unique id.
    pub unique_id: String,
    /// The failing model's name.
    pub model: String,
    /// The model file, relative to the project dir.
    pub model_path: String,
    /// The error class label.
    pub class: String,
    /// Where it is now.
    pub state: IncidentState,
    /// Bumped each time a closed incident is opened again by the same failure, so its
    /// message ids stay unique.
    pub generation: u32,
    /// Proposals tried so far.
    pub attempts: u32,
    /// The fix branch, once delivery made one.
    pub branch: Option<String>,
    /// The merge request's web URL, once opened on a forge.
    pub url: Option<String>,
    /// Why it was abandoned: `needs_human`, `no_fix_found`, `attempts_exhausted`, `guardrail`.
    pub reason: Option<String>,
    /// Human-readable detail of the last state change.
    pub detail: Option<String>,
    /// How many later runs failed the same way while it was open.
    pub recurrences: u32,
    /// RFC 3339 times.
    pub first_seen: String,
    /// RFC 3339 time of the latest run that showed this failure.
    pub last_seen: String,
    /// RFC 3339 time of the last state change.
    pub updated_at: String,
    /// The incident's trace id, for the trace link.
    pub trace_id: Option<String>,
    /// The last submission that showed this failure, so a redelivered submission is not
    /// counted twice.
    #[serde(default)]
    pub last_submission_id: String,
    /// The local repository the fix branch was committed to (local git delivery), so a
    /// run in another checkout is not mistaken for a recurrence.
    #[serde(default)]
    pub delivered_repo: Option<String>,
}

/// What the detector made of one submission, for `dbt-ops submit --wait`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRecord {
    /// The submission's id.
    pub submission_id: String,
    /// Incidents this submission opened.
    pub new_incident_ids: Vec<String>,
    /// Open incidents this submission saw again.
    pub recurring_incident_ids: Vec<String>,
    /// What the detector noted (stale artifacts, nothing failed…).
    pub notes: Vec<String>,
}

/// Why one watch of [`IncidentStore::follow`] ended early.
enum Followed {
    /// The connection or the watch failed: open it again.
    Lost(String),
    /// A value does not parse: opening the watch again would read it again.
    Unreadable(serde_json::Error),
}

/// What [`IncidentStore::update_generation`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationUpdate {
    /// The record was at the generation and now holds the change.
    Updated(Box<IncidentRecord>),
    /// The incident was opened again since: the record is at `current`, left as it was.
    Superseded { current: u32 },
    /// The record is at `current`, which may not move to the state asked for (see
    /// [`IncidentState::may_move_to`]): left as it was.
    Settled { current: IncidentState },
    /// No record of the incident.
    Missing,
}

/// Typed access to the incidents bucket.
#[derive(Clone, Debug)]
pub struct IncidentStore {
    /// The KV bucket.
    store: kv::Store,
    /// The last record this process read or wrote per incident, with its revision: the
    /// first guess of a compare-and-set update, which saves the read a handler would
    /// otherwise repeat right after its own (a wrong guess fails the compare and is read
    /// again). Never answers a read.
    last_seen: Arc<Mutex<HashMap<String, (IncidentRecord, u64)>>>,
}

/// More incidents than a process has in flight: the guesses start over.
const LAST_SEEN_MAX: usize = 4096;

fn incident_key(incident_id: &str) -> String {
    format!("incident.{incident_id}")
}

fn submission_key(submission_id: &str) -> String {
    format!("submission.{submission_id}")
}

impl IncidentStore {
    pub(crate) fn new(store: kv::Store) -> Self {
        Self {
            store,
            last_seen: Arc::default(),
        }
    }

    /// The bucket itself, for keys of other kinds that live beside the incidents (the
    /// detector's per-project index of open incidents).
    pub fn bucket(&self) -> &kv::Store {
        &self.store
    }

    fn remember(&self, incident_id: &str, record: &IncidentRecord, revision: u64) {
        let mut seen = self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= LAST_SEEN_MAX {
            seen.clear();
        }
        seen.insert(incident_id.to_owned(), (record.clone(), revision));
    }

    fn recalled(&self, incident_id: &str) -> Option<(IncidentRecord, u64)> {
        self.last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(incident_id)
    }

    /// The incident's record, if it exists.
    pub async fn get(&self, incident_id: &str) -> Result<Option<IncidentRecord>, BusError> {
        Ok(self
            .get_with_revision(incident_id)
            .await?
            .map(|(record, _)| record))
    }

    #[tracing::instrument(name = "kv.get", skip_all)]
    async fn get_with_revision(
        &self,
        incident_id: &str,
    ) -> Result<Option<(IncidentRecord, u64)>, BusError> {
        let entry = self
            .store
            .entry(incident_key(incident_id))
            .await
            .map_err(|error| BusError::Incidents(error.to_string()))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                let record: IncidentRecord =
                    serde_json::from_slice(&entry.value).map_err(|error| {
                        BusError::Incidents(format!("record of {incident_id} is corrupt: {error}"))
                    })?;
                self.remember(incident_id, &record, entry.revision);
                Ok(Some((record, entry.revision)))
            }
            _ => Ok(None),
        }
    }

    /// Stores `record` only if no record exists for its id. Returns false when one did.
    #[tracing::instrument(name = "kv.create", skip_all)]
    pub async fn create(&self, record: &IncidentRecord) -> Result<bool, BusError> {
        let value =
            serde_json::to_vec(record).map_err(|error| BusError::Incidents(error.to_string()))?;
        match self
            .store
            .create(incident_key(&record.incident_id), value.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(BusError::Incidents(error.to_string())),
        }
    }

    /// Applies `change` to the incident's record with compare-and-set, retrying when
    /// another service wrote in between. Returns the stored record, or `None` when the
    /// incident does not exist.
    pub async fn update(
        &self,
        incident_id: &str,
        mut change: impl FnMut(&mut IncidentRecord),
    ) -> Result<Option<IncidentRecord>, BusError> {
        self.update_when(incident_id, |record| {
            change(record);
            true
        })
        .await
    }

    /// The compare-and-set loop behind the updates: `change` returns false to leave the
    /// record as it is (nothing written), and the record read is returned.
    async fn update_when(
        &self,
        incident_id: &str,
        mut change: impl FnMut(&mut IncidentRecord) -> bool,
    ) -> Result<Option<IncidentRecord>, BusError> {
        let mut guess = self.recalled(incident_id);
        for _ in 0..20 {
            let guessed = guess.is_some();
            let known = match guess.take() {
                Some(known) => Some(known),
                None => self.get_with_revision(incident_id).await?,
            };
            let Some((mut record, revision)) = known else {
                return Ok(None);
            };
            if !change(&mut record) {
                // Only the store's own answer may decide that nothing is written.
                if guessed {
                    continue;
                }
                return Ok(Some(record));
            }
            record.updated_at = now_rfc3339();
            let value = serde_json::to_vec(&record)
                .map_err(|error| BusError::Incidents(error.to_string()))?;
            match self
                .store
                .update(incident_key(incident_id), value.into(), revision)
                .instrument(tracing::info_span!("kv.update"))
                .await
            {
                Ok(revision) => {
                    self.remember(incident_id, &record, revision);
                    return Ok(Some(record));
                }
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => return Err(BusError::Incidents(error.to_string())),
            }
        }
        Err(BusError::Incidents(format!(
            "gave up updating {incident_id}: too many concurrent writers"
        )))
    }

    /// Moves the record to `state` (and applies `change`), but only while it is still at
    /// `generation` — an event of an earlier generation (redelivered after the detector
    /// opened the incident again, maybe for another checkout) must not move the newer
    /// one — and only where the record's state may move to `state` (an event redelivered
    /// after a later stage finished must not move it back).
    pub async fn update_generation(
        &self,
        incident_id: &str,
        generation: u32,
        state: IncidentState,
        mut change: impl FnMut(&mut IncidentRecord),
    ) -> Result<GenerationUpdate, BusError> {
        let record = self
            .update_when(incident_id, |record| {
                let applies = record.generation == generation && record.state.may_move_to(state);
                if applies {
                    record.state = state;
                    change(record);
                }
                applies
            })
            .await?;
        Ok(match record {
            None => GenerationUpdate::Missing,
            Some(record) if record.generation != generation => GenerationUpdate::Superseded {
                current: record.generation,
            },
            Some(record) if record.state != state => GenerationUpdate::Settled {
                current: record.state,
            },
            Some(record) => GenerationUpdate::Updated(Box::new(record)),
        })
    }

    /// Records what the detector made of a submission.
    #[tracing::instrument(name = "kv.put", skip_all)]
    pub async fn put_submission(&self, record: &SubmissionRecord) -> Result<(), BusError> {
        let value =
            serde_json::to_vec(record).map_err(|error| BusError::Incidents(error.to_string()))?;
        self.store
            .put(submission_key(&record.submission_id), value.into())
            .await
            .map_err(|error| BusError::Incidents(error.to_string()))?;
        Ok(())
    }

    /// Waits until the detector has recorded the submission, or `timeout` passes.
    pub async fn wait_for_submission(
        &self,
        submission_id: &str,
        timeout: Duration,
    ) -> Result<Option<SubmissionRecord>, BusError> {
        let mut found = None;
        self.follow(&submission_key(submission_id), timeout, |value| {
            found = Some(serde_json::from_slice(value)?);
            Ok(true)
        })
        .await?;
        Ok(found)
    }

    /// Waits until the incident reaches an outcome (mr_opened, abandoned, …), or `timeout`
    /// passes; returns the last record seen.
    pub async fn wait_for_outcome(
        &self,
        incident_id: &str,
        timeout: Duration,
    ) -> Result<Option<IncidentRecord>, BusError> {
        let mut last: Option<IncidentRecord> = None;
        self.follow(&incident_key(incident_id), timeout, |value| {
            let record: IncidentRecord = serde_json::from_slice(value)?;
            let done = record.state.is_outcome();
            last = Some(record);
            Ok(done)
        })
        .await?;
        Ok(last)
    }

    /// Hands each value `key` takes (its current one first) to `on_put` until it returns
    /// true or `timeout` passes. A watch that fails or ends — the server restarted, a
    /// heartbeat was missed — is opened again with history, so an outage shorter than the
    /// timeout loses nothing; a failure that outlasts it is returned.
    async fn follow(
        &self,
        key: &str,
        timeout: Duration,
        mut on_put: impl FnMut(&[u8]) -> Result<bool, serde_json::Error>,
    ) -> Result<(), BusError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut failure: Option<String> = None;
        loop {
            let session = async {
                let mut watch = self
                    .store
                    .watch_with_history(key)
                    .await
                    .map_err(|error| Followed::Lost(error.to_string()))?;
                while let Some(entry) = watch.next().await {
                    let entry = entry.map_err(|error| Followed::Lost(error.to_string()))?;
                    if entry.operation == kv::Operation::Put
                        && on_put(&entry.value).map_err(Followed::Unreadable)?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            match tokio::time::timeout_at(deadline, session).await {
                Err(_elapsed) => break,
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => failure = None,
                Ok(Err(Followed::Unreadable(error))) => {
                    return Err(BusError::Incidents(format!("{key}: {error}")))
                }
                Ok(Err(Followed::Lost(error))) => {
                    tracing::debug!(message = "Watch lost; opening it again.", key, %error);
                    failure = Some(error);
                }
            }
            if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(250)))
                .await
                .is_err()
            {
                break;
            }
        }
        match failure {
            Some(error) => Err(BusError::Incidents(format!(
                "watching {key}: {error} (until the timeout)"
            ))),
            None => Ok(()),
        }
    }

    /// Every incident record in the bucket.
    pub async fn list(&self) -> Result<Vec<IncidentRecord>, BusError> {
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|error| BusError::Incidents(error.to_string()))?;
        let mut records = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|error| BusError::Incidents(error.to_string()))?;
            if let Some(incident_id) = key.strip_prefix("incident.") {
                if let Some(record) = self.get(incident_id).await? {
                    records.push(record);
                }
            }
        }
        Ok(records)
    }
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
