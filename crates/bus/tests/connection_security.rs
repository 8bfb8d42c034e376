//! Connecting with credentials and TLS against real nats-servers: a token over TLS with a
//! private CA (`tls://` URL or `nats.tls_ca_file`), user and password (in the settings or
//! in the URL), a `.creds` file (JWT + NKey seed) on an operator-mode server with the
//! fixtures of `tests/credentials`, a `.creds` file that cannot be used — and none of the
//! secrets in an error, in `Debug`, or in anything logged, at any level, by dbt-ops or by
//! the NATS client.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dbtops_bus::{Bus, BusError};
use dbtops_proto::v1;
use dbtops_settings::{NatsSettings, Secret};

const TOKEN: &str = "tok3n-9f8e7d6c5b4a";
const PASSWORD: &str = "pa55word-1a2b3c4d5e";
const CREDS_SEED: &str = "SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM";

/// Everything any span or event recorded in this test binary, as text.
fn captured() -> &'static Arc<Mutex<String>> {
    static CAPTURED: OnceLock<Arc<Mutex<String>>> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(String::new()));
        // The NATS client's own tracing too, at trace level: CONNECT ops, server addresses.
        tracing::subscriber::set_global_default(Capture {
            buffer: buffer.clone(),
            next_id: AtomicU64::new(1),
        })
        .expect("the only subscriber of this test binary");
        buffer
    })
}

/// A subscriber that writes every field of every span and event into a buffer.
struct Capture {
    buffer: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

struct FieldWriter<'a>(&'a mut String);

