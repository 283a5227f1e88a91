# The workshop MLP on Fashion-MNIST: seconds per epoch, predict() throughput, test accuracy
# and peak memory of rustkeras, next to Keras 3 (JAX, torch) and plain PyTorch measured in
# the same run when the peer venv exists (bench/setup-peers.sh creates it).
#
#   Rscript bench/mlp.R [epochs=5]
#
# Environment: RUSTKERAS_PEERS_VENV (default /tmp/rustkeras-peers), BENCH_THREADS (default
# 2), BENCH_PEERS=0 to skip the peers. See bench/README.md for what is measured and why.

args <- commandArgs(trailingOnly = TRUE)
epochs <- if (length(args) >= 1) as.integer(args[[1]]) else 5L
stopifnot(!is.na(epochs), epochs >= 2L)
threads <- as.integer(Sys.getenv("BENCH_THREADS", "2"))
venv <- Sys.getenv("RUSTKERAS_PEERS_VENV", "/tmp/rustkeras-peers")
run_peers <- Sys.getenv("BENCH_PEERS", "1") != "0"
script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f[[1]])) else "bench"
})

options(width = 200)
options(rustkeras.threads = threads) # read when the package loads (rayon's pool size)
suppressPackageStartupMessages(library(rustkeras))

vmhwm_mb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(strsplit(trimws(sub("^VmHWM:", "", grep("^VmHWM:", s, value = TRUE))), " +")[[1]][1]) / 1024
}
cpu_model <- function() {
  m <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)
  if (length(m)) trimws(sub("^[^:]*:", "", m[[1]])) else "unknown"
}
cpu_family <- function() {
  l <- readLines("/proc/cpuinfo")
  f <- function(k) trimws(sub("^[^:]*:", "", grep(paste0("^", k, "\\s*:"), l, value = TRUE)[1]))
  sprintf("family %s model %s", f("cpu family"), f("model"))
}
loadavg <- function() paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " ")
cpu_ticks <- function() as.numeric(strsplit(trimws(sub("^cpu", "", readLines("/proc/stat", n = 1))), " +")[[1]])
ticks0 <- cpu_ticks()
elapsed <- function(expr) {
  t <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t
}

cat(sprintf("machine: %s (%s), nproc %s, %.1f GiB RAM; R %s; rustkeras %s\n",
            cpu_model(), cpu_family(), trimws(system("nproc", intern = TRUE)),
            as.numeric(sub("\\D+(\\d+).*", "\\1", grep("^MemTotal", readLines("/proc/meminfo"), value = TRUE))) / 2^20,
            getRversion(), packageVersion("rustkeras")))
print(backend_info())
cat(sprintf("model: workshop MLP, batch 128, validation_split 0.2 (48000 + 12000), %d epochs, %d threads\n",
            epochs, threads))
running <- function() as.integer(sub("procs_running ", "", grep("^procs_running", readLines("/proc/stat"), value = TRUE)))
cat(sprintf("load average before: %s; runnable processes now: %d (this one included)\n", loadavg(), running()))
if (running() > 1L || as.numeric(strsplit(loadavg(), " ")[[1]][1]) > 0.7) {
  cat("warning: other work is running on this machine; it skews every figure below (rerun when idle)\n")
}
cat("\n")

# ---- rustkeras -------------------------------------------------------------------------
c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()
x_train <- array_reshape(x_train, c(nrow(x_train), 784)) / 255
x_test <- array_reshape(x_test, c(nrow(x_test), 784)) / 255
y_train <- to_categorical(y_train, 10)
y_test <- to_categorical(y_test, 10)

set_random_seed(1)
model <- keras_model_sequential(input_shape = c(784))
model %>%
  layer_dense(units = 256, activation = "relu") %>%
  layer_dropout(rate = 0.4) %>%
  layer_dense(units = 128, activation = "relu") %>%
  layer_dropout(rate = 0.3) %>%
  layer_dense(units = 10, activation = "softmax")
model %>% compile(loss = "categorical_crossentropy", optimizer = optimizer_rmsprop(), metrics = c("accuracy"))

# Same protocol as bench/peers.py: a first fit() call of 1 epoch (warm-up), then one fit()
# call for epochs 2..E whose wall time / (E-1) is the s/epoch figure. Each call copies the
# data from R once, so that copy is included, amortised over the call's epochs.
epoch1 <- elapsed(model %>% fit(x_train, y_train, epochs = 1, batch_size = 128, validation_split = 0.2, verbose = 0))
rest <- elapsed(h <- model %>% fit(x_train, y_train, epochs = epochs, initial_epoch = 2, batch_size = 128,
                                   validation_split = 0.2, verbose = 0)) / (epochs - 1)
