//! What this machine offers for CUDA: the driver, its devices and the libraries the
//! backend needs, each found (with its version) or not (with the reason).
//!
//! Nothing here is loaded until someone asks: the probe opens the libraries with
//! `dlopen` through cudarc's dynamic loading, so a machine without CUDA pays nothing and
//! prints nothing. cudarc panics where a library or a symbol is missing; every call
//! into it goes through `guarded`, which checks for the library first and turns a panic
//! that still happens (a driver too old to have a symbol) into a reason string.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The oldest compute capability the backend accepts (Maxwell, what cuDNN 9 needs).
pub const MIN_COMPUTE_CAPABILITY: (i32, i32) = (5, 0);

/// One CUDA device as the driver reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuDevice {
    pub ordinal: usize,
    pub name: String,
    pub total_memory: usize,
    pub compute_capability: (i32, i32),
}

/// A library's version, or why it is not there.
pub type Found = std::result::Result<String, String>;

/// The whole report. `usable` is `Ok(ordinal)` of the device the backend would use, or
/// the first reason why none can be used.
#[derive(Clone, Debug)]
pub struct Probe {
    pub driver: Found,
    pub devices: Vec<GpuDevice>,
    pub cublas: Found,
    pub cudnn: Found,
    pub nvrtc: Found,
    pub usable: std::result::Result<usize, String>,
}

/// The message a panic carried (a `String` or a `&str`), as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure")
}

/// Runs `f`, turning a panic inside cudarc into `Err(what failed)`. The R glue's panic
/// hook keeps such panics silent; in plain Rust the default hook would print them, so
/// callers check for the library first and this is only the last line of defence.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(format!("{what} failed: {}", panic_message(&*payload))),
    }
}

/// "13.0" from CUDA's integer versions (1000 * major + 10 * minor).
pub fn cuda_version_str(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

fn driver_version() -> Found {
    use cudarc::driver::sys;
    // SAFETY: is_culib_present only tries to dlopen the library.
    if !unsafe { sys::is_culib_present() } {
        return Err(
            "no NVIDIA driver: libcuda.so could not be loaded (install the NVIDIA driver)".into(),
        );
    }
    guarded("the CUDA driver", || {
        let mut v = 0;
        // SAFETY: plain C calls into the loaded driver with a valid out-pointer.
        let r = unsafe { sys::cuDriverGetVersion(&mut v) };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(format!("the CUDA driver does not answer ({r:?})"));
        }
        cudarc::driver::result::init()
            .map_err(|e| format!("the CUDA driver did not start: {e}"))?;
        Ok(cuda_version_str(v))
    })
}

fn devices() -> Result<Vec<GpuDevice>, String> {
    use cudarc::driver::{result, sys};
    guarded("listing CUDA devices", || {
        let n = result::device::get_count().map_err(|e| format!("no CUDA devices: {e}"))?;
        let mut out = Vec::new();
        for ordinal in 0..n {
            let dev = result::device::get(ordinal).map_err(|e| e.to_string())?;
            let name = result::device::get_name(dev).map_err(|e| e.to_string())?;
            // SAFETY: `dev` came from the driver just above.
            let (total, major, minor) = unsafe {
                let total = result::device::total_mem(dev).map_err(|e| e.to_string())?;
                let major = result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                )
                .map_err(|e| e.to_string())?;
                let minor = result::device::get_attribute(
                    dev,
                    sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                )
                .map_err(|e| e.to_string())?;
                (total, major, minor)
            };
            out.push(GpuDevice {
                ordinal: ordinal as usize,
                name,
                total_memory: total,
                compute_capability: (major, minor),
            });
        }
        Ok(out)
    })
}

fn cublas_version() -> Found {
    use cudarc::cublas::sys;
    // SAFETY: only tries to dlopen the library.
    if !unsafe { sys::is_culib_present() } {
        return Err("cuBLAS (libcublas.so) could not be loaded".into());
    }
    guarded("cuBLAS", || {
        let mut part = [0; 3];
        for (i, p) in [
            sys::libraryPropertyType::MAJOR_VERSION,
            sys::libraryPropertyType::MINOR_VERSION,
            sys::libraryPropertyType::PATCH_LEVEL,
        ]
        .into_iter()
        .enumerate()
        {
            // SAFETY: a C call with a valid out-pointer.
            let r = unsafe { sys::cublasGetProperty(p, &mut part[i]) };
            if r != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return Err(format!("cuBLAS does not report its version ({r:?})"));
            }
        }
        Ok(format!("{}.{}.{}", part[0], part[1], part[2]))
    })
}

fn cudnn_version() -> Found {
    use cudarc::cudnn::sys;
    // SAFETY: only tries to dlopen the library.
    if !unsafe { sys::is_culib_present() } {
        return Err("cuDNN (libcudnn.so) could not be loaded".into());
    }
    guarded("cuDNN", || {
        // SAFETY: takes no arguments.
        let v = unsafe { sys::cudnnGetVersion() };
        // cuDNN 9 encodes 90100 + patch as major * 10000 + minor * 100 + patch.
        Ok(format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100))
    })
}

/// NVRTC's version, found on its own: the kernel tests need only this library.
pub fn nvrtc_version() -> Found {
    use cudarc::nvrtc::sys;
    // SAFETY: only tries to dlopen the library.
    if !unsafe { sys::is_culib_present() } {
        return Err("NVRTC (libnvrtc.so) could not be loaded".into());
    }
    guarded("NVRTC", || {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: a C call with valid out-pointers.
        let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
        if r != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(format!("NVRTC does not report its version ({r:?})"));
        }
        Ok(format!("{major}.{minor}"))
    })
}

