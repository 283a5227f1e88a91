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
