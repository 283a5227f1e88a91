//! Polling for a user interrupt without letting R longjmp through Rust frames.
//!
//! `rk_check_interrupt()` (src/interrupt.c) runs `R_CheckUserInterrupt()` inside
//! `R_ToplevelExec()`, so a pending interrupt unwinds only that C frame and comes back as a
//! flag. Call it from R's main thread only, between batches, never from rayon workers.

extern "C" {
    fn rk_check_interrupt() -> std::os::raw::c_int;
}

/// True when the user interrupted (Ctrl-C / Esc) since the last check. The interrupt is
/// consumed: the caller must stop its work and return normally.
pub fn interrupt_pending() -> bool {
    // SAFETY: the C helper only calls R's API inside R_ToplevelExec, on R's main thread,
    // which is where every export runs.
    unsafe { rk_check_interrupt() != 0 }
}
