//! Exports for models: create, add layers, compile, fit, evaluate, predict, weights.
//! Each converts its arguments, calls the engine and converts the result back.

use engine::layers::ConfigValue;
use engine::losses::Loss;
use engine::model::{self, LayerRef, Model, ModelRef};
use engine::optim::{Algorithm, OptimizerConfig};
use engine::train::{self, Array, FitOptions, Samples};
use engine::Tensor;
use extendr_api::prelude::*;

use crate::console::Console;
use crate::convert::{array_from_r, array_to_r, rows_from_r};
use crate::error::{RkError, RkResult};

/// What an R model or layer object points at: engine objects shared with the models
/// that use them, so `layer$trainable <- FALSE` reaches every model holding the layer.
pub(crate) enum Handle {
    Model(ModelRef),
    Layer(LayerRef),
}

pub(crate) type HandlePtr = ExternalPtr<Handle>;

/// The attribute that says whether a handle is a model's or a layer's. R keeps it when
/// saveRDS()/readRDS() empties the pointer, so the error about a dead handle names what
/// the object was, also where the export takes either (count_params(), get_weights()).
const KIND_ATTR: &str = "rustkeras_handle";

/// The R value of a new handle, with its kind.
pub(crate) fn handle_to_r(h: Handle) -> Robj {
    let kind = match h {
        Handle::Model(_) => "model",
        Handle::Layer(_) => "layer",
    };
    let mut r: Robj = HandlePtr::new(h).into();
    r.set_attrib(KIND_ATTR, kind)
        .expect("an external pointer takes attributes");
    r
}

fn handle(x: &Robj, what: &str) -> RkResult<HandlePtr> {
    x.try_into().map_err(|e| match e {
        extendr_api::Error::ExpectedExternalNonNullPtr(_) => {
            let was = x
                .get_attrib(KIND_ATTR)
                .and_then(|k| k.as_str().map(str::to_string));
            let was = was.as_deref().unwrap_or(what);
            // A model or layer read back with its state comes back to life in R before it
            // gets here (R/model-serialization.R); what is left was saved without it.
            let fix = if was == "layer" {
                "rebuild the layer, or take it from its model with get_layer()"
            } else {
                "rebuild the model or load it from a file written by save_model()"
            };
            RkError::new(
                "state",
                format!("this {was}'s engine object no longer exists: it was serialized without it (with serialization version 2, or by a rustkeras that could not serialize models); {fix}"),
            )
        }
        _ => RkError::new("input", format!("`object` must be a rustkeras {what}")),
    })
}

extern "C" {
    // SEXPs, as pointers to R's opaque structure.
    fn rk_snapshot_new(
        handle: *mut std::ffi::c_void,
        payload: *mut std::ffi::c_void,
    ) -> *mut std::ffi::c_void;
    fn rk_snapshot_payload(snapshot: *mut std::ffi::c_void) -> *mut std::ffi::c_void;
}

/// Whether `x` is a live engine handle (not one emptied by serialization).
#[extendr]
fn rk_handle_alive(x: Robj) -> bool {
    let h: std::result::Result<HandlePtr, _> = (&x).try_into();
    h.is_ok()
}

/// The serialized form of the model or layer behind `handle`: an ALTREP raw vector whose
/// state is written only when R serializes it (src/model_snapshot.c). `payload` stays
/// with the live object and is left out of its serialized form.
#[extendr]
fn rk_snapshot(handle: Robj, payload: Robj) -> Robj {
    // SAFETY: rk_snapshot_new makes a new R object holding `handle` and `payload`; R
    // protects the result once it is returned.
    unsafe {
        let sexp = rk_snapshot_new(
            handle.get() as *mut std::ffi::c_void,
            payload.get() as *mut std::ffi::c_void,
        );
        Robj::from_sexp(sexp as extendr_api::SEXP)
    }
}

