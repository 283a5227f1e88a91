//! Functional models (with a model inside, shared and frozen layers, two outputs) through
//! both file formats: the same predictions, weights, flags and optimizer state, and the
//! same losses when training goes on.

use engine::io;
use engine::layers::ConfigValue;
use engine::losses::Loss;
use engine::model::{self, share_layer, Member, Model, Src};
use engine::optim::OptimizerConfig;
use engine::train::{fit, predict, Array, Samples, Silent};

mod common;
use common::*;

/// base (x -> frozen Dense -> BatchNormalization) called on `a`; a Dense on `b`; Add;
/// two heads.
fn model_with_base() -> Model {
    let bn = Member::Layer(share_layer(layer(
        "BatchNormalization",
        &[("name", ConfigValue::Str("bn".into()))],
    )));
    let base_dense = dense(4, "base_dense", "relu");
    if let Member::Layer(c) = &base_dense {
        model::write_layer(c).trainable = false;
    }
    let base = Model::functional(
        Some("base".into()),
        vec![input("x", &[3])],
        vec![base_dense, bn],
        vec![node(0, &[Src::Input(0)]), node(1, &[out(0)])],
        vec![out(1)],
    )
    .unwrap();
    let add = Member::Layer(share_layer(layer(
        "Add",
        &[("name", ConfigValue::Str("add".into()))],
    )));
    Model::functional(
        Some("outer".into()),
        vec![input("a", &[3]), input("b", &[2])],
        vec![
            Member::Model(model::share(base)),
            dense(4, "side", "linear"),
            add,
            dense(1, "head", "linear"),
            dense(2, "aux", "softmax"),
        ],
        vec![
            node(0, &[Src::Input(0)]),
            node(1, &[Src::Input(1)]),
            node(2, &[out(0), out(1)]),
            node(3, &[out(2)]),
            node(4, &[out(2)]),
        ],
        vec![out(3), out(4)],
    )
    .unwrap()
}

struct Data {
    a: Vec<f32>,
    b: Vec<f32>,
    reg: Vec<f32>,
    cls: Vec<f32>,
}

fn data(n: usize) -> Data {
    let a: Vec<f32> = (0..n * 3)
        .map(|i| ((i * 7 % 11) as f32) / 5.0 - 1.0)
        .collect();
    let b: Vec<f32> = (0..n * 2)
        .map(|i| ((i * 5 % 13) as f32) / 6.0 - 1.0)
        .collect();
    let reg = (0..n).map(|r| a[r * 3] - b[r * 2 + 1]).collect();
    let cls = (0..n)
        .map(|r| if a[r * 3 + 2] > 0.0 { 1.0 } else { 0.0 })
        .collect();
    Data { a, b, reg, cls }
}

fn xs(d: &Data) -> Vec<Array<'_>> {
    vec![
        Array {
            values: &d.a,
            shape: &[3],
        },
        Array {
            values: &d.b,
            shape: &[2],
        },
    ]
}

fn samples(d: &Data) -> Samples<'_> {
    let ys = vec![
        Array {
            values: &d.reg,
            shape: &[1],
        },
        Array {
            values: &d.cls,
            shape: &[],
        },
    ];
    Samples::new(xs(d), ys).unwrap()
}

fn compile(m: &mut Model) {
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
}

fn predictions(m: &mut Model, d: &Data) -> Vec<Vec<f32>> {
    predict(m, &xs(d), 16, &mut Silent)
        .unwrap()
        .iter()
        .map(|t| t.to_vec())
        .collect()
}

fn losses(m: &mut Model, d: &Data) -> Vec<f64> {
    engine::rng::set_seed(11);
    let h = fit(m, samples(d), None, &opts(3), &mut Silent).unwrap();
    h.metrics
        .iter()
        .find(|(k, _)| k == "loss")
        .unwrap()
        .1
        .clone()
}

#[test]
fn a_functional_model_survives_both_formats() {
    let _g = lock_stream();
    engine::rng::set_seed(5);
    let d = data(48);
    let mut m = model_with_base();
    compile(&mut m);
    engine::rng::set_seed(6);
    fit(&mut m, samples(&d), None, &opts(2), &mut Silent).unwrap();
    let dir = std::env::temp_dir().join(format!("rk-functional-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (keras, h5) = (dir.join("m.keras"), dir.join("m.h5"));
    io::save_keras(&m, &keras, true).unwrap();
    io::save_h5(&m, &h5, true, true).unwrap();
    let mut loaded = vec![
        io::load_keras(&keras, true).unwrap(),
        io::load_h5(&h5, true).unwrap(),
    ];
    let want = predictions(&mut m, &d);
    let weights = m.get_weights();
    for l in &mut loaded {
        assert_eq!(l.class_name(), "Functional");
        assert!(l.has_nested_models());
        assert_eq!(l.output_names(), ["head", "aux"]);
        assert_eq!(predictions(l, &d), want, "predictions differ after loading");
        let back = l.get_weights();
        assert_eq!(back.len(), weights.len());
        for (x, y) in back.iter().zip(&weights) {
            assert_eq!(x.to_vec(), y.to_vec());
        }
        // The frozen layer inside the base stays frozen.
        assert_eq!(l.trainable_mask(), m.trainable_mask());
        let c = l.compiled.as_ref().unwrap();
        assert_eq!(c.loss_weights, [0.5, 1.0]);
        assert_eq!(
            c.optimizer.iterations,
            m.compiled.as_ref().unwrap().optimizer.iterations
        );
    }
    let want = losses(&mut m, &d);
    for l in &mut loaded {
        assert_eq!(losses(l, &d), want, "continued training differs");
    }
    // The legacy file lists the base's trainable weights first, as Keras does.
    let f = hdf5::File::open(&h5).unwrap();
    let names: Vec<String> = f
        .group("model_weights/base")
        .unwrap()
        .attr("weight_names")
        .unwrap()
        .read_raw::<hdf5::types::VarLenUnicode>()
        .map(|v| v.iter().map(|s| s.to_string()).collect())
        .or_else(|_| {
            f.group("model_weights/base")?
                .attr("weight_names")?
                .read_raw::<hdf5::types::VarLenAscii>()
                .map(|v| v.iter().map(|s| s.to_string()).collect())
        })
        .unwrap();
    assert_eq!(
        names,
        [
            "bn/gamma",
            "bn/beta",
            "base_dense/kernel",
            "base_dense/bias",
            "bn/moving_mean",
            "bn/moving_variance"
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weights_files_hold_nested_models() {
    let _g = lock_stream();
    engine::rng::set_seed(7);
    let d = data(8);
    let mut m = model_with_base();
    let dir = std::env::temp_dir().join(format!("rk-functional-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h5 = dir.join("w.weights.h5");
    io::save_weights_h5(&m, &h5, true).unwrap();
    let mut other = model_with_base();
    assert_ne!(predictions(&mut other, &d), predictions(&mut m, &d));
    io::load_weights_h5(&mut other, &h5, false).unwrap();
    assert_eq!(predictions(&mut other, &d), predictions(&mut m, &d));
    let keras = dir.join("m.keras");
    io::save_keras(&m, &keras, true).unwrap();
    let mut third = model_with_base();
    io::load_weights_keras(&mut third, &keras).unwrap();
    assert_eq!(predictions(&mut third, &d), predictions(&mut m, &d));
    std::fs::remove_dir_all(&dir).ok();
}
