//! A small metrics registry: labelled counters, gauges and histograms, written out in the
//! Prometheus text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Label values in the order the family declares its label names.
type Labels = Vec<String>;

/// A family of counters sharing a name and label names.
#[derive(Debug)]
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    values: BTreeMap<Labels, f64>,
}

/// A family of gauges: values set (not added to), and series removed when what they
/// measure is gone.
#[derive(Debug)]
struct GaugeFamily {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    values: BTreeMap<Labels, f64>,
}

/// A family of histograms (one per label set) with fixed buckets.
#[derive(Debug)]
struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    buckets: &'static [f64],
    /// Per bucket (non-cumulative) counts, then sum and count.
    values: BTreeMap<Labels, (Vec<u64>, f64, u64)>,
}

/// The registry: families in registration order, behind one lock (updates are rare:
/// a handful per incident).
#[derive(Debug, Default)]
pub struct Registry {
    counters: Mutex<Vec<CounterFamily>>,
    gauges: Mutex<Vec<GaugeFamily>>,
    histograms: Mutex<Vec<HistogramFamily>>,
}

impl Registry {
    /// Declares a counter family; its series appear once incremented.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) {
        lock(&self.counters).push(CounterFamily {
            name,
            help,
            label_names,
            values: BTreeMap::new(),
        });
    }

    /// Declares a gauge family; its series appear once set.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) {
        lock(&self.gauges).push(GaugeFamily {
            name,
            help,
            label_names,
            values: BTreeMap::new(),
        });
    }

    /// Sets the gauge `name` with `labels` to `value`. An undeclared name is ignored.
    pub fn set(&self, name: &str, labels: &[&str], value: f64) {
        let mut families = lock(&self.gauges);
        if let Some(family) = families.iter_mut().find(|family| family.name == name) {
            let key = labels.iter().map(|label| (*label).to_owned()).collect();
            family.values.insert(key, value);
        }
    }

    /// Removes the gauge series `name` with `labels` (what it measured is gone).
    pub fn remove(&self, name: &str, labels: &[&str]) {
        let key: Labels = labels.iter().map(|label| (*label).to_owned()).collect();
        let mut families = lock(&self.gauges);
        if let Some(family) = families.iter_mut().find(|family| family.name == name) {
            family.values.remove(&key);
        }
    }

    /// The current value of a gauge series, `None` when it is not set.
    pub fn gauge_value(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let key: Labels = labels.iter().map(|label| (*label).to_owned()).collect();
        lock(&self.gauges)
            .iter()
            .find(|family| family.name == name)
            .and_then(|family| family.values.get(&key).copied())
    }

    /// Declares a histogram family with ascending upper bounds (`+Inf` is implied).
    pub fn histogram(&self, name: &'static str, help: &'static str, buckets: &'static [f64]) {
        lock(&self.histograms).push(HistogramFamily {
            name,
            help,
            buckets,
            values: BTreeMap::new(),
        });
    }

    /// Adds `by` to the counter `name` with `labels` (values in declaration order).
    /// An undeclared name is ignored.
    pub fn add(&self, name: &str, labels: &[&str], by: f64) {
        let mut families = lock(&self.counters);
        if let Some(family) = families.iter_mut().find(|family| family.name == name) {
            let key = labels.iter().map(|label| (*label).to_owned()).collect();
            *family.values.entry(key).or_default() += by;
        }
    }

    /// Adds one to the counter `name` with `labels`.
    pub fn inc(&self, name: &str, labels: &[&str]) {
        self.add(name, labels, 1.0);
    }

    /// Records `value` in the histogram `name`.
    pub fn observe(&self, name: &str, value: f64) {
        let mut families = lock(&self.histograms);
        if let Some(family) = families.iter_mut().find(|family| family.name == name) {
            let buckets = family.buckets;
            let (counts, sum, count) = family
                .values
                .entry(Vec::new())
                .or_insert_with(|| (vec![0; buckets.len()], 0.0, 0));
            if let Some(index) = buckets.iter().position(|bound| value <= *bound) {
                counts[index] += 1;
            }
            *sum += value;
            *count += 1;
        }
    }

    /// The current value of a counter series (tests, readiness).
    pub fn value(&self, name: &str, labels: &[&str]) -> f64 {
        let key: Labels = labels.iter().map(|label| (*label).to_owned()).collect();
        lock(&self.counters)
            .iter()
            .find(|family| family.name == name)
            .and_then(|family| family.values.get(&key).copied())
            .unwrap_or(0.0)
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in lock(&self.counters).iter() {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} counter", family.name);
            for (labels, value) in &family.values {
                let pairs: Vec<(&str, &str)> = family
                    .label_names
                    .iter()
                    .copied()
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    family.name,
                    label_set(&pairs),
                    number(*value)
                );
            }
        }
        for family in lock(&self.gauges).iter() {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} gauge", family.name);
            for (labels, value) in &family.values {
                let pairs: Vec<(&str, &str)> = family
                    .label_names
                    .iter()
                    .copied()
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                let _ = writeln!(
                    out,
                    "{}{} {}",
                    family.name,
                    label_set(&pairs),
                    number(*value)
                );
            }
        }
        for family in lock(&self.histograms).iter() {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} histogram", family.name);
            let empty = (vec![0; family.buckets.len()], 0.0, 0);
            let series = if family.values.is_empty() {
                vec![&empty]
            } else {
                family.values.values().collect()
            };
            for (counts, sum, count) in series {
                let mut cumulative = 0;
                for (bound, bucket) in family.buckets.iter().zip(counts) {
                    cumulative += bucket;
                    let le = number(*bound);
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {cumulative}",
                        family.name,
                        label_set(&[("le", &le)])
                    );
                }
                let _ = writeln!(out, "{}_bucket{{le=\"+Inf\"}} {count}", family.name);
                let _ = writeln!(out, "{}_sum {}", family.name, number(*sum));
                let _ = writeln!(out, "{}_count {count}", family.name);
            }
        }
        out
    }
}

