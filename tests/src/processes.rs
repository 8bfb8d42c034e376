//! The four services as separate OS processes on one nats-server, for the kill drills: a
//! service can be frozen (SIGSTOP), killed (SIGKILL, no drain, no goodbye) and started
//! again, while the others keep running.
//!
//! Each process runs the service binary the test names (the e2e package's
//! `dbtops-e2e-service`, which runs the same `dbtops_service::main` as each
//! `dbt-ops-<service>` binary) with `--config` pointing at one settings file for all four,
//! in an empty working directory so no `dbt-ops.toml` is picked up by accident.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dbtops_bus::{Bus, NatsServer};
use dbtops_settings::Settings;

use crate::dbt_bin;

/// The services, in pipeline order.
pub const SERVICES: [&str; 4] = ["detector", "fixer", "validator", "delivery"];

/// The variable that tells `dbtops-e2e-service` which service to run.
pub const SERVICE_VARIABLE: &str = "DBTOPS_E2E_SERVICE";

/// One service process.
#[derive(Debug)]
pub struct ServiceProcess {
    /// `detector`, `fixer`, `validator` or `delivery`.
    service: &'static str,
    /// The service binary.
    binary: PathBuf,
    /// The settings file.
    config: PathBuf,
    /// Its working directory.
    work_dir: PathBuf,
    /// Its log (stderr), appended across restarts.
    log: PathBuf,
    /// The process, while it runs.
    child: Option<Child>,
}

