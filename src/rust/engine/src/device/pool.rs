//! A pool of large f32 buffers, reused across batches.
//!
//! A training step allocates and frees the same few buffers (activations, masks,
//! gradients) every batch. Buffers this large come from `mmap` and go back to the OS
//! on free, so without reuse every batch pays page faults and page zeroing — measured
//! at a quarter of an epoch's time. CPU storage hands its buffer back here on drop.
//!
//! What the pool keeps is bounded three ways, so that a session's memory stays flat:
//! - Buffers come back only while a computation runs ([`Running`]: fit, evaluate,
//!   predict). A buffer freed at any other time (the weights of a model R collected, a
//!   tensor dropped after a call) goes back to the system: nothing would ask for it.
//! - The pool holds at most [`max_bytes`] (by default 1/32 of the machine's memory,
//!   between 256 MB and 2 GiB; `options(rustkeras.pool_mb)` in R), the largest buffers
//!   dropped first.
//! - It is emptied once no computation has run for [`IDLE_RELEASE`] (a thread started
//!   with the first computation of the process checks twice a second), so memory goes
//!   back to the system after a fit() without anyone calling gc().

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buffers smaller than this are left to the allocator (they do not hit `mmap`).
const MIN_POOLED: usize = 4096;
/// At most this many buffers wait in the pool. A deep network's forward pass keeps a few
/// hundred activations alive at once (ResNet50: ~320 tensors), and all of them must come
/// back for the next batch to run without fresh pages: a cap of 64 buffers threw most of
/// them away and every predict() call faulted its activations in again.
const MAX_BUFFERS: usize = 1024;
/// Floats the pool may hold; 0 until first asked (then the machine's default).
static MAX_FLOATS: AtomicUsize = AtomicUsize::new(0);
/// Computations running now: buffers are taken back only while one runs.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The default cap: 1/32 of the machine's memory, from 256 MB to 2 GiB.
fn default_max_bytes() -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30);
    (total / 32).clamp(256 << 20, 2 << 30)
}

fn max_floats() -> usize {
    match MAX_FLOATS.load(Ordering::Relaxed) {
        0 => {
            let f = default_max_bytes() / 4;
            MAX_FLOATS.store(f, Ordering::Relaxed);
            f
        }
        f => f,
    }
}

/// The most the pool may hold, in bytes.
pub fn max_bytes() -> usize {
    max_floats() * 4
}

/// Sets the most the pool may hold (0: the machine's default); what is over it goes now.
pub fn set_max_bytes(bytes: usize) {
    let floats = if bytes == 0 {
        default_max_bytes() / 4
    } else {
        (bytes / 4).max(1)
    };
    MAX_FLOATS.store(floats, Ordering::Relaxed);
    let dropped = lock().trim(floats);
    drop(dropped);
}

/// How long the pool waits, with no computation running, before it empties itself.
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// Starts, once per process (a forked child included), the thread that empties the pool
/// when it has been idle for `IDLE_RELEASE`.
fn start_idle_release() {
    static STARTED_IN: AtomicUsize = AtomicUsize::new(0);
    let pid = std::process::id() as usize;
    if STARTED_IN.swap(pid, Ordering::SeqCst) == pid {
        return;
    }
    // This thread may hold the pool's lock when R forks (parallel::mclapply()): the child
    // would find it locked for ever. The forking thread takes it around every fork.
    // SAFETY: the handlers only lock and unlock the pool's mutex in the forking thread.
    unsafe {
        libc::pthread_atfork(
            Some(lock_for_fork),
            Some(unlock_after_fork),
            Some(unlock_after_fork),
        );
    }
    // Without the thread the pool still keeps to its cap.
    let _ = std::thread::Builder::new()
        .name("rustkeras-pool".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_millis(500));
            release_if_idle(IDLE_RELEASE);
        });
}

thread_local! {
    /// The pool's lock, held by the forking thread across a fork.
    static HELD_FOR_FORK: std::cell::RefCell<Option<std::sync::MutexGuard<'static, Pool>>> =
        const { std::cell::RefCell::new(None) };
}

extern "C" fn lock_for_fork() {
    let guard = lock();
    HELD_FOR_FORK.with(|h| *h.borrow_mut() = Some(guard));
}

extern "C" fn unlock_after_fork() {
    HELD_FOR_FORK.with(|h| drop(h.borrow_mut().take()));
}

/// Marks a computation as running while it lives: buffers freed meanwhile come back to
/// the pool for the next batch or the next call.
pub struct Running(());

impl Running {
    pub fn start() -> Running {
        start_idle_release();
        RUNNING.fetch_add(1, Ordering::SeqCst);
        lock().last_use = Some(Instant::now());
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        lock().last_use = Some(Instant::now());
    }
}

/// Empties the pool when no computation runs and none ran for `idle`.
fn release_if_idle(idle: Duration) {
    let dropped = {
        let mut p = lock();
        let quiet = p.last_use.map_or(true, |t| t.elapsed() >= idle);
        if RUNNING.load(Ordering::SeqCst) > 0 || !quiet {
            return;
        }
        p.trim(0)
    };
    // Freed after the lock is released.
    drop(dropped);
}

