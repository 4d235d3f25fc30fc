//! Metadata written from values another protocol decoded (OTLP's attributes), without
//! JSON text in between: [`MetadataWriter`] writes them key by key into the stored text
//! through the writer `Metadata::parse` uses for a client's JSON (`metadata`'s
//! `FilteredJson`), so the same rules hold by construction: strings encoded as
//! serde_json encodes them with NUL made storable, sensitive keys' values replaced by
//! `"[FILTERED]"` at any depth (`metadata::is_sensitive_key`), the depth cap checked
//! before a level past it is entered, the size cap on the stored text, and the
//! plain-text flag. A [`MetadataFragment`] is a value written once (a resource's
//! attributes) and put into many entries' metadata. It never reads JSON and never
//! decides how a protocol maps to keys.

use std::borrow::Cow;

use super::error_details::Role;
use super::metadata::{too_deep_problem, FilteredJson, Metadata, FILTERED};
use super::sensitive_key::is_sensitive_key;
use super::text::decoded_text;
use crate::config::EntryLimits;

/// The depth of an entry's top object, whose keys the fingerprint rule reads.
const TOP_DEPTH: usize = 1;

/// A container would pass the depth cap: the metadata is refused ([`MetadataWriter::finish`]
/// says so); nothing more needs to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

/// A key written, its value still to come; handed back to [`MetadataWriter::end_key`].
#[must_use]
pub struct KeyWritten {
    value_at: usize,
    sensitive: bool,
}

/// A value written ahead for a container at a given depth, to be put into many
/// entries' metadata ([`MetadataWriter::fragment`]).
#[derive(Debug, Clone)]
pub struct MetadataFragment {
    json: String,
    plain: bool,
    too_deep: bool,
    container_depth: usize,
}

impl MetadataFragment {
    /// Bytes of its text.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// Its JSON text, unless it passed the depth cap.
    pub fn into_json(self) -> Option<String> {
        (!self.too_deep).then_some(self.json)
    }
}

/// Writes one entry's metadata (a JSON object) or one fragment, value by value. Commas
/// are placed by what was written last: compact JSON text that ends with `{`, `[` or
/// `:` awaits its first member or a value.
pub struct MetadataWriter {
    json: FilteredJson,
    /// The depth of the innermost open container (the top object is 1).
    depth: usize,
    /// Set when serde_json's encoder refused a piece (it cannot for text).
    failed: bool,
    /// Set when a top-level key the fingerprint rule reads was written: the stored
    /// text is then read for exception details when they are asked for; without one,
    /// the metadata says it holds none, and is never read again.
    details_keys: bool,
    limits: EntryLimits,
}

impl MetadataWriter {
    /// An entry's metadata, its top object open; `capacity` bytes reserved.
    pub fn new(limits: &EntryLimits, capacity: usize) -> Self {
        let mut writer = MetadataWriter::fragment_in(limits, 0, capacity);
        // The top object: within any cap of at least one level.
        let _ = writer.begin_object();
        writer
    }

    /// A fragment: one value, to be put into a container at `container_depth`.
    pub fn fragment_in(limits: &EntryLimits, container_depth: usize, capacity: usize) -> Self {
        MetadataWriter {
            json: FilteredJson::new(capacity, limits),
            depth: container_depth,
            failed: false,
            details_keys: false,
            limits: *limits,
        }
    }

    /// The fragment written (one value).
    pub fn into_fragment(self) -> MetadataFragment {
        MetadataFragment {
            json: self.json.out,
            plain: self.json.plain,
            too_deep: self.json.too_deep,
            container_depth: self.depth,
        }
    }

    /// Closes the top object: the metadata, `None` when it has no key, or the problem
    /// that refuses it (nested past the depth cap, past the size cap).
    pub fn finish(mut self) -> Result<Option<Metadata>, String> {
        if self.json.too_deep {
            return Err(too_deep_problem(&self.limits));
        }
        if self.failed {
            return Err("metadata: could not be written as JSON".to_owned());
        }
        if self.json.out == "{" {
            return Ok(None);
        }
        self.end_object();
        // Noting with nothing noted is metadata that holds no exception details.
        self.json.noting = !self.details_keys;
        self.json.finish(&self.limits).map(Some)
    }

    fn separate(&mut self) {
        if !matches!(
            self.json.out.as_bytes().last(),
            None | Some(b'{' | b'[' | b':')
        ) {
            self.json.out.push(',');
        }
    }

    /// Writes `"key":`; its value follows, then [`MetadataWriter::end_key`].
    pub fn key(&mut self, key: &str) -> KeyWritten {
        self.judged_key(key, is_sensitive_key(key))
    }

    /// [`MetadataWriter::key`] for a key whose `is_sensitive_key` answer the caller
    /// already has (remembered for keys that repeat).
    pub fn judged_key(&mut self, key: &str, sensitive: bool) -> KeyWritten {
        debug_assert_eq!(sensitive, is_sensitive_key(key), "{key:?}");
        self.separate();
        self.note_top_key(key);
        self.text(key);
        self.json.out.push(':');
        KeyWritten {
            value_at: self.json.out.len(),
            sensitive,
        }
    }

