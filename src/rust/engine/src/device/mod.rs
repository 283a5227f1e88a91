//! The device seam. Ops call these functions with tensors; each one picks the kernel for
//! the device the tensors live on. Adding a device means adding an arm here and a kernel
//! module beside `cpu`, not touching the ops.
//!
//! A function with a GPU arm runs there when any input lives on the GPU (`cuda::ops`).
//! The others read GPU inputs through their host copy and give a host result, which is
//! correct everywhere and fast where the arm exists.

#[macro_use]
mod cpu_simd;

pub mod cpu;
pub mod cpu_conv;
pub mod cpu_direct;
pub mod cpu_norm;
pub mod cpu_pad;
pub mod cpu_pool;
pub mod cpu_winograd;
pub mod cpu_winograd_rows;
pub mod cuda;
pub mod pool;

use crate::gemm;
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::merge::Combine;
use crate::ops::pad::Pad2d;
use crate::ops::pool::Pool2d;
use crate::tensor::{Storage, Tensor};

// The CPU arms read their inputs on the host: a GPU tensor given to an op that has no
// GPU arm yet is read through its host copy, and the result stays on the host.
fn cpu2<'a>(a: &'a Tensor, b: &'a Tensor) -> (&'a [f32], &'a [f32]) {
    (a.host(), b.host())
}

fn cpu1(a: &Tensor) -> &[f32] {
    a.host()
}

use cuda::ops::on_gpu as gpu;

fn out(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::from_vec(shape.to_vec(), data).expect("kernel output has the size of its shape")
}

/// op(A) (m x k) times op(B) (k x n) for 2-D tensors; callers have checked the shapes.
pub fn matmul(a: &Tensor, trans_a: bool, b: &Tensor, trans_b: bool) -> Tensor {
    let (m, k) = if trans_a {
        (a.shape()[1], a.shape()[0])
    } else {
        (a.shape()[0], a.shape()[1])
    };
    let n = if trans_b { b.shape()[0] } else { b.shape()[1] };
    if let Some(g) = gpu(&[a, b]) {
        return cuda::ops::matmul(g, (a, trans_a), (b, trans_b), (m, n, k));
    }
    let (ad, bd) = cpu2(a, b);
    // beta = 0: sgemm overwrites C, so stale contents are fine.
    let mut c = pool::scratch(m * n);
    gemm::sgemm(trans_a, trans_b, m, n, k, 1.0, ad, bd, 0.0, &mut c);
    out(&[m, n], c)
}

pub fn add_row_bias(x: &Tensor, bias: &Tensor) -> Tensor {
    if let Some(g) = gpu(&[x, bias]) {
        return cuda::ops::bias_activation(g, x, Some(bias), Activation::Linear);
    }
    let (xd, bd) = cpu2(x, bias);
    out(x.shape(), cpu::add_row_bias(xd, bd))
}

pub fn bias_activation(x: &Tensor, bias: &Tensor, act: Activation) -> Tensor {
    if let Some(g) = gpu(&[x, bias]) {
        return cuda::ops::bias_activation(g, x, Some(bias), act);
    }
    let (xd, bd) = cpu2(x, bias);
    out(x.shape(), cpu::bias_activation(xd, bd, act))
}

pub fn bias_activation_backward(y: &Tensor, g: &Tensor, act: Activation) -> (Tensor, Tensor) {
    let cols = y.shape().last().copied().unwrap_or(1);
    if let Some(dev) = gpu(&[y, g]) {
        let dx = cuda::ops::activation_backward(dev, act, None, y, g);
        let db = cuda::ops::col_sum(dev, &dx, cols);
        return (dx, db);
    }
    let (yd, gd) = cpu2(y, g);
    let (dx, db) = cpu::bias_activation_backward(yd, gd, cols, act);
    (out(y.shape(), dx), out(&[cols], db))
}

pub fn col_sum(g: &Tensor, cols: usize) -> Tensor {
    if let Some(dev) = gpu(&[g]) {
        return cuda::ops::col_sum(dev, g, cols);
    }
    out(&[cols], cpu::col_sum(cpu1(g), cols))
}

