//! Slicing and stacking for recurrent layers: one time step of a (batch, steps, features)
//! tensor, steps stacked back into one, and a block of columns of a matrix (a gate's
//! share of a fused product). Each backward puts the gradient where the values came from.

use crate::autodiff::{Backward, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

fn bad(op: &'static str, shape: &[usize], want: Vec<usize>) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: shape.to_vec(),
        rhs: want,
    }
}

/// Copies `x`'s (rows x cols) block of columns `start..start + len`.
fn take_columns(x: &[f32], rows: usize, cols: usize, start: usize, len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * len);
    for r in 0..rows {
        out.extend_from_slice(&x[r * cols + start..r * cols + start + len]);
    }
    out
}

/// Writes `block` (rows x len) into columns `start..start + len` of a zero (rows x cols).
fn put_columns(block: &[f32], rows: usize, cols: usize, start: usize, len: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        out[r * cols + start..r * cols + start + len]
            .copy_from_slice(&block[r * len..(r + 1) * len]);
    }
    out
}

struct StepBackward {
    shape: Vec<usize>,
    t: usize,
}

impl Backward for StepBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (b, s, f) = (self.shape[0], self.shape[1], self.shape[2]);
        let data = put_columns(g.host(), b, s * f, self.t * f, f);
        Ok(vec![Some(Tensor::from_vec(self.shape.clone(), data)?)])
    }
}

/// Step `t` of `x` (batch, steps, features): (batch, features).
pub fn step(tape: &mut Tape, x: Var, t: usize) -> Result<Var> {
    let shape = tape.value(x).shape().to_vec();
    if shape.len() != 3 || t >= shape[1] {
        return Err(bad("step", &shape, vec![t]));
    }
    let (b, s, f) = (shape[0], shape[1], shape[2]);
    let y = take_columns(tape.value(x).host(), b, s * f, t * f, f);
    let y = Tensor::from_vec(vec![b, f], y)?;
    Ok(tape.push(y, &[x], Box::new(StepBackward { shape, t })))
}

struct StackBackward {
    steps: usize,
}

impl Backward for StackBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (b, f) = (g.shape()[0], g.shape()[2]);
        (0..self.steps)
            .map(|t| {
                if !needs[t] {
                    return Ok(None);
                }
                let data = take_columns(g.host(), b, self.steps * f, t * f, f);
                Ok(Some(Tensor::from_vec(vec![b, f], data)?))
            })
            .collect()
    }
}

/// Steps (each (batch, features)) stacked into (batch, steps, features).
pub fn stack(tape: &mut Tape, steps: &[Var]) -> Result<Var> {
    let first = tape.value(steps[0]).shape().to_vec();
    let (b, f) = (first[0], first[1]);
    let n = steps.len();
    let mut data = vec![0.0f32; b * n * f];
    for (t, &v) in steps.iter().enumerate() {
        let x = tape.value(v);
        if x.shape() != first.as_slice() {
            return Err(bad("stack", x.shape(), first.clone()));
        }
        for r in 0..b {
            data[(r * n + t) * f..(r * n + t + 1) * f]
                .copy_from_slice(&x.host()[r * f..(r + 1) * f]);
        }
    }
    let y = Tensor::from_vec(vec![b, n, f], data)?;
    Ok(tape.push(y, steps, Box::new(StackBackward { steps: n })))
}

struct ColumnsBackward {
    cols: usize,
    start: usize,
    vector: bool,
}

impl Backward for ColumnsBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let rows = if self.vector { 1 } else { g.shape()[0] };
        let len = g.numel() / rows;
        let data = put_columns(g.host(), rows, self.cols, self.start, len);
        let shape = if self.vector {
            vec![self.cols]
        } else {
            vec![rows, self.cols]
        };
        Ok(vec![Some(Tensor::from_vec(shape, data)?)])
    }
}

/// Columns `start..start + len` of a matrix (or the same slice of a vector).
pub fn columns(tape: &mut Tape, x: Var, start: usize, len: usize) -> Result<Var> {
    let shape = tape.value(x).shape().to_vec();
    let (rows, cols, vector) = match shape.as_slice() {
        [c] => (1, *c, true),
        [r, c] => (*r, *c, false),
        _ => return Err(bad("columns", &shape, vec![start, len])),
    };
    if start + len > cols {
        return Err(bad("columns", &shape, vec![start, len]));
    }
    let y = take_columns(tape.value(x).host(), rows, cols, start, len);
    let y = Tensor::from_vec(if vector { vec![len] } else { vec![rows, len] }, y)?;
    Ok(tape.push(
        y,
        &[x],
        Box::new(ColumnsBackward {
            cols,
            start,
            vector,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    #[test]
    fn steps_stack_back_to_the_input() {
        let mut t = Tape::new();
        let x = t.leaf(random_tensor(&[2, 3, 4], 1, 1.0), true);
        let steps: Vec<Var> = (0..3).map(|k| step(&mut t, x, k).unwrap()).collect();
        assert_eq!(t.value(steps[1]).shape(), &[2, 4]);
        assert_eq!(t.value(steps[1]).to_vec()[..4], t.value(x).to_vec()[4..8]);
        let back = stack(&mut t, &steps).unwrap();
        assert_eq!(t.value(back).to_vec(), t.value(x).to_vec());
        let c = columns(&mut t, steps[2], 1, 2).unwrap();
        assert_eq!(t.value(c).to_vec()[..2], t.value(x).to_vec()[9..11]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        check(
            vec![random_tensor(&[2, 3, 4], 2, 1.0)],
            &[true],
            |t, v| step(t, v[0], 1).unwrap(),
            "step",
        );
        check(
            vec![
                random_tensor(&[2, 3], 3, 1.0),
                random_tensor(&[2, 3], 4, 1.0),
            ],
            &[true, true],
            |t, v| stack(t, &[v[0], v[1], v[0]]).unwrap(),
            "stack",
        );
        check(
            vec![random_tensor(&[3, 8], 5, 1.0)],
            &[true],
            |t, v| columns(t, v[0], 2, 4).unwrap(),
            "columns",
        );
        check(
            vec![random_tensor(&[8], 6, 1.0)],
            &[true],
            |t, v| columns(t, v[0], 4, 4).unwrap(),
            "columns of a vector",
        );
    }

    #[test]
    fn out_of_range_slices_are_errors() {
        let mut t = Tape::new();
        let x = t.leaf(random_tensor(&[2, 3, 4], 1, 1.0), false);
        assert!(step(&mut t, x, 3).is_err());
        let m = t.leaf(random_tensor(&[2, 3], 1, 1.0), false);
        assert!(columns(&mut t, m, 2, 2).is_err());
    }
}
