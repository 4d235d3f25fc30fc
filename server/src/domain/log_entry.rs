//! `LogEntry`: one log entry that can only exist valid. `LogEntry::from_json` is the
//! single validation step of the ingest path: it reads the entry's JSON once, borrowing
//! its text fields from the body (no owned `WireEntry`, no `serde_json::Value`), and
//! checks every field. It never touches storage and never knows about HTTP.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
#[cfg(any(test, feature = "test-support"))]
use log_ingestion_wire::WireEntry;
use log_ingestion_wire::{Level, UnknownLevel};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::metadata::Metadata;
use super::shape_error::describe_shape_error;
use super::text::{decoded_text, is_plain, storable_json_text};
use crate::config::EntryLimits;
use crate::ingest::client_text::{quoted, truncated, MAX_QUOTED_CHARS};

const MAX_SERVICE_CHARS: usize = 255;

/// A valid entry, ready to store. Its text borrows from the request body where the
/// JSON held it unescaped (and is then plain, see `text::is_plain`); the only way to
/// build one is validation.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry<'a> {
    timestamp: DateTime<Utc>,
    service: Cow<'a, str>,
    level: Level,
    message: Cow<'a, str>,
    metadata: Option<Metadata>,
}

/// An entry's fields as the JSON holds them, borrowed: `WireEntry`'s shape, with
/// metadata left as its raw text, and named to clients as `WireEntry` is. `service`
/// and `message` are `Cow::Borrowed` only when serde borrowed them from JSON text
/// without escapes (the rule of `text::storable_json_text`); anything else builds them
/// owned.
#[derive(Deserialize)]
#[serde(expecting = "a log entry object")]
pub(super) struct EntryFields<'a> {
    #[serde(borrow)]
    pub(super) timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) service: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) level: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) message: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) metadata: Option<&'a RawValue>,
}

impl<'a> LogEntry<'a> {
    /// Decodes one entry's JSON and validates it. Errors are human-readable problems,
    /// one per field, ready for `details` or a batch's `errors`.
    pub fn from_json(
        raw: &'a RawValue,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<String>> {
        let fields: EntryFields<'a> =
            serde_json::from_str(raw.get()).map_err(|error| vec![describe_shape_error(&error)])?;
        Self::validate(fields, limits, now)
    }

