//! Polling for a user interrupt without letting R longjmp through Rust frames.
//!
//! `rk_check_interrupt()` (src/interrupt.c) runs `R_CheckUserInterrupt()` inside
//! `R_ToplevelExec()`, so a pending interrupt unwinds only that C frame and comes back as a
//! flag. Call it from R's main thread only, between batches, never from rayon workers.

use std::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    fn rk_check_interrupt() -> std::os::raw::c_int;
    fn raise(sig: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// Test hook: the n-th poll from now raises SIGINT on R's main thread first, as a user's
/// Ctrl-C would arrive (0: never). Lets the tests stop a fit at a known batch.
static SIGINT_AT_POLL: AtomicUsize = AtomicUsize::new(0);

pub fn sigint_at_poll(n: usize) {
    SIGINT_AT_POLL.store(n, Ordering::SeqCst);
}

/// True when the user interrupted (Ctrl-C / Esc) since the last check. The interrupt is
/// consumed: the caller must stop its work and return normally.
pub fn interrupt_pending() -> bool {
    let at = SIGINT_AT_POLL.load(Ordering::SeqCst);
    if at > 0 {
        SIGINT_AT_POLL.store(at - 1, Ordering::SeqCst);
        if at == 1 {
            // SAFETY: raise() runs R's SIGINT handler, which only sets R's pending flag.
            unsafe { raise(2) };
        }
    }
    // SAFETY: the C helper only calls R's API inside R_ToplevelExec, on R's main thread,
    // which is where every export runs.
    unsafe { rk_check_interrupt() != 0 }
}
