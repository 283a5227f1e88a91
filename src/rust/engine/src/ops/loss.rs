//! Loss functions as tape ops. Each returns the mean of the per-sample losses over the
//! batch (Keras's default "sum_over_batch_size" reduction) as a scalar.

use crate::autodiff::{Backward, Tape, Var};
use crate::error::{data_err, Result};
use crate::tensor::Tensor;

/// Keras's backend epsilon: probabilities are clipped to [EPS, 1 - EPS].
pub const EPS: f32 = 1e-7;

/// How the labels of a classification loss are given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Labels {
    /// One row of class scores per sample (one-hot or soft).
    Dense,
    /// One class index per sample.
    Sparse,
}

/// The label row of sample `i` applied to the callback: (class j, weight y_ij).
fn label_weights(
    labels: &[f32],
    kind: Labels,
    i: usize,
    cols: usize,
    mut f: impl FnMut(usize, f32),
) {
    match kind {
        Labels::Dense => {
            for (j, &y) in labels[i * cols..(i + 1) * cols].iter().enumerate() {
                if y != 0.0 {
                    f(j, y);
                }
            }
        }
        Labels::Sparse => f(labels[i] as usize, 1.0),
    }
}

fn check_labels(labels: &Tensor, kind: Labels, n: usize, cols: usize) -> Result<()> {
    match kind {
        Labels::Dense if labels.numel() != n * cols => Err(data_err(
            "y",
            format!(
                "has {} values per sample but the model outputs {cols}",
                labels.numel() / n.max(1)
            ),
        )),
        Labels::Sparse if labels.numel() != n => {
            Err(data_err("y", "must hold one class index per sample"))
        }
        Labels::Sparse => {
            if let Some(bad) = labels.host().iter().find(|v| v.fract() != 0.0) {
                return Err(data_err(
                    "y",
                    format!(
                        "holds label {bad}; class labels must be whole numbers 0..{}",
                        cols - 1
                    ),
                ));
            }
            match labels
                .host()
                .iter()
                .find(|&&v| v < 0.0 || v as usize >= cols)
            {
                Some(bad) => Err(data_err(
                    "y",
                    format!(
                        "holds label {bad}, outside the {cols} classes 0..{}",
                        cols - 1
                    ),
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

fn scalar_loss(tape: &mut Tape, value: f64, inputs: &[Var], op: Box<dyn Backward>) -> Var {
    tape.push(Tensor::scalar(value as f32), inputs, op)
}

/// A loss whose gradient (of the batch mean, for an upstream gradient of 1) was computed
/// with its value, as the GPU's cross-entropy kernels do.
struct PrecomputedBackward {
    grad: Tensor,
}

impl Backward for PrecomputedBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let s = g.item();
        let grad = if s == 1.0 {
            self.grad.clone()
        } else {
            crate::device::scale(&self.grad, s)
        };
        Ok(vec![Some(grad), None])
    }
}

/// The cross-entropy on the GPU when `z` lives there (None on the CPU).
fn on_gpu(tape: &mut Tape, z: Var, labels: Var, kind: Labels, from_logits: bool) -> Option<Var> {
    let (zv, lv) = (tape.value(z), tape.value(labels));
    let n = zv.rows();
    let (total, grad) =
        crate::device::gpu_crossentropy(zv, lv, from_logits, kind == Labels::Sparse)?;
    let op = Box::new(PrecomputedBackward { grad });
    Some(scalar_loss(tape, total / n as f64, &[z, labels], op))
}

struct SoftmaxXentBackward {
    probs: Tensor,
    kind: Labels,
}

impl Backward for SoftmaxXentBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        // d/dz of -sum(y log softmax(z)) = softmax(z) * sum(y) - y, over the batch mean.
        let (n, cols) = (self.probs.rows(), self.probs.row_len());
        let labels = inputs[1].host();
        let s = g.item() / n as f32;
        let mut dz = crate::device::pool::copy_of(self.probs.host());
        for i in 0..n {
            let mut ysum = 0.0;
            label_weights(labels, self.kind, i, cols, |_, y| ysum += y);
            dz[i * cols..(i + 1) * cols]
                .iter_mut()
                .for_each(|v| *v *= ysum);
            label_weights(labels, self.kind, i, cols, |j, y| dz[i * cols + j] -= y);
        }
        dz.iter_mut().for_each(|v| *v *= s);
        Ok(vec![
            Some(Tensor::from_vec(self.probs.shape().to_vec(), dz)?),
            None,
        ])
    }
}

/// Cross-entropy of softmax(logits) against labels, from the logits: exact log-softmax,
/// no clipping (what keras3 on TensorFlow computes for a softmax output layer).
/// `probs` must be softmax(logits); it is reused for the gradient.
pub fn softmax_cross_entropy(
    tape: &mut Tape,
    logits: Var,
    probs: &Tensor,
    labels: Var,
    kind: Labels,
) -> Result<Var> {
    let z = tape.value(logits);
    let (n, cols) = (z.rows(), z.row_len());
    let lab = tape.value(labels);
    check_labels(lab, kind, n, cols)?;
    if let Some(l) = on_gpu(tape, logits, labels, kind, true) {
        return Ok(l);
    }
    let (z, lab) = (tape.value(logits), tape.value(labels));
    let (zd, ld) = (z.host(), lab.host());
    let mut total = 0.0f64;
    for i in 0..n {
        let row = &zd[i * cols..(i + 1) * cols];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = m as f64
            + row
                .iter()
                .map(|&v| ((v - m) as f64).exp())
                .sum::<f64>()
                .ln();
        label_weights(ld, kind, i, cols, |j, y| {
            total += y as f64 * (lse - row[j] as f64)
        });
    }
    let op = Box::new(SoftmaxXentBackward {
        probs: probs.clone(),
        kind,
    });
    Ok(scalar_loss(tape, total / n as f64, &[logits, labels], op))
}

struct CrossentropyBackward {
    kind: Labels,
}

impl Backward for CrossentropyBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let p = inputs[0];
        let (n, cols) = (p.rows(), p.row_len());
        let (pd, labels) = (p.host(), inputs[1].host());
        let s = g.item() / n as f32;
        let mut dp = vec![0.0f32; pd.len()];
        let mut dq = vec![0.0f32; cols];
        for i in 0..n {
            let row = &pd[i * cols..(i + 1) * cols];
            let total: f32 = row.iter().sum();
            dq.iter_mut().for_each(|v| *v = 0.0);
            // Through the clip: zero gradient where q was clipped.
            label_weights(labels, self.kind, i, cols, |j, y| {
                let q = row[j] / total;
                if q > EPS && q < 1.0 - EPS {
                    dq[j] = -y / q;
                }
            });
            // Through the renormalisation q = p / sum(p).
            let dot: f32 = dq.iter().zip(row).map(|(d, p)| d * p / total).sum();
            for j in 0..cols {
                dp[i * cols + j] = s * (dq[j] - dot) / total;
            }
        }
        Ok(vec![Some(Tensor::from_vec(p.shape().to_vec(), dp)?), None])
    }
}

