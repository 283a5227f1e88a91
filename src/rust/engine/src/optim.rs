//! Optimizers with Keras 3's update rules and defaults (keras/src/optimizers/*.py).

use rayon::prelude::*;

use crate::device::cuda::{context::gpu_or_panic, ops as gpu_ops};
use crate::error::{invalid_arg, Error, Result};
use crate::tensor::{Device, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Algorithm {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    RmsProp {
        rho: f64,
        momentum: f64,
        epsilon: f64,
        centered: bool,
    },
    Adam {
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        amsgrad: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// Keras's config name: "sgd", "rmsprop", "adam", "adamw".
    pub name: String,
    pub learning_rate: f64,
    pub algorithm: Algorithm,
    /// Decoupled weight decay (w -= lr * wd * w before the update); AdamW's 0.004.
    pub weight_decay: Option<f64>,
}

impl OptimizerConfig {
    pub const NAMES: [&'static str; 4] = ["sgd", "rmsprop", "adam", "adamw"];

    /// An optimizer by its string name with Keras's defaults.
    pub fn from_name(name: &str) -> Result<OptimizerConfig> {
        let adam = Algorithm::Adam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
        };
        let (lr, algorithm, wd) = match name.to_ascii_lowercase().as_str() {
            "sgd" => (
                0.01,
                Algorithm::Sgd {
                    momentum: 0.0,
                    nesterov: false,
                },
                None,
            ),
            "rmsprop" => (
                0.001,
                Algorithm::RmsProp {
                    rho: 0.9,
                    momentum: 0.0,
                    epsilon: 1e-7,
                    centered: false,
                },
                None,
            ),
            "adam" => (0.001, adam, None),
            "adamw" => (0.001, adam, Some(0.004)),
            _ => {
                return Err(Error::UnknownName {
                    kind: "optimizer",
                    name: name.into(),
                    known: Self::NAMES.to_vec(),
                })
            }
        };
        Ok(OptimizerConfig {
            name: name.to_ascii_lowercase(),
            learning_rate: lr,
            algorithm,
            weight_decay: wd,
        })
    }

    pub fn validate(&self) -> Result<()> {
        // Zero is allowed, as in Keras (a frozen step, warm-up schedules).
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return Err(invalid_arg(
                "learning_rate",
                format!("must be a non-negative number, not {}", self.learning_rate),
            ));
        }
        Ok(())
    }
}

/// An optimizer's state: the step counter and per-parameter slot buffers.
pub struct Optimizer {
    pub config: OptimizerConfig,
    pub iterations: u64,
    /// Per parameter: momentum / velocity / average-gradient buffers, by algorithm, each
    /// a 1-D tensor of the parameter's size on the parameter's device.
    slots: Vec<Vec<Tensor>>,
}

/// Parameters above this size are updated in parallel chunks.
const PAR_CHUNK: usize = 1 << 15;

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Result<Optimizer> {
        config.validate()?;
        Ok(Optimizer {
            config,
            iterations: 0,
            slots: Vec::new(),
        })
    }

    /// Keras's optimizer variable count (slots plus `iteration` and `learning_rate`),
    /// once the optimizer has been built by its first step.
    pub fn variable_count(&self) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        Some(
            self.slots
                .iter()
                .flatten()
                .map(|s| s.numel())
                .sum::<usize>()
                + 2,
        )
    }

    /// Keras's optimizer variables beyond `iteration` and `learning_rate`, as (slot index,
    /// name suffix) groups in the order Keras creates them: each group is one
    /// `add_optimizer_variables` call, interleaved over the parameters.
    pub fn keras_slot_groups(&self) -> Vec<Vec<(usize, &'static str)>> {
        match self.config.algorithm {
            Algorithm::Sgd { momentum, .. } if momentum > 0.0 => vec![vec![(0, "momentum")]],
            Algorithm::Sgd { .. } => Vec::new(),
            Algorithm::RmsProp {
                momentum, centered, ..
            } => {
                let mut g = vec![vec![(0, "velocity")]];
                let mut next = 1;
                if momentum > 0.0 {
                    g.push(vec![(next, "momentum")]);
                    next += 1;
                }
                if centered {
                    g.push(vec![(next, "average_gradient")]);
                }
                g
            }
            Algorithm::Adam { amsgrad, .. } => {
                let mut g = vec![vec![(0, "momentum"), (1, "velocity")]];
                if amsgrad {
                    g.push(vec![(2, "velocity_hat")]);
                }
                g
            }
        }
    }

    /// Per parameter, its slot buffers (empty until the first step).
    pub fn slots(&self) -> &[Vec<Tensor>] {
        &self.slots
    }

    /// Restores a saved state: the step count and, per parameter, its slot buffers (each
    /// the parameter's size, `keras_slot_groups` many), or no slots for an optimizer that
    /// had not taken a step.
    pub fn set_state(&mut self, iterations: u64, slots: Vec<Vec<Vec<f32>>>) -> Result<()> {
        let k = self.slot_count();
        if slots.iter().any(|s| s.len() != k) {
            return Err(Error::State(format!(
                "optimizer state needs {k} slot(s) per parameter"
            )));
        }
        self.iterations = iterations;
        self.slots = slots
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|v| Tensor::from_vec(vec![v.len()], v))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Whether the slot buffers exist yet (they are made at the first update).
    pub(crate) fn has_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Slot buffers per parameter (momentum, velocity, ... as the algorithm keeps).
    pub(crate) fn slot_count(&self) -> usize {
        match self.config.algorithm {
            Algorithm::Sgd { momentum, .. } => usize::from(momentum > 0.0),
            Algorithm::RmsProp {
                momentum, centered, ..
            } => 1 + usize::from(momentum > 0.0) + usize::from(centered),
            Algorithm::Adam { amsgrad, .. } => 2 + usize::from(amsgrad),
        }
    }

    /// One update of every parameter from its gradient (Keras's `apply_gradients`).
    pub fn apply(&mut self, params: &mut [&mut Tensor], grads: &[Tensor]) {
        let terms: Vec<Vec<(f32, &Tensor)>> = grads.iter().map(|g| vec![(1.0, g)]).collect();
        self.apply_weighted(params, &terms);
    }

    /// One update where each parameter's gradient is a weighted sum of several (the
    /// shards of a batch), combined on the fly instead of in a separate pass.
    pub fn apply_weighted(&mut self, params: &mut [&mut Tensor], grads: &[Vec<(f32, &Tensor)>]) {
        if self.slots.len() != params.len() {
            let k = self.slot_count();
            self.slots = params
                .iter()
                .map(|p| vec![Tensor::zeros(&[p.numel()]); k])
                .collect();
        }
        // The rate as the float32 Keras keeps it (and a file stores): a model loaded from
        // a file then steps exactly as the model that wrote it (Adam's step size, from
        // the f64 rate, differed in the last bit).
        let lr = self.config.learning_rate as f32 as f64;
        let t = (self.iterations + 1) as f64;
        let step = Step {
            lr: lr as f32,
            decay: self.config.weight_decay.map(|wd| (lr * wd) as f32),
            algorithm: self.config.algorithm,
            // Adam's bias correction folded into the step size, as Keras does.
            alpha: match self.config.algorithm {
                Algorithm::Adam { beta_1, beta_2, .. } => {
                    (lr * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t))) as f32
                }
                _ => 0.0,
            },
        };
        // Weights on the GPU with one gradient each (a GPU trains on whole batches) are
        // updated there, slots and all; anything else on the host.
        let single = grads.iter().all(|t| matches!(t[..], [(w, _)] if w == 1.0));
        if single && params.iter().all(|p| p.device() == Device::Cuda) {
            for ((p, slots), g) in params.iter_mut().zip(self.slots.iter_mut()).zip(grads) {
                step.update_on_gpu(p, g[0].1, slots);
            }
            self.iterations += 1;
            return;
        }
        // One parallel pass over chunks of every parameter.
        let mut items: Vec<(usize, usize, &mut [f32], Vec<&mut [f32]>)> = Vec::new();
        for (pi, (p, slots)) in params.iter_mut().zip(self.slots.iter_mut()).enumerate() {
            let mut slot_chunks: Vec<std::slice::ChunksMut<'_, f32>> = slots
                .iter_mut()
                .map(|s| s.host_mut().chunks_mut(PAR_CHUNK))
                .collect();
            for (ci, w) in p.host_mut().chunks_mut(PAR_CHUNK).enumerate() {
                let s = slot_chunks
                    .iter_mut()
                    .map(|it| it.next().expect("slot has the param's size"))
                    .collect();
                items.push((pi, ci * PAR_CHUNK, w, s));
            }
        }
        let update = |(pi, offset, w, mut s): (usize, usize, &mut [f32], Vec<&mut [f32]>)| {
            let terms: &[(f32, &Tensor)] = &grads[pi];
            let range = offset..offset + w.len();
            if let [(weight, g)] = terms {
                if *weight == 1.0 {
                    return step.update(w, &g.host()[range], &mut s);
                }
            }
            // Several weighted gradients (data-parallel shards): combine block by block.
            let mut buf = [0.0f32; COMBINE_BLOCK];
            for a in (0..w.len()).step_by(COMBINE_BLOCK) {
                let b = (a + COMBINE_BLOCK).min(w.len());
                let g = &mut buf[..b - a];
                g.iter_mut().for_each(|v| *v = 0.0);
                for (weight, t) in terms {
                    let src = &t.host()[offset + a..offset + b];
                    g.iter_mut().zip(src).for_each(|(v, x)| *v += weight * x);
                }
                let mut sub: Vec<&mut [f32]> = s.iter_mut().map(|x| &mut x[a..b]).collect();
                step.update(&mut w[a..b], g, &mut sub);
            }
        };
        if items.len() == 1 {
            items.into_iter().for_each(update);
        } else {
            crate::threads::install(|| items.into_par_iter().for_each(update));
        }
        self.iterations += 1;
    }
}

