//! Layers: each owns its parameters and its Keras config (name, class, arguments), so
//! summaries and file formats read from one place.

pub mod activation;
pub mod batch_normalization;
pub mod bidirectional;
pub mod conv;
pub mod dense;
pub mod depthwise_conv;
pub mod dropout;
pub mod embedding;
pub mod merge;
pub mod normalization;
pub mod pooling;
pub mod recurrent;
pub mod registry;
pub mod rescaling;
pub mod reshaping;
pub mod spatial;

use crate::rng::Noise;

use crate::autodiff::{Tape, Var};
use crate::error::{Error, Result};
use crate::ops::activation::Activation;
use crate::ops::pool::PoolWindow;
use crate::tensor::Tensor;

pub use activation::ActivationLayer;
pub use batch_normalization::BatchNormalization;
pub use bidirectional::{Bidirectional, MergeMode};
pub use conv::Conv;
pub use dense::Dense;
pub use depthwise_conv::DepthwiseConv;
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use merge::{Merge, MergeKind};
pub use normalization::Normalization;
pub use pooling::{GlobalPooling, PoolKind, Pooling};
pub use recurrent::{Recurrent, RnnKind};
pub use rescaling::Rescaling;
pub use reshaping::{Flatten, Reshape, ZeroPadding2D};

/// One `vars` group of a `.keras` file: its path below the layer's (`""` for the
/// layer's own `vars`), its `name` attribute, and the layer's weights it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct VarGroup {
    pub sub: String,
    pub name: String,
    pub weights: std::ops::Range<usize>,
}

/// A weight of a layer, in Keras's order (`kernel` before `bias`).
#[derive(Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub value: Tensor,
    pub trainable: bool,
}

impl Param {
    /// A new weight of `shape` drawn from `init` with the session's random stream.
    pub fn init(
        name: &'static str,
        shape: Vec<usize>,
        init: crate::init::Initializer,
        trainable: bool,
    ) -> Result<Param> {
        // The memory first: a weight too large for the machine is an error, not an abort.
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        let room = crate::memory::try_f32_vec(n, || {
            format!("its {name} of shape {}", crate::error::shape_str(&shape))
        })?;
        drop(room);
        let values = crate::rng::with_global(|r| init.sample(&shape, r));
        Ok(Param {
            name,
            value: Tensor::from_vec(shape, values)?,
            trainable,
        })
    }
}

impl ConfigValue {
    /// A tuple of sizes (`kernel_size`, `strides`, ...) as a config value.
    pub fn ints(v: &[usize]) -> ConfigValue {
        ConfigValue::List(v.iter().map(|&x| ConfigValue::Int(x as i64)).collect())
    }
}

/// What a forward pass needs beyond its input.
pub struct ForwardCtx<'a> {
    /// Dropout and friends act only in training.
    pub training: bool,
    pub rng: &'a mut Noise,
    /// Stop before a final softmax, so the loss can work on logits.
    pub logits: bool,
    /// Set by a layer that keeps running statistics (batch normalization) in training:
    /// this batch's statistics, which `Layer::update_state` folds in after the step.
    pub batch_state: Option<Vec<Tensor>>,
    /// The layer's `trainable` flag (and its model's): a frozen batch normalization
    /// runs in inference mode, as in Keras 3.
    pub trainable: bool,
}

impl ForwardCtx<'_> {
    /// The activation a layer applies last: none in place of a final softmax when the
    /// loss works on logits.
    pub fn final_activation(&self, act: Activation) -> Activation {
        if self.logits && act == Activation::Softmax {
            Activation::Linear
        } else {
            act
        }
    }
}

/// A value in a layer's Keras config, for summaries and saved files.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// A tuple such as `kernel_size = (3, 3)`.
    List(Vec<ConfigValue>),
}

/// As a message shows a value: `3`, `'same'`, `(2, 2)`.
impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Int(v) => write!(f, "{v}"),
            ConfigValue::Float(v) => write!(f, "{v}"),
            ConfigValue::Bool(v) => write!(f, "{v}"),
            ConfigValue::Str(v) => write!(f, "'{v}'"),
            ConfigValue::List(items) => {
                let parts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
                write!(f, "({})", parts.join(", "))
            }
        }
    }
}

