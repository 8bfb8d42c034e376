//! Delivery against local stand-ins for GitLab, GitHub and Langfuse that speak their
//! documented wire formats and record what they receive, and against a real nats-server.

mod fake_github;
mod fake_gitlab;
mod github;
mod gitlab;
mod lineage;
mod merged;
mod pipeline;
mod settings;
mod support;
mod webhook;

use dbtops_bus::{Bus, Delivery, IncidentRecord, IncidentState, NatsServer};
use dbtops_delivery::forge::ChangeRequest;
use dbtops_delivery::owners::Owner;
use dbtops_proto::{v1, WireMessage};
use dbtops_settings::{DeliveryProvider, Settings};

use fake_gitlab::{FIXED, ORIGINAL};

pub const INCIDENT: &str = "3f2a9c1e77aa0b1c";
pub const BRANCH: &str = "dbt-ops/fix/stg_orders/3f2a9c1e";
pub const MODEL_PATH: &str = "models/staging/stg_orders.sql";

/// A validated fix of `stg_orders` in a project at `analytics/shop` of its repository; the
/// directories do not exist here, as on a delivery host that has no checkout.
pub fn validated(incident_id: &str) -> v1::FixValidated {
    v1::FixValidated {
        incident: Some(v1::FailureDetected {
            incident_id: incident_id.into(),
            submission_id: "sub-1".into(),
            project: Some(v1::ProjectRef {
                name: "shop".into(),
                project_dir: "/nonexistent/repo/analytics/shop".into(),
                repo_dir: "/nonexistent/repo".into(),
                commit_sha: String::new(),
                branch: "main".into(),
                model_paths: vec!["models".into()],
            }),
            model: Some(v1::ModelRef {
                unique_id: "model.shop.stg_orders".into(),
                name: "stg_orders".into(),
                path: MODEL_PATH.into(),
                resource_type: "model".into(),
            }),
            error: Some(v1::FailureError {
                class: v1::ErrorClass::MissingColumn as i32,
                message: "Binder Error: Referenced column \"ordr_id\" not found".into(),
                signature: "missing column ordr_id".into(),
                needs_human: false,
            }),
            evidence: Some(v1::Evidence {
                model_sql: ORIGINAL.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        attempt: 1,
        proposal: Some(v1::FixProposal {
            model_path: MODEL_PATH.into(),
            fixed_sql: FIXED.into(),
            explanation: "ordr_id is a typo of order_id".into(),
            error_class: v1::ErrorClass::MissingColumn as i32,
            confidence: 0.9,
            strategy: "rule:misspelt_column".into(),
            ..Default::default()
        }),
        steps: vec![v1::ValidationStep {
            name: "dbt compile".into(),
            ok: true,
            duration_ms: 300,
            output: "Compiled".into(),
            ..Default::default()
        }],
        diff: dbtops_guardrails::unified_diff(MODEL_PATH, ORIGINAL, FIXED),
        history: vec![],
    }
}

/// The change delivery would ask a forge for, for provider-level tests.
pub fn change() -> ChangeRequest {
    ChangeRequest {
        incident_id: INCIDENT.into(),
        branch: BRANCH.into(),
        file_path: fake_gitlab::MODEL_FILE.into(),
        content: FIXED.into(),
        also_replace: Vec::new(),
        commit_message: "fix(dbt): stg_orders — missing_column\n\nIncident: x\n".into(),
        title: "fix(dbt): stg_orders — missing_column".into(),
        description: format!(
            "# fix\n\n{}\n",
            dbtops_delivery::description::incident_marker(INCIDENT)
        ),
        labels: vec!["dbt-ops".into()],
        draft: false,
        owners: vec![
            Owner::User("alice".into()),
            Owner::User("bob".into()),
            Owner::Group("acme/data".into()),
        ],
        author_name: "dbt-ops".into(),
        author_email: "dbt-ops@localhost".into(),
        target_branch: None,
        protected_branches: vec![],
    }
}

/// Settings whose retries are quick.
pub fn settings(provider: DeliveryProvider) -> Settings {
    let mut settings = Settings::default();
    settings.delivery.provider = provider;
    settings.delivery.http_backoff_ms = 10;
    settings.delivery.http_max_retries = 3;
    settings.delivery.http_timeout_secs = 10;
    settings
}

pub fn gitlab_settings(base: &str) -> Settings {
    let mut settings = settings(DeliveryProvider::Gitlab);
    settings.delivery.gitlab.base_url = base.into();
    settings.delivery.gitlab.project = fake_gitlab::PROJECT_PATH.into();
    settings.delivery.gitlab.token = fake_gitlab::TOKEN.into();
    settings
}

pub fn github_settings(base: &str) -> Settings {
    let mut settings = settings(DeliveryProvider::Github);
    settings.delivery.github.api_url = base.into();
    settings.delivery.github.repository = format!("{}/{}", fake_github::OWNER, fake_github::REPO);
    settings.delivery.github.token = fake_github::TOKEN.into();
    settings
}

/// A real nats-server with its own store, and a bus on it under its own prefix.
pub struct TestBus {
    pub bus: Bus,
    pub settings: Settings,
    _server: NatsServer,
    _dir: tempfile::TempDir,
}

impl TestBus {
    pub async fn start(mut settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = NatsServer::start(&dir.path().join("nats")).expect("nats-server starts");
        settings.nats.url = server.url();
        settings.nats.ack_wait_secs = 10;
        let bus = Bus::connect(&settings.nats).await.expect("bus connects");
        Self {
            bus,
            settings,
            _server: server,
            _dir: dir,
        }
    }

    /// The incident's record, as the detector would have made it.
    pub async fn create_incident(&self, incident_id: &str, trace_id: Option<&str>) {
        let now = dbtops_bus::incidents::now_rfc3339();
        let record = IncidentRecord {
            incident_id: incident_id.into(),
            project: "shop".into(),
            unique_id: "model.shop.stg_orders".into(),
            model: "stg_orders".into(),
            model_path: MODEL_PATH.into(),
            class: "missing_column".into(),
            state: IncidentState::Delivering,
            generation: 0,
            attempts: 1,
            branch: None,
            url: None,
            reason: None,
            detail: None,
            recurrences: 0,
            first_seen: now.clone(),
            last_seen: now.clone(),
            updated_at: now,
            trace_id: trace_id.map(str::to_owned),
            last_submission_id: String::new(),
            delivered_repo: None,
        };
        assert!(self
            .bus
            .incidents()
            .await
            .unwrap()
            .create(&record)
            .await
            .unwrap());
    }

    pub async fn record(&self, incident_id: &str) -> IncidentRecord {
        self.bus
            .incidents()
            .await
            .unwrap()
            .get(incident_id)
            .await
            .unwrap()
            .expect("incident record")
    }

    pub async fn stored<M: WireMessage>(&self, subject: &str) -> Vec<M> {
        self.bus
            .replay(subject)
            .await
            .unwrap()
            .iter()
            .map(|message| message.decode::<M>().unwrap())
            .collect()
    }
}

/// A message as the consumer loop would hand it to a handler.
pub fn delivery_of<M: WireMessage>(subject: &str, message: &M) -> Delivery {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(dbtops_bus::headers::MESSAGE_TYPE, M::TYPE_NAME);
    Delivery {
        subject: subject.into(),
        headers,
        payload: bytes::Bytes::from(message.encode_to_vec()),
        delivered: 1,
        stream_sequence: 1,
    }
}
