//! Embedding lookup: rows of a table picked by integer ids (Keras's Embedding). The ids
//! arrive as floats (the engine's one dtype) and are checked to be whole numbers in range;
//! the table's gradient adds each output row's gradient into the row it came from.

use crate::autodiff::{Backward, Tape, Var};
use crate::device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

struct LookupBackward {
    ids: Vec<usize>,
    rows: usize,
}

impl Backward for LookupBackward {
    fn backward(
        &self,
        g: &Tensor,
        _inputs: &[&Tensor],
        _out: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let dtable = needs[0].then(|| device::scatter_add_rows(g, &self.ids, self.rows));
        // Ids are indices, not values: no gradient flows to them.
        Ok(vec![dtable, None])
    }
}

/// `table[ids]`: output shape `ids.shape + [dim]`; `layer` names the layer in errors.
pub fn lookup(tape: &mut Tape, table: Var, ids: Var, layer: &str) -> Result<Var> {
    let rows = tape.value(table).shape()[0];
    let id_values = tape.value(ids);
    let mut idx = Vec::with_capacity(id_values.numel());
    for &v in id_values.host() {
        if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < rows) {
            return Err(Error::LayerInput {
                layer: layer.to_string(),
                msg: format!(
                    "takes integer ids from 0 to {} (input_dim - 1), got {v}",
                    rows - 1
                ),
            });
        }
        idx.push(v as usize);
    }
    let y = device::gather_rows(tape.value(table), &idx, id_values.shape());
    Ok(tape.push(
        y,
        &[table, ids],
        Box::new(LookupBackward { ids: idx, rows }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, random_tensor};

    fn ids(values: Vec<f32>, shape: Vec<usize>) -> Tensor {
        Tensor::from_vec(shape, values).unwrap()
    }

    #[test]
    fn rows_are_picked_and_gradients_add_up() {
        let mut t = Tape::new();
        let table = t.leaf(
            Tensor::from_vec(vec![3, 2], vec![0., 1., 10., 11., 20., 21.]).unwrap(),
            true,
        );
        let i = t.leaf(ids(vec![2., 0., 2.], vec![1, 3]), false);
        let y = lookup(&mut t, table, i, "e").unwrap();
        assert_eq!(t.value(y).shape(), &[1, 3, 2]);
        assert_eq!(t.value(y).to_vec(), vec![20., 21., 0., 1., 20., 21.]);
        let s = crate::ops::math::sum(&mut t, y);
        let g = t.backward(s).unwrap();
        assert_eq!(g.get(table).unwrap().to_vec(), vec![1., 1., 0., 0., 2., 2.]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let id_tensor = ids(vec![1., 3., 1., 0., 2., 3.], vec![2, 3]);
        check(
            vec![random_tensor(&[4, 3], 5, 1.0), id_tensor],
            &[true, false],
            |t, v| lookup(t, v[0], v[1], "e").unwrap(),
            "embedding lookup",
        );
    }

    #[test]
    fn ids_out_of_range_or_fractional_are_errors() {
        for bad in [4.0, -1.0, 1.5, f32::NAN] {
            let mut t = Tape::new();
            let table = t.leaf(random_tensor(&[4, 2], 1, 1.0), true);
            let i = t.leaf(ids(vec![0., bad], vec![1, 2]), false);
            let e = lookup(&mut t, table, i, "emb").unwrap_err().to_string();
            assert!(e.contains("integer ids from 0 to 3"), "{e}");
        }
    }
}
