//! A 3x3 convolution over one input channel (the first layer of a network on grey
//! images) followed by 2x2 max pooling, for inference: F(4, 3) Winograd along each row.
//!
//! With one input channel there is no sum over channels for a 2-D transform to share,
//! so 2-D Winograd spends what it saves on its output transform. Along the rows alone
//! it still pays: each output row of a tile of 4 pixels takes, per 16 output channels,
//! 3 kernel rows x 6 transform points = 18 multiply-adds instead of 4 x 9 = 36, and its
//! output transform is mostly additions, which Zen 4 runs beside the multiply-adds (a
//! 512-bit add or max next to each multiply-add costs nothing there; a multiply does).
//! The input's transform is shared by all output channels: per row, a few permutes and
//! additions of the whole row at once.
//!
//! Each tile of 4 outputs is 2 pooling windows wide: an output row of a tile pools into
//! 2 pairs in registers, which wait for the row below in a small buffer; the
//! convolution's output is never stored. On the workshop CNN's first layer this takes
//! 0.30 ms per 128 images against the direct loop's 0.45 (`examples/conv1_bench`, one
//! thread).

use crate::device::cpu_conv::{by_thread, pools_2x2, Epilogue};
use crate::device::cpu_winograd::tile;
use crate::device::pool;
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::Pool2d;

/// Tiles whose transformed inputs one row step builds: a tile's 6 inputs start 4
/// columns after the previous tile's, so 7 tiles read columns 0..30 of a 32-column
/// window (two registers).
const TILES_PER_STEP: usize = 7;

/// Row steps per row at most: the tile loop is compiled for each count, so that every
/// transformed input it reads lies a constant distance from one pointer (with the
/// distance in a register, the loop spilled 24 pointers and read each back per
/// multiply-add, and ran no faster than the direct loop). Pooled maps up to 56 wide
/// (inputs up to 115 pixels).
const MAX_STEPS: usize = 4;

/// Whether the row transform computes max_pool(act(conv(x) + bias)) for this
/// convolution and pooling: one input channel, a 3x3 kernel with stride and dilation 1
/// and no padding, 2x2 windows of stride 2 ('valid'), a linear or ReLU activation, and
/// a CPU with AVX-512.
pub fn applies(g: &ConvGeometry, pg: &Pool2d, act: Activation) -> bool {
    let conv = (g.c, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (1, 3, 3, 1, 1, 1, 1)
        && (g.pad_top, g.pad_left) == (0, 0)
        && (g.oh + 2, g.ow + 2) == (g.h, g.w);
    let pooling = pools_2x2(g, pg);
    let act = matches!(act, Activation::Linear | Activation::Relu);
    let narrow = pg.ow.div_ceil(2) <= MAX_STEPS * TILES_PER_STEP;
    conv && pooling && act && narrow && g.f > 0 && fast::available()
}

/// max_pool(act(conv(x, kernel) + bias)), (n, pg.oh, pg.ow, f), where `applies`.
pub fn conv2d_max_pool_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    pg: &Pool2d,
) -> Vec<f32> {
    assert!(applies(g, pg, epilogue.act), "row Winograd does not apply");
    let f = g.f;
    let fp = f.next_multiple_of(16);
    // U[ky][p][f] = G k[ky][.][f], each row of channels padded to whole registers.
    let mut u = vec![0.0f32; 3 * 6 * fp];
    for ky in 0..3 {
        for j in 0..f {
            let taps = std::array::from_fn(|kx| kernel[(ky * 3 + kx) * f + j]);
            for (p, v) in tile::g(taps).into_iter().enumerate() {
                u[(ky * 6 + p) * fp + j] = v;
            }
        }
    }
    let mut bias = vec![0.0f32; fp];
    if let Some(b) = epilogue.bias {
        bias[..f].copy_from_slice(&b[..f]);
    }
    let relu = matches!(epilogue.act, Activation::Relu);
    let shape = Shape::new(g, pg);
    let (in_len, out_len) = (g.h * g.w, pg.oh * pg.ow * f);
    let mut y = pool::scratch(g.n * out_len);
    let run = |x: &[f32], y: &mut [f32]| {
        let mut t = vec![0.0f32; shape.t_len()];
        for (xs, ys) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
            // SAFETY: `applies` checked AVX-512F; `xs` is one h x w image, `ys` one
            // pooled output, `t` holds `shape.t_len()` values, `u` and `bias` whole
            // registers of channels (fp of them).
            unsafe {
                fast::transform_rows(xs, &shape, &mut t);
                let args = (&t[..], &shape, &u[..], &bias[..], relu, f);
                match shape.stride / TILES_PER_STEP {
                    1 => fast::pooled_sample::<{ TILES_PER_STEP }>(args, ys),
                    2 => fast::pooled_sample::<{ 2 * TILES_PER_STEP }>(args, ys),
                    3 => fast::pooled_sample::<{ 3 * TILES_PER_STEP }>(args, ys),
                    _ => fast::pooled_sample::<{ MAX_STEPS * TILES_PER_STEP }>(args, ys),
                }
            }
        }
    };
    by_thread(g.n, (x, in_len), (&mut y, out_len), run);
    y
}

