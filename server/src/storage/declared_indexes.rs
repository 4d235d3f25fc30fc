//! The optional metadata keys and index an operator declares, created and dropped by
//! the `migrate` command to match the settings (`serve` applies them only to a fresh
//! database, `storage::schema`; on any other it runs with what the database declares,
//! read again every `LOG_INGESTION_SCHEMA_REFRESH_INTERVAL`, [`spawn_refresh`]);
//! each one is paid for by every insert (docs/performance.md), so none is on by
//! default:
//! - `LOG_INGESTION_INDEXED_METADATA_KEYS=user_id,request_id`: per key a column
//!   `meta_KEY` holding the key's *indexed text* (below), a btree on
//!   `(meta_KEY, timestamp DESC)` so `meta.KEY=VALUE` finds its entries newest first
//!   without reading the range, and a check `meta_KEY_set` that the column is set
//!   exactly when the metadata holds the key. A column, not an expression index:
//!   TimescaleDB's compressed chunks keep no expression index and refuse sparse indexes
//!   on expressions, but build a bloom filter per batch of 1,000 rows for a column with
//!   a btree, so a declared key stays an index lookup once its chunk is compressed.
//!   The server writes the column in its `COPY` ([`DeclaredKeys`]), which costs
//!   nothing PostgreSQL must compute, for the keys the *database* declares (those with
//!   a check), whatever its own settings say ([`LiveDeclaredKeys`]). The check refuses
//!   a row from a writer that does not know the column yet (an instance that has not
//!   read the keys since the key was declared), so no row is ever stored unfindable:
//!   that writer reads the declared keys again and writes the group once more with
//!   the column (`group_commit`). Declaring keys locks `logs` (reads and writes wait) while it fills their
//!   columns for the rows already stored, in one pass (compressed chunks are
//!   decompressed for it, so the compression policy compresses them again with the
//!   key's bloom filters); undeclaring drops the index and the check and keeps the
//!   column (declaring again fills it anew).
//! - `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on`: a `pg_trgm` GIN index on `message`, so
//!   `q=` (`ILIKE '%text%'`, three characters or more) is an index lookup over any range.
//!
//! The indexed text of a value (one rule, written twice and tested equal against
//! PostgreSQL: [`indexed_text`] for the server, [`indexed_text_sql`] for the rows filled
//! by `migrate`): a string of 1 to [`MAX_INDEXED_BYTES`] bytes is itself, a boolean is
//! `true`/`false`, a number that PostgreSQL prints as an integer between `i64::MIN` and
//! `u64::MAX` is those digits (`->>`'s text, so `1e2` is `100`); anything else (a longer
//! or empty string, a fraction, `null`, an object, an array) is the empty string, which
//! no query looks up: the read side uses the column only when every alternative of a
//! filter's value has an indexed text, and keeps its containment test, so the column
//! only narrows (one exception, in docs/server.md: a stored `42.0` is not found by
//! `meta.KEY=42`).
//!
//! Owns the key rule, the column, check and index names and the indexed text. It never
//! touches any other index or column.

use std::borrow::Cow;
use std::fmt;

use std::sync::{Arc, RwLock};

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use sqlx::PgPool;

use super::copy_text::push_field;
use super::StorageError;
use crate::config::DatabaseSettings;

/// At most this many declared keys: each one costs every insert that carries it.
pub const MAX_KEYS: usize = 16;
/// Index names are `logs_meta_KEY`, and PostgreSQL identifiers hold 63 bytes.
const MAX_KEY_BYTES: usize = 53;
/// Strings longer than this are not indexed (a btree entry holds at most ~2.7 KB, and
/// nobody looks a long text up by equality).
pub const MAX_INDEXED_BYTES: usize = 200;
const INDEX_PREFIX: &str = "logs_meta_";
/// Serialises index changes between instances of a fleet starting together.
const LOCK_KEY: i64 = 0x4c49_4d49; // "LIMI"

/// The indexed text of `KEY`'s value in SQL, the same rule as [`indexed_text`]
/// (NULL when the key is absent).
pub fn indexed_text_sql(key: &str) -> String {
    let value = format!("metadata->'{key}'");
    let text = format!("(metadata->>'{key}')");
    format!(
        "CASE jsonb_typeof({value}) \
         WHEN 'string' THEN CASE WHEN octet_length({text}) BETWEEN 1 AND {MAX_INDEXED_BYTES} \
              THEN {text} ELSE '' END \
         WHEN 'boolean' THEN {text} \
         WHEN 'number' THEN CASE WHEN {text} ~ '^-?[0-9]{{1,20}}$' \
              AND {text}::numeric BETWEEN {} AND {} THEN {text} ELSE '' END \
         WHEN 'null' THEN '' WHEN 'object' THEN '' WHEN 'array' THEN '' END",
        i64::MIN,
        u64::MAX
    )
}

