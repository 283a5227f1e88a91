//! CPU kernels on plain slices. Each kernel writes one output buffer; the hot ones are
//! split over rayon only when the work is big enough to pay for it.

use rayon::prelude::*;

use super::pool;
use crate::ops::activation::Activation;

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
        out.par_chunks_mut(PAR_MIN / 4)
            .zip(x.par_chunks(PAR_MIN / 4))
            .for_each(|(o, x)| act.forward_slice(x, o));
    } else {
        act.forward_slice(x, &mut out);
    }
    out
}

pub fn activation_backward(act: Activation, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    let mut out = pool::scratch(x.len());
    if x.len() >= PAR_MIN {
        let c = PAR_MIN / 4;
        out.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .zip(y.par_chunks(c).zip(g.par_chunks(c)))
            .for_each(|((o, x), (y, g))| act.backward_slice(x, y, g, o));
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
