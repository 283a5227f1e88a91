//! The training loops behind `fit()`, `evaluate()` and `predict()`: batching, shuffling,
//! validation and running-mean metrics, reporting to an observer between batches.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::autodiff::Tape;
use crate::error::{data_err, Error, Result};
use crate::metrics::{self, Metric};
use crate::model::Sequential;
use crate::rng;
use crate::tensor::Tensor;

/// Samples in row-major order: `x` holds `n * prod(x_shape)` values.
#[derive(Clone, Copy)]
pub struct Samples<'a> {
    pub x: &'a [f32],
    /// Shape of one sample of x.
    pub x_shape: &'a [usize],
    pub y: &'a [f32],
    /// Shape of one sample of y (empty for one label per sample).
    pub y_shape: &'a [usize],
    pub n: usize,
}

impl<'a> Samples<'a> {
    pub fn new(
        x: &'a [f32],
        x_shape: &'a [usize],
        y: &'a [f32],
        y_shape: &'a [usize],
    ) -> Result<Samples<'a>> {
        let xl: usize = x_shape.iter().product();
        let yl: usize = y_shape.iter().product();
        let n = if xl == 0 { 0 } else { x.len() / xl };
        let ny = if yl == 0 { 0 } else { y.len() / yl };
        if n != ny {
            return Err(data_err(
                "x",
                format!("and `y` have different numbers of samples ({n} and {ny})"),
            ));
        }
        check_finite("x", x, xl)?;
        check_finite("y", y, yl)?;
        Ok(Samples {
            x,
            x_shape,
            y,
            y_shape,
            n,
        })
    }

    fn x_len(&self) -> usize {
        self.x_shape.iter().product()
    }

    fn y_len(&self) -> usize {
        self.y_shape.iter().product()
    }

    /// Rows [from, to) as another view (no copy).
    pub fn slice(&self, from: usize, to: usize) -> Samples<'a> {
        let (xl, yl) = (self.x_len(), self.y_len());
        Samples {
            x: &self.x[from * xl..to * xl],
            y: &self.y[from * yl..to * yl],
            n: to - from,
            ..*self
        }
    }

    /// The rows `idx` copied into contiguous batch tensors.
    fn gather(&self, idx: &[usize]) -> (Tensor, Tensor) {
        let gather = |src: &[f32], len: usize, shape: &[usize]| {
            let mut out = crate::device::pool::take(idx.len() * len);
            for &i in idx {
                out.extend_from_slice(&src[i * len..(i + 1) * len]);
            }
            let mut s = vec![idx.len()];
            s.extend_from_slice(shape);
            Tensor::from_vec(s, out).expect("gathered rows fill the batch")
        };
        (
            gather(self.x, self.x_len(), self.x_shape),
            gather(self.y, self.y_len(), self.y_shape),
        )
    }

    /// Consecutive rows [from, to) as batch tensors.
    fn range(&self, from: usize, to: usize) -> (Tensor, Tensor) {
        let v = self.slice(from, to);
        let shape = |s: &[usize]| {
            let mut out = vec![to - from];
            out.extend_from_slice(s);
            out
        };
        (
            Tensor::from_vec(shape(self.x_shape), crate::device::pool::copy_of(v.x))
                .expect("rows fill the batch"),
            Tensor::from_vec(shape(self.y_shape), crate::device::pool::copy_of(v.y))
                .expect("rows fill the batch"),
        )
    }
}

