//! The opaque pagination cursor: the (timestamp, id) of the last entry of a page,
//! encoded as 32 hex digits, and the keyset page rule every list follows (read one
//! row more than the page; its presence means there is a next page). Never touches SQL.

use chrono::{DateTime, Utc};

use super::filters::Params;
use super::time_bounds;

/// The `cursor` parameter, read with `decode`: `None` when absent, and when it is not
/// a cursor this server issued, with the problem recorded for the 400 answer.
pub fn cursor_param<T>(
    params: &mut Params,
    decode: impl FnOnce(&str) -> Option<T>,
    refusal: &str,
) -> Option<T> {
    let text = params.one("cursor")?;
    let cursor = decode(&text);
    if cursor.is_none() {
        params.problem(refusal);
    }
    cursor
}

/// What `cursor_param` says of a cursor it cannot read.
pub const NOT_ISSUED: &str = "cursor: not a cursor this server issued (pass next_cursor as is)";

/// Cuts `rows` — read with a limit of `limit + 1` — to the page, and returns the
/// `next_cursor` of the page (the position of its last row), or `None` on the last page.
pub fn next_page<T>(
    rows: &mut Vec<T>,
    limit: i64,
    position: impl FnOnce(&T) -> String,
) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(position)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timestamp: DateTime<Utc>,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!(
            "{:016x}{:016x}",
            self.timestamp.timestamp_micros() as u64,
            self.id as u64
        )
    }

    /// `None` for anything this server did not issue.
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let micros = u64::from_str_radix(&text[..16], 16).ok()? as i64;
        let id = u64::from_str_radix(&text[16..], 16).ok()? as i64;
        let timestamp = DateTime::<Utc>::from_timestamp_micros(micros)?;
        // An issued cursor holds a stored time, which PostgreSQL keeps within its
        // range; a time outside is forged (and PostgreSQL would refuse it as a bound).
        if !time_bounds::contains(timestamp) {
            return None;
        }
        Some(Cursor { timestamp, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_read_one_row_long_names_its_last_row_and_a_short_one_ends() {
        let mut rows = vec![1, 2, 3, 4];
        assert_eq!(
            next_page(&mut rows, 3, |last| last.to_string()),
            Some("3".into())
        );
        assert_eq!(rows, [1, 2, 3]);
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 3, |last| last.to_string()), None);
        assert_eq!(rows, [1, 2, 3]);
    }

    #[test]
    fn round_trips_microsecond_timestamps() {
        let cursor = Cursor {
            timestamp: DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn rejects_text_it_did_not_issue() {
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode(&"z".repeat(32)), None);
        let forged = Cursor {
            timestamp: DateTime::<Utc>::MIN_UTC,
            id: 1,
        };
        assert_eq!(Cursor::decode(&forged.encode()), None);
        let before_postgresql = Cursor {
            timestamp: time_bounds::earliest() - chrono::Duration::microseconds(1),
            id: 1,
        };
        assert_eq!(Cursor::decode(&before_postgresql.encode()), None);
        let at_the_start = Cursor {
            timestamp: time_bounds::earliest(),
            id: 1,
        };
        assert_eq!(Cursor::decode(&at_the_start.encode()), Some(at_the_start));
    }
}
