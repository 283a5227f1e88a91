//! The training loops behind `fit()`, `evaluate()` and `predict()`: batching, shuffling,
//! validation and running-mean metrics, reporting to an observer between batches.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::autodiff::{Tape, Var};
use crate::error::{data_err, Error, Result};
use crate::metrics::{self, Metric};
use crate::model::{not_compiled, Compiled, Model, StateUpdate};
use crate::ops::math;
use crate::ops::penalty::penalty;
use crate::rng::{self, Noise};
use crate::tensor::{Device, Tensor};

/// One array of samples in row-major order: `values` holds `n * prod(shape)` values.
#[derive(Clone, Copy, Debug)]
pub struct Array<'a> {
    pub values: &'a [f32],
    /// Shape of one sample (empty for one value per sample).
    pub shape: &'a [usize],
}

impl<'a> Array<'a> {
    fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    fn rows(&self) -> usize {
        let l = self.sample_len();
        if l == 0 {
            0
        } else {
            self.values.len() / l
        }
    }

    fn slice(&self, from: usize, to: usize) -> Array<'a> {
        let l = self.sample_len();
        Array {
            values: &self.values[from * l..to * l],
            shape: self.shape,
        }
    }

    fn batch_shape(&self, rows: usize) -> Vec<usize> {
        let mut s = vec![rows];
        s.extend_from_slice(self.shape);
        s
    }

    /// The rows `idx` copied into a contiguous batch tensor.
    fn gather(&self, idx: &[usize]) -> Tensor {
        let len = self.sample_len();
        let mut out = crate::device::pool::take(idx.len() * len);
        for &i in idx {
            out.extend_from_slice(&self.values[i * len..(i + 1) * len]);
        }
        Tensor::from_vec(self.batch_shape(idx.len()), out).expect("gathered rows fill the batch")
    }

    /// Consecutive rows [from, to) as a batch tensor.
    fn range(&self, from: usize, to: usize) -> Tensor {
        Tensor::from_vec(
            self.batch_shape(to - from),
            crate::device::pool::copy_of(self.slice(from, to).values),
        )
        .expect("rows fill the batch")
    }
}

/// A model input as `predict_rows` reads it, batch by batch: row-major f32 samples of
/// `sample_shape`, written into each batch's tensor by `fill`. In memory already (an
/// `Array`), or converted from the caller's layout as each batch asks (R's
/// column-major doubles: converting the whole input first wrote and read back a copy
/// of it, 6 % of the workshop CNN's predict()).
pub trait Rows: Sync {
    /// Samples.
    fn rows(&self) -> usize;
    /// One sample's shape.
    fn sample_shape(&self) -> &[usize];
    /// Samples [from, to) into `out`, (to - from) times the sample's length.
    fn fill(&self, from: usize, to: usize, out: &mut [f32]);
}

impl Rows for Array<'_> {
    fn rows(&self) -> usize {
        Array::rows(self)
    }
    fn sample_shape(&self) -> &[usize] {
        self.shape
    }
    fn fill(&self, from: usize, to: usize, out: &mut [f32]) {
        out.copy_from_slice(self.slice(from, to).values);
    }
}

/// The inputs and targets of `fit()` / `evaluate()`: one array per model input and
/// one per output, all with the same number of samples.
#[derive(Clone, Debug)]
pub struct Samples<'a> {
    pub xs: Vec<Array<'a>>,
    pub ys: Vec<Array<'a>>,
    pub n: usize,
    /// A copy of all the arrays on the GPU for the duration of a `fit()`, and the row
    /// where these samples start in it: batches are then cut there.
    resident: Option<(&'a Resident, usize)>,
}

/// Every array of a `Samples` on the GPU, each as a (rows, values per row) table.
#[derive(Debug)]
pub struct Resident {
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
}

impl Resident {
    /// The samples' arrays uploaded, when the GPU has room for them (with half its free
    /// memory left to the model) and few enough rows to index; None otherwise.
    fn upload(data: &Samples) -> Option<Resident> {
        let g = crate::device::cuda::context::gpu().ok()?;
        let bytes: usize = data
            .xs
            .iter()
            .chain(&data.ys)
            .map(|a| a.values.len() * 4)
            .sum();
        let (free, _) = g.memory();
        if 2 * bytes > free || data.n > crate::device::cuda::ops::MAX_GATHER_ROWS {
            return None;
        }
        let table =
            |a: &Array| crate::device::cuda::ops::upload(g, &[data.n, a.sample_len()], a.values);
        Some(Resident {
            xs: data.xs.iter().map(table).collect(),
            ys: data.ys.iter().map(table).collect(),
        })
    }
}

/// How a message names array `i` of `k`: `x`, or `x[[2]]` when there are several.
fn arg_name(base: &str, i: usize, k: usize) -> String {
    if k == 1 {
        base.to_string()
    } else {
        format!("{base}[[{}]]", i + 1)
    }
}