pub fn activation_forward(act: Activation, x: &Tensor) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::bias_activation(g, x, None, act);
    }
    out(x.shape(), cpu::activation_forward(act, cpu1(x)))
}

pub fn activation_backward(act: Activation, x: &Tensor, y: &Tensor, g: &Tensor) -> Tensor {
    if let Some(dev) = gpu(&[x, y, g]) {
        return cuda::ops::activation_backward(dev, act, Some(x), y, g);
    }
    let (xd, yd) = cpu2(x, y);
    out(x.shape(), cpu::activation_backward(act, xd, yd, cpu1(g)))
}

pub fn softmax_rows(x: &Tensor, cols: usize) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::rows_forward(g, "rk_softmax_rows", x, cols);
    }
    out(x.shape(), cpu::softmax_rows(cpu1(x), cols))
}

pub fn softmax_rows_backward(y: &Tensor, g: &Tensor, cols: usize) -> Tensor {
    if let Some(dev) = gpu(&[y, g]) {
        return cuda::ops::rows_backward(dev, "rk_softmax_rows_backward", y, g, cols);
    }
    let (yd, gd) = cpu2(y, g);
    out(y.shape(), cpu::softmax_rows_backward(yd, gd, cols))
}

pub fn log_softmax_rows(x: &Tensor, cols: usize) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::rows_forward(g, "rk_log_softmax_rows", x, cols);
    }
    out(x.shape(), cpu::log_softmax_rows(cpu1(x), cols))
}

pub fn log_softmax_rows_backward(y: &Tensor, g: &Tensor, cols: usize) -> Tensor {
    if let Some(dev) = gpu(&[y, g]) {
        return cuda::ops::rows_backward(dev, "rk_log_softmax_rows_backward", y, g, cols);
    }
    let (yd, gd) = cpu2(y, g);
    out(y.shape(), cpu::log_softmax_rows_backward(yd, gd, cols))
}

pub fn mul(a: &Tensor, b: &Tensor) -> Tensor {
    if let Some(g) = gpu(&[a, b]) {
        return cuda::ops::binary(g, "rk_mul", a, b);
    }
    let (ad, bd) = cpu2(a, b);
    out(a.shape(), cpu::mul(ad, bd))
}

pub fn add(a: &Tensor, b: &Tensor) -> Tensor {
    if let Some(g) = gpu(&[a, b]) {
        return cuda::ops::binary(g, "rk_add", a, b);
    }
    let (ad, bd) = cpu2(a, b);
    out(a.shape(), cpu::add(ad, bd))
}

/// Gradient accumulation: acc += g.
pub fn add_assign(acc: &mut Tensor, g: &Tensor) {
    if let Some(dev) = gpu(&[acc]) {
        if let Storage::Cuda(b) = acc.storage_mut() {
            return cuda::ops::add_assign(dev, b, g);
        }
    }
    cpu::add_assign(acc.host_mut(), g.host())
}

pub fn sum(a: &Tensor) -> f32 {
    if let Some(g) = gpu(&[a]) {
        return cuda::ops::sum(g, a);
    }
    cpu::sum(cpu1(a))
}

/// Sum of all elements broadcast back to a's shape times g (a scalar): the gradient of `sum`.
pub fn fill_like(a: &Tensor, v: f32) -> Tensor {
    if let Some(g) = gpu(&[a]) {
        return cuda::ops::fill(g, a.shape(), v);
    }
    let mut data = pool::take(a.numel());
    data.resize(a.numel(), v);
    out(a.shape(), data)
}

/// x repeated along its size-1 axes up to `shape` (same rank; checked by the op).
pub fn broadcast_to(x: &Tensor, shape: &[usize]) -> Tensor {
    // Already of that shape: the tensor itself (shared; writers unshare it first).
    if x.shape() == shape {
        return x.clone();
    }
    out(shape, cpu::broadcast_to(cpu1(x), x.shape(), shape))
}

