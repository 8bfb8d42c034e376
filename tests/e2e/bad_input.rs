//! The bad-input catalogue: the kinds of input dbt-ops must refuse, injected into a
//! running system the way it would really arrive — published on a subject through the
//! real bus, sent to the detector's gRPC `Ingest/SubmitRun`, posted to delivery's webhook
//! endpoint, a proposal reaching through a symbolic link in the checkout — each with the
//! specific answer it must get: a dead letter on `dbtops.dlq.<service>` whose reason names
//! the problem, an incident abandoned with its reason, a refusal by the validator's
//! guardrails, a gRPC status, an HTTP status with a body that says why.
//!
//! Two catalogues, one system each: what reaches the detector and the consumer loops
//! ([`detector_and_bus_kinds`]: artifacts and messages), and what reaches the validator,
//! delivery and the webhook endpoint ([`proposal_fix_and_webhook_kinds`]). After each
//! catalogue a good incident still goes end to end, and nothing the catalogue did not
//! ask for was dead-lettered. The pure refusals are tested per crate; this is the running
//! system's answer to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dbt_ops::commands::submit::{submit, wait_for_outcomes};
use dbtops_bus::headers::MESSAGE_TYPE;
use dbtops_e2e::http::HttpAnswer;
use dbtops_e2e::{ExampleRepo, TestSystem};
use dbtops_proto::{v1, WireMessage};
use futures::{FutureExt, StreamExt};
use prost::Message;

const STG_ORDERS: &str = "models/staging/stg_orders.sql";
const WAIT: Duration = Duration::from_secs(300);
const GITLAB_TOKEN: &str = "bad-input-gitlab-token";
const GITHUB_SECRET: &str = "bad-input-github-secret";
/// `detector.max_artifact_bytes` in these systems: above the example's real artifacts
/// (a 650 KB manifest), below what the oversized kinds send.
const MAX_ARTIFACT_BYTES: u64 = 2 * 1024 * 1024;
/// `detector.grpc_max_message_bytes` in these systems.
const GRPC_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
const MIB: usize = 1024 * 1024;

/// Builds a kind's input against the running system, given the fixture and the kind's name.
type MakeInjection = Box<dyn Fn(&Fixture, &'static str) -> Injection>;

/// One kind of bad input: how it is made and injected, and what the system must answer.
struct Kind {
    /// Unique, and no part of another kind's name: it is the submission or incident id,
    /// or a tag in the payload, so each answer can be told apart from the others'.
    name: &'static str,
    /// Builds the input.
    inject: MakeInjection,
    /// What must come of it.
    expect: Expect,
}

fn kind(
    name: &'static str,
    inject: impl Fn(&Fixture, &'static str) -> Injection + 'static,
    expect: Expect,
) -> Kind {
    Kind {
        name,
        inject: Box::new(inject),
        expect,
    }
}

/// How a kind reaches the system.
enum Injection {
    /// Published on `subject` through the real bus, with `type_name` in the `dbtops-type`
    /// header (no header when `None`), after `object` is put in the artifacts object store.
    Publish {
        subject: String,
        type_name: Option<&'static str>,
        payload: Vec<u8>,
        object: Option<(String, Vec<u8>)>,
    },
    /// Sent to the detector's `Ingest/SubmitRun` over gRPC.
    SubmitRun(v1::RunSubmitted),
    /// POSTed to delivery's webhook endpoint at `path`.
    Webhook {
        path: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
}

/// What the system must answer. Every text is a list of needles that must all be in it.
#[derive(Debug)]
enum Expect {
    /// A dead letter from `service` with a reason naming the problem; `tagged` when the
    /// dead-lettered payload carries the kind's name (only an empty payload cannot).
    DeadLetter {
        service: &'static str,
        reason: &'static [&'static str],
        tagged: bool,
    },
    /// The incident named after the kind is abandoned with `reason`, and its detail says why.
    Abandoned {
        reason: &'static str,
        detail: &'static [&'static str],
    },
    /// The validator refuses the proposal for the incident named after the kind at `step`,
    /// before any dbt runs, and the fixer, with nothing better, abandons it (`no_fix_found`).
    Refused {
        step: &'static str,
        error: &'static [&'static str],
    },
    /// The submission named after the kind is processed with `incidents` new incidents and
    /// notes that say what was odd about it.
    Processed {
        incidents: usize,
        notes: &'static [&'static str],
    },
    /// The bus refuses the publish itself.
    PublishRefused { error: &'static [&'static str] },
    /// gRPC answers `code` (tonic's name for it) with a message naming the problem.
    Grpc {
        code: &'static str,
        message: &'static [&'static str],
    },
    /// HTTP answers `status` with a body naming the problem.
    Http {
        status: u16,
        body: &'static [&'static str],
    },
}

impl Expect {
    fn is_dead_letter(&self) -> bool {
        matches!(self, Expect::DeadLetter { .. })
    }
}

fn dead_letter(service: &'static str, reason: &'static [&'static str]) -> Expect {
    Expect::DeadLetter {
        service,
        reason,
        tagged: true,
    }
}

fn abandoned(reason: &'static str, detail: &'static [&'static str]) -> Expect {
    Expect::Abandoned { reason, detail }
}

fn refused_by_guardrails(error: &'static [&'static str]) -> Expect {
    Expect::Refused {
        step: "guardrails",
        error,
    }
}

fn delivery_guardrail(detail: &'static [&'static str]) -> Expect {
    abandoned("guardrail", detail)
}

fn http(status: u16, body: &'static [&'static str]) -> Expect {
    Expect::Http { status, body }
}

/// What came back at once from an injection.
#[derive(Debug)]
enum Answer {
    /// The bus stored the message.
    Published,
    /// The bus refused it.
    PublishRefused(String),
    /// gRPC's verdict, or its (code, message).
    Grpc(Result<v1::RunProcessed, (String, String)>),
    /// The webhook endpoint's answer.
    Http(HttpAnswer),
}

fn contains_all(text: &str, needles: &[&str]) -> bool {
    needles.iter().all(|needle| text.contains(needle))
}

/// Whether `answer` is what `expect` says comes back at once (for kinds answered later on
/// the bus: that the bus stored the message).
fn check_answer(expect: &Expect, answer: &Answer) -> Result<(), String> {
    let matched = match (expect, answer) {
        (Expect::PublishRefused { error }, Answer::PublishRefused(refusal)) => {
            contains_all(refusal, error)
        }
        (Expect::Grpc { code, message }, Answer::Grpc(Err((found, text)))) => {
            found == code && contains_all(text, message)
        }
        (Expect::Http { status, body }, Answer::Http(found)) => {
            found.status == *status && contains_all(&found.body, body)
        }
        (
            Expect::DeadLetter { .. }
            | Expect::Abandoned { .. }
            | Expect::Refused { .. }
            | Expect::Processed { .. },
            Answer::Published,
        ) => true,
        _ => false,
    };
    if matched {
        Ok(())
    } else {
        Err(format!("expected {expect:?}, got {answer:?}"))
    }
}

/// A dead letter as a test reads it.
struct Letter {
    service: String,
    reason: String,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload may be binary and large: its length and its start are enough.
        let start: String = String::from_utf8_lossy(&self.payload)
            .chars()
            .take(120)
            .collect();
        f.debug_struct("Letter")
            .field("service", &self.service)
            .field("reason", &self.reason)
            .field("payload_len", &self.payload.len())
            .field("payload_start", &start)
            .finish()
    }
}

