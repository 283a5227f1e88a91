//! Inverted dropout: kept values are scaled by 1 / (1 - rate) so that inference is the
//! identity.

use rand::Rng;

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::Result;
use crate::rng::{sample_stream, Noise};
use crate::tensor::Tensor;

/// Fills the mask of each sample (a row of `mask`) from eight xorshift32 streams side by
/// side, seeded from `key` and the sample's place in the batch (`first_row + r`): the
/// loop vectorises, the quality is ample for dropout masks (one comparison per draw), and
/// a sample's mask is the same whichever shard or thread draws it.
fn fill_mask(mask: &mut [f32], rows: usize, keep: f32, scale: f32, key: u64, first_row: usize) {
    let threshold = (keep as f64 * 4_294_967_296.0).min(u32::MAX as f64) as u32;
    let row_len = mask.len() / rows.max(1);
    if row_len == 0 {
        return;
    }
    for (r, row) in mask.chunks_mut(row_len).enumerate() {
        let sample = (first_row + r) as u64;
        let mut state: [u32; 8] =
            std::array::from_fn(|lane| sample_stream(key, sample, lane as u64) as u32 | 1);
        for chunk in row.chunks_mut(8) {
            for (m, s) in chunk.iter_mut().zip(state.iter_mut()) {
                *s ^= *s << 13;
                *s ^= *s >> 17;
                *s ^= *s << 5;
                *m = scale * ((*s < threshold) as u32 as f32);
            }
        }
    }
}

struct DropoutBackward {
    mask: Tensor,
}

impl Backward for DropoutBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(device::mul(g, &self.mask))])
    }
}

/// Zeroes each element with probability `rate` and scales the rest by 1 / (1 - rate).
/// Callers skip it outside training; rate 1 gives all zeros, as in Keras.
pub fn dropout(tape: &mut Tape, x: Var, rate: f32, rng: &mut Noise) -> Var {
    let xv = tape.value(x);
    // On the GPU the mask is drawn there (the CPU's stream of draws is left as it is).
    if xv.device() == crate::tensor::Device::Cuda {
        if let Some((y, mask)) = device::gpu_dropout(xv, rate, rng.gen()) {
            return tape.push(y, &[x], Box::new(DropoutBackward { mask }));
        }
    }
    let keep = 1.0 - rate;
    let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
    let mut mask_data = crate::device::pool::scratch(xv.numel());
    let rows = xv.shape().first().copied().unwrap_or(1);
    fill_mask(
        &mut mask_data,
        rows,
        keep,
        scale,
        rng.gen(),
        rng.first_row(),
    );
    let mask = Tensor::from_vec(xv.shape().to_vec(), mask_data).expect("mask has x's size");
    let y = device::mul(xv, &mask);
    tape.push(y, &[x], Box::new(DropoutBackward { mask }))
}

/// Dropout with one mask value shared along the axes where `mask_shape` is 1 (Keras's
/// `noise_shape`, e.g. the same mask for every time step); `mask_shape` has x's rank.
/// `per_sample`: the batch axis has a mask of each sample's own (else one mask for the
/// whole batch, `mask_shape[0]` = 1).
pub fn dropout_shared(
    tape: &mut Tape,
    x: Var,
    rate: f32,
    mask_shape: &[usize],
    per_sample: bool,
    rng: &mut Noise,
) -> Result<Var> {
    let keep = 1.0 - rate;
    let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
    let mut mask = vec![0.0f32; mask_shape.iter().product()];
    // A mask shared by the whole batch is the same in every shard: it is drawn as the
    // batch's sample 0.
    let (rows, first_row) = if per_sample {
        (mask_shape.first().copied().unwrap_or(1), rng.first_row())
    } else {
        (1, 0)
    };
    fill_mask(&mut mask, rows, keep, scale, rng.gen(), first_row);
    let m = tape.leaf(Tensor::from_vec(mask_shape.to_vec(), mask)?, false);
    crate::ops::merge::elementwise(tape, crate::ops::merge::Elementwise::Multiply, &[x, m])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn keeps_about_one_minus_rate_and_rescales() {
        let mut t = Tape::new();
        let x = t.leaf(
            Tensor::from_vec(vec![10000], vec![1.0; 10000]).unwrap(),
            false,
        );
        let mut rng = Noise::new(1, 0);
        let y = dropout(&mut t, x, 0.4, &mut rng);
        let v = t.value(y).to_vec();
        let kept = v.iter().filter(|&&a| a != 0.0).count();
        assert!((5700..6300).contains(&kept), "kept {kept}");
        assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.6).abs() < 1e-6));
    }

    #[test]
    fn a_shared_mask_is_the_same_along_its_unit_axes() {
        let mut t = Tape::new();
        let x = t.leaf(
            Tensor::from_vec(vec![2, 50, 3], vec![1.0; 300]).unwrap(),
            true,
        );
        let mut rng = Noise::new(2, 0);
        let y = dropout_shared(&mut t, x, 0.5, &[2, 1, 3], true, &mut rng).unwrap();
        let v = t.value(y).to_vec();
        for b in 0..2 {
            for f in 0..3 {
                let first = v[b * 150 + f];
                assert!((0..50).all(|s| v[b * 150 + s * 3 + f] == first));
            }
        }
        let s = crate::ops::math::sum(&mut t, y);
        let g = t.backward(s).unwrap();
        assert_eq!(g.get(x).unwrap().to_vec(), v);
    }

    #[test]
    fn a_samples_mask_does_not_depend_on_the_shard_that_draws_it() {
        // The whole batch of 6 samples in one pass, and the same batch as shards of 2 and
        // 4 samples, each starting from the same generator as the batch does.
        let ones = |rows: usize| Tensor::from_vec(vec![rows, 40], vec![1.0; rows * 40]).unwrap();
        let masks = |first_row: usize, rows: usize| {
            let mut t = Tape::new();
            let x = t.leaf(ones(rows), false);
            let y = dropout(&mut t, x, 0.5, &mut Noise::new(9, first_row));
            t.value(y).to_vec()
        };
        let whole = masks(0, 6);
        let mut shards = masks(0, 2);
        shards.extend(masks(2, 4));
        assert_eq!(whole, shards);
        // Different samples get different masks.
        assert_ne!(whole[..40], whole[40..80]);
        // Also with a noise shape, and for a shard of one sample.
        let shared = |first_row: usize, rows: usize| {
            let mut t = Tape::new();
            let x = t.leaf(ones(rows), false);
            let y = dropout_shared(
                &mut t,
                x,
                0.5,
                &[rows, 40],
                true,
                &mut Noise::new(9, first_row),
            );
            t.value(y.unwrap()).to_vec()
        };
        let mut one_row_shard = shared(0, 5);
        one_row_shard.extend(shared(5, 1));
        assert_eq!(shared(0, 6), one_row_shard);
    }

    #[test]
    fn gradients_match_finite_differences() {
        // Same seed on every evaluation, so the mask is fixed and the op is linear.
        check(
            vec![random_tensor(&[4, 6], 12, 1.0)],
            &[true],
            |t, v| {
                let mut rng = Noise::new(5, 0);
                dropout(t, v[0], 0.3, &mut rng)
            },
            "dropout",
        );
    }
}