/// In TimescaleDB mode, decompresses every compressed chunk of `logs`: a chunk
/// compressed again keeps the sparse indexes it was first compressed with, so only a
/// chunk compressed after the key's index exists gets the key's bloom filters. The
/// compression policy compresses them again.
const DECOMPRESS_CHUNKS: &str = r#"
DO $$
BEGIN
    -- Nested: PL/pgSQL plans a statement when it first runs it, and the catalog view
    -- does not exist without the extension.
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                   WHERE hypertable_name = 'logs' AND compression_enabled) THEN
            PERFORM decompress_chunk(c, if_compressed => true) FROM show_chunks('logs') AS c;
        END IF;
    END IF;
END
$$
"#;

/// Why `key` cannot be declared, if it cannot: a key is written into DDL and into the
/// read side's SQL as a literal, so only letters, digits and `_` are accepted.
pub fn key_problem(key: &str) -> Option<String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (!valid).then(|| {
        format!(
            "{}: a metadata key to index is 1 to {MAX_KEY_BYTES} letters, digits or _",
            crate::ingest::client_text::truncated(
                key,
                crate::ingest::client_text::MAX_QUOTED_CHARS
            )
        )
    })
}

/// The column holding `key`'s indexed text (`key` already checked by [`key_problem`]),
/// quoted: keys keep their case.
pub fn column(key: &str) -> String {
    format!("\"meta_{key}\"")
}

fn index_name(key: &str) -> String {
    format!("{INDEX_PREFIX}{key}")
}

fn check_name(key: &str) -> String {
    format!("meta_{key}_set")
}

/// A value of a declared key as the indexed-text rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Text(Cow<'a, str>),
    Bool(bool),
    /// A number as JSON text (`42`, `-1.5e3`).
    Number(Cow<'a, str>),
    /// `null`, an object or an array.
    Other,
}

/// The indexed text of `value` (see the module's top); `None` is the empty string
/// stored for a value without one.
pub fn indexed_text(value: Scalar<'_>) -> Option<Cow<'_, str>> {
    match value {
        Scalar::Text(text) => (1..=MAX_INDEXED_BYTES)
            .contains(&text.len())
            .then_some(text),
        Scalar::Bool(flag) => Some(Cow::Borrowed(if flag { "true" } else { "false" })),
        Scalar::Number(number) => integer_text(&number).map(Cow::Owned),
        Scalar::Other => None,
    }
}

/// The digits PostgreSQL prints for the JSON number `number` when it prints an integer
/// between `i64::MIN` and `u64::MAX`: `numeric` keeps as many decimals as the text had
/// after the point less the exponent (`1.50e1` is `15.0`, `1.5e1` is `15`, `1e2` is
/// `100`) and has no negative zero.
fn integer_text(number: &str) -> Option<String> {
    let (negative, unsigned) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction_digits = i64::try_from(fraction.len()).ok()?;
    let zeros = exponent.checked_sub(fraction_digits)?;
    if zeros < 0 {
        return None; // decimals are printed
    }
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some("0".to_owned());
    }
    if i64::try_from(significant.len()).ok()?.checked_add(zeros)? > 20 {
        return None;
    }
    let sign = if negative { "-" } else { "" };
    let zeros = usize::try_from(zeros).ok()?;
    let text = format!("{sign}{significant}{}", "0".repeat(zeros));
    let value: i128 = text.parse().ok()?;
    (i128::from(i64::MIN)..=i128::from(u64::MAX))
        .contains(&value)
        .then_some(text)
}

/// Declared keys (as the database declares them: [`declared_in`]) and the `COPY`
/// statement naming their columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKeys {
    keys: Vec<String>,
    /// `, "meta_a", "meta_b"`: the columns after `logs`' own.
    column_list: String,
    copy_statement: String,
}

impl Default for DeclaredKeys {
    fn default() -> Self {
        DeclaredKeys::new(&[])
    }
}