/// acc = op(acc, x) elementwise, x broadcast to acc's shape.
pub fn combine_assign(op: Combine, acc: &mut Tensor, x: &Tensor) {
    let shape = acc.shape().to_vec();
    if shape == x.shape() {
        if let Some(dev) = gpu(&[acc]) {
            if let Storage::Cuda(b) = acc.storage_mut() {
                return cuda::ops::combine_assign(dev, op, b, x);
            }
        }
    }
    cpu::combine_assign(op, acc.host_mut(), &shape, x.host(), x.shape())
}

/// g summed down to `shape` over the axes where `shape` is 1: the gradient of
/// `broadcast_to`. A tensor already of that shape is returned as it is.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Tensor {
    if g.shape() == shape {
        return g.clone();
    }
    out(shape, cpu::sum_to_shape(cpu1(g), g.shape(), shape))
}

pub fn scale(x: &Tensor, s: f32) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::affine(g, x, s, 0.0);
    }
    out(x.shape(), cpu::scale(cpu1(x), s))
}

/// Gradient of an elementwise maximum or minimum `y` of `xs` for input `which`, at y's
/// shape: g where `xs[which]` is the first input equal to y.
pub fn extremum_grad(xs: &[&Tensor], y: &Tensor, g: &Tensor, which: usize) -> Tensor {
    let data: Vec<&[f32]> = xs.iter().map(|x| cpu1(x)).collect();
    let shapes: Vec<&[usize]> = xs.iter().map(|x| x.shape()).collect();
    let (yd, gd) = cpu2(y, g);
    out(
        y.shape(),
        cpu::extremum_grad(&data, &shapes, yd, gd, y.shape(), which),
    )
}

/// Concatenation along `axis`; the other axes match (checked by the op).
pub fn concat(xs: &[&Tensor], axis: usize) -> Tensor {
    let mut shape = xs[0].shape().to_vec();
    shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
    let outer: usize = shape[..axis].iter().product();
    let runs: Vec<usize> = xs
        .iter()
        .map(|x| x.shape()[axis..].iter().product())
        .collect();
    if let Some(g) = gpu(xs) {
        return cuda::ops::concat(g, xs, &runs, outer, &shape);
    }
    let data: Vec<&[f32]> = xs.iter().map(|x| cpu1(x)).collect();
    out(&shape, cpu::concat(&data, &runs, outer))
}

/// The part `start..start + len` of `y` along `axis`: the gradient of `concat`.
pub fn slice_axis(y: &Tensor, axis: usize, start: usize, len: usize) -> Tensor {
    let mut shape = y.shape().to_vec();
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    let total = shape[axis] * inner;
    shape[axis] = len;
    if let Some(g) = gpu(&[y]) {
        return cuda::ops::split_part(g, y, (outer, total), (start * inner, len * inner), &shape);
    }
    out(
        &shape,
        cpu::split_part(cpu1(y), outer, total, start * inner, len * inner),
    )
}

/// act(conv(x, kernel) + bias) of NHWC `x` with a (kh, kw, c, f) kernel (shapes checked
/// by the op), and the im2col columns when `keep_cols` asks to keep them.
pub fn conv2d_forward(
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
    g: &ConvGeometry,
    keep_cols: bool,
) -> (Tensor, Option<Tensor>) {
    if let Some(dev) = gpu(&[x, kernel]) {
        return cuda::ops::conv2d_forward(dev, x, kernel, bias, act, g, keep_cols);
    }
    let (xd, kd) = cpu2(x, kernel);
    let epilogue = cpu_conv::Epilogue {
        bias: bias.map(cpu1),
        act,
    };
    let r = cpu_conv::conv2d_forward(xd, kd, g, epilogue, keep_cols);
    let cols = r.cols.map(|c| out(&[c.len()], c));
    (out(&[g.n, g.oh, g.ow, g.f], r.y), cols)
}

