//! Winograd F(4x4, 3x3) convolution on the CPU, for 3x3 stride-1 undilated kernels.
//!
//! Each 4x4 block ("tile") of outputs is computed from the 6x6 input patch under it
//! with 36 multiplications per (input, output) channel pair instead of 144 (Lavin &
//! Gray, "Fast algorithms for convolutional neural networks", 2015):
//!
//!   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//!
//! with the transformed kernel U = G g Gᵀ and the transformed input V = Bᵀ d B both
//! 6x6. Summed over input channels, the ⊙ becomes, for each of the 36 transform points
//! p, one product M_p (tiles x f) = V_p (tiles x c) · U_p (c x f): 36 GEMMs through our
//! `sgemm`, on a block of tiles small enough to stay in L2 between the input transform,
//! the products and the output transform.
//!
//! Accuracy: the transforms multiply by up to 8 and divide by 24, so the result carries
//! a few times the rounding error of a direct sum: about 5e-6 of the largest output for
//! 32 to 64 channels, against 1e-6 for im2col (the tests below check 2e-5). F(2x2, 3x3),
//! whose transforms only add and halve, was as exact as im2col but did 1.8 times the
//! multiplications on the workshop CNN's 11x11 maps and measured slower; its
//! transforms are in this file's history (the `tile` module is what changes).
//!
//! The same machinery gives the backward pass: the input gradient is a convolution of
//! the output gradient with the kernel flipped and its channels swapped ('full'
//! padding), and the kernel gradient is Gᵀ [ Σ_tiles V_p ⊙ (A dY Aᵀ)_p ] G, again 36
//! GEMMs, reusing the forward pass's V when it was kept.
//!
//! Layout: V of a block of `t` tiles is [36][t][c], M (and its gradient) [36][t][f],
//! U [36][c][f]. Tiles run in raster order within a sample, samples one after another;
//! tiles over the edge of the output read zeros and their extra outputs are dropped.
//!
//! Forward passes that keep nothing for a gradient (predict, evaluate, validation) may use
//! F(6, 3) tiles of 6 outputs from 8 inputs along either axis, mixed with F(4, 3) ones
//! so that the tiles end near the last output needed: each axis is cut with the fewest
//! transform points (`Cut`), and each pair of runs of one variant down the rows and
//! one along the columns is a uniform `Grid` with its own transformed kernel
//! (G_Y g G_Xᵀ, [AY AX][c][f]) and its own products. The workshop CNN's second
//! convolution, whose 2x2 pooling reads 10x10 of its 11x11 outputs, takes 6 + 4 tiles
//! each way: 196 products per channel pair against 256 with F(6x6) tiles alone.

use rayon::prelude::*;

use super::cpu_conv::{pools_2x2, top_level, Epilogue};
use super::cpu_simd::{map_strided, Runs};
use super::pool;
use crate::gemm::{sgemm_packed, PackedB};
use crate::ops::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::Pool2d;
use std::ops::Mul;
use std::sync::{Arc, Mutex};

/// Transform points per tile: the A x A input patch of F(4x4, 3x3).
const P: usize = A * A;

/// Floats of V and M one block may hold (512 KB): with U they stay in Zen 4's 1 MB L2.
const BLOCK_BUDGET: usize = 128 * 1024;

/// Input channels below which im2col wins: the products' inner dimension is c, and the
/// transforms cost per channel what the products save.
const MIN_CHANNELS: usize = 16;

/// Input channels above which im2col is kept for accuracy: F(4x4, 3x3)'s error grows
/// with the number of terms summed, and passed 1e-5 of the largest output at 256
/// channels (1.06e-5; 128 channels stay below 1e-5).
const MAX_CHANNELS: usize = 128;

/// Whether a convolution of this geometry runs here.
pub fn applies(g: &ConvGeometry) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.sh == 1
        && g.sw == 1
        && g.dh == 1
        && g.dw == 1
        && g.c >= MIN_CHANNELS
        && g.f >= MIN_CHANNELS
        && g.c <= MAX_CHANNELS
}

/// Whether the input gradient (a convolution of the output gradient) runs here too.
pub fn applies_to_input_grad(g: &ConvGeometry) -> bool {
    applies(g) && applies(&input_grad_geometry(g))
}

/// Tiles per sample of outputs `m` x `m` per tile.
fn tiles_per_sample(g: &ConvGeometry, m: usize) -> (usize, usize) {
    (g.oh.div_ceil(m), g.ow.div_ceil(m))
}

/// Floats of V this geometry keeps for the kernel gradient: P per tile and channel.
pub fn kept_len(g: &ConvGeometry) -> usize {
    let (th, tw) = tiles_per_sample(g, M);
    g.n * th * tw * P * g.c
}

/// A tile variant along one axis of the output: F(4, 3) tiles of 4 outputs from 6
/// inputs, or F(6, 3) tiles of 6 from 8.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Var {
    F4,
    F6,
}

impl Var {
    /// Transform points along the axis: the input patch's side.
    fn points(self) -> usize {
        match self {
            Var::F4 => 6,
            Var::F6 => 8,
        }
    }
}

/// How one axis of the output is cut: `six` tiles of F(6, 3) from its start, then
/// `four` of F(4, 3). Mixing them lets the tiles end nearer the edge: the 10 outputs a
/// 2x2 pooling keeps of the workshop CNN's 11x11 second convolution take 6 + 4
/// (14 points) where F(6, 3) alone takes 6 + 6 (16) and F(4, 3) alone 4 + 4 + 4 (18);
/// in two dimensions 196 products per channel pair instead of 256 or 324.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Cut {
    six: usize,
    four: usize,
}

impl Cut {
    /// F(4, 3) tiles only (training, and CPUs without AVX-512).
    fn f4(len: usize) -> Cut {
        Cut {
            six: 0,
            four: len.div_ceil(4),
        }
    }

    /// The cut of `len` outputs with the fewest transform points, and of those the one
    /// with the fewest F(6, 3) tiles (their rounding error is larger).
    fn fewest_points(len: usize) -> Cut {
        (0..=len.div_ceil(6))
            .map(|six| Cut {
                six,
                four: len.saturating_sub(6 * six).div_ceil(4),
            })
            .min_by_key(Cut::points)
            .unwrap_or(Cut::f4(len))
    }

    fn points(&self) -> usize {
        8 * self.six + 6 * self.four
    }

    /// The runs of tiles of one variant: (variant, first output, tiles), non-empty.
    fn parts(self) -> impl Iterator<Item = (Var, usize, usize)> {
        [(Var::F6, 0, self.six), (Var::F4, 6 * self.six, self.four)]
            .into_iter()
            .filter(|p| p.2 > 0)
    }
}

/// A uniform grid of tiles over part of each sample's output: `tiles` (rows, columns)
/// of tiles whose variants are `kind` (down the rows, along the columns), the first
/// with its top left output at `origin`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Grid {
    kind: (Var, Var),
    origin: (usize, usize),
    tiles: (usize, usize),
}

impl Grid {
    /// F(4x4, 3x3) tiles over the whole output.
    fn f4(g: &ConvGeometry) -> Grid {
        let (th, tw) = tiles_per_sample(g, M);
        Grid {
            kind: (Var::F4, Var::F4),
            origin: (0, 0),
            tiles: (th, tw),
        }
    }

    /// The grids of a cut of the rows and one of the columns: one per pair of runs.
    fn of_cuts(rows: Cut, cols: Cut) -> Vec<Grid> {
        rows.parts()
            .flat_map(|(vy, oy, ty)| {
                cols.parts().map(move |(vx, ox, tx)| Grid {
                    kind: (vy, vx),
                    origin: (oy, ox),
                    tiles: (ty, tx),
                })
            })
            .collect()
    }

    fn points(&self) -> usize {
        self.kind.0.points() * self.kind.1.points()
    }
}

/// Runs `$f::<MY, AY, Y, MX, AX, X>(args)` for the tile variants `$kind` (rows,
/// columns) of a grid.
macro_rules! by_tiles {
    ($kind:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $kind {
            (Var::F4, Var::F4) => $f::<4, 6, F4, 4, 6, F4>($($arg),*),
            (Var::F6, Var::F6) => $f::<6, 8, F6, 6, 8, F6>($($arg),*),
            (Var::F6, Var::F4) => $f::<6, 8, F6, 4, 6, F4>($($arg),*),
            (Var::F4, Var::F6) => $f::<4, 6, F4, 6, 8, F6>($($arg),*),
        }
    };
}

/// How the batch is cut for one grid: `units` of whole samples (the unit of parallel
/// work, one contiguous slice of the output), each cut into blocks of at most `block`
/// tiles.
#[derive(Clone, Copy)]
struct Plan {
    /// The tiles.
    grid: Grid,
    /// Transform points per tile (AY AX of the grid's variants).
    points: usize,
    /// Tiles per sample.
    tps: usize,
    /// Samples per unit.
    spu: usize,
    /// Tiles per block (a block never straddles a unit).
    block: usize,
}

/// The distance between the A² planes of V or M of a block of `tiles` tiles of `c`
/// channels: one cache line more than they hold, so that the A² values of one tile
/// fall in different L1 sets (planes of 4 or 8 KB, a multiple of the L1's set span,
/// put all 36 in one set, and the transforms' loads missed).
fn planes(tiles: usize, c: usize) -> usize {
    tiles * c + 16
}

