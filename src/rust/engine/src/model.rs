//! Models as graphs of layer calls, as Keras 3's Functional models; a Sequential model is
//! the chain case of the same graph, grown one layer at a time by `add`.
//!
//! A model owns its layers. A model used inside another (a pretrained base called on a
//! symbolic tensor) is shared through a `ModelRef`, so freezing or loading weights into
//! the base is seen by every model that holds it, as in Keras.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::rng::Noise;

use crate::autodiff::{Tape, Var};
use crate::error::{shape_str, Error, Result};
use crate::layers::{ForwardCtx, Layer, Param};
use crate::losses::Loss;
use crate::naming::unique_name;
use crate::ops::activation::Activation;
use crate::ops::pool::PoolWindow;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::regularizers::Regularizer;
use crate::tensor::{Device, Tensor};

/// A model shared between the R objects and the models that use it as a layer.
pub type ModelRef = Arc<RwLock<Model>>;

pub fn share(model: Model) -> ModelRef {
    Arc::new(RwLock::new(model))
}

/// Read access; a panic elsewhere never makes a model unreadable.
pub fn read(m: &ModelRef) -> RwLockReadGuard<'_, Model> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write(m: &ModelRef) -> RwLockWriteGuard<'_, Model> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

pub struct Compiled {
    pub optimizer: Optimizer,
    /// One loss per output.
    pub losses: Vec<Loss>,
    /// Weight of each output's loss in the total (`loss_weights`).
    pub loss_weights: Vec<f64>,
    /// Metric names as the user gave them; resolved against shapes at fit time.
    pub metrics: Vec<String>,
    /// Which weights (in `get_weights()` order) the optimizer trains: fixed by
    /// `compile()` as in Keras, or at the first step of a model built later.
    pub trainable: Option<Vec<bool>>,
}

impl Compiled {
    /// The loss of a single-output model.
    pub fn loss(&self) -> Loss {
        self.losses[0]
    }
}

/// What `summary()` shows of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub class_name: String,
    /// Output shape without the batch axis; None while the model is not built.
    pub output_shape: Option<Vec<usize>>,
    pub params: usize,
    pub trainable_params: usize,
    pub built: bool,
    pub trainable: bool,
    /// Keras's "Connected to": `layer[node][tensor]` for each input of each call.
    pub connected_to: Vec<String>,
}

/// A symbolic input: `keras_input(shape, name)`.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    /// Shape of one sample; None for a Sequential model built on its first data.
    pub shape: Option<Vec<usize>>,
}

/// A layer with its `trainable` flag (Keras's `layer$trainable`) and its weights'
/// regularizers (by weight name).
pub struct LayerCell {
    pub layer: Box<dyn Layer>,
    pub trainable: bool,
    pub regularizers: Vec<(&'static str, Regularizer)>,
    /// The input shapes the layer was built for (a layer serialized on its own is
    /// rebuilt from them).
    pub built_with: Option<Vec<Vec<usize>>>,
}

impl LayerCell {
    /// Builds the layer for inputs of these shapes and remembers them.
    pub fn build_for(&mut self, shapes: &[Vec<usize>]) -> Result<()> {
        self.layer.build_multi(shapes)?;
        self.built_with = Some(shapes.to_vec());
        Ok(())
    }

    pub fn regularizer_for(&self, weight: &str) -> Option<Regularizer> {
        self.regularizers
            .iter()
            .find(|(w, _)| *w == weight)
            .map(|(_, r)| *r)
    }
}

impl std::ops::Deref for LayerCell {
    type Target = dyn Layer;
    fn deref(&self) -> &(dyn Layer + 'static) {
        self.layer.as_ref()
    }
}

impl std::ops::DerefMut for LayerCell {
    fn deref_mut(&mut self) -> &mut (dyn Layer + 'static) {
        self.layer.as_mut()
    }
}

/// A layer shared by the models that call it (and the R object for it), as a Keras
/// layer object is.
pub type LayerRef = Arc<RwLock<LayerCell>>;

pub fn share_layer(layer: Box<dyn Layer>) -> LayerRef {
    Arc::new(RwLock::new(LayerCell {
        layer,
        trainable: true,
        regularizers: Vec::new(),
        built_with: None,
    }))
}

pub fn read_layer(l: &LayerRef) -> RwLockReadGuard<'_, LayerCell> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write_layer(l: &LayerRef) -> RwLockWriteGuard<'_, LayerCell> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// What a model calls: one of its own layers, or another model.
pub enum Member {
    Layer(LayerRef),
    Model(ModelRef),
}

impl Member {
    pub fn name(&self) -> String {
        match self {
            Member::Layer(c) => read_layer(c).name().to_string(),
            Member::Model(m) => read(m).name.clone(),
        }
    }

    pub fn class_name(&self) -> String {
        match self {
            Member::Layer(c) => read_layer(c).class_name().to_string(),
            Member::Model(m) => read(m).class_name().to_string(),
        }
    }

    pub fn trainable(&self) -> bool {
        match self {
            Member::Layer(c) => read_layer(c).trainable,
            Member::Model(m) => read(m).trainable,
        }
    }

