//! Keras's weight regularizers (`keras.regularizers.L1`, `L2`, `L1L2`): a penalty
//! `l1 * sum(|w|) + l2 * sum(w^2)` added to the loss for each regularized weight that
//! trains, in training and in evaluation, as Keras 3's `compute_loss` does.
//!
//! A layer's regularizers live beside it in its `LayerCell`, keyed by weight name, so the
//! layers themselves do not change; `FIELDS` maps Keras's config fields to those names.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegularizerKind {
    L1,
    L2,
    L1L2,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    pub kind: RegularizerKind,
    pub l1: f64,
    pub l2: f64,
}

impl Regularizer {
    /// The regularizer of Keras class `class` (`L1`, `L2`, `L1L2`) with its factors.
    pub fn new(class: &str, l1: f64, l2: f64) -> Result<Regularizer, String> {
        let kind = match class {
            "L1" => RegularizerKind::L1,
            "L2" => RegularizerKind::L2,
            "L1L2" => RegularizerKind::L1L2,
            other => {
                return Err(format!(
                    "regularizer '{other}' is not supported (known: L1, L2, L1L2)"
                ))
            }
        };
        for (name, v) in [("l1", l1), ("l2", l2)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "regularizer factor `{name}` must be a number >= 0, not {v}"
                ));
            }
        }
        let (l1, l2) = match kind {
            RegularizerKind::L1 => (l1, 0.0),
            RegularizerKind::L2 => (0.0, l2),
            RegularizerKind::L1L2 => (l1, l2),
        };
        Ok(Regularizer { kind, l1, l2 })
    }

    pub fn class_name(&self) -> &'static str {
        match self.kind {
            RegularizerKind::L1 => "L1",
            RegularizerKind::L2 => "L2",
            RegularizerKind::L1L2 => "L1L2",
        }
    }

    /// The factors Keras's config holds for this class: `{"l1": ..}`, `{"l2": ..}` or both.
    pub fn factors(&self) -> Vec<(&'static str, f64)> {
        match self.kind {
            RegularizerKind::L1 => vec![("l1", self.l1)],
            RegularizerKind::L2 => vec![("l2", self.l2)],
            RegularizerKind::L1L2 => vec![("l1", self.l1), ("l2", self.l2)],
        }
    }
}

/// Each layer class's regularizer fields and the weight each one applies to.
pub fn fields(class: &str) -> &'static [(&'static str, &'static str)] {
    match class {
        "Dense" | "Conv1D" | "Conv2D" => &[
            ("kernel_regularizer", "kernel"),
            ("bias_regularizer", "bias"),
        ],
        "DepthwiseConv2D" => &[
            ("depthwise_regularizer", "depthwise_kernel"),
            ("bias_regularizer", "bias"),
        ],
        "SeparableConv2D" => &[
            ("depthwise_regularizer", "depthwise_kernel"),
            ("pointwise_regularizer", "pointwise_kernel"),
            ("bias_regularizer", "bias"),
        ],
        "BatchNormalization" => &[("beta_regularizer", "beta"), ("gamma_regularizer", "gamma")],
        "Embedding" => &[("embeddings_regularizer", "embeddings")],
        "SimpleRNN" | "LSTM" | "GRU" => &[
            ("kernel_regularizer", "kernel"),
            ("recurrent_regularizer", "recurrent_kernel"),
            ("bias_regularizer", "bias"),
        ],
        _ => &[],
    }
}

/// The weight a regularizer field of `class` applies to, if the class has that field.
pub fn weight_of(class: &str, field: &str) -> Option<&'static str> {
    fields(class)
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, w)| *w)
}

/// The engine's config form of a regularizer field: `[class, l1, l2]`.
pub fn to_config_value(r: &Regularizer) -> crate::layers::ConfigValue {
    use crate::layers::ConfigValue;
    ConfigValue::List(vec![
        ConfigValue::Str(r.class_name().into()),
        ConfigValue::Float(r.l1),
        ConfigValue::Float(r.l2),
    ])
}

