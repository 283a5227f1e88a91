//! The kernels we write ourselves: elementwise ops, reductions, softmax, cross-entropy,
//! dropout masks and optimizer updates (everything else is cuBLAS and cuDNN). They are
//! CUDA C in `kernels/*.cu`, compiled by NVRTC at run time for the device at hand, so
//! the build needs no CUDA toolkit.
//!
//! The tests compile them whenever NVRTC can be loaded (no GPU needed), so a kernel that
//! does not compile fails CI rather than a user's first GPU session.

use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

use crate::ops::activation::Activation;

/// Included before every file.
const COMMON: &str = include_str!("kernels/common.cuh");

/// Each file of kernels; the kernels' names and parameters are read from the sources
/// (`signatures`).
pub const FILES: [(&str, &str); 10] = [
    ("elementwise.cu", include_str!("kernels/elementwise.cu")),
    ("reduce.cu", include_str!("kernels/reduce.cu")),
    ("softmax.cu", include_str!("kernels/softmax.cu")),
    ("loss.cu", include_str!("kernels/loss.cu")),
    ("dropout.cu", include_str!("kernels/dropout.cu")),
    ("conv.cu", include_str!("kernels/conv.cu")),
    ("pool.cu", include_str!("kernels/pool.cu")),
    ("layout.cu", include_str!("kernels/layout.cu")),
    ("norm.cu", include_str!("kernels/norm.cu")),
    ("optim.cu", include_str!("kernels/optim.cu")),
];

/// The whole source NVRTC compiles: the common header, then every file.
pub fn source() -> String {
    let mut s = String::from(COMMON);
    for (name, text) in FILES {
        s.push_str(&format!("\n// ---- {name}\n"));
        s.push_str(text);
    }
    s
}

/// One kernel's parameters as written in its file: the C type of each, and a letter per
/// parameter for what a launch must pass (`p` a buffer pointer, `u` a u64, `i` an int,
/// `f` a float). Launches are checked against these letters.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub name: String,
    pub types: Vec<String>,
    pub kinds: String,
}

/// The signatures of every `extern "C" __global__` kernel in the sources.
pub fn signatures() -> Vec<Signature> {
    const START: &str = "extern \"C\" __global__ void ";
    let src = source();
    let mut out = Vec::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find(START) {
        rest = &rest[i + START.len()..];
        let open = rest.find('(').expect("a kernel's parameter list");
        let close = rest.find(')').expect("a kernel's parameter list ends");
        let name = rest[..open].trim().to_string();
        let mut types = Vec::new();
        let mut kinds = String::new();
        for param in rest[open + 1..close].split(',') {
            let param = param.split_whitespace().collect::<Vec<_>>().join(" ");
            // The type is the parameter without its name (the last identifier).
            let cut = param
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |k| k + 1);
            let ty = param[..cut].trim().to_string();
            kinds.push(match ty.as_str() {
                t if t.ends_with('*') => 'p',
                "u64" => 'u',
                "int" => 'i',
                "float" => 'f',
                other => panic!("kernel {name}: parameter type {other} has no launch kind"),
            });
            types.push(ty);
        }
        out.push(Signature { name, types, kinds });
        rest = &rest[close..];
    }
    out
}

/// The virtual architectures this NVRTC compiles for, as numbers (75 for compute_75).
pub fn supported_archs() -> Result<Vec<i32>, String> {
    use cudarc::nvrtc::sys;
    super::probe::guarded("NVRTC", || {
        let mut n = 0;
        // SAFETY: C calls with out-pointers of the sizes NVRTC asks for.
        unsafe {
            if sys::nvrtcGetNumSupportedArchs(&mut n) != sys::nvrtcResult::NVRTC_SUCCESS {
                return Err("NVRTC does not list its architectures".into());
            }
            let mut archs = vec![0; n.max(0) as usize];
            if sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) != sys::nvrtcResult::NVRTC_SUCCESS {
                return Err("NVRTC does not list its architectures".into());
            }
            Ok(archs)
        }
    })
}

/// The architecture to compile for on a device of compute capability `cc`: the newest
/// that NVRTC supports and the device runs (PTX for an older architecture runs on newer
/// chips), or None when NVRTC supports nothing this old.
pub fn arch_for(cc: (i32, i32), supported: &[i32]) -> Option<i32> {
    let device = cc.0 * 10 + cc.1;
    supported.iter().copied().filter(|&a| a <= device).max()
}

