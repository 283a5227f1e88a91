//! Adding a bias vector along the last axis.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::ops::activation::Activation;
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

/// A bias is a vector as long as the last axis of x.
fn check_shapes(x: &Tensor, b: &Tensor) -> Result<()> {
    if b.shape().len() != 1 || x.shape().last() != Some(&b.shape()[0]) {
        return Err(Error::ShapeMismatch {
            op: "bias_add",
            lhs: x.shape().to_vec(),
            rhs: b.shape().to_vec(),
        });
    }
    Ok(())
}

/// x (..., c) + b (c), b broadcast over every leading index.
pub fn bias_add(tape: &mut Tape, x: Var, b: Var) -> Result<Var> {
    let (xv, bv) = (tape.value(x), tape.value(b));
    check_shapes(xv, bv)?;
    let y = device::add_row_bias(xv, bv);
    Ok(tape.push(y, &[x, b], Box::new(BiasAddBackward)))
}

struct BiasActivationBackward(Activation);

impl Backward for BiasActivationBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (dx, db) = device::bias_activation_backward(out, g, self.0);
        Ok(vec![needs[0].then_some(dx), needs[1].then_some(db)])
    }
}

/// act(x + b) as one op: one pass forward, one backward, no pre-activation buffer.
/// Only for activations whose derivative follows from their output
/// (`Activation::grad_from_output`); others go through `bias_add` then `activation`.
pub fn bias_add_activation(tape: &mut Tape, x: Var, b: Var, act: Activation) -> Result<Var> {
    if !act.grad_from_output() {
        let y = bias_add(tape, x, b)?;
        return Ok(crate::ops::activation::activation(tape, y, act));
    }
    let (xv, bv) = (tape.value(x), tape.value(b));
    check_shapes(xv, bv)?;
    let y = device::bias_activation(xv, bv, act);
    Ok(tape.push(y, &[x, b], Box::new(BiasActivationBackward(act))))
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
    fn fused_bias_activation_matches_the_two_ops() {
        for name in Activation::NAMES {
            let act = Activation::from_name(name).unwrap();
            if act.is_rowwise() {
                continue;
            }
            let (x, b) = (
                random_tensor(&[4, 3], 13, 2.0),
                random_tensor(&[3], 14, 1.0),
            );
            let mut t = Tape::new();
            let (xv, bv) = (t.leaf(x.clone(), true), t.leaf(b.clone(), true));
            let fused = bias_add_activation(&mut t, xv, bv, act).unwrap();
            let z = bias_add(&mut t, xv, bv).unwrap();
            let plain = crate::ops::activation::activation(&mut t, z, act);
            for (a, c) in t.value(fused).host().iter().zip(t.value(plain).host()) {
                assert!((a - c).abs() < 1e-6, "{name}: {a} vs {c}");
            }
            // Away from kinks, the fused backward passes the gradient check.
            let mut xk = x.clone();
            for v in xk.host_mut() {
                if v.abs() < 0.3 {
                    *v += 0.6;
                }
            }
            check(
                vec![xk, Tensor::zeros(&[3])],
                &[true, true],
                |t, v| bias_add_activation(t, v[0], v[1], act).unwrap(),
                name,
            );
        }
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
