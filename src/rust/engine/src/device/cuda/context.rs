//! The GPU backend's state and its few primitives: memory (upload, download, copy,
//! allocate), kernel launches and SGEMM. On CUDA: one context on the first usable
//! device, one stream that every kernel, copy and cuBLAS call goes to (so they run in
//! order without host synchronisation), cuBLAS, and our kernels compiled by NVRTC for
//! the device. Emulated (`RUSTKERAS_EMULATE_GPU=1`, see `emulate`): the same primitives on
//! host memory, for testing.
//!
//! It starts on the first request (`gpu()`), never at load time, and then runs its
//! self-check against the CPU once (`selfcheck`). Start-up and self-check failures are
//! kept as a reason string; later failures (out of memory, a launch error) panic with a
//! message, which the R glue turns into an R error.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, OnceLock};

use cudarc::cublas::{sys as blas_sys, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};

use super::emulate::{self, Emulator};
use super::{kernels, probe, selfcheck};

/// A tensor's memory on the device: CUDA's, or host memory standing in for it. Empty
/// tensors hold no memory (CUDA refuses zero-byte allocations on some devices) and are
/// passed to kernels as null pointers.
pub enum Mem {
    Cuda(CudaSlice<f32>),
    Emulated(Vec<f32>),
    Empty,
}

/// Bytes held by emulated device memory, so that `memory()` reports use as CUDA does.
static EMULATED_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The memory the emulated device pretends to have.
const EMULATED_TOTAL: usize = 16 << 30;

impl Mem {
    fn emulated(v: Vec<f32>) -> Mem {
        EMULATED_BYTES.fetch_add(v.len() * 4, std::sync::atomic::Ordering::Relaxed);
        Mem::Emulated(v)
    }

    pub fn len(&self) -> usize {
        match self {
            Mem::Cuda(s) => s.len(),
            Mem::Emulated(v) => v.len(),
            Mem::Empty => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        if let Mem::Emulated(v) = self {
            EMULATED_BYTES.fetch_sub(v.len() * 4, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// One argument of a kernel launch, in the kernel's parameter order.
pub enum Arg<'a> {
    In(&'a Mem),
    Out(&'a mut Mem),
    /// A null pointer, for an optional buffer.
    Null,
    U64(u64),
    I32(i32),
    F32(f32),
}

impl Arg<'_> {
    /// The letter of `kernels::Signature::kinds` this argument fills.
    fn kind(&self) -> char {
        match self {
            Arg::In(_) | Arg::Out(_) | Arg::Null => 'p',
            Arg::U64(_) => 'u',
            Arg::I32(_) => 'i',
            Arg::F32(_) => 'f',
        }
    }
}

struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<String, CudaFunction>,
}

enum Backend {
    Cuda(Cuda),
    Emulated(Emulator),
}

pub struct Gpu {
    pub ordinal: usize,
    pub name: String,
    backend: Backend,
    /// Each kernel's parameter kinds, checked at every launch.
    kinds: HashMap<String, String>,
}

static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();

/// The self-check's result (`selfcheck::run`), once per process.
static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();

/// The backend, started on the first call and then checked against the CPU
/// (`selfcheck`); `Err` says why there is none: it could not start, or it failed its
/// self-check. Everything that puts values on the GPU asks here first.
pub fn gpu() -> Result<&'static Gpu, String> {
    let g = started()?;
    CHECKED
        .get_or_init(|| selfcheck::run(selfcheck::fault_from_env().as_deref()))
        .clone()?;
    Ok(g)
}

/// The backend as started, before or without its self-check: for the self-check itself
/// and for code that runs on tensors already on the GPU (which `gpu()` let there).
pub fn started() -> Result<&'static Gpu, String> {
    GPU.get_or_init(|| probe::guarded("starting the GPU backend", Gpu::start))
        .as_ref()
        .map_err(Clone::clone)
}

/// Why the GPU is unusable when it started but failed its self-check; `None` when it
/// passed or there is no GPU backend at all.
pub fn selfcheck_failure() -> Option<String> {
    started().ok()?;
    gpu().err()
}

/// Whether `RUSTKERAS_EMULATE_GPU=1` asks for the emulated backend (see `emulate`).
pub fn emulation_requested() -> bool {
    std::env::var_os("RUSTKERAS_EMULATE_GPU").is_some_and(|v| v == "1")
}

/// For code that only runs on tensors already on the GPU (so the backend started). Not
/// `gpu()`: the self-check runs the seam's GPU arms from inside `gpu()`'s first call.
pub(crate) fn gpu_or_panic() -> &'static Gpu {
    started().unwrap_or_else(|e| panic!("GPU backend: {e}"))
}

/// Threads per block for the grid-stride kernels, and the most blocks launched.
const BLOCK: u32 = 256;
const MAX_BLOCKS: u32 = 4096;

fn fail(what: &str, e: impl std::fmt::Debug) -> ! {
    panic!("GPU backend: {what} failed: {e:?}")
}

/// A column-major SGEMM as cuBLAS takes it (alpha 1, beta 0): op(A) is m x k.
struct ColMajorGemm {
    trans: (bool, bool),
    mnk: (usize, usize, usize),
    lda: usize,
    ldb: usize,
    ldc: usize,
}

/// Asks the device's default memory pool (where cudarc's stream-ordered allocations
/// come from) to return its free blocks, so that `memory()` sees freed tensors as free.
/// Best effort: a device without memory pools has nothing to trim.
fn trim_memory_pool(ctx: &CudaContext) {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: C calls on our own device with a valid out-pointer.
    unsafe {
        if sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) == sys::CUresult::CUDA_SUCCESS
        {
            let _ = sys::cuMemPoolTrimTo(pool, 0);
        }
    }
}

