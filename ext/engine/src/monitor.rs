//! `Monitor<T>`: state under a lock with the condition its waiters sleep on.
//!
//! Owns the one rule every blocking wait of the engine follows (the queue's `flush`,
//! the error reports' `next`): check the state, else sleep until it changes, the
//! deadline passes or the caller's `Cancel` trips, registering the cancel wake-up
//! before the first check so none is missed. A poisoned lock is taken over (a panic
//! elsewhere must not stop delivery or shutdown). It never holds the lock while
//! sleeping and never knows what the state means.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// How long one sleep lasts when the caller gave no deadline (`timeout` overflowed):
/// a bound, so a lost wake-up costs at most this.
const UNBOUNDED_WAIT_SLICE: Duration = Duration::from_secs(3600);

/// Why [`Monitor::wait_for`] returned without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    TimedOut,
    Cancelled,
}

pub(crate) struct Monitor<T> {
    state: Mutex<T>,
    changed: Condvar,
}

impl<T: Default> Default for Monitor<T> {
    fn default() -> Self {
        Monitor::new(T::default())
    }
}

impl<T> Monitor<T> {
    pub fn new(state: T) -> Self {
        Monitor {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes every waiter to check the state again (call after changing it).
    pub fn notify_all(&self) {
        self.changed.notify_all();
    }

    /// Waits until `check` answers (it sees the state under the lock, first before any
    /// sleep), `timeout` passes or `cancel` trips.
    pub fn wait_for<R>(
        self: &Arc<Self>,
        timeout: Duration,
        cancel: &Cancel,
        mut check: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<R, WaitEnd>
    where
        T: Send + 'static,
    {
        let deadline = Instant::now().checked_add(timeout);
        let monitor = Arc::clone(self);
        // Taking the lock before notifying: a waiter between its check and its sleep
        // cannot miss the wake-up.
        let _hook = cancel.on_cancel(move || {
            drop(monitor.lock());
            monitor.notify_all();
        });
        let mut state = self.lock();
        loop {
            if let Some(answer) = check(&mut state) {
                return Ok(answer);
            }
            if cancel.is_cancelled() {
                return Err(WaitEnd::Cancelled);
            }
            let wait = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(WaitEnd::TimedOut);
                    }
                    deadline - now
                }
                None => UNBOUNDED_WAIT_SLICE,
            };
            state = self
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}
