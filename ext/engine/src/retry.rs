//! `RetryPolicy`: which answers are retried, how long to wait before the next attempt
//! (`Retry-After` as the earliest moment, jittered exponential backoff on top), when a
//! batch is given up (by count for failures that may be its own, by time for all), and
//! how `Retry-After` is read.
//!
//! Pure functions of their inputs (the random jitter is passed in), so every rule is
//! unit-tested. It never sleeps, never performs I/O and never touches counters.

use std::time::{Duration, SystemTime};

use crate::config::EngineConfig;

/// The longest `Retry-After` honoured; longer values are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What an attempt's result means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the server took the batch (per-entry errors are read separately).
    Delivered,
    /// Connection error, timeout, 408, 429 or 5xx: try again later.
    Retryable,
    /// 401/403: the key is wrong; retrying cannot help.
    Unauthorized,
    /// Any other answer (400, 413, 415, other 4xx, 1xx/3xx): the batch itself is refused.
    Invalid,
}

/// The verdict for an HTTP status.
pub fn classify_status(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retryable,
        401 | 403 => Verdict::Unauthorized,
        _ => Verdict::Invalid,
    }
}

/// Why a retryable attempt failed; it decides which bound applies to its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCause {
    /// The server is not there now: connection refused, 429, 502, 503, 504. Retried
    /// until `max_retry_elapsed` (an outage or a restart is ridden out), not counted
    /// against `max_retries`.
    Unavailable,
    /// A timeout, 408, 500 or another 5xx, or a transport error after connecting: the
    /// batch itself may be the cause, and one batch in flight holds up the queue, so
    /// these are also bounded by `max_retries`.
    Failed,
}

/// The cause of a retryable HTTP status.
pub fn cause_of_status(status: u16) -> RetryCause {
    match status {
        429 | 502 | 503 | 504 => RetryCause::Unavailable,
        _ => RetryCause::Failed,
    }
}

/// Where a batch's retries stand when the next one is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    /// The number of the retry to come (1-based): the exponent of the backoff.
    pub retry: u32,
    /// Retries so far caused by [`RetryCause::Failed`], the one to come included.
    pub failed_retries: u32,
    /// Time since the batch's first attempt started.
    pub elapsed: Duration,
}

/// Why a batch is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `max_retries` retries for failures that may be the batch's own were spent.
    Retries,
    /// The next attempt would start after `max_retry_elapsed`.
    Elapsed,
}

/// Exponential backoff with full jitter, capped; `Retry-After` as the earliest time of
/// the next attempt, with that backoff on top; retries bounded by count for
/// [`RetryCause::Failed`] and by time for every cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt for [`RetryCause::Failed`].
    pub max_retries: u32,
    /// Delay ceiling of the first retry.
    pub base: Duration,
    /// Ceiling of every backoff.
    pub cap: Duration,
    /// No attempt starts later than this after the batch's first one.
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &EngineConfig) -> RetryPolicy {
        RetryPolicy {
            max_retries: config.max_retries,
            base: config.retry_delay,
            cap: config.max_retry_delay,
            max_elapsed: config.max_retry_elapsed,
        }
    }

    /// The ceiling of the delay before retry number `retry` (1-based): `min(cap, base * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: `jitter` (in `[0, 1]`, drawn by the caller) times the ceiling.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        self.ceiling(retry).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The wait before the next retry, or why there is none.
    ///
    /// A server's `Retry-After` (cut to [`MAX_RETRY_AFTER`]) is the earliest moment, and
    /// the jittered backoff is added on top: a server that answers every client
    /// `Retry-After: 1` does not get them all back in the same second, and the waits
    /// still grow while it stays unavailable.
    pub fn delay_before_retry(
        &self,
        state: RetryState,
        cause: RetryCause,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Result<Duration, GiveUp> {
        if cause == RetryCause::Failed && state.failed_retries > self.max_retries {
            return Err(GiveUp::Retries);
        }
        let earliest = retry_after.map_or(Duration::ZERO, |wait| wait.min(MAX_RETRY_AFTER));
        let delay = earliest.saturating_add(self.backoff(state.retry, jitter));
        if state.elapsed.saturating_add(delay) > self.max_elapsed {
            return Err(GiveUp::Elapsed);
        }
        Ok(delay)
    }
}

