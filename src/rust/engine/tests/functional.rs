//! Functional models end to end: graphs with shared layers and merges, several inputs and
//! outputs, a model called inside another, and freezing.

use engine::layers::ConfigValue;
use engine::losses::Loss;
use engine::model::{self, share_layer, Member, Model, Src};
use engine::optim::OptimizerConfig;
use engine::train::{evaluate, fit, predict, Array, Samples, Silent};

mod common;
use common::*;

/// a, b -> shared Dense on each -> Add -> Concatenate with a -> two outputs.
fn two_branch() -> Model {
    let members = vec![
        dense(3, "shared", "linear"),
        Member::Layer(share_layer(layer(
            "Add",
            &[("name", ConfigValue::Str("add".into()))],
        ))),
        Member::Layer(share_layer(layer(
            "Concatenate",
            &[("name", ConfigValue::Str("concat".into()))],
        ))),
        dense(1, "out_reg", "linear"),
        dense(2, "out_cls", "softmax"),
    ];
    let nodes = vec![
        node(0, &[Src::Input(0)]),
        node(0, &[Src::Input(1)]),
        node(1, &[out(0), out(1)]),
        node(2, &[out(2), Src::Input(0)]),
        node(3, &[out(3)]),
        node(4, &[out(3)]),
    ];
    Model::functional(
        Some("two_branch".into()),
        vec![input("a", &[4]), input("b", &[4])],
        members,
        nodes,
        vec![out(4), out(5)],
    )
    .unwrap()
}

#[test]
fn shapes_weights_and_connections_follow_the_graph() {
    let _g = lock_stream();
    engine::rng::set_seed(1);
    let m = two_branch();
    assert_eq!(m.output_shapes().unwrap().unwrap(), vec![vec![1], vec![2]]);
    assert_eq!(m.output_names(), vec!["out_reg", "out_cls"]);
    // The shared layer's weights count once: 4*3+3, 7*1+1, 7*2+2.
    let w = m.get_weights();
    assert_eq!(w.len(), 6);
    let total: usize = w.iter().map(|t| t.numel()).sum();
    assert_eq!(total, 15 + 8 + 16);
    let info = m.layer_info();
    let add = info.iter().find(|l| l.name == "add").unwrap();
    assert_eq!(add.connected_to, vec!["shared[0][0]", "shared[1][0]"]);
    let shared = info.iter().find(|l| l.name == "shared").unwrap();
    assert_eq!(shared.connected_to, vec!["a[0][0]", "b[0][0]"]);
    assert!(!m.is_chain());
}

#[test]
fn forward_matches_the_layers_by_hand() {
    let _g = lock_stream();
    engine::rng::set_seed(2);
    let mut m = two_branch();
    let w = m.get_weights();
    let (k, b) = (w[0].to_vec(), w[1].to_vec());
    let xa = [0.5f32, -1.0, 2.0, 0.25];
    let xb = [1.0f32, 0.0, -0.5, 3.0];
    let lin = |x: &[f32]| -> Vec<f32> {
        (0..3)
            .map(|j| b[j] + (0..4).map(|i| x[i] * k[i * 3 + j]).sum::<f32>())
            .collect()
    };
    let added: Vec<f32> = lin(&xa).iter().zip(lin(&xb)).map(|(p, q)| p + q).collect();
    let mut concat = added.clone();
    concat.extend_from_slice(&xa);
    let (k2, b2) = (w[2].to_vec(), w[3].to_vec());
    let reg = b2[0] + (0..7).map(|i| concat[i] * k2[i]).sum::<f32>();
    let outs = predict(
        &mut m,
        &[
            Array {
                values: &xa,
                shape: &[4],
            },
            Array {
                values: &xb,
                shape: &[4],
            },
        ],
        32,
        &mut Silent,
    )
    .unwrap();
    assert!((outs[0].to_vec()[0] - reg).abs() < 1e-5);
    let probs = outs[1].to_vec();
    assert!((probs[0] + probs[1] - 1.0).abs() < 1e-6);
}

