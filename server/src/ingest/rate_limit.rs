//! Per-API-key rate limiting with governor (GCRA): `rps` sustained with a `burst`.
//! A refusal ([`RateLimited`]) says how long to wait; the middleware that answers it
//! with a 429 and `Retry-After` lives with the routes (`ingest::admission`). It never
//! knows about HTTP or `AppState`, and never blocks, sleeps or does I/O. With shared rate
//! limits (`shared_rate_limits`) each key's limit is split between the instances by a share
//! that a background task sets; here a share only changes how many GCRA cells one
//! request costs, so governor stays the one implementation of the rule and a single
//! instance (share 1) is plain GCRA.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitSettings;

/// Cells per request at a full share: the resolution of a share (1/64).
const CELLS_PER_REQUEST: u32 = 64;
/// governor's replenish interval is whole nanoseconds: keep `rps × cells` ≤ 1e9/s.
const MAX_CELLS_PER_SECOND: u64 = 1_000_000_000;

/// A refused request: the key's budget is spent for `retry_after_secs` more seconds
/// (whole seconds, at least 1, as `Retry-After` carries them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

/// One GCRA bucket per configured API key, and per key this instance's share of it.
#[derive(Debug)]
pub struct ApiRateLimiter {
    limiter: DefaultKeyedRateLimiter<usize>,
    /// Cells one request costs at a full share.
    full_cost: u32,
    /// Most cells one request may cost (the burst: a smaller share cannot be honoured).
    max_cost: u32,
    /// Per key index: cells one request costs now (`full_cost / share`).
    costs: Vec<AtomicU32>,
    /// Per key index: requests seen since `take_demand` last ran.
    demand: Vec<AtomicU64>,
}

impl ApiRateLimiter {
    /// A limiter for `key_count` configured keys, each at a full share.
    pub fn new(settings: RateLimitSettings, key_count: usize) -> Self {
        let rps = u64::from(settings.rps.max(1));
        let burst = settings.burst.max(1);
        let cells = u32::try_from((MAX_CELLS_PER_SECOND / rps).clamp(1, CELLS_PER_REQUEST.into()))
            .unwrap_or(1);
        let rate = u32::try_from(rps * u64::from(cells)).unwrap_or(u32::MAX);
        let capacity = burst.saturating_mul(cells);
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(capacity).unwrap_or(NonZeroU32::MIN));
        ApiRateLimiter {
            limiter: RateLimiter::keyed(quota),
            full_cost: cells,
            max_cost: capacity,
            costs: (0..key_count).map(|_| AtomicU32::new(cells)).collect(),
            demand: (0..key_count).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Spends one request of key `key`'s budget (its index among the configured keys),
    /// or says how long to wait.
    pub fn check(&self, key: usize) -> Result<(), RateLimited> {
        if let Some(demand) = self.demand.get(key) {
            demand.fetch_add(1, Ordering::Relaxed);
        }
        let cost = self
            .costs
            .get(key)
            .map_or(self.full_cost, |cost| cost.load(Ordering::Relaxed));
        let cells = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_key_n(&key, cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                })
            }
            // Unreachable: a cost never exceeds the burst capacity.
            Err(_) => Err(RateLimited {
                retry_after_secs: 1,
            }),
        }
    }

    /// Sets key `key`'s share of its limit on this instance (clamped to `(0, 1]`; the
    /// smallest share honoured is one request of the burst).
    pub fn set_share(&self, key: usize, share: f64) {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let cost = if share <= 0.0 {
            f64::from(self.max_cost)
        } else {
            (f64::from(self.full_cost) / share).ceil()
        };
        let cost = (cost.min(f64::from(self.max_cost)) as u32).max(self.full_cost);
        if let Some(slot) = self.costs.get(key) {
            slot.store(cost, Ordering::Relaxed);
        }
    }

    /// Every key back to its full, local limit.
    pub fn reset_shares(&self) {
        for slot in &self.costs {
            slot.store(self.full_cost, Ordering::Relaxed);
        }
    }

    /// Requests seen per key since the previous call (refused ones included), resetting.
    pub fn take_demand(&self) -> Vec<u64> {
        self.demand
            .iter()
            .map(|count| count.swap(0, Ordering::Relaxed))
            .collect()
    }

    /// Key `key`'s share now, as set by [`ApiRateLimiter::set_share`].
    pub fn share(&self, key: usize) -> f64 {
        let cost = self
            .costs
            .get(key)
            .map_or(self.full_cost, |cost| cost.load(Ordering::Relaxed));
        f64::from(self.full_cost) / f64::from(cost.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_after_the_burst_must_wait() {
        let limiter = ApiRateLimiter::new(RateLimitSettings { rps: 1, burst: 2 }, 2);
        assert!(limiter.check(0).is_ok());
        assert!(limiter.check(0).is_ok());
        match limiter.check(0) {
            Err(RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limiter.check(1).is_ok());
    }

    fn admitted_at_once(limiter: &ApiRateLimiter, key: usize) -> usize {
        (0..10_000)
            .take_while(|_| limiter.check(key).is_ok())
            .count()
    }

    #[test]
    fn a_share_scales_the_burst_and_the_rate() {
        let limiter = ApiRateLimiter::new(
            RateLimitSettings {
                rps: 100,
                burst: 300,
            },
            3,
        );
        limiter.set_share(0, 1.0 / 3.0);
        limiter.set_share(1, 0.0);
        assert_eq!(admitted_at_once(&limiter, 0), 100);
        assert_eq!(
            admitted_at_once(&limiter, 1),
            1,
            "the smallest share is one request"
        );
        assert_eq!(
            admitted_at_once(&limiter, 2),
            300,
            "an untouched key has it all"
        );
        limiter.reset_shares();
        assert!((limiter.share(0) - 1.0).abs() < 1e-9);
        assert_eq!(limiter.take_demand(), vec![101, 2, 301]);
        assert_eq!(limiter.take_demand(), vec![0, 0, 0]);
    }

    #[test]
    fn huge_rates_keep_a_valid_quota() {
        let limiter = ApiRateLimiter::new(
            RateLimitSettings {
                rps: u32::MAX,
                burst: u32::MAX,
            },
            1,
        );
        assert!(limiter.check(0).is_ok());
        limiter.set_share(0, 0.5);
        assert!(limiter.check(0).is_ok());
    }
}
