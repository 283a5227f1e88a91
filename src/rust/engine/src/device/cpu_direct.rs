//! Direct convolution for inputs with very few channels (a first layer on grey or RGB
//! images), where im2col + GEMM is a poor fit: the product's inner dimension is only
//! kh * kw * c (9 for the workshop CNN's 3x3 over one channel), so the GEMM spends its
//! time loading and storing its output tiles, and the columns are a copy of the input
//! nine times over. Here each output pixel's f values are accumulated 16 lanes at a
//! time in registers from the few input values under the kernel, with bias and
//! activation applied before the one store.
//!
//! The kernel gradient is the same loop turned around, fused with the activation's
//! derivative and the bias gradient: one pass over the output gradient, the (small)
//! kernel gradient accumulating in L1. The input gradient, rarely wanted for a first
//! layer, goes through im2col.

use rayon::prelude::*;

use super::cpu_conv::{by_thread, top_level, Epilogue};
use super::pool;
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::Pool2d;

/// Lanes per accumulator: one AVX-512 register of f32.
const L: usize = 16;

/// Whether a convolution of this geometry runs here: few input channels and a small
/// receptive field (at most 4 channels, e.g. 3x3 over RGB).
pub fn applies(g: &ConvGeometry) -> bool {
    g.c <= 4 && g.patch_len() <= 36 && !g.is_pointwise()
}

/// Output channels rounded up to whole accumulators.
fn padded(f: usize) -> usize {
    f.div_ceil(L) * L
}

/// The kernel (kh, kw, c, f) with each (tap, channel) row zero-padded to `padded(f)`.
fn pad_rows(v: &[f32], f: usize) -> Vec<f32> {
    let fp = padded(f);
    let mut out = vec![0.0f32; v.len() / f * fp];
    for (o, r) in out.chunks_exact_mut(fp).zip(v.chunks_exact(f)) {
        o[..f].copy_from_slice(r);
    }
    out
}

/// The kernel offsets k < `kernel` whose input position o * stride + k * dilation - pad
/// lies in [0, n): a plain range, so that the hot loops need no closure (which the
/// compiler would not inline into the AVX-512 copies).
fn inside(
    o: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
    n: usize,
    kernel: usize,
) -> std::ops::Range<usize> {
    let start = o * stride;
    // First k with start + k * dilation >= pad, and first k with it >= pad + n.
    let first = pad.saturating_sub(start).div_ceil(dilation);
    let end = (pad + n).saturating_sub(start).div_ceil(dilation);
    first.min(kernel)..end.min(kernel)
}

/// Pixels the forward pass handles together where their receptive fields lie inside
/// the image: independent accumulators hide the multiply-add latency.
const PX: usize = 4;

/// Kernel taps the kernel gradient accumulates in registers per pass (9: a 3x3 kernel
/// over one channel in one pass, 3x3 over RGB in three).
const TB: usize = 9;

/// Where each output pixel's receptive field lies in one sample.
struct Taps {
    /// `inside` for every output row and every output column, computed once per call:
    /// its divisions would cost more than the arithmetic of the loops they bound.
    rows: Vec<std::ops::Range<usize>>,
    cols: Vec<std::ops::Range<usize>>,
    /// The output rows and columns whose receptive field lies wholly inside the image
    /// (contiguous: the fields move monotonically with the output position).
    inner_rows: std::ops::Range<usize>,
    inner_cols: std::ops::Range<usize>,
    /// Offset of each (ky, kx, c) tap's input value from the field's first value.
    offs: Vec<usize>,
    /// Values per input row and per pixel, strides, padding.
    row_len: usize,
    g: ConvGeometry,
}

