//! The legacy Keras HDF5 file (keras/src/legacy/saving/legacy_h5_format.py):
//!
//! ```text
//! /                       attrs backend, keras_version, model_config (JSON), training_config (JSON)
//! /model_weights          attrs backend, keras_version, layer_names (model order)
//! /model_weights/<layer>  attr weight_names ("<model>/<layer>/kernel", ...), datasets at those paths
//! /optimizer_weights      attr weight_names ("adam/iteration", "adam/learning_rate", slots...)
//! ```
//!
//! Weights-only files have the `model_weights` layout at the root.

use std::path::Path;

use hdf5::{Group, Location};
use serde_json::Value;

use super::config_json::{self, Flavor};
use super::model_config;
use super::weights::{assign, legacy_members, LegacyMember};
use super::{at_path, check_target, fail, h5, optimizer_state, readable_file, FResult, Fail};
use super::{TempTarget, BACKEND, KERAS_VERSION};
use crate::model::Model;

/// Most layers / weights a file may list (a corrupted count must not drive allocation).
const MAX_NAMES: usize = 1 << 20;

/// Writes the whole model (config, weights, compile settings and optimizer state).
pub fn save_h5(
    model: &Model,
    path: &Path,
    overwrite: bool,
    include_optimizer: bool,
) -> crate::Result<()> {
    at_path(
        path,
        write_atomically(path, overwrite, |file| {
            h5::write_str_attr(file, "backend", BACKEND)?;
            h5::write_str_attr(file, "keras_version", KERAS_VERSION)?;
            let config = model_config::model_to_json(model, Flavor::Legacy);
            h5::write_str_attr(file, "model_config", &config.to_string())?;
            let compiled = model.compiled.as_ref().filter(|_| include_optimizer);
            if let Some(c) = compiled {
                let tc = config_json::training_config(c);
                h5::write_str_attr(file, "training_config", &tc.to_string())?;
            }
            let weights = file.create_group("model_weights")?;
            write_weights(model, &weights)?;
            if compiled.is_some() {
                write_optimizer(model, &file.create_group("optimizer_weights")?)?;
            }
            Ok(())
        }),
    )
}

/// Writes the weights only, in the `model_weights` layout at the root.
pub fn save_weights_h5(model: &Model, path: &Path, overwrite: bool) -> crate::Result<()> {
    at_path(
        path,
        write_atomically(path, overwrite, |file| write_weights(model, file)),
    )
}

fn write_atomically(
    path: &Path,
    overwrite: bool,
    body: impl FnOnce(&Group) -> FResult<()>,
) -> FResult<()> {
    check_target(path, overwrite)?;
    // HDF5 opens files by name: no unnamed file (see `TempTarget`).
    let tmp = TempTarget::named(path)?;
    (|| {
        let file = h5::create(tmp.path())?;
        body(&file)?;
        file.close()?;
        Ok(())
    })()
    .map_err(|f| tmp.scrub(f))?;
    tmp.keep()
}

fn write_weights(model: &Model, g: &Group) -> FResult<()> {
    h5::write_str_attr(g, "backend", BACKEND)?;
    h5::write_str_attr(g, "keras_version", KERAS_VERSION)?;
    let members = legacy_members(model);
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    h5::write_str_list_attr(g, "layer_names", &names)?;
    for m in &members {
        let lg = g.create_group(&m.name)?;
        let weight_names: Vec<String> = m.weights.iter().map(|(n, _)| n.clone()).collect();
        h5::write_str_list_attr(&lg, "weight_names", &weight_names)?;
        for (name, w) in &m.weights {
            h5::write_f32(&lg, name, &w.shape(), &w.values())?;
        }
    }
    if !names.iter().any(|n| n == "top_level_model_weights") {
        let top = g.create_group("top_level_model_weights")?;
        h5::write_str_list_attr(&top, "weight_names", &[])?;
    }
    Ok(())
}

fn write_optimizer(model: &Model, g: &Group) -> FResult<()> {
    let Some(state) = optimizer_state::export(model) else {
        return Ok(());
    };
    let prefix = state.object_name;
    let og = g.create_group(prefix)?;
    let mut names = vec![
        format!("{prefix}/iteration"),
        format!("{prefix}/learning_rate"),
    ];
    h5::write_i64_scalar(&og, "iteration", state.iterations as i64)?;
    h5::write_f32_scalar(&og, "learning_rate", state.learning_rate)?;
    for s in &state.slots {
        h5::write_f32(&og, &s.name, &s.shape, &s.values)?;
        names.push(format!("{prefix}/{}", s.name));
    }
    h5::write_str_list_attr(g, "weight_names", &names)
}

/// Reads a whole model; with `compile`, also its compile settings and optimizer state.
pub fn load_h5(path: &Path, compile: bool) -> crate::Result<Model> {
    // The file's weights replace the initial ones: a load takes no seeds from the host.
    crate::rng::without_host_seeds(|| at_path(path, read_model(path, compile)))
}

fn json_attr(loc: &Location, name: &str) -> FResult<Value> {
    let text = h5::read_str_attr(loc, name)?;
    serde_json::from_str(&text)
        .map_err(|e| Fail(format!("attribute '{name}' is not valid JSON ({e})")))
}

