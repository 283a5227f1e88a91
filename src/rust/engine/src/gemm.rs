//! Single-precision matrix multiply: the hot path of dense layers (and of convolutions
//! through im2col).
//!
//! One public entry point, [`sgemm`], with BLAS semantics on row-major, contiguous
//! matrices. Inside:
//!
//! - on x86-64 CPUs with AVX-512F (detected at run time), our own BLIS-style kernel:
//!   op(B) is packed into 32-column slivers, and an 8x32 register tile (16 zmm
//!   accumulators) is updated with one FMA per B vector per broadcast A element, read
//!   in place from A (whatever its transpose: packing A measured slower). Edges are
//!   handled by zero padding (B's pack, and a pack of the last partial row tile of A)
//!   and masked loads and stores of C. Narrow products (n <= 16, e.g. the 10-class
//!   output layer) use a 16x16 tile;
//! - everywhere else, the `matrixmultiply` crate (which picks AVX2/FMA, SSE2 or NEON
//!   kernels itself at run time).
//!
//! Both paths split C into disjoint rectangles and run them on the current rayon pool
//! when the product is big enough to pay for it; small products run on the caller's
//! thread.

use std::cell::RefCell;

/// C (m x n) = alpha * op(A) * op(B) + beta * C. Row-major storage.
/// op(A) is m x k: A is stored m x k when !trans_a, k x m when trans_a. Likewise op(B) is k x n: B stored k x n, or n x k when trans_b.
/// beta == 0 means C is overwritten (its old contents, even NaN, are ignored).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    sgemm_with(
        Backend::Auto,
        trans_a,
        trans_b,
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c,
    );
}

/// B (k x n, row-major) packed once for many products with the same B (Winograd's
/// transformed kernel meets every block of tiles of a batch): on CPUs with AVX-512 in
/// the layout our kernel reads, so [`sgemm_packed`] skips packing; elsewhere B as is.
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
    packed: bool,
}

impl PackedB {
    pub fn new(k: usize, n: usize, b: &[f32]) -> PackedB {
        assert!(
            b.len() >= k * n,
            "PackedB: B has {} elements, needs {}",
            b.len(),
            k * n
        );
        if !has_avx512() {
            return PackedB {
                k,
                n,
                data: b[..k * n].to_vec(),
                packed: false,
            };
        }
        let nr = avx512_tile(n).1;
        let (kc_step, view) = (
            kc_step(k),
            View {
                ptr: b.as_ptr(),
                rs: n,
                cs: 1,
            },
        );
        let mut data = Vec::new();
        for pc in (0..k).step_by(kc_step) {
            let kc = kc_step.min(k - pc);
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                let at = data.len();
                data.resize(at + nc.next_multiple_of(nr) * kc, 0.0);
                if nr == 16 {
                    pack_b::<16>(view.at(pc, jc), kc, nc, &mut data[at..]);
                } else {
                    pack_b::<32>(view.at(pc, jc), kc, nc, &mut data[at..]);
                }
            }
        }
        PackedB {
            k,
            n,
            data,
            packed: true,
        }
    }
}

/// C (m x n) = A (m x k, row-major) · B (its old contents, even NaN, ignored); with
/// AVX-512 on the caller's thread.
pub fn sgemm_packed(m: usize, a: &[f32], b: &PackedB, c: &mut [f32]) {
    let (n, k) = (b.n, b.k);
    assert!(
        a.len() >= m * k,
        "sgemm_packed: A has {} elements, needs {}",
        a.len(),
        m * k
    );
    assert!(
        c.len() >= m * n,
        "sgemm_packed: C has {} elements, needs {}",
        c.len(),
        m * n
    );
    if !b.packed || m == 0 || n == 0 || k == 0 {
        // Not packed: the plain product (which packs B or reads it in place).
        sgemm(false, false, m, n, k, 1.0, a, &b.data, 0.0, c);
        return;
    }
    let p = Problem {
        m,
        n,
        k,
        alpha: 1.0,
        a: View {
            ptr: a.as_ptr(),
            rs: k,
            cs: 1,
        },
        // Not read: the kernel takes B's blocks from `packed`.
        b: View {
            ptr: b.data.as_ptr(),
            rs: n,
            cs: 1,
        },
        beta: 0.0,
        c: ViewMut {
            ptr: c.as_mut_ptr(),
            rs: n,
        },
    };
    if avx512_tile(n).1 == 16 {
        avx512_blocked::<16, 16, 1>(&p, Some(&b.data));
    } else {
        avx512_blocked::<8, 32, 2>(&p, Some(&b.data));
    }
}

