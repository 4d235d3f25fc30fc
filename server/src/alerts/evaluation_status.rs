//! How rule evaluation fares on this instance, for `/metrics`: evaluations run and
//! failures by reason. The reasons are a fixed set chosen here (never a rule's id or
//! name), so the series stay few however many rules there are; which rule failed and
//! why is in the API (`evaluation.last_error` of each rule). Recording and rendering
//! never do I/O.

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::evaluate::EvaluationError;
use crate::read::error::ReadError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Why an evaluation failed, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The stored rule no longer parses.
    Rule,
    /// Its search is refused by the read side.
    Search,
    /// The read ran past the read statement timeout.
    Timeout,
    /// Every read connection stayed busy.
    Busy,
    /// Another read failure (the database refused or went away).
    Read,
    /// Writing the outcome failed (the transaction was lost).
    Database,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Rule => "rule",
            FailureReason::Search => "search",
            FailureReason::Timeout => "timeout",
            FailureReason::Busy => "busy",
            FailureReason::Read => "read",
            FailureReason::Database => "database",
        }
    }

    pub fn of(error: &EvaluationError) -> Self {
        match error {
            EvaluationError::Rule(_) => FailureReason::Rule,
            EvaluationError::Search(_) => FailureReason::Search,
            EvaluationError::Read(ReadError::QueryTimedOut) => FailureReason::Timeout,
            EvaluationError::Read(ReadError::Busy) => FailureReason::Busy,
            EvaluationError::Read(_) => FailureReason::Read,
        }
    }
}

#[derive(Debug)]
pub struct EvaluationStatus {
    registry: Registry,
    evaluations: Counter,
    failures: Family<Reason, Counter>,
}

impl Default for EvaluationStatus {
    fn default() -> Self {
        let mut registry = Registry::default();
        let evaluations = Counter::default();
        let failures = Family::<Reason, Counter>::default();
        registry.register(
            "log_ingestion_alert_evaluations",
            "Alert rule evaluations this instance ran (failed ones included)",
            evaluations.clone(),
        );
        registry.register(
            "log_ingestion_alert_evaluation_failures",
            "Alert rule evaluations that failed on this instance, by reason (the rule's evaluation.last_error says which)",
            failures.clone(),
        );
        EvaluationStatus {
            registry,
            evaluations,
            failures,
        }
    }
}

impl EvaluationStatus {
    pub fn evaluated(&self) {
        self.evaluations.inc();
    }

    pub fn failed(&self, reason: FailureReason) {
        self.failures
            .get_or_create(&Reason {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Appends the counters to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = prometheus_text::encode(out, &self.registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_a_fixed_reason() {
        let status = EvaluationStatus::default();
        status.evaluated();
        status.evaluated();
        status.failed(FailureReason::of(&EvaluationError::Read(
            ReadError::QueryTimedOut,
        )));
        let mut text = String::new();
        status.render(&mut text);
        assert!(
            text.contains("log_ingestion_alert_evaluations_total 2"),
            "{text}"
        );
        assert!(
            text.contains("log_ingestion_alert_evaluation_failures_total{reason=\"timeout\"} 1"),
            "{text}"
        );
    }
}