/// Values of combined gradient computed at a time (on the stack).
const COMBINE_BLOCK: usize = 4096;

#[derive(Clone, Copy)]
struct Step {
    lr: f32,
    decay: Option<f32>,
    algorithm: Algorithm,
    alpha: f32,
}

impl Step {
    /// The update of one weight on the GPU (its slots move there first).
    fn update_on_gpu(&self, w: &mut Tensor, g: &Tensor, slots: &mut [Tensor]) {
        let gpu = gpu_or_panic();
        for s in slots.iter_mut() {
            if s.device() != Device::Cuda {
                *s = s.to_device(Device::Cuda);
            }
        }
        let decay = self.decay.unwrap_or(0.0);
        let update = match self.algorithm {
            Algorithm::Sgd { momentum, nesterov } => gpu_ops::Update::Sgd {
                lr: self.lr,
                momentum: momentum as f32,
                nesterov,
            },
            Algorithm::RmsProp {
                rho,
                momentum,
                epsilon,
                centered,
            } => gpu_ops::Update::RmsProp {
                lr: self.lr,
                rho: rho as f32,
                momentum: momentum as f32,
                epsilon: epsilon as f32,
                centered,
            },
            Algorithm::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => gpu_ops::Update::Adam {
                beta_1: beta_1 as f32,
                beta_2: beta_2 as f32,
                epsilon: epsilon as f32,
                alpha: self.alpha,
            },
        };
        gpu_ops::optimizer_update(gpu, update, decay, w, g, slots);
    }

