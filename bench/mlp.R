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
source(file.path(script_dir, "bench-helpers.R"))

options(width = 200)
options(rustkeras.threads = threads) # read when the package loads (rayon's pool size)
suppressPackageStartupMessages(library(rustkeras))

ticks0 <- bench_header(sprintf("model: workshop MLP, batch 128, validation_split 0.2 (48000 + 12000), %d epochs, %d threads",
                               epochs, threads))

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
if (run_peers) {
  results <- c(results, peer_results(venv, script_dir, c("--model", "mlp", "--epochs", epochs, "--threads", threads)))
}

# ---- table -----------------------------------------------------------------------------
tab <- print_summary(results, ours, sprintf("%s, %d threads, %d epochs", cpu_model(), threads, epochs))
jax <- tab[tab$engine == "keras-jax", ]
if (nrow(jax) == 1) {
  cat(sprintf("\ntarget (issue 2): rustkeras s/epoch <= 0.5 x Keras-JAX s/epoch: %.3f / %.3f = %.2f -> %s\n",
              ours$epoch_s, jax$s_per_epoch, jax$epoch_ratio, if (jax$epoch_ratio <= 0.5) "met" else "not met"))
}
bench_footer(ticks0)
