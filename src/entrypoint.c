// rextendr's template: route R's package initialisation to the Rust library (this reference
// also keeps the linker from dropping the static library), and install extendr's panic hook,
// which keeps panic messages and backtraces off the console unless EXTENDR_BACKTRACE=true.

// Also registers the ALTREP class that lets models survive serialization (model_snapshot.c).

#include <R_ext/Rdynload.h>

void R_init_rustkeras_extendr(void *dll);
void register_extendr_panic_hook(void);
void rk_register_snapshot_class(DllInfo *dll);

void R_init_rustkeras(DllInfo *dll) {
    register_extendr_panic_hook();
    R_init_rustkeras_extendr(dll);
    rk_register_snapshot_class(dll);
}
