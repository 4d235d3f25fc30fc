//! `MetadataConverter`: any Ruby value to owned JSON data (`serde_json::Value`).
//!
//! Owns the rules for turning a metadata argument (and a message) into JSON, on the
//! caller's thread, with the GVL held. It is the gem's only converter: test mode records
//! what it produces too (`LogIngestion::Native.entry_json`). The rules: Time, and objects
//! whose `getutc` is a Time (TimeWithZone) -> the entry timestamp format
//! (`log_ingestion_engine::timestamp`), Symbol and unknown objects -> `to_s`, other
//! objects answering `iso8601` -> `iso8601` (or `to_s` when `iso8601` raises), non-finite
//! floats and integers beyond 64 bits -> `to_s`; cycles, depth, collection size and
//! total text size are cut with visible markers. It never keeps a Ruby value after
//! returning and never fails: a Ruby exception raised while converting becomes a
//! placeholder string naming the object's class.

use chrono::DateTime;
use magnus::encoding::EncodingCapable;
use magnus::r_hash::ForEach;
use magnus::rb_sys::AsRawValue;
use magnus::value::ReprValue;
use magnus::{Float, Integer, RArray, RHash, RString, Ruby, Symbol, Time, Value};
use serde_json::{Map, Number};

// Sized so the JSON stays within the server's default limits (metadata 64 KiB, depth
// 16, message 64 KiB): text is budgeted, plus VALUE_OVERHEAD per key and value.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COLLECTION_SIZE: usize = 1000;
pub const MAX_STRING_BYTES: usize = 16 * 1024;
pub const MAX_TOTAL_BYTES: usize = 40 * 1024;
pub const VALUE_OVERHEAD: usize = 4;
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const CYCLE: &str = "[cycle]";
pub const DEPTH_LIMIT: &str = "[depth limit]";
pub const TRUNCATED: &str = "[truncated]";
pub const TRUNCATED_SUFFIX: &str = "...[truncated]";

/// Converts one metadata argument; create one per call.
pub struct MetadataConverter<'r> {
    ruby: &'r Ruby,
    remaining: usize,
    /// Raw VALUEs of the Hashes/Arrays being converted (the path from the root), in a
    /// fixed array: depth is capped at MAX_DEPTH, and a Vec cost every call an allocation.
    open_collections: [usize; MAX_DEPTH],
    open_len: usize,
}

impl<'r> MetadataConverter<'r> {
    pub fn new(ruby: &'r Ruby) -> Self {
        MetadataConverter {
            ruby,
            remaining: MAX_TOTAL_BYTES,
            open_collections: [0; MAX_DEPTH],
            open_len: 0,
        }
    }

    /// The metadata object for `metadata`: nil -> `{}`, a Hash -> its conversion,
    /// anything else -> `{"value": conversion}`.
    pub fn metadata(mut self, metadata: Value) -> Map<String, serde_json::Value> {
        if metadata.is_nil() {
            return Map::new();
        }
        let converted = self.convert(metadata, 1);
        match converted {
            serde_json::Value::Object(map) if RHash::from_value(metadata).is_some() => map,
            other => {
                let mut map = Map::new();
                map.insert("value".to_owned(), other);
                map
            }
        }
    }

    fn convert(&mut self, value: Value, depth: usize) -> serde_json::Value {
        use serde_json::Value as J;
        self.charge(VALUE_OVERHEAD);
        if value.is_nil() {
            return J::Null;
        }
        // true and false are immediates: compared as such, not through is_kind_of's
        // class walk, which every String, Symbol and number paid twice.
        let raw = value.as_raw();
        if raw == rb_sys::Qtrue as rb_sys::VALUE {
            return J::Bool(true);
        }
        if raw == rb_sys::Qfalse as rb_sys::VALUE {
            return J::Bool(false);
        }
        if let Some(integer) = Integer::from_value(value) {
            if let Ok(n) = integer.to_i64() {
                return J::from(n);
            }
            if let Ok(n) = integer.to_u64() {
                return J::from(n);
            }
            return J::String(self.text_of(describe(value)));
        }
        if let Some(float) = Float::from_value(value) {
            let f = float.to_f64();
            return match Number::from_f64(f) {
                Some(n) => J::Number(n),
                None => J::String(self.text_of(describe(value))),
            };
        }
        if let Some(string) = RString::from_value(value) {
            return J::String(self.string(string));
        }
        if let Some(symbol) = Symbol::from_value(value) {
            let name = symbol.name().map(|n| n.into_owned()).unwrap_or_default();
            return J::String(self.text_of(name));
        }
        if let Some(time) = Time::from_value(value) {
            return J::String(iso8601_utc(time).unwrap_or_else(|| describe(value)));
        }
        if let Some(hash) = RHash::from_value(value) {
            return self.collection(value, depth, |this| J::Object(this.hash(hash, depth)));
        }
        if let Some(array) = RArray::from_value(value) {
            return self.collection(value, depth, |this| J::Array(this.array(array, depth)));
        }
        if let Some(text) = time_like(value) {
            return J::String(text);
        }
        J::String(self.text_of(describe(value)))
    }

    fn collection(
        &mut self,
        value: Value,
        depth: usize,
        convert: impl FnOnce(&mut Self) -> serde_json::Value,
    ) -> serde_json::Value {
        if depth > MAX_DEPTH {
            return serde_json::Value::String(DEPTH_LIMIT.to_owned());
        }
        let id = value.as_raw() as usize;
        let open = self.open_len;
        if self.open_collections[..open].contains(&id) {
            return serde_json::Value::String(CYCLE.to_owned());
        }
        // depth <= MAX_DEPTH here and each level opens at most one collection, so
        // open < MAX_DEPTH; `get_mut` keeps an impossible overflow from panicking.
        let Some(slot) = self.open_collections.get_mut(open) else {
            return serde_json::Value::String(DEPTH_LIMIT.to_owned());
        };
        *slot = id;
        self.open_len = open + 1;
        let converted = convert(self);
        self.open_len = open;
        converted
    }

