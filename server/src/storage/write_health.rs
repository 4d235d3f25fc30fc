//! Whether writes work, as `/health` and `/readyz` report it: the outcome of the last
//! group commit, and when none has committed for [`PROBE_INTERVAL`], of a write probe.
//! The probe inserts one row into `logs` in a transaction that is rolled back: it passes
//! through what a group's `COPY` does (privileges, the table's triggers and rollups,
//! chunk routing, a read-only or out-of-space database, a server that can no longer load
//! its libraries) and leaves no row behind. At most one probe runs at a time, and at
//! most one per interval, however often the probes are asked.
//!
//! It owns the probe, its rate bound and what a probe's answer may say of a database
//! error: the message and SQLSTATE, except where a message can quote stored values
//! (data and integrity errors: the class alone), with credentials in URLs masked and
//! the length capped, since the answer goes to unauthenticated callers. It never retries
//! a group and never decides how a request is answered.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// How long a write outcome stands before a health check probes again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe may take (PostgreSQL cancels it after this; the probe gives up a
/// little later in case the cancel itself cannot get through).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest error text a probe answers with.
const MAX_ERROR_CHARS: usize = 300;

/// The service name of the probe's row (which is never committed).
pub const PROBE_SERVICE: &str = "log-ingestion-write-probe";

const PROBE_INSERT: &str = "INSERT INTO logs (timestamp, service, level, message) \
                            VALUES (now(), $1, 'DEBUG', 'write probe (rolled back)')";

/// The last write outcome; shared by the writers and the probes.
#[derive(Debug, Default)]
pub struct WriteHealth {
    last: Mutex<Option<Outcome>>,
    /// Held while a probe runs: concurrent checks wait for its answer.
    probing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
struct Outcome {
    at: Instant,
    /// The database's error, as health may show it.
    result: Result<(), String>,
}

impl WriteHealth {
    /// Records a group commit's outcome.
    pub fn record(&self, result: Result<(), &sqlx::Error>) {
        self.store(result.map_err(describe));
    }

    /// `Ok` when writes worked at the last group commit or probe, if that was less than
    /// [`PROBE_INTERVAL`] ago; otherwise probes now. `Err` holds the database's error.
    pub async fn check(&self, pool: &PgPool) -> Result<(), String> {
        if let Some(result) = self.fresh() {
            return result;
        }
        let _probing = self.probing.lock().await;
        // Another check may have probed while this one waited.
        if let Some(result) = self.fresh() {
            return result;
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT * 2, probe(pool)).await {
            Ok(result) => result.map_err(|error| describe(&error)),
            Err(_) => Err(format!(
                "a test write got no answer within {:?}",
                PROBE_TIMEOUT * 2
            )),
        };
        self.store(result.clone());
        result
    }

    fn fresh(&self) -> Option<Result<(), String>> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|outcome| outcome.at.elapsed() < PROBE_INTERVAL)
            .map(|outcome| outcome.result.clone())
    }

    fn store(&self, result: Result<(), String>) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = Some(Outcome {
            at: Instant::now(),
            result,
        });
    }
}

/// One row into `logs` in a transaction that is rolled back.
async fn probe(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut transaction = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = {}",
        PROBE_TIMEOUT.as_millis()
    ))
    .execute(&mut *transaction)
    .await?;
    sqlx::query(PROBE_INSERT)
        .bind(PROBE_SERVICE)
        .execute(&mut *transaction)
        .await?;
    transaction.rollback().await
}

/// What health may say of `error`: see the module's comment.
pub fn describe(error: &sqlx::Error) -> String {
    let text = match error {
        sqlx::Error::Database(database) => {
            let code = database.code().map(|code| code.into_owned());
            match code.as_deref() {
                Some(code) if code.starts_with("22") || code.starts_with("23") => format!(
                    "the database refused the data (SQLSTATE {code}; the message may quote stored values and is only logged)"
                ),
                Some(code) => format!("{} (SQLSTATE {code})", database.message()),
                None => database.message().to_owned(),
            }
        }
        other => other.to_string(),
    };
    capped(&mask_credentials(&text))
}

/// `scheme://user:secret@host` becomes `scheme://user:***@host`, and `password=secret`
/// becomes `password=***`.
fn mask_credentials(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, after) = rest.split_at(start + 3);
        masked.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                masked.push_str(&authority[..=colon]);
                masked.push_str("***");
                masked.push_str(&authority[at..]);
            }
            _ => masked.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    masked.push_str(rest);
    let mut out = String::with_capacity(masked.len());
    let mut rest = masked.as_str();
    while let Some(start) = rest.to_ascii_lowercase().find("password=") {
        let (before, after) = rest.split_at(start + "password=".len());
        out.push_str(before);
        out.push_str("***");
        let end = after
            .find(|c: char| c.is_whitespace() || c == '&' || c == ';')
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn capped(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}...", &clean[..end]),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_settings_are_masked() {
        assert_eq!(
            mask_credentials("cannot reach postgres://app:s3cret@db:5432/logs now"),
            "cannot reach postgres://app:***@db:5432/logs now"
        );
        assert_eq!(
            mask_credentials("host=db password=s3cret user=app"),
            "host=db password=*** user=app"
        );
        assert_eq!(
            mask_credentials("permission denied for table logs"),
            "permission denied for table logs"
        );
        assert_eq!(mask_credentials("http://host/x"), "http://host/x");
    }

    #[test]
    fn long_or_multiline_errors_are_capped_to_one_line() {
        let long = "x".repeat(1_000);
        assert_eq!(capped(&long).chars().count(), MAX_ERROR_CHARS + 3);
        assert_eq!(capped("a\nb"), "a b");
    }

    #[test]
    fn a_recorded_outcome_stands_until_the_interval_passes() {
        let health = WriteHealth::default();
        assert!(health.fresh().is_none(), "nothing known: a check probes");
        health.store(Err("disk full".to_owned()));
        assert_eq!(health.fresh(), Some(Err("disk full".to_owned())));
        health.record(Ok(()));
        assert_eq!(health.fresh(), Some(Ok(())));
    }
}
