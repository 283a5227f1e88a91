//! Keras's pooling layers over channels_last inputs: MaxPooling1D/2D and
//! AveragePooling1D/2D (windows), GlobalMaxPooling1D/2D and GlobalAveragePooling1D/2D
//! (the whole sequence or image). A sequence (steps, features) is pooled as an image
//! of height 1.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, shape_str, Error, Result};
use crate::layers::registry::Config;
use crate::layers::spatial::{batch_shape_str, channels_last, expect_axes};
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::math::reshape;
use crate::ops::pool::{
    avg_pool2d, axis_windows, global_avg_pool2d, global_max_pool2d, max_pool2d, Padding, PoolWindow,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Average,
}

/// The axes of one sample, by the number of spatial axes.
fn sample_axes(dims: usize) -> &'static [&'static str] {
    if dims == 1 {
        &["steps", "features"]
    } else {
        &["height", "width", "channels"]
    }
}

/// The input as an (N, H, W, C) image: a sequence (N, L, C) gets height 1.
fn as_image(tape: &mut Tape, x: Var, dims: usize) -> Result<Var> {
    if dims == 2 {
        return Ok(x);
    }
    let s = tape.value(x).shape().to_vec();
    reshape(tape, x, vec![s[0], 1, s[1], s[2]])
}

fn with_batch(n: usize, sample: &[usize]) -> Vec<usize> {
    let mut s = vec![n];
    s.extend_from_slice(sample);
    s
}

/// MaxPooling1D/2D and AveragePooling1D/2D: `pool.len()` spatial axes.
pub struct Pooling {
    name: String,
    kind: PoolKind,
    pool: Vec<usize>,
    strides: Vec<usize>,
    padding: Padding,
}

impl Pooling {
    /// `strides` defaults to `pool` as in Keras.
    pub fn new(
        kind: PoolKind,
        pool: Vec<usize>,
        strides: Option<Vec<usize>>,
        padding: Padding,
        name: Option<String>,
    ) -> Result<Pooling> {
        let strides = strides.unwrap_or_else(|| pool.clone());
        for (arg, v) in [("pool_size", &pool), ("strides", &strides)] {
            if !(1..=2).contains(&v.len()) || v.len() != pool.len() || v.contains(&0) {
                let n = pool.len().clamp(1, 2);
                let plural = if n > 1 { "s" } else { "" };
                return Err(invalid_arg(
                    arg,
                    format!(
                        "must hold {n} positive integer{plural}, not {}",
                        shape_str(v)
                    ),
                ));
            }
        }
        let mut layer = Pooling {
            name: String::new(),
            kind,
            pool,
            strides,
            padding,
        };
        layer.name = name.unwrap_or_else(|| unique_name(layer.default_name()));
        Ok(layer)
    }

    pub fn from_config(c: &Config, kind: PoolKind, dims: usize) -> Result<Pooling> {
        channels_last(c)?;
        let pool = c.tuple("pool_size", dims, Some(&[2, 2][..dims]))?;
        let strides = match c.get("strides") {
            None => None,
            Some(_) => Some(c.tuple("strides", dims, None)?),
        };
        let padding = Padding::from_name(&c.str_or("padding", "valid")?)?;
        Pooling::new(kind, pool, strides, padding, c.name()?)
    }

    fn dims(&self) -> usize {
        self.pool.len()
    }

    fn default_name(&self) -> &'static str {
        match (self.kind, self.dims()) {
            (PoolKind::Max, 1) => "max_pooling1d",
            (PoolKind::Max, _) => "max_pooling2d",
            (PoolKind::Average, 1) => "average_pooling1d",
            (PoolKind::Average, _) => "average_pooling2d",
        }
    }

    /// (pool, strides) over an image; a sequence's windows span its height of 1.
    fn window2d(&self) -> ((usize, usize), (usize, usize)) {
        match (self.pool.as_slice(), self.strides.as_slice()) {
            (&[ph, pw], &[sh, sw]) => ((ph, pw), (sh, sw)),
            _ => ((1, self.pool[0]), (1, self.strides[0])),
        }
    }
}