impl<'a> Samples<'a> {
    pub fn new(xs: Vec<Array<'a>>, ys: Vec<Array<'a>>) -> Result<Samples<'a>> {
        let n = xs.first().map(Array::rows).unwrap_or(0);
        for (base, arrays) in [("x", &xs), ("y", &ys)] {
            for (i, a) in arrays.iter().enumerate() {
                let name = arg_name(base, i, arrays.len());
                if a.rows() != n {
                    return Err(data_err(
                        "x",
                        format!(
                            "and `{name}` have different numbers of samples ({n} and {})",
                            a.rows()
                        ),
                    ));
                }
                check_finite(&name, a.values, a.sample_len())?;
            }
        }
        Ok(Samples {
            xs,
            ys,
            n,
            resident: None,
        })
    }

    /// One input array and one target array.
    pub fn single(
        x: &'a [f32],
        x_shape: &'a [usize],
        y: &'a [f32],
        y_shape: &'a [usize],
    ) -> Result<Samples<'a>> {
        Samples::new(
            vec![Array {
                values: x,
                shape: x_shape,
            }],
            vec![Array {
                values: y,
                shape: y_shape,
            }],
        )
    }

    pub fn x_shapes(&self) -> Vec<Vec<usize>> {
        self.xs.iter().map(|a| a.shape.to_vec()).collect()
    }

    /// Rows [from, to) as another view (no copy).
    pub fn slice(&self, from: usize, to: usize) -> Samples<'a> {
        Samples {
            xs: self.xs.iter().map(|a| a.slice(from, to)).collect(),
            ys: self.ys.iter().map(|a| a.slice(from, to)).collect(),
            n: to - from,
            resident: self.resident.map(|(r, start)| (r, start + from)),
        }
    }

    /// These samples reading their batches from `resident` (a copy of them all).
    fn with_resident<'b>(&self, resident: &'b Resident) -> Samples<'b>
    where
        'a: 'b,
    {
        Samples {
            xs: self.xs.clone(),
            ys: self.ys.clone(),
            n: self.n,
            resident: Some((resident, 0)),
        }
    }

    fn gather(&self, idx: &[usize]) -> (Vec<Tensor>, Vec<Tensor>) {
        if let Some((r, start)) = self.resident {
            let rows: Vec<usize> = idx.iter().map(|i| i + start).collect();
            let cut = |t: &Tensor, a: &Array| {
                crate::device::gather_rows(t, &rows, &[rows.len()])
                    .reshape(a.batch_shape(rows.len()))
                    .expect("gathered rows fill the batch")
            };
            return (
                r.xs.iter().zip(&self.xs).map(|(t, a)| cut(t, a)).collect(),
                r.ys.iter().zip(&self.ys).map(|(t, a)| cut(t, a)).collect(),
            );
        }
        (
            self.xs.iter().map(|a| a.gather(idx)).collect(),
            self.ys.iter().map(|a| a.gather(idx)).collect(),
        )
    }

    fn range(&self, from: usize, to: usize) -> (Vec<Tensor>, Vec<Tensor>) {
        if let Some((r, start)) = self.resident {
            let cut = |t: &Tensor, a: &Array| {
                crate::device::slice_rows(t, start + from, start + to, &a.batch_shape(to - from))
            };
            return (
                r.xs.iter().zip(&self.xs).map(|(t, a)| cut(t, a)).collect(),
                r.ys.iter().zip(&self.ys).map(|(t, a)| cut(t, a)).collect(),
            );
        }
        (
            self.xs.iter().map(|a| a.range(from, to)).collect(),
            self.ys.iter().map(|a| a.range(from, to)).collect(),
        )
    }
}

/// Rejects NA/NaN/Inf, naming the sample and the value's place within it (1-based, in
/// row-major order over the sample's axes, e.g. the column of a matrix).
pub fn check_finite(arg: &str, v: &[f32], sample_len: usize) -> Result<()> {
    check_finite_from(arg, v, sample_len, 0)
}

/// `check_finite` of samples that start at sample `first` of the whole input.
fn check_finite_from(arg: &str, v: &[f32], sample_len: usize, first: usize) -> Result<()> {
    // A branch-free scan over chunks in parallel (the exponent bits all set means NaN
    // or Inf): searching value by value took 2 % of the workshop CNN's predict CPU time
    // on one thread while the other waited. The position is looked for only when needed.
    let non_finite = |c: &[f32]| {
        c.iter().fold(0u32, |acc, a| {
            acc | (!a.to_bits() & 0x7f80_0000 == 0) as u32
        }) != 0
    };
    // Inside a pool worker (a predict() batch) the caller already splits the work.
    let bad = if rayon::current_thread_index().is_some() {
        non_finite(v)
    } else {
        if v.len() <= 1 << 16 {
            non_finite(v)
        } else {
            crate::threads::install(|| v.par_chunks(1 << 16).any(non_finite))
        }
    };
    if !bad {
        return Ok(());
    }
    match v.iter().position(|a| !a.is_finite()) {
        Some(i) => {
            let what = if v[i].is_nan() {
                "NA or NaN"
            } else if v[i] > 0.0 {
                "Inf"
            } else {
                "-Inf"
            };
            let len = sample_len.max(1);
            let place = if len == 1 {
                String::new()
            } else {
                format!(", value {}", i % len + 1)
            };
            Err(data_err(
                arg,
                format!(
                    "must not contain NA, NaN or Inf (found {what} in sample {}{place})",
                    first + i / len + 1
                ),
            ))
        }
        None => Ok(()),
    }
}

