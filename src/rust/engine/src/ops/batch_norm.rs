//! Batch normalization over the last axis: y = gamma * (x - mean) / sqrt(var + eps) + beta,
//! with the batch's statistics (training) or given moving ones (inference).

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Per-channel 1 / sqrt(var + eps) (small vectors: computed on the host).
fn inv_std(var: &Tensor, eps: f32) -> Tensor {
    let v: Vec<f32> = var.host().iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    Tensor::from_vec(var.shape().to_vec(), v).expect("same length")
}

/// scale = gamma * inv_std and shift = beta - mean * scale, so that y = x * scale + shift.
fn affine(gamma: &Tensor, beta: &Tensor, mean: &Tensor, inv: &Tensor) -> (Tensor, Tensor) {
    let scale: Vec<f32> = gamma
        .host()
        .iter()
        .zip(inv.host())
        .map(|(g, i)| g * i)
        .collect();
    let shift: Vec<f32> = beta
        .host()
        .iter()
        .zip(mean.host())
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    let c = vec![scale.len()];
    (
        Tensor::from_vec(c.clone(), scale).expect("same length"),
        Tensor::from_vec(c, shift).expect("same length"),
    )
}

fn check(x: &Tensor, per_channel: &[&Tensor]) -> Result<()> {
    let c = x.shape().last().copied();
    for t in per_channel {
        if t.shape().len() != 1 || Some(t.shape()[0]) != c {
            return Err(Error::ShapeMismatch {
                op: "batch_norm",
                lhs: x.shape().to_vec(),
                rhs: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}

struct TrainBackward {
    mean: Tensor,
    inv_std: Tensor,
}

impl Backward for TrainBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma) = (inputs[0], inputs[1]);
        let (sum_g, sum_gxhat) = device::norm_grad_sums(x, g, &self.mean, &self.inv_std);
        let dx = needs[0].then(|| {
            device::batch_norm_input_grad(
                x,
                g,
                &self.mean,
                &self.inv_std,
                gamma,
                (&sum_g, &sum_gxhat),
            )
        });
        Ok(vec![
            dx,
            needs[1].then_some(sum_gxhat),
            needs[2].then_some(sum_g),
        ])
    }
}

/// Training mode: normalizes with the batch's mean and biased variance over every axis
/// but the last; also returns them (for the moving averages).
pub fn batch_norm_train(
    tape: &mut Tape,
    x: Var,
    gamma: Var,
    beta: Var,
    eps: f32,
) -> Result<(Var, Tensor, Tensor)> {
    let (xv, gv, bv) = (tape.value(x), tape.value(gamma), tape.value(beta));
    check(xv, &[gv, bv])?;
    let (mean, var) = device::moments(xv);
    let inv = inv_std(&var, eps);
    let (scale, shift) = affine(gv, bv, &mean, &inv);
    let y = device::scale_shift(xv, &scale, &shift);
    let back = TrainBackward {
        mean: mean.clone(),
        inv_std: inv,
    };
    Ok((tape.push(y, &[x, gamma, beta], Box::new(back)), mean, var))
}

struct InferenceBackward {
    mean: Tensor,
    inv_std: Tensor,
    scale: Tensor,
}

impl Backward for InferenceBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = inputs[0];
        let dx = needs[0].then(|| {
            let zero = Tensor::zeros(self.scale.shape());
            device::scale_shift(g, &self.scale, &zero)
        });
        let (dgamma, dbeta) = if needs[1] || needs[2] {
            let (sum_g, sum_gxhat) = device::norm_grad_sums(x, g, &self.mean, &self.inv_std);
            (needs[1].then_some(sum_gxhat), needs[2].then_some(sum_g))
        } else {
            (None, None)
        };
        Ok(vec![dx, dgamma, dbeta])
    }
}

