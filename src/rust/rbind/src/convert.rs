//! R arrays <-> engine data. R is column-major, the engine row-major; the index meaning
//! is kept (`x[i, r, c]` in R is sample i, row r, column c in the engine), converted
//! once per call.

use extendr_api::prelude::*;
use rayon::prelude::*;

use crate::error::{RkError, RkResult};

/// A numeric R array as row-major f32 values and its dims (sample axis first).
/// NA becomes NaN so that the engine's check names it.
pub fn array_from_r(x: &Robj, arg: &str) -> RkResult<(Vec<f32>, Vec<usize>)> {
    let len = x.len();
    let dims: Vec<usize> = match x.dim() {
        Some(d) => d.iter().map(|v| v.0 as usize).collect(),
        None => vec![len],
    };
    let out = if let Some(s) = x.as_real_slice() {
        reverse_axes(s, &dims, |v| v as f32)
    } else if let Some(s) = x.as_integer_slice() {
        if x.inherits("factor") {
            return Err(bad_type(arg, "a factor"));
        }
        reverse_axes(
            s,
            &dims,
            |v| if v == i32::MIN { f32::NAN } else { v as f32 },
        )
    } else if x.is_logical() {
        return Err(bad_type(arg, "a logical vector"));
    } else {
        return Err(bad_type(
            arg,
            &format!("of R type '{:?}'", x.rtype()).to_lowercase(),
        ));
    };
    Ok((out, dims))
}

fn bad_type(arg: &str, what: &str) -> RkError {
    RkError::new(
        "input",
        format!("`{arg}` must be a numeric array or matrix, not {what}"),
    )
}

/// Column-major data of shape `dims` in row-major order (the axes reversed).
fn reverse_axes<T: Copy + Sync>(
    src: &[T],
    dims: &[usize],
    f: impl Fn(T) -> f32 + Sync,
) -> Vec<f32> {
    let n = src.len();
    let mut out = vec![0.0f32; n];
    match dims {
        [] | [_] => out.iter_mut().zip(src).for_each(|(o, &v)| *o = f(v)),
        [rows, cols] => transpose(src, *rows, *cols, &mut out, f),
        [samples, rest @ ..] if *samples >= SAMPLE_BLOCK => {
            samples_to_rows(src, *samples, rest, &mut out, f)
        }
        _ => walk_reversed(src, dims, &mut out, f),
    }
    out
}

/// out (row-major) from src (column-major) of shape (samples, rest...) with 3 or more
/// axes: one output row per sample, its values in the row-major order of `rest`. The
/// column-major offset of each position of a row is found once; blocks of samples
/// then run in parallel, reading the neighbouring samples that share a cache line
/// together (one sample at a time read one value per line: 4-D image batches took as
/// long to convert as the workshop CNN took to predict them).
fn samples_to_rows<T: Copy + Sync>(
    src: &[T],
    samples: usize,
    rest: &[usize],
    out: &mut [f32],
    f: impl Fn(T) -> f32 + Sync,
) {
    const B: usize = SAMPLE_BLOCK;
    let row_len: usize = rest.iter().product();
    if samples == 0 || row_len == 0 {
        return;
    }
    // offs[r]: where position r of a row (row-major over `rest`) is in src, sample 0.
    let mut strides = vec![samples; rest.len()];
    for a in 1..rest.len() {
        strides[a] = strides[a - 1] * rest[a - 1];
    }
    let mut offs = Vec::with_capacity(row_len);
    let mut idx = vec![0usize; rest.len()];
    let mut off = 0usize;
    for _ in 0..row_len {
        offs.push(off);
        for a in (0..rest.len()).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < rest[a] {
                break;
            }
            off -= strides[a] * rest[a];
            idx[a] = 0;
        }
    }
    out.par_chunks_mut(B * row_len)
        .enumerate()
        .for_each(|(bi, block)| {
            let s0 = bi * B;
            let s1 = (s0 + B).min(samples);
            for (r, &o) in offs.iter().enumerate() {
                for (k, v) in src[o + s0..o + s1].iter().enumerate() {
                    block[k * row_len + r] = f(*v);
                }
            }
        });
}

/// Samples per block of `samples_to_rows`; fewer samples (the reversed dims of an
/// engine output with few channels, say) take `walk_reversed`, which needs no table of
/// offsets.
const SAMPLE_BLOCK: usize = 32;

