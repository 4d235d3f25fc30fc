//! `MetadataConverter`: any Ruby value to the JSON text of the metadata object.
//!
//! Owns the rules for turning a metadata argument (and a message) into JSON, on the
//! caller's thread, with the GVL held. It is the gem's only converter: test mode records
//! what it produces too (`LogIngestion::Native.entry_json`). The rules: Time, and objects
//! whose `getutc` is a Time (TimeWithZone) -> the entry timestamp format
//! (`log_ingestion_engine::timestamp`), Symbol and unknown objects -> `to_s`, other
//! objects answering `iso8601` -> `iso8601` (or `to_s` when `iso8601` raises), non-finite
//! floats and integers beyond 64 bits -> `to_s`; cycles, depth, collection size and
//! total text size are cut with visible markers; an object's keys are written sorted,
//! and a later key with the same text replaces an earlier one (as in a `serde_json::Map`).
//! It writes the JSON bytes straight from the Ruby values (every string and number
//! through `serde_json`'s writer, so the text is what serialising a `Map` would give)
//! without building a `Map`, which would be most of a log call's native cost; a log
//! call's metadata is written straight into its
//! entry's buffer (`write_metadata`). It never keeps a Ruby value after returning. A
//! `StandardError` raised by a value's own method (`to_s`, `iso8601`, `getutc`) becomes a
//! placeholder string naming the object's class; anything else that stops that method --
//! the host's `throw`, `Thread#kill`, `exit`, `Interrupt`, a timeout (`Timeout`'s, or a
//! rack-timeout-style exception raised into the thread), any exception that is not a
//! `StandardError` -- is not the converter's to handle: it stops the conversion and is
//! returned unchanged (its thread-local stacks given back cleared), for the binding to
//! hand back to Ruby.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Range;

use log_ingestion_engine::MetadataJson;
use log_ingestion_wire::limits;
use magnus::r_hash::ForEach;
use magnus::rb_sys::AsRawValue;
use magnus::value::ReprValue;
use magnus::{Error, Float, Integer, RArray, RHash, RString, Ruby, Symbol, Time, Value};
use serde::Serialize;

use crate::ruby_text::{
    describe, floor_char_boundary, iso8601_utc, own_failure, time_like, with_utf8, TRUNCATED_SUFFIX,
};

// Sized so the JSON stays within the server's default limits (the wire crate's
// `limits`; checked below): text is budgeted, plus VALUE_OVERHEAD per key and value,
// with room left for JSON's quotes and escapes.
pub const MAX_DEPTH: usize = 12;
pub const MAX_COLLECTION_SIZE: usize = 1000;
pub const MAX_STRING_BYTES: usize = 16 * 1024;
pub const MAX_TOTAL_BYTES: usize = 40 * 1024;
pub const VALUE_OVERHEAD: usize = 4;
pub const CYCLE: &str = "[cycle]";
pub const DEPTH_LIMIT: &str = "[depth limit]";
pub const TRUNCATED: &str = "[truncated]";

const _: () = assert!(MAX_DEPTH < limits::DEFAULT_MAX_METADATA_DEPTH);
const _: () = assert!(MAX_TOTAL_BYTES < limits::DEFAULT_MAX_METADATA_BYTES * 2 / 3);
const _: () = assert!(MAX_STRING_BYTES <= MAX_TOTAL_BYTES);

// First guesses that fit a typical call's metadata (a handful of short keys) with one
// allocation each; the buffers grow past them.
pub const JSON_CAPACITY_GUESS: usize = 192;
const KEYS_CAPACITY_GUESS: usize = 96;
const MEMBERS_CAPACITY_GUESS: usize = 8;

// The key and member stacks a thread's converter keeps for its next call (two
// allocations and frees saved per log call), when they stayed within these bounds: a
// huge metadata argument must not leave a thread holding its buffers for good.
const SCRATCH_KEYS_MAX: usize = 4 * 1024;
const SCRATCH_MEMBERS_MAX: usize = 256;

/// The stacks a converter works in, lent by this thread's `SCRATCH` between calls.
#[derive(Default)]
struct Scratch {
    keys: String,
    members: Vec<Member>,
}

thread_local! {
    /// Taken (left empty) by a converter when it starts and given back when it is done,
    /// so a converter started meanwhile on this thread (Ruby code run by a conversion,
    /// e.g. a `to_s` that logs) simply gets empty stacks: no borrow is held across Ruby.
    static SCRATCH: Cell<Scratch> = Cell::new(Scratch::default());
}

