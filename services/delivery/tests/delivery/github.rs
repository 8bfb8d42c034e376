//! The GitHub provider against a local GitHub REST stand-in.

use dbtops_delivery::forge::{Forge, ForgeError};
use serde_json::json;

use crate::fake_github::{blob_sha, FakeGithub, FIXED, MODEL_FILE, ORIGINAL, TOKEN};
use crate::{change, github_settings, BRANCH, INCIDENT};

fn forge(github: &FakeGithub) -> Forge {
    Forge::from_settings(&github_settings(&github.server.base).delivery)
        .unwrap()
        .expect("a forge")
}

fn path(rest: &str) -> String {
    FakeGithub::repo_path(rest)
}

#[tokio::test]
async fn opens_blob_tree_commit_ref_and_pull_request_with_the_documented_requests() {
    let github = FakeGithub::start().await;
    let opened = forge(&github).open(&change()).await.unwrap();

    let encoded_file = "analytics/shop/models/staging/stg_orders.sql";
    assert_eq!(
        github.server.calls(),
        vec![
            format!("GET {}", path("/pulls")),
            format!("GET {}", path("")),
            format!("GET {}", path("/git/ref/heads/main")),
            format!("GET {}", path("/git/commits/base0001")),
            format!("GET {}", path(&format!("/contents/{encoded_file}"))),
            format!("POST {}", path("/git/blobs")),
            format!("POST {}", path("/git/trees")),
            format!("POST {}", path("/git/commits")),
            format!("POST {}", path("/git/refs")),
            format!("POST {}", path("/pulls")),
            format!("POST {}", path("/issues/1/labels")),
            format!("POST {}", path("/issues/1/assignees")),
            format!("POST {}", path("/pulls/1/requested_reviewers")),
        ]
    );
    for request in github.server.requests() {
        assert_eq!(
            request.header("authorization").map(str::to_owned),
            Some(format!("Bearer {TOKEN}"))
        );
        assert_eq!(
            request.header("accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
    }
    let lookup = github.server.last("GET", &path("/pulls"));
    assert_eq!(lookup.query["head"], format!("acme:{BRANCH}"));
    assert_eq!(lookup.query["state"], "open");
    let contents = github
        .server
        .last("GET", &path(&format!("/contents/{encoded_file}")));
    assert_eq!(
        contents.query["ref"], "base0001",
        "the file must exist at the base"
    );

    let blob = github.server.last("POST", &path("/git/blobs")).body;
    assert_eq!(blob, json!({ "content": FIXED, "encoding": "utf-8" }));
    let tree = github.server.last("POST", &path("/git/trees")).body;
    assert_eq!(tree["base_tree"], "tree-of-base0001");
    assert_eq!(
        tree["tree"],
        json!([{ "path": MODEL_FILE, "mode": "100644", "type": "blob", "sha": blob_sha(FIXED) }])
    );
    let commit = github.server.last("POST", &path("/git/commits")).body;
    assert_eq!(commit["parents"], json!(["base0001"]));
    assert_eq!(commit["author"]["name"], "dbt-ops");
    let reference = github.server.last("POST", &path("/git/refs")).body;
    assert_eq!(reference["ref"], format!("refs/heads/{BRANCH}"));
    assert_eq!(reference["sha"], opened.commit_sha);

    let pull = github.server.last("POST", &path("/pulls")).body;
    assert_eq!(pull["head"], BRANCH);
    assert_eq!(pull["base"], "main");
    assert_eq!(pull["title"], "fix(dbt): stg_orders — missing_column");
    assert_eq!(pull["draft"], false);
    assert!(pull["body"]
        .as_str()
        .unwrap()
        .contains(&format!("<!-- dbt-ops incident: {INCIDENT} -->")));
    assert_eq!(
        github.server.last("POST", &path("/issues/1/labels")).body,
        json!({ "labels": ["dbt-ops"] })
    );
    assert_eq!(
        github
            .server
            .last("POST", &path("/issues/1/assignees"))
            .body,
        json!({ "assignees": ["alice"] })
    );
    assert_eq!(
        github
            .server
            .last("POST", &path("/pulls/1/requested_reviewers"))
            .body,
        json!({ "reviewers": ["alice", "bob"], "team_reviewers": ["data"] })
    );

    assert_eq!(opened.url, "https://github.example/acme/shop/pull/1");
    assert_eq!(
        github.branch_file(BRANCH, MODEL_FILE).as_deref(),
        Some(FIXED)
    );
    assert_eq!(
        github.branch_file("main", MODEL_FILE).as_deref(),
        Some(ORIGINAL)
    );
}

#[tokio::test]
async fn a_second_delivery_reuses_the_open_pull_request() {
    let github = FakeGithub::start().await;
    let forge = forge(&github);
    let first = forge.open(&change()).await.unwrap();
    let second = forge.open(&change()).await.unwrap();
    assert!(second.reused);
    assert_eq!(second.url, first.url);
    assert_eq!(github.pulls().len(), 1);
    assert_eq!(github.server.count("POST", &path("/git/refs")), 1);
    assert_eq!(github.server.count("POST", &path("/pulls")), 1);
    // People already asked are not asked again.
    assert_eq!(
        github
            .server
            .count("POST", &path("/pulls/1/requested_reviewers")),
        1
    );
    assert_eq!(github.pulls()[0].labels, vec!["dbt-ops"]);
}

#[tokio::test]
async fn an_existing_ref_with_the_same_content_is_reused() {
    let github = FakeGithub::start().await;
    github.add_branch(BRANCH, FIXED);
    let opened = forge(&github).open(&change()).await.unwrap();
    assert_eq!(opened.commit_sha, "other0001");
    assert_eq!(github.pulls().len(), 1);
}

#[tokio::test]
async fn an_existing_ref_with_other_content_is_never_forced() {
    let github = FakeGithub::start().await;
    github.add_branch(BRANCH, "select 'theirs'\n");
    let error = forge(&github).open(&change()).await.unwrap_err();
    assert!(error.is_guardrail(), "{error}");
    assert_eq!(
        github.branch_file(BRANCH, MODEL_FILE).as_deref(),
        Some("select 'theirs'\n")
    );
    assert_eq!(github.server.count("POST", &path("/pulls")), 0);
}

#[tokio::test]
async fn a_sensitive_change_is_a_draft_and_falls_back_where_drafts_are_missing() {
    let github = FakeGithub::start().await;
    let mut change = change();
    change.draft = true;
    change.labels.push("needs-owner-review".into());
    forge(&github).open(&change).await.unwrap();
    assert!(github.pulls()[0].draft);
    assert_eq!(
        github.pulls()[0].labels,
        vec!["dbt-ops", "needs-owner-review"]
    );

    let github = FakeGithub::start().await;
    github.state.lock().unwrap().no_drafts = true;
    forge(&github).open(&change).await.unwrap();
    assert_eq!(github.server.count("POST", &path("/pulls")), 2);
    assert!(!github.pulls()[0].draft);
    assert!(github.pulls()[0]
        .labels
        .contains(&"needs-owner-review".to_string()));
}

#[tokio::test]
async fn a_file_missing_at_the_base_is_refused() {
    let github = FakeGithub::start().await;
    let mut change = change();
    change.file_path = "analytics/shop/models/new_model.sql".into();
    let error = forge(&github).open(&change).await.unwrap_err();
    assert!(error.is_guardrail(), "{error}");
    assert_eq!(github.server.count("POST", &path("/git/blobs")), 0);
}

#[tokio::test]
async fn bad_credentials_are_reported_once() {
    let github = FakeGithub::start().await;
    let mut settings = github_settings(&github.server.base);
    settings.delivery.github.token = "ghp_wrong".into();
    let forge = Forge::from_settings(&settings.delivery).unwrap().unwrap();
    let error = forge.open(&change()).await.unwrap_err();
    assert!(
        matches!(error, ForgeError::Unauthorized { status: 401, .. }),
        "{error}"
    );
    assert_eq!(github.server.requests().len(), 1);
    assert!(!format!("{error}").contains("ghp_wrong"));
}

#[tokio::test]
async fn an_unknown_repository_is_not_found() {
    let github = FakeGithub::start().await;
    let mut settings = github_settings(&github.server.base);
    settings.delivery.github.repository = "acme/nope".into();
    let forge = Forge::from_settings(&settings.delivery).unwrap().unwrap();
    let error = forge.open(&change()).await.unwrap_err();
    assert!(matches!(error, ForgeError::NotFound { .. }), "{error}");
    assert!(
        error.to_string().contains("delivery.github.repository"),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let github = FakeGithub::start().await;
    github.server.fail(
        "GET",
        "/pulls",
        1,
        429,
        json!({ "message": "slow down" }),
        Some("0"),
    );
    github
        .server
        .fail("POST", "/git/trees", 2, 502, json!({}), None);
    github
        .server
        .fail("POST", "/pulls", 1, 503, json!({}), None);
    let opened = forge(&github).open(&change()).await.unwrap();
    assert_eq!(opened.number, 1);
    assert_eq!(github.server.count("POST", &path("/git/trees")), 3);
    assert_eq!(github.pulls().len(), 1);

    let github = FakeGithub::start().await;
    github
        .server
        .fail("POST", "/git/blobs", 100, 500, json!({}), None);
    let error = forge(&github).open(&change()).await.unwrap_err();
    assert!(error.retry_after().is_some(), "{error}");
    assert_eq!(github.server.count("POST", &path("/git/blobs")), 4);
}
