//! The engine's worker threads: one rayon pool that the engine owns, not rayon's global
//! one, for two reasons.
//!
//! - A forked child (R's `parallel::mclapply()`, `mcparallel()`, and everything built on
//!   them) inherits none of its parent's threads: work handed to the parent's pool waits
//!   for ever. The pool remembers the process that built it, and a child builds its own.
//! - Its size can change during a session (`config_set_threads()` in R).
//!
//! Every parallel section goes through [`install`] (or [`for_each_chunk`]); inside a
//! worker it runs in place, so nested sections stay on the same pool. No parallel
//! iterator may run outside it: rayon would start (or, in a forked child, wait on) its
//! global pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::ThreadPool;

use crate::error::{Error, Result};

struct Pool {
    pool: Arc<ThreadPool>,
    /// The process that started the pool's threads.
    pid: u32,
    /// The size asked for when it was built (0: rayon's default, every core).
    asked: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);
/// Threads asked for; 0 means every core (or `RAYON_NUM_THREADS`).
static ASKED: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads for the next parallel section (0: every core). The pool is
/// rebuilt on its next use; a section running now keeps the old one.
pub fn set_threads(n: usize) {
    ASKED.store(n, Ordering::SeqCst);
}

/// The pool of this process, at the size asked for.
fn pool() -> Result<Arc<ThreadPool>> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let asked = ASKED.load(Ordering::SeqCst);
    if let Some(p) = guard.as_ref() {
        if p.pid == pid && p.asked == asked {
            return Ok(p.pool.clone());
        }
    }
    if let Some(old) = guard.take() {
        if old.pid != pid {
            // A forked child: the old pool's threads exist only in the parent. Dropping
            // it would signal threads that are not here, so it is left as it is.
            std::mem::forget(old);
        }
        // Same process, new size: the old pool's threads end once it is dropped and idle.
    }
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("rustkeras-{i}"));
    if asked > 0 {
        builder = builder.num_threads(asked);
    }
    let pool = Arc::new(
        builder
            .build()
            .map_err(|e| Error::State(format!("could not start the engine's threads: {e}")))?,
    );
    *guard = Some(Pool {
        pool: pool.clone(),
        pid,
        asked,
    });
    Ok(pool)
}

/// Runs `f` on the engine's pool, so that the parallel iterators inside it use that pool;
/// inside a worker already, `f` runs in place. Where no thread can be started at all, `f`
/// runs on the calling thread, whose parallel iterators then use rayon's global pool
/// (in a forked child that cannot start threads, the parent's: a hang, but no thread
/// could run the work anyway).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    match pool() {
        Ok(p) => p.install(f),
        Err(_) => f(),
    }
}

/// `f(i, chunk)` for each `size`-long chunk of `data`, in parallel on the engine's
/// threads when there is more than one chunk. One chunk runs here, sequentially: handing
/// it to a worker only adds a wake-up (about 40 us: a tiny predict() took three times as
/// long), and a parallel iterator outside the engine's pool would start rayon's global
/// one.
pub fn for_each_chunk<T: Send>(data: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    if data.len() <= size {
        if !data.is_empty() {
            f(0, data);
        }
        return;
    }
    install(|| {
        data.par_chunks_mut(size)
            .with_max_len(1)
            .enumerate()
            .for_each(|(i, c)| f(i, c))
    });
}

/// The number of threads parallel sections run on: the current pool's inside a worker,
/// else the engine pool's.
pub fn count() -> usize {
    if rayon::current_thread_index().is_some() {
        return rayon::current_num_threads();
    }
    pool().map(|p| p.current_num_threads()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn sections_run_on_the_engine_pool_and_nest_in_place() {
        let (outer, inner) = install(|| {
            let outer = rayon::current_thread_index().is_some();
            let inner: Vec<bool> = (0..8)
                .into_par_iter()
                .map(|_| install(|| rayon::current_thread_index().is_some()))
                .collect();
            (outer, inner)
        });
        assert!(outer);
        assert!(inner.into_iter().all(|w| w));
        assert!(count() >= 1);
    }
}
