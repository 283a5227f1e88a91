//! The NVRTC kernels, run on the CPU by `emulate`, against the engine's CPU kernels and
//! ops: the same numbers (to float rounding) for every kernel and every case they take.

use std::sync::OnceLock;

use super::emulate::Emulator;
use super::kernels::activation_code;
use crate::autodiff::Tape;
use crate::device::cpu;
use crate::ops::activation::Activation;
use crate::ops::gradcheck::random_tensor;
use crate::ops::loss::{categorical_crossentropy, softmax_cross_entropy, Labels};
use crate::optim::{Algorithm, Optimizer, OptimizerConfig};
use crate::tensor::Tensor;

type P = *const f32;
type M = *mut f32;

fn emu() -> Option<&'static Emulator> {
    static EMU: OnceLock<Option<Emulator>> = OnceLock::new();
    EMU.get_or_init(|| match Emulator::new() {
        Ok(e) => Some(e),
        Err(why) => {
            eprintln!("SKIPPED kernel emulation: {why}");
            None
        }
    })
    .as_ref()
}

fn rand(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    random_tensor(&[n], seed, scale).to_vec()
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(err <= tol, "{what}[{i}]: {g} against {w}");
    }
}

const ELEMENTWISE: [Activation; 14] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu,
    Activation::Elu,
    Activation::Selu,
    Activation::Gelu,
    Activation::Sigmoid,
    Activation::HardSigmoid,
    Activation::Tanh,
    Activation::Softplus,
    Activation::Softsign,
    Activation::Silu,
    Activation::Exponential,
];

#[test]
fn elementwise_arithmetic() {
    let Some(e) = emu() else { return };
    let n = 37;
    let (a, b) = (rand(n, 1, 2.0), rand(n, 2, 2.0));
    let mut y = vec![0.0f32; n];
    e.launch_typed("rk_fill", |f: unsafe extern "C" fn(M, f32, u64)| unsafe {
        f(y.as_mut_ptr(), 2.5, n as u64)
    });
    assert!(y.iter().all(|&v| v == 2.5));
    e.launch_typed(
        "rk_affine",
        |f: unsafe extern "C" fn(P, M, f32, f32, u64)| unsafe {
            f(a.as_ptr(), y.as_mut_ptr(), 3.0, -1.0, n as u64)
        },
    );
    assert_close(&y, &cpu::affine(&a, 3.0, -1.0), 0.0, "affine");
    e.launch_typed("rk_add", |f: unsafe extern "C" fn(P, P, M, u64)| unsafe {
        f(a.as_ptr(), b.as_ptr(), y.as_mut_ptr(), n as u64)
    });
    assert_close(&y, &cpu::add(&a, &b), 0.0, "add");
    e.launch_typed("rk_mul", |f: unsafe extern "C" fn(P, P, M, u64)| unsafe {
        f(a.as_ptr(), b.as_ptr(), y.as_mut_ptr(), n as u64)
    });
    assert_close(&y, &cpu::mul(&a, &b), 0.0, "mul");
    let mut acc = a.clone();
    e.launch_typed(
        "rk_add_assign",
        |f: unsafe extern "C" fn(M, P, u64)| unsafe { f(acc.as_mut_ptr(), b.as_ptr(), n as u64) },
    );
    assert_close(&acc, &cpu::add(&a, &b), 0.0, "add_assign");
}

