//! Models, layers, optimizers and compile settings as Keras 3's JSON configs.
//!
//! Layers are mapped generically through `Layer::config()` and `registry::from_config`:
//! numbers, strings, booleans and tuples map one to one. `FIELD_FORMS` is the only
//! per-field knowledge: fields whose Keras JSON is richer than the engine's value
//! (initializers as objects, the dtype policy) and the fields Keras writes as constants
//! that the engine does not model (`kernel_regularizer: null`, ...). A new layer class
//! round-trips without changes here, unless Keras writes such constants for it.

use serde_json::{json, Map, Value};

use super::{fail, FResult, Fail};
use crate::layers::{registry, Bidirectional, ConfigValue, Layer, MergeMode, Recurrent};
use crate::losses::Loss;
use crate::model::Compiled;
use crate::optim::{Algorithm, OptimizerConfig};
use crate::regularizers::{self, Regularizer};

/// Which JSON dialect: the legacy H5 file's (`model_config`, no `module` keys) or the
/// `.keras` file's (`module`, `registered_name`, `build_config`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flavor {
    Legacy,
    Keras3,
}

/// Constant fields Keras writes for a class that the engine has no value for.
fn keras_constants(class_name: &str) -> Vec<(&'static str, Value)> {
    let nulls = |names: &[&'static str]| names.iter().map(|n| (*n, Value::Null)).collect();
    match class_name {
        "Dense" => nulls(&[
            "kernel_regularizer",
            "bias_regularizer",
            "kernel_constraint",
            "bias_constraint",
            "quantization_config",
        ]),
        "Conv1D" | "Conv2D" => nulls(&[
            "kernel_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "bias_constraint",
        ]),
        "Dropout" => nulls(&["seed", "noise_shape"]),
        "Normalization" => nulls(&["mean", "variance"]),
        "SimpleRNN" | "LSTM" | "GRU" => nulls(&[
            "kernel_regularizer",
            "recurrent_regularizer",
            "bias_regularizer",
            "activity_regularizer",
            "kernel_constraint",
            "recurrent_constraint",
            "bias_constraint",
            "seed",
        ]),
        "Embedding" => nulls(&[
            "embeddings_regularizer",
            "activity_regularizer",
            "embeddings_constraint",
            "quantization_config",
        ]),
        "BatchNormalization" => {
            let mut v: Vec<(&'static str, Value)> = nulls(&[
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
            ]);
            v.push(("synchronized", Value::Bool(false)));
            v
        }
        _ => Vec::new(),
    }
}