    /// Validates an entry another protocol decoded into typed values (OTLP): the same
    /// rules as [`LogEntry::from_json`] (the timestamp window, service, message), with
    /// the metadata as `metadata::MetadataWriter` wrote it (or its problem). Text is
    /// borrowed where it is plain (`text::decoded_text`), else made storable.
    pub fn from_decoded(
        timestamp: DateTime<Utc>,
        service: &'a str,
        level: Level,
        message: Cow<'a, str>,
        metadata: Result<Option<Metadata>, String>,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if let Err(problem) = check_window(timestamp, limits, now, || {
            timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true)
        }) {
            problems.push(problem);
        }
        problems.extend(service_problem(service));
        problems.extend(message_problem(&message, limits));
        let metadata = metadata.map_err(|problem| problems.push(problem)).ok();
        match metadata {
            Some(metadata) if problems.is_empty() => Ok(LogEntry {
                timestamp,
                service: decoded_text(Cow::Borrowed(service)),
                level,
                message: decoded_text(message),
                metadata,
            }),
            _ => Err(problems),
        }
    }

    /// Validates an owned, decoded entry (the same rules as [`LogEntry::from_json`];
    /// its metadata is encoded once to be read as `from_json` reads it).
    #[cfg(any(test, feature = "test-support"))]
    pub fn parse(
        wire: WireEntry,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<LogEntry<'static>, Vec<String>> {
        let metadata = wire
            .metadata
            .as_ref()
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(|_| vec!["metadata: cannot be encoded as JSON".to_owned()])?;
        let fields = EntryFields {
            timestamp: Cow::Borrowed(&wire.timestamp),
            service: Cow::Owned(wire.service),
            level: Cow::Borrowed(&wire.level),
            message: Cow::Owned(wire.message),
            metadata: metadata.as_deref(),
        };
        let entry = LogEntry::validate(fields, limits, now)?;
        Ok(LogEntry {
            timestamp: entry.timestamp,
            service: Cow::Owned(entry.service.into_owned()),
            level: entry.level,
            message: Cow::Owned(entry.message.into_owned()),
            metadata: entry.metadata,
        })
    }

    /// Checks every field against `limits`, with `now` as the reference time.
    fn validate<'f>(
        fields: EntryFields<'f>,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<LogEntry<'f>, Vec<String>> {
        let metadata = Metadata::parse(fields.metadata, limits);
        Self::checked(fields, metadata, limits, now)
    }

    /// Checks the fields of `fields` but its metadata against `limits` (the metadata
    /// was read as `metadata`, or its problem), problems in the fields' order.
    pub(super) fn checked<'f>(
        fields: EntryFields<'f>,
        metadata: Result<Option<Metadata>, String>,
        limits: &EntryLimits,
        now: DateTime<Utc>,
    ) -> Result<LogEntry<'f>, Vec<String>> {
        let mut problems = Vec::new();
        let timestamp = parse_timestamp(&fields.timestamp, limits, now)
            .map_err(|problem| problems.push(problem))
            .ok();

        let service = fields.service;
        problems.extend(service_problem(&service));

        let level = fields
            .level
            .parse::<Level>()
            .map_err(|UnknownLevel(got)| {
                let shown = UnknownLevel(truncated(&got, MAX_QUOTED_CHARS));
                problems.push(format!("level: {shown}"));
            })
            .ok();

        let message = fields.message;
        problems.extend(message_problem(&message, limits));

        let metadata = metadata
            .map_err(|problem| problems.push(problem))
            .ok()
            .flatten();

        match (timestamp, level) {
            (Some(timestamp), Some(level)) if problems.is_empty() => Ok(LogEntry {
                timestamp,
                service: storable_json_text(service),
                level,
                message: storable_json_text(message),
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

    /// Whether the service name is plain text (no control character, quote or
    /// backslash), so it can be copied into `COPY` text without a scan.
    pub fn service_is_plain(&self) -> bool {
        is_plain(&self.service)
    }

    /// Whether the message is plain text, as [`LogEntry::service_is_plain`].
    pub fn message_is_plain(&self) -> bool {
        is_plain(&self.message)
    }

    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
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
    check_window(timestamp, limits, now, || truncated(text, MAX_QUOTED_CHARS))?;
    Ok(timestamp)
}

/// Whether `timestamp` is within the accepted window around `now`; `shown` is how a
/// refusal quotes it.
fn check_window(
    timestamp: DateTime<Utc>,
    limits: &EntryLimits,
    now: DateTime<Utc>,
    shown: impl FnOnce() -> String,
) -> Result<(), String> {
    let ahead =
        chrono::Duration::from_std(limits.max_timestamp_ahead).unwrap_or(chrono::Duration::MAX);
    let age = chrono::Duration::from_std(limits.max_timestamp_age).unwrap_or(chrono::Duration::MAX);
    if now
        .checked_add_signed(ahead)
        .is_some_and(|latest| timestamp > latest)
    {
        return Err(format!(
            "timestamp: {} is more than {}s in the future",
            shown(),
            limits.max_timestamp_ahead.as_secs()
        ));
    }
    if now
        .checked_sub_signed(age)
        .is_some_and(|earliest| timestamp < earliest)
    {
        return Err(format!(
            "timestamp: {} is older than the accepted window of {} days",
            shown(),
            limits.max_timestamp_age.as_secs() / 86_400
        ));
    }
    Ok(())
}

/// The problem of a service name, if any: empty, or longer than the column holds.
fn service_problem(service: &str) -> Option<String> {
    if service.trim().is_empty() {
        return Some("service: must not be empty".to_owned());
    }
    if service.len() > MAX_SERVICE_CHARS {
        // Counted only when the bytes could be too many: most names are short.
        let service_chars = service.chars().count();
        if service_chars > MAX_SERVICE_CHARS {
            return Some(format!(
                "service: {service_chars} characters, at most {MAX_SERVICE_CHARS} allowed"
            ));
        }
    }
    None
}

/// The problem of a message, if any: empty, or past the size cap.
fn message_problem(message: &str, limits: &EntryLimits) -> Option<String> {
    if message.is_empty() {
        return Some("message: must not be empty".to_owned());
    }
    (message.len() > limits.max_message_bytes).then(|| {
        format!(
            "message: {} bytes, at most {} allowed",
            message.len(),
            limits.max_message_bytes
        )
    })
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
