//! 2-D convolution over NHWC inputs with (kh, kw, c, f) kernels, as Keras's Conv2D
//! computes it (cross-correlation, no kernel flip). 1-D convolutions are the h = 1 case.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{shape_str, Error, Result};
use crate::ops::activation::Activation;
use crate::ops::pool::{Pool2d, PoolWindow};
use crate::tensor::Tensor;

/// Keras's padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Valid,
    Same,
    /// 1-D only: all the padding before the sequence, so no output sees the future.
    Causal,
}

impl Padding {
    pub fn from_name(name: &str) -> Result<Padding> {
        match name.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            "causal" => Ok(Padding::Causal),
            _ => Err(crate::error::invalid_arg(
                "padding",
                format!("must be one of 'valid', 'same' or 'causal', not '{name}'"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
            Padding::Causal => "causal",
        }
    }

    /// Output length and padding before, along one axis of length `n`, or None when
    /// the (dilated) window does not fit. 'same' pads as TensorFlow does: the odd pixel
    /// goes after.
    pub fn along(
        self,
        n: usize,
        window: usize,
        stride: usize,
        dilation: usize,
    ) -> Option<(usize, usize)> {
        let span = (window - 1) * dilation + 1;
        match self {
            Padding::Valid => (n >= span).then(|| ((n - span) / stride + 1, 0)),
            Padding::Same => {
                let out = n.div_ceil(stride);
                let total = ((out - 1) * stride + span).saturating_sub(n);
                (n > 0).then_some((out, total / 2))
            }
            Padding::Causal => (n > 0).then(|| ((n + span - 1 - span) / stride + 1, span - 1)),
        }
    }
}

/// Every size a convolution kernel needs: input (n, h, w, c), kernel (kh, kw, c, f),
/// strides, dilations, padding before each axis, output (oh, ow).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub f: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

/// What a convolution is asked to do, before it meets an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    pub kernel: (usize, usize),
    pub strides: (usize, usize),
    pub dilation: (usize, usize),
    pub padding: Padding,
}

impl ConvSpec {
    /// Output (oh, ow) and padding (top, left) for an h x w input; None when the kernel
    /// is larger than the padded input.
    pub fn output(&self, h: usize, w: usize) -> Option<((usize, usize), (usize, usize))> {
        // Causal padding is a 1-D mode: it applies along the sequence (w) axis only.
        let pad_h = if self.padding == Padding::Causal {
            Padding::Valid
        } else {
            self.padding
        };
        let (oh, top) = pad_h.along(h, self.kernel.0, self.strides.0, self.dilation.0)?;
        let (ow, left) = self
            .padding
            .along(w, self.kernel.1, self.strides.1, self.dilation.1)?;
        Some(((oh, ow), (top, left)))
    }

    pub fn geometry(&self, input: &[usize], filters: usize) -> Result<ConvGeometry> {
        let [n, h, w, c] = *input else {
            return Err(Error::State(format!(
                "conv2d needs a 4-D (batch, height, width, channels) input, not {}",
                shape_str(input)
            )));
        };
        let ((oh, ow), (pad_top, pad_left)) = self.output(h, w).ok_or_else(|| {
            Error::State(format!(
                "conv2d: kernel {}x{} (dilation {}x{}) is larger than the input {}",
                self.kernel.0,
                self.kernel.1,
                self.dilation.0,
                self.dilation.1,
                shape_str(input)
            ))
        })?;
        Ok(ConvGeometry {
            n,
            h,
            w,
            c,
            kh: self.kernel.0,
            kw: self.kernel.1,
            f: filters,
            sh: self.strides.0,
            sw: self.strides.1,
            dh: self.dilation.0,
            dw: self.dilation.1,
            pad_top,
            pad_left,
            oh,
            ow,
        })
    }
}

impl ConvGeometry {
    /// Values in one receptive field: the GEMM's inner dimension.
    pub fn patch_len(&self) -> usize {
        self.kh * self.kw * self.c
    }

    pub fn out_pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1x1 kernel that visits every pixel once: the input is already the im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pad_top == 0
            && self.pad_left == 0
    }
}

