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
        _ => {
            // Walk the row-major output in order, stepping the column-major input offset.
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
    }
    out
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
