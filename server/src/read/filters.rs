//! Query filters, parsed once from the query string into a [`LogFilter`] that cannot be
//! invalid, and rendered as SQL conditions with bound parameters (never interpolated
//! text). It owns parameter names, their limits and their error messages; it never runs
//! a query and never knows about HTTP.
//!
//! Parameters (empty values count as absent, so a form can send every field):
//! - `service`: one or several, repeated or comma-separated.
//! - `level`: one or several; a level selects every spelling of its severity
//!   (`warn` selects WARN and WARNING). `min_level`: that severity and above.
//! - `since` / `until`: RFC 3339, `now`, or a relative age like `90s`, `15m`, `2h`, `7d`, `1w`.
//! - `q`: case-insensitive substring of the message (`%` and `_` match themselves).
//! - `meta.KEY=VALUE` (`meta.a.b=VALUE` for nested keys): metadata contains KEY with
//!   VALUE, where VALUE is read as JSON when it parses (also matching its text form, so
//!   `meta.user_id=42` finds both 42 and "42") and as a string otherwise.
//! - `request_id`: everything one request caused, in every process: entries whose
//!   metadata `request_id` is it, or (jobs it enqueued) whose `parent_request_id` is it
//!   -- the expression the `logs_request` index holds.
//! - `fingerprint`: one or several error fingerprints (entries of those error groups;
//!   the `logs_fingerprint` index).

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use log_ingestion_wire::Level;
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder};

use super::time_bounds;
use crate::storage::declared_indexes::{self, indexed_text, Scalar};

const MAX_SERVICES: usize = 100;
const MAX_FINGERPRINTS: usize = 100;
const MAX_FINGERPRINT_CHARS: usize = 64;
const MAX_SERVICE_CHARS: usize = 255;
const MAX_TEXT_CHARS: usize = 1_000;
const MAX_METADATA_FILTERS: usize = 20;
/// The gem keeps request ids to 255 bytes; Rails' X-Request-Id is at most 255 characters.
const MAX_REQUEST_ID_CHARS: usize = 255;
/// The request an entry belongs to: its own, else the one that enqueued its job. Written
/// exactly as in the `logs_request` index (migrations/), so the planner uses it.
const REQUEST_EXPRESSION: &str =
    "COALESCE(metadata->>'request_id', metadata->>'parent_request_id')";
const MAX_AGE: Duration = Duration::days(3_650);
/// Nesting no filter may exceed whatever the configuration says: the JSON decoder's own
/// limit, so no stored metadata is deeper. It keeps every value built here shallow
/// enough to drop, compare and serialize without exhausting a stack.
const MAX_NESTING: usize = 128;

/// The configured bounds on a query's user-controlled nesting.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// `meta.*` path segments plus the nesting of a JSON value: the metadata depth
    /// cap of the ingest side (`LOG_INGESTION_MAX_METADATA_DEPTH`), since nothing
    /// deeper can be stored.
    pub max_metadata_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_metadata_depth: crate::config::EntryLimits::default().max_metadata_depth,
        }
    }
}