/// The products' row tile (`gemm`'s AVX-512 kernel takes 8 rows at a time): blocks of
/// a multiple of it waste no rows (36-tile blocks computed 40).
const ROWS: usize = 8;

impl Plan {
    /// The plan for F(4x4, 3x3) tiles over the whole output.
    fn new(g: &ConvGeometry) -> Plan {
        Plan::for_grid(g, Grid::f4(g))
    }

    /// The plan for the tiles of `grid`.
    fn for_grid(g: &ConvGeometry, grid: Grid) -> Plan {
        let points = grid.points();
        let tps = (grid.tiles.0 * grid.tiles.1).max(1);
        // F(6x6)'s 64 points would leave blocks of 16 tiles, whose products are too
        // short: grids with F(6, 3) tiles get twice the floats (blocks of 40 tiles on
        // the workshop CNN; predict 6 % faster than with 16, measured with
        // `examples/cnn_epoch 0`).
        let floats = if points > P {
            2 * BLOCK_BUDGET
        } else {
            BLOCK_BUDGET
        };
        let budget = (floats / (points * (g.c + g.f))).max(ROWS) / ROWS * ROWS;
        if tps <= budget {
            // Units of whole samples that hold whole row tiles (the workshop CNN's 9
            // tiles per sample: units of 8 samples, blocks of 32 + 32 + 8 tiles).
            let spu = (budget.div_ceil(tps)..)
                .find(|s| s * tps % ROWS == 0)
                .unwrap_or(1)
                .min(g.n.max(1));
            Plan {
                grid,
                points,
                tps,
                spu,
                block: budget.min(spu * tps),
            }
        } else {
            Plan {
                grid,
                points,
                tps,
                spu: 1,
                block: budget,
            }
        }
    }

    /// The blocks of samples [s0, s1) (s0 the start of a unit) as global tile ranges,
    /// unit by unit, so that every caller cuts the batch the same way.
    fn blocks(&self, s0: usize, s1: usize) -> impl Iterator<Item = (usize, usize)> {
        let (tps, spu, b) = (self.tps, self.spu, self.block);
        (s0..s1).step_by(spu).flat_map(move |u| {
            let (t0, t1) = (u * tps, (u + spu).min(s1) * tps);
            (t0..t1).step_by(b).map(move |t| (t, (t + b).min(t1)))
        })
    }
}

// ---------------------------------------------------------------------------------------
// Transforms. Each 2-D transform is a 1-D one down the columns of the tile, then along
// its rows; each works on runs of channels (NHWC keeps them contiguous), 16 lanes at a
// time (`map_strided`).

/// The 1-D transforms of F(4x4, 3x3) (Lavin & Gray's, interpolation points 0, ±1, ±2
/// and ∞), each as the explicit sums, so that the zeros and ones of the matrices cost
/// nothing.
pub(super) mod tile {
    use std::ops::{Add, Mul, Sub};

    /// Outputs per tile side, and the input patch side M + 3 - 1.
    pub const M: usize = 4;
    pub const A: usize = 6;

    /// What the forward transforms compute on: one value (f32), or a vector of them.
    pub trait Value: Copy + Add<Output = Self> + Sub<Output = Self> {
        /// self + k x, fused where the type has a fused multiply-add: the transforms'
        /// constants then cost no instruction of their own.
        fn madd(self, k: f32, x: Self) -> Self;
    }

    impl Value for f32 {
        #[inline(always)]
        fn madd(self, k: f32, x: f32) -> f32 {
            // Not `mul_add`: without FMA in the target it calls libm's software fmaf.
            self + k * x
        }
    }

    /// Bᵀ d: the input transform.
    #[inline(always)]
    pub fn bt<T: Value>([d0, d1, d2, d3, d4, d5]: [T; A]) -> [T; A]
    where
        f32: Mul<T, Output = T>,
    {
        let (s34, d43, d42, d31) = (d3 + d4, d4 - d3, d4 - d2, d3 - d1);
        [
            d4.madd(4.0, d0).madd(-5.0, d2),
            s34.madd(-4.0, d1 + d2),
            d43.madd(4.0, d1 - d2),
            d42.madd(2.0, d31),
            d42.madd(-2.0, d31),
            d5.madd(4.0, d1).madd(-5.0, d3),
        ]
    }

    /// Aᵀ m: the output transform.
    #[inline(always)]
    pub fn at<T: Value>([m0, m1, m2, m3, m4, m5]: [T; A]) -> [T; M]
    where
        f32: Mul<T, Output = T>,
    {
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        [
            m0 + s12 + s34,
            d12.madd(2.0, d34),
            s12.madd(4.0, s34),
            (d12 + m5).madd(8.0, d34),
        ]
    }

    /// G g: the kernel transform.
    #[inline(always)]
    pub fn g([g0, g1, g2]: [f32; 3]) -> [f32; A] {
        let (s, t) = (g0 + g2, g0 / 24.0 + g2 / 6.0);
        [
            g0 / 4.0,
            -(s + g1) / 6.0,
            -(s - g1) / 6.0,
            t + g1 / 12.0,
            t - g1 / 12.0,
            g2,
        ]
    }

    /// Gᵀ u: the kernel gradient from the transform domain (the transpose of `g`).
    #[inline(always)]
    pub fn gt([u0, u1, u2, u3, u4, u5]: [f32; A]) -> [f32; 3] {
        [
            u0 / 4.0 - (u1 + u2) / 6.0 + (u3 + u4) / 24.0,
            (u2 - u1) / 6.0 + (u3 - u4) / 12.0,
            (u3 + u4 - u1 - u2) / 6.0 + u5,
        ]
    }

    /// A dy: the output gradient into the transform domain (the transpose of `at`).
    #[inline(always)]
    pub fn a([y0, y1, y2, y3]: [f32; M]) -> [f32; A] {
        let (e, o) = (y0 + y2, y1 + y3);
        let (e4, o2) = (y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        [y0, e + o, e - o, e4 + o2, e4 - o2, y3]
    }
}

use tile::{A, M};

/// A Winograd variant's forward transforms, as `tile` has them for F(4x4, 3x3): `M` x `M`
/// outputs per tile from an `A` x `A` input patch.
trait Tiles<const M: usize, const A: usize> {
    fn bt<T: tile::Value>(d: [T; A]) -> [T; A]
    where
        f32: Mul<T, Output = T>;
    fn at<T: tile::Value>(m: [T; A]) -> [T; M]
    where
        f32: Mul<T, Output = T>;
    fn g(k: [f32; 3]) -> [f32; A];
}

/// F(4x4, 3x3): the training paths and small maps.
struct F4;

impl Tiles<4, 6> for F4 {
    #[inline(always)]
    fn bt<T: tile::Value>(d: [T; 6]) -> [T; 6]
    where
        f32: Mul<T, Output = T>,
    {
        tile::bt(d)
    }
    #[inline(always)]
    fn at<T: tile::Value>(m: [T; 6]) -> [T; 4]
    where
        f32: Mul<T, Output = T>,
    {
        tile::at(m)
    }
    #[inline(always)]
    fn g(k: [f32; 3]) -> [f32; 6] {
        tile::g(k)
    }
}

/// F(6x6, 3x3) (interpolation points 0, ±1, ±2, ±1/2 and ∞): 64 multiplications per
/// 36 outputs instead of 4x4's 36 per 16, for forward passes that keep nothing for a
/// gradient (predict, evaluate, validation; in training, layers too big to keep their
/// transformed input, whose kernel gradient recomputes it in F(4x4) tiles) on maps
/// where its tiles, alone or mixed
/// with F(4, 3) ones along an axis (`Cut`), need fewer products. Its rounding error is
/// about 1.5 times F(4x4)'s (`tools/winograd-error.py`: 8.2e-6 against 5.7e-6 of the
/// largest output at 32 channels), hence at most `F6_MAX_CHANNELS`.
struct F6;

impl Tiles<6, 8> for F6 {
    #[inline(always)]
    fn bt<T: tile::Value>([d0, d1, d2, d3, d4, d5, d6, d7]: [T; 8]) -> [T; 8]
    where
        f32: Mul<T, Output = T>,
    {
        let (a, b) = ((d2 + d6).madd(-4.25, d4), (d1 + d5).madd(-4.25, d3));
        let (c, f) = (
            d6.madd(0.25, d2).madd(-1.25, d4),
            d6.madd(4.0, d2).madd(-5.0, d4),
        );
        // 0.5 d1 - 2.5 d3 + 2 d5 and 2 d1 - 2.5 d3 + 0.5 d5.
        let (e, h) = (
            (0.5 * d1).madd(-2.5, d3).madd(2.0, d5),
            (0.5 * d5).madd(-2.5, d3).madd(2.0, d1),
        );
        [
            (d0 - d6).madd(5.25, d4 - d2),
            a + b,
            a - b,
            c + e,
            c - e,
            f + h,
            f - h,
            (d7 - d1).madd(5.25, d3 - d5),
        ]
    }
    #[inline(always)]
    fn at<T: tile::Value>([m0, m1, m2, m3, m4, m5, m6, m7]: [T; 8]) -> [T; 6]
    where
        f32: Mul<T, Output = T>,
    {
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        let (s56, d56) = (m5 + m6, m5 - m6);
        [
            m0 + s12 + s34 + s56,
            d12.madd(2.0, d34).madd(0.5, d56),
            s12.madd(4.0, s34).madd(0.25, s56),
            d12.madd(8.0, d34).madd(0.125, d56),
            s12.madd(16.0, s34).madd(0.0625, s56),
            (d12 + m7).madd(32.0, d34).madd(0.03125, d56),
        ]
    }
    #[inline(always)]
    fn g([g0, g1, g2]: [f32; 3]) -> [f32; 8] {
        let (s, t) = (g0 + g2, g0 / 90.0 + g2 * (2.0 / 45.0));
        let u = g0 * (32.0 / 45.0) + g2 * (8.0 / 45.0);
        [
            g0,
            -2.0 / 9.0 * (s + g1),
            -2.0 / 9.0 * (s - g1),
            t + g1 / 45.0,
            t - g1 / 45.0,
            u + g1 * (16.0 / 45.0),
            u - g1 * (16.0 / 45.0),
            g2,
        ]
    }
}

/// Input channels up to which F(6x6, 3x3) may run (its error grows with the channels
/// summed: 1.07e-5 of the largest output at 128).
const F6_MAX_CHANNELS: usize = 64;

/// Runs from `start`, `step` apart.
#[inline(always)]
fn at(start: usize, step: usize) -> Runs {
    Runs { start, step }
}

/// The transformed kernel as the forward products read it, for each grid of tiles of
/// the output: U_p (c x f) of each of the grid's transform points packed once for
/// `sgemm_packed`, since every block of tiles of the batch multiplies by the same U_p
/// (packing it per product was 7 % of the workshop CNN's predict time).
pub struct TransformedKernel {
    grids: Vec<(Grid, Vec<PackedB>)>,
}

impl TransformedKernel {
    /// The plan of a batch for each grid.
    fn plans(&self, g: &ConvGeometry) -> Vec<Plan> {
        self.grids
            .iter()
            .map(|(grid, _)| Plan::for_grid(g, *grid))
            .collect()
    }

