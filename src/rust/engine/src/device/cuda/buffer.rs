//! A tensor's numbers in GPU memory, with a host copy made on first request.
//!
//! Much of the engine reads values on the host (metrics, losses, saving, the ops that
//! have no GPU kernel yet). `host()` serves those reads from a copy downloaded once and
//! kept while the buffer is unchanged; writing through `slice_mut` drops the copy.

use std::sync::OnceLock;

use super::context::{gpu_or_panic, Mem};

pub struct Buffer {
    data: Mem,
    host: OnceLock<Vec<f32>>,
}

impl Buffer {
    pub fn new(data: Mem) -> Buffer {
        Buffer {
            data,
            host: OnceLock::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn mem(&self) -> &Mem {
        &self.data
    }

    /// For kernels that write in place: the host copy is dropped first.
    pub fn mem_mut(&mut self) -> &mut Mem {
        self.host.take();
        &mut self.data
    }

    /// The values on the host, downloaded on the first call.
    pub fn host(&self) -> &[f32] {
        self.host
            .get_or_init(|| gpu_or_panic().download(&self.data))
    }

    /// The values as a host vector, moving the cached copy out when there is one.
    pub fn into_host(mut self) -> Vec<f32> {
        match self.host.take() {
            Some(v) => v,
            None => gpu_or_panic().download(&self.data),
        }
    }
}

impl Clone for Buffer {
    fn clone(&self) -> Buffer {
        Buffer::new(gpu_or_panic().copy(&self.data))
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer(cuda, {} values)", self.len())
    }
}
