//! `dbt-ops up`: the whole system on one machine, and how the other commands find it.
//!
//! `up` connects to the configured NATS. When nothing answers there — or what answers is a
//! nats-server older than 2.10, like Debian's 2.9 — and the URL is on this machine, it
//! starts a private `nats-server -js` (store under `.dbt-ops/nats`), on the configured
//! port when that is free, and records the URL in `.dbt-ops/endpoint.json` (here and under
//! the home directory) so that `submit` and `watch`, run without an explicit NATS URL,
//! find it.

use std::path::{Path, PathBuf};

use dbtops_bus::{Bus, BusError, NatsServer};
use dbtops_settings::{NatsSettings, Settings};
use serde::{Deserialize, Serialize};

/// Where the private nats-server keeps its store, under the working directory.
pub const PRIVATE_STORE: &str = ".dbt-ops/nats";
/// Where `up` records the URL of the system it runs.
pub const ENDPOINT_FILE: &str = ".dbt-ops/endpoint.json";

/// The system `up` runs, as recorded for the other commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The NATS URL.
    pub url: String,
    /// The process id of `dbt-ops up`.
    pub pid: u32,
}

/// Connects to the configured NATS, or starts a private one (see the module docs). The
/// server, if one was started, lives as long as the returned handle.
pub async fn connect_or_start(
    settings: &mut Settings,
) -> Result<(Bus, Option<NatsServer>), BusError> {
    let why_private = match Bus::connect(&settings.nats).await {
        Ok(bus) => return Ok((bus, None)),
        Err(BusError::Unreachable { url, reason }) => {
            format!("nothing answers at {url} ({reason})")
        }
        Err(BusError::ServerTooOld { found }) => {
            format!(
                "the nats-server at {} is {found}, older than 2.10",
                settings.nats.url
            )
        }
        Err(other) => return Err(other),
    };
    let Some(port) = loopback_port(&settings.nats.url) else {
        return Err(BusError::Server(format!(
            "{why_private}, and {} is not on this machine, so no private server can stand in",
            settings.nats.url
        )));
    };
    // Keep the configured port when it is free, so the default URL keeps working.
    let server = NatsServer::start_on(Path::new(PRIVATE_STORE), Some(port))?;
    tracing::info!(message = "Started a private nats-server.", reason = %why_private, url = %server.url());
    settings.nats.url = server.url();
    let bus = Bus::connect(&settings.nats).await?;
    record_endpoint(&Endpoint {
        url: server.url(),
        pid: std::process::id(),
    });
    Ok((bus, Some(server)))
}

/// The port of a `nats://` URL on 127.0.0.1 or localhost.
fn loopback_port(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host_port = rest.rsplit('@').next()?.split('/').next()?;
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "4222"));
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
        .then(|| port.parse().ok())
        .flatten()
}

fn endpoint_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(ENDPOINT_FILE)];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(PathBuf::from(home).join(ENDPOINT_FILE));
    }
    paths
}

fn record_endpoint(endpoint: &Endpoint) {
    let Ok(json) = serde_json::to_vec_pretty(endpoint) else {
        return;
    };
    for path in endpoint_paths() {
        let written = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&path, &json));
        if let Err(error) = written {
            tracing::warn!(message = "Cannot record the endpoint.", path = %path.display(), %error);
        }
    }
}

/// Removes the endpoint records this process wrote.
pub fn forget_endpoint() {
    for path in endpoint_paths() {
        let ours = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Endpoint>(&bytes).ok())
            .is_some_and(|endpoint| endpoint.pid == std::process::id());
        if ours {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// For commands that talk to a running system: when no NATS URL was given explicitly, use
/// the one `dbt-ops up` recorded, if its process still runs.
pub fn resolve_nats_url(nats: &mut NatsSettings) {
    let explicit = std::env::var_os("NATS_URL").is_some()
        || std::env::var_os("DBT_OPS__NATS__URL").is_some()
        || nats.url != NatsSettings::default().url;
    if explicit {
        return;
    }
    let recorded = endpoint_paths().into_iter().find_map(|path| {
        let endpoint: Endpoint = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        Path::new(&format!("/proc/{}", endpoint.pid))
            .exists()
            .then_some(endpoint)
    });
    if let Some(endpoint) = recorded {
        nats.url = endpoint.url;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_get_a_private_server() {
        assert_eq!(loopback_port("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(loopback_port("nats://localhost:5000"), Some(5000));
        assert_eq!(loopback_port("nats://user:pw@127.0.0.1:6222"), Some(6222));
        assert_eq!(loopback_port("nats://127.0.0.1"), Some(4222));
        assert_eq!(loopback_port("nats://nats.prod.internal:4222"), None);
    }
}
