//! Plain loops compiled for the vector width the CPU has.
//!
//! The crate is built for the baseline x86-64 target (SSE2), so that one build runs
//! everywhere; hot elementwise kernels opt in to AVX-512 at run time through
//! `with_avx512!`, and `map_lanes` shapes their loops so that the compiler emits whole
//! vectors.

/// `with_avx512!(name, body(arg: Type, ...))` defines `fn name(arg: Type, ...)`, which
/// runs `body` (an `#[inline(always)]` function) compiled for AVX-512 when the CPU has
/// it: plain loops that the compiler vectorises are then 16 lanes wide instead of the
/// baseline x86-64 target's 4 (measured: the Winograd input transform took 13 % of the
/// second workshop convolution's time with 4).
macro_rules! with_avx512 {
    ($name:ident, $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

/// `outs[j][i] = op(ins[0][i], ins[1][i], ...)[j]` for every i < outs[0].len(), 16 lanes
/// at a time: the compiler turns each group into whole vector operations, where its own
/// vectorised loops, unrolled to 64 values, would leave runs of 16 or 32 channels (the
/// common case in convolutions) to their scalar remainder.
#[inline(always)]
pub fn map_lanes<const K: usize, const M: usize>(
    ins: [&[f32]; K],
    outs: [&mut [f32]; M],
    op: impl Fn([f32; K]) -> [f32; M],
) {
    const L: usize = 16;
    let n = outs[0].len();
    let mut i = 0;
    while i + L <= n {
        let a: [&[f32; L]; K] =
            std::array::from_fn(|k| ins[k][i..i + L].try_into().expect("16 lanes"));
        let mut r = [[0.0f32; L]; M];
        for l in 0..L {
            let v = op(std::array::from_fn(|k| a[k][l]));
            for m in 0..M {
                r[m][l] = v[m];
            }
        }
        for m in 0..M {
            outs[m][i..i + L].copy_from_slice(&r[m]);
        }
        i += L;
    }
    for l in i..n {
        let v = op(std::array::from_fn(|k| ins[k][l]));
        for m in 0..M {
            outs[m][l] = v[m];
        }
    }
}
