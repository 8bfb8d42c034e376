//! Typed settings for every dbt-ops process.
//!
//! Layers, later wins: the defaults written here < a TOML file (`dbt-ops.toml`, or the one
//! named with `--config`) < environment variables `DBT_OPS__SECTION__KEY` (for example
//! `DBT_OPS__FIXER__MAX_ATTEMPTS=5`). Settings are loaded once at start-up; a value that
//! does not parse or is out of range stops start-up with an error naming the key.
//! `dbt-ops.example.toml` at the repository root documents every key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The environment prefix; keys below it are separated by a double underscore.
pub const ENV_PREFIX: &str = "DBT_OPS";
/// The settings file read from the working directory when no other is named.
pub const DEFAULT_FILE: &str = "dbt-ops.toml";

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The named file does not exist (only for a file named explicitly).
    #[error("settings file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value did not parse; the config crate's message names the key. Kept as text so
    /// the message is printed once, not again as its own cause.
    #[error("invalid settings: {0}")]
    Parse(String),
    /// A value parsed but is outside what dbt-ops can work with.
    #[error("invalid settings: `{key}` {problem}")]
    Invalid {
        /// The dotted key, e.g. `fixer.max_attempts`.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

impl From<config::ConfigError> for SettingsError {
    fn from(error: config::ConfigError) -> Self {
        SettingsError::Parse(error.to_string())
    }
}

/// A secret string (password, token, API key): never printed by Debug or Display.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret's value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

/// Every setting of every service; each process reads the sections it needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How to reach NATS and how the stream is laid out.
    pub nats: NatsSettings,
    /// Logs and trace export.
    pub telemetry: TelemetrySettings,
    /// From artifacts to incidents.
    pub detector: DetectorSettings,
    /// From incident to proposal.
    pub fixer: FixerSettings,
    /// From proposal to proof.
    pub validator: ValidatorSettings,
    /// From proof to branch or merge request.
    pub delivery: DeliverySettings,
}

/// NATS connection and JetStream layout.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// Server URL; `NATS_URL` in the environment also sets it (see [`Settings::load`]).
    pub url: String,
    /// The JetStream stream holding every dbt-ops subject.
    pub stream: String,
    /// First token of every subject; tests give each system its own.
    pub subject_prefix: String,
    /// The KV bucket holding each incident's state.
    pub incidents_bucket: String,
    /// The object store bucket for artifacts too large for a message.
    pub artifacts_bucket: String,
    /// Artifacts larger than this travel through the object store.
    pub inline_artifact_limit_bytes: u64,
    /// How long the stream remembers a `Nats-Msg-Id` for de-duplication.
    pub duplicate_window_secs: u64,
    /// How many times a message is delivered before it goes to the dead-letter subject.
    pub max_deliver: i64,
    /// How long the server waits for an ack before redelivering; handlers that take longer
    /// send progress acks.
    pub ack_wait_secs: u64,
    /// Replicas of the stream, KV bucket and object store (3 on a 3-node cluster). Every
    /// service applies the layout at start, so this must be the same everywhere.
    pub replicas: usize,
    /// Optional credentials.
    pub user: String,
    /// Password for `user`.
    pub password: Secret,
    /// A token, for token authentication.
    pub token: Secret,
    /// Path of a `.creds` file (JWT + NKey).
    pub credentials_file: String,
    /// PEM file of the CA(s) that signed the server's certificate, for a private CA; setting
    /// it also requires TLS (as a `tls://` URL does). Empty: the system's trust store.
    pub tls_ca_file: String,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "DBTOPS".into(),
            subject_prefix: "dbtops".into(),
            incidents_bucket: "dbtops-incidents".into(),
            artifacts_bucket: "dbtops-artifacts".into(),
            inline_artifact_limit_bytes: 256 * 1024,
            duplicate_window_secs: 120,
            max_deliver: 5,
            ack_wait_secs: 30,
            replicas: 1,
            user: String::new(),
            password: Secret::default(),
            token: Secret::default(),
            credentials_file: String::new(),
            tls_ca_file: String::new(),
        }
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP endpoint; empty: no export. gRPC: the collector's address, e.g.
    /// `http://127.0.0.1:4317`. HTTP: the base URL, to which `/v1/traces` is appended unless
    /// it already ends with it, e.g. `https://cloud.langfuse.com/api/public/otel`.
    pub otlp_endpoint: String,
    /// How spans reach `otlp_endpoint`: OTLP over gRPC (Jaeger, Tempo, a collector) or
    /// HTTP with protobuf bodies (Langfuse, which takes no gRPC).
    pub otlp_protocol: OtlpProtocol,
    /// Headers sent with every export (gRPC metadata or HTTP headers), e.g. Langfuse's
    /// `Authorization = "Basic …"`. Values are secrets: never logged; an empty value is
    /// not sent (so an unset variable in a deployment template switches a header off).
    pub otlp_headers: std::collections::BTreeMap<String, Secret>,
    /// `tracing` filter directive, e.g. `info,dbtops_bus=debug`.
    pub log_filter: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Prefix of a trace's web page (Jaeger, Tempo, Langfuse); the trace id is appended.
    pub trace_url_prefix: String,
    /// Address of the Prometheus `/metrics`, `/healthz` and `/readyz` endpoints, e.g.
    /// `127.0.0.1:9464`; empty: none.
    pub metrics_listen: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::Grpc,
            otlp_headers: std::collections::BTreeMap::new(),
            log_filter: "info".into(),
            log_format: "text".into(),
            trace_url_prefix: String::new(),
            metrics_listen: String::new(),
        }
    }
}