/// Everything the system said on the bus, for the expectations and their messages.
#[derive(Debug, Default)]
struct Observed {
    letters: Vec<Letter>,
    /// (incident, reason, detail).
    abandoned: Vec<(String, String, String)>,
    /// (submission, new incidents, notes).
    processed: Vec<(String, usize, String)>,
    /// Proposals the validator refused: (incident, failed step, error).
    refused: Vec<(String, String, String)>,
    /// Merge requests announced merged or closed (by the webhook endpoint).
    merge_requests_ended: Vec<String>,
}

impl Observed {
    async fn collect(system: &TestSystem) -> Self {
        let bus = &system.bus;
        let subjects = bus.subjects();
        let replay = |subject: String| async move {
            bus.replay(&subject)
                .await
                .unwrap_or_else(|error| panic!("replaying {subject}: {error}"))
        };
        let mut observed = Observed::default();
        for service in ["detector", "fixer", "validator", "delivery"] {
            for stored in replay(subjects.dead_letter(service)).await {
                let letter: v1::DeadLetter = stored.decode().expect("a DeadLetter");
                observed.letters.push(Letter {
                    service: letter.service,
                    reason: letter.reason,
                    payload: letter.payload,
                });
            }
        }
        for stored in replay(subjects.incident_abandoned()).await {
            let message: v1::IncidentAbandoned = stored.decode().expect("an IncidentAbandoned");
            observed
                .abandoned
                .push((message.incident_id, message.reason, message.detail));
        }
        for stored in replay(subjects.run_processed()).await {
            let message: v1::RunProcessed = stored.decode().expect("a RunProcessed");
            observed.processed.push((
                message.submission_id,
                message.new_incident_ids.len(),
                message.notes.join(" | "),
            ));
        }
        for stored in replay(subjects.compile_failed()).await {
            let message: v1::CompileFailed = stored.decode().expect("a CompileFailed");
            let incident = message.incident.map(|i| i.incident_id).unwrap_or_default();
            observed
                .refused
                .push((incident, message.failed_step, message.error_text));
        }
        for subject in [subjects.mr_merged(), subjects.mr_closed()] {
            for stored in replay(subject.clone()).await {
                observed.merge_requests_ended.push(stored.subject.clone());
            }
        }
        observed
    }

    fn abandoned(&self, incident: &str) -> Option<(&str, &str)> {
        self.abandoned
            .iter()
            .find(|(id, _, _)| id == incident)
            .map(|(_, reason, detail)| (reason.as_str(), detail.as_str()))
    }

    fn refused(&self, incident: &str) -> Option<(&str, &str)> {
        self.refused
            .iter()
            .find(|(id, _, _)| id == incident)
            .map(|(_, step, error)| (step.as_str(), error.as_str()))
    }

    fn processed(&self, submission: &str) -> Option<(usize, &str)> {
        self.processed
            .iter()
            .find(|(id, _, _)| id == submission)
            .map(|(_, incidents, notes)| (*incidents, notes.as_str()))
    }
}

/// The kinds answered on the bus whose answer is not (yet) there, one line each. Each dead
/// letter answers one kind only; kinds whose payload carries their name pick first, so a
/// kind that cannot be told apart by its payload does not take another's letter.
fn unmet_on_the_bus(catalogue: &[Kind], observed: &Observed) -> Vec<String> {
    let mut taken = vec![false; observed.letters.len()];
    let mut unmet = Vec::new();
    let tagged_first = catalogue
        .iter()
        .filter(|kind| !matches!(kind.expect, Expect::DeadLetter { tagged: false, .. }))
        .chain(
            catalogue
                .iter()
                .filter(|kind| matches!(kind.expect, Expect::DeadLetter { tagged: false, .. })),
        );
    for kind in tagged_first {
        let name = kind.name;
        match &kind.expect {
            Expect::DeadLetter {
                service,
                reason,
                tagged,
            } => {
                let found = observed.letters.iter().enumerate().position(|(i, letter)| {
                    !taken[i]
                        && letter.service == *service
                        && contains_all(&letter.reason, reason)
                        && (!tagged
                            || letter
                                .payload
                                .windows(name.len())
                                .any(|window| window == name.as_bytes()))
                });
                match found {
                    Some(index) => taken[index] = true,
                    None => unmet.push(format!(
                        "{name}: no dead letter from {service} with a reason containing {reason:?}"
                    )),
                }
            }
            Expect::Abandoned { reason, detail } => match observed.abandoned(name) {
                Some((found, text)) if found == *reason && contains_all(text, detail) => {}
                other => unmet.push(format!(
                    "{name}: expected abandoned {reason:?} with {detail:?}, got {other:?}"
                )),
            },
            Expect::Refused { step, error } => {
                match observed.refused(name) {
                    Some((found, text)) if found == *step && contains_all(text, error) => {}
                    other => unmet.push(format!(
                        "{name}: expected refused at {step:?} with {error:?}, got {other:?}"
                    )),
                }
                match observed.abandoned(name) {
                    Some(("no_fix_found", _)) => {}
                    other => unmet.push(format!(
                        "{name}: expected abandoned \"no_fix_found\" after the refusal, got {other:?}"
                    )),
                }
            }
            Expect::Processed { incidents, notes } => match observed.processed(name) {
                Some((found, text)) if found == *incidents && contains_all(text, notes) => {}
                other => unmet.push(format!(
                    "{name}: expected processed with {incidents} incidents and notes {notes:?}, got {other:?}"
                )),
            },
            Expect::PublishRefused { .. } | Expect::Grpc { .. } | Expect::Http { .. } => {}
        }
    }
    unmet
}

/// A running system with everything the kinds point at.
struct Fixture {
    system: TestSystem,
    /// The good incident's repository: `stg_orders` broken and run with real dbt. Bad
    /// incidents point at it too, so that only the thing under test is wrong.
    repo: ExampleRepo,
    /// A checkout whose model directory holds symbolic links: `models/escape` out of the
    /// project, `models/staging/alias_orders.sql` to another model file.
    linked: ExampleRepo,
    /// Where `models/escape` points: outside every project.
    _outside: tempfile::TempDir,
    /// A project directory with no git repository around it.
    no_git: tempfile::TempDir,
    /// The detector's gRPC `Ingest`.
    grpc_address: String,
    /// Delivery's webhook endpoint.
    webhook_address: String,
}

