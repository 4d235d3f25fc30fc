//! The alert rules file (`LOG_INGESTION_ALERT_RULES_FILE`, YAML): its `channels:` and
//! `rules:` are loaded into `alert_channels` and `alert_rules` with `source = 'file'`
//! at start (a bad file stops the start, naming each bad field) and again on SIGHUP (a
//! bad file is then logged and the rules in force stay). What the file no longer names
//! is removed (a removed rule's firing series are resolved). File rules and channels
//! are read-only in the API; a name the API already uses is refused. Channel URLs and
//! secrets may come from the environment (`url_env`, `secret_env`) and are never logged.
//! Reading the YAML into checked channels and rules is `parse`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use tokio::task::JoinHandle;

use super::rules::{Rule, MAX_CHANNELS, MAX_RULES};
use super::transitions::{self, Context};
use crate::read::ReadContext;

mod parse;

use parse::{parse, RulesFile};

/// The largest rules file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
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
        .bind(rule.interval_seconds())
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