pub trait Layer: Send + Sync {
    fn name(&self) -> &str;
    /// Keras's class name: `Dense`, `Dropout`, ...
    fn class_name(&self) -> &'static str;
    /// Creates the parameters for inputs of `input_shape` (without the batch axis).
    /// Layers without weights have nothing to create.
    fn build(&mut self, _input_shape: &[usize]) -> Result<()> {
        Ok(())
    }
    fn is_built(&self) -> bool {
        true
    }
    /// Output shape (without the batch axis) for an input shape, with a clear error when
    /// the layer cannot take that input.
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>>;
    fn params(&self) -> &[Param] {
        &[]
    }
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
    /// Records the layer's forward pass; `params` are the tape handles of `params()`.
    fn forward(&self, tape: &mut Tape, x: Var, params: &[Var], ctx: &mut ForwardCtx)
        -> Result<Var>;
    // The `_multi` versions take every input of one call (a merge layer takes several);
    // a layer of one input keeps its single-input methods and gets these for free.
    /// Output shape for the inputs of one call; layers that take one input get exactly one.
    fn output_shape_multi(&self, input_shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        match input_shapes {
            [s] => self.output_shape(s),
            _ => Err(one_input_error(self.name(), input_shapes.len())),
        }
    }
    /// Creates the parameters for the inputs of one call.
    fn build_multi(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        match input_shapes {
            [s] => self.build(s),
            _ => Err(one_input_error(self.name(), input_shapes.len())),
        }
    }
    /// Records the forward pass for the inputs of one call.
    fn forward_multi(
        &self,
        tape: &mut Tape,
        xs: &[Var],
        params: &[Var],
        ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        match xs {
            [x] => self.forward(tape, *x, params, ctx),
            _ => Err(one_input_error(self.name(), xs.len())),
        }
    }
    /// The windows of a 2-D max pooling layer, so that a convolution just before it can
    /// pool its own output in inference (`forward_pooled`).
    fn max_pool_window(&self) -> Option<PoolWindow> {
        None
    }
    /// In inference, this layer's forward pass followed by the max pooling `window` as
    /// one op; `None` when the layer has no such path or a gradient flows through it,
    /// and the caller then runs the two layers one after the other.
    fn forward_pooled(
        &self,
        _tape: &mut Tape,
        _x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
        _window: &PoolWindow,
    ) -> Result<Option<Var>> {
        Ok(None)
    }
    /// The activation the layer applies last, if any.
    /// Layers this one wraps, under the config key Keras gives each (a Bidirectional's
    /// `layer` and `backward_layer`).
    fn wrapped(&self) -> Vec<(&'static str, &dyn Layer)> {
        Vec::new()
    }

    /// Where the layer's weights sit in a `.keras` file, below the layer's own path: one
    /// group here; an RNN keeps them in its `cell`, a Bidirectional wrapper in
    /// `forward_layer/cell` and `backward_layer/cell`.
    fn keras_var_groups(&self) -> Vec<VarGroup> {
        vec![VarGroup {
            sub: String::new(),
            name: self.name().to_string(),
            weights: 0..self.params().len(),
        }]
    }

    /// Whether the layer is called on a list of tensors (Keras's merge layers), even
    /// when the list holds one.
    fn takes_list(&self) -> bool {
        false
    }

    fn output_activation(&self) -> Option<Activation> {
        None
    }
    /// Keras config fields beyond name and class (for `get_config()` and saving).
    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        Vec::new()
    }
    /// Whether a training forward pass needs the whole batch at once (batch statistics),
    /// so that training does not split the batch into shards.
    fn uses_batch_statistics(&self) -> bool {
        false
    }
    /// Folds the statistics a training forward pass left in `ForwardCtx::batch_state`
    /// into the layer's state (moving averages).
    fn update_state(&mut self, _batch_state: Vec<Tensor>) -> Result<()> {
        Ok(())
    }
}

fn one_input_error(layer: &str, n: usize) -> Error {
    Error::LayerInput {
        layer: layer.to_string(),
        msg: format!("expects 1 input, got {n}"),
    }
}
