//! Times the Winograd convolution's parts at the workshop CNN's second convolution (64
//! samples of 13x13x32 -> 64, one training shard): the kernel transform, the forward
//! pass with and without keeping the transformed input, the kernel gradient from the
//! kept input or rebuilt, the input gradient, and inference's convolution + 2x2 max
//! pooling.
//!
//!     RAYON_NUM_THREADS=1 cargo run --release --example winograd_bench [prefix]
//!
//! With a prefix, only the parts whose label starts with it (for `perf record`).

use engine::device::cpu_conv::Epilogue;
use engine::device::cpu_winograd as w;
use engine::device::pool;
use engine::ops::conv::{ConvSpec, Padding};
use std::time::Instant;

/// Values in [-0.5, 0.5) from a fixed sequence.
fn values(n: usize, mult: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * mult) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn main() {
    let spec = ConvSpec {
        kernel: (3, 3),
        strides: (1, 1),
        dilation: (1, 1),
        padding: Padding::Valid,
    };
    let (n, c, f) = (64, 32, 64);
    let g = spec.geometry(&[n, 13, 13, c], f).unwrap();
    assert!(w::applies(&g));
    let x = values(n * 13 * 13 * c, 7919);
    let k = values(9 * c * f, 104729);
    let gz = values(n * g.oh * g.ow * f, 31);
    let only = std::env::args().nth(1).unwrap_or_default();
    let reps = 200;
    let time = |name: &str, run: &mut dyn FnMut()| {
        if !name.starts_with(only.as_str()) {
            return;
        }
        run();
        let t = Instant::now();
        for _ in 0..reps {
            run();
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
        println!("{name:14} {ms:8.3} ms");
    };
    println!("threads: {}", rayon::current_num_threads());
    let mut kept = vec![0.0f32; w::kept_len(&g)];
    let u = w::prepare_kernel(&k, &g);
    time("kernel", &mut || drop(w::prepare_kernel(&k, &g)));
    time("fwd", &mut || {
        pool::give(w::conv2d_forward(&x, &u, &g, Epilogue::NONE, None))
    });
    time("fwd keep", &mut || {
        pool::give(w::conv2d_forward(
            &x,
            &u,
            &g,
            Epilogue::NONE,
            Some(&mut kept),
        ))
    });
    time("dk kept", &mut || {
        pool::give(w::conv2d_kernel_grad(&x, &gz, Some(&kept), &g))
    });
    time("dk rebuilt", &mut || {
        pool::give(w::conv2d_kernel_grad(&x, &gz, None, &g))
    });
    time("dx", &mut || pool::give(w::conv2d_input_grad(&gz, &k, &g)));
    // Inference: predict's fused convolution + 2x2 max pooling (ReLU), its kernel
    // prepared once and then found again (`prepare_inference_kernel`).
    let pg = engine::ops::pool::Pool2d::new(
        &[n, g.oh, g.ow, f],
        (2, 2),
        (2, 2),
        engine::ops::pool::Padding::Valid,
    )
    .unwrap();
    let bias = values(f, 17);
    let epi = Epilogue {
        bias: Some(&bias),
        act: engine::ops::activation::Activation::Relu,
    };
    time("pooled", &mut || {
        pool::give(w::conv2d_max_pool_forward(&x, &k, &g, epi, &pg).unwrap())
    });
}
