//! `manifest.json` and `run_results.json`: only the fields dbt-ops reads.
//!
//! Both are parsed into narrow structs; serde skips everything else (macros, docs,
//! semantic models…) without building it, which keeps a 40 MB manifest cheap. Every field
//! is optional or defaulted, because schema versions add and drop fields and a field we
//! cannot read must not cost us the whole artifact.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Schema versions this crate was written against. Anything else is read anyway and noted.
const KNOWN_MANIFEST_VERSIONS: &[u32] = &[10, 11, 12];
const KNOWN_RUN_RESULTS_VERSIONS: &[u32] = &[4, 5, 6];

/// The manifest's `metadata` block.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ManifestMetadata {
    pub dbt_schema_version: Option<String>,
    pub dbt_version: Option<String>,
    pub invocation_id: Option<String>,
    pub project_name: Option<String>,
    pub adapter_type: Option<String>,
}

/// A column declared in YAML (the manifest keeps only what YAML declares).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ManifestColumn {
    pub name: Option<String>,
    pub description: Option<String>,
    pub data_type: Option<String>,
}

/// `depends_on` of a node.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DependsOn {
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: Vec<String>,
}

/// One node (model, seed, snapshot, test, …).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ManifestNode {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_type: String,
    pub original_file_path: Option<String>,
    pub raw_code: Option<String>,
    pub compiled_code: Option<String>,
    pub description: Option<String>,
    /// `shop://models/marts/schema.yml`: the YAML file that documents the node.
    pub patch_path: Option<String>,
    pub relation_name: Option<String>,
    /// For a generic test, the model it is attached to.
    pub attached_node: Option<String>,
    #[serde(default, deserialize_with = "ordered_columns")]
    pub columns: Vec<(String, ManifestColumn)>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub depends_on: DependsOn,
    /// `[["ext", "raw_payments"]]`: the sources the node reads.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: Vec<Vec<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: NodeConfig,
}

/// The part of a node's `config` dbt-ops reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NodeConfig {
    pub materialized: Option<String>,
}

/// A source table.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ManifestSource {
    #[serde(default, deserialize_with = "null_as_default")]
    pub source_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "ordered_columns")]
    pub columns: Vec<(String, ManifestColumn)>,
}

/// The parts of `manifest.json` dbt-ops reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Manifest {
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ManifestMetadata,
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: BTreeMap<String, ManifestNode>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sources: BTreeMap<String, ManifestSource>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub parent_map: BTreeMap<String, Vec<String>>,
    /// dbt 1.8+ unit tests, which the manifest keeps apart from `nodes`; moved into
    /// `nodes` by [`parse_manifest`], so a failing unit test has a file and a model.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unit_tests: BTreeMap<String, ManifestNode>,
}

/// The run_results `metadata` block.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RunResultsMetadata {
    pub dbt_schema_version: Option<String>,
    pub dbt_version: Option<String>,
    pub invocation_id: Option<String>,
}

/// One node's result.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NodeResult {
    #[serde(default, deserialize_with = "null_as_default")]
    pub unique_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    pub message: Option<String>,
    pub compiled_code: Option<String>,
}

/// The parts of `run_results.json` dbt-ops reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RunResults {
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: RunResultsMetadata,
    #[serde(default, deserialize_with = "null_as_default")]
    pub results: Vec<NodeResult>,
}

/// Parses `manifest.json`. The error says what is wrong in a sentence; the notes record a
/// schema version this crate does not know.
pub(crate) fn parse_manifest(bytes: &[u8], notes: &mut Vec<String>) -> Result<Manifest, String> {
    let mut manifest: Manifest = parse_json(bytes, "manifest.json")?;
    // A unit test is a node like any test to everything downstream (paths, the graph);
    // an id in both sections keeps the `nodes` entry.
    for (id, unit_test) in std::mem::take(&mut manifest.unit_tests) {
        manifest.nodes.entry(id).or_insert(unit_test);
    }
    check_version(
        "manifest.json",
        manifest.metadata.dbt_schema_version.as_deref(),
        "manifest",
        KNOWN_MANIFEST_VERSIONS,
        notes,
    );
    Ok(manifest)
}

/// Parses `run_results.json`.
pub(crate) fn parse_run_results(
    bytes: &[u8],
    notes: &mut Vec<String>,
) -> Result<RunResults, String> {
    let rr: RunResults = parse_json(bytes, "run_results.json")?;
    check_version(
        "run_results.json",
        rr.metadata.dbt_schema_version.as_deref(),
        "run-results",
        KNOWN_RUN_RESULTS_VERSIONS,
        notes,
    );
    Ok(rr)
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, String> {
    let trimmed = trim_ascii(bytes);
    if trimmed.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if trimmed[0] != b'{' {
        return Err(format!(
            "{what} is not a JSON object (starts with byte 0x{:02x})",
            trimmed[0]
        ));
    }
    // serde_json requires UTF-8; an artifact with a stray invalid byte inside a string (a
    // model's raw_code in Latin-1) is still worth reading, so repair it losslessly where
    // possible rather than refusing the whole file.
    let repaired;
    let input: &[u8] = match std::str::from_utf8(trimmed) {
        Ok(_) => trimmed,
        Err(_) => {
            repaired = String::from_utf8_lossy(trimmed).into_owned();
            repaired.as_bytes()
        }
    };
    serde_json::from_slice(input).map_err(|e| {
        if e.is_eof() {
            format!("{what} is truncated ({e})")
        } else {
            format!("{what} is not valid JSON or has an unexpected shape ({e})")
        }
    })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Reads `v12` out of `https://schemas.getdbt.com/dbt/manifest/v12.json`.
fn schema_version(url: &str, kind: &str) -> Option<u32> {
    let rest = url.split(&format!("/{kind}/v")).nth(1)?;
    rest.trim_end_matches(".json").parse().ok()
}

fn check_version(
    what: &str,
    url: Option<&str>,
    kind: &str,
    known: &[u32],
    notes: &mut Vec<String>,
) {
    match url.and_then(|u| schema_version(u, kind)) {
        Some(v) if known.contains(&v) => {}
        Some(v) => notes.push(format!(
            "{what}: schema v{v} is not one this reader knows (v{}–v{}); read it anyway",
            known.first().copied().unwrap_or(0),
            known.last().copied().unwrap_or(0)
        )),
        None => notes.push(format!(
            "{what}: no recognisable dbt_schema_version; read it anyway"
        )),
    }
}

/// Treats JSON `null` as the type's default (dbt writes `null` for many empty fields).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a `columns` object keeping the file's order (YAML order is the author's order),
/// which a map type would sort away.
fn ordered_columns<'de, D>(d: D) -> Result<Vec<(String, ManifestColumn)>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Columns;
    impl<'de> Visitor<'de> for Columns {
        type Value = Vec<(String, ManifestColumn)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of columns or null")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, col)) = map.next_entry::<String, ManifestColumn>()? {
                out.push((key, col));
            }
            Ok(out)
        }
    }
    d.deserialize_any(Columns)
}

