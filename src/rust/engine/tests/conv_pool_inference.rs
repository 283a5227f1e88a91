//! In inference a convolution followed by max pooling runs as one op (the convolution
//! pools its own output while it is in cache). These tests check that `predict()` gives
//! what the two layers give one after the other, and that the fusion stays away from
//! graphs where something else reads the convolution's output.

use engine::layers::ConfigValue::{self, Int, Str};
use engine::model::{share_layer, Member, Model, Src};
use engine::train::{predict, Array, Silent};
use rand::{Rng, SeedableRng};

mod common;
use common::*;

fn conv(filters: i64, name: &str) -> Box<dyn engine::layers::Layer> {
    layer(
        "Conv2D",
        &[
            ("filters", Int(filters)),
            ("kernel_size", Int(3)),
            ("activation", Str("relu".into())),
            ("name", Str(name.into())),
        ],
    )
}

fn max_pool(name: &str) -> Box<dyn engine::layers::Layer> {
    layer("MaxPooling2D", &[("name", Str(name.into()))])
}

/// The workshop CNN.
fn workshop_cnn() -> Model {
    let mut m = Model::sequential(None, Some(vec![28, 28, 1])).unwrap();
    let dense = |units: i64, act: &str| {
        layer(
            "Dense",
            &[("units", Int(units)), ("activation", Str(act.into()))],
        )
    };
    for l in [
        conv(32, "conv1"),
        max_pool("pool1"),
        conv(64, "conv2"),
        max_pool("pool2"),
        layer("Flatten", &[]),
        dense(64, "relu"),
        dense(10, "softmax"),
    ] {
        m.add(l).unwrap();
    }
    m
}

/// The model's outputs with every weight a gradient leaf, so that no op is fused: the
/// layers one after the other, as training records them.
fn unfused_outputs(m: &Model, x: &[f32], shape: &[usize]) -> Vec<Vec<f32>> {
    let mut tape = engine::autodiff::Tape::new();
    let mut full = vec![x.len() / shape.iter().product::<usize>()];
    full.extend_from_slice(shape);
    let xv = tape.leaf(
        engine::tensor::Tensor::from_vec(full, x.to_vec()).unwrap(),
        false,
    );
    let all = vec![true; m.get_weights().len()];
    let params = m.param_vars(&mut tape, Some(&all));
    let mut rng = engine::rng::Noise::new(0, 0);
    let (ys, _) = m
        .forward(&mut tape, &[xv], &params, false, &[], &mut rng)
        .unwrap();
    ys.iter().map(|&y| tape.value(y).host().to_vec()).collect()
}

fn images(n: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n * len).map(|_| rng.gen::<f32>()).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-6, "{what}[{i}]: {a} vs {b}");
    }
}

#[test]
fn predict_of_the_workshop_cnn_matches_the_layers_one_by_one() {
    let _g = lock_stream();
    engine::rng::set_seed(7);
    let mut m = workshop_cnn();
    // 300 images: batches of 128 split into several steps of the fused loop, and a
    // last partial batch.
    let x = images(300, 784, 1);
    let want = unfused_outputs(&m, &x, &[28, 28, 1]);
    let got = predict(
        &mut m,
        &[Array {
            values: &x,
            shape: &[28, 28, 1],
        }],
        128,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(got[0].shape(), &[300, 10]);
    assert_close(got[0].host(), &want[0], "softmax output");
    // Not a trivial output: the classes differ between images.
    let rows: Vec<&[f32]> = got[0].host().chunks(10).collect();
    assert!(rows.iter().any(|r| (r[0] - rows[0][0]).abs() > 1e-4));
}

#[test]
fn a_convolution_output_read_twice_is_not_fused_away() {
    let _g = lock_stream();
    engine::rng::set_seed(8);
    // conv -> (max pool -> global max) and conv -> global average: the max pooling is
    // the next node but not the only reader of the convolution's output.
    let members = vec![
        Member::Layer(share_layer(conv(6, "conv"))),
        Member::Layer(share_layer(max_pool("pool"))),
        Member::Layer(share_layer(layer("GlobalMaxPooling2D", &[]))),
        Member::Layer(share_layer(layer("GlobalAveragePooling2D", &[]))),
        Member::Layer(share_layer(layer(
            "Concatenate",
            &[("name", ConfigValue::Str("concat".into()))],
        ))),
    ];
    let nodes = vec![
        node(0, &[Src::Input(0)]),
        node(1, &[out(0)]),
        node(2, &[out(1)]),
        node(3, &[out(0)]),
        node(4, &[out(2), out(3)]),
    ];
    let mut m = Model::functional(
        Some("two_readers".into()),
        vec![input("image", &[9, 9, 2])],
        members,
        nodes,
        vec![out(4), out(0)],
    )
    .unwrap();
    let x = images(5, 9 * 9 * 2, 2);
    let want = unfused_outputs(&m, &x, &[9, 9, 2]);
    let got = predict(
        &mut m,
        &[Array {
            values: &x,
            shape: &[9, 9, 2],
        }],
        4,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(got[0].shape(), &[5, 12]);
    assert_eq!(got[1].shape(), &[5, 7, 7, 6]);
    assert_close(got[0].host(), &want[0], "concatenated pools");
    assert_close(got[1].host(), &want[1], "convolution output");
}
