//! The device seam's GPU arms: cuBLAS for products, our NVRTC kernels for the rest.
//!
//! An op runs here when one of its inputs lives on the GPU; inputs still on the host
//! (a dropout mask, a weight the optimizer just updated) are uploaded for the call.
//! Ops without an arm here read GPU inputs through their host copy and run on the CPU,
//! so every model runs with a GPU, the ops listed here at GPU speed.

use std::ops::Deref;

use super::buffer::Buffer;
use super::context::{gpu_or_panic, Arg, Gpu, Mem};
use super::kernels::activation_code;
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::merge::Combine;
use crate::ops::pad::Pad2d;
use crate::ops::pool::Pool2d;
use crate::tensor::{Storage, Tensor};

/// The GPU when any of `ts` lives there.
pub fn on_gpu(ts: &[&Tensor]) -> Option<&'static Gpu> {
    ts.iter()
        .any(|t| matches!(t.storage(), Storage::Cuda(_)))
        .then(gpu_or_panic)
}

/// A tensor's device memory: its own, or an upload of a host tensor for one call.
enum Input<'a> {
    Device(&'a Mem),
    Uploaded(Mem),
}

impl Deref for Input<'_> {
    type Target = Mem;
    fn deref(&self) -> &Mem {
        match self {
            Input::Device(m) => m,
            Input::Uploaded(m) => m,
        }
    }
}

fn input<'a>(g: &Gpu, t: &'a Tensor) -> Input<'a> {
    match t.storage() {
        Storage::Cuda(b) => Input::Device(b.mem()),
        Storage::Cpu(v) => Input::Uploaded(g.upload(v)),
    }
}

/// An optional input as a kernel argument (a null pointer when absent).
fn maybe<'a>(m: &'a Option<Input<'a>>) -> Arg<'a> {
    match m {
        Some(m) => Arg::In(m),
        None => Arg::Null,
    }
}

/// Kernels index their inputs up to the sizes they are given, so sizes that the ops
/// above should have checked are checked again here: a mismatch is a clear panic, not a
/// read past a device buffer.
#[track_caller]
fn same_size(what: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(
        a.numel(),
        b.numel(),
        "GPU backend: {what} of {:?} and {:?}",
        a.shape(),
        b.shape()
    );
}

fn out(shape: &[usize], m: Mem) -> Tensor {
    Tensor::from_cuda(shape.to_vec(), Buffer::new(m))
}

fn n64(n: usize) -> Arg<'static> {
    Arg::U64(n as u64)
}

pub fn matmul(
    g: &Gpu,
    (a, ta): (&Tensor, bool),
    (b, tb): (&Tensor, bool),
    mnk: (usize, usize, usize),
) -> Tensor {
    let (ad, bd) = (input(g, a), input(g, b));
    let mut c = g.alloc(mnk.0 * mnk.1);
    g.sgemm((&ad, ta), (&bd, tb), mnk, &mut c);
    out(&[mnk.0, mnk.1], c)
}

