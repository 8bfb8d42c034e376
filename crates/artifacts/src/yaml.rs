//! A small reader for the YAML subset dbt projects are written in.
//!
//! dbt files are block mappings and sequences of plain or quoted scalars, with the odd flow
//! list (`model-paths: ["models"]`) and block scalar (`description: |`). That is all this
//! reads; anchors, tags and multi-document streams are not needed to find a model's
//! columns or a source's tables, and a full YAML parser is not in the workspace. It never
//! fails: what it cannot read becomes a scalar string or is skipped, so a broken YAML file
//! (itself a failure we report) yields what could be read.

/// A parsed YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Yaml {
    /// Any scalar, unquoted; `null`/`~`/empty stay as written.
    Scalar(String),
    /// A block or flow sequence.
    List(Vec<Yaml>),
    /// A block mapping, in file order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value under `key` when this is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The items when this is a list; an empty slice otherwise.
    pub(crate) fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(items) => items,
            _ => &[],
        }
    }

    /// A list of scalars (`["models", "more_models"]` or a block list) or a single scalar.
    pub(crate) fn as_str_list(&self) -> Vec<String> {
        match self {
            Yaml::Scalar(s) if !s.is_empty() => vec![s.clone()],
            Yaml::List(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One significant line: its indentation and its content without comments.
struct Line {
    indent: usize,
    text: String,
}

/// Parses a YAML document. Never fails; returns an empty mapping for nothing readable.
pub(crate) fn parse(source: &str) -> Yaml {
    let lines = significant_lines(source);
    let mut pos = 0;
    let doc = parse_block(&lines, &mut pos, 0);
    doc.unwrap_or(Yaml::Map(Vec::new()))
}

fn significant_lines(source: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut raw = source.lines().peekable();
    while let Some(line) = raw.next() {
        let line = line.trim_end_matches('\r');
        let content = strip_comment(line);
        if content.trim().is_empty() || content.trim() == "---" || content.trim() == "..." {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let text = content.trim().to_owned();
        // A block scalar (`key: |` / `key: >-`) owns every following line indented deeper;
        // fold them into one scalar so their content is never parsed as structure.
        if let Some(key_end) = block_scalar_key(&text) {
            let mut body = Vec::new();
            while let Some(next) = raw.peek() {
                let next_indent = next.len() - next.trim_start().len();
                if next.trim().is_empty() || next_indent > indent {
                    body.push(next.trim().to_owned());
                    raw.next();
                } else {
                    break;
                }
            }
            let joined = body.join("\n").trim().replace('"', "'");
            out.push(Line {
                indent,
                text: format!("{}: \"{}\"", &text[..key_end], joined.replace('\n', " ")),
            });
            continue;
        }
        out.push(Line { indent, text });
    }
    out
}

/// For `key: |`, `- key: >-` and friends, the byte length of the `key` part (with any
/// leading `- `).
fn block_scalar_key(text: &str) -> Option<usize> {
    let colon = find_mapping_colon(text)?;
    let value = text[colon + 1..].trim();
    let is_block = matches!(value, "|" | ">" | "|-" | ">-" | "|+" | ">+");
    is_block.then_some(colon)
}

fn strip_comment(line: &str) -> &str {
    // A `#` starts a comment at the line start or after whitespace, outside quotes.
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// The byte offset of the `:` that separates a mapping key from its value, outside quotes
/// and brackets, followed by a space or the end of the line.
fn find_mapping_colon(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\''
                    if i == 0 || depth > 0 || bytes.get(i.wrapping_sub(1)) == Some(&b' ') =>
                {
                    quote = Some(c)
                }
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                ':' if depth == 0 => {
                    let next = bytes.get(i + 1);
                    if next.is_none() || next == Some(&b' ') || next == Some(&b'\t') {
                        return Some(i);
                    }
                }
                _ => {}
            },
        }
    }
    None
}

fn parse_block(lines: &[Line], pos: &mut usize, min_indent: usize) -> Option<Yaml> {
    let first = lines.get(*pos)?;
    if first.indent < min_indent {
        return None;
    }
    let indent = first.indent;
    if first.text == "-" || first.text.starts_with("- ") {
        Some(parse_list(lines, pos, indent))
    } else if find_mapping_colon(&first.text).is_some() {
        Some(parse_map(lines, pos, indent, None))
    } else {
        *pos += 1;
        Some(scalar(&first.text))
    }
}

fn parse_list(lines: &[Line], pos: &mut usize, indent: usize) -> Yaml {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*pos) {
        if line.indent > indent {
            // Irregular indentation no item claimed: skip it rather than stop reading.
            *pos += 1;
            continue;
        }
        if line.indent != indent || !(line.text == "-" || line.text.starts_with("- ")) {
            break;
        }
        let rest = line.text[1..].trim_start().to_owned();
        // The content of `- key: v` sits two (or more) columns right of the dash.
        let item_indent = indent + (line.text.len() - rest.len());
        *pos += 1;
        if rest.is_empty() {
            items.push(parse_block(lines, pos, indent + 1).unwrap_or(Yaml::Scalar(String::new())));
        } else if find_mapping_colon(&rest).is_some()
            && !rest.starts_with('[')
            && !rest.starts_with('{')
        {
            items.push(parse_map(lines, pos, item_indent, Some(rest)));
        } else {
            items.push(scalar(&rest));
        }
    }
    Yaml::List(items)
}

/// Parses a mapping at `indent`. `first` is an entry already taken off a `- ` list line.
fn parse_map(lines: &[Line], pos: &mut usize, indent: usize, first: Option<String>) -> Yaml {
    let mut entries = Vec::new();
    let mut pending = first;
    loop {
        let text = match pending.take() {
            Some(t) => t,
            None => match lines.get(*pos) {
                Some(line)
                    if line.indent == indent
                        && !line.text.starts_with("- ")
                        && line.text != "-" =>
                {
                    *pos += 1;
                    line.text.clone()
                }
                Some(line) if line.indent > indent => {
                    // Irregular indentation no entry claimed: skip it rather than stop.
                    *pos += 1;
                    continue;
                }
                _ => break,
            },
        };
        let Some(colon) = find_mapping_colon(&text) else {
            // A stray line inside a mapping: skip it, keep what we have.
            continue;
        };
        let key = unquote(text[..colon].trim());
        let value = text[colon + 1..].trim();
        let parsed = if value.is_empty() {
            // The value is the block below: deeper lines, or a list at the same indent
            // (YAML allows `key:\n- a` with the dash under the key).
            match lines.get(*pos) {
                Some(next) if next.indent > indent => parse_block(lines, pos, indent + 1),
                Some(next)
                    if next.indent == indent
                        && (next.text.starts_with("- ") || next.text == "-") =>
                {
                    Some(parse_list(lines, pos, indent))
                }
                _ => None,
            }
            .unwrap_or(Yaml::Scalar(String::new()))
        } else {
            scalar(value)
        };
        entries.push((key, parsed));
    }
    Yaml::Map(entries)
}

fn scalar(text: &str) -> Yaml {
    let t = text.trim();
    if t.starts_with('[') && t.ends_with(']') {
        let inner = &t[1..t.len() - 1];
        return Yaml::List(
            split_flow(inner)
                .into_iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| scalar(&s))
                .collect(),
        );
    }
    Yaml::Scalar(unquote(t))
}

