//! Keras's merge operations over two or more tensors: elementwise add, subtract,
//! multiply, average, maximum and minimum, and concatenation along an axis.
//!
//! Elementwise inputs have one rank; an axis of size 1 broadcasts against the others
//! (Keras's `Merge._compute_elemwise_op_output_shape` for inputs of equal rank). Keras
//! also aligns inputs of different ranks; that is left out here and is an error.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{invalid_arg, Error, Result};
use crate::tensor::Tensor;

/// How a kernel folds one more input into an accumulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    Add,
    Sub,
    Mul,
    Max,
    Min,
}

/// The elementwise merges, one per Keras layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elementwise {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

impl Elementwise {
    pub fn op_name(self) -> &'static str {
        match self {
            Elementwise::Add => "add",
            Elementwise::Subtract => "subtract",
            Elementwise::Multiply => "multiply",
            Elementwise::Average => "average",
            Elementwise::Maximum => "maximum",
            Elementwise::Minimum => "minimum",
        }
    }

    fn combine(self) -> Combine {
        match self {
            // Average sums, then scales by 1/n as Keras does.
            Elementwise::Add | Elementwise::Average => Combine::Add,
            Elementwise::Subtract => Combine::Sub,
            Elementwise::Multiply => Combine::Mul,
            Elementwise::Maximum => Combine::Max,
            Elementwise::Minimum => Combine::Min,
        }
    }
}

/// The shape of `a` and `b` broadcast together: same rank, and on each axis equal sizes
/// or a 1 in one of them. `None` when they do not broadcast.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.len() != b.len() {
        return None;
    }
    a.iter()
        .zip(b)
        .map(|(&i, &j)| match (i, j) {
            (1, j) => Some(j),
            (i, 1) => Some(i),
            (i, j) => (i == j).then_some(i),
        })
        .collect()
}

/// `axis` counted from the end when negative (-1 is the last), as Keras counts it;
/// `None` outside a tensor of `rank` axes.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

/// The shape of `shapes` concatenated along `axis`: all of one rank, equal on every other
/// axis. `Err` holds the index of the first input that does not fit the first.
pub fn concat_shape(shapes: &[&[usize]], axis: usize) -> std::result::Result<Vec<usize>, usize> {
    let first = shapes[0];
    let mut out = first.to_vec();
    for (i, s) in shapes.iter().enumerate().skip(1) {
        let fits = s.len() == first.len()
            && s.iter()
                .zip(first)
                .enumerate()
                .all(|(ax, (a, b))| ax == axis || a == b);
        if !fits {
            return Err(i);
        }
        out[axis] += s[axis];
    }
    Ok(out)
}

fn check_count(op: &'static str, n: usize, exactly_two: bool) -> Result<()> {
    if exactly_two && n != 2 {
        return Err(invalid_arg(
            "inputs",
            format!("to {op} must be exactly 2 tensors, not {n}"),
        ));
    }
    if n < 2 {
        return Err(invalid_arg(
            "inputs",
            format!("to {op} must be at least 2 tensors, not {n}"),
        ));
    }
    Ok(())
}

struct ElementwiseBackward(Elementwise);

impl Backward for ElementwiseBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let n = inputs.len();
        let grad = |i: usize| {
            // The gradient at the output's shape, then summed over the axes input i
            // was broadcast along.
            let full = match self.0 {
                Elementwise::Add | Elementwise::Subtract | Elementwise::Average => g.clone(),
                Elementwise::Multiply => {
                    let mut p = g.clone();
                    for (j, x) in inputs.iter().enumerate() {
                        if j != i {
                            device::combine_assign(Combine::Mul, &mut p, x);
                        }
                    }
                    p
                }
                Elementwise::Maximum | Elementwise::Minimum => {
                    device::extremum_grad(inputs, out, g, i)
                }
            };
            let gi = device::sum_to_shape(&full, inputs[i].shape());
            match self.0 {
                Elementwise::Subtract if i == 1 => device::scale(&gi, -1.0),
                Elementwise::Average => device::scale(&gi, 1.0 / n as f32),
                _ => gi,
            }
        };
        Ok((0..n).map(|i| needs[i].then(|| grad(i))).collect())
    }
}

