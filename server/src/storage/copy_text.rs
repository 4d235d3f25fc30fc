//! Encodes entries as rows of PostgreSQL's text `COPY` format. It never decides what
//! is valid: entries arrive valid and NUL-free from `domain`, which also says which
//! text is plain (no backslash, no control character: nothing to escape), copied as it
//! is without a scan. Each error entry's fingerprint (`errors::fingerprint`) is written
//! with its row and tallied for its group (`error_groups`).

use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::declared_indexes::DeclaredKeys;
use super::error_groups::ErrorTally;
use crate::domain::LogEntry;
use crate::errors::fingerprint::fingerprint;

/// Rows of the text `COPY` format, one per valid entry: a request's entries are
/// written here as soon as they are validated, straight from the borrowed body, and the
/// group committer concatenates requests' rows. Only `push` adds to it. Its rows fill
/// the columns of `declared`'s `COPY` statement.
#[derive(Debug)]
pub struct CopyRows {
    data: Vec<u8>,
    count: usize,
    declared: Arc<DeclaredKeys>,
    errors: ErrorTally,
}

impl CopyRows {
    /// Room for about `bytes` of rows (a request's rows are about its body's size).
    pub fn with_capacity(bytes: usize, declared: Arc<DeclaredKeys>) -> Self {
        CopyRows {
            data: Vec::with_capacity(bytes),
            count: 0,
            declared,
            errors: ErrorTally::default(),
        }
    }

    /// The error occurrences among these rows, by group.
    pub fn errors(&self) -> &ErrorTally {
        &self.errors
    }

    /// The declared keys these rows have fields for.
    pub fn declared(&self) -> &Arc<DeclaredKeys> {
        &self.declared
    }

