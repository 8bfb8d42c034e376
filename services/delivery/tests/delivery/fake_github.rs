//! A GitHub REST stand-in with state: git objects (blobs, trees, commits, refs), pull
//! requests, labels, assignees, reviewers and comments.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{base64, percent_decode, FakeServer, Recorded, Reply};

pub const TOKEN: &str = "ghp_test_token";
pub const OWNER: &str = "acme";
pub const REPO: &str = "shop";
pub use crate::fake_gitlab::{FIXED, MODEL_FILE, ORIGINAL};

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub state: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    pub comments: Vec<String>,
}

#[derive(Debug, Default)]
pub struct State {
    /// commit sha → files
    pub commits: HashMap<String, HashMap<String, String>>,
    /// tree sha → files
    pub trees: HashMap<String, HashMap<String, String>>,
    /// blob sha → content
    pub blobs: HashMap<String, String>,
    /// branch → commit sha
    pub refs: HashMap<String, String>,
    pub pulls: Vec<Pull>,
    pub counter: u64,
    /// Refuse draft pull requests, as repositories on plans without them do.
    pub no_drafts: bool,
    /// Answer the contents API with its JSON object (base64 content) whatever the
    /// `Accept`, as an old Enterprise Server or a proxy might.
    pub ignore_raw_media_type: bool,
}

pub fn blob_sha(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))[..40].to_owned()
}

pub struct FakeGithub {
    pub server: FakeServer,
    pub state: Arc<Mutex<State>>,
}

impl FakeGithub {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut state = state.lock().unwrap();
            let files = HashMap::from([(MODEL_FILE.to_owned(), ORIGINAL.to_owned())]);
            state.blobs.insert(blob_sha(ORIGINAL), ORIGINAL.into());
            state.commits.insert("base0001".into(), files);
            state.refs.insert("main".into(), "base0001".into());
        }
        let handler_state = state.clone();
        let server = FakeServer::start(move |request| handle(&handler_state, request)).await;
        Self { server, state }
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().unwrap().pulls.clone()
    }

    pub fn branch_file(&self, branch: &str, path: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        let commit = state.refs.get(branch)?;
        state.commits.get(commit)?.get(path).cloned()
    }

    pub fn add_branch(&self, branch: &str, content: &str) {
        let mut state = self.state.lock().unwrap();
        let mut files = state.commits["base0001"].clone();
        files.insert(MODEL_FILE.into(), content.into());
        state.blobs.insert(blob_sha(content), content.into());
        state.commits.insert("other0001".into(), files);
        state.refs.insert(branch.into(), "other0001".into());
    }

    /// A reviewer's commit on `branch` that sets the model file to `content`; its sha.
    pub fn push(&self, branch: &str, content: &str) -> String {
        let mut state = self.state.lock().unwrap();
        let mut files = state.commits[&state.refs[branch]].clone();
        files.insert(MODEL_FILE.into(), content.into());
        state.counter += 1;
        let sha = format!("{:040x}", state.counter);
        state.commits.insert(sha.clone(), files);
        state.refs.insert(branch.into(), sha.clone());
        sha
    }

    /// Merges the pull request from `branch` with a merge commit and deletes the branch.
    /// Returns the merge commit and the branch's head.
    pub fn merge(&self, branch: &str) -> (String, String) {
        let mut state = self.state.lock().unwrap();
        let head = state.refs.remove(branch).expect("branch to merge");
        let files = state.commits[&head].clone();
        state.counter += 1;
        let sha = format!("{:040x}", state.counter);
        state.commits.insert(sha.clone(), files);
        state.refs.insert("main".into(), sha.clone());
        for pull in &mut state.pulls {
            if pull.head == branch {
                pull.state = "closed".into();
            }
        }
        (sha, head)
    }

    pub fn repo_path(rest: &str) -> String {
        format!("/repos/{OWNER}/{REPO}{rest}")
    }
}

fn pull_json(pull: &Pull, head_sha: &str) -> Value {
    json!({
        "number": pull.number,
        "html_url": format!("https://github.example/{OWNER}/{REPO}/pull/{}", pull.number),
        "body": pull.body,
        "title": pull.title,
        "draft": pull.draft,
        "state": pull.state,
        "head": { "ref": pull.head, "sha": head_sha },
        "base": { "ref": pull.base, "sha": "base0001" },
        "requested_reviewers": pull.reviewers.iter().map(|login| json!({ "login": login })).collect::<Vec<_>>(),
        "assignees": pull.assignees.iter().map(|login| json!({ "login": login })).collect::<Vec<_>>(),
    })
}

