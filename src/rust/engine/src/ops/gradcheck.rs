//! Finite-difference gradient checks shared by the op tests.

use rand::{Rng, SeedableRng};

use crate::autodiff::{Tape, Var};
use crate::ops::math;
use crate::tensor::Tensor;

pub fn random_tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(shape.to_vec(), data).unwrap()
}

/// Scalar objective: the op's output itself if it is a scalar, else a fixed random
/// weighting of its elements (so every output element's gradient is exercised).
fn objective(
    inputs: &[Tensor],
    f: &dyn Fn(&mut Tape, &[Var]) -> Var,
    needs: &[bool],
) -> (Tape, Vec<Var>, Var) {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .zip(needs)
        .map(|(x, &n)| tape.leaf(x.clone(), n))
        .collect();
    let y = f(&mut tape, &vars);
    let out = tape.value(y);
    let root = if out.numel() == 1 {
        y
    } else {
        let w = tape.leaf(random_tensor(out.shape(), 99, 1.0), false);
        let p = math::mul(&mut tape, y, w).unwrap();
        math::sum(&mut tape, p)
    };
    (tape, vars, root)
}

/// Compares the tape's gradients with central differences (f32, step 1e-2).
pub fn check(
    inputs: Vec<Tensor>,
    needs: &[bool],
    f: impl Fn(&mut Tape, &[Var]) -> Var,
    name: &str,
) {
    check_with_step(inputs, needs, f, name, 1e-2);
}

/// `check` with central differences of step `h`. An op linear in each input has exact
/// central differences at any step, and a larger one keeps the objective's f32
/// rounding (about 1e-4 on a weighted sum of hundreds of outputs) from dominating them.
pub fn check_with_step(
    inputs: Vec<Tensor>,
    needs: &[bool],
    f: impl Fn(&mut Tape, &[Var]) -> Var,
    name: &str,
    h: f32,
) {
    let (tape, vars, root) = objective(&inputs, &f, needs);
    let grads = tape.backward(root).unwrap();
    for (i, (&v, &need)) in vars.iter().zip(needs).enumerate() {
        if !need {
            continue;
        }
        let analytic = grads
            .get(v)
            .expect("gradient for an input that needs one")
            .to_vec();
        for j in 0..inputs[i].numel() {
            let eval = |delta: f32| {
                let mut xs = inputs.clone();
                xs[i].host_mut()[j] += delta;
                let (t, _, r) = objective(&xs, &f, needs);
                t.value(r).item() as f64
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h as f64);
            let a = analytic[j] as f64;
            let tol = 2e-3 + 1e-2 * numeric.abs().max(a.abs());
            assert!(
                (numeric - a).abs() <= tol,
                "{name}: input {i} element {j}: analytic {a}, numeric {numeric}"
            );
        }
    }
}

/// Gradient check of a one-input op on values in [-2, 2] that stay at least `gap` away
/// from 0, where relu-like functions have a kink that differences cannot see across.
pub fn check_unary(shape: &[usize], f: impl Fn(&mut Tape, Var) -> Var, gap: f32, name: &str) {
    let mut x = random_tensor(shape, 11, 2.0);
    for v in x.host_mut() {
        if v.abs() < gap {
            *v = if *v < 0.0 { -gap } else { gap };
        }
    }
    check(vec![x], &[true], |t, v| f(t, v[0]), name);
}
