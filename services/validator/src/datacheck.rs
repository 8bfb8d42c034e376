//! The data check: the fixed model's columns, types and row count against the last good
//! version's, so a fix that silently changes the output is flagged in the merge request.
//!
//! "The last good version" is the model's relation in the workspace's dev database
//! *before* the ladder builds anything: the copy of the user's database, which holds what
//! the last successful run left. The profile is read through dbt itself (`dbt show
//! --inline` with the adapter's own `get_columns_in_relation`), so it works on any
//! adapter, and the types are the warehouse's own names.

use serde_json::Value;

/// Columns (in order, with the warehouse's type names) and the row count of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationProfile {
    /// `(name, type)` in the relation's column order.
    pub columns: Vec<(String, String)>,
    /// `count(*)`.
    pub rows: u64,
}

/// The inline query `dbt show` runs to profile `model`: one row per column and one with
/// the row count, or a single `missing` row when the relation does not exist.
pub fn profile_query(model: &str) -> String {
    let model = model.replace('\'', "");
    format!(
        "{{%- set dbtops_ref = ref('{model}') -%}}\n\
         {{%- set dbtops_rel = adapter.get_relation(database=dbtops_ref.database, schema=dbtops_ref.schema, identifier=dbtops_ref.identifier) -%}}\n\
         {{%- if dbtops_rel is none -%}}\n\
         select 'missing' as dbtops_kind, '' as dbtops_name, '' as dbtops_type, 0 as dbtops_n\n\
         {{%- else -%}}\n\
         {{%- for column in adapter.get_columns_in_relation(dbtops_rel) %}}\n\
         select 'column' as dbtops_kind, '{{{{ column.name | replace(\"'\", \"''\") }}}}' as dbtops_name, '{{{{ column.data_type | replace(\"'\", \"''\") }}}}' as dbtops_type, {{{{ loop.index }}}} as dbtops_n union all\n\
         {{%- endfor %}}\n\
         select 'rows', '', '', count(*) from {{{{ dbtops_rel }}}}\n\
         {{%- endif -%}}"
    )
}

/// `dbt show` arguments for [`profile_query`].
pub fn profile_args(model: &str) -> Vec<String> {
    vec![
        "show".into(),
        "--inline".into(),
        profile_query(model),
        "--output".into(),
        "json".into(),
        // dbt show previews 5 rows by default; a model has more columns than that.
        "--limit".into(),
        "100000".into(),
    ]
}

/// Reads the profile from `dbt show --output json`'s output: `None` when the relation
/// does not exist.
pub fn parse_profile(output: &str) -> Result<Option<RelationProfile>, String> {
    let rows = show_rows(output)?;
    let mut columns: Vec<(u64, String, String)> = Vec::new();
    let mut count = None;
    for row in rows {
        let text = |key: &str| {
            row.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let number = row.get("dbtops_n").and_then(|value| {
            value
                .as_u64()
                .or_else(|| value.as_f64().map(|float| float as u64))
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        });
        match text("dbtops_kind").as_str() {
            "missing" => return Ok(None),
            "column" => columns.push((
                number.unwrap_or_default(),
                text("dbtops_name"),
                text("dbtops_type"),
            )),
            "rows" => count = number,
            _ => {}
        }
    }
    let rows = count.ok_or("dbt show returned no row count")?;
    columns.sort_by_key(|(index, _, _)| *index);
    Ok(Some(RelationProfile {
        columns: columns
            .into_iter()
            .map(|(_, name, data_type)| (name, data_type))
            .collect(),
        rows,
    }))
}

/// The rows of the `{"show": [...]}` object dbt prints among its log lines.
fn show_rows(output: &str) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let mut from = 0;
    while let Some(offset) = output[from..].find('{') {
        let start = from + offset;
        let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<Value>();
        if let Some(Ok(Value::Object(mut object))) = stream.next() {
            if let Some(Value::Array(rows)) = object.remove("show") {
                return Ok(rows
                    .into_iter()
                    .filter_map(|row| match row {
                        Value::Object(row) => Some(row),
                        _ => None,
                    })
                    .collect());
            }
        }
        from = start + 1;
    }
    Err("no JSON preview in dbt show's output".into())
}

