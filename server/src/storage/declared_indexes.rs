//! The optional metadata keys and index an operator declares, created and dropped by
//! `migrate` (and `serve`, which migrates) to match the settings; each one is paid for
//! by every insert (README, "Performance"), so none is on by default:
//! - `LOG_INGESTION_INDEXED_METADATA_KEYS=user_id,request_id`: per key a column
//!   `meta_KEY` holding the key's *indexed text* (below), a btree on
//!   `(meta_KEY, timestamp DESC)` so `meta.KEY=VALUE` finds its entries newest first
//!   without reading the range, and a check `meta_KEY_set` that the column is set
//!   exactly when the metadata holds the key. A column, not an expression index:
//!   TimescaleDB's compressed chunks keep no expression index and refuse sparse indexes
//!   on expressions, but build a bloom filter per batch of 1,000 rows for a column with
//!   a btree, so a declared key stays an index lookup once its chunk is compressed.
//!   The server writes the column in its `COPY` ([`DeclaredKeys`]), which costs
//!   nothing PostgreSQL must compute; the check refuses a row from a writer that does
//!   not know the column (an instance started before the key was declared), so no row
//!   is ever stored unfindable. Declaring a key fills the column of the rows already
//!   stored (compressed chunks are decompressed to do it and recompressed by the
//!   compression policy); undeclaring drops the index and the check and keeps the
//!   column (an instance still writing it keeps working; declaring again fills only
//!   the rows left empty).
//! - `LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on`: a `pg_trgm` GIN index on `message`, so
//!   `q=` (`ILIKE '%text%'`, three characters or more) is an index lookup over any range.
//!
//! The indexed text of a value (one rule, written twice and tested equal against
//! PostgreSQL: [`indexed_text`] for the server, [`indexed_text_sql`] for the rows filled
//! by `migrate`): a string of 1 to [`MAX_INDEXED_BYTES`] bytes is itself, a boolean is
//! `true`/`false`, a number that PostgreSQL prints as an integer between `i64::MIN` and
//! `u64::MAX` is those digits (`->>`'s text, so `1e2` is `100`); anything else (a longer
//! or empty string, a fraction, `null`, an object, an array) is the empty string, which
//! no query looks up: the read side uses the column only for a value with an indexed
//! text and keeps its containment test, so results never depend on the column.
//!
//! Owns the key rule, the column, check and index names and the indexed text. It never
//! touches any other index or column.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
            crate::client_text::truncated(key, crate::client_text::MAX_QUOTED_CHARS)
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

/// The keys this server writes columns for (fixed at startup, after `migrate` made the
/// columns match the settings) and the `COPY` statement naming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKeys {
    keys: Vec<String>,
    copy_statement: String,
}

impl Default for DeclaredKeys {
    fn default() -> Self {
        DeclaredKeys::new(&[])
    }
}

impl DeclaredKeys {
    /// `keys` as declared (checked by `migrate` before any server starts), duplicates
    /// dropped.
    pub fn new(keys: &[String]) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(key) {
                unique.push(key.clone());
            }
        }
        let columns: String = unique
            .iter()
            .map(|key| format!(", {}", column(key)))
            .collect();
        DeclaredKeys {
            copy_statement: format!(
                "COPY logs (timestamp, service, level, message, metadata{columns}) \
                 FROM STDIN (FORMAT text)"
            ),
            keys: unique,
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
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
        let mut values: Vec<Option<Scalar<'_>>> = vec![None; self.keys.len()];
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
                Some(value) => push_field(out, indexed_text(value).as_deref().unwrap_or("")),
            }
        }
    }
}

/// Reads a stored metadata object's top level, keeping the declared keys' values.
struct TopLevel<'k, 'v, 'de> {
    keys: &'k [String],
    values: &'v mut Vec<Option<Scalar<'de>>>,
}

impl<'de> Visitor<'de> for TopLevel<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        while let Some(key) = entries.next_key::<Cow<'de, str>>()? {
            match self.keys.iter().position(|declared| *declared == key) {
                Some(slot) => self.values[slot] = Some(entries.next_value_seed(ScalarSeed)?),
                None => {
                    entries.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One value, as a [`Scalar`].
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(Cow::Owned(number.to_string())))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(Cow::Owned(number.to_string())))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        // The text the stored JSON holds: `domain` wrote this float with serde_json too.
        serde_json::to_string(&number)
            .map(|text| Scalar::Number(Cow::Owned(text)))
            .map_err(E::custom)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self::Value, A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

const TRIGRAM_INDEX: &str = "logs_message_trgm";

/// Makes the declared keys and index match `settings` (see the module's top). A change
/// locks out writes to `logs` for its duration (declaring a key on a large table
/// fills its column for every row): run `migrate` before rolling out a new declaration.
pub async fn apply(pool: &PgPool, settings: &DatabaseSettings) -> Result<(), StorageError> {
    apply_metadata_keys(pool, &settings.indexed_metadata_keys).await?;
    apply_message_trigram(pool, settings.message_trigram_index).await
}

