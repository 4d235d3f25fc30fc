//! The times the read side may send PostgreSQL: `timestamptz` holds 4714-11-24 BC to
//! 294276 AD, chrono (which every time here passes through) ends earlier, in 262142 AD,
//! so the bounds are PostgreSQL's start and chrono's end. A time a request names (a
//! cursor, `since`, `until`) outside them is refused; a time the read side computes
//! from one (a page's windows, an entry's surroundings, a histogram's default range)
//! is clamped to them, so no statement is ever bound a time PostgreSQL refuses
//! ("timestamp out of range" would be a 500). It owns the bounds and the clamped
//! arithmetic; it never parses a request.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// PostgreSQL's earliest `timestamptz`: 4714-11-24 00:00:00 BC (year -4713 in chrono's
/// proleptic numbering, which has a year 0).
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(-4713, 11, 24)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MIN_UTC, |start| start.and_utc())
}

/// The latest time the read side handles: chrono's own end, before PostgreSQL's.
pub fn latest() -> DateTime<Utc> {
    DateTime::<Utc>::MAX_UTC
}

/// Whether `time` may be sent to PostgreSQL as it is.
pub fn contains(time: DateTime<Utc>) -> bool {
    earliest() <= time && time <= latest()
}

/// `time - span`, never before [`earliest`].
pub fn earlier_by(time: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    time.checked_sub_signed(span)
        .map_or_else(earliest, |earlier| earlier.max(earliest()))
}

/// `time + span`, never after [`latest`].
pub fn later_by(time: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    time.checked_add_signed(span)
        .map_or_else(latest, |later| later.min(latest()))
}

/// What a refusal of a parameter's time says the range is.
pub const RANGE_TEXT: &str = "between 4714-11-24 BC and 262142-12-31 AD";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_time_is_postgresqls() {
        // PostgreSQL: SELECT '4714-11-24 00:00:00+00 BC'::timestamptz, in microseconds
        // since 1970 (the least it stores; one microsecond less is out of range).
        assert_eq!(earliest().timestamp_micros(), -210_866_803_200_000_000);
    }

    #[test]
    fn arithmetic_stops_at_the_bounds() {
        let start = earliest();
        assert_eq!(
            earlier_by(start + Duration::minutes(30), Duration::hours(1)),
            start
        );
        assert_eq!(
            earlier_by(DateTime::<Utc>::MIN_UTC, Duration::hours(1)),
            start
        );
        assert_eq!(
            later_by(latest() - Duration::minutes(1), Duration::hours(1)),
            latest()
        );
        assert!(contains(start) && contains(latest()));
        assert!(!contains(start - Duration::microseconds(1)));
    }
}