/// im2col columns kept from the forward pass for the weight gradient when they take at
/// most this many floats (32 MB per layer: the workshop CNN's 2.2 M per shard fit);
/// bigger ones are rebuilt step by step in the backward pass, so that deep networks on
/// big images (ResNet's 3x3 layers hold 15-60 M) keep a flat memory profile.
const KEEP_COLS_MAX: usize = 8 << 20;

struct Conv2dBackward {
    geometry: ConvGeometry,
    act: Activation,
    cols: Option<Tensor>,
}

impl Backward for Conv2dBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let want_db = needs.get(2).copied().unwrap_or(false);
        let (dx, dk, db) = device::conv2d_backward(
            inputs[0],
            inputs[1],
            out,
            g,
            self.act,
            self.cols.as_ref(),
            &self.geometry,
            (needs[0], needs[1], want_db),
        );
        let mut grads = vec![dx, dk];
        if inputs.len() > 2 {
            grads.push(db);
        }
        Ok(grads)
    }
}

/// x (n, h, w, c) convolved with kernel (kh, kw, c, f) -> (n, oh, ow, f).
pub fn conv2d(tape: &mut Tape, x: Var, kernel: Var, spec: &ConvSpec) -> Result<Var> {
    conv2d_bias_activation(tape, x, kernel, None, Activation::Linear, spec)
}

/// act(conv2d(x, kernel) + bias) as one op: bias and activation are applied to each
/// block of the product while it is in cache, and their gradient is taken the same way.
/// Activations whose derivative needs their input run as separate ops.
pub fn conv2d_bias_activation(
    tape: &mut Tape,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    act: Activation,
    spec: &ConvSpec,
) -> Result<Var> {
    if !act.grad_from_output() {
        let y = conv2d_bias_activation(tape, x, kernel, bias, Activation::Linear, spec)?;
        return Ok(crate::ops::activation::activation(tape, y, act));
    }
    let geometry = checked_geometry(tape, x, kernel, bias, spec)?;
    let (xv, kv) = (tape.value(x), tape.value(kernel));
    let keep_cols = tape.requires_grad(kernel)
        && geometry.n * geometry.out_pixels() * geometry.patch_len() <= KEEP_COLS_MAX;
    let (y, cols) = device::conv2d_forward(
        xv,
        kv,
        bias.map(|b| tape.value(b)),
        act,
        &geometry,
        keep_cols,
    );
    let back = Box::new(Conv2dBackward {
        geometry,
        act,
        cols,
    });
    Ok(match bias {
        Some(b) => tape.push(y, &[x, kernel, b], back),
        None => tape.push(y, &[x, kernel], back),
    })
}

/// The geometry of conv2d(x, kernel) + bias, with the operands' shapes checked.
fn checked_geometry(
    tape: &Tape,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    spec: &ConvSpec,
) -> Result<ConvGeometry> {
    let (xv, kv) = (tape.value(x), tape.value(kernel));
    let ks = kv.shape();
    if ks.len() != 4
        || (ks[0], ks[1]) != spec.kernel
        || xv.shape().len() != 4
        || xv.shape()[3] != ks[2]
    {
        return Err(Error::ShapeMismatch {
            op: "conv2d",
            lhs: xv.shape().to_vec(),
            rhs: ks.to_vec(),
        });
    }
    let geometry = spec.geometry(xv.shape(), ks[3])?;
    if let Some(b) = bias {
        let bs = tape.value(b).shape();
        if bs != [ks[3]] {
            return Err(Error::ShapeMismatch {
                op: "conv2d bias",
                lhs: ks.to_vec(),
                rhs: bs.to_vec(),
            });
        }
    }
    Ok(geometry)
}