/// Cross-entropy on probabilities as Keras computes it: renormalise each row, clip to
/// [EPS, 1 - EPS], then -sum(y log p).
pub fn categorical_crossentropy(
    tape: &mut Tape,
    probs: Var,
    labels: Var,
    kind: Labels,
) -> Result<Var> {
    let p = tape.value(probs);
    let (n, cols) = (p.rows(), p.row_len());
    let lab = tape.value(labels);
    check_labels(lab, kind, n, cols)?;
    if let Some(l) = on_gpu(tape, probs, labels, kind, false) {
        return Ok(l);
    }
    let (p, lab) = (tape.value(probs), tape.value(labels));
    let (pd, ld) = (p.host(), lab.host());
    let mut total = 0.0f64;
    for i in 0..n {
        let row = &pd[i * cols..(i + 1) * cols];
        let sum: f32 = row.iter().sum();
        label_weights(ld, kind, i, cols, |j, y| {
            let q = (row[j] / sum).clamp(EPS, 1.0 - EPS);
            total -= y as f64 * (q as f64).ln();
        });
    }
    Ok(scalar_loss(
        tape,
        total / n as f64,
        &[probs, labels],
        Box::new(CrossentropyBackward { kind }),
    ))
}

/// Elementwise losses: value and derivative with respect to the prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pointwise {
    BinaryCrossentropy,
    BinaryCrossentropyLogits,
    SquaredError,
    AbsoluteError,
}

