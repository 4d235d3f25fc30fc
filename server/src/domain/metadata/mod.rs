//! An entry's metadata: a JSON object within the size and depth caps, with sensitive
//! keys replaced by `"[FILTERED]"` at any depth and NUL made storable. Held as the JSON
//! text that will be stored. It never stores a value it has not filtered, and never
//! builds a `serde_json::Value`: the entry's raw JSON is read once and the stored text
//! written as it is read (building the tree, freeing it and re-encoding it were among
//! the top entries of the server's profile). The same pass notes where the exception
//! details are (`error_details`), so the fingerprint rule never reads the text again.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error_details::{ErrorDetails, ErrorParts, Role};
use super::sensitive_key::is_sensitive_key;
use super::shape_error::describe_shape_error;
use super::text::{is_plain, storable_json_text};
use crate::config::EntryLimits;

/// What a sensitive key's value is stored as.
pub const FILTERED: &str = "[FILTERED]";

/// Validated, filtered metadata as JSON text, and whether that text is plain (see
/// `text::is_plain`: every string in it was read without escapes, so the text holds
/// no backslash and no control character).
#[derive(Debug, Clone)]
pub struct Metadata {
    json: String,
    plain: bool,
    /// The exception details noted while reading (`None`: written from decoded values,
    /// not noted).
    errors: Option<Noted>,
}

/// The same stored text is the same metadata, however its exception details were found.
impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json && self.plain == other.plain
    }
}

impl Eq for Metadata {}

/// Exception details noted while reading: none (most entries), or where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Noted {
    Nothing,
    Parts(Box<ErrorParts>),
}

impl Metadata {
    /// `null` or absent metadata is `None`; anything but an object is an error. The
    /// depth cap is checked while reading, before a level past it is entered (under a
    /// sensitive key too, as the value is read before it is dropped); the size cap on
    /// the text as it will be stored.
    pub fn parse(raw: Option<&RawValue>, limits: &EntryLimits) -> Result<Option<Self>, String> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let text = raw.get().trim_start();
        if text.starts_with("null") {
            return Ok(None);
        }
        if !text.starts_with('{') {
            return Err("metadata: must be a JSON object".to_owned());
        }
        let mut writer = FilteredJson::new(text.len(), limits);
        writer.noting = true;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let written = FilteredValue {
            writer: &mut writer,
            depth: 0,
            role: Role::Other,
        }
        .deserialize(&mut deserializer);
        if writer.too_deep {
            return Err(too_deep_problem(limits));
        }
        // The raw value was checked as JSON text only: what it holds is refused here with
        // the decoder's own words (a lone UTF-16 surrogate, a number out of range, serde's
        // nesting limit for a configured depth cap above it), as for the entry's fields.
        written.map_err(|error| format!("metadata: {}", describe_shape_error(&error)))?;
        writer.finish(limits).map(Some)
    }

    /// The metadata value `deserializer` is positioned at, read as [`Metadata::parse`]
    /// reads its raw text (the same caps, filter and noted details) in the same pass
    /// as the entry around it: `null` is `None`, an object is read; anything else, and
    /// any problem `parse` would name, is an `Err` not meant for the client (a caller
    /// that needs the words reads the entry again with `parse`). `capacity` is the
    /// room the stored text starts with.
    pub(super) fn read<'de, D: de::Deserializer<'de>>(
        deserializer: D,
        capacity: usize,
        limits: &EntryLimits,
    ) -> Result<Option<Self>, D::Error> {
        let mut writer = FilteredJson::new(capacity, limits);
        writer.noting = true;
        let object = deserializer.deserialize_any(ObjectOrNull(FilteredValue {
            writer: &mut writer,
            depth: 0,
            role: Role::Other,
        }))?;
        if !object {
            return Ok(None);
        }
        writer.finish(limits).map(Some).map_err(de::Error::custom)
    }

    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// Whether the JSON text is plain: it can be copied into `COPY` text without a scan.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The exception details: as noted while reading, or (metadata written from decoded
    /// values) read from the stored text when it can hold any.
    pub fn error_details(&self) -> ErrorDetails<'_> {
        match &self.errors {
            Some(Noted::Nothing) => ErrorDetails::none(),
            Some(Noted::Parts(parts)) => {
                ErrorDetails::new(Cow::Borrowed(&self.json), Cow::Borrowed(parts))
            }
            None => error_details_of(&self.json),
        }
    }
}

