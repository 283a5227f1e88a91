//! The engine's seeds come from R's generator, so that `set.seed()` alone makes weights,
//! shuffles and dropout repeat, as keras3 users expect (`set_random_seed()` calls
//! `set.seed()` too). Each seed the engine asks for is two draws of R's stream, as
//! `sample()` would take.

use std::sync::OnceLock;
use std::thread::ThreadId;

extern "C" {
    fn rk_draw_r_uniforms(out: *mut f64) -> std::os::raw::c_int;
}

/// R's main thread: the only one that may touch R's generator.
static R_THREAD: OnceLock<ThreadId> = OnceLock::new();

fn seed_from_r() -> Option<u64> {
    if R_THREAD.get() != Some(&std::thread::current().id()) {
        return None;
    }
    let mut u = [0.0f64; 2];
    // SAFETY: on R's main thread (checked above); the C helper catches R errors.
    if unsafe { rk_draw_r_uniforms(u.as_mut_ptr()) } == 0 {
        return None;
    }
    // Each uniform of R's default generator carries 32 random bits.
    let bits = |x: f64| ((x * 4_294_967_296.0) as u64) & 0xFFFF_FFFF;
    Some((bits(u[0]) << 32) | bits(u[1]))
}

/// Called once from R's main thread when the package loads.
pub fn use_r_seeds() {
    let _ = R_THREAD.set(std::thread::current().id());
    engine::rng::set_seed_source(seed_from_r);
}