    /// Whether its tiles are F(4x4, 3x3)'s over the whole output (what the kernel
    /// gradient reads back when V is kept).
    fn is_f4(&self, g: &ConvGeometry) -> bool {
        matches!(&self.grids[..], [(grid, _)] if *grid == Grid::f4(g))
    }
}

/// The kernel in F(4x4, 3x3) tiles over the whole output of `g` (training: the kernel
/// gradient reads the V these tiles keep).
pub fn prepare_kernel(k: &[f32], g: &ConvGeometry) -> TransformedKernel {
    prepare_grids(k, g, vec![Grid::f4(g)])
}

/// The kernel for an inference forward pass of geometry `g` that needs the outputs
/// of rows [0, extent.0) and columns [0, extent.1) (a 2x2 pooling drops an odd last
/// one): each axis cut into F(6, 3) and F(4, 3) tiles with the fewest transform
/// points (`Cut::fewest_points`) where the CPU runs the AVX-512 transforms and there
/// are at most `F6_MAX_CHANNELS` input channels, else F(4x4, 3x3) tiles. Served from
/// `RECENT` when the same kernel was prepared for the same grids lately.
pub fn prepare_inference_kernel(
    k: &[f32],
    g: &ConvGeometry,
    extent: (usize, usize),
) -> Arc<TransformedKernel> {
    // F(6, 3)'s transforms cost more than F(4, 3)'s: worth it with AVX-512 only.
    // (An empty output has no cut: its F(4x4) grid, with one empty tile, as before.)
    let grids = if avx512_cpu() && g.c <= F6_MAX_CHANNELS && extent.0 * extent.1 > 0 {
        let (rows, cols) = (Cut::fewest_points(extent.0), Cut::fewest_points(extent.1));
        Grid::of_cuts(rows, cols)
    } else {
        vec![Grid::f4(g)]
    };
    let hit = |r: &Recent| {
        r.channels == (g.c, g.f)
            && r.u.grids.iter().map(|(grid, _)| grid).eq(&grids)
            && r.kernel == k
    };
    let lock = || {
        RECENT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    if let Some(r) = lock().iter().find(|r| hit(r)) {
        return Arc::clone(&r.u);
    }
    let u = Arc::new(prepare_grids(k, g, grids.clone()));
    let mut recent = lock();
    // Another thread's batch may have prepared the same kernel meanwhile: one entry.
    if let Some(r) = recent.iter().find(|r| hit(r)) {
        return Arc::clone(&r.u);
    }
    recent.insert(
        0,
        Recent {
            channels: (g.c, g.f),
            kernel: k.to_vec(),
            u: Arc::clone(&u),
        },
    );
    // The oldest go first, past `RECENT_KERNELS` or `RECENT_FLOATS`.
    let mut floats = 0;
    let keep = recent
        .iter()
        .take_while(|r| {
            // Each transform point holds c f floats, a ninth of the kernel.
            let points: usize = r.u.grids.iter().map(|(_, p)| p.len()).sum();
            floats += r.kernel.len() * (9 + points) / 9;
            floats <= RECENT_FLOATS
        })
        .count()
        .clamp(1, RECENT_KERNELS);
    recent.truncate(keep);
    u
}

/// An inference kernel prepared lately, with the (3, 3, c, f) kernel it was made from.
struct Recent {
    channels: (usize, usize),
    kernel: Vec<f32>,
    u: Arc<TransformedKernel>,
}

/// The inference kernels of recent calls, newest first: predict and evaluate run batch
/// after batch with the same weights, and transforming and packing the kernel again
/// for each batch took 6 % of the workshop CNN's predict time. An entry is found by
/// comparing the kernel's values whole (a few microseconds), so a changed weight never
/// meets a stale transform.
static RECENT: Mutex<Vec<Recent>> = Mutex::new(Vec::new());

/// At most this many kernels are kept (a model's Winograd layers, for one predict)...
const RECENT_KERNELS: usize = 8;

/// ... holding at most this many floats (16 MB; the workshop CNN's second convolution
/// takes 1.7 MB).
const RECENT_FLOATS: usize = 4 << 20;

fn prepare_grids(k: &[f32], g: &ConvGeometry, grids: Vec<Grid>) -> TransformedKernel {
    let (c, f) = (g.c, g.f);
    let grids = grids
        .into_iter()
        .map(|grid| {
            let u = by_tiles!(grid.kind, transform_kernel_with(k, c, f));
            let points = u
                .chunks_exact(c * f)
                .map(|up| PackedB::new(c, f, up))
                .collect();
            pool::give(u);
            (grid, points)
        })
        .collect();
    TransformedKernel { grids }
}

/// U = G_Y g G_Xᵀ for every (input, output) channel pair of a (3, 3, c, f) kernel, for
/// tiles of the variants `Y` down the rows and `X` along the columns: [AY][AX][c][f].
fn transform_kernel_with<
    const MY: usize,
    const AY: usize,
    Y: Tiles<MY, AY>,
    const MX: usize,
    const AX: usize,
    X: Tiles<MX, AX>,
>(
    k: &[f32],
    c: usize,
    f: usize,
) -> Vec<f32> {
    let mut u = pool::scratch(AY * AX * c * f);
    let cf = c * f;
    // tmp: G_Y g, AY rows of 3 runs of f.
    let mut tmp = vec![0.0f32; AY * 3 * f];
    for ci in 0..c {
        for x in 0..3 {
            let (from, to) = (at(x * cf + ci * f, 3 * cf), at(x * f, 3 * f));
            map_strided(k, from, &mut tmp, to, f, Y::g);
        }
        for r in 0..AY {
            let (from, to) = (at(r * 3 * f, f), at(r * AX * cf + ci * f, cf));
            map_strided(&tmp, from, &mut u, to, f, X::g);
        }
    }
    u
}

/// The kernel gradient from the transform domain: dK = Gᵀ dU G, (3, 3, c, f) from
/// [A²][c][f].
fn untransform_kernel_grad(du: &[f32], c: usize, f: usize) -> Vec<f32> {
    let cf = c * f;
    let mut dk = pool::scratch(9 * cf);
    // tmp: Gᵀ dU, 3 rows of A runs of f.
    let mut tmp = vec![0.0f32; 3 * A * f];
    for ci in 0..c {
        for x in 0..A {
            let (from, to) = (at(x * cf + ci * f, A * cf), at(x * f, A * f));
            map_strided(du, from, &mut tmp, to, f, tile::gt);
        }
        for r in 0..3 {
            let (from, to) = (at(r * A * f, f), at(r * 3 * cf + ci * f, cf));
            map_strided(&tmp, from, &mut dk, to, f, tile::gt);
        }
    }
    dk
}

/// Copies the `rows` x `cols` patch of pixels (`c` values each) whose top left is
/// (y0, x0) in the `h` x `w` image `src` into `dst` ([rows][cols][c]), zeros where it
/// hangs over the edge.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather(
    src: &[f32],
    (h, w, c): (usize, usize, usize),
    (y0, x0): (isize, isize),
    (rows, cols): (usize, usize),
    dst: &mut [f32],
) {
    let xs = x0.max(0) as usize;
    let xe = ((x0 + cols as isize).max(0) as usize).min(w);
    for (r, out) in dst[..rows * cols * c]
        .chunks_exact_mut(cols * c)
        .enumerate()
    {
        let y = y0 + r as isize;
        if y < 0 || y >= h as isize || xs >= xe {
            out.fill(0.0);
            continue;
        }
        let lead = (xs as isize - x0) as usize * c;
        let len = (xe - xs) * c;
        out[..lead].fill(0.0);
        out[lead..lead + len].copy_from_slice(&src[(y as usize * w + xs) * c..][..len]);
        out[lead + len..].fill(0.0);
    }
}

/// V = B_Yᵀ d B_X of tiles [t0, t1) of `plan`'s grid of input `x` into `v`
/// ([AY AX][t1 - t0][c], the planes `plane` apart: `planes`); `tmp` holds 2 AY AX c
/// values: the transform's middle step, and the patch of a tile over the edge.
/// `fast`: the CPU has AVX-512 (`avx512::input_tile`).
#[inline(always)]
fn transform_input<
    const MY: usize,
    const AY: usize,
    Y: Tiles<MY, AY>,
    const MX: usize,
    const AX: usize,
    X: Tiles<MX, AX>,
>(
    x: &[f32],
    g: &ConvGeometry,
    plan: &Plan,
    (t0, t1): (usize, usize),
    (v, plane): (&mut [f32], usize),
    tmp: &mut [f32],
    fast: bool,
) {
    let (c, tw) = (g.c, plan.grid.tiles.1);
    let (oy, ox) = plan.grid.origin;
    let in_len = g.h * g.w * c;
    let (mid, patch) = tmp.split_at_mut(AY * AX * c);
    for t in t0..t1 {
        let (s, local) = (t / plan.tps, t % plan.tps);
        let (ty, tx) = (local / tw, local % tw);
        let sample = &x[s * in_len..(s + 1) * in_len];
        let iy0 = (oy + MY * ty) as isize - g.pad_top as isize;
        let ix0 = (ox + MX * tx) as isize - g.pad_left as isize;
        if fast {
            // The part of the patch inside the image; the rest reads as zeros.
            let clip = |o: isize, n: usize, a: usize| {
                (-o).clamp(0, a as isize) as usize..(n as isize - o).clamp(0, a as isize) as usize
            };
            let inside = (clip(iy0, g.h, AY), clip(ix0, g.w, AX));
            let dst = &mut v[(t - t0) * c..];
            assert!((AY * AX - 1) * plane + c <= dst.len());
            // SAFETY: the CPU has AVX-512F (`fast`); only the patch's pixels inside the
            // image are read, and the tile's slots of the AY AX planes lie inside `dst`
            // (asserted just above).
            unsafe {
                let anchor = (iy0, ix0, g.w);
                let dst = dst.as_mut_ptr();
                avx512::input_tile::<MY, AY, Y, MX, AX, X>(sample, anchor, c, inside, dst, plane)
            };
            continue;
        }
        let inside = iy0 >= 0 && ix0 >= 0 && iy0 as usize + AY <= g.h && ix0 as usize + AX <= g.w;
        // The patch in place when it lies inside the image, else a zero-padded copy.
        let (src, first, row_step): (&[f32], usize, usize) = if inside {
            let first = (iy0 as usize * g.w + ix0 as usize) * c;
            (sample, first, g.w * c)
        } else {
            gather(sample, (g.h, g.w, c), (iy0, ix0), (AY, AX), patch);
            (&*patch, 0, AX * c)
        };
        // B_Yᵀ d down each column of the patch into mid ([row][col][c]), ...
        for q in 0..AX {
            let (from, to) = (at(first + q * c, row_step), at(q * c, AX * c));
            map_strided(src, from, mid, to, c, Y::bt);
        }
        // ... then along each row into the AY AX planes of V.
        for r in 0..AY {
            let (from, to) = (at(r * AX * c, c), at(r * AX * plane + (t - t0) * c, plane));
            map_strided(mid, from, v, to, c, X::bt);
        }
    }
}

/// What the AVX-512 output transform applies on the way out: the bias, a ReLU or not,
/// and with `pool2` a 2x2 max pooling of stride 2 (each tile's M x M outputs hold
/// whole pooling windows, since M is even).
#[derive(Clone, Copy)]
struct Fused<'a> {
    bias: &'a [f32],
    relu: bool,
    pool2: bool,
}