/// act(x + bias) with a bias per column (or none); elementwise activations only.
pub fn bias_activation(g: &Gpu, x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Tensor {
    let code = activation_code(act).expect("row-wise activations have kernels of their own");
    let cols = bias.map_or(1, |b| b.numel()).max(1);
    let n = x.numel();
    assert_eq!(
        n % cols,
        0,
        "GPU backend: a bias of {cols} for {:?}",
        x.shape()
    );
    let (xd, bd) = (input(g, x), bias.map(|b| input(g, b)));
    let mut y = g.alloc(n);
    g.launch(
        "rk_bias_activation",
        n,
        &mut [
            Arg::In(&xd),
            maybe(&bd),
            Arg::Out(&mut y),
            n64(n / cols),
            n64(cols),
            Arg::I32(code),
        ],
    );
    out(x.shape(), y)
}

/// gy * act'(x), from x (or, for the activations whose gradient needs only the output,
/// none) and the output y.
pub fn activation_backward(
    g: &Gpu,
    act: Activation,
    x: Option<&Tensor>,
    y: &Tensor,
    gy: &Tensor,
) -> Tensor {
    let code = activation_code(act).expect("row-wise activations have kernels of their own");
    let n = y.numel();
    same_size("activation gradient", y, gy);
    if let Some(x) = x {
        same_size("activation gradient", y, x);
    }
    let xd = x.map(|x| input(g, x));
    let (yd, gd) = (input(g, y), input(g, gy));
    let mut dx = g.alloc(n);
    g.launch(
        "rk_activation_backward",
        n,
        &mut [
            maybe(&xd),
            Arg::In(&yd),
            Arg::In(&gd),
            Arg::Out(&mut dx),
            n64(n),
            Arg::I32(code),
        ],
    );
    out(y.shape(), dx)
}

/// Column sums of x seen as (rows, cols).
pub fn col_sum(g: &Gpu, x: &Tensor, cols: usize) -> Tensor {
    let xd = input(g, x);
    let mut s = g.alloc(cols);
    let rows = x.numel() / cols.max(1);
    g.launch(
        "rk_col_sum",
        cols,
        &mut [Arg::In(&xd), Arg::Out(&mut s), n64(rows), n64(cols)],
    );
    out(&[cols], s)
}

/// Sum of all values: partial sums on the GPU, their total on the host (in f64, as the
/// CPU kernel sums).
pub fn sum(g: &Gpu, x: &Tensor) -> f32 {
    const PARTS: usize = 4096;
    let n = x.numel();
    let parts = PARTS.min(n.max(1));
    let xd = input(g, x);
    let mut p = g.alloc(parts);
    g.launch(
        "rk_sum_partial",
        parts,
        &mut [Arg::In(&xd), Arg::Out(&mut p), n64(n), n64(parts)],
    );
    g.download(&p).iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// Row-wise softmax or log-softmax (`kernel` names which) of x seen as (rows, cols).
pub fn rows_forward(g: &Gpu, kernel: &str, x: &Tensor, cols: usize) -> Tensor {
    let rows = x.numel() / cols.max(1);
    let xd = input(g, x);
    let mut y = g.alloc(x.numel());
    g.launch(
        kernel,
        rows,
        &mut [Arg::In(&xd), Arg::Out(&mut y), n64(rows), n64(cols)],
    );
    out(x.shape(), y)
}

/// The gradient kernels of `rows_forward`, from its output y.
pub fn rows_backward(g: &Gpu, kernel: &str, y: &Tensor, gy: &Tensor, cols: usize) -> Tensor {
    same_size(kernel, y, gy);
    let rows = y.numel() / cols.max(1);
    let (yd, gd) = (input(g, y), input(g, gy));
    let mut dx = g.alloc(y.numel());
    g.launch(
        kernel,
        rows,
        &mut [
            Arg::In(&yd),
            Arg::In(&gd),
            Arg::Out(&mut dx),
            n64(rows),
            n64(cols),
        ],
    );
    out(y.shape(), dx)
}

/// `rk_add` or `rk_mul` of two tensors of one size.
pub fn binary(g: &Gpu, kernel: &str, a: &Tensor, b: &Tensor) -> Tensor {
    same_size(kernel, a, b);
    let n = a.numel();
    let (ad, bd) = (input(g, a), input(g, b));
    let mut y = g.alloc(n);
    g.launch(
        kernel,
        n,
        &mut [Arg::In(&ad), Arg::In(&bd), Arg::Out(&mut y), n64(n)],
    );
    out(a.shape(), y)
}

/// acc += x, in place in acc's device memory.
pub fn add_assign(g: &Gpu, acc: &mut Buffer, x: &Tensor) {
    let n = acc.len();
    assert_eq!(n, x.numel(), "GPU backend: += of {n} and {:?}", x.shape());
    let xd = input(g, x);
    g.launch(
        "rk_add_assign",
        n,
        &mut [Arg::Out(acc.mem_mut()), Arg::In(&xd), n64(n)],
    );
}

/// a * x + b.
pub fn affine(g: &Gpu, x: &Tensor, a: f32, b: f32) -> Tensor {
    let n = x.numel();
    let xd = input(g, x);
    let mut y = g.alloc(n);
    g.launch(
        "rk_affine",
        n,
        &mut [
            Arg::In(&xd),
            Arg::Out(&mut y),
            Arg::F32(a),
            Arg::F32(b),
            n64(n),
        ],
    );
    out(x.shape(), y)
}

pub fn fill(g: &Gpu, shape: &[usize], v: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut y = g.alloc(n);
    g.launch("rk_fill", n, &mut [Arg::Out(&mut y), Arg::F32(v), n64(n)]);
    out(shape, y)
}

/// A host tensor's copy on the GPU (a GPU tensor is returned as it is).
pub fn to_gpu(g: &Gpu, t: &Tensor) -> Tensor {
    match t.storage() {
        Storage::Cuda(_) => t.clone(),
        Storage::Cpu(v) => upload(g, t.shape(), v),
    }
}

/// Host values (`shape`'s number of them) as a GPU tensor, copied straight from `values`.
pub fn upload(g: &Gpu, shape: &[usize], values: &[f32]) -> Tensor {
    out(shape, g.upload(values))
}

/// An optimizer's update rule with its scalars for this step (optim.rs computes them).
#[derive(Clone, Copy, Debug)]
pub enum Update {
    Sgd {
        lr: f32,
        momentum: f32,
        nesterov: bool,
    },
    RmsProp {
        lr: f32,
        rho: f32,
        momentum: f32,
        epsilon: f32,
        centered: bool,
    },
    Adam {
        beta_1: f32,
        beta_2: f32,
        epsilon: f32,
        alpha: f32,
    },
}

/// An optional slot as a kernel argument (a null pointer when the rule has none).
fn slot(m: Option<&mut Mem>) -> Arg<'_> {
    match m {
        Some(m) => Arg::Out(m),
        None => Arg::Null,
    }
}

/// Device memory of a GPU tensor, to be written in place (unshared first).
fn mem_mut(t: &mut Tensor) -> &mut Mem {
    match t.storage_mut() {
        Storage::Cuda(b) => b.mem_mut(),
        Storage::Cpu(_) => unreachable!("moved to the GPU by the caller"),
    }
}

/// One optimizer step on weight `w` (on the GPU) from its gradient `g`, with the slots in
/// the optimizer's order (optim.rs: momentum for SGD; velocity, momentum, average
/// gradient for RMSprop; momentum, velocity, velocity_hat for Adam), all on the GPU.
/// `decay` is learning_rate * weight_decay (AdamW), else 0.
pub fn optimizer_update(
    gpu: &Gpu,
    update: Update,
    decay: f32,
    w: &mut Tensor,
    g: &Tensor,
    slots: &mut [Tensor],
) {
    let n = w.numel();
    let gd = input(gpu, g);
    let mut it = slots.iter_mut();
    let mut next = || it.next().map(mem_mut);
    match update {
        Update::Sgd {
            lr,
            momentum,
            nesterov,
        } => {
            let m = if momentum > 0.0 { next() } else { None };
            gpu.launch(
                "rk_sgd",
                n,
                &mut [
                    Arg::Out(mem_mut(w)),
                    Arg::In(&gd),
                    slot(m),
                    n64(n),
                    Arg::F32(lr),
                    Arg::F32(momentum),
                    Arg::I32(i32::from(nesterov)),
                    Arg::F32(decay),
                ],
            );
        }
        Update::RmsProp {
            lr,
            rho,
            momentum,
            epsilon,
            centered,
        } => {
            let v = next().expect("rmsprop has a velocity slot");
            let mom = if momentum > 0.0 { next() } else { None };
            let avg = if centered { next() } else { None };
            gpu.launch(
                "rk_rmsprop",
                n,
                &mut [
                    Arg::Out(mem_mut(w)),
                    Arg::In(&gd),
                    Arg::Out(v),
                    slot(mom),
                    slot(avg),
                    n64(n),
                    Arg::F32(lr),
                    Arg::F32(rho),
                    Arg::F32(momentum),
                    Arg::F32(epsilon),
                    Arg::F32(decay),
                ],
            );
        }
        Update::Adam {
            beta_1,
            beta_2,
            epsilon,
            alpha,
        } => {
            let m = next().expect("adam has a momentum slot");
            let v = next().expect("adam has a velocity slot");
            let vhat = next();
            gpu.launch(
                "rk_adam",
                n,
                &mut [
                    Arg::Out(mem_mut(w)),
                    Arg::In(&gd),
                    Arg::Out(m),
                    Arg::Out(v),
                    slot(vhat),
                    n64(n),
                    Arg::F32(beta_1),
                    Arg::F32(beta_2),
                    Arg::F32(epsilon),
                    Arg::F32(alpha),
                    Arg::F32(decay),
                ],
            );
        }
    }
}

/// A convolution's geometry as the conv kernels take it (n, h, w, c, kh, kw, strides,
/// dilations, top and left padding, oh, ow).
fn conv_geometry(g: &ConvGeometry) -> [Arg<'static>; 14] {
    [
        g.n, g.h, g.w, g.c, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pad_top, g.pad_left, g.oh, g.ow,
    ]
    .map(n64)
}

/// A pooling's geometry as the pool kernels take it.
fn pool_geometry(g: &Pool2d) -> [Arg<'static>; 12] {
    [
        g.n, g.h, g.w, g.c, g.ph, g.pw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow,
    ]
    .map(n64)
}

fn im2col(gpu: &Gpu, x: &Mem, g: &ConvGeometry) -> Mem {
    let len = g.n * g.oh * g.ow * g.kh * g.kw * g.c;
    let mut cols = gpu.alloc(len);
    let mut args = vec![Arg::In(x), Arg::Out(&mut cols)];
    args.extend(conv_geometry(g));
    gpu.launch("rk_im2col", len, &mut args);
    cols
}

/// act(conv(x, kernel) + bias) through im2col and one GEMM over the batch; the columns
/// come back when `keep_cols` (the kernel gradient reads them).
pub fn conv2d_forward(
    gpu: &Gpu,
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
    g: &ConvGeometry,
    keep_cols: bool,
) -> (Tensor, Option<Tensor>) {
    let xd = input(gpu, x);
    let kd = input(gpu, kernel);
    let cols = im2col(gpu, &xd, g);
    let (p, k) = (g.n * g.oh * g.ow, g.kh * g.kw * g.c);
    let mut z = gpu.alloc(p * g.f);
    gpu.sgemm((&cols, false), (&kd, false), (p, g.f, k), &mut z);
    let shape = [g.n, g.oh, g.ow, g.f];
    let z = out(&shape, z);
    let y = match (act.is_rowwise(), bias) {
        (false, _) => bias_activation(gpu, &z, bias, act),
        (true, Some(b)) => bias_activation(gpu, &z, Some(b), Activation::Linear),
        (true, None) => z,
    };
    let y = match act {
        Activation::Softmax => rows_forward(gpu, "rk_softmax_rows", &y, g.f),
        Activation::LogSoftmax => rows_forward(gpu, "rk_log_softmax_rows", &y, g.f),
        _ => y,
    };
    let cols = keep_cols.then(|| out(&[p * k], cols));
    (y, cols)
}

/// Gradients of `conv2d_forward` for x, the kernel and the bias, each when wanted; the
/// activation's gradient comes from the output y (conv layers only fuse activations
/// whose gradient does).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    gpu: &Gpu,
    x: &Tensor,
    kernel: &Tensor,
    y: &Tensor,
    gy: &Tensor,
    act: Activation,
    cols: Option<&Tensor>,
    g: &ConvGeometry,
    (want_dx, want_dk, want_db): (bool, bool, bool),
) -> (Option<Tensor>, Option<Tensor>, Option<Tensor>) {
    let gz = match act {
        Activation::Linear => gy.clone(),
        Activation::Softmax => rows_backward(gpu, "rk_softmax_rows_backward", y, gy, g.f),
        Activation::LogSoftmax => rows_backward(gpu, "rk_log_softmax_rows_backward", y, gy, g.f),
        _ => activation_backward(gpu, act, None, y, gy),
    };
    let (p, k) = (g.n * g.oh * g.ow, g.kh * g.kw * g.c);
    let gzd = input(gpu, &gz);
    let db = want_db.then(|| col_sum(gpu, &gz, g.f));
    let dk = want_dk.then(|| {
        let xd = input(gpu, x);
        let own;
        let cols: &Mem = match cols {
            Some(c) => match c.storage() {
                Storage::Cuda(b) => b.mem(),
                Storage::Cpu(_) => unreachable!("columns kept by the GPU forward pass"),
            },
            None => {
                own = im2col(gpu, &xd, g);
                &own
            }
        };
        let mut dk = gpu.alloc(k * g.f);
        gpu.sgemm((cols, true), (&gzd, false), (k, g.f, p), &mut dk);
        out(kernel.shape(), dk)
    });
    let dx = want_dx.then(|| {
        let kd = input(gpu, kernel);
        let mut dcols = gpu.alloc(p * k);
        gpu.sgemm((&gzd, false), (&kd, true), (p, k, g.f), &mut dcols);
        let mut dx = gpu.alloc(x.numel());
        let mut args = vec![Arg::In(&dcols), Arg::Out(&mut dx)];
        args.extend(conv_geometry(g));
        gpu.launch("rk_col2im", x.numel(), &mut args);
        out(x.shape(), dx)
    });
    (dx, dk, db)
}

