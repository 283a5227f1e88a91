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
  set_random_seed(1)
  x <- matrix(runif(64 * 3), 64)
  y <- diag(2)[rep(1:2, 32), ]
  m_cpu <- small_model() %>% compile(loss = "categorical_crossentropy", optimizer = "adam")
  m_gpu <- small_model() %>% compile(loss = "categorical_crossentropy", optimizer = "adam")
  set_weights(m_gpu, get_weights(m_cpu))
  fit(m_cpu, x, y, epochs = 3, batch_size = 16, shuffle = FALSE, verbose = 0)
  withr::with_options(list(rustkeras.device = "gpu"), {
    fit(m_gpu, x, y, epochs = 3, batch_size = 16, shuffle = FALSE, verbose = 0)
    expect_identical(rk_call(rk_model_device(m_gpu$ptr)), "gpu")
    expect_equal(predict(m_gpu, x, verbose = 0), predict(m_cpu, x, verbose = 0),
                 tolerance = 1e-4)
    path <- withr::local_tempfile(fileext = ".h5")
    save_model_hdf5(m_gpu, path)
  })
  expect_equal(predict(load_model_hdf5(path), x, verbose = 0), predict(m_cpu, x, verbose = 0),
               tolerance = 1e-4)
  # Removing a model and collecting returns its GPU memory.
  withr::with_options(list(rustkeras.device = "gpu"), {
    gc()
    free0 <- rk_gpu_memory()$free
    big <- keras_model_sequential(input_shape = 4096) %>% layer_dense(8192)
    predict(big, matrix(0, 1, 4096), verbose = 0)
    expect_lt(rk_gpu_memory()$free, free0 - 100 * 2^20)
    rm(big)
    gc()
    expect_gt(rk_gpu_memory()$free, free0 - 16 * 2^20)
  })
})