#[test]
fn two_outputs_train_with_a_loss_each_and_weights() {
    let _g = lock_stream();
    engine::rng::set_seed(3);
    let mut m = two_branch();
    let mut adam = OptimizerConfig::from_name("adam").unwrap();
    adam.learning_rate = 0.01;
    m.compile(
        adam,
        vec![
            Loss::from_name("mean_squared_error", false).unwrap(),
            Loss::from_name("sparse_categorical_crossentropy", false).unwrap(),
        ],
        Some(vec![0.5, 1.0]),
        vec!["accuracy".into()],
    )
    .unwrap();
    let n = 64;
    let xa: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 7 % 11) as f32) / 5.0 - 1.0)
        .collect();
    let xb: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 5 % 13) as f32) / 6.0 - 1.0)
        .collect();
    let reg: Vec<f32> = (0..n).map(|r| xa[r * 4] - xb[r * 4 + 1]).collect();
    let cls: Vec<f32> = (0..n)
        .map(|r| if xa[r * 4 + 2] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let data = Samples::new(
        vec![
            Array {
                values: &xa,
                shape: &[4],
            },
            Array {
                values: &xb,
                shape: &[4],
            },
        ],
        vec![
            Array {
                values: &reg,
                shape: &[1],
            },
            Array {
                values: &cls,
                shape: &[],
            },
        ],
    )
    .unwrap();
    let before = evaluate(&mut m, data.clone(), 16, &mut Silent).unwrap();
    let names: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "loss",
            "out_cls_accuracy",
            "out_cls_loss",
            "out_reg_accuracy",
            "out_reg_loss"
        ]
    );
    let get = |logs: &[(String, f64)], k: &str| logs.iter().find(|(n, _)| n == k).unwrap().1;
    // The total is the weighted sum of the outputs' losses.
    let total = 0.5 * get(&before, "out_reg_loss") + get(&before, "out_cls_loss");
    assert!((get(&before, "loss") - total).abs() < 1e-4);
    fit(&mut m, data.clone(), None, &opts(30), &mut Silent).unwrap();
    let after = evaluate(&mut m, data, 16, &mut Silent).unwrap();
    assert!(
        get(&after, "loss") < 0.5 * get(&before, "loss"),
        "{before:?} -> {after:?}"
    );
}

/// base: Dense -> BatchNormalization; outer: input -> base -> Dense.
fn nested() -> (model::ModelRef, Model) {
    nested_called(None)
}

/// `nested()` with the base called with `training` (`base(inp, training = ...)`).
fn nested_called(training: Option<bool>) -> (model::ModelRef, Model) {
    let bn = Member::Layer(share_layer(layer(
        "BatchNormalization",
        &[("name", ConfigValue::Str("bn".into()))],
    )));
    let base = Model::functional(
        Some("base".into()),
        vec![input("x", &[3])],
        vec![dense(4, "base_dense", "relu"), bn],
        vec![node(0, &[Src::Input(0)]), node(1, &[out(0)])],
        vec![out(1)],
    )
    .unwrap();
    let base = model::share(base);
    let mut call = node(0, &[Src::Input(0)]);
    call.training = training;
    let outer = Model::functional(
        Some("outer".into()),
        vec![input("inp", &[3])],
        vec![Member::Model(base.clone()), dense(1, "head", "linear")],
        vec![call, node(1, &[out(0)])],
        vec![out(1)],
    )
    .unwrap();
    (base, outer)
}

fn compile_mse(m: &mut Model) {
    m.compile(
        OptimizerConfig::from_name("sgd").unwrap(),
        vec![Loss::from_name("mean_squared_error", false).unwrap()],
        None,
        vec![],
    )
    .unwrap();
}

#[test]
fn a_frozen_base_keeps_its_weights_and_statistics() {
    let _g = lock_stream();
    engine::rng::set_seed(4);
    let (base, mut outer) = nested();
    assert_eq!(outer.get_weights().len(), 2 + 4 + 2);
    model::write(&base).set_trainable(false);
    compile_mse(&mut outer);
    let x: Vec<f32> = (0..48)
        .map(|i| (i as f32 * 0.37).sin() * 2.0 + 1.0)
        .collect();
    let y: Vec<f32> = (0..16).map(|i| i as f32 / 8.0).collect();
    let data = Samples::single(&x, &[3], &y, &[1]).unwrap();
    let base_before = model::read(&base).get_weights();
    let outer_before = outer.get_weights();
    fit(&mut outer, data.clone(), None, &opts(2), &mut Silent).unwrap();
    // Base weights and its BN moving statistics stay (inference mode); the head trains.
    let base_after = model::read(&base).get_weights();
    for (a, b) in base_before.iter().zip(&base_after) {
        assert_eq!(a.to_vec(), b.to_vec());
    }
    let outer_after = outer.get_weights();
    assert_ne!(outer_before[6].to_vec(), outer_after[6].to_vec());
    let info = outer.layer_info();
    let row = info.iter().find(|l| l.name == "base").unwrap();
    assert_eq!(row.trainable_params, 0);
    assert_eq!(row.params, 3 * 4 + 4 + 4 * 4);

    // Unfreezing takes effect at the next compile, and then moves the base's weights
    // and moving statistics (the outer model sees the base's changes, and the base the
    // outer model's training).
    model::write(&base).set_trainable(true);
    fit(&mut outer, data.clone(), None, &opts(1), &mut Silent).unwrap();
    assert_eq!(
        model::read(&base).get_weights()[0].to_vec(),
        base_before[0].to_vec()
    );
    compile_mse(&mut outer);
    fit(&mut outer, data, None, &opts(1), &mut Silent).unwrap();
    let moved = model::read(&base).get_weights();
    assert_ne!(moved[0].to_vec(), base_before[0].to_vec());
    assert_ne!(moved[4].to_vec(), base_before[4].to_vec(), "moving mean");
}