/// The sizes one sample's loops need.
struct Shape {
    /// Input rows and columns.
    h: usize,
    w: usize,
    /// Pooled rows and columns.
    ph: usize,
    pw: usize,
    /// Tiles per row (each 2 pooled columns; the last may hang over the edge).
    tiles: usize,
    /// Floats from one transform point's tiles to the next in T: whole row steps, at
    /// most MAX_STEPS (`applies`).
    stride: usize,
}

impl Shape {
    fn new(g: &ConvGeometry, pg: &Pool2d) -> Shape {
        let tiles = pg.ow.div_ceil(2);
        Shape {
            h: g.h,
            w: g.w,
            ph: pg.oh,
            pw: pg.ow,
            tiles,
            stride: tiles.next_multiple_of(TILES_PER_STEP),
        }
    }

    /// T: for each input row, the 6 transform points of every tile, [row][point][tile].
    fn t_len(&self) -> usize {
        self.h * 6 * self.stride
    }
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use std::arch::x86_64::*;

    use super::{Shape, MAX_STEPS, TILES_PER_STEP};
    use crate::device::cpu_winograd::avx512::V;
    use crate::device::cpu_winograd::tile;
    use crate::device::cpu_winograd::tile::Value;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    /// `tile::at` with its factor 2 as an addition (exact, so the result is the same):
    /// one constant fewer in registers, where the loop below keeps its 18 kernel
    /// vectors (with all three, 0.34 ms per 128 images in `examples/conv1_bench`
    /// against 0.30).
    #[inline(always)]
    fn at_two_constants([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        [
            m0 + s12 + s34,
            d12 + (d34 + d34),
            s12.madd(4.0, s34),
            (d12 + m5).madd(8.0, d34),
        ]
    }

    /// T = Bᵀ d of every tile of every row of the image `x` into `t`, tiles as lanes:
    /// each step loads 32 columns (zeros past the image) and permutes out the i-th
    /// input of 7 tiles for each i.
    ///
    /// # Safety
    /// AVX-512F; `x` holds s.h rows of s.w values, `t` s.t_len() values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transform_rows(x: &[f32], s: &Shape, t: &mut [f32]) {
        debug_assert!(x.len() >= s.h * s.w && t.len() >= s.t_len());
        // Lane j of input i: column 4 j + i of the step's window.
        let idx: [__m512i; 6] = std::array::from_fn(|i| {
            let i = i as i32;
            _mm512_setr_epi32(
                i,
                4 + i,
                8 + i,
                12 + i,
                16 + i,
                20 + i,
                24 + i,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
            )
        });
        let keep = (1u16 << TILES_PER_STEP) - 1;
        for r in 0..s.h {
            let row = x.as_ptr().add(r * s.w);
            for j0 in (0..s.tiles).step_by(TILES_PER_STEP) {
                let c0 = 4 * j0;
                let cols = |c: usize| {
                    let n = s.w.saturating_sub(c).min(16);
                    let mask = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
                    _mm512_maskz_loadu_ps(mask, row.add(c.min(s.w)))
                };
                let (lo, hi) = (cols(c0), cols(c0 + 16));
                let d: [V; 6] = std::array::from_fn(|i| V(_mm512_permutex2var_ps(lo, idx[i], hi)));
                let out = tile::bt(d);
                for (p, v) in out.iter().enumerate() {
                    let dst = t.as_mut_ptr().add((r * 6 + p) * s.stride + j0);
                    _mm512_mask_storeu_ps(dst, keep, v.0);
                }
            }
        }
    }

