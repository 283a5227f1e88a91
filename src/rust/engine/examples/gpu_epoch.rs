//! Seconds per epoch of the workshop MLP or CNN on a device, on random data of
//! Fashion-MNIST's shape (60000 samples, validation_split 0.2, batch 128, as the
//! workshop scripts): the engine's side of bench/gpu/run.sh.
//!
//! `gpu_epoch <mlp|cnn> <gpu|cpu> [epochs] [samples]`. The first epoch includes starting
//! the GPU (compiling the kernels), so run.sh reports the later ones.

use std::time::Instant;

use engine::layers::registry::from_config;
use engine::layers::ConfigValue::{self, Float, Int, Str};
use engine::losses::Loss;
use engine::model::Model;
use engine::optim::OptimizerConfig;
use engine::tensor::Device;
use engine::train::{fit, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};

fn layer(class: &str, fields: &[(&str, ConfigValue)]) -> Box<dyn engine::layers::Layer> {
    let c: Vec<(String, ConfigValue)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    from_config(class, &c).unwrap()
}

fn act(name: &str) -> (&'static str, ConfigValue) {
    ("activation", Str(name.into()))
}

/// The workshop MLP: 784 - dense 256 relu - dropout 0.4 - dense 128 relu - dropout 0.3 -
/// dense 10 softmax, RMSprop.
fn mlp() -> (Model, &'static str, Vec<usize>) {
    let mut m = Model::sequential(None, Some(vec![784])).unwrap();
    for l in [
        layer("Dense", &[("units", Int(256)), act("relu")]),
        layer("Dropout", &[("rate", Float(0.4))]),
        layer("Dense", &[("units", Int(128)), act("relu")]),
        layer("Dropout", &[("rate", Float(0.3))]),
        layer("Dense", &[("units", Int(10)), act("softmax")]),
    ] {
        m.add(l).unwrap();
    }
    (m, "rmsprop", vec![784])
}

/// The workshop CNN: conv 32 - pool - conv 64 - pool - flatten - dense 64 - dense 10, Adam.
fn cnn() -> (Model, &'static str, Vec<usize>) {
    let mut m = Model::sequential(None, Some(vec![28, 28, 1])).unwrap();
    let conv = |f| {
        layer(
            "Conv2D",
            &[("filters", Int(f)), ("kernel_size", Int(3)), act("relu")],
        )
    };
    for l in [
        conv(32),
        layer("MaxPooling2D", &[]),
        conv(64),
        layer("MaxPooling2D", &[]),
        layer("Flatten", &[]),
        layer("Dense", &[("units", Int(64)), act("relu")]),
        layer("Dense", &[("units", Int(10)), act("softmax")]),
    ] {
        m.add(l).unwrap();
    }
    (m, "adam", vec![28, 28, 1])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gpu_epoch <mlp|cnn> <gpu|cpu> [epochs] [samples]";
    let (mut m, optimizer, sample) = match args.get(1).map(String::as_str) {
        Some("mlp") => mlp(),
        Some("cnn") => cnn(),
        _ => panic!("{usage}"),
    };
    let device = match args.get(2).map(String::as_str) {
        Some("gpu") => Device::Cuda,
        Some("cpu") => Device::Cpu,
        _ => panic!("{usage}"),
    };
    let epochs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);
    let n: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(60000);
    let len: usize = sample.iter().product();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * len).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0f32; n * 10];
    for i in 0..n {
        y[i * 10 + rng.gen_range(0..10)] = 1.0;
    }
    m.compile(
        OptimizerConfig::from_name(optimizer).unwrap(),
        vec![Loss::from_name("categorical_crossentropy", false).unwrap()],
        None,
        vec!["accuracy".into()],
    )
    .unwrap();
    m.build(std::slice::from_ref(&sample)).unwrap();
    let t = Instant::now();
    if let Err(e) = m.set_device(device) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    println!(
        "{} {:?}: device ready in {:.3} s",
        args[1],
        device,
        t.elapsed().as_secs_f64()
    );
    let data = Samples::single(&x, &sample, &y, &[10]).unwrap();
    for e in 0..epochs {
        let t = Instant::now();
        let opts = FitOptions {
            batch_size: 128,
            epochs: e + 1,
            initial_epoch: e,
            shuffle: true,
            validation_split: 0.2,
        };
        let h = fit(&mut m, data.clone(), None, &opts, &mut Silent).unwrap();
        let loss = h
            .metrics
            .iter()
            .find(|(k, _)| k == "loss")
            .map(|(_, v)| v[0]);
        println!(
            "{} {:?} epoch {}: {:.3} s (loss {:.4})",
            args[1],
            device,
            e + 1,
            t.elapsed().as_secs_f64(),
            loss.unwrap_or(f64::NAN)
        );
    }
}
