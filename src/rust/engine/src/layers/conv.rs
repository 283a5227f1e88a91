//! Conv1D and Conv2D: y = activation(conv(x, kernel) + bias), channels_last, kernel stored
//! (kh, kw, in, filters) (Conv1D: (k, in, filters)) as in Keras. A Conv1D is run as a
//! Conv2D over a height-1 image.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, shape_str, Error, Result};
use crate::init::Initializer;
use crate::layers::registry::Config;
use crate::layers::spatial::{channels_last, expect_axes};
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::ops::activation::Activation;
use crate::ops::conv::{conv2d_bias_activation, conv2d_max_pool, ConvSpec, Padding};
use crate::ops::math::reshape;
use crate::ops::merge::concatenate;
use crate::ops::pool::PoolWindow;
use crate::ops::sequence::columns;

pub struct Conv {
    name: String,
    /// 1 (Conv1D) or 2 (Conv2D).
    rank: usize,
    filters: usize,
    /// Keras's `groups`: the input channels and the filters cut into this many groups,
    /// filter group g seeing only input group g.
    groups: usize,
    kernel_size: Vec<usize>,
    strides: Vec<usize>,
    dilation_rate: Vec<usize>,
    padding: Padding,
    activation: Activation,
    use_bias: bool,
    kernel_initializer: Initializer,
    bias_initializer: Initializer,
    params: Vec<Param>,
}

impl Conv {
    pub fn from_config(rank: usize, c: &Config) -> Result<Conv> {
        channels_last(c)?;
        let padding = Padding::from_name(&c.str_or("padding", "valid")?)?;
        if padding == Padding::Causal && rank != 1 {
            return Err(invalid_arg(
                "padding",
                "= 'causal' is only for 1-D convolutions",
            ));
        }
        let filters = c.positive_int("filters")?;
        let groups = c.positive_int_or("groups", 1)?;
        if filters % groups != 0 {
            return Err(invalid_arg(
                "groups",
                format!("must divide filters ({filters}), got {groups}"),
            ));
        }
        let strides = c.tuple("strides", rank, Some(&vec![1; rank]))?;
        let dilation_rate = c.tuple("dilation_rate", rank, Some(&vec![1; rank]))?;
        if strides.iter().any(|&s| s > 1) && dilation_rate.iter().any(|&d| d > 1) {
            return Err(invalid_arg(
                "strides",
                "> 1 cannot be combined with dilation_rate > 1 (as in Keras)",
            ));
        }
        let prefix = if rank == 1 { "conv1d" } else { "conv2d" };
        Ok(Conv {
            name: c.name()?.unwrap_or_else(|| unique_name(prefix)),
            rank,
            filters,
            groups,
            kernel_size: c.tuple("kernel_size", rank, None)?,
            strides,
            dilation_rate,
            padding,
            activation: c.activation()?,
            use_bias: c.bool_or("use_bias", true)?,
            kernel_initializer: c.initializer("kernel_initializer", "glorot_uniform")?,
            bias_initializer: c.initializer("bias_initializer", "zeros")?,
            params: Vec::new(),
        })
    }

    /// The 2-D spec; a Conv1D acts along the width of a height-1 image.
    fn spec(&self) -> ConvSpec {
        let pair = |v: &[usize]| {
            if self.rank == 1 {
                (1, v[0])
            } else {
                (v[0], v[1])
            }
        };
        ConvSpec {
            kernel: pair(&self.kernel_size),
            strides: pair(&self.strides),
            dilation: pair(&self.dilation_rate),
            padding: self.padding,
        }
    }

    fn input_error(&self, msg: String) -> Error {
        Error::LayerInput {
            layer: self.name.clone(),
            msg,
        }
    }

    fn check_groups(&self, channels: usize, input_shape: &[usize]) -> Result<()> {
        if channels % self.groups != 0 {
            return Err(self.input_error(format!(
                "groups = {} must divide the input channels, got {channels} (input shape {})",
                self.groups,
                shape_str(input_shape)
            )));
        }
        Ok(())
    }