impl Manifest {
    /// Nodes that are tables in the warehouse and can be `ref()`ed.
    pub(crate) fn is_refable(resource_type: &str) -> bool {
        matches!(resource_type, "model" | "seed" | "snapshot")
    }

    /// Finds a refable node by name.
    pub(crate) fn node_by_name(&self, name: &str) -> Option<(&String, &ManifestNode)> {
        self.nodes
            .iter()
            .find(|(_, n)| Self::is_refable(&n.resource_type) && n.name.eq_ignore_ascii_case(name))
    }

    /// Finds a refable node by its warehouse relation name (`"db"."schema"."table"`).
    pub(crate) fn node_by_relation(&self, relation: &str) -> Option<(&String, &ManifestNode)> {
        let want = normalise_relation(relation);
        self.nodes.iter().find(|(_, n)| {
            Self::is_refable(&n.resource_type)
                && n.relation_name
                    .as_deref()
                    .map(normalise_relation)
                    .as_deref()
                    == Some(want.as_str())
        })
    }
}

/// `"shop"."main"."orders"` → `shop.main.orders`, for comparing relation names.
pub(crate) fn normalise_relation(relation: &str) -> String {
    relation.replace(['"', '`'], "").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_and_notes_unknown_ones() {
        let mut notes = Vec::new();
        let rr = parse_run_results(
            br#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "invocation_id": "x"}, "results": []}"#,
            &mut notes,
        )
        .unwrap();
        assert_eq!(rr.metadata.invocation_id.as_deref(), Some("x"));
        assert!(notes.is_empty());
        parse_run_results(
            br#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v9.json"}, "results": [{"unique_id": "model.a.b", "status": "error", "message": null}]}"#,
            &mut notes,
        )
        .unwrap();
        assert!(notes[0].contains("v9"), "{notes:?}");
    }

    #[test]
    fn bad_bytes_give_clear_errors_not_panics() {
        let mut notes = Vec::new();
        let cases: &[&[u8]] = &[
            b"",
            b"   ",
            b"\x00\x01\x02garbage",
            b"{\"metadata\": {\"invocation_id\": \"abc\"}, \"results\": [",
            b"[1, 2]",
            b"{\"results\": 5}",
        ];
        for bytes in cases {
            let err = parse_run_results(bytes, &mut notes).unwrap_err();
            assert!(err.starts_with("run_results.json"), "{err}");
            // `{"results": 5}` is a manifest with nothing in it, not a broken one.
            if !bytes.starts_with(b"{\"results\"") {
                assert!(parse_manifest(bytes, &mut notes).is_err());
            }
        }
        let truncated =
            parse_manifest(b"{\"metadata\": {\"invocation_id\": \"ab", &mut notes).unwrap_err();
        assert!(truncated.contains("truncated"), "{truncated}");
    }

    #[test]
    fn invalid_utf8_inside_strings_is_repaired() {
        let mut notes = Vec::new();
        let bytes = b"{\"nodes\": {\"model.a.b\": {\"name\": \"b\", \"resource_type\": \"model\", \"raw_code\": \"select '\xe9'\"}}}";
        let m = parse_manifest(bytes, &mut notes).unwrap();
        assert!(m.nodes["model.a.b"]
            .raw_code
            .as_deref()
            .unwrap_or("")
            .contains('\u{fffd}'));
    }

    #[test]
    fn columns_keep_their_order_and_nulls_are_defaults() {
        let mut notes = Vec::new();
        let m = parse_manifest(
            br#"{"metadata": null, "nodes": {"model.a.b": {"name": "b", "resource_type": "model", "columns": {"z": {"name": "z"}, "a": {"name": "a"}}, "depends_on": {"nodes": null}, "sources": null}}, "parent_map": null}"#,
            &mut notes,
        )
        .unwrap();
        let cols: Vec<&str> = m.nodes["model.a.b"]
            .columns
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(cols, ["z", "a"]);
    }

    #[test]
    fn relations_compare_without_quotes() {
        assert_eq!(
            normalise_relation("\"Shop\".\"main\".\"orders\""),
            "shop.main.orders"
        );
        assert_eq!(
            schema_version(
                "https://schemas.getdbt.com/dbt/manifest/v12.json",
                "manifest"
            ),
            Some(12)
        );
    }
}