/// Rejects NA/NaN/Inf, naming the sample and the value's place within it (1-based, in
/// row-major order over the sample's axes, e.g. the column of a matrix).
pub fn check_finite(arg: &str, v: &[f32], sample_len: usize) -> Result<()> {
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
                    i / len + 1
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

/// Running sums of the loss and metrics over the samples seen.
struct Running {
    names: Vec<String>,
    sums: Vec<f64>,
    seen: usize,
}

impl Running {
    fn new(metrics: &[Metric]) -> Running {
        let mut names: Vec<String> = metrics.iter().map(|m| m.name.clone()).collect();
        names.push("loss".into());
        Running {
            sums: vec![0.0; names.len()],
            names,
            seen: 0,
        }
    }

    fn add(&mut self, metrics: &[Metric], loss: f64, pred: &Tensor, y: &Tensor) {
        let n = pred.rows();
        for (s, m) in self.sums.iter_mut().zip(metrics) {
            *s += m.batch_sum(pred.host(), y.host(), n);
        }
        *self.sums.last_mut().expect("loss slot") += loss * n as f64;
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

fn compiled_metrics(model: &Sequential, data: &Samples) -> Result<Vec<Metric>> {
    let c = model.compiled.as_ref().ok_or_else(not_compiled)?;
    let out = model.output_shape()?.unwrap_or_default();
    let pred_cols: usize = out.iter().product();
    let true_cols: usize = data.y_shape.iter().product();
    c.metrics
        .iter()
        .map(|name| {
            metrics::resolve(
                name,
                &c.loss,
                pred_cols,
                true_cols,
                data.y_shape.len() + 1,
                out.len() + 1,
            )
        })
        .collect()
}

fn not_compiled() -> Error {
    Error::State("you must call `compile()` on the model before `fit()` or `evaluate()`".into())
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

/// What one shard of a batch gives back: its mean loss, the model's output and the
/// labels (for the metrics), and the gradients of the trainable parameters.
struct ShardResult {
    loss: f64,
    pred: Tensor,
    y: Tensor,
    grads: Vec<Tensor>,
    /// Batch statistics for layers that keep moving averages.
    state: Vec<(usize, Vec<Tensor>)>,
}

/// Forward and backward pass of one shard of a batch on its own tape.
fn shard_gradients(
    model: &Sequential,
    data: &Samples,
    idx: &[usize],
    contiguous: bool,
    seed: u64,
) -> Result<ShardResult> {
    let compiled = model.compiled.as_ref().ok_or_else(not_compiled)?;
    let loss_fn = compiled.loss;
    let logits = loss_fn.wants_logits_of_softmax() && model.ends_in_softmax();
    let (x, y) = if contiguous {
        data.range(idx[0], idx[0] + idx.len())
    } else {
        data.gather(idx)
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tape = Tape::new();
    let xv = tape.leaf(x, false);
    let yv = tape.leaf(y.clone(), false);
    let params = model.param_vars(&mut tape);
    let (out, state) = model.forward_with_state(&mut tape, xv, &params, true, logits, &mut rng)?;
    let (loss, pred) = loss_fn.compute(&mut tape, out, logits, yv)?;
    let mut grads = tape.backward(loss)?;
    let loss_value = tape.value(loss).item() as f64;
    let trainable: Vec<Tensor> = model
        .layers()
        .iter()
        .zip(&params)
        .flat_map(|(l, vars)| {
            l.params()
                .iter()
                .zip(vars)
                .filter(|(p, _)| p.trainable)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
        })
        .map(|v| {
            grads
                .take(v)
                .unwrap_or_else(|| Tensor::zeros(tape.value(v).shape()))
        })
        .collect();
    Ok(ShardResult {
        loss: loss_value,
        pred,
        y,
        grads: trainable,
        state,
    })
}

/// Samples per shard below which a batch is not split across threads.
const MIN_SHARD: usize = 32;

/// One optimisation step on the batch `idx`. The batch is split into one shard per
/// thread, each with its own tape (data parallelism: no synchronisation inside the
/// passes); the gradient of the batch mean is the size-weighted mean of the shards'.
fn train_step(
    model: &mut Sequential,
    data: &Samples,
    idx: &[usize],
    contiguous: bool,
    rng: &mut SmallRng,
) -> Result<Vec<ShardResult>> {
    // Batch statistics (batch normalization) must see the whole batch, as in Keras.
    let shards = if model.uses_batch_statistics() {
        1
    } else {
        rayon::current_num_threads()
            .min(idx.len() / MIN_SHARD)
            .max(1)
    };
    let per = idx.len().div_ceil(shards);
    let jobs: Vec<(&[usize], u64)> = idx.chunks(per).map(|c| (c, rng.gen())).collect();
    let m: &Sequential = model;
    let mut results: Vec<ShardResult> = if jobs.len() == 1 {
        // One shard runs here, so its products can still use every thread.
        vec![shard_gradients(m, data, jobs[0].0, contiguous, jobs[0].1)?]
    } else {
        jobs.into_par_iter()
            .map(|(chunk, seed)| shard_gradients(m, data, chunk, contiguous, seed))
            .collect::<Result<Vec<_>>>()?
    };
    let n = idx.len() as f32;
    let loss: f64 = results
        .iter()
        .map(|r| r.loss * r.pred.rows() as f64)
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
                .map(|r| (r.pred.rows() as f32 / n, &r.grads[i]))
                .collect()
        })
        .collect();
    model.apply_gradients(&grads)?;
    let state = std::mem::take(&mut results[0].state);
    model.update_state(state)?;
    Ok(results)
}

/// `fit()`: trains for `epochs - initial_epoch` epochs, validating on the last
/// `validation_split` of the samples (taken before shuffling) or on `validation`.
pub fn fit(
    model: &mut Sequential,
    data: Samples,
    validation: Option<Samples>,
    opts: &FitOptions,
    observer: &mut dyn Observer,
) -> Result<History> {
    check_batch_size(opts.batch_size)?;
    if !(0.0..1.0).contains(&opts.validation_split) {
        return Err(crate::error::invalid_arg(
            "validation_split",
            format!("must be in [0, 1), not {}", opts.validation_split),
        ));
    }
    model.compiled.as_ref().ok_or_else(not_compiled)?;
    model.build(data.x_shape)?;
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
        return Err(data_err("x", "has no samples"));
    }
    let metrics = compiled_metrics(model, &train)?;
    let mut rng = SmallRng::seed_from_u64(rng::next_seed());
    let steps = train.n.div_ceil(opts.batch_size);
    let mut order: Vec<usize> = (0..train.n).collect();
    let mut history = History::default();
    for epoch in opts.initial_epoch..opts.epochs {
        observer.on_epoch_begin(epoch, opts.epochs, steps);
        if opts.shuffle {
            order.shuffle(&mut rng);
        }
        let mut running = Running::new(&metrics);
        for step in 0..steps {
            let idx = &order[step * opts.batch_size..((step + 1) * opts.batch_size).min(train.n)];
            for shard in train_step(model, &train, idx, !opts.shuffle, &mut rng)? {
                running.add(&metrics, shard.loss, &shard.pred, &shard.y);
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

fn evaluate_logs(
    model: &Sequential,
    data: &Samples,
    batch_size: usize,
    metrics: &[Metric],
    prefix: &str,
    observer: &mut dyn Observer,
) -> Result<Vec<(String, f64)>> {
    let c = model.compiled.as_ref().ok_or_else(not_compiled)?;
    let logits = c.loss.wants_logits_of_softmax() && model.ends_in_softmax();
    let mut running = Running::new(metrics);
    let steps = data.n.div_ceil(batch_size);
    observer.on_epoch_begin(0, 1, steps);
    let batch = |step: usize| {
        let (from, to) = (step * batch_size, ((step + 1) * batch_size).min(data.n));
        let (xb, yb) = data.range(from, to);
        let mut tape = Tape::new();
        let xv = tape.leaf(xb, false);
        let yv = tape.leaf(yb.clone(), false);
        let params = inference_params(model, &mut tape);
        let out = model.forward(
            &mut tape,
            xv,
            &params,
            false,
            logits,
            &mut SmallRng::seed_from_u64(0),
        )?;
        let (loss, pred) = c.loss.compute(&mut tape, out, logits, yv)?;
        Ok((tape.value(loss).item() as f64, pred, yb))
    };
    in_parallel_groups(steps, batch, |step, (loss, pred, yb)| {
        running.add(metrics, loss, &pred, &yb);
        observer.on_batch_end(step + 1, &running.logs(prefix));
        if observer.should_stop() {
            return Err(Error::Interrupted);
        }
        Ok(())
    })?;
    Ok(running.logs(prefix))
}

/// Runs the independent batches 0..steps a group at a time, one batch per thread, and
/// hands each result to `report` in order on the calling thread (where the observer
/// may talk to R).
fn in_parallel_groups<T: Send>(
    steps: usize,
    batch: impl Fn(usize) -> Result<T> + Sync,
    mut report: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let group = rayon::current_num_threads().max(1);
    for first in (0..steps).step_by(group) {
        let last = (first + group).min(steps);
        let results: Vec<Result<T>> = if last - first == 1 {
            vec![batch(first)]
        } else {
            (first..last).into_par_iter().map(&batch).collect()
        };
        for (i, r) in results.into_iter().enumerate() {
            report(first + i, r?)?;
        }
    }
    Ok(())
}

/// Parameters as constants: inference records no backward at all.
fn inference_params(model: &Sequential, tape: &mut Tape) -> Vec<Vec<crate::autodiff::Var>> {
    model
        .layers()
        .iter()
        .map(|l| {
            l.params()
                .iter()
                .map(|p| tape.leaf(p.value.clone(), false))
                .collect()
        })
        .collect()
}

/// `evaluate()`: the loss and metrics over all samples, in Keras's log order.
pub fn evaluate(
    model: &mut Sequential,
    data: Samples,
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Vec<(String, f64)>> {
    check_batch_size(batch_size)?;
    model.compiled.as_ref().ok_or_else(not_compiled)?;
    model.build(data.x_shape)?;
    let metrics = compiled_metrics(model, &data)?;
    evaluate_logs(model, &data, batch_size, &metrics, "", observer)
}

/// `predict()`: the model's outputs for `x` (n samples of `x_shape`), row-major.
pub fn predict(
    model: &mut Sequential,
    x: &[f32],
    x_shape: &[usize],
    batch_size: usize,
    observer: &mut dyn Observer,
) -> Result<Tensor> {
    check_batch_size(batch_size)?;
    check_finite("x", x, x_shape.iter().product())?;
    model.build(x_shape)?;
    let xl: usize = x_shape.iter().product();
    let n = x.len() / xl.max(1);
    let out_shape = model.output_shape()?.unwrap_or_default();
    let ol: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n * ol);
    let steps = n.div_ceil(batch_size);
    observer.on_epoch_begin(0, 1, steps);
    let m: &Sequential = model;
    let batch = |step: usize| {
        let (from, to) = (step * batch_size, ((step + 1) * batch_size).min(n));
        let mut shape = vec![to - from];
        shape.extend_from_slice(x_shape);
        let xb = Tensor::from_vec(shape, crate::device::pool::copy_of(&x[from * xl..to * xl]))?;
        let mut tape = Tape::new();
        let xv = tape.leaf(xb, false);
        let params = inference_params(m, &mut tape);
        let y = m.forward(
            &mut tape,
            xv,
            &params,
            false,
            false,
            &mut SmallRng::seed_from_u64(0),
        )?;
        Ok(tape.value(y).clone())
    };
    in_parallel_groups(steps, batch, |step, y: Tensor| {
        out.extend_from_slice(y.host());
        observer.on_batch_end(step + 1, &[]);
        if observer.should_stop() {
            return Err(Error::Interrupted);
        }
        Ok(())
    })?;
    let mut shape = vec![n];
    shape.extend(out_shape);
    Tensor::from_vec(shape, out)
}
