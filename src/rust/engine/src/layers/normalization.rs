//! Normalization, Keras's preprocessing layer: `(x - mean) / max(sqrt(variance), 1e-7)`
//! per feature (the last axis, `axis = -1`) or over everything (`axis = None`). The
//! statistics are weights that do not train (`mean`, `variance`, `count`), set by
//! `adapt()` in R, or constants given in the config (then the layer has no weights).

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{invalid_arg, Error, Result};
use crate::layers::registry::Config;
use crate::layers::{ConfigValue, ForwardCtx, Layer, Param};
use crate::naming::unique_name;
use crate::tensor::Tensor;

/// Keras's `backend.epsilon()`: the smallest standard deviation divided by.
const EPSILON: f32 = 1e-7;

pub struct Normalization {
    name: String,
    /// Per feature (last axis) or one value for the whole input.
    per_feature: bool,
    /// Statistics fixed in the config (`mean = `, `variance = `), if given.
    fixed: Option<(Vec<f64>, Vec<f64>)>,
    params: Vec<Param>,
}

fn numbers(c: &Config, key: &str) -> Result<Option<Vec<f64>>> {
    let num = |v: &ConfigValue| match v {
        ConfigValue::Float(f) => Some(*f),
        ConfigValue::Int(i) => Some(*i as f64),
        _ => None,
    };
    match c.get(key) {
        None => Ok(None),
        Some(ConfigValue::List(items)) => items
            .iter()
            .map(|v| num(v).ok_or_else(|| invalid_arg(key, "must hold numbers")))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => num(v)
            .map(|x| Some(vec![x]))
            .ok_or_else(|| invalid_arg(key, "must be a number or numbers")),
    }
}

impl Normalization {
    pub fn from_config(c: &Config) -> Result<Normalization> {
        if c.bool_or("invert", false)? {
            return Err(invalid_arg("invert", "TRUE is not supported yet"));
        }
        // Keras writes the axis as a tuple: `[-1]`, or `[]` (its `axis = None`) to
        // normalize over all values; `null` (absent here) means the same.
        let per_feature = match c.get("axis") {
            None => false,
            Some(ConfigValue::List(items)) if items.is_empty() => false,
            Some(ConfigValue::Int(-1)) => true,
            Some(ConfigValue::List(items)) if items.as_slice() == [ConfigValue::Int(-1)] => true,
            Some(v) => {
                return Err(invalid_arg(
                    "axis",
                    format!("{v:?} is not supported yet; only -1 (the features) or NULL"),
                ))
            }
        };
        let fixed = match (numbers(c, "mean")?, numbers(c, "variance")?) {
            (Some(m), Some(v)) => {
                if m.len() != v.len() || v.iter().any(|x| !(*x >= 0.0)) {
                    return Err(invalid_arg(
                        "variance",
                        "must be non-negative, one value per mean",
                    ));
                }
                Some((m, v))
            }
            (None, None) => None,
            _ => return Err(invalid_arg("mean", "and `variance` must be given together")),
        };
        Ok(Normalization {
            name: c.name()?.unwrap_or_else(|| unique_name("normalization")),
            per_feature,
            fixed,
            params: Vec::new(),
        })
    }

    /// Mean and 1 / standard deviation per channel of inputs with `channels` features.
    fn statistics(&self, channels: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mean, var): (Vec<f32>, Vec<f32>) = match &self.fixed {
            Some((m, v)) => (
                m.iter().map(|&x| x as f32).collect(),
                v.iter().map(|&x| x as f32).collect(),
            ),
            None => (self.params[0].value.to_vec(), self.params[1].value.to_vec()),
        };
        let expand = |v: Vec<f32>| -> Result<Vec<f32>> {
            match v.len() {
                1 => Ok(vec![v[0]; channels]),
                n if n == channels => Ok(v),
                n => Err(Error::LayerInput {
                    layer: self.name.clone(),
                    msg: format!("holds statistics for {n} features, got inputs with {channels}"),
                }),
            }
        };
        let inv: Vec<f32> = expand(var)?
            .iter()
            .map(|v| 1.0 / v.max(0.0).sqrt().max(EPSILON))
            .collect();
        Ok((expand(mean)?, inv))
    }
}

struct NormalizeBackward {
    scale: Tensor,
    zeros: Tensor,
}

impl Backward for NormalizeBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::scale_shift(g, &self.scale, &self.zeros))])
    }
}

