//! GFLOP/s of the engine's convolution (im2col + GEMM) at the workshop CNN's shapes,
//! forward and backward, for one 64-sample training shard (what each of two threads
//! runs per batch of 128) and for a 128-sample batch on all threads.
//!
//!     cargo run --release --example conv_bench
//!     RAYON_NUM_THREADS=1 cargo run --release --example conv_bench
//!     CONV_BENCH_ONLY=conv2 cargo run --release --example conv_bench   # labels starting so

use engine::autodiff::Tape;
use engine::ops::conv::{conv2d, ConvSpec, Padding};
use engine::tensor::Tensor;
use std::time::Instant;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let data = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(shape.to_vec(), data).unwrap()
}

/// Best-of-reps seconds of forward and of forward + backward.
fn time(x: &Tensor, k: &Tensor, spec: &ConvSpec, input_grad: bool, reps: usize) -> (f64, f64) {
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let t0 = Instant::now();
        let mut tape = Tape::new();
        let xv = tape.leaf(x.clone(), input_grad);
        let kv = tape.leaf(k.clone(), true);
        let y = conv2d(&mut tape, xv, kv, spec).unwrap();
        let fwd = t0.elapsed().as_secs_f64();
        let s = engine::ops::math::sum(&mut tape, y);
        tape.backward(s).unwrap();
        best = (best.0.min(fwd), best.1.min(t0.elapsed().as_secs_f64()));
    }
    best
}

fn main() {
    let spec = ConvSpec {
        kernel: (3, 3),
        strides: (1, 1),
        dilation: (1, 1),
        padding: Padding::Valid,
    };
    println!("threads: {}", rayon::current_num_threads());
    // (label, input shape, filters, whether the input needs a gradient)
    let cases = [
        ("conv1 28x28x1->32", [64usize, 28, 28, 1], 32usize, false),
        ("conv2 13x13x32->64", [64, 13, 13, 32], 64, true),
        ("conv1 batch 128", [128, 28, 28, 1], 32, false),
        ("conv2 batch 128", [128, 13, 13, 32], 64, true),
    ];
    let only = std::env::var("CONV_BENCH_ONLY").unwrap_or_default();
    for (label, shape, f, input_grad) in cases {
        if !label.starts_with(only.as_str()) {
            continue;
        }
        let x = random(&shape, 1);
        let k = random(&[3, 3, shape[3], f], 2);
        let g = spec.geometry(&shape, f).unwrap();
        let flops = 2.0 * (g.n * g.out_pixels() * g.patch_len() * f) as f64;
        let passes = if input_grad { 3.0 } else { 2.0 };
        let (fwd, all) = time(&x, &k, &spec, input_grad, 20);
        println!(
            "{label:22} fwd {:7.3} ms {:6.1} GFLOP/s | fwd+bwd {:7.3} ms {:6.1} GFLOP/s",
            fwd * 1e3,
            flops / fwd / 1e9,
            all * 1e3,
            passes * flops / all / 1e9
        );
    }
}
