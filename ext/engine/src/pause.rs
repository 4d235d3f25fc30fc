//! `SendPause`: the moment before which no request may be sent because the server
//! answered 429.
//!
//! Owns that deadline, on the monotonic clock. Every sender (the delivery loop and
//! `send_now`) waits it out before each attempt, so a rate-limited server is not sent
//! anything until it asked to be. It never sends, never decides how long a pause lasts
//! (delivery does, from `Retry-After` or the backoff) and never touches counters.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Where a pause that would overflow the clock ends instead (in practice: never).
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Default)]
pub(crate) struct SendPause {
    until: Mutex<Option<Instant>>,
}

impl SendPause {
    /// No request before `delay` from now (replaces any earlier pause: the latest answer wins).
    pub fn pause_for(&self, delay: Duration) {
        let now = Instant::now();
        let until = now.checked_add(delay).unwrap_or_else(|| now + FAR_FUTURE);
        *self.lock() = Some(until);
    }

    /// Requests may be sent again (the server answered 2xx).
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// Returns once no pause is in force. Cancel it by dropping (aborting) the future.
    pub async fn wait(&self) {
        loop {
            let until = *self.lock();
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn without_a_pause_wait_returns_at_once() {
        block_on(async {
            let pause = SendPause::default();
            // A pause that would hold the waiter for a minute was never set.
            tokio::time::timeout(Duration::from_secs(60), pause.wait())
                .await
                .unwrap();
            assert!(pause.lock().is_none());
        });
    }

    #[test]
    fn wait_lasts_until_the_pause_ends() {
        block_on(async {
            let pause = SendPause::default();
            let started = Instant::now();
            pause.pause_for(Duration::from_millis(100));
            pause.wait().await;
            assert!(started.elapsed() >= Duration::from_millis(100));
        });
    }

    #[test]
    fn a_pause_extended_while_waiting_is_waited_out_too() {
        block_on(async {
            let pause = Arc::new(SendPause::default());
            let started = Instant::now();
            pause.pause_for(Duration::from_millis(100));
            let extender = tokio::spawn({
                let pause = Arc::clone(&pause);
                async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    pause.pause_for(Duration::from_millis(150));
                }
            });
            pause.wait().await;
            extender.await.unwrap();
            assert!(started.elapsed() >= Duration::from_millis(200));
        });
    }

    #[test]
    fn a_cleared_pause_no_longer_holds_anyone() {
        block_on(async {
            let pause = SendPause::default();
            pause.pause_for(Duration::from_secs(3600));
            pause.clear();
            assert!(
                tokio::time::timeout(Duration::from_secs(60), pause.wait())
                    .await
                    .is_ok(),
                "a cleared pause of an hour still held the waiter"
            );
        });
    }

    #[test]
    fn an_absurd_pause_does_not_overflow_the_clock() {
        let pause = SendPause::default();
        pause.pause_for(Duration::MAX);
        assert!(pause.lock().is_some_and(|until| until > Instant::now()));
    }
}
