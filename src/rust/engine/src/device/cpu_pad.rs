//! CPU kernels for zero padding of NHWC slices: each image row is one contiguous copy.

use super::pool;
use crate::ops::pad::Pad2d;

pub fn zero_pad2d(x: &[f32], p: &Pad2d) -> Vec<f32> {
    let [n, h, w, c] = p.in_shape_array();
    let [_, oh, ow, _] = p.out_shape_array();
    let mut y = pool::zeros(n * oh * ow * c);
    let row = w * c;
    for (img, padded) in x.chunks_exact(h * row).zip(y.chunks_exact_mut(oh * ow * c)) {
        for (r, src) in img.chunks_exact(row).enumerate() {
            let at = ((r + p.top) * ow + p.left) * c;
            padded[at..at + row].copy_from_slice(src);
        }
    }
    y
}

pub fn crop2d(y: &[f32], p: &Pad2d) -> Vec<f32> {
    let [n, h, w, c] = p.in_shape_array();
    let [_, oh, ow, _] = p.out_shape_array();
    let mut x = pool::scratch(n * h * w * c);
    let row = w * c;
    for (img, padded) in x.chunks_exact_mut(h * row).zip(y.chunks_exact(oh * ow * c)) {
        for (r, dst) in img.chunks_exact_mut(row).enumerate() {
            let at = ((r + p.top) * ow + p.left) * c;
            dst.copy_from_slice(&padded[at..at + row]);
        }
    }
    x
}
