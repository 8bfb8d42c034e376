//! A three-node nats-server JetStream cluster on loopback, for the cluster drill: every
//! node its own server name, client port, route port, monitoring port and store directory;
//! routes to all three; a node can be killed (SIGKILL) and started again on the same ports
//! and store.
//!
//! Readiness comes from the nodes' own monitoring endpoint (`/jsz`): the cluster is ready
//! when a node says it is the meta leader and that every other running node is current —
//! only then can a stream with three replicas be placed.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How many nodes the cluster has.
pub const CLUSTER_NODES: usize = 3;
/// The cluster's name in every node's configuration.
const CLUSTER_NAME: &str = "dbtops-e2e";

/// One node of the cluster.
#[derive(Debug)]
struct ClusterNode {
    /// Its server name (`n0`, `n1`, `n2`): what `/jsz` and a client's server info call it.
    name: String,
    /// The client port.
    client_port: u16,
    /// The monitoring (HTTP) port, for `/jsz`.
    monitor_port: u16,
    /// Its configuration file.
    config: PathBuf,
    /// Where its log goes, appended across restarts so a failure can show the whole story.
    log: PathBuf,
    /// The process, while it runs.
    child: Option<Child>,
}

/// Three `nats-server` processes in one JetStream cluster; dropping it kills them.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, in the order of their names.
    nodes: Vec<ClusterNode>,
    /// The nats-server binary (the project's virtualenv's 2.15).
    binary: PathBuf,
}

impl NatsCluster {
    /// Writes three node configurations under `dir`, starts the nodes and waits until the
    /// cluster has a meta leader that sees both other nodes as current.
    pub async fn start(dir: &Path) -> Self {
        let binary = dbtops_bus::server::find_nats_server()
            .unwrap_or_else(|error| panic!("nats-server: {error}"));
        std::fs::create_dir_all(dir).expect("cluster dir");
        // Route ports are chosen first: every node's configuration lists all three.
        let route_ports: Vec<u16> = (0..CLUSTER_NODES).map(|_| free_port()).collect();
        let routes: String = route_ports
            .iter()
            .map(|port| format!("    \"nats-route://127.0.0.1:{port}\"\n"))
            .collect();
        let mut nodes = Vec::new();
        for (index, route_port) in route_ports.iter().enumerate() {
            let name = format!("n{index}");
            let client_port = free_port();
            let monitor_port = free_port();
            let store = dir.join(format!("{name}-store"));
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: \"{name}\"\n\
                     listen: \"127.0.0.1:{client_port}\"\n\
                     http: \"127.0.0.1:{monitor_port}\"\n\
                     jetstream {{\n  store_dir: \"{store}\"\n}}\n\
                     cluster {{\n  name: \"{CLUSTER_NAME}\"\n  listen: \"127.0.0.1:{route_port}\"\n  routes: [\n{routes}  ]\n}}\n",
                    store = store.display(),
                ),
            )
            .expect("node configuration");
            nodes.push(ClusterNode {
                log: dir.join(format!("{name}.log")),
                name,
                client_port,
                monitor_port,
                config,
                child: None,
            });
        }
        let mut cluster = Self { nodes, binary };
        for index in 0..CLUSTER_NODES {
            cluster.spawn(index);
        }
        cluster.wait_until_ready().await;
        cluster
    }

    /// The client URL of node `index`.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    /// The index of the node with server name `name` (as a client's server info has it).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The server name of node `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    /// Kills node `index` with SIGKILL, keeping its store: no goodbye to its peers or
    /// clients, as a crashed machine would leave them.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on the same ports and store, and waits until the cluster
    /// counts it current again.
    pub async fn restart(&mut self, index: usize) {
        self.kill(index);
        self.spawn(index);
        self.wait_until_ready().await;
    }

    /// The meta leader's server name, asked of the running nodes.
    pub async fn meta_leader(&self) -> Option<String> {
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            if let Some(jsz) = monitor(node.monitor_port, "/jsz").await {
                let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or_default();
                if !leader.is_empty() {
                    return Some(leader.to_owned());
                }
            }
        }
        None
    }

    /// Every node's log, for an assertion's message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} ---\n{}\n", node.name, tail.join("\n"))
            })
            .collect()
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("node log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.binary.display()));
        node.child = Some(child);
    }

    /// Waits until every running node listens, and the meta leader sees every other
    /// running node as current. Panics with the nodes' logs after 60 s.
    async fn wait_until_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.is_ready().await {
                return;
            }
            let exited = self.nodes.iter_mut().find_map(|node| {
                let status = node.child.as_mut()?.try_wait().ok().flatten()?;
                Some(format!("{} exited with {status}", node.name))
            });
            if let Some(exited) = exited {
                panic!("{exited}:\n{}", self.logs());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cluster has no meta leader with every node current after 60 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_ready(&self) -> bool {
        let running: Vec<&ClusterNode> = self
            .nodes
            .iter()
            .filter(|node| node.child.is_some())
            .collect();
        let mut leader_sees_everyone = false;
        for node in &running {
            let Some(jsz) = monitor(node.monitor_port, "/jsz").await else {
                return false;
            };
            let meta = &jsz["meta_cluster"];
            let leader = meta["leader"].as_str().unwrap_or_default();
            if leader.is_empty() {
                return false;
            }
            if leader != node.name {
                continue;
            }
            let current: Vec<&str> = meta["replicas"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|peer| peer["current"].as_bool() == Some(true))
                .filter_map(|peer| peer["name"].as_str())
                .collect();
            leader_sees_everyone = running
                .iter()
                .filter(|other| other.name != node.name)
                .all(|other| current.contains(&other.name.as_str()));
        }
        leader_sees_everyone
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}

/// GETs `path` from a node's monitoring port and parses the JSON body; `None` while the
/// node does not answer.
async fn monitor(port: u16, path: &str) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response);
        let (_, body) = response.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// A port nothing listens on now (the OS's pick for an ephemeral bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}
