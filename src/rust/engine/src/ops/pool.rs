//! Max and average pooling over NHWC tensors (channels_last), with Keras/TF's "valid" and
//! "same" window placement. 1-D pooling is 2-D pooling of a height-1 image; global
//! pooling is one window the size of the image.

use std::ops::Range;

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{invalid_arg, Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Windows lie wholly inside the input.
    Valid,
    /// `ceil(input / stride)` windows, the input padded evenly (the extra cell after);
    /// padded cells take no part in a window's max or mean.
    Same,
}

impl Padding {
    /// Keras accepts either case.
    pub fn from_name(name: &str) -> Result<Padding> {
        match name.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            _ => Err(invalid_arg(
                "padding",
                format!("must be 'valid' or 'same', not '{name}'"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// Output length and padding before the input along one axis, as TF computes them;
/// `None` when a "valid" window does not fit in the input.
pub fn axis_windows(
    input: usize,
    pool: usize,
    stride: usize,
    padding: Padding,
) -> Option<(usize, usize)> {
    match padding {
        _ if input == 0 || pool == 0 || stride == 0 => None,
        Padding::Valid => (input >= pool).then(|| ((input - pool) / stride + 1, 0)),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + pool).saturating_sub(input);
            Some((out, total / 2))
        }
    }
}

/// A 2-D pooling's windows as its layer states them, before an input fixes the
/// geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    pub pool: (usize, usize),
    pub strides: (usize, usize),
    pub padding: Padding,
}

/// Where the windows of a 2-D pooling sit on an NHWC input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub ph: usize,
    pub pw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Pool2d {
    /// The geometry for an input of `shape` (N, H, W, C), or `None` when the pool does
    /// not fit (a "valid" window larger than the input).
    pub fn new(
        shape: &[usize],
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Option<Pool2d> {
        let &[n, h, w, c] = shape else { return None };
        if c == 0 {
            return None;
        }
        let (oh, pad_top) = axis_windows(h, pool.0, strides.0, padding)?;
        let (ow, pad_left) = axis_windows(w, pool.1, strides.1, padding)?;
        Some(Pool2d {
            n,
            h,
            w,
            c,
            ph: pool.0,
            pw: pool.1,
            sh: strides.0,
            sw: strides.1,
            pad_top,
            pad_left,
            oh,
            ow,
        })
    }

    /// One window covering the whole image: global pooling.
    pub fn global(shape: &[usize]) -> Option<Pool2d> {
        let &[_, h, w, _] = shape else { return None };
        Pool2d::new(shape, (h, w), (h, w), Padding::Valid)
    }

    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.n, self.oh, self.ow, self.c]
    }

    /// Input rows under window row `i`, padding left out.
    pub fn rows(&self, i: usize) -> Range<usize> {
        let start = (i * self.sh) as isize - self.pad_top as isize;
        clip(start, self.ph, self.h)
    }

    /// Input columns under window column `j`, padding left out.
    pub fn cols(&self, j: usize) -> Range<usize> {
        let start = (j * self.sw) as isize - self.pad_left as isize;
        clip(start, self.pw, self.w)
    }
}

fn clip(start: isize, len: usize, limit: usize) -> Range<usize> {
    let lo = start.max(0) as usize;
    let hi = ((start + len as isize).max(0) as usize).min(limit);
    lo..hi
}

fn geometry(
    op: &'static str,
    x: &Tensor,
    pool: (usize, usize),
    strides: (usize, usize),
    padding: Padding,
) -> Result<Pool2d> {
    Pool2d::new(x.shape(), pool, strides, padding).ok_or_else(|| Error::ShapeMismatch {
        op,
        lhs: x.shape().to_vec(),
        rhs: vec![pool.0, pool.1],
    })
}

struct MaxPoolBackward(Pool2d);

impl Backward for MaxPoolBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::max_pool2d_backward(
            inputs[0], out, g, &self.0,
        ))])
    }
}

/// Max over each window; the gradient goes to the first max of each window.
pub fn max_pool2d(
    tape: &mut Tape,
    x: Var,
    pool: (usize, usize),
    strides: (usize, usize),
    padding: Padding,
) -> Result<Var> {
    let geom = geometry("max_pool2d", tape.value(x), pool, strides, padding)?;
    pool_max(tape, x, geom)
}

