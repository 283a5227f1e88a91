//! Helpers shared by the integration tests: small layers and graphs, and one lock on
//! the process's random stream (tests run in parallel threads and seed it).
#![allow(dead_code)]

use engine::layers::registry::from_config;
use engine::layers::{ConfigValue, Layer};
use engine::model::{share_layer, Input, Member, Node, Src};
use engine::train::FitOptions;

pub static RANDOM_STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn lock_stream() -> std::sync::MutexGuard<'static, ()> {
    RANDOM_STREAM.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn layer(class: &str, fields: &[(&str, ConfigValue)]) -> Box<dyn Layer> {
    let f: Vec<(String, ConfigValue)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    from_config(class, &f).unwrap()
}

pub fn dense(units: i64, name: &str, act: &str) -> Member {
    Member::Layer(share_layer(layer(
        "Dense",
        &[
            ("units", ConfigValue::Int(units)),
            ("name", ConfigValue::Str(name.into())),
            ("activation", ConfigValue::Str(act.into())),
        ],
    )))
}

pub fn node(member: usize, inputs: &[Src]) -> Node {
    Node::new(member, inputs.to_vec())
}

pub fn out(node: usize) -> Src {
    Src::Node { node, output: 0 }
}

pub fn input(name: &str, shape: &[usize]) -> Input {
    Input {
        name: name.into(),
        shape: Some(shape.to_vec()),
    }
}

pub fn opts(epochs: usize) -> FitOptions {
    FitOptions {
        batch_size: 8,
        epochs,
        initial_epoch: 0,
        shuffle: false,
        validation_split: 0.0,
    }
}
