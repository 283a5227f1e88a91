//! Convolution kernels on the CPU: im2col + GEMM.
//!
//! Inputs are NHWC and kernels (kh, kw, c, f), both row-major, so one im2col row (the
//! receptive field of one output pixel, in (kh, kw, c) order) times the kernel seen as a
//! (kh*kw*c) x f matrix gives that pixel's f outputs, already in NHWC order. The columns
//! are built a few samples at a time, sized to stay in the L2 cache between the copy
//! and the product, so the full im2col matrix is never held; the weight gradient
//! rebuilds them rather than keeping them from the forward pass (cheap next to the
//! product, and it keeps big networks' memory flat). A 1x1 convolution with stride 1
//! and no padding needs no columns at all: the input already is the matrix.

use rayon::prelude::*;

use crate::device::cpu_direct as direct;
use crate::device::cpu_pool;
use crate::device::cpu_winograd as winograd;
use crate::device::cpu_winograd_rows as winograd_rows;
use crate::device::pool;
use crate::gemm::sgemm;
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::Pool2d;

/// Floats of im2col columns built per step (768 KB: fits Zen 4's 1 MB L2 with room for
/// the packed kernel).
const COLS_BUDGET: usize = 192 * 1024;

/// Rows (output pixels) a step's product should have at least: below this, a deep
/// layer's small feature maps (ResNet50's 7x7 stage: 49 rows against k = 4608) make
/// thin products that split badly across threads and repack the kernel every sample.
const MIN_STEP_ROWS: usize = 256;

/// Samples per im2col step. A 1x1 convolution with stride 1 builds no columns, so it
/// takes the whole batch in one product.
fn samples_per_step(g: &ConvGeometry) -> usize {
    if g.is_pointwise() {
        return g.n.max(1);
    }
    let op = g.out_pixels().max(1);
    let by_cache = COLS_BUDGET / (op * g.patch_len()).max(1);
    by_cache
        .max(MIN_STEP_ROWS.div_ceil(op))
        .clamp(1, g.n.max(1))
}

/// Parallel loops only at the top level: inside a pool worker the caller already
/// splits the work (training shards, predict batches). Shared by the convolution
/// kernels (`cpu_direct`, `cpu_winograd`, `cpu_winograd_rows`).
pub(crate) fn top_level() -> bool {
    rayon::current_thread_index().is_none() && crate::threads::count() > 1
}

/// `run(x, y)` over the `n` samples of `x` (`in_len` values each) and `y` (`out_len`
/// each): one contiguous run of samples per thread at the top level, all at once inside
/// a worker.
pub(crate) fn by_thread(
    n: usize,
    (x, in_len): (&[f32], usize),
    (y, out_len): (&mut [f32], usize),
    run: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    if top_level() && n > 1 {
        let per = n.div_ceil(crate::threads::count());
        crate::threads::install(|| {
            y.par_chunks_mut(per * out_len)
                .zip(x.par_chunks(per * in_len))
                .for_each(|(y, x)| run(x, y))
        });
    } else {
        run(x, y);
    }
}

/// Whether `pg` is a 2x2 max pooling of stride 2 ('valid') that covers the convolution's
/// output: the pooling the fused inference kernels hold in registers ('same' on an odd
/// map adds a window over the edge).
pub(crate) fn pools_2x2(g: &ConvGeometry, pg: &Pool2d) -> bool {
    (pg.ph, pg.pw, pg.sh, pg.sw, pg.pad_top, pg.pad_left) == (2, 2, 2, 2, 0, 0)
        && (pg.oh, pg.ow) == (g.oh / 2, g.ow / 2)
        && pg.oh * pg.ow > 0
}