fn pool_max(tape: &mut Tape, x: Var, geom: Pool2d) -> Result<Var> {
    let y = device::max_pool2d(tape.value(x), &geom);
    Ok(tape.push(y, &[x], Box::new(MaxPoolBackward(geom))))
}

struct AvgPoolBackward(Pool2d);

impl Backward for AvgPoolBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::avg_pool2d_backward(g, &self.0))])
    }
}

/// Mean over each window's input cells (padding not counted).
pub fn avg_pool2d(
    tape: &mut Tape,
    x: Var,
    pool: (usize, usize),
    strides: (usize, usize),
    padding: Padding,
) -> Result<Var> {
    let geom = geometry("avg_pool2d", tape.value(x), pool, strides, padding)?;
    pool_avg(tape, x, geom)
}

fn pool_avg(tape: &mut Tape, x: Var, geom: Pool2d) -> Result<Var> {
    let y = device::avg_pool2d(tape.value(x), &geom);
    Ok(tape.push(y, &[x], Box::new(AvgPoolBackward(geom))))
}

fn global_geometry(op: &'static str, x: &Tensor) -> Result<Pool2d> {
    Pool2d::global(x.shape()).ok_or_else(|| Error::ShapeMismatch {
        op,
        lhs: x.shape().to_vec(),
        rhs: vec![],
    })
}

/// Max over height and width: (N, H, W, C) -> (N, 1, 1, C).
pub fn global_max_pool2d(tape: &mut Tape, x: Var) -> Result<Var> {
    let geom = global_geometry("global_max_pool2d", tape.value(x))?;
    pool_max(tape, x, geom)
}