/// The elementwise merge `kind` of `xs` (at least 2; exactly 2 for subtract).
///
/// Maximum and minimum send the gradient of each element to the first input that holds
/// the result, so ties go to the earlier input (TF's rule for `maximum`; JAX splits a
/// tie evenly). Either is a subgradient; the first-wins rule keeps one path per element.
pub fn elementwise(tape: &mut Tape, kind: Elementwise, xs: &[Var]) -> Result<Var> {
    let op = kind.op_name();
    check_count(op, xs.len(), kind == Elementwise::Subtract)?;
    let mut shape = tape.value(xs[0]).shape().to_vec();
    for &x in &xs[1..] {
        let s = tape.value(x).shape();
        shape = broadcast_shape(&shape, s).ok_or_else(|| Error::ShapeMismatch {
            op,
            lhs: shape.clone(),
            rhs: s.to_vec(),
        })?;
    }
    let mut y = device::broadcast_to(tape.value(xs[0]), &shape);
    for &x in &xs[1..] {
        device::combine_assign(kind.combine(), &mut y, tape.value(x));
    }
    if kind == Elementwise::Average {
        y = device::scale(&y, 1.0 / xs.len() as f32);
    }
    Ok(tape.push(y, xs, Box::new(ElementwiseBackward(kind))))
}

pub fn add(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Add, xs)
}

/// xs[0] - xs[1]; exactly two inputs, as Keras's Subtract takes.
pub fn subtract(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Subtract, xs)
}

pub fn multiply(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Multiply, xs)
}

pub fn average(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Average, xs)
}

pub fn maximum(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Maximum, xs)
}

pub fn minimum(tape: &mut Tape, xs: &[Var]) -> Result<Var> {
    elementwise(tape, Elementwise::Minimum, xs)
}

struct ConcatBackward {
    axis: usize,
}

impl Backward for ConcatBackward {
    fn backward(
        &self,
        g: &Tensor,
        inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut grads = Vec::with_capacity(inputs.len());
        for (x, &need) in inputs.iter().zip(needs) {
            let len = x.shape()[self.axis];
            grads.push(need.then(|| device::slice_axis(g, self.axis, start, len)));
            start += len;
        }
        Ok(grads)
    }
}