/// The wire protocol of OTLP trace export.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP over gRPC (tonic), usually port 4317.
    #[default]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`POST …/v1/traces`), usually port 4318.
    Http,
}

/// The detector.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorSettings {
    /// Largest artifact the detector will read, in bytes.
    pub max_artifact_bytes: u64,
    /// Environment variables whose values are redacted from all evidence, on top of
    /// every `*_PASSWORD`, `*_TOKEN`, `*_KEY`, `*_SECRET` variable (read once at start).
    pub redact_env_vars: Vec<String>,
    /// Estimated tokens (≈ 4 characters each) the evidence of one incident may take; the
    /// detector trims in a documented order beyond it.
    pub evidence_token_budget: u32,
    /// Address of the gRPC `dbtops.v1.Ingest` and health services, e.g.
    /// `127.0.0.1:50051`; empty: no gRPC server.
    pub grpc_listen: String,
    /// Largest gRPC request the detector accepts (artifacts inline); larger artifacts go
    /// through the object store by name.
    pub grpc_max_message_bytes: u64,
    /// When set, `Ingest/SubmitRun` requires `authorization: Bearer <token>` and refuses
    /// anything else with `UNAUTHENTICATED` (the health service stays open). Empty: no
    /// authentication — only for a listener nobody else can reach.
    pub grpc_token: Secret,
    /// dbt project directories whose finished runs are picked up and submitted.
    pub watch: Vec<String>,
    /// How often watched projects are polled, in milliseconds.
    pub watch_interval_ms: u64,
    /// How long a run's artifacts must stay unchanged before they are submitted, in
    /// milliseconds (dbt writes run_results.json before its last log lines).
    pub watch_debounce_ms: u64,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        Self {
            max_artifact_bytes: 512 * 1024 * 1024,
            redact_env_vars: Vec::new(),
            evidence_token_budget: 2_000,
            grpc_listen: String::new(),
            grpc_max_message_bytes: 16 * 1024 * 1024,
            grpc_token: Secret::default(),
            watch: Vec::new(),
            watch_interval_ms: 1_000,
            watch_debounce_ms: 2_000,
        }
    }
}

/// The fixer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FixerSettings {
    /// Proposals tried per incident before it is abandoned.
    pub max_attempts: u32,
    /// How many incidents one fixer process handles at once.
    pub concurrency: usize,
    /// LLM providers, tried in order after the rules; none: rules only (the offline
    /// default).
    pub providers: Vec<LlmProviderSettings>,
    /// Try the deterministic rules before any provider (the default). Off: every
    /// incident goes to the providers — to measure them alone (`dbt-ops eval`).
    pub rules_enabled: bool,
    /// Most tokens (prompt + answer) one LLM call may use; a bigger prompt is not sent.
    pub max_tokens_per_call: u64,
    /// Most tokens all LLM calls of one incident may use, across its attempts.
    pub max_tokens_per_incident: u64,
    /// Most one incident may cost in LLM calls, in US dollars (from each provider's
    /// prices); calls that could exceed it are not made.
    pub max_cost_per_incident_usd: f64,
    /// How long an incident waits when every provider is unavailable, before it is tried
    /// again; doubles with each delivery (at most 15 minutes) and grows to honour a
    /// provider's `Retry-After`.
    pub unavailable_retry_secs: u64,
    /// Record prompts and answers (secrets redacted) as span attributes. Off by default:
    /// they hold the project's SQL.
    pub capture_content: bool,
    /// Which files a proposal may edit: the failing model only (the default), or its
    /// ancestor models too (`"lineage"`). The detector, validator and delivery read it as
    /// well: each holds a lineage edit to its own check.
    pub fix_scope: FixScope,
    /// With `fix_scope = "lineage"`: how many generations of ancestors the evidence
    /// carries (1: direct parents).
    pub lineage_depth: u32,
}