/// Which implementation [`sgemm_with`] runs; for benchmarks and tests only.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The fastest one this CPU supports (what [`sgemm`] uses).
    Auto,
    /// Our packed AVX-512 kernel; falls back to `MatrixMultiply` on CPUs without AVX-512F.
    Avx512,
    /// The `matrixmultiply` crate, split over row blocks on rayon.
    MatrixMultiply,
    /// The `matrixmultiply` crate in one call (its own threading, if that feature is on).
    MatrixMultiplyWhole,
}

/// [`sgemm`] with a chosen backend; for benchmarks and tests only.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    backend: Backend,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k,
        "sgemm: A has {} elements, needs {}",
        a.len(),
        m * k
    );
    assert!(
        b.len() >= k * n,
        "sgemm: B has {} elements, needs {}",
        b.len(),
        k * n
    );
    assert!(
        c.len() >= m * n,
        "sgemm: C has {} elements, needs {}",
        c.len(),
        m * n
    );
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    if k == 0 || alpha == 0.0 {
        scale(c, beta);
        return;
    }
    // Element (i, j) of op(A) is at i * rs + j * cs; likewise op(B).
    let (a_rs, a_cs) = if trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if trans_b { (1, k) } else { (n, 1) };
    let a = View {
        ptr: a.as_ptr(),
        rs: a_rs,
        cs: a_cs,
    };
    let b = View {
        ptr: b.as_ptr(),
        rs: b_rs,
        cs: b_cs,
    };
    let cm = ViewMut {
        ptr: c.as_mut_ptr(),
        rs: n,
    };
    let p = Problem {
        m,
        n,
        k,
        alpha,
        a,
        b,
        beta,
        c: cm,
    };

    let use_avx512 = match backend {
        Backend::Auto | Backend::Avx512 => has_avx512(),
        _ => false,
    };
    if use_avx512 {
        let (mr, nr, serial) = avx512_tile(n);
        run_parallel(&p, serial, (mr, nr));
    } else if backend == Backend::MatrixMultiplyWhole {
        mm_serial(&p);
    } else {
        run_parallel(&p, mm_serial, (8, 16));
    }
}

/// C = beta * C, where beta == 0 clears C (even NaN).
fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|x| *x *= beta);
    }
}

// ---------------------------------------------------------------------------------------
// Problem description and the split over threads.

/// A read-only strided matrix: element (i, j) at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: usize,
    cs: usize,
}

impl View {
    /// The view starting at element (i, j).
    fn at(self, i: usize, j: usize) -> View {
        // SAFETY: callers stay inside the matrix the view was made from.
        View {
            ptr: unsafe { self.ptr.add(i * self.rs + j * self.cs) },
            ..self
        }
    }
}

/// A writable row-major matrix with row stride `rs` (column stride 1).
#[derive(Clone, Copy)]
struct ViewMut {
    ptr: *mut f32,
    rs: usize,
}

/// One (sub-)product C = alpha * A * B + beta * C on views.
#[derive(Clone, Copy)]
struct Problem {
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: View,
    b: View,
    beta: f32,
    c: ViewMut,
}

// SAFETY: a Problem is only sent to other threads by `run_parallel`, which hands each
// thread a disjoint rectangle of C; A and B are only read.
unsafe impl Send for Problem {}
unsafe impl Sync for Problem {}

impl Problem {
    /// Rows i0..i0+m, columns j0..j0+n of C (with the matching rows of A, columns of B).
    fn sub(&self, i0: usize, m: usize, j0: usize, n: usize) -> Problem {
        Problem {
            m,
            n,
            a: self.a.at(i0, 0),
            b: self.b.at(0, j0),
            // SAFETY: i0, j0 lie inside C.
            c: ViewMut {
                ptr: unsafe { self.c.ptr.add(i0 * self.c.rs + j0) },
                rs: self.c.rs,
            },
            ..*self
        }
    }
}

