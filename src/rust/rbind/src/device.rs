//! Exports for devices: what CUDA this machine has (backend_info()), whether the GPU
//! passed its self-check, moving a model to the device the user chose, and the GPU's
//! memory (for the tests of freeing it).

use engine::device::cuda::{context, probe};
use engine::tensor::Device;
use extendr_api::prelude::*;

use crate::error::{RkError, RkResult};
use crate::model::model_ref;

fn found(f: &probe::Found) -> Robj {
    match f {
        Ok(v) => v.clone().into(),
        Err(_) => NA_STRING.into(),
    }
}

/// The probe as an R list: versions (NA where missing), the devices, and `usable` with
/// `reason` (why not, or "") after trying to start the backend.
#[extendr]
fn rk_gpu_probe() -> List {
    let mut p = probe::probe();
    let started = match &p.usable {
        _ if context::emulation_requested() => context::gpu().map(|_| ()),
        Ok(_) => context::gpu().map(|_| ()),
        Err(e) => Err(e.clone()),
    };
    // The emulated GPU (a test setting) is listed as the device, even when it failed its
    // self-check (as a real GPU is listed by the probe).
    if let Ok(g) = context::started() {
        if g.is_emulated() {
            p.devices = vec![probe::GpuDevice {
                ordinal: g.ordinal,
                name: g.name.clone(),
                total_memory: g.memory().1,
                compute_capability: (0, 0),
            }];
        }
    }
    let names: Vec<String> = p.devices.iter().map(|d| d.name.clone()).collect();
    let memory: Vec<f64> = p.devices.iter().map(|d| d.total_memory as f64).collect();
    let cc: Vec<String> = p
        .devices
        .iter()
        .map(|d| format!("{}.{}", d.compute_capability.0, d.compute_capability.1))
        .collect();
    let ordinals: Vec<i32> = p.devices.iter().map(|d| d.ordinal as i32).collect();
    list!(
        driver = found(&p.driver),
        cublas = found(&p.cublas),
        cudnn = found(&p.cudnn),
        nvrtc = found(&p.nvrtc),
        ordinal = ordinals,
        name = names,
        memory = memory,
        compute_capability = cc,
        usable = started.is_ok(),
        reason = started.err().unwrap_or_default(),
        device = match context::gpu() {
            Ok(g) => g.ordinal as i32,
            Err(_) => -1,
        }
    )
}

/// Whether the GPU backend is running (it starts on first use, checks itself against the
/// CPU once, and stays).
#[extendr]
fn rk_gpu_usable() -> bool {
    context::gpu().is_ok()
}

/// Why the GPU is unusable when it started but failed its self-check ("the GPU failed its
/// self-check: ..."), or NA (it passed, or there is no GPU to check).
#[extendr]
fn rk_gpu_selfcheck_failure() -> Robj {
    match context::selfcheck_failure() {
        Some(why) => why.into(),
        None => NA_STRING.into(),
    }
}

/// Puts the model's weights on `device` ("cpu" or "gpu"): later fit/evaluate/predict
/// calls run there. `tf32` allows TensorFloat-32 in the GPU's products.
#[extendr]
fn rk_model_set_device(model: Robj, device: &str, tf32: bool) -> RkResult<()> {
    let d = match device {
        "cpu" => Device::Cpu,
        "gpu" => Device::Cuda,
        other => {
            return Err(RkError::new(
                "argument",
                format!("`device` must be \"cpu\" or \"gpu\", not \"{other}\""),
            ))
        }
    };
    let m = model_ref(&model)?;
    let mut ptr = engine::model::write(&m);
    if ptr.device == d && d == Device::Cpu {
        return Ok(());
    }
    ptr.set_device(d)?;
    if let (Device::Cuda, Ok(g)) = (d, context::gpu()) {
        g.set_tf32(tf32);
    }
    Ok(())
}

/// The model's device: "cpu" or "gpu".
#[extendr]
fn rk_model_device(model: Robj) -> RkResult<&'static str> {
    let m = model_ref(&model)?;
    let ptr = engine::model::read(&m);
    Ok(match ptr.device {
        Device::Cpu => "cpu",
        Device::Cuda => "gpu",
    })
}

/// Free and total GPU memory in bytes, or NULL where the GPU backend is not running.
#[extendr]
fn rk_gpu_memory() -> Robj {
    match context::gpu() {
        Ok(g) => {
            let (free, total) = g.memory();
            list!(free = free as f64, total = total as f64).into()
        }
        Err(_) => NULL.into(),
    }
}

extendr_module! {
    mod device;
    fn rk_gpu_probe;
    fn rk_gpu_usable;
    fn rk_gpu_selfcheck_failure;
    fn rk_model_set_device;
    fn rk_model_device;
    fn rk_gpu_memory;
}