/// max_pool(act(conv(x, kernel) + bias)), `pg` the pooling's geometry on the
/// convolution's output: inference only (nothing is kept for a backward pass).
pub fn conv2d_max_pool_forward(
    x: &Tensor,
    kernel: &Tensor,
    bias: Option<&Tensor>,
    act: Activation,
    g: &ConvGeometry,
    pg: &Pool2d,
) -> Tensor {
    if let Some(dev) = gpu(&[x, kernel]) {
        let (y, _) = cuda::ops::conv2d_forward(dev, x, kernel, bias, act, g, false);
        return cuda::ops::pool2d(dev, "rk_max_pool", &y, pg);
    }
    let (xd, kd) = cpu2(x, kernel);
    let epilogue = cpu_conv::Epilogue {
        bias: bias.map(cpu1),
        act,
    };
    out(
        &pg.out_shape(),
        cpu_conv::conv2d_max_pool_forward(xd, kd, g, epilogue, pg),
    )
}

/// Gradients of `conv2d_forward` for the input, the kernel and the bias, each only when
/// wanted; `y` is the forward output (for the activation), `cols` what it kept.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    x: &Tensor,
    kernel: &Tensor,
    y: &Tensor,
    gy: &Tensor,
    act: Activation,
    cols: Option<&Tensor>,
    g: &ConvGeometry,
    want: (bool, bool, bool),
) -> (Option<Tensor>, Option<Tensor>, Option<Tensor>) {
    if let Some(dev) = gpu(&[x, kernel, gy]) {
        return cuda::ops::conv2d_backward(dev, x, kernel, y, gy, act, cols, g, want);
    }
    let (xd, kd) = cpu2(x, kernel);
    let b = cpu_conv::ConvBackward {
        x: xd,
        kernel: kd,
        y: cpu1(y),
        gy: cpu1(gy),
        act,
        cols: cols.map(cpu1),
    };
    let (dx, dk, db) = cpu_conv::conv2d_backward(&b, g, want);
    (
        dx.map(|d| out(x.shape(), d)),
        dk.map(|d| out(kernel.shape(), d)),
        db.map(|d| out(&[g.f], d)),
    )
}

/// Per-channel mean and biased variance of x (..., c).
pub fn moments(x: &Tensor) -> (Tensor, Tensor) {
    let c = x.shape().last().copied().unwrap_or(1);
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::moments(g, x, c);
    }
    let (m, v) = cpu_norm::moments(cpu1(x), c);
    (out(&[c], m), out(&[c], v))
}

