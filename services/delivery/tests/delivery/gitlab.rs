//! The GitLab provider against a local GitLab v4 stand-in.

use dbtops_delivery::forge::{Forge, ForgeError};
use dbtops_delivery::Failure;
use serde_json::json;

use crate::fake_gitlab::{FakeGitlab, FIXED, MODEL_FILE, ORIGINAL, TOKEN};
use crate::{change, gitlab_settings, BRANCH, INCIDENT};

const PROJECT: &str = "/api/v4/projects/data%2Fshop";

fn forge(gitlab: &FakeGitlab) -> Forge {
    Forge::from_settings(&gitlab_settings(&gitlab.server.base).delivery)
        .unwrap()
        .expect("a forge")
}

fn path(rest: &str) -> String {
    format!("{PROJECT}{rest}")
}

#[tokio::test]
async fn opens_branch_commit_and_merge_request_with_the_documented_requests() {
    let gitlab = FakeGitlab::start().await;
    let opened = forge(&gitlab).open(&change()).await.unwrap();

    assert_eq!(
        gitlab.server.calls(),
        vec![
            format!("GET {}", path("/merge_requests")),
            format!("GET {}", path("")),
            format!("POST {}", path("/repository/commits")),
            "GET /api/v4/users".to_string(),
            "GET /api/v4/users".to_string(),
            format!("POST {}", path("/merge_requests")),
        ]
    );
    // Every call carries the token in PRIVATE-TOKEN, and nowhere else.
    for request in gitlab.server.requests() {
        assert_eq!(request.header("private-token"), Some(TOKEN));
        assert!(!request.path.contains(TOKEN));
        assert!(request.query.values().all(|value| !value.contains(TOKEN)));
    }
    let lookup = gitlab.server.last("GET", &path("/merge_requests"));
    assert_eq!(lookup.query["source_branch"], BRANCH);
    assert_eq!(lookup.query["state"], "opened");

    let commit = gitlab
        .server
        .last("POST", &path("/repository/commits"))
        .body;
    assert_eq!(commit["branch"], BRANCH);
    assert_eq!(
        commit["start_branch"], "main",
        "the project's default branch"
    );
    assert_eq!(
        commit["actions"],
        json!([{ "action": "update", "file_path": MODEL_FILE, "content": FIXED }])
    );
    assert_eq!(commit["author_name"], "dbt-ops");
    assert!(commit["commit_message"]
        .as_str()
        .unwrap()
        .starts_with("fix(dbt): stg_orders"));

    let users: Vec<String> = gitlab
        .server
        .requests()
        .iter()
        .filter(|request| request.path == "/api/v4/users")
        .map(|request| request.query["username"].clone())
        .collect();
    assert_eq!(
        users,
        vec!["alice", "bob"],
        "groups are not looked up as users"
    );

    let mr = gitlab.server.last("POST", &path("/merge_requests")).body;
    assert_eq!(mr["source_branch"], BRANCH);
    assert_eq!(mr["target_branch"], "main");
    assert_eq!(mr["title"], "fix(dbt): stg_orders — missing_column");
    assert!(mr["description"]
        .as_str()
        .unwrap()
        .contains(&format!("<!-- dbt-ops incident: {INCIDENT} -->")));
    assert_eq!(mr["labels"], "dbt-ops");
    assert_eq!(mr["remove_source_branch"], true);
    assert_eq!(mr["assignee_id"], 7);
    assert_eq!(mr["reviewer_ids"], json!([7, 8]));

    assert_eq!(opened.number, 1);
    assert_eq!(opened.url, gitlab.web_url(1));
    assert_eq!(opened.target_branch, "main");
    assert!(!opened.reused);
    assert_eq!(
        gitlab.branch_file(BRANCH, MODEL_FILE).as_deref(),
        Some(FIXED)
    );
    assert_eq!(
        gitlab.branch_file("main", MODEL_FILE).as_deref(),
        Some(ORIGINAL)
    );
}

