//! Keras's merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and
//! Concatenate. They take a list of inputs (the `_multi` methods of `Layer`), have no
//! weights, and check shapes as Keras's `Merge.build` and `Concatenate.build` do.

use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::layers::registry::Config;
use crate::layers::spatial::batch_shape_str;
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::merge::{
    broadcast_shape, concat_shape, concatenate, elementwise, normalize_axis, Elementwise,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    Elementwise(Elementwise),
    /// `axis` counts the batch axis as Keras does: -1 is the last.
    Concatenate {
        axis: i64,
    },
}

pub struct Merge {
    name: String,
    kind: MergeKind,
}

/// A shape as Python prints a tuple: `(4,)`, `(4, 5)`.
fn py_tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => crate::error::shape_str(shape),
    }
}

impl Merge {
    pub fn new(kind: MergeKind, name: Option<String>) -> Merge {
        let prefix = match kind {
            MergeKind::Elementwise(e) => e.op_name(),
            MergeKind::Concatenate { .. } => "concatenate",
        };
        Merge {
            name: name.unwrap_or_else(|| unique_name(prefix)),
            kind,
        }
    }

    /// The layer of Keras class `class` (one of the seven merge classes).
    pub fn from_config(class: &str, c: &Config) -> Result<Merge> {
        let kind = match class {
            "Add" => MergeKind::Elementwise(Elementwise::Add),
            "Subtract" => MergeKind::Elementwise(Elementwise::Subtract),
            "Multiply" => MergeKind::Elementwise(Elementwise::Multiply),
            "Average" => MergeKind::Elementwise(Elementwise::Average),
            "Maximum" => MergeKind::Elementwise(Elementwise::Maximum),
            "Minimum" => MergeKind::Elementwise(Elementwise::Minimum),
            "Concatenate" => MergeKind::Concatenate {
                axis: c.int_or("axis", -1)?,
            },
            _ => return Err(Error::State(format!("'{class}' is not a merge layer"))),
        };
        Ok(Merge::new(kind, c.name()?))
    }

    pub fn kind(&self) -> MergeKind {
        self.kind
    }

    fn input_error(&self, msg: String) -> Error {
        Error::LayerInput {
            layer: self.name.clone(),
            msg,
        }
    }

    /// Keras's merges take a list of inputs: exactly 2 for Subtract, at least 2 for the rest.
    fn check_count(&self, n: usize) -> Result<()> {
        let subtract = self.kind == MergeKind::Elementwise(Elementwise::Subtract);
        if (subtract && n != 2) || n < 2 {
            return Err(self.count_error(n));
        }
        Ok(())
    }

    fn count_error(&self, n: usize) -> Error {
        let want = if self.kind == MergeKind::Elementwise(Elementwise::Subtract) {
            "exactly"
        } else {
            "at least"
        };
        self.input_error(format!("expects a list of {want} 2 inputs, got {n}"))
    }

    /// Keras's `_compute_elemwise_op_output_shape` folded over the inputs, for inputs of
    /// one rank.
    fn elementwise_shape(&self, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let mut out = shapes[0].clone();
        for s in &shapes[1..] {
            out = broadcast_shape(&out, s).ok_or_else(|| {
                let ranks = if out.len() == s.len() {
                    ""
                } else {
                    "; rustkeras broadcasts only between inputs of one rank"
                };
                self.input_error(format!(
                    "has inputs of incompatible shapes. Received shapes {} and {}{ranks}",
                    py_tuple(&out),
                    py_tuple(s)
                ))
            })?;
        }
        Ok(out)
    }

    /// The concatenation axis among the axes of a sample (batch axis left out).
    fn sample_axis(&self, axis: i64, rank: usize) -> Result<usize> {
        match normalize_axis(axis, rank + 1) {
            Some(0) => Err(self.input_error(format!(
                "has axis = {axis}, the batch axis; concatenate along another axis"
            ))),
            Some(a) => Ok(a - 1),
            None => Err(self.input_error(format!(
                "has axis = {axis}, out of range for inputs of rank {}",
                rank + 1
            ))),
        }
    }

