//! When a notification whose attempt failed is tried again: exponential backoff with
//! full jitter (a delay drawn uniformly between zero and `base × 2^(attempts−1)`, capped
//! at `max`), so receivers coming back are not hit by every instance at once; and when
//! it is given up (its deadline, counted from its creation, has passed). Pure: the
//! caller gives the time and the random draw.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// How long after its creation a notification is still tried.
    pub deadline: Duration,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    GiveUp,
}

impl RetryPolicy {
    /// The largest delay after the `attempts`-th failed attempt (1 for the first).
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.base
            .checked_mul(1 << doublings)
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// After the `attempts`-th attempt failed at `now`: retry after a delay of
    /// `fraction` (in `[0, 1]`, drawn by the caller) of the ceiling, but no later than
    /// the deadline, where one last attempt is made; an attempt failing at or after the
    /// deadline gives up.
    pub fn after_failure(
        &self,
        attempts: u32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        fraction: f64,
    ) -> AfterFailure {
        let deadline = created_at + chrono_duration(self.deadline);
        if now >= deadline {
            return AfterFailure::GiveUp;
        }
        let delay = self.ceiling(attempts).mul_f64(fraction.clamp(0.0, 1.0));
        AfterFailure::RetryAt((now + chrono_duration(delay)).min(deadline))
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
            deadline: Duration::from_secs(3_600),
        }
    }

    #[test]
    fn the_ceiling_doubles_from_base_up_to_max() {
        let policy = policy();
        let ceilings: Vec<u64> = (1..=7).map(|n| policy.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn the_delay_is_the_drawn_fraction_of_the_ceiling() {
        let policy = policy();
        let created = Utc::now();
        let now = created + chrono::Duration::seconds(10);
        let at = |fraction| match policy.after_failure(3, created, now, fraction) {
            AfterFailure::RetryAt(at) => (at - now).num_milliseconds(),
            AfterFailure::GiveUp => panic!("not past the deadline"),
        };
        assert_eq!(at(0.0), 0);
        assert_eq!(at(0.5), 4_000);
        assert_eq!(at(1.0), 8_000);
    }

    #[test]
    fn the_last_attempt_is_at_the_deadline_and_a_failure_after_it_gives_up() {
        let policy = policy();
        let created = Utc::now();
        let deadline = created + chrono::Duration::seconds(3_600);
        let almost = deadline - chrono::Duration::seconds(1);
        assert_eq!(
            policy.after_failure(20, created, almost, 1.0),
            AfterFailure::RetryAt(deadline)
        );
        assert_eq!(
            policy.after_failure(21, created, deadline, 0.0),
            AfterFailure::GiveUp
        );
    }
}
