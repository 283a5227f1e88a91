# The GPU scenario of test-device.R: a model trained on the GPU against the same model on
# the CPU, saved and reloaded, and the memory a removed model frees. It returns what it
# measured, so that it runs in this process on a real GPU, or in a child R process on
# the emulated GPU (RUSTKERAS_EMULATE_GPU=1 must be set before the engine first looks).
gpu_scenario <- function() {
  library(rustkeras)
  call_engine <- function(f, ...) rustkeras:::rk_call(f(...))
  options(rustkeras.device = "cpu")
  set_random_seed(1)
  x <- matrix(runif(64 * 3), 64)
  y <- diag(2)[rep(1:2, 32), ]
  model <- function() {
    keras_model_sequential(input_shape = 3) %>%
      layer_dense(8, activation = "relu") %>%
      layer_dense(2, activation = "softmax") %>%
      compile(loss = "categorical_crossentropy", optimizer = "adam", metrics = "accuracy")
  }
  m_cpu <- model()
  m_gpu <- model()
  set_weights(m_gpu, get_weights(m_cpu))
  h_cpu <- fit(m_cpu, x, y, epochs = 3, batch_size = 16, shuffle = FALSE, verbose = 0)
  config_set_device("gpu")
  device <- config_device()
  h_gpu <- fit(m_gpu, x, y, epochs = 3, batch_size = 16, shuffle = FALSE, verbose = 0)
  where <- call_engine(rustkeras:::rk_model_device, m_gpu$ptr)
  p_gpu <- predict(m_gpu, x, verbose = 0)
  e_gpu <- evaluate(m_gpu, x, y, verbose = 0)
  path <- tempfile(fileext = ".h5")
  save_model_hdf5(m_gpu, path)
  config_set_device("cpu")
  p_cpu <- predict(m_cpu, x, verbose = 0)
  e_cpu <- evaluate(m_cpu, x, y, verbose = 0)
  p_loaded <- predict(load_model_hdf5(path), x, verbose = 0)
  # And the other way: saved from the CPU, loaded and run on the GPU.
  save_model_hdf5(m_cpu, path)
  config_set_device("gpu")
  p_loaded_gpu <- predict(load_model_hdf5(path), x, verbose = 0)
  config_set_device("cpu")
  unlink(path)
  # Memory: a model with 128 MB of weights on the GPU, then removed and collected.
  config_set_device("gpu")
  invisible(gc())
  free0 <- rustkeras:::rk_gpu_memory()$free
  big <- keras_model_sequential(input_shape = 4096) %>% layer_dense(8192)
  predict(big, matrix(0, 1, 4096), verbose = 0)
  free1 <- rustkeras:::rk_gpu_memory()$free
  rm(big)
  invisible(gc())
  free2 <- rustkeras:::rk_gpu_memory()$free
  config_set_device("cpu")
  list(
    device = device, where = where, info = backend_info()$gpus$name,
    loss_cpu = h_cpu$metrics$loss, loss_gpu = h_gpu$metrics$loss,
    p_gpu = p_gpu, p_cpu = p_cpu, p_loaded = p_loaded, p_loaded_gpu = p_loaded_gpu,
    e_gpu = e_gpu, e_cpu = e_cpu,
    free0 = free0, free1 = free1, free2 = free2
  )
}

expect_gpu_scenario <- function(r) {
  expect_identical(r$device, "gpu")
  expect_identical(r$where, "gpu")
  expect_equal(r$loss_gpu, r$loss_cpu, tolerance = 1e-4)
  expect_equal(r$p_gpu, r$p_cpu, tolerance = 1e-4)
  expect_equal(r$e_gpu, r$e_cpu, tolerance = 1e-4)
  expect_equal(r$p_loaded, r$p_cpu, tolerance = 1e-4)
  expect_equal(r$p_loaded_gpu, r$p_cpu, tolerance = 1e-4)
  # 4096 x 8192 weights are 128 MiB: held while the model lives, returned after gc().
  expect_lt(r$free1, r$free0 - 100 * 2^20)
  expect_gt(r$free2, r$free0 - 16 * 2^20)
}

# The self-check's failure, in a child R process on the emulated GPU with a fault
# injected (RUSTKERAS_GPU_SELFCHECK_FAULT names the check made wrong): what backend_info()
# says, the warnings of each step, where a fit() with device "auto" ran, and the error of
# asking for the GPU.
gpu_selfcheck_fault_scenario <- function() {
  library(rustkeras)
  options(rustkeras.device = NULL)
  Sys.unsetenv("RUSTKERAS_DEVICE")
  warned <- function(expr) {
    ws <- character()
    classes <- list()
    value <- withCallingHandlers(expr, warning = function(w) {
      ws <<- c(ws, conditionMessage(w))
      classes <<- c(classes, list(class(w)))
      invokeRestart("muffleWarning")
    })
    list(value = value, messages = ws, classes = classes)
  }
  set_random_seed(1)
  x <- matrix(runif(16 * 3), 16)
  y <- diag(2)[rep(1:2, 8), ]
  m <- keras_model_sequential(input_shape = 3) %>%
    layer_dense(4, activation = "relu") %>%
    layer_dense(2, activation = "softmax") %>%
    compile(loss = "categorical_crossentropy", optimizer = "sgd")
  info <- warned(backend_info())
  fit1 <- warned(fit(m, x, y, epochs = 1, verbose = 0))
  where <- rustkeras:::rk_call(rustkeras:::rk_model_device(m$ptr))
  fit2 <- warned(fit(m, x, y, epochs = 1, verbose = 0))
  pred <- warned(predict(m, x, verbose = 0))
  err <- tryCatch(config_set_device("gpu"), error = function(e) e)
  list(
    info = info$value[c("gpu_usable", "gpu_reason", "device")],
    gpus = info$value$gpus$name,
    info_warnings = info$messages,
    fit1_warnings = fit1$messages, fit1_classes = fit1$classes,
    fit1_loss = fit1$value$metrics$loss,
    where = where,
    fit2_warnings = fit2$messages,
    predict_warnings = pred$messages,
    error = conditionMessage(err), error_class = class(err),
    option = getOption("rustkeras.device")
  )
}
