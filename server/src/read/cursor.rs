//! The opaque pagination cursor: the (timestamp, id) of the last entry of a page,
//! encoded as 32 hex digits. Owns encoding and decoding only; never touches SQL.

use chrono::{DateTime, Utc};

use super::time_bounds;

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