/// The exception details of stored metadata text (a JSON object), read in one pass;
/// none when the text cannot hold any or is not an object.
pub fn error_details_of(stored: &str) -> ErrorDetails<'static> {
    if !(stored.contains("exception") || stored.contains("kind") || stored.contains("fingerprint"))
    {
        return ErrorDetails::none();
    }
    let limits = EntryLimits {
        max_metadata_depth: usize::MAX,
        max_metadata_bytes: usize::MAX,
        ..EntryLimits::default()
    };
    let mut writer = FilteredJson::new(stored.len(), &limits);
    writer.noting = true;
    let mut deserializer = serde_json::Deserializer::from_str(stored);
    let read = FilteredValue {
        writer: &mut writer,
        depth: 0,
        role: Role::Other,
    }
    .deserialize(&mut deserializer);
    if read.is_err() {
        return ErrorDetails::none();
    }
    ErrorDetails::new(Cow::Owned(writer.out), Cow::Owned(writer.errors))
}

/// The stored text being written (a `String` from the start: every piece written is
/// text, so the whole never needs a UTF-8 check), whether the depth cap stopped it, and
/// whether every string so far was plain.
/// Shared with `metadata_writer`, which writes decoded values (OTLP's) by the same rules.
pub(super) struct FilteredJson {
    pub(super) out: String,
    pub(super) limit: usize,
    pub(super) too_deep: bool,
    pub(super) plain: bool,
    /// Whether exception details are noted (a client's JSON read by `Metadata::parse`).
    pub(super) noting: bool,
    pub(super) errors: ErrorParts,
}

/// The problem of metadata nested past the depth cap.
pub(super) fn too_deep_problem(limits: &EntryLimits) -> String {
    format!(
        "metadata: nested more than {} levels deep, at most {} allowed",
        limits.max_metadata_depth, limits.max_metadata_depth
    )
}

impl FilteredJson {
    /// An empty writer with room for `capacity` bytes.
    pub(super) fn new(capacity: usize, limits: &EntryLimits) -> Self {
        FilteredJson {
            out: String::with_capacity(capacity),
            limit: limits.max_metadata_depth,
            too_deep: false,
            plain: true,
            noting: false,
            errors: ErrorParts::default(),
        }
    }

    /// The written text as metadata, within the size cap (on the text as it will be
    /// stored).
    pub(super) fn finish(self, limits: &EntryLimits) -> Result<Metadata, String> {
        if self.out.len() > limits.max_metadata_bytes {
            return Err(format!(
                "metadata: {} bytes as JSON, at most {} allowed",
                self.out.len(),
                limits.max_metadata_bytes
            ));
        }
        let errors = match (self.noting, self.errors.is_empty()) {
            (false, _) => None,
            (true, true) => Some(Noted::Nothing),
            (true, false) => Some(Noted::Parts(Box::new(self.errors))),
        };
        Ok(Metadata {
            json: self.out,
            plain: self.plain,
            errors,
        })
    }

    /// Writes `text` as a JSON string, as serde_json encodes it (so the text is what
    /// encoding a `Value` wrote). Plain text (borrowed from the JSON, see
    /// `text::storable_json_text`) needs no escape and goes in as it is; decoded text
    /// has NUL made storable and goes through serde_json's escaping.
    pub(super) fn string(&mut self, text: Cow<'_, str>) -> Result<(), serde_json::Error> {
        let text = storable_json_text(text);
        if is_plain(&text) {
            self.out.push('"');
            self.out.push_str(&text);
            self.out.push('"');
            return Ok(());
        }
        self.plain = false;
        serde_json::to_writer(StringWriter(&mut self.out), text.as_ref())
    }

    pub(super) fn scalar<T: serde::Serialize>(
        &mut self,
        value: T,
    ) -> Result<(), serde_json::Error> {
        serde_json::to_writer(StringWriter(&mut self.out), &value)
    }

