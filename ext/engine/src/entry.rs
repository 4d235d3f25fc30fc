//! `Entry`: one log entry as owned Rust data, and its encoding to the wire's JSON.
//!
//! Owns the conversion from `Entry` to the bytes of one `WireEntry`, done once on the
//! caller's thread so the queue can bound memory exactly and batches can be assembled
//! without re-serialising. It never sees Ruby objects and never performs I/O.
//! The metadata arrives already encoded (`MetadataJson`): the gem's converter writes
//! it straight from Ruby values, and this module only splices it in. `EntryWriter` is
//! the one layout of an encoded entry: `Entry::encode` writes through it, and a log
//! call writes its fields and then its converter's metadata straight into it, with no
//! `Entry` at all.

use chrono::{DateTime, SecondsFormat, Utc};
use log_ingestion_wire::{push_timestamp, Level, TimestampStyle, TIMESTAMP_LEN};
use serde_json::{Map, Value};

/// One log entry, owned. `timestamp` is RFC 3339 UTC text, taken at the call.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub timestamp: String,
    pub service: String,
    pub level: Level,
    pub message: String,
    pub metadata: MetadataJson,
}

/// The metadata of an entry: the JSON text of one object, ready to be spliced into the
/// entry's encoding (no second serialisation on the caller's thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataJson(String);

impl MetadataJson {
    /// `{}`.
    pub fn empty() -> MetadataJson {
        MetadataJson("{}".to_owned())
    }

