//! The bodies sent to channels: one notification (an outbox row and its channel-neutral
//! `alert`, as evaluation wrote it) rendered as Alertmanager's webhook message
//! (`alertmanager`) or a Slack incoming-webhook message (`slack`). Pure functions of the
//! row: no I/O, no clock, no secret (a channel's URL and secret never reach a body).

pub mod alertmanager;
pub mod slack;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What the row's `alert` says, read leniently: a label or annotation that is not a
/// string is shown as its JSON text, a null one is left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub firing: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// `None` while firing (Alertmanager's zero time, `0001-01-01T00:00:00Z`).
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    pub fingerprint: String,
    pub value: Option<f64>,
    pub reminder: bool,
}

/// The `alert` column is not in the form evaluation writes.
#[derive(Debug, thiserror::Error)]
#[error("the alert is not in the expected form: {0}")]
pub struct AlertFormError(String);

#[derive(Deserialize)]
struct AlertJson {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, Value>,
    #[serde(default)]
    annotations: BTreeMap<String, Value>,
    #[serde(rename = "startsAt")]
    starts_at: DateTime<Utc>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(rename = "generatorURL", default)]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    reminder: bool,
}

/// Alertmanager's "not set" time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn texts(map: BTreeMap<String, Value>) -> BTreeMap<String, String> {
    map.into_iter()
        .filter_map(|(key, value)| match value {
            Value::Null => None,
            Value::String(text) => Some((key, text)),
            other => Some((key, other.to_string())),
        })
        .collect()
}

impl Alert {
    pub fn parse(alert: &Value) -> Result<Alert, AlertFormError> {
        let json =
            AlertJson::deserialize(alert).map_err(|error| AlertFormError(error.to_string()))?;
        let firing = match json.status.as_str() {
            "firing" => true,
            "resolved" => false,
            other => {
                return Err(AlertFormError(format!(
                    "status must be firing or resolved, not {other:?}"
                )))
            }
        };
        let ends_at = json.ends_at.filter(|ends| ends.timestamp() > 0);
        Ok(Alert {
            firing,
            labels: texts(json.labels),
            annotations: texts(json.annotations),
            starts_at: json.starts_at,
            ends_at,
            generator_url: json.generator_url,
            fingerprint: json.fingerprint,
            value: json.value,
            reminder: json.reminder,
        })
    }

    pub fn status(&self) -> &'static str {
        if self.firing {
            "firing"
        } else {
            "resolved"
        }
    }

    pub fn alertname(&self) -> Option<&str> {
        self.labels.get("alertname").map(String::as_str)
    }
}

/// One notification as the payloads need it.
#[derive(Clone, Debug)]
pub struct Notification {
    pub id: i64,
    pub rule_id: i64,
    pub rule_name: String,
    pub series_key: String,
    pub alert: Alert,
}

impl Notification {
    /// The alert's name: its `alertname` label, else the rule's name.
    pub fn name(&self) -> &str {
        self.alert.alertname().unwrap_or(&self.rule_name)
    }
}

/// RFC 3339 in UTC as Alertmanager writes it (`Z`, sub-seconds only when present).
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn rfc3339_or_zero(time: Option<&DateTime<Utc>>) -> String {
    time.map_or_else(|| ZERO_TIME.to_owned(), rfc3339)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    pub fn firing_alert() -> Value {
        json!({
            "status": "firing",
            "labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "page"},
            "annotations": {
                "summary": "More than 10 ERROR entries from checkout in 5 minutes",
                "description": "42 entries",
                "runbook_url": "https://runbooks.example/checkout"
            },
            "startsAt": "2026-12-07T03:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://logs.example:8443/explorer?service=checkout&min_level=ERROR",
            "fingerprint": "0123456789abcdef",
            "value": 42,
            "rule": {"id": 7, "name": "CheckoutErrors", "kind": "count"},
            "reminder": false
        })
    }

    pub fn notification(alert: Value) -> Notification {
        Notification {
            id: 31,
            rule_id: 7,
            rule_name: "CheckoutErrors".to_owned(),
            series_key: "service=checkout".to_owned(),
            alert: Alert::parse(&alert).expect("a valid alert"),
        }
    }

    #[test]
    fn reads_the_alert_evaluation_writes() {
        let alert = Alert::parse(&firing_alert()).unwrap();
        assert!(alert.firing);
        assert_eq!(alert.ends_at, None);
        assert_eq!(alert.value, Some(42.0));
        assert_eq!(alert.alertname(), Some("CheckoutErrors"));
        assert_eq!(rfc3339_or_zero(alert.ends_at.as_ref()), ZERO_TIME);
    }

    #[test]
    fn refuses_an_alert_without_a_known_status() {
        let mut alert = firing_alert();
        alert["status"] = json!("pending");
        assert!(Alert::parse(&alert).is_err());
        assert!(Alert::parse(&json!({"status": "firing"})).is_err());
    }
}
