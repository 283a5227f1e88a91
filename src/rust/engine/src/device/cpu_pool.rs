//! CPU pooling kernels over NHWC slices.
//!
//! Channels are innermost, so every window cell is a contiguous run of `c` values and
//! each kernel is a loop over such runs that the compiler vectorises. Samples are
//! independent: big tensors split over rayon by sample, unless the caller already runs
//! on a rayon worker (data-parallel shards, parallel predict batches).

use rayon::prelude::*;

use super::pool;
use crate::ops::pool::Pool2d;

/// Below this many input elements a pooling stays on one thread.
const PAR_MIN: usize = 1 << 18;

fn parallel(g: &Pool2d) -> bool {
    g.n > 1 && g.n * g.h * g.w * g.c >= PAR_MIN && rayon::current_thread_index().is_none()
}

/// `f(input sample, output sample)` for every sample.
fn per_sample(
    input: &[f32],
    in_len: usize,
    output: &mut [f32],
    out_len: usize,
    par: bool,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) {
    if par {
        crate::threads::install(|| {
            output
                .par_chunks_mut(out_len)
                .zip(input.par_chunks(in_len))
                .for_each(|(o, i)| f(i, o))
        });
    } else {
        output
            .chunks_mut(out_len)
            .zip(input.chunks(in_len))
            .for_each(|(o, i)| f(i, o));
    }
}

fn sizes(g: &Pool2d) -> (usize, usize) {
    (g.h * g.w * g.c, g.oh * g.ow * g.c)
}

/// Window maxima, without the argmax that only training needs.
pub fn max_pool2d(x: &[f32], g: &Pool2d) -> Vec<f32> {
    let mut y = pool::scratch(g.n * sizes(g).1);
    max_pool2d_into(x, g, &mut y);
    y
}

/// `max_pool2d` into `y` (n * oh * ow * c values).
pub fn max_pool2d_into(x: &[f32], g: &Pool2d, y: &mut [f32]) {
    let (in_len, out_len) = sizes(g);
    if out_len == 0 {
        return;
    }
    per_sample(x, in_len, y, out_len, parallel(g), |x, y| {
        max_pool_sample(x, g, y)
    });
}

/// Lanes per step of the channel loops: whole AVX-512 vectors. Written as runs of 16
/// (`chunks_exact` plus the remainder), since the compiler's own vectorised loops take
/// 64 values at a time and would leave 32 channels (the workshop CNN's first layer) to
/// their scalar remainder.
const L: usize = 16;

with_avx512!(max_pool_sample, max_pool_sample_body(x: &[f32], g: &Pool2d, y: &mut [f32]));

/// The window maxima of one sample.
#[inline(always)]
fn max_pool_sample_body(x: &[f32], g: &Pool2d, y: &mut [f32]) {
    for (k, out) in y.chunks_exact_mut(g.c).enumerate() {
        window_max(x, g, k / g.ow, k % g.ow, out);
    }
}

/// The max of window (i, j) of one sample, per channel: 16 channels at a time, their
/// running max held in a register across the window's cells and stored once.
#[inline(always)]
fn window_max(x: &[f32], g: &Pool2d, i: usize, j: usize, out: &mut [f32]) {
    let (rows, cols, c) = (g.rows(i), g.cols(j), g.c);
    let first = (rows.start * g.w + cols.start) * c;
    let full = c / L * L;
    for i0 in (0..full).step_by(L) {
        let mut acc: [f32; L] = x[first + i0..first + i0 + L].try_into().expect("16");
        for r in rows.clone() {
            for s in cols.clone() {
                let at = (r * g.w + s) * c + i0;
                let v: &[f32; L] = x[at..at + L].try_into().expect("16");
                for l in 0..L {
                    acc[l] = if v[l] > acc[l] { v[l] } else { acc[l] };
                }
            }
        }
        let o: &mut [f32; L] = (&mut out[i0..i0 + L]).try_into().expect("16");
        *o = acc;
    }
    for ch in full..c {
        let mut m = x[first + ch];
        for r in rows.clone() {
            for s in cols.clone() {
                let v = x[(r * g.w + s) * c + ch];
                m = if v > m { v } else { m };
            }
        }
        out[ch] = m;
    }
}

