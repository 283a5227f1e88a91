//! Reverse-mode automatic differentiation over a tape.
//!
//! The forward pass runs eagerly: each op computes its output at once and records a node
//! (its inputs and a `Backward` that maps the output gradient to input gradients). Nodes
//! are pushed in execution order, so the tape is already topologically sorted and
//! `backward` is one reverse sweep. A node that no trainable leaf flows into records no
//! backward, and the sweep skips it: no gradient for the input batch, none for frozen
//! weights.

use crate::device;
use crate::error::Result;
use crate::tensor::Tensor;

/// A handle to a value on a tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(usize);

/// How an op sends its output gradient back to its inputs. `needs[i]` says whether
/// input i wants a gradient; return `None` for those that don't.
pub trait Backward: Send + Sync {
    fn backward(
        &self,
        grad: &Tensor,
        inputs: &[&Tensor],
        output: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

struct Node {
    value: Tensor,
    requires_grad: bool,
    inputs: Vec<Var>,
    backward: Option<Box<dyn Backward>>,
}

#[derive(Default)]
pub struct Tape {
    nodes: Vec<Node>,
}

/// Gradients of a scalar with respect to the tape's values (None where none flows).
pub struct Gradients(Vec<Option<Tensor>>);

impl Gradients {
    pub fn get(&self, v: Var) -> Option<&Tensor> {
        self.0[v.0].as_ref()
    }

    pub fn take(&mut self, v: Var) -> Option<Tensor> {
        self.0[v.0].take()
    }
}

impl Tape {
    pub fn new() -> Tape {
        Tape::default()
    }

    /// A value that the graph starts from: a parameter (requires_grad) or data (not).
    pub fn leaf(&mut self, value: Tensor, requires_grad: bool) -> Var {
        self.nodes.push(Node {
            value,
            requires_grad,
            inputs: Vec::new(),
            backward: None,
        });
        Var(self.nodes.len() - 1)
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.0].value
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// Records an op's output; its backward is kept only if some input needs a gradient.
    pub fn push(&mut self, value: Tensor, inputs: &[Var], backward: Box<dyn Backward>) -> Var {
        let requires_grad = inputs.iter().any(|&v| self.nodes[v.0].requires_grad);
        let backward = if requires_grad { Some(backward) } else { None };
        self.nodes.push(Node {
            value,
            requires_grad,
            inputs: inputs.to_vec(),
            backward,
        });
        Var(self.nodes.len() - 1)
    }

    /// Gradients of the scalar `root` with respect to every node that needs one.
    ///
    /// Precondition: `root` holds one element. Postcondition: `get(v)` is `Some` for every
    /// `v` with `requires_grad` that `root` depends on.
    pub fn backward(&self, root: Var) -> Result<Gradients> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.nodes.len()];
        grads[root.0] = Some(device::fill_like(&self.nodes[root.0].value, 1.0));
        for i in (0..=root.0).rev() {
            let node = &self.nodes[i];
            let Some(op) = &node.backward else { continue };
            let Some(g) = grads[i].take() else { continue };
            let inputs: Vec<&Tensor> = node.inputs.iter().map(|v| &self.nodes[v.0].value).collect();
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|v| self.nodes[v.0].requires_grad)
                .collect();
            let input_grads = op.backward(&g, &inputs, &node.value, &needs)?;
            for ((v, ig), need) in node.inputs.iter().zip(input_grads).zip(needs) {
                let (Some(ig), true) = (ig, need) else {
                    continue;
                };
                match &mut grads[v.0] {
                    Some(acc) => device::add_assign(acc, &ig),
                    slot => *slot = Some(ig),
                }
            }
        }
        Ok(Gradients(grads))
    }
}
