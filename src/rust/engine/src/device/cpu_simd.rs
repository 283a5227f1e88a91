//! Plain loops compiled for the vector width the CPU has.
//!
//! The crate is built for the baseline x86-64 target (SSE2), so that one build runs
//! everywhere; hot elementwise kernels opt in to AVX-512 at run time through
//! `with_avx512!`, and `map_strided` shapes their loops so that the compiler emits
//! whole vectors (16 lanes at a time: its own vectorised loops take 64 values at a time
//! and would leave runs of 16 or 32 channels, the common case in convolutions, to their
//! scalar remainder).

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

/// Where `map_strided` reads or writes: run k (of K) starts at `start + k * step` of the
/// buffer, and each run is `n` values long.
#[derive(Clone, Copy)]
pub struct Runs {
    pub start: usize,
    pub step: usize,
}

/// `map_lanes` over K runs of `src` and M runs of `dst` laid out at a fixed step (the
/// rows or columns of a tile): `dst run j [i] = op(src run 0 [i], ...)[j]` for i < n.
/// No arrays of slices are built, so nothing is left for the compiler to call out of
/// line in the AVX-512 copies (building them with `array::from_fn` took 8 % of a
/// training epoch).
#[inline(always)]
pub fn map_strided<const K: usize, const M: usize>(
    src: &[f32],
    from: Runs,
    dst: &mut [f32],
    to: Runs,
    n: usize,
    op: impl Fn([f32; K]) -> [f32; M],
) {
    const L: usize = 16;
    let mut i = 0;
    while i + L <= n {
        let mut a = [[0.0f32; L]; K];
        for (k, a) in a.iter_mut().enumerate() {
            let at = from.start + k * from.step + i;
            *a = src[at..at + L].try_into().expect("16 lanes");
        }
        let mut r = [[0.0f32; L]; M];
        for l in 0..L {
            let mut v = [0.0f32; K];
            for k in 0..K {
                v[k] = a[k][l];
            }
            let o = op(v);
            for m in 0..M {
                r[m][l] = o[m];
            }
        }
        for (m, r) in r.iter().enumerate() {
            let at = to.start + m * to.step + i;
            let d: &mut [f32; L] = (&mut dst[at..at + L]).try_into().expect("16 lanes");
            *d = *r;
        }
        i += L;
    }
    for l in i..n {
        let mut v = [0.0f32; K];
        for (k, v) in v.iter_mut().enumerate() {
            *v = src[from.start + k * from.step + l];
        }
        let o = op(v);
        for (m, o) in o.iter().enumerate() {
            dst[to.start + m * to.step + l] = *o;
        }
    }
}