/// The output of one sample: (rows, columns) of pixels of f values.
fn out_dims(g: &ConvGeometry, fused: Option<Fused>) -> (usize, usize) {
    match fused {
        Some(Fused { pool2: true, .. }) => (g.oh / 2, g.ow / 2),
        _ => (g.oh, g.ow),
    }
}

/// Y = A_Yᵀ M A_X for tiles [t0, t1) of `plan`'s grid: MY x MX outputs per tile from
/// M ([AY AX][t1 - t0][f], `planes` apart), written into `y` (the output of samples
/// from `s_first` on), dropping those over the edge. `fused` (AVX-512 only:
/// `avx512::output_tile`): the bias, and whether a ReLU follows, applied on the way.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transform_output<
    const MY: usize,
    const AY: usize,
    Y: Tiles<MY, AY>,
    const MX: usize,
    const AX: usize,
    X: Tiles<MX, AX>,
>(
    m: &[f32],
    g: &ConvGeometry,
    plan: &Plan,
    (t0, t1): (usize, usize),
    s_first: usize,
    y: &mut [f32],
    tmp: &mut [f32],
    fused: Option<Fused>,
) {
    let (f, tw) = (g.f, plan.grid.tiles.1);
    let (gy, gx) = plan.grid.origin;
    let plane = planes(t1 - t0, f);
    let (yh, yw) = out_dims(g, fused);
    let out_len = yh * yw * f;
    // tmp: A_Yᵀ M (MY rows of AX runs of f), then room for one row of MX outputs.
    let (s, spill) = tmp.split_at_mut(MY * AX * f);
    for t in t0..t1 {
        let (smp, local) = (t / plan.tps, t % plan.tps);
        let (ty, tx) = (local / tw, local % tw);
        let first = (t - t0) * f;
        if let Some(Fused { bias, relu, pool2 }) = fused {
            let sample = &mut y[(smp - s_first) * out_len..(smp - s_first + 1) * out_len];
            // The tile's outputs (or pooled outputs) inside the sample's (grid origins
            // are multiples of 6, so even).
            let (hy, hx, oy, ox) = match pool2 {
                true => (MY / 2, MX / 2, (gy + MY * ty) / 2, (gx + MX * tx) / 2),
                false => (MY, MX, gy + MY * ty, gx + MX * tx),
            };
            let inside = (yh.saturating_sub(oy).min(hy), yw.saturating_sub(ox).min(hx));
            if inside.0 == 0 || inside.1 == 0 {
                continue; // pooled away: the windows over the edge that 'valid' drops
            }
            let out = (oy * yw + ox) * f;
            let row_step = yw * f;
            assert!(first + (AY * AX - 1) * plane + f <= m.len() && bias.len() >= f);
            assert!(out + (inside.0 - 1) * row_step + inside.1 * f <= sample.len());
            // SAFETY: `fused` is only given on CPUs with AVX-512F; the tile's AY AX
            // points and the outputs written lie inside `m` and `sample` (asserted
            // above).
            unsafe {
                let (src, dst) = (m.as_ptr().add(first), sample.as_mut_ptr().add(out));
                let epilogue = (bias.as_ptr(), relu, pool2);
                let (to, rows) = ((dst, row_step), inside);
                avx512::output_tile::<MY, AY, Y, MX, AX, X>(src, plane, f, epilogue, rows, to);
            }
            continue;
        }
        // Down each column of the AY x AX points into s ([MY rows][AX cols][f]), ...
        for q in 0..AX {
            let (from, to) = (at(q * plane + first, AX * plane), at(q * f, AX * f));
            map_strided(m, from, s, to, f, Y::at);
        }
        let sample = &mut y[(smp - s_first) * out_len..(smp - s_first + 1) * out_len];
        let ox = gx + MX * tx;
        let wide = g.ow.saturating_sub(ox).min(MX);
        // ... then along each row into the outputs.
        for k in 0..MY {
            let oy = gy + MY * ty + k;
            if oy >= g.oh || wide == 0 {
                break;
            }
            let from = at(k * AX * f, f);
            let out = (oy * g.ow + ox) * f;
            if wide == MX {
                map_strided(s, from, sample, at(out, f), f, X::at);
            } else {
                // A tile over the right edge: all MX outputs into the spill, the ones
                // inside copied out.
                map_strided(s, from, spill, at(0, f), f, X::at);
                sample[out..out + wide * f].copy_from_slice(&spill[..wide * f]);
            }
        }
    }
}

