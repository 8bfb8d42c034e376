//! The agent's tools. Each reads only the incident's evidence bundle — never a file
//! system, a repository or a database — so the fixer's invariant holds in agentic mode
//! too. `submit_fix` is the way out of the loop; the agent checks what it carries.

use std::collections::HashSet;

use dbtops_proto::v1;
use serde_json::{json, Value};

use crate::llm::{answer_schema, ToolCall, ToolResult, ToolSpec};
use crate::prompt;

/// Reads the model's SQL (and its YAML entry).
pub const READ_MODEL_FILE: &str = "read_model_file";
/// Reads the source definitions the model uses.
pub const READ_SOURCE_DEFINITIONS: &str = "read_source_definitions";
/// Lists the columns of the model's direct parents.
pub const LIST_UPSTREAM_COLUMNS: &str = "list_upstream_columns";
/// Submits the fix.
pub const SUBMIT_FIX: &str = "submit_fix";
/// Reads one ancestor model's SQL (lineage-scoped fixes only).
pub const READ_ANCESTOR_MODEL: &str = "read_ancestor_model";

/// The tools offered in agentic mode.
pub fn specs() -> Vec<ToolSpec> {
    specs_with(&answer_schema(), false)
}

/// The tools, with `submit_fix` taking `answer_schema` and — for a lineage-scoped fix
/// (`ancestors`) — `read_ancestor_model` besides.
pub fn specs_with(answer_schema: &Value, ancestors: bool) -> Vec<ToolSpec> {
    let mut specs = base_specs(answer_schema);
    if ancestors {
        specs.insert(
            specs.len() - 1,
            ToolSpec {
                name: READ_ANCESTOR_MODEL,
                description: "Returns an ancestor model's SQL file (Jinja included), by the path the task lists; an ancestor may be edited through submit_fix's upstream_edits when the cause is there.",
                parameters: json!({
                    "type": "object",
                    "properties": {"path": {"type": "string", "description": "The ancestor's path, as listed."}},
                    "required": ["path"],
                    "additionalProperties": false
                }),
            },
        );
    }
    specs
}

fn base_specs(answer_schema: &Value) -> Vec<ToolSpec> {
    let no_arguments =
        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false});
    vec![
        ToolSpec {
            name: READ_MODEL_FILE,
            description: "Returns the failing model's SQL file exactly as it is (Jinja included), and its YAML entry if it has one.",
            parameters: no_arguments.clone(),
        },
        ToolSpec {
            name: LIST_UPSTREAM_COLUMNS,
            description: "Lists the columns each direct parent of the model (ref or source) exposes. Pass a parent's name to see only that one, or an empty string for all.",
            parameters: json!({
                "type": "object",
                "properties": {"parent": {"type": "string", "description": "A parent's name, or \"\" for all parents."}},
                "required": ["parent"],
                "additionalProperties": false
            }),
        },
        ToolSpec {
            name: READ_SOURCE_DEFINITIONS,
            description: "Returns the source() tables the model reads, with their declared columns.",
            parameters: no_arguments,
        },
        ToolSpec {
            name: SUBMIT_FIX,
            description: "Submits the fix: the complete corrected content of the incident's model file. Call it once, last.",
            parameters: answer_schema.clone(),
        },
    ]
}

/// Runs the evidence tools for one incident, remembering what was already asked.
pub struct EvidenceTools<'a> {
    /// The incident whose evidence the tools read.
    incident: &'a v1::FailureDetected,
    /// Calls already answered (name + arguments): small models loop on the same call.
    seen: HashSet<String>,
}

impl<'a> EvidenceTools<'a> {
    /// Tools over `incident`'s evidence.
    pub fn new(incident: &'a v1::FailureDetected) -> Self {
        Self {
            incident,
            seen: HashSet::new(),
        }
    }