/// Which model files one fix may edit.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FixScope {
    /// Only the failing model's `.sql` file.
    #[default]
    Model,
    /// The failing model and its ancestor models (a renamed column or a cast in a staging
    /// model, an ephemeral model inlined into the failing one).
    Lineage,
}

impl Default for FixerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            concurrency: 4,
            providers: Vec::new(),
            rules_enabled: true,
            max_tokens_per_call: 32_000,
            max_tokens_per_incident: 100_000,
            max_cost_per_incident_usd: 1.0,
            unavailable_retry_secs: 30,
            capture_content: false,
            fix_scope: FixScope::Model,
            lineage_depth: 2,
        }
    }
}

/// Which wire format an LLM provider speaks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LlmProviderKind {
    /// OpenAI-compatible chat completions: OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp
    /// server, LM Studio, OpenRouter.
    Openai,
    /// Anthropic Messages (`POST {base_url}/v1/messages`).
    Anthropic,
}

/// How the fixer talks to an LLM provider.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LlmMode {
    /// The evidence inline in one prompt, one call, the answer forced into the schema:
    /// cheap, and the only mode small local models follow reliably.
    #[default]
    SingleShot,
    /// A tool loop: the model reads the evidence through narrow tools and submits its fix
    /// with a tool call. For capable hosted models.
    Agentic,
}

/// One LLM provider of the fixer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LlmProviderSettings {
    /// A name for logs and the proposal's strategy, e.g. `local-qwen`.
    pub name: String,
    /// Its wire format.
    pub kind: LlmProviderKind,
    /// Base URL up to the API version, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The API key (or leave empty and name an environment variable in `api_key_env`).
    pub api_key: Secret,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// The model name.
    pub model: String,
    /// Give up on one call after this long.
    pub timeout_secs: u64,
    /// Most tokens the answer may take.
    pub max_output_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Extra HTTP headers (e.g. OpenRouter's `HTTP-Referer`).
    pub extra_headers: std::collections::BTreeMap<String, String>,
    /// Single-shot or agentic.
    pub mode: LlmMode,
    /// Most model turns in agentic mode before the attempt gives up.
    pub max_tool_turns: u32,
    /// Retries of one call on 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// First back-off between retries; doubles each time, with jitter.
    pub backoff_initial_ms: u64,
    /// Longest wait between retries inside one call, `Retry-After` included; a provider
    /// asking for longer counts as unavailable and the next provider is tried.
    pub backoff_max_secs: u64,
    /// Price of a million prompt tokens, in US dollars (0: free, e.g. a local model).
    pub input_price_per_mtok: f64,
    /// Price of a million answer tokens, in US dollars.
    pub output_price_per_mtok: f64,
}

impl Default for LlmProviderSettings {
    fn default() -> Self {
        Self {
            name: "llm".into(),
            kind: LlmProviderKind::Openai,
            base_url: String::new(),
            api_key: Secret::default(),
            api_key_env: String::new(),
            model: String::new(),
            timeout_secs: 120,
            max_output_tokens: 2048,
            temperature: 0.0,
            extra_headers: std::collections::BTreeMap::new(),
            mode: LlmMode::SingleShot,
            max_tool_turns: 8,
            max_retries: 2,
            backoff_initial_ms: 500,
            backoff_max_secs: 20,
            input_price_per_mtok: 0.0,
            output_price_per_mtok: 0.0,
        }
    }
}