/// Keras's `{"module": "keras", "class_name": "DTypePolicy", ...}` for float32.
pub fn dtype_policy() -> Value {
    json!({"module": "keras", "class_name": "DTypePolicy",
           "config": {"name": "float32"}, "registered_name": null})
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

fn initializer_json(name: &str) -> Value {
    let config = match name {
        "zeros" | "ones" => json!({}),
        "random_uniform" => json!({"minval": -0.05, "maxval": 0.05, "seed": null}),
        "random_normal" => json!({"mean": 0.0, "stddev": 0.05, "seed": null}),
        "orthogonal" => json!({"gain": 1.0, "seed": null}),
        _ => json!({"seed": null}),
    };
    json!({"module": "keras.initializers", "class_name": camel(name),
           "config": config, "registered_name": null})
}

/// A float as Keras would print it: values that are f32s (the engine's storage) keep
/// their short decimal form (0.4, not 0.4000000059604645).
fn float_json(v: f64) -> Value {
    let f = v as f32;
    let value = if f as f64 == v {
        format!("{f}").parse().unwrap_or(v)
    } else {
        v
    };
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

pub fn config_value_to_json(v: &ConfigValue) -> Value {
    match v {
        ConfigValue::Int(i) => json!(i),
        ConfigValue::Float(f) => float_json(*f),
        ConfigValue::Bool(b) => json!(b),
        ConfigValue::Str(s) => json!(s),
        ConfigValue::List(items) => Value::Array(items.iter().map(config_value_to_json).collect()),
    }
}

/// One field of a layer's engine config as Keras writes it.
fn field_to_json(key: &str, v: &ConfigValue) -> Value {
    match (key, v) {
        // Keras's None in a noise shape: the engine's 0.
        ("noise_shape", ConfigValue::List(items)) => Value::Array(
            items
                .iter()
                .map(|x| match x {
                    ConfigValue::Int(0) => Value::Null,
                    x => config_value_to_json(x),
                })
                .collect(),
        ),
        (k, ConfigValue::Str(name)) if k.ends_with("_initializer") => initializer_json(name),
        _ => config_value_to_json(v),
    }
}

/// A JSON value from a Keras config as an engine value; `None` for `null` (the engine's
/// default applies).
fn field_from_json(layer: &str, key: &str, v: &Value) -> FResult<Option<ConfigValue>> {
    let unsupported = || {
        Fail(format!(
            "layer '{layer}': field `{key}` has a value this engine does not support: {}",
            short_json(v)
        ))
    };
    if let ("noise_shape", Value::Array(items)) = (key, v) {
        let sizes = items
            .iter()
            .map(|x| match x {
                Value::Null => Some(ConfigValue::Int(0)),
                x => x.as_i64().filter(|&i| i > 0).map(ConfigValue::Int),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(unsupported)?;
        return Ok(Some(ConfigValue::List(sizes)));
    }
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => ConfigValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ConfigValue::Int(i),
            None => ConfigValue::Float(n.as_f64().ok_or_else(unsupported)?),
        },
        Value::String(s) => ConfigValue::Str(s.clone()),
        Value::Array(items) => ConfigValue::List(
            items
                .iter()
                .map(|x| field_from_json(layer, key, x)?.ok_or_else(unsupported))
                .collect::<FResult<_>>()?,
        ),
        Value::Object(m) if key.ends_with("_initializer") => {
            let class = m
                .get("class_name")
                .and_then(Value::as_str)
                .ok_or_else(unsupported)?;
            ConfigValue::Str(snake(class))
        }
        // Keras writes some activations as serialized functions.
        Value::Object(m) if key == "activation" => match m.get("config") {
            Some(Value::String(s)) => ConfigValue::Str(s.clone()),
            _ => return Err(unsupported()),
        },
        Value::Object(_) => return Err(unsupported()),
    }))
}

pub fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(117).map(|c| c.0).unwrap_or(117)]
        )
    } else {
        s
    }
}

pub fn batch_shape(shape: &[usize]) -> Value {
    let mut v = vec![Value::Null];
    v.extend(shape.iter().map(|&d| json!(d)));
    Value::Array(v)
}