impl DeclaredKeys {
    /// `keys` in the order given (checked by [`key_problem`] before they are written
    /// into SQL), duplicates dropped.
    pub fn new(keys: &[String]) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(key) {
                unique.push(key.clone());
            }
        }
        let column_list: String = unique
            .iter()
            .map(|key| format!(", {}", column(key)))
            .collect();
        DeclaredKeys {
            copy_statement: format!(
                "COPY logs (timestamp, service, level, message, metadata, fingerprint\
                 {column_list}) FROM STDIN (FORMAT text)"
            ),
            column_list,
            keys: unique,
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The declared keys' columns as they follow `logs`' own in a column list
    /// (`, "meta_a", "meta_b"`; empty without keys).
    pub fn column_list(&self) -> &str {
        &self.column_list
    }

    /// The `COPY` statement whose columns a row with [`push_fields`](Self::push_fields)
    /// appended fills.
    pub fn copy_statement(&self) -> &str {
        &self.copy_statement
    }

    /// Appends one `COPY` field per declared key for a row whose stored metadata is
    /// `metadata` (the JSON text as stored): `\N` when the key is absent, else its
    /// indexed text. The stored text is the server's own (valid, compact), read at its
    /// top level only; a key written twice counts once, by its last value, as `jsonb`
    /// keeps it.
    pub fn push_fields(&self, out: &mut Vec<u8>, metadata: Option<&str>) {
        if self.keys.is_empty() {
            return;
        }
        let mut values: Vec<Option<&RawValue>> = vec![None; self.keys.len()];
        if let Some(json) = metadata {
            let mut deserializer = serde_json::Deserializer::from_str(json);
            let read = de::Deserializer::deserialize_map(
                &mut deserializer,
                TopLevel {
                    keys: &self.keys,
                    values: &mut values,
                },
            );
            if let Err(error) = read {
                // Unreachable for text `domain` wrote; the check refuses the row
                // rather than store it unfindable.
                tracing::error!(%error, "stored metadata could not be read for its declared keys");
            }
        }
        for value in values {
            out.push(b'\t');
            match value {
                None => out.extend_from_slice(b"\\N"),
                Some(raw) => push_field(out, indexed_text(scalar_of(raw)).as_deref().unwrap_or("")),
            }
        }
    }
}

/// The names of the declared keys' checks on `logs` (`meta_KEY_set`), in name order.
async fn check_names<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'logs'::regclass \
         AND contype = 'c' AND conname::text LIKE 'meta\\_%\\_set' ORDER BY conname",
    )
    .fetch_all(db)
    .await
}

/// Reads a stored metadata object's top level, keeping the declared keys' values as
/// their JSON text.
struct TopLevel<'k, 'v, 'de> {
    keys: &'k [String],
    values: &'v mut Vec<Option<&'de RawValue>>,
}

impl<'de> Visitor<'de> for TopLevel<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        while let Some(key) = entries.next_key::<Cow<'de, str>>()? {
            match self.keys.iter().position(|declared| *declared == key) {
                Some(slot) => self.values[slot] = Some(entries.next_value::<&'de RawValue>()?),
                None => {
                    entries.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A stored value's JSON text as a [`Scalar`]: a number keeps the very text PostgreSQL
/// reads (no float is parsed and printed again), a string is decoded only when it holds
/// an escape.
fn scalar_of(raw: &RawValue) -> Scalar<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Scalar::Text(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(decoded) => Scalar::Text(Cow::Owned(decoded)),
            Err(_) => Scalar::Other,
        },
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'-' | b'0'..=b'9') => Scalar::Number(Cow::Borrowed(text)),
        _ => Scalar::Other,
    }
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
/// keys current when their request arrived and carry them ([`super::copy_text::CopyRows`]).
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

/// The trigram index on `message`.
pub const TRIGRAM_INDEX: &str = "logs_message_trgm";

/// What `migrate` does with the declarations the settings no longer hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    /// Left declared: what `serve` does when it creates the schema of a fresh
    /// database (a second instance starting at the same moment never undeclares the
    /// first one's keys).
    Keep,
    /// Undeclared (index and check dropped, column kept): what the `migrate` command does.
    Drop,
}

/// Makes the declared keys and index match `settings` (see the module's top); with
/// [`Undeclared::Keep`] only adds. Declaring keys locks `logs` (reads and writes wait)
/// while it fills their columns for every stored row (docs/operations.md).
pub async fn apply(
    pool: &PgPool,
    settings: &DatabaseSettings,
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    apply_metadata_keys(pool, &settings.indexed_metadata_keys, undeclared).await?;
    apply_message_trigram(pool, settings.message_trigram_index).await
}