/// Max (`rk_max_pool`) or average (`rk_avg_pool`) pooling.
pub fn pool2d(gpu: &Gpu, kernel: &str, x: &Tensor, g: &Pool2d) -> Tensor {
    let xd = input(gpu, x);
    let len = g.n * g.oh * g.ow * g.c;
    let mut y = gpu.alloc(len);
    let mut args = vec![Arg::In(&xd), Arg::Out(&mut y)];
    args.extend(pool_geometry(g));
    gpu.launch(kernel, len, &mut args);
    out(&g.out_shape(), y)
}

pub fn max_pool2d_backward(gpu: &Gpu, x: &Tensor, y: &Tensor, gy: &Tensor, g: &Pool2d) -> Tensor {
    let (xd, yd, gd) = (input(gpu, x), input(gpu, y), input(gpu, gy));
    let len = g.n * g.h * g.w * g.c;
    let mut dx = gpu.alloc(len);
    let mut args = vec![Arg::In(&xd), Arg::In(&yd), Arg::In(&gd), Arg::Out(&mut dx)];
    args.extend(pool_geometry(g));
    gpu.launch("rk_max_pool_backward", len, &mut args);
    out(&[g.n, g.h, g.w, g.c], dx)
}

pub fn avg_pool2d_backward(gpu: &Gpu, gy: &Tensor, g: &Pool2d) -> Tensor {
    let gd = input(gpu, gy);
    let len = g.n * g.h * g.w * g.c;
    let mut dx = gpu.alloc(len);
    let mut args = vec![Arg::In(&gd), Arg::Out(&mut dx)];
    args.extend(pool_geometry(g));
    gpu.launch("rk_avg_pool_backward", len, &mut args);
    out(&[g.n, g.h, g.w, g.c], dx)
}