/// A layer's `{"class_name": ..., "config": {...}}` entry; `build_input` is the
/// `build_config` input shape Keras writes for a built layer (`.keras` flavor only).
pub fn layer_entry(
    layer: &dyn Layer,
    trainable: bool,
    regularizers: &[(&'static str, Regularizer)],
    build_input: Option<Value>,
    flavor: Flavor,
) -> Map<String, Value> {
    let mut config = Map::new();
    config.insert("name".into(), json!(layer.name()));
    config.insert("trainable".into(), json!(trainable));
    config.insert("dtype".into(), dtype_policy());
    for (k, v) in layer.config() {
        config.insert(k.into(), field_to_json(k, &v));
    }
    for (field, weight) in regularizers::fields(layer.class_name()) {
        if let Some((_, r)) = regularizers.iter().find(|(w, _)| w == weight) {
            config.insert(field.to_string(), regularizer_json(r));
        }
    }
    // A wrapper's layers, as whole entries (their regularizers are the wrapper's), in
    // Keras 3's form even in a legacy file, as Keras writes them there too.
    for (key, inner) in layer.wrapped() {
        let e = layer_entry(
            inner,
            true,
            regularizers,
            build_input.clone(),
            Flavor::Keras3,
        );
        config.insert(key.to_string(), Value::Object(e));
    }
    for (k, v) in keras_constants(layer.class_name()) {
        config.entry(k).or_insert(v);
    }
    let mut entry = Map::new();
    if flavor == Flavor::Keras3 {
        entry.insert("module".into(), json!("keras.layers"));
    }
    entry.insert("class_name".into(), json!(layer.class_name()));
    entry.insert("config".into(), Value::Object(config));
    if flavor == Flavor::Keras3 {
        entry.insert("registered_name".into(), Value::Null);
        if let Some(s) = build_input.filter(|_| layer.is_built()) {
            entry.insert("build_config".into(), json!({ "input_shape": s }));
        }
    }
    entry
}

/// A layer's entry as a JSON value (see `layer_entry`).
pub fn layer_to_json(
    layer: &dyn Layer,
    trainable: bool,
    regularizers: &[(&'static str, Regularizer)],
    flavor: Flavor,
) -> Value {
    Value::Object(layer_entry(layer, trainable, regularizers, None, flavor))
}

/// `{"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.01}, ...}`.
fn regularizer_json(r: &Regularizer) -> Value {
    let config: Map<String, Value> = r
        .factors()
        .into_iter()
        .map(|(k, v)| (k.to_string(), float_json(v)))
        .collect();
    json!({"module": "keras.regularizers", "class_name": r.class_name(),
           "config": config, "registered_name": null})
}

/// A regularizer from Keras's JSON: an object, or a name (`"l2"`).
fn regularizer_from_json(layer: &str, key: &str, v: &Value) -> FResult<Regularizer> {
    let bad = |m: String| Fail(format!("layer '{layer}': `{key}`: {m}"));
    if let Some(name) = v.as_str() {
        return regularizers::by_name(name).map_err(bad);
    }
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("not a regularizer: {}", short_json(v))))?;
    let factor = |k: &str| {
        v.get("config")
            .and_then(|c| c.get(k))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    Regularizer::new(class, factor("l1"), factor("l2")).map_err(bad)
}

/// A layer read from a config, and its weights' regularizers (which live beside it).
pub struct ParsedLayer {
    pub layer: Box<dyn Layer>,
    pub regularizers: Vec<(&'static str, Regularizer)>,
}

/// A layer, with its weights' regularizers, from its `{"class_name", "config"}` entry
/// (`index` for messages).
pub fn layer_from_json(entry: &Value, index: usize) -> FResult<ParsedLayer> {
    let (class, name, fields, regularizers) = layer_fields(entry, index)?;
    if class == "Bidirectional" {
        return bidirectional_from_json(entry, index, name);
    }
    let layer = registry::from_config(&class, &fields).map_err(|e| match e {
        crate::Error::UnknownName {
            kind,
            name: n,
            known,
        } if kind == "layer class" => Fail(format!(
            "layer {} has class '{n}', which rustkeras does not have (known layer classes: {})",
            index + 1,
            known.join(", ")
        )),
        e => Fail(format!("layer '{name}' ({class}): {e}")),
    })?;
    Ok(ParsedLayer {
        layer,
        regularizers,
    })
}

/// A layer entry's class, name, engine config fields and regularizers.
#[allow(clippy::type_complexity)]
fn layer_fields(
    entry: &Value,
    index: usize,
) -> FResult<(
    String,
    String,
    Vec<(String, ConfigValue)>,
    Vec<(&'static str, Regularizer)>,
)> {
    let class = entry
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| Fail(format!("layer {} has no class_name", index + 1)))?;
    let config = entry
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| Fail(format!("layer {} ({class}) has no config", index + 1)))?;
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    check_dtype(&name, config.get("dtype"))?;
    let mut fields = Vec::new();
    for (k, v) in config {
        if matches!(
            k.as_str(),
            "trainable" | "dtype" | "batch_input_shape" | "batch_shape"
        ) || (class == "Bidirectional" && matches!(k.as_str(), "layer" | "backward_layer"))
        {
            continue;
        }
        if k.ends_with("_regularizer") && !v.is_null() {
            let r = regularizer_from_json(&name, k, v)?;
            fields.push((k.clone(), regularizers::to_config_value(&r)));
            continue;
        }
        if let Some(cv) = field_from_json(&name, k, v)? {
            fields.push((k.clone(), cv));
        }
    }
    let (fields, regularizers) = regularizers::split_fields(class, &fields)
        .map_err(|e| Fail(format!("layer '{name}' ({class}): {e}")))?;
    Ok((class.to_string(), name, fields, regularizers))
}

/// A Bidirectional wrapper from its entry: the wrapped recurrent layer (`layer`), its
/// backward copy if given, `merge_mode`. The wrapped layer's regularizers apply to both.
fn bidirectional_from_json(entry: &Value, index: usize, name: String) -> FResult<ParsedLayer> {
    let config = &entry["config"];
    let fail_here = |e: crate::Error| Fail(format!("layer '{name}' (Bidirectional): {e}"));
    let inner = |key: &str| -> FResult<Option<(Recurrent, Vec<(&'static str, Regularizer)>)>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(e) => {
                let (class, _, fields, regs) = layer_fields(e, index)?;
                let r = registry::recurrent_from_config(&class, &fields).map_err(fail_here)?;
                Ok(Some((r, regs)))
            }
        }
    };
    let (layer, regularizers) = inner("layer")?
        .ok_or_else(|| Fail(format!("layer '{name}' (Bidirectional) has no 'layer'")))?;
    let backward = inner("backward_layer")?.map(|(r, _)| r);
    let merge = match config.get("merge_mode") {
        None => "concat",
        Some(Value::String(s)) => s.as_str(),
        Some(v) => {
            return fail(format!(
                "layer '{name}' (Bidirectional): merge_mode {} is not supported yet",
                short_json(v)
            ))
        }
    };
    let mode = MergeMode::from_name(merge).map_err(fail_here)?;
    let layer = Bidirectional::new(layer, backward, mode, Some(name.clone())).map_err(fail_here)?;
    Ok(ParsedLayer {
        layer: Box::new(layer),
        regularizers,
    })
}

fn check_dtype(layer: &str, dtype: Option<&Value>) -> FResult<()> {
    let name = match dtype {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(m)) => m
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("float32"),
        Some(v) => return fail(format!("layer '{layer}': unknown dtype {}", short_json(v))),
    };
    if name != "float32" {
        return fail(format!(
            "layer '{layer}' uses dtype '{name}'; rustkeras computes in float32 only"
        ));
    }
    Ok(())
}

/// Keras's class name and default object name of an optimizer.
fn optimizer_names(engine_name: &str) -> (&'static str, &'static str) {
    match engine_name {
        "sgd" => ("SGD", "sgd"),
        "rmsprop" => ("RMSprop", "rm_sprop"),
        "adam" => ("Adam", "adam"),
        _ => ("AdamW", "adam_w"),
    }
}

/// The name Keras gives the optimizer object (the prefix of its variables' names).
pub fn optimizer_object_name(cfg: &OptimizerConfig) -> &'static str {
    optimizer_names(&cfg.name).1
}