#[test]
fn a_call_with_training_false_runs_in_inference_mode_inside_fit() {
    let _g = lock_stream();
    engine::rng::set_seed(5);
    let (base, mut outer) = nested_called(Some(false));
    compile_mse(&mut outer);
    let x: Vec<f32> = (0..24)
        .map(|i| (i as f32 * 0.37).sin() * 2.0 + 1.0)
        .collect();
    let y: Vec<f32> = (0..8).map(|i| i as f32 / 8.0).collect();
    let data = Samples::single(&x, &[3], &y, &[1]).unwrap();
    // Non-trivial moving statistics, so that inference and training modes differ.
    let mut w = model::read(&base).get_weights();
    w[4] = engine::Tensor::from_vec(vec![4], vec![0.3, -0.2, 0.5, 0.1]).unwrap();
    w[5] = engine::Tensor::from_vec(vec![4], vec![2.0, 0.5, 1.5, 3.0]).unwrap();
    model::write(&base).set_weights(w.clone()).unwrap();
    let inference_loss = evaluate(&mut outer, data.clone(), 8, &mut Silent).unwrap()[0].1;
    // One step on the whole batch: its loss is the inference-mode loss.
    let h = fit(&mut outer, data, None, &opts(1), &mut Silent).unwrap();
    let loss = h.metrics.iter().find(|(k, _)| k == "loss").unwrap().1[0];
    assert!(
        (loss - inference_loss).abs() < 1e-6,
        "{loss} vs {inference_loss}"
    );
    let after = model::read(&base).get_weights();
    // The base still trains (its kernel, gamma and beta move) but its batch
    // normalization keeps its moving statistics.
    assert_ne!(after[0].to_vec(), w[0].to_vec());
    assert_ne!(after[2].to_vec(), w[2].to_vec(), "gamma");
    assert_eq!(after[4].to_vec(), w[4].to_vec(), "moving mean");
    assert_eq!(after[5].to_vec(), w[5].to_vec(), "moving variance");

    // Followed by default, the same fit moves them.
    let (base, mut outer) = nested_called(None);
    model::write(&base).set_weights(w.clone()).unwrap();
    compile_mse(&mut outer);
    let data = Samples::single(&x, &[3], &y, &[1]).unwrap();
    fit(&mut outer, data, None, &opts(1), &mut Silent).unwrap();
    assert_ne!(model::read(&base).get_weights()[4].to_vec(), w[4].to_vec());
}

#[test]
fn a_call_with_training_true_runs_in_training_mode_in_predict() {
    let _g = lock_stream();
    engine::rng::set_seed(6);
    let x: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).cos() * 3.0).collect();
    // The predictions, and whether predict() moved the moving mean.
    let rows = |training: Option<bool>| -> (Vec<f32>, bool) {
        let (base, mut outer) = nested_called(training);
        // One sample a batch: in training mode batch normalization maps each sample to
        // its beta (0), so every prediction is the head's bias.
        let arrays = [Array {
            values: &x,
            shape: &[3],
        }];
        let before = model::read(&base).get_weights()[4].to_vec();
        let p = predict(&mut outer, &arrays, 1, &mut Silent).unwrap()[0].to_vec();
        let moved = model::read(&base).get_weights()[4].to_vec() != before;
        (p, moved)
    };
    let (forced, moved) = rows(Some(true));
    assert!(forced.iter().all(|&v| v == forced[0]), "{forced:?}");
    assert!(moved, "Keras's predict() folds the batch statistics in");
    let (default, moved) = rows(None);
    assert!(default.iter().any(|&v| v != default[0]), "{default:?}");
    assert!(!moved);
}

#[test]
fn graphs_that_cannot_work_are_refused_clearly() {
    let _g = lock_stream();
    // Merging (4,) with (5,).
    let err = Model::functional(
        None,
        vec![input("a", &[4]), input("b", &[5])],
        vec![Member::Layer(share_layer(layer(
            "Add",
            &[("name", ConfigValue::Str("bad_add".into()))],
        )))],
        vec![node(0, &[Src::Input(0), Src::Input(1)])],
        vec![out(0)],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("bad_add") && err.contains("(4,)") && err.contains("(5,)"),
        "{err}"
    );
    // An output no node computes.
    let err = Model::functional(None, vec![input("a", &[4])], vec![], vec![], vec![out(3)])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not depend on `inputs`"), "{err}");
}
