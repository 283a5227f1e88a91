//! Exports for saving and loading models in Keras's files, and for model configs as R
//! lists (JSON objects <-> named lists, arrays <-> unnamed lists).

use std::path::Path;

use engine::io::{self, config_json, model_config};
use engine::layers::registry;
use extendr_api::prelude::*;
use serde_json::{Map, Value};

use crate::error::{RkError, RkResult};
use crate::model::{config_fields, model_handle, model_ref};
use engine::model;

#[extendr]
fn rk_save_model_hdf5(
    model: Robj,
    filepath: &str,
    overwrite: bool,
    include_optimizer: bool,
) -> RkResult<()> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    io::save_h5(&ptr, Path::new(filepath), overwrite, include_optimizer)?;
    Ok(())
}

#[extendr]
fn rk_load_model_hdf5(filepath: &str, compile: bool) -> RkResult<Robj> {
    let model = io::load_h5(Path::new(filepath), compile)?;
    Ok(model_handle(model))
}

#[extendr]
fn rk_save_weights_hdf5(model: Robj, filepath: &str, overwrite: bool) -> RkResult<()> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    io::save_weights_h5(&ptr, Path::new(filepath), overwrite)?;
    Ok(())
}

#[extendr]
fn rk_load_weights_hdf5(model: Robj, filepath: &str, by_name: bool) -> RkResult<()> {
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    io::load_weights_h5(&mut ptr, Path::new(filepath), by_name)?;
    Ok(())
}

/// Weights of a `.keras` file into a built model with the same layers.
#[extendr]
fn rk_load_weights_keras(model: Robj, filepath: &str) -> RkResult<()> {
    let m = model_ref(&model)?;
    let mut ptr = model::write(&m);
    io::load_weights_keras(&mut ptr, Path::new(filepath))?;
    Ok(())
}

#[extendr]
fn rk_save_model_keras(model: Robj, filepath: &str, overwrite: bool) -> RkResult<()> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    io::save_keras(&ptr, Path::new(filepath), overwrite)?;
    Ok(())
}

#[extendr]
fn rk_load_model_keras(filepath: &str, compile: bool) -> RkResult<Robj> {
    let model = io::load_keras(Path::new(filepath), compile)?;
    Ok(model_handle(model))
}

/// The model's Keras 3 config (the `config` part of `{"class_name": "Sequential", ...}`).
#[extendr]
fn rk_model_get_config(model: Robj) -> RkResult<Robj> {
    let m = model_ref(&model)?;
    let ptr = model::read(&m);
    let v = model_config::model_to_json(&ptr, config_json::Flavor::Keras3);
    Ok(json_to_r(&v["config"]))
}

/// A new model (with fresh weights) from a Sequential or Functional config.
#[extendr]
fn rk_model_from_config(class_name: &str, config: Robj) -> RkResult<Robj> {
    let mut m = Map::new();
    m.insert("class_name".into(), Value::String(class_name.into()));
    m.insert("config".into(), r_to_json(&config)?);
    let model = model_config::model_from_json(&Value::Object(m))
        .map_err(|e| RkError::new("argument", e.0))?;
    Ok(model_handle(model))
}

/// A layer's Keras 3 config from its class name and engine config (a named list).
#[extendr]
fn rk_layer_get_config(class_name: &str, config: List) -> RkResult<Robj> {
    let (fields, regs) = engine::regularizers::split_fields(class_name, &config_fields(&config)?)?;
    let layer = registry::from_config(class_name, &fields)?;
    let v = config_json::layer_to_json(layer.as_ref(), true, &regs, config_json::Flavor::Keras3);
    Ok(json_to_r(&v["config"]))
}

/// The Keras 3 config of a layer the engine holds (from `model$layers`).
#[extendr]
fn rk_member_layer_config(layer: Robj) -> RkResult<Robj> {
    let l = crate::model::layer_ref(&layer)?;
    let cell = model::read_layer(&l);
    let v = config_json::layer_to_json(
        &**cell,
        cell.trainable,
        &cell.regularizers,
        config_json::Flavor::Keras3,
    );
    Ok(json_to_r(&v["config"]))
}

