//! Activation: applies an activation function as a layer of its own.

use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::activation::{activation, Activation};

pub struct ActivationLayer {
    name: String,
    activation: Activation,
}

impl ActivationLayer {
    pub fn new(activation: Activation, name: Option<String>) -> ActivationLayer {
        ActivationLayer {
            name: name.unwrap_or_else(|| unique_name("activation")),
            activation,
        }
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Activation"
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
        Ok(activation(tape, x, ctx.final_activation(self.activation)))
    }

    fn output_activation(&self) -> Option<Activation> {
        Some(self.activation)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![(
            "activation",
            ConfigValue::Str(self.activation.name().into()),
        )]
    }
}
