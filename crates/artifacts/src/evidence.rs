//! Minimum viable evidence for one failure: the model's SQL and YAML, its parents'
//! columns, the sources it reads, and the names a bad `ref()` could have meant.
//!
//! Two worlds feed it. With a fresh manifest, the graph is exact (`depends_on.nodes`) and
//! columns declared in YAML are at hand. Without one (a parse-time error leaves the last
//! run's manifest behind), the model's current SQL is read for `ref()`/`source()` calls and
//! those are resolved by name among the project files. Either way a parent's columns come
//! from its YAML, its SQL's select list (following `select *` upstream), or a seed's CSV
//! header, and the project files always win over the manifest's copy of a file.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use regex::Regex;

use crate::manifest::{Manifest, ManifestNode};
use crate::project::{ProjectFiles, ProjectLayout};
use crate::sql::{self, ColumnResolver, Relation, MAX_DEPTH};
use crate::yaml::{self, Yaml};
use crate::{AncestorModel, ErrorClass, Evidence, ParentColumns, SourceDef};

/// Longest YAML file quoted whole (for YAML errors).
const MAX_YAML_QUOTE: usize = 16 * 1024;

/// Everything evidence is drawn from, shared by all failures of one detection.
pub(crate) struct EvidenceSources<'a> {
    pub manifest: Option<&'a Manifest>,
    /// The manifest was written by the failing run (its graph and code are current).
    pub manifest_fresh: bool,
    pub project_files: Option<&'a ProjectFiles>,
    pub layout: &'a ProjectLayout,
    pub project_name: Option<&'a str>,
    /// Memo of relation → columns, shared across failures (parents repeat).
    memo: RefCell<BTreeMap<Relation, Option<Found>>>,
    /// Every declared source, read once (it parses every YAML file).
    sources_cache: OnceCell<Vec<SourceDef>>,
    /// Every node name, computed once.
    names_cache: OnceCell<Vec<String>>,
    /// Generations of ancestor models to ship (0: none).
    lineage_depth: u32,
}

/// A relation's columns, where they came from, and its unique id.
type Found = (Vec<String>, &'static str, String);

/// What evidence needs to know about the failing node.
pub(crate) struct Subject<'a> {
    pub unique_id: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub resource_type: &'a str,
    pub class: ErrorClass,
    pub message: &'a str,
    /// Compiled SQL from run_results, when the run got that far.
    pub compiled_sql: Option<&'a str>,
    /// The statement dbt executed for the node, as its log recorded it: what a database's
    /// `LINE n` counts.
    pub executed_sql: Option<&'a str>,
}

impl<'a> EvidenceSources<'a> {
    pub(crate) fn new(
        manifest: Option<&'a Manifest>,
        manifest_fresh: bool,
        project_files: Option<&'a ProjectFiles>,
        layout: &'a ProjectLayout,
        project_name: Option<&'a str>,
    ) -> Self {
        EvidenceSources {
            manifest,
            manifest_fresh,
            project_files,
            layout,
            project_name,
            memo: RefCell::new(BTreeMap::new()),
            sources_cache: OnceCell::new(),
            names_cache: OnceCell::new(),
            lineage_depth: 0,
        }
    }

    /// Ships the SQL of `depth` generations of ancestor models with each failure.
    pub(crate) fn with_lineage_depth(mut self, depth: u32) -> Self {
        self.lineage_depth = depth;
        self
    }

    /// The failing node's ancestor models up to `lineage_depth` generations, nearest
    /// first (breadth first over `depends_on`), each once; seeds, sources and other
    /// non-model nodes are passed through but not shipped.
    fn ancestors(&self, unique_id: &str) -> Vec<AncestorModel> {
        let Some(manifest) = self.manifest else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let mut seen: BTreeSet<&str> = BTreeSet::from([unique_id]);
        let mut frontier = vec![unique_id];
        for depth in 1..=self.lineage_depth {
            let mut next = Vec::new();
            for id in frontier {
                let Some(node) = manifest.nodes.get(id) else {
                    continue;
                };
                for parent_id in &node.depends_on.nodes {
                    if !seen.insert(parent_id.as_str()) {
                        continue;
                    }
                    let Some(parent) = manifest.nodes.get(parent_id) else {
                        continue;
                    };
                    next.push(parent_id.as_str());
                    let Some(path) = parent.original_file_path.as_deref() else {
                        continue;
                    };
                    if parent.resource_type != "model" || !path.ends_with(".sql") {
                        continue;
                    }
                    let raw_sql = self
                        .file(path)
                        .map(str::to_owned)
                        .or_else(|| parent.raw_code.clone())
                        .unwrap_or_default();
                    found.push(AncestorModel {
                        unique_id: parent_id.clone(),
                        name: parent.name.clone(),
                        path: path.to_owned(),
                        raw_sql,
                        depth,
                        materialized: parent.config.materialized.clone().unwrap_or_default(),
                    });
                }
            }
            frontier = next;
        }
        found
    }

