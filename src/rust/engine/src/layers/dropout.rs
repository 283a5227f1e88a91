//! Dropout: inverted dropout in training, the identity otherwise.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Result};
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::dropout::dropout;

pub struct Dropout {
    name: String,
    rate: f32,
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
        })
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
        Ok(dropout(tape, x, self.rate, ctx.rng))
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![("rate", ConfigValue::Float(self.rate as f64))]
    }
}