#[test]
fn activations_forward_and_backward() {
    let Some(e) = emu() else { return };
    let (rows, cols) = (6, 7);
    let n = rows * cols;
    let x = rand(n, 3, 4.0);
    let bias = rand(cols, 4, 1.0);
    let g = rand(n, 5, 1.0);
    for act in ELEMENTWISE {
        let code = activation_code(act).unwrap();
        let mut y = vec![0.0f32; n];
        e.launch_typed(
            "rk_bias_activation",
            |f: unsafe extern "C" fn(P, P, M, u64, u64, i32)| unsafe {
                f(
                    x.as_ptr(),
                    bias.as_ptr(),
                    y.as_mut_ptr(),
                    rows as u64,
                    cols as u64,
                    code,
                )
            },
        );
        let want = cpu::bias_activation(&x, &bias, act);
        assert_close(&y, &want, 2e-6, act.name());
        let mut y0 = vec![0.0f32; n];
        e.launch_typed(
            "rk_bias_activation",
            |f: unsafe extern "C" fn(P, P, M, u64, u64, i32)| unsafe {
                f(
                    x.as_ptr(),
                    std::ptr::null(),
                    y0.as_mut_ptr(),
                    rows as u64,
                    cols as u64,
                    code,
                )
            },
        );
        let y_plain = cpu::activation_forward(act, &x);
        assert_close(&y0, &y_plain, 2e-6, &format!("{} without bias", act.name()));
        let mut dx = vec![0.0f32; n];
        e.launch_typed(
            "rk_activation_backward",
            |f: unsafe extern "C" fn(P, P, P, M, u64, i32)| unsafe {
                f(
                    x.as_ptr(),
                    y_plain.as_ptr(),
                    g.as_ptr(),
                    dx.as_mut_ptr(),
                    n as u64,
                    code,
                )
            },
        );
        let want = cpu::activation_backward(act, &x, &y_plain, &g);
        assert_close(&dx, &want, 2e-6, &format!("{} backward", act.name()));
    }
}

#[test]
fn reductions() {
    let Some(e) = emu() else { return };
    let (rows, cols) = (9, 13);
    let g = rand(rows * cols, 6, 1.0);
    let mut out = vec![0.0f32; cols];
    e.launch_typed(
        "rk_col_sum",
        |f: unsafe extern "C" fn(P, M, u64, u64)| unsafe {
            f(g.as_ptr(), out.as_mut_ptr(), rows as u64, cols as u64)
        },
    );
    assert_close(&out, &cpu::col_sum(&g, cols), 1e-6, "col_sum");
    let parts = 7;
    let mut partial = vec![0.0f32; parts];
    e.launch_typed(
        "rk_sum_partial",
        |f: unsafe extern "C" fn(P, M, u64, u64)| unsafe {
            f(
                g.as_ptr(),
                partial.as_mut_ptr(),
                g.len() as u64,
                parts as u64,
            )
        },
    );
    let total: f32 = partial.iter().sum();
    assert_close(&[total], &[cpu::sum(&g)], 1e-5, "sum");
}

#[test]
fn softmax_rows_and_their_gradients() {
    let Some(e) = emu() else { return };
    let (rows, cols) = (8, 10);
    let n = rows * cols;
    let x = rand(n, 7, 5.0);
    let g = rand(n, 8, 1.0);
    type Fwd = unsafe extern "C" fn(P, M, u64, u64);
    type Bwd = unsafe extern "C" fn(P, P, M, u64, u64);
    type RowFn = fn(&[f32], usize) -> Vec<f32>;
    type RowGradFn = fn(&[f32], &[f32], usize) -> Vec<f32>;
    let cases: [(&str, RowFn, RowGradFn); 2] = [
        (
            "rk_softmax_rows",
            cpu::softmax_rows,
            cpu::softmax_rows_backward,
        ),
        (
            "rk_log_softmax_rows",
            cpu::log_softmax_rows,
            cpu::log_softmax_rows_backward,
        ),
    ];
    for (name, fwd, bwd) in cases {
        let mut y = vec![0.0f32; n];
        e.launch_typed(name, |f: Fwd| unsafe {
            f(x.as_ptr(), y.as_mut_ptr(), rows as u64, cols as u64)
        });
        let want = fwd(&x, cols);
        assert_close(&y, &want, 1e-6, name);
        let mut dx = vec![0.0f32; n];
        e.launch_typed(&format!("{name}_backward"), |f: Bwd| unsafe {
            f(
                want.as_ptr(),
                g.as_ptr(),
                dx.as_mut_ptr(),
                rows as u64,
                cols as u64,
            )
        });
        assert_close(
            &dx,
            &bwd(&want, &g, cols),
            1e-6,
            &format!("{name}_backward"),
        );
    }
}