/// A cross-entropy over rows on the GPU: `rk_softmax_xent` (from logits) or
/// `rk_categorical_xent` (from probabilities). Returns the sum of the rows' losses (read
/// back: the loss is a metric) and the gradient of the mean loss (scale 1 / rows).
pub fn crossentropy(
    gpu: &Gpu,
    from_logits: bool,
    z: &Tensor,
    labels: &Tensor,
    sparse: bool,
) -> (f64, Tensor) {
    let (rows, cols) = (z.rows(), z.row_len());
    let (zd, ld) = (input(gpu, z), input(gpu, labels));
    let mut row_loss = gpu.alloc(rows);
    let mut grad = gpu.alloc(z.numel());
    let scale = Arg::F32(1.0 / rows.max(1) as f32);
    let sparse = Arg::I32(i32::from(sparse));
    if from_logits {
        gpu.launch(
            "rk_softmax_xent",
            rows,
            &mut [
                Arg::In(&zd),
                Arg::In(&ld),
                sparse,
                Arg::Null,
                Arg::Out(&mut row_loss),
                Arg::Out(&mut grad),
                scale,
                n64(rows),
                n64(cols),
            ],
        );
    } else {
        gpu.launch(
            "rk_categorical_xent",
            rows,
            &mut [
                Arg::In(&zd),
                Arg::In(&ld),
                sparse,
                Arg::Out(&mut row_loss),
                Arg::Out(&mut grad),
                scale,
                n64(rows),
                n64(cols),
            ],
        );
    }
    let total = gpu
        .download(&row_loss)
        .iter()
        .map(|&v| v as f64)
        .sum::<f64>();
    (total, out(z.shape(), grad))
}