/// `dst.copy_from_slice(src)`, without a call to memcpy for a few values (a first
/// layer's 1 or 3 channels), where the call costs more than the copy.
#[inline]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    if dst.len() < 16 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Fills `cols` with the im2col rows of samples [s0, s1): one row of `patch_len`
/// values per output pixel, zeros where the receptive field hangs over the padding.
fn im2col(x: &[f32], g: &ConvGeometry, s0: usize, s1: usize, cols: &mut [f32]) {
    let k = g.patch_len();
    let (in_len, row_len) = (g.h * g.w * g.c, g.w * g.c);
    let span = g.kw * g.c;
    let fill_sample = |s: usize, dst: &mut [f32]| {
        let sample = &x[s * in_len..(s + 1) * in_len];
        let mut rows = dst.chunks_exact_mut(k);
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let dst = rows.next().expect("one row per output pixel");
                let ix0 = (ox * g.sw) as isize - g.pad_left as isize;
                // Inside the image and undilated, a kernel row reads one span of pixels.
                let whole_span = g.dw == 1 && ix0 >= 0 && ix0 as usize + g.kw <= g.w;
                for (ky, dst_row) in dst.chunks_exact_mut(span).enumerate() {
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
                    if iy < 0 || iy >= g.h as isize {
                        dst_row.fill(0.0);
                        continue;
                    }
                    let src_row = &sample[iy as usize * row_len..(iy as usize + 1) * row_len];
                    if whole_span {
                        let from = ix0 as usize * g.c;
                        copy_small(dst_row, &src_row[from..from + span]);
                        continue;
                    }
                    for (kx, dst_px) in dst_row.chunks_exact_mut(g.c).enumerate() {
                        let ix = ix0 + (kx * g.dw) as isize;
                        if ix < 0 || ix >= g.w as isize {
                            dst_px.fill(0.0);
                        } else {
                            let at = ix as usize * g.c;
                            copy_small(dst_px, &src_row[at..at + g.c]);
                        }
                    }
                }
            }
        }
    };
    let per_sample = g.out_pixels() * k;
    let cols = &mut cols[..(s1 - s0) * per_sample];
    if top_level() && s1 - s0 > 1 && cols.len() >= 1 << 16 {
        crate::threads::install(|| {
            cols.par_chunks_mut(per_sample)
                .enumerate()
                .for_each(|(i, dst)| fill_sample(s0 + i, dst))
        });
    } else {
        cols.chunks_mut(per_sample)
            .enumerate()
            .for_each(|(i, dst)| fill_sample(s0 + i, dst));
    }
}

/// Adds the im2col-shaped gradient `dcols` of samples [s0, s1) back onto `dx` (the
/// transpose of `im2col`). Samples write disjoint parts of `dx`, so they run in
/// parallel at the top level.
fn col2im_add(dcols: &[f32], g: &ConvGeometry, s0: usize, s1: usize, dx: &mut [f32]) {
    let k = g.patch_len();
    let per_sample_in = g.h * g.w * g.c;
    let per_sample_cols = g.out_pixels() * k;
    let add_sample = |(i, dxs): (usize, &mut [f32])| {
        let src = &dcols[i * per_sample_cols..(i + 1) * per_sample_cols];
        for p in 0..g.out_pixels() {
            let (oy, ox) = (p / g.ow, p % g.ow);
            let row = &src[p * k..(p + 1) * k];
            for ky in 0..g.kh {
                let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
                if iy < 0 || iy >= g.h as isize {
                    continue;
                }
                for kx in 0..g.kw {
                    let ix = (ox * g.sw + kx * g.dw) as isize - g.pad_left as isize;
                    if ix < 0 || ix >= g.w as isize {
                        continue;
                    }
                    let at = (iy as usize * g.w + ix as usize) * g.c;
                    let from = (ky * g.kw + kx) * g.c;
                    for (d, s) in dxs[at..at + g.c].iter_mut().zip(&row[from..from + g.c]) {
                        *d += s;
                    }
                }
            }
        }
    };
    let dx = &mut dx[s0 * per_sample_in..s1 * per_sample_in];
    if top_level() && s1 - s0 > 1 {
        crate::threads::install(|| {
            dx.par_chunks_mut(per_sample_in)
                .enumerate()
                .for_each(add_sample)
        });
    } else {
        dx.chunks_mut(per_sample_in)
            .enumerate()
            .for_each(add_sample);
    }
}