/// Creates (with the `pg_trgm` extension) or drops the trigram index on `message`,
/// without blocking writers where PostgreSQL allows it ([`build_index`],
/// [`drop_index`]); an index left invalid by an interrupted build is built again.
pub async fn apply_message_trigram(pool: &PgPool, wanted: bool) -> Result<(), StorageError> {
    let state: Option<bool> =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)")
            .bind(TRIGRAM_INDEX)
            .fetch_optional(pool)
            .await?;
    if state == Some(false) || (!wanted && state.is_some()) {
        drop_index(pool, TRIGRAM_INDEX).await?;
    }
    if !wanted || state == Some(true) {
        return Ok(());
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .execute(pool)
        .await
        .map_err(|error| {
            StorageError::Mode(format!(
                "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on needs the pg_trgm extension \
                 (PostgreSQL's contrib package): {error}"
            ))
        })?;
    build_index(
        pool,
        TRIGRAM_INDEX,
        "USING gin (message gin_trgm_ops)",
        None,
    )
    .await
}

/// Builds the index `name` on `logs` without taking
/// writers' locks where PostgreSQL allows it: `CREATE INDEX CONCURRENTLY` on a plain
/// table (it waits for transactions already running, never blocks a write; an
/// interrupted build leaves an invalid index, which the next run drops and builds
/// again), and one transaction per chunk on a hypertable (TimescaleDB has no
/// concurrent build: each chunk's writes wait while that chunk is indexed).
/// `columns` follows `ON logs` (with its access method), `predicate` makes it partial.
async fn build_index(
    pool: &PgPool,
    name: &str,
    columns: &str,
    predicate: Option<&str>,
) -> Result<(), StorageError> {
    let hypertable = super::timescale::logs_is_hypertable(pool).await?;
    tracing::info!(index = %name, hypertable, "building an index on logs");
    let started = std::time::Instant::now();
    let predicate = predicate
        .map(|predicate| format!(" WHERE {predicate}"))
        .unwrap_or_default();
    let statement = if hypertable {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON logs {columns} \
             WITH (timescaledb.transaction_per_chunk){predicate}",
            quoted(name)
        )
    } else {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON logs {columns}{predicate}",
            quoted(name)
        )
    };
    let mut conn = pool.acquire().await?;
    if !hypertable {
        // A concurrent build's waits block no writer: it may wait as long as it takes.
        sqlx::query("SET lock_timeout = 0")
            .execute(&mut *conn)
            .await?;
    }
    let built = sqlx::query(&statement).execute(&mut *conn).await;
    let _ = sqlx::query("RESET lock_timeout").execute(&mut *conn).await;
    drop(conn);
    if let Err(error) = built {
        return Err(super::locks::explain(pool, "logs", error).await);
    }
    tracing::info!(index = %name, seconds = started.elapsed().as_secs_f64(), "index built");
    Ok(())
}

/// Drops the index `name` of `logs`: `CONCURRENTLY` on a plain table (no writer
/// waits), within the lock timeout on a hypertable.
async fn drop_index(pool: &PgPool, name: &str) -> Result<(), StorageError> {
    let hypertable = super::timescale::logs_is_hypertable(pool).await?;
    tracing::info!(index = %name, "dropping an index of logs");
    let concurrently = if hypertable { "" } else { "CONCURRENTLY " };
    if let Err(error) = sqlx::query(&format!(
        "DROP INDEX {concurrently}IF EXISTS {}",
        quoted(name)
    ))
    .execute(pool)
    .await
    {
        return Err(super::locks::explain(pool, "logs", error).await);
    }
    Ok(())
}

