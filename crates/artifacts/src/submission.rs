//! What a submission carries of a run's artifacts: everything the detector reads, and no
//! more.
//!
//! A manifest's `macros` hold every macro of dbt itself and of the adapter — their whole
//! SQL — beside the project's own: about 550 KB in every project, 85 % of a small
//! project's manifest. `docs` holds the doc blocks' text. The detector reads neither (a
//! macro's signature for the evidence comes from the project's own macro files, which the
//! submission carries as project files), so they are left out before the manifest goes
//! on the bus: a small project's manifest then fits in the submission message instead of
//! taking two object-store round trips, and a large one is that much smaller. The
//! fixtures under `tests/fixtures` are real manifests without these keys (and more), so
//! every fixture test is a detection from such a manifest.

use serde::de::{MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;

/// The manifest's top-level keys a submission leaves out; the detector reads neither.
pub const MANIFEST_KEYS_LEFT_OUT: &[&str] = &["macros", "docs"];

/// Manifests up to this size are slimmed. Reading a manifest's top level costs about half
/// of the detector's parse (`cargo bench -p dbtops-artifacts`: 78 ms for a 45 MB one),
/// which pays only where the slimmed manifest can travel in the message: a larger one
/// goes through the object store either way, and is sent as it is.
pub const SLIM_MANIFESTS_UP_TO_BYTES: usize = 1 << 20;

/// `manifest` with [`MANIFEST_KEYS_LEFT_OUT`] emptied (the keys stay, as `{}`, so the
/// document keeps dbt's schema), every other value byte for byte as it was. `None` when
/// the bytes are over [`SLIM_MANIFESTS_UP_TO_BYTES`], are not a JSON object, or hold none
/// of those keys: the caller then sends them as they are (and the detector reports what
/// is wrong with them).
pub fn manifest_for_submission(manifest: &[u8]) -> Option<Vec<u8>> {
    if manifest.len() > SLIM_MANIFESTS_UP_TO_BYTES {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(manifest);
    let entries = deserializer.deserialize_map(TopLevel).ok()?;
    deserializer.end().ok()?;
    if !entries
        .iter()
        .any(|(key, _)| MANIFEST_KEYS_LEFT_OUT.contains(&key.as_str()))
    {
        return None;
    }
    let kept: usize = entries.iter().map(|(_, value)| value.get().len()).sum();
    let mut out = Vec::with_capacity(kept + 16 * entries.len() + 2);
    out.push(b'{');
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        // A key read from JSON always writes back as JSON.
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        if MANIFEST_KEYS_LEFT_OUT.contains(&key.as_str()) {
            out.extend_from_slice(b"{}");
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    Some(out)
}

/// A JSON object's entries in document order, each value unparsed.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
            entries.push(entry);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_and_docs_are_emptied_and_everything_else_is_kept_byte_for_byte() {
        let manifest = br#"{"metadata": {"project_name": "shop"},
            "nodes": {"model.shop.a": {"raw_code": "select 1 \"x\"\n", "n": 1.50}},
            "macros": {"macro.dbt.run_query": {"macro_sql": "{% macro run_query(sql) %}"}},
            "docs": {"doc.dbt.__overview__": {"block_contents": "text"}},
            "parent_map": {}}"#;
        let slim = manifest_for_submission(manifest).expect("a manifest");
        let text = String::from_utf8(slim.clone()).expect("utf-8");
        assert_eq!(
            text,
            r#"{"metadata":{"project_name": "shop"},"nodes":{"model.shop.a": {"raw_code": "select 1 \"x\"\n", "n": 1.50}},"macros":{},"docs":{},"parent_map":{}}"#
        );
        let value: serde_json::Value = serde_json::from_slice(&slim).expect("valid JSON");
        assert_eq!(value["macros"], serde_json::json!({}));
        assert_eq!(value["nodes"]["model.shop.a"]["n"], serde_json::json!(1.5));
    }

    #[test]
    fn what_is_not_a_manifest_object_is_left_to_the_detector() {
        assert_eq!(manifest_for_submission(b"{\"nodes\": {}"), None);
        assert_eq!(manifest_for_submission(b"[1, 2]"), None);
        assert_eq!(manifest_for_submission(b"{\"macros\": {}} trailing"), None);
        assert_eq!(manifest_for_submission(b"\xff\xfe"), None);
        // Nothing to leave out: sent as it is.
        assert_eq!(manifest_for_submission(br#"{"nodes": {}}"#), None);
        // Too large to fit a message slimmed: not worth reading.
        let padding = " ".repeat(SLIM_MANIFESTS_UP_TO_BYTES);
        let large = format!("{{\"macros\": {{}}, \"nodes\": {{}}{padding}}}");
        assert_eq!(manifest_for_submission(large.as_bytes()), None);
        let small = format!("{{\"macros\": {{}}, \"nodes\": {{}}{}}}", &padding[200..]);
        assert!(manifest_for_submission(small.as_bytes()).is_some());
    }

    #[test]
    fn an_escaped_key_writes_back_as_json() {
        let slim = manifest_for_submission(br#"{"a\"b": 1, "docs": {"x": 2}}"#).expect("object");
        assert_eq!(slim, br#"{"a\"b":1,"docs":{}}"#.to_vec());
    }
}
