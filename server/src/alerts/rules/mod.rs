//! Alert rules as values that can only exist valid: [`Rule::parse`] reads a rule from
//! JSON (an API body, or an entry of the rules file turned into JSON) and refuses it
//! with one problem per bad field, named by its path (`window: ...`,
//! `search.level: ...`). It owns the fields, their defaults and every bound (sizes,
//! counts, durations) and the stored form ([`Rule::to_json`]). It never touches the
//! database: channel names are checked against `alert_channels` by the API. The kinds,
//! operators and searches are in `terms`, the readers of each field in `fields`.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use serde_json::{json, Map, Value};

use crate::read::filters::parse_age;

/// Rules in one database, API and file together.
pub const MAX_RULES: i64 = 10_000;
pub const MAX_NAME_CHARS: usize = 128;
const MAX_SEARCH_PARAMS: usize = 30;
const MAX_SEARCH_VALUE_CHARS: usize = 1_000;
const MAX_LABELS: usize = 32;
const MAX_LABEL_VALUE_CHARS: usize = 1_024;
const MAX_ANNOTATION_VALUE_CHARS: usize = 4_096;
const MAX_KEY_CHARS: usize = 64;
pub const MAX_CHANNELS: usize = 20;
const MAX_CHANNEL_CHARS: usize = 64;
const MAX_SERVICE_CHARS: usize = 255;
pub const DEFAULT_MAX_SERIES: i64 = 100;
pub const MAX_SERIES: i64 = 1_000;
const DEFAULT_INTERVAL: Duration = Duration::minutes(1);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::hours(4);
const MIN_INTERVAL: Duration = Duration::seconds(1);
const MAX_INTERVAL: Duration = Duration::days(1);
const MAX_WINDOW: Duration = Duration::days(1);
const MAX_HOLD: Duration = Duration::days(7);
const MAX_REPEAT_INTERVAL: Duration = Duration::days(30);
const MAX_BASE_COUNT: i64 = 1_000_000_000;
/// Search parameters the rule's window decides, or that only page a list.
const NOT_IN_A_SEARCH: [&str; 5] = ["since", "until", "cursor", "limit", "order"];
const FIELDS: [&str; 19] = [
    "name",
    "kind",
    "search",
    "base_search",
    "min_base_count",
    "op",
    "threshold",
    "service",
    "interval",
    "window",
    "for",
    "keep_firing_for",
    "repeat_interval",
    "group_by",
    "max_series",
    "labels",
    "annotations",
    "channels",
    "enabled",
];

mod fields;
mod terms;
#[cfg(test)]
mod tests;

pub use fields::valid_channel_name;
use fields::*;
pub use terms::{GroupBy, Kind, Op, Search};

/// One valid rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub kind: Kind,
    /// The entries counted (count, ratio, absence); empty for the error kinds.
    pub search: Search,
    /// Ratio only: the entries the matching ones are divided by.
    pub base_search: Search,
    /// Ratio only: below this many base entries the condition does not hold.
    pub min_base_count: i64,
    pub op: Op,
    pub threshold: f64,
    /// Error kinds only: groups of this service only.
    pub service: Option<String>,
    pub interval: Duration,
    pub window: Duration,
    pub hold: Duration,
    pub keep_firing_for: Duration,
    /// Zero: no reminders.
    pub repeat_interval: Duration,
    pub group_by: Option<GroupBy>,
    pub max_series: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub channels: Vec<String>,
    pub enabled: bool,
}