    /// act(conv + bias) with `groups` > 1: each group's channels of x convolved with
    /// its filters' slice of the kernel, the outputs concatenated along the channels.
    fn grouped(
        &self,
        tape: &mut Tape,
        x: Var,
        kernel: Var,
        bias: Option<Var>,
        act: Activation,
    ) -> Result<Var> {
        let (xs, ks) = (
            tape.value(x).shape().to_vec(),
            tape.value(kernel).shape().to_vec(),
        );
        let (pixels, c) = (xs[..3].iter().product::<usize>(), xs[3]);
        let (taps, cg, f) = (ks[0] * ks[1] * ks[2], ks[2], ks[3]);
        let (fg, groups) = (f / self.groups, self.groups);
        // A row-wise activation (softmax) spans every filter: after the concatenation.
        let inner = if act.is_rowwise() {
            Activation::Linear
        } else {
            act
        };
        let x2 = reshape(tape, x, vec![pixels, c])?;
        let k2 = reshape(tape, kernel, vec![taps, f])?;
        let mut outs = Vec::with_capacity(groups);
        for g in 0..groups {
            let xg = columns(tape, x2, g * cg, cg)?;
            let xg = reshape(tape, xg, vec![xs[0], xs[1], xs[2], cg])?;
            let kg = columns(tape, k2, g * fg, fg)?;
            let kg = reshape(tape, kg, vec![ks[0], ks[1], cg, fg])?;
            let bg = match bias {
                Some(b) => Some(columns(tape, b, g * fg, fg)?),
                None => None,
            };
            outs.push(conv2d_bias_activation(
                tape,
                xg,
                kg,
                bg,
                inner,
                &self.spec(),
            )?);
        }
        let y = concatenate(tape, &outs, -1)?;
        Ok(if act.is_rowwise() {
            crate::ops::activation::activation(tape, y, act)
        } else {
            y
        })
    }

    /// (h, w, channels) of a sample shape, checking the rank.
    fn image_dims(&self, input_shape: &[usize]) -> Result<(usize, usize, usize)> {
        let axes: &[&str] = if self.rank == 2 {
            &["height", "width", "channels"]
        } else {
            &["steps", "channels"]
        };
        expect_axes(&self.name, input_shape, axes)?;
        Ok(match *input_shape {
            [h, w, c] => (h, w, c),
            [l, c] => (1, l, c),
            _ => unreachable!("rank checked above"),
        })
    }
}