/// Below this many multiply-adds a product runs on the caller's thread.
const PAR_THRESHOLD: usize = 1 << 20;

/// Splits C into rectangles (whole multiples of the kernel's `mr` x `nr` tile) and runs
/// `serial` on each, on the engine's pool.
fn run_parallel(p: &Problem, serial: fn(&Problem), (mr, nr): (usize, usize)) {
    let threads = crate::threads::count();
    let work = p.m * p.n * p.k;
    // Inside a pool worker the caller already parallelises (data-parallel shards,
    // batches of evaluate/predict): splitting again would only add packing and wake-ups.
    let in_worker = rayon::current_thread_index().is_some();
    if threads <= 1 || work < PAR_THRESHOLD || in_worker {
        serial(p);
        return;
    }
    // More pieces than threads balance better on big products; each piece repacks its
    // slice of the operands, so not too many.
    let pieces = if work >= 64 * PAR_THRESHOLD {
        threads * 4
    } else {
        threads
    };
    let m_tiles = p.m.div_ceil(mr);
    let n_tiles = p.n.div_ceil(nr);
    // Each piece packs its rows of A and its columns of B: pick the grid pm x pn that
    // packs least in all, (m / pm + n / pn) * k per piece.
    let (pm, pn) = (1..=pieces)
        .filter(|pm| pieces % pm == 0 && *pm <= m_tiles && pieces / pm <= n_tiles)
        .map(|pm| (pm, pieces / pm))
        .min_by_key(|&(pm, pn)| p.m.div_ceil(pm) + p.n.div_ceil(pn))
        .unwrap_or(if m_tiles >= n_tiles {
            (pieces.min(m_tiles), 1)
        } else {
            (1, pieces.min(n_tiles))
        });
    if pm * pn <= 1 {
        serial(p);
        return;
    }
    let bounds = |tiles: usize, parts: usize, unit: usize, len: usize, idx: usize| {
        let lo = (tiles * idx / parts * unit).min(len);
        let hi = (tiles * (idx + 1) / parts * unit).min(len);
        (lo, hi - lo)
    };
    let p = *p;
    crate::threads::install(|| {
        rayon::scope(|s| {
            for bi in 0..pm {
                for bj in 0..pn {
                    let (i0, mi) = bounds(m_tiles, pm, mr, p.m, bi);
                    let (j0, nj) = bounds(n_tiles, pn, nr, p.n, bj);
                    if mi == 0 || nj == 0 {
                        continue;
                    }
                    let sub = p.sub(i0, mi, j0, nj);
                    s.spawn(move |_| serial(&sub));
                }
            }
        })
    });
}

// ---------------------------------------------------------------------------------------
// Portable path: the matrixmultiply crate.

fn mm_serial(p: &Problem) {
    // SAFETY: the views describe valid matrices of the given shapes (checked in
    // `sgemm_with`), and this call owns its rectangle of C.
    unsafe {
        matrixmultiply::sgemm(
            p.m,
            p.k,
            p.n,
            p.alpha,
            p.a.ptr,
            p.a.rs as isize,
            p.a.cs as isize,
            p.b.ptr,
            p.b.rs as isize,
            p.b.cs as isize,
            p.beta,
            p.c.ptr,
            p.c.rs as isize,
            1,
        );
    }
}

// ---------------------------------------------------------------------------------------
// AVX-512 path: packing, blocking and the micro-kernel.

/// Largest depth (k) of one packed block; k is cut into equal blocks no deeper than this.
const KC_MAX: usize = 384;
/// Rows of C per packed block of A.
const MC: usize = 192;
/// Columns of C per packed block of B.
const NC: usize = 1024;
/// Longest row of B (floats) read in place rather than packed: longer ones put each
/// row of a sliver on its own page.
const IN_PLACE_ROW_MAX: usize = 256;

