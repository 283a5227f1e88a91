//! Elementwise arithmetic and reductions.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct SumBackward;

impl Backward for SumBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::fill_like(inputs[0], g.item()))])
    }
}

/// Sum of all elements, as a scalar.
pub fn sum(tape: &mut Tape, x: Var) -> Var {
    let s = device::sum(tape.value(x));
    tape.push(Tensor::scalar(s), &[x], Box::new(SumBackward))
}

struct MulBackward;

impl Backward for MulBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let da = needs[0].then(|| device::mul(g, inputs[1]));
        let db = needs[1].then(|| device::mul(g, inputs[0]));
        Ok(vec![da, db])
    }
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: a.shape().to_vec(),
            rhs: b.shape().to_vec(),
        });
    }
    Ok(())
}

/// Elementwise product of two tensors of one shape.
pub fn mul(tape: &mut Tape, a: Var, b: Var) -> Result<Var> {
    same_shape("mul", tape.value(a), tape.value(b))?;
    let y = device::mul(tape.value(a), tape.value(b));
    Ok(tape.push(y, &[a, b], Box::new(MulBackward)))
}

struct AddBackward;

impl Backward for AddBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(needs.iter().map(|&n| n.then(|| g.clone())).collect())
    }
}

/// Elementwise sum of two tensors of one shape.
pub fn add(tape: &mut Tape, a: Var, b: Var) -> Result<Var> {
    same_shape("add", tape.value(a), tape.value(b))?;
    let y = device::add(tape.value(a), tape.value(b));
    Ok(tape.push(y, &[a, b], Box::new(AddBackward)))
}

struct ReshapeBackward;

impl Backward for ReshapeBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.reshape(inputs[0].shape().to_vec())?)])
    }
}

/// The same values seen with another shape (no copy).
pub fn reshape(tape: &mut Tape, x: Var, shape: Vec<usize>) -> Result<Var> {
    let y = tape.value(x).reshape(shape)?;
    Ok(tape.push(y, &[x], Box::new(ReshapeBackward)))
}

struct AffineBackward {
    scale: f32,
}

impl Backward for AffineBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::scale(g, self.scale))])
    }
}

/// `x * scale + offset` (Keras's Rescaling).
pub fn affine(tape: &mut Tape, x: Var, scale: f32, offset: f32) -> Var {
    let y = device::affine(tape.value(x), scale, offset);
    tape.push(y, &[x], Box::new(AffineBackward { scale }))
}

struct WeightedSumBackward {
    weights: Vec<f32>,
}

impl Backward for WeightedSumBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let g = g.item();
        Ok(self
            .weights
            .iter()
            .zip(needs)
            .map(|(&w, &n)| n.then(|| Tensor::scalar(w * g)))
            .collect())
    }
}

/// `sum_i w_i * x_i` over scalars: the total loss of a model with several outputs
/// (`loss_weights`).
pub fn weighted_sum(tape: &mut Tape, terms: &[(f32, Var)]) -> Result<Var> {
    let mut total = 0.0;
    for &(w, v) in terms {
        let x = tape.value(v);
        if x.numel() != 1 {
            return Err(Error::ShapeMismatch {
                op: "weighted_sum",
                lhs: vec![1],
                rhs: x.shape().to_vec(),
            });
        }
        total += w * x.item();
    }
    let vars: Vec<Var> = terms.iter().map(|t| t.1).collect();
    let weights = terms.iter().map(|t| t.0).collect();
    Ok(tape.push(
        Tensor::scalar(total),
        &vars,
        Box::new(WeightedSumBackward { weights }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn forward_values() {
        let mut t = Tape::new();
        let a = t.leaf(Tensor::from_vec(vec![3], vec![1., 2., 3.]).unwrap(), false);
        let b = t.leaf(Tensor::from_vec(vec![3], vec![4., 5., 6.]).unwrap(), false);
        let p = mul(&mut t, a, b).unwrap();
        let s = add(&mut t, a, b).unwrap();
        assert_eq!(t.value(p).to_vec(), vec![4., 10., 18.]);
        assert_eq!(t.value(s).to_vec(), vec![5., 7., 9.]);
        let total = sum(&mut t, p);
        assert_eq!(t.value(total).item(), 32.0);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let inputs = vec![
            random_tensor(&[3, 4], 7, 1.0),
            random_tensor(&[3, 4], 8, 1.0),
        ];
        check(
            inputs.clone(),
            &[true, true],
            |t, v| mul(t, v[0], v[1]).unwrap(),
            "mul",
        );
        check(
            inputs.clone(),
            &[true, true],
            |t, v| add(t, v[0], v[1]).unwrap(),
            "add",
        );
        check(
            vec![inputs[0].clone()],
            &[true],
            |t, v| reshape(t, v[0], vec![2, 6]).unwrap(),
            "reshape",
        );
        let scalars = vec![random_tensor(&[], 3, 1.0), random_tensor(&[], 4, 1.0)];
        check(
            scalars,
            &[true, true],
            |t, v| weighted_sum(t, &[(0.5, v[0]), (2.0, v[1])]).unwrap(),
            "weighted_sum",
        );
    }

    #[test]
    fn affine_values_and_gradients() {
        let mut t = Tape::new();
        let x = t.leaf(Tensor::from_vec(vec![2], vec![2.0, -4.0]).unwrap(), true);
        let y = affine(&mut t, x, 0.5, 1.0);
        assert_eq!(t.value(y).to_vec(), vec![2.0, -1.0]);
        check(
            vec![random_tensor(&[3, 2], 4, 1.0)],
            &[true],
            |t, v| affine(t, v[0], -1.5, 0.25),
            "affine",
        );
    }

    #[test]
    fn weighted_sum_values() {
        let mut t = Tape::new();
        let a = t.leaf(Tensor::scalar(2.0), true);
        let b = t.leaf(Tensor::scalar(3.0), true);
        let s = weighted_sum(&mut t, &[(0.5, a), (2.0, b)]).unwrap();
        assert_eq!(t.value(s).item(), 7.0);
        let g = t.backward(s).unwrap();
        assert_eq!(g.get(a).unwrap().item(), 0.5);
        assert_eq!(g.get(b).unwrap().item(), 2.0);
    }
}
