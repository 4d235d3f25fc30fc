//! `blocking`: run a blocking wait with Ruby's GVL released, cancellable.
//!
//! Owns the one unsafe bridge to `rb_thread_call_without_gvl2`. The work must not
//! touch Ruby; Ruby's unblock function (Ctrl-C, `Thread#raise`, `Timeout.timeout`,
//! `Thread#kill`) trips the `Cancel` token so the wait ends early. A pending Ruby
//! interrupt is raised afterwards, through `protect`, never by a longjmp across Rust.
//! Interrupts that do not raise (timer ticks, finalizers, a trap handler that
//! returns) are processed and the wait goes on with the time that is left.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use log_ingestion_engine::Cancel;
use magnus::Error;

use crate::boundary::panic_error;

struct Call<F, R> {
    work: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn run<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` owned by `without_gvl`'s frame, alive until it returns.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(work) = call.work.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(work)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock(data: *mut c_void) {
    // SAFETY: `data` is the `Cancel` borrowed by `without_gvl`, alive until it returns.
    let cancel = unsafe { &*(data as *const Cancel) };
    // Never unwind into Ruby's C code.
    let _ = catch_unwind(AssertUnwindSafe(|| cancel.cancel()));
}

/// Runs `work(remaining, cancel)` without the GVL until it finishes without having
/// been cancelled, or `timeout` has passed. Each attempt gets a fresh `Cancel` that
/// Ruby's unblock function trips. An interrupt that raises (Interrupt,
/// Timeout::Error, kill) is the `Err`; one that does not (a timer tick, finalizers)
/// only makes `work` start again with the remaining time (`cancelled` says whether
/// a result is "I was cancelled"). A panic in `work` becomes `LogIngestion::Error`.
pub fn blocking<R>(
    timeout: Duration,
    mut work: impl FnMut(Duration, &Cancel) -> R,
    cancelled: impl Fn(&R) -> bool,
) -> Result<R, Error> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let remaining = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        let cancel = Cancel::new();
        match without_gvl(&cancel, || work(remaining, &cancel))? {
            Some(result) if !cancelled(&result) || remaining.is_zero() => return Ok(result),
            // Cancelled by an interrupt that did not raise, or not started because one
            // was pending: go on waiting with what is left.
            _ => continue,
        }
    }
}

/// Runs `work` once without the GVL. `Ok(None)` when Ruby had an interrupt pending
/// before the work could start (and processing it did not raise).
fn without_gvl<F, R>(cancel: &Cancel, work: F) -> Result<Option<R>, Error>
where
    F: FnOnce() -> R,
{
    let mut call: Call<F, R> = Call {
        work: Some(work),
        result: None,
    };
    // SAFETY: both pointers outlive the call; `run` and `unblock` match their types.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(run::<F, R>),
            &mut call as *mut Call<F, R> as *mut c_void,
            Some(unblock),
            cancel as *const Cancel as *mut c_void,
        );
    }
    raise_pending_interrupts()?;
    match call.result {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(panic)) => Err(panic_error(panic)),
    }
}

/// Raises an interrupt Ruby has pending for this thread, safely (through `protect`).
fn raise_pending_interrupts() -> Result<(), Error> {
    magnus::rb_sys::protect(|| {
        // SAFETY: called with the GVL held, on a Ruby thread.
        unsafe { rb_sys::rb_thread_check_ints() };
        // SAFETY: Qnil is always a valid VALUE.
        rb_sys::Qnil as rb_sys::VALUE
    })
    .map(|_| ())
}