impl Layer for Normalization {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Normalization"
    }

    fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        if self.fixed.is_some() {
            return Ok(());
        }
        let shape = if self.per_feature {
            vec![*input_shape.last().unwrap_or(&1)]
        } else {
            vec![]
        };
        let stat = |name, v: f32| Param {
            name,
            value: Tensor::from_vec(shape.clone(), vec![v; shape.iter().product()])
                .expect("sizes match"),
            trainable: false,
        };
        self.params = vec![
            stat("mean", 0.0),
            stat("variance", 1.0),
            Param {
                name: "count",
                value: Tensor::scalar(0.0),
                trainable: false,
            },
        ];
        Ok(())
    }

    fn is_built(&self) -> bool {
        self.fixed.is_some() || !self.params.is_empty()
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        if self.per_feature {
            if let Some(m) = self.params.first() {
                let (want, got) = (m.value.numel(), *input_shape.last().unwrap_or(&0));
                if want != got {
                    return Err(Error::LayerInput {
                        layer: self.name.clone(),
                        msg: format!("was adapted to {want} features, got inputs with {got}"),
                    });
                }
            }
        }
        Ok(input_shape.to_vec())
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
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        // The statistics are constants: they come from the layer, not from the tape.
        let xv = tape.value(x);
        let channels = *xv.shape().last().unwrap_or(&1);
        let (mean, inv) = self.statistics(channels)?;
        let shift: Vec<f32> = mean.iter().zip(&inv).map(|(m, s)| -m * s).collect();
        let scale = Tensor::from_vec(vec![channels], inv)?;
        let shift = Tensor::from_vec(vec![channels], shift)?;
        let y = device::scale_shift(xv, &scale, &shift);
        let back = NormalizeBackward {
            scale,
            zeros: Tensor::zeros(&[channels]),
        };
        Ok(tape.push(y, &[x], Box::new(back)))
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let axis = if self.per_feature {
            vec![ConfigValue::Int(-1)]
        } else {
            Vec::new()
        };
        let mut out = vec![("axis", ConfigValue::List(axis))];
        out.push(("invert", ConfigValue::Bool(false)));
        if let Some((m, v)) = &self.fixed {
            let list =
                |xs: &[f64]| ConfigValue::List(xs.iter().map(|&x| ConfigValue::Float(x)).collect());
            out.push(("mean", list(m)));
            out.push(("variance", list(v)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::registry::from_config;
    use crate::ops::gradcheck::{check, random_tensor};

    fn run(l: &dyn Layer, x: Tensor) -> Vec<f32> {
        let mut tape = Tape::new();
        let xv = tape.leaf(x, true);
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: false,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        let y = l.forward(&mut tape, xv, &[], &mut ctx).unwrap();
        tape.value(y).to_vec()
    }

    #[test]
    fn statistics_normalize_each_feature_as_keras() {
        let axis = ConfigValue::List(vec![ConfigValue::Int(-1)]);
        let mut l = from_config("Normalization", &[("axis".into(), axis)]).unwrap();
        l.build(&[2]).unwrap();
        let names: Vec<&str> = l.params().iter().map(|p| p.name).collect();
        assert_eq!(names, ["mean", "variance", "count"]);
        // Keras's adapt() on [[1, 2], [3, 6], [5, 10]]: mean (3, 6), variance (8/3, 32/3).
        l.params_mut()[0].value = Tensor::from_vec(vec![2], vec![3.0, 6.0]).unwrap();
        l.params_mut()[1].value = Tensor::from_vec(vec![2], vec![8.0 / 3.0, 32.0 / 3.0]).unwrap();
        let y = run(
            &*l,
            Tensor::from_vec(vec![3, 2], vec![1., 2., 3., 6., 5., 10.]).unwrap(),
        );
        for (a, b) in y
            .iter()
            .zip([-1.2247448, -1.2247448, 0.0, 0.0, 1.2247448, 1.2247448])
        {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
        // Fixed statistics from the config, one for all features.
        let f = |v: f64| ConfigValue::List(vec![ConfigValue::Float(v)]);
        let fixed = from_config(
            "Normalization",
            &[("mean".into(), f(1.0)), ("variance".into(), f(4.0))],
        )
        .unwrap();
        assert!(fixed.is_built() && fixed.params().is_empty());
        assert_eq!(
            run(
                &*fixed,
                Tensor::from_vec(vec![1, 2], vec![3.0, 5.0]).unwrap()
            ),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let f =
            |v: f64| ConfigValue::List(vec![ConfigValue::Float(v), ConfigValue::Float(v * 2.0)]);
        let l = from_config(
            "Normalization",
            &[("mean".into(), f(0.5)), ("variance".into(), f(2.0))],
        )
        .unwrap();
        check(
            vec![random_tensor(&[3, 2], 8, 1.0)],
            &[true],
            |t, v| {
                let mut rng = crate::rng::Noise::new(0, 0);
                let mut ctx = ForwardCtx {
                    training: false,
                    rng: &mut rng,
                    logits: false,
                    batch_state: None,
                    trainable: true,
                };
                l.forward(t, v[0], &[], &mut ctx).unwrap()
            },
            "normalization",
        );
    }
}