    /// Notes a top-level key the fingerprint rule reads.
    fn note_top_key(&mut self, key: &str) {
        if self.depth == TOP_DEPTH && !self.details_keys {
            self.details_keys =
                Role::Other.of_key(key, true) != Role::Other || key == "fingerprint";
        }
    }

    /// Writes `"key":` for a key of the mapping's own, a constant that is plain text and
    /// names no secret (so it is neither scanned nor matched against the sensitive
    /// words); its value follows, then [`MetadataWriter::end_key`].
    pub fn own_key(&mut self, key: &'static str) -> KeyWritten {
        debug_assert!(
            !is_sensitive_key(key) && matches!(decoded_text(Cow::Borrowed(key)), Cow::Borrowed(_)),
            "{key:?} is not plain, or names a secret"
        );
        self.separate();
        self.note_top_key(key);
        self.json.out.push('"');
        self.json.out.push_str(key);
        self.json.out.push_str("\":");
        KeyWritten {
            value_at: self.json.out.len(),
            sensitive: false,
        }
    }

    /// Ends a key's value: a sensitive key's is replaced (it was written like any
    /// value, so the depth cap held under it).
    pub fn end_key(&mut self, key: KeyWritten) {
        if key.sensitive {
            self.json.out.truncate(key.value_at);
            let written = self.json.string(Cow::Borrowed(FILTERED));
            self.record(written);
        }
    }

    fn text(&mut self, text: &str) {
        let written = self.json.string(decoded_text(Cow::Borrowed(text)));
        self.record(written);
    }

    fn record(&mut self, written: Result<(), serde_json::Error>) {
        self.failed |= written.is_err();
    }

    pub fn string(&mut self, text: &str) {
        self.separate();
        self.text(text);
    }

    pub fn i64(&mut self, value: i64) {
        self.separate();
        let written = self.json.scalar(value);
        self.record(written);
    }

    pub fn u64(&mut self, value: u64) {
        self.separate();
        let written = self.json.scalar(value);
        self.record(written);
    }

    /// A finite double as serde_json writes it (a non-finite one as `null`, as
    /// serde_json does).
    pub fn f64(&mut self, value: f64) {
        self.separate();
        let written = self.json.scalar(value);
        self.record(written);
    }

    pub fn bool(&mut self, value: bool) {
        self.separate();
        self.json.out.push_str(if value { "true" } else { "false" });
    }

    pub fn null(&mut self) {
        self.separate();
        self.json.out.push_str("null");
    }

    /// Opens an object one level down, unless that passes the depth cap.
    pub fn begin_object(&mut self) -> Result<(), TooDeep> {
        self.enter('{')
    }

    pub fn end_object(&mut self) {
        self.leave('}');
    }

    /// Opens an array one level down, unless that passes the depth cap.
    pub fn begin_array(&mut self) -> Result<(), TooDeep> {
        self.enter('[')
    }

    pub fn end_array(&mut self) {
        self.leave(']');
    }

    fn enter(&mut self, open: char) -> Result<(), TooDeep> {
        self.depth = self
            .json
            .enter::<serde_json::Error>(self.depth)
            .map_err(|_| TooDeep)?;
        self.separate();
        self.json.out.push(open);
        Ok(())
    }

    fn leave(&mut self, close: char) {
        self.depth = self.depth.saturating_sub(1);
        self.json.out.push(close);
    }

    /// Puts a fragment written for a container at this depth (one at another depth was
    /// checked against another cap, and is refused as too deep).
    pub fn fragment(&mut self, fragment: &MetadataFragment) -> Result<(), TooDeep> {
        if fragment.too_deep || fragment.container_depth != self.depth {
            self.json.too_deep = true;
            return Err(TooDeep);
        }
        self.separate();
        self.json.out.push_str(&fragment.json);
        self.json.plain &= fragment.plain;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn limits(depth: usize) -> EntryLimits {
        EntryLimits {
            max_metadata_depth: depth,
            ..EntryLimits::default()
        }
    }

    /// What `Metadata::parse` stores for the same value, the reference.
    fn parsed(value: &Value, limits: &EntryLimits) -> Result<Option<Metadata>, String> {
        let raw = serde_json::value::to_raw_value(value).unwrap();
        Metadata::parse(Some(&raw), limits)
    }

    fn write_value(writer: &mut MetadataWriter, value: &Value) -> Result<(), TooDeep> {
        match value {
            Value::Null => writer.null(),
            Value::Bool(flag) => writer.bool(*flag),
            Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
                (Some(int), _, _) => writer.i64(int),
                (_, Some(int), _) => writer.u64(int),
                (_, _, Some(double)) => writer.f64(double),
                _ => unreachable!(),
            },
            Value::String(text) => writer.string(text),
            Value::Array(items) => {
                writer.begin_array()?;
                for item in items {
                    write_value(writer, item)?;
                }
                writer.end_array();
            }
            Value::Object(members) => {
                writer.begin_object()?;
                write_members(writer, members)?;
                writer.end_object();
            }
        }
        Ok(())
    }