/// A null device pointer, pushed for `Arg::Null`.
static NULL_PTR: u64 = 0;

impl Gpu {
    fn start() -> Result<Gpu, String> {
        let kinds = kernels::signatures()
            .into_iter()
            .map(|s| (s.name, s.kinds))
            .collect();
        if emulation_requested() {
            return Ok(Gpu {
                ordinal: 0,
                name: "emulated GPU (host memory)".into(),
                backend: Backend::Emulated(Emulator::new()?),
                kinds,
            });
        }
        let p = probe::probe();
        let ordinal = p.usable?;
        let name = p
            .devices
            .iter()
            .find(|d| d.ordinal == ordinal)
            .map(|d| d.name.clone())
            .unwrap_or_default();
        let ctx = CudaContext::new(ordinal).map_err(|e| format!("CUDA context: {e:?}"))?;
        // One stream orders everything, so cudarc's events between streams (two per
        // allocation, waits at every launch) would be pure overhead.
        // SAFETY: no memory exists yet, and all of it will live on the one stream below.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| format!("CUDA stream: {e:?}"))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| format!("cuBLAS: {e:?}"))?;
        let cc = ctx
            .compute_capability()
            .map_err(|e| format!("compute capability: {e:?}"))?;
        let supported = kernels::supported_archs()?;
        let oldest = supported.iter().copied().min().unwrap_or(0);
        let arch = kernels::arch_for(cc, &supported).ok_or_else(|| {
            format!(
                "this NVRTC compiles for compute capability {}.{} and newer, and the GPU has {}.{}: use the NVRTC of an older CUDA",
                oldest / 10,
                oldest % 10,
                cc.0,
                cc.1
            )
        })?;
        let ptx = kernels::compile(arch)?;
        let module = ctx.load_module(ptx).map_err(|e| {
            let unsupported = matches!(
                e.0,
                cudarc::driver::sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
            );
            if unsupported {
                "the NVIDIA driver cannot load code from this NVRTC (it is newer than the driver): update the driver, or put an older NVRTC first on LD_LIBRARY_PATH".to_string()
            } else {
                format!("loading the kernels: {e:?}")
            }
        })?;
        let mut functions = HashMap::new();
        for name in kinds.keys() {
            let f = module
                .load_function(name)
                .map_err(|e| format!("kernel {name}: {e:?}"))?;
            functions.insert(name.clone(), f);
        }
        Ok(Gpu {
            ordinal,
            name,
            backend: Backend::Cuda(Cuda {
                ctx,
                stream,
                blas,
                functions,
            }),
            kinds,
        })
    }

    pub fn is_emulated(&self) -> bool {
        matches!(self.backend, Backend::Emulated(_))
    }

    /// TF32 tensor cores for the GEMMs (faster, about 10 bits of mantissa): off by default
    /// so that results match the CPU's.
    pub fn set_tf32(&self, on: bool) {
        let Backend::Cuda(c) = &self.backend else {
            return;
        };
        let mode = if on {
            blas_sys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            blas_sys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: a setting on our own handle.
        let r = unsafe { blas_sys::cublasSetMathMode(*c.blas.handle(), mode) };
        if r != blas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            fail("cublasSetMathMode", r);
        }
    }

    pub fn upload(&self, v: &[f32]) -> Mem {
        match &self.backend {
            _ if v.is_empty() => Mem::Empty,
            Backend::Emulated(_) => Mem::emulated(v.to_vec()),
            Backend::Cuda(c) => Mem::Cuda(
                c.stream
                    .clone_htod(v)
                    .unwrap_or_else(|e| fail("copy to the GPU", e)),
            ),
        }
    }