/// The payload of a live snapshot (NULL for a snapshot read back).
#[extendr]
fn rk_snapshot_payload_of(snapshot: Robj) -> Robj {
    // SAFETY: the C helper only reads `snapshot`'s fields.
    unsafe {
        let sexp = rk_snapshot_payload(snapshot.get() as *mut std::ffi::c_void);
        Robj::from_sexp(sexp as extendr_api::SEXP)
    }
}

/// The engine model behind an R model object, with a clear error when it is gone.
pub(crate) fn model_ref(x: &Robj) -> RkResult<ModelRef> {
    match &*handle(x, "model")? {
        Handle::Model(m) => Ok(m.clone()),
        Handle::Layer(_) => Err(RkError::new(
            "input",
            "`object` must be a rustkeras model, not a layer",
        )),
    }
}

pub(crate) fn layer_ref(x: &Robj) -> RkResult<LayerRef> {
    match &*handle(x, "layer")? {
        Handle::Layer(l) => Ok(l.clone()),
        Handle::Model(_) => Err(RkError::new("input", "expected a layer, not a model")),
    }
}

pub(crate) fn model_handle(m: Model) -> Robj {
    handle_to_r(Handle::Model(model::share(m)))
}

/// A layer or a model as a member of another model.
pub(crate) fn member_from_r(x: &Robj) -> RkResult<model::Member> {
    Ok(match &*handle(x, "layer")? {
        Handle::Model(m) => model::Member::Model(m.clone()),
        Handle::Layer(l) => model::Member::Layer(l.clone()),
    })
}

pub(crate) fn member_to_r(m: &model::Member) -> Robj {
    let h = match m {
        model::Member::Model(m) => Handle::Model(m.clone()),
        model::Member::Layer(l) => Handle::Layer(l.clone()),
    };
    handle_to_r(h)
}

fn opt_string(x: &Robj) -> Option<String> {
    x.as_str().map(str::to_string)
}

pub(crate) fn dims_from_r(x: &Robj, arg: &str) -> RkResult<Option<Vec<usize>>> {
    if x.is_null() {
        return Ok(None);
    }
    let v: Vec<f64> = x
        .as_real_vector()
        .or_else(|| {
            x.as_integer_vector()
                .map(|v| v.into_iter().map(f64::from).collect())
        })
        .ok_or_else(|| {
            RkError::new(
                "input",
                format!("`{arg}` must be a vector of positive integers"),
            )
        })?;
    if v.iter()
        .any(|d| !(d.is_finite() && *d >= 1.0 && d.fract() == 0.0))
    {
        return Err(RkError::new(
            "input",
            format!("`{arg}` must hold positive integers, not {v:?}"),
        ));
    }
    Ok(Some(v.into_iter().map(|d| d as usize).collect()))
}

/// An R array, or a list of arrays (one per model input or output), converted once
/// per call into row-major values and their dims.
struct RArrays(Vec<(Vec<f32>, Vec<usize>)>);

/// The arrays of `x`: itself, or each element of a list, with the name each goes by
/// in errors (`x`, or `x[[2]]`).
fn input_objects(x: &Robj, arg: &str) -> RkResult<Vec<(Robj, String)>> {
    if x.is_list() && !x.is_null() {
        let list: List = x.try_into().map_err(|_| {
            RkError::new(
                "input",
                format!("`{arg}` must be an array or a list of arrays"),
            )
        })?;
        if list.len() == 0 {
            return Err(RkError::new("input", format!("`{arg}` is an empty list")));
        }
        Ok(list
            .iter()
            .enumerate()
            .map(|(i, (_, a))| (a, format!("{arg}[[{}]]", i + 1)))
            .collect())
    } else {
        Ok(vec![(x.clone(), arg.to_string())])
    }
}

impl RArrays {
    fn from_r(x: &Robj, arg: &str) -> RkResult<RArrays> {
        let arrays = input_objects(x, arg)?
            .iter()
            .map(|(a, name)| array_from_r(a, name))
            .collect::<RkResult<Vec<_>>>()?;
        Ok(RArrays(arrays))
    }