/// Called on the R main thread between batches: progress, interrupts.
pub trait Observer {
    fn on_epoch_begin(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// After each batch, with the running logs of the epoch so far.
    fn on_batch_end(&mut self, _step: usize, _logs: &[(String, f64)]) {}
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &[(String, f64)]) {}
    /// Polled after every batch: true stops the loop, keeping the weights as they are.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// An observer that does nothing (tests, benchmarks).
pub struct Silent;
impl Observer for Silent {}

pub struct FitOptions {
    pub batch_size: usize,
    pub epochs: usize,
    pub initial_epoch: usize,
    pub shuffle: bool,
    pub validation_split: f64,
}

/// Per-epoch logs, in Keras's order: training metrics then `val_` ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<usize>,
    pub metrics: Vec<(String, Vec<f64>)>,
    /// True when the user stopped the fit before its last epoch ended.
    pub interrupted: bool,
}

impl History {
    fn record(&mut self, epoch: usize, logs: &[(String, f64)]) {
        self.epochs.push(epoch);
        for (k, v) in logs {
            match self.metrics.iter_mut().find(|(name, _)| name == k) {
                Some((_, vals)) => vals.push(*v),
                None => self.metrics.push((k.clone(), vec![*v])),
            }
        }
    }
}

/// What a running log entry sums.
enum Tracked {
    /// Metric `metric` of output `output`.
    Metric { output: usize, metric: usize },
    /// The unweighted loss of one output (models with several outputs).
    OutputLoss(usize),
    /// The total loss.
    Loss,
}

/// Running sums of the loss and metrics over the samples seen.
struct Running<'m> {
    metrics: &'m [Vec<Metric>],
    names: Vec<String>,
    tracked: Vec<Tracked>,
    sums: Vec<f64>,
    seen: usize,
}

