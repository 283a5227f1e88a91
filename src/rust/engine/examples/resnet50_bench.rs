//! Times Keras's ResNet50 (built layer for layer as `keras.applications.ResNet50`
//! builds it, from Keras configs through `registry::from_config`) on random data:
//! predict of one batch of 32 and one training step (Adam, sparse categorical
//! crossentropy, batch 32). `cargo run --release --example resnet50_bench [size] [reps] [what]`
//! (size 224 by default, 112 for a quick look; 3 repetitions; what 0 = both, 1 =
//! predict only, 2 = training step only). Prints wall seconds, user and system CPU
//! seconds, and the peak resident set.

use std::time::Instant;

use engine::layers::registry::from_config;
use engine::layers::{ConfigValue, Layer};
use engine::losses::Loss;
use engine::model::{share_layer, Input, Member, Model, Node, Src};
use engine::optim::OptimizerConfig;
use engine::train::{fit, predict, Array, FitOptions, Samples, Silent};
use rand::{Rng, SeedableRng};
use ConfigValue::{Float, Int, List, Str};

fn layer(class: &str, fields: Vec<(&str, ConfigValue)>) -> Box<dyn Layer> {
    let c: Vec<(String, ConfigValue)> = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    from_config(class, &c).unwrap()
}

/// (user, system) CPU seconds of this process, from /proc/self/stat.
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after_name
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0;
    (
        f.get(11).unwrap_or(&0.0) / tick,
        f.get(12).unwrap_or(&0.0) / tick,
    )
}

/// Peak resident set in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Members and nodes of the graph being built.
struct Graph {
    members: Vec<Member>,
    nodes: Vec<Node>,
}

impl Graph {
    /// Adds `l` called on `inputs`; returns its output.
    fn call(&mut self, l: Box<dyn Layer>, inputs: &[Src]) -> Src {
        self.members.push(Member::Layer(share_layer(l)));
        self.nodes
            .push(Node::new(self.members.len() - 1, inputs.to_vec()));
        Src::Node {
            node: self.nodes.len() - 1,
            output: 0,
        }
    }

    fn conv(&mut self, x: Src, filters: i64, k: i64, stride: i64, same: bool, name: &str) -> Src {
        let l = layer(
            "Conv2D",
            vec![
                ("filters", Int(filters)),
                ("kernel_size", List(vec![Int(k), Int(k)])),
                ("strides", List(vec![Int(stride), Int(stride)])),
                ("padding", Str(if same { "same" } else { "valid" }.into())),
                ("name", Str(name.into())),
            ],
        );
        self.call(l, &[x])
    }

    fn bn(&mut self, x: Src, name: &str) -> Src {
        let l = layer(
            "BatchNormalization",
            vec![
                ("axis", Int(-1)),
                ("epsilon", Float(1.001e-5)),
                ("name", Str(name.into())),
            ],
        );
        self.call(l, &[x])
    }

    fn relu(&mut self, x: Src, name: &str) -> Src {
        let l = layer(
            "Activation",
            vec![
                ("activation", Str("relu".into())),
                ("name", Str(name.into())),
            ],
        );
        self.call(l, &[x])
    }

    /// Keras's `block1` of ResNet50 (v1).
    fn block(&mut self, x: Src, filters: i64, stride: i64, conv_shortcut: bool, name: &str) -> Src {
        let shortcut = if conv_shortcut {
            let s = self.conv(x, 4 * filters, 1, stride, false, &format!("{name}_0_conv"));
            self.bn(s, &format!("{name}_0_bn"))
        } else {
            x
        };
        let mut y = self.conv(x, filters, 1, stride, false, &format!("{name}_1_conv"));
        y = self.bn(y, &format!("{name}_1_bn"));
        y = self.relu(y, &format!("{name}_1_relu"));
        y = self.conv(y, filters, 3, 1, true, &format!("{name}_2_conv"));
        y = self.bn(y, &format!("{name}_2_bn"));
        y = self.relu(y, &format!("{name}_2_relu"));
        y = self.conv(y, 4 * filters, 1, 1, false, &format!("{name}_3_conv"));
        y = self.bn(y, &format!("{name}_3_bn"));
        let add = layer("Add", vec![("name", Str(format!("{name}_add")))]);
        y = self.call(add, &[shortcut, y]);
        self.relu(y, &format!("{name}_out"))
    }