    fn write_members(
        writer: &mut MetadataWriter,
        members: &serde_json::Map<String, Value>,
    ) -> Result<(), TooDeep> {
        for (key, value) in members {
            let key_written = writer.key(key);
            write_value(writer, value)?;
            writer.end_key(key_written);
        }
        Ok(())
    }

    fn written(value: &Value, limits: &EntryLimits) -> Result<Option<Metadata>, String> {
        let mut writer = MetadataWriter::new(limits, 0);
        let _ = write_members(&mut writer, value.as_object().unwrap());
        writer.finish()
    }

    #[test]
    fn written_values_are_stored_as_their_json_would_be() {
        let value = json!({
            "n": [1, -2, 1.5, 1e300, 18446744073709551615u64, null, true, false],
            "s": "quote \" backslash \\ tab \t é 😀 \u{1} nul \u{0}",
            "o": {"e": {}, "a": [], "Password": {"deep": [1]}},
            "api_key": "k",
            "plain": "text",
        });
        let expected = parsed(&value, &limits(16)).unwrap().unwrap();
        let got = written(&value, &limits(16)).unwrap().unwrap();
        assert_eq!(got.as_json(), expected.as_json());
        assert!(got.as_json().contains(r#""api_key":"[FILTERED]""#));
        assert!(!got.is_plain());
        let plain = json!({"a": "b", "c": [1, {"d": "e"}]});
        let got = written(&plain, &limits(16)).unwrap().unwrap();
        assert!(got.is_plain());
        assert_eq!(got, parsed(&plain, &limits(16)).unwrap().unwrap());
    }

    #[test]
    fn the_depth_and_size_caps_are_the_parsers() {
        let three = json!({"a": [{"b": 1}], "password": {"x": {"y": 1}}});
        for depth in 1..5 {
            assert_eq!(
                written(&three, &limits(depth)),
                parsed(&three, &limits(depth)),
                "{depth}"
            );
        }
        let big = json!({"big": "x".repeat(70_000)});
        let problem = written(&big, &limits(16)).unwrap_err();
        assert_eq!(Err(problem), parsed(&big, &limits(16)));
        assert_eq!(written(&json!({}), &limits(16)), Ok(None));
    }

    #[test]
    fn exception_details_are_those_a_read_of_the_stored_text_finds() {
        use crate::domain::error_details_of;
        for value in [
            json!({"exception": {"class": "E", "message": "m", "backtrace": ["a.rb:1"]}}),
            json!({"exception.type": "T", "exception.stacktrace": "a.rb:1\nb.rb:2"}),
            json!({"kind": "request", "path": "/"}),
            json!({"fingerprint": ["a", 1], "user": "u"}),
            json!({"nested": {"exception": {"class": "E"}, "kind": "job"}}),
            json!({"request_id": "r", "resource": {"exception.type": "T"}}),
        ] {
            let metadata = written(&value, &limits(16)).unwrap().unwrap();
            let noted = metadata.error_details();
            let read = error_details_of(metadata.as_json());
            assert_eq!(noted.class(), read.class(), "{value}");
            assert_eq!(noted.message(), read.message(), "{value}");
            assert_eq!(noted.kind(), read.kind(), "{value}");
            assert_eq!(
                noted.explicit_fingerprint(),
                read.explicit_fingerprint(),
                "{value}"
            );
            assert_eq!(noted.frames().count(), read.frames().count(), "{value}");
            assert_eq!(noted.any_exception(), read.any_exception(), "{value}");
        }
        let class = |value: Value| {
            let metadata = written(&value, &limits(16)).unwrap().unwrap();
            let details = metadata.error_details();
            details.class().map(|class| class.into_owned())
        };
        assert_eq!(
            class(json!({"a": 1, "exception.type": "T"})).as_deref(),
            Some("T")
        );
        assert_eq!(class(json!({"nested": {"exception.type": "T"}})), None);
    }

    #[test]
    fn a_fragment_is_put_as_written_at_its_depth_only() {
        let limits = limits(3);
        let mut resource = MetadataWriter::fragment_in(&limits, 1, 0);
        resource.begin_object().unwrap();
        let key = resource.key("host.name");
        resource.string("web-1");
        resource.end_key(key);
        resource.end_object();
        let fragment = resource.into_fragment();

        let mut writer = MetadataWriter::new(&limits, 0);
        let key = writer.key("resource");
        writer.fragment(&fragment).unwrap();
        writer.end_key(key);
        assert_eq!(
            writer.finish().unwrap().unwrap().as_json(),
            r#"{"resource":{"host.name":"web-1"}}"#
        );

        let mut writer = MetadataWriter::new(&limits, 0);
        let key = writer.key("a");
        writer.begin_object().unwrap();
        let inner = writer.key("resource");
        assert_eq!(writer.fragment(&fragment), Err(TooDeep));
        writer.end_key(inner);
        writer.end_object();
        writer.end_key(key);
        assert!(writer.finish().unwrap_err().contains("nested more than 3"));
    }
}