    /// The engine's views; the first axis of each is the sample axis.
    fn arrays(&self) -> Vec<Array<'_>> {
        self.0
            .iter()
            .map(|(v, d)| Array {
                values: v,
                shape: &d[1..],
            })
            .collect()
    }
}

impl Drop for RArrays {
    /// Converted arrays of up to `POOLED_INPUT_FLOATS` values go back to the engine's
    /// pool: the next call converting an array of that size (predict() in a loop, say)
    /// writes into memory already faulted in. Larger ones (a training set) are freed,
    /// not kept for a call that may never come.
    fn drop(&mut self) {
        for (values, _) in self.0.drain(..) {
            if values.len() <= POOLED_INPUT_FLOATS {
                engine::device::pool::give(values);
            }
        }
    }
}

/// 64 MB of f32: Fashion-MNIST's 10000 test images take 31 MB, its 60000 training
/// images 188 MB.
const POOLED_INPUT_FLOATS: usize = 16 << 20;

fn samples<'a>(x: &'a RArrays, y: &'a RArrays) -> RkResult<Samples<'a>> {
    Ok(Samples::new(x.arrays(), y.arrays())?)
}

#[extendr]
fn rk_model_new(name: Robj, input_shape: Robj) -> RkResult<Robj> {
    let model = Model::sequential(opt_string(&name), dims_from_r(&input_shape, "input_shape")?)?;
    Ok(model_handle(model))
}

/// A layer config from R (a named list) as engine fields; NULL fields are left out.
pub(crate) fn config_fields(config: &List) -> RkResult<Vec<(String, ConfigValue)>> {
    let mut fields = Vec::new();
    for (key, value) in config.iter() {
        if value.is_null() {
            continue;
        }
        let v = if key.ends_with("_regularizer") && value.is_list() {
            regularizer_value(key, &value)?
        } else {
            config_value(key, &value)?
        };
        fields.push((key.to_string(), v));
    }
    Ok(fields)
}

/// A regularizer object from R (`regularizer_l2()`: a list with `class_name`, `l1`, `l2`)
/// in the engine's config form, `[class, l1, l2]`.
fn regularizer_value(key: &str, value: &Robj) -> RkResult<ConfigValue> {
    let list = value.as_list().expect("checked is_list");
    let get = |name: &str| list.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
    let bad = || {
        RkError::new(
            "argument",
            format!("`{key}` must be a regularizer from regularizer_l1(), regularizer_l2() or regularizer_l1_l2()"),
        )
    };
    let class = get("class_name")
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(bad)?;
    let factor = |name: &str| -> RkResult<f64> {
        match get(name) {
            None => Ok(0.0),
            Some(v) => v
                .as_real()
                .or_else(|| v.as_integer().map(f64::from))
                .ok_or_else(bad),
        }
    };
    Ok(ConfigValue::List(vec![
        ConfigValue::Str(class),
        ConfigValue::Float(factor("l1")?),
        ConfigValue::Float(factor("l2")?),
    ]))
}

/// One config field from R: a length-1 vector is a scalar, a longer one a tuple.
pub(crate) fn config_value(key: &str, value: &Robj) -> RkResult<ConfigValue> {
    let scalar = |i: usize| -> Option<ConfigValue> {
        if let Some(b) = value.as_logical_slice() {
            b.get(i).map(|b| ConfigValue::Bool(b.is_true()))
        } else if let Some(s) = value.as_str_iter() {
            s.into_iter()
                .nth(i)
                .map(|s| ConfigValue::Str(s.to_string()))
        } else if let Some(v) = value.as_integer_slice() {
            v.get(i).map(|&v| ConfigValue::Int(v as i64))
        } else {
            value
                .as_real_slice()
                .and_then(|v| v.get(i))
                .map(|&v| ConfigValue::Float(v))
        }
    };
    let bad = || {
        RkError::new(
            "input",
            format!("`{key}` must be a number, string or logical (or a vector of them)"),
        )
    };
    match value.len() {
        1 => scalar(0).ok_or_else(bad),
        n if n > 1 && !value.is_list() => (0..n)
            .map(|i| scalar(i).ok_or_else(bad))
            .collect::<RkResult<Vec<_>>>()
            .map(ConfigValue::List),
        _ => Err(bad()),
    }
}

