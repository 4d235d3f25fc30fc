//! What the database declares, and this server's copy of it while it serves: read at
//! startup, on a timer, and when a write is refused because the declarations changed.

use std::sync::{Arc, RwLock};

use sqlx::PgPool;

use super::naming::key_problem;
use super::DeclaredKeys;
use crate::storage::StorageError;

/// The names of the declared keys' checks on `logs` (`meta_KEY_set`), in name order.
pub(super) async fn check_names<'e>(
    db: impl sqlx::PgExecutor<'e>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'logs'::regclass \
         AND contype = 'c' AND conname::text LIKE 'meta\\_%\\_set' ORDER BY conname",
    )
    .fetch_all(db)
    .await
}

/// The keys the database declares: those whose check exists (what `migrate` made of
/// some instance's settings), in name order. A key whose column has no check is not
/// declared: nothing guarantees its column is filled.
pub async fn declared_in(pool: &PgPool) -> Result<DeclaredKeys, StorageError> {
    let checks = check_names(pool).await?;
    let keys: Vec<String> = checks
        .iter()
        .filter_map(|name| name.strip_prefix("meta_")?.strip_suffix("_set"))
        .filter(|key| key_problem(key).is_none())
        .map(str::to_owned)
        .collect();
    Ok(DeclaredKeys::new(&keys))
}

/// The declared keys this server writes and reads with, as last read from the
/// database: at startup, every `LOG_INGESTION_SCHEMA_REFRESH_INTERVAL`
/// ([`spawn_refresh`]), and when a group's `COPY` is refused because another instance
/// declared a key since ([`is_declaration_change`]). Rows are built with the
/// keys current when their request arrived and carry them ([`crate::storage::copy_text::CopyRows`]).
#[derive(Debug)]
pub struct LiveDeclaredKeys {
    current: RwLock<Arc<DeclaredKeys>>,
}

impl LiveDeclaredKeys {
    pub fn new(keys: DeclaredKeys) -> Self {
        LiveDeclaredKeys {
            current: RwLock::new(Arc::new(keys)),
        }
    }

    pub fn current(&self) -> Arc<DeclaredKeys> {
        match self.current.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the declared keys from the database again; whether they changed.
    pub async fn reload(&self, pool: &PgPool) -> Result<bool, StorageError> {
        let keys = declared_in(pool).await?;
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if **current == keys {
            return Ok(false);
        }
        tracing::info!(before = ?current.keys(), now = ?keys.keys(), "the declared metadata keys changed");
        *current = Arc::new(keys);
        Ok(true)
    }
}

/// Reads the declared keys into `live` every `every` (one catalog query, no lock), so
/// an instance follows a `migrate` that another instance ran: reads stop using a
/// column within `every` of its key being undeclared, and writes fill a newly declared
/// key's column within `every` (a write in between is refused by the key's check and
/// reloads the keys at once, see `group_commit`).
pub fn spawn_refresh(
    pool: PgPool,
    live: Arc<LiveDeclaredKeys>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match live.reload(&pool).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("reading the declared metadata keys works again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot read the declared metadata keys; keeping the last ones read");
                }
                Err(_) => {}
            }
        }
    })
}

/// Whether `error` says the declared keys changed under this server: a row lacked a
/// column whose check another instance added, or a column it wrote is gone.
pub fn is_declaration_change(error: &sqlx::Error) -> bool {
    let Some(database) = error.as_database_error() else {
        return false;
    };
    match database.code().as_deref() {
        Some("42703") => true,
        Some("23514") => database
            .constraint()
            .is_some_and(|name| name.starts_with("meta_") && name.ends_with("_set")),
        _ => false,
    }
}
