//! Exports for the functional API: layers as objects of their own (made once, called on
//! symbolic tensors, shared between models), graphs sent from R as node lists, and the
//! per-layer view behind `model$layers`, `get_layer()` and `layer$trainable`.

use engine::layers::registry;
use engine::model::{self, Input, Member, Model, Node, Src};
use engine::Tensor;
use extendr_api::prelude::*;

use crate::convert::{array_from_r, array_to_r};
use crate::error::{RkError, RkResult};
use crate::model::{
    config_fields, dims_from_r, handle_to_r, member_from_r, member_to_r, model_handle, model_ref,
    Handle,
};

fn dims_to_r(s: &[usize]) -> Robj {
    s.iter().map(|&d| d as i32).collect::<Vec<i32>>().into()
}

fn shapes_from_r(shapes: &List, arg: &str) -> RkResult<Vec<Vec<usize>>> {
    shapes
        .iter()
        .map(|(_, s)| {
            dims_from_r(&s, arg)?
                .ok_or_else(|| RkError::new("input", format!("`{arg}` has no shape")))
        })
        .collect()
}

/// A new layer from its Keras class name and config (a named list), not yet built.
#[extendr]
fn rk_layer_new(class_name: &str, config: List) -> RkResult<Robj> {
    let (fields, regularizers) =
        engine::regularizers::split_fields(class_name, &config_fields(&config)?)?;
    let layer = model::share_layer(registry::from_config(class_name, &fields)?);
    model::write_layer(&layer).regularizers = regularizers;
    Ok(handle_to_r(Handle::Layer(layer)))
}

/// What a layer object serializes as (R/model-serialization.R): its Keras entry as JSON,
/// the input shapes it was built for, its weights and its trainable flag, in that order
/// (`rk_layer_restore` reads them by position).
#[extendr]
fn rk_layer_snapshot(object: Robj) -> RkResult<List> {
    let l = crate::model::layer_ref(&object)?;
    let cell = model::read_layer(&l);
    let entry = engine::io::config_json::layer_to_json(
        &**cell,
        cell.trainable,
        &cell.regularizers,
        engine::io::config_json::Flavor::Keras3,
    );
    let built: Robj = match &cell.built_with {
        Some(shapes) => List::from_values(shapes.iter().map(|s| dims_to_r(s))).into(),
        None => ().into(),
    };
    let weights = List::from_values(
        cell.params()
            .iter()
            .map(|p| array_to_r(p.value.host(), p.value.shape())),
    );
    Ok(list!(
        entry = entry.to_string(),
        built_with = built,
        weights = weights,
        trainable = cell.trainable
    ))
}

/// A layer back from its snapshot: made from its entry, built for the same shapes, with
/// the same weights.
#[extendr]
fn rk_layer_restore(snapshot: List) -> RkResult<Robj> {
    // By position: R gives an unserialized ALTREP the attributes of the object it
    // replaced (none), so the names are gone.
    const FIELDS: [&str; 4] = ["entry", "built_with", "weights", "trainable"];
    let field = |k: &str| {
        let i = FIELDS.iter().position(|f| *f == k)?;
        snapshot.iter().nth(i).map(|(_, v)| v)
    };
    let bad = || RkError::new("state", "this layer's serialized form is damaged");
    let json = field("entry")
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(bad)?;
    let entry: serde_json::Value = serde_json::from_str(&json).map_err(|_| bad())?;
    let parsed = engine::io::config_json::layer_from_json(&entry, 0)
        .map_err(|e| RkError::new("state", e.0))?;
    let layer = model::share_layer(parsed.layer);
    // The saved weights replace the initial ones: no seeds from R's stream.
    engine::rng::without_host_seeds(|| -> RkResult<()> {
        let mut cell = model::write_layer(&layer);
        cell.regularizers = parsed.regularizers;
        cell.trainable = field("trainable").and_then(|v| v.as_bool()).unwrap_or(true);
        if let Some(shapes) = field("built_with").filter(|v| !v.is_null()) {
            let shapes = shapes_from_r(&List::try_from(shapes).map_err(|_| bad())?, "built_with")?;
            cell.build_for(&shapes)?;
            let weights = field("weights").ok_or_else(bad)?;
            let weights = List::try_from(weights).map_err(|_| bad())?;
            if weights.len() != cell.params().len() {
                return Err(bad());
            }
            for (p, (_, w)) in cell.params_mut().iter_mut().zip(weights.iter()) {
                // Written by rk_layer_snapshot in the weight's own order: only the count
                // is checked (R drops the dim of a vector, and a scalar has none).
                let (v, _) = array_from_r(&w, "weights")?;
                if v.len() != p.value.numel() {
                    return Err(bad());
                }
                p.value = Tensor::from_vec(p.value.shape().to_vec(), v)?;
            }
        }
        Ok(())
    })?;
    Ok(handle_to_r(Handle::Layer(layer)))
}