impl Layer for Conv {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        if self.rank == 1 {
            "Conv1D"
        } else {
            "Conv2D"
        }
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        let (_, _, channels) = self.image_dims(input_shape)?;
        self.check_groups(channels, input_shape)?;
        let mut kernel_shape = self.kernel_size.clone();
        kernel_shape.extend([channels / self.groups, self.filters]);
        self.params = vec![Param::init(
            "kernel",
            kernel_shape,
            self.kernel_initializer,
            true,
        )?];
        if self.use_bias {
            let bias = Param::init("bias", vec![self.filters], self.bias_initializer, true)?;
            self.params.push(bias);
        }
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let (h, w, c) = self.image_dims(input_shape)?;
        self.check_groups(c, input_shape)?;
        if let Some(k) = self.params.first() {
            let in_channels = k.value.shape()[self.rank] * self.groups;
            if in_channels != c {
                return Err(self.input_error(format!(
                    "expects {in_channels} input channels, got {c} (input shape {})",
                    shape_str(input_shape)
                )));
            }
        }
        let spec = self.spec();
        let ((oh, ow), _) = spec.output(h, w).ok_or_else(|| {
            let size = |v: &[usize]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("x")
            };
            self.input_error(format!(
                "kernel_size {}{} is larger than the {} input {}",
                size(&self.kernel_size),
                if self.dilation_rate.iter().any(|&d| d > 1) {
                    format!(" with dilation_rate {}", size(&self.dilation_rate))
                } else {
                    String::new()
                },
                if self.padding == Padding::Valid {
                    "unpadded ('valid')"
                } else {
                    "padded"
                },
                shape_str(input_shape)
            ))
        })?;
        Ok(if self.rank == 1 {
            vec![ow, self.filters]
        } else {
            vec![oh, ow, self.filters]
        })
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
        let (batch, sample) = in_shape
            .split_first()
            .ok_or_else(|| self.input_error("got a scalar input".into()))?;
        let out_sample = self.output_shape(sample)?;
        let (h, w, c) = self.image_dims(sample)?;
        let (x4, k4) = if self.rank == 1 {
            let ks = [1, self.kernel_size[0], c / self.groups, self.filters];
            (
                reshape(tape, x, vec![*batch, h, w, c])?,
                reshape(tape, params[0], ks.to_vec())?,
            )
        } else {
            (x, params[0])
        };
        let act = ctx.final_activation(self.activation);
        let bias = self.use_bias.then(|| params[1]);
        let y = if self.groups > 1 {
            self.grouped(tape, x4, k4, bias, act)?
        } else {
            conv2d_bias_activation(tape, x4, k4, bias, act, &self.spec())?
        };
        if self.rank == 1 {
            let mut shape = vec![*batch];
            shape.extend(out_sample);
            return reshape(tape, y, shape);
        }
        Ok(y)
    }

    fn forward_pooled(
        &self,
        tape: &mut Tape,
        x: Var,
        params: &[Var],
        ctx: &mut ForwardCtx,
        window: &PoolWindow,
    ) -> Result<Option<Var>> {
        if self.rank != 2 || self.groups != 1 || tape.value(x).shape().len() != 4 {
            return Ok(None);
        }
        let act = ctx.final_activation(self.activation);
        let bias = self.use_bias.then(|| params[1]);
        conv2d_max_pool(tape, x, params[0], bias, act, &self.spec(), window)
    }

    fn output_activation(&self) -> Option<Activation> {
        Some(self.activation)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("filters", ConfigValue::Int(self.filters as i64)),
            ("kernel_size", ConfigValue::ints(&self.kernel_size)),
            ("strides", ConfigValue::ints(&self.strides)),
            ("padding", ConfigValue::Str(self.padding.name().into())),
            ("data_format", ConfigValue::Str("channels_last".into())),
            ("dilation_rate", ConfigValue::ints(&self.dilation_rate)),
            ("groups", ConfigValue::Int(self.groups as i64)),
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
    use crate::layers::registry::from_config;
    use crate::tensor::Tensor;

    /// The layer's inference forward pass.
    fn infer(l: &dyn Layer, tape: &mut Tape, x: Var, params: &[Var]) -> Var {
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: false,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        l.forward(tape, x, params, &mut ctx).unwrap()
    }

    fn cfg(pairs: &[(&str, ConfigValue)]) -> Vec<(String, ConfigValue)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn conv2d_shapes_and_counts_match_keras() {
        let mut l = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(32)),
                ("kernel_size", ConfigValue::ints(&[3, 3])),
            ]),
        )
        .unwrap();
        assert_eq!(l.output_shape(&[28, 28, 1]).unwrap(), vec![26, 26, 32]);
        l.build(&[28, 28, 1]).unwrap();
        let n: usize = l.params().iter().map(|p| p.value.numel()).sum();
        assert_eq!(n, 320);
        assert_eq!(l.params()[0].value.shape(), &[3, 3, 1, 32]);
        let same = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(4)),
                ("kernel_size", ConfigValue::Int(3)),
                ("strides", ConfigValue::Int(2)),
                ("padding", ConfigValue::Str("same".into())),
            ]),
        )
        .unwrap();
        assert_eq!(same.output_shape(&[7, 9, 3]).unwrap(), vec![4, 5, 4]);
    }

    #[test]
    fn conv1d_runs_as_a_height_one_conv2d() {
        let mut l = from_config(
            "Conv1D",
            &cfg(&[
                ("filters", ConfigValue::Int(2)),
                ("kernel_size", ConfigValue::Int(3)),
                ("padding", ConfigValue::Str("causal".into())),
                ("use_bias", ConfigValue::Bool(false)),
            ]),
        )
        .unwrap();
        assert_eq!(l.output_shape(&[5, 1]).unwrap(), vec![5, 2]);
        l.build(&[5, 1]).unwrap();
        assert_eq!(l.params()[0].value.shape(), &[3, 1, 2]);
        // Kernel taps (oldest, middle, newest) = (1, 10, 100) for filter 0.
        let k = vec![1., 0., 10., 0., 100., 1.];
        l.params_mut()[0].value = Tensor::from_vec(vec![3, 1, 2], k).unwrap();
        let mut tape = Tape::new();
        let x = tape.leaf(
            Tensor::from_vec(vec![1, 5, 1], vec![1., 2., 3., 4., 5.]).unwrap(),
            false,
        );
        let p = tape.leaf(l.params()[0].value.clone(), false);
        let y = infer(l.as_ref(), &mut tape, x, &[p]);
        assert_eq!(tape.value(y).shape(), &[1, 5, 2]);
        let f0: Vec<f32> = tape.value(y).host().iter().step_by(2).copied().collect();
        // Causal: output t sees x[t-2], x[t-1], x[t] only.
        assert_eq!(f0, vec![100., 210., 321., 432., 543.]);
    }

    #[test]
    fn grouped_conv_is_one_convolution_per_group() {
        use crate::ops::gradcheck::{check, random_tensor};
        let grouped = |groups: i64| {
            from_config(
                "Conv2D",
                &cfg(&[
                    ("filters", ConfigValue::Int(6)),
                    ("kernel_size", ConfigValue::Int(3)),
                    ("groups", ConfigValue::Int(groups)),
                    ("padding", ConfigValue::Str("same".into())),
                    ("activation", ConfigValue::Str("tanh".into())),
                ]),
            )
            .unwrap()
        };
        let mut l = grouped(3);
        l.build(&[5, 4, 6]).unwrap();
        // Keras: kernel (3, 3, in / groups, filters); 3*3*2*6 + 6 weights.
        assert_eq!(l.params()[0].value.shape(), &[3, 3, 2, 6]);
        assert_eq!(l.output_shape(&[5, 4, 6]).unwrap(), vec![5, 4, 6]);
        let (x, k, b) = (
            random_tensor(&[2, 5, 4, 6], 1, 1.0),
            random_tensor(&[3, 3, 2, 6], 2, 0.5),
            random_tensor(&[6], 3, 0.5),
        );
        let run = |t: &mut Tape, v: &[Var]| infer(l.as_ref(), t, v[0], &v[1..]);
        let mut t = Tape::new();
        let vars = [x.clone(), k.clone(), b.clone()].map(|v| t.leaf(v, false));
        let y = run(&mut t, &vars);
        let y = t.value(y).clone();
        // Group g (input channels 2g, 2g+1; filters 2g, 2g+1) by itself, as a plain
        // convolution.
        for g in 0..3 {
            let mut plain = from_config(
                "Conv2D",
                &cfg(&[
                    ("filters", ConfigValue::Int(2)),
                    ("kernel_size", ConfigValue::Int(3)),
                    ("padding", ConfigValue::Str("same".into())),
                    ("activation", ConfigValue::Str("tanh".into())),
                ]),
            )
            .unwrap();
            plain.build(&[5, 4, 2]).unwrap();
            let pick = |v: &Tensor, every: usize, from: usize| -> Vec<f32> {
                v.host()
                    .chunks(every)
                    .flat_map(|r| r[from..from + 2].to_vec())
                    .collect()
            };
            let xg = Tensor::from_vec(vec![2, 5, 4, 2], pick(&x, 6, 2 * g)).unwrap();
            let kg = Tensor::from_vec(vec![3, 3, 2, 2], pick(&k, 6, 2 * g)).unwrap();
            let bg = Tensor::from_vec(vec![2], b.host()[2 * g..2 * g + 2].to_vec()).unwrap();
            let mut t = Tape::new();
            let v = [xg, kg, bg].map(|v| t.leaf(v, false));
            let want = infer(plain.as_ref(), &mut t, v[0], &v[1..]);
            let got = pick(&y, 6, 2 * g);
            for (a, e) in got.iter().zip(t.value(want).host()) {
                assert!((a - e).abs() < 1e-6, "group {g}: {a} vs {e}");
            }
        }
        check(
            vec![x.clone(), k.clone(), b.clone()],
            &[true, true, true],
            run,
            "grouped conv2d",
        );
        // Softmax spans all the filters, not each group's.
        let mut soft = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(6)),
                ("kernel_size", ConfigValue::Int(3)),
                ("groups", ConfigValue::Int(3)),
                ("padding", ConfigValue::Str("same".into())),
                ("activation", ConfigValue::Str("softmax".into())),
            ]),
        )
        .unwrap();
        soft.build(&[5, 4, 6]).unwrap();
        let mut t = Tape::new();
        let v = [x, k, b].map(|v| t.leaf(v, false));
        let y = infer(soft.as_ref(), &mut t, v[0], &v[1..]);
        for row in t.value(y).host().chunks(6) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            assert!((row[..2].iter().sum::<f32>() - 1.0).abs() > 1e-3, "{row:?}");
        }
        // Keras's rules: groups divides filters and the input channels.
        let e = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(6)),
                ("kernel_size", ConfigValue::Int(3)),
                ("groups", ConfigValue::Int(4)),
            ]),
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "`groups` must divide filters (6), got 4");
        let e = grouped(2).output_shape(&[5, 4, 3]).unwrap_err();
        assert!(
            e.to_string().contains(
                "groups = 2 must divide the input channels, got 3 (input shape (5, 4, 3))"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_configs_and_inputs_name_the_problem() {
        let e = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(0)),
                ("kernel_size", ConfigValue::Int(3)),
            ]),
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "`filters` must be a positive integer, not 0");
        let e = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(2)),
                ("kernel_size", ConfigValue::ints(&[3, 3])),
                ("strides", ConfigValue::ints(&[0, 1])),
            ]),
        )
        .err()
        .unwrap();
        assert!(e
            .to_string()
            .starts_with("`strides` must be a positive integer or 2"));
        let e = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(2)),
                ("kernel_size", ConfigValue::Int(3)),
                ("data_format", ConfigValue::Str("channels_first".into())),
            ]),
        )
        .err()
        .unwrap();
        assert!(e
            .to_string()
            .contains("channels_first' is not supported yet"));
        let l = from_config(
            "Conv2D",
            &cfg(&[
                ("filters", ConfigValue::Int(2)),
                ("kernel_size", ConfigValue::Int(5)),
                ("name", ConfigValue::Str("c".into())),
            ]),
        )
        .unwrap();
        let e = l.output_shape(&[4, 4, 1]).err().unwrap().to_string();
        assert!(
            e.contains("kernel_size 5x5 is larger than the unpadded ('valid') input (4, 4, 1)"),
            "{e}"
        );
        let e = l.output_shape(&[28, 28]).err().unwrap().to_string();
        assert!(
            e.contains("expects inputs of rank 4 (batch, height, width, channels), got shape (None, 28, 28)"),
            "{e}"
        );
    }
}