impl<'m> Running<'m> {
    /// Keras 3's names: `accuracy`, `loss`; with several outputs also
    /// `<output>_loss` and `<output>_accuracy`.
    fn new(metrics: &'m [Vec<Metric>], output_names: &[String]) -> Running<'m> {
        let several = metrics.len() > 1;
        let mut names = Vec::new();
        let mut tracked = Vec::new();
        for (j, ms) in metrics.iter().enumerate() {
            for (k, m) in ms.iter().enumerate() {
                names.push(if several {
                    format!("{}_{}", output_names[j], m.name)
                } else {
                    m.name.clone()
                });
                tracked.push(Tracked::Metric {
                    output: j,
                    metric: k,
                });
            }
            if several {
                names.push(format!("{}_loss", output_names[j]));
                tracked.push(Tracked::OutputLoss(j));
            }
        }
        names.push("loss".into());
        tracked.push(Tracked::Loss);
        Running {
            metrics,
            sums: vec![0.0; names.len()],
            names,
            tracked,
            seen: 0,
        }
    }

    fn add(&mut self, b: &BatchOutcome) {
        let n = b.preds[0].rows();
        for (s, t) in self.sums.iter_mut().zip(&self.tracked) {
            *s += match *t {
                Tracked::Metric { output, metric } => {
                    self.metrics[output][metric].batch_sum_of(&b.preds[output], &b.ys[output])
                }
                Tracked::OutputLoss(j) => b.output_losses[j] * n as f64,
                Tracked::Loss => b.loss * n as f64,
            };
        }
        self.seen += n;
    }

    /// Logs sorted by name, as Keras 3 orders them (`accuracy` before `loss`).
    fn logs(&self, prefix: &str) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .names
            .iter()
            .zip(&self.sums)
            .map(|(k, s)| (format!("{prefix}{k}"), s / self.seen.max(1) as f64))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// The compiled metrics of each output, resolved against the shapes of the outputs
/// and of the targets.
fn compiled_metrics(model: &Model, data: &Samples) -> Result<Vec<Vec<Metric>>> {
    let c = model.compiled.as_ref().ok_or_else(not_compiled)?;
    let outs = model.output_shapes()?.unwrap_or_default();
    check_targets(model, data, &outs)?;
    outs.iter()
        .zip(&data.ys)
        .zip(&c.losses)
        .map(|((out, y), loss)| {
            let pred_cols: usize = out.iter().product();
            let true_cols: usize = y.shape.iter().product();
            c.metrics
                .iter()
                .map(|name| {
                    metrics::resolve(
                        name,
                        loss,
                        pred_cols,
                        true_cols,
                        y.shape.len() + 1,
                        out.len() + 1,
                    )
                })
                .collect()
        })
        .collect()
}

/// One target array per output.
fn check_targets(model: &Model, data: &Samples, outs: &[Vec<usize>]) -> Result<()> {
    if data.ys.len() != outs.len() {
        return Err(crate::error::invalid_arg(
            "y",
            format!(
                "must hold {} target array{} for model '{}' (one per output), not {}",
                outs.len(),
                if outs.len() == 1 { "" } else { "s" },
                model.name,
                data.ys.len()
            ),
        ));
    }
    Ok(())
}

fn check_batch_size(batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(crate::error::invalid_arg(
            "batch_size",
            "must be a positive integer, not 0",
        ));
    }
    Ok(())
}

/// The losses of one batch (or shard) and what the metrics need.
struct BatchOutcome {
    /// Weighted total over the outputs.
    loss: f64,
    output_losses: Vec<f64>,
    /// The model's outputs (probabilities where the loss used logits).
    preds: Vec<Tensor>,
    ys: Vec<Tensor>,
}

/// Which outputs can hand their logits to the loss.
fn logits_flags(model: &Model, c: &Compiled) -> Vec<bool> {
    c.losses
        .iter()
        .enumerate()
        .map(|(j, l)| l.wants_logits_of_softmax() && model.output_has_softmax(j))
        .collect()
}

/// Forward pass and losses of a batch on `tape`; returns the total loss's handle.
#[allow(clippy::too_many_arguments)]
fn record_losses(
    model: &Model,
    c: &Compiled,
    tape: &mut Tape,
    xs: Vec<Tensor>,
    ys: Vec<Tensor>,
    params: &[Var],
    mask: Option<&[bool]>,
    training: bool,
    rng: &mut Noise,
) -> Result<(Var, BatchOutcome, Vec<StateUpdate>)> {
    let logits = logits_flags(model, c);
    let xvs: Vec<Var> = xs.into_iter().map(|x| tape.leaf(x, false)).collect();
    let (outs, state) = model.forward(tape, &xvs, params, training, &logits, rng)?;
    let mut terms = Vec::with_capacity(outs.len());
    let mut output_losses = Vec::with_capacity(outs.len());
    let mut preds = Vec::with_capacity(outs.len());
    for (j, (out, y)) in outs.into_iter().zip(&ys).enumerate() {
        let yv = tape.leaf(y.clone(), false);
        let (l, pred) = c.losses[j].compute(tape, out, logits[j], yv)?;
        output_losses.push(tape.value(l).item() as f64);
        preds.push(pred);
        terms.push((c.loss_weights[j] as f32, l));
    }
    // Regularized weights that train add their penalties (Keras's `model.losses`); the
    // trainable mask is only looked up for a model that has regularizers.
    let regularizers = model.regularizers();
    if regularizers.iter().any(Option::is_some) {
        let mask = match mask {
            Some(m) => m.to_vec(),
            None => model.trainable_mask(),
        };
        for ((r, &p), &m) in regularizers.iter().zip(params).zip(&mask) {
            if let (Some(r), true) = (r, m) {
                terms.push((1.0, penalty(tape, p, r.l1 as f32, r.l2 as f32)));
            }
        }
    }
    let total = if terms.len() == 1 && terms[0].0 == 1.0 {
        terms[0].1
    } else {
        math::weighted_sum(tape, &terms)?
    };
    let outcome = BatchOutcome {
        loss: tape.value(total).item() as f64,
        output_losses,
        preds,
        ys,
    };
    Ok((total, outcome, state))
}

/// What one shard of a batch gives back: its losses and outputs, and the gradients of
/// the trained weights.
struct ShardResult {
    outcome: BatchOutcome,
    grads: Vec<Tensor>,
    /// Batch statistics for layers that keep moving averages.
    state: Vec<StateUpdate>,
}

/// Forward and backward pass of one shard of a batch on its own tape.
fn shard_gradients(
    model: &Model,
    mask: &[bool],
    data: &Samples,
    idx: &[usize],
    contiguous: bool,
    (seed, first_row): (u64, usize),
) -> Result<ShardResult> {
    let c = model.compiled.as_ref().ok_or_else(not_compiled)?;
    let (xs, ys) = if contiguous {
        data.range(idx[0], idx[0] + idx.len())
    } else {
        data.gather(idx)
    };
    let (xs, ys) = (on_device(model, xs), on_device(model, ys));
    let mut rng = Noise::new(seed, first_row);
    let mut tape = Tape::new();
    let params = model.param_vars(&mut tape, Some(mask));
    let (total, outcome, state) = record_losses(
        model,
        c,
        &mut tape,
        xs,
        ys,
        &params,
        Some(mask),
        true,
        &mut rng,
    )?;
    let mut grads = tape.backward(total)?;
    let trained: Vec<Tensor> = params
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&v, _)| {
            grads
                .take(v)
                .unwrap_or_else(|| Tensor::zeros(tape.value(v).shape()))
        })
        .collect();
    Ok(ShardResult {
        outcome,
        grads: trained,
        state,
    })
}

