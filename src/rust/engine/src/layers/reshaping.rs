//! Keras's reshaping layers: Flatten, Reshape and ZeroPadding2D. None has weights.

use crate::autodiff::{Tape, Var};
use crate::error::{invalid_arg, Error, Result};
use crate::layers::registry::Config;
use crate::layers::spatial::{batch_shape_str, channels_last, expect_axes};
use crate::layers::{ConfigValue, ForwardCtx, Layer};
use crate::naming::unique_name;
use crate::ops::math::reshape;
use crate::ops::pad::zero_pad2d;

fn with_batch(n: usize, sample: &[usize]) -> Vec<usize> {
    let mut s = vec![n];
    s.extend_from_slice(sample);
    s
}

/// An integer config value (a whole float counts, as R sends numbers as doubles).
fn as_int(v: &ConfigValue) -> Option<i64> {
    match v {
        ConfigValue::Int(i) => Some(*i),
        ConfigValue::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(*f as i64),
        _ => None,
    }
}

/// A list of integers, or one integer as a list of one.
fn int_list(v: &ConfigValue) -> Option<Vec<i64>> {
    match v {
        ConfigValue::List(items) => items.iter().map(as_int).collect(),
        v => as_int(v).map(|i| vec![i]),
    }
}

/// Flattens each sample to one axis: (N, d1, d2, ...) -> (N, d1 * d2 * ...).
pub struct Flatten {
    name: String,
}

impl Flatten {
    pub fn new(name: Option<String>) -> Flatten {
        Flatten {
            name: name.unwrap_or_else(|| unique_name("flatten")),
        }
    }

    pub fn from_config(c: &Config) -> Result<Flatten> {
        channels_last(c)?;
        Ok(Flatten::new(c.name()?))
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Flatten"
    }

    /// Samples without axes (inputs of shape (N)) become (N, 1), as in Keras.
    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input_shape.iter().product()])
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        reshape(
            tape,
            x,
            with_batch(shape[0], &self.output_shape(&shape[1..])?),
        )
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        vec![("data_format", ConfigValue::Str("channels_last".into()))]
    }
}

/// Gives each sample the shape `target_shape`; one axis may be -1, inferred from the
/// sample's size.
pub struct Reshape {
    name: String,
    target_shape: Vec<i64>,
}

impl Reshape {
    pub fn new(target_shape: Vec<i64>, name: Option<String>) -> Result<Reshape> {
        let bad = |why: &str| {
            invalid_arg(
                "target_shape",
                format!("{why}, not {}", shape_text(&target_shape)),
            )
        };
        if target_shape.is_empty() {
            return Err(bad("must hold at least one dimension"));
        }
        if target_shape.iter().any(|&d| d == 0 || d < -1) {
            return Err(bad("must hold positive integers (and at most one -1)"));
        }
        if target_shape.iter().filter(|&&d| d == -1).count() > 1 {
            return Err(bad("can hold at most one -1"));
        }
        Ok(Reshape {
            name: name.unwrap_or_else(|| unique_name("reshape")),
            target_shape,
        })
    }

    pub fn from_config(c: &Config) -> Result<Reshape> {
        let target = match c.get("target_shape") {
            None => return Err(invalid_arg("target_shape", "is missing")),
            Some(v) => int_list(v).ok_or_else(|| {
                invalid_arg(
                    "target_shape",
                    format!("must be a vector of integers, not {v}"),
                )
            })?,
        };
        Reshape::new(target, c.name()?)
    }
}

fn shape_text(dims: &[i64]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("({})", parts.join(", "))
}

impl Layer for Reshape {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "Reshape"
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let size: usize = input_shape.iter().product();
        let known: usize = self
            .target_shape
            .iter()
            .filter(|&&d| d > 0)
            .map(|&d| d as usize)
            .product();
        let inferred = self.target_shape.contains(&-1);
        let fits = if inferred {
            size % known == 0
        } else {
            size == known
        };
        if !fits {
            return Err(Error::LayerInput {
                layer: self.name.clone(),
                msg: format!(
                    "cannot reshape inputs of shape {} ({size} values per sample) to \
                     target_shape {}",
                    batch_shape_str(input_shape),
                    shape_text(&self.target_shape)
                ),
            });
        }
        Ok(self
            .target_shape
            .iter()
            .map(|&d| if d == -1 { size / known } else { d as usize })
            .collect())
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        reshape(
            tape,
            x,
            with_batch(shape[0], &self.output_shape(&shape[1..])?),
        )
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let dims = self.target_shape.iter().map(|&d| ConfigValue::Int(d));
        vec![("target_shape", ConfigValue::List(dims.collect()))]
    }
}