/// Looks at everything; loads the libraries it finds (once per process, by the loader).
pub fn probe() -> Probe {
    let driver = driver_version();
    let devices = match &driver {
        Ok(_) => devices(),
        Err(e) => Err(e.clone()),
    };
    let (devices, device_err) = match devices {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let cublas = cublas_version();
    let cudnn = cudnn_version();
    let nvrtc = nvrtc_version();
    let usable = usable(&driver, device_err, &devices, &cublas, &nvrtc);
    Probe {
        driver,
        devices,
        cublas,
        cudnn,
        nvrtc,
        usable,
    }
}

/// The first device that the backend can use, or why there is none. cuDNN is not
/// required: without it dense models train and convolutions say they need it.
fn usable(
    driver: &Found,
    device_err: Option<String>,
    devices: &[GpuDevice],
    cublas: &Found,
    nvrtc: &Found,
) -> std::result::Result<usize, String> {
    driver.as_ref().map_err(Clone::clone)?;
    if let Some(e) = device_err {
        return Err(e);
    }
    let Some(dev) = devices
        .iter()
        .find(|d| d.compute_capability >= MIN_COMPUTE_CAPABILITY)
    else {
        return Err(match devices.first() {
            None => "the NVIDIA driver reports no CUDA device".into(),
            Some(d) => format!(
                "'{}' has compute capability {}.{}; at least {}.{} is needed",
                d.name,
                d.compute_capability.0,
                d.compute_capability.1,
                MIN_COMPUTE_CAPABILITY.0,
                MIN_COMPUTE_CAPABILITY.1
            ),
        });
    };
    cublas.as_ref().map_err(Clone::clone)?;
    let nvrtc = nvrtc.as_ref().map_err(Clone::clone)?;
    // NVRTC writes PTX of its own CUDA version, which an older driver cannot load.
    let driver = driver.as_ref().map_err(Clone::clone)?;
    // (PTX from a newer NVRTC uses an instruction set version the driver does not know,
    // minor versions included.)
    let version = |v: &str| {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
    };
    if let (Some(n), Some(d)) = (version(nvrtc), version(driver)) {
        if n > d {
            return Err(format!(
                "NVRTC {nvrtc} makes code for CUDA {nvrtc}, but the NVIDIA driver supports CUDA {driver}: update the driver, or put an NVRTC of CUDA {driver} or older first on LD_LIBRARY_PATH"
            ));
        }
    }
    Ok(dev.ordinal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(cc: (i32, i32)) -> GpuDevice {
        GpuDevice {
            ordinal: 0,
            name: "Old GPU".into(),
            total_memory: 1 << 30,
            compute_capability: cc,
        }
    }

    #[test]
    fn versions_read_as_cuda_writes_them() {
        assert_eq!(cuda_version_str(13000), "13.0");
        assert_eq!(cuda_version_str(12080), "12.8");
    }

    #[test]
    fn the_first_missing_piece_is_the_reason() {
        let ok: Found = Ok("x".into());
        let no_driver: Found = Err("no NVIDIA driver".into());
        assert_eq!(
            usable(&no_driver, None, &[], &ok, &ok).unwrap_err(),
            "no NVIDIA driver"
        );
        assert_eq!(
            usable(&ok, None, &[], &ok, &ok).unwrap_err(),
            "the NVIDIA driver reports no CUDA device"
        );
        assert_eq!(
            usable(&ok, None, &[dev((3, 5))], &ok, &ok).unwrap_err(),
            "'Old GPU' has compute capability 3.5; at least 5.0 is needed"
        );
        let no_blas: Found = Err("cuBLAS missing".into());
        assert_eq!(
            usable(&ok, None, &[dev((8, 0))], &no_blas, &ok).unwrap_err(),
            "cuBLAS missing"
        );
        let (driver12, nvrtc13): (Found, Found) = (Ok("12.8".into()), Ok("13.0".into()));
        assert_eq!(
            usable(&driver12, None, &[dev((8, 0))], &ok, &nvrtc13).unwrap_err(),
            "NVRTC 13.0 makes code for CUDA 13.0, but the NVIDIA driver supports CUDA 12.8: update the driver, or put an NVRTC of CUDA 12.8 or older first on LD_LIBRARY_PATH"
        );
        // A newer minor version is refused too (PTX 8.8 of NVRTC 12.9 on a 12.8 driver).
        let nvrtc129: Found = Ok("12.9".into());
        assert!(usable(&driver12, None, &[dev((8, 0))], &ok, &nvrtc129).is_err());
        let nvrtc12: Found = Ok("12.4".into());
        assert_eq!(
            usable(&driver12, None, &[dev((8, 0))], &ok, &nvrtc12),
            Ok(0)
        );
        assert_eq!(usable(&ok, None, &[dev((8, 0))], &ok, &ok), Ok(0));
    }

    #[test]
    fn a_panic_inside_becomes_a_reason() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r: Result<(), String> = guarded("the thing", || panic!("symbol missing"));
        std::panic::set_hook(prev);
        assert_eq!(r.unwrap_err(), "the thing failed: symbol missing");
    }

    /// On this machine, whatever it has: the probe answers without panicking, and a
    /// missing driver is reported as such.
    #[test]
    fn probing_never_panics() {
        let p = probe();
        match (&p.driver, &p.usable) {
            (Err(d), Err(u)) => assert_eq!(d, u),
            (Ok(_), Ok(i)) => assert!(p.devices.iter().any(|d| d.ordinal == *i)),
            (Ok(_), Err(u)) => assert!(!u.is_empty()),
            (Err(_), Ok(_)) => panic!("usable without a driver"),
        }
    }
}
