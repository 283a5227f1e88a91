# The workshop CNN (issue 3) on Fashion-MNIST: seconds per epoch, predict() throughput, test
# accuracy and peak memory of rustkeras, next to Keras 3 on JAX and plain PyTorch measured
# in the same run when the peer venv exists (bench/setup-peers.sh creates it).
#
#   Rscript bench/cnn.R [epochs=2] [--quick] [--train-size N]
#
# epochs: the first is the warm-up (its own fit() call), epochs 2..E are timed (one fit()
# call); at least 2. --quick trains on the first 12000 training images (9600 + 2400 for
# validation) instead of 60000, for everyone; --train-size N on the first N.
#
# Environment: RUSTKERAS_PEERS_VENV (default /tmp/rustkeras-peers), BENCH_THREADS (default
# 2), BENCH_PEERS=0 to skip the peers, BENCH_PEERS_ONLY (default "keras-jax,torch"; add
# keras-torch to include Keras 3 on torch). See bench/README.md.

args <- commandArgs(trailingOnly = TRUE)
opt_value <- function(flag) {
  i <- match(flag, args)
  if (is.na(i)) return(NULL)
  v <- args[i + 1L]
  args <<- args[-c(i, i + 1L)]
  v
}
quick <- "--quick" %in% args
args <- setdiff(args, "--quick")
n_train <- opt_value("--train-size")
n_train <- if (!is.null(n_train)) as.integer(n_train) else if (quick) 12000L else 60000L
epochs <- if (length(args) >= 1) as.integer(args[[1]]) else 2L
stopifnot(!is.na(epochs), epochs >= 2L, !is.na(n_train), n_train >= 10L, n_train <= 60000L)
threads <- as.integer(Sys.getenv("BENCH_THREADS", "2"))
venv <- Sys.getenv("RUSTKERAS_PEERS_VENV", "/tmp/rustkeras-peers")
run_peers <- Sys.getenv("BENCH_PEERS", "1") != "0"
peers_only <- Sys.getenv("BENCH_PEERS_ONLY", "keras-jax,torch")
script_dir <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f[[1]])) else "bench"
})
source(file.path(script_dir, "bench-helpers.R"))

options(width = 200)
options(rustkeras.threads = threads) # read when the package loads (rayon's pool size)
suppressPackageStartupMessages(library(rustkeras))

n_fit <- floor(n_train * 0.8)
ticks0 <- bench_header(sprintf(paste(
  "model: workshop CNN (conv 32 3x3 relu, maxpool 2, conv 64 3x3 relu, maxpool 2, flatten, dense 64 relu,",
  "dense 10 softmax; adam), batch 128, validation_split 0.2 (%d + %d), %d epochs, %d threads"),
  n_fit, n_train - n_fit, epochs, threads))

# ---- rustkeras -------------------------------------------------------------------------
cnn_layers <- c("layer_conv_2d", "layer_max_pooling_2d", "layer_flatten")
missing_layers <- cnn_layers[!vapply(cnn_layers, exists, logical(1), where = asNamespace("rustkeras"), inherits = FALSE)]
ours <- NULL
if (length(missing_layers)) {
  cat(sprintf("rustkeras %s has no %s yet: the peers only\n", packageVersion("rustkeras"),
              paste0(missing_layers, "()", collapse = ", ")))
} else {
  c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()
  x_train <- array_reshape(x_train[seq_len(n_train), , , drop = FALSE], c(n_train, 28, 28, 1)) / 255
  x_test <- array_reshape(x_test, c(nrow(x_test), 28, 28, 1)) / 255
  y_train <- to_categorical(y_train[seq_len(n_train)], 10)
  y_test <- to_categorical(y_test, 10)

  set_random_seed(1)
  model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
    layer_conv_2d(filters = 32, kernel_size = c(3, 3), activation = "relu") %>%
    layer_max_pooling_2d(pool_size = c(2, 2)) %>%
    layer_conv_2d(filters = 64, kernel_size = c(3, 3), activation = "relu") %>%
    layer_max_pooling_2d(pool_size = c(2, 2)) %>%
    layer_flatten() %>%
    layer_dense(units = 64, activation = "relu") %>%
    layer_dense(units = 10, activation = "softmax")
  model %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")

  # The protocol of bench/mlp.R and bench/peers.py: a first fit() call of 1 epoch (warm-up),
  # then one fit() call for epochs 2..E whose wall time / (E-1) is the s/epoch figure.
  epoch1 <- elapsed(model %>% fit(x_train, y_train, epochs = 1, batch_size = 128, validation_split = 0.2, verbose = 0))
  rest <- elapsed(model %>% fit(x_train, y_train, epochs = epochs, initial_epoch = 2, batch_size = 128,
                                validation_split = 0.2, verbose = 0)) / (epochs - 1)
  test_acc <- unname((model %>% evaluate(x_test, y_test, batch_size = 128, verbose = 0))[["accuracy"]])
  invisible(predict(model, x_test[1:256, , , , drop = FALSE], batch_size = 128, verbose = 0))
  pt <- vapply(1:3, function(i) elapsed(predict(model, x_test, batch_size = 128, verbose = 0)), 0)
  ours <- list(peer = "rustkeras", version = paste("rustkeras", packageVersion("rustkeras")), epoch1_s = epoch1,
               epoch_s = rest, test_acc = test_acc, predict_img_s = dim(x_test)[1] / median(pt),
               peak_rss_mb = vmhwm_mb())
  cat(sprintf("rustkeras: first epoch %.3f s, then %.3f s/epoch; predict %.0f images/s; test accuracy %.4f; peak RSS %.0f MB\n",
              ours$epoch1_s, ours$epoch_s, ours$predict_img_s, ours$test_acc, ours$peak_rss_mb))
}

# ---- peers -----------------------------------------------------------------------------
results <- if (is.null(ours)) list() else list(ours)
if (run_peers) {
  results <- c(results, peer_results(venv, script_dir, c(
    "--model", "cnn", "--epochs", epochs, "--threads", threads, "--only", peers_only,
    if (n_train < 60000L) c("--train-size", n_train)
  )))
}

# ---- table -----------------------------------------------------------------------------
tab <- print_summary(results, ours, sprintf("%s, %d threads, %d epochs, %d training images",
                                            cpu_model(), threads, epochs, n_train))
if (!is.null(ours) && !is.null(tab)) {
  torch <- tab[tab$engine == "torch", ]
  jax <- tab[tab$engine == "keras-jax", ]
  if (nrow(torch) == 1) {
    cat(sprintf("\ntarget (issue 3): rustkeras s/epoch <= 0.5 x PyTorch s/epoch: %.3f / %.3f = %.2f -> %s\n",
                ours$epoch_s, torch$s_per_epoch, torch$epoch_ratio, if (torch$epoch_ratio <= 0.5) "met" else "not met"))
  }
  if (nrow(jax) == 1) {
    cat(sprintf("target (issue 3): rustkeras predict img/s >= 3 x Keras-JAX: %.0f / %.0f = %.2f -> %s\n",
                ours$predict_img_s, jax$predict_img_s, jax$predict_ratio, if (jax$predict_ratio >= 3) "met" else "not met"))
  }
}
bench_footer(ticks0)