/// A Bidirectional wrapper around a recurrent layer given as its class and engine config
/// (and optionally the backward layer likewise).
#[extendr]
fn rk_bidirectional_new(
    layer_class: &str,
    layer_config: List,
    backward_class: Nullable<String>,
    backward_config: Nullable<List>,
    merge_mode: &str,
    name: Nullable<String>,
) -> RkResult<Robj> {
    let make = |class: &str, config: &List| -> RkResult<_> {
        let (fields, regs) = engine::regularizers::split_fields(class, &config_fields(config)?)?;
        Ok((registry::recurrent_from_config(class, &fields)?, regs))
    };
    let (layer, regs) = make(layer_class, &layer_config)?;
    let backward = match (backward_class, backward_config) {
        (NotNull(c), NotNull(cfg)) => Some(make(&c, &cfg)?.0),
        _ => None,
    };
    let mode = engine::layers::MergeMode::from_name(merge_mode)?;
    let name = match name {
        NotNull(n) => Some(n),
        Null => None,
    };
    let wrapper = engine::layers::Bidirectional::new(layer, backward, mode, name)?;
    let cell = model::share_layer(Box::new(wrapper));
    model::write_layer(&cell).regularizers = regs;
    Ok(handle_to_r(Handle::Layer(cell)))
}

/// Calls a layer or a model on inputs of the given shapes (without the batch axis):
/// builds it on its first call, as Keras does, and returns the output shapes.
#[extendr]
fn rk_member_call(object: Robj, input_shapes: List) -> RkResult<List> {
    let shapes = shapes_from_r(&input_shapes, "inputs")?;
    let outs = match member_from_r(&object)? {
        Member::Layer(l) => {
            let mut cell = model::write_layer(&l);
            if !cell.is_built() {
                cell.build_for(&shapes)?;
            }
            vec![cell.output_shape_multi(&shapes)?]
        }
        Member::Model(m) => {
            let mut g = model::write(&m);
            g.build(&shapes)?;
            g.output_shapes_for(&shapes)?
        }
    };
    Ok(List::from_values(outs.iter().map(|s| dims_to_r(s))))
}

/// What R shows of a layer or model: name, class, flags and parameter counts.
#[extendr]
fn rk_member_info(object: Robj) -> RkResult<List> {
    let member = member_from_r(&object)?;
    let (mut params, mut trainable_params) = (0usize, 0usize);
    let mut count = |p: &engine::layers::Param, t: bool| {
        params += p.value.numel();
        if t {
            trainable_params += p.value.numel();
        }
    };
    let built = match &member {
        Member::Layer(l) => {
            let c = model::read_layer(l);
            for p in c.params() {
                count(p, c.trainable && p.trainable);
            }
            c.is_built()
        }
        Member::Model(m) => {
            let g = model::read(m);
            g.visit_params(g.trainable, &mut count);
            g.is_built()
        }
    };
    Ok(list!(
        name = member.name(),
        class_name = member.class_name(),
        trainable = member.trainable(),
        built = built,
        is_model = matches!(member, Member::Model(_)),
        params = params as f64,
        trainable_params = trainable_params as f64
    ))
}

