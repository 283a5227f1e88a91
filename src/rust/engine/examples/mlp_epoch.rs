//! Times epochs of the workshop MLP on random data of Fashion-MNIST's shape:
//! `cargo run --release --example mlp_epoch [epochs]`.

use std::time::Instant;

use engine::init::Initializer;
use engine::layers::{Dense, Dropout};
use engine::losses::Loss;
use engine::model::Model;
use engine::ops::activation::Activation;
use engine::optim::OptimizerConfig;
use engine::train::{fit, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};

fn main() {
    let epochs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let n = 60000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * 784).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0f32; n * 10];
    for i in 0..n {
        y[i * 10 + rng.gen_range(0..10)] = 1.0;
    }
    let g = Initializer::GlorotUniform;
    let z = Initializer::Zeros;
    let mut m = Model::sequential(None, Some(vec![784])).unwrap();
    m.add(Box::new(
        Dense::new(256, Activation::Relu, true, g, z, None).unwrap(),
    ))
    .unwrap();
    m.add(Box::new(Dropout::new(0.4, None).unwrap())).unwrap();
    m.add(Box::new(
        Dense::new(128, Activation::Relu, true, g, z, None).unwrap(),
    ))
    .unwrap();
    m.add(Box::new(Dropout::new(0.3, None).unwrap())).unwrap();
    m.add(Box::new(
        Dense::new(10, Activation::Softmax, true, g, z, None).unwrap(),
    ))
    .unwrap();
    m.compile(
        OptimizerConfig::from_name("rmsprop").unwrap(),
        vec![Loss::from_name("categorical_crossentropy", false).unwrap()],
        None,
        vec!["accuracy".into()],
    )
    .unwrap();
    let data = Samples::single(&x, &[784], &y, &[10]).unwrap();
    for e in 0..epochs {
        let t = Instant::now();
        let opts = FitOptions {
            batch_size: 128,
            epochs: e + 1,
            initial_epoch: e,
            shuffle: true,
            validation_split: 0.2,
        };
        fit(&mut m, data.clone(), None, &opts, &mut Silent).unwrap();
        println!("epoch {}: {:.3} s", e + 1, t.elapsed().as_secs_f64());
    }
}
