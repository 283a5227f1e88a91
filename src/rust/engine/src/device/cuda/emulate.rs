//! Runs the NVRTC kernels on the CPU, to test what they compute without a GPU.
//!
//! Every kernel is a set of independent threads over a grid-stride loop (no shared
//! memory, no warp cooperation: a rule for `kernels/*.cu`), so running each (block,
//! thread) pair of a launch one after another gives what the GPU gives. The sources are
//! compiled as C++ by the system compiler with a small header that stands in for CUDA's
//! built-ins, loaded with `dlopen`, and checked against the engine's CPU kernels.

use std::path::PathBuf;
use std::process::Command;

/// What CUDA's built-ins become on the host. `threadIdx` and friends are globals that
/// `rk_emu_set` moves from one emulated thread to the next.
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

pub struct Emulator {
    lib: libloading::Library,
    _dir: PathBuf,
}

/// A launch shape small enough to emulate but with several blocks and threads, so that
/// the grid-stride indexing is exercised: 3 blocks of 5 threads.
const GRID: u32 = 3;
const BLOCK: u32 = 5;

impl Emulator {
    /// Compiles the kernels for the host; `None` (with the reason printed) where there is
    /// no C++ compiler.
    pub fn new() -> Option<Emulator> {
        let dir = std::env::temp_dir().join(format!(
            "rustkeras-kernel-emu-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let src = dir.join("kernels.cpp");
        let lib = dir.join("libkernels.so");
        std::fs::write(&src, format!("{SHIM}\n{}", super::kernels::source())).ok()?;
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let out = match Command::new(&cxx)
            .args(["-O1", "-shared", "-fPIC", "-ffp-contract=off", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("SKIPPED kernel emulation: no C++ compiler ({cxx}: {e})");
                return None;
            }
        };
        assert!(
            out.status.success(),
            "the kernels do not compile as host C++:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SAFETY: the library is the one just built from our sources.
        let lib = unsafe { libloading::Library::new(&lib) }.expect("load the emulated kernels");
        Some(Emulator { lib, _dir: dir })
    }

    /// Runs kernel `name` over a whole emulated grid; `call` invokes it once with the
    /// symbol (typed by the caller) for the current thread.
    pub fn launch<F: Copy>(&self, name: &str, mut call: impl FnMut(F)) {
        // SAFETY: names and signatures come from kernels/*.cu; the tests pass matching
        // types and buffers of the sizes each kernel reads and writes.
        unsafe {
            let set: libloading::Symbol<unsafe extern "C" fn(u32, u32, u32, u32)> =
                self.lib.get(b"rk_emu_set").expect("rk_emu_set");
            let f: libloading::Symbol<F> = self
                .lib
                .get(name.as_bytes())
                .unwrap_or_else(|e| panic!("kernel {name}: {e}"));
            for b in 0..GRID {
                for t in 0..BLOCK {
                    set(b, t, BLOCK, GRID);
                    call(*f);
                }
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}