#[cfg(target_arch = "x86_64")]
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// The register tile of the AVX-512 path for a product with `n` columns:
/// 8 x 32 (two zmm per row), or 16 x 16 for narrow products (n <= 16, e.g. 10 classes).
fn avx512_tile(n: usize) -> (usize, usize, fn(&Problem)) {
    if n <= 16 {
        (16, 16, avx512_serial::<16, 16, 1>)
    } else {
        (8, 32, avx512_serial::<8, 32, 2>)
    }
}

thread_local! {
    /// Per-thread packing buffers (A block, B block), kept between calls.
    static PACK: RefCell<(AlignedBuf, AlignedBuf)> = const { RefCell::new((AlignedBuf::new(), AlignedBuf::new())) };
}

/// A growable f32 buffer whose usable part starts on a 64-byte boundary.
struct AlignedBuf {
    data: Vec<f32>,
}

impl AlignedBuf {
    const fn new() -> Self {
        AlignedBuf { data: Vec::new() }
    }

    fn get(&mut self, len: usize) -> &mut [f32] {
        if self.data.len() < len + 16 {
            self.data = vec![0.0; len + 16];
        }
        let off = self.data.as_ptr().align_offset(64).min(16);
        &mut self.data[off..off + len]
    }
}

/// Packs rows 0..mc (mc < MR: the last, partial row tile), columns 0..kc of `a` as one
/// MR-row sliver: for each p in 0..kc, the MR values a(r, p), rows past mc as zeros.
fn pack_a<const MR: usize>(a: View, mc: usize, kc: usize, dst: &mut [f32]) {
    debug_assert!(mc <= MR);
    for (p, o) in dst[..MR * kc].chunks_exact_mut(MR).enumerate() {
        for (r, x) in o.iter_mut().enumerate() {
            // SAFETY: reads stay within rows 0..mc, columns 0..kc of `a`.
            *x = if r < mc {
                unsafe { *a.ptr.add(r * a.rs + p * a.cs) }
            } else {
                0.0
            };
        }
    }
}