impl Scratch {
    fn take() -> Scratch {
        SCRATCH.try_with(Cell::take).unwrap_or_default()
    }

    fn give_back(mut self) {
        if self.keys.capacity() > SCRATCH_KEYS_MAX || self.members.capacity() > SCRATCH_MEMBERS_MAX
        {
            return;
        }
        self.keys.clear();
        self.members.clear();
        // Fails only while the thread is exiting: the stacks are then just dropped.
        let _ = SCRATCH.try_with(|scratch| scratch.set(self));
    }
}

/// One key and value of a Hash being written: the key's text in `keys`, the value's
/// JSON in `json`.
struct Member {
    key: Range<usize>,
    value: Range<usize>,
}

/// Converts one metadata argument; create one per call.
pub struct MetadataConverter<'r> {
    ruby: &'r Ruby,
    remaining: usize,
    /// Raw VALUEs of the Hashes/Arrays being converted (the path from the root), in a
    /// fixed array: depth is capped at MAX_DEPTH, and a Vec cost every call an allocation.
    open_collections: [usize; MAX_DEPTH],
    open_len: usize,
    /// The JSON written so far. A Hash's values are written here as they come, then
    /// replaced by the object (keys sorted) once the Hash is done.
    json: Vec<u8>,
    /// The (unescaped) key text of the Hashes being written, one stack for all levels.
    keys: String,
    /// The members of the Hashes being written, one stack for all levels.
    members: Vec<Member>,
}

impl<'r> MetadataConverter<'r> {
    pub fn new(ruby: &'r Ruby) -> Self {
        MetadataConverter {
            ruby,
            remaining: MAX_TOTAL_BYTES,
            open_collections: [0; MAX_DEPTH],
            open_len: 0,
            json: Vec::new(),
            keys: String::new(),
            members: Vec::new(),
        }
    }

    /// The metadata object for `metadata`: nil -> `{}`, a Hash -> its conversion,
    /// anything else -> `{"value": conversion}`; or the host's interrupt that stopped it.
    pub fn metadata(self, metadata: Value) -> Result<MetadataJson, Error> {
        if metadata.is_nil() {
            return Ok(MetadataJson::empty());
        }
        let mut json = Vec::with_capacity(JSON_CAPACITY_GUESS);
        self.write_metadata(metadata, &mut json)?;
        // Every byte came from a &str through serde_json or from ASCII punctuation, so
        // this never fails; the fallback only keeps a broken invariant from panicking.
        let text = String::from_utf8(json).unwrap_or_else(|_| "{}".to_owned());
        Ok(MetadataJson::from_object_text(text))
    }