impl Taps {
    fn new(g: &ConvGeometry) -> Taps {
        let rows: Vec<_> = (0..g.oh)
            .map(|o| inside(o, g.sh, g.dh, g.pad_top, g.h, g.kh))
            .collect();
        let cols: Vec<_> = (0..g.ow)
            .map(|o| inside(o, g.sw, g.dw, g.pad_left, g.w, g.kw))
            .collect();
        let full = |r: &std::ops::Range<usize>, k: usize| r.start == 0 && r.end == k;
        let span = |v: &[std::ops::Range<usize>], k: usize| {
            let first = v.iter().position(|r| full(r, k)).unwrap_or(v.len());
            let end = v.iter().rposition(|r| full(r, k)).map_or(first, |i| i + 1);
            first..end
        };
        let (inner_rows, inner_cols) = (span(&rows, g.kh), span(&cols, g.kw));
        let row_len = g.w * g.c;
        let mut offs = Vec::with_capacity(g.patch_len());
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                for ci in 0..g.c {
                    offs.push(ky * g.dh * row_len + kx * g.dw * g.c + ci);
                }
            }
        }
        Taps {
            rows,
            cols,
            inner_rows,
            inner_cols,
            offs,
            row_len,
            g: *g,
        }
    }

    /// Whether output pixel (oy, ox) sees no padding.
    #[inline(always)]
    fn interior(&self, oy: usize, ox: usize) -> bool {
        self.inner_rows.contains(&oy) && self.inner_cols.contains(&ox)
    }

    /// The input offset of interior output pixel (oy, ox)'s receptive field.
    #[inline(always)]
    fn base(&self, oy: usize, ox: usize) -> usize {
        let g = &self.g;
        (oy * g.sh - g.pad_top) * self.row_len + (ox * g.sw - g.pad_left) * g.c
    }
}

