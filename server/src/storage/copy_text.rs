//! Encodes entries as rows of PostgreSQL's text `COPY` format. It never decides what
//! is valid: entries arrive valid and NUL-free from `domain`.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::domain::LogEntry;

/// The `COPY` statement whose column order `push_row` writes.
pub const COPY_LOGS: &str =
    "COPY logs (timestamp, service, level, message, metadata) FROM STDIN (FORMAT text)";

/// Appends one row for `entry` to `out`.
pub fn push_row(out: &mut Vec<u8>, entry: &LogEntry) {
    push_timestamp(out, entry.timestamp());
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

/// Appends `text` as one field, escaped for the text `COPY` format.
/// Runs between special bytes are copied whole: most fields have none.
pub fn push_field(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escaped: &[u8] = match byte {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..index]);
        out.extend_from_slice(escaped);
        run_start = index + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
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

    proptest::proptest! {
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
