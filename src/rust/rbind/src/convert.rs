//! R arrays <-> engine data. R is column-major, the engine row-major; the index meaning
//! is kept (`x[i, r, c]` in R is sample i, row r, column c in the engine), converted
//! once per call.

use extendr_api::prelude::*;

use crate::error::{RkError, RkResult};

/// A numeric R array as row-major f32 values and its dims (sample axis first).
/// NA becomes NaN so that the engine's check names it.
pub fn array_from_r(x: &Robj, arg: &str) -> RkResult<(Vec<f32>, Vec<usize>)> {
    let dims = dims_of(x);
    let out = match numeric_values(x, arg)? {
        Values::Real(s) => reverse_axes_real(s, &dims),
        Values::Int(s) => reverse_axes(s, &dims, int_to_f32),
    };
    Ok((out, dims))
}

/// The dims of `x`, or its length for a plain vector.
fn dims_of(x: &Robj) -> Vec<usize> {
    match x.dim() {
        Some(d) => d.iter().map(|v| v.0 as usize).collect(),
        None => vec![x.len()],
    }
}

/// The values of a numeric R vector or array in R's order.
#[derive(Clone, Copy)]
enum Values<'a> {
    Real(&'a [f64]),
    Int(&'a [i32]),
}

fn numeric_values<'a>(x: &'a Robj, arg: &str) -> RkResult<Values<'a>> {
    if let Some(s) = x.as_real_slice() {
        Ok(Values::Real(s))
    } else if let Some(s) = x.as_integer_slice() {
        if x.inherits("factor") {
            return Err(bad_type(arg, "a factor"));
        }
        Ok(Values::Int(s))
    } else if x.is_logical() {
        Err(bad_type(arg, "a logical vector"))
    } else {
        Err(bad_type(
            arg,
            &format!("of R type '{:?}'", x.rtype()).to_lowercase(),
        ))
    }
}

/// An R integer as f32, NA as NaN.
fn int_to_f32(v: i32) -> f32 {
    if v == i32::MIN {
        f32::NAN
    } else {
        v as f32
    }
}

/// A numeric R array that predict() reads batch by batch (`engine::train::Rows`): each
/// batch's samples are converted to row-major f32 in the worker that runs it (plain
/// reads of R's memory, which the caller keeps alive; no R API calls). Converting the
/// whole array first wrote and read back a copy of it.
pub struct RRows<'a> {
    values: Values<'a>,
    samples: usize,
    /// One sample's dims.
    shape: Vec<usize>,
    /// Where each position of a sample's row is for sample 0 (`row_offsets`).
    offs: Vec<usize>,
}

/// `x` (the argument `arg`) as an `RRows`.
pub fn rows_from_r<'a>(x: &'a Robj, arg: &str) -> RkResult<RRows<'a>> {
    let values = numeric_values(x, arg)?;
    let dims = dims_of(x);
    let (samples, shape) = (dims[0], dims[1..].to_vec());
    let offs = row_offsets(samples, &shape);
    Ok(RRows {
        values,
        samples,
        shape,
        offs,
    })
}

impl engine::train::Rows for RRows<'_> {
    fn rows(&self) -> usize {
        // Samples of no values count as none, as in `engine::train::Array`.
        if self.offs.is_empty() {
            0
        } else {
            self.samples
        }
    }

    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    fn fill(&self, from: usize, to: usize, out: &mut [f32]) {
        let row_len = self.offs.len();
        assert!(to <= self.samples && out.len() == (to - from) * row_len);
        match self.values {
            Values::Real(src) => {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    unsafe { avx512::rows_into(src, &self.offs, (from, to), out) };
                    return;
                }
                rows_into(src, &self.offs, (from, to), out, |v| v as f32)
            }
            Values::Int(src) => rows_into(src, &self.offs, (from, to), out, int_to_f32),
        }
    }
}

/// Samples [s0, s1) of column-major `src` as row-major rows of `offs.len()` values into
/// `out`: each position's run of samples read in R's order.
fn rows_into<T: Copy>(
    src: &[T],
    offs: &[usize],
    (s0, s1): (usize, usize),
    out: &mut [f32],
    f: impl Fn(T) -> f32,
) {
    let row_len = offs.len();
    for (r, &o) in offs.iter().enumerate() {
        for (k, &v) in src[o + s0..o + s1].iter().enumerate() {
            out[k * row_len + r] = f(v);
        }
    }
}

fn bad_type(arg: &str, what: &str) -> RkError {
    RkError::new(
        "input",
        format!("`{arg}` must be a numeric array or matrix, not {what}"),
    )
}

/// `reverse_axes` for R doubles: batches of samples of 2 or more axes each (images)
/// through `avx512::samples_to_rows` (which writes every value) where the CPU has
/// AVX-512.
fn reverse_axes_real(src: &[f64], dims: &[usize]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if let [samples, rest @ ..] = dims {
        if rest.len() >= 2 && *samples >= 16 && std::arch::is_x86_feature_detected!("avx512f") {
            // A buffer from the engine's pool (`RArrays` gives it back): a fresh one
            // faults in its pages on every call (2 ms for 10000 images).
            let mut out = engine::device::pool::scratch(src.len());
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { avx512::samples_to_rows(src, *samples, rest, &mut out) };
            return out;
        }
    }
    reverse_axes(src, dims, |v| v as f32)
}

