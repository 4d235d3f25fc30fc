//! Parameters to a [`LogFilter`]: each parameter's name, limit and error message.

use chrono::{DateTime, Duration, Utc};
use log_ingestion_wire::Level;
use serde_json::{Map, Value};

use super::shape::{metadata_nesting_problem, MAX_NESTING};
use super::{LogFilter, Params};
use crate::read::time_bounds;
use crate::storage::trace_fields::{self, SPAN_ID_DIGITS, TRACE_ID_DIGITS};

const MAX_SERVICES: usize = 100;
const MAX_FINGERPRINTS: usize = 100;
const MAX_FINGERPRINT_CHARS: usize = 64;
const MAX_SERVICE_CHARS: usize = 255;
const MAX_TEXT_CHARS: usize = 1_000;
const MAX_METADATA_FILTERS: usize = 20;
/// The gem keeps request ids to 255 bytes; Rails' X-Request-Id is at most 255 characters.
const MAX_REQUEST_ID_CHARS: usize = 255;
const MAX_AGE: Duration = Duration::days(3_650);

/// The id `name` names, lowercased: `digits` hex digits, or a problem.
fn parse_id(params: &mut Params, name: &str, digits: usize) -> Option<String> {
    let id = params.one(name)?.to_ascii_lowercase();
    if trace_fields::is_id(&id, digits) {
        Some(id)
    } else {
        params.problem(format!("{name}: must be {digits} hexadecimal digits"));
        None
    }
}

impl LogFilter {
    /// Takes the filter parameters out of `params`, recording problems there.
    pub fn parse(params: &mut Params, now: DateTime<Utc>) -> LogFilter {
        let services = parse_services(params);
        let levels = parse_levels(params);
        let since = params
            .one("since")
            .and_then(|text| parse_time("since", &text, now, params));
        let until = params
            .one("until")
            .and_then(|text| parse_time("until", &text, now, params));
        if let (Some(since), Some(until)) = (since, until) {
            if since >= until {
                params.problem("since: must be earlier than until");
            }
        }
        let message_pattern = params.one("q").and_then(|text| {
            if text.chars().count() > MAX_TEXT_CHARS {
                params.problem(format!("q: at most {MAX_TEXT_CHARS} characters"));
                None
            } else {
                Some(format!("%{}%", escape_like(&text)))
            }
        });
        let metadata = parse_metadata(params);
        let request_id = params.one("request_id").and_then(|id| {
            if id.chars().count() > MAX_REQUEST_ID_CHARS {
                params.problem(format!(
                    "request_id: at most {MAX_REQUEST_ID_CHARS} characters"
                ));
                None
            } else {
                Some(id)
            }
        });
        let fingerprints = parse_fingerprints(params);
        let trace_id = parse_id(params, "trace_id", TRACE_ID_DIGITS);
        let span_id = parse_id(params, "span_id", SPAN_ID_DIGITS);
        LogFilter {
            services,
            levels,
            since,
            until,
            message_pattern,
            metadata,
            request_id,
            fingerprints,
            trace_id,
            span_id,
            indexed_metadata: Vec::new(),
        }
    }
}

pub(crate) fn parse_services(params: &mut Params) -> Vec<String> {
    let mut services = params.many("service");
    services.sort();
    services.dedup();
    if services.len() > MAX_SERVICES {
        params.problem(format!("service: at most {MAX_SERVICES} services"));
        services.truncate(MAX_SERVICES);
    }
    if services
        .iter()
        .any(|s| s.chars().count() > MAX_SERVICE_CHARS)
    {
        params.problem(format!(
            "service: a service name has at most {MAX_SERVICE_CHARS} characters"
        ));
    }
    services
}