impl Fixture {
    async fn start() -> Self {
        let repo = broken_repo();
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            outside.path().join("stg_orders.sql"),
            "select 1 as outside\n",
        )
        .expect("a file outside the project");
        let linked = ExampleRepo::new();
        std::os::unix::fs::symlink(outside.path(), linked.project.join("models/escape"))
            .expect("a link out of the project");
        std::os::unix::fs::symlink(
            "stg_orders.sql",
            linked.project.join("models/staging/alias_orders.sql"),
        )
        .expect("a link to another model file");
        let no_git = tempfile::tempdir().expect("temp dir");
        dbtops_e2e::copy_tree(
            &dbtops_e2e::repo_root().join("examples/coffee_shop"),
            no_git.path(),
        );
        let grpc_address = dbtops_e2e::free_loopback_address();
        let webhook_address = dbtops_e2e::free_loopback_address();
        let system = TestSystem::start(|settings| {
            settings.detector.grpc_listen = grpc_address.clone();
            settings.detector.grpc_max_message_bytes = GRPC_MAX_MESSAGE_BYTES;
            settings.detector.max_artifact_bytes = MAX_ARTIFACT_BYTES;
            settings.delivery.webhook_listen = webhook_address.clone();
            settings.delivery.gitlab.webhook_token = GITLAB_TOKEN.into();
            settings.delivery.github.webhook_secret = GITHUB_SECRET.into();
        })
        .await;
        Self {
            system,
            repo,
            linked,
            _outside: outside,
            no_git,
            grpc_address,
            webhook_address,
        }
    }

    /// Injects every kind, checks what came back at once, waits for what the bus must
    /// show, then has a good incident go end to end and checks that nothing else was
    /// dead-lettered.
    async fn run_catalogue(&self, title: &str, catalogue: &[Kind]) -> Observed {
        println!("bad-input catalogue, {title}: {} kinds", catalogue.len());
        let mut answered_wrongly = Vec::new();
        for kind in catalogue {
            let answer = self.inject((kind.inject)(self, kind.name)).await;
            if let Err(problem) = check_answer(&kind.expect, &answer) {
                answered_wrongly.push(format!("{}: {problem}", kind.name));
            }
        }
        assert!(
            answered_wrongly.is_empty(),
            "answered wrongly at once:\n{}",
            answered_wrongly.join("\n")
        );
        self.wait_for_answers_on_the_bus(catalogue).await;

        // The services still serve.
        self.assert_good_incident_gets_a_branch().await;

        let observed = Observed::collect(&self.system).await;
        let unmet = unmet_on_the_bus(catalogue, &observed);
        assert!(unmet.is_empty(), "{}\n{observed:#?}", unmet.join("\n"));
        let dead_letter_kinds = catalogue
            .iter()
            .filter(|kind| kind.expect.is_dead_letter())
            .count();
        assert_eq!(
            observed.letters.len(),
            dead_letter_kinds,
            "dead letters the catalogue did not ask for: {observed:#?}"
        );
        observed
    }

    /// Stops the services; the repositories go with the fixture.
    async fn stop(self) {
        self.system.stop().await;
    }

    async fn inject(&self, injection: Injection) -> Answer {
        let bus = &self.system.bus;
        match injection {
            Injection::Publish {
                subject,
                type_name,
                payload,
                object,
            } => {
                if let Some((name, content)) = object {
                    bus.put_artifact(&name, &content)
                        .await
                        .expect("the object is stored");
                }
                let mut headers = async_nats::HeaderMap::new();
                if let Some(type_name) = type_name {
                    headers.insert(MESSAGE_TYPE, type_name);
                }
                match bus
                    .publish_raw(&subject, headers, bytes::Bytes::from(payload))
                    .await
                {
                    Ok(_) => Answer::Published,
                    Err(error) => Answer::PublishRefused(error.to_string()),
                }
            }
            Injection::SubmitRun(run) => Answer::Grpc(self.submit_run(run).await),
            Injection::Webhook {
                path,
                headers,
                body,
            } => Answer::Http(self.post_webhook(path, &headers, &body).await),
        }
    }

    /// `Ingest/SubmitRun`: the verdict, or the status's code name and message.
    async fn submit_run(
        &self,
        run: v1::RunSubmitted,
    ) -> Result<v1::RunProcessed, (String, String)> {
        let url = format!("http://{}", self.grpc_address);
        // The server binds while the system starts: the first call may come before it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut client = loop {
            match v1::ingest_client::IngestClient::connect(url.clone()).await {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "gRPC Ingest at {url} never answered: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        client
            .submit_run(run)
            .await
            .map(|response| response.into_inner())
            .map_err(|status| (format!("{:?}", status.code()), status.message().to_owned()))
    }

    async fn post_webhook(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> HttpAnswer {
        // Delivery binds its listener while the system starts.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match dbtops_e2e::http::post(&self.webhook_address, path, headers, body).await {
                Ok(answer) => return answer,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the webhook endpoint never answered: {error:#}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Waits until every kind answered on the bus has its answer there, woken by each new
    /// message on the system's subjects.
    async fn wait_for_answers_on_the_bus(&self, catalogue: &[Kind]) {
        let bus = &self.system.bus;
        let mut live = bus
            .client()
            .subscribe(bus.subjects().all())
            .await
            .expect("a subscription to every subject");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let observed = Observed::collect(&self.system).await;
            let unmet = unmet_on_the_bus(catalogue, &observed);
            if unmet.is_empty() {
                return;
            }
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !remaining.is_zero(),
                "not answered within {WAIT:?}:\n{}\n{observed:#?}",
                unmet.join("\n")
            );
            let _ = tokio::time::timeout(remaining, live.next()).await;
            // A burst wakes one look, not one per message.
            while let Some(Some(_)) = live.next().now_or_never() {}
        }
    }

    /// Submits the good repository's last run and asserts that its one incident got the
    /// only branch.
    async fn assert_good_incident_gets_a_branch(&self) {
        let bus = &self.system.bus;
        let submitted = submit(bus, &self.repo.project, None, None)
            .await
            .expect("submit");
        let (outcomes, _notes) = wait_for_outcomes(bus, &submitted.submission_id, WAIT)
            .await
            .expect("outcomes");
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert_eq!(outcomes[0].outcome, "branch_opened", "{outcomes:?}");
        let branches = self.repo.fix_branches();
        assert_eq!(branches.len(), 1, "{branches:?}");
        assert!(
            self.linked.fix_branches().is_empty(),
            "{:?}",
            self.linked.fix_branches()
        );
    }

    // Messages the kinds are made of.

    fn repo_project(&self, repo: &ExampleRepo) -> v1::ProjectRef {
        let head = repo.git(&["rev-parse", "HEAD"]).trim().to_owned();
        project_ref(&repo.project, &repo.root, head)
    }

    /// A submission of the good repository's project carrying `artifacts`.
    fn run_submitted(&self, id: &str, artifacts: Vec<v1::Artifact>) -> v1::RunSubmitted {
        v1::RunSubmitted {
            submission_id: id.into(),
            project: Some(self.repo_project(&self.repo)),
            artifacts,
            submitted_at: "2026-11-25T00:00:00Z".into(),
        }
    }

    /// `run_submitted` published on `dbtops.run.submitted`.
    fn submission(&self, id: &str, artifacts: Vec<v1::Artifact>) -> Injection {
        publish(
            self.system.bus.subjects().run_submitted(),
            &self.run_submitted(id, artifacts),
        )
    }

    /// One of the good run's own artifacts (`target/…`, `logs/…`).
    fn good_artifact(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.repo.project.join(relative)).expect("an artifact of the good run")
    }

    /// The incident a bad proposal or validated fix belongs to: `model_path` in the
    /// project at `project_dir`, with the model's SQL as evidence.
    fn incident_at(
        &self,
        id: &str,
        project: v1::ProjectRef,
        model_path: &str,
        model_sql: String,
    ) -> v1::FailureDetected {
        let name = Path::new(model_path)
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        v1::FailureDetected {
            incident_id: id.into(),
            submission_id: format!("{id}-submission"),
            project: Some(project),
            model: Some(v1::ModelRef {
                unique_id: format!("model.coffee_shop.{name}"),
                name,
                path: model_path.into(),
                resource_type: "model".into(),
            }),
            error: Some(v1::FailureError {
                class: v1::ErrorClass::MissingColumn as i32,
                message: "Binder Error: Referenced column \"custmer_id\" not found".into(),
                ..Default::default()
            }),
            evidence: Some(v1::Evidence {
                model_sql,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The good repository's failing `stg_orders`, as the detector would report it.
    fn incident(&self, id: &str) -> v1::FailureDetected {
        let model_sql =
            std::fs::read_to_string(self.repo.project.join(STG_ORDERS)).expect("the model");
        self.incident_at(id, self.repo_project(&self.repo), STG_ORDERS, model_sql)
    }

    /// An incident on `model_path` in the checkout with symbolic links.
    fn linked_incident(&self, id: &str, model_path: &str) -> v1::FailureDetected {
        self.incident_at(
            id,
            self.repo_project(&self.linked),
            model_path,
            clean_stg_orders(),
        )
    }

    /// A proposal for `incident` published on `dbtops.fix.proposed`.
    fn proposed(&self, incident: v1::FailureDetected, path: &str, sql: &str) -> Injection {
        publish(
            self.system.bus.subjects().fix_proposed(),
            &v1::FixProposed {
                incident: Some(incident),
                attempt: 1,
                proposal: Some(proposal(path, sql)),
                history: vec![],
            },
        )
    }

    /// A fix for `incident` published on `dbtops.fix.validated`, as if the validator had
    /// passed it.
    fn validated(&self, incident: v1::FailureDetected, path: &str, sql: &str) -> Injection {
        publish(
            self.system.bus.subjects().fix_validated(),
            &v1::FixValidated {
                incident: Some(incident),
                attempt: 1,
                proposal: Some(proposal(path, sql)),
                steps: vec![],
                diff: String::new(),
                history: vec![],
            },
        )
    }
}

/// The example project at `project_dir`, in the repository at `repo_dir`.
fn project_ref(project_dir: &Path, repo_dir: &Path, commit_sha: String) -> v1::ProjectRef {
    v1::ProjectRef {
        name: "coffee_shop".into(),
        project_dir: project_dir.display().to_string(),
        repo_dir: repo_dir.display().to_string(),
        commit_sha,
        branch: "main".into(),
        model_paths: vec!["models".into()],
    }
}

/// Breaks `stg_orders` (a misspelt column a rule fixes) and runs real dbt on it.
fn broken_repo() -> ExampleRepo {
    let repo = ExampleRepo::new();
    repo.break_model(STG_ORDERS, "    customer_id,\n", "    custmer_id,\n");
    let (ok, output) = repo.dbt(&["build"]);
    assert!(!ok, "the broken project must fail:\n{output}");
    repo
}

fn clean_stg_orders() -> String {
    std::fs::read_to_string(
        dbtops_e2e::repo_root()
            .join("examples/coffee_shop")
            .join(STG_ORDERS),
    )
    .expect("the clean model")
}

fn proposal(path: &str, sql: &str) -> v1::FixProposal {
    v1::FixProposal {
        model_path: path.into(),
        fixed_sql: sql.into(),
        explanation: "bad-input catalogue".into(),
        error_class: v1::ErrorClass::MissingColumn as i32,
        confidence: 1.0,
        strategy: "catalogue".into(),
        ..Default::default()
    }
}

fn publish<M: WireMessage>(subject: String, message: &M) -> Injection {
    Injection::Publish {
        subject,
        type_name: Some(M::TYPE_NAME),
        payload: message.encode_to_vec(),
        object: None,
    }
}

fn raw(subject: String, type_name: Option<&'static str>, payload: Vec<u8>) -> Injection {
    Injection::Publish {
        subject,
        type_name,
        payload,
        object: None,
    }
}

/// `injection`, with `content` put in the artifacts object store as `name` first.
fn stored_first(injection: Injection, name: &str, content: Vec<u8>) -> Injection {
    match injection {
        Injection::Publish {
            subject,
            type_name,
            payload,
            ..
        } => Injection::Publish {
            subject,
            type_name,
            payload,
            object: Some((name.to_owned(), content)),
        },
        other => other,
    }
}

fn inline(kind: &str, content: Vec<u8>) -> v1::Artifact {
    v1::Artifact {
        kind: kind.into(),
        size_bytes: content.len() as u64,
        body: Some(v1::artifact::Body::Inline(content)),
    }
}

/// Bytes that are no protobuf message (a length running past the end), carrying `tag`.
fn not_protobuf(tag: &str) -> Vec<u8> {
    let mut bytes = b"\x0a\xff\xff not protobuf: ".to_vec();
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// Bytes no artifact parser reads: neither JSON, nor a log, nor text.
fn binary() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect()
}

/// Prose, UTF-8 and line by line, that no dbt ever wrote.
fn prose() -> Vec<u8> {
    b"Dear team,\nthe nightly job looked unhappy again.\nPlease have a look when you can.\n"
        .to_vec()
}

/// A passing run written by a dbt whose run_results schema this reader does not know.
const RESULTS_OF_A_NEWER_DBT: &[u8] = br#"{
  "metadata": {
    "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v99.json",
    "dbt_version": "9.9.0",
    "invocation_id": "6b1f4a2e-0000-4000-8000-000000000099"
  },
  "results": [{"unique_id": "model.coffee_shop.stg_stores", "status": "success", "message": "OK"}]
}"#;

/// A failing run whose manifest is another run's (and lacks the failing node).
const RESULTS_OF_ANOTHER_RUN: &[u8] = br#"{
  "metadata": {
    "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
    "invocation_id": "6b1f4a2e-0000-4000-8000-000000000042"
  },
  "results": [{
    "unique_id": "model.coffee_shop.ghost_model",
    "status": "error",
    "message": "Runtime Error in model ghost_model (models/ghost_model.sql)\n  Binder Error: Referenced column \"x\" not found"
  }]
}"#;

const RUN_RESULTS: &str = "run_results.json";
const MANIFEST: &str = "manifest.json";
const DBT_LOG: &str = "dbt.log";
const CONSOLE: &str = "console.txt";
const PROJECT_FILES: &str = "project_files.json";

/// What reaches the detector (artifacts on the bus and over gRPC) and every consumer loop
/// (messages that are undecodable, mistyped, incomplete or oversized).
fn detector_and_bus_kinds() -> Vec<Kind> {
    vec![
        // Artifacts on the bus: the detector dead-letters the submission with a reason
        // naming the artifact and what is wrong with it.
        kind(
            "corrupt-json",
            |f, id| {
                f.submission(
                    id,
                    vec![inline(RUN_RESULTS, b"{ this is not json".to_vec())],
                )
            },
            dead_letter("detector", &["run_results.json is not valid JSON"]),
        ),
        kind(
            "truncated-json",
            |f, id| {
                let results = f.good_artifact("target/run_results.json");
                f.submission(
                    id,
                    vec![inline(RUN_RESULTS, results[..results.len() / 2].to_vec())],
                )
            },
            dead_letter("detector", &["run_results.json is truncated"]),
        ),
        kind(
            "binary-artifacts",
            |f, id| {
                f.submission(
                    id,
                    vec![
                        inline(RUN_RESULTS, binary()),
                        inline(DBT_LOG, binary()),
                        inline(MANIFEST, binary()),
                    ],
                )
            },
            dead_letter(
                "detector",
                &[
                    "manifest.json is not a JSON object",
                    "run_results.json is not a JSON object",
                    "dbt.log: no dbt log lines found",
                ],
            ),
        ),
        kind(
            "wrong-schema",
            |f, id| {
                f.submission(
                    id,
                    vec![inline(
                        RUN_RESULTS,
                        br#"{"results": "not a list", "metadata": 7}"#.to_vec(),
                    )],
                )
            },
            dead_letter("detector", &["unexpected shape", "expected a sequence"]),
        ),
        kind(
            "empty-artifact",
            |f, id| f.submission(id, vec![inline(RUN_RESULTS, Vec::new())]),
            dead_letter("detector", &["run_results.json is empty"]),
        ),
        kind(
            "nul-in-json",
            |f, id| {
                f.submission(
                    id,
                    vec![inline(
                        RUN_RESULTS,
                        b"{\"metadata\": {\"invocation_id\": \"a\0b\"}}".to_vec(),
                    )],
                )
            },
            dead_letter("detector", &["run_results.json", "control character"]),
        ),
        kind(
            "no-artifacts",
            |f, id| f.submission(id, vec![]),
            dead_letter("detector", &["no artifacts given"]),
        ),
        kind(
            "unknown-artifact-kind",
            |f, id| f.submission(id, vec![inline("core.dump", binary())]),
            dead_letter(
                "detector",
                &[
                    "no artifacts given",
                    "skipped artifacts of unknown kinds: [\"core.dump\"]",
                ],
            ),
        ),
        kind(
            "log-of-something-else",
            |f, id| f.submission(id, vec![inline(DBT_LOG, prose())]),
            dead_letter("detector", &["dbt.log: no dbt log lines found"]),
        ),
        kind(
            "console-of-something-else",
            |f, id| f.submission(id, vec![inline(CONSOLE, prose())]),
            dead_letter("detector", &["console output: no dbt log lines found"]),
        ),
        kind(
            "manifest-alone",
            |f, id| {
                let manifest = f.good_artifact("target/manifest.json");
                f.submission(id, vec![inline(MANIFEST, manifest)])
            },
            dead_letter("detector", &["nothing says how the run went"]),
        ),
        kind(
            "project-files-not-json",
            |f, id| f.submission(id, vec![inline(PROJECT_FILES, b"models: [".to_vec())]),
            dead_letter("detector", &["project_files.json is not valid"]),
        ),
        kind(
            "declared-over-limit",
            |f, id| {
                let mut artifact = inline(RUN_RESULTS, b"{}".to_vec());
                artifact.size_bytes = 3 * MIB as u64;
                f.submission(id, vec![artifact])
            },
            dead_letter("detector", &["over detector.max_artifact_bytes"]),
        ),
        kind(
            "stored-object-over-limit",
            |f, id| {
                // The sender says 2 bytes; the object store holds 3 MiB.
                let artifact = v1::Artifact {
                    kind: RUN_RESULTS.into(),
                    size_bytes: 2,
                    body: Some(v1::artifact::Body::ObjectName(id.into())),
                };
                stored_first(f.submission(id, vec![artifact]), id, vec![b' '; 3 * MIB])
            },
            dead_letter(
                "detector",
                &[
                    "artifact stored-object-over-limit is 3145728 bytes, over the limit of 2097152",
                    "detector.max_artifact_bytes",
                ],
            ),
        ),
        kind(
            "stored-object-missing",
            |f, id| {
                let artifact = v1::Artifact {
                    kind: RUN_RESULTS.into(),
                    size_bytes: 10,
                    body: Some(v1::artifact::Body::ObjectName(format!("{id}.never-stored"))),
                };
                f.submission(id, vec![artifact])
            },
            // The object store may lag its writer on a cluster: retried, then given up.
            dead_letter(
                "detector",
                &["gave up after 5 deliveries", "object not found"],
            ),
        ),
        kind(
            "submission-without-id",
            |f, id| {
                let mut run = f.run_submitted("", vec![inline(RUN_RESULTS, b"{}".to_vec())]);
                run.submitted_at = id.into();
                publish(f.system.bus.subjects().run_submitted(), &run)
            },
            dead_letter("detector", &["RunSubmitted without a submission_id"]),
        ),
        kind(
            "unknown-schema-version",
            |f, id| {
                f.submission(
                    id,
                    vec![inline(RUN_RESULTS, RESULTS_OF_A_NEWER_DBT.to_vec())],
                )
            },
            // Read anyway, and said so: a newer dbt must not stop detection.
            Expect::Processed {
                incidents: 0,
                notes: &["run_results.json: schema v99", "read it anyway"],
            },
        ),
        kind(
            "manifest-of-another-run",
            |f, id| {
                f.submission(
                    id,
                    vec![
                        inline(RUN_RESULTS, RESULTS_OF_ANOTHER_RUN.to_vec()),
                        inline(MANIFEST, f.good_artifact("target/manifest.json")),
                    ],
                )
            },
            // Used for its graph, and said so: the failure is the run's, not the manifest's.
            Expect::Processed {
                incidents: 1,
                notes: &[
                    "manifest.json is from invocation",
                    "not the failing run's 6b1f4a2e-0000-4000-8000-000000000042",
                ],
            },
        ),
        // The same refusals through gRPC: the caller hears them at once, and nothing is
        // dead-lettered (there is no message to keep).
        kind(
            "grpc-invalid-json",
            |f, id| {
                let artifacts = vec![inline(RUN_RESULTS, b"{ nope".to_vec())];
                Injection::SubmitRun(f.run_submitted(id, artifacts))
            },
            Expect::Grpc {
                code: "InvalidArgument",
                message: &["run_results.json is not valid JSON"],
            },
        ),
        kind(
            "grpc-empty-submission",
            |f, id| Injection::SubmitRun(f.run_submitted(id, vec![])),
            Expect::Grpc {
                code: "InvalidArgument",
                message: &["no artifacts given"],
            },
        ),
        kind(
            "grpc-size-over-limit",
            |f, id| {
                let mut artifact = inline(RUN_RESULTS, b"{}".to_vec());
                artifact.size_bytes = 3 * MIB as u64;
                Injection::SubmitRun(f.run_submitted(id, vec![artifact]))
            },
            Expect::Grpc {
                code: "InvalidArgument",
                message: &["over detector.max_artifact_bytes"],
            },
        ),
        kind(
            "grpc-over-message-limit",
            |f, id| {
                let log = vec![b'x'; GRPC_MAX_MESSAGE_BYTES as usize + MIB / 2];
                Injection::SubmitRun(f.run_submitted(id, vec![inline(DBT_LOG, log)]))
            },
            Expect::Grpc {
                code: "OutOfRange",
                message: &["message length too large"],
            },
        ),
        // Messages: each consumer loop dead-letters what it cannot read, with the reason.
        kind(
            "undecodable-submission",
            |f, id| {
                raw(
                    f.system.bus.subjects().run_submitted(),
                    Some(<v1::RunSubmitted as WireMessage>::TYPE_NAME),
                    not_protobuf(id),
                )
            },
            dead_letter("detector", &["malformed dbtops.v1.RunSubmitted"]),
        ),
        kind(
            "string-not-utf8",
            |f, id| {
                let run = v1::RunSubmitted {
                    submission_id: "@@".into(),
                    submitted_at: id.into(),
                    ..Default::default()
                };
                let mut payload = run.encode_to_vec();
                let at = payload
                    .windows(2)
                    .position(|window| window == b"@@")
                    .expect("the placeholder");
                payload[at..at + 2].copy_from_slice(b"\xff\xfe");
                raw(
                    f.system.bus.subjects().run_submitted(),
                    Some(<v1::RunSubmitted as WireMessage>::TYPE_NAME),
                    payload,
                )
            },
            dead_letter("detector", &["malformed dbtops.v1.RunSubmitted", "UTF-8"]),
        ),
        kind(
            "type-not-matching-subject",
            |f, id| {
                let fix = v1::FixValidated {
                    incident: Some(f.incident(id)),
                    ..Default::default()
                };
                raw(
                    f.system.bus.subjects().run_submitted(),
                    Some(<v1::FixValidated as WireMessage>::TYPE_NAME),
                    fix.encode_to_vec(),
                )
            },
            dead_letter(
                "detector",
                &[
                    "unexpected message type \"dbtops.v1.FixValidated\"",
                    "expected dbtops.v1.RunSubmitted",
                ],
            ),
        ),
        kind(
            "empty-submission-payload",
            |f, _| {
                raw(
                    f.system.bus.subjects().run_submitted(),
                    Some(<v1::RunSubmitted as WireMessage>::TYPE_NAME),
                    Vec::new(),
                )
            },
            Expect::DeadLetter {
                service: "detector",
                reason: &["RunSubmitted without a submission_id"],
                tagged: false,
            },
        ),
        kind(
            "undecodable-incident",
            |f, id| {
                raw(
                    f.system.bus.subjects().failure_detected(),
                    Some(<v1::FailureDetected as WireMessage>::TYPE_NAME),
                    not_protobuf(id),
                )
            },
            dead_letter("fixer", &["malformed dbtops.v1.FailureDetected"]),
        ),
        kind(
            "fixer-wrong-type",
            |f, id| {
                raw(
                    f.system.bus.subjects().failure_detected(),
                    Some(<v1::RunSubmitted as WireMessage>::TYPE_NAME),
                    f.run_submitted(id, vec![]).encode_to_vec(),
                )
            },
            dead_letter(
                "fixer",
                &["unexpected message type \"dbtops.v1.RunSubmitted\""],
            ),
        ),
        kind(
            "fixer-type-header-missing",
            |f, id| {
                raw(
                    f.system.bus.subjects().failure_detected(),
                    None,
                    f.incident(id).encode_to_vec(),
                )
            },
            dead_letter("fixer", &["missing dbtops-type header"]),
        ),
        kind(
            "incident-without-model",
            |f, id| {
                let mut incident = f.incident(id);
                incident.model = None;
                publish(f.system.bus.subjects().failure_detected(), &incident)
            },
            dead_letter("fixer", &["incident without an id or a model"]),
        ),
        kind(
            "incident-without-id",
            |f, id| {
                let mut incident = f.incident("");
                if let Some(model) = incident.model.as_mut() {
                    model.name = id.into();
                }
                publish(f.system.bus.subjects().failure_detected(), &incident)
            },
            dead_letter("fixer", &["incident without an id or a model"]),
        ),
        kind(
            "compile-failure-without-incident",
            |f, id| {
                let failed = v1::CompileFailed {
                    attempt: 1,
                    proposal: Some(proposal(STG_ORDERS, id)),
                    failed_step: "dbt compile".into(),
                    error_text: "Compilation Error".into(),
                    ..Default::default()
                };
                publish(f.system.bus.subjects().compile_failed(), &failed)
            },
            dead_letter("fixer", &["CompileFailed without its incident"]),
        ),
        kind(
            "attempt-overflow",
            |f, id| {
                let failed = v1::CompileFailed {
                    incident: Some(f.incident(id)),
                    attempt: u32::MAX,
                    proposal: Some(proposal(STG_ORDERS, &clean_stg_orders())),
                    failed_step: "dbt build --empty".into(),
                    error_text: "Binder Error: Referenced column \"custmer_id\" not found".into(),
                    ..Default::default()
                };
                publish(f.system.bus.subjects().compile_failed(), &failed)
            },
            abandoned(
                "attempts_exhausted",
                &["no proposal validated in 3 attempts"],
            ),
        ),
        kind(
            "oversized-field",
            |f, id| {
                let mut incident = f.incident(id);
                if let Some(model) = incident.model.as_mut() {
                    model.name = "m".repeat(512 * 1024);
                }
                publish(f.system.bus.subjects().failure_detected(), &incident)
            },
            abandoned("no_fix_found", &["no rule matched this failure"]),
        ),
        kind(
            "unknown-message-type",
            |f, id| {
                raw(
                    f.system.bus.subjects().fix_proposed(),
                    Some("dbtops.v1.SomethingElse"),
                    proposal(STG_ORDERS, id).encode_to_vec(),
                )
            },
            dead_letter(
                "validator",
                &[
                    "unexpected message type \"dbtops.v1.SomethingElse\"",
                    "expected dbtops.v1.FixProposed",
                ],
            ),
        ),
        kind(
            "empty-proposal-payload",
            |f, _| {
                raw(
                    f.system.bus.subjects().fix_proposed(),
                    Some(<v1::FixProposed as WireMessage>::TYPE_NAME),
                    Vec::new(),
                )
            },
            Expect::DeadLetter {
                service: "validator",
                reason: &["FixProposed without its incident or proposal"],
                tagged: false,
            },
        ),
        kind(
            "proposal-without-incident",
            |f, id| {
                let proposed = v1::FixProposed {
                    attempt: 1,
                    proposal: Some(proposal(STG_ORDERS, id)),
                    ..Default::default()
                };
                publish(f.system.bus.subjects().fix_proposed(), &proposed)
            },
            dead_letter(
                "validator",
                &["FixProposed without its incident or proposal"],
            ),
        ),
        kind(
            "undecodable-validated-fix",
            |f, id| {
                raw(
                    f.system.bus.subjects().fix_validated(),
                    Some(<v1::FixValidated as WireMessage>::TYPE_NAME),
                    not_protobuf(id),
                )
            },
            dead_letter("delivery", &["malformed dbtops.v1.FixValidated"]),
        ),
        kind(
            "delivery-type-header-missing",
            |f, id| {
                let fix = v1::FixValidated {
                    incident: Some(f.incident(id)),
                    attempt: 1,
                    proposal: Some(proposal(STG_ORDERS, &clean_stg_orders())),
                    ..Default::default()
                };
                raw(
                    f.system.bus.subjects().fix_validated(),
                    None,
                    fix.encode_to_vec(),
                )
            },
            dead_letter("delivery", &["missing dbtops-type header"]),
        ),
        kind(
            "validated-fix-without-proposal",
            |f, id| {
                let fix = v1::FixValidated {
                    incident: Some(f.incident(id)),
                    attempt: 1,
                    ..Default::default()
                };
                publish(f.system.bus.subjects().fix_validated(), &fix)
            },
            dead_letter(
                "delivery",
                &["FixValidated without its incident or proposal"],
            ),
        ),
        kind(
            "over-max-payload",
            |f, id| {
                raw(
                    f.system.bus.subjects().run_submitted(),
                    Some(<v1::RunSubmitted as WireMessage>::TYPE_NAME),
                    f.run_submitted(id, vec![inline(DBT_LOG, vec![b'x'; 2 * MIB])])
                        .encode_to_vec(),
                )
            },
            // The server's max_payload: refused to the publisher, never stored.
            Expect::PublishRefused {
                error: &["max payload size exceeded"],
            },
        ),
    ]
}

/// What reaches the validator (proposals), delivery (validated fixes) and delivery's
/// webhook endpoint.
fn proposal_fix_and_webhook_kinds() -> Vec<Kind> {
    vec![
        // Proposals: the validator's guardrails refuse them before anything is written or
        // any dbt runs.
        kind(
            "proposal-path-traversal",
            |f, id| {
                f.proposed(
                    f.incident(id),
                    "../../../etc/passwd.sql",
                    &clean_stg_orders(),
                )
            },
            refused_by_guardrails(&["'..' segments (path traversal) are not allowed"]),
        ),
        kind(
            "absolute-path",
            |f, id| f.proposed(f.incident(id), "/etc/dbt/passwd.sql", &clean_stg_orders()),
            refused_by_guardrails(&["absolute paths are not allowed"]),
        ),
        kind(
            "not-a-sql-file",
            |f, id| {
                f.proposed(
                    f.incident(id),
                    "models/staging/_staging.yml",
                    &clean_stg_orders(),
                )
            },
            refused_by_guardrails(&["only '.sql' model files may be written"]),
        ),
        kind(
            "hidden-directory",
            |f, id| {
                f.proposed(
                    f.incident(id),
                    "models/.hooks/stg_orders.sql",
                    &clean_stg_orders(),
                )
            },
            refused_by_guardrails(&["hidden files and directories"]),
        ),
        kind(
            "proposal-outside-model-paths",
            |f, id| f.proposed(f.incident(id), "macros/cents_to_dollars.sql", "select 1"),
            refused_by_guardrails(&["not under any of the model paths"]),
        ),
        kind(
            "another-model",
            |f, id| {
                f.proposed(
                    f.incident(id),
                    "models/staging/stg_customers.sql",
                    &clean_stg_orders(),
                )
            },
            refused_by_guardrails(&[
                "the incident's model is \"models/staging/stg_orders.sql\"",
                "only that file may be written",
            ]),
        ),
        kind(
            "drop-table",
            |f, id| f.proposed(f.incident(id), STG_ORDERS, "drop table main.raw_orders"),
            refused_by_guardrails(&["a 'drop' statement on line 1"]),
        ),
        kind(
            "create-table",
            |f, id| {
                f.proposed(
                    f.incident(id),
                    STG_ORDERS,
                    "create table stolen as select * from main.raw_orders",
                )
            },
            refused_by_guardrails(&["a 'create' statement on line 1"]),
        ),
        kind(
            "second-statement",
            |f, id| {
                let sql = format!(
                    "{};\ndelete from main.raw_orders\n",
                    clean_stg_orders().trim_end()
                );
                f.proposed(f.incident(id), STG_ORDERS, &sql)
            },
            refused_by_guardrails(&["a 'delete' statement"]),
        ),
        kind(
            "proposal-side-effecting-jinja",
            |f, id| {
                let sql = format!(
                    "{}\n{{% do run_query('drop table main.raw_orders') %}}\n",
                    clean_stg_orders()
                );
                f.proposed(f.incident(id), STG_ORDERS, &sql)
            },
            refused_by_guardrails(&["side-effecting Jinja construct 'run_query'"]),
        ),
        kind(
            "nul-byte",
            |f, id| f.proposed(f.incident(id), STG_ORDERS, "select 1 as a\n\0"),
            refused_by_guardrails(&["NUL byte (line 2)"]),
        ),
        kind(
            "huge-proposal",
            |f, id| {
                let sql = format!("{}{}", clean_stg_orders(), "-- padding\n".repeat(60_000));
                f.proposed(f.incident(id), STG_ORDERS, &sql)
            },
            refused_by_guardrails(&["more than the allowed 524288"]),
        ),
        kind(
            "proposal-empty-file",
            |f, id| f.proposed(f.incident(id), STG_ORDERS, "  \n"),
            refused_by_guardrails(&["refused SQL: the file is empty"]),
        ),
        kind(
            "unbalanced-jinja",
            |f, id| {
                let sql = clean_stg_orders().replacen("}}", "}", 1);
                f.proposed(f.incident(id), STG_ORDERS, &sql)
            },
            Expect::Refused {
                step: "jinja delimiters",
                error: &["`{{` on line 8 is never closed with `}}`"],
            },
        ),
        kind(
            "proposal-symlink-escape",
            |f, id| {
                let path = "models/escape/stg_orders.sql";
                f.proposed(f.linked_incident(id, path), path, &clean_stg_orders())
            },
            refused_by_guardrails(&[
                "is a symbolic link that resolves to",
                "outside the project directory",
            ]),
        ),
        kind(
            "symlinked-model-file",
            |f, id| {
                let path = "models/staging/alias_orders.sql";
                f.proposed(f.linked_incident(id, path), path, &clean_stg_orders())
            },
            refused_by_guardrails(&["the file is a symbolic link"]),
        ),
        kind(
            "project-dir-missing",
            |f, id| {
                let missing = PathBuf::from("/nonexistent/dbt-ops-bad-input/coffee_shop");
                let incident = f.incident_at(
                    id,
                    project_ref(&missing, &missing, String::new()),
                    STG_ORDERS,
                    clean_stg_orders(),
                );
                f.proposed(incident, STG_ORDERS, &clean_stg_orders())
            },
            refused_by_guardrails(&["could not inspect", "No such file or directory"]),
        ),
        // Validated fixes straight to delivery: its own guardrails refuse them (defence in
        // depth) and the incident is abandoned as `guardrail`; nothing is written.
        kind(
            "delivery-outside-model-paths",
            |f, id| f.validated(f.incident(id), "macros/cents_to_dollars.sql", "select 1"),
            delivery_guardrail(&["not under any of the model paths"]),
        ),
        kind(
            "delivery-path-traversal",
            |f, id| f.validated(f.incident(id), "models/../profiles.sql", "select 1"),
            delivery_guardrail(&["'..' segments (path traversal) are not allowed"]),
        ),
        kind(
            "delivery-ddl",
            |f, id| {
                let sql = format!("{}\n;drop table main.raw_orders\n", clean_stg_orders());
                f.validated(f.incident(id), STG_ORDERS, &sql)
            },
            delivery_guardrail(&["a 'drop' statement"]),
        ),
        kind(
            "delivery-symlink-escape",
            |f, id| {
                let path = "models/escape/stg_orders.sql";
                f.validated(f.linked_incident(id, path), path, &clean_stg_orders())
            },
            delivery_guardrail(&[
                "is a symbolic link that resolves to",
                "outside the project directory",
            ]),
        ),
        kind(
            "delivery-rewrite-too-large",
            |f, id| {
                f.validated(
                    f.incident(id),
                    STG_ORDERS,
                    "select\n    1 as rewritten\nfrom {{ ref('raw_orders') }}\n",
                )
            },
            delivery_guardrail(&["refused change: it touches", "more than the allowed 0.500"]),
        ),
        kind(
            "delivery-side-effecting-jinja",
            |f, id| {
                let sql = format!("{}\n{{{{ run_query('select 1') }}}}\n", clean_stg_orders());
                f.validated(f.incident(id), STG_ORDERS, &sql)
            },
            delivery_guardrail(&["side-effecting Jinja construct 'run_query'"]),
        ),
        kind(
            "delivery-empty-file",
            |f, id| {
                // No evidence to compare with: only the content check stands between an
                // empty file and a branch.
                let mut incident = f.incident(id);
                incident.evidence = None;
                f.validated(incident, STG_ORDERS, "")
            },
            delivery_guardrail(&["refused SQL: the file is empty"]),
        ),
        kind(
            "delivery-no-git-repository",
            |f, id| {
                let dir = f.no_git.path();
                let incident = f.incident_at(
                    id,
                    project_ref(dir, dir, String::new()),
                    STG_ORDERS,
                    clean_stg_orders(),
                );
                let sql = clean_stg_orders().replace("customer_id,", "customer_id as customer_id,");
                f.validated(incident, STG_ORDERS, &sql)
            },
            delivery_guardrail(&["no git repository for the project"]),
        ),
        // Webhooks: unauthenticated calls get 401 and publish nothing; malformed ones 400;
        // events dbt-ops does not follow 200 with why they were ignored.
        kind(
            "gitlab-token-missing",
            |_, _| gitlab(None, merge_request_event("merge", "feature/x", "")),
            http(401, &["missing X-Gitlab-Token"]),
        ),
        kind(
            "gitlab-token-wrong",
            |_, _| {
                gitlab(
                    Some("not-the-token"),
                    merge_request_event("merge", "feature/x", ""),
                )
            },
            http(401, &["wrong X-Gitlab-Token"]),
        ),
        kind(
            "gitlab-malformed-json",
            |_, _| {
                gitlab(
                    Some(GITLAB_TOKEN),
                    b"{\"object_kind\": \"merge_request\", ".to_vec(),
                )
            },
            http(400, &["not a GitLab event"]),
        ),
        kind(
            "gitlab-event-without-attributes",
            |_, _| {
                gitlab(
                    Some(GITLAB_TOKEN),
                    br#"{"object_kind": "merge_request"}"#.to_vec(),
                )
            },
            http(400, &["merge request event without object_attributes"]),
        ),
        kind(
            "gitlab-unknown-event-kind",
            |_, _| {
                gitlab(
                    Some(GITLAB_TOKEN),
                    br#"{"object_kind": "pipeline", "object_attributes": {"status": "failed"}}"#
                        .to_vec(),
                )
            },
            http(200, &["ignored", "not a merge or close of a merge request"]),
        ),
        kind(
            "gitlab-unknown-incident",
            |_, id| {
                let description = format!("A fix.\n<!-- dbt-ops incident: {id} -->\n");
                gitlab(
                    Some(GITLAB_TOKEN),
                    merge_request_event("merge", "dbt-ops/fix/stg_orders/0000dead", &description),
                )
            },
            http(
                200,
                &["ignored", "gitlab-unknown-incident", "no such incident"],
            ),
        ),
        kind(
            "gitlab-foreign-branch",
            |_, _| {
                gitlab(
                    Some(GITLAB_TOKEN),
                    merge_request_event("merge", "feature/new-dashboard", "a human's change"),
                )
            },
            http(200, &["ignored", "is not a dbt-ops merge request"]),
        ),
        kind(
            "gitlab-body-over-limit",
            |_, _| gitlab(Some(GITLAB_TOKEN), vec![b' '; 3 * MIB]),
            http(413, &["length limit exceeded"]),
        ),
        kind(
            "github-signature-missing",
            |_, _| github(None, pull_request_closed_event()),
            http(401, &["missing X-Hub-Signature-256"]),
        ),
        kind(
            "github-signature-wrong",
            |_, _| {
                github(
                    Some(format!("sha256={}", "00".repeat(32))),
                    pull_request_closed_event(),
                )
            },
            http(401, &["wrong X-Hub-Signature-256"]),
        ),
        kind(
            "github-signature-malformed",
            |_, _| github(Some("sha1=0a1b2c".into()), pull_request_closed_event()),
            http(401, &["malformed X-Hub-Signature-256"]),
        ),
    ]
}

fn gitlab(token: Option<&str>, body: Vec<u8>) -> Injection {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-Gitlab-Event", "Merge Request Hook".to_owned()),
    ];
    if let Some(token) = token {
        headers.push(("X-Gitlab-Token", token.to_owned()));
    }
    Injection::Webhook {
        path: "/webhooks/gitlab",
        headers,
        body,
    }
}

fn github(signature: Option<String>, body: Vec<u8>) -> Injection {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-GitHub-Event", "pull_request".to_owned()),
    ];
    if let Some(signature) = signature {
        headers.push(("X-Hub-Signature-256", signature));
    }
    Injection::Webhook {
        path: "/webhooks/github",
        headers,
        body,
    }
}

