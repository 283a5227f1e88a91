//! Adding a bias vector along the last axis.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct BiasAddBackward;

impl Backward for BiasAddBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let cols = inputs[1].numel();
        let dx = needs[0].then(|| g.clone());
        let db = needs[1].then(|| device::col_sum(g, cols));
        Ok(vec![dx, db])
    }
}

/// x (..., c) + b (c), b broadcast over every leading index.
pub fn bias_add(tape: &mut Tape, x: Var, b: Var) -> Result<Var> {
    let (xv, bv) = (tape.value(x), tape.value(b));
    if bv.shape().len() != 1 || xv.shape().last() != Some(&bv.shape()[0]) {
        return Err(Error::ShapeMismatch {
            op: "bias_add",
            lhs: xv.shape().to_vec(),
            rhs: bv.shape().to_vec(),
        });
    }
    let y = device::add_row_bias(xv, bv);
    Ok(tape.push(y, &[x, b], Box::new(BiasAddBackward)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn forward_adds_per_column() {
        let mut t = Tape::new();
        let x = t.leaf(
            Tensor::from_vec(vec![2, 2], vec![1., 2., 3., 4.]).unwrap(),
            false,
        );
        let b = t.leaf(Tensor::from_vec(vec![2], vec![10., 20.]).unwrap(), false);
        let y = bias_add(&mut t, x, b).unwrap();
        assert_eq!(t.value(y).to_vec(), vec![11., 22., 13., 24.]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let inputs = vec![random_tensor(&[4, 3], 5, 1.0), random_tensor(&[3], 6, 1.0)];
        check(
            inputs,
            &[true, true],
            |t, v| bias_add(t, v[0], v[1]).unwrap(),
            "bias_add",
        );
    }
}