fn onehot(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    let classes: Vec<f32> = (0..rows).map(|r| ((r * 7 + 3) % cols) as f32).collect();
    let mut dense = vec![0.0f32; rows * cols];
    for (r, &c) in classes.iter().enumerate() {
        dense[r * cols + c as usize] = 1.0;
    }
    (dense, classes)
}

/// Loss (the mean of the rows' losses) and gradient of the kernels against the ops on the
/// tape, for one-hot and sparse labels.
#[test]
fn cross_entropies_match_the_ops() {
    let Some(e) = emu() else { return };
    let (rows, cols) = (11, 10);
    let n = rows * cols;
    let (dense, sparse) = onehot(rows, cols);
    let z = rand(n, 9, 4.0);
    // Probabilities with one near 0 and one near 1, so that the clip's zero gradient shows.
    let mut p = cpu::softmax_rows(&z, cols);
    p[..cols].iter_mut().for_each(|v| *v = 1e-9);
    p[(dense.iter().position(|&v| v == 1.0)).unwrap()] = 1.0;
    for (labels, kind, sparse_flag) in [
        (dense.clone(), Labels::Dense, 0),
        (sparse.clone(), Labels::Sparse, 1),
    ] {
        let lshape = if sparse_flag == 1 {
            vec![rows]
        } else {
            vec![rows, cols]
        };
        let scale = 1.0 / rows as f32;

        // From logits.
        let mut t = Tape::new();
        let zv = t.leaf(Tensor::from_vec(vec![rows, cols], z.clone()).unwrap(), true);
        let yv = t.leaf(
            Tensor::from_vec(lshape.clone(), labels.clone()).unwrap(),
            false,
        );
        let probs = Tensor::from_vec(vec![rows, cols], cpu::softmax_rows(&z, cols)).unwrap();
        let l = softmax_cross_entropy(&mut t, zv, &probs, yv, kind).unwrap();
        let grads = t.backward(l).unwrap();
        let (mut probs_k, mut row_loss, mut dz) =
            (vec![0.0f32; n], vec![0.0f32; rows], vec![0.0f32; n]);
        e.launch_typed(
            "rk_softmax_xent",
            |f: unsafe extern "C" fn(P, P, i32, M, M, M, f32, u64, u64)| unsafe {
                f(
                    z.as_ptr(),
                    labels.as_ptr(),
                    sparse_flag,
                    probs_k.as_mut_ptr(),
                    row_loss.as_mut_ptr(),
                    dz.as_mut_ptr(),
                    scale,
                    rows as u64,
                    cols as u64,
                )
            },
        );
        let mean = row_loss.iter().sum::<f32>() / rows as f32;
        assert_close(&[mean], &[t.value(l).item()], 1e-5, "softmax_xent loss");
        assert_close(&probs_k, probs.host(), 1e-6, "softmax_xent probs");
        assert_close(
            &dz,
            grads.get(zv).unwrap().host(),
            1e-6,
            "softmax_xent grad",
        );

        // From probabilities.
        let mut t = Tape::new();
        let pv = t.leaf(Tensor::from_vec(vec![rows, cols], p.clone()).unwrap(), true);
        let yv = t.leaf(Tensor::from_vec(lshape, labels.clone()).unwrap(), false);
        let l = categorical_crossentropy(&mut t, pv, yv, kind).unwrap();
        let grads = t.backward(l).unwrap();
        let (mut row_loss, mut dp) = (vec![0.0f32; rows], vec![0.0f32; n]);
        e.launch_typed(
            "rk_categorical_xent",
            |f: unsafe extern "C" fn(P, P, i32, M, M, f32, u64, u64)| unsafe {
                f(
                    p.as_ptr(),
                    labels.as_ptr(),
                    sparse_flag,
                    row_loss.as_mut_ptr(),
                    dp.as_mut_ptr(),
                    scale,
                    rows as u64,
                    cols as u64,
                )
            },
        );
        let mean = row_loss.iter().sum::<f32>() / rows as f32;
        assert_close(&[mean], &[t.value(l).item()], 1e-5, "categorical_xent loss");
        assert_close(
            &dp,
            grads.get(pv).unwrap().host(),
            1e-5,
            "categorical_xent grad",
        );
    }
}