/// Reads a `Retry-After` value: delta seconds (`"120"`) or an HTTP date, relative to `now`.
/// A date in the past means "now" (zero); anything unreadable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
            max_elapsed: Duration::from_secs(60),
        }
    }

    fn state(retry: u32, failed_retries: u32, elapsed_secs: u64) -> RetryState {
        RetryState {
            retry,
            failed_retries,
            elapsed: Duration::from_secs(elapsed_secs),
        }
    }

    #[test]
    fn server_errors_timeouts_and_429_are_retryable() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert_eq!(classify_status(status), Verdict::Retryable, "{status}");
        }
    }

    #[test]
    fn auth_failures_are_not_retried() {
        assert_eq!(classify_status(401), Verdict::Unauthorized);
        assert_eq!(classify_status(403), Verdict::Unauthorized);
    }

    #[test]
    fn other_client_errors_are_invalid() {
        for status in [400, 404, 413, 415, 422, 301] {
            assert_eq!(classify_status(status), Verdict::Invalid, "{status}");
        }
    }

    #[test]
    fn success_statuses_are_delivered() {
        assert_eq!(classify_status(200), Verdict::Delivered);
        assert_eq!(classify_status(202), Verdict::Delivered);
    }

    #[test]
    fn the_ceiling_doubles_per_retry_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(350));
        assert_eq!(p.ceiling(40), Duration::from_millis(350));
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let p = policy();
        assert_eq!(p.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(2, 7.0), Duration::from_millis(200));
    }

    #[test]
    fn failed_retries_stop_after_max_retries() {
        let p = policy();
        assert!(p
            .delay_before_retry(state(3, 3, 0), RetryCause::Failed, None, 1.0)
            .is_ok());
        assert_eq!(
            p.delay_before_retry(state(4, 4, 0), RetryCause::Failed, None, 1.0),
            Err(GiveUp::Retries)
        );
    }

    #[test]
    fn an_unavailable_server_is_retried_past_max_retries_until_max_elapsed() {
        let p = policy();
        assert!(p
            .delay_before_retry(state(40, 0, 59), RetryCause::Unavailable, None, 1.0)
            .is_ok());
        assert_eq!(
            p.delay_before_retry(state(41, 0, 60), RetryCause::Unavailable, None, 1.0),
            Err(GiveUp::Elapsed)
        );
    }

    #[test]
    fn no_retry_starts_after_max_elapsed_even_within_max_retries() {
        let p = policy();
        let wait = Some(Duration::from_secs(2));
        assert_eq!(
            p.delay_before_retry(state(1, 1, 59), RetryCause::Failed, wait, 0.0),
            Err(GiveUp::Elapsed)
        );
    }

    #[test]
    fn unavailability_causes_are_429_502_503_504() {
        for status in [429, 502, 503, 504] {
            assert_eq!(cause_of_status(status), RetryCause::Unavailable, "{status}");
        }
        for status in [408, 500, 501, 599] {
            assert_eq!(cause_of_status(status), RetryCause::Failed, "{status}");
        }
    }

    #[test]
    fn retry_after_is_the_earliest_and_the_jittered_backoff_comes_on_top() {
        let p = policy();
        let wait = Some(Duration::from_secs(1));
        let retry =
            |n, jitter| p.delay_before_retry(state(n, 0, 0), RetryCause::Unavailable, wait, jitter);
        assert_eq!(retry(1, 0.0), Ok(Duration::from_secs(1)));
        assert_eq!(retry(1, 1.0), Ok(Duration::from_millis(1100)));
        assert_eq!(retry(2, 0.5), Ok(Duration::from_millis(1100)));
        assert_eq!(retry(9, 1.0), Ok(Duration::from_millis(1350)));
    }

    #[test]
    fn retry_after_is_capped() {
        let p = RetryPolicy {
            max_elapsed: Duration::from_secs(3600),
            ..policy()
        };
        assert_eq!(
            p.delay_before_retry(
                state(1, 0, 0),
                RetryCause::Unavailable,
                Some(Duration::from_secs(100_000)),
                0.0
            ),
            Ok(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_reads_delta_seconds() {
        assert_eq!(
            parse_retry_after(" 12 ", SystemTime::now()),
            Some(Duration::from_secs(12))
        );
    }

    #[test]
    fn retry_after_reads_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_retry_after_date_in_the_past_means_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn an_unreadable_retry_after_is_none() {
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
        assert_eq!(parse_retry_after("-5", SystemTime::now()), None);
    }
}
