//! Alert rules as values that can only exist valid: [`Rule::parse`] reads a rule from
//! JSON (an API body, or an entry of the rules file turned into JSON) and refuses it
//! with one problem per bad field, named by its path (`window: ...`,
//! `search.level: ...`). It owns the fields, their defaults and every bound (sizes,
//! counts, durations) and the stored form ([`Rule::to_json`]). It never touches the
//! database: channel names are checked against `alert_channels` by the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use crate::read::filters::{parse_age, LogFilter, Params};

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

    fn has_search(self) -> bool {
        matches!(self, Kind::Count | Kind::Ratio | Kind::Absence)
    }

    fn has_threshold(self) -> bool {
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

    fn text(&self) -> String {
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

    fn to_json(&self) -> Value {
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

/// Collects the problems of one body, each prefixed with its field's path.
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.0.push(format!("{field}: {problem}"));
    }
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

fn valid_name(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&count)
        && name.trim() == name
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '-'))
}

/// A key quoted for a problem, cut short.
fn quoted(key: &str) -> String {
    format!(
        "{:?}",
        crate::ingest::client_text::truncated(key, MAX_KEY_CHARS)
    )
}

fn forbid(fields: &Map<String, Value>, field: &str, kind: Kind, problems: &mut Problems) {
    if fields.get(field).is_some_and(|v| !v.is_null()) {
        problems.add(field, format!("not for {} rules", kind.as_str()));
    }
}

fn integer(
    fields: &Map<String, Value>,
    field: &str,
    min: i64,
    max: i64,
    problems: &mut Problems,
) -> Option<i64> {
    let value = fields.get(field)?;
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            problems.add(field, format!("must be a whole number from {min} to {max}"));
            None
        }
    }
}

/// A duration field (`30s`, `5m`, `2h`, `1d`, `1w`; `0s` where zero is allowed).
fn duration(
    fields: &Map<String, Value>,
    field: &str,
    min: Duration,
    max: Duration,
    problems: &mut Problems,
) -> Option<Duration> {
    let value = fields.get(field)?;
    let parsed = value.as_str().and_then(|text| {
        if text == "0" {
            Some(Duration::zero())
        } else {
            parse_age(text)
        }
    });
    match parsed {
        Some(d) if d >= min && d <= max => Some(d),
        _ => {
            problems.add(
                field,
                format!(
                    "must be a duration like 30s, 5m, 2h or 1d, from {} to {}",
                    show_duration(min),
                    show_duration(max)
                ),
            );
            None
        }
    }
}

fn search_field(
    fields: &Map<String, Value>,
    field: &str,
    problems: &mut Problems,
    required: bool,
) -> Search {
    let Some(value) = fields.get(field) else {
        if required {
            problems.add(
                field,
                "is required: filter parameters as GET /api/v1/logs takes them",
            );
        }
        return Search::default();
    };
    let Some(object) = value.as_object() else {
        problems.add(
            field,
            "must be an object of GET /api/v1/logs filter parameters",
        );
        return Search::default();
    };
    if object.len() > MAX_SEARCH_PARAMS {
        problems.add(field, format!("at most {MAX_SEARCH_PARAMS} parameters"));
        return Search::default();
    }
    let mut pairs = Vec::new();
    for (key, value) in object {
        let path = format!(
            "{field}.{}",
            crate::ingest::client_text::truncated(key, MAX_KEY_CHARS)
        );
        if NOT_IN_A_SEARCH.contains(&key.as_str()) {
            problems.add(
                &path,
                "not in a rule's search (the rule's window sets the time range)",
            );
            continue;
        }
        let values: Vec<String> = match value {
            Value::String(text) => vec![text.clone()],
            Value::Number(n) => vec![n.to_string()],
            Value::Bool(b) => vec![b.to_string()],
            Value::Array(items) if items.len() <= MAX_SEARCH_PARAMS => items
                .iter()
                .filter_map(|item| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect(),
            _ => {
                problems.add(
                    &path,
                    "must be a string, a number, a boolean, or a list of them",
                );
                continue;
            }
        };
        if values
            .iter()
            .any(|v| v.chars().count() > MAX_SEARCH_VALUE_CHARS)
        {
            problems.add(
                &path,
                format!("a value has at most {MAX_SEARCH_VALUE_CHARS} characters"),
            );
            continue;
        }
        pairs.extend(values.into_iter().map(|v| (key.clone(), v)));
    }
    let search = Search { pairs };
    // The read side's parser decides, with its own messages.
    let now = Utc::now();
    if let Err(problem) = search.filter(now - Duration::minutes(1), now) {
        for one in problem.split("; ") {
            problems.add(field, one);
        }
    }
    search
}

/// `labels` or `annotations`: an object of string values with identifier keys.
fn string_map(
    fields: &Map<String, Value>,
    field: &str,
    max_value_chars: usize,
    problems: &mut Problems,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let Some(value) = fields.get(field) else {
        return map;
    };
    let Some(object) = value.as_object() else {
        problems.add(field, "must be an object of strings");
        return map;
    };
    if object.len() > MAX_LABELS {
        problems.add(field, format!("at most {MAX_LABELS} entries"));
        return map;
    }
    for (key, value) in object {
        let valid_key = key.chars().count() <= MAX_KEY_CHARS
            && key
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            problems.add(
                &format!("{field}.{}", quoted(key)),
                format!(
                    "a key is 1 to {MAX_KEY_CHARS} letters, digits or _, not starting with a digit"
                ),
            );
            continue;
        }
        match value {
            Value::String(text)
                if text.chars().count() <= max_value_chars && !text.contains('\0') =>
            {
                map.insert(key.clone(), text.clone());
            }
            _ => problems.add(
                &format!("{field}.{key}"),
                format!("must be a string of at most {max_value_chars} characters"),
            ),
        }
    }
    map
}

