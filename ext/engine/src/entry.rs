//! `Entry`: one log entry as owned Rust data, and its encoding to the wire's JSON.
//!
//! Owns the conversion from `Entry` to the bytes of one `WireEntry`, done once on the
//! caller's thread so the queue can bound memory exactly and batches can be assembled
//! without re-serialising. It never sees Ruby objects and never performs I/O.

use chrono::{DateTime, SecondsFormat, Utc};
use log_ingestion_wire::{Level, WireEntry};
use serde_json::{Map, Value};

/// One log entry, owned. `timestamp` is RFC 3339 UTC text, taken at the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub timestamp: String,
    pub service: String,
    pub level: Level,
    pub message: String,
    pub metadata: Map<String, Value>,
}

impl Entry {
    /// An entry stamped now (UTC, microsecond precision).
    pub fn now(
        service: impl Into<String>,
        level: Level,
        message: impl Into<String>,
        metadata: Map<String, Value>,
    ) -> Entry {
        Entry {
            timestamp: timestamp_now(),
            service: service.into(),
            level,
            message: message.into(),
            metadata,
        }
    }

    /// The JSON of this entry as a `WireEntry` (`metadata` is always an object, `{}` when empty).
    pub fn encode(self) -> Result<Vec<u8>, serde_json::Error> {
        let wire = WireEntry {
            timestamp: self.timestamp,
            service: self.service,
            level: self.level.as_str().to_owned(),
            message: self.message,
            metadata: Some(Value::Object(self.metadata)),
        };
        serde_json::to_vec(&wire)
    }
}

/// Now as an entry's timestamp (see `timestamp`).
pub fn timestamp_now() -> String {
    timestamp(Utc::now())
}

/// The one timestamp format of the gem: RFC 3339 UTC with microseconds, e.g.
/// `2026-11-27T13:03:01.123456Z` (entries' timestamps and Times in metadata).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_a_wire_entry_with_uppercase_level() {
        let mut metadata = Map::new();
        metadata.insert("user_id".into(), Value::from(7));
        let entry = Entry {
            timestamp: "2026-01-01T00:00:00.000001Z".into(),
            service: "svc".into(),
            level: Level::Warning,
            message: "hello".into(),
            metadata,
        };
        let bytes = entry.encode().unwrap();
        let decoded: WireEntry = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded.level, "WARNING");
        assert_eq!(decoded.message, "hello");
        assert_eq!(decoded.metadata, Some(serde_json::json!({"user_id": 7})));
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let ts = timestamp_now();
        assert!(ts.ends_with('Z'), "{ts}");
        let fraction = ts.rsplit('.').next().unwrap();
        assert_eq!(fraction.len(), "123456Z".len(), "{ts}");
        assert!(chrono::DateTime::parse_from_rfc3339(&ts).is_ok());
    }
}
