//! Dropout: inverted dropout in training, the identity otherwise.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Result};
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::dropout::{dropout, dropout_shared};

pub struct Dropout {
    name: String,
    rate: f32,
    /// Keras's `noise_shape` with 0 where it says None (the input's size there).
    noise_shape: Option<Vec<usize>>,
}

impl Dropout {
    pub fn new(rate: f64, name: Option<String>) -> Result<Dropout> {
        if !(0.0..1.0).contains(&rate) {
            return Err(invalid_arg(
                "rate",
                format!("must be in [0, 1), not {rate}"),
            ));
        }
        Ok(Dropout {
            name: name.unwrap_or_else(|| unique_name("dropout")),
            rate: rate as f32,
            noise_shape: None,
        })
    }

    /// The mask's shape (with the batch axis), 0 meaning the input's size.
    pub fn with_noise_shape(mut self, shape: Option<Vec<usize>>) -> Dropout {
        self.noise_shape = shape;
        self
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Dropout"
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        if !ctx.training || self.rate == 0.0 {
            return Ok(x);
        }
        let Some(ns) = &self.noise_shape else {
            return Ok(dropout(tape, x, self.rate, ctx.rng));
        };
        let shape = tape.value(x).shape().to_vec();
        let fits = ns.len() == shape.len()
            && ns
                .iter()
                .zip(&shape)
                .all(|(&n, &d)| n == 0 || n == 1 || n == d);
        if !fits {
            return Err(crate::error::Error::LayerInput {
                layer: self.name.clone(),
                msg: format!(
                    "noise_shape {:?} does not fit inputs of shape {} (each size must be NA, 1 or the input's)",
                    ns,
                    crate::layers::spatial::batch_shape_str(&shape[1..])
                ),
            });
        }
        let mask: Vec<usize> = ns
            .iter()
            .zip(&shape)
            .map(|(&n, &d)| if n == 0 { d } else { n })
            .collect();
        // NA (0) on the batch axis: each sample's own mask.
        let per_sample = ns.first().map_or(true, |&n| n != 1);
        dropout_shared(tape, x, self.rate, &mask, per_sample, ctx.rng)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let mut out = vec![("rate", ConfigValue::Float(self.rate as f64))];
        if let Some(ns) = &self.noise_shape {
            out.push(("noise_shape", ConfigValue::ints(ns)));
        }
        out
    }
}
