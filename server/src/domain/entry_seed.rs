//! One entry read straight from the deserializer of the body that holds it, in the one
//! pass that also validates it: [`EntrySeed`] reads the fields as
//! `LogEntry::from_json` does (text borrowed where it holds no escape, the metadata
//! written filtered as it is read, unknown fields read as raw JSON and dropped) and
//! checks them by the same rules, so an entry it accepts is the one `from_json`
//! accepts. It only tells whether the entry is valid: any problem, of shape or of a
//! field, is an error without the client's words, and the caller reads the body again
//! the way that names them (`from_json`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::log_entry::{EntryFields, LogEntry};
use super::metadata::{BorrowedText, Metadata};
use crate::config::EntryLimits;

/// Room the stored metadata text starts with (the gem's entries hold a few hundred
/// bytes of it at most; more grows the text).
const METADATA_CAPACITY: usize = 256;

/// Reads and validates one entry object; its value is the valid entry, borrowing its
/// text from the body.
#[derive(Clone, Copy)]
pub struct EntrySeed<'l> {
    limits: &'l EntryLimits,
    now: DateTime<Utc>,
}

impl<'l> EntrySeed<'l> {
    /// Entries checked against `limits`, with `now` as the reference time.
    pub fn new(limits: &'l EntryLimits, now: DateTime<Utc>) -> Self {
        EntrySeed { limits, now }
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = LogEntry<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = LogEntry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a log entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut timestamp = None;
        let mut service = None;
        let mut level = None;
        let mut message = None;
        let mut metadata = None;
        while let Some(field) = map.next_key_seed(FieldName)? {
            let text = match field {
                Field::Timestamp => &mut timestamp,
                Field::Service => &mut service,
                Field::Level => &mut level,
                Field::Message => &mut message,
                Field::Metadata => {
                    if metadata.is_some() {
                        return Err(de::Error::duplicate_field("metadata"));
                    }
                    metadata = Some(map.next_value_seed(MetadataSeed(self.limits))?);
                    continue;
                }
                Field::Other => {
                    // Read as raw JSON, which checks its text as `from_json`'s read does.
                    map.next_value::<&'de RawValue>()?;
                    continue;
                }
            };
            if text.is_some() {
                return Err(de::Error::custom("duplicate field"));
            }
            *text = Some(map.next_value_seed(BorrowedText)?);
        }
        let missing = || de::Error::custom("missing field");
        let fields = EntryFields {
            timestamp: timestamp.ok_or_else(missing)?,
            service: service.ok_or_else(missing)?,
            level: level.ok_or_else(missing)?,
            message: message.ok_or_else(missing)?,
            metadata: None,
        };
        LogEntry::checked(fields, Ok(metadata.flatten()), self.limits, self.now)
            .map_err(|_| de::Error::custom("invalid entry"))
    }
}

/// The fields an entry object holds.
enum Field {
    Timestamp,
    Service,
    Level,
    Message,
    Metadata,
    Other,
}

/// A field name, decoded if it holds escapes (as serde's derived field names are).
struct FieldName;

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Field;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(match name {
            "timestamp" => Field::Timestamp,
            "service" => Field::Service,
            "level" => Field::Level,
            "message" => Field::Message,
            "metadata" => Field::Metadata,
            _ => Field::Other,
        })
    }
}

/// The metadata field, read by `Metadata::read`.
struct MetadataSeed<'l>(&'l EntryLimits);

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = Option<Metadata>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        Metadata::read(deserializer, METADATA_CAPACITY, self.0)
    }
}