fn parse_fingerprints(params: &mut Params) -> Vec<String> {
    let mut fingerprints = params.many("fingerprint");
    fingerprints.sort();
    fingerprints.dedup();
    if fingerprints.len() > MAX_FINGERPRINTS {
        params.problem(format!(
            "fingerprint: at most {MAX_FINGERPRINTS} fingerprints"
        ));
        fingerprints.truncate(MAX_FINGERPRINTS);
    }
    if fingerprints
        .iter()
        .any(|f| f.chars().count() > MAX_FINGERPRINT_CHARS)
    {
        params.problem(format!(
            "fingerprint: a fingerprint has at most {MAX_FINGERPRINT_CHARS} characters"
        ));
        fingerprints.clear();
    }
    fingerprints
}

fn parse_levels(params: &mut Params) -> Option<Vec<&'static str>> {
    let mut severities: Option<Vec<u8>> = None;
    let named = params.many("level");
    if !named.is_empty() {
        let mut chosen = Vec::new();
        for name in named {
            match name.parse::<Level>() {
                Ok(level) => chosen.push(level.severity()),
                Err(error) => params.problem(format!("level: {error}")),
            }
        }
        severities = Some(chosen);
    }
    if let Some(name) = params.one("min_level") {
        match name.parse::<Level>() {
            Ok(min) => {
                let at_least: Vec<u8> = Level::ALL
                    .iter()
                    .map(|l| l.severity())
                    .filter(|s| *s >= min.severity())
                    .collect();
                severities = Some(match severities {
                    None => at_least,
                    Some(chosen) => chosen
                        .into_iter()
                        .filter(|s| at_least.contains(s))
                        .collect(),
                });
            }
            Err(error) => params.problem(format!("min_level: {error}")),
        }
    }
    severities.map(|severities| {
        Level::ALL
            .into_iter()
            .filter(|level| severities.contains(&level.severity()))
            .map(Level::as_str)
            .collect()
    })
}

/// RFC 3339, `now`, or an age before `now` like `15m`.
pub(crate) fn parse_time(
    name: &str,
    text: &str,
    now: DateTime<Utc>,
    params: &mut Params,
) -> Option<DateTime<Utc>> {
    if text.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    let time = DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
        .or_else(|| parse_age(text).and_then(|age| now.checked_sub_signed(age)));
    match time {
        Some(time) if time_bounds::contains(time) => Some(time),
        Some(_) => {
            params.problem(format!(
                "{name}: must be {} (got {text:?})",
                time_bounds::RANGE_TEXT
            ));
            None
        }
        None => {
            params.problem(format!(
                "{name}: must be RFC 3339 (2024-01-01T12:00:00Z), now, or an age like 30s, 15m, 2h, 7d, 1w up to 3650d (got {text:?})"
            ));
            None
        }
    }
}

/// `90s`, `15m`, `2h`, `7d`, `1w`; at most ten years.
pub fn parse_age(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let amount: i64 = digits.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let age = Duration::seconds(amount.checked_mul(seconds)?);
    (age <= MAX_AGE).then_some(age)
}

/// Escapes LIKE's wildcards and its escape character (backslash).
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn parse_metadata(params: &mut Params) -> Vec<Vec<Value>> {
    let pairs = params.take_prefixed("meta.");
    if pairs.len() > MAX_METADATA_FILTERS {
        params.problem(format!(
            "meta.*: at most {MAX_METADATA_FILTERS} metadata filters"
        ));
        return Vec::new();
    }
    let mut filters = Vec::new();
    for (key, value) in pairs {
        // The read API's guard has applied the configured cap already; this one keeps
        // the values built below shallow whoever calls it.
        if let Some(problem) = metadata_nesting_problem(&key, &value, MAX_NESTING) {
            params.problem(problem);
            continue;
        }
        let path: Vec<&str> = key.split('.').collect();
        if path.iter().any(|segment| segment.is_empty()) {
            params.problem(format!(
                "meta.{key}: the key must be meta.NAME or meta.NAME.NESTED"
            ));
            continue;
        }
        let mut alternatives = Vec::new();
        match serde_json::from_str::<Value>(&value) {
            Ok(parsed) if contains_nul(&parsed) => {
                params.problem(format!("meta.{key}: must not contain NUL characters"));
                continue;
            }
            Ok(Value::String(text)) => alternatives.push(Value::String(text)),
            Ok(parsed) => {
                alternatives.push(parsed);
                alternatives.push(Value::String(value.clone()));
            }
            Err(_) => alternatives.push(Value::String(value.clone())),
        }
        filters.push(
            alternatives
                .into_iter()
                .map(|leaf| nest(&path, leaf))
                .collect(),
        );
    }
    filters
}

