//! `dbt-ops up`: the whole system on one machine.

use std::path::Path;

use dbtops_bus::{Bus, BusError, NatsServer};
use dbtops_settings::Settings;

/// Where the private nats-server keeps its store, under the working directory.
pub const PRIVATE_STORE: &str = ".dbt-ops/nats";

/// Connects to the configured NATS, or — when nothing answers there — starts a private
/// `nats-server -js` with its store under `.dbt-ops/` and connects to that. The server,
/// if one was started, lives as long as the returned handle.
pub async fn connect_or_start(
    settings: &mut Settings,
) -> Result<(Bus, Option<NatsServer>), BusError> {
    match Bus::connect(&settings.nats).await {
        Ok(bus) => Ok((bus, None)),
        Err(BusError::Unreachable { url, reason }) => {
            tracing::info!(message = "No NATS answers; starting a private nats-server.", %url, %reason);
            let server = NatsServer::start(Path::new(PRIVATE_STORE))?;
            settings.nats.url = server.url();
            let bus = Bus::connect(&settings.nats).await?;
            Ok((bus, Some(server)))
        }
        Err(other) => Err(other),
    }
}