/// Compiles every kernel to PTX for architecture `arch` (75 for compute_75). The error
/// carries NVRTC's log, which names the line.
pub fn compile(arch: i32) -> Result<Ptx, String> {
    let opts = CompileOptions {
        // Division, square roots and denormals as IEEE: results close to the CPU's.
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        fmad: Some(true),
        options: vec![format!("--gpu-architecture=compute_{arch}")],
        name: Some("rustkeras_kernels.cu".into()),
        ..Default::default()
    };
    super::probe::guarded("NVRTC", || {
        compile_ptx_with_opts(source(), opts).map_err(|e| match e {
            CompileError::CompileError { log, options, .. } => format!(
                "NVRTC ({}) could not compile the kernels:\n{}",
                options.join(" "),
                log.to_string_lossy()
            ),
            other => format!("NVRTC: {other}"),
        })
    })
}

/// The code the kernels use for an elementwise activation (common.cuh's ACT_*); `None`
/// for the row-wise ones, which have kernels of their own.
pub fn activation_code(act: Activation) -> Option<i32> {
    use Activation::*;
    Some(match act {
        Linear => 0,
        Relu => 1,
        Relu6 => 2,
        LeakyRelu => 3,
        Elu => 4,
        Selu => 5,
        Gelu => 6,
        Sigmoid => 7,
        HardSigmoid => 8,
        Tanh => 9,
        Softplus => 10,
        Softsign => 11,
        Silu => 12,
        Exponential => 13,
        Softmax | LogSoftmax => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel compiles, for the oldest and a recent architecture, and the PTX
    /// defines each name the backend loads. Needs only NVRTC (no GPU): without it the
    /// test says so and passes, which `make test` avoids by fetching NVRTC first.
    #[test]
    fn every_kernel_compiles_with_nvrtc() {
        let version = match super::super::probe::nvrtc_version() {
            Ok(v) => v,
            Err(why) => {
                eprintln!("SKIPPED every_kernel_compiles_with_nvrtc: {why}");
                return;
            }
        };
        if std::env::var_os("RUSTKERAS_REQUIRE_NVRTC").is_some() {
            eprintln!("NVRTC {version}");
        }
        let archs = supported_archs().unwrap();
        assert!(archs.contains(&75) && archs.contains(&90), "{archs:?}");
        for arch in [75, 90] {
            let ptx = compile(arch)
                .unwrap_or_else(|e| panic!("kernels do not compile for {arch}:\n{e}"))
                .to_src();
            for sig in signatures() {
                let name = &sig.name;
                assert!(
                    ptx.contains(&format!(".entry {name}(")),
                    "{name} missing from the PTX for {arch}"
                );
            }
        }
    }

    /// Where CI fetched NVRTC it sets RUSTKERAS_REQUIRE_NVRTC, so that a loading problem
    /// fails instead of skipping the compile test above.
    #[test]
    fn nvrtc_is_present_where_required() {
        if std::env::var_os("RUSTKERAS_REQUIRE_NVRTC").is_some() {
            if let Err(why) = super::super::probe::nvrtc_version() {
                panic!("RUSTKERAS_REQUIRE_NVRTC is set but {why}");
            }
        }
    }

    #[test]
    fn activation_codes_match_common_cuh() {
        for (i, name) in Activation::NAMES.iter().enumerate() {
            let act = Activation::from_name(name).unwrap();
            let Some(code) = activation_code(act) else {
                assert!(act.is_rowwise(), "{name} has no kernel code");
                continue;
            };
            let macro_name = format!("ACT_{}", act.name().to_uppercase());
            let line = COMMON
                .lines()
                .find(|l| l.starts_with(&format!("#define {macro_name} ")))
                .unwrap_or_else(|| panic!("{macro_name} not in common.cuh ({i})"));
            let value: i32 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(value, code, "{macro_name}");
        }
    }

    #[test]
    fn signatures_are_read_from_the_sources() {
        let sigs = signatures();
        let names: Vec<&str> = sigs.iter().map(|s| s.name.as_str()).collect();
        // Every kernel of every file, once each.
        for (file, text) in FILES {
            let defined = text.matches("__global__ void ").count();
            let read = names
                .iter()
                .filter(|n| text.contains(&format!("void {n}(")))
                .count();
            assert_eq!(read, defined, "the kernels of {file}");
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "kernel names are unique");
        let xent = sigs.iter().find(|s| s.name == "rk_softmax_xent").unwrap();
        assert_eq!(xent.kinds, "ppipppfuu");
        assert_eq!(xent.types[0], "const float*");
        assert_eq!(xent.types[2], "int");
    }

    #[test]
    fn architectures_round_down_to_what_nvrtc_supports() {
        let nvrtc13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121];
        assert_eq!(arch_for((9, 0), &nvrtc13), Some(90));
        assert_eq!(arch_for((8, 9), &nvrtc13), Some(89));
        assert_eq!(arch_for((8, 1), &nvrtc13), Some(80));
        assert_eq!(arch_for((12, 0), &[75, 80, 90]), Some(90));
        assert_eq!(arch_for((7, 0), &nvrtc13), None);
    }
}