/// Makes the declared metadata keys of `logs` match `keys`: for each key its column
/// (added, or kept from an earlier declaration), its check and its index; with
/// [`Undeclared::Drop`] the checks and indexes of keys no longer declared dropped. The
/// expression indexes of versions before the columns are dropped. The columns of newly
/// declared keys are filled for the rows already stored, in one pass. The declarations
/// change in one transaction (all or nothing, within the lock timeout); the indexes are
/// built or dropped after it, one by one, without blocking writers where PostgreSQL
/// allows it ([`build_index`]), so a run interrupted there leaves declared keys whose
/// index is missing or invalid (reads stay correct, only slower) and the next run
/// finishes them. Refuses invalid keys.
pub async fn apply_metadata_keys(
    pool: &PgPool,
    keys: &[String],
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    let declared = DeclaredKeys::new(keys);
    let keys = declared.keys();
    if keys.len() > MAX_KEYS {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_INDEXED_METADATA_KEYS: at most {MAX_KEYS} keys"
        )));
    }
    if let Some(problem) = keys.iter().find_map(|key| key_problem(key)) {
        return Err(StorageError::Mode(format!(
            "LOG_INGESTION_INDEXED_METADATA_KEYS: {problem}"
        )));
    }
    let mut tx = pool.begin().await?;
    if let Err(error) = change_declarations(&mut tx, keys, undeclared).await {
        let _ = tx.rollback().await;
        return Err(match error {
            StorageError::Query(error) => super::locks::explain(pool, "logs", error).await,
            other => other,
        });
    }
    tx.commit().await?;
    // The indexes after the declarations, each on its own (a build may take long, and
    // must not hold the declarations' lock): (name, is an expression index, valid).
    let indexes: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.indexprs IS NOT NULL, i.indisvalid FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'logs'::regclass AND starts_with(c.relname, $1)",
    )
    .bind(INDEX_PREFIX)
    .fetch_all(pool)
    .await?;
    let declared = declared_in(pool).await?;
    let mut current: Vec<String> = Vec::new();
    for (name, expression, valid) in indexes {
        // Expression indexes are from before the columns; invalid ones from an
        // interrupted build.
        let wanted = declared.keys().iter().any(|key| index_name(key) == name);
        if expression || !valid || !wanted {
            tracing::info!(index = %name, "dropping a metadata index (not declared, invalid or of an earlier version)");
            drop_index(pool, &name).await?;
        } else {
            current.push(name);
        }
    }
    for key in declared.keys() {
        let index = index_name(key);
        if !current.contains(&index) {
            let column = column(key);
            build_index(
                pool,
                &index,
                &format!("({column}, timestamp DESC)"),
                Some(&format!("{column} IS NOT NULL")),
            )
            .await?;
        }
    }
    Ok(())
}