/// A batch's tensors on the model's device.
fn on_device(model: &Model, ts: Vec<Tensor>) -> Vec<Tensor> {
    ts.into_iter().map(|t| t.to_device(model.device)).collect()
}

/// Samples per shard below which a batch is not split across threads.
const MIN_SHARD: usize = 32;

/// One optimisation step on the batch `idx`. The batch is split into one shard per
/// thread, each with its own tape (data parallelism: no synchronisation inside the
/// passes); the gradient of the batch mean is the size-weighted mean of the shards'.
fn train_step(
    model: &mut Model,
    mask: &[bool],
    data: &Samples,
    idx: &[usize],
    contiguous: bool,
    rng: &mut SmallRng,
) -> Result<Vec<BatchOutcome>> {
    // Batch statistics (batch normalization) must see the whole batch, as in Keras; a
    // GPU takes the whole batch at once.
    let shards = if model.uses_batch_statistics(mask) || model.device != Device::Cpu {
        1
    } else {
        crate::threads::count().min(idx.len() / MIN_SHARD).max(1)
    };
    let per = idx.len().div_ceil(shards);
    // One seed for the batch: each shard's noise is that of its samples' places in the
    // batch, whatever the number of shards (`rng::Noise`).
    let seed: u64 = rng.gen();
    let jobs: Vec<(&[usize], (u64, usize))> = idx
        .chunks(per)
        .enumerate()
        .map(|(i, c)| (c, (seed, i * per)))
        .collect();
    let m: &Model = model;
    let mut results: Vec<ShardResult> = if jobs.len() == 1 {
        // One shard runs here, so its products can still use every thread.
        vec![shard_gradients(
            m, mask, data, jobs[0].0, contiguous, jobs[0].1,
        )?]
    } else {
        crate::threads::install(|| {
            jobs.into_par_iter()
                .map(|(chunk, seed)| shard_gradients(m, mask, data, chunk, contiguous, seed))
                .collect::<Result<Vec<_>>>()
        })?
    };
    let n = idx.len() as f32;
    let rows = |r: &ShardResult| r.outcome.preds[0].rows();
    let loss: f64 = results
        .iter()
        .map(|r| r.outcome.loss * rows(r) as f64)
        .sum::<f64>()
        / n as f64;
    if !loss.is_finite() {
        return Err(Error::State(format!(
            "the loss became {loss}; lower the learning rate or check the data"
        )));
    }
    let grads: Vec<Vec<(f32, &Tensor)>> = (0..results[0].grads.len())
        .map(|i| {
            results
                .iter()
                .map(|r| (rows(r) as f32 / n, &r.grads[i]))
                .collect()
        })
        .collect();
    model.apply_gradients(mask, &grads)?;
    let state = std::mem::take(&mut results[0].state);
    model.update_state(state)?;
    // An update that fell back to the host (several weighted gradients) left weights
    // there: they go back to the device.
    if model.device != Device::Cpu {
        model.place_weights();
    }
    Ok(results.into_iter().map(|r| r.outcome).collect())
}

/// `fit()`: trains for `epochs - initial_epoch` epochs, validating on the last
/// `validation_split` of the samples (taken before shuffling) or on `validation`.
pub fn fit(
    model: &mut Model,
    data: Samples,
    validation: Option<Samples>,
    opts: &FitOptions,
    observer: &mut dyn Observer,
) -> Result<History> {
    let _running = crate::device::pool::Running::start();
    check_batch_size(opts.batch_size)?;
    check_has_layers(model, "fit")?;
    if !(0.0..1.0).contains(&opts.validation_split) {
        return Err(crate::error::invalid_arg(
            "validation_split",
            format!("must be in [0, 1), not {}", opts.validation_split),
        ));
    }
    model.compiled.as_ref().ok_or_else(not_compiled)?;
    model.build(&data.x_shapes())?;
    // A training step keeps each batch's activations for the backward pass and makes as
    // many gradients of them.
    check_batch_memory(model, opts.batch_size.min(data.n), 2, "fit")?;
    model.place_weights();
    // On the GPU the whole data set goes there once, when it fits.
    let resident = (model.device == Device::Cuda)
        .then(|| Resident::upload(&data))
        .flatten();
    let data = match &resident {
        Some(r) => data.with_resident(r),
        None => data,
    };
    let mask = model.compiled_mask()?;
    let (train, val) = match (validation, opts.validation_split) {
        (Some(v), _) => (data, Some(v)),
        (None, s) if s > 0.0 => {
            let split_at = (data.n as f64 * (1.0 - s)).floor() as usize;
            if split_at == 0 || split_at == data.n {
                return Err(crate::error::invalid_arg(
                    "validation_split",
                    format!(
                        "leaves no samples for training or validation ({} samples, split {s})",
                        data.n
                    ),
                ));
            }
            (data.slice(0, split_at), Some(data.slice(split_at, data.n)))
        }
        _ => (data, None),
    };
    if train.n == 0 {
        return Err(no_samples("x", "fit"));
    }
    if let Some(v) = &val {
        if v.n == 0 {
            return Err(no_samples("validation_data", "fit"));
        }
    }
    let metrics = compiled_metrics(model, &train)?;
    check_training_memory(model, opts.batch_size)?;
    let output_names = model.output_names();
    let mut rng = SmallRng::seed_from_u64(rng::next_seed());
    let steps = train.n.div_ceil(opts.batch_size);
    let mut order: Vec<usize> = (0..train.n).collect();
    let mut history = History::default();
    for epoch in opts.initial_epoch..opts.epochs {
        observer.on_epoch_begin(epoch, opts.epochs, steps);
        if opts.shuffle {
            order.shuffle(&mut rng);
        }
        let mut running = Running::new(&metrics, &output_names);
        for step in 0..steps {
            let idx = &order[step * opts.batch_size..((step + 1) * opts.batch_size).min(train.n)];
            for shard in train_step(model, &mask, &train, idx, !opts.shuffle, &mut rng)? {
                running.add(&shard);
            }
            observer.on_batch_end(step + 1, &running.logs(""));
            if observer.should_stop() {
                history.interrupted = true;
                return Ok(history);
            }
        }
        let mut logs = running.logs("");
        if let Some(v) = &val {
            logs.extend(evaluate_logs(
                model,
                v,
                opts.batch_size,
                &metrics,
                "val_",
                &mut Silent,
            )?);
        }
        observer.on_epoch_end(epoch, &logs);
        history.record(epoch, &logs);
    }
    Ok(history)
}

