//! End to end through the pooling and reshaping layers: a per-pixel Dense, then max
//! pooling, zero padding, average pooling, flatten and a softmax Dense learn where a
//! bright spot is; gradients flow back through every pooling op.

use engine::init::Initializer;
use engine::layers::{Dense, Flatten, Layer, PoolKind, Pooling, Reshape, ZeroPadding2D};
use engine::losses::Loss;
use engine::model::Model;
use engine::ops::activation::Activation;
use engine::ops::pool::Padding;
use engine::optim::OptimizerConfig;
use engine::train::{evaluate, fit, predict, Array, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};

/// 8x8 images of 2 channels with noise, and a bright 2x2 spot in one of three places
/// (the class, one-hot).
fn spots(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let places = [(1, 1), (1, 5), (5, 3)];
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let class = i % 3;
        let (r0, c0) = places[class];
        for r in 0..8 {
            for c in 0..8 {
                let spot = (r0..r0 + 2).contains(&r) && (c0..c0 + 2).contains(&c);
                for ch in 0..2 {
                    let base = if spot { 1.0 + ch as f32 } else { 0.0 };
                    x.push(base + rng.gen_range(-0.3..0.3));
                }
            }
        }
        y.extend((0..3).map(|k| if k == class { 1.0 } else { 0.0 }));
    }
    (x, y)
}

fn model() -> Model {
    engine::rng::set_seed(5);
    let g = Initializer::GlorotUniform;
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Dense::new(6, Activation::Relu, true, g, Initializer::Zeros, None).unwrap()),
        Box::new(Pooling::new(PoolKind::Max, vec![2, 2], None, Padding::Valid, None).unwrap()),
        Box::new(ZeroPadding2D::new((1, 0), (0, 1), None)),
        Box::new(
            Pooling::new(
                PoolKind::Average,
                vec![3, 3],
                Some(vec![2, 2]),
                Padding::Same,
                None,
            )
            .unwrap(),
        ),
        Box::new(Flatten::new(None)),
        Box::new(Reshape::new(vec![-1, 6], None).unwrap()),
        Box::new(Flatten::new(None)),
        Box::new(Dense::new(3, Activation::Softmax, true, g, Initializer::Zeros, None).unwrap()),
    ];
    let mut m = Model::sequential(None, Some(vec![8, 8, 2])).unwrap();
    for l in layers {
        m.add(l).unwrap();
    }
    m.compile(
        OptimizerConfig::from_name("adam").unwrap(),
        vec![Loss::from_name("categorical_crossentropy", false).unwrap()],
        None,
        vec!["accuracy".into()],
    )
    .unwrap();
    m
}

#[test]
fn pooling_model_learns_where_the_spot_is() {
    let (x, y) = spots(384, 1);
    let mut m = model();
    let shapes: Vec<Option<Vec<usize>>> =
        m.layer_info().into_iter().map(|l| l.output_shape).collect();
    // 8x8x6 -> pool 4x4x6 -> pad 5x5x6 -> avg same (stride 2) 3x3x6 -> 54 -> (9, 6) -> 54
    let expected: Vec<Vec<usize>> = vec![
        vec![8, 8, 6],
        vec![4, 4, 6],
        vec![5, 5, 6],
        vec![3, 3, 6],
        vec![54],
        vec![9, 6],
        vec![54],
        vec![3],
    ];
    assert_eq!(shapes, expected.into_iter().map(Some).collect::<Vec<_>>());
    let data = Samples::single(&x, &[8, 8, 2], &y, &[3]).unwrap();
    let opts = FitOptions {
        batch_size: 64,
        epochs: 80,
        initial_epoch: 0,
        shuffle: true,
        validation_split: 0.0,
    };
    let h = fit(&mut m, data.clone(), None, &opts, &mut Silent).unwrap();
    let loss = &h.metrics.iter().find(|(k, _)| k == "loss").unwrap().1;
    assert!(loss.last().unwrap() < &(loss[0] * 0.5), "loss {loss:?}");
    let (xt, yt) = spots(90, 2);
    let logs = evaluate(
        &mut m,
        Samples::single(&xt, &[8, 8, 2], &yt, &[3]).unwrap(),
        32,
        &mut Silent,
    )
    .unwrap();
    assert!(logs[0].1 > 0.9, "accuracy {}", logs[0].1);
    let p = predict(
        &mut m,
        &[Array {
            values: &xt[..3 * 128],
            shape: &[8, 8, 2],
        }],
        32,
        &mut Silent,
    )
    .unwrap()
    .remove(0);
    assert_eq!(p.shape(), &[3, 3]);
}
