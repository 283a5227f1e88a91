# ResNet50 (224x224x3, 1000 classes) on one random batch: predict() throughput, the time of
# one training step and peak memory of rustkeras, next to Keras 3 (JAX and torch backends)
# and PyTorch/torchvision measured in the same run when the peer venv exists
# (bench/setup-peers.sh creates it).
#
#   Rscript bench/resnet50.R [reps=3]
#
# reps: timed repetitions after one warm-up call, for predict() and for the training step;
# the best is reported (as bench/peers.py --model resnet50 does).
#
# Protocol (the same in bench/peers.py): application_resnet50(weights = NULL, input_shape =
# c(224, 224, 3)), compile(optimizer_adam(), "sparse_categorical_crossentropy"); a batch of
# BENCH_BATCH (32) images x ~ N(0, 1) with random labels 0..999;
#   predict img/s   batch / the best of `reps` predict(x, batch_size = batch) calls, after a
#                   warm-up call (its time: "predict 1st s")
#   train step s    the best of `reps` fit(x, y, batch_size = batch, epochs = 1) calls (one
#                   step each: forward, backward, Adam update), after a warm-up call
#   peak RSS        VmHWM of the process at the end (rustkeras: the whole R process)
#
# Environment: RUSTKERAS_PEERS_VENV (default /tmp/rustkeras-peers), BENCH_THREADS (default
# 2), BENCH_BATCH (default 32), BENCH_PEERS=0 to skip the peers, BENCH_PEERS_ONLY (default
# "keras-jax,keras-torch,torch"). See bench/README.md.

args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1) as.integer(args[[1]]) else 3L
threads <- as.integer(Sys.getenv("BENCH_THREADS", "2"))
batch <- as.integer(Sys.getenv("BENCH_BATCH", "32"))
stopifnot(!is.na(reps), reps >= 1L, !is.na(batch), batch >= 1L)
venv <- Sys.getenv("RUSTKERAS_PEERS_VENV", "/tmp/rustkeras-peers")
run_peers <- Sys.getenv("BENCH_PEERS", "1") != "0"
peers_only <- Sys.getenv("BENCH_PEERS_ONLY", "keras-jax,keras-torch,torch")
script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f[[1]])) else "bench"
})
source(file.path(script_dir, "bench-helpers.R"))

options(width = 200)
options(rustkeras.threads = threads) # read when the package loads (rayon's pool size)
suppressPackageStartupMessages(library(rustkeras))

ticks0 <- bench_header(sprintf(paste(
  "model: ResNet50 (application_resnet50(weights = NULL), 224x224x3, 1000 classes, softmax; adam,",
  "sparse categorical cross-entropy), one random batch of %d, 1 warm-up + best of %d, %d threads"),
  batch, reps, threads))