/// x (..., c) * scale (c) + shift (c).
pub fn scale_shift(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Tensor {
    if let Some(g) = gpu(&[x, scale, shift]) {
        return cuda::ops::scale_shift(g, x, scale, shift);
    }
    let c = scale.numel();
    let (sd, hd) = cpu2(scale, shift);
    out(x.shape(), cpu_norm::scale_shift(cpu1(x), c, sd, hd))
}

/// Per-channel sums of g and of g * (x - mean) * inv_std.
pub fn norm_grad_sums(x: &Tensor, g: &Tensor, mean: &Tensor, inv_std: &Tensor) -> (Tensor, Tensor) {
    if let Some(dev) = gpu(&[x, g]) {
        return cuda::ops::norm_grad_sums(dev, x, g, mean, inv_std);
    }
    let c = mean.numel();
    let (xd, gd) = cpu2(x, g);
    let (md, id) = cpu2(mean, inv_std);
    let (sg, sgx) = cpu_norm::grad_sums(xd, gd, c, md, id);
    (out(&[c], sg), out(&[c], sgx))
}

/// Input gradient of training-mode batch normalization.
pub fn batch_norm_input_grad(
    x: &Tensor,
    g: &Tensor,
    mean: &Tensor,
    inv_std: &Tensor,
    gamma: &Tensor,
    sums: (&Tensor, &Tensor),
) -> Tensor {
    if let Some(dev) = gpu(&[x, g]) {
        return cuda::ops::batch_norm_input_grad(dev, (x, g), (mean, inv_std, gamma), sums);
    }
    let c = mean.numel();
    let (xd, gd) = cpu2(x, g);
    let (md, id) = cpu2(mean, inv_std);
    let (sg, sgx) = cpu2(sums.0, sums.1);
    out(
        x.shape(),
        cpu_norm::train_input_grad(xd, gd, c, md, id, cpu1(gamma), sg, sgx),
    )
}

/// Depthwise convolution of NHWC `x` with a (kh, kw, c, multiplier) kernel.
pub fn depthwise_forward(x: &Tensor, kernel: &Tensor, g: &ConvGeometry) -> Tensor {
    let (xd, kd) = cpu2(x, kernel);
    out(
        &[g.n, g.oh, g.ow, g.f],
        cpu_conv::depthwise_forward(xd, kd, g),
    )
}

/// Gradients of `depthwise_forward`, each only when wanted.
pub fn depthwise_backward(
    x: &Tensor,
    kernel: &Tensor,
    gy: &Tensor,
    g: &ConvGeometry,
    want_dx: bool,
    want_dkernel: bool,
) -> (Option<Tensor>, Option<Tensor>) {
    let (xd, kd) = cpu2(x, kernel);
    let (dx, dk) = cpu_conv::depthwise_backward(xd, kd, cpu1(gy), g, want_dx, want_dkernel);
    (
        dx.map(|d| out(x.shape(), d)),
        dk.map(|d| out(kernel.shape(), d)),
    )
}

pub fn max_pool2d(x: &Tensor, g: &Pool2d) -> Tensor {
    if let Some(dev) = gpu(&[x]) {
        return cuda::ops::pool2d(dev, "rk_max_pool", x, g);
    }
    out(&g.out_shape(), cpu_pool::max_pool2d(cpu1(x), g))
}

/// Gradient of `max_pool2d` from its input x, its output y and the output gradient.
pub fn max_pool2d_backward(x: &Tensor, y: &Tensor, grad: &Tensor, g: &Pool2d) -> Tensor {
    if let Some(dev) = gpu(&[x, y, grad]) {
        return cuda::ops::max_pool2d_backward(dev, x, y, grad, g);
    }
    out(
        &[g.n, g.h, g.w, g.c],
        cpu_pool::max_pool2d_backward(cpu1(x), cpu1(y), cpu1(grad), g),
    )
}

pub fn avg_pool2d(x: &Tensor, g: &Pool2d) -> Tensor {
    if let Some(dev) = gpu(&[x]) {
        return cuda::ops::pool2d(dev, "rk_avg_pool", x, g);
    }
    out(&g.out_shape(), cpu_pool::avg_pool2d(cpu1(x), g))
}

pub fn avg_pool2d_backward(grad: &Tensor, g: &Pool2d) -> Tensor {
    if let Some(dev) = gpu(&[grad]) {
        return cuda::ops::avg_pool2d_backward(dev, grad, g);
    }
    out(
        &[g.n, g.h, g.w, g.c],
        cpu_pool::avg_pool2d_backward(cpu1(grad), g),
    )
}

pub fn zero_pad2d(x: &Tensor, p: &Pad2d) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::zero_pad2d(g, x, p);
    }
    out(&p.out_shape(), cpu_pad::zero_pad2d(cpu1(x), p))
}

/// The inverse of `zero_pad2d`: the input-sized middle of a padded tensor.
pub fn crop2d(padded: &Tensor, p: &Pad2d) -> Tensor {
    if let Some(g) = gpu(&[padded]) {
        return cuda::ops::crop2d(g, padded, p);
    }
    out(&p.in_shape(), cpu_pad::crop2d(cpu1(padded), p))
}

/// Categorical cross-entropy over rows of `z` (logits when `from_logits`, else
/// probabilities) on the GPU, where `z` lives there: the sum of the rows' losses and the
/// gradient of their mean. `None` on the CPU, where the loss ops compute it themselves.
pub fn gpu_crossentropy(
    z: &Tensor,
    labels: &Tensor,
    from_logits: bool,
    sparse: bool,
) -> Option<(f64, Tensor)> {
    let dev = gpu(&[z])?;
    Some(cuda::ops::crossentropy(dev, from_logits, z, labels, sparse))
}

