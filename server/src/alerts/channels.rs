//! Channels: where notifications go (`alert_channels`), by name. The model, its
//! validation (a name, a kind, an http(s) URL, an optional signing secret) and its
//! queries. A channel's URL (a Slack webhook URL is itself a credential) and secret are
//! never logged, never shown by `Debug` and never returned: the API shows the URL's
//! scheme and host ([`Channel::target`]) and whether a secret is set.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_URL_CHARS: usize = 2_048;
pub const MIN_SECRET_CHARS: usize = 16;
pub const MAX_SECRET_CHARS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// Alertmanager's webhook message (version 4).
    Webhook,
    /// A Slack incoming-webhook message.
    Slack,
}

impl ChannelKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "webhook" => Some(ChannelKind::Webhook),
            "slack" => Some(ChannelKind::Slack),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
        }
    }
}

#[derive(Clone)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    /// `api` or `file` (the alert rules file; read-only through the API).
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target())
            .field("has_secret", &self.secret.is_some())
            .field("source", &self.source)
            .finish()
    }
}

/// What the API shows of a channel.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    /// The URL's scheme, host and port only.
    pub target: String,
    pub has_secret: bool,
    pub source: String,
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    /// The URL's origin (`https://hooks.slack.com`): its path and query may be secret.
    pub fn target(&self) -> String {
        target_of(&self.url)
    }

    pub fn view(&self) -> ChannelView {
        ChannelView {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind,
            target: self.target(),
            has_secret: self.secret.is_some(),
            source: self.source.clone(),
            read_only: self.source == "file",
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

pub fn target_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) if url.has_host() => url.origin().ascii_serialization(),
        _ => "(invalid URL)".to_owned(),
    }
}

type ChannelRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

const COLUMNS: &str = "id, name, kind, url, secret, source, created_at, updated_at";

fn from_row(row: ChannelRow) -> Channel {
    let (id, name, kind, url, secret, source, created_at, updated_at) = row;
    Channel {
        id,
        name,
        // The table's CHECK allows only the two kinds.
        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
        url,
        secret,
        source,
        created_at,
        updated_at,
    }
}

pub async fn list(pool: &PgPool) -> Result<Vec<Channel>, sqlx::Error> {
    let rows: Vec<ChannelRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert_channels ORDER BY name"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

pub async fn by_name(pool: &PgPool, name: &str) -> Result<Option<Channel>, sqlx::Error> {
    let row: Option<ChannelRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert_channels WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(from_row))
}

/// A valid new channel, or every problem with the body (one line each).
#[derive(Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
}

/// A valid change: the fields given; `secret: Some(None)` removes the secret.
#[derive(Clone, Default)]
pub struct ChannelChange {
    pub kind: Option<ChannelKind>,
    pub url: Option<String>,
    pub secret: Option<Option<String>>,
}

/// Inserts `channel`; `None` when the name is taken.
pub async fn create(
    conn: &mut PgConnection,
    channel: &NewChannel,
) -> Result<Option<Channel>, sqlx::Error> {
    let row: Option<ChannelRow> = sqlx::query_as(&format!(
        "INSERT INTO alert_channels (name, kind, url, secret, source) \
         VALUES ($1, $2, $3, $4, 'api') ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(&channel.name)
    .bind(channel.kind.as_str())
    .bind(&channel.url)
    .bind(&channel.secret)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_row))
}

/// Applies `change` to the API channel `name`; `None` when there is none (a file
/// channel is not changed).
pub async fn update(
    conn: &mut PgConnection,
    name: &str,
    change: &ChannelChange,
) -> Result<Option<Channel>, sqlx::Error> {
    let row: Option<ChannelRow> = sqlx::query_as(&format!(
        "UPDATE alert_channels SET \
             kind = coalesce($2, kind), url = coalesce($3, url), \
             secret = CASE WHEN $4 THEN $5 ELSE secret END, updated_at = now() \
         WHERE name = $1 AND source = 'api' RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(change.kind.map(ChannelKind::as_str))
    .bind(&change.url)
    .bind(change.secret.is_some())
    .bind(change.secret.clone().flatten())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_row))
}

/// Deletes the API channel `name`; whether there was one.
pub async fn delete(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM alert_channels WHERE name = $1 AND source = 'api'")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// A channel name: 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or
/// digit (names appear in URLs and rule files).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_url(url: &str, problems: &mut Vec<String>) {
    if url.chars().count() > MAX_URL_CHARS {
        problems.push(format!("url: at most {MAX_URL_CHARS} characters"));
        return;
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
        // The URL itself is never echoed: it may be a credential.
        _ => problems.push("url: must be an absolute http:// or https:// URL".to_owned()),
    }
}

