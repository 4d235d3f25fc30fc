//! Splitting a decoded JSON or NDJSON body into one raw JSON value per entry, counting
//! entries as it goes: never more than the batch cap plus one are built.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{BodyFormat, Payload};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(expecting = "an object {\"log\": {...}}")]
struct SingleBody<'a> {
    #[serde(borrow)]
    log: &'a RawValue,
}

/// The one entry of `{"log": {...}}`, borrowed from the payload.
pub fn single_entry(payload: &Payload) -> Result<&RawValue, ApiError> {
    let body: SingleBody<'_> =
        serde_json::from_slice(&payload.bytes).map_err(|error| ApiError::from_json(&error))?;
    Ok(body.log)
}

/// The entries of `{"logs": [...]}` or of an NDJSON body, one raw value each, borrowed
/// from the payload. More than `max` entries is [`ApiError::BatchTooLarge`], found
/// while parsing: at most `max + 1` values are ever built.
pub fn batch_entries(payload: &Payload, max: usize) -> Result<Vec<&RawValue>, ApiError> {
    match payload.format {
        BodyFormat::Json => {
            let too_many = Cell::new(false);
            let mut deserializer = serde_json::Deserializer::from_slice(&payload.bytes);
            let parsed = CappedBatch {
                max,
                too_many: &too_many,
            }
            .deserialize(&mut deserializer)
            .and_then(|entries| deserializer.end().map(|()| entries));
            match parsed {
                Ok(entries) => Ok(entries),
                Err(_) if too_many.get() => Err(ApiError::BatchTooLarge { max, got: None }),
                Err(error) => Err(ApiError::from_json(&error)),
            }
        }
        BodyFormat::Protobuf => Err(ApiError::UnsupportedContentType {
            got: "application/x-protobuf".to_owned(),
            expected: "application/json or application/x-ndjson",
        }),
        BodyFormat::Ndjson => {
            let lines = || {
                payload
                    .bytes
                    .split(|byte| *byte == b'\n')
                    .enumerate()
                    .filter(|(_, line)| !line.trim_ascii().is_empty())
            };
            // Counted before anything is built: a line costs nothing until it is parsed.
            let count = lines().count();
            if count > max {
                return Err(ApiError::BatchTooLarge {
                    max,
                    got: Some(count),
                });
            }
            lines()
                .map(|(index, line)| {
                    serde_json::from_slice::<&RawValue>(line)
                        .map_err(|error| ApiError::from_json_at(&error, index + 1))
                })
                .collect()
        }
    }
}

/// `{"logs": [...]}` with at most `max` entries; sets `too_many` when it stops early.
struct CappedBatch<'c> {
    max: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedBatch<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CappedBatch<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"logs\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut logs = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "logs" {
                map.next_value::<IgnoredAny>()?;
            } else if logs.is_some() {
                return Err(de::Error::duplicate_field("logs"));
            } else {
                logs = Some(map.next_value_seed(CappedEntries {
                    max: self.max,
                    too_many: self.too_many,
                })?);
            }
        }
        logs.ok_or_else(|| de::Error::missing_field("logs"))
    }
}

/// The `logs` array, refused at its `max + 1`th element.
struct CappedEntries<'c> {
    max: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedEntries<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CappedEntries<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(entry) = seq.next_element::<&'de RawValue>()? {
            if entries.len() == self.max {
                self.too_many.set(true);
                return Err(de::Error::custom(format_args!(
                    "more than {} entries",
                    self.max
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn payload(format: BodyFormat, text: &str) -> Payload {
        Payload {
            format,
            bytes: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let error =
            batch_entries(&payload(BodyFormat::Ndjson, "{\"a\":1}\n\n{oops\n"), 10).unwrap_err();
        match error {
            ApiError::MalformedJson { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(message.ends_with("at line 3 column 2"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_body_of_the_wrong_shape_never_names_an_internal_type() {
        let error = single_entry(&payload(BodyFormat::Json, "5")).unwrap_err();
        match error {
            ApiError::InvalidBody { message, .. } => {
                assert!(
                    message.contains(r#"expected an object {"log": {...}}"#),
                    "{message}"
                );
                assert!(!message.contains("SingleBody"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = batch_entries(&payload(BodyFormat::Json, "\"logs\""), 10).unwrap_err();
        match error {
            ApiError::InvalidBody { message, .. } => {
                assert!(
                    message.contains(r#"expected an object {"logs": [...]}"#),
                    "{message}"
                );
                assert!(!message.contains("BatchBody"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let error = single_entry(&payload(BodyFormat::Json, "{\n  \"log\": {,}\n}")).unwrap_err();
        match error {
            ApiError::MalformedJson { line, column, .. } => assert_eq!((line, column), (2, 11)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_batch_stops_at_its_entry_cap_while_parsing() {
        let ones = format!("{{\"logs\":[{}1]}}", "1,".repeat(100_000));
        match batch_entries(&payload(BodyFormat::Json, &ones), 5) {
            Err(ApiError::BatchTooLarge { max: 5, got: None }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let lines = "1\n".repeat(100_000);
        match batch_entries(&payload(BodyFormat::Ndjson, &lines), 5) {
            Err(ApiError::BatchTooLarge {
                max: 5,
                got: Some(100_000),
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let fits = r#"{"other":[1,2],"logs":[{"a":1},2]}"#;
        let fits = payload(BodyFormat::Json, fits);
        let entries = batch_entries(&fits, 2).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].get(), r#"{"a":1}"#);
    }

    #[test]
    fn a_batch_body_of_the_wrong_shape_keeps_serdes_messages() {
        for (body, expected) in [
            (r#"{"logs":[1],"logs":[2]}"#, "duplicate field `logs`"),
            (r#"{"log":[1]}"#, "missing field `logs`"),
            (r#"{"logs":"x"}"#, "expected an array of log entries"),
            (r#"{"logs":[1]} x"#, "trailing characters"),
        ] {
            let error = batch_entries(&payload(BodyFormat::Json, body), 10).unwrap_err();
            let shown = format!("{:?}", error);
            assert!(shown.contains(expected), "{body}: {shown}");
        }
    }
}
