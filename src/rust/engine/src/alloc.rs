//! The process's allocator: the system's, with every allocation of a page or more
//! starting on a cache line.
//!
//! glibc serves large blocks from mmap with a 16-byte header in front, so a buffer's
//! first float sits 16 bytes into a cache line, and so does every 16-float row of it:
//! each 64-byte vector load or store of the kernels then touched two lines. Aligning the
//! Winograd convolution's buffers alone took the workshop CNN's second layer from 0.69
//! to 0.655 ms per 64 images (`examples/winograd_bench pooled`, one thread).
//!
//! The alignment is a function of the size alone, so `dealloc` and `realloc` recompute
//! the layout that `alloc` used, as `GlobalAlloc` requires. The cost: with an alignment
//! above glibc's 16, a large `realloc` is a new block and a copy (no `mremap`), and a
//! zeroed block is written with zeros rather than taken fresh from `calloc`; the engine
//! takes its large buffers from its pool at their final size.

use std::alloc::{GlobalAlloc, Layout, System};

/// Cache line size of the CPUs the kernels are written for (x86-64).
const LINE: usize = 64;

/// Smaller blocks keep the system's alignment (most are not vector data, and an
/// aligned allocation costs more).
const FROM: usize = 4096;

pub struct CacheLineAligned;

/// The layout a block of `size` bytes asked with `align` is allocated with; `None` when
/// raising the alignment makes it invalid (a size within 64 bytes of `isize::MAX`),
/// which the allocator reports as a failed allocation (it must not panic).
fn layout_for(size: usize, align: usize) -> Option<Layout> {
    let align = if size >= FROM { align.max(LINE) } else { align };
    Layout::from_size_align(size, align).ok()
}

// SAFETY: every block comes from `System` and goes back to it with the layout it was
// allocated with (`layout_for` of the same size and alignment request).
unsafe impl GlobalAlloc for CacheLineAligned {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        match layout_for(l.size(), l.align()) {
            Some(l) => System.alloc(l),
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        match layout_for(l.size(), l.align()) {
            Some(l) => System.alloc_zeroed(l),
            None => std::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // `alloc` succeeded for `l`, so its layout exists.
        if let Some(l) = layout_for(l.size(), l.align()) {
            System.dealloc(p, l)
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let (Some(old), Some(new)) = (
            layout_for(l.size(), l.align()),
            layout_for(new_size, l.align()),
        ) else {
            return std::ptr::null_mut();
        };
        if old.align() == new.align() {
            return System.realloc(p, old, new_size);
        }
        // Across the threshold: a new block, the contents copied.
        let q = System.alloc(new);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
            System.dealloc(p, old);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: CacheLineAligned = CacheLineAligned;

#[cfg(test)]
mod tests {
    #[test]
    fn large_buffers_start_on_a_cache_line_and_keep_their_values() {
        for n in [1024usize, 4096, 100_000, 1 << 22] {
            let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
            assert_eq!(v.as_ptr() as usize % 64, 0, "{n} floats");
            // Growing across the threshold and beyond keeps the values.
            let mut w: Vec<f32> = Vec::with_capacity(10);
            w.extend_from_slice(&v);
            w.push(-1.0);
            assert_eq!(w.as_ptr() as usize % 64, 0);
            assert_eq!(&w[..n], &v[..]);
            assert_eq!(w[n], -1.0);
        }
        // A size the raised alignment makes invalid is a failed allocation, not a panic.
        let mut v: Vec<u8> = Vec::new();
        assert!(v.try_reserve(isize::MAX as usize - 8).is_err());
    }
}