fn read_model(path: &Path, compile: bool) -> FResult<Model> {
    let budget = readable_file(path)?;
    let file = h5::open(path, "a Keras model")?;
    if !h5::has_attr(&file, "model_config") {
        if h5::has_attr(&file, "layer_names") {
            return fail("holds weights only (no model_config); use load_model_weights_hdf5() on a model of the same architecture");
        }
        return fail("is not a Keras model file: it has no 'model_config' attribute");
    }
    let config = json_attr(&file, "model_config")?;
    let mut model = model_config::model_from_json(&config)?;
    let weights = file
        .group("model_weights")
        .map_err(|_| Fail("has no 'model_weights' group".into()))?;
    if !model.is_built() && model.layers().iter().any(|l| !l.is_built()) {
        return fail(
            "the saved model was never built (no input shape), so its weights cannot be placed",
        );
    }
    load_weights_group(&model, &weights, budget, false)?;
    if compile && h5::has_attr(&file, "training_config") {
        let tc = json_attr(&file, "training_config")?;
        config_json::compile_from_json(&tc, &model.output_names())?.apply(&mut model)?;
        if file.link_exists("optimizer_weights") {
            read_optimizer(&mut model, &file.group("optimizer_weights")?, budget)?;
        }
    }
    Ok(model)
}

fn read_optimizer(model: &mut Model, g: &Group, budget: u64) -> FResult<()> {
    let names = h5::read_str_list_attr(g, "weight_names", MAX_NAMES)?;
    if names.len() < 2 {
        return fail("'optimizer_weights' lists fewer than the 2 variables every optimizer has (iteration, learning_rate)");
    }
    let dataset = |name: &str| {
        g.dataset(name)
            .map_err(|_| Fail(format!("optimizer variable '{name}' is listed but missing")))
    };
    let iterations = h5::read_count(&dataset(&names[0])?)?;
    let (_, lr) = h5::read_f32(&dataset(&names[1])?, budget)?;
    if lr.len() != 1 {
        return fail("the optimizer's learning_rate is not a scalar");
    }
    let mut slots = Vec::new();
    for n in &names[2..] {
        slots.push(h5::read_f32(&dataset(n)?, budget)?);
    }
    optimizer_state::import(model, iterations, Some(lr[0]), slots)
}

/// Loads weights from a weights-only file or a full model file into `model`.
pub fn load_weights_h5(model: &mut Model, path: &Path, by_name: bool) -> crate::Result<()> {
    at_path(
        path,
        (|| {
            let budget = readable_file(path)?;
            let file = h5::open(path, "Keras weights")?;
            let group: Group = if h5::has_attr(&file, "layer_names") {
                (*file).clone()
            } else if file.link_exists("model_weights") {
                file.group("model_weights")?
            } else if file.link_exists("layers") {
                // Keras 3's `.weights.h5` layout: weights by layer name.
                if !model.is_built() {
                    return fail("the model is not built yet: give it an input shape (or fit it) before loading weights");
                }
                return super::keras_zip::read_layer_weights(model, &file, budget);
            } else {
                return fail("holds no Keras weights (no 'layer_names' attribute)");
            };
            if !model.is_built() {
                return fail("the model is not built yet: give it an input shape (or fit it) before loading weights");
            }
            load_weights_group(model, &group, budget, by_name)
        })(),
    )
}

/// One saved layer: its name and weights (shape, values) in the file's order.
type SavedLayer = (String, Vec<(String, Vec<usize>, Vec<f32>)>);

fn read_saved_layers(g: &Group, budget: u64) -> FResult<Vec<SavedLayer>> {
    let layer_names = h5::read_str_list_attr(g, "layer_names", MAX_NAMES)?;
    let mut out = Vec::new();
    for name in layer_names {
        let lg = g
            .group(&name)
            .map_err(|_| Fail(format!("layer '{name}' is listed but its group is missing")))?;
        let weight_names = h5::read_str_list_attr(&lg, "weight_names", MAX_NAMES)?;
        let mut weights = Vec::new();
        for wn in weight_names {
            let ds = lg.dataset(&wn).map_err(|_| {
                Fail(format!(
                    "weight '{wn}' of layer '{name}' is listed but missing"
                ))
            })?;
            let (shape, values) = h5::read_f32(&ds, budget)?;
            weights.push((wn, shape, values));
        }
        out.push((name, weights));
    }
    Ok(out)
}

/// Matches saved layers to the model's members (by order of those that have weights, as
/// Keras does, or by name) and assigns all weights once every one of them has been checked.
fn load_weights_group(model: &Model, g: &Group, budget: u64, by_name: bool) -> FResult<()> {
    let saved = read_saved_layers(g, budget)?;
    let targets: Vec<LegacyMember> = legacy_members(model)
        .into_iter()
        .filter(|m| !m.weights.is_empty())
        .collect();
    let mut pairs: Vec<(&LegacyMember, &SavedLayer)> = Vec::new();
    if by_name {
        for t in &targets {
            if let Some(s) = saved.iter().find(|s| s.0 == t.name) {
                pairs.push((t, s));
            }
        }
    } else {
        let with_weights: Vec<&SavedLayer> = saved.iter().filter(|s| !s.1.is_empty()).collect();
        if with_weights.len() != targets.len() {
            return fail(format!(
                "holds weights for {} layers, but the model has {} layers with weights",
                with_weights.len(),
                targets.len()
            ));
        }
        pairs = targets.iter().zip(with_weights).collect();
    }
    let mut updates = Vec::new();
    for (target, (saved_name, weights)) in pairs {
        if target.weights.len() != weights.len() {
            return fail(format!(
                "layer '{}' has {} weights, but the file's layer '{saved_name}' has {}",
                target.name,
                target.weights.len(),
                weights.len()
            ));
        }
        for ((_, w), (wn, shape, v)) in target.weights.iter().zip(weights) {
            updates.push((w.clone(), w.check(wn, shape.clone(), v.clone())?));
        }
    }
    assign(updates);
    Ok(())
}
