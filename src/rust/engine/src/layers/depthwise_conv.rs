//! DepthwiseConv2D (each channel convolved with its own `depth_multiplier` filters) and
//! SeparableConv2D (a depthwise convolution, then a 1x1 convolution that mixes the
//! channels), with Keras's weights: `depthwise_kernel` (kh, kw, c, depth_multiplier),
//! `pointwise_kernel` (1, 1, c * depth_multiplier, filters), `bias`.

use crate::autodiff::{Tape, Var};
use crate::error::{shape_str, Error, Result};
use crate::init::Initializer;
use crate::layers::registry::Config;
use crate::layers::spatial::{channels_last, expect_axes};
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::ops::activation::{activation, Activation};
use crate::ops::bias::bias_add_activation;
use crate::ops::conv::{conv2d, depthwise_conv2d, ConvSpec, Padding};

pub struct DepthwiseConv {
    name: String,
    /// None: DepthwiseConv2D; Some(filters): SeparableConv2D.
    pointwise_filters: Option<usize>,
    depth_multiplier: usize,
    spec: ConvSpec,
    activation: Activation,
    use_bias: bool,
    depthwise_initializer: Initializer,
    pointwise_initializer: Initializer,
    bias_initializer: Initializer,
    params: Vec<Param>,
}

impl DepthwiseConv {
    /// `separable`: SeparableConv2D (needs `filters`) rather than DepthwiseConv2D.
    pub fn from_config(separable: bool, c: &Config) -> Result<DepthwiseConv> {
        channels_last(c)?;
        let padding = Padding::from_name(&c.str_or("padding", "valid")?)?;
        if padding == Padding::Causal {
            return Err(crate::error::invalid_arg(
                "padding",
                "= 'causal' is only for 1-D convolutions",
            ));
        }
        let kernel = c.tuple("kernel_size", 2, None)?;
        let strides = c.tuple("strides", 2, Some(&[1, 1]))?;
        let dilation = c.tuple("dilation_rate", 2, Some(&[1, 1]))?;
        if strides.iter().any(|&s| s > 1) && dilation.iter().any(|&d| d > 1) {
            return Err(crate::error::invalid_arg(
                "strides",
                "> 1 cannot be combined with dilation_rate > 1 (as in Keras)",
            ));
        }
        let prefix = if separable {
            "separable_conv2d"
        } else {
            "depthwise_conv2d"
        };
        Ok(DepthwiseConv {
            name: c.name()?.unwrap_or_else(|| unique_name(prefix)),
            pointwise_filters: if separable {
                Some(c.positive_int("filters")?)
            } else {
                None
            },
            depth_multiplier: c.tuple("depth_multiplier", 1, Some(&[1]))?[0],
            spec: ConvSpec {
                kernel: (kernel[0], kernel[1]),
                strides: (strides[0], strides[1]),
                dilation: (dilation[0], dilation[1]),
                padding,
            },
            activation: c.activation()?,
            use_bias: c.bool_or("use_bias", true)?,
            depthwise_initializer: c.initializer("depthwise_initializer", "glorot_uniform")?,
            pointwise_initializer: c.initializer("pointwise_initializer", "glorot_uniform")?,
            bias_initializer: c.initializer("bias_initializer", "zeros")?,
            params: Vec::new(),
        })
    }

    fn input_error(&self, msg: String) -> Error {
        Error::LayerInput {
            layer: self.name.clone(),
            msg,
        }
    }

    fn out_channels(&self, in_channels: usize) -> usize {
        self.pointwise_filters
            .unwrap_or(in_channels * self.depth_multiplier)
    }
}