    pub fn push(&mut self, entry: &LogEntry<'_>) {
        let error = fingerprint(entry);
        push_row(
            &mut self.data,
            entry,
            error.as_ref().map(|error| error.fingerprint.as_str()),
            &self.declared,
        );
        if let Some(error) = error {
            self.errors.add(entry.service(), error, entry.timestamp());
        }
        self.count += 1;
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The rows as `COPY` data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The same rows with a field per key of `declared` instead of the keys they were
    /// built for (the declared keys changed while they waited): each row's own five
    /// fields are kept as they are, the declared keys' fields are made again from its
    /// stored metadata.
    pub fn for_keys(&self, declared: Arc<DeclaredKeys>) -> CopyRows {
        let mut data = Vec::with_capacity(self.data.len());
        for row in self.data.split(|&byte| byte == b'\n') {
            if row.is_empty() {
                continue;
            }
            // Tabs and newlines inside a field are escaped: a raw one separates.
            let own: Vec<&[u8]> = row.split(|&byte| byte == b'\t').take(OWN_FIELDS).collect();
            data.extend_from_slice(&own.join(&b'\t'));
            let metadata = own
                .get(METADATA_FIELD)
                .filter(|field| **field != b"\\N")
                .map(|field| unescape_field(field));
            declared.push_fields(&mut data, metadata.as_deref());
            data.push(b'\n');
        }
        CopyRows {
            data,
            count: self.count,
            declared,
            errors: self.errors.clone(),
        }
    }
}

/// The fields of a row before the declared keys': timestamp, service, level, message,
/// metadata, fingerprint.
const OWN_FIELDS: usize = 6;
/// Which of them is the metadata.
const METADATA_FIELD: usize = 4;

/// The text of one field as [`push_field`] escaped it.
fn unescape_field(field: &[u8]) -> String {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends one row for `entry` to `out`, with its error `fingerprint` (hex digits: nothing
/// to escape) and a field per key of `declared`.
fn push_row(
    out: &mut Vec<u8>,
    entry: &LogEntry<'_>,
    fingerprint: Option<&str>,
    declared: &DeclaredKeys,
) {
    push_timestamp(out, entry.timestamp());
    out.push(b'\t');
    push_text(out, entry.service(), entry.service_is_plain());
    out.push(b'\t');
    out.extend_from_slice(entry.level().as_str().as_bytes());
    out.push(b'\t');
    push_text(out, entry.message(), entry.message_is_plain());
    out.push(b'\t');
    match entry.metadata() {
        Some(metadata) => push_text(out, metadata.as_json(), metadata.is_plain()),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    match fingerprint {
        Some(fingerprint) => push_field(out, fingerprint),
        None => out.extend_from_slice(b"\\N"),
    }
    declared.push_fields(out, entry.metadata().map(|metadata| metadata.as_json()));
    out.push(b'\n');
}

/// Appends `text` as one field: as it is when `domain` found it plain (nothing in it
/// to escape), else through [`push_field`].
fn push_text(out: &mut Vec<u8>, text: &str, plain: bool) {
    if plain {
        out.extend_from_slice(text.as_bytes());
    } else {
        push_field(out, text);
    }
}

/// How `push_timestamp` writes a time: UTC with microseconds, as PostgreSQL reads it.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f+00";

/// Appends `time` as `YYYY-MM-DD HH:MM:SS.ffffff+00`. Written digit by digit because
/// chrono's `format` interprets its format string and allocates for every row (the
/// largest single cost of a row in the profile); years outside 1..=9999 and leap
/// seconds, which no default timestamp window lets through, take chrono's path.
pub fn push_timestamp(out: &mut Vec<u8>, time: DateTime<Utc>) {
    let year = time.year();
    let nanos = time.nanosecond();
    if !(1..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(time.format(TIMESTAMP_FORMAT).to_string().as_bytes());
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for place in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    digits(out, year as u32, 4);
    out.push(b'-');
    digits(out, time.month(), 2);
    out.push(b'-');
    digits(out, time.day(), 2);
    out.push(b' ');
    digits(out, time.hour(), 2);
    out.push(b':');
    digits(out, time.minute(), 2);
    out.push(b':');
    digits(out, time.second(), 2);
    out.push(b'.');
    digits(out, nanos / 1_000, 6);
    out.extend_from_slice(b"+00");
}

/// Appends `text` as one field, escaped for the text `COPY` format. Runs between
/// special bytes are copied whole, and eight bytes at a time are cleared by one test
/// (`may_need_escape`): most fields have nothing to escape, and the byte-by-byte
/// loop this replaces was the server's top user-space entry in the profile.
pub fn push_field(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let (mut run_start, mut index) = (0, 0);
    while index < bytes.len() {
        if let Some(Ok(word)) = bytes.get(index..index + 8).map(<[u8; 8]>::try_from) {
            if !may_need_escape(u64::from_le_bytes(word)) {
                index += 8;
                continue;
            }
        }
        let escaped: &[u8] = match bytes[index] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => {
                index += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[run_start..index]);
        out.extend_from_slice(escaped);
        index += 1;
        run_start = index;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Whether any of the eight bytes of `word` is a backslash or below 0x20 (which
/// covers tab, newline and carriage return). Never a false negative; a false
/// positive only sends the bytes through the exact byte-by-byte match.
fn may_need_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_byte_below = |value: u64, limit: u64| value.wrapping_sub(ONES * limit) & !value & HIGHS;
    let backslashes = word ^ (ONES * u64::from(b'\\'));
    (has_byte_below(word, 0x20) | has_byte_below(backslashes, 1)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_rebuilt_for_other_keys_keep_their_own_fields_and_fill_the_new_ones() {
        let keys = |names: &[&str]| {
            Arc::new(DeclaredKeys::new(
                &names
                    .iter()
                    .map(|name| name.to_string())
                    .collect::<Vec<_>>(),
            ))
        };
        let metadata = r#"{"k":"a\tb","j":7}"#;
        let mut escaped = Vec::new();
        push_field(&mut escaped, metadata);
        let mut rows = CopyRows::with_capacity(0, keys(&["j"]));
        for message in ["one\\ttab", "two"] {
            rows.data
                .extend_from_slice(b"2026-01-01 00:00:00.000000+00\tsvc\tINFO\t");
            rows.data.extend_from_slice(message.as_bytes());
            rows.data.push(b'\t');
            rows.data.extend_from_slice(&escaped);
            rows.data.extend_from_slice(b"\t\\N\t7\n");
            rows.count += 1;
        }
        rows.data.extend_from_slice(
            b"2026-01-01 00:00:00.000000+00\tsvc\tERROR\tnone\t\\N\tf00d\t\\N\n",
        );
        rows.count += 1;

        let rebuilt = rows.for_keys(keys(&["k"]));
        let expected = format!(
            "2026-01-01 00:00:00.000000+00\tsvc\tINFO\tone\\ttab\t{escaped}\t\\N\ta\\tb\n\
             2026-01-01 00:00:00.000000+00\tsvc\tINFO\ttwo\t{escaped}\t\\N\ta\\tb\n\
             2026-01-01 00:00:00.000000+00\tsvc\tERROR\tnone\t\\N\tf00d\t\\N\n",
            escaped = String::from_utf8(escaped.clone()).unwrap()
        );
        assert_eq!(String::from_utf8_lossy(rebuilt.as_bytes()), expected);
        assert_eq!(rebuilt.len(), 3);
        assert_eq!(rebuilt.declared().keys(), ["k"]);
        let without = rows.for_keys(keys(&[]));
        assert!(!String::from_utf8_lossy(without.as_bytes()).contains("\t7\n"));
    }

    #[test]
    fn special_characters_are_escaped() {
        let mut out = Vec::new();
        push_field(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
        out.clear();
        push_field(&mut out, "\\plain\n");
        assert_eq!(out, b"\\\\plain\\n");
    }

    /// The plain definition `push_field` must agree with.
    fn reference_field(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for byte in text.bytes() {
            match byte {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                other => out.push(other),
            }
        }
        out
    }

    /// `text` as a JSON string literal, with every `escape_every`th plain ASCII
    /// letter written as a needless `\u00XX` escape (a client may escape anything).
    fn json_string(text: &str, escape_every: usize) -> String {
        let mut out = String::from('"');
        for (index, c) in text.chars().enumerate() {
            if escape_every > 0 && c.is_ascii_alphabetic() && index % escape_every == 0 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                let encoded = serde_json::to_string(&c.to_string()).unwrap();
                out.push_str(&encoded[1..encoded.len() - 1]);
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        /// The plain fast path (text copied as it is) writes exactly the row the
        /// escaping path writes, for any text a client can send, escaped or not.
        #[test]
        fn rows_from_json_equal_rows_with_every_field_escaped(
            service in r"([a-z\t\n\\\x00\x01\x7f\x{80}é]|\x{1F600}){1,12}",
            message in r"([a-z \t\n\r\\\x00\x01\x1f\x7f\x{80}é]|\x{1F600}|\\N){1,40}",
            value in r#"([a-z "\t\n\\\x00\x01\x{80}é]|\x{1F600}){0,20}"#,
            escape_every in 0usize..4,
        ) {
            let body = format!(
                r#"{{"timestamp":"2026-01-01T00:00:00Z","service":{},"level":"INFO","message":{},"metadata":{{"k":{},{}:[1,2.5,true,null]}}}}"#,
                json_string(&service, escape_every),
                json_string(&message, escape_every),
                json_string(&value, escape_every),
                json_string(&value, 0),
            );
            let raw = serde_json::value::RawValue::from_string(body).unwrap();
            let now = "2026-01-01T00:00:00Z".parse().unwrap();
            let entry = match LogEntry::from_json(&raw, &crate::config::EntryLimits::default(), now) {
                Ok(entry) => entry,
                // Blank service names are refused; nothing to write.
                Err(_) => return Ok(()),
            };
            let mut rows = CopyRows::with_capacity(0, Default::default());
            rows.push(&entry);
            let mut expected = Vec::new();
            push_timestamp(&mut expected, entry.timestamp());
            expected.push(b'\t');
            push_field(&mut expected, entry.service());
            expected.push(b'\t');
            expected.extend_from_slice(entry.level().as_str().as_bytes());
            expected.push(b'\t');
            push_field(&mut expected, entry.message());
            expected.push(b'\t');
            let metadata = entry.metadata().map(|m| m.as_json()).unwrap_or_default();
            push_field(&mut expected, metadata);
            expected.extend_from_slice(b"\t\\N");
            expected.push(b'\n');
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(rows.as_bytes()),
                String::from_utf8_lossy(&expected)
            );
            // The stored metadata is still JSON text.
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(metadata).is_ok());
        }

        #[test]
        fn fields_are_escaped_as_the_plain_definition_says(
            text in r"([a-z \t\n\r\\\x01\x1f]|\x{80}|\x{5c5c}|é|\x{1F600}){0,40}",
        ) {
            let mut out = Vec::new();
            push_field(&mut out, &text);
            proptest::prop_assert_eq!(out, reference_field(&text));
        }

        #[test]
        fn timestamps_are_written_as_chrono_formats_them(
            seconds in -70_000_000_000i64..300_000_000_000i64,
            nanos in 0u32..1_000_000_000,
        ) {
            let Some(time) = DateTime::from_timestamp(seconds, nanos) else {
                return Ok(());
            };
            let mut out = Vec::new();
            push_timestamp(&mut out, time);
            let expected = time.format(TIMESTAMP_FORMAT).to_string();
            proptest::prop_assert_eq!(String::from_utf8_lossy(&out), expected);
        }
    }

    #[test]
    fn a_timestamp_is_padded_and_truncated_to_microseconds() {
        let time = DateTime::from_timestamp(946_684_800 + 3_661, 7_999).unwrap();
        let mut out = Vec::new();
        push_timestamp(&mut out, time);
        assert_eq!(out, b"2000-01-01 01:01:01.000007+00");
    }
}