/// `xs` (at least 2) joined along `axis`, which counts every axis (the batch axis is 0)
/// and counts from the end when negative. The other axes must match exactly.
pub fn concatenate(tape: &mut Tape, xs: &[Var], axis: i64) -> Result<Var> {
    check_count("concatenate", xs.len(), false)?;
    let shapes: Vec<&[usize]> = xs.iter().map(|&x| tape.value(x).shape()).collect();
    let rank = shapes[0].len();
    let ax = normalize_axis(axis, rank).ok_or_else(|| {
        invalid_arg(
            "axis",
            format!("= {axis} is out of range for tensors of rank {rank}"),
        )
    })?;
    if let Err(i) = concat_shape(&shapes, ax) {
        return Err(Error::ShapeMismatch {
            op: "concatenate",
            lhs: shapes[0].to_vec(),
            rhs: shapes[i].to_vec(),
        });
    }
    let values: Vec<&Tensor> = xs.iter().map(|&x| tape.value(x)).collect();
    let y = device::concat(&values, ax);
    Ok(tape.push(y, xs, Box::new(ConcatBackward { axis: ax })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// The op's output for `inputs`, none of them needing a gradient.
    fn run(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Result<Var>) -> Result<Tensor> {
        let mut tape = Tape::new();
        let vs: Vec<Var> = inputs.iter().map(|x| tape.leaf(x.clone(), false)).collect();
        let y = f(&mut tape, &vs)?;
        Ok(tape.value(y).clone())
    }

    /// Gradients of sum(op(inputs)) for every input.
    fn grads(inputs: &[Tensor], f: impl Fn(&mut Tape, &[Var]) -> Result<Var>) -> Vec<Vec<f32>> {
        let mut tape = Tape::new();
        let vs: Vec<Var> = inputs.iter().map(|x| tape.leaf(x.clone(), true)).collect();
        let y = f(&mut tape, &vs).unwrap();
        let s = crate::ops::math::sum(&mut tape, y);
        let g = tape.backward(s).unwrap();
        vs.iter().map(|&v| g.get(v).unwrap().to_vec()).collect()
    }

    #[test]
    fn elementwise_values() {
        let a = t(&[2, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2], &[4., 3., 2., 1.]);
        let c = t(&[2, 2], &[0., 5., -1., 4.]);
        let abc = [a.clone(), b.clone(), c.clone()];
        let y =
            |f: fn(&mut Tape, &[Var]) -> Result<Var>, xs: &[Tensor]| run(xs, f).unwrap().to_vec();
        assert_eq!(y(add, &abc), vec![5., 10., 4., 9.]);
        assert_eq!(y(subtract, &[a.clone(), b.clone()]), vec![-3., -1., 1., 3.]);
        assert_eq!(y(multiply, &abc), vec![0., 30., -6., 16.]);
        assert_eq!(y(average, &[a.clone(), b.clone()]), vec![2.5; 4]);
        assert_eq!(y(maximum, &abc), vec![4., 5., 3., 4.]);
        assert_eq!(y(minimum, &abc), vec![0., 2., -1., 1.]);
    }

    #[test]
    fn size_one_axes_broadcast() {
        // (2, 3) + (2, 1) + (1, 3): a column and a row spread over the matrix.
        let m = t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let col = t(&[2, 1], &[10., 20.]);
        let row = t(&[1, 3], &[100., 200., 300.]);
        let y = run(&[m, col.clone(), row.clone()], add).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.to_vec(), vec![111., 212., 313., 124., 225., 326.]);
        // Two broadcasting inputs make a shape neither has.
        let y = run(&[col, row], multiply).unwrap();
        assert_eq!(y.shape(), &[2, 3]);
        assert_eq!(y.to_vec(), vec![1000., 2000., 3000., 2000., 4000., 6000.]);
        assert_eq!(broadcast_shape(&[4, 1, 3], &[1, 5, 3]), Some(vec![4, 5, 3]));
        assert_eq!(broadcast_shape(&[4], &[5]), None);
        assert_eq!(broadcast_shape(&[4], &[2, 4]), None);
    }

    #[test]
    fn elementwise_gradients() {
        let a = t(&[2, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2], &[4., 3., 2., 1.]);
        let c = t(&[2, 2], &[0., 5., -1., 4.]);
        let abc = [a.clone(), b.clone(), c.clone()];
        let g = grads(&abc, add);
        assert_eq!(g, vec![vec![1.; 4]; 3]);
        let g = grads(&[a.clone(), b.clone()], subtract);
        assert_eq!(g, vec![vec![1.; 4], vec![-1.; 4]]);
        let g = grads(&abc, average);
        assert!(g.iter().flatten().all(|&v| (v - 1. / 3.).abs() < 1e-7));
        let g = grads(&abc, multiply);
        assert_eq!(g[0], vec![0., 15., -2., 4.]);
        assert_eq!(g[1], vec![0., 10., -3., 16.]);
        assert_eq!(g[2], vec![4., 6., 6., 4.]);
        // Element 3 ties between a and c (4 and 4): the earlier input, a, takes it.
        let g = grads(&abc, maximum);
        assert_eq!(
            g,
            vec![
                vec![0., 0., 1., 1.],
                vec![1., 0., 0., 0.],
                vec![0., 1., 0., 0.]
            ]
        );
        let g = grads(&abc, minimum);
        assert_eq!(
            g,
            vec![
                vec![0., 1., 0., 0.],
                vec![0., 0., 0., 1.],
                vec![1., 0., 1., 0.]
            ]
        );
        // A broadcast input gets the sum over the axis it was spread along.
        let col = t(&[2, 1], &[10., 20.]);
        let g = grads(&[a.clone(), col.clone()], add);
        assert_eq!(g[1], vec![2., 2.]);
        let g = grads(&[a, col], multiply);
        assert_eq!(g, vec![vec![10., 10., 20., 20.], vec![3., 7.]]);
        // The same tensor twice: both paths add up.
        let mut tape = Tape::new();
        let x = tape.leaf(t(&[2], &[3., -2.]), true);
        let y = multiply(&mut tape, &[x, x]).unwrap();
        let s = crate::ops::math::sum(&mut tape, y);
        assert_eq!(
            tape.backward(s).unwrap().get(x).unwrap().to_vec(),
            vec![6., -4.]
        );
    }

    /// Tensors of `shapes` whose values are 0.1 apart in a random order, so that no
    /// two inputs come within a finite-difference step of each other.
    fn distinct(shapes: &[&[usize]], seed: u64) -> Vec<Tensor> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let total: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        let mut v: Vec<f32> = (0..total)
            .map(|i| i as f32 * 0.1 - total as f32 * 0.05)
            .collect();
        v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut rest = &v[..];
        shapes
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                let (head, tail) = rest.split_at(n);
                rest = tail;
                Tensor::from_vec(s.to_vec(), head.to_vec()).unwrap()
            })
            .collect()
    }

    #[test]
    fn elementwise_gradients_match_finite_differences() {
        let cases: [&[&[usize]]; 3] = [
            &[&[3, 4], &[3, 4]],
            &[&[2, 3, 4], &[2, 3, 4], &[2, 3, 4]],
            &[&[2, 3, 4], &[2, 1, 4], &[1, 3, 1]],
        ];
        for shapes in cases {
            let xs = distinct(shapes, 5);
            let needs = vec![true; xs.len()];
            for kind in [
                Elementwise::Add,
                Elementwise::Multiply,
                Elementwise::Average,
                Elementwise::Maximum,
                Elementwise::Minimum,
            ] {
                check(
                    xs.clone(),
                    &needs,
                    |t, v| elementwise(t, kind, v).unwrap(),
                    kind.op_name(),
                );
            }
            check(
                xs[..2].to_vec(),
                &[true, true],
                |t, v| subtract(t, v).unwrap(),
                "subtract",
            );
        }
    }

    #[test]
    fn concatenate_values_along_each_axis() {
        let a = t(&[2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let b = t(&[2, 1, 2], &[-1., -2., -3., -4.]);
        let y = run(&[a.clone(), b.clone()], |t, v| concatenate(t, v, 1)).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2]);
        assert_eq!(
            y.to_vec(),
            vec![1., 2., 3., 4., -1., -2., 5., 6., 7., 8., -3., -4.]
        );
        let c = t(&[2, 2, 1], &[10., 20., 30., 40.]);
        // axis = -1: the last, as Keras's default.
        let y = run(&[a.clone(), c.clone(), c], |t, v| concatenate(t, v, -1)).unwrap();
        assert_eq!(y.shape(), &[2, 2, 4]);
        assert_eq!(
            y.to_vec(),
            vec![1., 2., 10., 10., 3., 4., 20., 20., 5., 6., 30., 30., 7., 8., 40., 40.]
        );
        let y = run(&[a.clone(), a], |t, v| concatenate(t, v, 0)).unwrap();
        assert_eq!(y.shape(), &[4, 2, 2]);
        assert_eq!(&y.to_vec()[..8], &y.to_vec()[8..]);
    }

    #[test]
    fn concatenate_gradient_splits_the_output_gradient() {
        let a = t(&[1, 2, 2], &[1., 2., 3., 4.]);
        let b = t(&[1, 2, 1], &[5., 6.]);
        let mut tape = Tape::new();
        let va = tape.leaf(a, true);
        let vb = tape.leaf(b, true);
        let y = concatenate(&mut tape, &[va, vb], -1).unwrap();
        // Weight output element k by k: each input gets back its own positions.
        let w = tape.leaf(t(&[1, 2, 3], &[0., 1., 2., 3., 4., 5.]), false);
        let p = crate::ops::math::mul(&mut tape, y, w).unwrap();
        let s = crate::ops::math::sum(&mut tape, p);
        let g = tape.backward(s).unwrap();
        assert_eq!(g.get(va).unwrap().to_vec(), vec![0., 1., 3., 4.]);
        assert_eq!(g.get(vb).unwrap().to_vec(), vec![2., 5.]);
    }

    #[test]
    fn concatenate_gradients_match_finite_differences() {
        let a = random_tensor(&[2, 3, 4], 1, 1.0);
        let b = random_tensor(&[2, 1, 4], 2, 1.0);
        let c = random_tensor(&[2, 3, 2], 3, 1.0);
        check(
            vec![a.clone(), b, a.clone()],
            &[true, true, false],
            |t, v| concatenate(t, v, 1).unwrap(),
            "concatenate axis 1",
        );
        check(
            vec![a.clone(), c],
            &[true, true],
            |t, v| concatenate(t, v, -1).unwrap(),
            "concatenate axis -1",
        );
        check(
            vec![a.clone(), a],
            &[true, true],
            |t, v| concatenate(t, v, 0).unwrap(),
            "concatenate axis 0",
        );
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let a = t(&[2, 4], &[0.; 8]);
        let b = t(&[2, 5], &[0.; 10]);
        let e = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert_eq!(
            e(run(&[a.clone(), b.clone()], add)),
            "add: incompatible shapes (2, 4) and (2, 5)"
        );
        assert_eq!(
            e(run(std::slice::from_ref(&a), maximum)),
            "`inputs` to maximum must be at least 2 tensors, not 1"
        );
        assert_eq!(
            e(run(&[a.clone(), a.clone(), a.clone()], subtract)),
            "`inputs` to subtract must be exactly 2 tensors, not 3"
        );
        let c = t(&[2, 4, 1], &[0.; 8]);
        assert_eq!(
            e(run(&[a.clone(), c.clone()], multiply)),
            "multiply: incompatible shapes (2, 4) and (2, 4, 1)"
        );
        assert_eq!(
            e(run(&[a.clone(), b.clone()], |t, v| concatenate(t, v, 0))),
            "concatenate: incompatible shapes (2, 4) and (2, 5)"
        );
        assert_eq!(
            e(run(&[a.clone(), c], |t, v| concatenate(t, v, -1))),
            "concatenate: incompatible shapes (2, 4) and (2, 4, 1)"
        );
        assert_eq!(
            e(run(&[a.clone(), b.clone()], |t, v| concatenate(t, v, 2))),
            "`axis` = 2 is out of range for tensors of rank 2"
        );
        assert_eq!(
            run(&[a, b], |t, v| concatenate(t, v, -1)).unwrap().shape(),
            &[2, 9]
        );
    }
}
