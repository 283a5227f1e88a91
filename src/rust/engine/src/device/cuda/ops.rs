//! The device seam's CUDA arms: cuBLAS for products, our NVRTC kernels for the rest.
//!
//! An op runs here when one of its inputs lives on the GPU; inputs still on the host
//! (a dropout mask, a weight the optimizer just updated) are uploaded for the call.
//! Ops without an arm here read GPU inputs through their host copy and run on the CPU,
//! so every model runs on the GPU, the ops listed here at GPU speed.

use std::ops::Deref;

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::buffer::Buffer;
use super::context::{gpu_or_panic, Gpu};
use super::kernels::activation_code;
use crate::ops::activation::Activation;
use crate::tensor::{Storage, Tensor};

/// The GPU when any of `ts` lives there.
pub fn on_gpu(ts: &[&Tensor]) -> Option<&'static Gpu> {
    ts.iter()
        .any(|t| matches!(t.storage(), Storage::Cuda(_)))
        .then(gpu_or_panic)
}

/// A tensor's device buffer: its own, or an upload of a host tensor for one call.
enum Input<'a> {
    Device(&'a CudaSlice<f32>),
    Uploaded(CudaSlice<f32>),
}

impl Deref for Input<'_> {
    type Target = CudaSlice<f32>;
    fn deref(&self) -> &CudaSlice<f32> {
        match self {
            Input::Device(s) => s,
            Input::Uploaded(s) => s,
        }
    }
}

fn input<'a>(g: &Gpu, t: &'a Tensor) -> Input<'a> {
    match t.storage() {
        Storage::Cuda(b) => Input::Device(b.slice()),
        Storage::Cpu(v) => Input::Uploaded(g.upload(v)),
    }
}

fn out(shape: &[usize], s: CudaSlice<f32>) -> Tensor {
    Tensor::from_cuda(shape.to_vec(), Buffer::new(s))
}

fn n64(n: usize) -> u64 {
    n as u64
}

/// A null pointer for a kernel's optional buffer argument.
const NULL: u64 = 0;

pub fn matmul(
    g: &Gpu,
    a: &Tensor,
    ta: bool,
    b: &Tensor,
    tb: bool,
    mnk: (usize, usize, usize),
) -> Tensor {
    let (ad, bd) = (input(g, a), input(g, b));
    let mut c = g.alloc(mnk.0 * mnk.1);
    g.sgemm((&ad, ta), (&bd, tb), mnk, &mut c);
    out(&[mnk.0, mnk.1], c)
}