    fn update(&self, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        if let Some(d) = self.decay {
            w.iter_mut().for_each(|w| *w -= d * *w);
        }
        let lr = self.lr;
        match self.algorithm {
            Algorithm::Sgd { momentum, nesterov } => {
                if momentum == 0.0 {
                    w.iter_mut().zip(g).for_each(|(w, g)| *w -= lr * g);
                } else {
                    let mu = momentum as f32;
                    for ((w, &g), m) in w.iter_mut().zip(g).zip(slots[0].iter_mut()) {
                        *m = mu * *m - lr * g;
                        *w += if nesterov { mu * *m - lr * g } else { *m };
                    }
                }
            }
            Algorithm::RmsProp {
                rho,
                momentum,
                epsilon,
                centered,
            } if momentum == 0.0 && !centered => {
                // The common case as one plain loop, which the compiler vectorises.
                simd::rmsprop(w, g, slots[0], rho as f32, epsilon as f32, lr);
            }
            Algorithm::RmsProp {
                rho,
                momentum,
                epsilon,
                centered,
            } => {
                let (rho, eps, mu) = (rho as f32, epsilon as f32, momentum as f32);
                let (v, rest) = slots
                    .split_first_mut()
                    .expect("rmsprop has a velocity slot");
                let (mut mom, mut avg) = (None, None);
                let mut it = rest.iter_mut();
                if momentum > 0.0 {
                    mom = it.next();
                }
                if centered {
                    avg = it.next();
                }
                for i in 0..w.len() {
                    let gi = g[i];
                    v[i] = rho * v[i] + (1.0 - rho) * gi * gi;
                    let mut den = v[i];
                    if let Some(a) = avg.as_deref_mut() {
                        a[i] = rho * a[i] + (1.0 - rho) * gi;
                        den -= a[i] * a[i];
                    }
                    // Keras puts epsilon inside the square root.
                    let inc = lr * gi / (den + eps).sqrt();
                    match mom.as_deref_mut() {
                        Some(m) => {
                            m[i] = mu * m[i] + inc;
                            w[i] -= m[i];
                        }
                        None => w[i] -= inc,
                    }
                }
            }
            Algorithm::Adam {
                beta_1,
                beta_2,
                epsilon,
                ..
            } => {
                let (b1, b2, eps, alpha) =
                    (beta_1 as f32, beta_2 as f32, epsilon as f32, self.alpha);
                let (m, rest) = slots.split_first_mut().expect("adam has two slots");
                let (v, rest) = rest.split_first_mut().expect("adam has two slots");
                let mut vhat = rest.first_mut();
                if vhat.is_none() {
                    simd::adam(w, g, m, v, b1, b2, eps, alpha);
                    return;
                }
                for i in 0..w.len() {
                    let gi = g[i];
                    m[i] += (gi - m[i]) * (1.0 - b1);
                    v[i] += (gi * gi - v[i]) * (1.0 - b2);
                    let vv = match vhat.as_deref_mut() {
                        Some(h) => {
                            h[i] = h[i].max(v[i]);
                            h[i]
                        }
                        None => v[i],
                    };
                    w[i] -= m[i] * alpha / (vv.sqrt() + eps);
                }
            }
        }
    }
}

