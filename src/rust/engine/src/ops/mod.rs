//! Differentiable ops: each file holds an op family's forward, its backward and its
//! finite-difference gradient tests. Kernels live in `device`; ops only record the tape.

pub mod activation;
pub mod batch_norm;
pub mod bias;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod loss;
pub mod math;
pub mod matmul;
pub mod merge;
pub mod pad;
pub mod penalty;
pub mod pool;
pub mod sequence;

#[cfg(test)]
pub mod gradcheck;
