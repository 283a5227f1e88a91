//! Times epochs of the workshop CNN (conv 32 - pool - conv 64 - pool - flatten - dense 64
//! - dense 10, Adam, batch 128, validation_split 0.2) on random data of Fashion-MNIST's
//! shape, without R: `cargo run --release --example cnn_epoch [epochs] [samples]`
//! (epochs 0: predict only;
//! `PREDICT_BATCH` and `PREDICT_REPS` set predict's batch size, default 128, and its
//! repetitions, default 3).

use std::time::Instant;

use engine::layers::registry::from_config;
use engine::layers::ConfigValue;
use engine::losses::Loss;
use engine::model::Model;
use engine::optim::OptimizerConfig;
use engine::train::{fit, predict, Array, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};

fn layer(class: &str, fields: &[(&str, ConfigValue)]) -> Box<dyn engine::layers::Layer> {
    let c: Vec<(String, ConfigValue)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    from_config(class, &c).unwrap()
}

/// CPU seconds this process has used (user + system), from /proc: on a shared machine
/// it shows the work done, which the wall clock mixes with waiting for a core.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after_name
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name).
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (epochs, n) = (arg(1, 2), arg(2, 60000));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0f32; n * 10];
    for i in 0..n {
        y[i * 10 + rng.gen_range(0..10)] = 1.0;
    }
    use ConfigValue::{Int, Str};
    let relu = || ("activation", Str("relu".into()));
    let mut m = Model::sequential(None, Some(vec![28, 28, 1])).unwrap();
    for l in [
        layer(
            "Conv2D",
            &[("filters", Int(32)), ("kernel_size", Int(3)), relu()],
        ),
        layer("MaxPooling2D", &[]),
        layer(
            "Conv2D",
            &[("filters", Int(64)), ("kernel_size", Int(3)), relu()],
        ),
        layer("MaxPooling2D", &[]),
        layer("Flatten", &[]),
        layer("Dense", &[("units", Int(64)), relu()]),
        layer(
            "Dense",
            &[("units", Int(10)), ("activation", Str("softmax".into()))],
        ),
    ] {
        m.add(l).unwrap();
    }
    m.compile(
        OptimizerConfig::from_name("adam").unwrap(),
        vec![Loss::from_name("categorical_crossentropy", false).unwrap()],
        None,
        vec!["accuracy".into()],
    )
    .unwrap();
    let data = Samples::single(&x, &[28, 28, 1], &y, &[10]).unwrap();
    for e in 0..epochs {
        let (t, c) = (Instant::now(), cpu_seconds());
        let opts = FitOptions {
            batch_size: 128,
            epochs: e + 1,
            initial_epoch: e,
            shuffle: true,
            validation_split: 0.2,
        };
        fit(&mut m, data.clone(), None, &opts, &mut Silent).unwrap();
        println!(
            "epoch {}: {:.3} s ({:.2} CPU s)",
            e + 1,
            t.elapsed().as_secs_f64(),
            cpu_seconds() - c
        );
    }
    // predict() as bench/cnn.R calls it: the 10000 test images in batches of 128.
    let test = n.min(10000);
    let batch: usize = std::env::var("PREDICT_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(128);
    let reps: usize = std::env::var("PREDICT_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for _ in 0..reps {
        let (t, c) = (Instant::now(), cpu_seconds());
        predict(
            &mut m,
            &[Array {
                values: &x[..test * 784],
                shape: &[28, 28, 1],
            }],
            batch,
            &mut Silent,
        )
        .unwrap()
        .remove(0);
        let s = t.elapsed().as_secs_f64();
        println!(
            "predict {test}: {s:.3} s ({:.0} images/s, {:.2} CPU s)",
            test as f64 / s,
            cpu_seconds() - c
        );
    }
}
