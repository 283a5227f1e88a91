# config_backend(), backend_info() and set_random_seed().

test_that("config_backend() names the Rust backend", {
  expect_identical(config_backend(), "rust")
})

test_that("backend_info() reports the engine, the CPU and what CUDA offers", {
  info <- backend_info()
  expect_s3_class(info, "rustkeras_backend_info")
  expect_true(all(c("version", "threads", "simd", "device", "gpu_usable", "gpu_reason", "gpus",
                    "driver", "cublas", "cudnn", "nvrtc") %in% names(info)))
  expect_identical(info$version, "0.1.0")
  expect_identical(info$version, rk_call(rk_engine_version()))
  expect_type(info$threads, "integer")
  expect_gte(info$threads, 1L)
  expect_true(info$simd %in% c("AVX-512", "AVX2+FMA", "SSE2", "NEON", "scalar"))
  expect_s3_class(info$gpus, "data.frame")
  expect_named(info$gpus, c("ordinal", "name", "memory_gib", "compute_capability"))
  expect_identical(info$device, config_device())
  if (info$gpu_usable) {
    expect_gte(nrow(info$gpus), 1L)
    expect_false(is.na(info$driver))
    expect_false(is.na(info$cublas))
    expect_true(is.na(info$gpu_reason))
  } else {
    # The reason is a sentence that names what is missing.
    expect_match(info$gpu_reason, "driver|device|cuBLAS|NVRTC|compute capability|CUDA")
    expect_identical(info$device, "cpu")
  }
})

test_that("options(rustkeras.threads) sizes the engine's thread pool at load time", {
  skip_on_cran()
  out <- system2(file.path(R.home("bin"), "Rscript"),
                 c("-e", shQuote("options(rustkeras.threads = 1); library(rustkeras); cat(backend_info()$threads)")),
                 stdout = TRUE, stderr = TRUE,
                 env = c("R_TESTS=", paste0("R_LIBS=", shQuote(paste(.libPaths(), collapse = .Platform$path.sep)))))
  expect_identical(tail(out, 1), "1")
  # Anything but a count means all cores, and the package still loads.
  out <- system2(file.path(R.home("bin"), "Rscript"),
                 c("-e", shQuote("options(rustkeras.threads = NA); library(rustkeras); cat(backend_info()$threads)")),
                 stdout = TRUE, stderr = TRUE,
                 env = c("R_TESTS=", paste0("R_LIBS=", shQuote(paste(.libPaths(), collapse = .Platform$path.sep)))))
  expect_identical(tail(out, 1), as.character(backend_info()$threads))
})

test_that("backend_info() prints a short report", {
  info <- backend_info()
  out <- capture.output(res <- withVisible(print(info)))
  expect_false(res$visible)
  expect_identical(res$value, info)
  expect_identical(out[1], "rustkeras engine 0.1.0 (Rust)")
  expect_match(out[2], sprintf("^  CPU:     %d threads?, %s kernels$", info$threads,
                               gsub("+", "\\+", info$simd, fixed = TRUE)))
  expect_identical(out[length(out)], sprintf("  models run on the %s", toupper(info$device)))
  expect_identical(sum(grepl("^  GPU [0-9]+:", out)), nrow(info$gpus))
  if (!info$gpu_usable) {
    expect_true(any(out == paste("  GPU not usable:", info$gpu_reason)))
  }
})

test_that("set_random_seed() seeds R and the engine", {
  set_random_seed(42)
  r1 <- runif(3)
  w1 <- get_weights(keras_model_sequential(input_shape = 5) %>% layer_dense(4))
  set_random_seed(42)
  r2 <- runif(3)
  w2 <- get_weights(keras_model_sequential(input_shape = 5) %>% layer_dense(4))
  expect_identical(r1, r2)
  expect_identical(w1, w2)
  set_random_seed(43)
  w3 <- get_weights(keras_model_sequential(input_shape = 5) %>% layer_dense(4))
  expect_false(identical(w1[[1]], w3[[1]]))
  expect_null(set_random_seed(1))
  expect_invisible(set_random_seed(1))
})

test_that("set_random_seed() rejects bad seeds", {
  expect_error(set_random_seed(-1), "`seed` must be a single non-negative number", class = "rustkeras_error")
  expect_error(set_random_seed("a"), "`seed`", class = "rustkeras_error")
  expect_error(set_random_seed(c(1, 2)), "`seed`", class = "rustkeras_error")
  expect_error(set_random_seed(NA), "`seed`", class = "rustkeras_error")
})

