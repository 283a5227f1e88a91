//! Batch normalization kernels on the CPU: per-channel statistics over (rows, channels)
//! data, channels innermost so that every loop runs along contiguous channel vectors.

use rayon::prelude::*;

use crate::device::pool;

/// Rows per parallel piece; small inputs stay on the caller's thread.
const ROWS_PER_PIECE: usize = 4096;

fn pieces(rows: usize, c: usize) -> usize {
    let top_level = rayon::current_thread_index().is_none();
    if top_level && rows * c >= 1 << 18 {
        rows.div_ceil(ROWS_PER_PIECE)
    } else {
        1
    }
}

/// Per-channel sums of `f(row)` over the rows of x (rows x c), in parallel pieces.
fn channel_sums(x: &[f32], c: usize, per_row: impl Fn(&[f32], &mut [f64]) + Sync) -> Vec<f64> {
    let rows = x.len() / c.max(1);
    let n = pieces(rows, c);
    let piece = rows.div_ceil(n.max(1)).max(1) * c;
    let partial = |chunk: &[f32]| {
        let mut acc = vec![0.0f64; c];
        // f32 partials per block of rows, folded into f64, keep long sums accurate.
        let mut block = vec![0.0f64; c];
        for rows in chunk.chunks(256 * c) {
            block.iter_mut().for_each(|b| *b = 0.0);
            for row in rows.chunks(c) {
                per_row(row, &mut block);
            }
            acc.iter_mut().zip(&block).for_each(|(a, b)| *a += b);
        }
        acc
    };
    if n <= 1 {
        return partial(x);
    }
    crate::threads::install(|| {
        x.par_chunks(piece).map(partial).reduce(
            || vec![0.0f64; c],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
    })
}

/// Mean and biased variance of each channel.
pub fn moments(x: &[f32], c: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (x.len() / c.max(1)).max(1) as f64;
    let sums = channel_sums(x, c, |row, acc| {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64)
    });
    let mean: Vec<f64> = sums.iter().map(|s| s / rows).collect();
    // Two passes (sum of squared deviations) rather than E[x²] - E[x]²: no cancellation.
    let sq = channel_sums(x, c, |row, acc| {
        acc.iter_mut().zip(row).zip(&mean).for_each(|((a, &v), m)| {
            let d = v as f64 - m;
            *a += d * d
        })
    });
    (
        mean.iter().map(|&m| m as f32).collect(),
        sq.iter().map(|s| (s / rows) as f32).collect(),
    )
}

/// y = x * scale + shift per channel.
pub fn scale_shift(x: &[f32], c: usize, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let mut y = pool::scratch(x.len());
    let run = |(xs, ys): (&[f32], &mut [f32])| {
        for (xr, yr) in xs.chunks(c).zip(ys.chunks_mut(c)) {
            for i in 0..c {
                yr[i] = xr[i] * scale[i] + shift[i];
            }
        }
    };
    let rows = x.len() / c.max(1);
    if pieces(rows, c) > 1 {
        crate::threads::install(|| {
            x.par_chunks(ROWS_PER_PIECE * c)
                .zip(y.par_chunks_mut(ROWS_PER_PIECE * c))
                .for_each(run)
        });
    } else {
        run((x, &mut y));
    }
    y
}

/// Sums over rows of g and of g * (x - mean) * inv_std, per channel: the gradients of
/// beta and gamma (the latter before any scale).
pub fn grad_sums(
    x: &[f32],
    g: &[f32],
    c: usize,
    mean: &[f32],
    inv_std: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    // Interleave x and g per row through an index so one pass gives both sums.
    let rows = x.len() / c.max(1);
    let n = pieces(rows, c);
    let per = rows.div_ceil(n.max(1)).max(1);
    let partial = |r0: usize| {
        let r1 = (r0 + per).min(rows);
        let (mut sg, mut sgx) = (vec![0.0f64; c], vec![0.0f64; c]);
        let (mut bg, mut bgx) = (vec![0.0f32; c], vec![0.0f32; c]);
        for (k, r) in (r0..r1).enumerate() {
            let (xr, gr) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
            for i in 0..c {
                bg[i] += gr[i];
                bgx[i] += gr[i] * (xr[i] - mean[i]) * inv_std[i];
            }
            if k % 256 == 255 || r + 1 == r1 {
                for i in 0..c {
                    sg[i] += bg[i] as f64;
                    sgx[i] += bgx[i] as f64;
                }
                bg.iter_mut().for_each(|v| *v = 0.0);
                bgx.iter_mut().for_each(|v| *v = 0.0);
            }
        }
        (sg, sgx)
    };
    let starts: Vec<usize> = (0..rows).step_by(per).collect();
    let (sg, sgx) = if starts.len() > 1 {
        crate::threads::install(|| {
            starts.into_par_iter().map(partial).reduce(
                || (vec![0.0; c], vec![0.0; c]),
                |(mut a, mut b), (x, y)| {
                    a.iter_mut().zip(&x).for_each(|(a, x)| *a += x);
                    b.iter_mut().zip(&y).for_each(|(b, y)| *b += y);
                    (a, b)
                },
            )
        })
    } else {
        partial(0)
    };
    (
        sg.iter().map(|&v| v as f32).collect(),
        sgx.iter().map(|&v| v as f32).collect(),
    )
}

/// Input gradient of training-mode batch normalization:
/// dx = gamma * inv_std / n * (n * g - sum_g - xhat * sum_gxhat).
#[allow(clippy::too_many_arguments)]
pub fn train_input_grad(
    x: &[f32],
    g: &[f32],
    c: usize,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    sum_g: &[f32],
    sum_gxhat: &[f32],
) -> Vec<f32> {
    let rows = (x.len() / c.max(1)).max(1) as f32;
    let k: Vec<f32> = (0..c).map(|i| gamma[i] * inv_std[i] / rows).collect();
    let mut dx = pool::scratch(x.len());
    let run = |((xs, gs), ds): ((&[f32], &[f32]), &mut [f32])| {
        for ((xr, gr), dr) in xs.chunks(c).zip(gs.chunks(c)).zip(ds.chunks_mut(c)) {
            for i in 0..c {
                let xhat = (xr[i] - mean[i]) * inv_std[i];
                dr[i] = k[i] * (rows * gr[i] - sum_g[i] - xhat * sum_gxhat[i]);
            }
        }
    };
    if pieces(x.len() / c.max(1), c) > 1 {
        let piece = ROWS_PER_PIECE * c;
        crate::threads::install(|| {
            x.par_chunks(piece)
                .zip(g.par_chunks(piece))
                .zip(dx.par_chunks_mut(piece))
                .for_each(run)
        });
    } else {
        run(((x, g), &mut dx));
    }
    dx
}