/// `{"class_name": "Adam", "config": {...}}` (with `module` and `registered_name` for
/// `.keras` files).
pub fn optimizer_to_json(cfg: &OptimizerConfig, flavor: Flavor) -> Value {
    let (class, name) = optimizer_names(&cfg.name);
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    // Keras keeps the learning rate in a float32 variable and writes that value.
    c.insert(
        "learning_rate".into(),
        json!(cfg.learning_rate as f32 as f64),
    );
    c.insert(
        "weight_decay".into(),
        cfg.weight_decay.map(float_json).unwrap_or(Value::Null),
    );
    for k in ["clipnorm", "global_clipnorm", "clipvalue"] {
        c.insert(k.into(), Value::Null);
    }
    c.insert("use_ema".into(), json!(false));
    c.insert("ema_momentum".into(), json!(0.99));
    for k in [
        "ema_overwrite_frequency",
        "loss_scale_factor",
        "gradient_accumulation_steps",
    ] {
        c.insert(k.into(), Value::Null);
    }
    match cfg.algorithm {
        Algorithm::Sgd { momentum, nesterov } => {
            c.insert("momentum".into(), float_json(momentum));
            c.insert("nesterov".into(), json!(nesterov));
        }
        Algorithm::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
        } => {
            c.insert("rho".into(), float_json(rho));
            c.insert("momentum".into(), float_json(momentum));
            c.insert("epsilon".into(), float_json(epsilon));
            c.insert("centered".into(), json!(centered));
        }
        Algorithm::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
        } => {
            c.insert("beta_1".into(), float_json(beta_1));
            c.insert("beta_2".into(), float_json(beta_2));
            c.insert("epsilon".into(), float_json(epsilon));
            c.insert("amsgrad".into(), json!(amsgrad));
        }
    }
    let mut out = Map::new();
    if flavor == Flavor::Keras3 {
        out.insert("module".into(), json!("keras.optimizers"));
    }
    out.insert("class_name".into(), json!(class));
    out.insert("config".into(), Value::Object(c));
    if flavor == Flavor::Keras3 {
        out.insert("registered_name".into(), Value::Null);
    }
    Value::Object(out)
}