# A small classifier with dropout: its weights, shuffles and dropout masks all draw on the
# random stream.
dropout_classifier <- function() {
  m <- keras_model_sequential(input_shape = 4) %>%
    layer_dense(16, activation = "relu") %>%
    layer_dropout(0.3) %>%
    layer_dense(2, activation = "softmax")
  m %>% compile(optimizer = "adam", loss = "categorical_crossentropy")
  m
}

seed_data <- local({
  set.seed(2024)
  x <- matrix(runif(2000), ncol = 4)
  list(x = x, y = to_categorical(as.integer(x[, 1] + x[, 2] > 1), 2))
})

# set.seed(seed), then a model built, trained 2 epochs on `threads` threads and predicting.
seeded_run <- function(seed, threads = NULL) {
  old <- config_set_threads(threads)
  on.exit(config_set_threads(old))
  set.seed(seed)
  m <- dropout_classifier()
  fit(m, seed_data$x, seed_data$y, epochs = 2, batch_size = 128, verbose = 0)
  predict(m, seed_data$x[1:20, ], verbose = 0)
}

test_that("set.seed() alone repeats weights, shuffles and dropout", {
  a <- seeded_run(42)
  b <- seeded_run(42)
  expect_identical(a, b)
  expect_gt(max(abs(a - seeded_run(43))), 1e-3)
  # The engine's draws come from R's stream: they move it, as sample() would.
  set.seed(7)
  r1 <- runif(1)
  set.seed(7)
  invisible(keras_model_sequential(input_shape = 3) %>% layer_dense(2))
  expect_false(identical(runif(1), r1))
})

test_that("a seed gives the same shuffles and dropout masks on 1 and 2 threads", {
  one <- seeded_run(42, threads = 1)
  two <- seeded_run(42, threads = 2)
  # Batches of 128 split into 2 shards on 2 threads: the masks and the order are the
  # same, and only the summation of the gradients may round differently.
  expect_equal(one, two, tolerance = 1e-5)
})

test_that("config_set_threads() and options(rustkeras.threads) apply at the next call", {
  old <- config_set_threads(1)
  on.exit(options(rustkeras.threads = old))
  expect_identical(config_threads(), 1L)
  expect_identical(backend_info()$threads, 1L)
  # The option is read at each call, also when set after library().
  options(rustkeras.threads = 2)
  expect_identical(config_threads(), 2L)
  expect_equal(config_set_threads(NULL), 2)
  expect_null(getOption("rustkeras.threads"))
  expect_gte(config_threads(), 1L)
  expect_error(config_set_threads(-1), "`threads` must be NULL or a whole number", class = "rustkeras_argument_error")
  expect_error(config_set_threads(1.5), "not 1.5", class = "rustkeras_argument_error")
  expect_error(config_set_threads("two"), "`threads`", class = "rustkeras_argument_error")
})

test_that("a forked child builds, trains and predicts; the parent is unaffected", {
  skip_on_os("windows")
  # The parent has started the engine's threads before forking, as a session would.
  expected <- seeded_run(5)
  job <- parallel::mcparallel(seeded_run(5))
  res <- parallel::mccollect(job, wait = FALSE, timeout = 60)
  if (is.null(res)) {
    tools::pskill(job$pid, tools::SIGKILL)
    parallel::mccollect(job)
    fail("the forked child did not finish within 60 s (hung on the parent's threads?)")
  }
  expect_equal(res[[1]], expected, tolerance = 1e-6)
  # mclapply: two children at once, each with a model of its own.
  out <- parallel::mclapply(1:2, function(i) seeded_run(5), mc.cores = 2)
  expect_equal(out[[1]], expected, tolerance = 1e-6)
  expect_equal(out[[2]], expected, tolerance = 1e-6)
  # And the parent still trains.
  expect_identical(seeded_run(5), expected)
})

test_that("dropout called with training = TRUE draws new masks at each predict()", {
  inputs <- keras_input(shape = 50)
  dropout <- layer_dropout(rate = 0.5)
  outputs <- dropout(inputs %>% layer_dense(50), training = TRUE)
  m <- keras_model(inputs, outputs)
  x <- matrix(1, 4, 50)
  set.seed(1)
  a <- predict(m, x, verbose = 0)
  b <- predict(m, x, verbose = 0)
  expect_false(identical(a, b))
  # Each sample has a mask of its own, also across batches.
  expect_false(identical(a[1, ], a[2, ]))
  c2 <- predict(m, x, batch_size = 2, verbose = 0)
  expect_false(identical(c2[1, ], c2[3, ]))
  # And a seed repeats them.
  set.seed(1)
  expect_identical(predict(m, x, verbose = 0), a)
})