/// What the forward pass applies to each block of outputs while it is still in cache:
/// y = act(conv + bias).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub act: Activation,
}

impl Epilogue<'_> {
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        act: Activation::Linear,
    };

    pub(super) fn apply(&self, y: &mut [f32], f: usize) {
        fn run(y: &mut [f32], f: usize, bias: Option<&[f32]>, act: impl Fn(f32) -> f32) {
            match bias {
                Some(b) => y
                    .chunks_exact_mut(f)
                    .for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v = act(*v + b))),
                None => y.iter_mut().for_each(|v| *v = act(*v)),
            }
        }
        match self.act {
            Activation::Linear if self.bias.is_none() => {}
            Activation::Linear => run(y, f, self.bias, |v| v),
            Activation::Relu => run(y, f, self.bias, |v| v.max(0.0)),
            act => run(y, f, self.bias, |v| act.apply(v)),
        }
    }
}

/// A convolution's forward output, and its im2col columns when they were kept for the
/// backward pass.
pub struct ConvForward {
    pub y: Vec<f32>,
    pub cols: Option<Vec<f32>>,
}

/// y (n, oh, ow, f) = act(conv(x (n, h, w, c), kernel (kh, kw, c, f)) + bias). With
/// `keep_cols` what the kernel gradient needs from the input is kept: the im2col
/// columns, or the Winograd-transformed input for the 3x3 convolutions that take that
/// path (`cpu_winograd::applies`); nothing for those with very few input channels,
/// which run a direct loop over the input (`cpu_direct::applies`).
pub fn conv2d_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    keep_cols: bool,
) -> ConvForward {
    Path::choose(kernel, g, keep_cols).forward(x, kernel, g, epilogue, keep_cols)
}

/// Which algorithm a convolution of a given geometry runs, with what it prepares from
/// the kernel once per call (Winograd's transformed kernel).
enum Path {
    Direct,
    Winograd(std::sync::Arc<winograd::TransformedKernel>),
    Im2col,
}

impl Path {
    /// The path for `g`; `keep`: the kernel gradient will want what the forward pass
    /// keeps (Winograd then uses the tiles its gradient uses).
    fn choose(kernel: &[f32], g: &ConvGeometry, keep: bool) -> Path {
        if direct::applies(g) {
            Path::Direct
        } else if winograd::applies(g) {
            Path::Winograd(match keep {
                true => std::sync::Arc::new(winograd::prepare_kernel(kernel, g)),
                false => winograd::prepare_inference_kernel(kernel, g, (g.oh, g.ow)),
            })
        } else {
            Path::Im2col
        }
    }

    fn forward(
        &self,
        x: &[f32],
        kernel: &[f32],
        g: &ConvGeometry,
        epilogue: Epilogue,
        keep_cols: bool,
    ) -> ConvForward {
        match self {
            Path::Direct => ConvForward {
                y: direct::conv2d_forward(x, kernel, g, epilogue),
                cols: None,
            },
            Path::Winograd(u) => {
                let mut kept = keep_cols.then(|| pool::scratch(winograd::kept_len(g)));
                let y = winograd::conv2d_forward(x, u, g, epilogue, kept.as_deref_mut());
                ConvForward { y, cols: kept }
            }
            Path::Im2col => im2col_forward(x, kernel, g, epilogue, keep_cols),
        }
    }
}

/// Bytes of convolution output `conv2d_max_pool_forward` produces per step: the step's
/// output is pooled while it is still in L2 (1 MB on Zen 4), with room for the input
/// and the algorithm's own blocks.
const POOLED_STEP_BYTES: usize = 256 * 1024;

