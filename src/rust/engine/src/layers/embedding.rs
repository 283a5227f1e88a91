//! Embedding: integer ids (any shape) to rows of a learned table `embeddings`
//! (input_dim, output_dim), as Keras's Embedding; output shape `input + [output_dim]`.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Result};
use crate::init::Initializer;
use crate::layers::registry::Config;
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::ops::embedding::lookup;

pub struct Embedding {
    name: String,
    input_dim: usize,
    output_dim: usize,
    initializer: Initializer,
    params: Vec<Param>,
}

impl Embedding {
    pub fn from_config(c: &Config) -> Result<Embedding> {
        if c.bool_or("mask_zero", false)? {
            return Err(invalid_arg(
                "mask_zero",
                "TRUE is not supported yet (rustkeras has no masking)",
            ));
        }
        Ok(Embedding {
            name: c.name()?.unwrap_or_else(|| unique_name("embedding")),
            input_dim: c.positive_int("input_dim")?,
            output_dim: c.positive_int("output_dim")?,
            initializer: c.initializer("embeddings_initializer", "uniform")?,
            params: Vec::new(),
        })
    }
}

impl Layer for Embedding {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Embedding"
    }

    fn build(&mut self, _input_shape: &[usize]) -> Result<()> {
        self.params = vec![Param::init(
            "embeddings",
            vec![self.input_dim, self.output_dim],
            self.initializer,
            true,
        )?];
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut out = input_shape.to_vec();
        out.push(self.output_dim);
        Ok(out)
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        lookup(tape, params[0], x, &self.name)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("input_dim", ConfigValue::Int(self.input_dim as i64)),
            ("output_dim", ConfigValue::Int(self.output_dim as i64)),
            (
                "embeddings_initializer",
                ConfigValue::Str(self.initializer.name().into()),
            ),
            ("mask_zero", ConfigValue::Bool(false)),
        ]
    }
}