    /// Waits for the stream: the only synchronisation, where values go to the host.
    pub fn download(&self, m: &Mem) -> Vec<f32> {
        match (&self.backend, m) {
            (_, Mem::Emulated(v)) => v.clone(),
            (_, Mem::Empty) => Vec::new(),
            (Backend::Cuda(c), Mem::Cuda(s)) => c
                .stream
                .clone_dtoh(s)
                .unwrap_or_else(|e| fail("copy from the GPU", e)),
            (Backend::Emulated(_), Mem::Cuda(_)) => unreachable!("CUDA memory without CUDA"),
        }
    }

    pub fn copy(&self, m: &Mem) -> Mem {
        match (&self.backend, m) {
            (_, Mem::Emulated(v)) => Mem::emulated(v.clone()),
            (_, Mem::Empty) => Mem::Empty,
            (Backend::Cuda(c), Mem::Cuda(s)) => Mem::Cuda(
                c.stream
                    .clone_dtod(s)
                    .unwrap_or_else(|e| fail("copy on the GPU", e)),
            ),
            (Backend::Emulated(_), Mem::Cuda(_)) => unreachable!("CUDA memory without CUDA"),
        }
    }

    /// Memory for a kernel's or a GEMM's output, which writes every value (no memset
    /// first: that would be one more launch per op). The emulated device fills it with
    /// NaN instead, so that a value a kernel forgets to write shows in the tests.
    pub fn alloc(&self, n: usize) -> Mem {
        match &self.backend {
            _ if n == 0 => Mem::Empty,
            Backend::Emulated(_) => Mem::emulated(vec![f32::NAN; n]),
            // SAFETY: device memory is never read by the host before a kernel or a copy
            // has written it (the callers' contract above).
            Backend::Cuda(c) => Mem::Cuda(
                unsafe { c.stream.alloc::<f32>(n) }
                    .unwrap_or_else(|e| fail(&format!("allocating {n} floats"), e)),
            ),
        }
    }

    /// Sets every value of `m` to zero.
    fn zero(&self, m: &mut Mem) {
        match (&self.backend, m) {
            (_, Mem::Empty) => {}
            (_, Mem::Emulated(v)) => v.fill(0.0),
            (Backend::Cuda(c), Mem::Cuda(s)) => c
                .stream
                .memset_zeros(s)
                .unwrap_or_else(|e| fail("clearing GPU memory", e)),
            (Backend::Emulated(_), Mem::Cuda(_)) => unreachable!("CUDA memory without CUDA"),
        }
    }

    /// Free and total device memory in bytes, once the stream has finished its work and
    /// the memory pool has handed freed blocks back to the device.
    pub fn memory(&self) -> (usize, usize) {
        match &self.backend {
            Backend::Emulated(_) => {
                let used = EMULATED_BYTES.load(std::sync::atomic::Ordering::Relaxed);
                (EMULATED_TOTAL.saturating_sub(used), EMULATED_TOTAL)
            }
            Backend::Cuda(c) => {
                c.stream
                    .synchronize()
                    .unwrap_or_else(|e| fail("waiting for the GPU", e));
                trim_memory_pool(&c.ctx);
                c.ctx
                    .mem_get_info()
                    .unwrap_or_else(|e| fail("cuMemGetInfo", e))
            }
        }
    }

