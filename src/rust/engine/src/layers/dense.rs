//! Dense: y = activation(x %*% kernel + bias), kernel stored (input_dim, units).

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, shape_str, Error, Result};
use crate::init::Initializer;
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::ops::activation::{activation, Activation};
use crate::ops::{bias::bias_add_activation, math::reshape, matmul::matmul};

pub struct Dense {
    name: String,
    units: usize,
    activation: Activation,
    use_bias: bool,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
    params: Vec<Param>,
}

impl Dense {
    pub fn new(
        units: usize,
        activation: Activation,
        use_bias: bool,
        kernel_initializer: Initializer,
        bias_initializer: Initializer,
        name: Option<String>,
    ) -> Result<Dense> {
        if units == 0 {
            return Err(invalid_arg("units", "must be a positive integer, not 0"));
        }
        Ok(Dense {
            name: name.unwrap_or_else(|| unique_name("dense")),
            units,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            params: Vec::new(),
        })
    }

    fn input_dim(&self) -> Option<usize> {
        self.params.first().map(|p| p.value.shape()[0])
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        let in_dim = *input_shape.last().ok_or_else(|| Error::LayerInput {
            layer: self.name.clone(),
            msg: "needs inputs with at least one axis".into(),
        })?;
        self.params = vec![Param::init(
            "kernel",
            vec![in_dim, self.units],
            self.kernel_initializer,
            true,
        )?];
        if self.use_bias {
            let bias = Param::init("bias", vec![self.units], self.bias_initializer, true)?;
            self.params.push(bias);
        }
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let Some((&last, lead)) = input_shape.split_last() else {
            return Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: "needs inputs with at least one axis".into(),
            });
        };
        if let Some(d) = self.input_dim() {
            if d != last {
                return Err(Error::LayerInput {
                    layer: self.name.clone(),
                    msg: format!(
                        "expects {d} features, got {last} (input shape {})",
                        shape_str(input_shape)
                    ),
                });
            }
        }
        let mut out = lead.to_vec();
        out.push(self.units);
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
        ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let in_shape = tape.value(x).shape().to_vec();
        let out_shape = {
            let mut s = vec![in_shape[0]];
            s.extend(self.output_shape(&in_shape[1..])?);
            s
        };
        // Dense acts on the last axis: fold any middle axes into the rows.
        let x2 = if in_shape.len() == 2 {
            x
        } else {
            reshape(
                tape,
                x,
                vec![
                    tape.value(x).numel() / in_shape[in_shape.len() - 1],
                    in_shape[in_shape.len() - 1],
                ],
            )?
        };
        let y = matmul(tape, x2, params[0])?;
        let act = ctx.final_activation(self.activation);
        let y = if self.use_bias {
            bias_add_activation(tape, y, params[1], act)?
        } else {
            activation(tape, y, act)
        };
        // The activation acts on the last axis, which the reshape keeps.
        if out_shape.len() != 2 {
            return reshape(tape, y, out_shape);
        }
        Ok(y)
    }

    fn output_activation(&self) -> Option<Activation> {
        Some(self.activation)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("units", ConfigValue::Int(self.units as i64)),
            (
                "activation",
                ConfigValue::Str(self.activation.name().into()),
            ),
            ("use_bias", ConfigValue::Bool(self.use_bias)),
            (
                "kernel_initializer",
                ConfigValue::Str(self.kernel_initializer.name().into()),
            ),
            (
                "bias_initializer",
                ConfigValue::Str(self.bias_initializer.name().into()),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    #[test]
    fn builds_keras_shapes_and_counts() {
        let mut d = Dense::new(
            256,
            Activation::Relu,
            true,
            Initializer::GlorotUniform,
            Initializer::Zeros,
            None,
        )
        .unwrap();
        d.build(&[784]).unwrap();
        assert_eq!(d.params()[0].value.shape(), &[784, 256]);
        assert_eq!(d.params()[1].value.shape(), &[256]);
        let n: usize = d.params().iter().map(|p| p.value.numel()).sum();
        assert_eq!(n, 200_960);
        let e = d.output_shape(&[28]).unwrap_err().to_string();
        assert!(
            e.ends_with("expects 784 features, got 28 (input shape (28))"),
            "{e}"
        );
    }

    #[test]
    fn forward_computes_affine_then_activation() {
        let mut d = Dense::new(
            2,
            Activation::Relu,
            true,
            Initializer::Ones,
            Initializer::Zeros,
            Some("d".into()),
        )
        .unwrap();
        d.build(&[3]).unwrap();
        d.params_mut()[1].value = Tensor::from_vec(vec![2], vec![-7.0, 1.0]).unwrap();
        let mut tape = Tape::new();
        let x = tape.leaf(
            Tensor::from_vec(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap(),
            false,
        );
        let ps: Vec<Var> = d
            .params()
            .iter()
            .map(|p| tape.leaf(p.value.clone(), true))
            .collect();
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            batch_state: None,
            trainable: true,
            training: false,
            rng: &mut rng,
            logits: false,
        };
        let y = d.forward(&mut tape, x, &ps, &mut ctx).unwrap();
        assert_eq!(tape.value(y).to_vec(), vec![0.0, 7.0]);
    }

    #[test]
    fn zero_units_is_an_error() {
        let e = Dense::new(
            0,
            Activation::Linear,
            true,
            Initializer::Zeros,
            Initializer::Zeros,
            None,
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "`units` must be a positive integer, not 0");
    }
}