/// An elementwise loss of `pred` against `y` on the GPU, where `pred` lives there (`kind`
/// as `cuda::ops::pointwise_loss` takes it): the sum of the values and the gradient of
/// their mean. `None` on the CPU.
pub fn gpu_pointwise_loss(pred: &Tensor, y: &Tensor, kind: i32) -> Option<(f64, Tensor)> {
    let dev = gpu(&[pred])?;
    Some(cuda::ops::pointwise_loss(dev, pred, y, kind))
}

/// Accuracy hits of the rows of `pred` on the GPU, where it lives there: one-hot labels,
/// or one class index per row when `sparse`. `None` on the CPU.
pub fn gpu_accuracy_hits(pred: &Tensor, labels: &Tensor, sparse: bool) -> Option<f64> {
    let dev = gpu(&[pred])?;
    Some(cuda::ops::accuracy_hits(dev, pred, labels, sparse))
}

/// Dropout of `x` on the GPU, where it lives there: (x * mask, mask) with the mask drawn
/// from `seed` on the device. `None` on the CPU, where the op draws its own mask.
pub fn gpu_dropout(x: &Tensor, rate: f32, seed: u64) -> Option<(Tensor, Tensor)> {
    let dev = gpu(&[x])?;
    Some(cuda::ops::dropout(dev, x, rate, seed))
}

/// `l1 * sum(|x|) + l2 * sum(x^2)`: a weight regularizer's penalty.
pub fn penalty(x: &Tensor, l1: f32, l2: f32) -> f32 {
    cpu::penalty(cpu1(x), l1, l2)
}

/// `g * (l1 * sign(x) + 2 * l2 * x)`: the penalty's gradient for an upstream scalar `g`.
pub fn penalty_grad(x: &Tensor, g: f32, l1: f32, l2: f32) -> Tensor {
    out(x.shape(), cpu::penalty_grad(cpu1(x), g, l1, l2))
}

/// `x * a + b`, elementwise.
pub fn affine(x: &Tensor, a: f32, b: f32) -> Tensor {
    if let Some(g) = gpu(&[x]) {
        return cuda::ops::affine(g, x, a, b);
    }
    out(x.shape(), cpu::affine(cpu1(x), a, b))
}

/// Rows `ids` of `table` (rows x dim): shape `ids_shape + [dim]`. The ids are checked.
pub fn gather_rows(table: &Tensor, ids: &[usize], ids_shape: &[usize]) -> Tensor {
    let dim = table.shape()[1];
    let mut shape = ids_shape.to_vec();
    shape.push(dim);
    if let Some(g) = gpu(&[table]) {
        if table.rows() <= cuda::ops::MAX_GATHER_ROWS {
            let rows = cuda::ops::gather_rows(g, table, dim, ids);
            return rows.reshape(shape).expect("ids.len() rows of dim");
        }
    }
    out(&shape, cpu::gather_rows(cpu1(table), dim, ids))
}

/// Rows [from, to) of `table` (rows x dim) as a tensor of `shape`.
pub fn slice_rows(table: &Tensor, from: usize, to: usize, shape: &[usize]) -> Tensor {
    let dim = table.row_len();
    if let Some(g) = gpu(&[table]) {
        return cuda::ops::copy_range(g, table, from * dim, (to - from) * dim, shape);
    }
    out(shape, pool::copy_of(&cpu1(table)[from * dim..to * dim]))
}

/// The gradient of `gather_rows` for the table: each row of `g` added into row `ids[i]`.
pub fn scatter_add_rows(g: &Tensor, ids: &[usize], rows: usize) -> Tensor {
    let dim = *g.shape().last().expect("rows of dim");
    out(&[rows, dim], cpu::scatter_add_rows(cpu1(g), dim, ids, rows))
}