/// Column-major data of shape `dims` in row-major order (the axes reversed).
fn reverse_axes<T: Copy + Sync>(
    src: &[T],
    dims: &[usize],
    f: impl Fn(T) -> f32 + Sync,
) -> Vec<f32> {
    let n = src.len();
    // From the engine's pool, as the AVX-512 path's: every branch below writes each
    // value. (A fresh vector here, handed to the pool after each call, piled up one
    // converted copy per fit() or evaluate() of a matrix.)
    let mut out = engine::device::pool::scratch(n);
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
    let offs = row_offsets(samples, rest);
    engine::threads::for_each_chunk(out, B * row_len, |bi, block| {
        let s0 = bi * B;
        let s1 = (s0 + B).min(samples);
        for (r, &o) in offs.iter().enumerate() {
            for (k, v) in src[o + s0..o + s1].iter().enumerate() {
                block[k * row_len + r] = f(*v);
            }
        }
    });
}

/// The double-precision conversion of `samples_to_rows` in AVX-512 registers: 16
/// positions of 16 samples at a time, read as 16 runs of samples (R's order), converted
/// to single precision, transposed in registers and stored as 16 runs of positions (the
/// engine's). The scalar loop wrote one float per cache line visited and took 8 ms for
/// Fashion-MNIST's 10000 test images, as long as a tenth of the workshop CNN's predict.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Samples per parallel task: 16 positions of them read 2 KB from each of 16 runs
    /// (64 samples, 512 bytes, measured 25 % slower).
    const TASK: usize = 256;

    /// # Safety
    /// The CPU has AVX-512F.
    pub unsafe fn samples_to_rows(src: &[f64], samples: usize, rest: &[usize], out: &mut [f32]) {
        let row_len: usize = rest.iter().product();
        if samples == 0 || row_len == 0 {
            return;
        }
        assert!(src.len() >= samples * row_len && out.len() >= samples * row_len);
        let offs = super::row_offsets(samples, rest);
        engine::threads::for_each_chunk(out, TASK * row_len, |ti, rows| {
            let (s0, s1) = (ti * TASK, ((ti + 1) * TASK).min(samples));
            // SAFETY: the CPU has AVX-512F (this function's contract).
            unsafe { rows_into(src, &offs, (s0, s1), rows) };
        });
    }

    /// Samples [s0, s1) into `rows` (their rows, one after another), the positions of a
    /// row at `offs` (`row_offsets`) for sample 0.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    pub unsafe fn rows_into(
        src: &[f64],
        offs: &[usize],
        (s0, s1): (usize, usize),
        rows: &mut [f32],
    ) {
        let row_len = offs.len();
        let whole = row_len / 16 * 16;
        assert!(rows.len() >= (s1 - s0) * row_len);
        assert!(offs.iter().all(|&o| o + s1 <= src.len()));
        for r0 in (0..whole).step_by(16) {
            let o: &[usize; 16] = offs[r0..r0 + 16].try_into().expect("16 offsets");
            let mut s = s0;
            while s + 16 <= s1 {
                // SAFETY: the CPU has AVX-512F (the caller's contract); the 16 runs
                // read src[o[j] + s..o[j] + s + 16], inside `src` (asserted above for
                // every position up to s1), and the 16 rows written are whole samples
                // of `rows` (asserted by the slicing).
                unsafe {
                    let dst = &mut rows[(s - s0) * row_len..(s - s0 + 16) * row_len];
                    block(src, o, s, dst, r0, row_len)
                };
                s += 16;
            }
            for k in s..s1 {
                for (j, &oj) in o.iter().enumerate() {
                    rows[(k - s0) * row_len + r0 + j] = src[oj + k] as f32;
                }
            }
        }
        for (r, &o) in offs.iter().enumerate().skip(whole) {
            for k in s0..s1 {
                rows[(k - s0) * row_len + r] = src[o + k] as f32;
            }
        }
    }

    /// Positions r0..r0 + 16 (runs starting at `o`) of samples s..s + 16 into the 16
    /// rows of `dst`.
    #[target_feature(enable = "avx512f")]
    unsafe fn block(
        src: &[f64],
        o: &[usize; 16],
        s: usize,
        dst: &mut [f32],
        r0: usize,
        row_len: usize,
    ) {
        debug_assert!(o.iter().all(|&oj| oj + s + 16 <= src.len()));
        debug_assert!(15 * row_len + r0 + 16 <= dst.len());
        let mut r = [_mm512_setzero_ps(); 16];
        for (rj, &oj) in r.iter_mut().zip(o) {
            let p = src.as_ptr().add(oj + s);
            let lo = _mm512_cvtpd_ps(_mm512_loadu_pd(p));
            let hi = _mm512_cvtpd_ps(_mm512_loadu_pd(p.add(8)));
            let both = _mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                _mm256_castps_pd(hi),
            );
            *rj = _mm512_castpd_ps(both);
        }
        let t = transpose(r);
        for (k, v) in t.iter().enumerate() {
            _mm512_storeu_ps(dst.as_mut_ptr().add(k * row_len + r0), *v);
        }
    }

    /// The 16 x 16 transpose of `r` (row j: register j, column k: lane k).
    #[inline(always)]
    unsafe fn transpose(r: [__m512; 16]) -> [__m512; 16] {
        let pd = |v: __m512| _mm512_castps_pd(v);
        let ps = |v: __m512d| _mm512_castpd_ps(v);
        // Pairs of rows interleaved, then pairs of pairs: 4 x 4 blocks transposed within
        // each 128-bit lane ...
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for g in 0..4 {
            let b = 4 * g;
            u[b] = ps(_mm512_unpacklo_pd(pd(t[b]), pd(t[b + 2])));
            u[b + 1] = ps(_mm512_unpackhi_pd(pd(t[b]), pd(t[b + 2])));
            u[b + 2] = ps(_mm512_unpacklo_pd(pd(t[b + 1]), pd(t[b + 3])));
            u[b + 3] = ps(_mm512_unpackhi_pd(pd(t[b + 1]), pd(t[b + 3])));
        }
        // ... then the 128-bit lanes moved across registers, twice.
        for h in 0..2 {
            let b = 8 * h;
            for i in 0..4 {
                t[b + i] = _mm512_shuffle_f32x4::<0x88>(u[b + i], u[b + i + 4]);
                t[b + i + 4] = _mm512_shuffle_f32x4::<0xdd>(u[b + i], u[b + i + 4]);
            }
        }
        for i in 0..8 {
            u[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
            u[i + 8] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]);
        }
        u
    }
}

