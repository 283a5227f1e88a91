//! The GPU's self-check: before anything runs on a GPU, a few small problems go through
//! the device seam (`device/mod.rs`) twice, on the CPU and on the GPU, and must agree.
//! None of the GPU code had run on a real GPU when this was written, so a driver,
//! cuBLAS or kernel that gives wrong numbers makes the GPU unusable (with the reason),
//! and models stay on the CPU, rather than training on wrong values.
//!
//! It covers cuBLAS SGEMM (non-square, in each transpose the seam uses), the elementwise
//! and activation kernels, bias addition, softmax, reductions, an im2col convolution and
//! pooling. The problems are a few hundred values each, one download per check: about 2 ms
//! emulated; on a GPU, a few milliseconds (not yet timed on one).
//!
//! `context::gpu()` runs it once per process, the first time the started backend is
//! asked for, and keeps the result (`context::started()` is the backend without it).

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::{Rng, SeedableRng};

use super::context::started;
use crate::device;
use crate::ops::activation::Activation;
use crate::ops::conv::{ConvSpec, Padding as ConvPadding};
use crate::ops::pool::{Padding as PoolPadding, Pool2d};
use crate::tensor::{Device, Tensor};

/// Test hook: `RUSTKERAS_GPU_SELFCHECK_FAULT=<check>` adds `FAULT_OFFSET` to the first
/// value of that check's GPU result before the comparison, as a wrong kernel would, so
/// that tests can see a failing self-check on a GPU (or the emulated one) that passes.
/// The names are those of `CHECKS`; a name that is none of them fails the check too
/// (saying so), so a mistyped hook cannot pass silently.
pub const FAULT_VAR: &str = "RUSTKERAS_GPU_SELFCHECK_FAULT";

/// What the fault hook adds to the first value of the named check's GPU result.
pub const FAULT_OFFSET: f32 = 0.5;

/// Largest difference allowed, relative to the largest CPU value of the check (at least
/// 1): about a thousand float32 roundings, far above what summing a few dozen terms in
/// another order or a GPU's `expf` gives, and far below a wrong index, a missing term or
/// a wrong formula.
pub const TOLERANCE: f32 = 1e-4;

/// The checks, in the order they run: the names `FAULT_VAR` takes and failures report.
pub const CHECKS: &[&str] = &[
    "sgemm",
    "sgemm_transpose_a",
    "sgemm_transpose_b",
    "sgemm_transpose_both",
    "add",
    "mul",
    "affine",
    "bias_add",
    "relu",
    "sigmoid",
    "tanh",
    "elu",
    "gelu",
    "softplus",
    "silu",
    "relu_backward",
    "softmax",
    "log_softmax",
    "col_sum",
    "sum",
    "conv2d_im2col",
    "max_pool",
    "avg_pool",
];

/// The fault the environment asks for (`FAULT_VAR`), if any.
pub fn fault_from_env() -> Option<String> {
    std::env::var(FAULT_VAR).ok().filter(|v| !v.is_empty())
}

/// Runs every check on the started backend; `fault` names a check whose GPU result is
/// made wrong (the test hook; `None` in normal use). `Err` says which check failed and by
/// how much, as "the GPU failed its self-check: ...". A panic in the GPU code (a failed
/// launch, a cuBLAS error) is a failure too.
pub fn run(fault: Option<&str>) -> Result<(), String> {
    let fail = |why: String| format!("the GPU failed its self-check: {why}");
    started()?;
    if let Some(f) = fault {
        if !CHECKS.contains(&f) {
            return Err(fail(format!(
                "{FAULT_VAR} names no check: \"{f}\" (the checks: {})",
                CHECKS.join(", ")
            )));
        }
    }
    let mut checker = Checker { fault, ran: 0 };
    match catch_unwind(AssertUnwindSafe(|| checker.all())) {
        Ok(Ok(())) => {
            debug_assert_eq!(checker.ran, CHECKS.len(), "every check ran");
            Ok(())
        }
        Ok(Err(why)) => Err(fail(why)),
        Err(payload) => {
            let msg = super::probe::panic_message(&*payload);
            let at = CHECKS.get(checker.ran).copied().unwrap_or("?");
            Err(fail(format!("{at} stopped: {msg}")))
        }
    }
}

struct Checker<'a> {
    fault: Option<&'a str>,
    /// Checks finished, so that a panic can name the one that was running.
    ran: usize,
}

fn random(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(shape.to_vec(), data).expect("values for the shape")
}

fn on_gpu(t: &Tensor) -> Tensor {
    t.to_device(Device::Cuda)
}

