//! Encodes entries as rows of PostgreSQL's text `COPY` format. It never decides what
//! is valid: entries arrive valid and NUL-free from `domain`.

use crate::domain::LogEntry;

/// The `COPY` statement whose column order `push_row` writes.
pub const COPY_LOGS: &str =
    "COPY logs (timestamp, service, level, message, metadata) FROM STDIN (FORMAT text)";

/// Appends one row for `entry` to `out`.
pub fn push_row(out: &mut Vec<u8>, entry: &LogEntry) {
    let timestamp = entry
        .timestamp()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string();
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'\t');
    push_field(out, entry.service());
    out.push(b'\t');
    out.extend_from_slice(entry.level().as_str().as_bytes());
    out.push(b'\t');
    push_field(out, entry.message());
    out.push(b'\t');
    match entry.metadata() {
        Some(metadata) => push_field(out, metadata.as_json()),
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\n');
}

/// Appends `text` as one field, escaped for the text `COPY` format.
pub fn push_field(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped() {
        let mut out = Vec::new();
        push_field(&mut out, "a\\b\tc\nd\re");
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
    }
}