/// The validator.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorSettings {
    /// The dbt executable; empty: `.venv/bin/dbt` under the working directory if present,
    /// else `dbt` on PATH.
    pub dbt_bin: String,
    /// `--profiles-dir` for dbt; empty: the project dir when it holds a profiles.yml, else
    /// dbt's own default.
    pub profiles_dir: String,
    /// `--target` for dbt; empty: the profile's default target.
    pub target: String,
    /// Where scratch workspaces are made; empty: the system temp dir.
    pub workspace_root: String,
    /// A dbt invocation running longer is killed and the attempt fails with `timeout`.
    pub dbt_timeout_secs: u64,
    /// How many validations one process runs at once.
    pub concurrency: usize,
    /// Run `dbt build --select +<model> --empty` after compiling.
    pub build_empty: bool,
    /// The run with data (`dbt build --select +<model>`, seeds included), which catches bad
    /// casts and division by zero that `--empty` misses: `auto` (DuckDB targets only, where
    /// it costs nothing), `always` (opt in for a warehouse dev target) or `never`.
    pub run_with_data: String,
    /// The fixed model's dependents: `build_empty` (`dbt build --empty` of its children and
    /// their other parents), `compile` (`dbt compile --select <model>+`) or `off`.
    pub downstream: String,
    /// After the run with data, compare the model's columns, types and row count with the
    /// last good version in the dev database: `flag` (note a difference, pass), `fail`
    /// (a difference fails the attempt) or `off`.
    pub data_check: String,
    /// Keep a warm dbt process (dbt's `dbtRunner`) per project instead of starting dbt for
    /// every step; falls back to subprocesses when the worker cannot start.
    pub worker: bool,
    /// The Python that runs the warm worker; empty: the interpreter of `dbt_bin` (its `#!`
    /// line), else `python3` beside it, else `python3` on PATH.
    pub python: String,
    /// A warm worker whose resident memory grows past this is replaced after its call.
    pub worker_max_memory_mb: u64,
}

impl Default for ValidatorSettings {
    fn default() -> Self {
        Self {
            dbt_bin: String::new(),
            profiles_dir: String::new(),
            target: String::new(),
            workspace_root: String::new(),
            dbt_timeout_secs: 300,
            concurrency: 1,
            build_empty: true,
            run_with_data: "auto".into(),
            downstream: "build_empty".into(),
            data_check: "flag".into(),
            worker: true,
            python: String::new(),
            worker_max_memory_mb: 2048,
        }
    }
}

/// Where validated fixes go.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryProvider {
    /// A branch and commit in a local git repository (the offline default).
    LocalGit,
    /// Record what would be opened; open nothing.
    Shadow,
    /// A merge request on GitLab (gitlab.com or self-managed) through REST API v4
    /// (`[delivery.gitlab]`).
    Gitlab,
    /// A pull request on GitHub (or GitHub Enterprise Server) through its REST API
    /// (`[delivery.github]`).
    Github,
}

/// What delivery does with a fix whose path matches `delivery.sensitive_paths`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveAction {
    /// Refuse it: the incident is abandoned with reason `guardrail`.
    Refuse,
    /// Open it as a draft labelled `needs-owner-review` (local git: the description says
    /// so), so an owner decides.
    Draft,
}