#[tokio::test]
async fn a_second_delivery_reuses_the_open_merge_request() {
    let gitlab = FakeGitlab::start().await;
    let forge = forge(&gitlab);
    let first = forge.open(&change()).await.unwrap();
    let second = forge.open(&change()).await.unwrap();
    assert!(second.reused);
    assert_eq!(second.url, first.url);
    assert_eq!(second.commit_sha, first.commit_sha);
    assert_eq!(gitlab.merge_requests().len(), 1);
    assert_eq!(gitlab.server.count("POST", &path("/repository/commits")), 1);
    assert_eq!(gitlab.server.count("POST", &path("/merge_requests")), 1);
}

#[tokio::test]
async fn a_configured_target_branch_is_used_without_asking_the_project() {
    let gitlab = FakeGitlab::start().await;
    let mut change = change();
    change.target_branch = Some("main".into());
    change.owners.clear();
    forge(&gitlab).open(&change).await.unwrap();
    assert_eq!(gitlab.server.count("GET", &path("")), 0);
    let mr = gitlab.server.last("POST", &path("/merge_requests")).body;
    assert!(mr.get("assignee_id").is_none() && mr.get("reviewer_ids").is_none());
}

#[tokio::test]
async fn a_sensitive_change_is_opened_as_a_draft() {
    let gitlab = FakeGitlab::start().await;
    let mut change = change();
    change.draft = true;
    change.labels.push("needs-owner-review".into());
    forge(&gitlab).open(&change).await.unwrap();
    let mr = gitlab.server.last("POST", &path("/merge_requests")).body;
    assert_eq!(mr["title"], "Draft: fix(dbt): stg_orders — missing_column");
    assert_eq!(mr["labels"], "dbt-ops,needs-owner-review");
}

#[tokio::test]
async fn an_existing_branch_with_the_same_content_is_reused() {
    let gitlab = FakeGitlab::start().await;
    // An earlier delivery created the branch, then stopped before the merge request.
    gitlab.add_branch(BRANCH, FIXED);
    let opened = forge(&gitlab).open(&change()).await.unwrap();
    assert_eq!(opened.commit_sha, "feedbead");
    let files = gitlab.server.last(
        "GET",
        &path("/repository/files/analytics%2Fshop%2Fmodels%2Fstaging%2Fstg_orders.sql"),
    );
    assert_eq!(files.query["ref"], BRANCH);
    assert_eq!(gitlab.merge_requests().len(), 1);
}

#[tokio::test]
async fn a_409_branch_exists_is_resolved_by_comparing_content() {
    let gitlab = FakeGitlab::start().await;
    // The first commit call landed but its answer was lost; the retry hears 409.
    gitlab.add_branch(BRANCH, FIXED);
    gitlab.server.fail(
        "POST",
        "/repository/commits",
        1,
        409,
        json!({ "message": "Branch already exists" }),
        None,
    );
    let opened = forge(&gitlab).open(&change()).await.unwrap();
    assert!(!opened.reused, "the merge request itself is new");
    assert_eq!(gitlab.merge_requests().len(), 1);
}

#[tokio::test]
async fn an_existing_branch_with_other_content_is_never_forced() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_branch(BRANCH, "select 'somebody else'\n");
    let error = forge(&gitlab).open(&change()).await.unwrap_err();
    assert!(error.is_guardrail(), "{error}");
    assert!(error.to_string().contains("never moves"), "{error}");
    assert_eq!(
        gitlab.branch_file(BRANCH, MODEL_FILE).as_deref(),
        Some("select 'somebody else'\n")
    );
    assert_eq!(gitlab.server.count("POST", &path("/merge_requests")), 0);
}

#[tokio::test]
async fn an_open_merge_request_without_the_marker_is_left_alone() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_merge_request(BRANCH, "hand-written");
    let error = forge(&gitlab).open(&change()).await.unwrap_err();
    assert!(error.is_guardrail(), "{error}");
    assert_eq!(gitlab.server.count("POST", &path("/repository/commits")), 0);
}

