//! End to end: a small MLP learns a separable problem, seeds repeat, errors are clear.

use engine::init::Initializer;
use engine::layers::{Dense, Dropout};
use engine::losses::Loss;
use engine::model::Model;
use engine::ops::activation::Activation;
use engine::optim::OptimizerConfig;
use engine::train::{evaluate, fit, predict, Array, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};

/// The tests of this file run on parallel threads but share the session's random stream
/// (weights, and each fit()'s seed, are drawn from it): each holds this lock so that
/// another test cannot draw between its `set_seed` and its fit.
static RANDOM_STREAM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_stream() -> std::sync::MutexGuard<'static, ()> {
    RANDOM_STREAM.lock().unwrap_or_else(|e| e.into_inner())
}

/// Three Gaussian blobs in 4-D, one-hot labels.
fn blobs(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centers = [
        [2.0, 0.0, 0.0, 1.0],
        [-2.0, 1.0, 0.0, 0.0],
        [0.0, -2.0, 2.0, 0.0],
    ];
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 3;
        for d in 0..4 {
            x.push(centers[c][d] + rng.gen_range(-0.7..0.7));
        }
        for k in 0..3 {
            y.push(if k == c { 1.0 } else { 0.0 });
        }
    }
    (x, y)
}

fn mlp(seed: u64) -> Model {
    engine::rng::set_seed(seed);
    let mut m = Model::sequential(None, Some(vec![4])).unwrap();
    let g = Initializer::GlorotUniform;
    m.add(Box::new(
        Dense::new(16, Activation::Relu, true, g, Initializer::Zeros, None).unwrap(),
    ))
    .unwrap();
    m.add(Box::new(Dropout::new(0.2, None).unwrap())).unwrap();
    m.add(Box::new(
        Dense::new(3, Activation::Softmax, true, g, Initializer::Zeros, None).unwrap(),
    ))
    .unwrap();
    m.compile(
        OptimizerConfig::from_name("rmsprop").unwrap(),
        vec![Loss::from_name("categorical_crossentropy", false).unwrap()],
        None,
        vec!["accuracy".into()],
    )
    .unwrap();
    m
}

fn opts() -> FitOptions {
    FitOptions {
        batch_size: 16,
        epochs: 15,
        initial_epoch: 0,
        shuffle: true,
        validation_split: 0.2,
    }
}

#[test]
fn mlp_learns_blobs() {
    let _stream = lock_stream();
    let (x, y) = blobs(600, 1);
    let mut m = mlp(7);
    let data = Samples::single(&x, &[4], &y, &[3]).unwrap();
    let h = fit(&mut m, data.clone(), None, &opts(), &mut Silent).unwrap();
    let names: Vec<&str> = h.metrics.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["accuracy", "loss", "val_accuracy", "val_loss"]);
    let loss = &h.metrics[1].1;
    assert!(
        loss.last().unwrap() < &loss[0],
        "loss went from {} to {}",
        loss[0],
        loss.last().unwrap()
    );
    let logs = evaluate(&mut m, data.clone(), 32, &mut Silent).unwrap();
    assert_eq!(logs[0].0, "accuracy");
    assert!(logs[0].1 > 0.95, "accuracy {}", logs[0].1);
    let p = predict(
        &mut m,
        &[Array {
            values: &x[..8],
            shape: &[4],
        }],
        32,
        &mut Silent,
    )
    .unwrap()
    .remove(0);
    assert_eq!(p.shape(), &[2, 3]);
    for row in p.host().chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn same_seed_same_history() {
    let _stream = lock_stream();
    let (x, y) = blobs(300, 2);
    let data = Samples::single(&x, &[4], &y, &[3]).unwrap();
    let run = |seed| {
        let mut m = mlp(seed);
        engine::rng::set_seed(seed);
        fit(&mut m, data.clone(), None, &opts(), &mut Silent).unwrap()
    };
    assert_eq!(run(3).metrics, run(3).metrics);
    assert_ne!(run(3).metrics, run(4).metrics);
}

#[test]
fn wrong_width_names_the_layer() {
    let _stream = lock_stream();
    let mut m = mlp(1);
    let x = vec![0.0f32; 10 * 5];
    let y = vec![0.0f32; 10 * 3];
    let e = fit(
        &mut m,
        Samples::single(&x, &[5], &y, &[3]).unwrap(),
        None,
        &opts(),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("expects 4 features, got 5"), "{e}");
}

#[test]
fn bad_data_is_rejected() {
    let _stream = lock_stream();
    let x = vec![0.0f32, f32::NAN, 1.0, 2.0];
    let e = Samples::single(&x, &[4], &[0.0, 1.0, 0.0], &[3])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("`x` must not contain NA, NaN or Inf"), "{e}");
    let e = Samples::single(&[0.0; 8], &[4], &[0.0; 3], &[3])
        .err()
        .unwrap()
        .to_string();
    assert_eq!(e, "`x` and `y` have different numbers of samples (2 and 1)");
}

#[test]
fn fit_before_compile_is_an_error() {
    let _stream = lock_stream();
    let mut m = Model::sequential(None, Some(vec![4])).unwrap();
    m.add(Box::new(
        Dense::new(
            3,
            Activation::Softmax,
            true,
            Initializer::GlorotUniform,
            Initializer::Zeros,
            None,
        )
        .unwrap(),
    ))
    .unwrap();
    let (x, y) = blobs(30, 3);
    let e = fit(
        &mut m,
        Samples::single(&x, &[4], &y, &[3]).unwrap(),
        None,
        &opts(),
        &mut Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("compile()"), "{e}");
}

/// Stops after a few batches, as the glue does on Ctrl-C.
struct StopAfter(usize);

impl engine::train::Observer for StopAfter {
    fn should_stop(&mut self) -> bool {
        self.0 = self.0.saturating_sub(1);
        self.0 == 0
    }
}

#[test]
fn an_interrupted_fit_keeps_a_usable_model() {
    let _stream = lock_stream();
    let (x, y) = blobs(600, 5);
    let data = Samples::single(&x, &[4], &y, &[3]).unwrap();
    let mut m = mlp(9);
    let before = m.get_weights();
    let h = fit(&mut m, data.clone(), None, &opts(), &mut StopAfter(3)).unwrap();
    assert!(h.interrupted);
    assert!(h.epochs.is_empty(), "no epoch completed");
    let after = m.get_weights();
    assert_ne!(
        before[0].to_vec(),
        after[0].to_vec(),
        "the batches before the stop were applied"
    );
    // The model trains on afterwards.
    let h = fit(&mut m, data.clone(), None, &opts(), &mut Silent).unwrap();
    assert_eq!(h.epochs.len(), 15);
}