/// The delivery service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Which provider opens the change.
    pub provider: DeliveryProvider,
    /// Repository for local git; empty: the repository containing the project.
    pub repo_dir: String,
    /// Branches never written to, besides main, master and the current branch (globs).
    pub protected_branches: Vec<String>,
    /// Models paths the fix may touch, relative to the project dir; empty: the project's own.
    pub model_paths: Vec<String>,
    /// Paths (globs, relative to the project dir) that need an owner: see
    /// `sensitive_action`.
    pub sensitive_paths: Vec<String>,
    /// What happens to a fix under `sensitive_paths`: refuse it, or open it as a draft for
    /// owner review.
    pub sensitive_action: SensitiveAction,
    /// Largest share of a file's lines a fix may change (0–1).
    pub max_changed_share: f64,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
    /// The branch merge requests target (GitLab, GitHub); empty: the project's default
    /// branch, asked from the forge.
    pub target_branch: String,
    /// Where the dbt project sits in the forge repository (`.` for its root); empty:
    /// derived from the incident's `repo_dir` and `project_dir`.
    pub project_subdir: String,
    /// Labels on every merge request.
    pub labels: Vec<String>,
    /// A file in CODEOWNERS syntax (paths relative to the repository root): the owners of
    /// the model's path become the merge request's assignee (the first) and reviewers.
    /// Empty: nobody is assigned.
    pub owners_file: String,
    /// Give up on one forge or Langfuse HTTP call after this long.
    pub http_timeout_secs: u64,
    /// Retries of one HTTP call after 429, 5xx or a transport error, before the message
    /// is handed back for a later delivery.
    pub http_max_retries: u32,
    /// First pause between those retries, doubled each time; a `Retry-After` header wins.
    pub http_backoff_ms: u64,
    /// Where to serve forge webhooks (`POST /webhooks/gitlab`, `POST /webhooks/github`),
    /// e.g. `127.0.0.1:8088`; empty: no webhook endpoint.
    pub webhook_listen: String,
    /// GitLab: base URL, project, token, webhook token.
    pub gitlab: GitlabSettings,
    /// GitHub: API URL, repository, token, webhook secret.
    pub github: GithubSettings,
    /// Langfuse: merged / not merged as a score on the incident's trace.
    pub langfuse: LangfuseSettings,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            provider: DeliveryProvider::LocalGit,
            repo_dir: String::new(),
            protected_branches: Vec::new(),
            model_paths: Vec::new(),
            sensitive_paths: Vec::new(),
            sensitive_action: SensitiveAction::Refuse,
            max_changed_share: 0.5,
            author_name: "dbt-ops".into(),
            author_email: "dbt-ops@localhost".into(),
            target_branch: String::new(),
            project_subdir: String::new(),
            labels: vec!["dbt-ops".into()],
            owners_file: String::new(),
            http_timeout_secs: 30,
            http_max_retries: 3,
            http_backoff_ms: 500,
            webhook_listen: String::new(),
            gitlab: GitlabSettings::default(),
            github: GithubSettings::default(),
            langfuse: LangfuseSettings::default(),
        }
    }
}

/// Delivery to GitLab.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GitlabSettings {
    /// `https://gitlab.com` or a self-managed instance, without `/api/v4`.
    pub base_url: String,
    /// The project: its numeric id or its path (`group/subgroup/project`).
    pub project: String,
    /// An access token with the `api` scope (sent as `PRIVATE-TOKEN`), or leave empty and
    /// name an environment variable in `token_env`.
    pub token: Secret,
    /// Environment variable holding the token.
    pub token_env: String,
    /// The secret token GitLab sends as `X-Gitlab-Token` with webhooks; empty: the GitLab
    /// webhook refuses everything.
    pub webhook_token: Secret,
}

impl Default for GitlabSettings {
    fn default() -> Self {
        Self {
            base_url: "https://gitlab.com".into(),
            project: String::new(),
            token: Secret::default(),
            token_env: "GITLAB_TOKEN".into(),
            webhook_token: Secret::default(),
        }
    }
}

/// Delivery to GitHub.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GithubSettings {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// The repository, `owner/name`.
    pub repository: String,
    /// A token with contents and pull-request write access (sent as a bearer token), or
    /// leave empty and name an environment variable in `token_env`.
    pub token: Secret,
    /// Environment variable holding the token.
    pub token_env: String,
    /// The webhook secret behind `X-Hub-Signature-256`; empty: the GitHub webhook refuses
    /// everything.
    pub webhook_secret: Secret,
}

impl Default for GithubSettings {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            repository: String::new(),
            token: Secret::default(),
            token_env: "GITHUB_TOKEN".into(),
            webhook_secret: Secret::default(),
        }
    }
}

/// Langfuse, for a `merged` score on each delivered incident's trace.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LangfuseSettings {
    /// e.g. `https://cloud.langfuse.com`; empty: no scores.
    pub base_url: String,
    /// The project's public key (the basic-auth user name).
    pub public_key: String,
    /// The project's secret key (the basic-auth password).
    pub secret_key: Secret,
}