    /// Text its producer guarantees to be one JSON object with sorted, unique keys,
    /// as `serde_json` writes a `Map` (the gem's converter, which writes every token
    /// through `serde_json`). Not parsed again here: that is the cost this type saves.
    pub fn from_object_text(text: String) -> MetadataJson {
        MetadataJson(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<Map<String, Value>> for MetadataJson {
    fn from(map: Map<String, Value>) -> MetadataJson {
        MetadataJson(Value::Object(map).to_string())
    }
}

impl Entry {
    /// An entry stamped now (UTC, microsecond precision).
    pub fn now(
        service: impl Into<String>,
        level: Level,
        message: impl Into<String>,
        metadata: impl Into<MetadataJson>,
    ) -> Entry {
        Entry {
            timestamp: timestamp_now(),
            service: service.into(),
            level,
            message: message.into(),
            metadata: metadata.into(),
        }
    }

    /// The JSON of this entry as a `WireEntry` (`metadata` is always an object, `{}` when empty).
    ///
    /// Written field by field into one buffer sized up front (`EntryWriter`), byte for
    /// byte what `serde_json::to_vec` of the `WireEntry` gives (a test holds them equal),
    /// without building that `WireEntry` (it cost a level `String` and a metadata `Value`
    /// per log call, on the caller's thread). The metadata is copied as it is.
    pub fn encode(self) -> Result<Vec<u8>, serde_json::Error> {
        let metadata = self.metadata.as_str();
        let mut writer = EntryWriter::new(
            &self.timestamp,
            &self.service,
            self.level,
            &self.message,
            metadata.len(),
        )?;
        writer
            .metadata_buffer()
            .extend_from_slice(metadata.as_bytes());
        Ok(writer.finish().into_bytes())
    }
}

/// One entry's JSON, encoded once on the caller's thread: what the queue holds and
/// batches are assembled from. Only `EntryWriter` (or `Entry::encode`) makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEntry(Vec<u8>);

impl EncodedEntry {
    /// The bytes `Entry::encode` returned.
    pub(crate) fn from_encoded(json: Vec<u8>) -> EncodedEntry {
        EncodedEntry(json)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Writes one entry's JSON straight into one buffer, in `WireEntry`'s field order: the
/// fields before the metadata at `new`, then the metadata object's text appended by its
/// producer to `metadata_buffer`, then `finish`. The one layout of an encoded entry:
/// `Entry::encode` writes through it too, so a log call's bytes (the gem's binding
/// writes its converter's metadata here, with no `Entry`, no `MetadataJson` and no
/// second copy) are what `Entry::encode` gives for the same fields.
pub struct EntryWriter {
    json: Vec<u8>,
    metadata_start: usize,
}

impl EntryWriter {
    /// Writes `{"timestamp":..,"service":..,"level":..,"message":..,"metadata":` with
    /// room for `metadata_guess` bytes of metadata.
    pub fn new(
        timestamp: &str,
        service: &str,
        level: Level,
        message: &str,
        metadata_guess: usize,
    ) -> Result<EntryWriter, serde_json::Error> {
        let mut json = Vec::with_capacity(
            ENCODED_OVERHEAD + timestamp.len() + service.len() + message.len() + metadata_guess,
        );
        json.extend_from_slice(b"{\"timestamp\":");
        serde_json::to_writer(&mut json, timestamp)?;
        Self::after_timestamp(json, service, level, message)
    }

    /// `new` stamped now (`timestamp_now`'s text), written in place: what a log call
    /// writes, without a `String` for the timestamp.
    pub fn stamped_now(
        service: &str,
        level: Level,
        message: &str,
        metadata_guess: usize,
    ) -> Result<EntryWriter, serde_json::Error> {
        let at = Utc::now();
        let mut json = Vec::with_capacity(
            ENCODED_OVERHEAD + TIMESTAMP_LEN + service.len() + message.len() + metadata_guess,
        );
        json.extend_from_slice(b"{\"timestamp\":\"");
        push_timestamp(&mut json, at, TimestampStyle::Rfc3339);
        json.push(b'"');
        Self::after_timestamp(json, service, level, message)
    }

    fn after_timestamp(
        mut json: Vec<u8>,
        service: &str,
        level: Level,
        message: &str,
    ) -> Result<EntryWriter, serde_json::Error> {
        json.extend_from_slice(b",\"service\":");
        serde_json::to_writer(&mut json, service)?;
        json.extend_from_slice(b",\"level\":");
        serde_json::to_writer(&mut json, level.as_str())?;
        json.extend_from_slice(b",\"message\":");
        serde_json::to_writer(&mut json, message)?;
        json.extend_from_slice(b",\"metadata\":");
        let metadata_start = json.len();
        Ok(EntryWriter {
            json,
            metadata_start,
        })
    }

    /// The buffer to append the metadata to: the text of exactly one JSON object with
    /// sorted, unique keys (see `MetadataJson::from_object_text`). What is already in
    /// it must be left as it is.
    pub fn metadata_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.json
    }

    /// Closes the entry. Metadata left empty is written as `{}`.
    pub fn finish(mut self) -> EncodedEntry {
        if self.json.len() <= self.metadata_start {
            self.json.truncate(self.metadata_start);
            self.json.extend_from_slice(b"{}");
        }
        self.json.push(b'}');
        EncodedEntry(self.json)
    }
}

/// The field names, quotes and punctuation of an encoded entry, plus room for escapes.
const ENCODED_OVERHEAD: usize = 96;

/// Now as an entry's timestamp (see `timestamp`).
pub fn timestamp_now() -> String {
    timestamp(Utc::now())
}

/// The one timestamp format of the gem: RFC 3339 UTC with microseconds, e.g.
/// `2026-11-27T13:03:01.123456Z` (entries' timestamps and Times in metadata).
pub fn timestamp(at: DateTime<Utc>) -> String {
    let mut text = Vec::with_capacity(TIMESTAMP_LEN);
    push_timestamp(&mut text, at, TimestampStyle::Rfc3339);
    // Only ASCII was written, so this never fails; chrono's text keeps a broken
    // invariant from panicking.
    String::from_utf8(text).unwrap_or_else(|_| at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use log_ingestion_wire::WireEntry;

    #[test]
    fn encodes_as_a_wire_entry_with_uppercase_level() {
        let mut metadata = Map::new();
        metadata.insert("user_id".into(), Value::from(7));
        let entry = Entry {
            timestamp: "2026-01-01T00:00:00.000001Z".into(),
            service: "svc".into(),
            level: Level::Warning,
            message: "hello".into(),
            metadata: metadata.into(),
        };
        let bytes = entry.encode().unwrap();
        let decoded: WireEntry = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded.level, "WARNING");
        assert_eq!(decoded.message, "hello");
        assert_eq!(decoded.metadata, Some(serde_json::json!({"user_id": 7})));
    }

    #[test]
    fn encodes_byte_for_byte_what_serializing_a_wire_entry_gives() {
        let mut metadata = Map::new();
        metadata.insert("quote\"d\n".into(), Value::from("tab\t\u{1}é"));
        metadata.insert("n".into(), serde_json::json!({"a": [1, 2.5, null, true]}));
        for metadata in [Map::new(), metadata] {
            let metadata_value = Value::Object(metadata.clone());
            let entry = Entry {
                timestamp: "2026-01-01T00:00:00.000001Z".into(),
                service: "svc \"x\"".into(),
                level: Level::Critical,
                message: "line\nbreak \\ \u{7f} 🎉".into(),
                metadata: metadata.into(),
            };
            let wire = WireEntry {
                timestamp: entry.timestamp.clone(),
                service: entry.service.clone(),
                level: entry.level.as_str().to_owned(),
                message: entry.message.clone(),
                metadata: Some(metadata_value),
            };
            assert_eq!(
                String::from_utf8(entry.encode().unwrap()).unwrap(),
                serde_json::to_string(&wire).unwrap()
            );
        }
    }

    #[test]
    fn the_writer_gives_what_encode_gives_and_empty_metadata_is_an_object() {
        let fields = (
            "2026-01-01T00:00:00.000001Z",
            "svc \"x\"",
            Level::Error,
            "m\n é",
        );
        let metadata = r#"{"a":[1,{"b":null}],"c":"\u0001"}"#;
        let mut writer = EntryWriter::new(fields.0, fields.1, fields.2, fields.3, 0).unwrap();
        writer
            .metadata_buffer()
            .extend_from_slice(metadata.as_bytes());
        let entry = Entry {
            timestamp: fields.0.into(),
            service: fields.1.into(),
            level: fields.2,
            message: fields.3.into(),
            metadata: MetadataJson::from_object_text(metadata.into()),
        };
        assert_eq!(writer.finish().into_bytes(), entry.encode().unwrap());

        let empty = EntryWriter::new(fields.0, fields.1, fields.2, fields.3, 0)
            .unwrap()
            .finish();
        let decoded: WireEntry = serde_json::from_slice(empty.as_bytes()).unwrap();
        assert_eq!(decoded.metadata, Some(serde_json::json!({})));
    }

    #[test]
    fn an_entry_stamped_now_carries_a_timestamp_taken_at_the_call() {
        let before = Utc::now();
        let entry = EntryWriter::stamped_now("svc", Level::Info, "m", 0)
            .unwrap()
            .finish();
        let after = Utc::now();
        let decoded: WireEntry = serde_json::from_slice(entry.as_bytes()).unwrap();
        let stamped = DateTime::parse_from_rfc3339(&decoded.timestamp)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            decoded.timestamp.len(),
            TIMESTAMP_LEN,
            "{}",
            decoded.timestamp
        );
        assert!(before.timestamp_micros() <= stamped.timestamp_micros() && stamped <= after);
        let same_fields = EntryWriter::new(&decoded.timestamp, "svc", Level::Info, "m", 0)
            .unwrap()
            .finish();
        assert_eq!(entry, same_fields);
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
