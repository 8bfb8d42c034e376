//! What happens to an open forge merge request after it was opened: a later run failing
//! the same way adds a note to it (`dbtops.run.processed`, its recurring incidents), and
//! a later run passing (`dbtops.incident.resolved`) adds a note and closes it.
//!
//! Notes carry a marker per submission, so a redelivered event does not comment twice;
//! closing a closed merge request does not happen because only open ones are looked up.

use std::time::Duration;

use dbtops_bus::{Bus, Delivery, Outcome};
use dbtops_proto::{v1, WireMessage};

use crate::forge::{Forge, ForgeError};
use crate::Context;

/// Handles one `RunProcessed` or `IncidentResolved`, told apart by the `dbtops-type`
/// header.
#[tracing::instrument(name = "delivery.feedback", skip_all, fields(incident_id))]
pub async fn handle(bus: &Bus, context: &Context, delivery: Delivery) -> Outcome {
    let Some(forge) = &context.forge else {
        return Outcome::Done;
    };
    let result = match delivery.type_name() {
        Some(name) if name == v1::RunProcessed::TYPE_NAME => {
            match delivery.decode::<v1::RunProcessed>() {
                Ok(processed) => note_recurrences(bus, forge, &processed).await,
                Err(rejection) => return rejection,
            }
        }
        Some(name) if name == v1::IncidentResolved::TYPE_NAME => {
            match delivery.decode::<v1::IncidentResolved>() {
                Ok(resolved) => {
                    tracing::Span::current().record("incident_id", resolved.incident_id.as_str());
                    close_resolved(bus, forge, &resolved).await
                }
                Err(rejection) => return rejection,
            }
        }
        other => {
            return Outcome::reject(format!(
                "delivery-feedback does not handle messages of type {other:?}"
            ))
        }
    };
    match result {
        Ok(()) => Outcome::Done,
        Err(Failed::Retry(after, reason)) => Outcome::retry(after, reason),
        Err(Failed::Permanent(reason)) => {
            // A note that cannot be written (a refused token, a deleted project) is not
            // worth holding the stream for; the merge request itself is unaffected.
            tracing::warn!(message = "Feedback not written to the merge request.", %reason);
            Outcome::Done
        }
    }
}

enum Failed {
    Retry(Duration, String),
    Permanent(String),
}

impl From<ForgeError> for Failed {
    fn from(error: ForgeError) -> Self {
        match error.retry_after() {
            Some(after) => Failed::Retry(after, error.to_string()),
            None => Failed::Permanent(error.to_string()),
        }
    }
}

impl From<dbtops_bus::BusError> for Failed {
    fn from(error: dbtops_bus::BusError) -> Self {
        Failed::Retry(Duration::from_secs(2), error.to_string())
    }
}

/// The branch of an incident: as recorded, else rebuilt from its model.
fn branch_of(record: &dbtops_bus::IncidentRecord) -> String {
    record
        .branch
        .clone()
        .unwrap_or_else(|| dbtops_guardrails::fix_branch_name(&record.model, &record.incident_id))
}

async fn note_recurrences(
    bus: &Bus,
    forge: &Forge,
    processed: &v1::RunProcessed,
) -> Result<(), Failed> {
    let store = bus.incidents().await?;
    for incident_id in &processed.recurring_incident_ids {
        let Some(record) = store.get(incident_id).await? else {
            continue;
        };
        // Only incidents with a forge merge request have somewhere to note it.
        if record.url.is_none() {
            continue;
        }
        let Some(open) = forge.find_open(&branch_of(&record)).await? else {
            continue;
        };
        let marker = format!("<!-- dbt-ops recurrence: {} -->", processed.submission_id);
        let body = format!(
            "dbt-ops saw this failure again in submission `{}` ({} time(s) since this merge \
             request was opened). Merging this fix should stop it.",
            processed.submission_id,
            record.recurrences.max(1)
        );
        if forge.add_note_once(open.number, &marker, &body).await? {
            tracing::info!(message = "Recurrence noted on the merge request.", incident_id = %incident_id, url = %open.url);
        }
    }
    Ok(())
}

async fn close_resolved(
    bus: &Bus,
    forge: &Forge,
    resolved: &v1::IncidentResolved,
) -> Result<(), Failed> {
    let store = bus.incidents().await?;
    let branch = match store.get(&resolved.incident_id).await? {
        Some(record) => branch_of(&record),
        None => {
            let model = resolved.model.clone().unwrap_or_default();
            dbtops_guardrails::fix_branch_name(&model.name, &resolved.incident_id)
        }
    };
    // Only an open merge request: a merged one stays merged, a closed one closed.
    let Some(open) = forge.find_open(&branch).await? else {
        return Ok(());
    };
    let marker = crate::description::incident_marker(&resolved.incident_id);
    if !open.description.contains(&marker) {
        // Not opened by dbt-ops for this incident: leave it alone.
        return Ok(());
    }
    let note_marker = format!("<!-- dbt-ops resolved: {} -->", resolved.submission_id);
    let body = format!(
        "dbt-ops saw `{}` pass again in submission `{}` without this change, so the failure \
         is resolved; closing this merge request. Reopen it if the fix is still wanted.",
        resolved
            .model
            .as_ref()
            .map(|model| model.name.as_str())
            .unwrap_or("the model"),
        resolved.submission_id
    );
    forge
        .add_note_once(open.number, &note_marker, &body)
        .await?;
    forge.close(open.number).await?;
    tracing::info!(message = "Resolved incident's merge request closed.", url = %open.url);
    Ok(())
}
