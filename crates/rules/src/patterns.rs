//! Error-text tables keyed by adapter, as the rules that read a warehouse's wording use
//! them: compiled once, and for a given adapter its own rows tried before the others'
//! (the wording decides, but an adapter's own phrasing is the likelier match).

use std::sync::OnceLock;

use regex::{Captures, Regex};

/// A row of an adapter-keyed table: which adapters word an error this way, and the regex.
pub trait AdapterRow: Copy {
    /// The adapters whose wording this row is.
    fn adapters(&self) -> &'static [&'static str];
    /// The regex that reads it.
    fn regex(&self) -> &'static str;
}

/// A row that is nothing but its wording: a name for tests and logs, the adapters, the
/// regex (whose groups the rule reading it defines).
#[derive(Debug, Clone, Copy)]
pub struct AdapterPattern {
    /// A short name for tests and logs.
    pub name: &'static str,
    /// The adapters that word it this way, tried first for them.
    pub adapters: &'static [&'static str],
    /// The regex.
    pub regex: &'static str,
}

impl AdapterRow for AdapterPattern {
    fn adapters(&self) -> &'static [&'static str] {
        self.adapters
    }
    fn regex(&self) -> &'static str {
        self.regex
    }
}

/// The rows with their compiled regexes; a row whose regex does not compile is left out
/// (the tables' own tests compile every one).
pub fn compile<R: AdapterRow>(rows: &[R]) -> Vec<(R, Regex)> {
    rows.iter()
        .filter_map(|row| Regex::new(row.regex()).ok().map(|re| (*row, re)))
        .collect()
}

/// `rows` with `adapter`'s own first, each group in table order.
pub fn own_adapter_first<'a, R: AdapterRow>(
    rows: &'a [(R, Regex)],
    adapter: &str,
) -> impl Iterator<Item = &'a (R, Regex)> + 'a {
    let adapter = adapter.to_ascii_lowercase();
    let (own, others): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|(row, _)| row.adapters().contains(&adapter.as_str()));
    own.into_iter().chain(others)
}

/// The captures of `pattern` in `text`, with the regex compiled once into `cell` (the
/// rule's own `static`); `None` when it does not match, or does not compile — every
/// pattern's own test compiles it.
pub fn captures<'t>(
    cell: &'static OnceLock<Option<Regex>>,
    pattern: &str,
    text: &'t str,
) -> Option<Captures<'t>> {
    cell.get_or_init(|| Regex::new(pattern).ok())
        .as_ref()?
        .captures(text)
}