/// max_pool(act(conv(x, kernel) + bias)) for inference, `pg` the pooling's geometry on
/// the convolution's output. The batch runs a few samples at a time (in parallel at the
/// top level), each step's output pooled at once: pooling the whole batch's output
/// afterwards read it back from memory, and that took a quarter of the workshop CNN's
/// predict time (its first convolution writes 86 KB per sample).
pub fn conv2d_max_pool_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    pg: &Pool2d,
) -> Vec<f32> {
    debug_assert_eq!((pg.n, pg.h, pg.w, pg.c), (g.n, g.oh, g.ow, g.f));
    if winograd_rows::applies(g, pg, epilogue.act) {
        return winograd_rows::conv2d_max_pool_forward(x, kernel, g, epilogue, pg);
    }
    if direct::applies(g) {
        if let Some(y) = direct::conv2d_max_pool_forward(x, kernel, g, epilogue, pg) {
            return y;
        }
    }
    let (in_len, out_len) = (g.h * g.w * g.c, pg.oh * pg.ow * pg.c);
    let conv_len = (g.out_pixels() * g.f).max(1);
    let step = (POOLED_STEP_BYTES / (4 * conv_len)).clamp(1, g.n.max(1));
    if winograd::applies(g) {
        if let Some(y) = winograd::conv2d_max_pool_forward(x, kernel, g, epilogue, pg) {
            return y;
        }
    }
    let path = Path::choose(kernel, g, false);
    let mut y = pool::scratch(g.n * out_len);
    let run = |x: &[f32], y: &mut [f32]| {
        let n = x.len() / in_len.max(1);
        let gs = ConvGeometry { n, ..*g };
        let conv = path.forward(x, kernel, &gs, epilogue, false).y;
        cpu_pool::max_pool2d_into(&conv, &Pool2d { n, ..*pg }, y);
        pool::give(conv);
    };
    if out_len > 0 && in_len > 0 {
        if top_level() && g.n > step {
            crate::threads::install(|| {
                y.par_chunks_mut(step * out_len)
                    .zip(x.par_chunks(step * in_len))
                    .for_each(|(y, x)| run(x, y))
            });
        } else {
            y.chunks_mut(step * out_len)
                .zip(x.chunks(step * in_len))
                .for_each(|(y, x)| run(x, y));
        }
    }
    y
}

/// `conv2d_forward` through im2col + GEMM, whatever the geometry.
pub(crate) fn im2col_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    keep_cols: bool,
) -> ConvForward {
    let (k, f, op) = (g.patch_len(), g.f, g.out_pixels());
    let mut y = pool::scratch(g.n * op * f);
    let step = samples_per_step(g);
    let keep_cols = keep_cols && !g.is_pointwise();
    let mut cols = if g.is_pointwise() {
        Vec::new()
    } else if keep_cols {
        pool::scratch(g.n * op * k)
    } else {
        pool::scratch(step * op * k)
    };
    for s0 in (0..g.n).step_by(step) {
        let s1 = (s0 + step).min(g.n);
        let rows = (s1 - s0) * op;
        let a: &[f32] = if g.is_pointwise() {
            &x[s0 * op * k..s1 * op * k]
        } else {
            let dst = if keep_cols {
                &mut cols[s0 * op * k..s1 * op * k]
            } else {
                &mut cols[..rows * k]
            };
            im2col(x, g, s0, s1, dst);
            dst
        };
        let y_step = &mut y[s0 * op * f..s1 * op * f];
        sgemm(false, false, rows, f, k, 1.0, a, kernel, 0.0, y_step);
        epilogue.apply(y_step, f);
    }
    let cols = if keep_cols {
        Some(cols)
    } else {
        pool::give(cols);
        None
    };
    ConvForward { y, cols }
}

/// The inputs of a convolution's backward pass.
#[derive(Clone, Copy)]
pub struct ConvBackward<'a> {
    pub x: &'a [f32],
    pub kernel: &'a [f32],
    /// The forward output, for the activation's derivative.
    pub y: &'a [f32],
    /// Gradient of the loss with respect to y.
    pub gy: &'a [f32],
    pub act: Activation,
    /// The forward pass's im2col columns, if it kept them.
    pub cols: Option<&'a [f32]>,
}

