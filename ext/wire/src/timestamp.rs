//! `push_timestamp`: a UTC time as text with microseconds, written digit by digit.
//!
//! Owns the one fast writer of the two timestamp texts the project writes per entry:
//! the wire's RFC 3339 (`2026-11-27T13:03:01.123456Z`, what the gem sends) and
//! PostgreSQL's (`2026-11-27 13:03:01.123456+00`, what the server's `COPY` rows carry).
//! chrono's formatter interprets its format items (and `format` allocates) for every
//! call: the largest single cost of a server row and a tenth of a microsecond of a gem
//! log call. Years chrono writes otherwise than as four digits and leap seconds
//! (nanoseconds >= 1e9) take chrono's path, so the text is always chrono's.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// Which text `push_timestamp` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStyle {
    /// RFC 3339 UTC with microseconds: `2026-11-27T13:03:01.123456Z` (chrono's
    /// `to_rfc3339_opts(SecondsFormat::Micros, true)`).
    Rfc3339,
    /// PostgreSQL's input text: `2026-11-27 13:03:01.123456+00` (chrono's
    /// `format(POSTGRES_FORMAT)`).
    Postgres,
}

/// The chrono format of `TimestampStyle::Postgres`.
pub const POSTGRES_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f+00";

/// Length of either text for a four-digit year.
pub const TIMESTAMP_LEN: usize = 27;

/// Appends `at` as `style`'s text: ASCII digits and `-: T.Z+` only, so it needs no
/// escaping inside a JSON string or a `COPY` field.
pub fn push_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>, style: TimestampStyle) {
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        let text = match style {
            TimestampStyle::Rfc3339 => at.to_rfc3339_opts(SecondsFormat::Micros, true),
            TimestampStyle::Postgres => at.format(POSTGRES_FORMAT).to_string(),
        };
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let (between, zone): (u8, &[u8]) = match style {
        TimestampStyle::Rfc3339 => (b'T', b"Z"),
        TimestampStyle::Postgres => (b' ', b"+00"),
    };
    push_digits(out, year as u32, 4);
    out.push(b'-');
    push_digits(out, at.month(), 2);
    out.push(b'-');
    push_digits(out, at.day(), 2);
    out.push(between);
    push_digits(out, at.hour(), 2);
    out.push(b':');
    push_digits(out, at.minute(), 2);
    out.push(b':');
    push_digits(out, at.second(), 2);
    out.push(b'.');
    push_digits(out, nanos / 1_000, 6);
    out.extend_from_slice(zone);
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut Vec<u8>, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(at: DateTime<Utc>, style: TimestampStyle) -> String {
        let mut out = Vec::new();
        push_timestamp(&mut out, at, style);
        String::from_utf8(out).unwrap()
    }

    fn chrono_text(at: DateTime<Utc>, style: TimestampStyle) -> String {
        match style {
            TimestampStyle::Rfc3339 => at.to_rfc3339_opts(SecondsFormat::Micros, true),
            TimestampStyle::Postgres => at.format(POSTGRES_FORMAT).to_string(),
        }
    }

    #[test]
    fn both_styles_are_written_as_chrono_writes_them() {
        // Seconds from before year 0 to after 9999 in strides that hit every field's
        // carries, with sub-microsecond nanoseconds (cut, not rounded), leap seconds
        // and the edge years.
        let mut checked = 0;
        let mut second: i64 = -62_198_755_300;
        let mut nanos: u32 = 0;
        while second <= 253_402_400_000 {
            let at = DateTime::from_timestamp(second, nanos).unwrap();
            for style in [TimestampStyle::Rfc3339, TimestampStyle::Postgres] {
                assert_eq!(written(at, style), chrono_text(at, style));
            }
            second += 86_399 * 13 + 3_607;
            nanos = (nanos + 123_456_789) % 1_000_000_000;
            checked += 1;
        }
        assert!(checked > 250_000, "{checked}");
        for (second, nanos) in [
            (-62_135_596_800, 0),
            (253_402_300_799, 999_999_999),
            (59, 1_500_000_000),
            (-62_198_755_200, 0),
            (-62_198_755_201, 0),
        ] {
            let at = DateTime::from_timestamp(second, nanos).unwrap();
            for style in [TimestampStyle::Rfc3339, TimestampStyle::Postgres] {
                assert_eq!(written(at, style), chrono_text(at, style));
            }
        }
    }

    #[test]
    fn a_timestamp_is_padded_and_cut_to_microseconds() {
        let at = DateTime::from_timestamp(946_684_800 + 3_661, 7_999).unwrap();
        assert_eq!(
            written(at, TimestampStyle::Rfc3339),
            "2000-01-01T01:01:01.000007Z"
        );
        assert_eq!(
            written(at, TimestampStyle::Postgres),
            "2000-01-01 01:01:01.000007+00"
        );
        assert_eq!(written(at, TimestampStyle::Rfc3339).len(), TIMESTAMP_LEN);
    }
}