/// The common updates as plain loops, compiled a second time with AVX-512 enabled and
/// picked at run time (the crate itself targets baseline x86-64).
mod simd {
    #[inline(always)]
    fn rmsprop_body(w: &mut [f32], g: &[f32], v: &mut [f32], rho: f32, eps: f32, lr: f32) {
        for ((w, &g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
            *v = rho * *v + (1.0 - rho) * g * g;
            // Keras puts epsilon inside the square root.
            *w -= lr * g / (*v + eps).sqrt();
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn adam_body(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        b1: f32,
        b2: f32,
        eps: f32,
        alpha: f32,
    ) {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m += (g - *m) * (1.0 - b1);
            *v += (g * g - *v) * (1.0 - b2);
            *w -= *m * alpha / (v.sqrt() + eps);
        }
    }

    /// RMSprop with AVX-512: 1/sqrt(v + eps) from the hardware estimate (`rsqrt14`, 14
    /// bits) refined by one Newton step to about 27 bits, which is f32's precision and
    /// avoids the slow square root and division that bound the plain loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rmsprop_avx512(w: &mut [f32], g: &[f32], v: &mut [f32], rho: f32, eps: f32, lr: f32) {
        use std::arch::x86_64::*;
        let n = w.len().min(g.len()).min(v.len());
        let full = n / 16 * 16;
        let (rho_v, keep_v) = (_mm512_set1_ps(rho), _mm512_set1_ps(1.0 - rho));
        let (eps_v, lr_v) = (_mm512_set1_ps(eps), _mm512_set1_ps(lr));
        let (half, three_halves) = (_mm512_set1_ps(0.5), _mm512_set1_ps(1.5));
        let (wp, gp, vp) = (w.as_mut_ptr(), g.as_ptr(), v.as_mut_ptr());
        for i in (0..full).step_by(16) {
            // SAFETY: i + 16 <= n, the length of all three slices.
            let gi = _mm512_loadu_ps(gp.add(i));
            let vi = _mm512_fmadd_ps(
                rho_v,
                _mm512_loadu_ps(vp.add(i)),
                _mm512_mul_ps(keep_v, _mm512_mul_ps(gi, gi)),
            );
            _mm512_storeu_ps(vp.add(i), vi);
            let d = _mm512_add_ps(vi, eps_v);
            let y0 = _mm512_rsqrt14_ps(d);
            let y = _mm512_mul_ps(
                y0,
                _mm512_fnmadd_ps(_mm512_mul_ps(half, d), _mm512_mul_ps(y0, y0), three_halves),
            );
            let wi = _mm512_fnmadd_ps(_mm512_mul_ps(lr_v, gi), y, _mm512_loadu_ps(wp.add(i)));
            _mm512_storeu_ps(wp.add(i), wi);
        }
        rmsprop_body(&mut w[full..n], &g[full..n], &mut v[full..n], rho, eps, lr)
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn adam_avx512(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        b1: f32,
        b2: f32,
        eps: f32,
        alpha: f32,
    ) {
        adam_body(w, g, m, v, b1, b2, eps, alpha)
    }

    fn has_avx512() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    pub fn rmsprop(w: &mut [f32], g: &[f32], v: &mut [f32], rho: f32, eps: f32, lr: f32) {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { rmsprop_avx512(w, g, v, rho, eps, lr) };
        }
        rmsprop_body(w, g, v, rho, eps, lr)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn adam(
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        b1: f32,
        b2: f32,
        eps: f32,
        alpha: f32,
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { adam_avx512(w, g, m, v, b1, b2, eps, alpha) };
        }
        adam_body(w, g, m, v, b1, b2, eps, alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: OptimizerConfig, steps: usize) -> Vec<f32> {
        let mut opt = Optimizer::new(config).unwrap();
        let mut w = Tensor::from_vec(vec![2], vec![1.0, -2.0]).unwrap();
        for _ in 0..steps {
            // Gradient of 0.5 * |w|^2.
            let g = w.clone();
            opt.apply(&mut [&mut w], &[g]);
        }
        w.to_vec()
    }

    #[test]
    fn sgd_step_matches_formula() {
        let w = run(OptimizerConfig::from_name("sgd").unwrap(), 1);
        assert_eq!(w, vec![0.99, -1.98]);
    }

    #[test]
    fn rmsprop_step_matches_keras() {
        // v = 0.1 g^2; w -= 1e-3 g / sqrt(v + 1e-7)
        let w = run(OptimizerConfig::from_name("rmsprop").unwrap(), 1);
        let want = |w: f64| w - 1e-3 * w / (0.1 * w * w + 1e-7).sqrt();
        assert!((w[0] as f64 - want(1.0)).abs() < 1e-6);
        assert!((w[1] as f64 - want(-2.0)).abs() < 1e-6);
    }

    #[test]
    fn vectorised_rmsprop_matches_the_formula() {
        // 37 values: two 16-wide blocks and a scalar tail, over several steps.
        let mut opt = Optimizer::new(OptimizerConfig::from_name("rmsprop").unwrap()).unwrap();
        let w0: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) / 7.0).collect();
        let mut w = Tensor::from_vec(vec![37], w0.clone()).unwrap();
        let (mut want, mut v) = (
            w0.iter().map(|&x| x as f64).collect::<Vec<_>>(),
            vec![0.0f64; 37],
        );
        for _ in 0..3 {
            let g = w.clone();
            for i in 0..37 {
                let gi = w.host()[i] as f64;
                v[i] = 0.9 * v[i] + 0.1 * gi * gi;
                want[i] -= 1e-3 * gi / (v[i] + 1e-7).sqrt();
            }
            opt.apply(&mut [&mut w], &[g]);
        }
        for i in 0..37 {
            assert!(
                (w.host()[i] as f64 - want[i]).abs() < 1e-6,
                "{i}: {} vs {}",
                w.host()[i],
                want[i]
            );
        }
    }