/// `reverse_axes` element by element: the row-major output in order, the column-major
/// input offset stepped along.
fn walk_reversed<T: Copy>(src: &[T], dims: &[usize], out: &mut [f32], f: impl Fn(T) -> f32) {
    if out.is_empty() {
        return;
    }
    let r = dims.len();
    let mut strides = vec![1usize; r];
    for a in 1..r {
        strides[a] = strides[a - 1] * dims[a - 1];
    }
    let mut idx = vec![0usize; r];
    let mut off = 0usize;
    for o in out.iter_mut() {
        *o = f(src[off]);
        for a in (0..r).rev() {
            idx[a] += 1;
            off += strides[a];
            if idx[a] < dims[a] {
                break;
            }
            off -= strides[a] * dims[a];
            idx[a] = 0;
        }
    }
}

/// out (rows x cols, row-major) from src (rows x cols, column-major), in cache blocks.
fn transpose<T: Copy + Sync>(
    src: &[T],
    rows: usize,
    cols: usize,
    out: &mut [f32],
    f: impl Fn(T) -> f32 + Sync,
) {
    const B: usize = 32;
    if rows == 0 || cols == 0 {
        return;
    }
    // Blocks of B output rows in parallel: plain reads of R's memory, no R API calls.
    out.par_chunks_mut(B * cols)
        .enumerate()
        .for_each(|(bi, block)| {
            let i0 = bi * B;
            let i1 = (i0 + B).min(rows);
            for j0 in (0..cols).step_by(B) {
                for j in j0..(j0 + B).min(cols) {
                    let col = &src[j * rows..];
                    for i in i0..i1 {
                        block[(i - i0) * cols + j] = f(col[i]);
                    }
                }
            }
        });
}

/// Row-major engine values of shape `dims` as an R double array (a matrix for 2 dims).
pub fn array_to_r(values: &[f32], dims: &[usize]) -> Robj {
    let n = values.len();
    let mut out = vec![0.0f64; n];
    match dims {
        [] | [_] => out.iter_mut().zip(values).for_each(|(o, &v)| *o = v as f64),
        _ => {
            // Reading row-major data as column-major over the reversed dims is a plain
            // copy; reversing the axes of that gives R's layout back.
            let rev: Vec<usize> = dims.iter().rev().copied().collect();
            let tmp = reverse_axes(values, &rev, |v| v);
            out.iter_mut().zip(tmp).for_each(|(o, v)| *o = v as f64);
        }
    }
    let mut robj: Robj = out.into();
    if dims.len() > 1 {
        let d: Vec<i32> = dims.iter().map(|&v| v as i32).collect();
        robj.set_attrib("dim", d)
            .expect("dim attribute on a fresh vector");
    }
    robj
}

#[cfg(test)]
mod tests {
    use super::reverse_axes;

    /// The row-major value at each index, from column-major `src`, index by index.
    fn naive(src: &[f64], dims: &[usize]) -> Vec<f32> {
        let n: usize = dims.iter().product();
        (0..n)
            .map(|mut rm| {
                // Row-major index -> per-axis index -> column-major offset.
                let mut idx = vec![0; dims.len()];
                for a in (0..dims.len()).rev() {
                    idx[a] = rm % dims[a];
                    rm /= dims[a];
                }
                let (mut off, mut stride) = (0, 1);
                for a in 0..dims.len() {
                    off += idx[a] * stride;
                    stride *= dims[a];
                }
                src[off] as f32
            })
            .collect()
    }

    #[test]
    fn reversing_axes_matches_the_definition() {
        for dims in [
            vec![7],
            vec![5, 3],
            vec![70, 4, 3],
            vec![33, 2, 3, 1],
            vec![65, 5, 4, 3],
            vec![1, 2, 3, 4, 2],
            vec![3, 0, 2],
            vec![0, 3],
            vec![4, 0],
            vec![40, 0, 2],
        ] {
            let n: usize = dims.iter().product();
            let src: Vec<f64> = (0..n).map(|v| v as f64).collect();
            assert_eq!(
                reverse_axes(&src, &dims, |v| v as f32),
                naive(&src, &dims),
                "{dims:?}"
            );
        }
    }
}