    fn hash(&mut self, hash: RHash, depth: usize) -> Map<String, serde_json::Value> {
        let mut map = Map::new();
        let mut index = 0usize;
        // The closure never returns Err, so foreach only fails if Ruby itself raised
        // (e.g. the hash was changed by a to_s during iteration): keep what we have.
        let _ = hash.foreach(|key: Value, value: Value| {
            if index >= MAX_COLLECTION_SIZE || self.remaining == 0 {
                map.insert(TRUNCATED.to_owned(), serde_json::Value::Bool(true));
                return Ok(ForEach::Stop);
            }
            index += 1;
            self.charge(VALUE_OVERHEAD);
            let key = self.key(key);
            let value = self.convert(value, depth + 1);
            map.insert(key, value);
            Ok(ForEach::Continue)
        });
        map
    }

    fn array(&mut self, array: RArray, depth: usize) -> Vec<serde_json::Value> {
        let mut result = Vec::new();
        let mut index = 0usize;
        // Indexing each time (not a slice) because to_s on an element may change the array.
        while index < array.len() {
            if index >= MAX_COLLECTION_SIZE || self.remaining == 0 {
                result.push(serde_json::Value::String(TRUNCATED.to_owned()));
                break;
            }
            let element: Value = match array.entry(index as isize) {
                Ok(element) => element,
                Err(_) => break,
            };
            result.push(self.convert(element, depth + 1));
            index += 1;
        }
        result
    }

    fn charge(&mut self, bytes: usize) {
        self.remaining = self.remaining.saturating_sub(bytes);
    }

    fn key(&mut self, key: Value) -> String {
        if let Some(string) = RString::from_value(key) {
            return self.string(string);
        }
        if let Some(symbol) = Symbol::from_value(key) {
            let name = symbol.name().map(|n| n.into_owned()).unwrap_or_default();
            return self.text_of(name);
        }
        self.text_of(describe(key))
    }

    fn string(&mut self, string: RString) -> String {
        let text = utf8(self.ruby, string);
        self.text_of(text)
    }

    /// `text` cut to the per-string and the remaining total budget.
    fn text_of(&mut self, mut text: String) -> String {
        let limit = MAX_STRING_BYTES.min(self.remaining);
        if text.len() > limit {
            text.truncate(floor_char_boundary(&text, limit));
            text.push_str(TRUNCATED_SUFFIX);
            self.remaining -= limit;
        } else {
            self.remaining -= text.len();
        }
        text
    }
}

/// The message to send: valid UTF-8, cut to `MAX_MESSAGE_BYTES` (suffix included).
pub fn message(ruby: &Ruby, message: RString) -> String {
    let mut text = utf8(ruby, message);
    if text.len() > MAX_MESSAGE_BYTES {
        text.truncate(floor_char_boundary(
            &text,
            MAX_MESSAGE_BYTES - TRUNCATED_SUFFIX.len(),
        ));
        text.push_str(TRUNCATED_SUFFIX);
    }
    text
}

/// The string's text as UTF-8: bytes of UTF-8/US-ASCII/BINARY strings read as UTF-8
/// (invalid sequences replaced), other encodings transcoded by Ruby.
pub fn utf8(ruby: &Ruby, string: RString) -> String {
    let encoding = string.enc_get();
    let pass_through = encoding == ruby.utf8_encindex()
        || encoding == ruby.usascii_encindex()
        || encoding == ruby.ascii8bit_encindex();
    if !pass_through {
        let converted: Result<RString, _> = string.funcall(
            "encode",
            (
                "UTF-8",
                magnus::kwargs!(ruby, "invalid" => ruby.to_symbol("replace"), "undef" => ruby.to_symbol("replace")),
            ),
        );
        if let Ok(converted) = converted {
            return bytes_to_string(converted);
        }
    }
    bytes_to_string(string)
}

fn bytes_to_string(string: RString) -> String {
    // SAFETY: the bytes are copied at once, before any Ruby code can run.
    let bytes = unsafe { string.as_slice() };
    String::from_utf8_lossy(bytes).into_owned()
}

/// `iso8601` when the object answers it, else `to_s`, else a placeholder naming its class.
fn describe(value: Value) -> String {
    let described: Option<Result<RString, magnus::Error>> = value.check_funcall("iso8601", ());
    let described = match described {
        Some(Ok(text)) => Ok(text),
        _ => value.funcall::<_, _, RString>("to_s", ()),
    };
    match described {
        Ok(text) => utf8(&Ruby::get_with(value), text),
        Err(_) => format!("#<{}>", unsafe { value.classname() }),
    }
}

/// The timestamp text of a Time, or of a Time stand-in (ActiveSupport::TimeWithZone,
/// what Rails' `Time.current` returns) whose `getutc` answers a Time; None for anything else.
pub fn time_text(value: Value) -> Option<String> {
    if let Some(time) = Time::from_value(value) {
        return iso8601_utc(time);
    }
    time_like(value)
}

fn time_like(value: Value) -> Option<String> {
    let utc: Result<Value, magnus::Error> = value.check_funcall("getutc", ())?;
    iso8601_utc(Time::from_value(utc.ok()?)?)
}

fn iso8601_utc(time: Time) -> Option<String> {
    let spec = time.timespec().ok()?;
    let nanos = u32::try_from(spec.tv_nsec).ok()?;
    let utc = DateTime::from_timestamp(spec.tv_sec, nanos)?;
    Some(log_ingestion_engine::timestamp(utc))
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}