/// Inverted dropout on the GPU: the mask from a counter-based hash of `seed` (kept
/// values 1 / (1 - rate), dropped 0) and x * mask, in one kernel.
pub fn dropout(gpu: &Gpu, x: &Tensor, rate: f32, seed: u64) -> (Tensor, Tensor) {
    let n = x.numel();
    let xd = input(gpu, x);
    let (mut y, mut mask) = (gpu.alloc(n), gpu.alloc(n));
    gpu.launch(
        "rk_dropout",
        n,
        &mut [
            Arg::In(&xd),
            Arg::Out(&mut y),
            Arg::Out(&mut mask),
            Arg::F32(rate),
            Arg::U64(seed),
            n64(n),
        ],
    );
    (out(x.shape(), y), out(x.shape(), mask))
}

/// The most rows `gather_rows` can index (row numbers travel as floats).
pub const MAX_GATHER_ROWS: usize = 1 << 24;

/// Rows `ids` of `table` (rows x dim) as an (ids.len(), dim) tensor.
pub fn gather_rows(gpu: &Gpu, table: &Tensor, dim: usize, ids: &[usize]) -> Tensor {
    assert!(
        table.rows() <= MAX_GATHER_ROWS,
        "GPU gather of more than 2^24 rows"
    );
    let td = input(gpu, table);
    let idx: Vec<f32> = ids.iter().map(|&i| i as f32).collect();
    let id = gpu.upload(&idx);
    let mut y = gpu.alloc(ids.len() * dim);
    gpu.launch(
        "rk_gather_rows",
        ids.len() * dim,
        &mut [
            Arg::In(&td),
            Arg::In(&id),
            Arg::Out(&mut y),
            n64(ids.len()),
            n64(dim),
        ],
    );
    out(&[ids.len(), dim], y)
}

