//! Layers by Keras class name and config: the one place that turns a config (from R's
//! `layer_*()` functions, later from saved files) into a layer.

use crate::error::{invalid_arg, Error, Result};
use crate::init::Initializer;
use crate::layers::{
    ActivationLayer, BatchNormalization, ConfigValue, Conv, Dense, DepthwiseConv, Dropout,
    Embedding, Flatten, GlobalPooling, Layer, Merge, Normalization, PoolKind, Pooling, Recurrent,
    Rescaling, Reshape, RnnKind, ZeroPadding2D,
};
use crate::ops::activation::Activation;

pub const CLASS_NAMES: &[&str] = &[
    "Dense",
    "Embedding",
    "Rescaling",
    "Normalization",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Dropout",
    "Activation",
    "Conv1D",
    "Conv2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "BatchNormalization",
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "Flatten",
    "Reshape",
    "ZeroPadding2D",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
];

/// A layer's config: field name and value, as Keras's `get_config()` holds them.
pub struct Config<'a>(pub &'a [(String, ConfigValue)]);

impl Config<'_> {
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn name(&self) -> Result<Option<String>> {
        self.opt_str("name")
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(ConfigValue::Str(s)) => Ok(Some(s.clone())),
            Some(v) => Err(invalid_arg(key, format!("must be a string, not {v:?}"))),
        }
    }

    pub fn str_or(&self, key: &str, default: &str) -> Result<String> {
        Ok(self.opt_str(key)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Float(v)) => Ok(*v),
            Some(ConfigValue::Int(v)) => Ok(*v as f64),
            Some(v) => Err(invalid_arg(key, format!("must be a number, not {v:?}"))),
        }
    }

    /// A whole number that may be negative (an axis).
    pub fn int_or(&self, key: &str, default: i64) -> Result<i64> {
        let v = match self.get(key) {
            None => return Ok(default),
            Some(ConfigValue::Int(v)) => return Ok(*v),
            Some(ConfigValue::Float(v)) => *v,
            Some(v) => return Err(invalid_arg(key, format!("must be an integer, not {v:?}"))),
        };
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(invalid_arg(key, format!("must be an integer, not {v}")));
        }
        Ok(v as i64)
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Bool(b)) => Ok(*b),
            Some(v) => Err(invalid_arg(
                key,
                format!("must be TRUE or FALSE, not {v:?}"),
            )),
        }
    }

    /// `positive_int`, or `default` when the key is missing.
    pub fn positive_int_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.positive_int(key),
        }
    }

    pub fn positive_int(&self, key: &str) -> Result<usize> {
        let v = match self.get(key) {
            Some(ConfigValue::Int(v)) => *v as f64,
            Some(ConfigValue::Float(v)) => *v,
            None => return Err(invalid_arg(key, "is missing")),
            Some(v) => {
                return Err(invalid_arg(
                    key,
                    format!("must be a positive integer, not {v:?}"),
                ))
            }
        };
        if v < 1.0 || v.fract() != 0.0 || !v.is_finite() {
            return Err(invalid_arg(
                key,
                format!("must be a positive integer, not {v}"),
            ));
        }
        Ok(v as usize)
    }

    /// An n-tuple of positive integers (`kernel_size`, `strides`, ...): one number means
    /// the same value on every axis, as in Keras.
    pub fn tuple(&self, key: &str, n: usize, default: Option<&[usize]>) -> Result<Vec<usize>> {
        let bad = |v: &dyn std::fmt::Debug| {
            invalid_arg(
                key,
                format!("must be a positive integer or {n} positive integers, not {v:?}"),
            )
        };
        let as_pos = |v: &ConfigValue| -> Option<usize> {
            let f = match v {
                ConfigValue::Int(i) => *i as f64,
                ConfigValue::Float(f) => *f,
                _ => return None,
            };
            (f >= 1.0 && f.fract() == 0.0 && f.is_finite()).then_some(f as usize)
        };
        match self.get(key) {
            None => default
                .map(|d| d.to_vec())
                .ok_or_else(|| invalid_arg(key, "is missing")),
            Some(ConfigValue::List(items)) => {
                let vals: Option<Vec<usize>> = items.iter().map(as_pos).collect();
                match vals {
                    Some(v) if v.len() == n => Ok(v),
                    Some(v) if v.len() == 1 => Ok(vec![v[0]; n]),
                    _ => Err(bad(items)),
                }
            }
            Some(v) => as_pos(v).map(|x| vec![x; n]).ok_or_else(|| bad(v)),
        }
    }

    /// The layer's activation (`linear` when absent).
    pub fn activation(&self) -> Result<Activation> {
        Activation::from_name(&self.str_or("activation", "linear")?)
    }

    pub fn initializer(&self, key: &str, default: &str) -> Result<Initializer> {
        Initializer::from_name(&self.str_or(key, default)?)
    }
}