# ---- rustkeras -------------------------------------------------------------------------
ours <- NULL
if (!exists("application_resnet50", where = asNamespace("rustkeras"), inherits = FALSE)) {
  cat(sprintf("rustkeras %s has no application_resnet50() yet: the peers only\n", packageVersion("rustkeras")))
} else {
  set_random_seed(1)
  set.seed(1)
  x <- array(rnorm(batch * 224 * 224 * 3), c(batch, 224, 224, 3))
  y <- sample(0:999, batch, replace = TRUE) # sparse labels
  model <- application_resnet50(weights = NULL, input_shape = c(224, 224, 3))
  model %>% compile(optimizer = optimizer_adam(), loss = "sparse_categorical_crossentropy")
  n_params <- tryCatch(count_params(model), error = function(e) NA_real_)

  # predict(): one warm-up call, then the best of `reps`.
  predict1 <- elapsed(p <- predict(model, x, batch_size = batch, verbose = 0))
  stopifnot(identical(dim(p), c(batch, 1000L)))
  pt <- vapply(seq_len(reps), function(i) elapsed(predict(model, x, batch_size = batch, verbose = 0)), 0)
  rss_predict <- vmhwm_mb()

  # One training step per fit() call: batch_size = the number of images, 1 epoch.
  losses <- numeric()
  step <- function() {
    h <- fit(model, x, y, batch_size = batch, epochs = 1, verbose = 0)
    losses <<- c(losses, h$metrics$loss[[1]])
  }
  step1 <- elapsed(step())
  st <- vapply(seq_len(reps), function(i) elapsed(step()), 0)

  ours <- list(peer = "rustkeras", version = paste("rustkeras", packageVersion("rustkeras")),
               predict_img_s = batch / min(pt), predict1_s = predict1, train_step_s = min(st),
               train_step1_s = step1, predict_peak_rss_mb = rss_predict, peak_rss_mb = vmhwm_mb(),
               params = n_params)
  cat(sprintf(paste("rustkeras: predict %.1f images/s (first call %.2f s; calls %s s); training step %.3f s",
                    "(first %.2f s; steps %s s; losses %s); peak RSS %.0f MB (%.0f MB after predict); %s params\n"),
              ours$predict_img_s, ours$predict1_s, paste(sprintf("%.3f", pt), collapse = " "), ours$train_step_s,
              ours$train_step1_s, paste(sprintf("%.3f", st), collapse = " "),
              paste(sprintf("%.3f", losses), collapse = " "), ours$peak_rss_mb, ours$predict_peak_rss_mb,
              format(ours$params, big.mark = ",")))
}

# ---- peers -----------------------------------------------------------------------------
results <- if (is.null(ours)) list() else list(ours)
if (run_peers) {
  results <- c(results, peer_results(venv, script_dir, c(
    "--model", "resnet50", "--reps", reps, "--batch", batch, "--threads", threads, "--only", peers_only
  )))
}

# ---- table -----------------------------------------------------------------------------
if (length(results)) {
  field <- function(k) vapply(results, function(r) if (is.null(r[[k]])) NA_real_ else as.numeric(r[[k]]), 0)
  tab <- data.frame(engine = vapply(results, `[[`, "", "peer"), predict_img_s = field("predict_img_s"),
                    predict1_s = field("predict1_s"), train_step_s = field("train_step_s"),
                    train_step1_s = field("train_step1_s"), peak_rss_mb = field("peak_rss_mb"))
  tab$step_ratio <- if (is.null(ours)) NA_real_ else ours$train_step_s / tab$train_step_s       # rustkeras s / this
  tab$predict_ratio <- if (is.null(ours)) NA_real_ else ours$predict_img_s / tab$predict_img_s  # rustkeras img/s / this
  cat(sprintf("\nsummary (%s, %d threads, ResNet50, batch %d, best of %d; ratios are rustkeras / that engine):\n",
              cpu_model(), threads, batch, reps))
  print(data.frame(
    engine = tab$engine,
    `predict img/s` = sprintf("%.1f", tab$predict_img_s),
    `predict 1st s` = sprintf("%.2f", tab$predict1_s),
    `train step s` = sprintf("%.3f", tab$train_step_s),
    `train step 1st s` = sprintf("%.2f", tab$train_step1_s),
    `peak RSS MB` = sprintf("%.0f", tab$peak_rss_mb),
    `rk step ratio` = sprintf("%.2f", tab$step_ratio),
    `rk predict ratio` = sprintf("%.2f", tab$predict_ratio),
    check.names = FALSE
  ), row.names = FALSE, right = TRUE)
  keras_rows <- tab[startsWith(tab$engine, "keras-"), ]
  if (nrow(keras_rows)) {
    fastest <- keras_rows[which.min(keras_rows$train_step_s), ]
    cat(sprintf("\nfastest Keras 3 backend for the training step: %s (%.3f s); for predict: %s (%.1f images/s)\n",
                fastest$engine, fastest$train_step_s,
                keras_rows$engine[which.max(keras_rows$predict_img_s)], max(keras_rows$predict_img_s)))
  }
}
bench_footer(ticks0)