/// The tile transforms in AVX-512 registers: all A² values of 16 channels of a tile at
/// once, each 1-D transform unrolled on whole registers. The portable loops
/// (`map_strided` over the channels of one row or column at a time) kept so many
/// pointers live that they spilled, and took a quarter of the workshop CNN's predict
/// time.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;
    use std::ops::{Add, Mul, Sub};

    use std::ops::Range;

    use super::Tiles;

    /// 16 lanes of f32 with the arithmetic `tile`'s transforms use. Its methods are
    /// only called, inlined, from the `avx512f` functions below.
    #[derive(Clone, Copy)]
    pub(in crate::device) struct V(pub(in crate::device) __m512);

    impl Add for V {
        type Output = V;
        #[inline(always)]
        fn add(self, o: V) -> V {
            // SAFETY: only reached from functions compiled for AVX-512F.
            V(unsafe { _mm512_add_ps(self.0, o.0) })
        }
    }

    impl Sub for V {
        type Output = V;
        #[inline(always)]
        fn sub(self, o: V) -> V {
            // SAFETY: as above.
            V(unsafe { _mm512_sub_ps(self.0, o.0) })
        }
    }

    impl super::tile::Value for V {
        #[inline(always)]
        fn madd(self, k: f32, x: V) -> V {
            // SAFETY: as above.
            V(unsafe { _mm512_fmadd_ps(_mm512_set1_ps(k), x.0, self.0) })
        }
    }

    impl Mul<V> for f32 {
        type Output = V;
        #[inline(always)]
        fn mul(self, o: V) -> V {
            // SAFETY: as above.
            V(unsafe { _mm512_mul_ps(_mm512_set1_ps(self), o.0) })
        }
    }

    /// The lanes of the 16 channels from j0 on that exist (c - j0 of them, at most 16).
    #[inline(always)]
    fn lanes(c: usize, j0: usize) -> __mmask16 {
        let n = (c - j0).min(16);
        if n == 16 {
            0xffff
        } else {
            (1u16 << n) - 1
        }
    }

    /// V = B_Yᵀ d B_X of one tile into `dst`, its slot in the first of the AY AX planes
    /// that lie `plane` apart. Its AY x AX patch has its top left at (y0, x0) (possibly
    /// over the edge) of `sample`, an image `w` pixels wide of `c` channels; patch rows
    /// and columns outside `inside` read as zeros (padding, or past the image's end).
    ///
    /// # Safety
    /// AVX-512F; `inside` holds only patch positions inside the image; the AY AX slots
    /// of c values at `dst` are valid.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_tile<
        const MY: usize,
        const AY: usize,
        Y: Tiles<MY, AY>,
        const MX: usize,
        const AX: usize,
        X: Tiles<MX, AX>,
    >(
        sample: &[f32],
        anchor: (isize, isize, usize),
        c: usize,
        (rows, cols): (Range<usize>, Range<usize>),
        dst: *mut f32,
        plane: usize,
    ) {
        let inside = (rows, cols);
        if inside == (0..AY, 0..AX) {
            input_tile_in::<MY, AY, Y, MX, AX, X, false>(sample, anchor, c, inside, dst, plane)
        } else {
            input_tile_in::<MY, AY, Y, MX, AX, X, true>(sample, anchor, c, inside, dst, plane)
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn input_tile_in<
        const MY: usize,
        const AY: usize,
        Y: Tiles<MY, AY>,
        const MX: usize,
        const AX: usize,
        X: Tiles<MX, AX>,
        const EDGE: bool,
    >(
        sample: &[f32],
        (y0, x0, w): (isize, isize, usize),
        c: usize,
        (rows, cols): (Range<usize>, Range<usize>),
        dst: *mut f32,
        plane: usize,
    ) {
        let first = (y0 * w as isize + x0) * c as isize;
        let (row_step, src) = (w * c, sample.as_ptr());
        for j0 in (0..c).step_by(16) {
            let k = lanes(c, j0);
            // The middle step in L1, read and written value by value: whole arrays of
            // A² registers were zeroed and copied with memset and memcpy (F(6x6)).
            let mut mid = MaybeUninit::<[[__m512; AX]; AY]>::uninit();
            let mid = mid.as_mut_ptr() as *mut __m512;
            for q in 0..AX {
                let mut col = [V(_mm512_setzero_ps()); AY];
                for (r, d) in col.iter_mut().enumerate() {
                    if !EDGE || (rows.contains(&r) && cols.contains(&q)) {
                        let at = first + (r * row_step + q * c + j0) as isize;
                        debug_assert!(at >= 0 && at as usize + (c - j0).min(16) <= sample.len());
                        *d = V(_mm512_maskz_loadu_ps(k, src.offset(at)));
                    }
                }
                let out = Y::bt(col);
                for (r, d) in out.iter().enumerate() {
                    mid.add(r * AX + q).write(d.0);
                }
            }
            for r in 0..AY {
                let mut row = [V(_mm512_setzero_ps()); AX];
                for (q, d) in row.iter_mut().enumerate() {
                    *d = V(mid.add(r * AX + q).read());
                }
                let out = X::bt(row);
                for (q, d) in out.iter().enumerate() {
                    _mm512_mask_storeu_ps(dst.add((r * AX + q) * plane + j0), k, d.0);
                }
            }
        }
    }

    /// Y = A_Yᵀ M A_X of one tile: its AY AX points at `m` (planes `plane` apart) into
    /// `dst` (pixels `f` apart, rows `row_step` apart), plus the bias, then with `relu`
    /// max(0, ·); with `pool2` the max of each 2x2 window of the MY x MX outputs
    /// instead of the outputs (before the bias and ReLU, which commute with it).
    /// `inside`: the (rows, columns) of outputs, or of windows, to write.
    ///
    /// # Safety
    /// AVX-512F; the AY AX points of f values, the f biases and the outputs are valid.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_tile<
        const MY: usize,
        const AY: usize,
        Y: Tiles<MY, AY>,
        const MX: usize,
        const AX: usize,
        X: Tiles<MX, AX>,
    >(
        m: *const f32,
        plane: usize,
        f: usize,
        (bias, relu, pool2): (*const f32, bool, bool),
        (rows, cols): (usize, usize),
        (dst, row_step): (*mut f32, usize),
    ) {
        for j0 in (0..f).step_by(16) {
            let k = lanes(f, j0);
            // Both steps' results in L1, as in `input_tile_in`.
            let mut mid = MaybeUninit::<[[__m512; AX]; MY]>::uninit();
            let mid = mid.as_mut_ptr() as *mut __m512;
            for q in 0..AX {
                let mut col = [V(_mm512_setzero_ps()); AY];
                for (r, d) in col.iter_mut().enumerate() {
                    *d = V(_mm512_maskz_loadu_ps(k, m.add((r * AX + q) * plane + j0)));
                }
                let out = Y::at(col);
                for (i, d) in out.iter().enumerate() {
                    mid.add(i * AX + q).write(d.0);
                }
            }
            // The second step row by row, each row's outputs (or with `pool2` each pair
            // of rows' windows) finished and stored from registers: kept in an array
            // for a pass of their own, they cost a store and a load each.
            let row = |i: usize| {
                let r: [V; AX] = std::array::from_fn(|q| V(mid.add(i * AX + q).read()));
                X::at(r)
            };
            let b = _mm512_maskz_loadu_ps(k, bias.add(j0));
            let finish = |v: __m512| {
                let v = _mm512_add_ps(v, b);
                if relu {
                    _mm512_max_ps(v, _mm512_setzero_ps())
                } else {
                    v
                }
            };
            for i in 0..rows {
                let at = dst.add(i * row_step + j0);
                if pool2 {
                    let (top, bottom) = (row(2 * i), row(2 * i + 1));
                    for x in 0..cols {
                        let t = _mm512_max_ps(top[2 * x].0, top[2 * x + 1].0);
                        let b = _mm512_max_ps(bottom[2 * x].0, bottom[2 * x + 1].0);
                        _mm512_mask_storeu_ps(at.add(x * f), k, finish(_mm512_max_ps(t, b)));
                    }
                } else {
                    let o = row(i);
                    for (x, v) in o.iter().enumerate().take(cols) {
                        _mm512_mask_storeu_ps(at.add(x * f), k, finish(v.0));
                    }
                }
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    pub(super) unsafe fn input_tile<
        const MY: usize,
        const AY: usize,
        Y: super::Tiles<MY, AY>,
        const MX: usize,
        const AX: usize,
        X: super::Tiles<MX, AX>,
    >(
        _: &[f32],
        _: (isize, isize, usize),
        _: usize,
        _: (std::ops::Range<usize>, std::ops::Range<usize>),
        _: *mut f32,
        _: usize,
    ) {
        unreachable!("AVX-512 only on x86-64")
    }
    pub(super) unsafe fn output_tile<
        const MY: usize,
        const AY: usize,
        Y: super::Tiles<MY, AY>,
        const MX: usize,
        const AX: usize,
        X: super::Tiles<MX, AX>,
    >(
        _: *const f32,
        _: usize,
        _: usize,
        _: (*const f32, bool, bool),
        _: (usize, usize),
        _: (*mut f32, usize),
    ) {
        unreachable!("AVX-512 only on x86-64")
    }
}

/// Whether the CPU runs the `avx512` tile transforms (tests also run the portable ones
/// on such CPUs, through the `fast` arguments).
fn fast_tiles() -> bool {
    avx512_cpu()
}

/// Whether the CPU has AVX-512F.
fn avx512_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// dM = A dY Aᵀ for tiles [t0, t1) from the output gradient `gz` (samples from
/// `s_first` on), zeros over the edge, into `dm` ([A²][t1 - t0][f], `planes` apart); `tmp` holds
/// A * M * f values and then M² f for the patch of a tile over the edge.
#[inline(always)]
fn transform_output_grad(
    gz: &[f32],
    g: &ConvGeometry,
    plan: &Plan,
    (t0, t1): (usize, usize),
    s_first: usize,
    dm: &mut [f32],
    tmp: &mut [f32],
) {
    let (f, tw) = (g.f, g.ow.div_ceil(M));
    let plane = planes(t1 - t0, f);
    let out_len = g.oh * g.ow * f;
    let (mid, patch) = tmp.split_at_mut(A * M * f);
    for t in t0..t1 {
        let (s, local) = (t / plan.tps, t % plan.tps);
        let (ty, tx) = (local / tw, local % tw);
        let sample = &gz[(s - s_first) * out_len..(s - s_first + 1) * out_len];
        let (oy0, ox0) = (M * ty, M * tx);
        let (src, first, row_step): (&[f32], usize, usize) = if oy0 + M <= g.oh && ox0 + M <= g.ow {
            (sample, (oy0 * g.ow + ox0) * f, g.ow * f)
        } else {
            let corner = (oy0 as isize, ox0 as isize);
            gather(sample, (g.oh, g.ow, f), corner, (M, M), patch);
            (&*patch, 0, M * f)
        };
        // A dY down each column into mid ([A rows][M cols][f]), ...
        for q in 0..M {
            let (from, to) = (at(first + q * f, row_step), at(q * f, M * f));
            map_strided(src, from, mid, to, f, tile::a);
        }
        // ... then along each row into the A² planes.
        for r in 0..A {
            let (from, to) = (at(r * M * f, f), at(r * A * plane + (t - t0) * f, plane));
            map_strided(mid, from, dm, to, f, tile::a);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Convolutions.

/// Scratch of one worker: V and M of a block, and the transforms' small buffers.
struct Scratch {
    v: Vec<f32>,
    m: Vec<f32>,
    tmp: Vec<f32>,
}

impl Scratch {
    /// Room for the blocks of any of `plans`.
    fn new(g: &ConvGeometry, plans: &[Plan], v: bool) -> Scratch {
        let most = |len: &dyn Fn(&Plan) -> usize| plans.iter().map(len).max().unwrap_or(0);
        Scratch {
            v: if v {
                pool::scratch(most(&|p| p.points * planes(p.block, g.c)))
            } else {
                Vec::new()
            },
            m: pool::scratch(most(&|p| p.points * planes(p.block, g.f))),
            // The largest transform scratch: the input's middle step and edge patch.
            tmp: vec![0.0; 2 * most(&|p| p.points) * g.c.max(g.f)],
        }
    }

    fn give(self) {
        pool::give(self.v);
        pool::give(self.m);
    }
}

with_avx512!(
    forward_unit,
    forward_unit_body(
        x: &[f32],
        u: &TransformedKernel,
        g: &ConvGeometry,
        plans: &[Plan],
        epilogue: Epilogue,
        modes: (bool, bool),
        samples: (usize, usize),
        y: &mut [f32],
        keep: Option<&mut [f32]>,
    )
);

/// The output of samples [s0, s1) into `y`, grid by grid (`plans`: one per grid of
/// `u`), their V into `keep` when given (F(4x4, 3x3) tiles only); with `pool2`
/// (AVX-512 and a linear or ReLU activation only) its 2x2 max pooling; `fast`: the
/// AVX-512 transforms (decided once per batch by the caller).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_unit_body(
    x: &[f32],
    u: &TransformedKernel,
    g: &ConvGeometry,
    plans: &[Plan],
    epilogue: Epilogue,
    (pool2, fast): (bool, bool),
    (s0, s1): (usize, usize),
    y: &mut [f32],
    mut keep: Option<&mut [f32]>,
) {
    let (c, f) = (g.c, g.f);
    let mut sc = Scratch::new(g, plans, keep.is_none());
    // Bias and a linear or ReLU activation go into the output transform; others run
    // over the unit's output afterwards.
    let no_bias;
    let fused = match epilogue.act {
        Activation::Linear | Activation::Relu if fast => {
            let bias = match epilogue.bias {
                Some(b) => b,
                None => {
                    no_bias = vec![0.0f32; f];
                    &no_bias
                }
            };
            let relu = matches!(epilogue.act, Activation::Relu);
            Some(Fused { bias, relu, pool2 })
        }
        _ => None,
    };
    assert!(
        !pool2 || fused.is_some(),
        "pooled Winograd output without AVX-512"
    );
    assert!(
        keep.is_none() || u.is_f4(g),
        "V is kept in F(4x4, 3x3) tiles only"
    );
    for ((grid, points), plan) in u.grids.iter().zip(plans) {
        let (pts, first) = (points.len(), s0 * plan.tps);
        for (t0, t1) in plan.blocks(s0, s1) {
            let n = t1 - t0;
            // Kept V is packed tight (the kernel gradient reads it by block).
            let (v, vs): (&mut [f32], usize) = match keep.as_deref_mut() {
                Some(k) => (&mut k[(t0 - first) * P * c..(t1 - first) * P * c], n * c),
                None => (&mut sc.v[..pts * planes(n, c)], planes(n, c)),
            };
            let (block, tmp) = ((t0, t1), &mut sc.tmp);
            let v_out = (&mut *v, vs);
            by_tiles!(
                grid.kind,
                transform_input(x, g, plan, block, v_out, tmp, fast)
            );
            let ms = planes(n, f);
            let m = &mut sc.m[..pts * ms];
            for (p, up) in points.iter().enumerate() {
                let (vp, mp) = (&v[p * vs..p * vs + n * c], &mut m[p * ms..p * ms + n * f]);
                sgemm_packed(n, vp, up, mp);
            }
            by_tiles!(
                grid.kind,
                transform_output(m, g, plan, block, s0, y, tmp, fused)
            );
        }
    }
    if fused.is_none() {
        epilogue.apply(y, f);
    }
    sc.give();
}

/// y (n, oh, ow, f) = act(conv(x, kernel) + bias) with the kernel already transformed
/// (`prepare_kernel`); `keep` receives V for the kernel gradient (`kept_len` floats).
pub fn conv2d_forward(
    x: &[f32],
    u: &TransformedKernel,
    g: &ConvGeometry,
    epilogue: Epilogue,
    keep: Option<&mut [f32]>,
) -> Vec<f32> {
    forward_batch(x, u, g, epilogue, (false, fast_tiles()), keep)
}

/// max_pool(act(conv(x, kernel) + bias)) for inference with `pg` a 2x2 max pooling of
/// stride 2 ('valid'), pooled in the output transform (the convolution's output is
/// never stored; its tiles stop at the last row and column the windows read); `None`
/// where that path does not apply (another pooling or activation, or no AVX-512), for
/// the caller's general path.
pub fn conv2d_max_pool_forward(
    x: &[f32],
    kernel: &[f32],
    g: &ConvGeometry,
    epilogue: Epilogue,
    pg: &Pool2d,
) -> Option<Vec<f32>> {
    let pool2 = pools_2x2(g, pg);
    let act = matches!(epilogue.act, Activation::Linear | Activation::Relu);
    let fast = fast_tiles();
    (pool2 && act && fast).then(|| {
        let u = prepare_inference_kernel(kernel, g, (2 * pg.oh, 2 * pg.ow));
        forward_batch(x, &u, g, epilogue, (true, fast), None)
    })
}

/// `conv2d_forward`, or with `pool2` its 2x2 max pooling (`conv2d_max_pool_forward`,
/// only with `fast`: the AVX-512 transforms).
fn forward_batch(
    x: &[f32],
    u: &TransformedKernel,
    g: &ConvGeometry,
    epilogue: Epilogue,
    (pool2, fast): (bool, bool),
    keep: Option<&mut [f32]>,
) -> Vec<f32> {
    let plans = u.plans(g);
    // Units of samples that every grid's blocks fit in.
    let spu = plans.iter().map(|p| p.spu).min().unwrap_or(1).max(1);
    let out_len = if pool2 {
        (g.oh / 2) * (g.ow / 2) * g.f
    } else {
        g.oh * g.ow * g.f
    };
    let mut y = pool::scratch(g.n * out_len);
    let v_len = plans[0].tps * P * g.c;
    let unit = |i: usize, y: &mut [f32], keep: Option<&mut [f32]>| {
        let s0 = i * spu;
        let s1 = (s0 + spu).min(g.n);
        forward_unit(x, u, g, &plans, epilogue, (pool2, fast), (s0, s1), y, keep);
    };
    let (y_step, v_step) = (spu * out_len, spu * v_len);
    match keep {
        Some(k) if top_level() && g.n > spu => crate::threads::install(|| {
            y.par_chunks_mut(y_step)
                .zip(k.par_chunks_mut(v_step))
                .enumerate()
                .for_each(|(i, (y, k))| unit(i, y, Some(k)))
        }),
        Some(k) => y
            .chunks_mut(y_step)
            .zip(k.chunks_mut(v_step))
            .enumerate()
            .for_each(|(i, (y, k))| unit(i, y, Some(k))),
        None if top_level() && g.n > spu => crate::threads::install(|| {
            y.par_chunks_mut(y_step)
                .enumerate()
                .for_each(|(i, y)| unit(i, y, None))
        }),
        None => y
            .chunks_mut(y_step)
            .enumerate()
            .for_each(|(i, y)| unit(i, y, None)),
    }
    y
}

/// The convolution whose output is the input gradient: the output gradient (oh, ow, f)
/// convolved with the kernel flipped in both axes, channels swapped, padded by 2 - pad.
fn input_grad_geometry(g: &ConvGeometry) -> ConvGeometry {
    ConvGeometry {
        h: g.oh,
        w: g.ow,
        c: g.f,
        f: g.c,
        pad_top: 2usize.saturating_sub(g.pad_top),
        pad_left: 2usize.saturating_sub(g.pad_left),
        oh: g.h,
        ow: g.w,
        ..*g
    }
}

/// dx (n, h, w, c) from gz, the gradient before the activation (n, oh, ow, f).
pub fn conv2d_input_grad(gz: &[f32], kernel: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let gt = input_grad_geometry(g);
    // K'[ky][kx][f][c] = K[2 - ky][2 - kx][c][f].
    let (c, f) = (g.c, g.f);
    let mut flipped = pool::scratch(9 * c * f);
    for t in 0..9 {
        let src = &kernel[(8 - t) * c * f..(9 - t) * c * f];
        let dst = &mut flipped[t * c * f..(t + 1) * c * f];
        for ci in 0..c {
            for fi in 0..f {
                dst[fi * c + ci] = src[ci * f + fi];
            }
        }
    }
    let u = prepare_kernel(&flipped, &gt);
    pool::give(flipped);
    conv2d_forward(gz, &u, &gt, Epilogue::NONE, None)
}

with_avx512!(
    kernel_grad_unit,
    kernel_grad_unit_body(
        x: &[f32],
        gz: &[f32],
        kept: Option<&[f32]>,
        g: &ConvGeometry,
        plan: &Plan,
        samples: (usize, usize),
        du: &mut [f32],
        fresh: bool,
        fast: bool,
    )
);

/// dU of samples [s0, s1), accumulated into `du` ([P][c][f]; overwritten by the first
/// block when `fresh`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn kernel_grad_unit_body(
    x: &[f32],
    gz: &[f32],
    kept: Option<&[f32]>,
    g: &ConvGeometry,
    plan: &Plan,
    (s0, s1): (usize, usize),
    du: &mut [f32],
    mut fresh: bool,
    fast: bool,
) {
    let (c, f) = (g.c, g.f);
    let mut sc = Scratch::new(g, std::slice::from_ref(plan), kept.is_none());
    for (t0, t1) in plan.blocks(s0, s1) {
        let n = t1 - t0;
        let (v, vs): (&[f32], usize) = match kept {
            Some(k) => (&k[t0 * P * c..t1 * P * c], n * c),
            None => {
                let vs = planes(n, c);
                let v = &mut sc.v[..P * vs];
                let tmp = &mut sc.tmp;
                let (block, v_out) = ((t0, t1), (v, vs));
                transform_input::<M, A, F4, M, A, F4>(x, g, plan, block, v_out, tmp, fast);
                (&sc.v[..P * vs], vs)
            }
        };
        let ms = planes(n, f);
        let dm = &mut sc.m[..P * ms];
        transform_output_grad(gz, g, plan, (t0, t1), 0, dm, &mut sc.tmp);
        let beta = if fresh { 0.0 } else { 1.0 };
        for p in 0..P {
            crate::gemm::sgemm(
                true,
                false,
                c,
                f,
                n,
                1.0,
                &v[p * vs..p * vs + n * c],
                &dm[p * ms..p * ms + n * f],
                beta,
                &mut du[p * c * f..(p + 1) * c * f],
            );
        }
        fresh = false;
    }
    sc.give();
}

/// dkernel (3, 3, c, f) from the input (or the V kept by the forward pass) and gz, the
/// gradient before the activation (n, oh, ow, f).
pub fn conv2d_kernel_grad(
    x: &[f32],
    gz: &[f32],
    kept: Option<&[f32]>,
    g: &ConvGeometry,
) -> Vec<f32> {
    kernel_grad_with(x, gz, kept, g, fast_tiles())
}

/// `conv2d_kernel_grad`; `fast`: the AVX-512 input transform.
fn kernel_grad_with(
    x: &[f32],
    gz: &[f32],
    kept: Option<&[f32]>,
    g: &ConvGeometry,
    fast: bool,
) -> Vec<f32> {
    let plan = Plan::new(g);
    let units = g.n.div_ceil(plan.spu);
    let cf = g.c * g.f;
    // At the top level each thread sums a contiguous run of units, in a fixed order so
    // that the result does not depend on scheduling.
    let parts = if top_level() {
        crate::threads::count().min(units)
    } else {
        1
    }
    .max(1);
    let mut du = pool::scratch(parts * P * cf);
    crate::threads::for_each_chunk(&mut du, P * cf, |i, du| {
        let (u0, u1) = (units * i / parts, units * (i + 1) / parts);
        let (s0, s1) = (u0 * plan.spu, (u1 * plan.spu).min(g.n));
        if s0 >= s1 {
            du.fill(0.0);
            return;
        }
        kernel_grad_unit(x, gz, kept, g, &plan, (s0, s1), du, true, fast);
    });
    let (total, rest) = du.split_at_mut(P * cf);
    for part in rest.chunks_exact(P * cf) {
        total.iter_mut().zip(part).for_each(|(t, v)| *t += v);
    }
    let dk = untransform_kernel_grad(total, g.c, g.f);
    pool::give(du);
    dk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu_conv::{self, ConvBackward};
    use crate::ops::activation::Activation;
    use crate::ops::conv::{ConvSpec, Padding};
    use crate::ops::gradcheck::random_tensor;

    fn geometry(shape: [usize; 4], f: usize, padding: Padding) -> ConvGeometry {
        let spec = ConvSpec {
            kernel: (3, 3),
            strides: (1, 1),
            dilation: (1, 1),
            padding,
        };
        spec.geometry(&shape, f).unwrap()
    }

    /// Largest |a - b| relative to the largest |b|.
    fn rel_err(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        let diff = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        diff / scale
    }

    /// (input shape, filters, padding): odd and even sizes (partial tiles on the edge),
    /// both paddings, the workshop CNN's second convolution, and an image big enough
    /// that one sample is cut into several blocks.
    fn cases() -> Vec<([usize; 4], usize, Padding)> {
        vec![
            ([3, 13, 13, 32], 64, Padding::Valid),
            ([2, 8, 10, 16], 16, Padding::Same),
            ([2, 7, 6, 20], 17, Padding::Same),
            ([1, 5, 9, 16], 24, Padding::Valid),
            ([1, 80, 72, 16], 16, Padding::Same),
            ([2, 14, 14, 128], 32, Padding::Same),
        ]
    }

    #[test]
    fn cuts_take_the_fewest_points() {
        let cut = |six, four| Cut { six, four };
        // The pooled 10 outputs of the workshop CNN's 11x11 map: 6 + 4.
        assert_eq!(Cut::fewest_points(10), cut(1, 1));
        assert_eq!(Cut::fewest_points(11), cut(2, 0));
        assert_eq!(Cut::fewest_points(12), cut(2, 0));
        // 4 + 4 (12 points) against 6 + 4 (14): F(4, 3) alone.
        assert_eq!(Cut::fewest_points(7), cut(0, 2));
        assert_eq!(Cut::fewest_points(8), cut(0, 2));
        assert_eq!(Cut::fewest_points(3), cut(0, 1));
        // 6 + 4 + 4 (20 points) against 6 + 6 + 6 (24) or 4 x 4 (24).
        assert_eq!(Cut::fewest_points(14), cut(1, 2));
        assert_eq!(Cut::fewest_points(28), cut(4, 1));
        for len in 1..60 {
            let c = Cut::fewest_points(len);
            assert!(6 * c.six + 4 * c.four >= len, "{len}: {c:?}");
            assert!(c.points() <= Cut::f4(len).points(), "{len}: {c:?}");
        }
        let grids = Grid::of_cuts(cut(1, 1), cut(0, 2));
        let kinds: Vec<_> = grids.iter().map(|g| (g.kind, g.origin, g.tiles)).collect();
        assert_eq!(
            kinds,
            [
                ((Var::F6, Var::F4), (0, 0), (1, 2)),
                ((Var::F4, Var::F4), (6, 0), (1, 2))
            ]
        );
    }

    #[test]
    fn recent_inference_kernels_are_reused_only_for_the_same_values() {
        let g = geometry([2, 11, 11, 19], 23, Padding::Valid);
        let k = random_tensor(&[3, 3, 19, 23], 21, 0.3);
        // Tests run in parallel and fill the same list: a second call right after the
        // first finds its entry unless eight others came in between, so one of three
        // tries must.
        let reused = (0..3).any(|_| {
            let a = prepare_inference_kernel(k.host(), &g, (g.oh, g.ow));
            Arc::ptr_eq(&a, &prepare_inference_kernel(k.host(), &g, (g.oh, g.ow)))
        });
        assert!(reused);
        // Other grids (the 9x9 output's 6 + 4 tiles against 4 + 4 for the first 8 rows
        // and columns), or one weight changed: a new transform.
        let a = prepare_inference_kernel(k.host(), &g, (g.oh, g.ow));
        let pooled = prepare_inference_kernel(k.host(), &g, (8, 8));
        assert_eq!(
            prepare_inference_kernel(k.host(), &g, (0, 9)).grids.len(),
            1
        );
        assert!(!Arc::ptr_eq(&a, &pooled));
        // The same values as a kernel of 23 inputs and 19 outputs: another transform.
        let g_swapped = geometry([2, 11, 11, 23], 19, Padding::Valid);
        let swapped = prepare_inference_kernel(k.host(), &g_swapped, (g.oh, g.ow));
        assert!(!Arc::ptr_eq(&a, &swapped));
        let mut changed = k.host().to_vec();
        changed[100] += 1e-3;
        let c = prepare_inference_kernel(&changed, &g, (g.oh, g.ow));
        assert!(!Arc::ptr_eq(&a, &c));
        let x = random_tensor(&[2, 11, 11, 19], 22, 1.0);
        let want = cpu_conv::im2col_forward(x.host(), &changed, &g, Epilogue::NONE, false).y;
        let got = conv2d_forward(x.host(), &c, &g, Epilogue::NONE, None);
        assert!(rel_err(&got, &want) < 2e-5);
        let recent = RECENT.lock().unwrap();
        assert!(recent.len() <= RECENT_KERNELS);
    }

    #[test]
    fn inference_tiles_match_im2col_where_they_are_chosen() {
        // Maps where F(6, 3) tiles need fewer products than F(4, 3)'s along either axis,
        // up to its channel limit; a 7x7 map (4 + 4 either way, 8 + 8 points against
        // 6 + 6) keeps F(4x4).
        use Var::{F4 as V4, F6 as V6};
        let cases = [
            ([3, 13, 13, 32], 64, Padding::Valid, vec![(V6, V6)]),
            ([2, 12, 12, 16], 20, Padding::Same, vec![(V6, V6)]),
            (
                [2, 9, 10, 64],
                16,
                Padding::Same,
                vec![(V6, V6), (V6, V4), (V4, V6), (V4, V4)],
            ),
            (
                [3, 12, 10, 24],
                20,
                Padding::Valid,
                vec![(V6, V4), (V4, V4)],
            ),
            ([2, 7, 7, 16], 16, Padding::Same, vec![(V4, V4)]),
            ([2, 13, 13, 128], 16, Padding::Valid, vec![(V4, V4)]),
        ];
        for (shape, f, padding, kinds) in cases {
            let g = geometry(shape, f, padding);
            let x = random_tensor(&shape, 11, 1.0);
            let k = random_tensor(&[3, 3, shape[3], f], 12, 0.3);
            let bias = random_tensor(&[f], 13, 0.5);
            let u = prepare_inference_kernel(k.host(), &g, (g.oh, g.ow));
            let got: Vec<_> = u.grids.iter().map(|(grid, _)| grid.kind).collect();
            assert_eq!(got, kinds, "{shape:?}");
            let z = cpu_conv::im2col_forward(x.host(), k.host(), &g, Epilogue::NONE, false).y;
            let scale = z.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for act in [Activation::Linear, Activation::Relu, Activation::Tanh] {
                let epi = Epilogue {
                    bias: Some(bias.host()),
                    act,
                };
                let want = cpu_conv::im2col_forward(x.host(), k.host(), &g, epi, false).y;
                let got = conv2d_forward(x.host(), &u, &g, epi, None);
                let diff = got
                    .iter()
                    .zip(&want)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                println!(
                    "{shape:?} {padding:?} {act:?} {kinds:?}: {:e}",
                    diff / scale
                );
                assert!(
                    diff / scale < 2e-5,
                    "{shape:?} {padding:?} {act:?}: {}",
                    diff / scale
                );
            }
        }
    }

    #[test]
    fn plans_cut_big_images_into_several_blocks_per_sample() {
        let g = geometry([1, 80, 72, 16], 16, Padding::Same);
        let plan = Plan::new(&g);
        assert!(plan.tps > plan.block && plan.spu == 1);
        let g = geometry([64, 13, 13, 32], 64, Padding::Valid);
        assert!(Plan::new(&g).spu > 1);
    }

    #[test]
    fn forward_matches_im2col() {
        for (shape, f, padding) in cases() {
            let g = geometry(shape, f, padding);
            assert!(applies(&g));
            let x = random_tensor(&shape, 1, 1.0);
            let k = random_tensor(&[3, 3, shape[3], f], 2, 0.3);
            let bias = random_tensor(&[f], 3, 0.5);
            // Errors are measured against the largest pre-activation value (tanh
            // squashes the outputs, not the error of what goes into it).
            let z = cpu_conv::im2col_forward(x.host(), k.host(), &g, Epilogue::NONE, false).y;
            let scale = z.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for act in [Activation::Linear, Activation::Relu, Activation::Tanh] {
                let epi = Epilogue {
                    bias: Some(bias.host()),
                    act,
                };
                let want = cpu_conv::im2col_forward(x.host(), k.host(), &g, epi, false);
                let got = cpu_conv::conv2d_forward(x.host(), k.host(), &g, epi, true);
                let diff = got
                    .y
                    .iter()
                    .zip(&want.y)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                let err = diff / scale;
                println!("{shape:?} {padding:?} {act:?} y: {err:e}");
                assert!(err < 2e-5, "{shape:?} {padding:?} {act:?}: {err}");
                assert_eq!(got.cols.unwrap().len(), kept_len(&g));
            }
        }
    }

    #[test]
    fn portable_and_avx512_transforms_agree() {
        // Both sides run the same sums in the same order, the AVX-512 side with fused
        // multiply-adds: equal to within the transforms' rounding (about 1e-5 of the
        // largest value, as against im2col above).
        let f = 40;
        for (shape, padding) in [
            ([5, 13, 13, 24], Padding::Valid),
            ([5, 12, 12, 24], Padding::Same),
            ([5, 12, 12, 24], Padding::Valid),
        ] {
            let g = geometry(shape, f, padding);
            let x = random_tensor(&shape, 7, 1.0);
            let k = random_tensor(&[3, 3, shape[3], f], 8, 0.3);
            let bias = random_tensor(&[f], 9, 0.5);
            let gy = random_tensor(&[g.n, g.oh, g.ow, f], 10, 1.0);
            let epi = Epilogue {
                bias: Some(bias.host()),
                act: Activation::Relu,
            };
            // F(4x4) tiles, and the inference ones: F(6x6) on the 11x11 and 12x12
            // outputs, F(6, 3) and F(4, 3) mixed on the 10x10 one.
            let (u4, u6) = (
                prepare_kernel(k.host(), &g),
                prepare_inference_kernel(k.host(), &g, (g.oh, g.ow)),
            );
            assert!(!u6.is_f4(&g));
            let run = |fast: bool| {
                let y4 = forward_batch(x.host(), &u4, &g, epi, (false, fast), None);
                let y6 = forward_batch(x.host(), &u6, &g, epi, (false, fast), None);
                let dk = kernel_grad_with(x.host(), gy.host(), None, &g, fast);
                (y4, y6, dk)
            };
            let ((a4, a6, adk), (b4, b6, bdk)) = (run(false), run(true));
            for (a, b) in [(a4, b4), (a6, b6), (adk, bdk)] {
                let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (a, b) in a.iter().zip(&b) {
                    assert!((a - b).abs() <= 2e-5 * scale, "{padding:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn backward_matches_im2col() {
        for (shape, f, padding) in cases() {
            let g = geometry(shape, f, padding);
            assert!(applies_to_input_grad(&g));
            let x = random_tensor(&shape, 4, 1.0);
            let k = random_tensor(&[3, 3, shape[3], f], 5, 0.3);
            let gy = random_tensor(&[g.n, g.oh, g.ow, f], 6, 1.0);
            for act in [Activation::Linear, Activation::Relu] {
                let epi = Epilogue { bias: None, act };
                let fwd = cpu_conv::conv2d_forward(x.host(), k.host(), &g, epi, true);
                let b = ConvBackward {
                    x: x.host(),
                    kernel: k.host(),
                    y: &fwd.y,
                    gy: gy.host(),
                    act,
                    cols: None,
                };
                let all = (true, true, true);
                let (dx0, dk0, db0) = cpu_conv::im2col_backward(&b, &g, all);
                let (dx1, dk1, db1) = cpu_conv::conv2d_backward(&b, &g, all);
                // The kernel gradient from V kept by the forward pass, as rebuilt.
                let kept = ConvBackward {
                    cols: fwd.cols.as_deref(),
                    ..b
                };
                let (_, dk2, _) = cpu_conv::conv2d_backward(&kept, &g, (false, true, false));
                let (dx0, dk0) = (dx0.unwrap(), dk0.unwrap());
                let (dx1, dk1) = (dx1.unwrap(), dk1.unwrap());
                let (ex, ek) = (rel_err(&dx1, &dx0), rel_err(&dk1, &dk0));
                println!("{shape:?} {padding:?} {act:?} dx: {ex:e} dk: {ek:e}");
                assert!(ex < 2e-5, "{shape:?} {padding:?} {act:?} dx: {ex}");
                assert!(ek < 2e-5, "{shape:?} {padding:?} {act:?} dk: {ek}");
                assert_eq!(dk1, dk2.unwrap());
                assert!(rel_err(&db1.unwrap(), &db0.unwrap()) < 1e-6);
            }
        }
    }

    #[test]
    fn top_level_threads_give_the_same_results() {
        // At the top level (with more than one thread in the engine's pool) the batch is
        // split across threads; inside a pool worker it runs on one. Both must agree.
        let (shape, f) = ([7, 13, 13, 32], 64);
        let g = geometry(shape, f, Padding::Valid);
        let x = random_tensor(&shape, 7, 1.0);
        let k = random_tensor(&[3, 3, 32, f], 8, 0.3);
        let gz = random_tensor(&[g.n, g.oh, g.ow, f], 9, 1.0);
        let run = || {
            let u = prepare_kernel(k.host(), &g);
            let mut kept = vec![0.0; kept_len(&g)];
            let y = conv2d_forward(x.host(), &u, &g, Epilogue::NONE, Some(&mut kept));
            let dk = conv2d_kernel_grad(x.host(), gz.host(), None, &g);
            let dk_kept = conv2d_kernel_grad(x.host(), gz.host(), Some(&kept), &g);
            let dx = conv2d_input_grad(gz.host(), k.host(), &g);
            (y, dk, dk_kept, dx)
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let serial = pool.install(run);
        let parallel = run();
        assert_eq!(serial.0, parallel.0);
        assert_eq!(serial.3, parallel.3);
        assert!(rel_err(&serial.1, &parallel.1) < 1e-6);
        assert_eq!(parallel.1, parallel.2);
    }
}