/// Rows of zeros above and below each image, columns of zeros left and right.
pub struct ZeroPadding2D {
    name: String,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl ZeroPadding2D {
    pub fn new(rows: (usize, usize), cols: (usize, usize), name: Option<String>) -> ZeroPadding2D {
        ZeroPadding2D {
            name: name.unwrap_or_else(|| unique_name("zero_padding2d")),
            rows,
            cols,
        }
    }

    /// `padding` as Keras takes it: one integer for all four sides, (height, width)
    /// symmetric amounts, or ((top, bottom), (left, right)); also the flat
    /// (top, bottom, left, right) that R's vectors give.
    pub fn from_config(c: &Config) -> Result<ZeroPadding2D> {
        channels_last(c)?;
        let Some(v) = c.get("padding") else {
            return Ok(ZeroPadding2D::new((1, 1), (1, 1), c.name()?));
        };
        let bad = || {
            invalid_arg(
                "padding",
                format!(
                    "must be a non-negative integer, 2 of them (height, width) or \
                     ((top, bottom), (left, right)), not {v}"
                ),
            )
        };
        let flat: Vec<i64> = match v {
            ConfigValue::List(items) if items.iter().all(|i| matches!(i, ConfigValue::List(_))) => {
                let pairs: Option<Vec<Vec<i64>>> = items.iter().map(int_list).collect();
                match pairs {
                    Some(p) if p.len() == 2 && p.iter().all(|q| q.len() == 2) => p.concat(),
                    _ => return Err(bad()),
                }
            }
            v => match *int_list(v).ok_or_else(bad)?.as_slice() {
                [p] => vec![p; 4],
                [h, w] => vec![h, h, w, w],
                [t, b, l, r] => vec![t, b, l, r],
                _ => return Err(bad()),
            },
        };
        if flat.iter().any(|&p| p < 0) {
            return Err(bad());
        }
        let p: Vec<usize> = flat.iter().map(|&p| p as usize).collect();
        Ok(ZeroPadding2D::new((p[0], p[1]), (p[2], p[3]), c.name()?))
    }
}

impl Layer for ZeroPadding2D {
    fn name(&self) -> &str {
        &self.name
    }

    fn class_name(&self) -> &'static str {
        "ZeroPadding2D"
    }