/// max_pool(act(conv2d(x, kernel) + bias)) as one op, for inference: each few samples'
/// convolution output is pooled while it is still in cache. `None` when a gradient
/// would flow through it (training records the convolution and the pooling as two ops,
/// whose backward passes need the convolution's output).
pub fn conv2d_max_pool(
    tape: &mut Tape,
    x: Var,
    kernel: Var,
    bias: Option<Var>,
    act: Activation,
    spec: &ConvSpec,
    window: &PoolWindow,
) -> Result<Option<Var>> {
    let inputs: Vec<Var> = [x, kernel].into_iter().chain(bias).collect();
    // Softmax-like activations act on whole rows, after the convolution: not fused.
    if act.is_rowwise() || inputs.iter().any(|&v| tape.requires_grad(v)) {
        return Ok(None);
    }
    let geometry = checked_geometry(tape, x, kernel, bias, spec)?;
    let conv_shape = [geometry.n, geometry.oh, geometry.ow, geometry.f];
    let Some(pg) = Pool2d::new(&conv_shape, window.pool, window.strides, window.padding) else {
        return Ok(None); // the pooling op reports the bad shape
    };
    let y = device::conv2d_max_pool_forward(
        tape.value(x),
        tape.value(kernel),
        bias.map(|b| tape.value(b)),
        act,
        &geometry,
        &pg,
    );
    Ok(Some(tape.push(y, &inputs, Box::new(InferenceOnly))))
}

/// The backward pass of an op recorded only when no gradient flows through it.
struct InferenceOnly;

impl Backward for InferenceOnly {
    fn backward(
        &self,
        _g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Err(Error::State(
            "an inference-only op was asked for a gradient".into(),
        ))
    }
}

struct DepthwiseBackward(ConvGeometry);

impl Backward for DepthwiseBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (dx, dk) =
            device::depthwise_backward(inputs[0], inputs[1], g, &self.0, needs[0], needs[1]);
        Ok(vec![dx, dk])
    }
}