fn files_at(state: &State, reference: &str) -> Option<HashMap<String, String>> {
    let commit = state
        .refs
        .get(reference)
        .cloned()
        .unwrap_or_else(|| reference.to_owned());
    state.commits.get(&commit).cloned()
}

fn handle(state: &Arc<Mutex<State>>, request: &Recorded) -> Reply {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Reply::json(401, json!({ "message": "Bad credentials" }));
    }
    let prefix = format!("/repos/{OWNER}/{REPO}");
    let Some(rest) = request.path.strip_prefix(&prefix) else {
        return Reply::json(404, json!({ "message": "Not Found" }));
    };
    let mut state = state.lock().unwrap();
    let method = request.method.as_str();
    let body = &request.body;
    if let Some(branch) = rest.strip_prefix("/git/ref/heads/") {
        let branch = percent_decode(branch);
        return match state.refs.get(&branch) {
            Some(sha) => Reply::json(
                200,
                json!({ "ref": format!("refs/heads/{branch}"), "object": { "sha": sha, "type": "commit" } }),
            ),
            None => Reply::json(404, json!({ "message": "Not Found" })),
        };
    }
    if let Some(sha) = rest
        .strip_prefix("/git/commits/")
        .filter(|_| method == "GET")
    {
        return match state.commits.get(sha) {
            Some(_) => Reply::json(
                200,
                json!({ "sha": sha, "tree": { "sha": format!("tree-of-{sha}") } }),
            ),
            None => Reply::json(404, json!({ "message": "Not Found" })),
        };
    }
    if let Some(path) = rest.strip_prefix("/contents/") {
        let path = percent_decode(path);
        let reference = request.query.get("ref").cloned().unwrap_or_default();
        let raw = request.header("accept") == Some("application/vnd.github.raw+json");
        return match files_at(&state, &reference).and_then(|files| files.get(&path).cloned()) {
            Some(content) if raw && !state.ignore_raw_media_type => Reply::text(200, &content),
            Some(content) => {
                // GitHub wraps the base64 at 60 characters.
                let encoded = base64(content.as_bytes())
                    .as_bytes()
                    .chunks(60)
                    .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
                    .collect::<String>();
                Reply::json(
                    200,
                    json!({
                        "type": "file",
                        "path": path,
                        "sha": blob_sha(&content),
                        "encoding": "base64",
                        "content": encoded,
                    }),
                )
            }
            None => Reply::json(404, json!({ "message": "Not Found" })),
        };
    }
    if let Some(issue_rest) = rest
        .strip_prefix("/issues/")
        .or_else(|| rest.strip_prefix("/pulls/"))
    {
        let (number, tail) = issue_rest.split_once('/').unwrap_or((issue_rest, ""));
        let number: u64 = number.parse().unwrap_or(0);
        let Some(pull) = state.pulls.iter_mut().find(|pull| pull.number == number) else {
            return Reply::json(404, json!({ "message": "Not Found" }));
        };
        return match (method, tail) {
            ("POST", "labels") => {
                for label in body["labels"].as_array().cloned().unwrap_or_default() {
                    let label = label.as_str().unwrap_or_default().to_owned();
                    if !pull.labels.contains(&label) {
                        pull.labels.push(label);
                    }
                }
                Reply::json(
                    200,
                    json!(pull
                        .labels
                        .iter()
                        .map(|name| json!({ "name": name }))
                        .collect::<Vec<_>>()),
                )
            }
            ("POST", "assignees") => {
                for login in body["assignees"].as_array().cloned().unwrap_or_default() {
                    pull.assignees
                        .push(login.as_str().unwrap_or_default().into());
                }
                Reply::json(201, pull_json(pull, ""))
            }
            ("POST", "requested_reviewers") => {
                for login in body["reviewers"].as_array().cloned().unwrap_or_default() {
                    pull.reviewers
                        .push(login.as_str().unwrap_or_default().into());
                }
                for team in body["team_reviewers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    pull.team_reviewers
                        .push(team.as_str().unwrap_or_default().into());
                }
                Reply::json(201, pull_json(pull, ""))
            }
            ("GET", "comments") => Reply::json(
                200,
                Value::Array(
                    pull.comments
                        .iter()
                        .map(|body| json!({ "body": body }))
                        .collect(),
                ),
            ),
            ("POST", "comments") => {
                pull.comments
                    .push(body["body"].as_str().unwrap_or_default().into());
                Reply::json(201, json!({ "id": pull.comments.len() }))
            }
            ("PATCH", "") => {
                if body["state"] == "closed" {
                    pull.state = "closed".into();
                }
                Reply::json(200, pull_json(pull, ""))
            }
            _ => Reply::json(404, json!({ "message": "Not Found" })),
        };
    }
    match (method, rest) {
        ("GET", "") => Reply::json(
            200,
            json!({ "full_name": format!("{OWNER}/{REPO}"), "default_branch": "main" }),
        ),
        ("GET", "/pulls") => {
            let head = request.query.get("head").cloned().unwrap_or_default();
            let wanted = request.query.get("state").cloned().unwrap_or_default();
            let list: Vec<Value> = state
                .pulls
                .iter()
                .filter(|pull| {
                    format!("{OWNER}:{}", pull.head) == head
                        && (wanted.is_empty() || pull.state == wanted)
                })
                .map(|pull| {
                    pull_json(
                        pull,
                        state
                            .refs
                            .get(&pull.head)
                            .map(String::as_str)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("POST", "/git/blobs") => {
            let content = body["content"].as_str().unwrap_or_default().to_owned();
            let sha = blob_sha(&content);
            state.blobs.insert(sha.clone(), content);
            Reply::json(201, json!({ "sha": sha }))
        }
        ("POST", "/git/trees") => {
            let base = body["base_tree"].as_str().unwrap_or_default();
            let Some(commit) = base.strip_prefix("tree-of-") else {
                return Reply::json(422, json!({ "message": "Invalid tree info" }));
            };
            let Some(mut files) = state.commits.get(commit).cloned() else {
                return Reply::json(422, json!({ "message": "base_tree not found" }));
            };
            for entry in body["tree"].as_array().cloned().unwrap_or_default() {
                let blob = entry["sha"].as_str().unwrap_or_default();
                let Some(content) = state.blobs.get(blob).cloned() else {
                    return Reply::json(422, json!({ "message": "blob not found" }));
                };
                files.insert(entry["path"].as_str().unwrap_or_default().into(), content);
            }
            state.counter += 1;
            let sha = format!("tree{:036}", state.counter);
            state.trees.insert(sha.clone(), files);
            Reply::json(201, json!({ "sha": sha }))
        }
        ("POST", "/git/commits") => {
            let tree = body["tree"].as_str().unwrap_or_default();
            let Some(files) = state.trees.get(tree).cloned() else {
                return Reply::json(422, json!({ "message": "tree not found" }));
            };
            state.counter += 1;
            let sha = format!("{:040x}", state.counter);
            state.commits.insert(sha.clone(), files);
            Reply::json(201, json!({ "sha": sha }))
        }
        ("POST", "/git/refs") => {
            let name = body["ref"].as_str().unwrap_or_default();
            let Some(branch) = name.strip_prefix("refs/heads/") else {
                return Reply::json(422, json!({ "message": "Reference name is not valid" }));
            };
            if state.refs.contains_key(branch) {
                return Reply::json(422, json!({ "message": "Reference already exists" }));
            }
            state.refs.insert(
                branch.into(),
                body["sha"].as_str().unwrap_or_default().into(),
            );
            Reply::json(
                201,
                json!({ "ref": name, "object": { "sha": body["sha"] } }),
            )
        }
        ("POST", "/pulls") => {
            let head = body["head"].as_str().unwrap_or_default().to_owned();
            if state
                .pulls
                .iter()
                .any(|pull| pull.head == head && pull.state == "open")
            {
                return Reply::json(
                    422,
                    json!({ "message": "Validation Failed", "errors": [{ "resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {OWNER}:{head}.") }] }),
                );
            }
            let draft = body["draft"].as_bool().unwrap_or(false);
            if draft && state.no_drafts {
                return Reply::json(
                    422,
                    json!({ "message": "Validation Failed", "errors": [{ "message": "Draft pull requests are not supported in this repository." }] }),
                );
            }
            let number = state.pulls.len() as u64 + 1;
            let pull = Pull {
                number,
                head: head.clone(),
                base: body["base"].as_str().unwrap_or_default().into(),
                title: body["title"].as_str().unwrap_or_default().into(),
                body: body["body"].as_str().unwrap_or_default().into(),
                draft,
                state: "open".into(),
                labels: Vec::new(),
                assignees: Vec::new(),
                reviewers: Vec::new(),
                team_reviewers: Vec::new(),
                comments: Vec::new(),
            };
            let reply = pull_json(
                &pull,
                state
                    .refs
                    .get(&head)
                    .map(String::as_str)
                    .unwrap_or_default(),
            );
            state.pulls.push(pull);
            Reply::json(201, reply)
        }
        _ => Reply::json(404, json!({ "message": "Not Found" })),
    }
}
