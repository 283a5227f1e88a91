//! Recurrent layers, as Keras 3's SimpleRNN, LSTM and GRU: the cell runs over the steps of
//! (batch, steps, features) inputs, built from tape ops (one matrix product for the inputs
//! of every step at once, then per step the recurrent product and the gates), so the
//! backward pass through time comes from the tape.
//!
//! Weights as Keras stores them: `kernel` (features, gates * units), `recurrent_kernel`
//! (units, gates * units), `bias`; gates in Keras's order (LSTM i, f, c, o; GRU z, r, h).
//! A GRU with `reset_after` (Keras's default) has a (2, 3 * units) bias: input and
//! recurrent halves.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, shape_str, Error, Result};
use crate::init::Initializer;
use crate::layers::registry::Config;
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param, VarGroup};
use crate::naming::unique_name;
use crate::ops::activation::{activation, Activation};
use crate::ops::bias::bias_add;
use crate::ops::math::{add, affine, mul, reshape};
use crate::ops::matmul::matmul;
use crate::ops::sequence::{columns, stack, step};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RnnKind {
    Simple,
    Lstm,
    Gru,
}

impl RnnKind {
    fn gates(self) -> usize {
        match self {
            RnnKind::Simple => 1,
            RnnKind::Lstm => 4,
            RnnKind::Gru => 3,
        }
    }
}

pub struct Recurrent {
    kind: RnnKind,
    name: String,
    units: usize,
    activation: Activation,
    recurrent_activation: Activation,
    use_bias: bool,
    kernel_initializer: Initializer,
    recurrent_initializer: Initializer,
    bias_initializer: Initializer,
    unit_forget_bias: bool,
    reset_after: bool,
    return_sequences: bool,
    go_backwards: bool,
    /// Inside a Bidirectional wrapper: a backwards layer's outputs come back in time
    /// order, as Keras flips them before merging.
    pub time_aligned: bool,
    params: Vec<Param>,
}

impl Recurrent {
    pub fn from_config(kind: RnnKind, c: &Config) -> Result<Recurrent> {
        for key in ["dropout", "recurrent_dropout"] {
            let v = c.f64_or(key, 0.0)?;
            if v != 0.0 {
                return Err(invalid_arg(
                    key,
                    format!("{v} is not supported yet; only 0"),
                ));
            }
        }
        for key in ["return_state", "stateful"] {
            if c.bool_or(key, false)? {
                return Err(invalid_arg(key, "TRUE is not supported yet"));
            }
        }
        let prefix = match kind {
            RnnKind::Simple => "simple_rnn",
            RnnKind::Lstm => "lstm",
            RnnKind::Gru => "gru",
        };
        Ok(Recurrent {
            kind,
            name: c.name()?.unwrap_or_else(|| unique_name(prefix)),
            units: c.positive_int("units")?,
            activation: Activation::from_name(&c.str_or("activation", "tanh")?)?,
            recurrent_activation: Activation::from_name(
                &c.str_or("recurrent_activation", "sigmoid")?,
            )?,
            use_bias: c.bool_or("use_bias", true)?,
            kernel_initializer: c.initializer("kernel_initializer", "glorot_uniform")?,
            recurrent_initializer: c.initializer("recurrent_initializer", "orthogonal")?,
            bias_initializer: c.initializer("bias_initializer", "zeros")?,
            unit_forget_bias: kind == RnnKind::Lstm && c.bool_or("unit_forget_bias", true)?,
            reset_after: kind == RnnKind::Gru && c.bool_or("reset_after", true)?,
            return_sequences: c.bool_or("return_sequences", false)?,
            go_backwards: c.bool_or("go_backwards", false)?,
            time_aligned: false,
            params: Vec::new(),
        })
    }

    pub fn units(&self) -> usize {
        self.units
    }

    pub fn go_backwards(&self) -> bool {
        self.go_backwards
    }

    /// Renames the layer (the `forward_` / `backward_` copies of a Bidirectional wrapper).
    pub fn set_name(&mut self, name: String) {
        self.name = name;
    }

    /// The same layer reading the other way (a Bidirectional wrapper's backward copy).
    pub fn reversed(&self, name: String) -> Recurrent {
        Recurrent {
            kind: self.kind,
            name,
            units: self.units,
            activation: self.activation,
            recurrent_activation: self.recurrent_activation,
            use_bias: self.use_bias,
            kernel_initializer: self.kernel_initializer,
            recurrent_initializer: self.recurrent_initializer,
            bias_initializer: self.bias_initializer,
            unit_forget_bias: self.unit_forget_bias,
            reset_after: self.reset_after,
            return_sequences: self.return_sequences,
            go_backwards: !self.go_backwards,
            time_aligned: false,
            params: Vec::new(),
        }
    }