/// Depthwise convolution: x (n, h, w, c) with kernel (kh, kw, c, mult), each channel
/// convolved with its own mult filters -> (n, oh, ow, c * mult), channel c * mult + j.
pub fn depthwise_conv2d(tape: &mut Tape, x: Var, kernel: Var, spec: &ConvSpec) -> Result<Var> {
    let (xv, kv) = (tape.value(x), tape.value(kernel));
    let ks = kv.shape();
    if ks.len() != 4
        || (ks[0], ks[1]) != spec.kernel
        || xv.shape().len() != 4
        || xv.shape()[3] != ks[2]
    {
        return Err(Error::ShapeMismatch {
            op: "depthwise_conv2d",
            lhs: xv.shape().to_vec(),
            rhs: ks.to_vec(),
        });
    }
    let geometry = spec.geometry(xv.shape(), ks[2] * ks[3])?;
    let y = device::depthwise_forward(xv, kv, &geometry);
    Ok(tape.push(y, &[x, kernel], Box::new(DepthwiseBackward(geometry))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, check_with_step, random_tensor};

    /// Straight from the definition, for comparison.
    fn naive(x: &Tensor, k: &Tensor, spec: &ConvSpec) -> Vec<f32> {
        let g = spec.geometry(x.shape(), k.shape()[3]).unwrap();
        let (xv, kv) = (x.host(), k.host());
        let mut y = vec![0.0; g.n * g.oh * g.ow * g.f];
        for n in 0..g.n {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for f in 0..g.f {
                        let mut acc = 0.0;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.sh + ky * g.dh) as isize - g.pad_top as isize;
                                let ix = (ox * g.sw + kx * g.dw) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                for c in 0..g.c {
                                    acc += xv
                                        [((n * g.h + iy as usize) * g.w + ix as usize) * g.c + c]
                                        * kv[((ky * g.kw + kx) * g.c + c) * g.f + f];
                                }
                            }
                        }
                        y[((n * g.oh + oy) * g.ow + ox) * g.f + f] = acc;
                    }
                }
            }
        }
        y
    }

    fn spec(k: (usize, usize), s: (usize, usize), d: (usize, usize), p: Padding) -> ConvSpec {
        ConvSpec {
            kernel: k,
            strides: s,
            dilation: d,
            padding: p,
        }
    }

    fn cases() -> Vec<(Vec<usize>, ConvSpec, usize)> {
        vec![
            (
                vec![2, 5, 6, 3],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                4,
            ),
            (
                vec![2, 7, 9, 2],
                spec((3, 3), (2, 2), (1, 1), Padding::Same),
                3,
            ),
            (
                vec![1, 8, 7, 2],
                spec((3, 2), (1, 1), (2, 2), Padding::Valid),
                2,
            ),
            (
                vec![2, 6, 5, 3],
                spec((2, 3), (2, 1), (1, 2), Padding::Same),
                2,
            ),
            (
                vec![3, 4, 4, 5],
                spec((1, 1), (1, 1), (1, 1), Padding::Valid),
                3,
            ),
            (
                vec![2, 5, 5, 2],
                spec((1, 1), (2, 2), (1, 1), Padding::Valid),
                3,
            ),
            (
                vec![2, 1, 9, 2],
                spec((1, 3), (1, 2), (1, 1), Padding::Causal),
                2,
            ),
            // Enough channels for the Winograd path (device/cpu_winograd.rs); the ones
            // above with at most 4 input channels take the direct path (cpu_direct.rs).
            (
                vec![1, 6, 5, 16],
                spec((3, 3), (1, 1), (1, 1), Padding::Same),
                16,
            ),
        ]
    }

    #[test]
    fn forward_matches_the_definition() {
        for (shape, spec, f) in cases() {
            let x = random_tensor(&shape, 1, 1.0);
            let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], f], 2, 1.0);
            let mut t = Tape::new();
            let (xv, kv) = (t.leaf(x.clone(), false), t.leaf(k.clone(), false));
            let y = conv2d(&mut t, xv, kv, &spec).unwrap();
            let want = naive(&x, &k, &spec);
            for (a, b) in t.value(y).host().iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{spec:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn conv_then_max_pool_in_one_op_matches_the_two_ops() {
        use crate::ops::pool::{max_pool2d, Padding as PoolPadding};
        let window = |p: usize, s: usize, padding| PoolWindow {
            pool: (p, p),
            strides: (s, s),
            padding,
        };
        // The direct path (1 input channel, the workshop CNN's first layer), Winograd
        // (32 channels: its second; 2x2 pooling runs inside its output transform, over
        // odd and even maps), im2col (strided), with odd maps, 'same' pooling and
        // a batch longer than one step of the fused loop (the 70 samples of the second
        // case take three).
        let cases = [
            (
                vec![9, 28, 28, 1],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                32,
                window(2, 2, PoolPadding::Valid),
            ),
            // The direct path with 27 taps (3x3 over RGB), its kernel read from memory.
            (
                vec![2, 8, 9, 3],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                5,
                window(2, 2, PoolPadding::Valid),
            ),
            (
                vec![70, 13, 13, 32],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                20,
                window(2, 2, PoolPadding::Valid),
            ),
            (
                vec![3, 9, 8, 6],
                spec((3, 3), (2, 1), (1, 1), Padding::Same),
                5,
                window(3, 2, PoolPadding::Same),
            ),
            (
                vec![4, 9, 10, 16],
                spec((3, 3), (1, 1), (1, 1), Padding::Same),
                16,
                window(2, 2, PoolPadding::Valid),
            ),
            // Winograd with 'same' 2x2 pooling on an odd (11x11) map: the window over
            // the edge is not in the tiles, so the general path runs.
            (
                vec![3, 13, 13, 16],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                16,
                window(2, 2, PoolPadding::Same),
            ),
            (
                vec![2, 7, 7, 16],
                spec((3, 3), (1, 1), (1, 1), Padding::Same),
                16,
                window(3, 1, PoolPadding::Valid),
            ),
        ];
        for (shape, spec, f, w) in cases {
            let x = random_tensor(&shape, 3, 1.0);
            let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], f], 4, 0.5);
            let b = random_tensor(&[f], 5, 0.5);
            for act in [Activation::Relu, Activation::Linear, Activation::Tanh] {
                let mut t = Tape::new();
                let (xv, kv, bv) = (
                    t.leaf(x.clone(), false),
                    t.leaf(k.clone(), false),
                    t.leaf(b.clone(), false),
                );
                let fused = conv2d_max_pool(&mut t, xv, kv, Some(bv), act, &spec, &w)
                    .unwrap()
                    .unwrap();
                let conv = conv2d_bias_activation(&mut t, xv, kv, Some(bv), act, &spec).unwrap();
                let want = max_pool2d(&mut t, conv, w.pool, w.strides, w.padding).unwrap();
                assert_eq!(
                    t.value(fused).shape(),
                    t.value(want).shape(),
                    "{spec:?} {w:?}"
                );
                // The direct path and im2col run the same kernels on the same values;
                // Winograd's fused path stops its tiles at the last row and column the
                // windows read, which may mix tile sizes where the unpooled output does
                // not: within Winograd's error bound of the largest value (the tests
                // of cpu_winograd), 2e-5.
                let want = t.value(want).host();
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                for (a, e) in t.value(fused).host().iter().zip(want) {
                    assert!(
                        (a - e).abs() <= 2e-5 * scale,
                        "{spec:?} {w:?} {act:?}: {a} vs {e}"
                    );
                }
            }
            // Softmax acts on whole rows of the convolution's output: not fused.
            let mut t = Tape::new();
            let (xv, kv) = (t.leaf(x.clone(), false), t.leaf(k.clone(), false));
            let softmax = conv2d_max_pool(&mut t, xv, kv, None, Activation::Softmax, &spec, &w);
            assert!(softmax.unwrap().is_none());
            // Training needs the convolution's own output: no fused op then.
            let mut t = Tape::new();
            let (xv, kv) = (t.leaf(x.clone(), false), t.leaf(k.clone(), true));
            assert!(
                conv2d_max_pool(&mut t, xv, kv, None, Activation::Relu, &spec, &w)
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn depthwise_matches_per_channel_convolutions() {
        // Channel c's j-th output is a plain convolution of channel c alone.
        let spec = spec((3, 2), (2, 1), (1, 1), Padding::Same);
        let x = random_tensor(&[2, 5, 4, 3], 8, 1.0);
        let k = random_tensor(&[3, 2, 3, 2], 9, 1.0);
        let mut t = Tape::new();
        let (xv, kv) = (t.leaf(x.clone(), false), t.leaf(k.clone(), false));
        let y = depthwise_conv2d(&mut t, xv, kv, &spec).unwrap();
        let y = t.value(y).clone();
        assert_eq!(y.shape(), &[2, 3, 4, 6]);
        for ch in 0..3 {
            let xc: Vec<f32> = x.host().iter().skip(ch).step_by(3).copied().collect();
            let kc: Vec<f32> = (0..6)
                .flat_map(|tap| (0..2).map(move |j| (tap, j)))
                .map(|(tap, j)| k.host()[(tap * 3 + ch) * 2 + j])
                .collect();
            let xc = Tensor::from_vec(vec![2, 5, 4, 1], xc).unwrap();
            let kc = Tensor::from_vec(vec![3, 2, 1, 2], kc).unwrap();
            let want = naive(&xc, &kc, &spec);
            for (p, w) in want.chunks(2).enumerate() {
                for j in 0..2 {
                    let got = y.host()[p * 6 + ch * 2 + j];
                    assert!((got - w[j]).abs() < 1e-5, "{got} vs {}", w[j]);
                }
            }
        }
    }

    #[test]
    fn depthwise_gradients_match_finite_differences() {
        for (shape, spec, mult) in [
            (
                vec![2, 5, 4, 3],
                spec((3, 3), (1, 1), (1, 1), Padding::Valid),
                1,
            ),
            (
                vec![1, 6, 5, 2],
                spec((3, 2), (2, 2), (1, 1), Padding::Same),
                2,
            ),
            (
                vec![2, 7, 7, 2],
                spec((3, 3), (1, 1), (2, 2), Padding::Same),
                2,
            ),
        ] {
            let x = random_tensor(&shape, 10, 1.0);
            let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], mult], 11, 1.0);
            check(
                vec![x, k],
                &[true, true],
                |t, v| depthwise_conv2d(t, v[0], v[1], &spec).unwrap(),
                "depthwise_conv2d",
            );
        }
    }

    #[test]
    fn output_sizes_follow_keras() {
        // 'same' with stride 2 on 7: ceil(7/2) = 4, padding total 2 -> 1 before.
        assert_eq!(Padding::Same.along(7, 3, 2, 1), Some((4, 1)));
        // 'same' with stride 2 on 8: 4 outputs, total 1 -> 0 before (odd pixel after).
        assert_eq!(Padding::Same.along(8, 3, 2, 1), Some((4, 0)));
        assert_eq!(Padding::Valid.along(28, 3, 1, 1), Some((26, 0)));
        assert_eq!(Padding::Valid.along(7, 3, 1, 3), Some((1, 0)));
        assert_eq!(Padding::Valid.along(2, 3, 1, 1), None);
        assert_eq!(Padding::Causal.along(9, 3, 1, 2), Some((9, 4)));
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (shape, spec, f) in cases() {
            let x = random_tensor(&shape, 3, 1.0);
            let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], f], 4, 1.0);
            // Linear in each input: a step of 0.25 is exact and stands well above the
            // rounding of the Winograd case's 480 outputs, which moved central
            // differences of step 1e-2 by 4e-3.
            check_with_step(
                vec![x, k],
                &[true, true],
                |t, v| conv2d(t, v[0], v[1], &spec).unwrap(),
                "conv2d",
                0.25,
            );
        }
    }

    #[test]
    fn pointwise_whole_batch_matches_the_products() {
        // A 1x1 stride-1 convolution runs as one product over the batch, its input used
        // in place as the column matrix: y = X K, dX = dY Kᵀ, dK = Xᵀ dY.
        let spec = spec((1, 1), (1, 1), (1, 1), Padding::Valid);
        let (n, p, c, f) = (6, 7 * 7, 24, 40);
        let x = random_tensor(&[n, 7, 7, c], 11, 1.0);
        let k = random_tensor(&[1, 1, c, f], 12, 0.5);
        let gy = random_tensor(&[n, 7, 7, f], 13, 1.0);
        let g = spec.geometry(x.shape(), f).unwrap();
        assert!(g.is_pointwise());
        let (y, _) = device::conv2d_forward(&x, &k, None, Activation::Linear, &g, true);
        let (dx, dk, _) = device::conv2d_backward(
            &x,
            &k,
            &y,
            &gy,
            Activation::Linear,
            None,
            &g,
            (true, true, false),
        );
        let (xv, kv, gv) = (x.host(), k.host(), gy.host());
        let (yv, dx, dk) = (y.host(), dx.unwrap().to_vec(), dk.unwrap().to_vec());
        let close = |a: f32, b: f64| assert!((a as f64 - b).abs() < 1e-3 * b.abs().max(1.0));
        for r in 0..n * p {
            for j in 0..f {
                close(
                    yv[r * f + j],
                    (0..c).map(|i| (xv[r * c + i] * kv[i * f + j]) as f64).sum(),
                );
            }
            for i in 0..c {
                close(
                    dx[r * c + i],
                    (0..f).map(|j| (gv[r * f + j] * kv[i * f + j]) as f64).sum(),
                );
            }
        }
        for i in 0..c {
            for j in 0..f {
                let want = (0..n * p)
                    .map(|r| (xv[r * c + i] * gv[r * f + j]) as f64)
                    .sum();
                close(dk[i * f + j], want);
            }
        }
    }

    #[test]
    fn small_feature_maps_take_several_samples_per_step() {
        // 3x3 on 2x2 maps with many channels: the cache budget alone would give one
        // sample per step; steps of several samples (the last one partial) must give
        // the same results as the definition and as kept columns.
        let spec = spec((3, 3), (1, 1), (1, 1), Padding::Same);
        let x = random_tensor(&[70, 2, 2, 2800], 14, 1.0);
        let k = random_tensor(&[3, 3, 2800, 4], 15, 0.05);
        let g = spec.geometry(x.shape(), 4).unwrap();
        assert!(g.out_pixels() * g.patch_len() * 2 > 192 * 1024 && g.n > 64);
        let (y, cols) = device::conv2d_forward(&x, &k, None, Activation::Linear, &g, true);
        let want = naive(&x, &k, &spec);
        for (a, b) in y.host().iter().zip(&want) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        let gy = random_tensor(&[70, 2, 2, 4], 16, 1.0);
        let grads = |cols: Option<&Tensor>| {
            device::conv2d_backward(
                &x,
                &k,
                &y,
                &gy,
                Activation::Linear,
                cols,
                &g,
                (false, true, false),
            )
            .1
        };
        let (rebuilt, kept) = (
            grads(None).unwrap().to_vec(),
            grads(cols.as_ref()).unwrap().to_vec(),
        );
        assert_eq!(rebuilt, kept);
    }

    #[test]
    fn kernel_gradient_alone_kept_or_rebuilt_and_across_im2col_steps() {
        // Enough samples that the columns are built in several steps.
        let spec = spec((3, 3), (1, 1), (1, 1), Padding::Same);
        let x = random_tensor(&[40, 12, 12, 16], 5, 1.0);
        let k = random_tensor(&[3, 3, 16, 8], 6, 0.5);
        let g = spec.geometry(x.shape(), 8).unwrap();
        assert!(g.n * g.out_pixels() * g.patch_len() > 192 * 1024);
        let gy = random_tensor(&[40, 12, 12, 8], 7, 1.0);
        let (y, cols) = device::conv2d_forward(&x, &k, None, Activation::Linear, &g, true);
        let grads = |cols: Option<&Tensor>, want| {
            device::conv2d_backward(&x, &k, &y, &gy, Activation::Linear, cols, &g, want)
        };
        let (dx, dk, _) = grads(None, (true, true, false));
        let (dx_alone, _, _) = grads(None, (true, false, false));
        let (_, dk_alone, _) = grads(None, (false, true, false));
        let (_, dk_kept, _) = grads(cols.as_ref(), (false, true, false));
        assert_eq!(dx.unwrap().to_vec(), dx_alone.unwrap().to_vec());
        let dk = dk.unwrap().to_vec();
        assert_eq!(dk, dk_alone.unwrap().to_vec());
        assert_eq!(dk, dk_kept.unwrap().to_vec());
        // dK[0, 0, 0, 0] by hand: sum over pixels of x[n, y-1, x-1, 0] * gy[n, y, x, 0].
        let (xv, gv) = (x.host(), gy.host());
        let mut want = 0.0f64;
        for n in 0..40 {
            for oy in 1..12 {
                for ox in 1..12 {
                    want += (xv[((n * 12 + oy - 1) * 12 + ox - 1) * 16]
                        * gv[((n * 12 + oy) * 12 + ox) * 8]) as f64;
                }
            }
        }
        assert!((dk[0] as f64 - want).abs() < 1e-3 * want.abs().max(1.0));
    }

    #[test]
    fn fused_bias_activation_matches_separate_ops() {
        for (shape, spec, f) in cases() {
            for act in [Activation::Relu, Activation::Tanh, Activation::Gelu] {
                let x = random_tensor(&shape, 12, 1.0);
                let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], f], 13, 1.0);
                let b = random_tensor(&[f], 14, 1.0);
                let mut t = Tape::new();
                let (xv, kv, bv) = (t.leaf(x, true), t.leaf(k, true), t.leaf(b, true));
                let fused = conv2d_bias_activation(&mut t, xv, kv, Some(bv), act, &spec).unwrap();
                let z = conv2d(&mut t, xv, kv, &spec).unwrap();
                let z = crate::ops::bias::bias_add(&mut t, z, bv).unwrap();
                let plain = crate::ops::activation::activation(&mut t, z, act);
                for (a, c) in t.value(fused).host().iter().zip(t.value(plain).host()) {
                    assert!((a - c).abs() < 1e-5, "{act:?}: {a} vs {c}");
                }
            }
            let x = random_tensor(&shape, 15, 1.0);
            let k = random_tensor(&[spec.kernel.0, spec.kernel.1, shape[3], f], 16, 1.0);
            let b = random_tensor(&[f], 17, 1.0);
            check(
                vec![x, k, b],
                &[true, true, true],
                |t, v| {
                    conv2d_bias_activation(t, v[0], v[1], Some(v[2]), Activation::Tanh, &spec)
                        .unwrap()
                },
                "conv2d_bias_activation",
            );
        }
    }

    #[test]
    fn mismatched_shapes_are_errors() {
        let mut t = Tape::new();
        let x = t.leaf(random_tensor(&[1, 5, 5, 2], 1, 1.0), false);
        let k = t.leaf(random_tensor(&[3, 3, 3, 4], 1, 1.0), false);
        let s = spec((3, 3), (1, 1), (1, 1), Padding::Valid);
        assert!(conv2d(&mut t, x, k, &s).is_err());
        let x = t.leaf(random_tensor(&[1, 2, 2, 3], 1, 1.0), false);
        let e = conv2d(&mut t, x, k, &s).err().unwrap().to_string();
        assert!(e.contains("larger than the input"), "{e}");
    }
}