impl Layer for Pooling {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        match (self.kind, self.dims()) {
            (PoolKind::Max, 1) => "MaxPooling1D",
            (PoolKind::Max, _) => "MaxPooling2D",
            (PoolKind::Average, 1) => "AveragePooling1D",
            (PoolKind::Average, _) => "AveragePooling2D",
        }
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let dims = self.dims();
        expect_axes(&self.name, input_shape, sample_axes(dims))?;
        let spatial = &input_shape[..dims];
        let mut out = Vec::with_capacity(dims + 1);
        for ((&len, &pool), &stride) in spatial.iter().zip(&self.pool).zip(&self.strides) {
            let Some((o, _)) = axis_windows(len, pool, stride, self.padding) else {
                return Err(Error::LayerInput {
                    layer: self.name.clone(),
                    msg: format!(
                        "has pool_size {} larger than its input's {} {} with padding '{}' \
                         (input shape {}); use a smaller pool_size or padding = 'same'",
                        shape_str(&self.pool),
                        sample_axes(dims)[..dims].join(" and "),
                        shape_str(spatial),
                        self.padding.name(),
                        batch_shape_str(input_shape)
                    ),
                });
            };
            out.push(o);
        }
        out.push(input_shape[dims]);
        Ok(out)
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        let out = with_batch(shape[0], &self.output_shape(&shape[1..])?);
        let image = as_image(tape, x, self.dims())?;
        let (pool, strides) = self.window2d();
        let y = match self.kind {
            PoolKind::Max => max_pool2d(tape, image, pool, strides, self.padding)?,
            PoolKind::Average => avg_pool2d(tape, image, pool, strides, self.padding)?,
        };
        if self.dims() == 2 {
            return Ok(y);
        }
        reshape(tape, y, out)
    }

    fn max_pool_window(&self) -> Option<PoolWindow> {
        let (pool, strides) = self.window2d();
        (self.kind == PoolKind::Max && self.dims() == 2).then_some(PoolWindow {
            pool,
            strides,
            padding: self.padding,
        })
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("pool_size", ConfigValue::ints(&self.pool)),
            ("padding", ConfigValue::Str(self.padding.name().into())),
            ("strides", ConfigValue::ints(&self.strides)),
            ("data_format", ConfigValue::Str("channels_last".into())),
        ]
    }
}

/// GlobalMaxPooling1D/2D and GlobalAveragePooling1D/2D: one value per channel.
pub struct GlobalPooling {
    name: String,
    kind: PoolKind,
    dims: usize,
    keepdims: bool,
}

impl GlobalPooling {
    pub fn new(kind: PoolKind, dims: usize, keepdims: bool, name: Option<String>) -> GlobalPooling {
        let prefix = match (kind, dims) {
            (PoolKind::Max, 1) => "global_max_pooling1d",
            (PoolKind::Max, _) => "global_max_pooling2d",
            (PoolKind::Average, 1) => "global_average_pooling1d",
            (PoolKind::Average, _) => "global_average_pooling2d",
        };
        GlobalPooling {
            name: name.unwrap_or_else(|| unique_name(prefix)),
            kind,
            dims,
            keepdims,
        }
    }

    pub fn from_config(c: &Config, kind: PoolKind, dims: usize) -> Result<GlobalPooling> {
        channels_last(c)?;
        Ok(GlobalPooling::new(
            kind,
            dims,
            c.bool_or("keepdims", false)?,
            c.name()?,
        ))
    }
}

