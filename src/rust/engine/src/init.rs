//! Weight initialisers (Keras 3's `keras.initializers`).

use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    RandomUniform,
    RandomNormal,
    Orthogonal,
}

impl Initializer {
    pub const NAMES: [&'static str; 11] = [
        "zeros",
        "ones",
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
        "random_uniform",
        "random_normal",
        "orthogonal",
    ];

    pub fn from_name(name: &str) -> Result<Initializer> {
        use Initializer::*;
        Ok(match name {
            "zeros" | "zero" => Zeros,
            "ones" | "one" => Ones,
            "glorot_uniform" => GlorotUniform,
            "glorot_normal" => GlorotNormal,
            "he_uniform" => HeUniform,
            "he_normal" => HeNormal,
            "lecun_uniform" => LecunUniform,
            "lecun_normal" => LecunNormal,
            "random_uniform" | "uniform" => RandomUniform,
            "random_normal" | "normal" => RandomNormal,
            "orthogonal" => Orthogonal,
            _ => {
                return Err(Error::UnknownName {
                    kind: "initializer",
                    name: name.into(),
                    known: Self::NAMES.to_vec(),
                })
            }
        })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Values for a weight of `shape`; fans follow Keras's `compute_fans`.
    pub fn sample(self, shape: &[usize], rng: &mut impl Rng) -> Vec<f32> {
        use Initializer::*;
        let n: usize = shape.iter().product();
        let (fan_in, fan_out) = fans(shape);
        // VarianceScaling: (scale, fan) per initialiser.
        let variance = |scale: f64, fan: f64| scale / fan.max(1.0);
        let uniform = |limit: f64, rng: &mut dyn rand::RngCore| {
            let d = Uniform::new_inclusive(-limit as f32, limit as f32);
            (0..n).map(|_| d.sample(rng)).collect::<Vec<f32>>()
        };
        // Keras draws variance-scaling normals from a normal truncated at 2 sd, with the
        // sd corrected so the truncated distribution keeps the wanted variance.
        let truncated = |stddev: f64, rng: &mut dyn rand::RngCore| {
            let d = Normal::new(0.0f64, stddev).expect("finite stddev");
            (0..n)
                .map(|_| loop {
                    let v = d.sample(rng);
                    if v.abs() <= 2.0 * stddev {
                        break v as f32;
                    }
                })
                .collect::<Vec<f32>>()
        };
        const TRUNC: f64 = 0.879_625_661_034_239_8;
        let avg = (fan_in + fan_out) / 2.0;
        match self {
            Zeros => vec![0.0; n],
            Ones => vec![1.0; n],
            GlorotUniform => uniform((3.0 * variance(1.0, avg)).sqrt(), rng),
            HeUniform => uniform((3.0 * variance(2.0, fan_in)).sqrt(), rng),
            LecunUniform => uniform((3.0 * variance(1.0, fan_in)).sqrt(), rng),
            GlorotNormal => truncated(variance(1.0, avg).sqrt() / TRUNC, rng),
            HeNormal => truncated(variance(2.0, fan_in).sqrt() / TRUNC, rng),
            LecunNormal => truncated(variance(1.0, fan_in).sqrt() / TRUNC, rng),
            RandomUniform => uniform(0.05, rng),
            RandomNormal => {
                let d = Normal::new(0.0f32, 0.05).expect("finite stddev");
                (0..n).map(|_| d.sample(rng)).collect()
            }
            Orthogonal => orthogonal(shape, rng),
        }
    }
}

/// Keras's Orthogonal (gain 1): a standard normal (prod(shape[..-1]), shape[-1]) matrix
/// made orthonormal along its shorter side. Gram-Schmidt gives QR's Q with R's diagonal
/// positive, which is Keras's sign correction.
fn orthogonal(shape: &[usize], rng: &mut impl Rng) -> Vec<f32> {
    let cols = *shape.last().unwrap_or(&1);
    let rows: usize = shape.iter().product::<usize>() / cols.max(1);
    let (long, short) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let d = Normal::new(0.0f64, 1.0).expect("finite stddev");
    // `short` vectors of length `long`, made orthonormal one after another.
    let mut q: Vec<Vec<f64>> = (0..short)
        .map(|_| (0..long).map(|_| d.sample(rng)).collect())
        .collect();
    for j in 0..short {
        for k in 0..j {
            let dot: f64 = (0..long).map(|i| q[j][i] * q[k][i]).sum();
            for i in 0..long {
                q[j][i] -= dot * q[k][i];
            }
        }
        let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        q[j].iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Columns of a tall matrix, rows of a wide one.
            out[r * cols + c] = if rows >= cols { q[c][r] } else { q[r][c] } as f32;
        }
    }
    out
}

/// (fan_in, fan_out) as Keras computes them: rank 2 (in, out); rank >= 3 a conv kernel
/// (..., in, out) times the receptive field; rank 1 the length for both.
pub fn fans(shape: &[usize]) -> (f64, f64) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f64, shape[0] as f64),
        2 => (shape[0] as f64, shape[1] as f64),
        r => {
            let receptive: usize = shape[..r - 2].iter().product();
            (
                (shape[r - 2] * receptive) as f64,
                (shape[r - 1] * receptive) as f64,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn orthogonal_matrices_are_orthonormal() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (r, c) in [(6, 6), (8, 3), (3, 8)] {
            let w = super::Initializer::Orthogonal.sample(&[r, c], &mut rng);
            // W'W = I for a tall matrix, WW' = I for a wide one.
            let (n, inner) = if r >= c { (c, r) } else { (r, c) };
            for a in 0..n {
                for b in 0..n {
                    let dot: f32 = (0..inner)
                        .map(|i| {
                            if r >= c {
                                w[i * c + a] * w[i * c + b]
                            } else {
                                w[a * c + i] * w[b * c + i]
                            }
                        })
                        .sum();
                    let want = if a == b { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "{r}x{c}: {dot}");
                }
            }
        }
    }

    use super::*;
    use rand::SeedableRng;

    #[test]
    fn glorot_uniform_limit_matches_keras() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let w = Initializer::GlorotUniform.sample(&[784, 256], &mut rng);
        let limit = (6.0f32 / 1040.0).sqrt(); // 0.07596
        let max = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            max <= limit && max > 0.99 * limit,
            "max {max} limit {limit}"
        );
        let var = w.iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64;
        assert!((var - (limit * limit / 3.0) as f64).abs() < 1e-4);
    }

    #[test]
    fn conv_fans_use_the_receptive_field() {
        assert_eq!(fans(&[3, 3, 1, 32]), (9.0, 288.0));
    }

    #[test]
    fn he_normal_has_the_wanted_variance() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let w = Initializer::HeNormal.sample(&[400, 300], &mut rng);
        let var = w.iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64;
        assert!((var / (2.0 / 400.0) - 1.0).abs() < 0.05, "var {var}");
    }
}