/// Packs rows 0..kc, columns 0..nc of `b` into NR-column slivers: sliver s holds, for
/// each p in 0..kc, the NR values b(p, s*NR + j), columns past nc as zeros.
fn pack_b<const NR: usize>(b: View, kc: usize, nc: usize, dst: &mut [f32]) {
    for (s, out) in dst
        .chunks_exact_mut(NR * kc)
        .take(nc.div_ceil(NR))
        .enumerate()
    {
        let cols = NR.min(nc - s * NR);
        let src = b.at(0, s * NR);
        // SAFETY: reads stay within rows 0..kc, columns 0..nc of `b`.
        unsafe {
            if src.cs == 1 {
                for (p, o) in out.chunks_exact_mut(NR).enumerate() {
                    let row = std::slice::from_raw_parts(src.ptr.add(p * src.rs), cols);
                    o[..cols].copy_from_slice(row);
                    o[cols..].fill(0.0);
                }
            } else if src.rs == 1 && cols == NR {
                let c: [&[f32]; NR] = std::array::from_fn(|j| {
                    std::slice::from_raw_parts(src.ptr.add(j * src.cs), kc)
                });
                for (p, o) in out.chunks_exact_mut(NR).enumerate() {
                    for (x, col) in o.iter_mut().zip(&c) {
                        *x = *col.get_unchecked(p);
                    }
                }
            } else {
                for (p, o) in out.chunks_exact_mut(NR).enumerate() {
                    for (j, x) in o.iter_mut().enumerate() {
                        *x = if j < cols {
                            *src.ptr.add(p * src.rs + j * src.cs)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// The depth of each depth block of a product of depth `k`: k cut into equal blocks no
/// deeper than KC_MAX.
fn kc_step(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC_MAX))
}

/// The blocked product on one thread with the MR x NR (NR = 16 NV) AVX-512 micro-kernel:
/// for each depth block, for each column block, pack B (or read it in place: short
/// contiguous rows, whole slivers wide); for each row block, sweep the tiles, column
/// slivers outside so a B sliver stays in cache across the rows. A is read in place,
/// except the last partial row tile, packed with zero padding.
fn avx512_serial<const MR: usize, const NR: usize, const NV: usize>(p: &Problem) {
    avx512_blocked::<MR, NR, NV>(p, None)
}

/// `avx512_serial`, with B's blocks taken from `packed` (`PackedB`'s layout: the blocks
/// in loop order, each as `pack_b` writes it) instead of packed here.
fn avx512_blocked<const MR: usize, const NR: usize, const NV: usize>(
    p: &Problem,
    packed: Option<&[f32]>,
) {
    debug_assert_eq!(NR, 16 * NV);
    let kc_step = kc_step(p.k);
    PACK.with(|bufs| {
        // A call nested in this one on the same thread (none today) gets fresh buffers.
        let mut fresh = (AlignedBuf::new(), AlignedBuf::new());
        let mut held = bufs.try_borrow_mut();
        let (abuf, bbuf) = match held.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut fresh,
        };
        let apack = abuf.get(MR * kc_step);
        // B read where it lies when its rows are contiguous, short and whole slivers
        // wide: packing the workshop CNN's dense kernel (1600 x 64) took a sixth of
        // that layer's time in every predict() batch.
        let in_place =
            packed.is_none() && p.b.cs == 1 && p.n % NR == 0 && p.b.rs <= IN_PLACE_ROW_MAX;
        let bpack = match packed {
            Some(_) => &mut [][..],
            None if in_place => &mut [][..],
            None => bbuf.get(NC.min(p.n.next_multiple_of(NR)) * kc_step),
        };
        let mut packed_at = 0;
        for pc in (0..p.k).step_by(kc_step) {
            let kc = kc_step.min(p.k - pc);
            let beta = if pc == 0 { p.beta } else { 1.0 };
            for jc in (0..p.n).step_by(NC) {
                let nc = NC.min(p.n - jc);
                // Sliver jr's row r at `sliver(jr) + r * b_rs`.
                let (bpack, b_rs): (&[f32], usize) = match packed {
                    Some(all) => {
                        let len = nc.next_multiple_of(NR) * kc;
                        packed_at += len;
                        (&all[packed_at - len..packed_at], NR)
                    }
                    None if in_place => (&[][..], p.b.rs),
                    None => {
                        pack_b::<NR>(p.b.at(pc, jc), kc, nc, bpack);
                        (&*bpack, NR)
                    }
                };
                let sliver = |jr: usize| -> *const f32 {
                    if in_place {
                        p.b.at(pc, jc + jr).ptr
                    } else {
                        bpack[jr * kc..(jr + NR) * kc].as_ptr()
                    }
                };
                for ic in (0..p.m).step_by(MC) {
                    let mc = MC.min(p.m - ic);
                    let a = p.a.at(ic, pc);
                    let full = mc / MR * MR;
                    if full < mc {
                        pack_a::<MR>(a.at(full, 0), mc - full, kc, apack);
                    }
                    for jr in (0..nc).step_by(NR) {
                        let bs = (sliver(jr), b_rs);
                        let cols = NR.min(nc - jr);
                        for ir in (0..full).step_by(MR) {
                            // SAFETY: rows ir..ir+MR, columns 0..kc of `a` lie inside A; the
                            // tile lies inside C; the B sliver holds kc rows of NR values
                            // (packed, or in place: whole slivers of B's rows).
                            unsafe {
                                let c = p.c.ptr.add((ic + ir) * p.c.rs + jc + jr);
                                let a = (a.ptr.add(ir * a.rs), a.rs, a.cs);
                                tile::<MR, NV>(kc, a, bs, c, p.c.rs, (MR, cols), p.alpha, beta);
                            }
                        }
                        if full < mc {
                            // SAFETY: as above, with the last rows packed (zero padded).
                            unsafe {
                                let c = p.c.ptr.add((ic + full) * p.c.rs + jc + jr);
                                let a = (apack.as_ptr(), 1, MR);
                                let tile_size = (mc - full, cols);
                                tile::<MR, NV>(kc, a, bs, c, p.c.rs, tile_size, p.alpha, beta);
                            }
                        }
                    }
                }
            }
        }
    });
}

/// One MR x (16 NV) tile of C (only its first `mr` rows and `nr` columns are stored),
/// with A element (r, p) at `a + r * a_rs + p * a_cs` and the 16 NV values of B's row p
/// at `b + p * b_rs` (a packed sliver: b_rs = 16 NV).
///
/// # Safety
/// `a` must be valid for MR rows and `kc` columns at those strides, `b` for `kc` rows of
/// 16 NV values at row stride `b_rs`, `c` for `mr` rows of `nr` values at row stride
/// `ldc`; the CPU must support AVX-512F.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn tile<const MR: usize, const NV: usize>(
    kc: usize,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs): (*const f32, usize),
    c: *mut f32,
    ldc: usize,
    (mr, nr): (usize, usize),
    alpha: f32,
    beta: f32,
) {
    #[cfg(target_arch = "x86_64")]
    ukr_avx512::<MR, NV>(kc, a, a_rs, a_cs, (b, b_rs), c, ldc, mr, nr, alpha, beta);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (kc, a, a_rs, a_cs, b, b_rs, c, ldc, mr, nr, alpha, beta);
        unreachable!("the AVX-512 path only runs on x86-64");
    }
}

/// The micro-kernel: acc(r, j) = sum_p a[r*a_rs + p*a_cs] * b[p*b_rs + j] (j < 16 NV), in
/// MR x NV zmm accumulators; then C = alpha * acc + beta * C on the first `mr` x `nr`
/// entries, with masked loads and stores (beta == 0: C is not read).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn ukr_avx512<const MR: usize, const NV: usize>(
    kc: usize,
    mut a: *const f32,
    a_rs: usize,
    a_cs: usize,
    (mut b, b_rs): (*const f32, usize),
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for _ in 0..kc {
        let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(b.add(16 * v)));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(r * a_rs));
            for (x, &bv) in acc_r.iter_mut().zip(&bv) {
                *x = _mm512_fmadd_ps(av, bv, *x);
            }
        }
        // Wrapping: after the last row these may point past the end of A or B (never
        // read).
        a = a.wrapping_add(a_cs);
        b = b.wrapping_add(b_rs);
    }
    let masks: [__mmask16; NV] = std::array::from_fn(|v| {
        let left = nr.saturating_sub(16 * v).min(16);
        ((1u32 << left) - 1) as __mmask16
    });
    let va = _mm512_set1_ps(alpha);
    let vb = _mm512_set1_ps(beta);
    for (r, acc_r) in acc.iter().enumerate() {
        if r < mr {
            for (v, (&x, &mask)) in acc_r.iter().zip(&masks).enumerate() {
                let cp = c.add(r * ldc + 16 * v);
                // Not multiplied when alpha is 1 (Winograd's products, dense layers): a
                // multiply per 32 multiply-adds, on the same ports.
                let mut out = if alpha == 1.0 {
                    x
                } else {
                    _mm512_mul_ps(x, va)
                };
                if beta != 0.0 {
                    out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, cp), out);
                }
                _mm512_mask_storeu_ps(cp, mask, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop in f64, as the reference.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &[f32],
        b: &[f32],
        beta: f32,
        c: &[f32],
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let x = if ta { a[p * m + i] } else { a[i * k + p] } as f64;
                    let y = if tb { b[j * k + p] } else { b[p * n + j] } as f64;
                    s += x * y;
                }
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * c[i * n + j] as f64
                };
                out[i * n + j] = alpha as f64 * s + old;
            }
        }
        out
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn fill(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        backend: Backend,
        ta: bool,
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
        nan_c: bool,
    ) {
        let a = fill(m * k, (m * 31 + k) as u64);
        let b = fill(k * n, (n * 17 + k + 5) as u64);
        let mut c = if nan_c {
            vec![f32::NAN; m * n]
        } else {
            fill(m * n, 99)
        };
        let want = naive(ta, tb, m, n, k, alpha, &a, &b, beta, &c);
        sgemm_with(backend, ta, tb, m, n, k, alpha, &a, &b, beta, &mut c);
        // Error bound of a length-k dot product of values in [-1, 1], scaled.
        let tol = 1e-5 * (k as f64 + 1.0) * (alpha.abs() as f64 + beta.abs() as f64 + 1.0);
        for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - w).abs() <= tol * (1.0 + w.abs()),
                "{backend:?} ta={ta} tb={tb} m={m} n={n} k={k} alpha={alpha} beta={beta}: C[{idx}] = {got}, want {w}"
            );
        }
    }

    const BACKENDS: [Backend; 3] = [Backend::Auto, Backend::Avx512, Backend::MatrixMultiply];

    #[test]
    fn products_with_a_packed_b_match_the_definition() {
        // Narrow (16 x 16 tiles) and wide (8 x 32) products, partial row and column
        // tiles, several depth blocks (k > KC_MAX) and column blocks (n > NC); one
        // PackedB serves several A.
        for (m, n, k) in [
            (36, 64, 32),
            (5, 10, 7),
            (17, 33, 400),
            (9, 1100, 20),
            (0, 8, 3),
        ] {
            let b = fill(k * n, (n + k) as u64);
            let packed = PackedB::new(k, n, &b);
            for seed in [1u64, 2] {
                let a = fill(m * k, seed);
                let mut c = vec![f32::NAN; m * n];
                sgemm_packed(m, &a, &packed, &mut c);
                let want = naive(false, false, m, n, k, 1.0, &a, &b, 0.0, &c);
                let tol = 1e-5 * (k as f64 + 1.0);
                for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(
                        (got as f64 - w).abs() <= tol * (1.0 + w.abs()),
                        "m={m} n={n} k={k}: C[{idx}] = {got}, want {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn gemm_all_transposes_odd_sizes() {
        let sizes = [1, 3, 17, 33, 100, 129];
        for &backend in &BACKENDS {
            for ta in [false, true] {
                for tb in [false, true] {
                    for &m in &sizes {
                        for &n in &sizes {
                            for &k in &[1, 7, 33, 129] {
                                check(backend, ta, tb, m, n, k, 1.0, 0.0, false);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_alpha_beta() {
        for &backend in &BACKENDS {
            for (alpha, beta) in [
                (1.0, 1.0),
                (0.5, -2.0),
                (-1.5, 0.0),
                (2.0, 1.0),
                (0.0, 0.5),
                (0.0, 0.0),
            ] {
                for ta in [false, true] {
                    for tb in [false, true] {
                        check(backend, ta, tb, 37, 45, 70, alpha, beta, false);
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_beta_zero_ignores_nan() {
        for &backend in &BACKENDS {
            for (m, n, k) in [
                (5, 3, 4),
                (33, 40, 17),
                (128, 10, 128),
                (0, 3, 2),
                (3, 5, 0),
            ] {
                check(backend, false, false, m, n, k, 1.0, 0.0, true);
                check(backend, true, true, m, n, k, 0.0, 0.0, true);
            }
        }
    }

    /// Shapes big enough to take the multi-threaded path and the k, m and n blocking
    /// (k > KC_MAX, m > MC), in the transposes training uses.
    #[test]
    fn gemm_training_shapes_and_blocking() {
        for &backend in &BACKENDS {
            check(backend, false, false, 128, 256, 784, 1.0, 0.0, false);
            check(backend, true, false, 784, 256, 128, 1.0, 1.0, false);
            check(backend, false, true, 128, 256, 128, 1.0, 0.0, true);
            check(backend, false, false, 300, 1100, 530, 0.7, 0.3, false);
            check(backend, true, true, 257, 65, 300, -1.0, 1.0, false);
            // B read in place (rows of whole slivers, at most IN_PLACE_ROW_MAX long):
            // the workshop CNN's dense layer, 16-column slivers, a partial row tile.
            check(backend, false, false, 37, 64, 1600, 1.0, 0.0, false);
            check(backend, false, false, 130, 16, 50, 0.5, 0.0, false);
            check(backend, false, false, 20, 96, 400, 1.0, 0.0, true);
            check(backend, false, false, 20, 96, 400, -0.5, 1.0, false);
        }
    }

    #[test]
    #[should_panic]
    fn gemm_short_slice_panics() {
        let a = vec![0.0; 5];
        let b = vec![0.0; 6];
        let mut c = vec![0.0; 4];
        sgemm(false, false, 2, 2, 3, 1.0, &a, &b, 0.0, &mut c);
    }
}
