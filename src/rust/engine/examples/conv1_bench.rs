//! Times the workshop CNN's first convolution + 2x2 max pooling in inference (128
//! grey 28x28 images -> 32 channels, ReLU) by the direct loop and by F(4, 3) Winograd
//! along the rows, alternated, on one thread.
//!
//!     RAYON_NUM_THREADS=1 cargo run --release --example conv1_bench

use engine::device::cpu_conv::Epilogue;
use engine::device::{cpu_direct, cpu_winograd_rows};
use engine::ops::activation::Activation;
use engine::ops::conv::{ConvSpec, Padding};
use engine::ops::pool::Pool2d;
use std::time::Instant;

fn main() {
    let spec = ConvSpec {
        kernel: (3, 3),
        strides: (1, 1),
        dilation: (1, 1),
        padding: Padding::Valid,
    };
    let (n, f) = (128, 32);
    let g = spec.geometry(&[n, 28, 28, 1], f).unwrap();
    let pg = Pool2d::new(
        &[n, g.oh, g.ow, f],
        (2, 2),
        (2, 2),
        engine::ops::pool::Padding::Valid,
    )
    .unwrap();
    let x: Vec<f32> = (0..n * 28 * 28)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let k: Vec<f32> = (0..9 * f)
        .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let bias = vec![0.01f32; f];
    let epi = Epilogue {
        bias: Some(&bias),
        act: Activation::Relu,
    };
    assert!(cpu_winograd_rows::applies(&g, &pg, epi.act));
    let reps = 300;
    let mut best = [f64::MAX; 2];
    for _ in 0..5 {
        for (i, best) in best.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..reps {
                let y = if i == 0 {
                    cpu_direct::conv2d_max_pool_forward(&x, &k, &g, epi, &pg).unwrap()
                } else {
                    cpu_winograd_rows::conv2d_max_pool_forward(&x, &k, &g, epi, &pg)
                };
                engine::device::pool::give(y);
            }
            *best = best.min(t.elapsed().as_secs_f64() * 1e3 / reps as f64);
        }
    }
    println!(
        "direct {:.3} ms, rows {:.3} ms per {n} images",
        best[0], best[1]
    );
}