impl tracing::field::Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl Capture {
    fn write(&self, what: &tracing::Metadata<'_>, record: impl FnOnce(&mut FieldWriter<'_>)) {
        let mut buffer = self.buffer.lock().unwrap();
        let _ = write!(buffer, "{} {}:", what.level(), what.target());
        record(&mut FieldWriter(&mut buffer));
        buffer.push('\n');
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.write(span.metadata(), |writer| span.record(writer));
        tracing::span::Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut buffer = self.buffer.lock().unwrap();
        values.record(&mut FieldWriter(&mut buffer));
        buffer.push('\n');
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        self.write(event.metadata(), |writer| event.record(writer));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nats-server with JetStream and `extra` configuration, on a free loopback port.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(dir: tempfile::TempDir, extra: &str) -> Self {
        let port = free_port();
        let config = dir.path().join("server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n{extra}\n",
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("nats-server.log")).unwrap();
        let child = Command::new(dbtops_bus::server::find_nats_server().unwrap())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = Self { child, port, dir };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "nats-server exited with {status}: {}",
                    std::fs::read_to_string(server.dir.path().join("nats-server.log"))
                        .unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nats-server never listened");
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A private CA and a certificate it signed for 127.0.0.1, made with the openssl CLI:
/// `ca.pem`, `server.pem`, `server.key` in `dir`.
fn private_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dbt-ops test CA",
    ]);
    openssl(dir, &ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

fn settings(url: String) -> NatsSettings {
    NatsSettings {
        url,
        ..Default::default()
    }
}

/// Connects and publishes one message, proving the connection works end to end.
async fn connect_and_publish(settings: &NatsSettings) -> Result<Bus, BusError> {
    let bus = Bus::connect(settings).await?;
    bus.publish(
        &bus.subjects().run_processed(),
        &format!("probe-{}", free_port()),
        &v1::RunProcessed::default(),
    )
    .await?;
    Ok(bus)
}

fn assert_no_secret(text: &str) {
    for secret in [TOKEN, PASSWORD, CREDS_SEED] {
        assert!(!text.contains(secret), "a secret leaked into:\n{text}");
    }
}

#[tokio::test]
async fn a_token_over_tls_with_a_private_ca() {
    let _ = captured();
    let dir = tempfile::tempdir().unwrap();
    private_ca(dir.path());
    let ca = dir.path().join("ca.pem").display().to_string();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let server = Server::start(
        dir,
        &format!(
            "tls {{ cert_file: \"{}\", key_file: \"{}\" }}\n\
             authorization {{ token: \"{TOKEN}\" }}",
            cert.display(),
            key.display()
        ),
    );
    let port = server.port;

    // tls:// URL, the CA in the settings, the token in the settings.
    let mut tls = settings(format!("tls://127.0.0.1:{port}"));
    tls.tls_ca_file = ca.clone();
    tls.token = Secret::from(TOKEN);
    let bus = connect_and_publish(&tls).await.unwrap();
    assert!(!format!("{bus:?}").contains(TOKEN));

    // A nats:// URL with the CA set still insists on TLS; the token may ride in the URL.
    let mut in_url = settings(format!("nats://{TOKEN}@127.0.0.1:{port}"));
    in_url.tls_ca_file = ca.clone();
    connect_and_publish(&in_url).await.unwrap();

    // Without the private CA the server's certificate is not trusted.
    let mut untrusted = tls.clone();
    untrusted.tls_ca_file = String::new();
    let error = Bus::connect(&untrusted).await.unwrap_err().to_string();
    assert!(
        error.starts_with("cannot reach NATS at tls://127.0.0.1:"),
        "{error}"
    );
    assert_no_secret(&error);

    // A wrong token is refused, and the error shows neither token.
    let mut wrong = tls.clone();
    wrong.token = Secret::from("not-it-0000");
    let error = Bus::connect(&wrong).await.unwrap_err().to_string();
    assert!(error.contains("authorization violation"), "{error}");
    assert!(!error.contains("not-it-0000"), "{error}");
    assert_no_secret(&error);

    // A CA file that is not there is named.
    let mut missing = tls.clone();
    missing.tls_ca_file = "/nonexistent/ca.pem".into();
    let error = Bus::connect(&missing).await.unwrap_err();
    assert!(matches!(error, BusError::Credentials { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");

    assert_no_secret(&captured().lock().unwrap());
}

#[tokio::test]
async fn user_and_password_from_the_settings_or_the_url() {
    let _ = captured();
    let server = Server::start(
        tempfile::tempdir().unwrap(),
        &format!("authorization {{ users: [ {{ user: ci, password: \"{PASSWORD}\" }} ] }}"),
    );
    let port = server.port;

    let mut from_settings = settings(format!("nats://127.0.0.1:{port}"));
    from_settings.user = "ci".into();
    from_settings.password = Secret::from(PASSWORD);
    let bus = connect_and_publish(&from_settings).await.unwrap();
    assert!(!format!("{bus:?}").contains(PASSWORD));
    // Replies come to the user's own inbox, which a server can reserve for it.
    assert!(bus.client().new_inbox().starts_with("_INBOX_ci."));

    let in_url = settings(format!("nats://ci:{PASSWORD}@127.0.0.1:{port}"));
    connect_and_publish(&in_url).await.unwrap();

    // The URL is named in errors without its credentials.
    let refused = settings(format!("nats://ci:{PASSWORD}@127.0.0.1:{}", free_port()));
    let error = Bus::connect(&refused).await.unwrap_err();
    assert!(matches!(error, BusError::Unreachable { .. }), "{error}");
    let error = error.to_string();
    assert!(error.contains("nats://127.0.0.1:"), "{error}");
    assert_no_secret(&error);

    let wrong = settings(format!("nats://ci:wrong-{PASSWORD}x@127.0.0.1:{port}"));
    let error = Bus::connect(&wrong).await.unwrap_err().to_string();
    assert!(error.contains("authorization violation"), "{error}");
    assert!(!error.contains("wrong-"), "{error}");

    assert_no_secret(&captured().lock().unwrap());
}

#[tokio::test]
async fn a_credentials_file_that_cannot_be_used_is_named_without_its_content() {
    let _ = captured();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("fixer.creds");
    // A seed but no JWT: unusable, and the seed must not be echoed.
    std::fs::write(
        &creds,
        format!("-----BEGIN USER NKEY SEED-----\n{CREDS_SEED}\n------END USER NKEY SEED------\n"),
    )
    .unwrap();
    let mut with_creds = settings(format!("nats://127.0.0.1:{}", free_port()));
    with_creds.credentials_file = creds.display().to_string();
    let error = Bus::connect(&with_creds).await.unwrap_err();
    assert!(matches!(error, BusError::Credentials { .. }), "{error}");
    let text = error.to_string();
    assert!(text.contains("fixer.creds"), "{text}");
    assert_no_secret(&text);

    with_creds.credentials_file = dir.path().join("absent.creds").display().to_string();
    let error = Bus::connect(&with_creds).await.unwrap_err().to_string();
    assert!(error.contains("absent.creds"), "{error}");

    assert_no_secret(&captured().lock().unwrap());
}

#[tokio::test]
async fn the_capture_sees_the_clients_own_trace_lines() {
    // Without this, a silent capture would make the leak checks above pass vacuously.
    let _ = captured();
    let store = tempfile::tempdir().unwrap();
    let server = dbtops_bus::NatsServer::start(store.path()).unwrap();
    Bus::connect(&settings(server.url())).await.unwrap();
    let text = captured().lock().unwrap().clone();
    assert!(text.contains("TRACE async_nats"), "{text}");
    assert!(text.contains("CONNECT"), "{text}");
}

/// The fixtures of `tests/credentials` (see `generate.py` there): test-only keys.
fn credentials_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/credentials")
        .join(name);
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_creds_file_signs_in_to_an_operator_mode_server_and_its_seed_stays_secret() {
    let _ = captured();
    let account = credentials_fixture("account.pub");
    let system = credentials_fixture("system.pub");
    let server = Server::start(
        tempfile::tempdir().unwrap(),
        &format!(
            "operator: \"{}\"\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{ {system}: \"{}\", {account}: \"{}\" }}",
            credentials_fixture("operator.jwt"),
            credentials_fixture("system.jwt"),
            credentials_fixture("account.jwt"),
        ),
    );
    let mut with_creds = settings(format!("nats://127.0.0.1:{}", server.port));
    with_creds.credentials_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/credentials/user.creds")
        .display()
        .to_string();
    let bus = connect_and_publish(&with_creds).await.unwrap();
    let seed = credentials_fixture("user.seed");
    assert!(!format!("{bus:?}").contains(&seed));
    let stored = bus.replay(&bus.subjects().run_processed()).await.unwrap();
    assert_eq!(stored.len(), 1);

    // The same JWT with another key's seed cannot sign for it: refused, neither seed shown.
    let dir = tempfile::tempdir().unwrap();
    let forged = dir.path().join("forged.creds");
    let genuine = std::fs::read_to_string(&with_creds.credentials_file).unwrap();
    std::fs::write(&forged, genuine.replace(&seed, CREDS_SEED)).unwrap();
    with_creds.credentials_file = forged.display().to_string();
    let error = Bus::connect(&with_creds).await.unwrap_err().to_string();
    assert!(error.contains("authorization violation"), "{error}");
    assert!(!error.contains(&seed), "{error}");
    assert_no_secret(&error);

    let log = captured().lock().unwrap().clone();
    assert!(!log.contains(&seed), "the seed leaked into the log");
}
