//! A pool of large f32 buffers, reused across batches.
//!
//! A training step allocates and frees the same few buffers (activations, masks,
//! gradients) every batch. Buffers this large come from `mmap` and go back to the OS
//! on free, so without reuse every batch pays page faults and page zeroing — measured
//! at a quarter of an epoch's time. CPU storage hands its buffer back here on drop.

use std::sync::Mutex;

/// Buffers smaller than this are left to the allocator (they do not hit `mmap`).
const MIN_POOLED: usize = 4096;
/// At most this many buffers wait in the pool, holding at most `MAX_FLOATS` values in
/// all; the largest are dropped first. A deep network's forward pass keeps a few hundred
/// activations alive at once (ResNet50: ~320 tensors), and all of them must come back
/// for the next batch to run without fresh pages: a cap of 64 buffers threw most of them
/// away and every predict() call faulted its activations in again.
const MAX_BUFFERS: usize = 1024;
/// 8 GiB of f32.
const MAX_FLOATS: usize = 2 << 30;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

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
    match reuse(n, |b| b.capacity() >= n) {
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
    match reuse(n, |b| b.capacity() >= n) {
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

/// Takes the smallest pooled buffer that `fits`, and not one more than twice too big.
fn reuse(n: usize, fits: impl Fn(&Vec<f32>) -> bool) -> Option<Vec<f32>> {
    if n < MIN_POOLED {
        return None;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let best = pool
        .iter()
        .enumerate()
        .filter(|(_, b)| fits(b) && b.capacity() <= 2 * n)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i)?;
    Some(pool.swap_remove(best))
}

/// Hands a buffer back for reuse.
pub fn give(v: Vec<f32>) {
    if v.capacity() < MIN_POOLED {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.push(v);
    while pool.len() > MAX_BUFFERS || pool.iter().map(|b| b.capacity()).sum::<usize>() > MAX_FLOATS
    {
        let (i, _) = pool
            .iter()
            .enumerate()
            .max_by_key(|(_, b)| b.capacity())
            .expect("pool is not empty");
        pool.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_zeroed_and_sized() {
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
}