/// Values [offset, offset + n) of x as a tensor of `shape`.
pub fn copy_range(gpu: &Gpu, x: &Tensor, offset: usize, n: usize, shape: &[usize]) -> Tensor {
    let xd = input(gpu, x);
    let mut y = gpu.alloc(n);
    gpu.launch(
        "rk_copy_range",
        n,
        &mut [Arg::In(&xd), Arg::Out(&mut y), n64(offset), n64(n)],
    );
    out(shape, y)
}

/// Rows per chunk of the per-channel sums (see kernels/norm.cu).
const NORM_CHUNK: usize = 128;

/// `rk_fold_partials`: per channel, `scale` times the sum of the chunks' partial sums.
fn fold(gpu: &Gpu, partial: &Mem, chunks: usize, c: usize, scale: f32) -> Mem {
    let mut out = gpu.alloc(c);
    gpu.launch(
        "rk_fold_partials",
        c,
        &mut [
            Arg::In(partial),
            Arg::Out(&mut out),
            n64(chunks),
            n64(c),
            Arg::F32(scale),
        ],
    );
    out
}

/// Per-channel mean and biased variance of x (..., c).
pub fn moments(gpu: &Gpu, x: &Tensor, c: usize) -> (Tensor, Tensor) {
    let rows = x.numel() / c.max(1);
    let chunks = rows.div_ceil(NORM_CHUNK).max(1);
    let inv_rows = 1.0 / rows.max(1) as f32;
    let xd = input(gpu, x);
    let mut partial = gpu.alloc(chunks * c);
    let pass = |mean: Option<&Mem>, partial: &mut Mem| {
        let m = match mean {
            Some(m) => Arg::In(m),
            None => Arg::Null,
        };
        gpu.launch(
            "rk_channel_partials",
            chunks * c,
            &mut [
                Arg::In(&xd),
                m,
                Arg::Out(partial),
                n64(rows),
                n64(c),
                n64(NORM_CHUNK),
            ],
        );
    };
    pass(None, &mut partial);
    let mean = fold(gpu, &partial, chunks, c, inv_rows);
    pass(Some(&mean), &mut partial);
    let var = fold(gpu, &partial, chunks, c, inv_rows);
    (out(&[c], mean), out(&[c], var))
}

/// x (..., c) * scale (c) + shift (c).
pub fn scale_shift(gpu: &Gpu, x: &Tensor, scale: &Tensor, shift: &Tensor) -> Tensor {
    let c = scale.numel();
    same_size("scale and shift", scale, shift);
    assert_eq!(
        x.numel() % c.max(1),
        0,
        "GPU backend: {c} channels for {:?}",
        x.shape()
    );
    let (xd, sd, hd) = (input(gpu, x), input(gpu, scale), input(gpu, shift));
    let mut y = gpu.alloc(x.numel());
    gpu.launch(
        "rk_scale_shift",
        x.numel(),
        &mut [
            Arg::In(&xd),
            Arg::In(&sd),
            Arg::In(&hd),
            Arg::Out(&mut y),
            n64(x.numel() / c.max(1)),
            n64(c),
        ],
    );
    out(x.shape(), y)
}