/// act(x + bias) with a bias per column (or none); elementwise activations only.
pub fn bias_activation(g: &Gpu, x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Tensor {
    let code = activation_code(act).expect("row-wise activations have kernels of their own");
    let cols = bias.map_or(1, |b| b.numel()).max(1);
    let n = x.numel();
    let xd = input(g, x);
    let bd = bias.map(|b| input(g, b));
    let mut y = g.alloc(n);
    let (rows, cols) = (n64(n / cols), n64(cols));
    let mut l = g.kernel("rk_bias_activation");
    l.arg(&*xd);
    match &bd {
        Some(b) => l.arg(&**b),
        None => l.arg(&NULL),
    };
    l.arg(&mut y).arg(&rows).arg(&cols).arg(&code);
    g.run(l, n);
    out(x.shape(), y)
}

/// g * act'(x), from x (or, for the activations whose gradient needs only the output,
/// none) and the output y.
pub fn activation_backward(
    g: &Gpu,
    act: Activation,
    x: Option<&Tensor>,
    y: &Tensor,
    gy: &Tensor,
) -> Tensor {
    let code = activation_code(act).expect("row-wise activations have kernels of their own");
    let n = y.numel();
    let xd = x.map(|x| input(g, x));
    let (yd, gd) = (input(g, y), input(g, gy));
    let mut dx = g.alloc(n);
    let nn = n64(n);
    let mut l = g.kernel("rk_activation_backward");
    match &xd {
        Some(x) => l.arg(&**x),
        None => l.arg(&NULL),
    };
    l.arg(&*yd).arg(&*gd).arg(&mut dx).arg(&nn).arg(&code);
    g.run(l, n);
    out(y.shape(), dx)
}

/// Column sums of g seen as (rows, cols).
pub fn col_sum(g: &Gpu, x: &Tensor, cols: usize) -> Tensor {
    let xd = input(g, x);
    let mut s = g.alloc(cols);
    let (rows, c) = (n64(x.numel() / cols.max(1)), n64(cols));
    let mut l = g.kernel("rk_col_sum");
    l.arg(&*xd).arg(&mut s).arg(&rows).arg(&c);
    g.run(l, cols);
    out(&[cols], s)
}

/// Sum of all values: partial sums on the GPU, their total on the host (in f64, as the
/// CPU kernel sums).
pub fn sum(g: &Gpu, x: &Tensor) -> f32 {
    const PARTS: usize = 4096;
    let n = x.numel();
    let parts = PARTS.min(n.max(1));
    let xd = input(g, x);
    let mut p = g.alloc(parts);
    let (nn, pp) = (n64(n), n64(parts));
    let mut l = g.kernel("rk_sum_partial");
    l.arg(&*xd).arg(&mut p).arg(&nn).arg(&pp);
    g.run(l, parts);
    g.download(&p).iter().map(|&v| v as f64).sum::<f64>() as f32
}

/// Row-wise softmax or log-softmax (`kernel` names which) of x seen as (rows, cols).
pub fn rows_forward(g: &Gpu, kernel: &str, x: &Tensor, cols: usize) -> Tensor {
    let rows = x.numel() / cols.max(1);
    let xd = input(g, x);
    let mut y = g.alloc(x.numel());
    let (r, c) = (n64(rows), n64(cols));
    let mut l = g.kernel(kernel);
    l.arg(&*xd).arg(&mut y).arg(&r).arg(&c);
    g.run(l, rows);
    out(x.shape(), y)
}

/// The gradient kernels of `rows_forward`, from its output y.
pub fn rows_backward(g: &Gpu, kernel: &str, y: &Tensor, gy: &Tensor, cols: usize) -> Tensor {
    let rows = y.numel() / cols.max(1);
    let (yd, gd) = (input(g, y), input(g, gy));
    let mut dx = g.alloc(y.numel());
    let (r, c) = (n64(rows), n64(cols));
    let mut l = g.kernel(kernel);
    l.arg(&*yd).arg(&*gd).arg(&mut dx).arg(&r).arg(&c);
    g.run(l, rows);
    out(y.shape(), dx)
}

/// `rk_add` or `rk_mul` of two tensors of one size.
pub fn binary(g: &Gpu, kernel: &str, a: &Tensor, b: &Tensor) -> Tensor {
    let n = a.numel();
    let (ad, bd) = (input(g, a), input(g, b));
    let mut y = g.alloc(n);
    let nn = n64(n);
    let mut l = g.kernel(kernel);
    l.arg(&*ad).arg(&*bd).arg(&mut y).arg(&nn);
    g.run(l, n);
    out(a.shape(), y)
}

/// acc += x, in place on acc's device buffer.
pub fn add_assign(g: &Gpu, acc: &mut Buffer, x: &Tensor) {
    let n = acc.len();
    let xd = input(g, x);
    let nn = n64(n);
    let a = acc.slice_mut();
    let mut l = g.kernel("rk_add_assign");
    l.arg(a).arg(&*xd).arg(&nn);
    g.run(l, n);
}

/// a * x + b.
pub fn affine(g: &Gpu, x: &Tensor, a: f32, b: f32) -> Tensor {
    let n = x.numel();
    let xd = input(g, x);
    let mut y = g.alloc(n);
    let nn = n64(n);
    let mut l = g.kernel("rk_affine");
    l.arg(&*xd).arg(&mut y).arg(&a).arg(&b).arg(&nn);
    g.run(l, n);
    out(x.shape(), y)
}

pub fn fill(g: &Gpu, shape: &[usize], v: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut y = g.alloc(n);
    let nn = n64(n);
    let mut l = g.kernel("rk_fill");
    l.arg(&mut y).arg(&v).arg(&nn);
    g.run(l, n);
    out(shape, y)
}

/// A host tensor's copy on the GPU (a GPU tensor is returned as it is).
pub fn to_gpu(g: &Gpu, t: &Tensor) -> Tensor {
    match t.storage() {
        Storage::Cuda(_) => t.clone(),
        Storage::Cpu(v) => out(t.shape(), g.upload(v)),
    }
}