impl Checker<'_> {
    /// Compares the CPU's and the GPU's result of check `name`.
    fn compare(&mut self, name: &str, cpu: &Tensor, gpu: &Tensor) -> Result<(), String> {
        debug_assert_eq!(
            CHECKS.get(self.ran),
            Some(&name),
            "checks run in CHECKS order"
        );
        self.ran += 1;
        if cpu.shape() != gpu.shape() {
            return Err(format!(
                "{name} gave shape {:?} on the GPU, {:?} on the CPU",
                gpu.shape(),
                cpu.shape()
            ));
        }
        let mut g = gpu.host().to_vec();
        if self.fault == Some(name) {
            if let Some(v) = g.first_mut() {
                *v += FAULT_OFFSET;
            }
        }
        let c = cpu.host();
        let scale = c.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        // The largest difference and where; NaN (a value never written) counts as
        // infinitely far.
        let mut worst = (0.0f32, 0usize);
        for (i, (a, b)) in c.iter().zip(&g).enumerate() {
            let d = (a - b).abs();
            let d = if d.is_nan() { f32::INFINITY } else { d };
            if d > worst.0 {
                worst = (d, i);
            }
        }
        let (d, i) = worst;
        if d > TOLERANCE * scale {
            return Err(format!(
                "{name} differs from the CPU by {d:.3e} (value {i} of {}: CPU {}, GPU {}; allowed {:.1e})",
                c.len(),
                c[i],
                g[i],
                TOLERANCE * scale
            ));
        }
        Ok(())
    }

    fn all(&mut self) -> Result<(), String> {
        // Products: non-square, every transpose (forward passes use A B, gradients
        // A^T B and A B^T).
        let (m, k, n) = (9, 13, 6);
        for (name, ta, tb) in [
            ("sgemm", false, false),
            ("sgemm_transpose_a", true, false),
            ("sgemm_transpose_b", false, true),
            ("sgemm_transpose_both", true, true),
        ] {
            let a = random(&if ta { [k, m] } else { [m, k] }, 1, 1.0);
            let b = random(&if tb { [n, k] } else { [k, n] }, 2, 1.0);
            let cpu = device::matmul(&a, ta, &b, tb);
            let gpu = device::matmul(&on_gpu(&a), ta, &on_gpu(&b), tb);
            self.compare(name, &cpu, &gpu)?;
        }

        // Elementwise, bias and activations on a 7 x 11 matrix.
        let (rows, cols) = (7, 11);
        let x = random(&[rows, cols], 3, 3.0);
        let y = random(&[rows, cols], 4, 1.0);
        let bias = random(&[cols], 5, 1.0);
        let (gx, gy, gb) = (on_gpu(&x), on_gpu(&y), on_gpu(&bias));
        self.compare("add", &device::add(&x, &y), &device::add(&gx, &gy))?;
        self.compare("mul", &device::mul(&x, &y), &device::mul(&gx, &gy))?;
        self.compare(
            "affine",
            &device::affine(&x, 2.0, -0.5),
            &device::affine(&gx, 2.0, -0.5),
        )?;
        self.compare(
            "bias_add",
            &device::add_row_bias(&x, &bias),
            &device::add_row_bias(&gx, &gb),
        )?;
        for (name, act) in [
            ("relu", Activation::Relu),
            ("sigmoid", Activation::Sigmoid),
            ("tanh", Activation::Tanh),
            ("elu", Activation::Elu),
            ("gelu", Activation::Gelu),
            ("softplus", Activation::Softplus),
            ("silu", Activation::Silu),
        ] {
            self.compare(
                name,
                &device::bias_activation(&x, &bias, act),
                &device::bias_activation(&gx, &gb, act),
            )?;
        }
        let r = device::activation_forward(Activation::Relu, &x);
        let gr = device::activation_forward(Activation::Relu, &gx);
        self.compare(
            "relu_backward",
            &device::activation_backward(Activation::Relu, &x, &r, &y),
            &device::activation_backward(Activation::Relu, &gx, &gr, &gy),
        )?;
        self.compare(
            "softmax",
            &device::softmax_rows(&x, cols),
            &device::softmax_rows(&gx, cols),
        )?;
        self.compare(
            "log_softmax",
            &device::log_softmax_rows(&x, cols),
            &device::log_softmax_rows(&gx, cols),
        )?;

        // Reductions.
        self.compare(
            "col_sum",
            &device::col_sum(&x, cols),
            &device::col_sum(&gx, cols),
        )?;
        let scalar = |v: f32| Tensor::from_vec(vec![1], vec![v]).expect("one value");
        self.compare("sum", &scalar(device::sum(&x)), &scalar(device::sum(&gx)))?;

        // A 3x3 'same' convolution with stride 2 (im2col + SGEMM on the GPU), bias and
        // ReLU, then pooling of the convolution's input.
        let spec = ConvSpec {
            kernel: (3, 3),
            strides: (2, 1),
            dilation: (1, 1),
            padding: ConvPadding::Same,
        };
        let shape = [2, 6, 5, 3];
        let g = spec.geometry(&shape, 4).map_err(|e| e.to_string())?;
        let img = random(&shape, 6, 1.0);
        let kernel = random(&[3, 3, 3, 4], 7, 0.5);
        let kb = random(&[4], 8, 0.5);
        let (gimg, gkernel, gkb) = (on_gpu(&img), on_gpu(&kernel), on_gpu(&kb));
        let (cpu, _) =
            device::conv2d_forward(&img, &kernel, Some(&kb), Activation::Relu, &g, false);
        let (gpu, _) =
            device::conv2d_forward(&gimg, &gkernel, Some(&gkb), Activation::Relu, &g, false);
        self.compare("conv2d_im2col", &cpu, &gpu)?;
        let pool = Pool2d::new(&shape, (2, 2), (2, 2), PoolPadding::Same)
            .ok_or("the pooling geometry of the self-check")?;
        self.compare(
            "max_pool",
            &device::max_pool2d(&img, &pool),
            &device::max_pool2d(&gimg, &pool),
        )?;
        self.compare(
            "avg_pool",
            &device::avg_pool2d(&img, &pool),
            &device::avg_pool2d(&gimg, &pool),
        )?;
        Ok(())
    }
}
