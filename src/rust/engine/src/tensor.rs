//! Tensors: a shape and contiguous row-major f32 storage on one device.
//!
//! Storage sits behind an `Arc` so that putting a parameter on the autodiff tape is free;
//! an optimizer that updates it in place gets it back unshared once the tape is dropped
//! (copy-on-write through `Arc::make_mut`).

use std::sync::Arc;

use crate::device::cuda::buffer::Buffer;
use crate::error::{shape_str, Error, Result};

/// Where a tensor's numbers live: host memory or an NVIDIA GPU's (`device::cuda`).
#[derive(Clone, Debug)]
pub enum Storage {
    Cpu(Vec<f32>),
    /// Freed on the GPU's stream when dropped.
    Cuda(Buffer),
}

impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::Cpu(v) => crate::device::pool::give(std::mem::take(v)),
            Storage::Cuda(_) => {}
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
}

#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Vec<usize>,
    storage: Arc<Storage>,
}

impl Tensor {
    pub fn from_vec(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::State(format!(
                "cannot make a tensor of shape {} from {} values",
                shape_str(&shape),
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            storage: Arc::new(Storage::Cpu(data)),
        })
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape: shape.to_vec(),
            storage: Arc::new(Storage::Cpu(vec![0.0; n])),
        }
    }

    pub fn scalar(v: f32) -> Tensor {
        Tensor {
            shape: vec![],
            storage: Arc::new(Storage::Cpu(vec![v])),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of rows when the tensor is seen as (shape[0], rest): the batch view.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row in the batch view.
    pub fn row_len(&self) -> usize {
        if self.shape.is_empty() {
            1
        } else {
            self.shape[1..].iter().product()
        }
    }

    /// A tensor on the GPU; the buffer holds `shape`'s number of values.
    pub fn from_cuda(shape: Vec<usize>, data: Buffer) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            shape,
            storage: Arc::new(Storage::Cuda(data)),
        }
    }

    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(_) => Device::Cuda,
        }
    }

    /// The same values on `device` (this tensor itself, shared, when already there).
    /// Moving to the GPU needs the backend started (`device::cuda::context::gpu`).
    pub fn to_device(&self, device: Device) -> Tensor {
        match (device, &*self.storage) {
            (Device::Cpu, Storage::Cpu(_)) | (Device::Cuda, Storage::Cuda(_)) => self.clone(),
            (Device::Cpu, Storage::Cuda(b)) => Tensor {
                shape: self.shape.clone(),
                storage: Arc::new(Storage::Cpu(b.host().to_vec())),
            },
            (Device::Cuda, Storage::Cpu(_)) => {
                let g = crate::device::cuda::context::gpu_or_panic();
                crate::device::cuda::ops::to_gpu(g, self)
            }
        }
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Mutable storage, unshared first if the tape or a caller still holds it.
    pub fn storage_mut(&mut self) -> &mut Storage {
        Arc::make_mut(&mut self.storage)
    }

    /// The values as a host vector (a copy).
    pub fn to_vec(&self) -> Vec<f32> {
        self.host().to_vec()
    }

    /// Host view of the values; a GPU tensor's are downloaded on the first call and kept
    /// with it. Kernels go through `device` instead.
    pub fn host(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(v) => v,
            Storage::Cuda(b) => b.host(),
        }
    }

    /// Mutable host values. A GPU tensor moves to the host for this (its values are
    /// downloaded), so that code written for the CPU stays correct.
    pub fn host_mut(&mut self) -> &mut [f32] {
        if let Storage::Cuda(b) = &*self.storage {
            let v = b.host().to_vec();
            self.storage = Arc::new(Storage::Cpu(v));
        }
        match self.storage_mut() {
            Storage::Cpu(v) => v,
            Storage::Cuda(_) => unreachable!("moved to the host above"),
        }
    }

    /// Same storage seen with another shape of the same size.
    pub fn reshape(&self, shape: Vec<usize>) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape.clone(),
                rhs: shape,
            });
        }
        Ok(Tensor {
            shape,
            storage: Arc::clone(&self.storage),
        })
    }

    /// Scalar value of a one-element tensor.
    pub fn item(&self) -> f32 {
        self.host()[0]
    }
}
