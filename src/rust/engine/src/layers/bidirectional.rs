//! Bidirectional: a recurrent layer run forwards and a copy run backwards over the same
//! sequences, their outputs merged (Keras's `merge_mode`: concat, sum, ave, mul). With
//! `return_sequences` the backward outputs are put back in time order before merging, as
//! Keras does. Weights: the forward layer's, then the backward layer's.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Result};
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param, Recurrent, VarGroup};
use crate::naming::unique_name;
use crate::ops::math::affine;
use crate::ops::merge::{concatenate, elementwise, Elementwise};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    Concat,
    Sum,
    Ave,
    Mul,
}

impl MergeMode {
    pub fn from_name(name: &str) -> Result<MergeMode> {
        Ok(match name {
            "concat" => MergeMode::Concat,
            "sum" => MergeMode::Sum,
            "ave" => MergeMode::Ave,
            "mul" => MergeMode::Mul,
            other => {
                return Err(invalid_arg(
                    "merge_mode",
                    format!("must be \"concat\", \"sum\", \"ave\" or \"mul\", not \"{other}\""),
                ))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            MergeMode::Concat => "concat",
            MergeMode::Sum => "sum",
            MergeMode::Ave => "ave",
            MergeMode::Mul => "mul",
        }
    }
}

pub struct Bidirectional {
    name: String,
    forward: Recurrent,
    backward: Recurrent,
    merge_mode: MergeMode,
    params: Vec<Param>,
}

impl Bidirectional {
    /// Wraps `layer`; `backward` is its reversed copy unless given (as Keras's config
    /// does). The copies are named `forward_<name>` and `backward_<name>`, as in Keras.
    pub fn new(
        mut layer: Recurrent,
        backward: Option<Recurrent>,
        merge_mode: MergeMode,
        name: Option<String>,
    ) -> Result<Bidirectional> {
        let base = layer.name().trim_start_matches("forward_").to_string();
        layer.set_name(format!("forward_{base}"));
        let mut backward = match backward {
            Some(b) => b,
            None => layer.reversed(format!("backward_{base}")),
        };
        if backward.go_backwards() == layer.go_backwards() {
            return Err(invalid_arg(
                "backward_layer",
                "must read the sequence the other way (`go_backwards`) than `layer`",
            ));
        }
        if backward.units() != layer.units() && merge_mode != MergeMode::Concat {
            return Err(invalid_arg(
                "backward_layer",
                "must have as many units as `layer` unless merge_mode is \"concat\"",
            ));
        }
        layer.time_aligned = true;
        backward.time_aligned = true;
        Ok(Bidirectional {
            name: name.unwrap_or_else(|| unique_name("bidirectional")),
            forward: layer,
            backward,
            merge_mode,
            params: Vec::new(),
        })
    }

    fn split(&self) -> usize {
        self.forward.weight_count()
    }
}

impl Layer for Bidirectional {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Bidirectional"
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        self.forward.build(input_shape)?;
        self.backward.build(input_shape)?;
        let mut params = self.forward.take_params();
        params.extend(self.backward.take_params());
        self.params = params;
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut f = self.forward.output_shape(input_shape)?;
        let b = self.backward.output_shape(input_shape)?;
        if self.merge_mode == MergeMode::Concat {
            *f.last_mut().expect("units") += b.last().copied().unwrap_or(0);
        }
        Ok(f)
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
        let k = self.split();
        let f = self.forward.forward(tape, x, &params[..k], ctx)?;
        let b = self.backward.forward(tape, x, &params[k..], ctx)?;
        Ok(match self.merge_mode {
            MergeMode::Concat => concatenate(tape, &[f, b], -1)?,
            MergeMode::Sum => elementwise(tape, Elementwise::Add, &[f, b])?,
            MergeMode::Mul => elementwise(tape, Elementwise::Multiply, &[f, b])?,
            MergeMode::Ave => {
                let s = elementwise(tape, Elementwise::Add, &[f, b])?;
                affine(tape, s, 0.5, 0.0)
            }
        })
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![(
            "merge_mode",
            ConfigValue::Str(self.merge_mode.name().into()),
        )]
    }

    fn wrapped(&self) -> Vec<(&'static str, &dyn Layer)> {
        vec![("layer", &self.forward), ("backward_layer", &self.backward)]
    }

    fn keras_var_groups(&self) -> Vec<VarGroup> {
        let mut groups = vec![VarGroup {
            sub: String::new(),
            name: self.name.clone(),
            weights: 0..0,
        }];
        groups.extend(self.forward.var_groups_from("forward_layer/", 0));
        groups.extend(
            self.backward
                .var_groups_from("backward_layer/", self.split()),
        );
        groups
    }
}
