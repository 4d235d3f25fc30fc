//! Alertmanager's webhook message, version 4 (`template.Data` plus `version`, `groupKey`
//! and `truncatedAlerts`), for one notification: the group is the alert's series, so
//! the message carries exactly one alert and its labels are the group's, common labels
//! and group labels alike. `externalURL` is the origin of the alert's `generatorURL`
//! (the explorer that wrote it). A reminder is sent as `firing`, as Alertmanager
//! repeats a firing group.

use serde_json::{json, Value};

use super::{rfc3339, rfc3339_or_zero, Notification};

/// The webhook body for `notification` sent to the channel `receiver`.
pub fn body(notification: &Notification, receiver: &str) -> Value {
    let alert = &notification.alert;
    json!({
        "version": "4",
        "groupKey": group_key(notification),
        "truncatedAlerts": 0,
        "status": alert.status(),
        "receiver": receiver,
        "groupLabels": alert.labels,
        "commonLabels": alert.labels,
        "commonAnnotations": alert.annotations,
        "externalURL": external_url(&alert.generator_url),
        "alerts": [{
            "status": alert.status(),
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": rfc3339(&alert.starts_at),
            "endsAt": rfc3339_or_zero(alert.ends_at.as_ref()),
            "generatorURL": alert.generator_url,
            "fingerprint": alert.fingerprint,
        }],
    })
}

/// Stable for a series across all its notifications, in Alertmanager's shape
/// (`{route}:{group labels}`), so a receiver can thread them.
fn group_key(notification: &Notification) -> String {
    let quoted = |text: &str| Value::String(text.to_owned()).to_string();
    format!(
        "{{}}/{{rule_id=\"{}\"}}:{{alertname={}, series={}}}",
        notification.rule_id,
        quoted(notification.name()),
        quoted(&notification.series_key)
    )
}

fn external_url(generator_url: &str) -> String {
    match reqwest::Url::parse(generator_url) {
        Ok(url) if url.has_host() => url.origin().ascii_serialization(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::super::tests::{firing_alert, notification};
    use super::*;

    fn keys(value: &Value) -> BTreeSet<&str> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn assert_string_map(value: &Value, what: &str) {
        let map = value
            .as_object()
            .unwrap_or_else(|| panic!("{what} is an object"));
        for (key, value) in map {
            assert!(value.is_string(), "{what}.{key} is a string: {value}");
        }
    }

    /// Alertmanager's webhook message (docs: configuration, `<webhook_config>`):
    /// exactly these fields with these JSON types, as its Go decoder (`webhook.Message`
    /// embedding `template.Data`) expects them.
    #[test]
    fn the_body_has_exactly_the_fields_and_types_of_alertmanager_webhook_version_4() {
        let body = body(&notification(firing_alert()), "ops-webhook");
        assert_eq!(
            keys(&body),
            BTreeSet::from([
                "version",
                "groupKey",
                "truncatedAlerts",
                "status",
                "receiver",
                "groupLabels",
                "commonLabels",
                "commonAnnotations",
                "externalURL",
                "alerts",
            ])
        );
        assert_eq!(body["version"], "4");
        assert!(body["groupKey"].is_string());
        assert!(body["truncatedAlerts"].is_u64());
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops-webhook");
        for map in ["groupLabels", "commonLabels", "commonAnnotations"] {
            assert_string_map(&body[map], map);
        }
        assert_eq!(body["externalURL"], "https://logs.example:8443");
        let alerts = body["alerts"].as_array().expect("alerts is an array");
        assert_eq!(alerts.len(), 1);
        let alert = &alerts[0];
        assert_eq!(
            keys(alert),
            BTreeSet::from([
                "status",
                "labels",
                "annotations",
                "startsAt",
                "endsAt",
                "generatorURL",
                "fingerprint",
            ])
        );
        assert_eq!(alert["status"], "firing");
        assert_string_map(&alert["labels"], "labels");
        assert_string_map(&alert["annotations"], "annotations");
        assert_eq!(alert["labels"]["alertname"], "CheckoutErrors");
        for time in ["startsAt", "endsAt"] {
            let text = alert[time].as_str().expect("a time is a string");
            chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        }
        assert_eq!(alert["startsAt"], "2026-12-07T03:00:00Z");
        assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
        assert!(alert["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("https://"));
        assert_eq!(alert["fingerprint"], "0123456789abcdef");
    }

    #[test]
    fn a_resolved_alert_has_its_end_and_the_same_group_key() {
        let firing = body(&notification(firing_alert()), "hook");
        let mut resolved = firing_alert();
        resolved["status"] = json!("resolved");
        resolved["endsAt"] = json!("2026-12-07T03:20:00.5Z");
        let resolved = body(&notification(resolved), "hook");
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["status"], "resolved");
        assert_eq!(resolved["alerts"][0]["endsAt"], "2026-12-07T03:20:00.500Z");
        assert_eq!(resolved["groupKey"], firing["groupKey"]);
    }

    #[test]
    fn a_reminder_is_sent_as_firing() {
        let mut reminder = firing_alert();
        reminder["reminder"] = json!(true);
        let body = body(&notification(reminder), "hook");
        assert_eq!(body["status"], "firing");
    }
}
