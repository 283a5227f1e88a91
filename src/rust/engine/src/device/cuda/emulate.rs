//! The GPU backend emulated on the CPU, to test the backend without a GPU.
//!
//! Every kernel is a set of independent threads over a grid-stride loop (no shared
//! memory, no warp cooperation: a rule for `kernels/*.cu`), so running each (block,
//! thread) pair of a launch one after another gives what the GPU gives. The sources are
//! compiled as C++ by the system compiler, with a small header standing in for CUDA's
//! built-ins and a wrapper per kernel that takes its arguments as CUDA's launch API
//! does (an array of pointers to the values), and loaded with `dlopen`. cuBLAS's SGEMM is
//! emulated by its column-major definition.
//!
//! `RUSTKERAS_EMULATE_GPU=1` makes the engine start this backend instead of CUDA
//! (`context::gpu`): `cargo test --test devices` then runs the whole device suite, from
//! the seam's GPU arms down to the launches' argument lists, on any machine.

use std::collections::HashMap;
use std::ffi::c_void;
use std::process::Command;

use super::kernels::{self, Signature};

/// What CUDA's built-ins become on the host. `threadIdx` and friends are per-thread
/// globals that `rk_emu_set` moves from one emulated thread to the next.
const SHIM: &str = r#"
#include <math.h>
#include <string.h>
struct rk_dim3 { unsigned x, y, z; };
static thread_local rk_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
static inline float __int_as_float(unsigned v) { float f; memcpy(&f, &v, 4); return f; }
extern "C" void rk_emu_set(unsigned block, unsigned thread, unsigned block_dim, unsigned grid_dim) {
  blockIdx.x = block; threadIdx.x = thread; blockDim.x = block_dim; gridDim.x = grid_dim;
  blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
  blockDim.y = blockDim.z = gridDim.y = gridDim.z = 1;
}
"#;

type Wrapper = unsafe extern "C" fn(*mut *mut c_void);
type SetThread = unsafe extern "C" fn(u32, u32, u32, u32);

pub struct Emulator {
    lib: libloading::Library,
    signatures: HashMap<String, Signature>,
}

/// `extern "C" void rk_emu_NAME(void** a) { NAME(*(T0*)a[0], ...); }` for each kernel.
fn wrappers(sigs: &[Signature]) -> String {
    let mut s = String::new();
    for sig in sigs {
        let args: Vec<String> = sig
            .types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("*({t}*)a[{i}]"))
            .collect();
        s.push_str(&format!(
            "extern \"C\" void rk_emu_{}(void** a) {{ {}({}); }}\n",
            sig.name,
            sig.name,
            args.join(", ")
        ));
    }
    s
}

impl Emulator {
    /// Compiles the kernels for the host with `$CXX` (or `c++`) in a temporary folder,
    /// loads them and removes the folder (the loaded library stays mapped, and a backend
    /// kept in a static is never dropped, so nothing else would clean up).
    pub fn new() -> Result<Emulator, String> {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rustkeras-gpu-emulation-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let built = Self::build_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        built
    }

    fn build_in(dir: &std::path::Path) -> Result<Emulator, String> {
        let src = dir.join("kernels.cpp");
        let lib = dir.join("libkernels.so");
        let sigs = kernels::signatures();
        let text = format!("{SHIM}\n{}\n{}", kernels::source(), wrappers(&sigs));
        std::fs::write(&src, text).map_err(|e| e.to_string())?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let out = Command::new(&cxx)
            .args(["-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
            .map_err(|e| format!("no C++ compiler ({cxx}: {e})"))?;
        if !out.status.success() {
            return Err(format!(
                "the kernels do not compile as host C++:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // SAFETY: the library is the one just built from our sources.
        let lib = unsafe { libloading::Library::new(&lib) }.map_err(|e| e.to_string())?;
        let signatures = sigs.into_iter().map(|s| (s.name.clone(), s)).collect();
        Ok(Emulator { lib, signatures })
    }

    pub fn signature(&self, name: &str) -> Option<&Signature> {
        self.signatures.get(name)
    }

    /// Runs kernel `name` over a grid of `grid` blocks of `block` threads, one thread
    /// after another; `params` as CUDA takes them (a pointer to each argument's value).
    ///
    /// # Safety
    /// `params` must point at values of the kernel's parameter types, and the buffers
    /// among them must be as large as the kernel indexes.
    pub unsafe fn launch(&self, name: &str, grid: u32, block: u32, params: &mut [*mut c_void]) {
        let set: libloading::Symbol<SetThread> = self.lib.get(b"rk_emu_set").expect("rk_emu_set");
        let f: libloading::Symbol<Wrapper> = self
            .lib
            .get(format!("rk_emu_{name}").as_bytes())
            .unwrap_or_else(|e| panic!("emulated kernel {name}: {e}"));
        for b in 0..grid {
            for t in 0..block {
                set(b, t, block, grid);
                f(params.as_mut_ptr());
            }
        }
    }

    /// Kernel `name` called directly with typed arguments by `call`, once per thread of
    /// a grid of 3 blocks of 5 threads (several of each, so that the grid-stride
    /// indexing is exercised): for the kernel tests.
    pub fn launch_typed<F: Copy>(&self, name: &str, mut call: impl FnMut(F)) {
        // SAFETY: the kernel tests pass the kernel's own signature as F, and buffers of
        // the sizes it indexes.
        unsafe {
            let set: libloading::Symbol<SetThread> =
                self.lib.get(b"rk_emu_set").expect("rk_emu_set");
            let f: libloading::Symbol<F> = self
                .lib
                .get(name.as_bytes())
                .unwrap_or_else(|e| panic!("kernel {name}: {e}"));
            for b in 0..3 {
                for t in 0..5 {
                    set(b, t, 5, 3);
                    call(*f);
                }
            }
        }
    }
}

/// cuBLAS's SGEMM by its definition: column-major C (m x n, leading dimension ldc) =
/// op(A) op(B) with op(A) m x k and op(B) k x n, alpha = 1 and beta = 0.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_col_major(
    (trans_a, trans_b): (bool, bool),
    (m, n, k): (usize, usize, usize),
    (a, lda): (&[f32], usize),
    (b, ldb): (&[f32], usize),
    (c, ldc): (&mut [f32], usize),
) {
    for j in 0..n {
        for i in 0..m {
            let mut s = 0.0f32;
            for l in 0..k {
                let av = if trans_a {
                    a[l + i * lda]
                } else {
                    a[i + l * lda]
                };
                let bv = if trans_b {
                    b[j + l * ldb]
                } else {
                    b[l + j * ldb]
                };
                s += av * bv;
            }
            c[i + j * ldc] = s;
        }
    }
}