impl Pointwise {
    fn value_grad(self, p: f32, y: f32) -> (f64, f32) {
        match self {
            Pointwise::BinaryCrossentropy => {
                let c = p.clamp(EPS, 1.0 - EPS);
                let v = -(y as f64 * (c as f64).ln() + (1.0 - y as f64) * (1.0 - c as f64).ln());
                let inside = p > EPS && p < 1.0 - EPS;
                (
                    v,
                    if inside {
                        -y / c + (1.0 - y) / (1.0 - c)
                    } else {
                        0.0
                    },
                )
            }
            Pointwise::BinaryCrossentropyLogits => {
                // max(z, 0) - z y + log(1 + exp(-|z|)), stable for any z.
                let z = p as f64;
                let v = z.max(0.0) - z * y as f64 + (-z.abs()).exp().ln_1p();
                let s = 1.0 / (1.0 + (-p).exp());
                (v, s - y)
            }
            Pointwise::SquaredError => {
                let d = p - y;
                ((d as f64) * (d as f64), 2.0 * d)
            }
            Pointwise::AbsoluteError => {
                let d = p - y;
                (
                    (d as f64).abs(),
                    if d > 0.0 {
                        1.0
                    } else if d < 0.0 {
                        -1.0
                    } else {
                        0.0
                    },
                )
            }
        }
    }
}

struct PointwiseBackward(Pointwise);

impl Backward for PointwiseBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (p, y) = (inputs[0].host(), inputs[1].host());
        let s = g.item() / p.len() as f32;
        let dp = p
            .iter()
            .zip(y)
            .map(|(&p, &y)| s * self.0.value_grad(p, y).1)
            .collect();
        Ok(vec![
            Some(Tensor::from_vec(inputs[0].shape().to_vec(), dp)?),
            None,
        ])
    }
}

