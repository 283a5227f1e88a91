//! Zero padding of the height and width of NHWC tensors (Keras's ZeroPadding2D).

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Zeros added around an (N, H, W, C) input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pad2d {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Pad2d {
    pub fn in_shape_array(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }

    pub fn out_shape_array(&self) -> [usize; 4] {
        [
            self.n,
            self.h + self.top + self.bottom,
            self.w + self.left + self.right,
            self.c,
        ]
    }

    pub fn in_shape(&self) -> Vec<usize> {
        self.in_shape_array().to_vec()
    }

    pub fn out_shape(&self) -> Vec<usize> {
        self.out_shape_array().to_vec()
    }
}

struct ZeroPadBackward(Pad2d);

impl Backward for ZeroPadBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::crop2d(g, &self.0))])
    }
}

/// Pads height by `rows = (top, bottom)` and width by `cols = (left, right)` zeros.
pub fn zero_pad2d(
    tape: &mut Tape,
    x: Var,
    rows: (usize, usize),
    cols: (usize, usize),
) -> Result<Var> {
    let xv = tape.value(x);
    let &[n, h, w, c] = xv.shape() else {
        return Err(Error::ShapeMismatch {
            op: "zero_pad2d",
            lhs: xv.shape().to_vec(),
            rhs: vec![rows.0, rows.1, cols.0, cols.1],
        });
    };
    let p = Pad2d {
        n,
        h,
        w,
        c,
        top: rows.0,
        bottom: rows.1,
        left: cols.0,
        right: cols.1,
    };
    let y = device::zero_pad2d(xv, &p);
    Ok(tape.push(y, &[x], Box::new(ZeroPadBackward(p))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn pads_with_zeros_around_each_image() {
        // Two 1x2 images of two channels; one row on top, one column left, two right.
        let x = Tensor::from_vec(vec![2, 1, 2, 2], (1..=8).map(|v| v as f32).collect()).unwrap();
        let mut t = Tape::new();
        let v = t.leaf(x, false);
        let y = zero_pad2d(&mut t, v, (1, 0), (1, 2)).unwrap();
        assert_eq!(t.value(y).shape(), &[2, 2, 5, 2]);
        #[rustfmt::skip]
        let expected = vec![
            0., 0., 0., 0., 0., 0., 0., 0., 0., 0.,
            0., 0., 1., 2., 3., 4., 0., 0., 0., 0.,
            0., 0., 0., 0., 0., 0., 0., 0., 0., 0.,
            0., 0., 5., 6., 7., 8., 0., 0., 0., 0.,
        ];
        assert_eq!(t.value(y).to_vec(), expected);
    }

    #[test]
    fn gradients_match_finite_differences() {
        check(
            vec![random_tensor(&[2, 3, 4, 3], 31, 1.0)],
            &[true],
            |t, v| zero_pad2d(t, v[0], (2, 1), (0, 3)).unwrap(),
            "zero_pad2d",
        );
    }

    #[test]
    fn only_4d_inputs() {
        let mut t = Tape::new();
        let v = t.leaf(Tensor::zeros(&[2, 3, 4]), false);
        let e = zero_pad2d(&mut t, v, (1, 1), (1, 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "zero_pad2d: incompatible shapes (2, 3, 4) and (1, 1, 1, 1)"
        );
    }
}