/// The seed of an inference pass's noise: drawn (from the host's stream) only for a model
/// with a call in training mode (`training = TRUE`: Monte Carlo dropout wants fresh masks
/// at each predict()), so other models leave R's random stream alone.
fn pass_seed(model: &Model) -> u64 {
    if model.forces_training() {
        rng::next_seed()
    } else {
        0
    }
}

/// Refuses a fit whose gradients (one set per data-parallel shard) and optimizer slots,
/// made at the first step, cannot fit in the memory the system has free: an allocation
/// that fails there would abort the whole process, R included.
fn check_training_memory(model: &Model, batch_size: usize) -> Result<()> {
    let mut floats = 0usize;
    model.visit_params(model.trainable, &mut |p, trainable| {
        if trainable {
            floats += p.value.numel();
        }
    });
    let shards = crate::threads::count().min(batch_size / MIN_SHARD).max(1);
    let slots = match &model.compiled {
        Some(c) if !c.optimizer.has_slots() => c.optimizer.slot_count(),
        _ => 0,
    };
    let (bytes, what) = training_memory(floats, shards, slots);
    crate::memory::check_room(bytes, what)
}

/// The bytes of training `floats` parameters with `shards` gradient sets and `slots` new
/// optimizer slots each, and what they are for in words.
fn training_memory(floats: usize, shards: usize, slots: usize) -> (usize, impl FnOnce() -> String) {
    let bytes = floats.saturating_mul(shards + slots).saturating_mul(4);
    let s = |n: usize| if n == 1 { "" } else { "s" };
    let what = move || {
        format!(
            "training this model ({floats} trainable parameters: gradients for {shards} \
             shard{} and {slots} new optimizer slot{} per weight)",
            s(shards),
            s(slots)
        )
    };
    (bytes, what)
}

fn evaluate_logs(
    model: &mut Model,
    data: &Samples,
    batch_size: usize,
    metrics: &[Vec<Metric>],
    prefix: &str,
    observer: &mut dyn Observer,
) -> Result<Vec<(String, f64)>> {
    let m: &Model = model;
    let c = m.compiled.as_ref().ok_or_else(not_compiled)?;
    let output_names = m.output_names();
    let mut running = Running::new(metrics, &output_names);
    let mut states = Vec::new();
    let steps = data.n.div_ceil(batch_size);
    let seed = pass_seed(m);
    observer.on_epoch_begin(0, 1, steps);
    let batch = |step: usize| {
        let (from, to) = (step * batch_size, ((step + 1) * batch_size).min(data.n));
        let (xs, ys) = data.range(from, to);
        let (xs, ys) = (on_device(m, xs), on_device(m, ys));
        let mut tape = Tape::new();
        let params = m.param_vars(&mut tape, None);
        let mut rng = Noise::new(seed, from);
        let (_, outcome, states) =
            record_losses(m, c, &mut tape, xs, ys, &params, None, false, &mut rng)?;
        Ok((outcome, states))
    };
    in_parallel_groups(
        steps,
        m.device == Device::Cpu,
        batch,
        |step, (outcome, s): (BatchOutcome, Vec<StateUpdate>)| {
            running.add(&outcome);
            states.extend(s);
            observer.on_batch_end(step + 1, &running.logs(prefix));
            if observer.should_stop() {
                return Err(Error::Interrupted);
            }
            Ok(())
        },
    )?;
    // A call with `training = TRUE` ran in training mode: its batch statistics fold into
    // the moving ones batch after batch, as in Keras (their outputs did not use them).
    model.update_state(states)?;
    Ok(running.logs(prefix))
}