/// A layer's engine config (named list) from a Keras 3 layer config.
#[extendr]
fn rk_layer_from_config(class_name: &str, config: Robj) -> RkResult<Robj> {
    let mut entry = Map::new();
    entry.insert("class_name".into(), Value::String(class_name.into()));
    entry.insert("config".into(), r_to_json(&config)?);
    let parsed = config_json::layer_from_json(&Value::Object(entry), 0)
        .map_err(|e| RkError::new("argument", e.0))?;
    let layer = &parsed.layer;
    let mut fields: Vec<(String, Robj)> = vec![("name".into(), layer.name().into())];
    for (k, v) in layer.config() {
        fields.push((
            k.to_string(),
            json_to_r(&config_json::config_value_to_json(&v)),
        ));
    }
    for (field, weight) in engine::regularizers::fields(layer.class_name()) {
        if let Some((_, r)) = parsed.regularizers.iter().find(|(w, _)| w == weight) {
            let v = list!(class_name = r.class_name(), l1 = r.l1, l2 = r.l2);
            fields.push((field.to_string(), v.into()));
        }
    }
    let mut out = List::from_values(fields.iter().map(|(_, v)| v.clone()));
    out.set_names(fields.iter().map(|(k, _)| k.clone()))?;
    Ok(out.into())
}

fn json_to_r(v: &Value) -> Robj {
    match v {
        Value::Null => ().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) if i.abs() < i32::MAX as i64 => (i as i32).into(),
            _ => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => List::from_values(items.iter().map(json_to_r)).into(),
        Value::Object(m) => {
            let mut l = List::from_values(m.values().map(json_to_r));
            l.set_names(m.keys().cloned().collect::<Vec<_>>())
                .expect("names on a fresh list");
            l.into()
        }
    }
}

fn r_to_json(x: &Robj) -> RkResult<Value> {
    if x.is_null() {
        return Ok(Value::Null);
    }
    if x.is_list() {
        let list: List = x.try_into()?;
        let names: Option<Vec<String>> = x
            .names()
            .map(|n| n.map(str::to_string).collect())
            .filter(|n: &Vec<String>| n.iter().any(|s| !s.is_empty()));
        return Ok(match names {
            Some(names) => {
                let mut m = Map::new();
                for (k, (_, v)) in names.into_iter().zip(list.iter()) {
                    m.insert(k, r_to_json(&v)?);
                }
                Value::Object(m)
            }
            None => Value::Array(
                list.values()
                    .map(|v| r_to_json(&v))
                    .collect::<RkResult<_>>()?,
            ),
        });
    }
    let scalar = |i: usize| -> Option<Value> {
        if let Some(b) = x.as_logical_slice() {
            b.get(i).map(|b| Value::Bool(b.is_true()))
        } else if let Some(s) = x.as_str_iter() {
            s.into_iter().nth(i).map(|s| Value::String(s.to_string()))
        } else if let Some(v) = x.as_integer_slice() {
            v.get(i).map(|&v| Value::from(v))
        } else {
            x.as_real_slice().and_then(|v| v.get(i)).map(|&v| {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Value::from(v as i64)
                } else {
                    serde_json::Number::from_f64(v)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                }
            })
        }
    };
    let bad = || {
        RkError::new(
            "argument",
            "a config may hold only lists, numbers, strings, logicals and NULL",
        )
    };
    match x.len() {
        1 => scalar(0).ok_or_else(bad),
        n => (0..n)
            .map(|i| scalar(i).ok_or_else(bad))
            .collect::<RkResult<Vec<_>>>()
            .map(Value::Array),
    }
}

extendr_module! {
    mod io;
    fn rk_save_model_hdf5;
    fn rk_load_model_hdf5;
    fn rk_save_weights_hdf5;
    fn rk_load_weights_hdf5;
    fn rk_load_weights_keras;
    fn rk_save_model_keras;
    fn rk_load_model_keras;
    fn rk_model_get_config;
    fn rk_model_from_config;
    fn rk_layer_get_config;
    fn rk_member_layer_config;
    fn rk_layer_from_config;
}
