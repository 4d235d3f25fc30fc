//! A Slack incoming-webhook message for one notification: `text` (the line shown in
//! notifications and by clients without blocks) and `blocks`: a header saying what
//! happened (firing, still firing, resolved), the summary and description, the fields
//! (since when, resolved when, the value, the labels) and links to the explorer and the
//! runbook. Text from the alert is escaped for Slack's mrkdwn and cut to Slack's limits.

use serde_json::{json, Value};

use super::{rfc3339, Notification};

/// Slack's limits: a header's text, a section's text, a field's text, fields per section.
const MAX_HEADER_CHARS: usize = 150;
const MAX_SECTION_CHARS: usize = 3_000;
const MAX_FIELD_CHARS: usize = 2_000;
const MAX_FIELDS: usize = 10;

pub fn body(notification: &Notification) -> Value {
    let alert = &notification.alert;
    let name = notification.name();
    let (icon, state) = match (alert.firing, alert.reminder) {
        (true, false) => (":red_circle:", "Firing"),
        (true, true) => (":repeat:", "Still firing"),
        (false, _) => (":white_check_mark:", "Resolved"),
    };
    let summary = alert.annotations.get("summary").map(String::as_str);
    let text = match summary {
        Some(summary) => format!(
            "[{}] {}: {}",
            state.to_uppercase(),
            escape(name),
            escape(summary)
        ),
        None => format!("[{}] {}", state.to_uppercase(), escape(name)),
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("{state}: {name}"), MAX_HEADER_CHARS), "emoji": true}
    })];
    let mut about = String::new();
    if let Some(summary) = summary {
        about.push_str(&format!("{icon} *{}*", escape(summary)));
    } else {
        about.push_str(icon);
    }
    if let Some(description) = alert.annotations.get("description") {
        about.push('\n');
        about.push_str(&escape(description));
    }
    blocks.push(json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut(&about, MAX_SECTION_CHARS)}
    }));
    let mut fields = Vec::new();
    if alert.firing {
        fields.push(field("Firing since", &slack_date(&alert.starts_at)));
    } else {
        fields.push(field("Was firing since", &slack_date(&alert.starts_at)));
        if let Some(ends_at) = &alert.ends_at {
            fields.push(field("Resolved at", &slack_date(ends_at)));
        }
    }
    if let Some(value) = alert.value {
        let label = if alert.firing { "Value" } else { "Last value" };
        fields.push(field(label, &format_value(value)));
    }
    for (key, value) in alert.labels.iter().filter(|(key, _)| *key != "alertname") {
        if fields.len() == MAX_FIELDS {
            break;
        }
        fields.push(field(key, &format!("`{}`", escape(value))));
    }
    blocks.push(json!({"type": "section", "fields": fields}));
    let mut links = Vec::new();
    if !alert.generator_url.is_empty() {
        links.push(link(&alert.generator_url, "Open in the explorer"));
    }
    if let Some(runbook) = alert.annotations.get("runbook_url") {
        links.push(link(runbook, "Runbook"));
    }
    if !links.is_empty() {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": cut(&links.join("  ·  "), MAX_FIELD_CHARS)}]
        }));
    }
    json!({"text": cut(&text, MAX_SECTION_CHARS), "blocks": blocks})
}

fn field(title: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(&format!("*{}*\n{}", escape(title), value), MAX_FIELD_CHARS)})
}

/// A date Slack shows in the reader's time zone, with the UTC time as its fallback.
fn slack_date(time: &chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        time.timestamp(),
        rfc3339(time)
    )
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.4}")
    }
}

/// `<url|label>`, or the label alone when the URL would break the link syntax.
fn link(url: &str, label: &str) -> String {
    if url.contains(['|', '>', '<', ' ']) {
        return escape(label);
    }
    format!("<{}|{}>", url.replace('&', "&amp;"), escape(label))
}

/// Slack mrkdwn's three control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, an ellipsis marking a cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::tests::{firing_alert, notification};
    use super::*;

    fn all_text(body: &Value) -> String {
        body.to_string()
    }

    #[test]
    fn a_firing_message_says_what_since_when_the_value_and_links_to_the_explorer() {
        let body = body(&notification(firing_alert()));
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] CheckoutErrors: More than 10"));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        assert_eq!(blocks[0]["text"]["text"], "Firing: CheckoutErrors");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert!(fields[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("*Firing since*\n<!date^1796612400^"));
        assert_eq!(fields[1]["text"], "*Value*\n42");
        let links = blocks[3]["elements"][0]["text"].as_str().unwrap();
        assert!(links.contains("<https://logs.example:8443/explorer?service=checkout&amp;min_level=ERROR|Open in the explorer>"));
        assert!(links.contains("<https://runbooks.example/checkout|Runbook>"));
    }

    #[test]
    fn a_resolved_message_looks_different_and_says_when_it_ended() {
        let mut resolved = firing_alert();
        resolved["status"] = json!("resolved");
        resolved["endsAt"] = json!("2026-12-07T03:20:00Z");
        let body = body(&notification(resolved));
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED] CheckoutErrors"));
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "Resolved: CheckoutErrors"
        );
        let text = all_text(&body);
        assert!(text.contains(":white_check_mark:"));
        assert!(!text.contains(":red_circle:"));
        assert!(text.contains("*Resolved at*"));
        assert!(text.contains("*Was firing since*"));
    }

    #[test]
    fn alert_text_cannot_inject_mrkdwn_links_or_mentions() {
        let mut alert = firing_alert();
        alert["annotations"]["summary"] = json!("<!channel> <https://evil.example|click>");
        let body = body(&notification(alert));
        let text = all_text(&body);
        assert!(!text.contains("<!channel>"));
        assert!(text.contains("&lt;!channel&gt;"));
    }

    #[test]
    fn long_texts_are_cut_to_slacks_limits() {
        let mut alert = firing_alert();
        alert["labels"]["alertname"] = json!("x".repeat(500));
        alert["annotations"]["description"] = json!("y".repeat(10_000));
        let body = body(&notification(alert));
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), MAX_HEADER_CHARS);
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(section.chars().count(), MAX_SECTION_CHARS);
    }
}
