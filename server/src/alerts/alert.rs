//! The channel-neutral alert each outbox row carries (`alert_notifications.alert`,
//! docs/alerts.md "The alert"): Alertmanager's alert fields (status, labels,
//! annotations, startsAt, endsAt, generatorURL, fingerprint) plus the measured value,
//! the rule and whether it is a reminder. It owns that shape, the series fingerprint and
//! the explorer link; the delivery side formats it for each channel kind. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::rules::Rule;

/// Alertmanager's "not ended" time.
pub const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

/// What one notification says.
pub struct AlertFacts<'a> {
    pub rule_id: i64,
    pub rule: &'a Rule,
    pub series_key: &'a str,
    pub series_labels: &'a BTreeMap<String, String>,
    /// `firing` or `resolved`.
    pub resolved: bool,
    pub reminder: bool,
    pub starts_at: DateTime<Utc>,
    /// The resolution time; `None` while firing.
    pub ends_at: Option<DateTime<Utc>>,
    /// The end of the window the value was measured over.
    pub window_end: DateTime<Utc>,
    pub value: f64,
    /// The explorer's base URL, without a trailing slash.
    pub external_url: &'a str,
}

/// 16 lowercase hex digits, stable per (rule id, series key).
pub fn fingerprint(rule_id: i64, series_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule_id.to_be_bytes());
    hasher.update(series_key.as_bytes());
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The alert as the outbox stores it.
pub fn build(facts: &AlertFacts<'_>) -> Value {
    let mut labels: BTreeMap<&str, &str> = BTreeMap::new();
    labels.insert("alertname", &facts.rule.name);
    for (key, value) in &facts.rule.labels {
        labels.insert(key, value);
    }
    for (key, value) in facts.series_labels {
        labels.insert(key, value);
    }
    json!({
        "status": if facts.resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": facts.rule.annotations,
        "startsAt": time(facts.starts_at),
        "endsAt": facts.ends_at.map(time).unwrap_or_else(|| NOT_ENDED.to_owned()),
        "generatorURL": generator_url(facts),
        "fingerprint": fingerprint(facts.rule_id, facts.series_key),
        "value": if facts.value.is_finite() { json!(facts.value) } else { Value::Null },
        "rule": {"id": facts.rule_id, "name": facts.rule.name, "kind": facts.rule.kind.as_str()},
        "reminder": facts.reminder,
    })
}

/// The explorer over the firing window (from one window before the series started
/// firing to the end of the window measured): the rule's search, narrowed to the
/// series; error kinds link to the Errors page for the group's fingerprint.
fn generator_url(facts: &AlertFacts<'_>) -> String {
    let since = facts.starts_at - facts.rule.window;
    let until = facts
        .ends_at
        .unwrap_or(facts.window_end)
        .max(facts.window_end);
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let path = if facts.rule.kind.is_error_kind() {
        if let Some(service) = facts.series_labels.get("service") {
            pairs.push(("service", service));
        }
        if let Some(fingerprint) = facts.series_labels.get("fingerprint") {
            pairs.push(("q", fingerprint));
        }
        "/errors"
    } else {
        let per_service = facts.rule.group_by == Some(super::rules::GroupBy::Service);
        for (key, value) in &facts.rule.search.pairs {
            if !(per_service && key == "service") {
                pairs.push((key, value));
            }
        }
        if per_service {
            if let Some(service) = facts.series_labels.get("service") {
                pairs.push(("service", service));
            }
        }
        "/"
    };
    let mut query: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect();
    if let Some(super::rules::GroupBy::Meta(key)) = &facts.rule.group_by {
        if let Some(value) = facts.series_labels.get(key) {
            query.push(format!("meta.{}={}", encode(key), encode(value)));
        }
    }
    query.push(format!("since={}", encode(&time(since))));
    query.push(format!("until={}", encode(&time(until))));
    format!("{}{path}?{}", facts.external_url, query.join("&"))
}

/// Percent-encoding of a query component (RFC 3986 unreserved characters kept).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_has_the_alertmanager_fields_and_a_stable_fingerprint() {
        let rule = Rule::parse(
            &json!({"name": "checkout errors", "kind": "count", "window": "5m", "threshold": 10,
                    "search": {"service": "checkout", "level": "error"},
                    "labels": {"team": "payments"}, "annotations": {"summary": "failing"},
                    "group_by": "service"}),
            Some(&[]),
        )
        .unwrap();
        let labels = BTreeMap::from([("service".to_owned(), "checkout".to_owned())]);
        let start = DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let alert = build(&AlertFacts {
            rule_id: 7,
            rule: &rule,
            series_key: "service=checkout",
            series_labels: &labels,
            resolved: false,
            reminder: false,
            starts_at: start,
            ends_at: None,
            window_end: start,
            value: 12.0,
            external_url: "https://logs.example.com",
        });
        assert_eq!(alert["status"], "firing");
        assert_eq!(alert["labels"]["alertname"], "checkout errors");
        assert_eq!(alert["labels"]["service"], "checkout");
        assert_eq!(alert["labels"]["team"], "payments");
        assert_eq!(alert["endsAt"], NOT_ENDED);
        assert_eq!(alert["startsAt"], "2026-01-01T10:00:00Z");
        assert_eq!(alert["value"], 12.0);
        let fp = alert["fingerprint"].as_str().unwrap();
        assert_eq!(fp.len(), 16);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(fp, fingerprint(7, "service=checkout"));
        assert_ne!(fp, fingerprint(8, "service=checkout"));
        assert_eq!(
            alert["generatorURL"],
            "https://logs.example.com/?level=error&service=checkout&since=2026-01-01T09%3A55%3A00Z&until=2026-01-01T10%3A00%3A00Z"
        );
    }
}