    fn stack(&mut self, mut x: Src, filters: i64, blocks: usize, stride: i64, name: &str) -> Src {
        x = self.block(x, filters, stride, true, &format!("{name}_block1"));
        for i in 2..=blocks {
            x = self.block(x, filters, 1, false, &format!("{name}_block{i}"));
        }
        x
    }
}

fn resnet50(size: usize) -> Model {
    let mut g = Graph {
        members: Vec::new(),
        nodes: Vec::new(),
    };
    let pad = |p: i64, name: &str| {
        layer(
            "ZeroPadding2D",
            vec![
                (
                    "padding",
                    List(vec![List(vec![Int(p), Int(p)]), List(vec![Int(p), Int(p)])]),
                ),
                ("name", Str(name.into())),
            ],
        )
    };
    let mut x = g.call(pad(3, "conv1_pad"), &[Src::Input(0)]);
    x = g.conv(x, 64, 7, 2, false, "conv1_conv");
    x = g.bn(x, "conv1_bn");
    x = g.relu(x, "conv1_relu");
    x = g.call(pad(1, "pool1_pad"), &[x]);
    let pool = layer(
        "MaxPooling2D",
        vec![
            ("pool_size", List(vec![Int(3), Int(3)])),
            ("strides", List(vec![Int(2), Int(2)])),
            ("name", Str("pool1_pool".into())),
        ],
    );
    x = g.call(pool, &[x]);
    x = g.stack(x, 64, 3, 1, "conv2");
    x = g.stack(x, 128, 4, 2, "conv3");
    x = g.stack(x, 256, 6, 2, "conv4");
    x = g.stack(x, 512, 3, 2, "conv5");
    let gap = layer(
        "GlobalAveragePooling2D",
        vec![("name", Str("avg_pool".into()))],
    );
    x = g.call(gap, &[x]);
    let dense = layer(
        "Dense",
        vec![
            ("units", Int(1000)),
            ("activation", Str("softmax".into())),
            ("name", Str("predictions".into())),
        ],
    );
    x = g.call(dense, &[x]);
    Model::functional(
        Some("resnet50".into()),
        vec![Input {
            name: "input_layer".into(),
            shape: Some(vec![size, size, 3]),
        }],
        g.members,
        g.nodes,
        vec![x],
    )
    .unwrap()
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let (t, (u0, s0)) = (Instant::now(), cpu_times());
    let r = f();
    let wall = t.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    println!(
        "{what}: {wall:.3} s elapsed, {:.2} s user, {:.2} s system, peak RSS {:.0} MiB",
        u1 - u0,
        s1 - s0,
        peak_rss_mib()
    );
    r
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (size, reps) = (arg(1, 224), arg(2, 3));
    // What to time: 0 both, 1 predict only, 2 the training step only.
    let what = arg(3, 0);
    let n = 32;
    let mut m = resnet50(size);
    m.compile(
        OptimizerConfig::from_name("adam").unwrap(),
        vec![Loss::from_name("sparse_categorical_crossentropy", false).unwrap()],
        None,
        vec![],
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let x: Vec<f32> = (0..n * size * size * 3).map(|_| rng.gen::<f32>()).collect();
    let y: Vec<f32> = (0..n).map(|_| rng.gen_range(0..1000) as f32).collect();
    let shape = [size, size, 3];
    println!(
        "ResNet50 {size}x{size}x3, batch {n}, {} threads",
        rayon::current_num_threads()
    );
    for r in 0..if what == 2 { 0 } else { reps } {
        let out = timed(&format!("predict #{}", r + 1), || {
            predict(
                &mut m,
                &[Array {
                    values: &x,
                    shape: &shape,
                }],
                n,
                &mut Silent,
            )
            .unwrap()
        });
        assert_eq!(out[0].host().len(), n * 1000);
    }
    let data = Samples::single(&x, &shape, &y, &[]).unwrap();
    for r in 0..if what == 1 { 0 } else { reps } {
        let opts = FitOptions {
            batch_size: n,
            epochs: r + 1,
            initial_epoch: r,
            shuffle: false,
            validation_split: 0.0,
        };
        timed(&format!("train step #{}", r + 1), || {
            fit(&mut m, data.clone(), None, &opts, &mut Silent).unwrap()
        });
    }
}