test_acc <- unname((model %>% evaluate(x_test, y_test, batch_size = 128, verbose = 0))[["accuracy"]])
invisible(predict(model, x_test[1:256, ], batch_size = 128, verbose = 0))
pt <- vapply(1:3, function(i) elapsed(predict(model, x_test, batch_size = 128, verbose = 0)), 0)
ours <- list(peer = "rustkeras", version = paste("rustkeras", packageVersion("rustkeras")), epoch1_s = epoch1,
             epoch_s = rest, test_acc = test_acc, predict_img_s = nrow(x_test) / median(pt),
             peak_rss_mb = vmhwm_mb())
cat(sprintf("rustkeras: first epoch %.3f s, then %.3f s/epoch; predict %.0f images/s; test accuracy %.4f; peak RSS %.0f MB\n",
            ours$epoch1_s, ours$epoch_s, ours$predict_img_s, ours$test_acc, ours$peak_rss_mb))

# ---- peers -----------------------------------------------------------------------------
results <- list(ours)
py <- file.path(venv, "bin", "python")
if (run_peers && file.exists(py)) {
  cat(sprintf("\npeers (%s):\n", venv))
  # peers.py drops OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in its children's environment only.
  out <- system2(py, c(shQuote(file.path(script_dir, "peers.py")), "--epochs", epochs, "--threads", threads),
                 stdout = TRUE, stderr = "")
  for (line in out) {
    if (startsWith(line, "PEER_RESULT ")) {
      json <- sub("^PEER_RESULT ", "", line)
      num <- function(k) {
        m <- regmatches(json, regexec(sprintf('"%s": (-?[0-9.eE+-]+|null)', k), json))[[1]]
        if (length(m) < 2 || m[2] == "null") NA_real_ else as.numeric(m[2])
      }
      str <- function(k) regmatches(json, regexec(sprintf('"%s": "([^"]*)"', k), json))[[1]][2]
      r <- list(peer = str("peer"), version = str("version"), epoch1_s = num("epoch1_s"), epoch_s = num("epoch_s"),
                test_acc = num("test_acc"), predict_img_s = num("predict_img_s"), peak_rss_mb = num("peak_rss_mb"),
                epoch_s_median_cb = num("epoch_s_median_cb"), blas = str("architecture"))
      cat(sprintf("  %-12s %s: first epoch %.3f s, then %.3f s/epoch (median in-call %.3f); predict %.0f images/s; test accuracy %.4f; peak RSS %.0f MB; numpy's OpenBLAS kernel %s\n",
                  r$peer, r$version, r$epoch1_s, r$epoch_s, r$epoch_s_median_cb, r$predict_img_s, r$test_acc, r$peak_rss_mb, r$blas))
      results[[length(results) + 1]] <- r
    } else {
      cat("  ", line, "\n", sep = "")
    }
  }
} else if (run_peers) {
  cat(sprintf("\nno peer venv at %s: run bench/setup-peers.sh to compare with Keras 3 and PyTorch\n", venv))
}

# ---- table -----------------------------------------------------------------------------
tab <- data.frame(
  engine = vapply(results, `[[`, "", "peer"),
  s_per_epoch = vapply(results, function(r) r$epoch_s, 0),
  first_epoch_s = vapply(results, function(r) r$epoch1_s, 0),
  predict_img_s = vapply(results, function(r) r$predict_img_s, 0),
  test_acc = vapply(results, function(r) r$test_acc, 0),
  peak_rss_mb = vapply(results, function(r) r$peak_rss_mb, 0)
)
tab$epoch_ratio <- ours$epoch_s / tab$s_per_epoch     # rustkeras s/epoch / this engine's s/epoch
tab$predict_ratio <- ours$predict_img_s / tab$predict_img_s # rustkeras images/s / this engine's
cat(sprintf("\nsummary (%s, %d threads, %d epochs; ratios are rustkeras / that engine):\n", cpu_model(), threads, epochs))
fmt <- data.frame(
  engine = tab$engine,
  `s/epoch` = sprintf("%.3f", tab$s_per_epoch),
  `epoch 1 s` = sprintf("%.2f", tab$first_epoch_s),
  `predict img/s` = sprintf("%.0f", tab$predict_img_s),
  `test acc` = sprintf("%.4f", tab$test_acc),
  `peak RSS MB` = sprintf("%.0f", tab$peak_rss_mb),
  `rk s/epoch ratio` = sprintf("%.2f", tab$epoch_ratio),
  `rk predict ratio` = sprintf("%.2f", tab$predict_ratio),
  check.names = FALSE
)
print(fmt, row.names = FALSE, right = TRUE)
jax <- tab[tab$engine == "keras-jax", ]
if (nrow(jax) == 1) {
  cat(sprintf("\ntarget (issue 2): rustkeras s/epoch <= 0.5 x Keras-JAX s/epoch: %.3f / %.3f = %.2f -> %s\n",
              ours$epoch_s, jax$s_per_epoch, jax$epoch_ratio, if (jax$epoch_ratio <= 0.5) "met" else "not met"))
}
d <- cpu_ticks() - ticks0 # user nice system idle iowait irq softirq steal ...
cat(sprintf("load average after: %s; CPU steal during the run: %.1f%%\n", loadavg(), 100 * d[8] / sum(d[1:8])))