/// Sends each output gradient to the first cell of its window that holds the window's
/// max (found again from the input and the output, which costs less than recording an
/// index per output in the forward pass). Within a window the gradient not yet given
/// is carried per channel, a compare and select per value, so the loops vectorise.
pub fn max_pool2d_backward(x: &[f32], y: &[f32], grad: &[f32], g: &Pool2d) -> Vec<f32> {
    let (in_len, out_len) = sizes(g);
    // Every value is written by `max_pool_backward_sample` (which clears what it only
    // adds to), so the buffer need not be zeroed first.
    let mut dx = pool::scratch(g.n * in_len);
    if out_len == 0 {
        dx.fill(0.0);
        return dx;
    }
    let each = |dx: &mut [f32], x: &[f32], y: &[f32], grad: &[f32]| {
        max_pool_backward_sample(dx, x, y, grad, g)
    };
    if parallel(g) {
        crate::threads::install(|| {
            dx.par_chunks_mut(in_len)
                .zip(x.par_chunks(in_len))
                .zip(y.par_chunks(out_len).zip(grad.par_chunks(out_len)))
                .for_each(|((d, x), (y, gr))| each(d, x, y, gr))
        });
    } else {
        dx.chunks_mut(in_len)
            .zip(x.chunks(in_len))
            .zip(y.chunks(out_len).zip(grad.chunks(out_len)))
            .for_each(|((d, x), (y, gr))| each(d, x, y, gr));
    }
    dx
}

with_avx512!(
    max_pool_backward_sample,
    max_pool_backward_sample_body(
        dx: &mut [f32],
        x: &[f32],
        y: &[f32],
        grad: &[f32],
        g: &Pool2d,
    )
);

/// One sample's input gradient. Windows that do not overlap (stride at least the pool
/// size, as in the default 2x2 pooling) each own their cells: those are written, not
/// added to, and only the cells under no window are cleared, instead of clearing the
/// whole gradient first.
#[inline(always)]
fn max_pool_backward_sample_body(dx: &mut [f32], x: &[f32], y: &[f32], grad: &[f32], g: &Pool2d) {
    let disjoint = g.sh >= g.ph && g.sw >= g.pw;
    if disjoint {
        let mut row_in = vec![false; g.h];
        let mut col_in = vec![false; g.w];
        (0..g.oh)
            .flat_map(|i| g.rows(i))
            .for_each(|r| row_in[r] = true);
        (0..g.ow)
            .flat_map(|j| g.cols(j))
            .for_each(|s| col_in[s] = true);
        for (r, row) in dx.chunks_exact_mut(g.w * g.c).enumerate() {
            for (s, cell) in row.chunks_exact_mut(g.c).enumerate() {
                if !(row_in[r] && col_in[s]) {
                    cell.fill(0.0);
                }
            }
        }
    } else {
        dx.fill(0.0);
    }
    let c = g.c;
    let full = c / L * L;
    for (k, (gr, yo)) in grad.chunks_exact(c).zip(y.chunks_exact(c)).enumerate() {
        let (rows, cols) = (g.rows(k / g.ow), g.cols(k % g.ow));
        // 16 channels at a time, the gradient not yet given kept in a register.
        for i0 in (0..full).step_by(L) {
            let mut left: [f32; L] = gr[i0..i0 + L].try_into().expect("16");
            let m: &[f32; L] = yo[i0..i0 + L].try_into().expect("16");
            for r in rows.clone() {
                for s in cols.clone() {
                    let at = (r * g.w + s) * c + i0;
                    let v: &[f32; L] = x[at..at + L].try_into().expect("16");
                    let d: &mut [f32; L] = (&mut dx[at..at + L]).try_into().expect("16");
                    for l in 0..L {
                        let hit = v[l] == m[l];
                        let share = if hit { left[l] } else { 0.0 };
                        d[l] = if disjoint { share } else { d[l] + share };
                        left[l] = if hit { 0.0 } else { left[l] };
                    }
                }
            }
        }
        for ch in full..c {
            let mut left = gr[ch];
            for r in rows.clone() {
                for s in cols.clone() {
                    let at = (r * g.w + s) * c + ch;
                    let hit = x[at] == yo[ch];
                    let share = if hit { left } else { 0.0 };
                    dx[at] = if disjoint { share } else { dx[at] + share };
                    left = if hit { 0.0 } else { left };
                }
            }
        }
    }
}