    /// Keras's `layer$trainable <- value`; on a model it reaches every layer inside.
    pub fn set_trainable(&mut self, value: bool) {
        match self {
            Member::Layer(c) => write_layer(c).trainable = value,
            Member::Model(m) => write(m).set_trainable(value),
        }
    }

    fn param_count(&self) -> usize {
        match self {
            Member::Layer(c) => read_layer(c).params().len(),
            Member::Model(m) => read(m).weight_count(),
        }
    }

    fn output_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        match self {
            Member::Layer(c) => Ok(vec![read_layer(c).output_shape_multi(inputs)?]),
            Member::Model(m) => read(m).output_shapes_for(inputs),
        }
    }

    fn is_built(&self) -> bool {
        match self {
            Member::Layer(c) => read_layer(c).is_built(),
            Member::Model(m) => read(m).is_built(),
        }
    }

    fn build(&mut self, inputs: &[Vec<usize>]) -> Result<()> {
        match self {
            Member::Layer(c) => {
                let mut cell = write_layer(c);
                let name = cell.name().to_string();
                cell.build_for(inputs)
                    .map_err(|e| crate::memory::in_layer(e, &name))
            }
            Member::Model(m) => write(m).build(inputs),
        }
    }
}

/// Where a node's input comes from: a model input, or output `output` of node `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Input(usize),
    Node { node: usize, output: usize },
}

/// One call of a member on some tensors.
#[derive(Clone, Debug)]
pub struct Node {
    pub member: usize,
    pub inputs: Vec<Src>,
    /// Keras's `training` argument of this call: `Some(false)` runs the member in
    /// inference mode (batch normalization on its moving statistics, which it leaves
    /// alone; no dropout) even inside `fit()`, `Some(true)` in training mode even in
    /// `predict()`, `None` as the call around it. Saved as the node's `kwargs`.
    pub training: Option<bool>,
}

impl Node {
    /// A call that follows the training mode around it.
    pub fn new(member: usize, inputs: Vec<Src>) -> Node {
        Node {
            member,
            inputs,
            training: None,
        }
    }
}

/// Batch statistics a training pass left for a layer: the path of member indices down
/// through nested models, and the values for `Layer::update_state`.
pub type StateUpdate = (Vec<usize>, Vec<Tensor>);

pub struct Model {
    pub name: String,
    sequential: bool,
    /// Keras's `model$trainable`; setting it sets every layer's flag too.
    pub trainable: bool,
    inputs: Vec<Input>,
    members: Vec<Member>,
    /// In call order, which is a topological order.
    nodes: Vec<Node>,
    outputs: Vec<Src>,
    pub compiled: Option<Compiled>,
    /// Where the weights live and fit/evaluate/predict run (`set_device`).
    pub device: Device,
}

impl Model {
    /// An empty Sequential model; layers come through `add`.
    pub fn sequential(name: Option<String>, input_shape: Option<Vec<usize>>) -> Result<Model> {
        if let Some(s) = &input_shape {
            check_shape("input_shape", s)?;
        }
        Ok(Model {
            name: name.unwrap_or_else(|| unique_name("sequential")),
            sequential: true,
            trainable: true,
            inputs: vec![Input {
                name: unique_name("input_layer"),
                shape: input_shape,
            }],
            members: Vec::new(),
            nodes: Vec::new(),
            outputs: vec![Src::Input(0)],
            compiled: None,
            device: Device::Cpu,
        })
    }

    /// A Functional model from a graph: members (layers and models) are built here for
    /// the inputs' shapes, and every output must depend on the inputs.
    pub fn functional(
        name: Option<String>,
        inputs: Vec<Input>,
        members: Vec<Member>,
        nodes: Vec<Node>,
        outputs: Vec<Src>,
    ) -> Result<Model> {
        if inputs.is_empty() {
            return Err(crate::error::invalid_arg(
                "inputs",
                "must hold at least one input from keras_input()",
            ));
        }
        if outputs.is_empty() {
            return Err(crate::error::invalid_arg(
                "outputs",
                "must hold at least one tensor",
            ));
        }
        for i in &inputs {
            match &i.shape {
                Some(s) => check_shape("inputs", s)?,
                None => {
                    return Err(crate::error::invalid_arg(
                        "inputs",
                        format!("input '{}' has no shape", i.name),
                    ))
                }
            }
        }
        for (k, n) in nodes.iter().enumerate() {
            if n.member >= members.len() {
                return Err(Error::State(format!("node {k} calls a missing member")));
            }
            for s in &n.inputs {
                let ok = match *s {
                    Src::Input(i) => i < inputs.len(),
                    Src::Node { node, .. } => node < k,
                };
                if !ok {
                    return Err(Error::State(format!(
                        "node {k} takes a tensor that is not computed before it"
                    )));
                }
            }
        }
        let mut model = Model {
            name: name.unwrap_or_else(|| unique_name("functional")),
            sequential: false,
            trainable: true,
            inputs,
            members,
            nodes,
            outputs,
            compiled: None,
            device: Device::Cpu,
        };
        model.check_outputs()?;
        let shapes: Vec<Vec<usize>> = model
            .inputs
            .iter()
            .map(|i| i.shape.clone().expect("checked above"))
            .collect();
        model.build(&shapes)?;
        // Layers without weights are checked here (building skips them).
        model.node_shapes(&shapes)?;
        Ok(model)
    }