/// Creates (with the `pg_trgm` extension) or drops the trigram index on `message`.
pub async fn apply_message_trigram(pool: &PgPool, wanted: bool) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    if wanted {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .execute(&mut *tx)
            .await
            .map_err(|error| {
                StorageError::Mode(format!(
                    "LOG_INGESTION_MESSAGE_TRIGRAM_INDEX=on needs the pg_trgm extension \
                     (PostgreSQL's contrib package): {error}"
                ))
            })?;
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON logs USING gin (message gin_trgm_ops)"
        ))
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(&format!("DROP INDEX IF EXISTS {TRIGRAM_INDEX}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Makes the declared metadata keys of `logs` match `keys`: for each key its column
/// (added, or kept from an earlier declaration), its check and its index; the checks
/// and indexes of keys no longer declared (and the expression indexes of versions
/// before the columns) dropped. A newly checked key's column is filled for the rows
/// already stored. Refuses invalid keys.
pub async fn apply_metadata_keys(pool: &PgPool, keys: &[String]) -> Result<(), StorageError> {
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
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    // (name, is an expression index): the expression ones are from before the columns.
    let indexes: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.indexprs IS NOT NULL FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'logs'::regclass AND starts_with(c.relname, $1)",
    )
    .bind(INDEX_PREFIX)
    .fetch_all(&mut *tx)
    .await?;
    let checks: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE conrelid = 'logs'::regclass \
         AND contype = 'c' AND conname::text LIKE 'meta\\_%\\_set'",
    )
    .fetch_all(&mut *tx)
    .await?;
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'logs'::regclass \
         AND attnum > 0 AND NOT attisdropped AND starts_with(attname::text, 'meta_')",
    )
    .fetch_all(&mut *tx)
    .await?;
    let wanted_indexes: Vec<String> = keys.iter().map(|key| index_name(key)).collect();
    let wanted_checks: Vec<String> = keys.iter().map(|key| check_name(key)).collect();
    for (name, expression) in &indexes {
        if *expression || !wanted_indexes.contains(name) {
            tracing::info!(index = %name, "dropping a metadata index no longer declared");
            sqlx::query(&format!("DROP INDEX IF EXISTS \"{name}\""))
                .execute(&mut *tx)
                .await?;
        }
    }
    for name in checks.iter().filter(|name| !wanted_checks.contains(name)) {
        tracing::info!(check = %name, "dropping the check of a metadata key no longer declared");
        sqlx::query(&format!(
            "ALTER TABLE logs DROP CONSTRAINT IF EXISTS \"{name}\""
        ))
        .execute(&mut *tx)
        .await?;
    }
    for key in keys {
        let column = column(key);
        // Only when missing: even `IF NOT EXISTS` locks the table, and `serve` runs this
        // at every start.
        if !columns.iter().any(|name| *name == format!("meta_{key}")) {
            sqlx::query(&format!("ALTER TABLE logs ADD COLUMN {column} text"))
                .execute(&mut *tx)
                .await?;
        }
        let check = check_name(key);
        if !checks.contains(&check) {
            tracing::info!(key = %key, "declaring a metadata key: filling its column for the stored rows");
            // Writers wait (reads go on) from here to the commit: no row without the
            // column can slip in between the filling and the check, which TimescaleDB
            // validates on compressed chunks even when NOT VALID.
            sqlx::query("LOCK TABLE logs IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            sqlx::query(DECOMPRESS_CHUNKS).execute(&mut *tx).await?;
            let filled = sqlx::query(&format!(
                "UPDATE logs SET {column} = {} WHERE metadata ? '{key}' AND {column} IS NULL",
                indexed_text_sql(key)
            ))
            .execute(&mut *tx)
            .await?;
            tracing::info!(key = %key, rows = filled.rows_affected(), "metadata key column filled");
            sqlx::query(&format!(
                "ALTER TABLE logs ADD CONSTRAINT \"{check}\" \
                 CHECK (({column} IS NULL) = NOT (metadata ? '{key}')) NOT VALID"
            ))
            .execute(&mut *tx)
            .await?;
        }
        let index = index_name(key);
        let current = indexes
            .iter()
            .any(|(name, expression)| *name == index && !expression);
        if !current {
            tracing::info!(index = %index, "creating the index of a declared metadata key");
            sqlx::query(&format!(
                "CREATE INDEX IF NOT EXISTS \"{index}\" ON logs ({column}, timestamp DESC) \
                 WHERE {column} IS NOT NULL"
            ))
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
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
        // Floats as `domain` stored them (serde_json's shortest text).
        assert_eq!(fields(&["a"], Some(r#"{"a":1e16}"#)), "\t10000000000000000");
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
            "COPY logs (timestamp, service, level, message, metadata, \"meta_user_id\", \
             \"meta_Req\") FROM STDIN (FORMAT text)"
        );
    }
}
