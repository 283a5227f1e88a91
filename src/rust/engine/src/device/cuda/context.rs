//! The CUDA backend's state: one context on the first usable device, one stream that
//! every kernel, copy and cuBLAS call goes to (so they run in order without host
//! synchronisation), cuBLAS, and our kernels compiled by NVRTC for this device.
//!
//! It starts on the first request (`gpu()`), never at load time. Start-up failures are
//! kept as a reason string; later failures (out of memory, a launch error) are bugs or
//! exhausted memory and panic with a message, which the R glue turns into an R error.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cudarc::cublas::{sys as blas_sys, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchArgs, LaunchConfig};

use super::{kernels, probe};

pub struct Gpu {
    pub ordinal: usize,
    pub name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
}

static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();

/// The backend, started on the first call; `Err` says why there is none.
pub fn gpu() -> Result<&'static Gpu, String> {
    GPU.get_or_init(|| probe::guarded("starting the CUDA backend", Gpu::start))
        .as_ref()
        .map_err(Clone::clone)
}

/// For code that only runs on tensors already on the GPU (so the backend started).
pub(crate) fn gpu_or_panic() -> &'static Gpu {
    gpu().unwrap_or_else(|e| panic!("CUDA backend: {e}"))
}

/// Threads per block for the grid-stride kernels, and the most blocks launched.
const BLOCK: u32 = 256;
const MAX_BLOCKS: u32 = 4096;

fn fail(what: &str, e: impl std::fmt::Debug) -> ! {
    panic!("CUDA backend: {what} failed: {e:?}")
}

impl Gpu {
    fn start() -> Result<Gpu, String> {
        let p = probe::probe();
        let ordinal = p.usable?;
        let name = p
            .devices
            .iter()
            .find(|d| d.ordinal == ordinal)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("CUDA context: {e:?}"))?;
        let stream = ctx
            .new_stream()
            .map_err(|e| format!("CUDA stream: {e:?}"))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| format!("cuBLAS: {e:?}"))?;
        let cc = ctx
            .compute_capability()
            .map_err(|e| format!("compute capability: {e:?}"))?;
        let ptx = kernels::compile(kernels::arch_for(cc))?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| format!("loading the kernels: {e:?}"))?;
        let mut functions = HashMap::new();
        for (_, _, names) in kernels::FILES {
            for &name in names {
                let f = module
                    .load_function(name)
                    .map_err(|e| format!("kernel {name}: {e:?}"))?;
                functions.insert(name, f);
            }
        }
        Ok(Gpu {
            ordinal,
            name,
            ctx,
            stream,
            blas,
            functions,
        })
    }

    /// TF32 tensor cores for the GEMMs (faster, about 10 bits of mantissa): off by default
    /// so that results match the CPU's.
    pub fn set_tf32(&self, on: bool) {
        let mode = if on {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: a setting on our own handle.
        let r = unsafe { blas_sys::cublasSetMathMode(*self.blas.handle(), mode) };
        if r != blas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            fail("cublasSetMathMode", r);
        }
    }

    pub fn upload(&self, v: &[f32]) -> CudaSlice<f32> {
        if v.is_empty() {
            return self.alloc(0);
        }
        self.stream
            .clone_htod(v)
            .unwrap_or_else(|e| fail("copy to the GPU", e))
    }

    /// Waits for the stream: the only synchronisation, where values go to the host.
    pub fn download(&self, s: &CudaSlice<f32>) -> Vec<f32> {
        if s.is_empty() {
            return Vec::new();
        }
        self.stream
            .clone_dtoh(s)
            .unwrap_or_else(|e| fail("copy from the GPU", e))
    }

    pub fn copy(&self, s: &CudaSlice<f32>) -> CudaSlice<f32> {
        if s.is_empty() {
            return self.alloc(0);
        }
        self.stream
            .clone_dtod(s)
            .unwrap_or_else(|e| fail("copy on the GPU", e))
    }

    /// Memory for a kernel's output, zeroed (an uninitialised buffer would be unsound
    /// to read, and the memset is cheap next to the kernels that fill it).
    pub fn alloc(&self, n: usize) -> CudaSlice<f32> {
        if n == 0 {
            return self
                .stream
                .null()
                .unwrap_or_else(|e| fail("an empty buffer", e));
        }
        self.stream
            .alloc_zeros(n)
            .unwrap_or_else(|e| fail(&format!("allocating {n} floats"), e))
    }

    /// Free and total device memory in bytes.
    pub fn memory(&self) -> (usize, usize) {
        self.ctx
            .mem_get_info()
            .unwrap_or_else(|e| fail("cuMemGetInfo", e))
    }

    /// A launch of kernel `name`: push its arguments in the kernel's order, then `run`.
    pub fn kernel<'a>(&'a self, name: &str) -> LaunchArgs<'a> {
        let f = self
            .functions
            .get(name)
            .unwrap_or_else(|| panic!("CUDA backend: no kernel {name}"));
        self.stream.launch_builder(f)
    }

    /// Runs a launch from `kernel` with enough 256-thread blocks for `work` items (the
    /// kernels' grid-stride loops take any rest).
    pub fn run(&self, mut launch: LaunchArgs<'_>, work: usize) {
        if work == 0 {
            return;
        }
        let blocks = (work as u64).div_ceil(BLOCK as u64).min(MAX_BLOCKS as u64) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the callers push arguments matching the kernel's signature in
        // kernels/*.cu (the same calls are checked on the CPU by kernel_tests.rs through
        // the emulation) with buffers of the sizes it indexes.
        unsafe { launch.launch(cfg) }.unwrap_or_else(|e| fail("a kernel launch", e));
    }

    /// Row-major C (m x n) = op(A) op(B), through cuBLAS's column-major SGEMM: a
    /// row-major matrix is its transpose in column-major order, so C^T = op(B)^T op(A)^T.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
        (a, trans_a): (&CudaSlice<f32>, bool),
        (b, trans_b): (&CudaSlice<f32>, bool),
        (m, n, k): (usize, usize, usize),
        c: &mut CudaSlice<f32>,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let cfg = GemmConfig {
            transa: op(trans_b),
            transb: op(trans_a),
            m: n as i32,
            n: m as i32,
            k: k as i32,
            alpha: 1.0f32,
            lda: (if trans_b { k } else { n }).max(1) as i32,
            ldb: (if trans_a { m } else { k }).max(1) as i32,
            beta: 0.0f32,
            ldc: n as i32,
        };
        // SAFETY: the sizes above are those of the row-major operands, whose buffers
        // hold m*k, k*n and m*n values (checked by the op before it reaches the device).
        unsafe { self.blas.gemm(cfg, b, a, c) }.unwrap_or_else(|e| fail("cublasSgemm", e));
    }
}