impl Layer for GlobalPooling {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        match (self.kind, self.dims) {
            (PoolKind::Max, 1) => "GlobalMaxPooling1D",
            (PoolKind::Max, _) => "GlobalMaxPooling2D",
            (PoolKind::Average, 1) => "GlobalAveragePooling1D",
            (PoolKind::Average, _) => "GlobalAveragePooling2D",
        }
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        expect_axes(&self.name, input_shape, sample_axes(self.dims))?;
        let channels = input_shape[self.dims];
        Ok(if self.keepdims {
            let mut s = vec![1; self.dims];
            s.push(channels);
            s
        } else {
            vec![channels]
        })
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        let out = with_batch(shape[0], &self.output_shape(&shape[1..])?);
        let image = as_image(tape, x, self.dims)?;
        let y = match self.kind {
            PoolKind::Max => global_max_pool2d(tape, image)?,
            PoolKind::Average => global_avg_pool2d(tape, image)?,
        };
        if tape.value(y).shape() == out.as_slice() {
            return Ok(y);
        }
        reshape(tape, y, out)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("data_format", ConfigValue::Str("channels_last".into())),
            ("keepdims", ConfigValue::Bool(self.keepdims)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::spatial::test_util::{apply, config_error, layer, text};
    use crate::tensor::Tensor;

    #[test]
    fn keras_defaults_names_and_configs() {
        let l = layer("MaxPooling2D", &[]);
        assert!(l.name().starts_with("max_pooling2d"), "{}", l.name());
        assert_eq!(l.class_name(), "MaxPooling2D");
        assert_eq!(
            l.config(),
            vec![
                ("pool_size", ConfigValue::ints(&[2, 2])),
                ("padding", text("valid")),
                ("strides", ConfigValue::ints(&[2, 2])),
                ("data_format", text("channels_last")),
            ]
        );
        let l = layer(
            "AveragePooling2D",
            &[
                ("pool_size", ConfigValue::Float(3.0)),
                ("strides", ConfigValue::ints(&[1, 2])),
                ("padding", text("same")),
                ("name", text("avg")),
            ],
        );
        assert_eq!((l.name(), l.class_name()), ("avg", "AveragePooling2D"));
        assert_eq!(l.config()[0], ("pool_size", ConfigValue::ints(&[3, 3])));
        assert_eq!(l.config()[2], ("strides", ConfigValue::ints(&[1, 2])));
        let l = layer("MaxPooling1D", &[("pool_size", ConfigValue::Int(3))]);
        assert!(l.name().starts_with("max_pooling1d"));
        assert_eq!(l.config()[2], ("strides", ConfigValue::ints(&[3])));
        let l = layer(
            "GlobalAveragePooling2D",
            &[("keepdims", ConfigValue::Bool(true))],
        );
        assert!(l.name().starts_with("global_average_pooling2d"));
        assert_eq!(
            l.config(),
            vec![
                ("data_format", text("channels_last")),
                ("keepdims", ConfigValue::Bool(true)),
            ]
        );
        for (class, prefix) in [
            ("AveragePooling1D", "average_pooling1d"),
            ("GlobalMaxPooling2D", "global_max_pooling2d"),
            ("GlobalMaxPooling1D", "global_max_pooling1d"),
            ("GlobalAveragePooling1D", "global_average_pooling1d"),
        ] {
            let l = layer(class, &[]);
            assert_eq!(l.class_name(), class);
            assert!(l.name().starts_with(prefix), "{}", l.name());
        }
    }

    #[test]
    fn output_shapes_follow_keras() {
        let shape = |class: &str, config: &[(&str, ConfigValue)], input: &[usize]| {
            layer(class, config).output_shape(input).unwrap()
        };
        assert_eq!(shape("MaxPooling2D", &[], &[26, 26, 32]), vec![13, 13, 32]);
        assert_eq!(shape("MaxPooling2D", &[], &[11, 11, 64]), vec![5, 5, 64]);
        let same = [("padding", text("same"))];
        assert_eq!(shape("MaxPooling2D", &same, &[11, 11, 64]), vec![6, 6, 64]);
        let s1 = [
            ("pool_size", ConfigValue::ints(&[3, 2])),
            ("strides", ConfigValue::Int(1)),
        ];
        assert_eq!(shape("AveragePooling2D", &s1, &[5, 4, 2]), vec![3, 3, 2]);
        assert_eq!(shape("MaxPooling1D", &[], &[7, 3]), vec![3, 3]);
        assert_eq!(shape("AveragePooling1D", &same, &[7, 3]), vec![4, 3]);
        let keep = [("keepdims", ConfigValue::Bool(true))];
        assert_eq!(shape("GlobalMaxPooling2D", &[], &[5, 4, 6]), vec![6]);
        assert_eq!(
            shape("GlobalMaxPooling2D", &keep, &[5, 4, 6]),
            vec![1, 1, 6]
        );
        assert_eq!(shape("GlobalAveragePooling1D", &keep, &[5, 6]), vec![1, 6]);
    }

    #[test]
    fn pooling_values() {
        // (2, 3, 4, 1): sample 0 is 1..12 row by row, sample 1 its negation.
        let v: Vec<f32> = (1..=12)
            .map(|v| v as f32)
            .chain((1..=12).map(|v| -v as f32))
            .collect();
        let x = Tensor::from_vec(vec![2, 3, 4, 1], v).unwrap();
        let y = apply(&*layer("MaxPooling2D", &[]), x.clone());
        assert_eq!(y.shape(), &[2, 1, 2, 1]);
        assert_eq!(y.to_vec(), vec![6., 8., -1., -3.]);
        let y = apply(&*layer("AveragePooling2D", &[]), x.clone());
        assert_eq!(y.to_vec(), vec![3.5, 5.5, -3.5, -5.5]);
        let y = apply(&*layer("GlobalMaxPooling2D", &[]), x.clone());
        assert_eq!((y.shape(), y.to_vec()), (&[2, 1][..], vec![12., -1.]));
        let keep = [("keepdims", ConfigValue::Bool(true))];
        let y = apply(&*layer("GlobalAveragePooling2D", &keep), x);
        assert_eq!(
            (y.shape(), y.to_vec()),
            (&[2, 1, 1, 1][..], vec![6.5, -6.5])
        );

        // Keras's MaxPooling1D / AveragePooling1D docs: [1, 2, 3, 4, 5] as (1, 5, 1).
        let seq = Tensor::from_vec(vec![1, 5, 1], vec![1., 2., 3., 4., 5.]).unwrap();
        let s1 = [
            ("pool_size", ConfigValue::Int(2)),
            ("strides", ConfigValue::Int(1)),
        ];
        let y = apply(&*layer("MaxPooling1D", &s1), seq.clone());
        assert_eq!(
            (y.shape(), y.to_vec()),
            (&[1, 4, 1][..], vec![2., 3., 4., 5.])
        );
        let y = apply(
            &*layer("AveragePooling1D", &[("pool_size", ConfigValue::Int(2))]),
            seq.clone(),
        );
        assert_eq!((y.shape(), y.to_vec()), (&[1, 2, 1][..], vec![1.5, 3.5]));
        let same = [s1[0].clone(), s1[1].clone(), ("padding", text("same"))];
        let y = apply(&*layer("AveragePooling1D", &same), seq.clone());
        assert_eq!(y.to_vec(), vec![1.5, 2.5, 3.5, 4.5, 5.]);
        let y = apply(&*layer("GlobalAveragePooling1D", &[]), seq);
        assert_eq!((y.shape(), y.to_vec()), (&[1, 1][..], vec![3.]));
    }

    #[test]
    fn bad_arguments_and_inputs_are_clear_errors() {
        assert_eq!(
            config_error("MaxPooling2D", &[("data_format", text("channels_first"))]),
            "`data_format` = 'channels_first' is not supported yet; use 'channels_last'"
        );
        assert_eq!(
            config_error("GlobalMaxPooling2D", &[("data_format", text("nchw"))]),
            "`data_format` must be 'channels_last' or 'channels_first', not 'nchw'"
        );
        assert!(
            config_error("MaxPooling2D", &[("pool_size", ConfigValue::ints(&[0, 2]))])
                .starts_with("`pool_size` must be a positive integer or 2 positive integers")
        );
        assert!(
            config_error("AveragePooling2D", &[("strides", ConfigValue::Int(-1))])
                .starts_with("`strides` must be a positive integer or 2 positive integers")
        );
        assert_eq!(
            config_error("MaxPooling2D", &[("padding", text("full"))]),
            "`padding` must be 'valid' or 'same', not 'full'"
        );
        assert!(Pooling::new(PoolKind::Max, vec![0, 2], None, Padding::Valid, None).is_err());

        let l = layer(
            "MaxPooling2D",
            &[("pool_size", ConfigValue::Int(3)), ("name", text("mp"))],
        );
        assert_eq!(
            l.output_shape(&[2, 5, 1]).unwrap_err().to_string(),
            "layer 'mp' has pool_size (3, 3) larger than its input's height and width (2, 5) \
             with padding 'valid' (input shape (None, 2, 5, 1)); use a smaller pool_size or \
             padding = 'same'"
        );
        assert_eq!(l.output_shape(&[3, 6, 1]).unwrap(), vec![1, 2, 1]);
        assert_eq!(
            l.output_shape(&[28, 28]).unwrap_err().to_string(),
            "layer 'mp' expects inputs of rank 4 (batch, height, width, channels), \
             got shape (None, 28, 28)"
        );
        let g = layer("GlobalAveragePooling1D", &[("name", text("gap"))]);
        assert_eq!(
            g.output_shape(&[4, 4, 1]).unwrap_err().to_string(),
            "layer 'gap' expects inputs of rank 3 (batch, steps, features), \
             got shape (None, 4, 4, 1)"
        );
    }
}