#[tokio::test]
async fn a_protected_pattern_refuses_the_branch_before_anything_is_written() {
    let gitlab = FakeGitlab::start().await;
    let mut change = change();
    change.protected_branches = vec!["dbt-ops/*".into()];
    let error = forge(&gitlab).open(&change).await.unwrap_err();
    assert!(error.is_guardrail(), "{error}");
    assert_eq!(gitlab.server.count("POST", &path("/repository/commits")), 0);
}

#[tokio::test]
async fn a_refused_token_is_reported_once_without_the_token() {
    let gitlab = FakeGitlab::start().await;
    let mut settings = gitlab_settings(&gitlab.server.base);
    settings.delivery.gitlab.token = "glpat-wrong-secret".into();
    let forge = Forge::from_settings(&settings.delivery).unwrap().unwrap();
    let error = forge.open(&change()).await.unwrap_err();
    assert!(
        matches!(error, ForgeError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert_eq!(gitlab.server.requests().len(), 1, "401 is not retried");
    let text = format!("{error} {error:?}");
    assert!(!text.contains("glpat-wrong-secret"), "{text}");
    assert!(matches!(Failure::from(error), Failure::Failed(_)));
    assert!(!format!("{forge:?}").contains("glpat-wrong-secret"));
}

#[tokio::test]
async fn a_missing_token_stops_at_set_up() {
    let mut settings = gitlab_settings("http://127.0.0.1:9");
    settings.delivery.gitlab.token = "".into();
    settings.delivery.gitlab.token_env = "DBT_OPS_TEST_NO_SUCH_VARIABLE".into();
    let error = Forge::from_settings(&settings.delivery).unwrap_err();
    assert!(
        error.to_string().contains("delivery.gitlab.token"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_project_is_not_found() {
    let gitlab = FakeGitlab::start().await;
    let mut settings = gitlab_settings(&gitlab.server.base);
    settings.delivery.gitlab.project = "data/nope".into();
    let forge = Forge::from_settings(&settings.delivery).unwrap().unwrap();
    let error = forge.open(&change()).await.unwrap_err();
    assert!(matches!(error, ForgeError::NotFound { .. }), "{error}");
    assert!(
        error.to_string().contains("delivery.gitlab.project"),
        "{error}"
    );
    assert_eq!(
        gitlab.server.requests()[0].path,
        "/api/v4/projects/data%2Fnope/merge_requests"
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_with_back_off() {
    let gitlab = FakeGitlab::start().await;
    gitlab.server.fail(
        "GET",
        "/merge_requests",
        1,
        429,
        json!({ "message": "429 Too Many Requests" }),
        Some("0"),
    );
    gitlab.server.fail(
        "POST",
        "/repository/commits",
        2,
        502,
        json!({ "message": "502 Bad Gateway" }),
        None,
    );
    gitlab
        .server
        .fail("POST", "/merge_requests", 1, 500, json!({}), None);
    let opened = forge(&gitlab).open(&change()).await.unwrap();
    assert_eq!(opened.number, 1);
    assert_eq!(gitlab.server.count("GET", &path("/merge_requests")), 2);
    assert_eq!(gitlab.server.count("POST", &path("/repository/commits")), 3);
    assert_eq!(gitlab.server.count("POST", &path("/merge_requests")), 2);
    assert_eq!(gitlab.merge_requests().len(), 1);
}

#[tokio::test]
async fn a_lasting_outage_ends_in_a_retry_outcome() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .server
        .fail("GET", "/merge_requests", 100, 503, json!({}), None);
    let error = forge(&gitlab).open(&change()).await.unwrap_err();
    assert!(error.retry_after().is_some(), "{error}");
    // One try and three retries.
    assert_eq!(gitlab.server.requests().len(), 4);
    assert!(matches!(Failure::from(error), Failure::Retry { .. }));
}

#[tokio::test]
async fn a_long_retry_after_is_handed_back_instead_of_waited_for() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .server
        .fail("GET", "/merge_requests", 1, 429, json!({}), Some("120"));
    let error = forge(&gitlab).open(&change()).await.unwrap_err();
    assert_eq!(
        error.retry_after(),
        Some(std::time::Duration::from_secs(120))
    );
    assert_eq!(gitlab.server.requests().len(), 1);
}
