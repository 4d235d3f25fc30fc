//! `RetryPolicy`: which answers are retried, how long to wait before the next attempt,
//! and how `Retry-After` is read.
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

/// Exponential backoff with full jitter, capped, for a bounded number of retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay ceiling of the first retry.
    pub base: Duration,
    /// Ceiling of every delay.
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &EngineConfig) -> RetryPolicy {
        RetryPolicy {
            max_retries: config.max_retries,
            base: config.retry_delay,
            cap: config.max_retry_delay,
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

    /// The wait before retry number `retry` (1-based), or `None` when the retries are used up.
    /// A server's `Retry-After` replaces the backoff (cut to [`MAX_RETRY_AFTER`]).
    pub fn delay_before_retry(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if retry > self.max_retries {
            return None;
        }
        Some(match retry_after {
            Some(wait) => wait.min(MAX_RETRY_AFTER),
            None => self.backoff(retry, jitter),
        })
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
    fn retries_stop_after_max_retries() {
        let p = policy();
        assert!(p.delay_before_retry(3, None, 1.0).is_some());
        assert_eq!(p.delay_before_retry(4, None, 1.0), None);
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay_before_retry(1, Some(Duration::from_secs(7)), 0.0),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.delay_before_retry(1, Some(Duration::from_secs(100_000)), 0.0),
            Some(MAX_RETRY_AFTER)
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
