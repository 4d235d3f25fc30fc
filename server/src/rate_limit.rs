//! Per-API-key rate limiting with governor (GCRA): `rps` sustained with a `burst`.
//! Refusals carry a `Retry-After` computed from the limiter. It never blocks or sleeps.

use std::num::NonZeroU32;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Caller;
use crate::config::RateLimitSettings;
use crate::error::ApiError;
use crate::state::AppState;

/// One GCRA bucket per configured API key.
#[derive(Debug)]
pub struct ApiRateLimiter {
    limiter: DefaultKeyedRateLimiter<usize>,
}

impl ApiRateLimiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        let rps = NonZeroU32::new(settings.rps).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        ApiRateLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
        }
    }

    /// Spends one request of `caller`'s budget, or says how long to wait.
    pub fn check(&self, caller: &Caller) -> Result<(), ApiError> {
        self.limiter
            .check_key(&caller.key_index)
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                }
            })
    }
}

/// Middleware (after `auth::require_api_key`): 429 when the caller is over its rate.
pub async fn enforce_rate_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::Internal("rate limit ran before authentication".to_owned()))?;
    state.limiter.check(caller)?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_request_after_the_burst_must_wait() {
        let limiter = ApiRateLimiter::new(RateLimitSettings { rps: 1, burst: 2 });
        let caller = Caller {
            key_index: 0,
            fingerprint: Arc::from("x"),
        };
        assert!(limiter.check(&caller).is_ok());
        assert!(limiter.check(&caller).is_ok());
        match limiter.check(&caller) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let other_key = Caller {
            key_index: 1,
            fingerprint: Arc::from("y"),
        };
        assert!(limiter.check(&other_key).is_ok());
    }
}