    #[test]
    fn weighted_gradients_equal_their_combination() {
        let n = PAR_CHUNK + COMBINE_BLOCK + 3;
        let g1 =
            Tensor::from_vec(vec![n], (0..n).map(|i| (i % 11) as f32 - 5.0).collect()).unwrap();
        let g2 = Tensor::from_vec(vec![n], (0..n).map(|i| (i % 7) as f32 * 0.5).collect()).unwrap();
        let combined = Tensor::from_vec(
            vec![n],
            g1.host()
                .iter()
                .zip(g2.host())
                .map(|(a, b)| 0.25 * a + 0.75 * b)
                .collect(),
        )
        .unwrap();
        let mut a = Optimizer::new(OptimizerConfig::from_name("adam").unwrap()).unwrap();
        let mut b = Optimizer::new(OptimizerConfig::from_name("adam").unwrap()).unwrap();
        let mut wa = Tensor::zeros(&[n]);
        let mut wb = Tensor::zeros(&[n]);
        a.apply(&mut [&mut wa], &[combined]);
        b.apply_weighted(&mut [&mut wb], &[vec![(0.25, &g1), (0.75, &g2)]]);
        for i in 0..n {
            assert!((wa.host()[i] - wb.host()[i]).abs() < 1e-7, "{i}");
        }
    }

