//! The trace context columns of `logs` (`trace_id`, `span_id`, `trace_flags`, added by
//! `migrate`, each id indexed so one trace's or span's entries are an index lookup):
//! their `COPY` fields for a row, taken from the top level of its stored metadata,
//! where every sender puts them (OTLP's mapping, the gem, a JSON API client). An id is
//! stored in its column only as OpenTelemetry writes it, lowercase hex of 32 digits
//! (trace) or 16 (span), not all zeros; flags only as an integer from 0 to 255; anything
//! else stays in the metadata alone. It never changes the metadata.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Hex digits of a trace id and a span id.
pub const TRACE_ID_DIGITS: usize = 32;
pub const SPAN_ID_DIGITS: usize = 16;

/// The columns, in the order their fields follow `metadata` in a row.
pub const COLUMNS: &str = "trace_id, span_id, trace_flags";
/// How many fields [`push_fields`] appends.
pub const FIELDS: usize = 3;

#[derive(Deserialize, Default)]
struct TraceKeys<'a> {
    #[serde(borrow, default)]
    trace_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    span_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    trace_flags: Option<&'a RawValue>,
}

/// Appends the three fields (each after a tab) for a row whose stored metadata is
/// `metadata` (the server's own compact JSON text). Metadata that names neither id
/// is not read.
pub fn push_fields(out: &mut Vec<u8>, metadata: Option<&str>) {
    let keys = metadata
        .filter(|json| json.contains("\"trace_id\"") || json.contains("\"span_id\""))
        .and_then(|json| serde_json::from_str::<TraceKeys<'_>>(json).ok())
        .unwrap_or_default();
    let trace_id = keys.trace_id.and_then(|raw| id_text(raw, TRACE_ID_DIGITS));
    let span_id = keys.span_id.and_then(|raw| id_text(raw, SPAN_ID_DIGITS));
    let flags = trace_id
        .and(keys.trace_flags)
        .and_then(|raw| raw.get().parse::<u8>().ok());
    for text in [trace_id, span_id] {
        out.push(b'\t');
        out.extend_from_slice(text.unwrap_or("\\N").as_bytes());
    }
    out.push(b'\t');
    match flags {
        Some(flags) => out.extend_from_slice(flags.to_string().as_bytes()),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// The id's text when `raw` is a JSON string of `digits` lowercase hex digits, not all
/// zeros (nothing in it to escape).
fn id_text(raw: &RawValue, digits: usize) -> Option<&str> {
    let text = raw.get().strip_prefix('"')?.strip_suffix('"')?;
    let valid = text.len() == digits
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        && text.bytes().any(|byte| byte != b'0');
    valid.then_some(text)
}

/// Whether `text` is an id as the columns hold it (`digits` lowercase hex digits).
pub fn is_id(text: &str, digits: usize) -> bool {
    text.len() == digits
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(metadata: Option<&str>) -> String {
        let mut out = Vec::new();
        push_fields(&mut out, metadata);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_in_opentelemetry_form_fill_their_columns() {
        let trace = "5b8efff798038103d269b633813fc60c";
        let span = "eee19b7ec3c1b174";
        assert_eq!(
            fields(Some(&format!(
                r#"{{"a":{{"trace_id":1}},"trace_id":"{trace}","span_id":"{span}","trace_flags":1}}"#
            ))),
            format!("\t{trace}\t{span}\t1")
        );
        assert_eq!(fields(None), "\t\\N\t\\N\t\\N");
        assert_eq!(fields(Some(r#"{"user":"x"}"#)), "\t\\N\t\\N\t\\N");
        // Not hex, upper case, wrong length, zeros, not a string: metadata only.
        for id in [
            r#""xyz""#,
            r#""5B8EFFF798038103D269B633813FC60C""#,
            r#""abcd""#,
            "7",
        ] {
            assert_eq!(
                fields(Some(&format!(r#"{{"trace_id":{id},"trace_flags":1}}"#))),
                "\t\\N\t\\N\t\\N"
            );
        }
        assert_eq!(
            fields(Some(r#"{"trace_id":"00000000000000000000000000000000"}"#)),
            "\t\\N\t\\N\t\\N"
        );
    }
}
