//! CPU kernels on plain slices. Each kernel writes one output buffer; the hot ones are
//! split over rayon only when the work is big enough to pay for it.

use rayon::prelude::*;

use super::pool;
use crate::ops::activation::Activation;
use crate::ops::merge::Combine;

/// Below this many elements an elementwise kernel stays on one thread.
const PAR_MIN: usize = 1 << 16;

pub fn add_row_bias(x: &[f32], bias: &[f32]) -> Vec<f32> {
    let cols = bias.len();
    let mut out = pool::take(x.len());
    for row in x.chunks_exact(cols) {
        out.extend(row.iter().zip(bias).map(|(x, b)| x + b));
    }
    out
}

/// act(x + bias) in one pass. The common activations get their own copy of the loop,
/// which the compiler vectorises; the rest go through the generic `match`.
pub fn bias_activation(x: &[f32], bias: &[f32], act: Activation) -> Vec<f32> {
    fn run(x: &[f32], bias: &[f32], f: impl Fn(f32) -> f32) -> Vec<f32> {
        let mut out = pool::take(x.len());
        for row in x.chunks_exact(bias.len()) {
            out.extend(row.iter().zip(bias).map(|(x, b)| f(x + b)));
        }
        out
    }
    match act {
        Activation::Linear => run(x, bias, |v| v),
        Activation::Relu => run(x, bias, |v| v.max(0.0)),
        _ => run(x, bias, |v| act.apply(v)),
    }
}

/// Backward of act(x + bias) from its output y: returns (dx, dbias) in one pass.
pub fn bias_activation_backward(
    y: &[f32],
    g: &[f32],
    cols: usize,
    act: Activation,
) -> (Vec<f32>, Vec<f32>) {
    fn run(y: &[f32], g: &[f32], cols: usize, df: impl Fn(f32) -> f32) -> (Vec<f32>, Vec<f32>) {
        let mut dx = pool::scratch(y.len());
        let mut db = vec![0.0f32; cols];
        for ((dr, yr), gr) in dx
            .chunks_exact_mut(cols)
            .zip(y.chunks_exact(cols))
            .zip(g.chunks_exact(cols))
        {
            for (((d, &y), &g), s) in dr.iter_mut().zip(yr).zip(gr).zip(db.iter_mut()) {
                *d = g * df(y);
                *s += *d;
            }
        }
        (dx, db)
    }
    match act {
        Activation::Linear => run(y, g, cols, |_| 1.0),
        Activation::Relu => run(y, g, cols, |y| if y > 0.0 { 1.0 } else { 0.0 }),
        _ => run(y, g, cols, |y| act.df_from_output(y)),
    }
}

/// Sum over rows: the bias gradient.
pub fn col_sum(g: &[f32], cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; cols];
    for row in g.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

pub fn activation_forward(act: Activation, x: &[f32]) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    if x.len() >= PAR_MIN {
        crate::threads::install(|| {
            out.par_chunks_mut(PAR_MIN / 4)
                .zip(x.par_chunks(PAR_MIN / 4))
                .for_each(|(o, x)| act.forward_slice(x, o))
        });
    } else {
        act.forward_slice(x, &mut out);
    }
    out
}

pub fn activation_backward(act: Activation, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    if x.len() >= PAR_MIN {
        let c = PAR_MIN / 4;
        crate::threads::install(|| {
            out.par_chunks_mut(c)
                .zip(x.par_chunks(c))
                .zip(y.par_chunks(c).zip(g.par_chunks(c)))
                .for_each(|((o, x), (y, g))| act.backward_slice(x, y, g, o))
        });
    } else {
        act.backward_slice(x, y, g, &mut out);
    }
    out
}

/// Row-wise softmax, shifted by the row max for stability.
pub fn softmax_rows(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    for (o, r) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f32;
        for (o, &v) in o.iter_mut().zip(r) {
            *o = (v - m).exp();
            s += *o;
        }
        let inv = 1.0 / s;
        o.iter_mut().for_each(|v| *v *= inv);
    }
    out
}

/// dx = y * (g - sum(g * y)) per row.
pub fn softmax_rows_backward(y: &[f32], g: &[f32], cols: usize) -> Vec<f32> {
    let mut out = pool::scratch(y.len());
    for ((o, y), g) in out
        .chunks_exact_mut(cols)
        .zip(y.chunks_exact(cols))
        .zip(g.chunks_exact(cols))
    {
        let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = y * (g - dot);
        }
    }
    out
}

