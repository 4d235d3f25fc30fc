//! The optional metadata keys and index an operator declares, created and dropped by
//! the `migrate` command to match the settings (`serve` applies them only to a fresh
//! database, `storage::schema`; on any other it runs with what the database declares,
//! read again every `LOG_INGESTION_SCHEMA_REFRESH_INTERVAL`, [`spawn_refresh`]);
//! each one is paid for by every insert (docs/performance.md), so none is on by
//! default:
//! - `LOG_INGESTION_DECLARED_KEYS=user_id,request_id`: per key a column
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
//!   `q=` (`ILIKE '%text%'`, three characters or more) is an index lookup over any range
//!   (`trigram_index`, applied with the keys by [`apply`]).
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
//!//! One job a module: `naming` (the key rule and the column, check and index names),
//! `indexed_text` (the rule in Rust and its SQL twin), `copy_fields` (a row's declared
//! columns in the `COPY`), `live` (what the database declares, read again while
//! serving), `schema_change` (declaring and undeclaring, for `migrate`). Together they
//! own the key rule, the column, check and index names and the indexed text; they never
//! touch any other index or column.

mod copy_fields;
mod indexed_text;
mod live;
mod naming;
mod schema_change;

pub use copy_fields::DeclaredKeys;
pub use indexed_text::{indexed_text, indexed_text_sql, Scalar, MAX_INDEXED_BYTES};
pub use live::{declared_in, is_declaration_change, spawn_refresh, LiveDeclaredKeys};
pub use naming::{column, key_problem, MAX_KEYS};
pub use schema_change::{apply, apply_metadata_keys, Undeclared};
