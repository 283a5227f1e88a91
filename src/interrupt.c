// Lets Rust poll for a user interrupt without R longjmp-ing through Rust frames:
// R_CheckUserInterrupt() runs inside R_ToplevelExec(), which catches the jump and reports it
// as FALSE. Used by src/rust/rbind/src/interrupt.rs; call only from R's main thread.

#include <Rinternals.h>
#include <R_ext/Utils.h>

static void rk_check_interrupt_body(void *unused) {
    (void) unused;
    R_CheckUserInterrupt();
}

// 1 when the user interrupted (Ctrl-C / Esc) since R last checked, else 0.
int rk_check_interrupt(void) {
    return R_ToplevelExec(rk_check_interrupt_body, NULL) == FALSE;
}
