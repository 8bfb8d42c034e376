//! A GitLab v4 stand-in with state: a project with branches, commits and files, merge
//! requests (merged as GitLab does, the source branch removed), users and notes — enough
//! of the documented wire format for delivery's calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{percent_decode, FakeServer, Recorded, Reply};

pub const TOKEN: &str = "glpat-test-token";
pub const PROJECT_PATH: &str = "data/shop";
pub const MODEL_FILE: &str = "analytics/shop/models/staging/stg_orders.sql";
pub const ORIGINAL: &str = "with orders as (\n    select * from {{ ref('raw_orders') }}\n)\n\nselect\n    ordr_id,\n    customer_id,\n    amount\nfrom orders\n";
pub const FIXED: &str = "with orders as (\n    select * from {{ ref('raw_orders') }}\n)\n\nselect\n    order_id,\n    customer_id,\n    amount\nfrom orders\n";

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub iid: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub state: String,
    pub labels: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct State {
    /// branch → (head commit, files)
    pub branches: HashMap<String, (String, HashMap<String, String>)>,
    pub merge_requests: Vec<MergeRequest>,
    pub users: HashMap<String, u64>,
    pub commits: u64,
    /// commit sha → files, for reads at a commit once its branch is gone.
    pub snapshots: HashMap<String, HashMap<String, String>>,
}

impl State {
    fn new_commit(&mut self, files: HashMap<String, String>) -> String {
        self.commits += 1;
        let id = format!("{:040x}", self.commits);
        self.snapshots.insert(id.clone(), files);
        id
    }
}

pub struct FakeGitlab {
    pub server: FakeServer,
    pub state: Arc<Mutex<State>>,
}

impl FakeGitlab {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut state = state.lock().unwrap();
            let files = HashMap::from([(MODEL_FILE.to_owned(), ORIGINAL.to_owned())]);
            state
                .branches
                .insert("main".into(), ("c0ffee00".into(), files));
            state.users.insert("alice".into(), 7);
            state.users.insert("bob".into(), 8);
        }
        let handler_state = state.clone();
        let server = FakeServer::start(move |request| handle(&handler_state, request)).await;
        Self { server, state }
    }

    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.state.lock().unwrap().merge_requests.clone()
    }

    pub fn branch_file(&self, branch: &str, path: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .branches
            .get(branch)
            .and_then(|(_, files)| files.get(path).cloned())
    }

    /// Adds a file to main (an ancestor model a lineage fix may edit).
    pub fn add_main_file(&self, path: &str, content: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some((_, files)) = state.branches.get_mut("main") {
            files.insert(path.into(), content.into());
        }
    }

    /// Puts a branch in place as an earlier delivery (or someone else) left it.
    pub fn add_branch(&self, branch: &str, content: &str) {
        let mut state = self.state.lock().unwrap();
        let mut files = state.branches["main"].1.clone();
        files.insert(MODEL_FILE.into(), content.into());
        state
            .branches
            .insert(branch.into(), ("feedbead".into(), files));
    }

    pub fn add_merge_request(&self, branch: &str, description: &str) {
        let mut state = self.state.lock().unwrap();
        let iid = state.merge_requests.len() as u64 + 1;
        state.merge_requests.push(MergeRequest {
            iid,
            source_branch: branch.into(),
            target_branch: "main".into(),
            title: "someone's".into(),
            description: description.into(),
            state: "opened".into(),
            labels: String::new(),
            notes: Vec::new(),
        });
    }

    /// A reviewer's commit on `branch` that sets the model file to `content`; its sha.
    pub fn push(&self, branch: &str, content: &str) -> String {
        let mut state = self.state.lock().unwrap();
        let mut files = state.branches[branch].1.clone();
        files.insert(MODEL_FILE.into(), content.into());
        let id = state.new_commit(files.clone());
        state.branches.insert(branch.into(), (id.clone(), files));
        id
    }

    /// Merges `branch` into main as GitLab does: a merge commit (`None` for a
    /// fast-forward), the merge request merged, the source branch removed. Returns the
    /// merge commit and the source branch's head.
    pub fn merge(&self, branch: &str, fast_forward: bool) -> (Option<String>, String) {
        let mut state = self.state.lock().unwrap();
        let (head, files) = state.branches.remove(branch).expect("branch to merge");
        let merge_commit = (!fast_forward).then(|| state.new_commit(files.clone()));
        let main_head = merge_commit.clone().unwrap_or_else(|| head.clone());
        state.branches.insert("main".into(), (main_head, files));
        for mr in &mut state.merge_requests {
            if mr.source_branch == branch && mr.state == "opened" {
                mr.state = "merged".into();
            }
        }
        (merge_commit, head)
    }

    pub fn web_url(&self, iid: u64) -> String {
        format!("https://gitlab.example/{PROJECT_PATH}/-/merge_requests/{iid}")
    }
}