pub fn log_softmax_rows(x: &[f32], cols: usize) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    for (o, r) in out.chunks_exact_mut(cols).zip(x.chunks_exact(cols)) {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = m + r.iter().map(|&v| (v - m).exp()).sum::<f32>().ln();
        for (o, &v) in o.iter_mut().zip(r) {
            *o = v - lse;
        }
    }
    out
}

/// dx = g - softmax(x) * sum(g) per row, from y = log_softmax(x).
pub fn log_softmax_rows_backward(y: &[f32], g: &[f32], cols: usize) -> Vec<f32> {
    let mut out = pool::scratch(y.len());
    for ((o, y), g) in out
        .chunks_exact_mut(cols)
        .zip(y.chunks_exact(cols))
        .zip(g.chunks_exact(cols))
    {
        let s: f32 = g.iter().sum();
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = g - y.exp() * s;
        }
    }
    out
}

pub fn mul(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = pool::take(a.len());
    out.extend(a.iter().zip(b).map(|(x, y)| x * y));
    out
}

pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = pool::take(a.len());
    out.extend(a.iter().zip(b).map(|(x, y)| x + y));
    out
}

/// a += b, in place: gradient accumulation.
pub fn add_assign(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// Calls `f(out_offset, len, bases, steps)` for each run along the last axis of `out`:
/// input i's element for `out[out_offset + k]` is at `bases[i] + k * steps[i]`. Every
/// input has the rank of `out`, each axis equal to it or 1 (broadcast: stride 0). When
/// no input broadcasts the whole tensor is one run.
fn broadcast_runs(
    shapes: &[&[usize]],
    out: &[usize],
    mut f: impl FnMut(usize, usize, &[usize], &[usize]),
) {
    let n: usize = out.iter().product();
    if out.is_empty() || shapes.iter().all(|s| *s == out) {
        f(0, n, &vec![0; shapes.len()], &vec![1; shapes.len()]);
        return;
    }
    let rank = out.len();
    // Row-major strides of each input, 0 on the axes it broadcasts along.
    let strides: Vec<Vec<usize>> = shapes
        .iter()
        .map(|s| {
            let mut st = vec![0; rank];
            let mut acc = 1;
            for ax in (0..rank).rev() {
                st[ax] = if s[ax] == 1 { 0 } else { acc };
                acc *= s[ax];
            }
            st
        })
        .collect();
    let last = out[rank - 1];
    let steps: Vec<usize> = strides.iter().map(|st| st[rank - 1]).collect();
    let rows = n / last.max(1);
    let mut idx = vec![0usize; rank - 1];
    let mut bases = vec![0usize; shapes.len()];
    for r in 0..rows {
        f(r * last, last, &bases, &steps);
        // Odometer over the outer axes, moving each input's base with it.
        for ax in (0..rank - 1).rev() {
            idx[ax] += 1;
            if idx[ax] < out[ax] {
                bases
                    .iter_mut()
                    .zip(&strides)
                    .for_each(|(b, st)| *b += st[ax]);
                break;
            }
            bases
                .iter_mut()
                .zip(&strides)
                .for_each(|(b, st)| *b -= st[ax] * (out[ax] - 1));
            idx[ax] = 0;
        }
    }
}

/// x (of `shape`) repeated along its size-1 axes up to `out`.
pub fn broadcast_to(x: &[f32], shape: &[usize], out: &[usize]) -> Vec<f32> {
    let mut y = pool::take(out.iter().product());
    broadcast_runs(&[shape], out, |_, len, b, s| {
        if s[0] == 1 {
            y.extend_from_slice(&x[b[0]..b[0] + len]);
        } else {
            y.resize(y.len() + len, x[b[0]]);
        }
    });
    y
}

/// acc (of shape `out`) = op(acc, x) elementwise, x broadcast from `shape`.
pub fn combine_assign(op: Combine, acc: &mut [f32], out: &[usize], x: &[f32], shape: &[usize]) {
    // One copy of the loop per op, so each vectorises.
    fn run(
        acc: &mut [f32],
        out: &[usize],
        x: &[f32],
        shape: &[usize],
        f: impl Fn(f32, f32) -> f32,
    ) {
        broadcast_runs(&[shape], out, |o, len, b, s| {
            let acc = &mut acc[o..o + len];
            if s[0] == 1 {
                let x = &x[b[0]..b[0] + len];
                acc.iter_mut().zip(x).for_each(|(a, &x)| *a = f(*a, x));
            } else {
                let x = x[b[0]];
                acc.iter_mut().for_each(|a| *a = f(*a, x));
            }
        });
    }
    match op {
        Combine::Add => run(acc, out, x, shape, |a, x| a + x),
        Combine::Sub => run(acc, out, x, shape, |a, x| a - x),
        Combine::Mul => run(acc, out, x, shape, |a, x| a * x),
        // Ties keep the earlier value; NaN propagates as in the backends' maximum.
        Combine::Max => run(
            acc,
            out,
            x,
            shape,
            |a, x| if x > a || x.is_nan() { x } else { a },
        ),
        Combine::Min => run(
            acc,
            out,
            x,
            shape,
            |a, x| if x < a || x.is_nan() { x } else { a },
        ),
    }
}

/// g (of shape `out`) summed over the axes that `shape` broadcasts along: the gradient of
/// a broadcast.
pub fn sum_to_shape(g: &[f32], out: &[usize], shape: &[usize]) -> Vec<f32> {
    let mut dx = pool::zeros(shape.iter().product());
    broadcast_runs(&[shape], out, |o, len, b, s| {
        let g = &g[o..o + len];
        if s[0] == 1 {
            add_assign(&mut dx[b[0]..b[0] + len], g);
        } else {
            dx[b[0]] += g.iter().sum::<f32>();
        }
    });
    dx
}

pub fn scale(x: &[f32], s: f32) -> Vec<f32> {
    let mut out = pool::take(x.len());
    out.extend(x.iter().map(|v| v * s));
    out
}

/// The gradient of an elementwise maximum or minimum y (of shape `out`) for input
/// `which`: g where that input is the first to equal y, 0 elsewhere.
pub fn extremum_grad(
    xs: &[&[f32]],
    shapes: &[&[usize]],
    y: &[f32],
    g: &[f32],
    out: &[usize],
    which: usize,
) -> Vec<f32> {
    let mut dx = pool::scratch(y.len());
    broadcast_runs(shapes, out, |o, len, b, s| {
        for k in 0..len {
            let yk = y[o + k];
            let first = xs
                .iter()
                .zip(b.iter().zip(s))
                .position(|(x, (&b, &s))| x[b + k * s] == yk);
            dx[o + k] = if first == Some(which) { g[o + k] } else { 0.0 };
        }
    });
    dx
}

/// Concatenation of row-major tensors along an axis: with `outer` = the product of the
/// axes before it, each input is `outer` contiguous runs of `runs[i]` values, and the
/// output interleaves them.
pub fn concat(xs: &[&[f32]], runs: &[usize], outer: usize) -> Vec<f32> {
    let mut y = pool::take(outer * runs.iter().sum::<usize>());
    for o in 0..outer {
        for (x, &r) in xs.iter().zip(runs) {
            y.extend_from_slice(&x[o * r..(o + 1) * r]);
        }
    }
    y
}

/// One input's part of a concatenation (the inverse of `concat`): `run` values at
/// `offset` in each of the `outer` runs of `total` values.
pub fn split_part(y: &[f32], outer: usize, total: usize, offset: usize, run: usize) -> Vec<f32> {
    let mut x = pool::take(outer * run);
    for o in 0..outer {
        let start = o * total + offset;
        x.extend_from_slice(&y[start..start + run]);
    }
    x
}

/// Sum in f64 so long reductions keep their precision.
pub fn sum(a: &[f32]) -> f32 {
    a.iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// The widest SIMD instruction set this CPU offers to our kernels.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
        "SSE2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "NEON"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

pub fn penalty(x: &[f32], l1: f32, l2: f32) -> f32 {
    let (abs, sq) = x.iter().fold((0f64, 0f64), |(a, s), &v| {
        let v = v as f64;
        (a + v.abs(), s + v * v)
    });
    (l1 as f64 * abs + l2 as f64 * sq) as f32
}

/// The sign of 0 is 0, as for Keras's `abs`.
pub fn penalty_grad(x: &[f32], g: f32, l1: f32, l2: f32) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let sign = if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            };
            g * (l1 * sign + 2.0 * l2 * v)
        })
        .collect()
}

pub fn affine(x: &[f32], a: f32, b: f32) -> Vec<f32> {
    let mut out = pool::take(x.len());
    out.extend(x.iter().map(|v| v * a + b));
    out
}

pub fn gather_rows(table: &[f32], dim: usize, ids: &[usize]) -> Vec<f32> {
    let mut out = pool::take(ids.len() * dim);
    for &i in ids {
        out.extend_from_slice(&table[i * dim..(i + 1) * dim]);
    }
    out
}

pub fn scatter_add_rows(g: &[f32], dim: usize, ids: &[usize], rows: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * dim];
    for (k, &i) in ids.iter().enumerate() {
        for (o, v) in out[i * dim..(i + 1) * dim]
            .iter_mut()
            .zip(&g[k * dim..(k + 1) * dim])
        {
            *o += v;
        }
    }
    out
}