/// What summary() and print() need: names, classes, shapes, parameter counts.
#[extendr]
fn rk_model_info(model: Robj) -> RkResult<List> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    let info = ptr.layer_info();
    let shapes: Vec<Robj> = info
        .iter()
        .map(|l| match &l.output_shape {
            Some(s) => s.iter().map(|&d| d as i32).collect::<Vec<i32>>().into(),
            None => Robj::from(()),
        })
        .collect();
    let input: Robj = match ptr.input_shape() {
        Some(s) => s.iter().map(|&d| d as i32).collect::<Vec<i32>>().into(),
        None => ().into(),
    };
    let compiled = ptr.compiled.as_ref();
    let connected: Vec<Robj> = info
        .iter()
        .map(|l| Robj::from(l.connected_to.clone()))
        .collect();
    Ok(list!(
        name = ptr.name.clone(),
        class_name = ptr.class_name(),
        chain = ptr.is_chain(),
        trainable = ptr.trainable,
        input_shape = input,
        built = ptr.is_built(),
        compiled = compiled.is_some(),
        optimizer = compiled.map(|c| c.optimizer.config.name.clone()),
        loss = compiled.map(|c| c.loss().name().to_string()),
        optimizer_params = compiled
            .and_then(|c| c.optimizer.variable_count())
            .map(|n| n as f64),
        layer_names = info.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        layer_classes = info
            .iter()
            .map(|l| l.class_name.clone())
            .collect::<Vec<_>>(),
        output_shapes = List::from_values(shapes),
        params = info.iter().map(|l| l.params as f64).collect::<Vec<_>>(),
        trainable_params = info
            .iter()
            .map(|l| l.trainable_params as f64)
            .collect::<Vec<_>>(),
        layer_built = info.iter().map(|l| l.built).collect::<Vec<_>>(),
        layer_trainable = info.iter().map(|l| l.trainable).collect::<Vec<_>>(),
        connected_to = List::from_values(connected)
    ))
}

/// `optimizer` is a named list: name, learning_rate and the optimizer's own arguments.
#[extendr]
fn rk_model_compile(
    model: Robj,
    optimizer: List,
    loss: Vec<String>,
    from_logits: bool,
    loss_weights: Robj,
    metrics: Vec<String>,
) -> RkResult<()> {
    let get = |key: &str| optimizer.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    let num = |key: &str, default: f64| get(key).and_then(|v| v.as_real()).unwrap_or(default);
    let flag = |key: &str| get(key).and_then(|v| v.as_bool()).unwrap_or(false);
    let name = get("name")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "rmsprop".into());
    let mut config = OptimizerConfig::from_name(&name)?;
    config.learning_rate = num("learning_rate", config.learning_rate);
    config.algorithm = match config.algorithm {
        Algorithm::Sgd { .. } => Algorithm::Sgd {
            momentum: num("momentum", 0.0),
            nesterov: flag("nesterov"),
        },
        Algorithm::RmsProp { .. } => Algorithm::RmsProp {
            rho: num("rho", 0.9),
            momentum: num("momentum", 0.0),
            epsilon: num("epsilon", 1e-7),
            centered: flag("centered"),
        },
        Algorithm::Adam { .. } => Algorithm::Adam {
            beta_1: num("beta_1", 0.9),
            beta_2: num("beta_2", 0.999),
            epsilon: num("epsilon", 1e-7),
            amsgrad: flag("amsgrad"),
        },
    };
    if let Some(wd) = get("weight_decay").and_then(|v| v.as_real()) {
        config.weight_decay = Some(wd);
    }
    let losses = loss
        .iter()
        .map(|l| Loss::from_name(l, from_logits))
        .collect::<engine::Result<Vec<_>>>()?;
    let weights = if loss_weights.is_null() {
        None
    } else {
        Some(
            loss_weights
                .as_real_vector()
                .ok_or_else(|| RkError::new("input", "`loss_weights` must be a numeric vector"))?,
        )
    };
    let m = model_ref(&model)?;
    model::write(&m).compile(config, losses, weights, metrics)?;
    Ok(())
}

