//! rustkeras's engine: tensors, reverse-mode autodiff, layers, models, optimizers,
//! losses, metrics and training loops, with no R in it. The R package talks to it
//! through the glue crate (`rbind`).

mod alloc;
pub mod autodiff;
pub mod device;
pub mod error;
pub mod gemm;
pub mod init;
pub mod io;
pub mod layers;
pub mod losses;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod naming;
pub mod ops;
pub mod optim;
pub mod progress;
pub mod regularizers;
pub mod rng;
pub mod tensor;
pub mod threads;
pub mod train;

pub use error::{Error, Result};
pub use tensor::Tensor;

/// The engine crate's version, reported by `backend_info()` in R.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