/// One output pixel (any position: the taps over the padding are skipped), all its
/// channels, 16 at a time: out = act(bias + Σ x · k). The portable path, for pixels
/// over the padding and CPUs without AVX-512.
#[allow(clippy::too_many_arguments)]
fn forward_pixel(
    xs: &[f32],
    kp: &[f32],
    bias: &[f32],
    geo: &Taps,
    act: Activation,
    (oy, ox): (usize, usize),
    out: &mut [f32],
) {
    let (g, fp) = (&geo.g, bias.len());
    for (j0, out) in (0..g.f).step_by(L).zip(out.chunks_mut(L)) {
        let mut acc: [f32; L] = bias[j0..j0 + L].try_into().expect("16 lanes");
        for ky in geo.rows[oy].clone() {
            let iy = oy * g.sh + ky * g.dh - g.pad_top;
            for kx in geo.cols[ox].clone() {
                let ip = iy * g.w + ox * g.sw + kx * g.dw - g.pad_left;
                for (ci, &xv) in xs[ip * g.c..(ip + 1) * g.c].iter().enumerate() {
                    let row = ((ky * g.kw + kx) * g.c + ci) * fp + j0;
                    for (a, k) in acc.iter_mut().zip(&kp[row..row + L]) {
                        *a += xv * k;
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = act.apply(*a);
        }
    }
}

/// Adds one output pixel's share of the kernel and bias gradients (padded rows) to
/// `dk` and `db`, its gradient before the activation formed from `gs` and `ys`. The
/// portable path, as `forward_pixel`.
#[allow(clippy::too_many_arguments)]
fn kernel_grad_pixel(
    xs: &[f32],
    gs: &[f32],
    ys: &[f32],
    geo: &Taps,
    act: Activation,
    (oy, ox): (usize, usize),
    dk: &mut [f32],
    db: &mut [f32],
) {
    let (g, fp) = (&geo.g, padded(geo.g.f));
    let at = (oy * g.ow + ox) * g.f;
    for j0 in (0..g.f).step_by(L) {
        let w = L.min(g.f - j0);
        let mut gz = [0.0f32; L];
        for (l, z) in gz.iter_mut().enumerate().take(w) {
            *z = gs[at + j0 + l] * act.df_from_output(ys[at + j0 + l]);
        }
        db[j0..j0 + L]
            .iter_mut()
            .zip(&gz)
            .for_each(|(d, v)| *d += v);
        for ky in geo.rows[oy].clone() {
            let iy = oy * g.sh + ky * g.dh - g.pad_top;
            for kx in geo.cols[ox].clone() {
                let ip = iy * g.w + ox * g.sw + kx * g.dw - g.pad_left;
                for (ci, &xv) in xs[ip * g.c..(ip + 1) * g.c].iter().enumerate() {
                    let row = ((ky * g.kw + kx) * g.c + ci) * fp + j0;
                    let d = &mut dk[row..row + L];
                    d.iter_mut().zip(&gz).for_each(|(d, g)| *d += xv * g);
                }
            }
        }
    }
}

/// The outputs `y` of the samples whose inputs are `x`, from the padded kernel `kp` and
/// padded bias: with AVX-512, pixels whose receptive field lies inside the image `PX`
/// at a time in registers; the others one by one.
fn forward_samples(
    x: &[f32],
    kp: &[f32],
    bias: &[f32],
    g: &ConvGeometry,
    act: Activation,
    y: &mut [f32],
) {
    let (in_len, out_len, f) = (g.h * g.w * g.c, g.out_pixels() * g.f, g.f);
    let geo = Taps::new(g);
    let fast = avx512::available();
    for (xs, ys) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        for oy in 0..g.oh {
            let mut ox = 0;
            while ox < g.ow {
                let at = (oy * g.ow + ox) * f;
                if fast && geo.interior(oy, ox) && geo.interior(oy, ox + PX - 1) {
                    let base = std::array::from_fn(|q| geo.base(oy, ox + q));
                    let out = &mut ys[at..at + PX * f];
                    // SAFETY: AVX-512F is present (checked above).
                    unsafe { avx512::forward::<PX>(xs, base, &geo.offs, kp, bias, act, out) };
                    ox += PX;
                } else if fast && geo.interior(oy, ox) {
                    let out = &mut ys[at..at + f];
                    let base = [geo.base(oy, ox)];
                    // SAFETY: as above.
                    unsafe { avx512::forward::<1>(xs, base, &geo.offs, kp, bias, act, out) };
                    ox += 1;
                } else {
                    let out = &mut ys[at..at + f];
                    forward_pixel(xs, kp, bias, &geo, act, (oy, ox), out);
                    ox += 1;
                }
            }
        }
    }
}

/// y (n, oh, ow, f) = act(conv(x, kernel) + bias).
pub fn conv2d_forward(x: &[f32], kernel: &[f32], g: &ConvGeometry, epilogue: Epilogue) -> Vec<f32> {
    let kp = pad_rows(kernel, g.f);
    let mut bias = vec![0.0f32; padded(g.f)];
    if let Some(b) = epilogue.bias {
        bias[..g.f].copy_from_slice(b);
    }
    let (in_len, out_len) = (g.h * g.w * g.c, g.out_pixels() * g.f);
    let mut y = pool::scratch(g.n * out_len);
    let run = |x: &[f32], y: &mut [f32]| forward_samples(x, &kp, &bias, g, epilogue.act, y);
    if top_level() && g.n > 1 {
        let per = g.n.div_ceil(crate::threads::count());
        crate::threads::install(|| {
            y.par_chunks_mut(per * out_len)
                .zip(x.par_chunks(per * in_len))
                .for_each(|(y, x)| run(x, y))
        });
    } else {
        run(x, &mut y);
    }
    y
}

/// max_pool(act(conv(x, kernel) + bias)) (inference), `pg` the pooling's geometry on the
/// convolution's output, when every pooling window covers whole interior output pixels
/// and the activation is linear or ReLU; `None` otherwise (and on CPUs without
/// AVX-512), for the caller's general path. Each window's pixels are accumulated in
/// registers and only their max is stored: the convolution's output is never written.
/// Bias and activation come after the max, which they commute with (a per-channel shift
/// and a non-decreasing function).
pub fn conv2d_max_pool_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    pg: &Pool2d,
) -> Option<Vec<f32>> {
    let relu = match epilogue.act {
        Activation::Relu => true,
        Activation::Linear => false,
        _ => return None,
    };
    let geo = Taps::new(g);
    let covered = |n_out: usize, stride: usize, window: usize, inner: &std::ops::Range<usize>| {
        n_out == 0 || (inner.start == 0 && (n_out - 1) * stride + window <= inner.end)
    };
    let interior = pg.pad_top == 0
        && pg.pad_left == 0
        && covered(pg.oh, pg.sh, pg.ph, &geo.inner_rows)
        && covered(pg.ow, pg.sw, pg.pw, &geo.inner_cols);
    if !avx512::available() || !interior {
        return None;
    }
    let kp = pad_rows(kernel, g.f);
    let mut bias = vec![0.0f32; padded(g.f)];
    if let Some(b) = epilogue.bias {
        bias[..g.f].copy_from_slice(b);
    }
    let (in_len, out_len) = (g.h * g.w * g.c, pg.oh * pg.ow * g.f);
    // The receptive field of each window pixel, window after window: the same in every
    // sample.
    let cells = pg.ph * pg.pw;
    let mut bases = Vec::with_capacity(pg.oh * pg.ow * cells);
    for py in 0..pg.oh {
        for px in 0..pg.ow {
            for a in 0..pg.ph {
                for b in 0..pg.pw {
                    bases.push(geo.base(py * pg.sh + a, px * pg.sw + b));
                }
            }
        }
    }
    let mut y = pool::scratch(g.n * out_len);
    let run = |x: &[f32], y: &mut [f32]| {
        for (xs, ys) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
            // SAFETY: AVX-512F is present, and every window pixel is interior (both
            // checked above), so each base plus each tap offset lies inside the sample.
            unsafe {
                avx512::forward_pooled_sample(xs, &bases, cells, &geo.offs, &kp, &bias, relu, ys)
            };
        }
    };
    by_thread(g.n, (x, in_len), (&mut y, out_len), run);
    Some(y)
}

