//! Sequential models: a chain of layers with an optional known input shape, plus what
//! `compile()` set (optimizer, loss, metric names).

use rand::rngs::SmallRng;

use crate::autodiff::{Tape, Var};
use crate::error::{shape_str, Error, Result};
use crate::layers::{ForwardCtx, Layer};
use crate::losses::Loss;
use crate::naming::unique_name;
use crate::ops::activation::Activation;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::tensor::Tensor;

pub struct Compiled {
    pub optimizer: Optimizer,
    pub loss: Loss,
    /// Metric names as the user gave them; resolved against shapes at fit time.
    pub metrics: Vec<String>,
}

/// What `summary()` shows of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub class_name: String,
    /// Output shape without the batch axis; None while the model is not built.
    pub output_shape: Option<Vec<usize>>,
    pub params: usize,
    pub trainable_params: usize,
}

pub struct Sequential {
    pub name: String,
    input_shape: Option<Vec<usize>>,
    layers: Vec<Box<dyn Layer>>,
    pub compiled: Option<Compiled>,
}

impl Sequential {
    pub fn new(name: Option<String>, input_shape: Option<Vec<usize>>) -> Result<Sequential> {
        if let Some(s) = &input_shape {
            if s.is_empty() || s.contains(&0) {
                return Err(crate::error::invalid_arg(
                    "input_shape",
                    format!("must hold positive sizes, not {}", shape_str(s)),
                ));
            }
        }
        Ok(Sequential {
            name: name.unwrap_or_else(|| unique_name("sequential")),
            input_shape,
            layers: Vec::new(),
            compiled: None,
        })
    }

    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    pub fn is_built(&self) -> bool {
        self.input_shape.is_some() && self.layers.iter().all(|l| l.is_built())
    }

    /// Output shape (without batch) after the current layers, if the input is known.
    pub fn output_shape(&self) -> Result<Option<Vec<usize>>> {
        let Some(mut shape) = self.input_shape.clone() else {
            return Ok(None);
        };
        for l in &self.layers {
            shape = l.output_shape(&shape)?;
        }
        Ok(Some(shape))
    }

    /// Appends a layer, building it at once when the input shape is known.
    pub fn add(&mut self, mut layer: Box<dyn Layer>) -> Result<()> {
        if self.layers.iter().any(|l| l.name() == layer.name()) {
            return Err(Error::State(format!(
                "all layers added to a Sequential model should have unique names; name '{}' is already the name of a layer in this model",
                layer.name()
            )));
        }
        if let Some(shape) = self.output_shape()? {
            layer.build(&shape)?;
            layer.output_shape(&shape)?;
        }
        self.layers.push(layer);
        Ok(())
    }