    /// Moves the built weights out (a Bidirectional wrapper keeps both layers' weights).
    pub fn take_params(&mut self) -> Vec<Param> {
        std::mem::take(&mut self.params)
    }

    /// The `.keras` groups of this layer placed at `prefix` (`""`, or `forward_layer/`
    /// inside a Bidirectional): the layer's own empty `vars`, and its cell's weights.
    pub fn var_groups(&self, prefix: &str) -> Vec<VarGroup> {
        self.var_groups_from(prefix, 0)
    }

    /// As `var_groups`, with this layer's weights starting at `first` in the owner's list.
    pub fn var_groups_from(&self, prefix: &str, first: usize) -> Vec<VarGroup> {
        let cell = match self.kind {
            RnnKind::Simple => "simple_rnn_cell",
            RnnKind::Lstm => "lstm_cell",
            RnnKind::Gru => "gru_cell",
        };
        let own = prefix.trim_end_matches('/').to_string();
        vec![
            VarGroup {
                sub: own,
                name: self.name.clone(),
                weights: 0..0,
            },
            VarGroup {
                sub: format!("{prefix}cell"),
                name: cell.to_string(),
                weights: first..first + self.weight_count(),
            },
        ]
    }

    /// Kernel, recurrent kernel and (with `use_bias`) bias.
    pub fn weight_count(&self) -> usize {
        2 + usize::from(self.use_bias)
    }

    fn check_input(&self, input_shape: &[usize]) -> Result<usize> {
        match input_shape {
            [_steps, features] => Ok(*features),
            _ => Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: format!(
                    "expects inputs of rank 3 (batch, steps, features), got shape {}",
                    crate::layers::spatial::batch_shape_str(input_shape)
                ),
            }),
        }
    }
}

