//! The session's random stream. Weight initialisation draws from it, and each `fit()`
//! takes a seed from it for its shuffling and dropout, so `set_random_seed(s)` before
//! building a model makes the whole run repeatable, as `keras3::set_random_seed()` does.

use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

static GLOBAL: Mutex<Option<StdRng>> = Mutex::new(None);

pub fn set_seed(seed: u64) {
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(StdRng::seed_from_u64(seed));
}

/// Runs `f` with the global generator, seeding it from the OS on first use.
pub fn with_global<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
    let mut guard = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    let rng = guard.get_or_insert_with(StdRng::from_entropy);
    f(rng)
}

/// A fresh seed drawn from the global stream, for a generator owned by one call.
pub fn next_seed() -> u64 {
    with_global(|r| r.gen())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_repeats_the_stream() {
        set_seed(42);
        let a: Vec<u64> = (0..3).map(|_| next_seed()).collect();
        set_seed(42);
        let b: Vec<u64> = (0..3).map(|_| next_seed()).collect();
        assert_eq!(a, b);
    }
}