/// (dx, dkernel, dbias), each present when it was wanted.
pub type ConvGrads = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

/// Gradients of `conv2d_forward`: (dx, dkernel, dbias), each only when wanted.
pub fn conv2d_backward(b: &ConvBackward, g: &ConvGeometry, want: (bool, bool, bool)) -> ConvGrads {
    if direct::applies(g) {
        direct_backward(b, g, want)
    } else if winograd::applies(g) {
        winograd_backward(b, g, want)
    } else {
        im2col_backward(b, g, want)
    }
}

/// The backward pass of a convolution whose forward pass ran through Winograd (so
/// `b.cols`, when kept, holds the transformed input). The gradient before the activation
/// is formed once for the whole batch: the kernel and input gradients read it in
/// different tilings.
fn winograd_backward(
    b: &ConvBackward,
    g: &ConvGeometry,
    (want_dx, want_dk, want_db): (bool, bool, bool),
) -> ConvGrads {
    let f = g.f;
    let linear = b.act == Activation::Linear;
    let gz_buf = (!linear).then(|| {
        let mut gz = pool::scratch(b.gy.len());
        activation_grad(b.gy, b.y, b.act, &mut gz);
        gz
    });
    let gz: &[f32] = gz_buf.as_deref().unwrap_or(b.gy);
    let db = want_db.then(|| {
        let mut db = vec![0.0f32; f];
        for row in gz.chunks_exact(f) {
            db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
        }
        db
    });
    let dk = want_dk.then(|| winograd::conv2d_kernel_grad(b.x, gz, b.cols, g));
    let dx = if want_dx && winograd::applies_to_input_grad(g) {
        Some(winograd::conv2d_input_grad(gz, b.kernel, g))
    } else if want_dx {
        let lin = ConvBackward {
            gy: gz,
            act: Activation::Linear,
            cols: None,
            ..*b
        };
        im2col_backward(&lin, g, (true, false, false)).0
    } else {
        None
    };
    if let Some(gz) = gz_buf {
        pool::give(gz);
    }
    (dx, dk, db)
}

/// The backward pass of a convolution over very few input channels: kernel and bias
/// gradients in one direct pass; the input gradient (rarely wanted: such a layer is
/// usually the first) through im2col.
fn direct_backward(
    b: &ConvBackward,
    g: &ConvGeometry,
    (want_dx, want_dk, want_db): (bool, bool, bool),
) -> ConvGrads {
    if !want_dx {
        let (dk, db) = direct::conv2d_kernel_grad(b.x, b.gy, b.y, b.act, g);
        return (None, want_dk.then_some(dk), want_db.then_some(db));
    }
    let mut gz = pool::scratch(b.gy.len());
    activation_grad(b.gy, b.y, b.act, &mut gz);
    let (dk, db) = direct::conv2d_kernel_grad(b.x, &gz, b.y, Activation::Linear, g);
    let lin = ConvBackward {
        gy: &gz,
        act: Activation::Linear,
        cols: None,
        ..*b
    };
    let dx = im2col_backward(&lin, g, (true, false, false)).0;
    pool::give(gz);
    (dx, want_dk.then_some(dk), want_db.then_some(db))
}

/// dst = gy * act'(from y): the gradient before the activation.
fn activation_grad(gy: &[f32], y: &[f32], act: Activation, dst: &mut [f32]) {
    // ReLU gets its own loop, which the compiler vectorises.
    if act == Activation::Relu {
        for ((d, &gv), &yv) in dst.iter_mut().zip(gy).zip(y) {
            *d = if yv > 0.0 { gv } else { 0.0 };
        }
    } else {
        for ((d, &gv), &yv) in dst.iter_mut().zip(gy).zip(y) {
            *d = gv * act.df_from_output(yv);
        }
    }
}

