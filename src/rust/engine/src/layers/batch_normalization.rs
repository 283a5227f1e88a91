//! BatchNormalization over the last (channels) axis, with Keras 3's defaults and weight
//! order [gamma, beta, moving_mean, moving_variance]. Training normalizes with the
//! batch's statistics and leaves them in `ForwardCtx::batch_state`; `update_state` then
//! moves the averages: moving = moving * momentum + batch * (1 - momentum).

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, shape_str, Error, Result};
use crate::init::Initializer;
use crate::layers::registry::Config;
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::ops::batch_norm::{batch_norm_inference, batch_norm_train};
use crate::tensor::Tensor;

pub struct BatchNormalization {
    name: String,
    /// Keras's `axis`, counting the batch axis: -1, or the index of the last axis
    /// (ResNet50 writes 3 for images); other axes are not supported yet.
    axis: i64,
    momentum: f64,
    epsilon: f64,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    moving_mean_initializer: Initializer,
    moving_variance_initializer: Initializer,
    params: Vec<Param>,
}

impl BatchNormalization {
    pub fn from_config(c: &Config) -> Result<BatchNormalization> {
        let axis = c.f64_or("axis", -1.0)?;
        if !(axis == -1.0 || (axis >= 1.0 && axis.fract() == 0.0 && axis <= 8.0)) {
            // Keras allows any axis; channels_last models only need the last one.
            return Err(invalid_arg(
                "axis",
                format!("other than the channels (last) axis is not supported yet (got {axis})"),
            ));
        }
        let axis = axis as i64;
        let momentum = c.f64_or("momentum", 0.99)?;
        if !(0.0..=1.0).contains(&momentum) {
            return Err(invalid_arg(
                "momentum",
                format!("must be in [0, 1], not {momentum}"),
            ));
        }
        let epsilon = c.f64_or("epsilon", 1e-3)?;
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(invalid_arg(
                "epsilon",
                format!("must be a positive number, not {epsilon}"),
            ));
        }
        Ok(BatchNormalization {
            name: c
                .name()?
                .unwrap_or_else(|| unique_name("batch_normalization")),
            axis,
            momentum,
            epsilon,
            center: c.bool_or("center", true)?,
            scale: c.bool_or("scale", true)?,
            beta_initializer: c.initializer("beta_initializer", "zeros")?,
            gamma_initializer: c.initializer("gamma_initializer", "ones")?,
            moving_mean_initializer: c.initializer("moving_mean_initializer", "zeros")?,
            moving_variance_initializer: c.initializer("moving_variance_initializer", "ones")?,
            params: Vec::new(),
        })
    }

    fn param(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// Whether `fit()` uses batch statistics: a frozen layer runs in inference mode, as
    /// in Keras 3.
    fn trains(&self) -> bool {
        self.params
            .iter()
            .filter(|p| p.name == "gamma" || p.name == "beta")
            .all(|p| p.trainable)
    }

    fn channels(&self) -> Option<usize> {
        self.params.last().map(|p| p.value.numel())
    }

    /// `axis` must name the last axis of these samples (shape without the batch).
    fn check_axis(&self, input_shape: &[usize]) -> Result<()> {
        if self.axis != -1 && self.axis as usize != input_shape.len() {
            return Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: format!(
                    "normalizes axis {}, but only the last (channels) axis is supported; inputs have shape {}",
                    self.axis,
                    shape_str(input_shape)
                ),
            });
        }
        Ok(())
    }
}

