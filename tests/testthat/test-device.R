# config_set_device(), config_device(), the option and the environment variable, and
# where fit/evaluate/predict run. Most machines that run these tests have no GPU: there
# the GPU requests must fail with the reason, and the CPU must be used everywhere else.

small_model <- function() {
  keras_model_sequential(input_shape = 3) %>%
    layer_dense(4, activation = "relu") %>%
    layer_dense(2, activation = "softmax")
}

test_that("config_set_device('cpu') is the device models then use", {
  withr::local_options(rustkeras.device = NULL)
  old <- config_set_device("cpu")
  expect_null(old)
  expect_identical(getOption("rustkeras.device"), "cpu")
  expect_identical(config_device(), "cpu")
  m <- small_model()
  predict(m, matrix(runif(6), 2), verbose = 0)
  expect_identical(rk_call(rk_model_device(m$ptr)), "cpu")
  expect_identical(config_set_device("auto"), "cpu")
})

test_that("the option wins over the environment variable, which wins over auto", {
  withr::local_options(rustkeras.device = NULL)
  withr::local_envvar(RUSTKERAS_DEVICE = "CPU")
  expect_identical(config_device(), "cpu")
  withr::local_envvar(RUSTKERAS_DEVICE = "")
  expect_identical(config_device(), if (rk_gpu_usable()) "gpu" else "cpu")
  withr::local_envvar(RUSTKERAS_DEVICE = "banana")
  expect_error(config_device(), 'RUSTKERAS_DEVICE must be "gpu", "cpu" or "auto", not "banana"',
               class = "rustkeras_argument_error")
  withr::local_options(rustkeras.device = "cpu")
  expect_identical(config_device(), "cpu")
})

test_that("auto is the GPU exactly when one is usable", {
  withr::local_options(rustkeras.device = "auto")
  expect_identical(config_device(), if (rk_gpu_usable()) "gpu" else "cpu")
})

test_that("bad device names are argument errors", {
  expect_error(config_set_device("tpu"), '`device` must be "gpu", "cpu" or "auto", not "tpu"',
               class = "rustkeras_argument_error")
  expect_error(config_set_device(NA), "`device` must be", class = "rustkeras_argument_error")
  expect_error(config_set_device(1), "`device` must be", class = "rustkeras_argument_error")
  expect_error(rk_call(rk_model_set_device(small_model()$ptr, "tpu", FALSE)),
               '`device` must be "cpu" or "gpu", not "tpu"')
})

test_that("without a usable GPU, asking for one says why and changes nothing", {
  skip_if(rk_gpu_usable(), "this machine has a usable GPU")
  withr::local_options(rustkeras.device = "cpu")
  reason <- backend_info()$gpu_reason
  err <- expect_error(config_set_device("gpu"), class = "rustkeras_argument_error")
  expect_match(conditionMessage(err), 'no usable GPU: ', fixed = TRUE)
  expect_match(conditionMessage(err), reason, fixed = TRUE)
  expect_identical(getOption("rustkeras.device"), "cpu")
  # A model asked onto the GPU by the option keeps working on the CPU after the error.
  m <- small_model() %>% compile(loss = "categorical_crossentropy", optimizer = "sgd")
  x <- matrix(runif(12), 4)
  before <- predict(m, x, verbose = 0)
  withr::with_options(list(rustkeras.device = "gpu"), {
    expect_error(predict(m, x, verbose = 0), "the GPU cannot be used: ")
    expect_error(fit(m, x, diag(2)[c(1, 2, 1, 2), ], epochs = 1, verbose = 0),
                 "the GPU cannot be used: ")
  })
  expect_identical(rk_call(rk_model_device(m$ptr)), "cpu")
  expect_identical(predict(m, x, verbose = 0), before)
})

test_that("on a GPU, a model trains there, matches the CPU, saves and frees its memory", {
  skip_if_not(rk_gpu_usable(), "no usable GPU on this machine")
  withr::local_options(rustkeras.device = "cpu")
  expect_gpu_scenario(gpu_scenario())
})

test_that("on the emulated GPU, the same scenario holds (R to the GPU arms, no GPU needed)", {
  skip_on_cran()
  out <- withr::local_tempfile(fileext = ".rds")
  code <- sprintf("source('%s'); saveRDS(gpu_scenario(), '%s')",
                  normalizePath(test_path("helper-gpu.R")), out)
  log <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                 stdout = TRUE, stderr = TRUE,
                 # R CMD check's R_TESTS would make the child source a startup file.
                 env = c("RUSTKERAS_EMULATE_GPU=1", "R_TESTS=",
                         paste0("R_LIBS=", shQuote(paste(.libPaths(),
                                                         collapse = .Platform$path.sep)))))
  expect_true(file.exists(out), info = paste(log, collapse = "\n"))
  r <- readRDS(out)
  expect_identical(r$info, "emulated GPU (host memory)")
  expect_gpu_scenario(r)
})

test_that("a GPU that fails its self-check is not used: auto runs on the CPU, warning once", {
  skip_on_cran()
  out <- withr::local_tempfile(fileext = ".rds")
  code <- sprintf("source('%s'); saveRDS(gpu_selfcheck_fault_scenario(), '%s')",
                  normalizePath(test_path("helper-gpu.R")), out)
  # The emulated GPU passes its self-check; the test hook makes softmax's result wrong
  # by 0.5 in its first value, as a broken kernel would.
  log <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                 stdout = TRUE, stderr = TRUE,
                 env = c("RUSTKERAS_EMULATE_GPU=1", "RUSTKERAS_GPU_SELFCHECK_FAULT=softmax",
                         "R_TESTS=",
                         paste0("R_LIBS=", shQuote(paste(.libPaths(),
                                                         collapse = .Platform$path.sep)))))
  expect_true(file.exists(out), info = paste(log, collapse = "\n"))
  r <- readRDS(out)
  reason <- "the GPU failed its self-check: softmax differs from the CPU by 5.000e-1"
  # backend_info() lists the GPU, says it is unusable and why, and does not warn.
  expect_identical(r$gpus, "emulated GPU (host memory)")
  expect_false(r$info$gpu_usable)
  expect_match(r$info$gpu_reason, reason, fixed = TRUE)
  expect_identical(r$info$device, "cpu")
  expect_length(r$info_warnings, 0)
  # The first fit() with device "auto" runs on the CPU and warns once, with the reason.
  expect_length(r$fit1_warnings, 1)
  expect_match(r$fit1_warnings, "The GPU failed its self-check: softmax differs", fixed = TRUE)
  expect_match(r$fit1_warnings, "Models run on the CPU; see backend_info().", fixed = TRUE)
  expect_true("rustkeras_gpu_warning" %in% r$fit1_classes[[1]])
  expect_true(all(is.finite(r$fit1_loss)))
  expect_identical(r$where, "cpu")
  # Later calls do not warn again.
  expect_length(r$fit2_warnings, 0)
  expect_length(r$predict_warnings, 0)
  # Asking for the GPU is an error that names the reason, and changes nothing.
  expect_true("rustkeras_argument_error" %in% r$error_class)
  expect_match(r$error, paste0("no usable GPU: ", reason), fixed = TRUE)
  expect_null(r$option)
})
