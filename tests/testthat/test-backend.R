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
