//! Helpers for the end-to-end tests: a real nats-server per test, the real example dbt
//! project in a real git repository in a temp dir, real dbt from the project's virtualenv.
//!
//! Nothing here fakes a part: a test that cannot find dbt or nats-server fails and says
//! how to install them (`scripts/setup.sh`, which the test command runs first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dbtops_bus::{Bus, NatsServer};
use dbtops_settings::Settings;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod cluster;
pub mod http;
pub mod processes;

pub use cluster::NatsCluster;
pub use processes::{ProcessSystem, ServiceProcess};

/// The repository root (this crate sits in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A loopback address with a port free at the time of the call, for a server the test
/// configures (the port is released before the server binds it; a rare race, as with
/// any fixed port).
pub fn free_loopback_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let address = listener.local_addr().expect("the port's address");
    address.to_string()
}

/// The virtualenv's dbt. Panics with the fix when it is missing: never a silent skip.
pub fn dbt_bin() -> PathBuf {
    let dbt = repo_root().join(".venv/bin/dbt");
    assert!(
        dbt.is_file(),
        "{} is missing: run scripts/setup.sh (scripts/test.sh does) to install dbt-core + dbt-duckdb 1.11 and nats-server 2.15",
        dbt.display()
    );
    dbt
}

/// Spans finished by any system in this test binary, for trace assertions.
pub fn span_exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(
        InMemorySpanExporter,
        Option<dbtops_telemetry::TelemetryGuard>,
    )> = OnceLock::new();
    let (exporter, _guard) = EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let guard = dbtops_telemetry::init_with_exporter(
            &dbtops_telemetry::TelemetryConfig {
                service_name: "dbt-ops-e2e".into(),
                otlp_endpoint: None,
                log_filter: "info".into(),
                json_logs: false,
            },
            exporter.clone(),
        )
        .ok();
        (exporter, guard)
    });
    exporter
}

/// The four services on their own nats-server.
pub struct TestSystem {
    /// The server; dropping it kills it.
    pub server: NatsServer,
    /// A client connection for the test itself.
    pub bus: Bus,
    /// The settings the services run with.
    pub settings: Settings,
    /// Tells the services to stop.
    stop: Option<oneshot::Sender<()>>,
    /// The services' task.
    services: Option<JoinHandle<Result<(), dbt_ops::system::SystemError>>>,
    /// The server's store and the validator's workspaces.
    pub scratch: tempfile::TempDir,
}

impl TestSystem {
    /// Starts nats-server and the four services; `configure` adjusts the settings first.
    pub async fn start(configure: impl FnOnce(&mut Settings)) -> Self {
        span_exporter();
        let scratch = tempfile::tempdir().expect("temp dir");
        let server = NatsServer::start(&scratch.path().join("nats")).expect("nats-server starts");
        let workspaces = scratch.path().join("workspaces");
        std::fs::create_dir_all(&workspaces).expect("workspace root");
        let mut settings = Settings::default();
        settings.nats.url = server.url();
        settings.nats.ack_wait_secs = 10;
        settings.validator.dbt_bin = dbt_bin().display().to_string();
        settings.validator.workspace_root = workspaces.display().to_string();
        settings.validator.dbt_timeout_secs = 240;
        configure(&mut settings);
        let bus = Bus::connect(&settings.nats).await.expect("bus connects");
        let (stop, stopped) = oneshot::channel::<()>();
        let services = tokio::spawn(dbt_ops::system::run_all(
            bus.clone(),
            settings.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            server,
            bus,
            settings,
            stop: Some(stop),
            services: Some(services),
            scratch,
        }
    }

    /// Stops the services, letting what is in flight finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(services) = self.services.take() {
            services
                .await
                .expect("services task")
                .expect("services stop cleanly");
        }
    }

    /// The validator's workspace root: empty once every validation is done.
    pub fn workspace_root(&self) -> PathBuf {
        PathBuf::from(&self.settings.validator.workspace_root)
    }
}

/// The example project committed to a fresh git repository, nested one level down so the
/// project is not the repository root.
pub struct ExampleRepo {
    /// Owns the temp dir.
    _dir: tempfile::TempDir,
    /// The repository root.
    pub root: PathBuf,
    /// The dbt project inside it.
    pub project: PathBuf,
}

impl ExampleRepo {
    /// Copies `examples/coffee_shop` into `<tmp>/repo/analytics/coffee_shop` and commits
    /// it on `main`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("repo");
        let project = root.join("analytics/coffee_shop");
        copy_tree(&repo_root().join("examples/coffee_shop"), &project);
        let repo = Self {
            _dir: dir,
            root,
            project,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "coffee_shop"]);
        repo
    }

    /// Runs git in the repository; panics on failure; returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(&self.root)
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Replaces `from` by `to` in a project file and commits the change, as a teammate's
    /// bad merge would.
    pub fn break_model(&self, path: &str, from: &str, to: &str) -> String {
        let file = self.project.join(path);
        let original = std::fs::read_to_string(&file).expect("model file");
        assert!(original.contains(from), "{path} does not contain {from:?}");
        std::fs::write(&file, original.replacen(from, to, 1)).expect("write model");
        self.git(&["commit", "-q", "-am", &format!("change {path}")]);
        original
    }

    /// Runs real dbt in the project (its own profiles.yml, its own DuckDB file).
    pub fn dbt(&self, args: &[&str]) -> (bool, String) {
        run_dbt(&self.project, args)
    }

    /// The branches dbt-ops made.
    pub fn fix_branches(&self) -> Vec<String> {
        self.git(&["branch", "--list", "dbt-ops/*", "--format=%(refname:short)"])
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Default for ExampleRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs real dbt in `project` with `--profiles-dir` there.
pub fn run_dbt(project: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(dbt_bin())
        .args(args)
        .args(["--profiles-dir", "."])
        .current_dir(project)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DO_NOT_TRACK", "1")
        .output()
        .expect("dbt runs");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Copies a directory tree (regular files only), skipping build output.
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            let build_output =
                entry.depth() > 0 && ["target", "logs", "dbt_packages"].contains(&name.as_ref());
            !build_output && !name.ends_with(".duckdb")
        })
    {
        let entry = entry.expect("walk");
        let relative = entry.path().strip_prefix(from).expect("under root");
        let target = to.join(relative);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
