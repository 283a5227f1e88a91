//! The CUDA backend, through cudarc with dynamic loading: the driver, cuBLAS, cuDNN and
//! NVRTC are opened at run time, so the engine builds and runs without CUDA.
//!
//! - `probe`: what the machine has (driver, devices, libraries) and whether it is usable;
//! - `kernels`: the few kernels we write ourselves, compiled at run time by NVRTC.

pub mod kernels;
pub mod probe;

#[cfg(test)]
mod emulate;
#[cfg(test)]
mod kernel_tests;
