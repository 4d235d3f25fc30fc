//! One stored entry as the read API returns it, and the column list that selects it.
//! Owns the JSON shape of a returned row; never filters or orders.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::cursor::Cursor;

/// The columns of [`LogRow`], in order, for `SELECT {COLUMNS} FROM logs`.
pub const COLUMNS: &str =
    "id, timestamp, service, level, message, metadata, received_at, fingerprint";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub timestamp: DateTime<Utc>,
    pub service: String,
    pub level: String,
    pub message: String,
    #[serde(serialize_with = "metadata_or_empty_object")]
    pub metadata: Option<Value>,
    pub received_at: DateTime<Utc>,
    /// The error group key of an error entry (`errors::fingerprint`), else `null`.
    pub fingerprint: Option<String>,
}

impl LogRow {
    /// Where this row stands in newest-first order: a page ending here continues after it.
    pub fn position(&self) -> Cursor {
        Cursor {
            timestamp: self.timestamp,
            id: self.id,
        }
    }
}

fn metadata_or_empty_object<S: serde::Serializer>(
    metadata: &Option<Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match metadata {
        Some(value) => value.serialize(serializer),
        None => serde_json::Map::new().serialize(serializer),
    }
}