fn from_config_value(field: &str, v: &crate::layers::ConfigValue) -> crate::Result<Regularizer> {
    use crate::layers::ConfigValue;
    let num = |x: &ConfigValue| match x {
        ConfigValue::Float(f) => Some(*f),
        ConfigValue::Int(i) => Some(*i as f64),
        _ => None,
    };
    let bad = || {
        crate::error::invalid_arg(
            field,
            "must be a regularizer from regularizer_l1(), regularizer_l2() or regularizer_l1_l2()",
        )
    };
    match v {
        ConfigValue::List(items) => match items.as_slice() {
            [ConfigValue::Str(class), l1, l2] => {
                Regularizer::new(class, num(l1).ok_or_else(bad)?, num(l2).ok_or_else(bad)?)
                    .map_err(|m| crate::error::invalid_arg(field, m))
            }
            _ => Err(bad()),
        },
        ConfigValue::Str(name) => by_name(name).map_err(|m| crate::error::invalid_arg(field, m)),
        _ => Err(bad()),
    }
}

/// A regularizer given by name, as Keras's `regularizers.get()` reads one: `"l1"` and
/// `"l2"` with factor 0.01, `"L1L2"` with 0 and 0.
pub fn by_name(name: &str) -> Result<Regularizer, String> {
    match name {
        "l1" | "L1" => Regularizer::new("L1", 0.01, 0.0),
        "l2" | "L2" => Regularizer::new("L2", 0.0, 0.01),
        "L1L2" => Regularizer::new("L1L2", 0.0, 0.0),
        other => Err(format!(
            "regularizer '{other}' is not known (use \"l1\", \"l2\", \"L1L2\" or a regularizer_*() object)"
        )),
    }
}

/// Takes a layer's regularizer fields out of its config: the fields left for the layer,
/// and the regularizers by weight name. `activity_regularizer` and fields the class does
/// not have are refused.
pub fn split_fields(
    class: &str,
    fields: &[(String, crate::layers::ConfigValue)],
) -> crate::Result<(
    Vec<(String, crate::layers::ConfigValue)>,
    Vec<(&'static str, Regularizer)>,
)> {
    let mut rest = Vec::new();
    let mut regs = Vec::new();
    for (k, v) in fields {
        if !k.ends_with("_regularizer") {
            rest.push((k.clone(), v.clone()));
            continue;
        }
        if k == "activity_regularizer" {
            return Err(crate::error::invalid_arg(
                k,
                "is not supported yet (weight regularizers are); leave it NULL",
            ));
        }
        let weight = weight_of(class, k).ok_or_else(|| {
            crate::error::invalid_arg(k, format!("is not a field of {class} layers"))
        })?;
        regs.push((weight, from_config_value(k, v)?));
    }
    Ok((rest, regs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ConfigValue;

    #[test]
    fn fields_split_and_name_their_weights() {
        let fields = vec![
            ("units".to_string(), ConfigValue::Int(3)),
            (
                "kernel_regularizer".to_string(),
                ConfigValue::Str("l2".into()),
            ),
            (
                "bias_regularizer".to_string(),
                to_config_value(&Regularizer::new("L1L2", 0.1, 0.2).unwrap()),
            ),
        ];
        let (rest, regs) = split_fields("Dense", &fields).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(
            regs[0],
            ("kernel", Regularizer::new("L2", 0.0, 0.01).unwrap())
        );
        assert_eq!(regs[1].0, "bias");
        assert_eq!((regs[1].1.l1, regs[1].1.l2), (0.1, 0.2));
        let e = split_fields("Flatten", &fields[1..2])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a field of Flatten"), "{e}");
        let a = vec![(
            "activity_regularizer".to_string(),
            ConfigValue::Str("l2".into()),
        )];
        assert!(split_fields("Dense", &a).is_err());
        assert!(Regularizer::new("L2", 0.0, -1.0).is_err());
        assert!(by_name("l1_l2").is_err());
    }
}