    /// Every output must be an input or be computed from one.
    fn check_outputs(&self) -> Result<()> {
        for s in &self.outputs {
            if let Src::Node { node, .. } = *s {
                if node >= self.nodes.len() {
                    return Err(crate::error::invalid_arg(
                        "outputs",
                        "holds a tensor that does not depend on `inputs`",
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// `Sequential` or `Functional`.
    pub fn class_name(&self) -> &'static str {
        if self.sequential {
            "Sequential"
        } else {
            "Functional"
        }
    }

    pub fn inputs(&self) -> &[Input] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Src] {
        &self.outputs
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn members_mut(&mut self) -> &mut [Member] {
        &mut self.members
    }

    /// Shape of one sample of the (first) input, when known.
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.inputs.first().and_then(|i| i.shape.as_deref())
    }

    /// The model's own layers (not those inside nested models), for the file formats.
    pub fn layers(&self) -> Vec<RwLockReadGuard<'_, LayerCell>> {
        self.members
            .iter()
            .filter_map(|m| match m {
                Member::Layer(c) => Some(read_layer(c)),
                Member::Model(_) => None,
            })
            .collect()
    }

    pub fn layers_mut(&mut self) -> Vec<RwLockWriteGuard<'_, LayerCell>> {
        self.members
            .iter()
            .filter_map(|m| match m {
                Member::Layer(c) => Some(write_layer(c)),
                Member::Model(_) => None,
            })
            .collect()
    }

    /// Whether the model calls another model (the file formats do not write those yet).
    pub fn has_nested_models(&self) -> bool {
        self.members.iter().any(|m| matches!(m, Member::Model(_)))
    }

    /// Sets the flag of the model and of every layer in it, as Keras does.
    pub fn set_trainable(&mut self, value: bool) {
        self.trainable = value;
        for m in &mut self.members {
            m.set_trainable(value);
        }
    }

    pub fn is_built(&self) -> bool {
        self.inputs.iter().all(|i| i.shape.is_some()) && self.members.iter().all(Member::is_built)
    }

    /// Output shapes of every node for the given input shapes, checking each call.
    fn node_shapes(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<Vec<usize>>>> {
        let mut shapes: Vec<Vec<Vec<usize>>> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let ins: Vec<Vec<usize>> = n
                .inputs
                .iter()
                .map(|s| src_shape(*s, inputs, &shapes))
                .collect();
            shapes.push(self.members[n.member].output_shapes(&ins)?);
        }
        Ok(shapes)
    }

    fn check_input_count(&self, got: usize) -> Result<()> {
        if got != self.inputs.len() {
            return Err(crate::error::invalid_arg(
                "x",
                format!(
                    "must hold {} input array{} for model '{}', not {got}",
                    self.inputs.len(),
                    if self.inputs.len() == 1 { "" } else { "s" },
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Output shapes for inputs of the given shapes (the model called as a layer).
    pub fn output_shapes_for(&self, inputs: &[Vec<usize>]) -> Result<Vec<Vec<usize>>> {
        self.check_input_count(inputs.len())?;
        let shapes = self.node_shapes(inputs)?;
        Ok(self
            .outputs
            .iter()
            .map(|s| src_shape(*s, inputs, &shapes))
            .collect())
    }

    fn known_input_shapes(&self) -> Option<Vec<Vec<usize>>> {
        self.inputs.iter().map(|i| i.shape.clone()).collect()
    }

    /// Output shapes (without batch), if the input shapes are known.
    pub fn output_shapes(&self) -> Result<Option<Vec<Vec<usize>>>> {
        match self.known_input_shapes() {
            Some(s) => Ok(Some(self.output_shapes_for(&s)?)),
            None => Ok(None),
        }
    }

    /// The shape of the first output, if known.
    pub fn output_shape(&self) -> Result<Option<Vec<usize>>> {
        Ok(self.output_shapes()?.map(|mut v| v.swap_remove(0)))
    }

    /// Appends a layer to a Sequential model, building it at once when the input shape
    /// is known.
    pub fn add(&mut self, layer: Box<dyn Layer>) -> Result<()> {
        self.add_member(Member::Layer(share_layer(layer)))
    }

    /// Keras's `input_shape` argument on the first layer of a Sequential model without
    /// an input yet: the model takes it. Otherwise nothing changes, as in Keras.
    pub fn declare_input_shape(&mut self, shape: Vec<usize>) -> Result<()> {
        if self.sequential && self.members.is_empty() && self.inputs[0].shape.is_none() {
            check_shape("input_shape", &shape)?;
            self.inputs[0].shape = Some(shape);
        }
        Ok(())
    }

    /// Appends a layer or a model to a Sequential model.
    pub fn add_member(&mut self, mut member: Member) -> Result<()> {
        if !self.sequential {
            return Err(Error::State(format!(
                "layers can be added only to Sequential models; '{}' is a Functional model",
                self.name
            )));
        }
        let name = member.name();
        if name == self.name {
            return Err(Error::State(format!(
                "a model cannot be added to itself ('{name}')"
            )));
        }
        if self.members.iter().any(|l| l.name() == name) {
            return Err(Error::State(format!(
                "all layers added to a Sequential model should have unique names; name '{name}' is already the name of a layer in this model"
            )));
        }
        if let Some(shape) = self.output_shape()? {
            if !member.is_built() {
                member.build(std::slice::from_ref(&shape))?;
            }
            let outs = member.output_shapes(std::slice::from_ref(&shape))?;
            if outs.len() != 1 {
                return Err(Error::State(format!(
                    "'{name}' has {} outputs; a Sequential model needs layers with one",
                    outs.len()
                )));
            }
        }
        let input = *self.outputs.first().expect("one output");
        self.members.push(member);
        self.nodes
            .push(Node::new(self.members.len() - 1, vec![input]));
        self.outputs = vec![Src::Node {
            node: self.nodes.len() - 1,
            output: 0,
        }];
        Ok(())
    }

    /// Removes the last layer of a Sequential model (keras3's `pop_layer()`).
    pub fn pop(&mut self) -> Result<()> {
        if !self.sequential {
            return Err(Error::State(
                "`pop_layer()` works on Sequential models only".into(),
            ));
        }
        if self.members.pop().is_none() {
            return Err(Error::State("there are no layers to remove".into()));
        }
        self.nodes.pop();
        self.outputs = vec![match self.nodes.len() {
            0 => Src::Input(0),
            n => Src::Node {
                node: n - 1,
                output: 0,
            },
        }];
        Ok(())
    }

    /// Builds every member for inputs of the given shapes (the first fit of a
    /// Sequential model made without `input_shape`); checks them otherwise.
    pub fn build(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        self.check_input_count(input_shapes.len())?;
        if let Some(known) = self.known_input_shapes() {
            if known.as_slice() != input_shapes {
                // The first layer that cannot take such samples names itself.
                self.node_shapes(input_shapes)?;
                let (i, want) = known
                    .iter()
                    .enumerate()
                    .find(|(i, s)| **s != input_shapes[*i])
                    .expect("some shape differs");
                let who = if self.sequential {
                    self.members
                        .first()
                        .map(Member::name)
                        .unwrap_or_else(|| self.name.clone())
                } else {
                    self.inputs[i].name.clone()
                };
                return Err(Error::LayerInput {
                    layer: who,
                    msg: format!(
                        "expects samples of shape {}, got {}",
                        shape_str(want),
                        shape_str(&input_shapes[i])
                    ),
                });
            }
            if self.is_built() {
                return Ok(());
            }
        }
        let mut shapes: Vec<Vec<Vec<usize>>> = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            let ins: Vec<Vec<usize>> = n
                .inputs
                .iter()
                .map(|s| src_shape(*s, input_shapes, &shapes))
                .collect();
            let m = &mut self.members[n.member];
            if !m.is_built() {
                m.build(&ins)?;
            }
            shapes.push(m.output_shapes(&ins)?);
        }
        for (i, s) in self.inputs.iter_mut().zip(input_shapes) {
            i.shape = Some(s.clone());
        }
        Ok(())
    }

    /// Output shape of each node, when the inputs are known.
    pub fn known_node_shapes(&self) -> Option<Vec<Vec<Vec<usize>>>> {
        self.known_input_shapes()
            .and_then(|s| self.node_shapes(&s).ok())
    }

    /// Rows of `summary()`: for a Functional model its inputs first, as Keras lists them.
    pub fn layer_info(&self) -> Vec<LayerInfo> {
        let node_shapes = self.known_node_shapes();
        let mut rows = Vec::new();
        if !self.sequential {
            for i in &self.inputs {
                rows.push(LayerInfo {
                    name: i.name.clone(),
                    class_name: "InputLayer".into(),
                    output_shape: i.shape.clone(),
                    params: 0,
                    trainable_params: 0,
                    built: true,
                    trainable: true,
                    connected_to: Vec::new(),
                });
            }
        }
        let call_index = self.call_indices();
        for (mi, m) in self.members.iter().enumerate() {
            let mut params = 0;
            let mut trainable_params = 0;
            self.member_params(m, self.trainable, &mut |p, t| {
                params += p.value.numel();
                if t {
                    trainable_params += p.value.numel();
                }
            });
            let my_nodes: Vec<usize> = (0..self.nodes.len())
                .filter(|&k| self.nodes[k].member == mi)
                .collect();
            let output_shape = my_nodes.last().and_then(|&k| {
                node_shapes
                    .as_ref()
                    .map(|s| s[k].first().cloned().unwrap_or_default())
            });
            let connected_to = my_nodes
                .iter()
                .flat_map(|&k| {
                    self.nodes[k].inputs.iter().map(|s| match *s {
                        Src::Input(i) => format!("{}[0][0]", self.inputs[i].name),
                        Src::Node { node, output } => format!(
                            "{}[{}][{}]",
                            self.members[self.nodes[node].member].name(),
                            call_index[node],
                            output
                        ),
                    })
                })
                .collect();
            rows.push(LayerInfo {
                name: m.name(),
                class_name: m.class_name(),
                output_shape,
                params,
                trainable_params,
                built: m.is_built(),
                trainable: m.trainable(),
                connected_to,
            });
        }
        rows
    }

    /// Each node's index among the calls of its member: Keras's node index, as in
    /// `dense[1][0]` or a config's `keras_history`.
    pub fn call_indices(&self) -> Vec<usize> {
        let mut call_index = vec![0usize; self.nodes.len()];
        let mut calls = vec![0usize; self.members.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            call_index[k] = calls[n.member];
            calls[n.member] += 1;
        }
        call_index
    }

    /// Whether Keras would print this model as a plain stack (three columns): one call
    /// per layer, one input per call.
    pub fn is_chain(&self) -> bool {
        let mut seen = vec![false; self.members.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            if seen[n.member] || n.inputs.len() != 1 {
                return false;
            }
            seen[n.member] = true;
            let prev = if k == 0 {
                Src::Input(0)
            } else {
                Src::Node {
                    node: k - 1,
                    output: 0,
                }
            };
            if n.inputs[0] != prev {
                return false;
            }
        }
        self.inputs.len() == 1 && self.outputs.len() == 1
    }

    pub fn compile(
        &mut self,
        optimizer: OptimizerConfig,
        losses: Vec<Loss>,
        loss_weights: Option<Vec<f64>>,
        metrics: Vec<String>,
    ) -> Result<()> {
        for m in &metrics {
            crate::metrics::check_name(m)?;
        }
        let n_out = self.outputs.len();
        let losses = match losses.len() {
            1 if n_out > 1 => vec![losses[0]; n_out],
            n if n == n_out => losses,
            n => {
                return Err(crate::error::invalid_arg(
                    "loss",
                    format!("must hold 1 loss or one per output ({n_out}), not {n}"),
                ))
            }
        };
        let loss_weights = match loss_weights {
            None => vec![1.0; n_out],
            Some(w) if w.len() == n_out && w.iter().all(|v| v.is_finite()) => w,
            Some(w) => {
                return Err(crate::error::invalid_arg(
                    "loss_weights",
                    format!(
                        "must hold one finite number per output ({n_out}), not {}",
                        w.len()
                    ),
                ))
            }
        };
        let trainable = self.is_built().then(|| self.trainable_mask());
        self.compiled = Some(Compiled {
            optimizer: Optimizer::new(optimizer)?,
            losses,
            loss_weights,
            metrics,
            trainable,
        });
        Ok(())
    }

    /// Calls `f` on every weight of a member in Keras order with whether it trains.
    fn member_params(&self, m: &Member, parent: bool, f: &mut dyn FnMut(&Param, bool)) {
        match m {
            Member::Layer(c) => {
                let c = read_layer(c);
                for p in c.params() {
                    f(p, parent && c.trainable && p.trainable);
                }
            }
            Member::Model(sub) => {
                let sub = read(sub);
                sub.visit_params(parent && sub.trainable, f);
            }
        }
    }

    /// Every weight in Keras order (member by member, kernel before bias), with
    /// whether it trains now.
    pub fn visit_params(&self, parent: bool, f: &mut dyn FnMut(&Param, bool)) {
        for m in &self.members {
            self.member_params(m, parent, f);
        }
    }

    pub fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for m in &mut self.members {
            match m {
                Member::Layer(c) => write_layer(c).params_mut().iter_mut().for_each(&mut *f),
                Member::Model(sub) => write(sub).visit_params_mut(f),
            }
        }
    }

    /// The regularizer of each weight in `visit_params` order, if it has one.
    pub fn regularizers(&self) -> Vec<Option<Regularizer>> {
        let mut out = Vec::new();
        for m in &self.members {
            match m {
                Member::Layer(c) => {
                    let c = read_layer(c);
                    out.extend(c.params().iter().map(|p| c.regularizer_for(p.name)));
                }
                Member::Model(sub) => out.extend(read(sub).regularizers()),
            }
        }
        out
    }

    /// Number of weights (tensors), nested models included.
    pub fn weight_count(&self) -> usize {
        self.members.iter().map(Member::param_count).sum()
    }

    /// Which weights train with the current flags.
    pub fn trainable_mask(&self) -> Vec<bool> {
        let mut mask = Vec::new();
        self.visit_params(self.trainable, &mut |_, t| mask.push(t));
        mask
    }

    /// Weights in Keras order: layer by layer, kernel before bias.
    pub fn get_weights(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        self.visit_params(true, &mut |p, _| out.push(p.value.clone()));
        out
    }

    pub fn set_weights(&mut self, weights: Vec<Tensor>) -> Result<()> {
        let mut expected = Vec::new();
        self.visit_params(true, &mut |p, _| expected.push(p.value.shape().to_vec()));
        if expected.len() != weights.len() {
            return Err(crate::error::invalid_arg(
                "weights",
                format!(
                    "must be a list of {} arrays for this model, not {}",
                    expected.len(),
                    weights.len()
                ),
            ));
        }
        for (i, (e, w)) in expected.iter().zip(&weights).enumerate() {
            if e.as_slice() != w.shape() {
                return Err(crate::error::invalid_arg(
                    "weights",
                    format!(
                        "element {} has shape {}, but the model expects {}",
                        i + 1,
                        shape_str(w.shape()),
                        shape_str(e)
                    ),
                ));
            }
        }
        let mut it = weights.into_iter();
        self.visit_params_mut(&mut |p| p.value = it.next().expect("counted above"));
        Ok(())
    }

    /// The trainable mask the optimizer uses, fixed at `compile()` (or now, for a model
    /// compiled before it was built).
    pub fn compiled_mask(&mut self) -> Result<Vec<bool>> {
        let n = self.weight_count();
        let live = self.trainable_mask();
        let c = self.compiled.as_mut().ok_or_else(not_compiled)?;
        match &c.trainable {
            Some(m) if m.len() == n => Ok(m.clone()),
            _ => {
                c.trainable = Some(live.clone());
                Ok(live)
            }
        }
    }

    /// One optimizer step on the weights in `mask`; each gradient (in their order) is
    /// a weighted sum of tensors.
    pub fn apply_gradients(&mut self, mask: &[bool], grads: &[Vec<(f32, &Tensor)>]) -> Result<()> {
        // The weights leave the layers for the step (a move, not a copy), so that nested
        // models' locks are not held together.
        let mut taken = Vec::new();
        let mut i = 0;
        self.visit_params_mut(&mut |p| {
            if mask.get(i).copied().unwrap_or(false) {
                taken.push(std::mem::replace(&mut p.value, Tensor::zeros(&[0])));
            }
            i += 1;
        });
        let compiled = self.compiled.as_mut().ok_or_else(not_compiled)?;
        {
            let mut refs: Vec<&mut Tensor> = taken.iter_mut().collect();
            compiled.optimizer.apply_weighted(&mut refs, grads);
        }
        let mut it = taken.into_iter();
        let mut i = 0;
        self.visit_params_mut(&mut |p| {
            if mask.get(i).copied().unwrap_or(false) {
                p.value = it.next().expect("taken above");
            }
            i += 1;
        });
        Ok(())
    }

    /// Whether output `j` can stop before a final softmax (so a cross-entropy can use
    /// logits): its layer ends in a softmax and nothing else reads it.
    pub fn output_has_softmax(&self, j: usize) -> bool {
        let Some(Src::Node { node, .. }) = self.outputs.get(j).copied() else {
            return false;
        };
        let read_elsewhere = self.nodes.iter().any(|n| {
            n.inputs
                .iter()
                .any(|s| matches!(s, Src::Node { node: k, .. } if *k == node))
        });
        match &self.members[self.nodes[node].member] {
            Member::Layer(c) => {
                !read_elsewhere && read_layer(c).output_activation() == Some(Activation::Softmax)
            }
            Member::Model(_) => false,
        }
    }

    /// Puts every weight on the tape in Keras order; those in `mask` are gradient
    /// leaves, the rest constants.
    /// Moves the model to `device`: its weights now, and the batches of every later
    /// fit/evaluate/predict. The GPU is started here, and an unusable one is an error
    /// that says why.
    pub fn set_device(&mut self, device: Device) -> Result<()> {
        if device == Device::Cuda {
            crate::device::cuda::context::gpu()
                .map_err(|why| Error::State(format!("the GPU cannot be used: {why}")))?;
        }
        self.device = device;
        self.place_weights();
        Ok(())
    }

    /// Puts every weight on the model's device (a weight updated on the host by the
    /// optimizer, or one made by a late build, goes back to the GPU).
    pub fn place_weights(&mut self) {
        let device = self.device;
        self.visit_params_mut(&mut |p| {
            if p.value.device() != device {
                p.value = p.value.to_device(device);
            }
        });
    }

    pub fn param_vars(&self, tape: &mut Tape, mask: Option<&[bool]>) -> Vec<Var> {
        let mut out = Vec::new();
        self.visit_params(true, &mut |p, _| {
            let grad = mask.is_some_and(|m| m.get(out.len()).copied().unwrap_or(false));
            out.push(tape.leaf(p.value.clone(), grad));
        });
        out
    }

    /// Records the forward pass of a batch. `logits[j]` stops output `j` before its
    /// softmax. Returns the outputs and the batch statistics of layers that keep them.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        tape: &mut Tape,
        inputs: &[Var],
        params: &[Var],
        training: bool,
        logits: &[bool],
        rng: &mut Noise,
    ) -> Result<(Vec<Var>, Vec<StateUpdate>)> {
        let mut states = Vec::new();
        let outs = self.forward_inner(
            tape,
            inputs,
            params,
            training,
            training,
            logits,
            rng,
            self.trainable,
            &mut Vec::new(),
            &mut states,
        )?;
        Ok((outs, states))
    }

    /// `fitting`: the mode of the whole pass (a training step of `fit()`), where the
    /// weights that train are the gradient leaves; `training`: the mode around this
    /// model's call, which a node's own `training` overrides.
    #[allow(clippy::too_many_arguments)]
    fn forward_inner(
        &self,
        tape: &mut Tape,
        inputs: &[Var],
        params: &[Var],
        fitting: bool,
        training: bool,
        logits: &[bool],
        rng: &mut Noise,
        parent_trainable: bool,
        path: &mut Vec<usize>,
        states: &mut Vec<StateUpdate>,
    ) -> Result<Vec<Var>> {
        self.check_input_count(inputs.len())?;
        let mut offsets = Vec::with_capacity(self.members.len() + 1);
        let mut at = 0;
        for m in &self.members {
            offsets.push(at);
            at += m.param_count();
        }
        offsets.push(at);
        if params.len() != at {
            return Err(Error::State(format!(
                "model '{}' has {at} weights but was given {}",
                self.name,
                params.len()
            )));
        }
        // Nodes whose softmax the loss takes over (logits).
        let stop: Vec<usize> = self
            .outputs
            .iter()
            .enumerate()
            .filter(|(j, _)| {
                logits.get(*j).copied().unwrap_or(false) && self.output_has_softmax(*j)
            })
            .filter_map(|(_, s)| match *s {
                Src::Node { node, .. } => Some(node),
                Src::Input(_) => None,
            })
            .collect();
        let pools_next = self.pool_fusions();
        let mut values: Vec<Vec<Var>> = Vec::with_capacity(self.nodes.len());
        // A max pooling node whose output the layer before it already computed.
        let mut pooled: Option<(usize, Var)> = None;
        for (k, n) in self.nodes.iter().enumerate() {
            if let Some((node, y)) = pooled.take() {
                if node == k {
                    values.push(vec![y]);
                    continue;
                }
            }
            let xs: Vec<Var> = n
                .inputs
                .iter()
                .map(|s| match *s {
                    Src::Input(i) => inputs[i],
                    Src::Node { node, output } => values[node][output],
                })
                .collect();
            let p = &params[offsets[n.member]..offsets[n.member + 1]];
            let stop_softmax = stop.contains(&k);
            // The call's own `training` argument, else the mode around it.
            let training = n.training.unwrap_or(training);
            path.push(n.member);
            let out = match &self.members[n.member] {
                Member::Layer(c) => {
                    let c = read_layer(c);
                    // In a training step a layer trains as `compile()` saw it: its
                    // weights are gradient leaves exactly when they were trainable then
                    // (Keras also fixes batch normalization's mode at compile). Outside
                    // one (a call with `training = TRUE` in predict()), nothing has a
                    // gradient and the flags decide.
                    let grads = p.iter().map(|&v| tape.requires_grad(v));
                    let trainable = match fitting.then(|| trained_now(&c, grads)).flatten() {
                        Some(t) => t,
                        None => parent_trainable && c.trainable,
                    };
                    let mut ctx = ForwardCtx {
                        training,
                        rng,
                        logits: stop_softmax,
                        batch_state: None,
                        trainable,
                    };
                    let fused = match (&pools_next[k], xs.as_slice()) {
                        (Some(window), [x]) => {
                            c.layer.forward_pooled(tape, *x, p, &mut ctx, window)?
                        }
                        _ => None,
                    };
                    // Fused, node k's own output is never formed; the pooling node's
                    // stands in for it (nothing else reads it: `pool_fusions`).
                    let y = match fused {
                        Some(y) => {
                            pooled = Some((k + 1, y));
                            y
                        }
                        None => c.layer.forward_multi(tape, &xs, p, &mut ctx)?,
                    };
                    if let Some(s) = ctx.batch_state {
                        states.push((path.clone(), s));
                    }
                    vec![y]
                }
                Member::Model(sub) => {
                    let sub = read(sub);
                    let t = parent_trainable && sub.trainable;
                    sub.forward_inner(tape, &xs, p, fitting, training, &[], rng, t, path, states)?
                }
            };
            path.pop();
            values.push(out);
        }
        Ok(self
            .outputs
            .iter()
            .map(|s| match *s {
                Src::Input(i) => inputs[i],
                Src::Node { node, output } => values[node][output],
            })
            .collect())
    }

    /// For each node, the windows of the 2-D max pooling that comes next when that
    /// pooling is the only reader of the node's output: in inference a convolution
    /// then pools its own output while it is in cache (`Layer::forward_pooled`).
    fn pool_fusions(&self) -> Vec<Option<PoolWindow>> {
        let mut readers = vec![0usize; self.nodes.len()];
        let sources = self
            .nodes
            .iter()
            .flat_map(|n| &n.inputs)
            .chain(&self.outputs);
        for s in sources {
            if let Src::Node { node, .. } = *s {
                readers[node] += 1;
            }
        }
        let window = |k: usize| {
            let next = self.nodes.get(k + 1)?;
            let reads_k =
                matches!(next.inputs.as_slice(), [Src::Node { node, output: 0 }] if *node == k);
            if !reads_k || readers[k] != 1 {
                return None;
            }
            match (
                &self.members[self.nodes[k].member],
                &self.members[next.member],
            ) {
                (Member::Layer(_), Member::Layer(pool)) => read_layer(pool).layer.max_pool_window(),
                _ => None,
            }
        };
        (0..self.nodes.len()).map(window).collect()
    }

    /// Whether a call in the graph (or in a model inside it) runs in training mode
    /// whatever the pass (`training = TRUE`): its dropout then needs fresh noise even in
    /// predict() and evaluate().
    pub fn forces_training(&self) -> bool {
        self.nodes.iter().any(|n| n.training == Some(true))
            || self.members.iter().any(|m| match m {
                Member::Model(sub) => read(sub).forces_training(),
                Member::Layer(_) => false,
            })
    }

    /// Whether training with the weights in `mask` must see whole batches (a layer that
    /// trains uses batch statistics in a call that runs in training mode).
    pub fn uses_batch_statistics(&self, mask: &[bool]) -> bool {
        self.uses_batch_statistics_under(true, self.trainable, mask, 0)
    }

    /// `training`: the mode around this model's call; `parent`: whether the models
    /// around it are trainable; `start`: where its weights begin in `mask`.
    fn uses_batch_statistics_under(
        &self,
        training: bool,
        parent: bool,
        mask: &[bool],
        start: usize,
    ) -> bool {
        let mut offsets = Vec::with_capacity(self.members.len());
        let mut at = start;
        for m in &self.members {
            offsets.push(at);
            at += m.param_count();
        }
        self.nodes.iter().any(|n| {
            if !n.training.unwrap_or(training) {
                return false;
            }
            let at = offsets[n.member];
            match &self.members[n.member] {
                Member::Layer(c) => {
                    let c = read_layer(c);
                    let k = c.params().len();
                    let slice = &mask[at.min(mask.len())..(at + k).min(mask.len())];
                    let trains =
                        trained_now(&c, slice.iter().copied()).unwrap_or(parent && c.trainable);
                    trains && c.uses_batch_statistics()
                }
                Member::Model(sub) => {
                    let sub = read(sub);
                    sub.uses_batch_statistics_under(true, parent && sub.trainable, mask, at)
                }
            }
        })
    }

    /// Folds batch statistics from `forward` into the layers' state.
    pub fn update_state(&mut self, states: Vec<StateUpdate>) -> Result<()> {
        for (path, s) in states {
            self.update_at(&path, s)?;
        }
        Ok(())
    }

    fn update_at(&mut self, path: &[usize], s: Vec<Tensor>) -> Result<()> {
        match (path.split_first(), path.len()) {
            (Some((&i, _)), 1) => match &self.members[i] {
                Member::Layer(c) => write_layer(c).update_state(s),
                Member::Model(_) => Ok(()),
            },
            (Some((&i, rest)), _) => match &self.members[i] {
                Member::Model(sub) => write(sub).update_at(rest, s),
                Member::Layer(_) => Ok(()),
            },
            (None, _) => Ok(()),
        }
    }

    /// Keras's `output_names`: the name of the layer behind each output.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|s| match *s {
                Src::Input(i) => self.inputs[i].name.clone(),
                Src::Node { node, .. } => self.members[self.nodes[node].member].name(),
            })
            .collect()
    }

    /// Keras's `clone_model()`: the same graph with new layers made from each layer's
    /// config (same names, fresh weights); models inside are cloned too.
    pub fn clone_fresh(&self) -> Result<Model> {
        let members = self
            .members
            .iter()
            .map(|m| -> Result<Member> {
                Ok(match m {
                    Member::Layer(c) => {
                        let c = read_layer(c);
                        let mut fields: Vec<(String, crate::layers::ConfigValue)> = vec![(
                            "name".into(),
                            crate::layers::ConfigValue::Str(c.name().into()),
                        )];
                        fields.extend(c.config().into_iter().map(|(k, v)| (k.to_string(), v)));
                        let layer = crate::layers::registry::from_config(c.class_name(), &fields)?;
                        let cell = share_layer(layer);
                        write_layer(&cell).trainable = c.trainable;
                        Member::Layer(cell)
                    }
                    Member::Model(sub) => Member::Model(share(read(sub).clone_fresh()?)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut model = Model {
            name: self.name.clone(),
            sequential: self.sequential,
            trainable: self.trainable,
            inputs: self.inputs.clone(),
            members,
            nodes: self.nodes.clone(),
            outputs: self.outputs.clone(),
            compiled: None,
            device: Device::Cpu,
        };
        if let Some(shapes) = model.known_input_shapes() {
            for i in &mut model.inputs {
                i.shape = None;
            }
            model.build(&shapes)?;
        }
        Ok(model)
    }

    /// Index of the member called `name`.
    pub fn find_member(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name() == name)
    }
}

/// Whether a layer trains in this step, from whether its trainable weights get
/// gradients; None for a layer without such weights (its own flag decides).
fn trained_now(cell: &LayerCell, grads: impl Iterator<Item = bool>) -> Option<bool> {
    let mut seen = false;
    let mut all = true;
    for (p, g) in cell.params().iter().zip(grads) {
        if p.trainable {
            seen = true;
            all &= g;
        }
    }
    seen.then_some(all)
}

fn src_shape(s: Src, inputs: &[Vec<usize>], shapes: &[Vec<Vec<usize>>]) -> Vec<usize> {
    match s {
        Src::Input(i) => inputs[i].clone(),
        Src::Node { node, output } => shapes[node][output].clone(),
    }
}

fn check_shape(arg: &str, s: &[usize]) -> Result<()> {
    if s.is_empty() || s.contains(&0) {
        return Err(crate::error::invalid_arg(
            arg,
            format!("must hold positive sizes, not {}", shape_str(s)),
        ));
    }
    Ok(())
}

pub fn not_compiled() -> Error {
    Error::State("you must call `compile()` on the model before `fit()` or `evaluate()`".into())
}