/// Runs the independent batches 0..steps a group at a time, a batch per thread at a
/// time, and hands each result to `report` in order on the calling thread (where the
/// observer may talk to R). A group holds 4 batches per thread, so that a thread that
/// finishes early takes another instead of waiting at the group's end. Without
/// `parallel` (a model on the GPU, whose stream runs one batch after another anyway),
/// the batches run one at a time.
/// Batches that evaluate() and predict() run at once.
fn group_size(parallel: bool) -> usize {
    if parallel {
        4 * crate::threads::count().max(1)
    } else {
        1
    }
}

/// Refuses a call whose batches' activations (`copies` sets of `batches` batches of
/// `batch_size` samples, counted from the layers' output shapes) need more memory than
/// the system has free, before the first batch allocates them: an allocation that fails
/// would abort the whole process, R included.
fn check_batch_memory(model: &Model, batch_size: usize, copies: usize, call: &str) -> Result<()> {
    let Some(shapes) = model.known_node_shapes() else {
        return Ok(());
    };
    let per_sample: usize = shapes
        .iter()
        .flatten()
        .map(|s| s.iter().product::<usize>())
        .sum();
    let bytes = per_sample
        .saturating_mul(batch_size)
        .saturating_mul(copies)
        .saturating_mul(4);
    crate::memory::check_room(bytes, || {
        format!(
            "{call}() with batch_size = {batch_size} ({per_sample} activation values per \
             sample, {copies} batch{} at once; a smaller batch_size needs less)",
            if copies == 1 { "" } else { "es" }
        )
    })
}

fn in_parallel_groups<T: Send>(
    steps: usize,
    parallel: bool,
    batch: impl Fn(usize) -> Result<T> + Sync,
    mut report: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let group = group_size(parallel);
    for first in (0..steps).step_by(group) {
        let last = (first + group).min(steps);
        let results: Vec<Result<T>> = if last - first == 1 {
            vec![batch(first)]
        } else {
            crate::threads::install(|| (first..last).into_par_iter().map(&batch).collect())
        };
        for (i, r) in results.into_iter().enumerate() {
            report(first + i, r?)?;
        }
    }
    Ok(())
}

/// A Sequential model without layers has no outputs: Keras refuses to build it, and
/// so does `fit()`, `evaluate()` or `predict()` (`call`) here, rather than hand the
/// input back as the output.
fn check_has_layers(model: &Model, call: &str) -> Result<()> {
    if model.is_sequential() && model.members().is_empty() {
        return Err(Error::State(format!(
            "model '{}' has no layers: add layers before {call}()",
            model.name
        )));
    }
    Ok(())
}

/// The error for data of 0 samples given to `call` (fit or evaluate: their loss and
/// metrics would be means over nothing).
fn no_samples(arg: &str, call: &str) -> Error {
    data_err(arg, format!("has 0 samples: {call}() needs at least one"))
}