    /// The depth of a container entered from `parent_depth` (the top object is 1), or
    /// an error once it passes the cap: nothing below it is read.
    pub(super) fn enter<E: de::Error>(&mut self, parent_depth: usize) -> Result<usize, E> {
        let depth = parent_depth + 1;
        if depth > self.limit {
            self.too_deep = true;
            return Err(E::custom("nested too deep"));
        }
        Ok(depth)
    }
}

/// One JSON value, read and written filtered at `depth` (that of its container).
/// `role` is what the value is to the fingerprint rule (`error_details`).
struct FilteredValue<'w> {
    writer: &'w mut FilteredJson,
    depth: usize,
    role: Role,
}

impl FilteredValue<'_> {
    /// Writes a string value, noting where it is when the rule reads it.
    fn string<E: de::Error>(self, text: Cow<'_, str>) -> Result<(), E> {
        let start = self.writer.out.len();
        self.writer.string(text).map_err(E::custom)?;
        if self.role != Role::Other {
            let end = self.writer.out.len();
            self.writer.errors.string(self.role, start..end);
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for FilteredValue<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FilteredValue<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.writer.out.push_str("null");
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.writer.scalar(value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.writer.scalar(value).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.writer.scalar(value).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        self.writer.scalar(value).map_err(E::custom)
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<(), E> {
        self.string(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        // Decoded from escapes (serde could not borrow it): not plain.
        self.string(Cow::Owned(text.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let depth = self.writer.enter(self.depth)?;
        let role = self.role.of_item();
        self.writer.out.push('[');
        let mut first = true;
        loop {
            let comma_at = self.writer.out.len();
            if !first {
                self.writer.out.push(',');
            }
            let item = FilteredValue {
                writer: &mut *self.writer,
                depth,
                role,
            };
            if items.next_element_seed(item)?.is_none() {
                self.writer.out.truncate(comma_at);
                break;
            }
            first = false;
        }
        self.writer.out.push(']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let depth = self.writer.enter(self.depth)?;
        self.writer.out.push('{');
        let mut first = true;
        while let Some(key) = entries.next_key_seed(BorrowedText)? {
            if !first {
                self.writer.out.push(',');
            }
            first = false;
            let sensitive = is_sensitive_key(&key);
            let noting = self.writer.noting && !sensitive;
            let top = depth == 1;
            let role = if noting {
                self.role.of_key(&key, top)
            } else {
                Role::Other
            };
            let explicit_fingerprint = noting && top && key == "fingerprint";
            self.writer.string(key).map_err(de::Error::custom)?;
            self.writer.out.push(':');
            let value_at = self.writer.out.len();
            entries.next_value_seed(FilteredValue {
                writer: &mut *self.writer,
                depth,
                role,
            })?;
            if explicit_fingerprint {
                let end = self.writer.out.len();
                self.writer.errors.fingerprint(value_at..end);
            }
            if sensitive {
                // Read like any value (so the depth cap holds under it), then dropped.
                self.writer.out.truncate(value_at);
                // A constant without escapes: plain.
                self.writer
                    .string(Cow::Borrowed(FILTERED))
                    .map_err(de::Error::custom)?;
            }
        }
        self.writer.out.push('}');
        Ok(())
    }
}

/// A metadata value read by [`Metadata::read`]: `null` (false) or an object, read
/// filtered (true); any other value is refused.
struct ObjectOrNull<'w>(FilteredValue<'w>);

impl<'de> Visitor<'de> for ObjectOrNull<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, entries: A) -> Result<bool, A::Error> {
        self.0.visit_map(entries).map(|()| true)
    }
}

/// `io::Write` into a `String`, for serde_json's encoders: each piece they write (a
/// number, a run of a string between escapes, an escape) is whole UTF-8 and checked
/// as it is appended, a few bytes at a time.
struct StringWriter<'s>(&'s mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = std::str::from_utf8(bytes)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
        self.0.push_str(text);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A string (an object key or a field's text), borrowed from the body unless it holds
/// an escape (what `#[serde(borrow)]` on a `Cow<str>` reads).
pub(super) struct BorrowedText;

impl<'de> DeserializeSeed<'de> for BorrowedText {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for BorrowedText {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

#[cfg(test)]
mod tests;