    /// Builds every layer for inputs of `input_shape` (first fit of a model made
    /// without `input_shape`).
    pub fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        if let Some(s) = &self.input_shape {
            if s.as_slice() != input_shape {
                // The first layer that cannot take such samples names itself and the sizes.
                let mut shape = input_shape.to_vec();
                for l in &self.layers {
                    shape = l.output_shape(&shape)?;
                }
                let layer = self
                    .layers
                    .first()
                    .map(|l| l.name().to_string())
                    .unwrap_or_else(|| self.name.clone());
                return Err(Error::LayerInput {
                    layer,
                    msg: format!(
                        "expects samples of shape {}, got {}",
                        shape_str(s),
                        shape_str(input_shape)
                    ),
                });
            }
            return Ok(());
        }
        let mut shape = input_shape.to_vec();
        for l in &mut self.layers {
            if !l.is_built() {
                l.build(&shape)?;
            }
            shape = l.output_shape(&shape)?;
        }
        self.input_shape = Some(input_shape.to_vec());
        Ok(())
    }

    pub fn layer_info(&self) -> Vec<LayerInfo> {
        let mut shape = self.input_shape.clone();
        self.layers
            .iter()
            .map(|l| {
                shape = shape.as_ref().and_then(|s| l.output_shape(s).ok());
                let params = l.params().iter().map(|p| p.value.numel()).sum();
                let trainable_params = l
                    .params()
                    .iter()
                    .filter(|p| p.trainable)
                    .map(|p| p.value.numel())
                    .sum();
                LayerInfo {
                    name: l.name().into(),
                    class_name: l.class_name().into(),
                    output_shape: shape.clone(),
                    params,
                    trainable_params,
                }
            })
            .collect()
    }

    pub fn compile(
        &mut self,
        optimizer: OptimizerConfig,
        loss: Loss,
        metrics: Vec<String>,
    ) -> Result<()> {
        for m in &metrics {
            crate::metrics::check_name(m)?;
        }
        self.compiled = Some(Compiled {
            optimizer: Optimizer::new(optimizer)?,
            loss,
            metrics,
        });
        Ok(())
    }

    /// Weights in Keras order: layer by layer, kernel before bias.
    pub fn get_weights(&self) -> Vec<Tensor> {
        self.layers
            .iter()
            .flat_map(|l| l.params().iter().map(|p| p.value.clone()))
            .collect()
    }

    pub fn set_weights(&mut self, weights: Vec<Tensor>) -> Result<()> {
        let expected: Vec<Vec<usize>> = self
            .layers
            .iter()
            .flat_map(|l| l.params().iter().map(|p| p.value.shape().to_vec()))
            .collect();
        if expected.len() != weights.len() {
            return Err(crate::error::invalid_arg(
                "weights",
                format!(
                    "must be a list of {} arrays for this model, not {}",
                    expected.len(),
                    weights.len()
                ),
            ));
        }
        for (i, (e, w)) in expected.iter().zip(&weights).enumerate() {
            if e.as_slice() != w.shape() {
                return Err(crate::error::invalid_arg(
                    "weights",
                    format!(
                        "element {} has shape {}, but the model expects {}",
                        i + 1,
                        shape_str(w.shape()),
                        shape_str(e)
                    ),
                ));
            }
        }
        let mut it = weights.into_iter();
        for l in &mut self.layers {
            for p in l.params_mut() {
                p.value = it.next().expect("counted above");
            }
        }
        Ok(())
    }

    /// One optimizer step on the trainable parameters; each gradient (in the parameters'
    /// order) is a weighted sum of tensors.
    pub fn apply_gradients(&mut self, grads: &[Vec<(f32, &Tensor)>]) -> Result<()> {
        let compiled = self
            .compiled
            .as_mut()
            .ok_or_else(|| Error::State("the model is not compiled".into()))?;
        let mut params: Vec<&mut Tensor> = self
            .layers
            .iter_mut()
            .flat_map(|l| {
                l.params_mut()
                    .iter_mut()
                    .filter(|p| p.trainable)
                    .map(|p| &mut p.value)
            })
            .collect();
        compiled.optimizer.apply_weighted(&mut params, grads);
        Ok(())
    }

    /// Whether the last layer ends in a softmax (so a cross-entropy can use logits).
    pub fn ends_in_softmax(&self) -> bool {
        self.layers.last().and_then(|l| l.output_activation()) == Some(Activation::Softmax)
    }

    /// Puts every parameter on the tape, trainable ones as gradient leaves.
    pub fn param_vars(&self, tape: &mut Tape) -> Vec<Vec<Var>> {
        self.layers
            .iter()
            .map(|l| {
                l.params()
                    .iter()
                    .map(|p| tape.leaf(p.value.clone(), p.trainable))
                    .collect()
            })
            .collect()
    }

    /// Records the forward pass of a batch; with `logits` the last layer stops before
    /// its softmax.
    pub fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        params: &[Vec<Var>],
        training: bool,
        logits: bool,
        rng: &mut SmallRng,
    ) -> Result<Var> {
        Ok(self
            .forward_with_state(tape, x, params, training, logits, rng)?
            .0)
    }

    /// `forward`, also returning the batch statistics that layers left for
    /// `update_state` (by layer index).
    pub fn forward_with_state(
        &self,
        tape: &mut Tape,
        x: Var,
        params: &[Vec<Var>],
        training: bool,
        logits: bool,
        rng: &mut SmallRng,
    ) -> Result<(Var, Vec<(usize, Vec<Tensor>)>)> {
        let mut h = x;
        let mut states = Vec::new();
        let last = self.layers.len().saturating_sub(1);
        for (i, (l, p)) in self.layers.iter().zip(params).enumerate() {
            let mut ctx = ForwardCtx {
                training,
                rng,
                logits: logits && i == last,
                batch_state: None,
            };
            h = l.forward(tape, h, p, &mut ctx)?;
            if let Some(s) = ctx.batch_state {
                states.push((i, s));
            }
        }
        Ok((h, states))
    }

    /// Whether training must see whole batches (some layer uses batch statistics).
    pub fn uses_batch_statistics(&self) -> bool {
        self.layers.iter().any(|l| l.uses_batch_statistics())
    }

    /// Folds batch statistics from `forward_with_state` into the layers' state.
    pub fn update_state(&mut self, states: Vec<(usize, Vec<Tensor>)>) -> Result<()> {
        for (i, s) in states {
            self.layers[i].update_state(s)?;
        }
        Ok(())
    }
}