impl Rule {
    /// Reads a rule from `body` (a JSON object). `declared` lists the declared metadata
    /// keys `group_by: meta.KEY` may name; `None` skips that check (a stored rule, read
    /// again by the evaluator).
    pub fn parse(body: &Value, declared: Option<&[String]>) -> Result<Rule, Vec<String>> {
        let mut problems = Problems(Vec::new());
        let Some(fields) = body.as_object() else {
            return Err(vec!["the rule must be a JSON object".to_owned()]);
        };
        for key in fields.keys() {
            if !FIELDS.contains(&key.as_str()) {
                problems.add(&quoted(key), "unknown field");
            }
        }
        let name = match fields.get("name") {
            Some(Value::String(name)) if valid_name(name) => name.clone(),
            Some(_) => {
                problems.add(
                    "name",
                    format!("must be 1 to {MAX_NAME_CHARS} characters: letters, digits, space, _ . : / -"),
                );
                String::new()
            }
            None => {
                problems.add("name", "is required");
                String::new()
            }
        };
        let kind = match fields.get("kind") {
            Some(Value::String(text)) => Kind::parse(text),
            _ => None,
        };
        if kind.is_none() {
            problems.add("kind", format!("must be {}", Kind::CHOICES));
        }
        let kind = kind.unwrap_or(Kind::Count);
        let search = if kind.has_search() {
            search_field(fields, "search", &mut problems, kind == Kind::Absence)
        } else {
            forbid(fields, "search", kind, &mut problems);
            Search::default()
        };
        let (base_search, min_base_count) = if kind == Kind::Ratio {
            let base = search_field(fields, "base_search", &mut problems, true);
            let min =
                integer(fields, "min_base_count", 0, MAX_BASE_COUNT, &mut problems).unwrap_or(1);
            (base, min)
        } else {
            forbid(fields, "base_search", kind, &mut problems);
            forbid(fields, "min_base_count", kind, &mut problems);
            (Search::default(), 0)
        };
        let (op, threshold) = if kind.has_threshold() {
            let op = match fields.get("op") {
                None => Some(Op::Above),
                Some(Value::String(text)) => Op::parse(text),
                Some(_) => None,
            };
            if op.is_none() {
                problems.add("op", "must be >, >=, < or <=");
            }
            let threshold = match fields.get("threshold") {
                Some(Value::Number(n)) => n.as_f64().filter(|t| t.is_finite()),
                _ => None,
            };
            if threshold.is_none() {
                problems.add("threshold", "is required: a finite number");
            }
            (op.unwrap_or(Op::Above), threshold.unwrap_or(0.0))
        } else {
            forbid(fields, "op", kind, &mut problems);
            forbid(fields, "threshold", kind, &mut problems);
            (Op::AtLeast, 1.0)
        };
        let service = if kind.is_error_kind() {
            match fields.get("service") {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if !s.is_empty() && s.chars().count() <= MAX_SERVICE_CHARS =>
                {
                    Some(s.clone())
                }
                Some(_) => {
                    problems.add(
                        "service",
                        format!("must be a service name of 1 to {MAX_SERVICE_CHARS} characters"),
                    );
                    None
                }
            }
        } else {
            forbid(fields, "service", kind, &mut problems);
            None
        };
        let interval = duration(
            fields,
            "interval",
            MIN_INTERVAL,
            MAX_INTERVAL,
            &mut problems,
        )
        .unwrap_or(DEFAULT_INTERVAL);
        let window = match duration(fields, "window", MIN_INTERVAL, MAX_WINDOW, &mut problems) {
            Some(window) => window,
            None => {
                if !fields.contains_key("window") {
                    problems.add("window", "is required: a duration like 5m");
                }
                Duration::minutes(5)
            }
        };
        let hold = duration(fields, "for", Duration::zero(), MAX_HOLD, &mut problems)
            .unwrap_or_else(Duration::zero);
        let keep_firing_for = duration(
            fields,
            "keep_firing_for",
            Duration::zero(),
            MAX_HOLD,
            &mut problems,
        )
        .unwrap_or_else(Duration::zero);
        let repeat_interval = duration(
            fields,
            "repeat_interval",
            Duration::zero(),
            MAX_REPEAT_INTERVAL,
            &mut problems,
        )
        .unwrap_or(DEFAULT_REPEAT_INTERVAL);
        let group_by = match fields.get("group_by") {
            None | Some(Value::Null) => None,
            Some(_) if kind == Kind::Absence || kind.is_error_kind() => {
                problems.add(
                    "group_by",
                    format!("not for {} rules (their series are fixed)", kind.as_str()),
                );
                None
            }
            Some(Value::String(text)) if text == "service" => Some(GroupBy::Service),
            Some(Value::String(text)) if text.starts_with("meta.") => {
                let key = &text["meta.".len()..];
                match declared {
                    Some(keys) if !keys.iter().any(|k| k == key) => {
                        problems.add(
                            "group_by",
                            format!(
                                "meta.{} is not a declared metadata key (declared: {})",
                                crate::ingest::client_text::truncated(key, MAX_KEY_CHARS),
                                if keys.is_empty() {
                                    "none".to_owned()
                                } else {
                                    keys.join(", ")
                                }
                            ),
                        );
                        None
                    }
                    _ => Some(GroupBy::Meta(key.to_owned())),
                }
            }
            Some(_) => {
                problems.add(
                    "group_by",
                    "must be service or meta.KEY (a declared metadata key)",
                );
                None
            }
        };
        let max_series = integer(fields, "max_series", 1, MAX_SERIES, &mut problems)
            .unwrap_or(DEFAULT_MAX_SERIES);
        let labels = string_map(fields, "labels", MAX_LABEL_VALUE_CHARS, &mut problems);
        if labels.contains_key("alertname") {
            problems.add("labels.alertname", "is the rule's name; it cannot be set");
        }
        if let Some(group_by) = &group_by {
            if labels.contains_key(group_by.label()) {
                problems.add(
                    &format!("labels.{}", group_by.label()),
                    "is the label of each series (group_by); it cannot be set",
                );
            }
        }
        let annotations = string_map(
            fields,
            "annotations",
            MAX_ANNOTATION_VALUE_CHARS,
            &mut problems,
        );
        let channels = channel_names(fields, &mut problems);
        let enabled = match fields.get("enabled") {
            None => true,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                problems.add("enabled", "must be true or false");
                true
            }
        };
        if !problems.0.is_empty() {
            return Err(problems.0);
        }
        Ok(Rule {
            name,
            kind,
            search,
            base_search,
            min_base_count,
            op,
            threshold,
            service,
            interval,
            window,
            hold,
            keep_firing_for,
            repeat_interval,
            group_by,
            max_series,
            labels,
            annotations,
            channels,
            enabled,
        })
    }

    /// The stored form, which [`Rule::parse`] reads back to the same rule.
    /// The interval as the `alert_rules.interval_seconds` column holds it.
    pub fn interval_seconds(&self) -> i32 {
        i32::try_from(self.interval.num_seconds()).unwrap_or(i32::MAX)
    }

    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("name".into(), json!(self.name));
        map.insert("kind".into(), json!(self.kind.as_str()));
        if self.kind.has_search() {
            map.insert("search".into(), self.search.to_json());
        }
        if self.kind == Kind::Ratio {
            map.insert("base_search".into(), self.base_search.to_json());
            map.insert("min_base_count".into(), json!(self.min_base_count));
        }
        if self.kind.has_threshold() {
            map.insert("op".into(), json!(self.op.as_str()));
            map.insert("threshold".into(), json!(self.threshold));
        }
        if self.kind.is_error_kind() {
            map.insert("service".into(), json!(self.service));
        }
        map.insert("interval".into(), json!(show_duration(self.interval)));
        map.insert("window".into(), json!(show_duration(self.window)));
        map.insert("for".into(), json!(show_duration(self.hold)));
        map.insert(
            "keep_firing_for".into(),
            json!(show_duration(self.keep_firing_for)),
        );
        map.insert(
            "repeat_interval".into(),
            json!(show_duration(self.repeat_interval)),
        );
        if let Some(group_by) = &self.group_by {
            map.insert("group_by".into(), json!(group_by.text()));
        }
        map.insert("max_series".into(), json!(self.max_series));
        map.insert("labels".into(), json!(self.labels));
        map.insert("annotations".into(), json!(self.annotations));
        map.insert("channels".into(), json!(self.channels));
        map.insert("enabled".into(), json!(self.enabled));
        Value::Object(map)
    }
}

/// `30s`, `5m`, `2h`, `1d`: the largest unit that divides it.
pub fn show_duration(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    for (unit, width) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % width == 0 {
            return format!("{}{unit}", seconds / width);
        }
    }
    format!("{seconds}s")
}
