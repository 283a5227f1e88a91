# Memory: the engine's buffer pool stays bounded and empties itself when idle, and a
# model too large for the machine is an error, not an abort of R.

pool_held <- function() backend_info()$pool_held_mb

memory_model <- function() {
  m <- keras_model_sequential(input_shape = 784) %>%
    layer_dense(32, activation = "relu") %>%
    layer_dense(10, activation = "softmax")
  m %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
  m
}

memory_data <- local({
  set.seed(41)
  list(x = matrix(runif(2000 * 784), 2000, 784),
       y = to_categorical(sample(0:9, 2000, replace = TRUE), 10))
})

test_that("repeated fit() and evaluate() on a matrix reuse one converted copy", {
  m <- memory_model()
  for (i in 1:3) evaluate(m, memory_data$x, memory_data$y, verbose = 0)
  fit(m, memory_data$x, memory_data$y, epochs = 1, verbose = 0)
  warm <- pool_held()
  for (i in 1:20) {
    evaluate(m, memory_data$x, memory_data$y, verbose = 0)
    fit(m, memory_data$x, memory_data$y, epochs = 1, verbose = 0)
  }
  # Each call converts the 2000 x 784 matrix (6.3 MB): before, each left its copy in the
  # pool, 40 copies here.
  expect_lt(pool_held() - warm, 2)
})

test_that("the pool empties itself once no model has run for two seconds", {
  m <- memory_model()
  predict(m, memory_data$x, verbose = 0)
  expect_gt(pool_held(), 0)
  # The engine's idle check runs twice a second; a loaded machine may be slower.
  for (i in 1:40) {
    if (pool_held() == 0) break
    Sys.sleep(0.25)
  }
  expect_identical(pool_held(), 0)
  # And the next call fills it again.
  predict(m, memory_data$x, verbose = 0)
  expect_gt(pool_held(), 0)
})

test_that("options(rustkeras.pool_mb) caps the pool at the next call", {
  old <- options(rustkeras.pool_mb = 1)
  on.exit(options(old))
  m <- memory_model()
  evaluate(m, memory_data$x, memory_data$y, verbose = 0)
  expect_lte(pool_held(), 1)
  expect_equal(backend_info()$pool_mb, 1)
  options(rustkeras.pool_mb = NULL)
  expect_gte(backend_info()$pool_mb, 256)
})

test_that("weights of models R collects go back to the system, not to the pool", {
  for (i in 1:40) {
    if (pool_held() == 0) break
    Sys.sleep(0.25)
  }
  expect_identical(pool_held(), 0)
  for (i in 1:50) memory_model()
  invisible(gc())
  expect_identical(pool_held(), 0)
})

test_that("a model too large for memory is a clear error and R goes on", {
  # 1e6 inputs x 1e5 units: a 400 GB kernel.
  err <- expect_error(
    keras_model_sequential(input_shape = 1e6) %>% layer_dense(1e5, name = "huge"),
    class = "rustkeras_memory_error"
  )
  expect_match(conditionMessage(err),
               "layer 'huge': its kernel of shape \\(1000000, 100000\\) needs 400.0 GB of memory, but only [0-9.]+ [kMG]B is available")
  expect_no_error(memory_model())
})

test_that("a batch whose activations do not fit in memory is refused before it runs", {
  # 1e6 activations per sample: 20000 samples in one batch need 80 GB.
  m <- keras_model_sequential(input_shape = 10) %>% layer_dense(1e6, name = "wide")
  x <- matrix(0, 20000, 10)
  err <- expect_error(predict(m, x, batch_size = 20000, verbose = 0),
                      class = "rustkeras_memory_error")
  expect_match(conditionMessage(err),
               "^predict\\(\\) with batch_size = 20000 \\(1000000 activation values per sample, 1 batch at once; a smaller batch_size needs less\\) needs 80.0 GB of memory, but only [0-9.]+ [kMG]B is available$")
  # A small batch runs.
  expect_identical(dim(predict(m, x[1:2, ], verbose = 0)), c(2L, 1000000L))
})