    fn concat_shape(&self, axis: i64, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let ax = self.sample_axis(axis, shapes[0].len())?;
        let views: Vec<&[usize]> = shapes.iter().map(|s| s.as_slice()).collect();
        concat_shape(&views, ax).map_err(|_| {
            let all: Vec<String> = shapes.iter().map(|s| batch_shape_str(s)).collect();
            self.input_error(format!(
                "requires inputs with matching shapes except for the concatenation axis. \
                 Received: input_shape=[{}]",
                all.join(", ")
            ))
        })
    }
}

impl Layer for Merge {
    fn name(&self) -> &str {
        &self.name
    }

    fn takes_list(&self) -> bool {
        true
    }

    fn class_name(&self) -> &'static str {
        match self.kind {
            MergeKind::Elementwise(Elementwise::Add) => "Add",
            MergeKind::Elementwise(Elementwise::Subtract) => "Subtract",
            MergeKind::Elementwise(Elementwise::Multiply) => "Multiply",
            MergeKind::Elementwise(Elementwise::Average) => "Average",
            MergeKind::Elementwise(Elementwise::Maximum) => "Maximum",
            MergeKind::Elementwise(Elementwise::Minimum) => "Minimum",
            MergeKind::Concatenate { .. } => "Concatenate",
        }
    }

    /// A merge layer given one input: the error that says it wants a list.
    fn output_shape(&self, _input_shape: &[usize]) -> Result<Vec<usize>> {
        Err(self.count_error(1))
    }

    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        self.check_count(input_shapes.len())?;
        match self.kind {
            MergeKind::Elementwise(_) => self.elementwise_shape(input_shapes),
            MergeKind::Concatenate { axis } => self.concat_shape(axis, input_shapes),
        }
    }

    /// No weights: building only checks the shapes, as Keras's `build` does.
    fn build_multi(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        self.output_shape_multi(input_shapes).map(|_| ())
    }

    fn forward(
        &self,
        _tape: &mut Tape,
        _x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        Err(self.count_error(1))
    }

    fn forward_multi(
        &self,
        tape: &mut Tape,
        xs: &[Var],
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        self.check_count(xs.len())?;
        let shapes: Vec<&[usize]> = xs.iter().map(|&x| tape.value(x).shape()).collect();
        if shapes.iter().any(|s| s.first() != shapes[0].first()) {
            let all: Vec<String> = shapes.iter().map(|s| py_tuple(s)).collect();
            return Err(self.input_error(format!(
                "cannot merge tensors with different batch sizes. Got tensors with shapes [{}]",
                all.join(", ")
            )));
        }
        // The layer's own checks first, so errors name it and use Keras's words.
        let samples: Vec<Vec<usize>> = shapes.iter().map(|s| s[1..].to_vec()).collect();
        self.output_shape_multi(&samples)?;
        match self.kind {
            MergeKind::Elementwise(e) => elementwise(tape, e, xs),
            MergeKind::Concatenate { axis } => concatenate(tape, xs, axis),
        }
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        match self.kind {
            MergeKind::Elementwise(_) => Vec::new(),
            MergeKind::Concatenate { axis } => vec![("axis", ConfigValue::Int(axis))],
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::layers::spatial::test_util::{config_error, layer, text};
    use crate::tensor::Tensor;

    fn t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// The layer's output for a list of inputs, and the gradient of its sum for each.
    fn call(l: &dyn Layer, xs: &[Tensor]) -> Result<(Tensor, Vec<Vec<f32>>)> {
        let mut tape = Tape::new();
        let vs: Vec<Var> = xs.iter().map(|x| tape.leaf(x.clone(), true)).collect();
        let mut rng = crate::rng::Noise::new(0, 0);
        let mut ctx = ForwardCtx {
            training: false,
            rng: &mut rng,
            logits: false,
            batch_state: None,
            trainable: true,
        };
        let y = l.forward_multi(&mut tape, &vs, &[], &mut ctx)?;
        let s = crate::ops::math::sum(&mut tape, y);
        let g = tape.backward(s)?;
        let grads = vs.iter().map(|&v| g.get(v).unwrap().to_vec()).collect();
        Ok((tape.value(y).clone(), grads))
    }

    const CLASSES: [(&str, &str); 7] = [
        ("Add", "add"),
        ("Subtract", "subtract"),
        ("Multiply", "multiply"),
        ("Average", "average"),
        ("Maximum", "maximum"),
        ("Minimum", "minimum"),
        ("Concatenate", "concatenate"),
    ];

    #[test]
    fn keras_names_and_configs() {
        for (class, prefix) in CLASSES {
            let a = layer(class, &[]);
            let b = layer(class, &[]);
            assert_eq!(a.class_name(), class);
            assert!(a.name().starts_with(prefix), "{}", a.name());
            // Auto names count up per prefix: `add`, `add_1`, ...
            assert_ne!(a.name(), b.name());
            assert!(b.name().starts_with(&format!("{prefix}_")), "{}", b.name());
            assert!(a.params().is_empty());
        }
        assert!(layer("Add", &[]).config().is_empty());
        assert_eq!(
            layer("Concatenate", &[]).config(),
            vec![("axis", ConfigValue::Int(-1))]
        );
        let l = layer(
            "Concatenate",
            &[("axis", ConfigValue::Float(1.0)), ("name", text("cat"))],
        );
        assert_eq!(l.name(), "cat");
        assert_eq!(l.config(), vec![("axis", ConfigValue::Int(1))]);
        assert_eq!(
            config_error("Concatenate", &[("axis", ConfigValue::Float(1.5))]),
            "`axis` must be an integer, not 1.5"
        );
    }

    #[test]
    fn output_shapes_follow_keras() {
        let shape = |class: &str, config: &[(&str, ConfigValue)], inputs: &[&[usize]]| {
            let inputs: Vec<Vec<usize>> = inputs.iter().map(|s| s.to_vec()).collect();
            let mut l = layer(class, config);
            l.build_multi(&inputs).unwrap();
            l.output_shape_multi(&inputs).unwrap()
        };
        assert_eq!(shape("Add", &[], &[&[4, 3], &[4, 3], &[4, 3]]), vec![4, 3]);
        assert_eq!(shape("Maximum", &[], &[&[4, 1], &[1, 3]]), vec![4, 3]);
        assert_eq!(shape("Concatenate", &[], &[&[4, 3], &[4, 5]]), vec![4, 8]);
        let axis1 = [("axis", ConfigValue::Int(1))];
        assert_eq!(
            shape("Concatenate", &axis1, &[&[4, 3], &[2, 3]]),
            vec![6, 3]
        );
        let axis_m2 = [("axis", ConfigValue::Int(-2))];
        assert_eq!(
            shape("Concatenate", &axis_m2, &[&[4, 3], &[2, 3], &[1, 3]]),
            vec![7, 3]
        );
    }

    #[test]
    fn merge_values_and_gradients() {
        let a = t(&[2, 2], &[1., 2., 3., 4.]);
        let b = t(&[2, 2], &[4., 3., 3., 1.]);
        let run = |class: &str| call(&*layer(class, &[]), &[a.clone(), b.clone()]).unwrap();
        let (y, g) = run("Add");
        assert_eq!(
            (y.to_vec(), g),
            (vec![5., 5., 6., 5.], vec![vec![1.; 4]; 2])
        );
        let (y, g) = run("Subtract");
        assert_eq!(
            (y.to_vec(), g),
            (vec![-3., -1., 0., 3.], vec![vec![1.; 4], vec![-1.; 4]])
        );
        let (y, g) = run("Multiply");
        assert_eq!(
            (y.to_vec(), g),
            (vec![4., 6., 9., 4.], vec![b.to_vec(), a.to_vec()])
        );
        let (y, g) = run("Average");
        assert_eq!(
            (y.to_vec(), g),
            (vec![2.5, 2.5, 3., 2.5], vec![vec![0.5; 4]; 2])
        );
        // The tie at element 2 (3 and 3) sends the gradient to the first input.
        let (y, g) = run("Maximum");
        assert_eq!(
            (y.to_vec(), g),
            (
                vec![4., 3., 3., 4.],
                vec![vec![0., 0., 1., 1.], vec![1., 1., 0., 0.]]
            )
        );
        let (y, g) = run("Minimum");
        assert_eq!(
            (y.to_vec(), g),
            (
                vec![1., 2., 3., 1.],
                vec![vec![1., 1., 1., 0.], vec![0., 0., 0., 1.]]
            )
        );
        let (y, g) = run("Concatenate");
        assert_eq!(y.shape(), &[2, 4]);
        assert_eq!(y.to_vec(), vec![1., 2., 4., 3., 3., 4., 3., 1.]);
        assert_eq!(g, vec![vec![1.; 4]; 2]);
        // axis = 1 on (2, 2, 1) and (2, 1, 1): rows of each sample stacked.
        let x = t(&[2, 2, 1], &[0., 1., 2., 3.]);
        let z = t(&[2, 1, 1], &[10., 20.]);
        let l = layer("Concatenate", &[("axis", ConfigValue::Int(1))]);
        let (y, _) = call(&*l, &[x, z]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 1]);
        assert_eq!(y.to_vec(), vec![0., 1., 10., 2., 3., 20.]);
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let named = |class: &str| layer(class, &[("name", text("m"))]);
        let shapes = |v: &[&[usize]]| -> Vec<Vec<usize>> { v.iter().map(|s| s.to_vec()).collect() };
        let err = |class: &str, v: &[&[usize]]| {
            named(class)
                .output_shape_multi(&shapes(v))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            named("Add").output_shape(&[4]).unwrap_err().to_string(),
            "layer 'm' expects a list of at least 2 inputs, got 1"
        );
        assert_eq!(
            err("Maximum", &[&[4]]),
            "layer 'm' expects a list of at least 2 inputs, got 1"
        );
        assert_eq!(
            err("Subtract", &[&[4], &[4], &[4]]),
            "layer 'm' expects a list of exactly 2 inputs, got 3"
        );
        assert_eq!(
            err("Add", &[&[4], &[5]]),
            "layer 'm' has inputs of incompatible shapes. Received shapes (4,) and (5,)"
        );
        assert_eq!(
            err("Multiply", &[&[2, 4], &[4]]),
            "layer 'm' has inputs of incompatible shapes. Received shapes (2, 4) and (4,); \
             rustkeras broadcasts only between inputs of one rank"
        );
        assert_eq!(
            err("Concatenate", &[&[4, 3], &[5, 3]]),
            "layer 'm' requires inputs with matching shapes except for the concatenation \
             axis. Received: input_shape=[(None, 4, 3), (None, 5, 3)]"
        );
        let cat = |axis: i64| {
            layer(
                "Concatenate",
                &[("axis", ConfigValue::Int(axis)), ("name", text("c"))],
            )
            .output_shape_multi(&shapes(&[&[4, 3], &[4, 3]]))
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            cat(0),
            "layer 'c' has axis = 0, the batch axis; concatenate along another axis"
        );
        assert_eq!(
            cat(-3),
            "layer 'c' has axis = -3, the batch axis; concatenate along another axis"
        );
        assert_eq!(
            cat(3),
            "layer 'c' has axis = 3, out of range for inputs of rank 3"
        );

        let mut l = named("Average");
        assert!(l.build_multi(&shapes(&[&[4], &[5]])).is_err());
        let a = t(&[2, 2], &[0.; 4]);
        let e = call(&*l, &[a.clone(), t(&[3, 2], &[0.; 6])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer 'm' cannot merge tensors with different batch sizes. \
             Got tensors with shapes [(2, 2), (3, 2)]"
        );
        let e = call(&*l, std::slice::from_ref(&a)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer 'm' expects a list of at least 2 inputs, got 1"
        );
        // A one-input layer given a list gets the trait's default error.
        let d = layer(
            "Dropout",
            &[("rate", ConfigValue::Float(0.5)), ("name", text("d"))],
        );
        assert_eq!(
            d.output_shape_multi(&shapes(&[&[4], &[4]]))
                .unwrap_err()
                .to_string(),
            "layer 'd' expects 1 input, got 2"
        );
        assert_eq!(d.output_shape_multi(&shapes(&[&[4]])).unwrap(), vec![4]);
        let (y, _) = call(&*d, &[a]).unwrap();
        assert_eq!(y.shape(), &[2, 2]);
    }
}