/// Mean over the last axis of an elementwise loss, then mean over the batch: the mean
/// over all elements.
pub fn pointwise_loss(tape: &mut Tape, pred: Var, labels: Var, kind: Pointwise) -> Result<Var> {
    let (p, y) = (tape.value(pred), tape.value(labels));
    if p.numel() != y.numel() {
        return Err(data_err(
            "y",
            format!(
                "has {} values per sample but the model outputs {}",
                y.numel() / p.rows().max(1),
                p.row_len()
            ),
        ));
    }
    let code = match kind {
        Pointwise::BinaryCrossentropy => 0,
        Pointwise::BinaryCrossentropyLogits => 1,
        Pointwise::SquaredError => 2,
        Pointwise::AbsoluteError => 3,
    };
    if let Some((total, grad)) = crate::device::gpu_pointwise_loss(p, y, code) {
        let mean = total / p.numel().max(1) as f64;
        let op = Box::new(PrecomputedBackward { grad });
        return Ok(scalar_loss(tape, mean, &[pred, labels], op));
    }
    let total: f64 = p
        .host()
        .iter()
        .zip(y.host())
        .map(|(&p, &y)| kind.value_grad(p, y).0)
        .sum();
    let mean = total / p.numel().max(1) as f64;
    Ok(scalar_loss(
        tape,
        mean,
        &[pred, labels],
        Box::new(PointwiseBackward(kind)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::activation::{activation, Activation};
    use crate::ops::gradcheck::{check, random_tensor};

    fn onehot() -> Tensor {
        Tensor::from_vec(
            vec![3, 4],
            vec![0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 0., 1.],
        )
        .unwrap()
    }

    fn sparse() -> Tensor {
        Tensor::from_vec(vec![3], vec![1., 0., 3.]).unwrap()
    }

    fn probs() -> Tensor {
        Tensor::from_vec(
            vec![3, 4],
            vec![
                0.1, 0.6, 0.2, 0.1, 0.7, 0.1, 0.1, 0.1, 0.25, 0.25, 0.25, 0.25,
            ],
        )
        .unwrap()
    }

    #[test]
    fn categorical_crossentropy_value() {
        // -(ln 0.6 + ln 0.7 + ln 0.25) / 3
        let want = -((0.6f64).ln() + (0.7f64).ln() + (0.25f64).ln()) / 3.0;
        for (labels, kind) in [(onehot(), Labels::Dense), (sparse(), Labels::Sparse)] {
            let mut t = Tape::new();
            let p = t.leaf(probs(), false);
            let y = t.leaf(labels, false);
            let l = categorical_crossentropy(&mut t, p, y, kind).unwrap();
            assert!((t.value(l).item() as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn crossentropy_clips_zero_probabilities() {
        let mut t = Tape::new();
        let p = t.leaf(Tensor::from_vec(vec![1, 2], vec![0.0, 1.0]).unwrap(), false);
        let y = t.leaf(Tensor::from_vec(vec![1, 2], vec![1.0, 0.0]).unwrap(), false);
        let l = categorical_crossentropy(&mut t, p, y, Labels::Dense).unwrap();
        assert!((t.value(l).item() - 16.118_095).abs() < 1e-3); // -ln(1e-7)
    }

    #[test]
    fn softmax_cross_entropy_equals_crossentropy_of_softmax() {
        let z = random_tensor(&[3, 4], 21, 2.0);
        let mut t = Tape::new();
        let zv = t.leaf(z, false);
        let y = t.leaf(onehot(), false);
        let p = activation(&mut t, zv, Activation::Softmax);
        let probs = t.value(p).clone();
        let a = softmax_cross_entropy(&mut t, zv, &probs, y, Labels::Dense).unwrap();
        let b = categorical_crossentropy(&mut t, p, y, Labels::Dense).unwrap();
        assert!((t.value(a).item() - t.value(b).item()).abs() < 1e-5);
    }

    #[test]
    fn sparse_labels_out_of_range_are_an_error() {
        let mut t = Tape::new();
        let p = t.leaf(probs(), false);
        let y = t.leaf(Tensor::from_vec(vec![3], vec![1., 0., 4.]).unwrap(), false);
        let e = categorical_crossentropy(&mut t, p, y, Labels::Sparse)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "`y` holds label 4, outside the 4 classes 0..3");
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (labels, kind) in [(onehot(), Labels::Dense), (sparse(), Labels::Sparse)] {
            let z = random_tensor(&[3, 4], 22, 2.0);
            check(
                vec![z, labels.clone()],
                &[true, false],
                |t, v| {
                    let p = activation(t, v[0], Activation::Softmax);
                    let probs = t.value(p).clone();
                    softmax_cross_entropy(t, v[0], &probs, v[1], kind).unwrap()
                },
                "softmax_cross_entropy",
            );
            check(
                vec![probs(), labels],
                &[true, false],
                |t, v| categorical_crossentropy(t, v[0], v[1], kind).unwrap(),
                "categorical_crossentropy",
            );
        }
        let p = Tensor::from_vec(vec![2, 3], vec![0.2, 0.7, 0.4, 0.9, 0.3, 0.6]).unwrap();
        let y = Tensor::from_vec(vec![2, 3], vec![0., 1., 1., 1., 0., 0.]).unwrap();
        for kind in [
            Pointwise::BinaryCrossentropy,
            Pointwise::BinaryCrossentropyLogits,
            Pointwise::SquaredError,
            Pointwise::AbsoluteError,
        ] {
            check(
                vec![p.clone(), y.clone()],
                &[true, false],
                |t, v| pointwise_loss(t, v[0], v[1], kind).unwrap(),
                "pointwise",
            );
        }
    }

    #[test]
    fn pointwise_values() {
        let mut t = Tape::new();
        let p = t.leaf(Tensor::from_vec(vec![2, 1], vec![0.8, 0.4]).unwrap(), false);
        let y = t.leaf(Tensor::from_vec(vec![2, 1], vec![1.0, 0.0]).unwrap(), false);
        let bce = pointwise_loss(&mut t, p, y, Pointwise::BinaryCrossentropy).unwrap();
        let mse = pointwise_loss(&mut t, p, y, Pointwise::SquaredError).unwrap();
        let mae = pointwise_loss(&mut t, p, y, Pointwise::AbsoluteError).unwrap();
        let want_bce = -((0.8f64).ln() + (0.6f64).ln()) / 2.0;
        assert!((t.value(bce).item() as f64 - want_bce).abs() < 1e-6);
        assert!((t.value(mse).item() - 0.1).abs() < 1e-6);
        assert!((t.value(mae).item() - 0.3).abs() < 1e-6);
    }
}