fn split_flow(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for c in inner.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                cur.push(c);
            }
            Some(_) => cur.push(c),
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '[' | '{' => {
                    depth += 1;
                    cur.push(c);
                }
                ']' | '}' => {
                    depth -= 1;
                    cur.push(c);
                }
                ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            },
        }
    }
    out.push(cur);
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    if s.len() >= 2 {
        let (first, last) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
        if (first == b'"' && last == b'"') || (first == b'\'' && last == b'\'') {
            return s[1..s.len() - 1].to_owned();
        }
    }
    s.to_owned()
}

/// Extracts, as text, the entry `- name: <name>` of the list under the top-level `section`
/// key (`models`, `seeds`, `snapshots`): the line itself and every following line indented
/// deeper. Text rather than a re-serialisation, so the fixer sees the file as written.
pub(crate) fn extract_entry(source: &str, section: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut in_section = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let content = strip_comment(line);
        let indent = content.len() - content.trim_start().len();
        let text = content.trim();
        if indent == 0 && !text.is_empty() {
            in_section = text.trim_end_matches(':').trim() == section && text.ends_with(':');
        } else if in_section {
            let rest = text.strip_prefix("- ").map(str::trim_start);
            let key_value = rest
                .and_then(|r| r.strip_prefix("name:"))
                .map(|v| unquote(v.trim()));
            if key_value.as_deref() == Some(name) {
                let mut block = vec![line.trim_end()];
                let mut j = i + 1;
                while j < lines.len() {
                    let next = lines[j];
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim_end());
                    j += 1;
                }
                while block.last().is_some_and(|l| l.trim().is_empty()) {
                    block.pop();
                }
                return Some(block.join("\n"));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"version: 2

models:
  - name: orders   # the fact table
    description: "One row per order"
    columns:
      - name: order_id
        data_tests:
          - unique
          - not_null
      - name: amount
        description: >
          Total in dollars,
          tax included.
  - name: customer_orders
    columns:
      - name: customer_id
sources:
  - name: ext
    schema: main
    tables:
      - name: raw_payments
        columns:
          - name: payment_id
          - name: "amount"
"#;

    #[test]
    fn reads_a_schema_file() {
        let doc = parse(SCHEMA);
        let models = doc.get("models").map(Yaml::items).unwrap_or_default();
        assert_eq!(models.len(), 2);
        let orders = &models[0];
        assert_eq!(orders.get("name").and_then(Yaml::as_str), Some("orders"));
        let cols: Vec<&str> = orders
            .get("columns")
            .map(Yaml::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.get("name").and_then(Yaml::as_str))
            .collect();
        assert_eq!(cols, ["order_id", "amount"]);
        let src = &doc.get("sources").map(Yaml::items).unwrap_or_default()[0];
        let table = &src.get("tables").map(Yaml::items).unwrap_or_default()[0];
        let cols: Vec<&str> = table
            .get("columns")
            .map(Yaml::items)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.get("name").and_then(Yaml::as_str))
            .collect();
        assert_eq!(cols, ["payment_id", "amount"]);
    }

    #[test]
    fn reads_project_settings() {
        let doc = parse("name: 'shop'\nmodel-paths: [\"models\", 'more']\nseed-paths:\n- seeds\n");
        assert_eq!(doc.get("name").and_then(Yaml::as_str), Some("shop"));
        assert_eq!(
            doc.get("model-paths")
                .map(Yaml::as_str_list)
                .unwrap_or_default(),
            ["models", "more"]
        );
        assert_eq!(
            doc.get("seed-paths")
                .map(Yaml::as_str_list)
                .unwrap_or_default(),
            ["seeds"]
        );
    }

    #[test]
    fn extracts_a_model_entry_as_written() {
        let entry = extract_entry(SCHEMA, "models", "orders").unwrap_or_default();
        assert!(entry.starts_with("  - name: orders"));
        assert!(entry.contains("tax included."));
        assert!(!entry.contains("customer_orders"));
        assert_eq!(extract_entry(SCHEMA, "models", "nope"), None);
        // The source table of the same name is not a model entry.
        assert_eq!(extract_entry(SCHEMA, "models", "raw_payments"), None);
    }

    #[test]
    fn broken_yaml_does_not_panic() {
        for text in [
            "models:\n  - name: \"unterminated\n   bad: [",
            "- - -\n  : :\n\t\tx",
            ":\n:",
            "key: [unclosed",
            "\u{feff}name: x",
        ] {
            let _ = parse(text);
            let _ = extract_entry(text, "models", "x");
        }
    }
}