fn merge_request_event(action: &str, branch: &str, description: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "object_kind": "merge_request",
        "object_attributes": {
            "action": action,
            "url": "https://gitlab.example/data/shop/-/merge_requests/7",
            "source_branch": branch,
            "target_branch": "main",
            "description": description,
            "merge_commit_sha": "0123456789abcdef0123456789abcdef01234567",
        }
    }))
    .expect("JSON")
}

fn pull_request_closed_event() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "action": "closed",
        "pull_request": {
            "html_url": "https://github.example/acme/shop/pull/7",
            "body": "<!-- dbt-ops incident: 0000deadbeef0000 -->",
            "merged": true,
            "merged_at": "2026-03-01T10:00:00Z",
            "head": { "ref": "dbt-ops/fix/stg_orders/0000dead", "sha": "abc" },
        }
    }))
    .expect("JSON")
}

#[test]
fn the_catalogue_holds_at_least_30_distinct_kinds() {
    let tables = [
        ("detector and bus", detector_and_bus_kinds()),
        (
            "proposals, fixes and webhooks",
            proposal_fix_and_webhook_kinds(),
        ),
    ];
    let names: Vec<&str> = tables
        .iter()
        .flat_map(|(_, kinds)| kinds.iter().map(|kind| kind.name))
        .collect();
    for (title, kinds) in &tables {
        println!("{title}: {} kinds", kinds.len());
    }
    println!("bad-input catalogue: {} kinds in all", names.len());
    assert!(names.len() >= 30, "{} kinds: {names:?}", names.len());
    // A name tags its kind's payload: one inside another would let a kind take another's
    // dead letter.
    for (i, name) in names.iter().enumerate() {
        for (j, other) in names.iter().enumerate() {
            assert!(
                i == j || !other.contains(name),
                "{name:?} is part of {other:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_artifacts_and_messages_are_refused_and_the_system_keeps_serving() {
    let fixture = Fixture::start().await;
    let catalogue = detector_and_bus_kinds();
    fixture.run_catalogue("detector and bus", &catalogue).await;
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_proposals_fixes_and_webhooks_are_refused_and_the_system_keeps_serving() {
    let fixture = Fixture::start().await;
    let catalogue = proposal_fix_and_webhook_kinds();
    let observed = fixture
        .run_catalogue("proposals, fixes and webhooks", &catalogue)
        .await;
    assert!(
        observed.merge_requests_ended.is_empty(),
        "a refused or ignored webhook published {:?}",
        observed.merge_requests_ended
    );
    fixture.stop().await;
}