/// Checks the shape of every `meta.*` pair against `limits` before anything is built
/// from them: the read API's guard runs it on the raw query string. Linear in the
/// query's length; refusals quote keys in part only.
pub fn check_shape(pairs: &[(String, String)], limits: &QueryLimits) -> Result<(), Vec<String>> {
    let max = limits.max_metadata_depth.min(MAX_NESTING);
    let problems: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let path = key.strip_prefix("meta.")?;
            metadata_nesting_problem(path, value, max)
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The problem with `meta.PATH=VALUE` nested deeper than `max` (path segments plus
/// the JSON nesting of the value), if it is.
fn metadata_nesting_problem(path: &str, value: &str, max: usize) -> Option<String> {
    let depth = path.bytes().filter(|b| *b == b'.').count() + 1 + json_nesting(value);
    (depth > max).then(|| {
        format!(
            "meta.{}: nested {depth} levels deep (path and value), at most {max} allowed",
            crate::ingest::client_text::truncated(
                path,
                crate::ingest::client_text::MAX_QUOTED_CHARS
            )
        )
    })
}

/// How deeply `text`'s brackets nest, strings skipped: the nesting JSON text would
/// have, found in one pass without parsing (and without recursion).
fn json_nesting(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The raw query string pairs of one request, consumed parameter by parameter so that
/// whatever is left at the end is an unknown parameter.
pub struct Params {
    pairs: Vec<(String, String)>,
    problems: Vec<String>,
}

impl Params {
    /// Pairs with a NUL character (which PostgreSQL text cannot hold) are set aside as
    /// problems here, so nothing downstream can send one to the database.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        let mut problems = Vec::new();
        let pairs = pairs
            .into_iter()
            .filter(|(key, value)| {
                let clean = !key.contains('\0') && !value.contains('\0');
                if !clean {
                    problems.push(format!(
                        "{}: must not contain NUL characters",
                        key.replace('\0', "\\0")
                    ));
                }
                clean
            })
            .collect();
        Params { pairs, problems }
    }

    /// Records a problem with the request.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// Every non-empty value of `name`, repeated or comma-separated.
    pub fn many(&mut self, name: &str) -> Vec<String> {
        self.take(name)
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The one non-empty value of `name`, if given; a problem if given twice.
    pub fn one(&mut self, name: &str) -> Option<String> {
        let mut values: Vec<String> = self
            .take(name)
            .into_iter()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .collect();
        if values.len() > 1 {
            self.problem(format!("{name}: give it at most once"));
        }
        values.pop()
    }

    /// `one(name)` parsed as a whole number within `min..=max`.
    pub fn number(&mut self, name: &str, min: i64, max: i64) -> Option<i64> {
        let text = self.one(name)?;
        match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(format!(
                    "{name}: must be a whole number from {min} to {max} (got {text:?})"
                ));
                None
            }
        }
    }

    fn take(&mut self, name: &str) -> Vec<String> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _)| key == name);
        self.pairs = kept;
        taken.into_iter().map(|(_, value)| value).collect()
    }

    fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, kept) = std::mem::take(&mut self.pairs)
            .into_iter()
            .partition(|(key, _)| key.starts_with(prefix));
        self.pairs = kept;
        taken
            .into_iter()
            .map(|(key, value)| (key[prefix.len()..].to_owned(), value))
            .collect()
    }

    /// Ends parsing: `Err` with every problem (unknown parameters included) if any.
    pub fn finish(mut self) -> Result<(), Vec<String>> {
        let mut unknown: Vec<String> = self.pairs.iter().map(|(key, _)| key.clone()).collect();
        unknown.dedup();
        for key in unknown {
            self.problems.push(format!("{key}: unknown parameter"));
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems)
        }
    }
}

