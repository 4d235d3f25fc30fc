//! The wire format of the log ingestion HTTP API, the set of log levels, the server's
//! default limits on one entry and the timestamp texts.
//!
//! This crate is the single definition both sides use: the gem's engine writes entries
//! in this shape (and its binding hands the levels and limits to Ruby), the server
//! deserialises them. It owns shapes, names and numbers only; it never validates
//! limits (the server's `domain` does) and never performs I/O.

mod timestamp;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use timestamp::{push_timestamp, TimestampStyle, POSTGRES_FORMAT, TIMESTAMP_LEN};

/// The server's default limits on one entry (each can be changed by a setting of the
/// server); the gem cuts what it sends to fit within them.
pub mod limits {
    /// Bytes of an entry's message (`LOG_INGESTION_MAX_MESSAGE_BYTES`).
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 65_536;
    /// Bytes of an entry's metadata as JSON (`LOG_INGESTION_MAX_METADATA_BYTES`).
    pub const DEFAULT_MAX_METADATA_BYTES: usize = 65_536;
    /// Nesting of an entry's metadata (`LOG_INGESTION_MAX_METADATA_DEPTH`).
    pub const DEFAULT_MAX_METADATA_DEPTH: usize = 16;
}

/// Path of the health check.
pub const HEALTH_PATH: &str = "/health";
/// Path that takes one entry: `{"log": {...}}`.
pub const SINGLE_PATH: &str = "/api/v1/logs";
/// Path that takes many entries: `{"logs": [...]}` or NDJSON.
pub const BATCH_PATH: &str = "/api/v1/logs/batch";
/// Header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header that makes a batch retry safe: same key, same answer, stored once.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A log level. Parsing is case-insensitive; the canonical spelling is uppercase.
///
/// `WARN`/`WARNING` and `FATAL`/`CRITICAL` are distinct spellings kept as sent,
/// with the same severity rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Warning,
    Error,
    Fatal,
    Critical,
}

impl Level {
    /// Every level, in severity order.
    pub const ALL: [Level; 7] = [
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Warning,
        Level::Error,
        Level::Fatal,
        Level::Critical,
    ];

    /// The canonical (uppercase) spelling, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
            Level::Critical => "CRITICAL",
        }
    }

    /// Severity rank: 0 debug, 1 info, 2 warn, 3 error, 4 fatal.
    pub const fn severity(self) -> u8 {
        match self {
            Level::Debug => 0,
            Level::Info => 1,
            Level::Warn | Level::Warning => 2,
            Level::Error => 3,
            Level::Fatal | Level::Critical => 4,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a level name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("level must be one of DEBUG, INFO, WARN, WARNING, ERROR, FATAL, CRITICAL (got {0:?})")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One log entry as it travels: what the client sends, what the server decodes
/// before validation. `timestamp` is RFC 3339 text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    pub timestamp: String,
    pub service: String,
    pub level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// Body of `POST /api/v1/logs/batch` (JSON form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest<E> {
    pub logs: Vec<E>,
}

/// Answer of `POST /api/v1/logs`: `{"accepted": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleResponse {
    pub accepted: u64,
}

/// Answer of `POST /api/v1/logs/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BatchResponse {
    pub accepted: u64,
    #[serde(default)]
    pub rejected: u64,
    #[serde(default)]
    pub errors: Vec<EntryError>,
}

/// Why one entry of a batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryError {
    pub index: usize,
    pub error: String,
}

/// Body of every error answer: `{"error": "...", "details": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_case_insensitively_and_print_uppercase() {
        for level in Level::ALL {
            let lower = level.as_str().to_ascii_lowercase();
            assert_eq!(lower.parse::<Level>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
        }
    }

    #[test]
    fn unknown_level_is_an_error_that_names_the_choices() {
        let err = "verbose".parse::<Level>().unwrap_err();
        assert!(err.to_string().contains("DEBUG, INFO"));
    }

    #[test]
    fn warn_and_warning_share_a_severity() {
        assert_eq!(Level::Warn.severity(), Level::Warning.severity());
        assert!(Level::Error.severity() > Level::Warning.severity());
    }

    #[test]
    fn batch_response_round_trips() {
        let body = r#"{"accepted":2,"rejected":1,"errors":[{"index":1,"error":"bad"}]}"#;
        let parsed: BatchResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.rejected, 1);
        assert_eq!(serde_json::to_string(&parsed).unwrap(), body);
    }
}