impl Settings {
    /// Loads defaults < `file` (or `dbt-ops.toml` in the working directory, if it exists)
    /// < the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, vars)
    }

    /// Like [`Settings::load`] with an explicit environment, so tests need not touch the
    /// process's own.
    pub fn load_from(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(SettingsError::MissingFile(path.to_path_buf()));
                }
                builder = builder.add_source(config::File::from(path).required(true));
            }
            None => {
                builder = builder.add_source(config::File::with_name(DEFAULT_FILE).required(false));
            }
        }
        let environment: std::collections::HashMap<String, String> =
            environment.into_iter().collect();
        // NATS_URL is the ecosystem's usual variable; DBT_OPS__NATS__URL still wins.
        if let Some(url) = environment.get("NATS_URL") {
            builder = builder.set_override("nats.url", url.clone())?;
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("delivery.protected_branches")
                .with_list_parse_key("detector.watch")
                .with_list_parse_key("detector.redact_env_vars")
                .with_list_parse_key("delivery.model_paths")
                .with_list_parse_key("delivery.sensitive_paths")
                .with_list_parse_key("delivery.labels")
                .source(Some(environment)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> SettingsError {
            SettingsError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        let url = &self.nats.url;
        if !["nats://", "tls://", "ws://", "wss://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
            && url.contains("://")
        {
            return Err(invalid(
                "nats.url",
                format!("must be a nats://, tls://, ws:// or wss:// URL, not {url:?}"),
            ));
        }
        if self.nats.subject_prefix.is_empty()
            || self
                .nats
                .subject_prefix
                .contains(|c: char| c.is_whitespace() || c == '*' || c == '>' || c == '.')
        {
            return Err(invalid(
                "nats.subject_prefix",
                "must be one subject token: no dots, spaces or wildcards",
            ));
        }
        if self.nats.max_deliver < 1 {
            return Err(invalid("nats.max_deliver", "must be at least 1"));
        }
        if !(1..=5).contains(&self.nats.replicas) {
            return Err(invalid("nats.replicas", "must be between 1 and 5"));
        }
        if self.nats.ack_wait_secs == 0 {
            return Err(invalid("nats.ack_wait_secs", "must be at least 1"));
        }
        if self.detector.evidence_token_budget < 200 {
            return Err(invalid(
                "detector.evidence_token_budget",
                "must be at least 200 (the error and the model's SQL need room)",
            ));
        }
        if !self.detector.grpc_listen.is_empty()
            && self
                .detector
                .grpc_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(
                "detector.grpc_listen",
                format!(
                    "must be empty or an address like 127.0.0.1:50051, not {:?}",
                    self.detector.grpc_listen
                ),
            ));
        }
        if !self.telemetry.metrics_listen.is_empty()
            && self
                .telemetry
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(
                "telemetry.metrics_listen",
                format!(
                    "must be empty or an address like 127.0.0.1:9464, not {:?}",
                    self.telemetry.metrics_listen
                ),
            ));
        }
        if self.detector.grpc_max_message_bytes < 1024 {
            return Err(invalid(
                "detector.grpc_max_message_bytes",
                "must be at least 1024",
            ));
        }
        if self.detector.watch_interval_ms < 10 {
            return Err(invalid("detector.watch_interval_ms", "must be at least 10"));
        }
        if !(1..=20).contains(&self.fixer.max_attempts) {
            return Err(invalid("fixer.max_attempts", "must be between 1 and 20"));
        }
        for provider in &self.fixer.providers {
            if provider.base_url.is_empty() {
                return Err(invalid(
                    "fixer.providers.base_url",
                    format!("is empty for provider {:?}", provider.name),
                ));
            }
            if provider.model.is_empty() {
                return Err(invalid(
                    "fixer.providers.model",
                    format!("is empty for provider {:?}", provider.name),
                ));
            }
            if provider.timeout_secs == 0 {
                return Err(invalid(
                    "fixer.providers.timeout_secs",
                    "must be at least 1",
                ));
            }
            if !(1..=50).contains(&provider.max_tool_turns) {
                return Err(invalid(
                    "fixer.providers.max_tool_turns",
                    format!("must be between 1 and 50 for provider {:?}", provider.name),
                ));
            }
            if provider.max_retries > 10 {
                return Err(invalid("fixer.providers.max_retries", "must be at most 10"));
            }
            if provider.backoff_initial_ms == 0 || provider.backoff_max_secs == 0 {
                return Err(invalid(
                    "fixer.providers.backoff_initial_ms",
                    "and backoff_max_secs must be at least 1",
                ));
            }
            for (key, price) in [
                (
                    "fixer.providers.input_price_per_mtok",
                    provider.input_price_per_mtok,
                ),
                (
                    "fixer.providers.output_price_per_mtok",
                    provider.output_price_per_mtok,
                ),
            ] {
                if !(price.is_finite() && price >= 0.0) {
                    return Err(invalid(key, "must be a number of dollars, 0 or more"));
                }
            }
            if self
                .fixer
                .providers
                .iter()
                .filter(|p| p.name == provider.name)
                .count()
                > 1
            {
                return Err(invalid(
                    "fixer.providers.name",
                    format!("{:?} names two providers", provider.name),
                ));
            }
        }
        if self.fixer.concurrency == 0 {
            return Err(invalid("fixer.concurrency", "must be at least 1"));
        }
        if self.fixer.max_tokens_per_call == 0 || self.fixer.max_tokens_per_incident == 0 {
            return Err(invalid(
                "fixer.max_tokens_per_call",
                "and fixer.max_tokens_per_incident must be at least 1",
            ));
        }
        if !(self.fixer.max_cost_per_incident_usd.is_finite()
            && self.fixer.max_cost_per_incident_usd >= 0.0)
        {
            return Err(invalid(
                "fixer.max_cost_per_incident_usd",
                "must be a number of dollars, 0 or more",
            ));
        }
        if self.fixer.unavailable_retry_secs == 0 {
            return Err(invalid(
                "fixer.unavailable_retry_secs",
                "must be at least 1",
            ));
        }
        if self.validator.concurrency == 0 {
            return Err(invalid("validator.concurrency", "must be at least 1"));
        }
        if self.validator.dbt_timeout_secs == 0 {
            return Err(invalid("validator.dbt_timeout_secs", "must be at least 1"));
        }
        if !["auto", "always", "never"].contains(&self.validator.run_with_data.as_str()) {
            return Err(invalid(
                "validator.run_with_data",
                "must be `auto`, `always` or `never`",
            ));
        }
        if !["build_empty", "compile", "off"].contains(&self.validator.downstream.as_str()) {
            return Err(invalid(
                "validator.downstream",
                "must be `build_empty`, `compile` or `off`",
            ));
        }
        if !["flag", "fail", "off"].contains(&self.validator.data_check.as_str()) {
            return Err(invalid(
                "validator.data_check",
                "must be `flag`, `fail` or `off`",
            ));
        }
        if self.validator.worker_max_memory_mb < 64 {
            return Err(invalid(
                "validator.worker_max_memory_mb",
                "must be at least 64 (a warm dbt process needs about 200 MB)",
            ));
        }
        if !(self.delivery.max_changed_share > 0.0 && self.delivery.max_changed_share <= 1.0) {
            return Err(invalid(
                "delivery.max_changed_share",
                "must be greater than 0 and at most 1",
            ));
        }
        self.validate_delivery()?;
        if !["text", "json"].contains(&self.telemetry.log_format.as_str()) {
            return Err(invalid("telemetry.log_format", "must be `text` or `json`"));
        }
        Ok(())
    }

    /// The `[delivery]` checks: a forge provider needs its project, a webhook endpoint
    /// needs an address and a secret, Langfuse needs its keys.
    fn validate_delivery(&self) -> Result<(), SettingsError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> SettingsError {
            SettingsError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        fn http_url(key: &'static str, url: &str) -> Result<(), SettingsError> {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!("must be an http:// or https:// URL, not {url:?}"),
                ))
            }
        }
        let delivery = &self.delivery;
        match delivery.provider {
            DeliveryProvider::Gitlab => {
                http_url("delivery.gitlab.base_url", &delivery.gitlab.base_url)?;
                if delivery.gitlab.project.trim().is_empty() {
                    return Err(invalid(
                        "delivery.gitlab.project",
                        "is empty: name the project by id or path (group/project)",
                    ));
                }
            }
            DeliveryProvider::Github => {
                http_url("delivery.github.api_url", &delivery.github.api_url)?;
                let parts: Vec<&str> = delivery.github.repository.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|part| part.trim().is_empty()) {
                    return Err(invalid(
                        "delivery.github.repository",
                        format!("must be owner/name, not {:?}", delivery.github.repository),
                    ));
                }
            }
            DeliveryProvider::LocalGit | DeliveryProvider::Shadow => {}
        }
        if delivery.http_timeout_secs == 0 {
            return Err(invalid("delivery.http_timeout_secs", "must be at least 1"));
        }
        if delivery.http_max_retries > 10 {
            return Err(invalid("delivery.http_max_retries", "must be at most 10"));
        }
        // GitLab takes labels as one comma-separated list.
        if delivery
            .labels
            .iter()
            .any(|label| label.trim().is_empty() || label.contains(','))
        {
            return Err(invalid(
                "delivery.labels",
                "labels must be non-empty and contain no comma",
            ));
        }
        if !delivery.webhook_listen.is_empty() {
            if delivery
                .webhook_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
            {
                return Err(invalid(
                    "delivery.webhook_listen",
                    format!(
                        "must be an address and port such as 127.0.0.1:8088, not {:?}",
                        delivery.webhook_listen
                    ),
                ));
            }
            if delivery.gitlab.webhook_token.is_empty() && delivery.github.webhook_secret.is_empty()
            {
                return Err(invalid(
                    "delivery.webhook_listen",
                    "is set, but neither delivery.gitlab.webhook_token nor \
                     delivery.github.webhook_secret is: every webhook would be refused",
                ));
            }
        }
        if !delivery.langfuse.base_url.is_empty() {
            http_url("delivery.langfuse.base_url", &delivery.langfuse.base_url)?;
            if delivery.langfuse.public_key.is_empty() || delivery.langfuse.secret_key.is_empty() {
                return Err(invalid(
                    "delivery.langfuse.public_key",
                    "and delivery.langfuse.secret_key are both needed when base_url is set",
                ));
            }
        }
        Ok(())
    }

    /// The ack wait as a duration.
    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.nats.ack_wait_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(toml: Option<&str>, pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbt-ops.toml");
        if let Some(toml) = toml {
            std::fs::write(&path, toml).unwrap();
            Settings::load_from(Some(&path), env(pairs))
        } else {
            // No file named and none in this test's working directory is assumed.
            Settings::load_from(Some(&write_empty(&dir)), env(pairs))
        }
    }

    fn write_empty(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("empty.toml");
        std::fs::write(&path, "").unwrap();
        path
    }

    #[test]
    fn defaults_hold_without_file_or_environment() {
        let settings = load(None, &[]).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.fixer.max_attempts, 3);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let settings = load(
            Some("[fixer]\nmax_attempts = 4\n[validator]\ntarget = \"ci\"\n"),
            &[
                ("DBT_OPS__FIXER__MAX_ATTEMPTS", "7"),
                ("DBT_OPS__DELIVERY__PROTECTED_BRANCHES", "release/*,prod"),
            ],
        )
        .unwrap();
        assert_eq!(settings.fixer.max_attempts, 7);
        assert_eq!(settings.validator.target, "ci");
        assert_eq!(
            settings.delivery.protected_branches,
            vec!["release/*".to_string(), "prod".to_string()]
        );
    }

    #[test]
    fn nats_url_variable_is_honoured() {
        let settings = load(None, &[("NATS_URL", "nats://127.0.0.1:9999")]).unwrap();
        assert_eq!(settings.nats.url, "nats://127.0.0.1:9999");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let error = load(None, &[("DBT_OPS__FIXER__MAX_ATTEMPTS", "lots")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("fixer.max_attempts"), "{message}");
    }

    #[test]
    fn an_out_of_range_value_names_its_key() {
        let error = load(Some("[fixer]\nmax_attempts = 0\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("fixer.max_attempts"), "{error}");
        let error = load(Some("[delivery]\nmax_changed_share = 3.0\n"), &[]).unwrap_err();
        assert!(
            error.to_string().contains("delivery.max_changed_share"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_with_its_name() {
        let error = load(Some("[fixer]\nmax_attempt = 2\n"), &[]).unwrap_err();
        assert!(error.to_string().contains("max_attempt"), "{error}");
    }

    #[test]
    fn an_unknown_provider_is_refused_naming_the_key() {
        let error = load(None, &[("DBT_OPS__DELIVERY__PROVIDER", "carrier_pigeon")]).unwrap_err();
        assert!(error.to_string().contains("delivery.provider"), "{error}");
    }

    #[test]
    fn secrets_never_print() {
        let settings = load(None, &[("DBT_OPS__NATS__PASSWORD", "hunter2")]).unwrap();
        assert_eq!(settings.nats.password.expose(), "hunter2");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn the_example_file_documents_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dbt-ops.example.toml");
        let settings = Settings::load_from(Some(&example), env(&[])).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let error = Settings::load_from(Some(Path::new("/nonexistent/dbt-ops.toml")), env(&[]))
            .unwrap_err();
        assert!(matches!(error, SettingsError::MissingFile(_)));
    }
}
