// Lets Rust draw from R's random number generator without R longjmp-ing through Rust
// frames: GetRNGstate() can raise an R error (a damaged .Random.seed), so the draw runs
// inside R_ToplevelExec(). Used by src/rust/rbind/src/seeds.rs; R's main thread only.

#include <Rinternals.h>
#include <R_ext/Random.h>

static void rk_draw_body(void *out) {
    double *u = (double *) out;
    GetRNGstate();
    u[0] = unif_rand();
    u[1] = unif_rand();
    PutRNGstate();
}

// Two uniform draws from R's stream into out[0], out[1]: 1 on success, 0 when R failed.
int rk_draw_r_uniforms(double *out) {
    return R_ToplevelExec(rk_draw_body, out) == TRUE;
}
