//! What a rule is made of: its kind, the comparison, what separates its series, and
//! the search it counts (the read API's filter parameters, checked by the read side).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::read::filters::{LogFilter, Params};

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Entries matching the search in the window, compared with the threshold.
    Count,
    /// Matching entries ÷ entries matching the base search, compared with the threshold.
    Ratio,
    /// Error groups first seen in the window; one series per group.
    NewError,
    /// Error groups that regressed in the window; one series per group.
    RegressedError,
    /// No entry matching the search in the window.
    Absence,
}

impl Kind {
    pub const CHOICES: &'static str = "count, ratio, new_error, regressed_error or absence";

    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "count" => Kind::Count,
            "ratio" => Kind::Ratio,
            "new_error" => Kind::NewError,
            "regressed_error" => Kind::RegressedError,
            "absence" => Kind::Absence,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Count => "count",
            Kind::Ratio => "ratio",
            Kind::NewError => "new_error",
            Kind::RegressedError => "regressed_error",
            Kind::Absence => "absence",
        }
    }

    pub(super) fn has_search(self) -> bool {
        matches!(self, Kind::Count | Kind::Ratio | Kind::Absence)
    }

    pub(super) fn has_threshold(self) -> bool {
        matches!(self, Kind::Count | Kind::Ratio)
    }

    pub fn is_error_kind(self) -> bool {
        matches!(self, Kind::NewError | Kind::RegressedError)
    }
}

/// How a measured value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text {
            ">" => Op::Above,
            ">=" => Op::AtLeast,
            "<" => Op::Below,
            "<=" => Op::AtMost,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Above => ">",
            Op::AtLeast => ">=",
            Op::Below => "<",
            Op::AtMost => "<=",
        }
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Above => value > threshold,
            Op::AtLeast => value >= threshold,
            Op::Below => value < threshold,
            Op::AtMost => value <= threshold,
        }
    }
}

/// What separates a rule's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Service,
    /// A declared metadata key (`meta.KEY`).
    Meta(String),
}

impl GroupBy {
    /// The series label it gives (`service`, or the key).
    pub fn label(&self) -> &str {
        match self {
            GroupBy::Service => "service",
            GroupBy::Meta(key) => key,
        }
    }

    pub(super) fn text(&self) -> String {
        match self {
            GroupBy::Service => "service".to_owned(),
            GroupBy::Meta(key) => format!("meta.{key}"),
        }
    }
}

/// A search: `GET /api/v1/logs` filter parameters as pairs (a list value gives
/// several pairs), checked by the read side's own parser.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Search {
    pub pairs: Vec<(String, String)>,
}

impl Search {
    /// The filter over `[since, until)`.
    pub fn filter(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Result<LogFilter, String> {
        let mut params = Params::new(self.pairs.clone());
        let mut filter = LogFilter::parse(&mut params, until);
        params.finish().map_err(|problems| problems.join("; "))?;
        filter.since = Some(since);
        filter.until = Some(until);
        Ok(filter)
    }

    pub(super) fn to_json(&self) -> Value {
        let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, value) in &self.pairs {
            map.entry(key).or_default().push(value);
        }
        Value::Object(
            map.into_iter()
                .map(|(key, values)| {
                    let value = match values.as_slice() {
                        [one] => json!(one),
                        many => json!(many),
                    };
                    (key.to_owned(), value)
                })
                .collect(),
        )
    }
}