/// Per-channel sums of g and of g * (x - mean) * inv_std.
pub fn norm_grad_sums(
    gpu: &Gpu,
    x: &Tensor,
    g: &Tensor,
    mean: &Tensor,
    inv_std: &Tensor,
) -> (Tensor, Tensor) {
    same_size("batch normalization gradient", x, g);
    let c = mean.numel();
    let rows = x.numel() / c.max(1);
    let chunks = rows.div_ceil(NORM_CHUNK).max(1);
    let (xd, gd) = (input(gpu, x), input(gpu, g));
    let (md, id) = (input(gpu, mean), input(gpu, inv_std));
    let (mut pg, mut pgx) = (gpu.alloc(chunks * c), gpu.alloc(chunks * c));
    gpu.launch(
        "rk_grad_partials",
        chunks * c,
        &mut [
            Arg::In(&xd),
            Arg::In(&gd),
            Arg::In(&md),
            Arg::In(&id),
            Arg::Out(&mut pg),
            Arg::Out(&mut pgx),
            n64(rows),
            n64(c),
            n64(NORM_CHUNK),
        ],
    );
    let sg = fold(gpu, &pg, chunks, c, 1.0);
    let sgx = fold(gpu, &pgx, chunks, c, 1.0);
    (out(&[c], sg), out(&[c], sgx))
}

/// The input gradient of training-mode batch normalization.
pub fn batch_norm_input_grad(
    gpu: &Gpu,
    (x, g): (&Tensor, &Tensor),
    (mean, inv_std, gamma): (&Tensor, &Tensor, &Tensor),
    (sum_g, sum_gx): (&Tensor, &Tensor),
) -> Tensor {
    let c = mean.numel();
    same_size("batch normalization gradient", x, g);
    assert_eq!(
        x.numel() % c.max(1),
        0,
        "GPU backend: {c} channels for {:?}",
        x.shape()
    );
    let (xd, gd) = (input(gpu, x), input(gpu, g));
    let (md, id, gm) = (input(gpu, mean), input(gpu, inv_std), input(gpu, gamma));
    let (sd, sxd) = (input(gpu, sum_g), input(gpu, sum_gx));
    let mut dx = gpu.alloc(x.numel());
    gpu.launch(
        "rk_batch_norm_input_grad",
        x.numel(),
        &mut [
            Arg::In(&xd),
            Arg::In(&gd),
            Arg::In(&md),
            Arg::In(&id),
            Arg::In(&gm),
            Arg::In(&sd),
            Arg::In(&sxd),
            Arg::Out(&mut dx),
            n64(x.numel() / c.max(1)),
            n64(c),
        ],
    );
    out(x.shape(), dx)
}

/// Copies `outer` blocks of `len` values from `src` (block o at o * src_stride +
/// src_offset) into `dst` (at o * dst_stride + dst_offset).
fn copy_blocks(
    gpu: &Gpu,
    (src, src_stride, src_offset): (&Mem, usize, usize),
    (dst, dst_stride, dst_offset): (&mut Mem, usize, usize),
    (outer, len): (usize, usize),
) {
    gpu.launch(
        "rk_copy_block",
        outer * len,
        &mut [
            Arg::In(src),
            Arg::Out(dst),
            n64(outer),
            n64(len),
            n64(src_stride),
            n64(src_offset),
            n64(dst_stride),
            n64(dst_offset),
        ],
    );
}

/// Concatenation along an axis: each input's blocks of `runs[i]` values, `outer` times.
pub fn concat(gpu: &Gpu, xs: &[&Tensor], runs: &[usize], outer: usize, shape: &[usize]) -> Tensor {
    let total: usize = runs.iter().sum();
    let mut y = gpu.alloc(outer * total);
    let mut offset = 0;
    for (x, &run) in xs.iter().zip(runs) {
        assert_eq!(x.numel(), outer * run, "GPU backend: a concatenated part");
        let xd = input(gpu, x);
        copy_blocks(gpu, (&xd, run, 0), (&mut y, total, offset), (outer, run));
        offset += run;
    }
    out(shape, y)
}