    /// Launches kernel `name` with enough 256-thread blocks for `work` items (its
    /// grid-stride loop takes any rest). The arguments must match the kernel's
    /// parameters in kind (buffer, u64, int, float) and order: checked here, so that a
    /// mistake is a clear panic rather than a GPU fault.
    pub fn launch(&self, name: &str, work: usize, args: &mut [Arg<'_>]) {
        let want = self
            .kinds
            .get(name)
            .unwrap_or_else(|| panic!("GPU backend: no kernel {name}"));
        let got: String = args.iter().map(Arg::kind).collect();
        assert_eq!(&got, want, "GPU backend: arguments of kernel {name}");
        if work == 0 {
            return;
        }
        let blocks = (work as u64).div_ceil(BLOCK as u64).min(MAX_BLOCKS as u64) as u32;
        match &self.backend {
            Backend::Cuda(c) => {
                let f = &c.functions[name];
                let mut b = c.stream.launch_builder(f);
                for a in args.iter_mut() {
                    match a {
                        Arg::In(Mem::Cuda(s)) => b.arg(s),
                        Arg::In(Mem::Empty) => b.arg(&NULL_PTR),
                        Arg::Out(m) => match &mut **m {
                            Mem::Cuda(s) => b.arg(s),
                            Mem::Empty => b.arg(&NULL_PTR),
                            Mem::Emulated(_) => unreachable!("host memory given to CUDA"),
                        },
                        Arg::In(Mem::Emulated(_)) => unreachable!("host memory given to CUDA"),
                        Arg::Null => b.arg(&NULL_PTR),
                        Arg::U64(v) => b.arg(&*v),
                        Arg::I32(v) => b.arg(&*v),
                        Arg::F32(v) => b.arg(&*v),
                    };
                }
                let cfg = LaunchConfig {
                    grid_dim: (blocks, 1, 1),
                    block_dim: (BLOCK, 1, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: the argument kinds match the kernel's parameters (checked
                // above), and the callers pass buffers of the sizes the kernel indexes
                // (the same calls run emulated in the tests).
                unsafe { b.launch(cfg) }.unwrap_or_else(|e| fail(&format!("kernel {name}"), e));
            }
            Backend::Emulated(e) => {
                // Buffers are passed as pointers to their pointer values, as CUDA's
                // launch API takes device pointers.
                let mut ptrs: Vec<u64> = args
                    .iter_mut()
                    .map(|a| match a {
                        Arg::In(Mem::Emulated(v)) => v.as_ptr() as u64,
                        Arg::Out(m) => match &mut **m {
                            Mem::Emulated(v) => v.as_mut_ptr() as u64,
                            Mem::Empty => 0,
                            Mem::Cuda(_) => unreachable!("CUDA memory without CUDA"),
                        },
                        Arg::In(Mem::Cuda(_)) => unreachable!("CUDA memory without CUDA"),
                        _ => 0,
                    })
                    .collect();
                let mut params: Vec<*mut c_void> = args
                    .iter_mut()
                    .zip(ptrs.iter_mut())
                    .map(|(a, p)| match a {
                        Arg::U64(v) => v as *mut u64 as *mut c_void,
                        Arg::I32(v) => v as *mut i32 as *mut c_void,
                        Arg::F32(v) => v as *mut f32 as *mut c_void,
                        _ => p as *mut u64 as *mut c_void,
                    })
                    .collect();
                // SAFETY: as for CUDA above; the values live until the call returns.
                unsafe { e.launch(name, blocks, BLOCK, &mut params) };
            }
        }
    }

    /// Row-major C (m x n) = op(A) op(B), through cuBLAS's column-major SGEMM: a
    /// row-major matrix is its transpose in column-major order, so C^T = op(B)^T op(A)^T.
    pub fn sgemm(
        &self,
        (a, trans_a): (&Mem, bool),
        (b, trans_b): (&Mem, bool),
        (m, n, k): (usize, usize, usize),
        c: &mut Mem,
    ) {
        assert!(
            a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
            "GPU backend: SGEMM operands of {}, {} and {} values for m {m}, n {n}, k {k}",
            a.len(),
            b.len(),
            c.len()
        );
        if m == 0 || n == 0 {
            return;
        }
        // With no inner dimension the product is all zeros.
        if k == 0 {
            self.zero(c);
            return;
        }
        // The column-major call, one description for both backends: C^T (n x m) =
        // op'(B^T) (n x k) times op'(A^T) (k x m), B's memory first.
        let call = ColMajorGemm {
            trans: (trans_b, trans_a),
            mnk: (n, m, k),
            lda: (if trans_b { k } else { n }).max(1),
            ldb: (if trans_a { m } else { k }).max(1),
            ldc: n,
        };
        match (&self.backend, b, a, c) {
            (Backend::Cuda(cu), Mem::Cuda(first), Mem::Cuda(second), Mem::Cuda(c)) => {
                let op = |t: bool| {
                    if t {
                        blas_sys::cublasOperation_t::CUBLAS_OP_T
                    } else {
                        blas_sys::cublasOperation_t::CUBLAS_OP_N
                    }
                };
                let cfg = GemmConfig {
                    transa: op(call.trans.0),
                    transb: op(call.trans.1),
                    m: call.mnk.0 as i32,
                    n: call.mnk.1 as i32,
                    k: call.mnk.2 as i32,
                    alpha: 1.0f32,
                    lda: call.lda as i32,
                    ldb: call.ldb as i32,
                    beta: 0.0f32,
                    ldc: call.ldc as i32,
                };
                // cuBLAS calls run in the calling thread's current context (copies and
                // launches bind it themselves).
                cu.ctx
                    .bind_to_thread()
                    .unwrap_or_else(|e| fail("binding the CUDA context", e));
                // SAFETY: the sizes are those of the row-major operands, whose buffers
                // hold m*k, k*n and m*n values (checked by the op before the device).
                unsafe { cu.blas.gemm(cfg, first, second, c) }
                    .unwrap_or_else(|e| fail("cublasSgemm", e));
            }
            (
                Backend::Emulated(_),
                Mem::Emulated(first),
                Mem::Emulated(second),
                Mem::Emulated(c),
            ) => {
                emulate::sgemm_col_major(
                    call.trans,
                    call.mnk,
                    (first, call.lda),
                    (second, call.ldb),
                    (c, call.ldc),
                );
            }
            _ => unreachable!("operands on another backend"),
        }
    }
}
