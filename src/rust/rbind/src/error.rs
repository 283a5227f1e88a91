//! The one place where a failure becomes something R can read.
//!
//! `RkError` crosses to R as `list(message = <chr>, kind = <chr>)`; `rk_call()` in R turns it
//! into a condition of class `rustkeras_<kind>_error` / `rustkeras_error`.

use extendr_api::prelude::*;

/// What an export returns when it can fail. `?` works on engine and extendr errors.
pub type RkResult<T> = std::result::Result<T, RkError>;

#[derive(Debug, Clone, PartialEq)]
pub struct RkError {
    /// Short machine-readable category, becomes the R subclass `rustkeras_<kind>_error`.
    pub kind: &'static str,
    /// The message the user reads, complete and without a trailing newline.
    pub message: String,
}

impl RkError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        RkError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for RkError {
    fn from(message: String) -> Self {
        RkError::new("engine", message)
    }
}

impl From<&str> for RkError {
    fn from(message: &str) -> Self {
        RkError::new("engine", message)
    }
}

/// Conversion failures of R values inside an export (a wrong type reached Rust).
impl From<extendr_api::Error> for RkError {
    fn from(e: extendr_api::Error) -> Self {
        RkError::new("conversion", e.to_string())
    }
}

/// The engine's errors, by category: the R condition gets a subclass per kind.
impl From<engine::Error> for RkError {
    fn from(e: engine::Error) -> Self {
        use engine::Error::*;
        let kind = match e {
            Interrupted => "interrupt",
            File { .. } => "file",
            InvalidArgument { .. } | UnknownName { .. } => "argument",
            LayerInput { .. } | ShapeMismatch { .. } | Data { .. } => "input",
            State(_) => "state",
            OutOfMemory { .. } => "memory",
        };
        RkError::new(kind, e.to_string())
    }
}

impl From<RkError> for Robj {
    fn from(e: RkError) -> Self {
        list!(message = e.message, kind = e.kind).into()
    }
}