    fn output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        expect_axes(&self.name, input_shape, &["height", "width", "channels"])?;
        Ok(vec![
            input_shape[0] + self.rows.0 + self.rows.1,
            input_shape[1] + self.cols.0 + self.cols.1,
            input_shape[2],
        ])
    }

    fn forward(
        &self,
        tape: &mut Tape,
        x: Var,
        _params: &[Var],
        _ctx: &mut ForwardCtx,
    ) -> Result<Var> {
        let shape = tape.value(x).shape().to_vec();
        self.output_shape(&shape[1..])?;
        zero_pad2d(tape, x, self.rows, self.cols)
    }

    fn config(&self) -> Vec<(&'static str, ConfigValue)> {
        let pair = |(a, b): (usize, usize)| {
            ConfigValue::List(vec![ConfigValue::Int(a as i64), ConfigValue::Int(b as i64)])
        };
        vec![
            (
                "padding",
                ConfigValue::List(vec![pair(self.rows), pair(self.cols)]),
            ),
            ("data_format", ConfigValue::Str("channels_last".into())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::spatial::test_util::{apply, config_error, ints, layer, text};
    use crate::tensor::Tensor;

    fn ramp(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape.to_vec(), (0..n).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn flatten_keeps_row_major_order() {
        let l = layer("Flatten", &[]);
        assert!(l.name().starts_with("flatten"));
        assert_eq!(l.config(), vec![("data_format", text("channels_last"))]);
        assert_eq!(l.output_shape(&[13, 13, 64]).unwrap(), vec![10816]);
        assert_eq!(l.output_shape(&[]).unwrap(), vec![1]);
        let y = apply(&*l, ramp(&[2, 2, 3, 2]));
        assert_eq!(y.shape(), &[2, 12]);
        assert_eq!(y.to_vec(), ramp(&[24]).to_vec());
        assert_eq!(
            config_error("Flatten", &[("data_format", text("channels_first"))]),
            "`data_format` = 'channels_first' is not supported yet; use 'channels_last'"
        );
    }

    #[test]
    fn reshape_infers_one_axis() {
        let l = layer("Reshape", &[("target_shape", ints(&[-1, 2, 2]))]);
        assert!(l.name().starts_with("reshape"));
        assert_eq!(l.config(), vec![("target_shape", ints(&[-1, 2, 2]))]);
        assert_eq!(l.output_shape(&[12]).unwrap(), vec![3, 2, 2]);
        let y = apply(&*l, ramp(&[2, 12]));
        assert_eq!(y.shape(), &[2, 3, 2, 2]);
        assert_eq!(y.to_vec(), ramp(&[24]).to_vec());
        // One number from R arrives as a scalar; doubles that are whole count as integers.
        let l = layer("Reshape", &[("target_shape", ConfigValue::Float(12.0))]);
        assert_eq!(l.output_shape(&[3, 4]).unwrap(), vec![12]);

        let l = layer(
            "Reshape",
            &[("target_shape", ints(&[5, -1])), ("name", text("rs"))],
        );
        assert_eq!(
            l.output_shape(&[12]).unwrap_err().to_string(),
            "layer 'rs' cannot reshape inputs of shape (None, 12) (12 values per sample) \
             to target_shape (5, -1)"
        );
        let l = layer(
            "Reshape",
            &[("target_shape", ints(&[3, 5])), ("name", text("rs2"))],
        );
        assert!(l.output_shape(&[12]).is_err());
        assert_eq!(
            config_error("Reshape", &[("target_shape", ints(&[-1, -1]))]),
            "`target_shape` can hold at most one -1, not (-1, -1)"
        );
        assert_eq!(
            config_error("Reshape", &[("target_shape", ints(&[3, 0]))]),
            "`target_shape` must hold positive integers (and at most one -1), not (3, 0)"
        );
        assert_eq!(config_error("Reshape", &[]), "`target_shape` is missing");
        assert_eq!(
            config_error("Reshape", &[("target_shape", ConfigValue::Float(2.5))]),
            "`target_shape` must be a vector of integers, not 2.5"
        );
    }

    #[test]
    fn zero_padding_forms_and_values() {
        let padding = |v: ConfigValue| {
            let l = layer("ZeroPadding2D", &[("padding", v)]);
            l.config()[0].1.clone()
        };
        let nested =
            |t: i64, b: i64, l: i64, r: i64| ConfigValue::List(vec![ints(&[t, b]), ints(&[l, r])]);
        let l = layer("ZeroPadding2D", &[]);
        assert!(l.name().starts_with("zero_padding2d"));
        assert_eq!(
            l.config(),
            vec![
                ("padding", nested(1, 1, 1, 1)),
                ("data_format", text("channels_last"))
            ]
        );
        assert_eq!(padding(ConfigValue::Int(2)), nested(2, 2, 2, 2));
        assert_eq!(padding(ints(&[1, 3])), nested(1, 1, 3, 3));
        assert_eq!(padding(ints(&[0, 1, 2, 3])), nested(0, 1, 2, 3));
        assert_eq!(padding(nested(4, 0, 1, 2)), nested(4, 0, 1, 2));

        let l = layer("ZeroPadding2D", &[("padding", ints(&[1, 0, 0, 2]))]);
        assert_eq!(l.output_shape(&[2, 2, 1]).unwrap(), vec![3, 4, 1]);
        let y = apply(
            &*l,
            Tensor::from_vec(vec![1, 2, 2, 1], vec![1., 2., 3., 4.]).unwrap(),
        );
        assert_eq!(y.shape(), &[1, 3, 4, 1]);
        #[rustfmt::skip]
        assert_eq!(y.to_vec(), vec![
            0., 0., 0., 0.,
            1., 2., 0., 0.,
            3., 4., 0., 0.,
        ]);

        assert!(
            config_error("ZeroPadding2D", &[("padding", ints(&[1, -1]))])
                .starts_with("`padding` must be a non-negative integer, 2 of them (height, width)")
        );
        assert!(
            config_error("ZeroPadding2D", &[("padding", ints(&[1, 2, 3]))])
                .ends_with("not (1, 2, 3)")
        );
        let l = layer("ZeroPadding2D", &[("name", text("zp"))]);
        assert_eq!(
            l.output_shape(&[5, 5]).unwrap_err().to_string(),
            "layer 'zp' expects inputs of rank 4 (batch, height, width, channels), \
             got shape (None, 5, 5)"
        );
    }
}
