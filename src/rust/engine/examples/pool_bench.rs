//! Time of the pooling kernels at the shapes of the workshop CNN (batch 128: 2x2 max
//! pooling of 26x26x32 and 11x11x64 maps), beside a plain copy of the input as the
//! memory-bound yardstick: a pooling reads its input once, so it cannot beat the copy
//! by much.
//!
//!     cargo run --release --example pool_bench            # threads = all cores
//!     RAYON_NUM_THREADS=1 cargo run --release --example pool_bench

use engine::device::cpu_pool;
use engine::ops::pool::{Padding, Pool2d};
use std::time::Instant;

/// Milliseconds per call: the best of 15 batches, so that other work on a shared
/// machine counts as little as possible.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let batch = ((0.02 / once) as usize).max(1);
    (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_secs_f64() / batch as f64
        })
        .fold(f64::INFINITY, f64::min)
        * 1e3
}

fn main() {
    println!("threads: {}", rayon::current_num_threads());
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "shape, pool", "copy ms", "max ms", "max bwd", "avg ms"
    );
    for (shape, pool, strides, padding) in [
        ([128, 26, 26, 32], (2, 2), (2, 2), Padding::Valid),
        ([128, 11, 11, 64], (2, 2), (2, 2), Padding::Valid),
        ([128, 26, 26, 32], (3, 3), (2, 2), Padding::Same),
    ] {
        let g = Pool2d::new(&shape, pool, strides, padding).unwrap();
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
        let grad = vec![1.0f32; g.n * g.oh * g.ow * g.c];
        let y = cpu_pool::max_pool2d(&x, &g);
        let copy = time(|| drop(std::hint::black_box(x.clone())));
        let max = time(|| drop(std::hint::black_box(cpu_pool::max_pool2d(&x, &g))));
        let bwd = time(|| {
            drop(std::hint::black_box(cpu_pool::max_pool2d_backward(
                &x, &y, &grad, &g,
            )))
        });
        let avg = time(|| drop(std::hint::black_box(cpu_pool::avg_pool2d(&x, &g))));
        println!(
            "{:<28} {copy:>9.3} {max:>9.3} {bwd:>9.3} {avg:>9.3}",
            format!("{shape:?} {}x{} {}", pool.0, pool.1, padding.name()),
        );
    }
}