/// The differences between the last good version and the fixed model, one line each;
/// empty when the output has the same shape and size.
pub fn differences(before: &RelationProfile, after: &RelationProfile) -> Vec<String> {
    let mut found = Vec::new();
    let key = |name: &str| name.to_ascii_lowercase();
    for (name, data_type) in &before.columns {
        match after.columns.iter().find(|(new, _)| key(new) == key(name)) {
            None => found.push(format!("column `{name}` ({data_type}) is gone")),
            Some((_, new_type)) if !new_type.eq_ignore_ascii_case(data_type) => found.push(
                format!("column `{name}` changed type: {data_type} → {new_type}"),
            ),
            Some(_) => {}
        }
    }
    for (name, data_type) in &after.columns {
        if !before.columns.iter().any(|(old, _)| key(old) == key(name)) {
            found.push(format!("column `{name}` ({data_type}) is new"));
        }
    }
    let order = |profile: &RelationProfile| -> Vec<String> {
        profile
            .columns
            .iter()
            .map(|(name, _)| key(name))
            .filter(|name| {
                before.columns.iter().any(|(old, _)| key(old) == *name)
                    && after.columns.iter().any(|(new, _)| key(new) == *name)
            })
            .collect()
    };
    if found.is_empty() && order(before) != order(after) {
        found.push("the columns are in a different order".into());
    }
    if before.rows != after.rows {
        found.push(format!("row count {} → {}", before.rows, after.rows));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(columns: &[(&str, &str)], rows: u64) -> RelationProfile {
        RelationProfile {
            columns: columns
                .iter()
                .map(|(name, data_type)| (name.to_string(), data_type.to_string()))
                .collect(),
            rows,
        }
    }

    #[test]
    fn the_show_output_is_read_among_log_lines() {
        let output = "12:00:00  Running with dbt=1.11.16\n12:00:01  Previewing inline node:\n{\n  \"show\": [\n    {\"dbtops_kind\": \"column\", \"dbtops_name\": \"b\", \"dbtops_type\": \"VARCHAR\", \"dbtops_n\": 2},\n    {\"dbtops_kind\": \"rows\", \"dbtops_name\": \"\", \"dbtops_type\": \"\", \"dbtops_n\": 24},\n    {\"dbtops_kind\": \"column\", \"dbtops_name\": \"a\", \"dbtops_type\": \"INTEGER\", \"dbtops_n\": 1}\n  ]\n}\n12:00:01  done {not json}\n";
        assert_eq!(
            parse_profile(output),
            Ok(Some(profile(&[("a", "INTEGER"), ("b", "VARCHAR")], 24)))
        );
        let missing = "{\"show\": [{\"dbtops_kind\": \"missing\", \"dbtops_n\": 0}]}";
        assert_eq!(parse_profile(missing), Ok(None));
        assert!(parse_profile("Running with dbt\nError").is_err());
    }

    #[test]
    fn differences_name_columns_types_order_and_rows() {
        let before = profile(&[("a", "INTEGER"), ("b", "VARCHAR"), ("c", "DATE")], 24);
        assert!(differences(&before, &before).is_empty());
        let after = profile(&[("a", "BIGINT"), ("b", "VARCHAR"), ("d", "DATE")], 20);
        assert_eq!(
            differences(&before, &after),
            vec![
                "column `a` changed type: INTEGER → BIGINT",
                "column `c` (DATE) is gone",
                "column `d` (DATE) is new",
                "row count 24 → 20",
            ]
        );
        let reordered = profile(&[("b", "VARCHAR"), ("a", "INTEGER"), ("c", "DATE")], 24);
        assert_eq!(
            differences(&before, &reordered),
            vec!["the columns are in a different order"]
        );
    }

    #[test]
    fn the_query_quotes_nothing_the_model_name_could_break() {
        let query = profile_query("ord'ers");
        assert!(query.contains("ref('orders')"), "{query}");
        assert!(query.contains("{{ loop.index }}"), "{query}");
    }
}