/// `evaluate()`: the loss and metrics over all samples, in Keras's log order.
pub fn evaluate(
    model: &mut Model,
    data: Samples,
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<(String, f64)>> {
    let _running = crate::device::pool::Running::start();
    check_batch_size(batch_size)?;
    check_has_layers(model, "evaluate")?;
    model.compiled.as_ref().ok_or_else(not_compiled)?;
    if data.n == 0 {
        return Err(no_samples("x", "evaluate"));
    }
    model.build(&data.x_shapes())?;
    let groups = group_size(true).min(data.n.div_ceil(batch_size));
    check_batch_memory(model, batch_size.min(data.n), groups, "evaluate")?;
    model.place_weights();
    let metrics = compiled_metrics(model, &data)?;
    evaluate_logs(model, &data, batch_size, &metrics, "", observer)
}

/// `predict()`: the model's outputs for the inputs `xs` (one array per model input),
/// each output row-major with the sample axis first.
pub fn predict(
    model: &mut Model,
    xs: &[Array],
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Tensor>> {
    let rows: Vec<&dyn Rows> = xs.iter().map(|a| a as &dyn Rows).collect();
    predict_rows(model, &rows, batch_size, observer)
}

/// `predict` over inputs that write their batches (`Rows`). Each batch's values are
/// checked for NA, NaN and Inf as they arrive; batches run a group at a time and are
/// reported in order, so the error names the first bad sample of the whole input (of
/// the input whose bad value comes first), and no group starts after it.
pub fn predict_rows(
    model: &mut Model,
    xs: &[&dyn Rows],
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<Tensor>> {
    let _running = crate::device::pool::Running::start();
    check_batch_size(batch_size)?;
    check_has_layers(model, "predict")?;
    let n = xs.first().map(|a| a.rows()).unwrap_or(0);
    for (i, a) in xs.iter().enumerate() {
        if a.rows() != n {
            return Err(data_err(
                &arg_name("x", i, xs.len()),
                format!("has {} samples, but `x[[1]]` has {n}", a.rows()),
            ));
        }
    }
    let shapes: Vec<Vec<usize>> = xs.iter().map(|a| a.sample_shape().to_vec()).collect();
    model.build(&shapes)?;
    let groups = group_size(true).min(n.div_ceil(batch_size.max(1)));
    check_batch_memory(model, batch_size.min(n), groups, "predict")?;
    model.place_weights();
    let out_shapes = model.output_shapes()?.unwrap_or_default();
    // From the pool, where the outputs of the previous call went when their tensors
    // were dropped: taken afresh, each call left one more buffer there that no one asked
    // for again.
    let mut outs: Vec<Vec<f32>> = out_shapes
        .iter()
        .map(|s| crate::device::pool::take(n * s.iter().product::<usize>()))
        .collect();
    let steps = n.div_ceil(batch_size);
    observer.on_epoch_begin(0, 1, steps);
    let m: &Model = model;
    let seed = pass_seed(m);
    let names: Vec<String> = (0..xs.len()).map(|i| arg_name("x", i, xs.len())).collect();
    let batch = |step: usize| {
        let (from, to) = (step * batch_size, ((step + 1) * batch_size).min(n));
        let mut tape = Tape::new();
        let mut xvs = Vec::with_capacity(xs.len());
        for (a, name) in xs.iter().zip(&names) {
            let shape = a.sample_shape();
            let len: usize = shape.iter().product();
            let mut values = crate::device::pool::scratch((to - from) * len);
            a.fill(from, to, &mut values);
            check_finite_from(name, &values, len, from)?;
            let mut batch_shape = vec![to - from];
            batch_shape.extend_from_slice(shape);
            let t = Tensor::from_vec(batch_shape, values)?;
            xvs.push(tape.leaf(t.to_device(m.device), false));
        }
        let params = m.param_vars(&mut tape, None);
        let (ys, states) = m.forward(
            &mut tape,
            &xvs,
            &params,
            false,
            &[],
            &mut Noise::new(seed, from),
        )?;
        let ys = ys
            .iter()
            .map(|&y| tape.value(y).clone())
            .collect::<Vec<_>>();
        Ok((ys, states))
    };
    let mut states = Vec::new();
    in_parallel_groups(
        steps,
        m.device == Device::Cpu,
        batch,
        |step, (ys, s): (Vec<Tensor>, Vec<StateUpdate>)| {
            states.extend(s);
            for (o, y) in outs.iter_mut().zip(&ys) {
                o.extend_from_slice(y.host());
            }
            observer.on_batch_end(step + 1, &[]);
            if observer.should_stop() {
                return Err(Error::Interrupted);
            }
            Ok(())
        },
    )?;
    // A call with `training = TRUE` ran in training mode: its batch statistics fold into
    // the moving ones batch after batch, as Keras's predict() does.
    model.update_state(states)?;
    outs.into_iter()
        .zip(out_shapes)
        .map(|(o, s)| {
            let mut shape = vec![n];
            shape.extend(s);
            Tensor::from_vec(shape, o)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn training_beyond_free_memory_is_refused_with_the_sizes() {
        let error = |floats, shards, slots, free| {
            let (bytes, what) = super::training_memory(floats, shards, slots);
            crate::memory::room_error(bytes, free, what)
        };
        let e = error(1_000_000_000, 2, 2, Some(8 << 30)).unwrap();
        assert_eq!(
            e.to_string(),
            "training this model (1000000000 trainable parameters: gradients for 2 shards and \
             2 new optimizer slots per weight) needs 16.0 GB of memory, but only 8.6 GB is \
             available"
        );
        assert!(error(1_000_000_000, 1, 0, Some(8 << 30)).is_none());
        assert!(error(1000, 2, 2, Some(0)).is_none());
        assert!(error(1 << 40, 2, 2, None).is_none());
    }
    use super::check_finite;

    #[test]
    fn check_finite_finds_the_first_bad_value_in_any_chunk() {
        // Several of the scan's chunks, the bad value in a late one.
        let (len, n) = (1000, 300);
        let mut v: Vec<f32> = (0..len * n).map(|i| (i % 7) as f32 - 3.0).collect();
        assert!(check_finite("x", &v, len).is_ok());
        for (bad, what) in [
            (f32::NAN, "NA or NaN"),
            (f32::INFINITY, "Inf"),
            (f32::NEG_INFINITY, "-Inf"),
        ] {
            let at = 250 * len + 17;
            let kept = v[at];
            v[at] = bad;
            v[len * n - 1] = bad; // a later one is not reported
            let err = check_finite("x", &v, len).unwrap_err().to_string();
            assert!(
                err.contains(&format!("found {what} in sample 251, value 18")),
                "{err}"
            );
            v[at] = kept;
            v[len * n - 1] = 0.0;
        }
        // Largest finite values and subnormals are finite.
        let edge = [f32::MAX, f32::MIN, f32::MIN_POSITIVE / 2.0, -0.0];
        assert!(check_finite("x", &edge, 1).is_ok());
    }
}
