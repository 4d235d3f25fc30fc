//! The alert rules file (`LOG_INGESTION_ALERT_RULES_FILE`, YAML): its `channels:` and
//! `rules:` are loaded into `alert_channels` and `alert_rules` with `source = 'file'`
//! at start (a bad file stops the start, naming each bad field) and again on SIGHUP (a
//! bad file is then logged and the rules in force stay). What the file no longer names
//! is removed (a removed rule's firing series are resolved). File rules and channels
//! are read-only in the API; a name the API already uses is refused. Channel URLs and
//! secrets may come from the environment (`url_env`, `secret_env`) and are never logged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool, Row};
use tokio::task::JoinHandle;

use super::rules::{valid_channel_name, Rule, MAX_CHANNELS, MAX_RULES};
use super::transitions::{self, Context};
use crate::read::ReadContext;

/// The largest rules file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
const MAX_FILE_CHANNELS: usize = 100;
const MAX_URL_CHARS: usize = 2_048;
const MAX_SECRET_CHARS: usize = 1_024;

/// Why the rules file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    #[error("alert rules file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("alert rules file {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
    #[error("alert rules file {path}: {source}")]
    Database { path: String, source: sqlx::Error },
}

/// A channel the file declares (no `Debug`: its URL and secret are secrets).
#[derive(Clone, PartialEq)]
struct FileChannel {
    name: String,
    kind: String,
    url: String,
    secret: Option<String>,
}

/// What the file says.
struct RulesFile {
    channels: Vec<FileChannel>,
    rules: Vec<Rule>,
}

/// Reads and checks the file; `env` looks up `url_env`/`secret_env` variables.
fn parse(
    text: &str,
    declared: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RulesFile, Vec<String>> {
    let document: Value =
        serde_yaml::from_str(text).map_err(|error| vec![format!("not YAML: {error}")])?;
    let Some(top) = document.as_object() else {
        return Err(vec![
            "must be a mapping with channels: and rules:".to_owned()
        ]);
    };
    let mut problems = Vec::new();
    for key in top.keys() {
        if key != "channels" && key != "rules" {
            problems.push(format!("{key:?}: unknown section (channels, rules)"));
        }
    }
    let mut channels = Vec::new();
    match top.get("channels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= MAX_FILE_CHANNELS => {
            for (i, item) in items.iter().enumerate() {
                match channel(item, env) {
                    Ok(channel) => {
                        if channels
                            .iter()
                            .any(|c: &FileChannel| c.name == channel.name)
                        {
                            problems.push(format!(
                                "channels[{i}].name: {:?} is declared twice",
                                channel.name
                            ));
                        }
                        channels.push(channel);
                    }
                    Err(found) => {
                        problems.extend(found.into_iter().map(|p| format!("channels[{i}].{p}")))
                    }
                }
            }
        }
        Some(_) => problems.push(format!(
            "channels: must be a list of at most {MAX_FILE_CHANNELS} channels"
        )),
    }
    let mut rules: Vec<Rule> = Vec::new();
    match top.get("rules") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() as i64 <= MAX_RULES => {
            for (i, item) in items.iter().enumerate() {
                let at = match item.get("name").and_then(Value::as_str) {
                    Some(name) => format!(
                        "rules[{i}] ({})",
                        crate::ingest::client_text::truncated(name, super::rules::MAX_NAME_CHARS)
                    ),
                    None => format!("rules[{i}]"),
                };
                match Rule::parse(item, Some(declared)) {
                    Ok(rule) => {
                        if rules.iter().any(|r| r.name == rule.name) {
                            problems.push(format!("{at}.name: declared twice"));
                        }
                        rules.push(rule);
                    }
                    Err(found) => problems.extend(found.into_iter().map(|p| format!("{at}.{p}"))),
                }
            }
        }
        Some(_) => problems.push(format!(
            "rules: must be a list of at most {MAX_RULES} rules"
        )),
    }
    if problems.is_empty() {
        Ok(RulesFile { channels, rules })
    } else {
        Err(problems)
    }
}