impl Layer for Recurrent {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        match self.kind {
            RnnKind::Simple => "SimpleRNN",
            RnnKind::Lstm => "LSTM",
            RnnKind::Gru => "GRU",
        }
    }

    fn keras_var_groups(&self) -> Vec<VarGroup> {
        self.var_groups("")
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        let features = self.check_input(input_shape)?;
        let (u, g) = (self.units, self.kind.gates());
        let mut params = vec![
            Param::init(
                "kernel",
                vec![features, g * u],
                self.kernel_initializer,
                true,
            )?,
            Param::init(
                "recurrent_kernel",
                vec![u, g * u],
                self.recurrent_initializer,
                true,
            )?,
        ];
        if self.use_bias {
            let shape = if self.reset_after {
                vec![2, g * u]
            } else {
                vec![g * u]
            };
            let mut bias = Param::init("bias", shape, self.bias_initializer, true)?;
            if self.unit_forget_bias {
                // Keras starts the forget gate open: its bias block is 1.
                bias.value.host_mut()[u..2 * u].fill(1.0);
            }
            params.push(bias);
        }
        self.params = params;
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let features = self.check_input(input_shape)?;
        if let Some(k) = self.params.first() {
            if k.value.shape()[0] != features {
                return Err(Error::LayerInput {
                    layer: self.name.clone(),
                    msg: format!(
                        "expects {} features per step, got input shape {}",
                        k.value.shape()[0],
                        shape_str(input_shape)
                    ),
                });
            }
        }
        Ok(if self.return_sequences {
            vec![input_shape[0], self.units]
        } else {
            vec![self.units]
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
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        let (b, s, f) = (shape[0], shape[1], shape[2]);
        let (u, g) = (self.units, self.kind.gates());
        let (kernel, recurrent) = (params[0], params[1]);
        // Biases: added to the inputs' projection, and (GRU reset_after) to the recurrent one.
        let (input_bias, recurrent_bias) = match params.get(2) {
            None => (None, None),
            Some(&bias) if self.reset_after => {
                let flat = reshape(tape, bias, vec![2 * g * u])?;
                (
                    Some(columns(tape, flat, 0, g * u)?),
                    Some(columns(tape, flat, g * u, g * u)?),
                )
            }
            Some(&bias) => (Some(bias), None),
        };
        // Every step's input projection in one product: (b * s, f) x (f, g * u).
        let flat = reshape(tape, x, vec![b * s, f])?;
        let mut proj = matmul(tape, flat, kernel)?;
        if let Some(bias) = input_bias {
            proj = bias_add(tape, proj, bias)?;
        }
        let proj = reshape(tape, proj, vec![b, s, g * u])?;
        let mut h = tape.leaf(Tensor::zeros(&[b, u]), false);
        let mut c = tape.leaf(Tensor::zeros(&[b, u]), false);
        let order: Vec<usize> = if self.go_backwards {
            (0..s).rev().collect()
        } else {
            (0..s).collect()
        };
        let (act, rec) = (self.activation, self.recurrent_activation);
        let mut outputs = Vec::with_capacity(if self.return_sequences { s } else { 0 });
        for t in order {
            let xt = step(tape, proj, t)?;
            h = match self.kind {
                RnnKind::Simple => {
                    let hu = matmul(tape, h, recurrent)?;
                    let z = add(tape, xt, hu)?;
                    activation(tape, z, act)
                }
                RnnKind::Lstm => {
                    let hu = matmul(tape, h, recurrent)?;
                    let z = add(tape, xt, hu)?;
                    let mut gate = |k: usize, a: Activation| -> Result<Var> {
                        let zk = columns(tape, z, k * u, u)?;
                        Ok(activation(tape, zk, a))
                    };
                    let (i, fg, cand, o) =
                        (gate(0, rec)?, gate(1, rec)?, gate(2, act)?, gate(3, rec)?);
                    let keep = mul(tape, fg, c)?;
                    let write = mul(tape, i, cand)?;
                    c = add(tape, keep, write)?;
                    let squashed = activation(tape, c, act);
                    mul(tape, o, squashed)?
                }
                RnnKind::Gru => {
                    let xz = columns(tape, xt, 0, u)?;
                    let xr = columns(tape, xt, u, u)?;
                    let xh = columns(tape, xt, 2 * u, u)?;
                    let (z, candidate) = if self.reset_after {
                        let mut hu = matmul(tape, h, recurrent)?;
                        if let Some(rb) = recurrent_bias {
                            hu = bias_add(tape, hu, rb)?;
                        }
                        let (rz, rr, rh) = (
                            columns(tape, hu, 0, u)?,
                            columns(tape, hu, u, u)?,
                            columns(tape, hu, 2 * u, u)?,
                        );
                        let zs = add(tape, xz, rz)?;
                        let z = activation(tape, zs, rec);
                        let rs = add(tape, xr, rr)?;
                        let r = activation(tape, rs, rec);
                        let gated = mul(tape, r, rh)?;
                        let hs = add(tape, xh, gated)?;
                        (z, activation(tape, hs, act))
                    } else {
                        let u_zr = columns(tape, recurrent, 0, 2 * u)?;
                        let u_h = columns(tape, recurrent, 2 * u, u)?;
                        let hu = matmul(tape, h, u_zr)?;
                        let zs = {
                            let rz = columns(tape, hu, 0, u)?;
                            add(tape, xz, rz)?
                        };
                        let z = activation(tape, zs, rec);
                        let rs = {
                            let rr = columns(tape, hu, u, u)?;
                            add(tape, xr, rr)?
                        };
                        let r = activation(tape, rs, rec);
                        let rh = mul(tape, r, h)?;
                        let rhu = matmul(tape, rh, u_h)?;
                        let hs = add(tape, xh, rhu)?;
                        (z, activation(tape, hs, act))
                    };
                    // h = z * h + (1 - z) * candidate
                    let kept = mul(tape, z, h)?;
                    let one_minus = affine(tape, z, -1.0, 1.0);
                    let fresh = mul(tape, one_minus, candidate)?;
                    add(tape, kept, fresh)?
                }
            };
            if self.return_sequences {
                outputs.push(h);
            }
        }
        if self.return_sequences {
            if self.go_backwards && self.time_aligned {
                outputs.reverse();
            }
            stack(tape, &outputs)
        } else {
            Ok(h)
        }
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let mut out = vec![
            ("units", ConfigValue::Int(self.units as i64)),
            (
                "activation",
                ConfigValue::Str(self.activation.name().into()),
            ),
        ];
        if self.kind != RnnKind::Simple {
            out.push((
                "recurrent_activation",
                ConfigValue::Str(self.recurrent_activation.name().into()),
            ));
        }
        out.extend([
            ("use_bias", ConfigValue::Bool(self.use_bias)),
            (
                "kernel_initializer",
                ConfigValue::Str(self.kernel_initializer.name().into()),
            ),
            (
                "recurrent_initializer",
                ConfigValue::Str(self.recurrent_initializer.name().into()),
            ),
            (
                "bias_initializer",
                ConfigValue::Str(self.bias_initializer.name().into()),
            ),
        ]);
        match self.kind {
            RnnKind::Lstm => {
                out.push(("unit_forget_bias", ConfigValue::Bool(self.unit_forget_bias)))
            }
            RnnKind::Gru => out.push(("reset_after", ConfigValue::Bool(self.reset_after))),
            RnnKind::Simple => {}
        }
        out.extend([
            ("dropout", ConfigValue::Float(0.0)),
            ("recurrent_dropout", ConfigValue::Float(0.0)),
            ("return_sequences", ConfigValue::Bool(self.return_sequences)),
            ("return_state", ConfigValue::Bool(false)),
            ("go_backwards", ConfigValue::Bool(self.go_backwards)),
            ("stateful", ConfigValue::Bool(false)),
            ("unroll", ConfigValue::Bool(false)),
            ("zero_output_for_mask", ConfigValue::Bool(false)),
        ]);
        out
    }
}
