//! A `merged` score on an incident's trace in Langfuse (`POST /api/public/scores`), so
//! the traces of fixes humans accepted can be told from those they rejected.

use dbtops_settings::{DeliverySettings, Secret};
use reqwest::Method;
use serde_json::json;

use crate::http::{HttpClient, HttpError};

/// A configured Langfuse project.
#[derive(Debug, Clone)]
pub struct Langfuse {
    /// Shared client with retries.
    http: HttpClient,
    /// e.g. `https://cloud.langfuse.com`.
    base_url: String,
    /// Basic-auth user name.
    public_key: String,
    /// Basic-auth password; only ever sent in the `Authorization` header.
    secret_key: Secret,
}

/// Why a score was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum LangfuseError {
    /// Transient, still so after the retries.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Langfuse refused it (keys, an unknown trace is *not* refused: scores may precede
    /// their trace).
    #[error("Langfuse refused the score (HTTP {status}): {body}")]
    Refused {
        /// The status.
        status: u16,
        /// The start of its answer.
        body: String,
    },
}

impl Langfuse {
    /// The client, or `None` when `delivery.langfuse.base_url` is empty.
    pub fn from_settings(settings: &DeliverySettings) -> Result<Option<Self>, HttpError> {
        let langfuse = &settings.langfuse;
        if langfuse.base_url.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            http: HttpClient::new(settings)?,
            base_url: langfuse.base_url.trim_end_matches('/').to_owned(),
            public_key: langfuse.public_key.clone(),
            secret_key: langfuse.secret_key.clone(),
        }))
    }

    /// Records `merged` (1 merged, 0 closed unmerged) on `trace_id`.
    ///
    /// The score's id is derived from the incident and the trace, so a redelivered webhook
    /// — or a merge request closed and later reopened and merged — updates the one score
    /// instead of adding another.
    pub async fn score_merged(
        &self,
        incident_id: &str,
        trace_id: &str,
        merged: bool,
        comment: &str,
    ) -> Result<(), LangfuseError> {
        let body = json!({
            "id": score_id(incident_id, trace_id),
            "traceId": trace_id,
            "name": "merged",
            "value": if merged { 1 } else { 0 },
            "dataType": "BOOLEAN",
            "comment": comment,
        });
        let url = format!("{}/api/public/scores", self.base_url);
        let answer = self
            .http
            .send("Langfuse", "POST /api/public/scores", || {
                self.http
                    .request(Method::POST, &url)
                    .basic_auth(&self.public_key, Some(self.secret_key.expose()))
                    .json(&body)
            })
            .await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(LangfuseError::Refused {
                status: answer.status.as_u16(),
                body: answer.excerpt(),
            })
        }
    }
}

/// The deterministic score id: one `merged` score per incident and trace.
pub fn score_id(incident_id: &str, trace_id: &str) -> String {
    format!("dbt-ops-merged-{incident_id}-{trace_id}")
}