/// `layer$trainable <- value` (on a model: every layer inside).
#[extendr]
fn rk_member_set_trainable(object: Robj, value: bool) -> RkResult<()> {
    member_from_r(&object)?.set_trainable(value);
    Ok(())
}

#[extendr]
fn rk_member_get_weights(object: Robj) -> RkResult<List> {
    let ws: Vec<Tensor> = match member_from_r(&object)? {
        Member::Layer(l) => model::read_layer(&l)
            .params()
            .iter()
            .map(|p| p.value.clone())
            .collect(),
        Member::Model(m) => model::read(&m).get_weights(),
    };
    Ok(List::from_values(
        ws.iter().map(|w| array_to_r(w.host(), w.shape())),
    ))
}

#[extendr]
fn rk_layer_set_weights(object: Robj, weights: List) -> RkResult<()> {
    let l = crate::model::layer_ref(&object)?;
    let mut cell = model::write_layer(&l);
    let name = cell.name().to_string();
    let params = cell.params_mut();
    if params.len() != weights.len() {
        return Err(RkError::new(
            "argument",
            format!(
                "`weights` must be a list of {} arrays for layer '{name}', not {}",
                params.len(),
                weights.len()
            ),
        ));
    }
    let mut values = Vec::new();
    for (i, ((_, w), p)) in weights.iter().zip(params.iter()).enumerate() {
        let (v, mut d) = array_from_r(&w, "weights")?;
        // One R number fills a scalar weight.
        if p.value.shape().is_empty() && v.len() == 1 {
            d = Vec::new();
        }
        if d != p.value.shape() {
            return Err(RkError::new(
                "argument",
                format!(
                    "`weights[[{}]]` has shape {}, but layer '{name}' expects {} for its {}",
                    i + 1,
                    engine::error::shape_str(&d),
                    engine::error::shape_str(p.value.shape()),
                    p.name
                ),
            ));
        }
        values.push(Tensor::from_vec(d, v)?);
    }
    for (p, v) in params.iter_mut().zip(values) {
        p.value = v;
    }
    Ok(())
}

/// Decodes where a tensor comes from: `node` is -1 for a model input (then `index` is
/// the input's position), otherwise the node's position and `index` its output.
fn src(node: i32, index: i32) -> Src {
    if node < 0 {
        Src::Input(index.max(0) as usize)
    } else {
        Src::Node {
            node: node as usize,
            output: index.max(0) as usize,
        }
    }
}

/// A Functional model from the graph R collected between `outputs` and `inputs`.
/// `node_training`: each call's `training` argument, NA where it was not given.
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rk_model_functional(
    name: Robj,
    input_names: Vec<String>,
    input_shapes: List,
    members: List,
    node_members: Vec<i32>,
    node_src_nodes: List,
    node_src_indices: List,
    node_training: Logicals,
    output_nodes: Vec<i32>,
    output_indices: Vec<i32>,
) -> RkResult<Robj> {
    if node_training.len() != node_members.len() {
        return Err(RkError::new(
            "input",
            "`node_training` needs one value per call",
        ));
    }
    let shapes = shapes_from_r(&input_shapes, "inputs")?;
    let inputs = input_names
        .into_iter()
        .zip(shapes)
        .map(|(name, s)| Input {
            name,
            shape: Some(s),
        })
        .collect();
    let members = members
        .iter()
        .map(|(_, m)| member_from_r(&m))
        .collect::<RkResult<Vec<_>>>()?;
    let mut nodes = Vec::with_capacity(node_members.len());
    for (k, &member) in node_members.iter().enumerate() {
        let ns: Vec<i32> = node_src_nodes
            .elt(k)?
            .as_integer_vector()
            .unwrap_or_default();
        let is: Vec<i32> = node_src_indices
            .elt(k)?
            .as_integer_vector()
            .unwrap_or_default();
        let training = node_training.elt(k);
        nodes.push(Node {
            member: member.max(0) as usize,
            inputs: ns.iter().zip(&is).map(|(&n, &i)| src(n, i)).collect(),
            training: (!training.is_na()).then(|| training.is_true()),
        });
    }
    let outputs = output_nodes
        .iter()
        .zip(&output_indices)
        .map(|(&n, &i)| src(n, i))
        .collect();
    let name = name.as_str().map(str::to_string);
    Ok(model_handle(Model::functional(
        name, inputs, members, nodes, outputs,
    )?))
}

