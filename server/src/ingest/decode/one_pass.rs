//! A JSON batch read in one pass: `{"logs": [...]}` parsed once, each entry handed to
//! the caller's seed as the parser reaches it (which reads, validates and uses it while
//! its text is still borrowed from the body). It only reads a batch `batch_entries`
//! would accept whole, every entry of it accepted by the seed: anything else (NDJSON, a
//! malformed or empty body, more than the cap, an entry the seed refuses) stops it,
//! and the caller reads the body again with `batch_entries`, which names the problems.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;

use super::{BodyFormat, Payload};

/// Reads `payload`'s entries with `seed`, handing each to `each` in order, and returns
/// how many; `None` when the body is not a JSON batch of 1 to `max` entries that `seed`
/// all accepts (entries already handed over are then to be forgotten).
pub fn each_batch_entry<'de, S, F>(
    payload: &'de Payload,
    max: usize,
    seed: S,
    mut each: F,
) -> Option<usize>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnMut(S::Value),
{
    if payload.format != BodyFormat::Json {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&payload.bytes);
    let count = deserializer
        .deserialize_map(Batch {
            max,
            seed,
            each: &mut each,
        })
        .and_then(|count| deserializer.end().map(|()| count))
        .ok()?;
    (count > 0).then_some(count)
}

/// `{"logs": [...]}`: other keys' values are skipped, as `batch_entries` skips them.
struct Batch<'f, S, F> {
    max: usize,
    seed: S,
    each: &'f mut F,
}

impl<'de, S, F> Visitor<'de> for Batch<'_, S, F>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnMut(S::Value),
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"logs\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut count = None;
        while let Some(logs) = map.next_key_seed(LogsKey)? {
            if !logs {
                map.next_value::<IgnoredAny>()?;
            } else if count.is_some() {
                return Err(de::Error::duplicate_field("logs"));
            } else {
                count = Some(map.next_value_seed(Entries {
                    max: self.max,
                    seed: self.seed,
                    each: &mut *self.each,
                })?);
            }
        }
        count.ok_or_else(|| de::Error::missing_field("logs"))
    }
}

/// Whether a key is `logs` (decoded, as `batch_entries` decodes it).
struct LogsKey;

impl<'de> DeserializeSeed<'de> for LogsKey {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for LogsKey {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == "logs")
    }
}

/// The `logs` array: each element read by the seed and handed over, refused at its
/// `max + 1`th.
struct Entries<'f, S, F> {
    max: usize,
    seed: S,
    each: &'f mut F,
}

impl<'de, S, F> DeserializeSeed<'de> for Entries<'_, S, F>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnMut(S::Value),
{
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, S, F> Visitor<'de> for Entries<'_, S, F>
where
    S: DeserializeSeed<'de> + Copy,
    F: FnMut(S::Value),
{
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut entries: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while let Some(entry) = entries.next_element_seed(self.seed)? {
            if count == self.max {
                return Err(de::Error::custom("too many entries"));
            }
            (self.each)(entry);
            count += 1;
        }
        Ok(count)
    }
}