/// `conv2d_backward` through im2col + GEMM (with `b.cols`, if any, im2col columns).
/// Works a few samples at a time: the gradient before the activation, the columns and
/// the products of one step stay in cache together.
pub(crate) fn im2col_backward(
    b: &ConvBackward,
    g: &ConvGeometry,
    want: (bool, bool, bool),
) -> ConvGrads {
    let (want_dx, want_dk, want_db) = want;
    let (k, f, op) = (g.patch_len(), g.f, g.out_pixels());
    let step = samples_per_step(g);
    let pointwise = g.is_pointwise();
    let needs_im2col = want_dk && !pointwise && b.cols.is_none();
    let mut cols = if needs_im2col || (want_dx && !pointwise) {
        pool::scratch(step * op * k)
    } else {
        Vec::new()
    };
    let linear = b.act == Activation::Linear;
    let mut gz = if linear {
        Vec::new()
    } else {
        pool::scratch(step * op * f)
    };
    let mut dx = want_dx.then(|| {
        if pointwise {
            pool::scratch(g.n * g.h * g.w * g.c)
        } else {
            pool::zeros(g.n * g.h * g.w * g.c)
        }
    });
    let mut dk = want_dk.then(|| pool::scratch(k * f));
    let mut db = want_db.then(|| vec![0.0f32; f]);
    for s0 in (0..g.n).step_by(step) {
        let s1 = (s0 + step).min(g.n);
        let rows = (s1 - s0) * op;
        let out = s0 * op * f..s1 * op * f;
        // Gradient before the activation, from the output.
        let gz_step: &[f32] = if linear {
            &b.gy[out]
        } else {
            let dst = &mut gz[..rows * f];
            activation_grad(&b.gy[out.clone()], &b.y[out], b.act, dst);
            dst
        };
        if let Some(db) = db.as_mut() {
            for row in gz_step.chunks_exact(f) {
                db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
            }
        }
        if let Some(dk) = dk.as_mut() {
            let a: &[f32] = if pointwise {
                &b.x[s0 * op * k..s1 * op * k]
            } else if let Some(kept) = b.cols {
                &kept[s0 * op * k..s1 * op * k]
            } else {
                im2col(b.x, g, s0, s1, &mut cols);
                &cols[..rows * k]
            };
            // dK += colsᵀ · dZ; the first step overwrites whatever the buffer held.
            let beta = if s0 == 0 { 0.0 } else { 1.0 };
            sgemm(true, false, k, f, rows, 1.0, a, gz_step, beta, dk);
        }
        if let Some(dx) = dx.as_mut() {
            // dcols = dZ · Kᵀ, scattered back onto the input pixels (a 1x1 convolution's
            // columns are its input, so they land in place).
            if pointwise {
                let dst = &mut dx[s0 * op * k..s1 * op * k];
                sgemm(false, true, rows, k, f, 1.0, gz_step, b.kernel, 0.0, dst);
            } else {
                sgemm(
                    false, true, rows, k, f, 1.0, gz_step, b.kernel, 0.0, &mut cols,
                );
                col2im_add(&cols, g, s0, s1, dx);
            }
        }
    }
    pool::give(cols);
    pool::give(gz);
    (dx, dk, db)
}

/// Runs `per_sample(i, out_i)` over samples, in parallel at the top level.
fn for_each_sample(out: &mut [f32], per: usize, per_sample: impl Fn(usize, &mut [f32]) + Sync) {
    if top_level() && out.len() > per {
        crate::threads::install(|| {
            out.par_chunks_mut(per)
                .enumerate()
                .for_each(|(i, o)| per_sample(i, o))
        });
    } else {
        out.chunks_mut(per)
            .enumerate()
            .for_each(|(i, o)| per_sample(i, o));
    }
}