/// Bytes held by the pool now.
pub fn held_bytes() -> usize {
    lock().floats * 4
}

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The waiting buffers by capacity, so that finding one and capping the total take a
/// lookup, not a pass over them all: after a fit() the pool holds hundreds of buffers,
/// and scanning them under the lock at each request of each predict() batch (two
/// threads asking at once) made predict() about 10 % slower than in a fresh session.
struct Pool {
    by_capacity: BTreeMap<usize, Vec<Vec<f32>>>,
    buffers: usize,
    floats: usize,
    /// When a computation last started or ended.
    last_use: Option<Instant>,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            by_capacity: BTreeMap::new(),
            buffers: 0,
            floats: 0,
            last_use: None,
        }
    }

    /// The smallest waiting buffer with a capacity from `n` to `2 n`.
    fn take_fitting(&mut self, n: usize) -> Option<Vec<f32>> {
        let cap = *self.by_capacity.range(n..=2 * n).next()?.0;
        let list = self.by_capacity.get_mut(&cap)?;
        let v = list.pop()?;
        if list.is_empty() {
            self.by_capacity.remove(&cap);
        }
        self.buffers -= 1;
        self.floats -= cap;
        Some(v)
    }

    /// Keeps `v`; returns the largest buffers that no longer fit under the caps.
    fn put(&mut self, v: Vec<f32>, max_floats: usize) -> Vec<Vec<f32>> {
        let cap = v.capacity();
        self.by_capacity.entry(cap).or_default().push(v);
        self.buffers += 1;
        self.floats += cap;
        self.trim(max_floats)
    }

    /// Drops the largest buffers until the caps hold; returns them, to be freed after
    /// the lock is released.
    fn trim(&mut self, max_floats: usize) -> Vec<Vec<f32>> {
        let mut dropped = Vec::new();
        while self.buffers > MAX_BUFFERS || self.floats > max_floats {
            let Some(mut largest) = self.by_capacity.last_entry() else {
                break;
            };
            let cap = *largest.key();
            dropped.extend(largest.get_mut().pop());
            if largest.get().is_empty() {
                largest.remove();
            }
            self.buffers -= 1;
            self.floats -= cap;
        }
        dropped
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// A buffer of `n` zeros.
pub fn zeros(n: usize) -> Vec<f32> {
    let mut v = take(n);
    v.resize(n, 0.0);
    v
}

/// A copy of `src`.
pub fn copy_of(src: &[f32]) -> Vec<f32> {
    let mut v = take(src.len());
    v.extend_from_slice(src);
    v
}

/// An empty buffer with capacity for at least `n` values.
pub fn take(n: usize) -> Vec<f32> {
    match reuse(n) {
        Some(mut v) => {
            v.clear();
            v
        }
        None => Vec::with_capacity(n),
    }
}

/// A buffer of `n` values with unspecified (stale but initialised) contents, for kernels
/// that overwrite every element: it saves clearing memory that is written next anyway.
///
/// Any pooled buffer with the capacity qualifies, whatever its length: matching on the
/// length (which each reuse truncates) made buffers unable ever to serve a request
/// bigger than their last one, so the pool kept allocating new ones, and the process
/// grew from one fit() call to the next (300 MB more over two workshop CNN epochs once
/// the convolutions asked for more distinct sizes). Values past the old length are
/// zeroed, once.
pub fn scratch(n: usize) -> Vec<f32> {
    match reuse(n) {
        Some(mut v) => {
            if v.len() >= n {
                v.truncate(n);
            } else {
                v.resize(n, 0.0);
            }
            v
        }
        None => vec![0.0; n],
    }
}

/// Takes the smallest pooled buffer with room for `n` values, and not one more than
/// twice too big.
fn reuse(n: usize) -> Option<Vec<f32>> {
    if n < MIN_POOLED {
        return None;
    }
    lock().take_fitting(n)
}

/// Hands a buffer back for reuse while a computation runs; frees it otherwise.
pub fn give(v: Vec<f32>) {
    if v.capacity() < MIN_POOLED || RUNNING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let max = max_floats();
    let dropped = lock().put(v, max);
    // Freed after the lock is released (large blocks go back to the OS).
    drop(dropped);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_sized() {
        let _running = Running::start();
        let mut v = zeros(10_000);
        v.iter_mut().for_each(|x| *x = 3.0);
        give(v);
        let s = scratch(9_500);
        assert_eq!(s.len(), 9_500);
        give(s);
        let w = zeros(9_000);
        assert_eq!(w.len(), 9_000);
        assert!(w.iter().all(|&x| x == 0.0));
        let c = copy_of(&[1.0; 5000]);
        assert_eq!(c, vec![1.0; 5000]);
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken_and_the_caps_hold() {
        // A pool of its own (the shared one serves the other tests at the same time).
        let mut p = Pool::new();
        for cap in [8000, 20_000, 12_000, 12_000, 50_000] {
            assert!(p.put(Vec::with_capacity(cap), usize::MAX).is_empty());
        }
        assert_eq!((p.buffers, p.floats), (5, 102_000));
        // 10000: 12000 (not 20000); then the other 12000; then 20000; then nothing
        // for 20000 (50000 is more than twice too big).
        for want in [12_000, 12_000, 20_000] {
            assert_eq!(p.take_fitting(10_000).map(|v| v.capacity()), Some(want));
        }
        assert!(p.take_fitting(20_000).is_none());
        assert_eq!((p.buffers, p.floats), (2, 58_000));
        // Past MAX_BUFFERS the largest go first.
        for _ in 0..MAX_BUFFERS {
            let _ = p.put(Vec::with_capacity(5000), usize::MAX);
        }
        assert_eq!(p.buffers, MAX_BUFFERS);
        assert!(p.by_capacity.keys().all(|&c| c <= 8000));
        // Past the cap on floats too, the largest first.
        let dropped = p.trim(5000 * 10);
        assert_eq!(p.floats, 5000 * 10);
        assert!(dropped.iter().all(|v| v.capacity() >= 5000));
    }

    #[test]
    fn the_default_cap_follows_the_machine() {
        let b = default_max_bytes();
        assert!((256 << 20..=2 << 30).contains(&b), "{b}");
    }
}
