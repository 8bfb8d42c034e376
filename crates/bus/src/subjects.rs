//! The subjects dbt-ops speaks on, all under one prefix (`dbtops` unless configured).

/// Every subject name, built once from the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects under `prefix` (a single subject token, e.g. `dbtops`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn subject(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// Everything dbt-ops publishes: the stream's subject filter.
    pub fn all(&self) -> String {
        self.subject(">")
    }

    /// A finished dbt run's artifacts, for the detector.
    pub fn run_submitted(&self) -> String {
        self.subject("run.submitted")
    }

    /// The detector's verdict on one submission (which incidents it opened or saw again).
    pub fn run_processed(&self) -> String {
        self.subject("run.processed")
    }

    /// One incident per root failing node, for the fixer.
    pub fn failure_detected(&self) -> String {
        self.subject("failure.detected")
    }

    /// A proposal, for the validator.
    pub fn fix_proposed(&self) -> String {
        self.subject("fix.proposed")
    }

    /// A proposal dbt rejected, back to the fixer with dbt's error.
    pub fn compile_failed(&self) -> String {
        self.subject("fix.compile_failed")
    }

    /// A proposal dbt accepted, for delivery.
    pub fn fix_validated(&self) -> String {
        self.subject("fix.validated")
    }

    /// A branch or merge request was opened.
    pub fn mr_opened(&self) -> String {
        self.subject("mr.opened")
    }

    /// A merge request was merged.
    pub fn mr_merged(&self) -> String {
        self.subject("mr.merged")
    }

    /// A merge request was closed without merging.
    pub fn mr_closed(&self) -> String {
        self.subject("mr.closed")
    }

    /// An incident ended without a merge request.
    pub fn incident_abandoned(&self) -> String {
        self.subject("incident.abandoned")
    }

    /// A later run showed an incident's model passing again.
    pub fn incident_resolved(&self) -> String {
        self.subject("incident.resolved")
    }

    /// Where `service` copies messages it could not handle.
    pub fn dead_letter(&self, service: &str) -> String {
        self.subject(&format!("dlq.{service}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_sit_under_the_prefix() {
        let subjects = Subjects::new("t1");
        assert_eq!(subjects.all(), "t1.>");
        assert_eq!(subjects.compile_failed(), "t1.fix.compile_failed");
        assert_eq!(subjects.dead_letter("fixer"), "t1.dlq.fixer");
    }
}
