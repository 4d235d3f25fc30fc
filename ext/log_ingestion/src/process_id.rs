//! `current`: the id of this process, without a system call per log call.
//!
//! Owns the cached process id the engine's fork guard compares with on every call
//! (`NativeEngine::engine`, the net under Ruby's `Process._fork` hook) and that the
//! Ruby client reads through `LogIngestion::Native.process_id` on its slower paths. `getpid` is a system call (glibc stopped caching it), about 0.3 µs on
//! this machine -- a sixth of a log call's budget -- and a log call asked twice. The
//! cache is cleared in a fork's child by a `pthread_atfork` handler (Ruby's `fork`,
//! `Process.fork` and `Process.daemon` go through glibc's `fork`, which runs it) and
//! refilled by the next read. It never caches when the handler could not be
//! registered: then every read asks the kernel, as before.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

/// The cached id, or 0: unknown (not read yet, or cleared in a fork's child).
static CACHED: AtomicU32 = AtomicU32::new(0);
static REGISTER: Once = Once::new();
/// Whether the fork handler is registered, so that caching is safe.
static HANDLER_INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn forget_in_child() {
    // Runs in the child right after fork: only an atomic store (async-signal-safe).
    CACHED.store(0, Ordering::SeqCst);
}

/// Registers the fork handler; called once when the extension loads.
pub fn install() {
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic; the function
        // lives as long as the process (the extension is never unloaded).
        let status = unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
        HANDLER_INSTALLED.store(status == 0, Ordering::Release);
    });
}

/// The id of this process (`std::process::id()`), from the cache when it is safe.
pub fn current() -> u32 {
    if !HANDLER_INSTALLED.load(Ordering::Acquire) {
        return std::process::id();
    }
    match CACHED.load(Ordering::Acquire) {
        0 => {
            let id = std::process::id();
            CACHED.store(id, Ordering::Release);
            id
        }
        id => id,
    }
}