impl ServiceProcess {
    fn start(service: &'static str, binary: &Path, config: &Path, work_dir: &Path) -> Self {
        let mut process = Self {
            service,
            binary: binary.to_path_buf(),
            config: config.to_path_buf(),
            work_dir: work_dir.to_path_buf(),
            log: work_dir.join(format!("{service}.log")),
            child: None,
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("service log");
        let mut command = Command::new(&self.binary);
        command
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.work_dir)
            .env(SERVICE_VARIABLE, self.service)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // The settings file alone decides: nothing from the test's own environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("DBT_OPS__") || key == "NATS_URL" || key.starts_with("OTEL_") {
                command.env_remove(key);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary.display()));
        self.child = Some(child);
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the process gets no chance to drain, nak or clean up.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stays connected (its socket is still open) but does nothing,
    /// so whatever the server hands it is held without being handled.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Starts the service again with the same settings.
    pub fn restart(&mut self) {
        self.kill_9();
        self.spawn();
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The ids of the processes this one started (its direct children), from `/proc`.
    pub fn children(&self) -> Vec<u32> {
        self.pid().map(children_of).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            let status = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill {signal} {pid} failed");
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The four services as processes on their own nats-server.
pub struct ProcessSystem {
    /// The server; dropping it kills it.
    pub server: NatsServer,
    /// A client connection for the test itself.
    pub bus: Bus,
    /// The settings every process loaded (read back from the same file).
    pub settings: Settings,
    /// The service processes, in [`SERVICES`] order.
    services: Vec<ServiceProcess>,
    /// The server's store, the settings file, the processes' logs and the validator's
    /// workspaces.
    pub scratch: tempfile::TempDir,
}

impl ProcessSystem {
    /// Starts nats-server and one process per service running `binary`. The settings file
    /// holds the connection, a 5 s ack wait (a killed handler's message comes back 5 s
    /// after its last progress ack), real dbt and a workspace root of its own; `extra_toml`
    /// is appended to it (e.g. `[[fixer.providers]]`).
    pub async fn start(binary: &Path, extra_toml: &str) -> Self {
        crate::span_exporter();
        let scratch = tempfile::tempdir().expect("temp dir");
        let server = NatsServer::start(&scratch.path().join("nats")).expect("nats-server starts");
        let workspaces = scratch.path().join("workspaces");
        let work_dir = scratch.path().join("run");
        std::fs::create_dir_all(&workspaces).expect("workspace root");
        std::fs::create_dir_all(&work_dir).expect("working dir");
        let config = scratch.path().join("dbt-ops.toml");
        std::fs::write(
            &config,
            format!(
                "[nats]\nurl = {url}\nack_wait_secs = 5\n\n\
                 [validator]\ndbt_bin = {dbt}\nworkspace_root = {workspaces}\ndbt_timeout_secs = 240\n\n\
                 [telemetry]\notlp_endpoint = \"\"\nlog_filter = \"info\"\n\n{extra_toml}",
                url = toml_string(&server.url()),
                dbt = toml_string(&dbt_bin().display().to_string()),
                workspaces = toml_string(&workspaces.display().to_string()),
            ),
        )
        .expect("settings file");
        let settings = Settings::load_from(Some(&config), Vec::<(String, String)>::new())
            .unwrap_or_else(|error| panic!("the drill's settings file is invalid: {error}"));
        let bus = Bus::connect(&settings.nats).await.expect("bus connects");
        let services = SERVICES
            .iter()
            .map(|service| ServiceProcess::start(service, binary, &config, &work_dir))
            .collect();
        Self {
            server,
            bus,
            settings,
            services,
            scratch,
        }
    }

    /// The process of `service`.
    pub fn service(&mut self, service: &str) -> &mut ServiceProcess {
        self.services
            .iter_mut()
            .find(|process| process.service == service)
            .unwrap_or_else(|| panic!("no service {service}"))
    }

    /// The validator's workspace root.
    pub fn workspace_root(&self) -> PathBuf {
        PathBuf::from(&self.settings.validator.workspace_root)
    }

    /// Every process's log, for an assertion's message.
    pub fn logs(&self) -> String {
        self.services
            .iter()
            .map(|process| format!("--- {} ---\n{}\n", process.service, process.log()))
            .collect()
    }

    /// Waits until `durable` is pulling (see [`wait_until_pulling`]), with the logs in
    /// the panic message.
    pub async fn wait_until_pulling(&self, durable: &str) {
        if !wait_until_pulling(&self.bus, durable).await {
            panic!("{durable} is not pulling after 60 s:\n{}", self.logs());
        }
    }
}

/// Waits until the durable consumer `durable` has a pull request waiting at the server:
/// a process is reading it. Only meaningful while no process that died could have left a
/// request behind. False after 60 s.
pub async fn wait_until_pulling(bus: &Bus, durable: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let waiting = consumer_info(bus, durable)
            .await
            .map(|info| info.num_waiting)
            .unwrap_or(0);
        if waiting > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The server's view of the durable consumer `durable`, if it exists.
pub async fn consumer_info(
    bus: &Bus,
    durable: &str,
) -> Option<async_nats::jetstream::consumer::Info> {
    let stream = bus
        .jetstream()
        .get_stream(&bus.settings().stream)
        .await
        .ok()?;
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(durable).await.ok()?;
    consumer.info().await.ok().cloned()
}

/// Waits until every durable consumer in `durables` has nothing pending and nothing
/// unacknowledged: the system has finished what it was given (a redelivered message
/// included). False after 60 s.
pub async fn wait_until_idle(bus: &Bus, durables: &[&str]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let mut idle = true;
        for durable in durables {
            let info = consumer_info(bus, durable).await;
            idle &= info.is_some_and(|info| info.num_pending == 0 && info.num_ack_pending == 0);
        }
        if idle {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `text` as a TOML basic string (JSON's escapes are TOML's).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The ids of the live processes whose parent is `parent`, from `/proc/<pid>/stat`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent))
        .collect()
}

/// True while process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_fields(&stat).map(|(state, _)| state != "Z"))
        .unwrap_or(false)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).and_then(|(_, parent)| parent.parse().ok())
}

/// The state and parent id from a `/proc/<pid>/stat` line; the command name in
/// parentheses may itself hold spaces, so the fields are read after its closing one.
fn stat_fields(stat: &str) -> Option<(&str, &str)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    let parent = fields.next()?;
    Some((state, parent))
}
