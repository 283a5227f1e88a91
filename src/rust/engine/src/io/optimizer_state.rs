//! An optimizer's variables as Keras saves them: `iteration`, `learning_rate`, then the
//! slot variables (`<model>_<layer>_<weight>_<slot>`) in Keras's creation order.

use super::{config_json::optimizer_object_name, fail, FResult};
use crate::error::shape_str;
use crate::model::Model;

/// One slot variable: Keras's name (without the optimizer prefix), shape, values.
pub struct SlotVar {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub struct OptimizerState {
    /// Keras's name of the optimizer object (`adam`, `rm_sprop`, ...).
    pub object_name: &'static str,
    pub iterations: u64,
    pub learning_rate: f32,
    pub slots: Vec<SlotVar>,
}

/// Keras's variable path and shape of each weight the optimizer updates, in its order.
fn trainable(model: &Model) -> Vec<(String, Vec<usize>)> {
    super::weights::trained(model)
        .into_iter()
        .map(|(path, w)| (path, w.shape()))
        .collect()
}

/// The compiled model's optimizer state, or None when it is not compiled.
pub fn export(model: &Model) -> Option<OptimizerState> {
    let opt = &model.compiled.as_ref()?.optimizer;
    let params = trainable(model);
    let mut slots = Vec::new();
    if opt.slots().len() == params.len() {
        for group in opt.keras_slot_groups() {
            for (pi, (path, shape)) in params.iter().enumerate() {
                for &(k, suffix) in &group {
                    slots.push(SlotVar {
                        name: format!("{}_{suffix}", path.replace('/', "_")),
                        shape: shape.clone(),
                        values: opt.slots()[pi][k].to_vec(),
                    });
                }
            }
        }
    }
    Some(OptimizerState {
        object_name: optimizer_object_name(&opt.config),
        iterations: opt.iterations,
        learning_rate: opt.config.learning_rate as f32,
        slots,
    })
}

/// Restores a saved state onto the compiled model's optimizer. `slots` are in Keras's
/// order; none at all means an optimizer that had not taken a step.
pub fn import(
    model: &mut Model,
    iterations: u64,
    learning_rate: Option<f32>,
    slots: Vec<(Vec<usize>, Vec<f32>)>,
) -> FResult<()> {
    let params = trainable(model);
    let Some(compiled) = model.compiled.as_mut() else {
        return fail("the model is not compiled, so it has no optimizer to restore");
    };
    let opt = &mut compiled.optimizer;
    let groups = opt.keras_slot_groups();
    let per_param: usize = groups.iter().map(Vec::len).sum();
    let mut state: Vec<Vec<Vec<f32>>> = Vec::new();
    if !slots.is_empty() || per_param == 0 {
        let want = per_param * params.len();
        if slots.len() != want {
            return fail(format!(
                "the saved optimizer has {} slot variables, but a {} optimizer for this model has {want}",
                slots.len(),
                opt.config.name
            ));
        }
        state = vec![vec![Vec::new(); per_param]; params.len()];
        let mut it = slots.into_iter();
        for group in &groups {
            for (pi, (path, shape)) in params.iter().enumerate() {
                for &(k, suffix) in group {
                    let (s, v) = it.next().expect("counted above");
                    if &s != shape {
                        return fail(format!(
                            "optimizer variable for '{path}' ({suffix}) has shape {}, the weight has {}",
                            shape_str(&s),
                            shape_str(shape)
                        ));
                    }
                    state[pi][k] = v;
                }
            }
        }
    }
    if let Some(lr) = learning_rate {
        if !(lr.is_finite() && lr > 0.0) {
            return fail(format!(
                "the saved learning rate {lr} is not a positive number"
            ));
        }
        if lr != opt.config.learning_rate as f32 {
            opt.config.learning_rate = lr as f64;
        }
    }
    opt.set_state(iterations, state)?;
    Ok(())
}