    /// Appends the metadata object for `metadata` (as `metadata` gives it) to `out`,
    /// leaving what `out` holds before it as it is: a log call writes it straight into
    /// its entry's buffer (`EntryWriter`), with no buffer of its own and no copy. When a
    /// host's interrupt stops the conversion, `out` is given back as it was and the
    /// interrupt returned.
    pub fn write_metadata(mut self, metadata: Value, out: &mut Vec<u8>) -> Result<(), Error> {
        if metadata.is_nil() {
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        let start = out.len();
        self.json = std::mem::take(out);
        let Scratch { keys, members } = Scratch::take();
        self.keys = keys;
        self.members = members;
        self.keys.reserve(KEYS_CAPACITY_GUESS);
        self.members.reserve(MEMBERS_CAPACITY_GUESS);
        let converted = if RHash::from_value(metadata).is_some() {
            // depth 1 is within MAX_DEPTH and nothing is open yet: always an object.
            self.convert(metadata, 1)
        } else {
            self.json.extend_from_slice(b"{\"value\":");
            let converted = self.convert(metadata, 1);
            self.json.push(b'}');
            converted
        };
        *out = std::mem::take(&mut self.json);
        // Given back cleared on both ends: an interrupted conversion leaves no member,
        // key or half-written value behind for the next call on this thread.
        Scratch {
            keys: std::mem::take(&mut self.keys),
            members: std::mem::take(&mut self.members),
        }
        .give_back();
        if converted.is_err() {
            out.truncate(start);
        }
        converted
    }

    fn convert(&mut self, value: Value, depth: usize) -> Result<(), Error> {
        self.charge(VALUE_OVERHEAD);
        if value.is_nil() {
            self.json.extend_from_slice(b"null");
            return Ok(());
        }
        // true and false are immediates: compared as such, not through is_kind_of's
        // class walk, which every String, Symbol and number paid twice.
        let raw = value.as_raw();
        if raw == rb_sys::Qtrue as rb_sys::VALUE {
            self.json.extend_from_slice(b"true");
            return Ok(());
        }
        if raw == rb_sys::Qfalse as rb_sys::VALUE {
            self.json.extend_from_slice(b"false");
            return Ok(());
        }
        if let Some(integer) = Integer::from_value(value) {
            if let Ok(n) = integer.to_i64() {
                write_json(&mut self.json, &n);
                return Ok(());
            }
            if let Ok(n) = integer.to_u64() {
                write_json(&mut self.json, &n);
                return Ok(());
            }
            self.write_text(&describe(self.ruby, value)?);
            return Ok(());
        }
        if let Some(float) = Float::from_value(value) {
            let f = float.to_f64();
            if f.is_finite() {
                write_json(&mut self.json, &f);
                return Ok(());
            }
            self.write_text(&describe(self.ruby, value)?);
            return Ok(());
        }
        if let Some(string) = RString::from_value(value) {
            return with_utf8(self.ruby, string, |text| self.write_text(text));
        }
        if let Some(symbol) = Symbol::from_value(value) {
            self.write_text(&symbol_name(symbol));
            return Ok(());
        }
        if let Some(time) = Time::from_value(value) {
            let text = match iso8601_utc(time) {
                Some(text) => text,
                None => describe(self.ruby, value)?,
            };
            write_json(&mut self.json, text.as_str());
            return Ok(());
        }
        if let Some(hash) = RHash::from_value(value) {
            return self.collection(value, depth, |this| this.hash(hash, depth));
        }
        if let Some(array) = RArray::from_value(value) {
            return self.collection(value, depth, |this| this.array(array, depth));
        }
        if let Some(text) = time_like(self.ruby, value)? {
            write_json(&mut self.json, text.as_str());
            return Ok(());
        }
        self.write_text(&describe(self.ruby, value)?);
        Ok(())
    }

    fn collection(
        &mut self,
        value: Value,
        depth: usize,
        convert: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            write_json(&mut self.json, DEPTH_LIMIT);
            return Ok(());
        }
        let id = value.as_raw() as usize;
        let open = self.open_len;
        if self.open_collections[..open].contains(&id) {
            write_json(&mut self.json, CYCLE);
            return Ok(());
        }
        // depth <= MAX_DEPTH here and each level opens at most one collection, so
        // open < MAX_DEPTH; `get_mut` keeps an impossible overflow from panicking.
        let Some(slot) = self.open_collections.get_mut(open) else {
            write_json(&mut self.json, DEPTH_LIMIT);
            return Ok(());
        };
        *slot = id;
        self.open_len = open + 1;
        let converted = convert(self);
        self.open_len = open;
        converted
    }

    fn hash(&mut self, hash: RHash, depth: usize) -> Result<(), Error> {
        let first_member = self.members.len();
        let keys_start = self.keys.len();
        let values_start = self.json.len();
        let mut index = 0usize;
        let mut truncated = false;
        // A host's interrupt inside a key's or value's conversion stops the iteration
        // (the closure answers Stop, never Err: nothing is raised through Ruby's frames)
        // and is returned once foreach is done.
        let mut interrupted = None;
        let iterated = hash.foreach(|key: Value, value: Value| {
            if index >= MAX_COLLECTION_SIZE || self.remaining == 0 {
                truncated = true;
                return Ok(ForEach::Stop);
            }
            index += 1;
            self.charge(VALUE_OVERHEAD);
            let member = self.key(key).and_then(|key| {
                let value_start = self.json.len();
                self.convert(value, depth + 1)?;
                Ok(Member {
                    key,
                    value: value_start..self.json.len(),
                })
            });
            match member {
                Ok(member) => {
                    self.members.push(member);
                    Ok(ForEach::Continue)
                }
                Err(error) => {
                    interrupted = Some(error);
                    Ok(ForEach::Stop)
                }
            }
        });
        if let Some(error) = interrupted {
            return Err(error);
        }
        // foreach itself fails when Ruby raised in it (e.g. the hash was changed by a
        // to_s during iteration): keep what we have, unless it is the host's interrupt.
        if let Err(error) = iterated {
            own_failure(self.ruby, error)?;
        }
        if truncated {
            let key = push_key(&mut self.keys, TRUNCATED);
            let value_start = self.json.len();
            self.json.extend_from_slice(b"true");
            self.members.push(Member {
                key,
                value: value_start..self.json.len(),
            });
        }
        self.write_object(first_member, values_start);
        self.members.truncate(first_member);
        self.keys.truncate(keys_start);
        Ok(())
    }