fn logs_to_r(logs: &[(String, f64)]) -> Robj {
    let mut v: Robj = logs.iter().map(|(_, v)| *v).collect::<Vec<f64>>().into();
    v.set_attrib(
        "names",
        logs.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
    )
    .expect("names on a fresh vector");
    v
}

/// Trains the model; returns list(epochs, metrics = named list of per-epoch values,
/// interrupted).
#[extendr]
#[allow(clippy::too_many_arguments)]
fn rk_model_fit(
    model: Robj,
    x: Robj,
    y: Robj,
    batch_size: i32,
    epochs: i32,
    initial_epoch: i32,
    verbose: i32,
    live: bool,
    shuffle: bool,
    validation_split: f64,
    val_x: Robj,
    val_y: Robj,
    total_epochs: i32,
) -> RkResult<List> {
    // First, so that it ends last: the converted arrays go back to the pool.
    let _running = engine::device::pool::Running::start();
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    let (xa, ya) = (RArrays::from_r(&x, "x")?, RArrays::from_r(&y, "y")?);
    let val = if val_x.is_null() {
        None
    } else {
        Some((
            RArrays::from_r(&val_x, "validation_data")?,
            RArrays::from_r(&val_y, "validation_data")?,
        ))
    };
    let data = samples(&xa, &ya)?;
    let validation = val.as_ref().map(|(x, y)| samples(x, y)).transpose()?;
    let opts = FitOptions {
        batch_size: batch_size.max(0) as usize,
        epochs: epochs.max(0) as usize,
        initial_epoch: initial_epoch.max(0) as usize,
        shuffle,
        validation_split,
    };
    let mut console = Console::new(verbose.clamp(0, 2) as u8, live, true);
    console.total_epochs = (total_epochs > 0).then_some(total_epochs as usize);
    let history = train::fit(&mut ptr, data, validation, &opts, &mut console)?;
    let names: Vec<String> = history.metrics.iter().map(|(k, _)| k.clone()).collect();
    let mut metrics = List::from_values(history.metrics.iter().map(|(_, v)| Robj::from(v.clone())));
    metrics.set_names(names).expect("names on a fresh list");
    Ok(list!(
        epochs = history
            .epochs
            .iter()
            .map(|&e| e as i32 + 1)
            .collect::<Vec<i32>>(),
        metrics = metrics,
        interrupted = history.interrupted
    ))
}

/// The compiled optimizer's learning rate (for callbacks).
#[extendr]
fn rk_model_learning_rate(model: Robj) -> RkResult<f64> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    let c = ptr
        .compiled
        .as_ref()
        .ok_or_else(engine::model::not_compiled)?;
    Ok(c.optimizer.config.learning_rate)
}

#[extendr]
fn rk_model_set_learning_rate(model: Robj, learning_rate: f64) -> RkResult<()> {
    if !(learning_rate.is_finite() && learning_rate >= 0.0) {
        return Err(RkError::new(
            "argument",
            format!("the learning rate must be a number >= 0, not {learning_rate}"),
        ));
    }
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    let c = ptr
        .compiled
        .as_mut()
        .ok_or_else(engine::model::not_compiled)?;
    c.optimizer.config.learning_rate = learning_rate;
    Ok(())
}

