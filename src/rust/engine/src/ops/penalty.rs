//! A weight regularizer's penalty as a tape op: `l1 * sum(|w|) + l2 * sum(w^2)`, a scalar.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::tensor::Tensor;

struct PenaltyBackward {
    l1: f32,
    l2: f32,
}

impl Backward for PenaltyBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> crate::error::Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::penalty_grad(
            inputs[0],
            g.item(),
            self.l1,
            self.l2,
        ))])
    }
}

pub fn penalty(tape: &mut Tape, w: Var, l1: f32, l2: f32) -> Var {
    let p = device::penalty(tape.value(w), l1, l2);
    tape.push(
        Tensor::scalar(p),
        &[w],
        Box::new(PenaltyBackward { l1, l2 }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_unary;

    #[test]
    fn forward_values() {
        let mut t = Tape::new();
        let w = t.leaf(
            Tensor::from_vec(vec![3], vec![1.0, -2.0, 0.0]).unwrap(),
            true,
        );
        let p = penalty(&mut t, w, 0.1, 0.01);
        // 0.1 * (1 + 2) + 0.01 * (1 + 4)
        assert!((t.value(p).item() - 0.35).abs() < 1e-6);
        let g = t.backward(p).unwrap();
        let want = [0.1 + 0.02, -0.1 - 0.04, 0.0];
        for (a, b) in g.get(w).unwrap().to_vec().iter().zip(want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Values stay away from 0, where |w| has no derivative.
        check_unary(&[3, 4], |t, v| penalty(t, v, 0.3, 0.7), 0.05, "penalty");
    }
}
