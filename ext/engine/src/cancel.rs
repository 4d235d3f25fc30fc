//! `Cancel`: a token another thread trips to end a blocking wait early.
//!
//! Owns the cancelled flag and the wake-ups of whoever waits on it. The binding
//! creates one per blocking call and trips it from Ruby's unblock function. It never
//! blocks: `cancel` only sets a flag and runs the registered (short) wake-up hooks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    next_id: AtomicU64,
    hooks: Mutex<Vec<(u64, Hook)>>,
}

/// A cancellation token; clones share the same state.
#[derive(Clone, Default)]
pub struct Cancel {
    state: Arc<CancelState>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Trips the token and wakes every wait that watches it. Safe from any thread, any number of times.
    pub fn cancel(&self) {
        self.state.cancelled.store(true, Ordering::SeqCst);
        let hooks: Vec<Hook> = lock(&self.state.hooks)
            .iter()
            .map(|(_, hook)| Arc::clone(hook))
            .collect();
        for hook in hooks {
            hook();
        }
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    /// Runs `hook` when the token is cancelled, until the returned guard is dropped.
    /// Register before checking `is_cancelled` so no cancellation is missed.
    pub(crate) fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> CancelHook<'_> {
        let id = self.state.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.state.hooks).push((id, Arc::new(hook)));
        CancelHook { cancel: self, id }
    }
}

/// Keeps a wake-up hook registered; removes it when dropped.
pub(crate) struct CancelHook<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for CancelHook<'_> {
    fn drop(&mut self) {
        lock(&self.cancel.state.hooks).retain(|(id, _)| *id != self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn cancel_runs_registered_hooks_and_sets_the_flag() {
        let token = Cancel::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let _hook = token.on_cancel(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!token.is_cancelled());
        token.clone().cancel();
        assert!(token.is_cancelled());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropped_hooks_are_not_run() {
        let token = Cancel::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        drop(token.on_cancel(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        token.cancel();
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