#[extendr]
fn rk_model_evaluate(
    model: Robj,
    x: Robj,
    y: Robj,
    batch_size: i32,
    verbose: i32,
    live: bool,
) -> RkResult<Robj> {
    // First, so that it ends last: the converted arrays go back to the pool.
    let _running = engine::device::pool::Running::start();
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    let (xa, ya) = (RArrays::from_r(&x, "x")?, RArrays::from_r(&y, "y")?);
    let data = samples(&xa, &ya)?;
    let mut console = Console::new(verbose.clamp(0, 2) as u8, live, false);
    let logs = train::evaluate(&mut ptr, data, batch_size.max(0) as usize, &mut console)?;
    console.finish(&logs);
    Ok(logs_to_r(&logs))
}

#[extendr]
fn rk_model_predict(
    model: Robj,
    x: Robj,
    batch_size: i32,
    verbose: i32,
    live: bool,
) -> RkResult<Robj> {
    // First, so that it ends last: the outputs' buffers go back to the pool.
    let _running = engine::device::pool::Running::start();
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    // Converted batch by batch as predict() reads them (`RRows`).
    let objects = input_objects(&x, "x")?;
    let inputs = objects
        .iter()
        .map(|(a, name)| rows_from_r(a, name))
        .collect::<RkResult<Vec<_>>>()?;
    let rows: Vec<&dyn train::Rows> = inputs.iter().map(|r| r as &dyn train::Rows).collect();
    let mut console = Console::new(verbose.clamp(0, 2) as u8, live, false);
    let outs = train::predict_rows(&mut ptr, &rows, batch_size.max(0) as usize, &mut console)?;
    console.finish(&[]);
    if outs.len() == 1 {
        return Ok(array_to_r(outs[0].host(), outs[0].shape()));
    }
    Ok(List::from_values(outs.iter().map(|o| array_to_r(o.host(), o.shape()))).into())
}

#[extendr]
fn rk_model_get_weights(model: Robj) -> RkResult<List> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    Ok(List::from_values(
        ptr.get_weights()
            .iter()
            .map(|w| array_to_r(w.host(), w.shape())),
    ))
}

#[extendr]
fn rk_model_set_weights(model: Robj, weights: List) -> RkResult<()> {
    let mut tensors = Vec::new();
    for (_, w) in weights.iter() {
        let (values, dims) = array_from_r(&w, "weights")?;
        tensors.push(Tensor::from_vec(dims, values)?);
    }
    model::write(&model_ref(&model)?).set_weights(tensors)?;
    Ok(())
}

#[extendr]
fn rk_set_random_seed(seed: f64) {
    engine::rng::set_seed(seed as u64);
}

/// Engine facts for backend_info(): version, threads, SIMD level.
#[extendr]
fn rk_backend_info() -> List {
    list!(
        version = engine::VERSION,
        threads = engine::threads::count() as i32,
        pool_mb = engine::device::pool::max_bytes() as f64 / 1048576.0,
        pool_held_mb = engine::device::pool::held_bytes() as f64 / 1048576.0,
        simd = engine::device::cpu::simd_level()
    )
}

/// Sets the engine's thread count (0: every core); the pool is rebuilt on its next use.
#[extendr]
fn rk_set_threads(threads: i32) {
    engine::threads::set_threads(threads.max(0) as usize);
}

/// Caps the engine's buffer pool at `mb` megabytes (0: the machine's default).
#[extendr]
fn rk_set_pool_mb(mb: f64) {
    let bytes = if mb.is_finite() && mb > 0.0 {
        (mb * 1048576.0) as usize
    } else {
        0
    };
    engine::device::pool::set_max_bytes(bytes);
}

extendr_module! {
    mod model;
    fn rk_model_new;
    fn rk_model_info;
    fn rk_model_compile;
    fn rk_model_fit;
    fn rk_model_learning_rate;
    fn rk_model_set_learning_rate;
    fn rk_model_evaluate;
    fn rk_model_predict;
    fn rk_model_get_weights;
    fn rk_model_set_weights;
    fn rk_set_random_seed;
    fn rk_backend_info;
    fn rk_set_threads;
    fn rk_set_pool_mb;
    fn rk_handle_alive;
    fn rk_snapshot;
    fn rk_snapshot_payload_of;
}
