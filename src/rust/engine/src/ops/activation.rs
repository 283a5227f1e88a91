//! Activation functions (Keras 3's `keras.activations`): forward, backward and tape ops.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Linear,
    Relu,
    Relu6,
    LeakyRelu,
    Elu,
    Selu,
    Gelu,
    Sigmoid,
    HardSigmoid,
    Tanh,
    Softplus,
    Softsign,
    Silu,
    Exponential,
    Softmax,
    LogSoftmax,
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
const LEAKY_SLOPE: f32 = 0.2;

impl Activation {
    pub const NAMES: [&'static str; 17] = [
        "linear",
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "sigmoid",
        "hard_sigmoid",
        "tanh",
        "softplus",
        "softsign",
        "silu",
        "swish",
        "exponential",
        "softmax",
        "log_softmax",
    ];

    pub fn from_name(name: &str) -> Result<Activation> {
        use Activation::*;
        Ok(match name {
            "linear" | "None" | "" => Linear,
            "relu" => Relu,
            "relu6" => Relu6,
            "leaky_relu" => LeakyRelu,
            "elu" => Elu,
            "selu" => Selu,
            "gelu" => Gelu,
            "sigmoid" => Sigmoid,
            "hard_sigmoid" => HardSigmoid,
            "tanh" => Tanh,
            "softplus" => Softplus,
            "softsign" => Softsign,
            "silu" | "swish" => Silu,
            "exponential" => Exponential,
            "softmax" => Softmax,
            "log_softmax" => LogSoftmax,
            _ => {
                return Err(Error::UnknownName {
                    kind: "activation",
                    name: name.to_string(),
                    known: Self::NAMES.to_vec(),
                })
            }
        })
    }

    /// The name Keras writes in a layer config.
    pub fn name(self) -> &'static str {
        use Activation::*;
        match self {
            Linear => "linear",
            Relu => "relu",
            Relu6 => "relu6",
            LeakyRelu => "leaky_relu",
            Elu => "elu",
            Selu => "selu",
            Gelu => "gelu",
            Sigmoid => "sigmoid",
            HardSigmoid => "hard_sigmoid",
            Tanh => "tanh",
            Softplus => "softplus",
            Softsign => "softsign",
            Silu => "silu",
            Exponential => "exponential",
            Softmax => "softmax",
            LogSoftmax => "log_softmax",
        }
    }

    /// Softmax-like activations act on whole rows; the rest elementwise.
    pub fn is_rowwise(self) -> bool {
        matches!(self, Activation::Softmax | Activation::LogSoftmax)
    }

    #[inline]
    fn f(self, x: f32) -> f32 {
        use Activation::*;
        match self {
            Linear => x,
            Relu => x.max(0.0),
            Relu6 => x.clamp(0.0, 6.0),
            LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    LEAKY_SLOPE * x
                }
            }
            Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Sigmoid => sigmoid(x),
            HardSigmoid => ((x + 3.0).clamp(0.0, 6.0)) / 6.0,
            Tanh => x.tanh(),
            Softplus => softplus(x),
            Softsign => x / (1.0 + x.abs()),
            Silu => x * sigmoid(x),
            Exponential => x.exp(),
            Softmax | LogSoftmax => unreachable!("row-wise activation used elementwise"),
        }
    }

    /// dy/dx from the input x and the output y (whichever is cheaper).
    #[inline]
    fn df(self, x: f32, y: f32) -> f32 {
        use Activation::*;
        if self.grad_from_output() {
            // y > 0 exactly where x > 0 for the relu family, so the output suffices.
            return self.df_from_output(y);
        }
        match self {
            Gelu => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                cdf + x * pdf
            }
            HardSigmoid => {
                if x > -3.0 && x < 3.0 {
                    1.0 / 6.0
                } else {
                    0.0
                }
            }
            Softplus => sigmoid(x),
            Softsign => {
                let d = 1.0 + x.abs();
                1.0 / (d * d)
            }
            Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            _ => unreachable!("row-wise, or handled by df_from_output above"),
        }
    }

    /// Whether dy/dx can be computed from the output y alone (so a fused op need not
    /// keep the pre-activation values).
    pub fn grad_from_output(self) -> bool {
        use Activation::*;
        matches!(
            self,
            Linear | Relu | Relu6 | LeakyRelu | Elu | Selu | Sigmoid | Tanh | Exponential
        )
    }

    /// dy/dx from y, for activations with `grad_from_output()`.
    #[inline]
    pub fn df_from_output(self, y: f32) -> f32 {
        use Activation::*;
        match self {
            Linear => 1.0,
            Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Relu6 => {
                if y > 0.0 && y < 6.0 {
                    1.0
                } else {
                    0.0
                }
            }
            LeakyRelu => {
                if y > 0.0 {
                    1.0
                } else {
                    LEAKY_SLOPE
                }
            }
            Elu => {
                if y > 0.0 {
                    1.0
                } else {
                    y + 1.0
                }
            }
            Selu => {
                if y > 0.0 {
                    SELU_SCALE
                } else {
                    y + SELU_SCALE * SELU_ALPHA
                }
            }
            Sigmoid => y * (1.0 - y),
            Tanh => 1.0 - y * y,
            Exponential => y,
            _ => unreachable!("activation whose gradient needs its input"),
        }
    }

    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        self.f(x)
    }

    pub fn forward_slice(self, x: &[f32], out: &mut [f32]) {
        // ReLU and the identity get loops of their own, which the compiler vectorises
        // (the generic loop matches on the activation per element).
        match self {
            Activation::Relu => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v.max(0.0);
                }
            }
            Activation::Linear => out.copy_from_slice(&x[..out.len()]),
            _ => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = self.f(v);
                }
            }
        }
    }

    pub fn backward_slice(self, x: &[f32], y: &[f32], g: &[f32], out: &mut [f32]) {
        match self {
            Activation::Relu => {
                for ((o, &y), &g) in out.iter_mut().zip(y).zip(g) {
                    *o = if y > 0.0 { g } else { 0.0 };
                }
            }
            _ => {
                for (((o, &x), &y), &g) in out.iter_mut().zip(x).zip(y).zip(g) {
                    *o = g * self.df(x, y);
                }
            }
        }
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[inline]
fn softplus(x: f32) -> f32 {
    // log(1 + e^x) without overflow for large x.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// erf with Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, enough for f32).
#[inline]
pub fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() as f64);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-(x as f64) * (x as f64)).exp();
    (y as f32).copysign(x)
}