/// An optimizer from a Keras config object, or from a name string.
pub fn optimizer_from_json(v: &Value) -> FResult<OptimizerConfig> {
    if let Some(s) = v.as_str() {
        return Ok(OptimizerConfig::from_name(s)?);
    }
    let class = v.get("class_name").and_then(Value::as_str).ok_or_else(|| {
        Fail(format!(
            "optimizer config has no class_name: {}",
            short_json(v)
        ))
    })?;
    let mut cfg = OptimizerConfig::from_name(class).map_err(|_| {
        Fail(format!(
            "optimizer '{class}' is not one rustkeras has (SGD, RMSprop, Adam, AdamW)"
        ))
    })?;
    let empty = Map::new();
    let c = v.get("config").and_then(Value::as_object).unwrap_or(&empty);
    for k in [
        "clipnorm",
        "global_clipnorm",
        "clipvalue",
        "gradient_accumulation_steps",
        "loss_scale_factor",
        "ema_overwrite_frequency",
    ] {
        if c.get(k).is_some_and(|x| !x.is_null()) {
            return fail(format!(
                "optimizer option `{k}` is not supported by rustkeras; load with compile = FALSE"
            ));
        }
    }
    if c.get("use_ema").and_then(Value::as_bool) == Some(true) {
        return fail(
            "optimizer option `use_ema` is not supported by rustkeras; load with compile = FALSE",
        );
    }
    let num = |k: &str, d: f64| -> FResult<f64> {
        match c.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(x) => x.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                Fail(format!(
                    "optimizer field `{k}` should be a number, not {}",
                    short_json(x)
                ))
            }),
        }
    };
    let flag = |k: &str, d: bool| c.get(k).and_then(Value::as_bool).unwrap_or(d);
    cfg.learning_rate = num("learning_rate", cfg.learning_rate)?;
    if let Some(wd) = c.get("weight_decay") {
        cfg.weight_decay =
            match wd {
                Value::Null => None,
                x => Some(x.as_f64().ok_or_else(|| {
                    Fail("optimizer field `weight_decay` should be a number".into())
                })?),
            };
    }
    cfg.algorithm = match cfg.algorithm {
        Algorithm::Sgd { momentum, nesterov } => Algorithm::Sgd {
            momentum: num("momentum", momentum)?,
            nesterov: flag("nesterov", nesterov),
        },
        Algorithm::RmsProp {
            rho,
            momentum,
            epsilon,
            centered,
        } => Algorithm::RmsProp {
            rho: num("rho", rho)?,
            momentum: num("momentum", momentum)?,
            epsilon: num("epsilon", epsilon)?,
            centered: flag("centered", centered),
        },
        Algorithm::Adam {
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
        } => Algorithm::Adam {
            beta_1: num("beta_1", beta_1)?,
            beta_2: num("beta_2", beta_2)?,
            epsilon: num("epsilon", epsilon)?,
            amsgrad: flag("amsgrad", amsgrad),
        },
    };
    cfg.validate()?;
    Ok(cfg)
}

fn loss_to_json(loss: &Loss) -> Value {
    if !loss.from_logits {
        return json!(loss.name());
    }
    json!({"module": "keras.losses", "class_name": camel(loss.name()),
           "config": {"name": loss.name(), "reduction": "sum_over_batch_size",
                      "from_logits": true},
           "registered_name": null})
}

fn loss_from_json(v: &Value) -> FResult<Loss> {
    match v {
        Value::String(s) => Ok(Loss::from_name(s, false)?),
        Value::Object(m) => {
            let class = m
                .get("class_name")
                .and_then(Value::as_str)
                .ok_or_else(|| Fail(format!("unknown loss {}", short_json(v))))?;
            let from_logits = m
                .get("config")
                .and_then(|c| c.get("from_logits"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(Loss::from_name(&snake(class), from_logits)?)
        }
        _ => fail(format!("unknown loss {}", short_json(v))),
    }
}

fn metrics_from_json(v: Option<&Value>) -> FResult<Vec<String>> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) -> FResult<()> {
        match v {
            Value::Null => Ok(()),
            Value::String(s) => {
                out.push(s.clone());
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|x| walk(x, out)),
            Value::Object(m) => match m.get("config").and_then(|c| c.get("name")) {
                Some(Value::String(s)) => {
                    out.push(s.clone());
                    Ok(())
                }
                _ => fail(format!("unknown metric {}", short_json(v))),
            },
            _ => fail(format!("unknown metric {}", short_json(v))),
        }
    }
    if let Some(v) = v {
        walk(v, &mut out)?;
    }
    for m in &out {
        crate::metrics::check_name(m)?;
    }
    Ok(out)
}