    /// The pooled output of one sample from its transformed rows `t`: for each 16
    /// channels (their 18 kernel vectors U[ky][p] held in registers), each output row
    /// and each tile, M = Σ_ky T[row + ky] U[ky] and Aᵀ M; then the max over each 2x2
    /// window, + bias, with `relu` max(0, ·).
    ///
    /// # Safety
    /// AVX-512F; `t` as `transform_rows` fills it, `u` 18 rows of `bias.len()` values
    /// (a multiple of 16, at least f), `y` s.ph s.pw f values.
    /// `STRIDE`: s.stride.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pooled_sample<const STRIDE: usize>(
        (t, s, u, bias, relu, f): (&[f32], &Shape, &[f32], &[f32], bool, usize),
        y: &mut [f32],
    ) {
        let fp = bias.len();
        debug_assert!(u.len() >= 18 * fp && y.len() >= s.ph * s.pw * f);
        debug_assert!(t.len() >= s.t_len() && s.stride == STRIDE);
        let (tp, yp) = (t.as_ptr(), y.as_mut_ptr());
        let zero = _mm512_setzero_ps();
        for j0 in (0..f).step_by(16) {
            let n = (f - j0).min(16);
            let mask: __mmask16 = if n == 16 { 0xffff } else { (1u16 << n) - 1 };
            let k: [[__m512; 6]; 3] = std::array::from_fn(|ky| {
                std::array::from_fn(|p| _mm512_loadu_ps(u.as_ptr().add((ky * 6 + p) * fp + j0)))
            });
            let b = _mm512_loadu_ps(bias.as_ptr().add(j0));
            // The 4 outputs of one output row of a tile, pooled in pairs.
            let row_pairs = |r: usize, tile: usize| {
                let base = tp.add(r * 6 * STRIDE + tile);
                let at = |ky: usize, p: usize| _mm512_set1_ps(*base.add((ky * 6 + p) * STRIDE));
                let m: [V; 6] = std::array::from_fn(|p| {
                    let acc = _mm512_mul_ps(at(0, p), k[0][p]);
                    let acc = _mm512_fmadd_ps(at(1, p), k[1][p], acc);
                    V(_mm512_fmadd_ps(at(2, p), k[2][p], acc))
                });
                let [o0, o1, o2, o3] = at_two_constants(m);
                (_mm512_max_ps(o0.0, o1.0), _mm512_max_ps(o2.0, o3.0))
            };
            // Row 2 py's pooled pairs wait in `top` for row 2 py + 1: computing both
            // rows of a tile together shares their transformed inputs in registers, and
            // left the kernel vectors none (they were read back from the stack).
            let mut top = [zero; 2 * MAX_STEPS * TILES_PER_STEP];
            for py in 0..s.ph {
                for tile in 0..s.tiles {
                    let (a0, a1) = row_pairs(2 * py, tile);
                    (top[2 * tile], top[2 * tile + 1]) = (a0, a1);
                }
                for tile in 0..s.tiles {
                    let (b0, b1) = row_pairs(2 * py + 1, tile);
                    for (half, bottom) in [b0, b1].into_iter().enumerate() {
                        let px = 2 * tile + half;
                        if px >= s.pw {
                            break; // the tile's second window hangs over the edge
                        }
                        let v = _mm512_add_ps(_mm512_max_ps(top[px], bottom), b);
                        let v = if relu { _mm512_max_ps(v, zero) } else { v };
                        _mm512_mask_storeu_ps(yp.add((py * s.pw + px) * f + j0), mask, v);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod fast {
    use super::Shape;

    pub fn available() -> bool {
        false
    }
    pub unsafe fn transform_rows(_: &[f32], _: &Shape, _: &mut [f32]) {
        unreachable!("row Winograd needs AVX-512")
    }
    pub unsafe fn pooled_sample<const STRIDE: usize>(
        _: (&[f32], &Shape, &[f32], &[f32], bool, usize),
        _: &mut [f32],
    ) {
        unreachable!("row Winograd needs AVX-512")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu_conv;
    use crate::ops::conv::{ConvSpec, Padding};

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0)
            .collect()
    }

    /// The plain definition: every output of the convolution, then each window's max.
    fn reference(x: &[f32], k: &[f32], bias: &[f32], relu: bool, g: &ConvGeometry) -> Vec<f32> {
        let (ph, pw, f) = (g.oh / 2, g.ow / 2, g.f);
        let mut y = vec![f32::NEG_INFINITY; g.n * ph * pw * f];
        for s in 0..g.n {
            for oy in 0..2 * ph {
                for ox in 0..2 * pw {
                    for j in 0..f {
                        let mut acc = 0.0f64;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let xv = x[(s * g.h + oy + ky) * g.w + ox + kx] as f64;
                                acc += xv * k[(ky * 3 + kx) * f + j] as f64;
                            }
                        }
                        let v = (acc + bias[j] as f64) as f32;
                        let v = if relu { v.max(0.0) } else { v };
                        let o = &mut y[((s * ph + oy / 2) * pw + ox / 2) * f + j];
                        *o = o.max(v);
                    }
                }
            }
        }
        y
    }

    #[test]
    fn row_winograd_matches_the_definition() {
        if !fast::available() {
            eprintln!("skipped: no AVX-512");
            return;
        }
        // Odd and even maps, one and several row steps of tiles (pw 19: 10 tiles), a
        // last tile with one window, channel counts below, at and past 16 lanes.
        for (n, h, w, f, relu) in [
            (3, 28, 28, 32, true),
            (2, 9, 9, 1, false),
            (2, 7, 12, 20, true),
            (1, 40, 41, 17, false),
            (5, 4, 4, 16, true),
            // 3 and 4 row steps (pooled widths 39 and 56, the widest that applies).
            (1, 6, 80, 16, false),
            (1, 12, 115, 17, true),
        ] {
            let spec = ConvSpec {
                kernel: (3, 3),
                strides: (1, 1),
                dilation: (1, 1),
                padding: Padding::Valid,
            };
            let g = spec.geometry(&[n, h, w, 1], f).unwrap();
            let pg = Pool2d::new(
                &[n, g.oh, g.ow, f],
                (2, 2),
                (2, 2),
                crate::ops::pool::Padding::Valid,
            )
            .unwrap();
            let act = if relu {
                Activation::Relu
            } else {
                Activation::Linear
            };
            assert!(applies(&g, &pg, act));
            let (x, k, bias) = (values(n * h * w, 1), values(9 * f, 2), values(f, 3));
            let epi = Epilogue {
                bias: Some(&bias),
                act,
            };
            let got = conv2d_max_pool_forward(&x, &k, &g, epi, &pg);
            let want = reference(&x, &k, &bias, relu, &g);
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-6 * scale,
                    "{n}x{h}x{w}x{f} at {i}: {a} against {b}"
                );
            }
            // The op's entry point takes this path.
            assert_eq!(cpu_conv::conv2d_max_pool_forward(&x, &k, &g, epi, &pg), got);
        }
    }

    #[test]
    fn other_geometries_do_not_apply() {
        let spec = |kernel, strides, padding| ConvSpec {
            kernel,
            strides,
            dilation: (1, 1),
            padding,
        };
        let pool = |g: &ConvGeometry, p| {
            Pool2d::new(
                &[g.n, g.oh, g.ow, g.f],
                (p, p),
                (p, p),
                crate::ops::pool::Padding::Valid,
            )
            .unwrap()
        };
        let relu = Activation::Relu;
        let g = spec((3, 3), (1, 1), Padding::Valid)
            .geometry(&[1, 8, 8, 2], 4)
            .unwrap();
        assert!(!applies(&g, &pool(&g, 2), relu), "two input channels");
        let g = spec((3, 3), (1, 1), Padding::Same)
            .geometry(&[1, 8, 8, 1], 4)
            .unwrap();
        assert!(!applies(&g, &pool(&g, 2), relu), "padding");
        let g = spec((5, 5), (1, 1), Padding::Valid)
            .geometry(&[1, 8, 8, 1], 4)
            .unwrap();
        assert!(!applies(&g, &pool(&g, 2), relu), "5x5 kernel");
        let g = spec((3, 3), (2, 2), Padding::Valid)
            .geometry(&[1, 9, 9, 1], 4)
            .unwrap();
        assert!(!applies(&g, &pool(&g, 2), relu), "strides");
        let g = spec((3, 3), (1, 1), Padding::Valid)
            .geometry(&[1, 9, 9, 1], 4)
            .unwrap();
        assert!(!applies(&g, &pool(&g, 3), relu), "3x3 pooling");
        assert!(!applies(&g, &pool(&g, 2), Activation::Sigmoid), "sigmoid");
    }
}