fn mr_json(mr: &MergeRequest, head: &str) -> Value {
    json!({
        "iid": mr.iid,
        "web_url": format!("https://gitlab.example/{PROJECT_PATH}/-/merge_requests/{}", mr.iid),
        "description": mr.description,
        "source_branch": mr.source_branch,
        "target_branch": mr.target_branch,
        "title": mr.title,
        "state": mr.state,
        "sha": head,
    })
}

fn handle(state: &Arc<Mutex<State>>, request: &Recorded) -> Reply {
    if request.header("private-token") != Some(TOKEN) {
        return Reply::json(401, json!({ "message": "401 Unauthorized" }));
    }
    let Some(rest) = request.path.strip_prefix("/api/v4") else {
        return Reply::json(404, json!({ "error": "404 Not Found" }));
    };
    let mut state = state.lock().unwrap();
    if rest == "/users" {
        let name = request.query.get("username").cloned().unwrap_or_default();
        return match state.users.get(&name) {
            Some(id) => Reply::json(200, json!([{ "id": id, "username": name }])),
            None => Reply::json(200, json!([])),
        };
    }
    let Some(rest) = rest
        .strip_prefix("/projects/data%2Fshop")
        .or_else(|| rest.strip_prefix("/projects/42"))
    else {
        return Reply::json(404, json!({ "message": "404 Project Not Found" }));
    };
    let method = request.method.as_str();
    match (method, rest) {
        ("GET", "") => Reply::json(
            200,
            json!({ "id": 42, "path_with_namespace": PROJECT_PATH, "default_branch": "main" }),
        ),
        ("GET", "/merge_requests") => {
            let source = request
                .query
                .get("source_branch")
                .cloned()
                .unwrap_or_default();
            let wanted = request.query.get("state").cloned().unwrap_or_default();
            let list: Vec<Value> = state
                .merge_requests
                .iter()
                .filter(|mr| {
                    mr.source_branch == source && (wanted.is_empty() || mr.state == wanted)
                })
                .map(|mr| {
                    let head = state
                        .branches
                        .get(&mr.source_branch)
                        .map(|(head, _)| head.clone())
                        .unwrap_or_default();
                    mr_json(mr, &head)
                })
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("POST", "/repository/commits") => {
            let body = &request.body;
            let branch = body["branch"].as_str().unwrap_or_default().to_owned();
            let start = body["start_branch"].as_str().unwrap_or_default().to_owned();
            if state.branches.contains_key(&branch) {
                return Reply::json(
                    400,
                    json!({ "message": format!("A branch called '{branch}' already exists. Switch to that branch in order to make changes") }),
                );
            }
            let Some((_, base)) = state.branches.get(&start).cloned() else {
                return Reply::json(
                    400,
                    json!({ "message": "You can only create or edit files when you are on a branch" }),
                );
            };
            let mut files = base;
            for action in body["actions"].as_array().cloned().unwrap_or_default() {
                let path = action["file_path"].as_str().unwrap_or_default().to_owned();
                if action["action"] != "update" || !files.contains_key(&path) {
                    return Reply::json(
                        400,
                        json!({ "message": "A file with this name doesn't exist" }),
                    );
                }
                files.insert(
                    path,
                    action["content"].as_str().unwrap_or_default().to_owned(),
                );
            }
            let id = state.new_commit(files.clone());
            state.branches.insert(branch, (id.clone(), files));
            Reply::json(201, json!({ "id": id, "short_id": &id[..8] }))
        }
        ("POST", "/merge_requests") => {
            let body = &request.body;
            let source = body["source_branch"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if state
                .merge_requests
                .iter()
                .any(|mr| mr.source_branch == source && mr.state == "opened")
            {
                return Reply::json(
                    409,
                    json!({ "message": ["Another open merge request already exists for this source branch: !1"] }),
                );
            }
            let iid = state.merge_requests.len() as u64 + 1;
            let mr = MergeRequest {
                iid,
                source_branch: source.clone(),
                target_branch: body["target_branch"].as_str().unwrap_or_default().into(),
                title: body["title"].as_str().unwrap_or_default().into(),
                description: body["description"].as_str().unwrap_or_default().into(),
                state: "opened".into(),
                labels: body["labels"].as_str().unwrap_or_default().into(),
                notes: Vec::new(),
            };
            let head = state
                .branches
                .get(&source)
                .map(|(h, _)| h.clone())
                .unwrap_or_default();
            let reply = mr_json(&mr, &head);
            state.merge_requests.push(mr);
            Reply::json(201, reply)
        }
        _ => {
            if let Some(file) = rest
                .strip_prefix("/repository/files/")
                .and_then(|file| file.strip_suffix("/raw"))
            {
                // The file itself, at a branch or a commit.
                let path = percent_decode(file);
                let reference = request.query.get("ref").cloned().unwrap_or_default();
                let files = state
                    .branches
                    .get(&reference)
                    .map(|(_, files)| files)
                    .or_else(|| state.snapshots.get(&reference));
                return match files.and_then(|files| files.get(&path)) {
                    Some(content) => Reply::text(200, content),
                    None => Reply::json(404, json!({ "message": "404 File Not Found" })),
                };
            }
            if let Some(file) = rest.strip_prefix("/repository/files/") {
                let path = percent_decode(file);
                let reference = request.query.get("ref").cloned().unwrap_or_default();
                return match state.branches.get(&reference).and_then(|(head, files)| {
                    files
                        .get(&path)
                        .map(|content| (head.clone(), content.clone()))
                }) {
                    Some((head, content)) => Reply::json(
                        200,
                        json!({
                            "file_path": path,
                            "ref": reference,
                            "content_sha256": hex::encode(Sha256::digest(content.as_bytes())),
                            "last_commit_id": head,
                        }),
                    ),
                    None => Reply::json(404, json!({ "message": "404 File Not Found" })),
                };
            }
            if let Some(mr_rest) = rest.strip_prefix("/merge_requests/") {
                let (iid, tail) = mr_rest.split_once('/').unwrap_or((mr_rest, ""));
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(mr) = state.merge_requests.iter_mut().find(|mr| mr.iid == iid) else {
                    return Reply::json(404, json!({ "message": "404 Not found" }));
                };
                return match (method, tail) {
                    ("GET", "notes") => Reply::json(
                        200,
                        Value::Array(
                            mr.notes
                                .iter()
                                .rev()
                                .map(|body| json!({ "body": body }))
                                .collect(),
                        ),
                    ),
                    ("POST", "notes") => {
                        mr.notes
                            .push(request.body["body"].as_str().unwrap_or_default().into());
                        Reply::json(201, json!({ "id": mr.notes.len() }))
                    }
                    ("PUT", "") => {
                        if request.body["state_event"] == "close" {
                            mr.state = "closed".into();
                        }
                        Reply::json(200, mr_json(mr, ""))
                    }
                    _ => Reply::json(404, json!({ "message": "404 Not found" })),
                };
            }
            Reply::json(404, json!({ "error": "404 Not Found" }))
        }
    }
}
