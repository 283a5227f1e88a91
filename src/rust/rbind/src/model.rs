//! Exports for models: create, add layers, compile, fit, evaluate, predict, weights.
//! Each converts its arguments, calls the engine and converts the result back.

use engine::layers::registry;
use engine::layers::ConfigValue;
use engine::losses::Loss;
use engine::model::Sequential;
use engine::optim::{Algorithm, OptimizerConfig};
use engine::train::{self, FitOptions, Samples};
use engine::Tensor;
use extendr_api::prelude::*;

use crate::console::Console;
use crate::convert::{array_from_r, array_to_r};
use crate::error::{RkError, RkResult};

pub(crate) type ModelPtr = ExternalPtr<Sequential>;

/// The engine model behind an R model object, with a clear error when it is gone.
pub(crate) fn model_ptr(model: &Robj) -> RkResult<ModelPtr> {
    let ptr: ModelPtr = model.try_into().map_err(|e| match e {
        extendr_api::Error::ExpectedExternalNonNullPtr(_) => RkError::new(
            "state",
            "this model's engine object no longer exists: models do not survive saveRDS()/readRDS() or a new R session; rebuild the model or load it from a saved file",
        ),
        _ => RkError::new("input", "`object` must be a rustkeras model"),
    })?;
    Ok(ptr)
}

fn opt_string(x: &Robj) -> Option<String> {
    x.as_str().map(str::to_string)
}

fn dims_from_r(x: &Robj, arg: &str) -> RkResult<Option<Vec<usize>>> {
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

/// x and y converted from R once per call: row-major values and their dims.
struct SampleArrays {
    x: (Vec<f32>, Vec<usize>),
    y: (Vec<f32>, Vec<usize>),
}

impl SampleArrays {
    fn from_r(x: &Robj, x_arg: &str, y: &Robj, y_arg: &str) -> RkResult<SampleArrays> {
        Ok(SampleArrays {
            x: array_from_r(x, x_arg)?,
            y: array_from_r(y, y_arg)?,
        })
    }

    /// The engine's view; the first axis of each is the sample axis.
    fn samples(&self) -> RkResult<Samples<'_>> {
        Ok(Samples::new(
            &self.x.0,
            &self.x.1[1..],
            &self.y.0,
            &self.y.1[1..],
        )?)
    }
}

#[extendr]
fn rk_model_new(name: Robj, input_shape: Robj) -> RkResult<Robj> {
    let model = Sequential::new(opt_string(&name), dims_from_r(&input_shape, "input_shape")?)?;
    Ok(ModelPtr::new(model).into())
}

/// Adds a layer given by its Keras class name and config (a named list).
#[extendr]
fn rk_model_add_layer(model: Robj, class_name: &str, config: List) -> RkResult<()> {
    let mut fields = Vec::new();
    for (key, value) in config.iter() {
        if value.is_null() {
            continue;
        }
        fields.push((key.to_string(), config_value(key, &value)?));
    }
    let layer = registry::from_config(class_name, &fields)?;
    model_ptr(&model)?.add(layer)?;
    Ok(())
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
    let ptr = model_ptr(&model)?;
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
    Ok(list!(
        name = ptr.name.clone(),
        input_shape = input,
        built = ptr.is_built(),
        compiled = compiled.is_some(),
        optimizer = compiled.map(|c| c.optimizer.config.name.clone()),
        loss = compiled.map(|c| c.loss.name().to_string()),
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
            .collect::<Vec<_>>()
    ))
}

/// `optimizer` is a named list: name, learning_rate and the optimizer's own arguments.
#[extendr]
fn rk_model_compile(
    model: Robj,
    optimizer: List,
    loss: &str,
    from_logits: bool,
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
    let loss = Loss::from_name(loss, from_logits)?;
    model_ptr(&model)?.compile(config, loss, metrics)?;
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
) -> RkResult<List> {
    let mut ptr = model_ptr(&model)?;
    let arrays = SampleArrays::from_r(&x, "x", &y, "y")?;
    let val_arrays = if val_x.is_null() {
        None
    } else {
        Some(SampleArrays::from_r(
            &val_x,
            "validation_data",
            &val_y,
            "validation_data",
        )?)
    };
    let data = arrays.samples()?;
    let validation = val_arrays.as_ref().map(SampleArrays::samples).transpose()?;
    let opts = FitOptions {
        batch_size: batch_size.max(0) as usize,
        epochs: epochs.max(0) as usize,
        initial_epoch: initial_epoch.max(0) as usize,
        shuffle,
        validation_split,
    };
    let mut console = Console::new(verbose.clamp(0, 2) as u8, live, true);
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

#[extendr]
fn rk_model_evaluate(
    model: Robj,
    x: Robj,
    y: Robj,
    batch_size: i32,
    verbose: i32,
    live: bool,
) -> RkResult<Robj> {
    let mut ptr = model_ptr(&model)?;
    let arrays = SampleArrays::from_r(&x, "x", &y, "y")?;
    let data = arrays.samples()?;
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
    let mut ptr = model_ptr(&model)?;
    let (xv, xd) = array_from_r(&x, "x")?;
    let mut console = Console::new(verbose.clamp(0, 2) as u8, live, false);
    let out = train::predict(
        &mut ptr,
        &xv,
        &xd[1..],
        batch_size.max(0) as usize,
        &mut console,
    )?;
    console.finish(&[]);
    Ok(array_to_r(out.host(), out.shape()))
}

#[extendr]
fn rk_model_get_weights(model: Robj) -> RkResult<List> {
    let ptr = model_ptr(&model)?;
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
    model_ptr(&model)?.set_weights(tensors)?;
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
        threads = rayon::current_num_threads() as i32,
        simd = engine::device::cpu::simd_level()
    )
}

/// Sizes rayon's pool once per session (later calls keep the first size).
#[extendr]
fn rk_init_threads(threads: i32) -> bool {
    let mut b = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        b = b.num_threads(threads as usize);
    }
    b.build_global().is_ok()
}

extendr_module! {
    mod model;
    fn rk_model_new;
    fn rk_model_add_layer;
    fn rk_model_info;
    fn rk_model_compile;
    fn rk_model_fit;
    fn rk_model_evaluate;
    fn rk_model_predict;
    fn rk_model_get_weights;
    fn rk_model_set_weights;
    fn rk_set_random_seed;
    fn rk_backend_info;
    fn rk_init_threads;
}
