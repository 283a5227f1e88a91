//! Loss configuration: Keras's loss names and how each one is computed on the tape.

use crate::autodiff::{Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::ops::loss::{
    categorical_crossentropy, pointwise_loss, softmax_cross_entropy, Labels, Pointwise,
};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    BinaryCrossentropy,
    MeanSquaredError,
    MeanAbsoluteError,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub kind: LossKind,
    pub from_logits: bool,
}

impl Loss {
    pub const NAMES: [&'static str; 5] = [
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
        "mean_absolute_error",
    ];

    pub fn from_name(name: &str, from_logits: bool) -> Result<Loss> {
        use LossKind::*;
        let kind = match name {
            "categorical_crossentropy" => CategoricalCrossentropy,
            "sparse_categorical_crossentropy" => SparseCategoricalCrossentropy,
            "binary_crossentropy" => BinaryCrossentropy,
            "mean_squared_error" | "mse" => MeanSquaredError,
            "mean_absolute_error" | "mae" => MeanAbsoluteError,
            _ => {
                return Err(Error::UnknownName {
                    kind: "loss",
                    name: name.into(),
                    known: Self::NAMES.to_vec(),
                })
            }
        };
        Ok(Loss { kind, from_logits })
    }

    pub fn name(&self) -> &'static str {
        Self::NAMES[self.kind as usize]
    }

    fn labels(&self) -> Labels {
        if self.kind == LossKind::SparseCategoricalCrossentropy {
            Labels::Sparse
        } else {
            Labels::Dense
        }
    }

    /// Whether the model should stop before its final softmax and hand logits over.
    pub fn wants_logits_of_softmax(&self) -> bool {
        !self.from_logits
            && matches!(
                self.kind,
                LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy
            )
    }

    /// The loss of the model's output `out`. When `out_is_logits`, `out` holds the
    /// pre-softmax values of a softmax output layer; returns the loss and the
    /// probabilities (the model's real output) for the metrics.
    pub fn compute(
        &self,
        tape: &mut Tape,
        out: Var,
        out_is_logits: bool,
        labels: Var,
    ) -> Result<(Var, Tensor)> {
        use LossKind::*;
        let cols = tape.value(out).row_len();
        match self.kind {
            CategoricalCrossentropy | SparseCategoricalCrossentropy
                if out_is_logits || self.from_logits =>
            {
                let probs = device::softmax_rows(tape.value(out), cols);
                let l = softmax_cross_entropy(tape, out, &probs, labels, self.labels())?;
                // With from_logits the model's output stays the logits.
                let shown = if self.from_logits {
                    tape.value(out).clone()
                } else {
                    probs
                };
                Ok((l, shown))
            }
            CategoricalCrossentropy | SparseCategoricalCrossentropy => Ok((
                categorical_crossentropy(tape, out, labels, self.labels())?,
                tape.value(out).clone(),
            )),
            BinaryCrossentropy => {
                let kind = if self.from_logits {
                    Pointwise::BinaryCrossentropyLogits
                } else {
                    Pointwise::BinaryCrossentropy
                };
                Ok((
                    pointwise_loss(tape, out, labels, kind)?,
                    tape.value(out).clone(),
                ))
            }
            MeanSquaredError => Ok((
                pointwise_loss(tape, out, labels, Pointwise::SquaredError)?,
                tape.value(out).clone(),
            )),
            MeanAbsoluteError => Ok((
                pointwise_loss(tape, out, labels, Pointwise::AbsoluteError)?,
                tape.value(out).clone(),
            )),
        }
    }
}