/// Adds a layer or a model (already made) to a Sequential model.
/// The `input_shape` a first layer gives an empty Sequential model.
#[extendr]
fn rk_model_declare_input(model: Robj, shape: Vec<f64>) -> RkResult<()> {
    let m = model_ref(&model)?;
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    model::write(&m).declare_input_shape(shape)?;
    Ok(())
}

#[extendr]
fn rk_model_add(model: Robj, member: Robj) -> RkResult<()> {
    let m = model_ref(&model)?;
    let member = member_from_r(&member)?;
    if let Member::Model(inner) = &member {
        if std::sync::Arc::ptr_eq(inner, &m) {
            return Err(RkError::new(
                "argument",
                "a model cannot be added to itself",
            ));
        }
    }
    model::write(&m).add_member(member)?;
    Ok(())
}

#[extendr]
fn rk_model_pop(model: Robj) -> RkResult<()> {
    model::write(&model_ref(&model)?).pop()?;
    Ok(())
}

/// The layers (and nested models) of a model, in Keras's order, as R handles.
#[extendr]
fn rk_model_members(model: Robj) -> RkResult<List> {
    let m = model_ref(&model)?;
    let g = model::read(&m);
    Ok(List::from_values(g.members().iter().map(member_to_r)))
}

/// Names and shapes of a model's inputs and outputs (shapes NULL while unknown).
#[extendr]
fn rk_model_io(model: Robj) -> RkResult<List> {
    let m = model_ref(&model)?;
    let g = model::read(&m);
    let in_shapes: Vec<Robj> = g
        .inputs()
        .iter()
        .map(|i| {
            i.shape
                .as_deref()
                .map(dims_to_r)
                .unwrap_or_else(|| ().into())
        })
        .collect();
    let out_shapes: Vec<Robj> = match g.output_shapes()? {
        Some(s) => s.iter().map(|s| dims_to_r(s)).collect(),
        None => g.outputs().iter().map(|_| Robj::from(())).collect(),
    };
    Ok(list!(
        input_names = g
            .inputs()
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>(),
        input_shapes = List::from_values(in_shapes),
        output_names = g.output_names(),
        output_shapes = List::from_values(out_shapes)
    ))
}

/// `clone_model()`: the same architecture with fresh weights.
#[extendr]
fn rk_model_clone(model: Robj) -> RkResult<Robj> {
    let m = model_ref(&model)?;
    let clone = model::read(&m).clone_fresh()?;
    Ok(model_handle(clone))
}

/// Keras's next unique name for a prefix (`input_layer`, `input_layer_1`, ...).
#[extendr]
fn rk_unique_name(prefix: &str) -> String {
    engine::naming::unique_name(prefix)
}

/// Whether two R handles point at the same engine layer or model.
#[extendr]
fn rk_same_member(a: Robj, b: Robj) -> RkResult<bool> {
    Ok(match (member_from_r(&a)?, member_from_r(&b)?) {
        (Member::Layer(x), Member::Layer(y)) => std::sync::Arc::ptr_eq(&x, &y),
        (Member::Model(x), Member::Model(y)) => std::sync::Arc::ptr_eq(&x, &y),
        _ => false,
    })
}

extendr_module! {
    mod functional;
    fn rk_unique_name;
    fn rk_model_clone;
    fn rk_same_member;
    fn rk_layer_new;
    fn rk_bidirectional_new;
    fn rk_member_call;
    fn rk_member_info;
    fn rk_member_set_trainable;
    fn rk_member_get_weights;
    fn rk_layer_set_weights;
    fn rk_layer_snapshot;
    fn rk_layer_restore;
    fn rk_model_functional;
    fn rk_model_declare_input;
    fn rk_model_add;
    fn rk_model_pop;
    fn rk_model_members;
    fn rk_model_io;
}