/// Visits every (output pixel, kernel tap) pair of one sample whose input pixel lies
/// inside the image: `f(output pixel, tap, input pixel)`, pixels as flat indices.
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize)) {
    for oy in 0..g.oh {
        for ky in 0..g.kh {
            let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
            if iy < 0 || iy >= g.h as isize {
                continue;
            }
            for ox in 0..g.ow {
                for kx in 0..g.kw {
                    let ix = (ox * g.sw + kx * g.dw) as isize - g.pad_left as isize;
                    if ix < 0 || ix >= g.w as isize {
                        continue;
                    }
                    f(
                        oy * g.ow + ox,
                        ky * g.kw + kx,
                        iy as usize * g.w + ix as usize,
                    );
                }
            }
        }
    }
}

/// Depthwise convolution: each input channel c convolved with its own `mult` filters
/// (kernel (kh, kw, c, mult)); output channel c * mult + j. `g.f` is c * mult.
pub fn depthwise_forward(x: &[f32], kernel: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (c, mult) = (g.c, g.f / g.c);
    let mut y = pool::zeros(g.n * g.out_pixels() * g.f);
    for_each_sample(&mut y, g.out_pixels() * g.f, |i, ys| {
        let xs = &x[i * g.h * g.w * c..(i + 1) * g.h * g.w * c];
        for_each_tap(g, |op, tap, ip| {
            let (xp, yp) = (&xs[ip * c..(ip + 1) * c], &mut ys[op * g.f..(op + 1) * g.f]);
            let kt = &kernel[tap * g.f..(tap + 1) * g.f];
            for ch in 0..c {
                for j in 0..mult {
                    yp[ch * mult + j] += xp[ch] * kt[ch * mult + j];
                }
            }
        });
    });
    y
}

/// Gradients of `depthwise_forward` for the input and the kernel, each when wanted.
pub fn depthwise_backward(
    x: &[f32],
    kernel: &[f32],
    gy: &[f32],
    g: &ConvGeometry,
    want_dx: bool,
    want_dkernel: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (c, mult) = (g.c, g.f / g.c);
    let per_in = g.h * g.w * c;
    let per_out = g.out_pixels() * g.f;
    let dx = want_dx.then(|| {
        let mut dx = pool::zeros(g.n * per_in);
        for_each_sample(&mut dx, per_in, |i, dxs| {
            let gs = &gy[i * per_out..(i + 1) * per_out];
            for_each_tap(g, |op, tap, ip| {
                let (gp, kt) = (
                    &gs[op * g.f..(op + 1) * g.f],
                    &kernel[tap * g.f..(tap + 1) * g.f],
                );
                let dp = &mut dxs[ip * c..(ip + 1) * c];
                for ch in 0..c {
                    for j in 0..mult {
                        dp[ch] += gp[ch * mult + j] * kt[ch * mult + j];
                    }
                }
            });
        });
        dx
    });
    let dk = want_dkernel.then(|| {
        // Per-sample partial kernels, summed: samples run in parallel without sharing.
        let taps = g.kh * g.kw * g.f;
        let mut partial = pool::zeros(g.n * taps);
        for_each_sample(&mut partial, taps, |i, dks| {
            let (xs, gs) = (
                &x[i * per_in..(i + 1) * per_in],
                &gy[i * per_out..(i + 1) * per_out],
            );
            for_each_tap(g, |op, tap, ip| {
                let (xp, gp) = (&xs[ip * c..(ip + 1) * c], &gs[op * g.f..(op + 1) * g.f]);
                let dt = &mut dks[tap * g.f..(tap + 1) * g.f];
                for ch in 0..c {
                    for j in 0..mult {
                        dt[ch * mult + j] += xp[ch] * gp[ch * mult + j];
                    }
                }
            });
        });
        let mut dk = vec![0.0f32; taps];
        for p in partial.chunks(taps) {
            dk.iter_mut().zip(p).for_each(|(d, v)| *d += v);
        }
        pool::give(partial);
        dk
    });
    (dx, dk)
}