/// One loss, or a list with one per output.
fn losses_json(c: &Compiled) -> Value {
    match c.losses.as_slice() {
        [l] => loss_to_json(l),
        ls => Value::Array(ls.iter().map(loss_to_json).collect()),
    }
}

/// `null` unless the user gave `loss_weights`.
fn loss_weights_json(c: &Compiled) -> Value {
    if c.loss_weights.iter().all(|&w| w == 1.0) {
        Value::Null
    } else {
        json!(c.loss_weights)
    }
}

/// The legacy H5 file's `training_config`.
pub fn training_config(c: &Compiled) -> Value {
    json!({"loss": losses_json(c), "loss_weights": loss_weights_json(c), "metrics": c.metrics,
           "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1,
           "jit_compile": false,
           "optimizer_config": optimizer_to_json(&c.optimizer.config, Flavor::Legacy)})
}

/// The `.keras` file's `compile_config`.
pub fn compile_config(c: &Compiled) -> Value {
    json!({"optimizer": optimizer_to_json(&c.optimizer.config, Flavor::Keras3),
           "loss": losses_json(c), "loss_weights": loss_weights_json(c), "metrics": c.metrics,
           "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1,
           "jit_compile": false})
}

/// What `compile()` was given, as read from a file.
#[derive(Clone)]
pub struct CompileSettings {
    pub optimizer: OptimizerConfig,
    /// One loss, or one per output.
    pub losses: Vec<Loss>,
    pub loss_weights: Option<Vec<f64>>,
    pub metrics: Vec<String>,
}

impl CompileSettings {
    pub fn apply(&self, model: &mut crate::model::Model) -> FResult<()> {
        model.compile(
            self.optimizer.clone(),
            self.losses.clone(),
            self.loss_weights.clone(),
            self.metrics.clone(),
        )?;
        Ok(())
    }
}

/// One value per output from a list, a dict keyed by output name, or a single value.
fn per_output<T>(
    v: &Value,
    what: &str,
    outputs: &[String],
    one: &dyn Fn(&Value) -> FResult<T>,
) -> FResult<Vec<T>> {
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::Object(m) if !m.contains_key("class_name") => outputs
            .iter()
            .map(|o| match m.get(o) {
                Some(x) => one(x),
                None => fail(format!("the saved {what} has no entry for output '{o}'")),
            })
            .collect(),
        _ => Ok(vec![one(v)?]),
    }
}

/// The compile settings in a `training_config` or a `compile_config` (Keras's default
/// optimizer, RMSprop, when none is given) for a model with these outputs.
pub fn compile_from_json(v: &Value, outputs: &[String]) -> FResult<CompileSettings> {
    let optimizer = match v.get("optimizer_config").or_else(|| v.get("optimizer")) {
        None | Some(Value::Null) => OptimizerConfig::from_name("rmsprop")?,
        Some(o) => optimizer_from_json(o)?,
    };
    let losses = match v.get("loss") {
        None | Some(Value::Null) => return fail("the compile settings have no loss"),
        Some(l) => per_output(l, "loss", outputs, &loss_from_json)?,
    };
    let weight = |x: &Value| {
        x.as_f64()
            .ok_or_else(|| Fail(format!("loss weight {} is not a number", short_json(x))))
    };
    let loss_weights = match v.get("loss_weights") {
        None | Some(Value::Null) => None,
        Some(w) => Some(per_output(w, "loss_weights", outputs, &weight)?),
    };
    let metrics = metrics_from_json(v.get("metrics"))?;
    Ok(CompileSettings {
        optimizer,
        losses,
        loss_weights,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_like_keras() {
        assert_eq!(camel("glorot_uniform"), "GlorotUniform");
        assert_eq!(snake("GlorotUniform"), "glorot_uniform");
        assert_eq!(snake("CategoricalCrossentropy"), "categorical_crossentropy");
        assert_eq!(float_json(0.4f32 as f64), json!(0.4));
        assert_eq!(float_json(1e-7), json!(1e-7));
    }

    #[test]
    fn optimizers_round_trip() {
        for name in OptimizerConfig::NAMES {
            let cfg = OptimizerConfig::from_name(name).unwrap();
            let back = optimizer_from_json(&optimizer_to_json(&cfg, Flavor::Keras3)).unwrap();
            assert_eq!(back.algorithm, cfg.algorithm);
            assert_eq!(back.weight_decay, cfg.weight_decay);
            assert_eq!(back.learning_rate as f32, cfg.learning_rate as f32);
        }
    }
}
