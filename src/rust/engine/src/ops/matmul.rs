//! Matrix product of 2-D tensors.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct MatmulBackward;

impl Backward for MatmulBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (inputs[0], inputs[1]);
        // dA = G Bᵀ, dB = Aᵀ G; skipped when nobody needs them (e.g. the input batch).
        let da = needs[0].then(|| device::matmul(g, false, b, true));
        let db = needs[1].then(|| device::matmul(a, true, g, false));
        Ok(vec![da, db])
    }
}

/// a (m x k) times b (k x n).
pub fn matmul(tape: &mut Tape, a: Var, b: Var) -> Result<Var> {
    let (av, bv) = (tape.value(a), tape.value(b));
    if av.shape().len() != 2 || bv.shape().len() != 2 || av.shape()[1] != bv.shape()[0] {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: av.shape().to_vec(),
            rhs: bv.shape().to_vec(),
        });
    }
    let y = device::matmul(av, false, bv, false);
    Ok(tape.push(y, &[a, b], Box::new(MatmulBackward)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn forward_small_product() {
        let mut t = Tape::new();
        let a = t.leaf(
            Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]).unwrap(),
            false,
        );
        let b = t.leaf(
            Tensor::from_vec(vec![3, 2], vec![7., 8., 9., 10., 11., 12.]).unwrap(),
            false,
        );
        let c = matmul(&mut t, a, b).unwrap();
        assert_eq!(t.value(c).shape(), &[2, 2]);
        assert_eq!(t.value(c).to_vec(), vec![58., 64., 139., 154.]);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut t = Tape::new();
        let a = t.leaf(Tensor::zeros(&[2, 3]), false);
        let b = t.leaf(Tensor::zeros(&[2, 2]), false);
        let e = matmul(&mut t, a, b).unwrap_err().to_string();
        assert_eq!(e, "matmul: incompatible shapes (2, 3) and (2, 2)");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let inputs = vec![
            random_tensor(&[4, 5], 1, 1.0),
            random_tensor(&[5, 3], 2, 1.0),
        ];
        check(
            inputs,
            &[true, true],
            |t, v| matmul(t, v[0], v[1]).unwrap(),
            "matmul",
        );
    }

    #[test]
    fn no_gradient_for_inputs_that_do_not_need_one() {
        let mut t = Tape::new();
        let a = t.leaf(random_tensor(&[3, 4], 3, 1.0), false);
        let b = t.leaf(random_tensor(&[4, 2], 4, 1.0), true);
        let c = matmul(&mut t, a, b).unwrap();
        let s = crate::ops::math::sum(&mut t, c);
        let g = t.backward(s).unwrap();
        assert!(g.get(a).is_none());
        assert_eq!(g.get(b).unwrap().shape(), &[4, 2]);
    }
}
