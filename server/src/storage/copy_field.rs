//! One field of PostgreSQL's text `COPY` format: a text escaped ([`push_field`]) and
//! read back ([`unescape_field`]), and a timestamp ([`push_timestamp`]). It knows
//! nothing of rows, entries or columns.

use chrono::{DateTime, Utc};

/// Appends `time` as `YYYY-MM-DD HH:MM:SS.ffffff+00`, as PostgreSQL reads it (the
/// wire crate's digit-by-digit writer, shared with the gem's engine).
pub fn push_timestamp(out: &mut Vec<u8>, time: DateTime<Utc>) {
    log_ingestion_wire::push_timestamp(out, time, log_ingestion_wire::TimestampStyle::Postgres);
}

/// Appends `text` as one field, escaped for the text `COPY` format. Runs between
/// special bytes are copied whole, and eight bytes at a time are cleared by one test
/// (`may_need_escape`), because most fields have nothing to escape.
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

/// The text of one field as [`push_field`] escaped it.
pub fn unescape_field(field: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
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
            let expected = time.format(log_ingestion_wire::POSTGRES_FORMAT).to_string();
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