/// Inference mode: normalizes with the given (moving) mean and variance.
pub fn batch_norm_inference(
    tape: &mut Tape,
    x: Var,
    gamma: Var,
    beta: Var,
    mean: &Tensor,
    var: &Tensor,
    eps: f32,
) -> Result<Var> {
    let (xv, gv, bv) = (tape.value(x), tape.value(gamma), tape.value(beta));
    check(xv, &[gv, bv, mean, var])?;
    let inv = inv_std(var, eps);
    let (scale, shift) = affine(gv, bv, mean, &inv);
    let y = device::scale_shift(xv, &scale, &shift);
    let back = InferenceBackward {
        mean: mean.clone(),
        inv_std: inv,
        scale,
    };
    Ok(tape.push(y, &[x, gamma, beta], Box::new(back)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check as gradcheck, random_tensor};

    #[test]
    fn training_forward_normalizes_each_channel() {
        let mut t = Tape::new();
        // Channel 0: 1, 3 (mean 2, var 1); channel 1: 10, 10 (var 0).
        let x = t.leaf(
            Tensor::from_vec(vec![2, 2], vec![1., 10., 3., 10.]).unwrap(),
            false,
        );
        let g = t.leaf(Tensor::from_vec(vec![2], vec![2., 1.]).unwrap(), false);
        let b = t.leaf(Tensor::from_vec(vec![2], vec![0.5, -1.]).unwrap(), false);
        let (y, mean, var) = batch_norm_train(&mut t, x, g, b, 1e-3).unwrap();
        assert_eq!(mean.to_vec(), vec![2.0, 10.0]);
        assert_eq!(var.to_vec(), vec![1.0, 0.0]);
        let s = 1.0 / (1.0f32 + 1e-3).sqrt();
        let want = [0.5 - 2.0 * s, -1.0, 0.5 + 2.0 * s, -1.0];
        for (a, w) in t.value(y).host().iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{a} vs {w}");
        }
    }

    #[test]
    fn inference_uses_the_given_statistics() {
        let mut t = Tape::new();
        let x = t.leaf(Tensor::from_vec(vec![1, 2], vec![4., 4.]).unwrap(), false);
        let g = t.leaf(Tensor::from_vec(vec![2], vec![1., 3.]).unwrap(), false);
        let b = t.leaf(Tensor::from_vec(vec![2], vec![0., 1.]).unwrap(), false);
        let mean = Tensor::from_vec(vec![2], vec![2., 0.]).unwrap();
        let var = Tensor::from_vec(vec![2], vec![4., 1.]).unwrap();
        let y = batch_norm_inference(&mut t, x, g, b, &mean, &var, 0.0).unwrap();
        assert_eq!(t.value(y).to_vec(), vec![1.0, 13.0]);
    }

    #[test]
    fn training_gradients_match_finite_differences() {
        for shape in [vec![6, 3], vec![2, 3, 4, 5]] {
            let c = *shape.last().unwrap();
            gradcheck(
                vec![
                    random_tensor(&shape, 1, 2.0),
                    random_tensor(&[c], 2, 1.5),
                    random_tensor(&[c], 3, 1.0),
                ],
                &[true, true, true],
                |t, v| batch_norm_train(t, v[0], v[1], v[2], 1e-3).unwrap().0,
                "batch_norm_train",
            );
        }
    }

    #[test]
    fn inference_gradients_match_finite_differences() {
        let mean = random_tensor(&[4], 4, 1.0);
        let var = Tensor::from_vec(vec![4], vec![0.5, 1.0, 2.0, 0.1]).unwrap();
        gradcheck(
            vec![
                random_tensor(&[3, 2, 4], 5, 2.0),
                random_tensor(&[4], 6, 1.5),
                random_tensor(&[4], 7, 1.0),
            ],
            &[true, true, true],
            |t, v| batch_norm_inference(t, v[0], v[1], v[2], &mean, &var, 1e-3).unwrap(),
            "batch_norm_inference",
        );
    }

    #[test]
    fn large_inputs_split_across_threads_give_the_same_moments() {
        // Big enough for the parallel path at the top level; compared with f64 sums.
        let x = random_tensor(&[5000, 64], 8, 3.0);
        let (mean, var) = device::moments(&x);
        let xv = x.host();
        for ch in [0usize, 17, 63] {
            let col: Vec<f64> = (0..5000).map(|r| xv[r * 64 + ch] as f64).collect();
            let m = col.iter().sum::<f64>() / 5000.0;
            let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / 5000.0;
            assert!((mean.host()[ch] as f64 - m).abs() < 1e-5);
            assert!((var.host()[ch] as f64 - v).abs() < 1e-4);
        }
    }
}