/// The part [start, start + len) of each block of `total` values of y (`outer` blocks).
pub fn split_part(
    gpu: &Gpu,
    y: &Tensor,
    (outer, total): (usize, usize),
    (start, len): (usize, usize),
    shape: &[usize],
) -> Tensor {
    let yd = input(gpu, y);
    let mut x = gpu.alloc(outer * len);
    copy_blocks(gpu, (&yd, total, start), (&mut x, len, 0), (outer, len));
    out(shape, x)
}

fn pad_args<'a>(src: &'a Mem, dst: &'a mut Mem, p: &Pad2d) -> Vec<Arg<'a>> {
    let [_, oh, ow, _] = p.out_shape_array();
    let mut args = vec![Arg::In(src), Arg::Out(dst)];
    args.extend([p.n, p.h, p.w, p.c, p.top, p.left, oh, ow].map(n64));
    args
}

pub fn zero_pad2d(gpu: &Gpu, x: &Tensor, p: &Pad2d) -> Tensor {
    assert_eq!(x.shape(), p.in_shape(), "GPU backend: padding");
    let xd = input(gpu, x);
    let shape = p.out_shape_array();
    let len: usize = shape.iter().product();
    let mut y = gpu.alloc(len);
    gpu.launch("rk_zero_pad2d", len, &mut pad_args(&xd, &mut y, p));
    out(&shape, y)
}

pub fn crop2d(gpu: &Gpu, padded: &Tensor, p: &Pad2d) -> Tensor {
    assert_eq!(padded.shape(), p.out_shape(), "GPU backend: cropping");
    let yd = input(gpu, padded);
    let shape = p.in_shape_array();
    let len: usize = shape.iter().product();
    let mut x = gpu.alloc(len);
    gpu.launch("rk_crop2d", len, &mut pad_args(&yd, &mut x, p));
    out(&shape, x)
}

/// acc = op(acc, x), in place, for a tensor x of acc's size.
pub fn combine_assign(gpu: &Gpu, op: Combine, acc: &mut Buffer, x: &Tensor) {
    let n = acc.len();
    assert_eq!(
        n,
        x.numel(),
        "GPU backend: combining {n} and {:?}",
        x.shape()
    );
    let code = match op {
        Combine::Add => 0,
        Combine::Sub => 1,
        Combine::Mul => 2,
        Combine::Max => 3,
        Combine::Min => 4,
    };
    let xd = input(gpu, x);
    gpu.launch(
        "rk_combine",
        n,
        &mut [
            Arg::Out(acc.mem_mut()),
            Arg::In(&xd),
            n64(n),
            Arg::I32(code),
        ],
    );
}

/// An elementwise loss (`kind` as in `rk_pointwise_loss`): the sum of its values and the
/// gradient of their mean.
pub fn pointwise_loss(gpu: &Gpu, p: &Tensor, y: &Tensor, kind: i32) -> (f64, Tensor) {
    same_size("an elementwise loss", p, y);
    let n = p.numel();
    let (pd, yd) = (input(gpu, p), input(gpu, y));
    let (mut value, mut grad) = (gpu.alloc(n), gpu.alloc(n));
    gpu.launch(
        "rk_pointwise_loss",
        n,
        &mut [
            Arg::In(&pd),
            Arg::In(&yd),
            Arg::Out(&mut value),
            Arg::Out(&mut grad),
            n64(n),
            Arg::I32(kind),
            Arg::F32(1.0 / n.max(1) as f32),
        ],
    );
    let value = out(p.shape(), value);
    (sum(gpu, &value) as f64, out(p.shape(), grad))
}

/// The number of rows of `p` whose largest value (the first on ties) is the labelled
/// class: one-hot rows of `labels`, or one class index per row when `sparse`.
pub fn accuracy_hits(gpu: &Gpu, p: &Tensor, labels: &Tensor, sparse: bool) -> f64 {
    let (rows, cols) = (p.rows(), p.row_len());
    let (pd, ld) = (input(gpu, p), input(gpu, labels));
    let mut hit = gpu.alloc(rows);
    gpu.launch(
        "rk_accuracy_rows",
        rows,
        &mut [
            Arg::In(&pd),
            Arg::In(&ld),
            Arg::I32(i32::from(sparse)),
            Arg::Out(&mut hit),
            n64(rows),
            n64(cols),
        ],
    );
    gpu.download(&hit).iter().map(|&h| h as f64).sum()
}
