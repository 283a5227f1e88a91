//! The glue between R and the engine: converts R values to engine values, forwards, and
//! converts back. No logic a user could observe lives here.
//!
//! # How an export reports failure (the pattern every export follows)
//!
//! * An export that can fail returns [`RkResult<T>`] (`Result<T, RkError>`) and uses `?`.
//!   The crate enables extendr-api's `result_list` feature, so R receives
//!   `list(ok = <value>, err = NULL)` or `list(ok = NULL, err = list(message, kind))`
//!   (class `extendr_result`). Nothing is raised from Rust: raising an R error longjmps over
//!   Rust frames and skips destructors.
//! * An export that cannot fail returns its value directly.
//! * Every R caller goes through `rk_call()` (R/engine-call.R), which unwraps `ok` or raises
//!   a condition of class `c("rustkeras_<kind>_error", "rustkeras_error", "error",
//!   "condition")` with the *user's* call, e.g. `Error in fit(): layer 'dense_1' ...`.
//! * A panic is a bug. extendr's wrapper catches the unwind and turns it into an R error;
//!   the hook installed from entrypoint.c keeps the panic message and backtrace off the
//!   console (`EXTENDR_BACKTRACE=true` shows them); `rk_call()` re-raises it as a
//!   `rustkeras_panic_error`. Never rely on this for user input: return `Err`.
//!
//! Adding an export: write `#[extendr] fn rk_xxx(...) -> RkResult<T>`, list it in
//! `extendr_module!` below, run `make wrappers`, and call it from R as
//! `rk_call(rk_xxx(...))`.

use extendr_api::prelude::*;

mod console;
mod convert;
mod device;
mod error;
mod functional;
pub mod interrupt;
mod io;
mod model;
mod seeds;

pub use error::{RkError, RkResult};

/// Version of the Rust engine.
/// @noRd
#[extendr]
fn rk_engine_version() -> &'static str {
    engine::VERSION
}

/// Always fails: lets the tests check the error path end to end.
/// @noRd
#[extendr]
fn rk_selftest_error(message: &str) -> RkResult<i32> {
    Err(RkError::new("selftest", message))
}

/// Always panics: lets the tests check that a panic becomes an R error, silently.
/// @noRd
#[extendr]
fn rk_selftest_panic(message: &str) -> i32 {
    panic!("{}", message)
}

/// Whether the user has pressed Ctrl-C / Esc since R last looked (consumes the interrupt).
/// @noRd
#[extendr]
fn rk_selftest_interrupt_pending() -> bool {
    interrupt::interrupt_pending()
}

/// Test hook: the n-th interrupt poll from now (a batch's end) finds a SIGINT raised just
/// before it, as if the user pressed Ctrl-C then; 0 clears it.
/// @noRd
#[extendr]
fn rk_selftest_sigint_at_poll(n: i32) {
    interrupt::sigint_at_poll(n.max(0) as usize);
}

/// Called by .onLoad: the engine's seeds come from R's generator from now on.
/// @noRd
#[extendr]
fn rk_use_r_seeds() {
    seeds::use_r_seeds();
}

extendr_module! {
    mod rustkeras;
    use model;
    use device;
    use io;
    use functional;
    fn rk_engine_version;
    fn rk_selftest_error;
    fn rk_selftest_panic;
    fn rk_selftest_interrupt_pending;
    fn rk_use_r_seeds;
    fn rk_selftest_sigint_at_poll;
}