/// Whether any string or key in `value` holds NUL; iterative, so no nesting can
/// exhaust the stack.
fn contains_nul(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return true,
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains('\0') {
                        return true;
                    }
                    pending.push(item);
                }
            }
            _ => {}
        }
    }
    false
}

/// `["a", "b"]`, `1` -> `{"a": {"b": 1}}`.
fn nest(path: &[&str], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, key| {
        let mut object = Map::new();
        object.insert((*key).to_owned(), inner);
        Value::Object(object)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(query: &[(&str, &str)]) -> Params {
        Params::new(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn services_come_repeated_or_comma_separated() {
        let mut p = params(&[
            ("service", "api,worker"),
            ("service", "web"),
            ("service", ""),
        ]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(filter.services, ["api", "web", "worker"]);
        assert!(p.finish().is_ok());
    }

    #[test]
    fn a_level_selects_every_spelling_of_its_severity() {
        let mut p = params(&[("level", "warn")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(filter.levels, Some(vec!["WARN", "WARNING"]));
    }

    #[test]
    fn min_level_selects_that_severity_and_above() {
        let mut p = params(&[("min_level", "error")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(filter.levels, Some(vec!["ERROR", "FATAL", "CRITICAL"]));
    }

    #[test]
    fn relative_times_count_back_from_now() {
        let mut p = params(&[("since", "15m"), ("until", "now")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(filter.since, Some(now() - Duration::minutes(15)));
        assert_eq!(filter.until, Some(now()));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut p = params(&[
            ("since", "yesterday"),
            ("level", "verbose"),
            ("colour", "red"),
        ]);
        LogFilter::parse(&mut p, now());
        let problems = p.finish().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("level:"));
        assert!(problems.iter().any(|p| p.starts_with("colour: unknown")));
    }

    #[test]
    fn like_wildcards_match_themselves() {
        let mut p = params(&[("q", "100%_done\\")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(
            filter.message_pattern.as_deref(),
            Some("%100\\%\\_done\\\\%")
        );
    }

    #[test]
    fn metadata_values_are_json_or_text() {
        let mut p = params(&[("meta.user_id", "42"), ("meta.http.path", "/a b")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(
            filter.metadata,
            vec![
                vec![json!({"user_id": 42}), json!({"user_id": "42"})],
                vec![json!({"http": {"path": "/a b"}})],
            ]
        );
    }

    #[test]
    fn nul_characters_never_reach_the_database() {
        let mut p = params(&[("q", "a\0b"), ("meta.k", "\"\\u0000\"")]);
        let filter = LogFilter::parse(&mut p, now());
        assert_eq!(filter.message_pattern, None);
        assert!(filter.metadata.is_empty());
        assert_eq!(p.finish().unwrap_err().len(), 2);
    }

    #[test]
    fn a_deep_path_never_builds_a_deep_value_even_without_the_guard() {
        let deep_path = format!("meta.{}", vec!["a"; 30_000].join("."));
        let mut p = params(&[(deep_path.as_str(), "1")]);
        let filter = LogFilter::parse(&mut p, now());
        assert!(filter.metadata.is_empty());
        assert_eq!(p.finish().unwrap_err().len(), 1);
    }

    #[test]
    fn ages_beyond_ten_years_are_refused() {
        assert_eq!(parse_age("3651d"), None);
        assert_eq!(parse_age("2h"), Some(Duration::hours(2)));
        assert_eq!(parse_age("h"), None);
    }
}