    /// Replaces the values written from `values_start` with the object of the members
    /// from `first_member`: keys sorted by their text, the last of equal keys kept.
    fn write_object(&mut self, first_member: usize, values_start: usize) {
        let MetadataConverter {
            json,
            keys,
            members,
            ..
        } = self;
        let Some(members) = members.get_mut(first_member..) else {
            return;
        };
        // A stable sort: members with equal keys stay in the order the Hash gave them.
        members.sort_by(|a, b| key_text(keys, a).cmp(key_text(keys, b)));
        // The object is written after the values, then moved over them.
        let object_start = json.len();
        json.push(b'{');
        let mut written = 0usize;
        for (i, member) in members.iter().enumerate() {
            let key = key_text(keys, member);
            if members
                .get(i + 1)
                .is_some_and(|next| key_text(keys, next) == key)
            {
                continue;
            }
            if written > 0 {
                json.push(b',');
            }
            written += 1;
            write_json(json, key);
            json.push(b':');
            json.extend_from_within(member.value.clone());
        }
        json.push(b'}');
        json.copy_within(object_start.., values_start);
        json.truncate(values_start + (json.len() - object_start));
    }

    fn array(&mut self, array: RArray, depth: usize) -> Result<(), Error> {
        self.json.push(b'[');
        let mut index = 0usize;
        // Indexing each time (not a slice) because to_s on an element may change the array.
        while index < array.len() {
            if index > 0 {
                self.json.push(b',');
            }
            if index >= MAX_COLLECTION_SIZE || self.remaining == 0 {
                write_json(&mut self.json, TRUNCATED);
                break;
            }
            let element: Value = match array.entry(index as isize) {
                Ok(element) => element,
                Err(error) => {
                    own_failure(self.ruby, error)?;
                    // The comma just written has no element after it.
                    if index > 0 {
                        self.json.pop();
                    }
                    break;
                }
            };
            self.convert(element, depth + 1)?;
            index += 1;
        }
        self.json.push(b']');
        Ok(())
    }

    fn charge(&mut self, bytes: usize) {
        self.remaining = self.remaining.saturating_sub(bytes);
    }

    /// Pushes the key's text (budgeted like any text) onto `keys`.
    fn key(&mut self, key: Value) -> Result<Range<usize>, Error> {
        if let Some(string) = RString::from_value(key) {
            return with_utf8(self.ruby, string, |text| self.push_key_text(text));
        }
        if let Some(symbol) = Symbol::from_value(key) {
            return Ok(self.push_key_text(&symbol_name(symbol)));
        }
        Ok(self.push_key_text(&describe(self.ruby, key)?))
    }

    fn push_key_text(&mut self, text: &str) -> Range<usize> {
        let start = self.keys.len();
        let (kept, cut) = self.budget(text);
        self.keys.push_str(kept);
        if cut {
            self.keys.push_str(TRUNCATED_SUFFIX);
        }
        start..self.keys.len()
    }

    /// Writes `text` as a JSON string, cut to the per-string and remaining total budget.
    fn write_text(&mut self, text: &str) {
        match self.budget(text) {
            (kept, false) => write_json(&mut self.json, kept),
            (kept, true) => {
                let cut = [kept, TRUNCATED_SUFFIX].concat();
                write_json(&mut self.json, cut.as_str());
            }
        }
    }

    /// The part of `text` within the per-string and the remaining total budget, charged
    /// to it, and whether it was cut (then `TRUNCATED_SUFFIX` follows it).
    fn budget<'t>(&mut self, text: &'t str) -> (&'t str, bool) {
        let limit = MAX_STRING_BYTES.min(self.remaining);
        if text.len() > limit {
            self.remaining -= limit;
            (&text[..floor_char_boundary(text, limit)], true)
        } else {
            self.remaining -= text.len();
            (text, false)
        }
    }
}

fn push_key(keys: &mut String, text: &str) -> Range<usize> {
    let start = keys.len();
    keys.push_str(text);
    start..keys.len()
}

fn key_text<'k>(keys: &'k str, member: &Member) -> &'k str {
    keys.get(member.key.clone()).unwrap_or_default()
}

/// Appends `value`'s JSON as `serde_json` writes it (the one JSON writer of the gem).
fn write_json<T: Serialize + ?Sized>(json: &mut Vec<u8>, value: &T) {
    // Only strings and numbers come here, and writing to a Vec cannot fail: the error
    // is impossible, not ignored.
    let _ = serde_json::to_writer(json, value);
}

fn symbol_name(symbol: Symbol) -> Cow<'static, str> {
    symbol.name().unwrap_or_default()
}