/// In `tx`: declares the keys of `keys` not declared yet ([`declare`]) and, with
/// [`Undeclared::Drop`], undeclares the others (drops their checks; their index goes
/// after the transaction). Serialised between instances by an advisory lock.
async fn change_declarations(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: &[String],
    undeclared: Undeclared,
) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut **tx)
        .await?;
    let checks = check_names(&mut **tx).await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'logs'::regclass \
         AND attnum > 0 AND NOT attisdropped AND starts_with(attname::text, 'meta_')",
    )
    .fetch_all(&mut **tx)
    .await?;
    let new_keys: Vec<&String> = keys
        .iter()
        .filter(|key| !checks.contains(&check_name(key)))
        .collect();
    if !new_keys.is_empty() {
        declare(tx, &new_keys, &columns).await?;
    }
    if undeclared == Undeclared::Drop {
        for name in checks
            .iter()
            .filter(|name| !keys.iter().any(|key| check_name(key) == **name))
        {
            tracing::info!(check = %name, "undeclaring a metadata key: dropping its check");
            sqlx::query(&format!(
                "ALTER TABLE logs DROP CONSTRAINT IF EXISTS {}",
                quoted(name)
            ))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Declares `keys` (none declared yet) in `tx`: adds the columns `columns` lacks, fills
/// them for every stored row in one pass, then adds their checks. `logs` is locked
/// against reads and writes first, once, so that no row without a column slips in
/// before its check (which TimescaleDB validates on compressed chunks even when
/// `NOT VALID`) and no lock is upgraded while readers wait on the chunks.
async fn declare(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    keys: &[&String],
    columns: &[String],
) -> Result<(), StorageError> {
    tracing::info!(
        ?keys,
        "declaring metadata keys: filling their columns for the stored rows"
    );
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await?;
    for key in keys {
        if !columns.contains(&format!("meta_{key}")) {
            sqlx::query(&format!("ALTER TABLE logs ADD COLUMN {} text", column(key)))
                .execute(&mut **tx)
                .await?;
        }
    }
    sqlx::query(DECOMPRESS_CHUNKS).execute(&mut **tx).await?;
    let assignments: Vec<String> = keys
        .iter()
        .map(|key| format!("{} = {}", column(key), indexed_text_sql(key)))
        .collect();
    let names: Vec<String> = keys.iter().map(|key| format!("'{key}'")).collect();
    let started = std::time::Instant::now();
    let filled = sqlx::query(&format!(
        "UPDATE logs SET {} WHERE metadata ?| ARRAY[{}]",
        assignments.join(", "),
        names.join(", ")
    ))
    .execute(&mut **tx)
    .await?;
    tracing::info!(
        rows = filled.rows_affected(),
        seconds = started.elapsed().as_secs_f64(),
        "declared metadata key columns filled"
    );
    for key in keys {
        let column = column(key);
        sqlx::query(&format!(
            "ALTER TABLE logs ADD CONSTRAINT {} \
             CHECK (({column} IS NULL) = NOT (metadata ? '{key}')) NOT VALID",
            quoted(&check_name(key))
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `name` as a quoted identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_can_be_declared() {
        assert_eq!(key_problem("user_id"), None);
        assert_eq!(key_problem("RequestId2"), None);
        for bad in ["", "a'b", "a b", "a.b", "ü", &"k".repeat(54)] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"'".repeat(10_000)).unwrap().len() < 200);
    }

    #[test]
    fn numbers_are_indexed_by_the_integer_postgresql_prints() {
        let cases = [
            ("42", Some("42")),
            ("-42", Some("-42")),
            ("0", Some("0")),
            ("-0", Some("0")),
            ("1e2", Some("100")),
            ("1E+2", Some("100")),
            ("1.5e1", Some("15")),
            ("1.50e1", None),
            ("1.0", None),
            ("-0.0", None),
            ("10e-1", None),
            ("1e-7", None),
            ("0e5", Some("0")),
            ("0.000e3", Some("0")),
            ("1e16", Some("10000000000000000")),
            ("-9223372036854775808", Some("-9223372036854775808")),
            ("-9223372036854775809", None),
            ("18446744073709551615", Some("18446744073709551615")),
            ("18446744073709551616", None),
            ("1.8446744073709552e19", None),
            ("1e400", None),
            ("1e99999999999999999999", None),
            ("1e-99999999999999999999", None),
        ];
        for (number, expected) in cases {
            assert_eq!(integer_text(number).as_deref(), expected, "{number}");
        }
    }

    #[test]
    fn values_are_indexed_by_the_rule() {
        let long = "x".repeat(MAX_INDEXED_BYTES + 1);
        let cases = [
            (Scalar::Text("abc".into()), Some("abc")),
            (Scalar::Text("".into()), None),
            (Scalar::Text(long[1..].into()), Some(&long[1..])),
            (Scalar::Text(long.as_str().into()), None),
            (Scalar::Bool(true), Some("true")),
            (Scalar::Number("7".into()), Some("7")),
            (Scalar::Other, None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                indexed_text(value.clone()).as_deref(),
                expected,
                "{value:?}"
            );
        }
    }

    fn fields(keys: &[&str], metadata: Option<&str>) -> String {
        let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        let mut out = Vec::new();
        DeclaredKeys::new(&keys).push_fields(&mut out, metadata);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_declared_key_is_one_copy_field() {
        assert_eq!(fields(&[], Some(r#"{"a":1}"#)), "");
        assert_eq!(fields(&["a", "b"], None), "\t\\N\t\\N");
        assert_eq!(
            fields(
                &["a", "b", "c"],
                Some(r#"{"b":"x\ty","a":[1,{"b":2}],"z":{"c":3}}"#)
            ),
            "\t\tx\\ty\t\\N"
        );
        // The last of a repeated key counts, as in jsonb.
        assert_eq!(fields(&["a"], Some(r#"{"a":1,"a":true}"#)), "\ttrue");
        // Numbers by the text stored, as PostgreSQL reads it.
        assert_eq!(fields(&["a"], Some(r#"{"a":1e16}"#)), "\t10000000000000000");
        assert_eq!(fields(&["a"], Some(r#"{"a":1.5e1}"#)), "\t15");
        assert_eq!(fields(&["a"], Some(r#"{"a":"q\"\u00e9"}"#)), "\tq\"é");
        assert_eq!(fields(&["a"], Some(r#"{"a":15.0}"#)), "\t");
        assert_eq!(fields(&["a"], Some(r#"{"a":null}"#)), "\t");
    }

    #[test]
    fn the_copy_statement_names_each_key_once() {
        let keys = [
            "user_id".to_string(),
            "Req".to_string(),
            "user_id".to_string(),
        ];
        let declared = DeclaredKeys::new(&keys);
        assert_eq!(declared.keys(), ["user_id", "Req"]);
        assert_eq!(
            declared.copy_statement(),
            "COPY logs (timestamp, service, level, message, metadata, fingerprint, \
             \"meta_user_id\", \"meta_Req\") FROM STDIN (FORMAT text)"
        );
    }
}
