//! The CUDA backend, through cudarc with dynamic loading: the driver, cuBLAS, cuDNN and
//! NVRTC are opened at run time, so the engine builds and runs without CUDA.
//!
//! - `probe`: what the machine has (driver, devices, libraries) and whether it is usable;
//! - `context`: the backend's state (context, stream, cuBLAS, compiled kernels), started
//!   on first use;
//! - `buffer`: a tensor's GPU storage, with a host copy on demand;
//! - `ops`: the device seam's GPU arms;
//! - `kernels`: the few kernels we write ourselves, compiled at run time by NVRTC;
//! - `selfcheck`: small problems on the GPU and the CPU, compared once per process before
//!   the GPU is used (`context::gpu()`);
//! - `emulate`: the backend on the CPU (`RUSTKERAS_EMULATE_GPU=1`), to test it anywhere.

pub mod buffer;
pub mod context;
pub mod emulate;
pub mod kernels;
pub mod ops;
pub mod probe;
pub mod selfcheck;

#[cfg(test)]
mod kernel_tests;
