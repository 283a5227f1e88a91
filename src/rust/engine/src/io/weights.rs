//! A model's weights as the file formats address them. Keras has three views:
//!
//! * `.keras` files keep each layer's variables at an object path made from class
//!   names, `layers/dense_1/vars/0`, with a nested model's layers under its own path,
//!   `layers/functional/layers/dense/vars/0` (`keras_paths`);
//! * legacy `.h5` files have one group per member of the top model; a nested model's
//!   group holds all its weights, trainable ones first (Keras's `_legacy_weights`)
//!   (`legacy_members`);
//! * the optimizer's slots follow the weights trained since `compile()`, in layer order
//!   (`trained`).
//!
//! A `WeightRef` points at one weight of a shared layer, so loaders can check every value
//! before they change any.

use std::collections::HashMap;

use super::keras_zip::keras_snake_case;
use super::{fail, FResult};
use crate::error::shape_str;
use crate::model::{read, read_layer, write_layer, LayerRef, Member, Model, ModelRef};
use crate::tensor::Tensor;

/// One weight of a layer.
#[derive(Clone)]
pub struct WeightRef {
    layer: LayerRef,
    index: usize,
}

impl WeightRef {
    pub fn shape(&self) -> Vec<usize> {
        read_layer(&self.layer).params()[self.index]
            .value
            .shape()
            .to_vec()
    }

    /// `kernel`, `bias`, `moving_mean`, ...
    pub fn name(&self) -> &'static str {
        read_layer(&self.layer).params()[self.index].name
    }

    pub fn layer_name(&self) -> String {
        read_layer(&self.layer).name().to_string()
    }

    /// The sublayer holding this weight in Keras (`""` for the layer itself), for layers
    /// that wrap others; a plain RNN's cell does not count, having one set of weights.
    fn sublayer(&self) -> String {
        let groups = read_layer(&self.layer).keras_var_groups();
        let holders: Vec<_> = groups.iter().filter(|g| !g.weights.is_empty()).collect();
        if holders.len() < 2 {
            return String::new();
        }
        holders
            .iter()
            .find(|g| g.weights.contains(&self.index))
            .map(|g| g.sub.clone())
            .unwrap_or_default()
    }

    pub fn values(&self) -> Vec<f32> {
        read_layer(&self.layer).params()[self.index]
            .value
            .host()
            .to_vec()
    }

    fn set(&self, value: Tensor) {
        write_layer(&self.layer).params_mut()[self.index].value = value;
    }

    /// A saved value for this weight, once its shape and values are checked; `label`
    /// names it as the file does.
    pub fn check(&self, label: &str, shape: Vec<usize>, values: Vec<f32>) -> FResult<Tensor> {
        let want = self.shape();
        if want != shape {
            return fail(format!(
                "weight '{label}' has shape {} in the file, but layer '{}' expects {} for its {}",
                shape_str(&shape),
                self.layer_name(),
                shape_str(&want),
                self.name()
            ));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return fail(format!(
                "weight '{label}' of layer '{}' holds NaN or infinite values",
                self.layer_name()
            ));
        }
        Ok(Tensor::from_vec(shape, values)?)
    }
}

/// The weights of one layer, in its order (kernel before bias).
pub fn layer_weights(cell: &LayerRef) -> Vec<WeightRef> {
    (0..read_layer(cell).params().len())
        .map(|index| WeightRef {
            layer: cell.clone(),
            index,
        })
        .collect()
}

/// Puts checked values in place (all of them, or none when a check failed earlier).
pub fn assign(updates: Vec<(WeightRef, Tensor)>) {
    for (w, v) in updates {
        w.set(v);
    }
}

/// Keras's variable path of a weight of a layer that `model` holds directly:
/// `sequential/dense/kernel` inside a Sequential model, `dense/kernel` otherwise; a weight
/// of a sublayer (a Bidirectional's `forward_layer/cell`) has that part too, which keeps
/// the two directions' kernels apart.
fn weight_path(model: &Model, w: &WeightRef) -> String {
    let sub = w.sublayer();
    let layer = match sub.as_str() {
        "" => w.layer_name(),
        s => format!("{}/{s}", w.layer_name()),
    };
    if model.is_sequential() {
        format!("{}/{layer}/{}", model.name, w.name())
    } else {
        format!("{layer}/{}", w.name())
    }
}