    /// Answers one call (not `submit_fix`, which the agent handles). The answer is
    /// delimited like the prompt's evidence: data, not instructions.
    pub fn run(&mut self, call: &ToolCall) -> ToolResult {
        let result = |content: String, is_error: bool| ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content,
            is_error,
        };
        let arguments = match call.arguments() {
            Ok(arguments) => arguments,
            Err(error) => return result(error, true),
        };
        let key = format!("{}{}", call.name, arguments);
        let repeated = !self.seen.insert(key);
        let evidence = self.incident.evidence.clone().unwrap_or_default();
        let mut content = String::new();
        match call.name.as_str() {
            READ_MODEL_FILE => {
                let path = self
                    .incident
                    .model
                    .as_ref()
                    .map(|model| model.path.as_str())
                    .unwrap_or_default();
                prompt::fenced(&mut content, path, &evidence.model_sql);
                if !evidence.yaml_entry.is_empty() {
                    prompt::fenced(&mut content, "model_yaml", &evidence.yaml_entry);
                }
            }
            LIST_UPSTREAM_COLUMNS => {
                let only = arguments
                    .get("parent")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|name| !name.is_empty());
                let columns = prompt::parent_columns(&evidence, only);
                if columns.is_empty() {
                    let known: Vec<&str> = evidence
                        .parents
                        .iter()
                        .map(|parent| parent.name.as_str())
                        .collect();
                    return result(
                        format!(
                            "no parent named {only:?}; the parents are: {}",
                            known.join(", ")
                        ),
                        true,
                    );
                }
                prompt::fenced(&mut content, "parent_columns", &columns);
            }
            READ_SOURCE_DEFINITIONS => {
                let sources = prompt::source_definitions(&evidence);
                if sources.is_empty() {
                    content.push_str("The model reads no declared sources.\n");
                } else {
                    prompt::fenced(&mut content, "sources", &sources);
                }
            }
            READ_ANCESTOR_MODEL => {
                let path = arguments
                    .get("path")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .unwrap_or_default();
                let Some(ancestor) = evidence
                    .ancestor_models
                    .iter()
                    .find(|ancestor| ancestor.path == path)
                else {
                    let known: Vec<&str> = evidence
                        .ancestor_models
                        .iter()
                        .map(|ancestor| ancestor.path.as_str())
                        .collect();
                    return result(
                        format!(
                            "no ancestor at {path:?}; the ancestors are: {}",
                            known.join(", ")
                        ),
                        true,
                    );
                };
                prompt::fenced(&mut content, &ancestor.path, &ancestor.raw_sql);
            }
            other => {
                return result(
                    format!(
                        "there is no tool {other:?}; the tools are {READ_MODEL_FILE}, {LIST_UPSTREAM_COLUMNS}, {READ_SOURCE_DEFINITIONS} and {SUBMIT_FIX}"
                    ),
                    true,
                );
            }
        }
        if repeated {
            content.push_str("(You asked this before; the answer has not changed. Call submit_fix when you are ready.)\n");
        }
        result(content, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> v1::FailureDetected {
        v1::FailureDetected {
            model: Some(v1::ModelRef {
                name: "orders".into(),
                path: "models/orders.sql".into(),
                ..Default::default()
            }),
            evidence: Some(v1::Evidence {
                model_sql: "select custmer_id from {{ ref('stg') }}".into(),
                parents: vec![
                    v1::ParentColumns {
                        name: "stg".into(),
                        columns: vec!["customer_id".into(), "amount".into()],
                        ..Default::default()
                    },
                    v1::ParentColumns {
                        name: "other".into(),
                        columns: vec!["x".into()],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn call(name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: "c".into(),
            name: name.into(),
            raw_arguments: arguments.into(),
        }
    }

    #[test]
    fn tools_read_only_the_evidence_and_say_when_a_call_repeats() {
        let incident = incident();
        let mut tools = EvidenceTools::new(&incident);
        let file = tools.run(&call(READ_MODEL_FILE, "{}"));
        assert!(!file.is_error);
        assert!(file
            .content
            .contains("<<<BEGIN models/orders.sql>>>\nselect custmer_id"));
        let one = tools.run(&call(LIST_UPSTREAM_COLUMNS, r#"{"parent":"stg"}"#));
        assert_eq!(
            one.content,
            "<<<BEGIN parent_columns>>>\nstg: customer_id, amount\n<<<END parent_columns>>>\n"
        );
        let all = tools.run(&call(LIST_UPSTREAM_COLUMNS, r#"{"parent":""}"#));
        assert!(all.content.contains("other: x"));
        let unknown = tools.run(&call(LIST_UPSTREAM_COLUMNS, r#"{"parent":"nope"}"#));
        assert!(unknown.is_error && unknown.content.contains("stg, other"));
        assert!(tools
            .run(&call(READ_MODEL_FILE, "{}"))
            .content
            .contains("asked this before"));
        assert!(
            tools
                .run(&call("read_file", r#"{"path":"/etc/passwd"}"#))
                .is_error
        );
        assert!(tools.run(&call(READ_MODEL_FILE, "{not json")).is_error);
        assert!(tools
            .run(&call(READ_SOURCE_DEFINITIONS, "{}"))
            .content
            .contains("no declared sources"));
        let names: Vec<&str> = specs().iter().map(|spec| spec.name).collect();
        assert_eq!(
            names,
            [
                READ_MODEL_FILE,
                LIST_UPSTREAM_COLUMNS,
                READ_SOURCE_DEFINITIONS,
                SUBMIT_FIX
            ]
        );
    }
}