#[test]
fn accuracy_matches_the_metric() {
    let Some(e) = emu() else { return };
    let (rows, cols) = (12, 5);
    let (dense, sparse) = onehot(rows, cols);
    let mut p = rand(rows * cols, 10, 1.0);
    // A tie on the first row: the first maximum wins, as in the CPU metric.
    p[0] = 2.0;
    p[1] = 2.0;
    for (labels, sparse_flag, metric) in [
        (&dense, 0, "categorical_accuracy"),
        (&sparse, 1, "sparse_categorical_accuracy"),
    ] {
        let mut hit = vec![0.0f32; rows];
        e.launch_typed(
            "rk_accuracy_rows",
            |f: unsafe extern "C" fn(P, P, i32, M, u64, u64)| unsafe {
                f(
                    p.as_ptr(),
                    labels.as_ptr(),
                    sparse_flag,
                    hit.as_mut_ptr(),
                    rows as u64,
                    cols as u64,
                )
            },
        );
        let m = crate::metrics::Metric {
            name: metric.into(),
            kind: if sparse_flag == 1 {
                crate::metrics::MetricKind::SparseCategoricalAccuracy
            } else {
                crate::metrics::MetricKind::CategoricalAccuracy
            },
        };
        let want = m.batch_sum(&p, labels, rows) as f32;
        assert_eq!(hit.iter().sum::<f32>(), want, "{metric}");
        assert!(hit.iter().all(|&h| h == 0.0 || h == 1.0));
    }
}

#[test]
fn dropout_masks_keep_the_rate_and_repeat_by_seed() {
    let Some(e) = emu() else { return };
    let n = 20000;
    let x = rand(n, 11, 1.0);
    let run = |rate: f32, seed: u64| {
        let (mut y, mut mask) = (vec![0.0f32; n], vec![0.0f32; n]);
        e.launch_typed(
            "rk_dropout",
            |f: unsafe extern "C" fn(P, M, M, f32, u64, u64)| unsafe {
                f(
                    x.as_ptr(),
                    y.as_mut_ptr(),
                    mask.as_mut_ptr(),
                    rate,
                    seed,
                    n as u64,
                )
            },
        );
        (y, mask)
    };
    let (y, mask) = run(0.4, 42);
    let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64 / n as f64;
    // Binomial(20000, 0.6): sd 0.0035, so 0.02 is more than five of them.
    assert!((kept - 0.6).abs() < 0.02, "kept {kept}");
    assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0 / 0.6));
    assert_close(&y, &cpu::mul(&x, &mask), 0.0, "y = x * mask");
    assert_eq!(run(0.4, 42).1, mask, "same seed, same mask");
    assert_ne!(run(0.4, 43).1, mask, "another seed, another mask");
    assert!(run(1.0, 42).0.iter().all(|&v| v == 0.0), "rate 1 drops all");
    assert_eq!(run(0.0, 42).0, x, "rate 0 keeps all");
}

