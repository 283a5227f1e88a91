//! What layers over images and sequences share: the data format they accept and the
//! check of their input's rank.

use crate::error::{invalid_arg, Error, Result};
use crate::layers::registry::Config;

/// Reads `data_format` from a config; only channels_last is implemented.
pub fn channels_last(c: &Config) -> Result<()> {
    match c.str_or("data_format", "channels_last")?.as_str() {
        "channels_last" => Ok(()),
        "channels_first" => Err(invalid_arg(
            "data_format",
            "= 'channels_first' is not supported yet; use 'channels_last'",
        )),
        other => Err(invalid_arg(
            "data_format",
            format!("must be 'channels_last' or 'channels_first', not '{other}'"),
        )),
    }
}

/// A shape with its batch axis shown as Keras shows it: `(None, 28, 28, 1)`.
pub fn batch_shape_str(shape: &[usize]) -> String {
    let mut parts = vec!["None".to_string()];
    parts.extend(shape.iter().map(|d| d.to_string()));
    format!("({})", parts.join(", "))
}

/// Checks that samples of `input_shape` (no batch axis) have `axes.len()` axes.
pub fn expect_axes(layer: &str, input_shape: &[usize], axes: &[&str]) -> Result<()> {
    if input_shape.len() == axes.len() {
        return Ok(());
    }
    Err(Error::LayerInput {
        layer: layer.to_string(),
        msg: format!(
            "expects inputs of rank {} (batch, {}), got shape {}",
            axes.len() + 1,
            axes.join(", "),
            batch_shape_str(input_shape)
        ),
    })
}

#[cfg(test)]
pub mod test_util {

    use crate::autodiff::Tape;
    use crate::layers::registry::from_config;
    use crate::layers::{ConfigValue, ForwardCtx, Layer};
    use crate::tensor::Tensor;

    /// A layer from its Keras class name and config, as R's `layer_*()` functions send it.
    pub fn layer(class: &str, config: &[(&str, ConfigValue)]) -> Box<dyn Layer> {
        let c: Vec<(String, ConfigValue)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        from_config(class, &c).unwrap()
    }

    pub fn config_error(class: &str, config: &[(&str, ConfigValue)]) -> String {
        let c: Vec<(String, ConfigValue)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        from_config(class, &c).err().unwrap().to_string()
    }

    /// The layer's inference output for a batch.
    pub fn apply(layer: &dyn Layer, x: Tensor) -> Tensor {
        let mut tape = Tape::new();
        let v = tape.leaf(x, false);
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: false,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        let y = layer.forward(&mut tape, v, &[], &mut ctx).unwrap();
        tape.value(y).clone()
    }

    pub fn ints(v: &[i64]) -> ConfigValue {
        ConfigValue::List(v.iter().map(|&i| ConfigValue::Int(i)).collect())
    }

    pub fn text(s: &str) -> ConfigValue {
        ConfigValue::Str(s.into())
    }
}
