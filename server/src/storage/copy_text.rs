//! Encodes entries as rows of PostgreSQL's text `COPY` format. It never decides what
//! is valid: entries arrive valid and NUL-free from `domain`, which also says which
//! text is plain (no backslash, no control character: nothing to escape), copied as it
//! is without a scan. Each field is written by `copy_field`. Each error entry's
//! fingerprint (`errors::fingerprint`) is written with its row and tallied for its group
//! (`error_groups`).

use std::sync::Arc;

use super::copy_field::{push_field, push_timestamp, unescape_field};
use super::declared_keys::DeclaredKeys;
use super::error_groups::ErrorTally;
use super::trace_fields;
use crate::domain::LogEntry;
use crate::errors::fingerprint::{self, Fingerprint};

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
        let key = fingerprint::key(entry);
        push_row(
            &mut self.data,
            entry,
            key.as_ref().map(Fingerprint::as_str),
            &self.declared,
        );
        if let Some(key) = key {
            self.errors
                .add(entry.service(), key.as_str(), entry.timestamp(), || {
                    fingerprint::describe(entry)
                });
        }
        self.count += 1;
    }

    /// Forgets every row pushed so far (and their error occurrences), keeping the room.
    pub fn clear(&mut self) {
        self.data.clear();
        self.count = 0;
        self.errors = ErrorTally::default();
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
    /// built for (the declared keys changed while they waited): each row's own
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
/// metadata, fingerprint, and the trace context's.
const OWN_FIELDS: usize = 6 + trace_fields::FIELDS;
/// Where the metadata is among them.
const METADATA_FIELD: usize = 4;

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
    let metadata = entry.metadata().map(|metadata| metadata.as_json());
    trace_fields::push_fields(out, metadata);
    declared.push_fields(out, metadata);
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
            rows.data.extend_from_slice(b"\t\\N\t\\N\t\\N\t\\N\t7\n");
            rows.count += 1;
        }
        rows.data.extend_from_slice(
            b"2026-01-01 00:00:00.000000+00\tsvc\tERROR\tnone\t\\N\tf00d\t\\N\t\\N\t\\N\t\\N\n",
        );
        rows.count += 1;

        let rebuilt = rows.for_keys(keys(&["k"]));
        let expected = format!(
            "2026-01-01 00:00:00.000000+00\tsvc\tINFO\tone\\ttab\t{escaped}\t\\N\t\\N\t\\N\t\\N\ta\\tb\n\
             2026-01-01 00:00:00.000000+00\tsvc\tINFO\ttwo\t{escaped}\t\\N\t\\N\t\\N\t\\N\ta\\tb\n\
             2026-01-01 00:00:00.000000+00\tsvc\tERROR\tnone\t\\N\tf00d\t\\N\t\\N\t\\N\t\\N\n",
            escaped = String::from_utf8(escaped.clone()).unwrap()
        );
        assert_eq!(String::from_utf8_lossy(rebuilt.as_bytes()), expected);
        assert_eq!(rebuilt.len(), 3);
        assert_eq!(rebuilt.declared().keys(), ["k"]);
        let without = rows.for_keys(keys(&[]));
        assert!(!String::from_utf8_lossy(without.as_bytes()).contains("\t7\n"));
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
            expected.extend_from_slice(b"\t\\N\t\\N\t\\N\t\\N\n");
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(rows.as_bytes()),
                String::from_utf8_lossy(&expected)
            );
            // The stored metadata is still JSON text.
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(metadata).is_ok());
        }
    }
}
