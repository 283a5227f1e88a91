//! One error type for the whole engine. Variants carry the context a user needs
//! (argument, layer, shapes) so that messages are built in one place.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A user-supplied argument has a bad value ("`units` must be positive, not 0").
    InvalidArgument { arg: String, msg: String },
    /// A layer received an input whose shape it cannot take.
    LayerInput { layer: String, msg: String },
    /// Two tensors that an op combines have incompatible shapes.
    ShapeMismatch {
        op: &'static str,
        lhs: Vec<usize>,
        rhs: Vec<usize>,
    },
    /// Data given to fit/evaluate/predict is unusable.
    Data { arg: String, msg: String },
    /// A call made in the wrong order (fit before compile, ...).
    State(String),
    /// A name that is not one we know (activation, loss, optimizer, ...).
    UnknownName {
        kind: &'static str,
        name: String,
        known: Vec<&'static str>,
    },
    /// The computation was stopped by the user (interrupt).
    Interrupted,
    /// A model file could not be read or written ("file 'm.h5': ...").
    File { path: String, msg: String },
    /// Memory for `what` could not be had: `bytes` asked for, `available` free (when the
    /// system says).
    OutOfMemory {
        what: String,
        bytes: usize,
        available: Option<usize>,
    },
}

/// A size in bytes as people read it: "40.0 GB", "512.0 MB".
pub fn bytes_str(b: usize) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} kB", b / 1e3)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn shape_str(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("({})", parts.join(", "))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument { arg, msg } => write!(f, "`{arg}` {msg}"),
            Error::LayerInput { layer, msg } => write!(f, "layer '{layer}' {msg}"),
            Error::ShapeMismatch { op, lhs, rhs } => write!(
                f,
                "{op}: incompatible shapes {} and {}",
                shape_str(lhs),
                shape_str(rhs)
            ),
            Error::Data { arg, msg } => write!(f, "`{arg}` {msg}"),
            Error::State(msg) => write!(f, "{msg}"),
            Error::UnknownName { kind, name, known } => write!(
                f,
                "unknown {kind} '{name}'; known {kind}s: {}",
                known.join(", ")
            ),
            Error::Interrupted => write!(f, "interrupted by the user"),
            Error::File { path, msg } => write!(f, "file '{path}': {msg}"),
            Error::OutOfMemory {
                what,
                bytes,
                available,
            } => match available {
                Some(a) => write!(
                    f,
                    "{what} needs {} of memory, but only {} is available",
                    bytes_str(*bytes),
                    bytes_str(*a)
                ),
                None => write!(
                    f,
                    "{what} needs {}: the allocation failed",
                    bytes_str(*bytes)
                ),
            },
        }
    }
}

impl std::error::Error for Error {}

pub fn invalid_arg(arg: &str, msg: impl Into<String>) -> Error {
    Error::InvalidArgument {
        arg: arg.to_string(),
        msg: msg.into(),
    }
}

pub fn data_err(arg: &str, msg: impl Into<String>) -> Error {
    Error::Data {
        arg: arg.to_string(),
        msg: msg.into(),
    }
}