/// Mean over height and width: (N, H, W, C) -> (N, 1, 1, C).
pub fn global_avg_pool2d(tape: &mut Tape, x: Var) -> Result<Var> {
    let geom = global_geometry("global_avg_pool2d", tape.value(x))?;
    pool_avg(tape, x, geom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check;

    fn run(x: Tensor, f: impl Fn(&mut Tape, Var) -> Var, grad: bool) -> Tensor {
        let mut t = Tape::new();
        let v = t.leaf(x, grad);
        let y = f(&mut t, v);
        t.value(y).clone()
    }

    /// (1, 3, 4, 1) holding 1..12 row by row.
    fn ramp() -> Tensor {
        Tensor::from_vec(vec![1, 3, 4, 1], (1..=12).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn same_padding_follows_tf() {
        // out = ceil(in / stride); total = (out - 1) * stride + pool - in, half before.
        assert_eq!(axis_windows(5, 2, 2, Padding::Same), Some((3, 0)));
        assert_eq!(axis_windows(4, 3, 1, Padding::Same), Some((4, 1)));
        assert_eq!(axis_windows(1, 3, 2, Padding::Same), Some((1, 1)));
        assert_eq!(axis_windows(26, 2, 2, Padding::Valid), Some((13, 0)));
        assert_eq!(axis_windows(11, 2, 2, Padding::Valid), Some((5, 0)));
        assert_eq!(axis_windows(2, 3, 1, Padding::Valid), None);
        assert_eq!(
            Padding::from_name("SAME").unwrap().name(),
            Padding::Same.name()
        );
        assert!(Padding::from_name("full").is_err());
    }

    #[test]
    fn max_pool_values_match_keras_examples() {
        // Keras's MaxPooling2D docs: 3x4 ramp, 2x2 windows, strides 2 -> [[6, 8]].
        for grad in [false, true] {
            let y = run(
                ramp(),
                |t, v| max_pool2d(t, v, (2, 2), (2, 2), Padding::Valid).unwrap(),
                grad,
            );
            assert_eq!(y.shape(), &[1, 1, 2, 1]);
            assert_eq!(y.to_vec(), vec![6., 8.]);
        }
        // 3x3 ramp, 2x2 windows, strides 1, "same": the last row and column see padding.
        let x = Tensor::from_vec(vec![1, 3, 3, 1], (1..=9).map(|v| v as f32).collect()).unwrap();
        let y = run(
            x,
            |t, v| max_pool2d(t, v, (2, 2), (1, 1), Padding::Same).unwrap(),
            true,
        );
        assert_eq!(y.shape(), &[1, 3, 3, 1]);
        assert_eq!(y.to_vec(), vec![5., 6., 6., 8., 9., 9., 8., 9., 9.]);
    }

    #[test]
    fn avg_pool_same_divides_by_the_real_cells() {
        let x = Tensor::from_vec(vec![1, 3, 3, 1], (1..=9).map(|v| v as f32).collect()).unwrap();
        let y = run(
            x,
            |t, v| avg_pool2d(t, v, (2, 2), (1, 1), Padding::Same).unwrap(),
            false,
        );
        // Keras: [[3, 4, 4.5], [6, 7, 7.5], [7.5, 8.5, 9]].
        assert_eq!(y.to_vec(), vec![3., 4., 4.5, 6., 7., 7.5, 7.5, 8.5, 9.]);
        let y = run(
            ramp(),
            |t, v| avg_pool2d(t, v, (2, 2), (2, 2), Padding::Valid).unwrap(),
            false,
        );
        assert_eq!(y.to_vec(), vec![3.5, 5.5]);
    }

    #[test]
    fn channels_pool_independently() {
        // Two channels: the second is the negated first.
        let data: Vec<f32> = (1..=12).flat_map(|v| [v as f32, -(v as f32)]).collect();
        let x = Tensor::from_vec(vec![1, 3, 4, 2], data).unwrap();
        let y = run(
            x.clone(),
            |t, v| max_pool2d(t, v, (2, 2), (2, 2), Padding::Valid).unwrap(),
            true,
        );
        assert_eq!(y.to_vec(), vec![6., -1., 8., -3.]);
        let y = run(x, |t, v| global_avg_pool2d(t, v).unwrap(), false);
        assert_eq!(y.shape(), &[1, 1, 1, 2]);
        assert_eq!(y.to_vec(), vec![6.5, -6.5]);
    }

    #[test]
    fn max_pool_gradient_goes_to_the_first_max() {
        // One window of four equal values: the first gets the whole gradient.
        let mut t = Tape::new();
        let x = t.leaf(
            Tensor::from_vec(vec![1, 2, 2, 1], vec![3.; 4]).unwrap(),
            true,
        );
        let y = max_pool2d(&mut t, x, (2, 2), (2, 2), Padding::Valid).unwrap();
        let s = crate::ops::math::sum(&mut t, y);
        let g = t.backward(s).unwrap();
        assert_eq!(g.get(x).unwrap().to_vec(), vec![1., 0., 0., 0.]);
    }

    fn distinct_values(shape: &[usize], seed: u64) -> Tensor {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let n: usize = shape.iter().product();
        let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect();
        v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Values 0.1 apart in random order: each window's max stays the max under the
        // finite-difference step, so the max is differentiable there.
        let x = distinct_values(&[2, 5, 6, 3], 21);
        let cases = [
            ((2, 2), (2, 2), Padding::Valid),
            ((3, 2), (1, 2), Padding::Same),
            ((2, 3), (2, 1), Padding::Valid),
            ((3, 3), (2, 2), Padding::Same),
        ];
        for (pool, strides, padding) in cases {
            check(
                vec![x.clone()],
                &[true],
                |t, v| max_pool2d(t, v[0], pool, strides, padding).unwrap(),
                "max_pool2d",
            );
            check(
                vec![x.clone()],
                &[true],
                |t, v| avg_pool2d(t, v[0], pool, strides, padding).unwrap(),
                "avg_pool2d",
            );
        }
        check(
            vec![x.clone()],
            &[true],
            |t, v| global_max_pool2d(t, v[0]).unwrap(),
            "global_max_pool2d",
        );
        check(
            vec![x],
            &[true],
            |t, v| global_avg_pool2d(t, v[0]).unwrap(),
            "global_avg_pool2d",
        );
    }

    #[test]
    fn pools_that_do_not_fit_are_errors() {
        let mut t = Tape::new();
        let x = t.leaf(ramp(), false);
        let e = max_pool2d(&mut t, x, (4, 4), (1, 1), Padding::Valid).unwrap_err();
        assert_eq!(
            e.to_string(),
            "max_pool2d: incompatible shapes (1, 3, 4, 1) and (4, 4)"
        );
        let y = max_pool2d(&mut t, x, (4, 4), (1, 1), Padding::Same).unwrap();
        assert_eq!(
            t.value(y).to_vec(),
            vec![11., 12., 12., 12., 11., 12., 12., 12., 11., 12., 12., 12.]
        );
    }
}
