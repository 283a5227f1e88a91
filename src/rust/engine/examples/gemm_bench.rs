//! GFLOP/s of `engine::gemm::sgemm` (and the backends behind it) at the shapes an MLP
//! 784-256-128-10 with batch 128 trains with, plus prediction batches and square 1024; or,
//! with GEMM_BENCH_SHAPES=cnn, at the im2col shapes of the workshop CNN (issue 3).
//!
//!     cargo run --release --example gemm_bench            # threads = all cores
//!     RAYON_NUM_THREADS=1 cargo run --release --example gemm_bench
//!     GEMM_BENCH_SHAPES=cnn cargo run --release --example gemm_bench
//!
//! Set GEMM_BENCH_ALL=1 to time every backend, not only the default one. Peers outside the
//! engine (the `gemm` crate) are timed when the bench is built by `bench/gemm_peers.py`,
//! which builds it in a scratch crate with the `bench-peers` feature.

// `bench-peers` is a feature of that scratch crate only, not of the engine.
#![allow(unexpected_cfgs)]

use engine::gemm::{sgemm_with, Backend};
use std::time::Instant;

/// (label, trans_a, trans_b, m, n, k)
const SHAPES: &[(&str, bool, bool, usize, usize, usize)] = &[
    ("fwd X.W1", false, false, 128, 256, 784),
    ("fwd X.W2", false, false, 128, 128, 256),
    ("fwd X.W3", false, false, 128, 10, 128),
    ("dW1 Xt.dY", true, false, 784, 256, 128),
    ("dW2 Xt.dY", true, false, 256, 128, 128),
    ("dW3 Xt.dY", true, false, 128, 10, 128),
    ("dX2 dY.Wt", false, true, 128, 256, 128),
    ("dX3 dY.Wt", false, true, 128, 128, 10),
    ("pred 32", false, false, 32, 256, 784),
    ("pred 10000", false, false, 10000, 256, 784),
    ("square 1024", false, false, 1024, 1024, 1024),
    // The workshop CNN's im2col products, per im2col step (see device/cpu_conv.rs).
    ("cnn c2 fwd", false, false, 605, 64, 288),
    ("cnn c2 dK", true, false, 288, 64, 605),
    ("cnn c2 dcols", false, true, 605, 288, 64),
    ("cnn c1 fwd", false, false, 21632, 32, 9),
    ("cnn c1 dK", true, false, 9, 32, 21632),
    ("cnn dense fwd", false, false, 64, 64, 1600),
];

/// The workshop CNN (28x28x1 -> conv 32 3x3 -> pool 2 -> conv 64 3x3 -> pool 2 -> dense 64 ->
/// dense 10) as im2col + GEMM, per 64-sample shard (batch 128 on 2 threads): patches
/// (positions x kh*kw*cin) times the kernel (kh*kw*cin x filters). Weight gradient:
/// patches' x dY; input gradient: dY . kernel' (then col2im). "128" rows: a whole batch.
const CNN_SHAPES: &[(&str, bool, bool, usize, usize, usize)] = &[
    ("c1 fwd", false, false, 64 * 26 * 26, 32, 9),
    ("c1 dW", true, false, 9, 32, 64 * 26 * 26),
    ("c2 fwd", false, false, 64 * 11 * 11, 64, 288),
    ("c2 dW", true, false, 288, 64, 64 * 11 * 11),
    ("c2 dX", false, true, 64 * 11 * 11, 288, 64),
    ("d1 fwd", false, false, 64, 64, 1600),
    ("d1 dW", true, false, 1600, 64, 64),
    ("d1 dX", false, true, 64, 1600, 64),
    ("c2 fwd 128", false, false, 128 * 11 * 11, 64, 288),
];

fn fill(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// GFLOP/s of `f` from the fastest of about 15 batches of repetitions (about 0.3 s in
/// all): the best batch, not the median, so that other work on a shared machine counts
/// as little as possible.
fn time(flops: f64, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.3 / once) as usize).clamp(5, 20_000);
    let batch = (reps / 15).max(1);
    let mut samples = Vec::new();
    for _ in 0..reps.div_ceil(batch) {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / batch as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    flops / samples[0] / 1e9
}

type Candidate = (
    &'static str,
    Box<dyn Fn(bool, bool, usize, usize, usize, &[f32], &[f32], &mut [f32])>,
);

fn main() {
    let all = std::env::var("GEMM_BENCH_ALL").is_ok();
    let mut cands: Vec<Candidate> = vec![(
        "sgemm",
        Box::new(|ta, tb, m, n, k, a, b, c| {
            sgemm_with(Backend::Auto, ta, tb, m, n, k, 1.0, a, b, 0.0, c)
        }),
    )];
    if all {
        for (name, be) in [
            ("mm+rayon", Backend::MatrixMultiply),
            ("mm whole", Backend::MatrixMultiplyWhole),
        ] {
            cands.push((
                name,
                Box::new(move |ta, tb, m, n, k, a, b, c| {
                    sgemm_with(be, ta, tb, m, n, k, 1.0, a, b, 0.0, c)
                }),
            ));
        }
        extra_candidates(&mut cands);
    }
    let shapes = match std::env::var("GEMM_BENCH_SHAPES").as_deref() {
        Ok("cnn") => CNN_SHAPES,
        Ok("mlp") | Err(_) => SHAPES,
        Ok(other) => panic!("GEMM_BENCH_SHAPES must be mlp or cnn, not {other}"),
    };
    println!("threads = {}", rayon::current_num_threads());
    print!("{:<12} {:>18}", "shape", "m x n x k (t)");
    for (name, _) in &cands {
        print!(" {name:>10}");
    }
    println!("   (GFLOP/s)");
    for &(label, ta, tb, m, n, k) in shapes {
        let a = fill(m * k, 1);
        let b = fill(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let mut reference = vec![0.0f32; m * n];
        sgemm_with(
            Backend::MatrixMultiplyWhole,
            ta,
            tb,
            m,
            n,
            k,
            1.0,
            &a,
            &b,
            0.0,
            &mut reference,
        );
        let t = format!(
            "{}{}",
            if ta { "t" } else { "n" },
            if tb { "t" } else { "n" }
        );
        print!("{label:<12} {:>18}", format!("{m}x{n}x{k} ({t})"));
        for (name, f) in &cands {
            let g = time(2.0 * (m * n * k) as f64, || {
                f(ta, tb, m, n, k, &a, &b, &mut c)
            });
            let err = c
                .iter()
                .zip(&reference)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err < 1e-3 * (k as f32).sqrt(),
                "{name} wrong at {label}: max error {err}"
            );
            print!(" {g:>10.1}");
        }
        println!();
    }
}

/// Peers that are not part of the engine, when the bench is built with them.
#[cfg(feature = "bench-peers")]
fn extra_candidates(cands: &mut Vec<Candidate>) {
    let par = || {
        let t = rayon::current_num_threads();
        if t > 1 {
            gemm::Parallelism::Rayon(t)
        } else {
            gemm::Parallelism::None
        }
    };
    cands.push((
        "gemm crate",
        Box::new(move |ta, tb, m, n, k, a, b, c| {
            let (ars, acs) = if ta { (1, m as isize) } else { (k as isize, 1) };
            let (brs, bcs) = if tb { (1, k as isize) } else { (n as isize, 1) };
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    acs,
                    ars,
                    b.as_ptr(),
                    bcs,
                    brs,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par(),
                );
            }
        }),
    ));
}

#[cfg(not(feature = "bench-peers"))]
fn extra_candidates(_: &mut Vec<Candidate>) {}
