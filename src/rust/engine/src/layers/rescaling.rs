//! Rescaling: `x * scale + offset` (Keras's preprocessing layer, e.g. `scale = 1/255`).

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Result};
use crate::layers::registry::Config;
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::math::affine;

pub struct Rescaling {
    name: String,
    scale: f64,
    offset: f64,
}

impl Rescaling {
    pub fn from_config(c: &Config) -> Result<Rescaling> {
        let number = |key: &str, default: f64| -> Result<f64> {
            match c.get(key) {
                Some(ConfigValue::List(_)) => Err(invalid_arg(
                    key,
                    "must be one number; per-channel values are not supported yet",
                )),
                _ => {
                    let v = c.f64_or(key, default)?;
                    if v.is_finite() {
                        Ok(v)
                    } else {
                        Err(invalid_arg(
                            key,
                            format!("must be a finite number, not {v}"),
                        ))
                    }
                }
            }
        };
        Ok(Rescaling {
            name: c.name()?.unwrap_or_else(|| unique_name("rescaling")),
            scale: number("scale", f64::NAN)?,
            offset: number("offset", 0.0)?,
        })
    }
}

impl Layer for Rescaling {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Rescaling"
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(input_shape.to_vec())
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        Ok(affine(tape, x, self.scale as f32, self.offset as f32))
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("scale", ConfigValue::Float(self.scale)),
            ("offset", ConfigValue::Float(self.offset)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::registry::from_config;
    use crate::layers::ConfigValue;

    #[test]
    fn scale_is_required_and_lists_are_refused() {
        let e = from_config("Rescaling", &[]).err().unwrap().to_string();
        assert!(e.contains("`scale` must be a finite number"), "{e}");
        let list = ConfigValue::List(vec![ConfigValue::Float(1.0), ConfigValue::Float(2.0)]);
        let e = from_config("Rescaling", &[("scale".into(), list)])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("per-channel"), "{e}");
    }
}