    #[test]
    fn adam_first_steps_match_keras() {
        // Reference from the formula in f64: two steps of Adam on g = w.
        let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 1e-3f64, 1e-7f64);
        let (mut w, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for t in 1..=2 {
            let g = w;
            let alpha = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            m += (g - m) * (1.0 - b1);
            v += (g * g - v) * (1.0 - b2);
            w -= m * alpha / (v.sqrt() + eps);
        }
        let got = run(OptimizerConfig::from_name("adam").unwrap(), 2);
        assert!((got[0] as f64 - w).abs() < 1e-6, "{} vs {w}", got[0]);
    }

    #[test]
    fn adamw_decays_weights() {
        let plain = run(OptimizerConfig::from_name("adam").unwrap(), 1);
        let decayed = run(OptimizerConfig::from_name("adamw").unwrap(), 1);
        assert!((plain[0] - decayed[0] - 1e-3 * 0.004).abs() < 1e-7);
    }

    #[test]
    fn momentum_and_nesterov() {
        let mut c = OptimizerConfig::from_name("sgd").unwrap();
        c.algorithm = Algorithm::Sgd {
            momentum: 0.9,
            nesterov: false,
        };
        // m1 = -0.01; w1 = 0.99; m2 = 0.9 * -0.01 - 0.01 * 0.99 = -0.0189; w2 = 0.9711
        let w = run(c.clone(), 2);
        assert!((w[0] - 0.9711).abs() < 1e-6);
        c.algorithm = Algorithm::Sgd {
            momentum: 0.9,
            nesterov: true,
        };
        // m1 = -0.01; w1 = 1 + 0.9 * -0.01 - 0.01 = 0.981
        let w = run(c, 1);
        assert!((w[0] - 0.981).abs() < 1e-6);
    }

    #[test]
    fn large_parameters_update_in_chunks_like_small_ones() {
        let mut opt = Optimizer::new(OptimizerConfig::from_name("adam").unwrap()).unwrap();
        let n = PAR_CHUNK * 2 + 5;
        let mut w =
            Tensor::from_vec(vec![n], (0..n).map(|i| (i % 7) as f32 - 3.0).collect()).unwrap();
        let g = w.clone();
        opt.apply(&mut [&mut w], &[g.clone()]);
        let mut small = Optimizer::new(OptimizerConfig::from_name("adam").unwrap()).unwrap();
        let mut w2 = Tensor::from_vec(vec![7], (0..7).map(|i| i as f32 - 3.0).collect()).unwrap();
        let g2 = w2.clone();
        small.apply(&mut [&mut w2], &[g2]);
        for i in 0..n {
            assert_eq!(w.host()[i], w2.host()[i % 7]);
        }
    }
}