/// Where position r of a sample's row (row-major over `rest`) is in column-major data
/// of `samples` samples, for sample 0.
fn row_offsets(samples: usize, rest: &[usize]) -> Vec<usize> {
    let row_len: usize = rest.iter().product();
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
    offs
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
    engine::threads::for_each_chunk(out, B * cols, |bi, block| {
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
    use super::{reverse_axes, reverse_axes_real};

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
    fn doubles_take_the_same_values_through_the_avx512_path() {
        // Whole blocks of 16 positions and samples, and the rest of each (105 positions,
        // 100 samples), with NaN (R's NA) passed through.
        for dims in [
            vec![100, 5, 7, 3],
            vec![16, 4, 4],
            vec![37, 28, 28, 1],
            vec![20, 3, 2],
        ] {
            let n: usize = dims.iter().product();
            let mut src: Vec<f64> = (0..n).map(|v| v as f64 * 0.5 - 7.0).collect();
            src[n / 3] = f64::NAN;
            let got = reverse_axes_real(&src, &dims);
            let want = naive(&src, &dims);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    a == b || (a.is_nan() && b.is_nan()),
                    "{dims:?} at {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn batches_of_rows_take_the_same_values_as_the_whole_array() {
        use super::{row_offsets, RRows, Values};
        use engine::train::Rows;
        // Doubles (the AVX-512 path where the CPU has it: whole blocks of 16 samples and
        // the rest) and integers (NA as NaN), in batches that do not start on a block.
        for dims in [
            vec![100, 5, 7, 3],
            vec![37, 28, 28, 1],
            vec![50, 9],
            vec![40],
        ] {
            let n: usize = dims.iter().product();
            let mut real: Vec<f64> = (0..n).map(|v| v as f64 * 0.5 - 7.0).collect();
            real[n / 3] = f64::NAN;
            let int: Vec<i32> = (0..n)
                .map(|v| if v == n / 2 { i32::MIN } else { v as i32 - 9 })
                .collect();
            let (samples, shape) = (dims[0], dims[1..].to_vec());
            let row_len: usize = shape.iter().product();
            let as_real: Vec<f64> = int
                .iter()
                .map(|&v| if v == i32::MIN { f64::NAN } else { v as f64 })
                .collect();
            for (values, want) in [
                (Values::Real(&real), naive(&real, &dims)),
                (Values::Int(&int), naive(&as_real, &dims)),
            ] {
                let rows = RRows {
                    values,
                    samples,
                    shape: shape.clone(),
                    offs: row_offsets(samples, &shape),
                };
                assert_eq!((rows.rows(), rows.sample_shape()), (samples, &shape[..]));
                // Samples of no values count as none (as an engine `Array` does).
                let empty = RRows {
                    values,
                    samples,
                    shape: vec![0],
                    offs: row_offsets(samples, &[0]),
                };
                assert_eq!(empty.rows(), 0);
                for (from, to) in [
                    (0, samples),
                    (3, 3 + 17.min(samples - 3)),
                    (samples - 5, samples),
                ] {
                    let mut out = vec![0.0f32; (to - from) * row_len];
                    rows.fill(from, to, &mut out);
                    let expect = &want[from * row_len..to * row_len];
                    for (i, (a, b)) in out.iter().zip(expect).enumerate() {
                        assert!(
                            a == b || (a.is_nan() && b.is_nan()),
                            "{dims:?} [{from}, {to}) at {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
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