fn check_secret(value: &Value, problems: &mut Vec<String>) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(secret)
            if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&secret.chars().count()) =>
        {
            Some(Some(secret.clone()))
        }
        _ => {
            problems.push(format!(
                "secret: a string of {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters, or null"
            ));
            None
        }
    }
}

fn check_kind(value: &Value, problems: &mut Vec<String>) -> Option<ChannelKind> {
    let kind = value.as_str().and_then(ChannelKind::parse);
    if kind.is_none() {
        problems.push("kind: must be webhook or slack".to_owned());
    }
    kind
}

fn unknown_fields(body: &Map<String, Value>, known: &[&str], problems: &mut Vec<String>) {
    for key in body.keys() {
        if !known.contains(&key.as_str()) {
            let shown: String = key.chars().take(64).collect();
            problems.push(format!("{shown}: unknown field"));
        }
    }
}

/// A creation body: `{"name", "kind", "url", "secret"?}`.
pub fn parse_new(body: &Map<String, Value>) -> Result<NewChannel, Vec<String>> {
    let mut problems = Vec::new();
    unknown_fields(body, &["name", "kind", "url", "secret"], &mut problems);
    let name = match body.get("name").and_then(Value::as_str) {
        Some(name) if valid_name(name) => Some(name.to_owned()),
        _ => {
            problems.push(format!(
                "name: 1 to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit"
            ));
            None
        }
    };
    let kind = check_kind(body.get("kind").unwrap_or(&Value::Null), &mut problems);
    let url = match body.get("url").and_then(Value::as_str) {
        Some(url) => {
            check_url(url, &mut problems);
            Some(url.to_owned())
        }
        None => {
            problems.push("url: required, a string".to_owned());
            None
        }
    };
    let secret = check_secret(body.get("secret").unwrap_or(&Value::Null), &mut problems);
    match (name, kind, url, secret) {
        (Some(name), Some(kind), Some(url), Some(secret)) if problems.is_empty() => {
            Ok(NewChannel {
                name,
                kind,
                url,
                secret,
            })
        }
        _ => Err(problems),
    }
}

/// A change body: any of `kind`, `url`, `secret` (null removes it).
pub fn parse_change(body: &Map<String, Value>) -> Result<ChannelChange, Vec<String>> {
    let mut problems = Vec::new();
    unknown_fields(body, &["kind", "url", "secret"], &mut problems);
    let mut change = ChannelChange::default();
    if let Some(kind) = body.get("kind") {
        change.kind = check_kind(kind, &mut problems);
    }
    if let Some(url) = body.get("url") {
        match url.as_str() {
            Some(url) => {
                check_url(url, &mut problems);
                change.url = Some(url.to_owned());
            }
            None => problems.push("url: must be a string".to_owned()),
        }
    }
    if let Some(secret) = body.get("secret") {
        change.secret = check_secret(secret, &mut problems);
    }
    if problems.is_empty() {
        Ok(change)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn the_target_is_the_origin_only() {
        assert_eq!(
            target_of("https://hooks.slack.com/services/T000/B000/XXXX?x=1"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            target_of("http://127.0.0.1:9000/hook"),
            "http://127.0.0.1:9000"
        );
    }

    #[test]
    fn debug_shows_neither_url_nor_secret() {
        let channel = Channel {
            id: 1,
            name: "ops".to_owned(),
            kind: ChannelKind::Slack,
            url: "https://hooks.slack.com/services/SECRETPATH".to_owned(),
            secret: Some("signing-secret-value".to_owned()),
            source: "api".to_owned(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let shown = format!(
            "{channel:?} {}",
            serde_json::to_string(&channel.view()).unwrap()
        );
        assert!(!shown.contains("SECRETPATH"), "{shown}");
        assert!(!shown.contains("signing-secret-value"), "{shown}");
        assert!(shown.contains("has_secret"));
    }

    #[test]
    fn names_each_bad_field_without_echoing_the_url() {
        let problems = parse_new(&object(json!({
            "name": "bad name!",
            "kind": "email",
            "url": "ftp://secret-host/secret-path",
            "secret": "short",
            "extra": 1
        })))
        .err()
        .unwrap();
        let text = problems.join("\n");
        for field in ["name:", "kind:", "url:", "secret:", "extra:"] {
            assert!(text.contains(field), "{field} in {text}");
        }
        assert!(!text.contains("secret-path"));
    }

    #[test]
    fn accepts_a_valid_channel_and_a_change_that_removes_the_secret() {
        let channel = parse_new(&object(json!({
            "name": "ops-hook",
            "kind": "webhook",
            "url": "https://example.com/hook",
            "secret": "0123456789abcdef"
        })))
        .ok()
        .unwrap();
        assert_eq!(channel.kind, ChannelKind::Webhook);
        let change = parse_change(&object(json!({"secret": null}))).ok().unwrap();
        assert_eq!(change.secret, Some(None));
    }
}