/// Every weight in Keras order (member by member, nested models in place) with its
/// variable path and whether it trains under the current flags.
pub fn all_weights(model: &Model, parent_trainable: bool) -> Vec<(String, WeightRef, bool)> {
    let mut out = Vec::new();
    for m in model.members() {
        match m {
            Member::Layer(c) => {
                let (on, flags): (bool, Vec<bool>) = {
                    let cell = read_layer(c);
                    (
                        cell.trainable,
                        cell.params().iter().map(|p| p.trainable).collect(),
                    )
                };
                for (w, t) in layer_weights(c).into_iter().zip(flags) {
                    out.push((weight_path(model, &w), w, parent_trainable && on && t));
                }
            }
            Member::Model(sub) => {
                let sub = read(sub);
                let on = parent_trainable && sub.trainable;
                out.extend(all_weights(&sub, on));
            }
        }
    }
    out
}

/// The weights the compiled optimizer updates, in its order, with their variable paths.
pub fn trained(model: &Model) -> Vec<(String, WeightRef)> {
    let all = all_weights(model, model.trainable);
    let mask = model
        .compiled
        .as_ref()
        .and_then(|c| c.trainable.clone())
        .filter(|m| m.len() == all.len());
    all.into_iter()
        .enumerate()
        .filter(|(i, (_, _, live))| mask.as_ref().map_or(*live, |m| m[*i]))
        .map(|(_, (path, w, _))| (path, w))
        .collect()
}

/// One entry of a legacy `.h5` file's `layer_names`: a member's name and its weights
/// with the names the file gives them.
pub struct LegacyMember {
    pub name: String,
    pub weights: Vec<(String, WeightRef)>,
}

/// The top model's members (a Functional model's inputs first) as the legacy `.h5`
/// format lists them.
pub fn legacy_members(model: &Model) -> Vec<LegacyMember> {
    let mut out = Vec::new();
    if !model.is_sequential() {
        for i in model.inputs() {
            out.push(LegacyMember {
                name: i.name.clone(),
                weights: Vec::new(),
            });
        }
    }
    for m in model.members() {
        let weights = match m {
            Member::Layer(c) => layer_weights(c)
                .into_iter()
                .map(|w| (weight_path(model, &w), w))
                .collect(),
            Member::Model(sub) => {
                let sub = read(sub);
                let all = all_weights(&sub, sub.trainable);
                let (trainable, frozen): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.2);
                trainable
                    .into_iter()
                    .chain(frozen)
                    .map(|(path, w, _)| (path, w))
                    .collect()
            }
        };
        out.push(LegacyMember {
            name: m.name(),
            weights,
        });
    }
    out
}

/// What sits at a `.keras` object path.
pub enum Saveable {
    /// A Functional model's input (an `InputLayer` with no variables).
    Input(String),
    Layer(LayerRef),
    Model(ModelRef),
}

/// Every object of the model with its path in a `.keras` weights file: names come from
/// class names made unique within each model in layer order, as Keras's
/// `_save_container_state` does (`dense`, `dense_1`, `functional`, ...).
pub fn keras_paths(model: &Model) -> Vec<(String, Saveable)> {
    let mut out = Vec::new();
    walk(model, "", &mut out);
    out
}

fn walk(model: &Model, prefix: &str, out: &mut Vec<(String, Saveable)>) {
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut unique = |base: String| -> String {
        let n = used.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}_{}", *n - 1)
        }
    };
    if !model.is_sequential() {
        for i in model.inputs() {
            let path = format!("{prefix}layers/{}", unique("input_layer".into()));
            out.push((path, Saveable::Input(i.name.clone())));
        }
    }
    for m in model.members() {
        let path = format!(
            "{prefix}layers/{}",
            unique(keras_snake_case(&m.class_name()))
        );
        match m {
            Member::Layer(c) => out.push((path, Saveable::Layer(c.clone()))),
            Member::Model(sub) => {
                out.push((path.clone(), Saveable::Model(sub.clone())));
                walk(&read(sub), &format!("{path}/"), out);
            }
        }
    }
}