/// Adds the kernel and bias gradients of the samples whose inputs are `x` to `dk`
/// (padded rows) and `db` (padded), forming the gradient before the activation from
/// the output gradient `gy` and the output `y` on the way: with AVX-512 (and a linear
/// or ReLU activation), the pixels whose receptive field lies inside the image in
/// register accumulators; the others one by one.
fn kernel_grad_samples(
    x: &[f32],
    gy: &[f32],
    y: &[f32],
    act: Activation,
    g: &ConvGeometry,
    dk: &mut [f32],
    db: &mut [f32],
) {
    let (in_len, out_len) = (g.h * g.w * g.c, g.out_pixels() * g.f);
    let geo = Taps::new(g);
    let fast = avx512::available() && matches!(act, Activation::Linear | Activation::Relu);
    let samples = x.chunks_exact(in_len).zip(gy.chunks_exact(out_len));
    for (s, (xs, gs)) in samples.enumerate() {
        let ys = &y[s * out_len..(s + 1) * out_len];
        if fast {
            let relu = act == Activation::Relu;
            // SAFETY: AVX-512F is present (checked above).
            unsafe { avx512::kernel_grad_interior(xs, gs, ys, &geo, relu, dk, db) };
        }
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                if !(fast && geo.interior(oy, ox)) {
                    kernel_grad_pixel(xs, gs, ys, &geo, act, (oy, ox), dk, db);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The interior pixels' loops in AVX-512 intrinsics: written in plain Rust, the
    //! compiler kept the accumulators on the stack and lost most of the gain.

    use std::arch::x86_64::*;

    use super::{padded, Taps, L, PX, TB};
    use crate::ops::activation::Activation;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// Lanes of a chunk of 16 output channels starting at j0 that are real channels.
    #[inline(always)]
    fn lanes(f: usize, j0: usize) -> __mmask16 {
        let w = L.min(f - j0);
        if w == L {
            0xffff
        } else {
            (1u16 << w) - 1
        }
    }

    /// `N` consecutive interior output pixels, their receptive fields at `base` in
    /// `xs`: out (N x f) = act(bias + Σ_taps x · k).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn forward<const N: usize>(
        xs: &[f32],
        base: [usize; N],
        offs: &[usize],
        kp: &[f32],
        bias: &[f32],
        act: Activation,
        out: &mut [f32],
    ) {
        let fp = bias.len();
        let f = out.len() / N;
        for j0 in (0..f).step_by(L) {
            let b = _mm512_loadu_ps(bias[j0..j0 + L].as_ptr());
            let mut acc = [b; N];
            for (t, &off) in offs.iter().enumerate() {
                let k = _mm512_loadu_ps(kp[t * fp + j0..t * fp + j0 + L].as_ptr());
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(xs[base[q] + off]), k, *a);
                }
            }
            let mask = lanes(f, j0);
            for (q, a) in acc.iter().enumerate() {
                let a = match act {
                    Activation::Relu => _mm512_max_ps(*a, _mm512_setzero_ps()),
                    _ => *a,
                };
                let dst = &mut out[q * f + j0..q * f + (j0 + L).min(f)];
                // SAFETY: the mask covers exactly dst's lanes.
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, a);
                if !matches!(act, Activation::Linear | Activation::Relu) {
                    dst.iter_mut().for_each(|v| *v = act.apply(*v));
                }
            }
        }
    }

    /// The pooled output of one sample, `cells` window pixels per pooled pixel (their
    /// receptive fields at `bases` in `xs`, window after window): for each 16 output
    /// channels, each pooled pixel gets the max over its window of Σ_taps x · k (PX
    /// pixels at a time in registers), then + bias and, with `relu`, max(0, ·).
    /// A 3x3 kernel over one channel (a first layer on grey images) keeps its nine
    /// kernel vectors in registers across the sample.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn forward_pooled_sample(
        xs: &[f32],
        bases: &[usize],
        cells: usize,
        offs: &[usize],
        kp: &[f32],
        bias: &[f32],
        relu: bool,
        out: &mut [f32],
    ) {
        let fp = bias.len();
        // Each window's output: the sample's output over its windows.
        let f = out.len() / (bases.len() / cells).max(1);
        debug_assert!(bases
            .iter()
            .all(|&b| offs.iter().all(|&o| b + o < xs.len())));
        let x = xs.as_ptr();
        for j0 in (0..f).step_by(L) {
            let b = _mm512_loadu_ps(bias[j0..j0 + L].as_ptr());
            let chunk = (j0, f, b, relu);
            let tap = |t: usize| _mm512_loadu_ps(kp[t * fp + j0..t * fp + j0 + L].as_ptr());
            match <&[usize; 9]>::try_from(offs) {
                Ok(offs9) => {
                    let k: [__m512; 9] = std::array::from_fn(tap);
                    pooled_chunk(x, bases, cells, offs9, |t| k[t], chunk, out)
                }
                Err(_) => pooled_chunk(x, bases, cells, offs, tap, chunk, out),
            }
        }
    }

    /// Channels j0..j0 + 16 of every pooled pixel of one sample, the kernel vector of
    /// tap t from `kernel(t)` (registers for a 3x3 kernel over one channel).
    #[inline(always)]
    unsafe fn pooled_chunk(
        x: *const f32,
        bases: &[usize],
        cells: usize,
        offs: &[usize],
        kernel: impl Fn(usize) -> __m512,
        (j0, f, b, relu): (usize, usize, __m512, bool),
        out: &mut [f32],
    ) {
        let mask = lanes(f, j0);
        for (window, o) in bases.chunks_exact(cells).zip(out.chunks_exact_mut(f)) {
            let mut best = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut groups = window.chunks_exact(PX);
            for group in &mut groups {
                let mut acc = [_mm512_setzero_ps(); PX];
                for (t, &off) in offs.iter().enumerate() {
                    for (a, &base) in acc.iter_mut().zip(group) {
                        let xv = _mm512_set1_ps(*x.add(base + off));
                        *a = _mm512_fmadd_ps(xv, kernel(t), *a);
                    }
                }
                for a in acc {
                    best = _mm512_max_ps(best, a);
                }
            }
            for &base in groups.remainder() {
                let mut a = _mm512_setzero_ps();
                for (t, &off) in offs.iter().enumerate() {
                    a = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(base + off)), kernel(t), a);
                }
                best = _mm512_max_ps(best, a);
            }
            let mut v = _mm512_add_ps(best, b);
            if relu {
                v = _mm512_max_ps(v, _mm512_setzero_ps());
            }
            // SAFETY: the mask covers exactly the channels j0.. of this pixel.
            _mm512_mask_storeu_ps(o.as_mut_ptr().add(j0), mask, v);
        }
    }

    /// Adds the interior pixels' share of the kernel and bias gradients to `dk` and `db`
    /// (both padded to whole chunks), up to `TB` taps at a time in registers.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_grad_interior(
        xs: &[f32],
        gs: &[f32],
        ys: &[f32],
        geo: &Taps,
        relu: bool,
        dk: &mut [f32],
        db: &mut [f32],
    ) {
        let (g, taps) = (&geo.g, geo.offs.len());
        let (f, fp) = (g.f, padded(g.f));
        let zero = _mm512_setzero_ps();
        for j0 in (0..f).step_by(L) {
            let mask = lanes(f, j0);
            for t0 in (0..taps).step_by(TB) {
                let tn = TB.min(taps - t0);
                let offs = &geo.offs[t0..t0 + tn];
                let mut acc = [zero; TB];
                let mut bacc = zero;
                for oy in geo.inner_rows.clone() {
                    for ox in geo.inner_cols.clone() {
                        let at = (oy * g.ow + ox) * f + j0;
                        let src = &gs[at..at + L.min(f - j0)];
                        // SAFETY: the mask covers exactly src's lanes (and ys's).
                        let mut gz = _mm512_maskz_loadu_ps(mask, src.as_ptr());
                        if relu {
                            let yv = _mm512_maskz_loadu_ps(mask, ys[at..].as_ptr());
                            let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(yv, zero);
                            gz = _mm512_maskz_mov_ps(pos, gz);
                        }
                        bacc = _mm512_add_ps(bacc, gz);
                        let base = geo.base(oy, ox);
                        for (t, a) in acc.iter_mut().enumerate() {
                            if t < tn {
                                let xv = _mm512_set1_ps(xs[base + offs[t]]);
                                *a = _mm512_fmadd_ps(xv, gz, *a);
                            }
                        }
                    }
                }
                for (t, a) in acc.iter().enumerate().take(tn) {
                    let d = &mut dk[(t0 + t) * fp + j0..(t0 + t) * fp + j0 + L];
                    _mm512_storeu_ps(
                        d.as_mut_ptr(),
                        _mm512_add_ps(_mm512_loadu_ps(d.as_ptr()), *a),
                    );
                }
                if t0 == 0 {
                    let d = &mut db[j0..j0 + L];
                    _mm512_storeu_ps(
                        d.as_mut_ptr(),
                        _mm512_add_ps(_mm512_loadu_ps(d.as_ptr()), bacc),
                    );
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    pub fn available() -> bool {
        false
    }
    pub unsafe fn forward<const N: usize>(
        _: &[f32],
        _: [usize; N],
        _: &[usize],
        _: &[f32],
        _: &[f32],
        _: crate::ops::activation::Activation,
        _: &mut [f32],
    ) {
        unreachable!()
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn forward_pooled_sample(
        _: &[f32],
        _: &[usize],
        _: usize,
        _: &[usize],
        _: &[f32],
        _: &[f32],
        _: bool,
        _: &mut [f32],
    ) {
        unreachable!()
    }
    pub unsafe fn kernel_grad_interior(
        _: &[f32],
        _: &[f32],
        _: &[f32],
        _: &super::Taps,
        _: bool,
        _: &mut [f32],
        _: &mut [f32],
    ) {
        unreachable!()
    }
}

/// (dkernel (kh, kw, c, f), dbias (f)) from the input, the output `y`, its gradient `gy`
/// and the activation.
pub fn conv2d_kernel_grad(
    x: &[f32],
    gy: &[f32],
    y: &[f32],
    act: Activation,
    g: &ConvGeometry,
) -> (Vec<f32>, Vec<f32>) {
    let fp = padded(g.f);
    let (in_len, out_len) = (g.h * g.w * g.c, g.out_pixels() * g.f);
    let dk_len = g.patch_len() * fp;
    // At the top level each thread sums a contiguous run of samples, in a fixed order
    // so that the result does not depend on scheduling.
    let parts = if top_level() {
        crate::threads::count().min(g.n).max(1)
    } else {
        1
    };
    let per = g.n.div_ceil(parts).max(1);
    let mut acc = vec![0.0f32; parts * (dk_len + fp)];
    crate::threads::for_each_chunk(&mut acc, dk_len + fp, |i, acc| {
        let (s0, s1) = ((i * per).min(g.n), ((i + 1) * per).min(g.n));
        let (dk, db) = acc.split_at_mut(dk_len);
        kernel_grad_samples(
            &x[s0 * in_len..s1 * in_len],
            &gy[s0 * out_len..s1 * out_len],
            &y[s0 * out_len..s1 * out_len],
            act,
            g,
            dk,
            db,
        );
    });
    let (total, rest) = acc.split_at_mut(dk_len + fp);
    for part in rest.chunks_exact(dk_len + fp) {
        total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
    }
    let (dk_p, db_p) = total.split_at(dk_len);
    let dk = dk_p
        .chunks_exact(fp)
        .flat_map(|r| &r[..g.f])
        .copied()
        .collect();
    (dk, db_p[..g.f].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu_conv::{self, ConvBackward};
    use crate::ops::conv::{ConvSpec, Padding};
    use crate::ops::gradcheck::random_tensor;

    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        diff / scale
    }

    /// (input shape, kernel, strides, dilation, padding, filters): the workshop CNN's
    /// first layer, RGB with stride 2, a dilated one, a 1-D causal one, and filter counts
    /// that are not whole accumulators.
    #[allow(clippy::type_complexity)]
    fn cases() -> Vec<(
        [usize; 4],
        (usize, usize),
        (usize, usize),
        (usize, usize),
        Padding,
        usize,
    )> {
        vec![
            ([5, 28, 28, 1], (3, 3), (1, 1), (1, 1), Padding::Valid, 32),
            ([2, 9, 8, 3], (3, 3), (2, 2), (1, 1), Padding::Same, 20),
            ([2, 8, 7, 2], (3, 2), (1, 1), (2, 2), Padding::Valid, 5),
            ([3, 1, 9, 1], (1, 3), (1, 1), (1, 1), Padding::Causal, 17),
            ([2, 6, 6, 4], (3, 3), (1, 1), (1, 1), Padding::Same, 48),
        ]
    }

    #[test]
    fn matches_im2col_forward_and_backward() {
        for (shape, kernel, strides, dilation, padding, f) in cases() {
            let spec = ConvSpec {
                kernel,
                strides,
                dilation,
                padding,
            };
            let g = spec.geometry(&shape, f).unwrap();
            assert!(applies(&g));
            let x = random_tensor(&shape, 1, 1.0);
            let k = random_tensor(&[kernel.0, kernel.1, shape[3], f], 2, 0.5);
            let bias = random_tensor(&[f], 3, 0.5);
            let gy = random_tensor(&[g.n, g.oh, g.ow, f], 4, 1.0);
            for act in [Activation::Linear, Activation::Relu, Activation::Tanh] {
                let epi = Epilogue {
                    bias: Some(bias.host()),
                    act,
                };
                let want = cpu_conv::im2col_forward(x.host(), k.host(), &g, epi, false).y;
                let got = cpu_conv::conv2d_forward(x.host(), k.host(), &g, epi, true);
                assert!(got.cols.is_none());
                let e = rel_err(&got.y, &want);
                assert!(e < 1e-6, "{shape:?} {spec:?} {act:?} y: {e}");
                let b = ConvBackward {
                    x: x.host(),
                    kernel: k.host(),
                    y: &want,
                    gy: gy.host(),
                    act,
                    cols: None,
                };
                let all = (true, true, true);
                let (dx0, dk0, db0) = cpu_conv::im2col_backward(&b, &g, all);
                let (dx1, dk1, db1) = cpu_conv::conv2d_backward(&b, &g, all);
                let (_, dk2, _) = cpu_conv::conv2d_backward(&b, &g, (false, true, false));
                let (dk0, dk1) = (dk0.unwrap(), dk1.unwrap());
                let e = rel_err(&dk1, &dk0);
                assert!(e < 1e-5, "{shape:?} {spec:?} {act:?} dk: {e}");
                // Without the input gradient, the activation's derivative is fused in
                // (and for tanh the portable loop runs): the same sums, maybe reordered.
                let e = rel_err(&dk2.unwrap(), &dk1);
                assert!(e < 1e-6, "{shape:?} {spec:?} {act:?} dk fused: {e}");
                let e = rel_err(&db1.unwrap(), &db0.unwrap());
                assert!(e < 1e-5, "{shape:?} {spec:?} {act:?} db: {e}");
                let e = rel_err(&dx1.unwrap(), &dx0.unwrap());
                assert!(e < 1e-6, "{shape:?} {spec:?} {act:?} dx: {e}");
            }
        }
    }

    #[test]
    fn top_level_threads_give_the_same_results() {
        let spec = ConvSpec {
            kernel: (3, 3),
            strides: (1, 1),
            dilation: (1, 1),
            padding: Padding::Valid,
        };
        let g = spec.geometry(&[7, 28, 28, 1], 32).unwrap();
        let x = random_tensor(&[7, 28, 28, 1], 5, 1.0);
        let k = random_tensor(&[3, 3, 1, 32], 6, 0.5);
        let gy = random_tensor(&[7, 26, 26, 32], 7, 1.0);
        let run = || {
            let y = conv2d_forward(x.host(), k.host(), &g, Epilogue::NONE);
            let (dk, db) = conv2d_kernel_grad(x.host(), gy.host(), &y, Activation::Relu, &g);
            (y, dk, db)
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let serial = pool.install(run);
        let parallel = run();
        assert_eq!(serial.0, parallel.0);
        // The two threads' partial sums add up in another order: rounding only.
        let (ek, eb) = (
            rel_err(&parallel.1, &serial.1),
            rel_err(&parallel.2, &serial.2),
        );
        println!("dk {ek:e} db {eb:e}");
        assert!(ek < 1e-5 && eb < 1e-5, "dk {ek} db {eb}");
    }
}