/// Three steps of every optimizer variant: the kernels' weights and slots against
/// `Optimizer::apply` (slots in the optimizer's order, which the kernels take).
#[test]
fn optimizer_updates_match_the_cpu() {
    let Some(e) = emu() else { return };
    let n = 29;
    let w0 = rand(n, 12, 1.0);
    let grads: Vec<Vec<f32>> = (0..3).map(|s| rand(n, 20 + s, 1.0)).collect();
    let sgd = |momentum, nesterov| Algorithm::Sgd { momentum, nesterov };
    let rms = |momentum, centered| Algorithm::RmsProp {
        rho: 0.9,
        momentum,
        epsilon: 1e-7,
        centered,
    };
    let adam = |amsgrad| Algorithm::Adam {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
        amsgrad,
    };
    let cases = [
        (sgd(0.0, false), None),
        (sgd(0.9, false), None),
        (sgd(0.9, true), None),
        (rms(0.0, false), None),
        (rms(0.5, true), None),
        (adam(false), None),
        (adam(true), None),
        (adam(false), Some(0.004)),
    ];
    for (algorithm, weight_decay) in cases {
        let lr = 0.01;
        let config = OptimizerConfig {
            name: "test".into(),
            learning_rate: lr,
            algorithm,
            weight_decay,
        };
        let mut opt = Optimizer::new(config).unwrap();
        let mut w = Tensor::from_vec(vec![n], w0.clone()).unwrap();
        let mut kw = w0.clone();
        let mut slots = vec![vec![0.0f32; n]; opt.slot_count()];
        let decay = weight_decay.map_or(0.0, |wd| (lr * wd) as f32);
        for (step, g) in grads.iter().enumerate() {
            opt.apply(
                &mut [&mut w],
                &[Tensor::from_vec(vec![n], g.clone()).unwrap()],
            );
            let mut ptrs: Vec<M> = slots.iter_mut().map(|s| s.as_mut_ptr()).collect();
            ptrs.resize(3, std::ptr::null_mut());
            match algorithm {
                Algorithm::Sgd { momentum, nesterov } => e.launch_typed(
                    "rk_sgd",
                    |f: unsafe extern "C" fn(M, P, M, u64, f32, f32, i32, f32)| unsafe {
                        f(
                            kw.as_mut_ptr(),
                            g.as_ptr(),
                            ptrs[0],
                            n as u64,
                            lr as f32,
                            momentum as f32,
                            nesterov as i32,
                            decay,
                        )
                    },
                ),
                Algorithm::RmsProp {
                    rho,
                    momentum,
                    epsilon,
                    centered,
                } => {
                    let mom = if momentum > 0.0 {
                        ptrs[1]
                    } else {
                        std::ptr::null_mut()
                    };
                    let avg = if centered {
                        ptrs[1 + usize::from(momentum > 0.0)]
                    } else {
                        std::ptr::null_mut()
                    };
                    e.launch_typed(
                        "rk_rmsprop",
                        |f: unsafe extern "C" fn(M, P, M, M, M, u64, f32, f32, f32, f32, f32)| unsafe {
                            f(kw.as_mut_ptr(), g.as_ptr(), ptrs[0], mom, avg, n as u64, lr as f32, rho as f32, momentum as f32, epsilon as f32, decay)
                        },
                    )
                }
                Algorithm::Adam {
                    beta_1,
                    beta_2,
                    epsilon,
                    ..
                } => {
                    let t = (step + 1) as f64;
                    let alpha =
                        (lr * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t))) as f32;
                    e.launch_typed(
                        "rk_adam",
                        |f: unsafe extern "C" fn(M, P, M, M, M, u64, f32, f32, f32, f32, f32)| unsafe {
                            f(kw.as_mut_ptr(), g.as_ptr(), ptrs[0], ptrs[1], ptrs[2], n as u64, beta_1 as f32, beta_2 as f32, epsilon as f32, alpha, decay)
                        },
                    )
                }
            }
        }
        let what = format!("{algorithm:?} decay {weight_decay:?}");
        assert_close(&kw, w.host(), 1e-6, &what);
        for (k, s) in slots.iter().enumerate() {
            assert_close(
                s,
                opt.slots()[0][k].host(),
                1e-6,
                &format!("{what} slot {k}"),
            );
        }
    }
}
