//! Metrics, reported as running means over the samples seen in an epoch.

use crate::error::{Error, Result};
use crate::losses::{Loss, LossKind};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricKind {
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    BinaryAccuracy,
    MeanAbsoluteError,
    MeanSquaredError,
}

/// A metric under the name the user gave it (`accuracy` stays `accuracy` in the logs).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
}

pub const NAMES: [&str; 9] = [
    "accuracy",
    "acc",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "mae",
    "mean_absolute_error",
    "mse",
    "mean_squared_error",
];

/// Checks a metric name at compile time (the accuracy kind is chosen later, from shapes).
pub fn check_name(name: &str) -> Result<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(Error::UnknownName {
            kind: "metric",
            name: name.into(),
            known: NAMES.to_vec(),
        })
    }
}

/// Resolves a metric name for a model whose output has `pred_cols` values per sample
/// and labels with `true_cols` per sample. 'accuracy' follows Keras's
/// `is_binary_or_sparse_categorical` (keras/src/trainers/compile_utils.py).
pub fn resolve(
    name: &str,
    loss: &Loss,
    pred_cols: usize,
    true_cols: usize,
    true_rank: usize,
    pred_rank: usize,
) -> Result<Metric> {
    check_name(name)?;
    let kind = match name {
        "accuracy" | "acc" => {
            if pred_cols == 1 || loss.kind == LossKind::BinaryCrossentropy {
                MetricKind::BinaryAccuracy
            } else if true_rank < pred_rank
                || (true_cols == 1 && pred_cols > 1)
                || loss.kind == LossKind::SparseCategoricalCrossentropy
            {
                MetricKind::SparseCategoricalAccuracy
            } else {
                MetricKind::CategoricalAccuracy
            }
        }
        "categorical_accuracy" => MetricKind::CategoricalAccuracy,
        "sparse_categorical_accuracy" => MetricKind::SparseCategoricalAccuracy,
        "binary_accuracy" => MetricKind::BinaryAccuracy,
        "mae" | "mean_absolute_error" => MetricKind::MeanAbsoluteError,
        _ => MetricKind::MeanSquaredError,
    };
    Ok(Metric {
        name: name.to_string(),
        kind,
    })
}

fn argmax(row: &[f32]) -> usize {
    // First maximum on ties, as Keras's argmax.
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

impl Metric {
    /// `batch_sum` of tensors: the accuracies of predictions on the GPU are counted there
    /// (only the count comes back), the rest on the host.
    pub fn batch_sum_of(&self, pred: &crate::Tensor, labels: &crate::Tensor) -> f64 {
        let n = pred.rows();
        let sparse = match self.kind {
            MetricKind::CategoricalAccuracy => Some(false),
            MetricKind::SparseCategoricalAccuracy if labels.numel() == n => Some(true),
            _ => None,
        };
        if let Some(sparse) = sparse {
            if let Some(hits) = crate::device::gpu_accuracy_hits(pred, labels, sparse) {
                return hits;
            }
        }
        self.batch_sum(pred.host(), labels.host(), n)
    }

    /// Sum over the batch of the per-sample metric values (the caller divides by the
    /// samples seen). `pred` has `n * pred_cols` values, `labels` `n * true_cols`.
    pub fn batch_sum(&self, pred: &[f32], labels: &[f32], n: usize) -> f64 {
        let pc = pred.len() / n.max(1);
        let tc = labels.len() / n.max(1);
        let rows = (0..n).map(|i| (&pred[i * pc..(i + 1) * pc], &labels[i * tc..(i + 1) * tc]));
        match self.kind {
            MetricKind::CategoricalAccuracy => {
                rows.filter(|(p, y)| argmax(p) == argmax(y)).count() as f64
            }
            MetricKind::SparseCategoricalAccuracy => {
                rows.filter(|(p, y)| argmax(p) as f32 == y[0]).count() as f64
            }
            MetricKind::BinaryAccuracy => rows
                .map(|(p, y)| {
                    let hits = p
                        .iter()
                        .zip(y.iter())
                        .filter(|(&p, &y)| (p > 0.5) == (y > 0.5))
                        .count();
                    hits as f64 / p.len() as f64
                })
                .sum(),
            MetricKind::MeanAbsoluteError => rows
                .map(|(p, y)| {
                    p.iter()
                        .zip(y.iter())
                        .map(|(a, b)| (a - b).abs() as f64)
                        .sum::<f64>()
                        / p.len() as f64
                })
                .sum(),
            MetricKind::MeanSquaredError => rows
                .map(|(p, y)| {
                    p.iter()
                        .zip(y.iter())
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum::<f64>()
                        / p.len() as f64
                })
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_resolves_as_keras_does() {
        let cce = Loss::from_name("categorical_crossentropy", false).unwrap();
        let scce = Loss::from_name("sparse_categorical_crossentropy", false).unwrap();
        let bce = Loss::from_name("binary_crossentropy", false).unwrap();
        assert_eq!(
            resolve("accuracy", &cce, 10, 10, 2, 2).unwrap().kind,
            MetricKind::CategoricalAccuracy
        );
        assert_eq!(
            resolve("accuracy", &scce, 10, 1, 1, 2).unwrap().kind,
            MetricKind::SparseCategoricalAccuracy
        );
        assert_eq!(
            resolve("accuracy", &bce, 1, 1, 2, 2).unwrap().kind,
            MetricKind::BinaryAccuracy
        );
        assert!(resolve("accuracy", &cce, 10, 10, 2, 2).unwrap().name == "accuracy");
        assert!(resolve("f1", &cce, 10, 10, 2, 2)
            .unwrap_err()
            .to_string()
            .contains("unknown metric 'f1'"));
    }

    #[test]
    fn batch_sums() {
        let m = Metric {
            name: "accuracy".into(),
            kind: MetricKind::CategoricalAccuracy,
        };
        let pred = [0.1, 0.9, 0.8, 0.2, 0.5, 0.5];
        let y = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        assert_eq!(m.batch_sum(&pred, &y, 3), 2.0); // tie goes to the first class
        let s = Metric {
            name: "acc".into(),
            kind: MetricKind::SparseCategoricalAccuracy,
        };
        assert_eq!(s.batch_sum(&pred, &[1.0, 1.0, 0.0], 3), 2.0);
        let mae = Metric {
            name: "mae".into(),
            kind: MetricKind::MeanAbsoluteError,
        };
        assert!((mae.batch_sum(&[1.0, 2.0], &[0.0, 0.0], 1) - 1.5).abs() < 1e-12);
    }
}