/// Window means over the input cells under each window.
pub fn avg_pool2d(x: &[f32], g: &Pool2d) -> Vec<f32> {
    let (in_len, out_len) = sizes(g);
    let mut y = pool::scratch(g.n * out_len);
    if out_len == 0 {
        return y;
    }
    per_sample(x, in_len, &mut y, out_len, parallel(g), |x, y| {
        for (k, out) in y.chunks_exact_mut(g.c).enumerate() {
            let (i, j) = (k / g.ow, k % g.ow);
            let (rows, cols) = (g.rows(i), g.cols(j));
            let count = (rows.len() * cols.len()) as f32;
            out.fill(0.0);
            for r in rows {
                for s in cols.clone() {
                    let cell = &x[(r * g.w + s) * g.c..][..g.c];
                    out.iter_mut().zip(cell).for_each(|(o, v)| *o += v);
                }
            }
            out.iter_mut().for_each(|o| *o /= count);
        }
    });
    y
}

/// Spreads each output gradient evenly over its window's input cells.
pub fn avg_pool2d_backward(grad: &[f32], g: &Pool2d) -> Vec<f32> {
    let (in_len, out_len) = sizes(g);
    let mut dx = pool::zeros(g.n * in_len);
    if out_len == 0 {
        return dx;
    }
    let each = |dx: &mut [f32], grad: &[f32]| {
        for (k, gr) in grad.chunks_exact(g.c).enumerate() {
            let (i, j) = (k / g.ow, k % g.ow);
            let (rows, cols) = (g.rows(i), g.cols(j));
            let count = (rows.len() * cols.len()) as f32;
            for r in rows {
                for s in cols.clone() {
                    let cell = &mut dx[(r * g.w + s) * g.c..][..g.c];
                    cell.iter_mut().zip(gr).for_each(|(d, v)| *d += v / count);
                }
            }
        }
    };
    if parallel(g) {
        crate::threads::install(|| {
            dx.par_chunks_mut(in_len)
                .zip(grad.par_chunks(out_len))
                .for_each(|(d, gr)| each(d, gr))
        });
    } else {
        dx.chunks_mut(in_len)
            .zip(grad.chunks(out_len))
            .for_each(|(d, gr)| each(d, gr));
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::Padding;

    /// Max and mean of each window by direct indexing, the definition the kernels
    /// must agree with.
    fn reference(x: &[f32], g: &Pool2d) -> (Vec<f32>, Vec<f32>) {
        let (mut max, mut mean) = (Vec::new(), Vec::new());
        for b in 0..g.n {
            for i in 0..g.oh {
                for j in 0..g.ow {
                    for ch in 0..g.c {
                        let vals: Vec<f32> = g
                            .rows(i)
                            .flat_map(|r| g.cols(j).map(move |s| (r, s)))
                            .map(|(r, s)| x[((b * g.h + r) * g.w + s) * g.c + ch])
                            .collect();
                        max.push(vals.iter().copied().fold(f32::NEG_INFINITY, f32::max));
                        mean.push(vals.iter().sum::<f32>() / vals.len() as f32);
                    }
                }
            }
        }
        (max, mean)
    }

    #[test]
    fn threaded_and_serial_kernels_agree_with_the_definition() {
        // Big enough to split over samples at the top level; inside a rayon worker the
        // same call stays serial.
        let shape = [16, 26, 26, 40];
        let x = crate::ops::gradcheck::random_tensor(&shape, 3, 1.0).to_vec();
        for (pool, strides, padding) in [
            ((2, 2), (2, 2), Padding::Valid),
            ((3, 3), (2, 2), Padding::Same),
        ] {
            let g = Pool2d::new(&shape, pool, strides, padding).unwrap();
            assert!(parallel(&g));
            let (max, mean) = reference(&x, &g);
            let ones = vec![1.0f32; max.len()];
            let y = max_pool2d(&x, &g);
            let top = (
                max_pool2d(&x, &g),
                avg_pool2d(&x, &g),
                max_pool2d_backward(&x, &y, &ones, &g),
                avg_pool2d_backward(&ones, &g),
            );
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let inner = pool.install(|| {
                assert!(!parallel(&g));
                (
                    max_pool2d(&x, &g),
                    avg_pool2d(&x, &g),
                    max_pool2d_backward(&x, &y, &ones, &g),
                    avg_pool2d_backward(&ones, &g),
                )
            });
            assert_eq!(top, inner);
            assert_eq!(top.0, max);
            for (a, b) in top.1.iter().zip(&mean) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
            // Each window's gradient of 1 lands once, on a cell holding the window's max.
            let routed: f32 = top.2.iter().sum();
            assert_eq!(routed, max.len() as f32);
            for (i, &d) in top.2.iter().enumerate() {
                if d != 0.0 {
                    assert!(max.contains(&x[i]));
                }
            }
            // Average backward hands out exactly the windows' total gradient.
            let spread: f64 = top.3.iter().map(|&v| v as f64).sum();
            assert!((spread - max.len() as f64).abs() < 1e-2);
        }
    }

    #[test]
    fn max_backward_writes_every_cell_of_a_stale_buffer() {
        // The input gradient comes from a reused buffer that is not cleared: poison the
        // pool, then check against the definition (each window's gradient to its first
        // max), for disjoint windows that leave cells uncovered (an odd size; a stride
        // past the pool size) and for overlapping ones, with 32 channels (two whole
        // vectors) and 20 (a remainder).
        for (shape, pool, strides, padding) in [
            ([3, 13, 13, 32], (2, 2), (2, 2), Padding::Valid),
            ([2, 11, 10, 20], (2, 2), (3, 3), Padding::Valid),
            ([2, 9, 9, 20], (3, 3), (2, 2), Padding::Same),
        ] {
            let g = Pool2d::new(&shape, pool, strides, padding).unwrap();
            let x = crate::ops::gradcheck::random_tensor(&shape, 5, 1.0).to_vec();
            let y = max_pool2d(&x, &g);
            let grad = crate::ops::gradcheck::random_tensor(&[y.len()], 6, 1.0).to_vec();
            let mut want = vec![0.0f32; x.len()];
            for b in 0..g.n {
                for i in 0..g.oh {
                    for j in 0..g.ow {
                        for ch in 0..g.c {
                            let o = ((b * g.oh + i) * g.ow + j) * g.c + ch;
                            let first = g
                                .rows(i)
                                .flat_map(|r| g.cols(j).map(move |s| (r, s)))
                                .map(|(r, s)| ((b * g.h + r) * g.w + s) * g.c + ch)
                                .find(|&at| x[at] == y[o])
                                .unwrap();
                            want[first] += grad[o];
                        }
                    }
                }
            }
            pool::give(vec![f32::NAN; x.len()]);
            let dx = max_pool2d_backward(&x, &y, &grad, &g);
            assert_eq!(dx, want, "{shape:?} {pool:?} {strides:?}");
        }
    }
}
