//! `LogEntry`: one log entry that can only exist valid. `LogEntry::from_json` (decode
//! one entry's JSON, then `LogEntry::parse`) is the single validation step of the
//! ingest path; it never touches storage and never knows about HTTP.

use chrono::{DateTime, Utc};
use log_ingestion_wire::{Level, UnknownLevel, WireEntry};
use serde_json::value::RawValue;

use super::metadata::Metadata;
use super::text::storable_text;
use crate::client_text::{describe_json_error, quoted, truncated, MAX_QUOTED_CHARS};
use crate::config::EntryLimits;

const MAX_SERVICE_CHARS: usize = 255;

/// A valid entry, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    timestamp: DateTime<Utc>,
    service: String,
    level: Level,
    message: String,
    metadata: Option<Metadata>,
}

impl LogEntry {
    /// Decodes one entry's JSON and validates it. Errors are human-readable problems,
    /// one per field, ready for `details` or a batch's `errors`.
    pub fn from_json(
        raw: &RawValue,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<String>> {
        let wire: WireEntry =
            serde_json::from_str(raw.get()).map_err(|error| vec![describe_shape_error(&error)])?;
        Self::parse(wire, limits, now)
    }

    /// Validates a decoded entry against `limits`, with `now` as the reference time.
    pub fn parse(
        wire: WireEntry,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let timestamp = parse_timestamp(&wire.timestamp, limits, now)
            .map_err(|problem| problems.push(problem))
            .ok();

        let service_chars = wire.service.chars().count();
        if wire.service.trim().is_empty() {
            problems.push("service: must not be empty".to_owned());
        } else if service_chars > MAX_SERVICE_CHARS {
            problems.push(format!(
                "service: {service_chars} characters, at most {MAX_SERVICE_CHARS} allowed"
            ));
        }

        let level = wire
            .level
            .parse::<Level>()
            .map_err(|UnknownLevel(got)| {
                let shown = UnknownLevel(truncated(&got, MAX_QUOTED_CHARS));
                problems.push(format!("level: {shown}"));
            })
            .ok();

        if wire.message.is_empty() {
            problems.push("message: must not be empty".to_owned());
        } else if wire.message.len() > limits.max_message_bytes {
            problems.push(format!(
                "message: {} bytes, at most {} allowed",
                wire.message.len(),
                limits.max_message_bytes
            ));
        }

        let metadata = Metadata::parse(wire.metadata, limits)
            .map_err(|problem| problems.push(problem))
            .ok()
            .flatten();

        match (timestamp, level) {
            (Some(timestamp), Some(level)) if problems.is_empty() => Ok(LogEntry {
                timestamp,
                service: storable_text(wire.service),
                level,
                message: storable_text(wire.message),
                metadata,
            }),
            _ => Err(problems),
        }
    }

    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn level(&self) -> Level {
        self.level
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Approximate stored size, for the group committer's byte cap.
    pub fn approximate_bytes(&self) -> usize {
        64 + self.service.len()
            + self.message.len()
            + self.metadata.as_ref().map_or(0, |m| m.as_json().len())
    }
}

fn parse_timestamp(
    text: &str,
    limits: &EntryLimits,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    let timestamp = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            format!(
                "timestamp: must be RFC 3339, like 2024-01-01T12:00:00Z (got {})",
                quoted(text)
            )
        })?
        .with_timezone(&Utc);
    let ahead =
        chrono::Duration::from_std(limits.max_timestamp_ahead).unwrap_or(chrono::Duration::MAX);
    let age = chrono::Duration::from_std(limits.max_timestamp_age).unwrap_or(chrono::Duration::MAX);
    if now
        .checked_add_signed(ahead)
        .is_some_and(|latest| timestamp > latest)
    {
        return Err(format!(
            "timestamp: {} is more than {}s in the future",
            truncated(text, MAX_QUOTED_CHARS),
            limits.max_timestamp_ahead.as_secs()
        ));
    }
    if now
        .checked_sub_signed(age)
        .is_some_and(|earliest| timestamp < earliest)
    {
        return Err(format!(
            "timestamp: {} is older than the accepted window of {} days",
            truncated(text, MAX_QUOTED_CHARS),
            limits.max_timestamp_age.as_secs() / 86_400
        ));
    }
    Ok(timestamp)
}

fn describe_shape_error(error: &serde_json::Error) -> String {
    // serde's messages already name the field ("missing field `service`", "invalid
    // type: integer `5`, expected a string"); only the position is cut, because it
    // counts within the one entry and would mislead next to a batch index.
    // Internal type names become what a client knows ("a log entry object").
    let head = describe_json_error(error);
    if head.contains("escape") || head.contains("surrogate") {
        // serde_json refuses lone UTF-16 surrogates, which no UTF-8 store can hold.
        format!("invalid \\u escape ({head}): text must be valid Unicode; lone UTF-16 surrogates cannot be stored")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wire(timestamp: &str, level: &str) -> WireEntry {
        WireEntry {
            timestamp: timestamp.into(),
            service: "svc".into(),
            level: level.into(),
            message: "hello".into(),
            metadata: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_guides_example_timestamp_is_accepted_by_default() {
        let entry = LogEntry::parse(
            wire("2024-01-01T12:00:00Z", "info"),
            &EntryLimits::default(),
            now(),
        )
        .unwrap();
        assert_eq!(entry.level(), Level::Info);
    }

    #[test]
    fn a_tighter_window_rejects_old_timestamps() {
        let limits = EntryLimits {
            max_timestamp_age: Duration::from_secs(86_400),
            ..EntryLimits::default()
        };
        let problems =
            LogEntry::parse(wire("2024-01-01T12:00:00Z", "INFO"), &limits, now()).unwrap_err();
        assert!(problems[0].contains("older"), "{problems:?}");
    }

    #[test]
    fn timestamps_more_than_an_hour_ahead_are_rejected() {
        let problems = LogEntry::parse(
            wire("2026-06-01T01:00:01Z", "INFO"),
            &EntryLimits::default(),
            now(),
        )
        .unwrap_err();
        assert!(problems[0].contains("future"), "{problems:?}");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let mut entry = wire("yesterday", "loud");
        entry.service = String::new();
        entry.message = String::new();
        let problems = LogEntry::parse(entry, &EntryLimits::default(), now()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn an_entry_of_the_wrong_shape_is_described_without_internal_names() {
        let raw = RawValue::from_string("\"text\"".into()).unwrap();
        let problems = LogEntry::from_json(&raw, &EntryLimits::default(), now()).unwrap_err();
        assert!(
            problems[0].contains("expected a log entry object"),
            "{problems:?}"
        );
        assert!(!problems[0].contains("WireEntry"), "{problems:?}");
    }

    #[test]
    fn long_bad_values_are_quoted_in_part() {
        let long = "9".repeat(100_000);
        let mut entry = wire(&long, &long);
        entry.service = "svc".into();
        let problems = LogEntry::parse(entry, &EntryLimits::default(), now()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        for problem in &problems {
            assert!(problem.len() < 300, "{} bytes", problem.len());
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let raw = RawValue::from_string(r#"{"timestamp":"2024-01-01T12:00:00Z"}"#.into()).unwrap();
        let problems = LogEntry::from_json(&raw, &EntryLimits::default(), now()).unwrap_err();
        assert!(problems[0].contains("service"), "{problems:?}");
    }
}