/// What to select, valid by construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub services: Vec<String>,
    /// Stored level spellings to match; `None` means every level.
    pub levels: Option<Vec<&'static str>>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// A ready ILIKE pattern (`%escaped text%`).
    pub message_pattern: Option<String>,
    /// Each entry: the metadata must contain at least one of these documents.
    pub metadata: Vec<Vec<Value>>,
    /// Entries of this request and of the jobs it enqueued.
    pub request_id: Option<String>,
    /// Error entries with one of these fingerprints.
    pub fingerprints: Vec<String>,
    /// `(key, texts)` of `meta.KEY=VALUE` filters on declared keys
    /// (`storage::declared_indexes`): also written as `meta_KEY = ANY(texts)` (the
    /// indexed texts of the filter's alternatives), which the key's index and
    /// TimescaleDB's bloom filters answer. The containment test above stays and decides;
    /// the column only narrows, and a row an alternative contains has one of these texts
    /// unless its value has no indexed text but equals an integer alternative as a
    /// number (a stored `42.0` for `meta.k=42`, docs/server.md).
    pub indexed_metadata: Vec<(String, Vec<String>)>,
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
        LogFilter {
            services,
            levels,
            since,
            until,
            message_pattern,
            metadata,
            request_id,
            fingerprints,
            indexed_metadata: Vec::new(),
        }
    }

    /// The same filter with its `meta.KEY=VALUE` filters on a key in `keys` also written
    /// for that key's column. Only one-segment keys whose value has an indexed text (a
    /// string of 1 to 200 bytes, a boolean, an integer). (A stored `42.0` matches
    /// `meta.user_id=42` by containment but has no indexed text: declared keys find
    /// integers stored as integers.)
    pub fn with_metadata_indexes(mut self, keys: &[String]) -> Self {
        if keys.is_empty() {
            return self;
        }
        for alternatives in &self.metadata {
            if let Some(indexed) = indexed_alternatives(alternatives, keys) {
                self.indexed_metadata.push(indexed);
            }
        }
        self
    }

    /// Appends ` AND ...` for every filter, time bounds included.
    pub fn push_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        self.push_time_conditions(sql);
        self.push_content_conditions(sql);
    }

    /// Appends ` AND ...` for the time bounds only.
    pub fn push_time_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        if let Some(since) = self.since {
            sql.push(" AND timestamp >= ").push_bind(since);
        }
        if let Some(until) = self.until {
            sql.push(" AND timestamp < ").push_bind(until);
        }
    }

    /// Appends ` AND ...` for everything but the time bounds.
    pub fn push_content_conditions(&self, sql: &mut QueryBuilder<'_, Postgres>) {
        // A single value is written as `=` so the planner can walk the
        // (service, timestamp DESC) index in order; several use `= ANY`.
        match self.services.as_slice() {
            [] => {}
            [one] => {
                sql.push(" AND service = ").push_bind(one.clone());
            }
            many => {
                sql.push(" AND service = ANY(")
                    .push_bind(many.to_vec())
                    .push(")");
            }
        }
        match self.levels.as_deref() {
            None => {}
            Some([one]) => {
                sql.push(" AND level = ").push_bind(one.to_string());
            }
            Some(many) => {
                let levels: Vec<String> = many.iter().map(|l| l.to_string()).collect();
                sql.push(" AND level = ANY(").push_bind(levels).push(")");
            }
        }
        if let Some(pattern) = &self.message_pattern {
            sql.push(" AND message ILIKE ").push_bind(pattern.clone());
        }
        if let Some(request_id) = &self.request_id {
            sql.push(" AND ")
                .push(REQUEST_EXPRESSION)
                .push(" = ")
                .push_bind(request_id.clone());
        }
        match self.fingerprints.as_slice() {
            [] => {}
            [one] => {
                sql.push(" AND fingerprint = ").push_bind(one.clone());
            }
            many => {
                sql.push(" AND fingerprint = ANY(")
                    .push_bind(many.to_vec())
                    .push(")");
            }
        }
        for (key, texts) in &self.indexed_metadata {
            sql.push(" AND ").push(declared_indexes::column(key));
            match texts.as_slice() {
                [one] => sql.push(" = ").push_bind(one.clone()),
                many => sql.push(" = ANY(").push_bind(many.to_vec()).push(")"),
            };
        }
        for alternatives in &self.metadata {
            sql.push(" AND (");
            for (i, document) in alternatives.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push("metadata @> ")
                    .push_bind(Json(document.clone()))
                    .push("::jsonb");
            }
            sql.push(")");
        }
    }
}

/// The declared key and the indexed texts of one `meta.KEY=VALUE` filter's
/// alternatives (the value as JSON, and as text), or `None` when the key is not declared
/// or one alternative has no indexed text: the column must not exclude a row any
/// alternative would match.
fn indexed_alternatives(alternatives: &[Value], keys: &[String]) -> Option<(String, Vec<String>)> {
    let mut declared_key: Option<&String> = None;
    let mut texts: Vec<String> = Vec::new();
    for alternative in alternatives {
        let Value::Object(document) = alternative else {
            return None;
        };
        let (key, value) = document.iter().next()?;
        if document.len() != 1
            || !keys.contains(key)
            || declared_indexes::key_problem(key).is_some()
            || declared_key.is_some_and(|first| first != key)
        {
            return None;
        }
        declared_key = Some(key);
        let number;
        let scalar = match value {
            Value::String(text) => Scalar::Text(Cow::Borrowed(text)),
            Value::Bool(flag) => Scalar::Bool(*flag),
            Value::Number(n) => {
                number = n.to_string();
                Scalar::Number(Cow::Borrowed(&number))
            }
            _ => return None,
        };
        let text = indexed_text(scalar)?.into_owned();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    Some((declared_key?.clone(), texts))
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
    fn metadata_paths_and_values_are_held_to_the_depth_cap_before_parsing() {
        let limits = QueryLimits {
            max_metadata_depth: 3,
        };
        let pair = |key: &str, value: &str| vec![(key.to_owned(), value.to_owned())];
        assert!(check_shape(&pair("meta.a.b.c", "1"), &limits).is_ok());
        assert!(check_shape(&pair("meta.a.b", "{\"c\":1}"), &limits).is_ok());
        assert!(check_shape(&pair("meta.a", "\"[[[[\""), &limits).is_ok());
        let deep_path = format!("meta.{}", vec!["a"; 30_000].join("."));
        let problems = check_shape(&pair(&deep_path, "1"), &limits).unwrap_err();
        assert!(problems[0].contains("nested 30000 levels"), "{problems:?}");
        assert!(problems[0].len() < 200, "{problems:?}");
        assert!(check_shape(&pair("meta.a.b", "[[1]]"), &limits).is_err());
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