/// The lock, even if a panicking holder poisoned it: the counts stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `{a="x",b="y"}`, escaped; empty without labels.
fn label_set(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A number as Prometheus writes it: integers without a fraction.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let registry = Registry::default();
        registry.counter("x_total", "Things.", &["class", "outcome"]);
        registry.counter("y_total", "Other things.", &[]);
        registry.histogram("z_seconds", "Durations.", &[1.0, 2.5]);
        registry.inc("x_total", &["a\"b", "ok"]);
        registry.inc("x_total", &["a\"b", "ok"]);
        registry.inc("y_total", &[]);
        registry.observe("z_seconds", 2.0);
        registry.observe("z_seconds", 9.0);
        let text = registry.render();
        assert!(text.contains("# TYPE x_total counter\n"), "{text}");
        assert!(
            text.contains("x_total{class=\"a\\\"b\",outcome=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("y_total 1\n"), "{text}");
        assert!(text.contains("z_seconds_bucket{le=\"1\"} 0\n"), "{text}");
        assert!(text.contains("z_seconds_bucket{le=\"2.5\"} 1\n"), "{text}");
        assert!(text.contains("z_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("z_seconds_sum 11\n"), "{text}");
        assert!(text.contains("z_seconds_count 2\n"), "{text}");
        assert_eq!(registry.value("x_total", &["a\"b", "ok"]), 2.0);
    }

    #[test]
    fn gauges_are_set_and_removed() {
        let registry = Registry::default();
        registry.gauge("g_messages", "Waiting.", &["consumer"]);
        registry.set("g_messages", &["fixer"], 3.0);
        registry.set("g_messages", &["fixer"], 2.0);
        registry.set("g_messages", &["validator"], 0.0);
        let text = registry.render();
        assert!(text.contains("# TYPE g_messages gauge\n"), "{text}");
        assert!(
            text.contains("g_messages{consumer=\"fixer\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("g_messages{consumer=\"validator\"} 0\n"),
            "{text}"
        );
        registry.remove("g_messages", &["fixer"]);
        assert_eq!(registry.gauge_value("g_messages", &["fixer"]), None);
        assert_eq!(
            registry.gauge_value("g_messages", &["validator"]),
            Some(0.0)
        );
    }

    #[test]
    fn an_empty_histogram_still_renders_its_buckets() {
        let registry = Registry::default();
        registry.histogram("z_seconds", "Durations.", &[1.0]);
        assert!(registry.render().contains("z_seconds_count 0\n"));
    }
}