impl Layer for BatchNormalization {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        self.check_axis(input_shape)?;
        let c = *input_shape.last().ok_or_else(|| Error::LayerInput {
            layer: self.name.clone(),
            msg: "needs inputs with at least one axis besides the batch".into(),
        })?;
        let mut params = Vec::new();
        let mut make = |name, init, trainable| -> Result<()> {
            params.push(Param::init(name, vec![c], init, trainable)?);
            Ok(())
        };
        if self.scale {
            make("gamma", self.gamma_initializer, true)?;
        }
        if self.center {
            make("beta", self.beta_initializer, true)?;
        }
        make("moving_mean", self.moving_mean_initializer, false)?;
        make("moving_variance", self.moving_variance_initializer, false)?;
        self.params = params;
        Ok(())
    }

    fn is_built(&self) -> bool {
        !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        self.check_axis(input_shape)?;
        let last = input_shape.last().copied();
        match (last, self.channels()) {
            (None, _) => Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: "needs inputs with at least one axis besides the batch".into(),
            }),
            (Some(got), Some(want)) if got != want => Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: format!(
                    "expects {want} channels on the last axis, got input shape {}",
                    shape_str(input_shape)
                ),
            }),
            _ => Ok(input_shape.to_vec()),
        }
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
        let c = self
            .channels()
            .ok_or_else(|| Error::State("layer not built".into()))?;
        let var_of = |tape: &mut Tape, name: &str, fill: f32| match self.param(name) {
            Some(i) => params[i],
            None => tape.leaf(
                Tensor::from_vec(vec![c], vec![fill; c]).expect("c values"),
                false,
            ),
        };
        let gamma = var_of(tape, "gamma", 1.0);
        let beta = var_of(tape, "beta", 0.0);
        let eps = self.epsilon as f32;
        if ctx.training && ctx.trainable && self.trains() {
            let (y, mean, var) = batch_norm_train(tape, x, gamma, beta, eps)?;
            ctx.batch_state = Some(vec![mean, var]);
            Ok(y)
        } else {
            let moving = |name| &self.params[self.param(name).expect("built")].value;
            batch_norm_inference(
                tape,
                x,
                gamma,
                beta,
                moving("moving_mean"),
                moving("moving_variance"),
                eps,
            )
        }
    }

    fn uses_batch_statistics(&self) -> bool {
        self.trains()
    }

    fn update_state(&mut self, batch_state: Vec<Tensor>) -> Result<()> {
        let m = self.momentum as f32;
        for (name, batch) in ["moving_mean", "moving_variance"].iter().zip(batch_state) {
            let i = self.param(name).expect("built before training");
            let moving = self.params[i].value.host_mut();
            for (v, b) in moving.iter_mut().zip(batch.host()) {
                *v = *v * m + b * (1.0 - m);
            }
        }
        Ok(())
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let init = |i: Initializer| ConfigValue::Str(i.name().into());
        vec![
            ("axis", ConfigValue::Int(self.axis)),
            ("momentum", ConfigValue::Float(self.momentum)),
            ("epsilon", ConfigValue::Float(self.epsilon)),
            ("center", ConfigValue::Bool(self.center)),
            ("scale", ConfigValue::Bool(self.scale)),
            ("beta_initializer", init(self.beta_initializer)),
            ("gamma_initializer", init(self.gamma_initializer)),
            (
                "moving_mean_initializer",
                init(self.moving_mean_initializer),
            ),
            (
                "moving_variance_initializer",
                init(self.moving_variance_initializer),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::registry::from_config;

    #[test]
    fn weights_follow_keras_order_and_moving_averages_move() {
        let mut l = from_config("BatchNormalization", &[]).unwrap();
        assert!(l.name().starts_with("batch_normalization"));
        l.build(&[4, 4, 3]).unwrap();
        let names: Vec<&str> = l.params().iter().map(|p| p.name).collect();
        assert_eq!(names, ["gamma", "beta", "moving_mean", "moving_variance"]);
        assert_eq!(l.params()[3].value.to_vec(), vec![1.0; 3]);
        assert!(l.uses_batch_statistics());
        let mut tape = Tape::new();
        let x = tape.leaf(
            Tensor::from_vec(vec![2, 3], vec![1., 2., 3., 3., 2., 7.]).unwrap(),
            false,
        );
        let ps: Vec<Var> = l
            .params()
            .iter()
            .map(|p| tape.leaf(p.value.clone(), p.trainable))
            .collect();
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: true,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        l.forward(&mut tape, x, &ps, &mut ctx).unwrap();
        let state = ctx.batch_state.take().unwrap();
        assert_eq!(state[0].to_vec(), vec![2.0, 2.0, 5.0]);
        assert_eq!(state[1].to_vec(), vec![1.0, 0.0, 4.0]);
        l.update_state(state).unwrap();
        let mm = l.params()[2].value.to_vec();
        let mv = l.params()[3].value.to_vec();
        for (a, w) in mm.iter().zip([0.02, 0.02, 0.05]) {
            assert!((a - w).abs() < 1e-6);
        }
        for (a, w) in mv.iter().zip([1.0, 0.99, 1.03]) {
            assert!((a - w).abs() < 1e-6);
        }
    }

    #[test]
    fn frozen_layers_use_moving_statistics() {
        let mut l = from_config(
            "BatchNormalization",
            &[("center".to_string(), ConfigValue::Bool(false))],
        )
        .unwrap();
        l.build(&[2]).unwrap();
        assert_eq!(l.params().len(), 3);
        l.params_mut()[0].trainable = false;
        assert!(!l.uses_batch_statistics());
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(vec![1, 2], vec![3., 5.]).unwrap(), false);
        let ps: Vec<Var> = l
            .params()
            .iter()
            .map(|p| tape.leaf(p.value.clone(), false))
            .collect();
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: true,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        let y = l.forward(&mut tape, x, &ps, &mut ctx).unwrap();
        assert!(ctx.batch_state.is_none());
        let s = 1.0 / (1.0f32 + 1e-3).sqrt();
        assert_eq!(tape.value(y).to_vec(), vec![3.0 * s, 5.0 * s]);
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = from_config(
            "BatchNormalization",
            &[("momentum".to_string(), ConfigValue::Float(1.5))],
        )
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "`momentum` must be in [0, 1], not 1.5");
    }

    #[test]
    fn the_last_axis_may_be_given_by_its_index() {
        let axis = |v: i64| vec![("axis".to_string(), ConfigValue::Int(v))];
        // Keras's ResNet50 writes axis 3 for (batch, height, width, channels).
        let mut l = from_config("BatchNormalization", &axis(3)).unwrap();
        l.build(&[5, 5, 2]).unwrap();
        assert_eq!(l.output_shape(&[5, 5, 2]).unwrap(), vec![5, 5, 2]);
        assert!(l.config().contains(&("axis", ConfigValue::Int(3))));
        let mut l = from_config("BatchNormalization", &axis(1)).unwrap();
        let e = l.build(&[5, 5, 2]).unwrap_err().to_string();
        assert!(e.contains("normalizes axis 1"), "{e}");
        assert!(from_config("BatchNormalization", &axis(0)).is_err());
    }
}