fn channel_names(fields: &Map<String, Value>, problems: &mut Problems) -> Vec<String> {
    let Some(value) = fields.get("channels") else {
        return Vec::new();
    };
    let Some(items) = value.as_array() else {
        problems.add("channels", "must be a list of channel names");
        return Vec::new();
    };
    if items.len() > MAX_CHANNELS {
        problems.add("channels", format!("at most {MAX_CHANNELS} channels"));
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(name) if valid_channel_name(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
            _ => problems.add(
                "channels",
                format!(
                    "{} is not a channel name (1 to {MAX_CHANNEL_CHARS} of a-z, 0-9, _ and -)",
                    crate::ingest::client_text::truncated(&item.to_string(), MAX_KEY_CHARS)
                ),
            ),
        }
    }
    names
}

/// `[a-z0-9_-]{1,64}`, as channels are named.
pub fn valid_channel_name(name: &str) -> bool {
    (1..=MAX_CHANNEL_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout_errors() -> Value {
        json!({
            "name": "checkout errors",
            "kind": "count",
            "search": {"service": "checkout", "min_level": "error"},
            "op": ">",
            "threshold": 10,
            "window": "5m",
            "for": "2m",
            "labels": {"team": "payments"},
            "annotations": {"summary": "checkout is failing"},
            "channels": ["ops-webhook"],
        })
    }

    #[test]
    fn a_count_rule_reads_with_its_defaults_and_round_trips() {
        let rule = Rule::parse(&checkout_errors(), Some(&[])).unwrap();
        assert_eq!(rule.kind, Kind::Count);
        assert_eq!(rule.interval, Duration::minutes(1));
        assert_eq!(rule.hold, Duration::minutes(2));
        assert_eq!(rule.repeat_interval, Duration::hours(4));
        assert_eq!(rule.max_series, DEFAULT_MAX_SERIES);
        assert_eq!(Rule::parse(&rule.to_json(), None).unwrap(), rule);
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut body = checkout_errors();
        body["window"] = json!("5 minutes");
        body["threshold"] = json!("ten");
        body["search"]["level"] = json!("loud");
        body["search"]["since"] = json!("1h");
        body["channels"] = json!(["Ops Webhook"]);
        body["labels"]["alertname"] = json!("x");
        body["colour"] = json!("red");
        let problems = Rule::parse(&body, Some(&[])).unwrap_err();
        for field in [
            "window:",
            "threshold:",
            "search: level:",
            "search.since:",
            "channels:",
            "labels.alertname:",
            "\"colour\": unknown field",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(field)),
                "{field} in {problems:?}"
            );
        }
    }

    #[test]
    fn kinds_refuse_the_fields_they_do_not_use() {
        let problems = Rule::parse(
            &json!({"name": "n", "kind": "new_error", "window": "5m", "threshold": 3,
                    "search": {"service": "a"}, "group_by": "service"}),
            Some(&[]),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let ratio = Rule::parse(
            &json!({"name": "n", "kind": "ratio", "window": "5m", "threshold": 0.1,
                    "search": {"level": "error"}}),
            Some(&[]),
        )
        .unwrap_err();
        assert!(
            ratio.iter().any(|p| p.starts_with("base_search:")),
            "{ratio:?}"
        );
    }

    #[test]
    fn group_by_a_metadata_key_must_be_declared() {
        let mut body = checkout_errors();
        body["group_by"] = json!("meta.tenant");
        let problems = Rule::parse(&body, Some(&["region".to_owned()])).unwrap_err();
        assert!(
            problems[0].starts_with("group_by: meta.tenant is not a declared"),
            "{problems:?}"
        );
        let rule = Rule::parse(&body, Some(&["tenant".to_owned()])).unwrap();
        assert_eq!(rule.group_by, Some(GroupBy::Meta("tenant".to_owned())));
    }

    #[test]
    fn sizes_are_bounded() {
        let mut body = checkout_errors();
        body["name"] = json!("n".repeat(MAX_NAME_CHARS + 1));
        body["annotations"]["summary"] = json!("s".repeat(MAX_ANNOTATION_VALUE_CHARS + 1));
        body["channels"] = json!((0..=MAX_CHANNELS)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>());
        body["max_series"] = json!(MAX_SERIES + 1);
        body["interval"] = json!("2d");
        let problems = Rule::parse(&body, Some(&[])).unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
    }
}