/// Keras's `noise_shape` (sizes, 0 where Keras says None), if given.
fn noise_shape(c: &Config) -> Result<Option<Vec<usize>>> {
    match c.get("noise_shape") {
        None => Ok(None),
        Some(ConfigValue::List(items)) => items
            .iter()
            .map(|v| match v {
                ConfigValue::Int(i) if *i >= 0 => Ok(*i as usize),
                ConfigValue::Float(f) if *f >= 0.0 && f.fract() == 0.0 => Ok(*f as usize),
                v => Err(invalid_arg(
                    "noise_shape",
                    format!("holds {v:?}, not a size"),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => Err(invalid_arg(
            "noise_shape",
            format!("must be a list of sizes, not {v:?}"),
        )),
    }
}

/// A recurrent layer (SimpleRNN, LSTM, GRU) of class `class_name`, for a wrapper.
pub fn recurrent_from_config(
    class_name: &str,
    config: &[(String, ConfigValue)],
) -> Result<Recurrent> {
    let kind = match class_name {
        "SimpleRNN" => RnnKind::Simple,
        "LSTM" => RnnKind::Lstm,
        "GRU" => RnnKind::Gru,
        other => {
            return Err(invalid_arg(
                "layer",
                format!("must be a recurrent layer (LSTM, GRU or SimpleRNN), not {other}"),
            ))
        }
    };
    Recurrent::from_config(kind, &Config(config))
}

pub fn from_config(class_name: &str, config: &[(String, ConfigValue)]) -> Result<Box<dyn Layer>> {
    let c = Config(config);
    let activation = |c: &Config| Activation::from_name(&c.str_or("activation", "linear")?);
    Ok(match class_name {
        "Dense" => Box::new(Dense::new(
            c.positive_int("units")?,
            activation(&c)?,
            c.bool_or("use_bias", true)?,
            Initializer::from_name(&c.str_or("kernel_initializer", "glorot_uniform")?)?,
            Initializer::from_name(&c.str_or("bias_initializer", "zeros")?)?,
            c.name()?,
        )?),
        "Dropout" => Box::new(
            Dropout::new(c.f64_or("rate", f64::NAN)?, c.name()?)?
                .with_noise_shape(noise_shape(&c)?),
        ),
        "Activation" => Box::new(ActivationLayer::new(activation(&c)?, c.name()?)),
        "Conv1D" => Box::new(Conv::from_config(1, &c)?),
        "Conv2D" => Box::new(Conv::from_config(2, &c)?),
        "BatchNormalization" => Box::new(BatchNormalization::from_config(&c)?),
        "DepthwiseConv2D" => Box::new(DepthwiseConv::from_config(false, &c)?),
        "SeparableConv2D" => Box::new(DepthwiseConv::from_config(true, &c)?),
        "MaxPooling1D" => Box::new(Pooling::from_config(&c, PoolKind::Max, 1)?),
        "MaxPooling2D" => Box::new(Pooling::from_config(&c, PoolKind::Max, 2)?),
        "AveragePooling1D" => Box::new(Pooling::from_config(&c, PoolKind::Average, 1)?),
        "AveragePooling2D" => Box::new(Pooling::from_config(&c, PoolKind::Average, 2)?),
        "GlobalMaxPooling1D" => Box::new(GlobalPooling::from_config(&c, PoolKind::Max, 1)?),
        "GlobalMaxPooling2D" => Box::new(GlobalPooling::from_config(&c, PoolKind::Max, 2)?),
        "GlobalAveragePooling1D" => Box::new(GlobalPooling::from_config(&c, PoolKind::Average, 1)?),
        "GlobalAveragePooling2D" => Box::new(GlobalPooling::from_config(&c, PoolKind::Average, 2)?),
        "Flatten" => Box::new(Flatten::from_config(&c)?),
        "Embedding" => Box::new(Embedding::from_config(&c)?),
        "Rescaling" => Box::new(Rescaling::from_config(&c)?),
        "Normalization" => Box::new(Normalization::from_config(&c)?),
        "SimpleRNN" => Box::new(Recurrent::from_config(RnnKind::Simple, &c)?),
        "LSTM" => Box::new(Recurrent::from_config(RnnKind::Lstm, &c)?),
        "GRU" => Box::new(Recurrent::from_config(RnnKind::Gru, &c)?),
        "Reshape" => Box::new(Reshape::from_config(&c)?),
        "ZeroPadding2D" => Box::new(ZeroPadding2D::from_config(&c)?),
        "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum" | "Concatenate" => {
            Box::new(Merge::from_config(class_name, &c)?)
        }
        _ => {
            return Err(Error::UnknownName {
                kind: "layer class",
                name: class_name.into(),
                known: CLASS_NAMES.to_vec(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, ConfigValue)]) -> Vec<(String, ConfigValue)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn dense_from_config() {
        let c = cfg(&[
            ("units", ConfigValue::Float(8.0)),
            ("activation", ConfigValue::Str("relu".into())),
            ("name", ConfigValue::Str("d1".into())),
        ]);
        let l = from_config("Dense", &c).unwrap();
        assert_eq!(l.name(), "d1");
        assert_eq!(l.output_activation(), Some(Activation::Relu));
    }

    #[test]
    fn bad_configs_name_the_argument() {
        let e = from_config("Dense", &cfg(&[("units", ConfigValue::Float(-3.0))]))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "`units` must be a positive integer, not -3");
        let e = from_config("Dropout", &cfg(&[("rate", ConfigValue::Float(1.0))]))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), "`rate` must be in [0, 1), not 1");
        let e = from_config(
            "Dense",
            &cfg(&[
                ("units", ConfigValue::Int(2)),
                ("activation", ConfigValue::Str("rleu".into())),
            ]),
        )
        .err()
        .unwrap();
        assert!(e
            .to_string()
            .starts_with("unknown activation 'rleu'; known activations: linear, relu"));
    }
}
