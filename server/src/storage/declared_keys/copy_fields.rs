//! A row's declared-key fields in the `COPY`: [`DeclaredKeys`] names the columns and
//! reads each declared key's value from the stored metadata's top level.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::indexed_text::{indexed_text, Scalar};
use super::naming::column;
use crate::storage::copy_field::push_field;

/// Declared keys (as the database declares them: [`declared_in`](super::declared_in)) and the `COPY`
/// statement naming their columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredKeys {
    keys: Vec<String>,
    /// `, "meta_a", "meta_b"`: the columns after `logs`' own.
    column_list: String,
    copy_statement: String,
}

impl Default for DeclaredKeys {
    fn default() -> Self {
        DeclaredKeys::new(&[])
    }
}

impl DeclaredKeys {
    /// `keys` in the order given (checked by [`key_problem`](super::key_problem) before they are written
    /// into SQL), duplicates dropped.
    pub fn new(keys: &[String]) -> Self {
        let mut unique: Vec<String> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.contains(key) {
                unique.push(key.clone());
            }
        }
        let column_list: String = unique
            .iter()
            .map(|key| format!(", {}", column(key)))
            .collect();
        DeclaredKeys {
            copy_statement: format!(
                "COPY logs (timestamp, service, level, message, metadata, fingerprint, {}\
                 {column_list}) FROM STDIN (FORMAT text)",
                crate::storage::trace_fields::COLUMNS
            ),
            column_list,
            keys: unique,
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The declared keys' columns as they follow `logs`' own in a column list
    /// (`, "meta_a", "meta_b"`; empty without keys).
    pub fn column_list(&self) -> &str {
        &self.column_list
    }

    /// The `COPY` statement whose columns a row with [`push_fields`](Self::push_fields)
    /// appended fills.
    pub fn copy_statement(&self) -> &str {
        &self.copy_statement
    }

    /// Appends one `COPY` field per declared key for a row whose stored metadata is
    /// `metadata` (the JSON text as stored): `\N` when the key is absent, else its
    /// indexed text. The stored text is the server's own (valid, compact), read at its
    /// top level only; a key written twice counts once, by its last value, as `jsonb`
    /// keeps it.
    pub fn push_fields(&self, out: &mut Vec<u8>, metadata: Option<&str>) {
        if self.keys.is_empty() {
            return;
        }
        let mut values: Vec<Option<&RawValue>> = vec![None; self.keys.len()];
        if let Some(json) = metadata {
            let mut deserializer = serde_json::Deserializer::from_str(json);
            let read = de::Deserializer::deserialize_map(
                &mut deserializer,
                TopLevel {
                    keys: &self.keys,
                    values: &mut values,
                },
            );
            if let Err(error) = read {
                // Unreachable for text `domain` wrote; the check refuses the row
                // rather than store it unfindable.
                tracing::error!(%error, "stored metadata could not be read for its declared keys");
            }
        }
        for value in values {
            out.push(b'\t');
            match value {
                None => out.extend_from_slice(b"\\N"),
                Some(raw) => push_field(out, indexed_text(scalar_of(raw)).as_deref().unwrap_or("")),
            }
        }
    }
}

/// Reads a stored metadata object's top level, keeping the declared keys' values as
/// their JSON text.
struct TopLevel<'k, 'v, 'de> {
    keys: &'k [String],
    values: &'v mut Vec<Option<&'de RawValue>>,
}

impl<'de> Visitor<'de> for TopLevel<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        while let Some(key) = entries.next_key::<Cow<'de, str>>()? {
            match self.keys.iter().position(|declared| *declared == key) {
                Some(slot) => self.values[slot] = Some(entries.next_value::<&'de RawValue>()?),
                None => {
                    entries.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A stored value's JSON text as a [`Scalar`]: a number keeps the very text PostgreSQL
/// reads (no float is parsed and printed again), a string is decoded only when it holds
/// an escape.
fn scalar_of(raw: &RawValue) -> Scalar<'_> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Scalar::Text(Cow::Borrowed(&text[1..text.len() - 1])),
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(decoded) => Scalar::Text(Cow::Owned(decoded)),
            Err(_) => Scalar::Other,
        },
        Some(b't') => Scalar::Bool(true),
        Some(b'f') => Scalar::Bool(false),
        Some(b'-' | b'0'..=b'9') => Scalar::Number(Cow::Borrowed(text)),
        _ => Scalar::Other,
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn fields(keys: &[&str], metadata: Option<&str>) -> String {
        let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        let mut out = Vec::new();
        DeclaredKeys::new(&keys).push_fields(&mut out, metadata);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_declared_key_is_one_copy_field() {
        assert_eq!(fields(&[], Some(r#"{"a":1}"#)), "");
        assert_eq!(fields(&["a", "b"], None), "\t\\N\t\\N");
        assert_eq!(
            fields(
                &["a", "b", "c"],
                Some(r#"{"b":"x\ty","a":[1,{"b":2}],"z":{"c":3}}"#)
            ),
            "\t\tx\\ty\t\\N"
        );
        // The last of a repeated key counts, as in jsonb.
        assert_eq!(fields(&["a"], Some(r#"{"a":1,"a":true}"#)), "\ttrue");
        // Numbers by the text stored, as PostgreSQL reads it.
        assert_eq!(fields(&["a"], Some(r#"{"a":1e16}"#)), "\t10000000000000000");
        assert_eq!(fields(&["a"], Some(r#"{"a":1.5e1}"#)), "\t15");
        assert_eq!(fields(&["a"], Some(r#"{"a":"q\"\u00e9"}"#)), "\tq\"é");
        assert_eq!(fields(&["a"], Some(r#"{"a":15.0}"#)), "\t");
        assert_eq!(fields(&["a"], Some(r#"{"a":null}"#)), "\t");
    }

    #[test]
    fn the_copy_statement_names_each_key_once() {
        let keys = [
            "user_id".to_string(),
            "Req".to_string(),
            "user_id".to_string(),
        ];
        let declared = DeclaredKeys::new(&keys);
        assert_eq!(declared.keys(), ["user_id", "Req"]);
        assert_eq!(
            declared.copy_statement(),
            "COPY logs (timestamp, service, level, message, metadata, fingerprint, trace_id, \
             span_id, trace_flags, \"meta_user_id\", \"meta_Req\") FROM STDIN (FORMAT text)"
        );
    }
}