    fn file(&self, path: &str) -> Option<&'a str> {
        self.project_files?.files.get(path).map(String::as_str)
    }

    fn node(&self, unique_id: &str) -> Option<&'a ManifestNode> {
        self.manifest?.nodes.get(unique_id)
    }

    /// Assembles the evidence for one failing node.
    pub(crate) fn build(&self, s: &Subject<'_>) -> Evidence {
        let node = self.node(s.unique_id);
        let model_sql = if s.path.ends_with(".sql") || s.path.ends_with(".py") {
            self.file(s.path)
                .map(str::to_owned)
                .or_else(|| node.and_then(|n| n.raw_code.clone()))
                .unwrap_or_default()
        } else {
            node.and_then(|n| n.raw_code.clone()).unwrap_or_default()
        };
        let compiled_sql = s
            .compiled_sql
            .filter(|c| !c.trim().is_empty())
            .map(str::to_owned)
            .or_else(|| {
                self.manifest_fresh
                    .then(|| node.and_then(|n| n.compiled_code.clone()))
                    .flatten()
            })
            .unwrap_or_default();
        let yaml_entry = self.yaml_entry(s, node);
        let parents = self.parents(s, node, &model_sql);
        let sources = self.sources(s, node, &model_sql);
        let error_location = if s.path.ends_with(".sql") || s.path.is_empty() {
            crate::location::locate(s.message, &model_sql, &compiled_sql, s.executed_sql)
        } else {
            None
        };
        Evidence {
            model_sql,
            compiled_sql,
            yaml_entry,
            parents,
            sources,
            project_node_names: self
                .names_cache
                .get_or_init(|| self.project_node_names())
                .clone(),
            // Only a missing macro needs them: no other evidence pays their tokens.
            project_macro_names: if s.class == ErrorClass::UndefinedMacro {
                self.project_macro_names()
            } else {
                Vec::new()
            },
            macro_signatures: self.macro_signatures(s.message),
            error_location,
            ancestors: if self.lineage_depth > 0 {
                self.ancestors(s.unique_id)
            } else {
                Vec::new()
            },
            ..Evidence::default()
        }
    }

    /// Names of the macros the project defines: every `{% macro NAME(` in a `.sql` file
    /// under its macro paths, sorted, each once.
    fn project_macro_names(&self) -> Vec<String> {
        static MACRO: OnceLock<Option<Regex>> = OnceLock::new();
        let Some(re) = MACRO
            .get_or_init(|| Regex::new(r"\{%-?\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(").ok())
            .as_ref()
        else {
            return Vec::new();
        };
        let mut names = BTreeSet::new();
        let Some(pf) = self.project_files else {
            return Vec::new();
        };
        for (path, text) in &pf.files {
            if self.in_macro_path(path) && path.ends_with(".sql") {
                names.extend(re.captures_iter(text).map(|c| c[1].to_owned()));
            }
        }
        names.into_iter().collect()
    }

    /// The signatures of the project's macros that `message` names: for each `macro
    /// '[dbt_macro__]NAME'` in the text, every `{% macro NAME(…) %}` tag under the macro
    /// paths, as `NAME(…)` with the parameters as written.
    fn macro_signatures(&self, message: &str) -> Vec<String> {
        static NAMED: OnceLock<Option<Regex>> = OnceLock::new();
        let Some(named) = NAMED
            .get_or_init(|| Regex::new(r"macro '(?:dbt_macro__)?([A-Za-z_][A-Za-z0-9_]*)'").ok())
            .as_ref()
        else {
            return Vec::new();
        };
        let names: BTreeSet<&str> = named
            .captures_iter(message)
            .filter_map(|c| c.get(1).map(|m| m.as_str()))
            .collect();
        let Some(pf) = self.project_files.filter(|_| !names.is_empty()) else {
            return Vec::new();
        };
        let alternatives: Vec<String> = names.iter().map(|name| regex::escape(name)).collect();
        let Ok(tag) = Regex::new(&format!(
            r"\{{%-?\s*macro\s+({})\s*\(",
            alternatives.join("|")
        )) else {
            return Vec::new();
        };
        let mut signatures = Vec::new();
        for (path, text) in &pf.files {
            if self.in_macro_path(path) && path.ends_with(".sql") {
                signatures.extend(macro_tag_signatures(text, &tag));
            }
        }
        signatures
    }

    fn in_macro_path(&self, path: &str) -> bool {
        self.layout.macro_paths.iter().any(|m| {
            path.strip_prefix(m.trim_end_matches('/'))
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn yaml_entry(&self, s: &Subject<'_>, node: Option<&ManifestNode>) -> String {
        // A YAML error: the broken file itself is the evidence.
        let is_yaml = s.path.ends_with(".yml") || s.path.ends_with(".yaml");
        if is_yaml && s.resource_type != "test" {
            if let Some(text) = self.file(s.path) {
                return text.chars().take(MAX_YAML_QUOTE).collect();
            }
        }
        // A test's entry is its model's.
        let (name, resource_type, node) = match node.and_then(|n| n.attached_node.as_deref()) {
            Some(attached) if s.resource_type == "test" => match self.node(attached) {
                Some(model) => (
                    model.name.as_str(),
                    model.resource_type.as_str(),
                    Some(model),
                ),
                None => (s.name, s.resource_type, node),
            },
            _ => (s.name, s.resource_type, node),
        };
        let section = match resource_type {
            "seed" => "seeds",
            "snapshot" => "snapshots",
            _ => "models",
        };
        // The file the manifest says documents the node, then any YAML file that does.
        let patch = node
            .and_then(|n| n.patch_path.as_deref())
            .map(|p| p.split_once("://").map_or(p, |(_, rest)| rest));
        if let Some(text) = patch.and_then(|p| self.file(p)) {
            if let Some(entry) = yaml::extract_entry(text, section, name) {
                return entry;
            }
        }
        if let Some(pf) = self.project_files {
            for (path, text) in &pf.files {
                if path.ends_with(".yml") || path.ends_with(".yaml") {
                    if let Some(entry) = yaml::extract_entry(text, section, name) {
                        return entry;
                    }
                }
            }
        }
        match node {
            Some(n)
                if n.description.as_deref().is_some_and(|d| !d.is_empty())
                    || !n.columns.is_empty() =>
            {
                manifest_entry(n)
            }
            _ => String::new(),
        }
    }

    fn parents(
        &self,
        s: &Subject<'_>,
        node: Option<&ManifestNode>,
        model_sql: &str,
    ) -> Vec<ParentColumns> {
        let mut out = Vec::new();
        match node.filter(|_| self.manifest_fresh) {
            Some(n) => {
                for parent in &n.depends_on.nodes {
                    let Some(p) = self.node(parent) else { continue };
                    if !Manifest::is_refable(&p.resource_type) {
                        continue;
                    }
                    let relation = Relation::Ref(p.name.clone());
                    let (columns, origin, _) = self.relation_columns(&relation, 1).unwrap_or((
                        Vec::new(),
                        "manifest",
                        String::new(),
                    ));
                    out.push(ParentColumns {
                        unique_id: parent.clone(),
                        name: p.name.clone(),
                        columns,
                        origin,
                    });
                }
            }
            None => {
                for name in sql::refs_in(model_sql) {
                    let relation = Relation::Ref(name.clone());
                    // A ref that names nothing (the bad ref itself) is not a parent.
                    let Some(uid) = self.uid_for_name(&name) else {
                        continue;
                    };
                    let (columns, origin, _) = self.relation_columns(&relation, 1).unwrap_or((
                        Vec::new(),
                        "sql",
                        String::new(),
                    ));
                    out.push(ParentColumns {
                        unique_id: uid,
                        name,
                        columns,
                        origin,
                    });
                }
            }
        }
        // DuckDB names the columns that were in scope ("Candidate bindings"): the truth
        // about the FROM clause, whatever the YAML says.
        if let Some(hint) = candidate_bindings(s.message) {
            let single_unknown = out.len() == 1 && out[0].columns.is_empty();
            if single_unknown {
                // One parent whose columns we could not find: the hint is about it.
                out[0].columns = hint;
                out[0].origin = "error_hint";
            } else if !out.iter().any(|p| same_set(&p.columns, &hint)) {
                out.push(ParentColumns {
                    unique_id: String::new(),
                    name: "candidate_bindings".into(),
                    columns: hint,
                    origin: "error_hint",
                });
            }
        }
        out
    }

    fn sources(
        &self,
        s: &Subject<'_>,
        node: Option<&ManifestNode>,
        model_sql: &str,
    ) -> Vec<SourceDef> {
        let all = self.sources_cache.get_or_init(|| self.all_sources());
        let wanted: Vec<(String, String)> = match node.filter(|_| self.manifest_fresh) {
            Some(n) if !n.sources.is_empty() => n
                .sources
                .iter()
                .filter_map(|p| match p.as_slice() {
                    [a, b, ..] => Some((a.clone(), b.clone())),
                    _ => None,
                })
                .collect(),
            _ => sql::sources_in(model_sql),
        };
        let mut out: Vec<SourceDef> = Vec::new();
        let mut unresolved = false;
        for (src, table) in &wanted {
            match all.iter().find(|d| {
                d.source_name.eq_ignore_ascii_case(src) && d.table_name.eq_ignore_ascii_case(table)
            }) {
                Some(d) => out.push(d.clone()),
                None => unresolved = true,
            }
        }
        // A source that does not exist: every declared one is a candidate.
        if unresolved || s.class == ErrorClass::UnknownSource {
            for d in all {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }

    /// Every declared source table: the manifest's, then any only the YAML declares.
    fn all_sources(&self) -> Vec<SourceDef> {
        let mut out: Vec<SourceDef> = Vec::new();
        if let Some(m) = self.manifest {
            for s in m.sources.values() {
                out.push(SourceDef {
                    source_name: s.source_name.clone(),
                    table_name: s.name.clone(),
                    columns: s
                        .columns
                        .iter()
                        .map(|(k, c)| c.name.clone().unwrap_or_else(|| k.clone()))
                        .collect(),
                });
            }
        }
        if let Some(pf) = self.project_files {
            for (path, text) in &pf.files {
                if !(path.ends_with(".yml") || path.ends_with(".yaml"))
                    || !text.contains("sources:")
                {
                    continue;
                }
                let doc = yaml::parse(text);
                for src in doc.get("sources").map(Yaml::items).unwrap_or_default() {
                    let Some(source_name) = src.get("name").and_then(Yaml::as_str) else {
                        continue;
                    };
                    for table in src.get("tables").map(Yaml::items).unwrap_or_default() {
                        let Some(table_name) = table.get("name").and_then(Yaml::as_str) else {
                            continue;
                        };
                        let def = SourceDef {
                            source_name: source_name.to_owned(),
                            table_name: table_name.to_owned(),
                            columns: yaml_column_names(table),
                        };
                        match out.iter_mut().find(|d| {
                            d.source_name == def.source_name && d.table_name == def.table_name
                        }) {
                            // The file as it is now wins over the manifest's copy.
                            Some(existing) => {
                                if !def.columns.is_empty() {
                                    existing.columns = def.columns;
                                }
                            }
                            None => out.push(def),
                        }
                    }
                }
            }
        }
        out
    }

    /// Names of every model, seed and snapshot.
    fn project_node_names(&self) -> Vec<String> {
        let mut names = BTreeSet::new();
        if let Some(m) = self.manifest {
            for n in m.nodes.values() {
                if Manifest::is_refable(&n.resource_type) && !n.name.is_empty() {
                    names.insert(n.name.clone());
                }
            }
        }
        if let Some(pf) = self.project_files {
            for path in pf.files.keys() {
                let l = self.layout;
                let is_node = (path.ends_with(".sql")
                    && (l.is_model_path(path) || l.is_snapshot_path(path)))
                    || (path.ends_with(".csv") && l.is_seed_path(path));
                if is_node {
                    names.insert(stem(path).to_owned());
                }
            }
        }
        names.into_iter().collect()
    }

    /// The unique id of a model/seed/snapshot by name: the manifest's, else one made from
    /// the project files.
    fn uid_for_name(&self, name: &str) -> Option<String> {
        if let Some((uid, _)) = self.manifest.and_then(|m| m.node_by_name(name)) {
            return Some(uid.clone());
        }
        let (_, kind) = self.file_for_name(name)?;
        let project = self.project_name.unwrap_or("project");
        Some(format!("{kind}.{project}.{name}"))
    }

    /// The project file that defines a node name, and the node's resource type.
    fn file_for_name(&self, name: &str) -> Option<(&'a str, &'static str)> {
        let pf = self.project_files?;
        let l = self.layout;
        pf.files.keys().find_map(|path| {
            if !stem(path).eq_ignore_ascii_case(name) {
                return None;
            }
            if path.ends_with(".sql") && l.is_model_path(path) {
                Some((path.as_str(), "model"))
            } else if path.ends_with(".csv") && l.is_seed_path(path) {
                Some((path.as_str(), "seed"))
            } else if path.ends_with(".sql") && l.is_snapshot_path(path) {
                Some((path.as_str(), "snapshot"))
            } else {
                None
            }
        })
    }

    /// The columns of a relation, where they came from, and the node's unique id.
    fn relation_columns(&self, relation: &Relation, depth: usize) -> Option<Found> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(hit) = self.memo.borrow().get(relation) {
            return hit.clone();
        }
        // Mark as in progress so a cycle (a ref to itself) ends instead of recursing.
        self.memo.borrow_mut().insert(relation.clone(), None);
        let found = self.compute_columns(relation, depth);
        self.memo
            .borrow_mut()
            .insert(relation.clone(), found.clone());
        found
    }

    fn compute_columns(&self, relation: &Relation, depth: usize) -> Option<Found> {
        match relation {
            Relation::Source(src, table) => {
                let def = self.all_sources().into_iter().find(|d| {
                    d.source_name.eq_ignore_ascii_case(src)
                        && d.table_name.eq_ignore_ascii_case(table)
                })?;
                (!def.columns.is_empty()).then(|| (def.columns, "manifest", String::new()))
            }
            Relation::Name(dotted) => {
                if let Some((_, n)) = self.manifest.and_then(|m| m.node_by_relation(dotted)) {
                    let name = n.name.clone();
                    return self.relation_columns(&Relation::Ref(name), depth);
                }
                let last = dotted.rsplit('.').next().unwrap_or(dotted);
                if self.uid_for_name(last).is_some() {
                    return self.relation_columns(&Relation::Ref(last.to_owned()), depth);
                }
                None
            }
            Relation::Ref(name) => self.node_columns(name, depth),
        }
    }

    /// A model/seed/snapshot's columns by name (see the module comment for the order).
    fn node_columns(&self, name: &str, depth: usize) -> Option<Found> {
        let manifest_node = self.manifest.and_then(|m| m.node_by_name(name));
        let file = self.file_for_name(name);
        let uid = self.uid_for_name(name).unwrap_or_default();
        let resource_type = manifest_node
            .map(|(_, n)| n.resource_type.as_str())
            .or(file.map(|(_, k)| k))
            .unwrap_or("model");

        let declared: Vec<String> = manifest_node
            .map(|(_, n)| {
                n.columns
                    .iter()
                    .map(|(k, c)| c.name.clone().unwrap_or_else(|| k.clone()))
                    .collect()
            })
            .unwrap_or_default();

        // The relation's real columns: a seed's header, or a model's select list.
        let real: Option<(Vec<String>, bool, &'static str)> = if resource_type == "seed" {
            let header = file.and_then(|(p, _)| self.file(p)).or_else(|| {
                manifest_node
                    .and_then(|(_, n)| n.original_file_path.as_deref())
                    .and_then(|p| self.file(p))
            });
            header.map(|h| (csv_header(h), true, "seed_header"))
        } else {
            let sql_text = file
                .and_then(|(p, _)| self.file(p))
                .map(str::to_owned)
                .or_else(|| {
                    manifest_node
                        .and_then(|(_, n)| n.original_file_path.as_deref())
                        .and_then(|p| self.file(p))
                        .map(str::to_owned)
                })
                .or_else(|| manifest_node.and_then(|(_, n)| n.raw_code.clone()));
            let mut cols = sql_text.and_then(|t| sql::output_columns(&t, self, depth));
            // Compiled code has no Jinja to trip on: try it when the raw SQL fell short.
            if !cols.as_ref().is_some_and(|c| c.complete) {
                if let Some(compiled) = manifest_node.and_then(|(_, n)| n.compiled_code.as_deref())
                {
                    if let Some(c) =
                        sql::output_columns(compiled, self, depth).filter(|c| c.complete)
                    {
                        cols = Some(c);
                    }
                }
            }
            cols.map(|c| (c.names, c.complete, "sql"))
        };

        // YAML-declared columns are preferred, unless the relation's real column list is
        // known in full and has columns the YAML does not declare: YAML documents a
        // subset often enough that trusting it would hide columns that exist.
        match real {
            Some((names, true, origin)) if !names.is_empty() => {
                let yaml_covers = !declared.is_empty()
                    && names
                        .iter()
                        .all(|n| declared.iter().any(|d| d.eq_ignore_ascii_case(n)));
                if yaml_covers {
                    Some((declared, "manifest", uid))
                } else {
                    Some((names, origin, uid))
                }
            }
            _ if !declared.is_empty() => Some((declared, "manifest", uid)),
            Some((names, _, origin)) if !names.is_empty() => Some((names, origin, uid)),
            _ => None,
        }
    }
}

impl ColumnResolver for EvidenceSources<'_> {
    fn columns(&self, relation: &Relation, depth: usize) -> Option<Vec<String>> {
        self.relation_columns(relation, depth).map(|(c, _, _)| c)
    }
}

/// Every tag of `text` that `tag` finds (`{% macro NAME(`, the name captured) as
/// `NAME(…)`: the parameter list up to its closing parenthesis, brackets and quoted
/// defaults included, whitespace runs collapsed.
fn macro_tag_signatures(text: &str, tag: &Regex) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut signatures = Vec::new();
    for found in tag.captures_iter(text) {
        let (Some(whole), Some(name)) = (found.get(0), found.get(1)) else {
            continue;
        };
        let name = name.as_str();
        let open = whole.end() - 1;
        let mut depth = 0usize;
        let mut quote = None;
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            match (quote, b) {
                (Some(q), _) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => quote = Some(b),
                (None, b'(' | b'[' | b'{') => depth += 1,
                (None, b')' | b']' | b'}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                (None, b'%') if bytes.get(i + 1) == Some(&b'}') => break,
                _ => {}
            }
        }
        if let Some(close) = close {
            let parameters = text[open + 1..close]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            signatures.push(format!("{name}({parameters})"));
        }
    }
    signatures
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

/// The file name without directories and extension.
pub(crate) fn stem(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.rsplit_once('.').map_or(file, |(s, _)| s)
}

/// Column names from a CSV header line (quotes and a BOM removed).
fn csv_header(line: &str) -> Vec<String> {
    line.trim_start_matches('\u{feff}')
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .collect()
}

fn yaml_column_names(entry: &Yaml) -> Vec<String> {
    entry
        .get("columns")
        .map(Yaml::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("name").and_then(Yaml::as_str).map(str::to_owned))
        .collect()
}

/// DuckDB's `Candidate bindings: "a", "b"` (also `Candidate bindings: : "a"`).
fn candidate_bindings(message: &str) -> Option<Vec<String>> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    static NAME: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| Regex::new(r"Candidate bindings:[ :]*(.*)").ok())
        .as_ref()?;
    let name = NAME
        .get_or_init(|| Regex::new(r#""([^"]+)""#).ok())
        .as_ref()?;
    let line = re.captures(message)?.get(1)?.as_str();
    let cols: Vec<String> = name
        .captures_iter(line)
        .filter_map(|c| c.get(1))
        // Qualified bindings (`o.amount`) name the column after the dot.
        .map(|m| {
            m.as_str()
                .rsplit('.')
                .next()
                .unwrap_or(m.as_str())
                .to_owned()
        })
        .collect();
    (!cols.is_empty()).then_some(cols)
}

/// A YAML-shaped rendering of the manifest's description and columns, for when the YAML
/// file itself is not at hand.
fn manifest_entry(n: &ManifestNode) -> String {
    let mut out = format!("- name: {}\n", n.name);
    if let Some(d) = n.description.as_deref().filter(|d| !d.is_empty()) {
        out.push_str(&format!(
            "  description: {}\n",
            serde_json::to_string(d).unwrap_or_default()
        ));
    }
    if !n.columns.is_empty() {
        out.push_str("  columns:\n");
        for (key, c) in &n.columns {
            out.push_str(&format!(
                "    - name: {}\n",
                c.name.as_deref().unwrap_or(key)
            ));
            if let Some(t) = c.data_type.as_deref().filter(|t| !t.is_empty()) {
                out.push_str(&format!("      data_type: {t}\n"));
            }
            if let Some(d) = c.description.as_deref().filter(|d| !d.is_empty()) {
                out.push_str(&format!(
                    "      description: {}\n",
                    serde_json::to_string(d).unwrap_or_default()
                ));
            }
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_bindings_are_read() {
        // Real DuckDB texts (dbt run and duckdb client).
        assert_eq!(
            candidate_bindings("Binder Error: Referenced column \"first_nme\" not found in FROM clause!\n  Candidate bindings: \"first_name\", \"last_name\", \"id\"\n  LINE 5:"),
            Some(vec!["first_name".to_owned(), "last_name".to_owned(), "id".to_owned()])
        );
        assert_eq!(
            candidate_bindings("Binder Error: Table \"t\" does not have a column named \"nosuch\"\n\nCandidate bindings: : \"s\""),
            Some(vec!["s".to_owned()])
        );
        assert_eq!(candidate_bindings("no hint"), None);
    }

    #[test]
    fn stems_and_headers() {
        assert_eq!(stem("models/marts/orders.sql"), "orders");
        assert_eq!(stem("seeds/raw.orders.csv"), "raw.orders");
        assert_eq!(
            csv_header("\u{feff}id,\"customer_id\", amount"),
            ["id", "customer_id", "amount"]
        );
    }

    fn project() -> ProjectFiles {
        let mut files = BTreeMap::new();
        files.insert(
            "seeds/raw_orders.csv".to_owned(),
            "id,customer_id,order_date,amount".to_owned(),
        );
        files.insert(
            "models/staging/stg_orders.sql".to_owned(),
            "select id as order_id, customer_id, order_date, amount from {{ ref('raw_orders') }}"
                .to_owned(),
        );
        files.insert("models/staging/sources.yml".to_owned(), "version: 2\nsources:\n  - name: ext\n    tables:\n      - name: raw_payments\n        columns:\n          - name: payment_id\n".to_owned());
        files.insert("models/marts/orders.sql".to_owned(), "with o as (select * from {{ ref('stg_ordrs') }})\nselect * from o join {{ ref('raw_orders') }} r using (id) join {{ source('ext', 'raw_paymnts') }} p on true".to_owned());
        files.insert(
            "models/marts/schema.yml".to_owned(),
            "version: 2\nmodels:\n  - name: orders\n    description: x\n".to_owned(),
        );
        ProjectFiles {
            dbt_project_yml: "name: shop\n".into(),
            files,
        }
    }

    #[test]
    fn evidence_from_project_files_alone() {
        let pf = project();
        let layout = ProjectLayout::from_project_yml(&pf.dbt_project_yml);
        let ev = EvidenceSources::new(None, false, Some(&pf), &layout, Some("shop"));
        let e = ev.build(&Subject {
            unique_id: "model.shop.orders",
            name: "orders",
            path: "models/marts/orders.sql",
            resource_type: "model",
            class: ErrorClass::BadRef,
            message: "depends on a node named 'stg_ordrs' which was not found",
            compiled_sql: None,
            executed_sql: None,
        });
        assert!(e.model_sql.contains("stg_ordrs"));
        assert_eq!(e.yaml_entry, "  - name: orders\n    description: x");
        // The bad ref is not a parent; the seed is, with its header.
        assert_eq!(e.parents.len(), 1);
        assert_eq!(e.parents[0].unique_id, "seed.shop.raw_orders");
        assert_eq!(e.parents[0].origin, "seed_header");
        assert_eq!(
            e.parents[0].columns,
            ["id", "customer_id", "order_date", "amount"]
        );
        // The source named does not exist: every declared source is listed.
        assert_eq!(e.sources.len(), 1);
        assert_eq!(e.sources[0].table_name, "raw_payments");
        assert_eq!(e.sources[0].columns, ["payment_id"]);
        assert_eq!(e.project_node_names, ["orders", "raw_orders", "stg_orders"]);
    }

    /// Macro names are read from the macro paths only, and only for a missing macro.
    #[test]
    fn macro_names_for_an_undefined_macro() {
        let mut pf = project();
        pf.files.insert(
            "macros/money.sql".to_owned(),
            "{% macro cents_to_dollars(column_name) %}({{ column_name }} / 100){% endmacro %}\n\
             {%- macro   dollars_to_cents (x) -%}{{ x }} * 100{%- endmacro %}"
                .to_owned(),
        );
        pf.files.insert(
            "models/not_a_macro.sql".to_owned(),
            "{% macro inline_one() %}1{% endmacro %}".to_owned(),
        );
        let layout = ProjectLayout::from_project_yml(&pf.dbt_project_yml);
        let ev = EvidenceSources::new(None, false, Some(&pf), &layout, Some("shop"));
        let subject = |class| Subject {
            unique_id: "model.shop.orders",
            name: "orders",
            path: "models/marts/orders.sql",
            resource_type: "model",
            class,
            message: "'cents_to_dolars' is undefined",
            compiled_sql: None,
            executed_sql: None,
        };
        let e = ev.build(&subject(ErrorClass::UndefinedMacro));
        assert_eq!(
            e.project_macro_names,
            ["cents_to_dollars", "dollars_to_cents"]
        );
        let e = ev.build(&subject(ErrorClass::SqlSyntax));
        assert!(e.project_macro_names.is_empty());
    }

    #[test]
    fn signatures_of_the_macros_an_error_names() {
        let mut pf = project();
        pf.files.insert(
            "macros/money.sql".to_owned(),
            "{#- pence -#}\n{% macro pence_to_pounds(column_name,\n    precision=2, sep=')') -%}x{%- endmacro %}\n\
             {% macro other(a) %}{% endmacro %}"
                .to_owned(),
        );
        // Outside the macro paths: not a macro dbt knows.
        pf.files.insert(
            "models/m.sql".to_owned(),
            "{% macro pence_to_pounds(x) %}{% endmacro %}".to_owned(),
        );
        let layout = ProjectLayout::from_project_yml(&pf.dbt_project_yml);
        let ev = EvidenceSources::new(None, false, Some(&pf), &layout, Some("shop"));
        let subject = |message| Subject {
            unique_id: "model.shop.orders",
            name: "orders",
            path: "models/marts/orders.sql",
            resource_type: "model",
            class: ErrorClass::JinjaCompilation,
            message,
            compiled_sql: None,
            executed_sql: None,
        };
        // dbt 1.11's text (a real run on examples/bike_rentals).
        let e = ev.build(&subject(
            "Compilation Error in model int_rental_payments (models/intermediate/int_rental_payments.sql)\n  macro 'dbt_macro__pence_to_pounds' takes no keyword argument 'decimals'",
        ));
        assert_eq!(
            e.macro_signatures,
            ["pence_to_pounds(column_name, precision=2, sep=')')"]
        );
        let e = ev.build(&subject("'pence_to_pound' is undefined"));
        assert!(e.macro_signatures.is_empty());
    }

    #[test]
    fn parent_models_columns_come_from_their_sql() {
        let mut pf = project();
        pf.files.insert(
            "models/marts/orders.sql".to_owned(),
            "select o.amout from {{ ref('stg_orders') }} o".to_owned(),
        );
        let layout = ProjectLayout::from_project_yml(&pf.dbt_project_yml);
        let ev = EvidenceSources::new(None, false, Some(&pf), &layout, Some("shop"));
        let e = ev.build(&Subject {
            unique_id: "model.shop.orders",
            name: "orders",
            path: "models/marts/orders.sql",
            resource_type: "model",
            class: ErrorClass::MissingColumn,
            message: "",
            compiled_sql: None,
            executed_sql: None,
        });
        assert_eq!(e.parents.len(), 1);
        assert_eq!(e.parents[0].name, "stg_orders");
        assert_eq!(e.parents[0].origin, "sql");
        assert_eq!(
            e.parents[0].columns,
            ["order_id", "customer_id", "order_date", "amount"]
        );
    }
}