fn channel(item: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<FileChannel, Vec<String>> {
    let mut problems = Vec::new();
    let Some(fields) = item.as_object() else {
        return Err(vec!["must be a mapping".to_owned()]);
    };
    for key in fields.keys() {
        if !["name", "kind", "url", "url_env", "secret", "secret_env"].contains(&key.as_str()) {
            problems.push(format!("{key:?}: unknown field"));
        }
    }
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !valid_channel_name(name) {
        problems.push("name: 1 to 64 of a-z, 0-9, _ and -".to_owned());
    }
    let kind = fields
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "webhook" && kind != "slack" {
        problems.push("kind: must be webhook or slack".to_owned());
    }
    let url = secret_field(fields, "url", &mut problems, env);
    match &url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
        Some(_) => problems.push("url: must start with http:// or https://".to_owned()),
        None => problems.push("url: give url or url_env".to_owned()),
    }
    if url.as_ref().is_some_and(|u| u.len() > MAX_URL_CHARS) {
        problems.push(format!("url: at most {MAX_URL_CHARS} characters"));
    }
    let secret = secret_field(fields, "secret", &mut problems, env);
    if secret
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > MAX_SECRET_CHARS)
    {
        problems.push(format!("secret: 1 to {MAX_SECRET_CHARS} characters"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(FileChannel {
        name: name.to_owned(),
        kind: kind.to_owned(),
        url: url.unwrap_or_default(),
        secret,
    })
}

/// `field` given as is, or read from the variable `field_env` names. Never echoes it.
fn secret_field(
    fields: &Map<String, Value>,
    field: &str,
    problems: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let direct = fields.get(field);
    let from_env = fields.get(&format!("{field}_env"));
    match (direct, from_env) {
        (Some(_), Some(_)) => {
            problems.push(format!("{field}: give {field} or {field}_env, not both"));
            None
        }
        (Some(Value::String(value)), None) => Some(value.clone()),
        (Some(_), None) => {
            problems.push(format!("{field}: must be a string"));
            None
        }
        (None, Some(Value::String(variable))) => {
            let value = env(variable);
            if value.is_none() {
                problems.push(format!("{field}_env: the variable {variable:?} is not set"));
            }
            value
        }
        (None, Some(_)) => {
            problems.push(format!("{field}_env: must be a variable name"));
            None
        }
        (None, None) => None,
    }
}

/// Loads `path` into the database: the file's channels and rules replace the previous
/// file's, in one transaction.
pub async fn load(
    pool: &PgPool,
    read: &ReadContext,
    path: &Path,
    external_url: &str,
) -> Result<(), RulesFileError> {
    let shown = path.display().to_string();
    let text = read_bounded(path)
        .await
        .map_err(|source| RulesFileError::Read {
            path: shown.clone(),
            source,
        })?;
    let file = parse(&text, &read.declared_keys(), &|name| {
        std::env::var(name).ok()
    })
    .map_err(|problems| RulesFileError::Invalid {
        path: shown.clone(),
        problems,
    })?;
    let database = |source| RulesFileError::Database {
        path: shown.clone(),
        source,
    };
    let mut tx = pool.begin().await.map_err(database)?;
    let problems = apply(&mut tx, &file, external_url)
        .await
        .map_err(database)?;
    if !problems.is_empty() {
        return Err(RulesFileError::Invalid {
            path: shown,
            problems,
        });
    }
    tx.commit().await.map_err(database)?;
    tracing::info!(
        path = %shown,
        channels = file.channels.len(),
        rules = file.rules.len(),
        "alert rules file loaded"
    );
    Ok(())
}

async fn read_bounded(path: &Path) -> std::io::Result<String> {
    let metadata = tokio::fs::metadata(path).await?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    tokio::fs::read_to_string(path).await
}

/// Writes the file's channels and rules; problems found against the database (names
/// the API uses, unknown channels, too many rules) are returned and nothing is kept.
async fn apply(
    conn: &mut PgConnection,
    file: &RulesFile,
    external_url: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::RULES_CREATE_LOCK)
        .execute(&mut *conn)
        .await?;
    let mut problems = Vec::new();
    let api_channels: BTreeSet<String> =
        sqlx::query_scalar("SELECT name FROM alert_channels WHERE source = 'api'")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    for channel in &file.channels {
        if api_channels.contains(&channel.name) {
            problems.push(format!(
                "channels: {:?} is a channel of the API; name the file's channel otherwise",
                channel.name
            ));
            continue;
        }
        sqlx::query(
            "INSERT INTO alert_channels (name, kind, url, secret, source) VALUES ($1, $2, $3, $4, 'file') \
             ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url, \
             secret = EXCLUDED.secret, updated_at = now() \
             WHERE (alert_channels.kind, alert_channels.url, alert_channels.secret) \
                   IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.url, EXCLUDED.secret)",
        )
        .bind(&channel.name)
        .bind(&channel.kind)
        .bind(&channel.url)
        .bind(&channel.secret)
        .execute(&mut *conn)
        .await?;
    }
    let names: Vec<String> = file.channels.iter().map(|c| c.name.clone()).collect();
    sqlx::query("DELETE FROM alert_channels WHERE source = 'file' AND NOT (name = ANY($1))")
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    let known_channels: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM alert_channels")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let stored = sqlx::query("SELECT id, name, source, definition FROM alert_rules")
        .fetch_all(&mut *conn)
        .await?;
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let mut api_rules = 0i64;
    for row in &stored {
        let id: i64 = row.try_get("id")?;
        let name: String = row.try_get("name")?;
        let source: String = row.try_get("source")?;
        if source == "api" {
            api_rules += 1;
            if file.rules.iter().any(|r| r.name == name) {
                problems.push(format!(
                    "rules ({name}): a rule of the API has this name; name the file's rule otherwise"
                ));
            }
            continue;
        }
        let definition: Value = row.try_get("definition")?;
        let old = Rule::parse(&definition, None).ok();
        let new = file.rules.iter().find(|r| r.name == name);
        let ends = match (&old, new) {
            (_, None) => true,
            (Some(old), Some(new)) => {
                !new.enabled || old.kind != new.kind || old.group_by != new.group_by
            }
            (None, Some(_)) => false,
        };
        if let (true, Some(old)) = (ends, &old) {
            transitions::resolve_all(
                &mut *conn,
                &Context {
                    rule_id: id,
                    rule: old,
                    now,
                    window_end: now,
                    external_url,
                },
            )
            .await?;
        }
        if new.is_none() {
            sqlx::query("DELETE FROM alert_rules WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
    }
    if api_rules + file.rules.len() as i64 > MAX_RULES {
        problems.push(format!("rules: at most {MAX_RULES} rules with the API's"));
    }
    for rule in &file.rules {
        for channel in &rule.channels {
            if !known_channels.contains(channel) {
                problems.push(format!(
                    "rules ({}).channels: unknown channel {channel:?}",
                    rule.name
                ));
            }
        }
        if rule.channels.len() > MAX_CHANNELS {
            problems.push(format!("rules ({}).channels: too many", rule.name));
        }
        sqlx::query(
            "INSERT INTO alert_rules (name, source, definition, enabled, interval_seconds) \
             VALUES ($1, 'file', $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET definition = EXCLUDED.definition, \
             enabled = EXCLUDED.enabled, interval_seconds = EXCLUDED.interval_seconds, \
             next_eval_at = now(), last_error = NULL, last_warning = NULL, updated_at = now() \
             WHERE alert_rules.source = 'file' AND alert_rules.definition IS DISTINCT FROM EXCLUDED.definition",
        )
        .bind(&rule.name)
        .bind(rule.to_json())
        .bind(rule.enabled)
        .bind(super::api::interval_seconds(rule))
        .execute(&mut *conn)
        .await?;
    }
    Ok(problems)
}

/// Reloads the file on every SIGHUP; a file that does not load is logged and the rules
/// in force stay. The signal is caught from the moment this returns.
pub fn spawn_reloader(
    pool: PgPool,
    read: ReadContext,
    path: PathBuf,
    external_url: String,
) -> JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let hangups = signal(SignalKind::hangup());
        tokio::spawn(async move {
            let mut hangups = match hangups {
                Ok(hangups) => hangups,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGHUP: the alert rules file is read at start only");
                    return;
                }
            };
            while hangups.recv().await.is_some() {
                if let Err(error) = load(&pool, &read, &path, &external_url).await {
                    tracing::error!(%error, "the alert rules file was not reloaded; the rules in force stay");
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        drop((pool, read, path, external_url));
        tokio::spawn(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
channels:
  - name: ops
    kind: webhook
    url_env: OPS_URL
    secret: s3cret
  - name: team-slack
    kind: slack
    url: https://hooks.slack.example/T0/B0/x
rules:
  - name: checkout errors
    kind: count
    search: {service: checkout, min_level: error}
    op: ">"
    threshold: 10
    window: 5m
    for: 2m
    channels: [ops, team-slack]
"#;

    fn env(name: &str) -> Option<String> {
        (name == "OPS_URL").then(|| "https://ops.example/hook".to_owned())
    }

    #[test]
    fn a_file_reads_its_channels_and_rules_with_urls_from_the_environment() {
        let file = parse(FILE, &[], &env).unwrap();
        assert_eq!(file.channels[0].url, "https://ops.example/hook");
        assert_eq!(file.channels[0].secret.as_deref(), Some("s3cret"));
        assert_eq!(file.rules[0].name, "checkout errors");
        assert_eq!(file.rules[0].threshold, 10.0);
    }

    #[test]
    fn a_bad_file_names_each_bad_field_and_never_a_secret() {
        let bad = FILE
            .replace("window: 5m", "window: often")
            .replace("kind: slack", "kind: pager")
            .replace("url_env: OPS_URL", "url_env: MISSING");
        let problems = parse(&bad, &[], &env).err().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("rules[0] (checkout errors).window:")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("channels[1].kind:")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("channels[0].url_env:")),
            "{problems:?}"
        );
        assert!(!problems.join(" ").contains("s3cret"));
        assert!(parse("rules: [", &[], &env).err().unwrap()[0].starts_with("not YAML"));
    }
}