struct ActivationBackward(Activation);

impl Backward for ActivationBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = inputs[0];
        let cols = x.shape().last().copied().unwrap_or(1);
        let dx = match self.0 {
            Activation::Softmax => device::softmax_rows_backward(out, g, cols),
            Activation::LogSoftmax => device::log_softmax_rows_backward(out, g, cols),
            act => device::activation_backward(act, x, out, g),
        };
        Ok(vec![Some(dx)])
    }
}

/// y = act(x); softmax and log_softmax act along the last axis.
pub fn activation(tape: &mut Tape, x: Var, act: Activation) -> Var {
    if act == Activation::Linear {
        return x;
    }
    let xv = tape.value(x);
    let cols = xv.shape().last().copied().unwrap_or(1);
    let y = match act {
        Activation::Softmax => device::softmax_rows(xv, cols),
        Activation::LogSoftmax => device::log_softmax_rows(xv, cols),
        _ => device::activation_forward(act, xv),
    };
    tape.push(y, &[x], Box::new(ActivationBackward(act)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_unary;

    #[test]
    fn forward_values_match_keras_definitions() {
        let xs = [-2.0f32, -0.5, 0.0, 0.7, 3.0];
        let approx = |a: f32, b: f32| assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        for &x in &xs {
            approx(Activation::Relu.f(x), x.max(0.0));
            approx(Activation::Sigmoid.f(x), 1.0 / (1.0 + (-x).exp()));
            approx(Activation::Tanh.f(x), x.tanh());
            approx(Activation::Softplus.f(x), (1.0 + x.exp()).ln());
        }
        // Reference values from the definitions in f64 (gelu exact form, selu constants).
        approx(Activation::Gelu.f(1.0), 0.841_344_7);
        approx(Activation::Gelu.f(-0.5), -0.154_268_57);
        approx(Activation::Selu.f(-1.0), -1.111_330_7);
        approx(Activation::Elu.f(-1.0), -0.632_120_56);
        approx(Activation::HardSigmoid.f(1.0), 4.0 / 6.0);
        approx(Activation::LeakyRelu.f(-1.0), -0.2);
    }

    #[test]
    fn erf_is_accurate() {
        // erf(0.5), erf(1), erf(2) from tables.
        assert!((erf(0.5) - 0.520_499_9).abs() < 2e-7);
        assert!((erf(1.0) - 0.842_700_8).abs() < 2e-7);
        assert!((erf(-2.0) + 0.995_322_3).abs() < 2e-7);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for name in Activation::NAMES {
            let act = Activation::from_name(name).unwrap();
            // Keep away from the kinks of relu-like functions, where differences lie.
            check_unary(&[3, 5], |t, x| activation(t, x, act), 0.3, name);
        }
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let e = Activation::from_name("relux").unwrap_err().to_string();
        assert!(e.contains("unknown activation 'relux'"), "{e}");
        assert!(e.contains("softmax"), "{e}");
    }
}