impl Layer for DepthwiseConv {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        if self.pointwise_filters.is_some() {
            "SeparableConv2D"
        } else {
            "DepthwiseConv2D"
        }
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        self.output_shape(input_shape)?;
        let c = input_shape[2];
        let (kh, kw) = self.spec.kernel;
        let mid = c * self.depth_multiplier;
        let mut params = vec![Param::init(
            "depthwise_kernel",
            vec![kh, kw, c, self.depth_multiplier],
            self.depthwise_initializer,
            true,
        )?];
        if let Some(f) = self.pointwise_filters {
            let init = self.pointwise_initializer;
            params.push(Param::init(
                "pointwise_kernel",
                vec![1, 1, mid, f],
                init,
                true,
            )?);
        }
        if self.use_bias {
            let shape = vec![self.out_channels(c)];
            params.push(Param::init("bias", shape, self.bias_initializer, true)?);
        }
        self.params = params;
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        expect_axes(&self.name, input_shape, &["height", "width", "channels"])?;
        let (h, w, c) = (input_shape[0], input_shape[1], input_shape[2]);
        if let Some(k) = self.params.first() {
            if k.value.shape()[2] != c {
                return Err(self.input_error(format!(
                    "expects {} input channels, got {c} (input shape {})",
                    k.value.shape()[2],
                    shape_str(input_shape)
                )));
            }
        }
        let ((oh, ow), _) = self.spec.output(h, w).ok_or_else(|| {
            self.input_error(format!(
                "kernel_size {}x{} is larger than the {} input {}",
                self.spec.kernel.0,
                self.spec.kernel.1,
                if self.spec.padding == Padding::Valid {
                    "unpadded ('valid')"
                } else {
                    "padded"
                },
                shape_str(input_shape)
            ))
        })?;
        Ok(vec![oh, ow, self.out_channels(c)])
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
        let sample = tape.value(x).shape()[1..].to_vec();
        self.output_shape(&sample)?;
        let mut y = depthwise_conv2d(tape, x, params[0], &self.spec)?;
        let mut next = 1;
        if self.pointwise_filters.is_some() {
            let pointwise = ConvSpec {
                kernel: (1, 1),
                strides: (1, 1),
                dilation: (1, 1),
                padding: Padding::Valid,
            };
            y = conv2d(tape, y, params[1], &pointwise)?;
            next = 2;
        }
        let act = ctx.final_activation(self.activation);
        if self.use_bias {
            bias_add_activation(tape, y, params[next], act)
        } else {
            Ok(activation(tape, y, act))
        }
    }

    fn output_activation(&self) -> Option<Activation> {
        Some(self.activation)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let s = &self.spec;
        let init = |i: Initializer| ConfigValue::Str(i.name().into());
        let mut c = Vec::new();
        if let Some(f) = self.pointwise_filters {
            c.push(("filters", ConfigValue::Int(f as i64)));
        }
        c.extend([
            ("kernel_size", ConfigValue::ints(&[s.kernel.0, s.kernel.1])),
            ("strides", ConfigValue::ints(&[s.strides.0, s.strides.1])),
            ("padding", ConfigValue::Str(s.padding.name().into())),
            ("data_format", ConfigValue::Str("channels_last".into())),
            (
                "dilation_rate",
                ConfigValue::ints(&[s.dilation.0, s.dilation.1]),
            ),
            (
                "depth_multiplier",
                ConfigValue::Int(self.depth_multiplier as i64),
            ),
            (
                "activation",
                ConfigValue::Str(self.activation.name().into()),
            ),
            ("use_bias", ConfigValue::Bool(self.use_bias)),
            ("depthwise_initializer", init(self.depthwise_initializer)),
        ]);
        if self.pointwise_filters.is_some() {
            c.push(("pointwise_initializer", init(self.pointwise_initializer)));
        }
        c.push(("bias_initializer", init(self.bias_initializer)));
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::registry::from_config;

    fn cfg(pairs: &[(&str, ConfigValue)]) -> Vec<(String, ConfigValue)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn weights_and_shapes_follow_keras() {
        let mut d = from_config(
            "DepthwiseConv2D",
            &cfg(&[
                ("kernel_size", ConfigValue::Int(3)),
                ("depth_multiplier", ConfigValue::Int(2)),
            ]),
        )
        .unwrap();
        assert_eq!(d.output_shape(&[8, 8, 3]).unwrap(), vec![6, 6, 6]);
        d.build(&[8, 8, 3]).unwrap();
        let shapes: Vec<&[usize]> = d.params().iter().map(|p| p.value.shape()).collect();
        assert_eq!(shapes, [&[3, 3, 3, 2][..], &[6][..]]);
        let mut s = from_config(
            "SeparableConv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(5)),
                ("kernel_size", ConfigValue::Int(3)),
                ("padding", ConfigValue::Str("same".into())),
            ]),
        )
        .unwrap();
        assert_eq!(s.class_name(), "SeparableConv2D");
        assert_eq!(s.output_shape(&[8, 8, 3]).unwrap(), vec![8, 8, 5]);
        s.build(&[8, 8, 3]).unwrap();
        let n: usize = s.params().iter().map(|p| p.value.numel()).sum();
        assert_eq!(n, 27 + 15 + 5);
    }
}
