# Models survive serialization: saveRDS()/readRDS(), serialize(), PSOCK workers.

serial_data <- local({
  set.seed(31)
  x <- matrix(runif(800), ncol = 4)
  list(x = x, y = to_categorical(as.integer(x[, 1] + x[, 3] > 1), 2))
})

trained_model <- function() {
  set.seed(32)
  m <- keras_model_sequential(input_shape = 4) %>%
    layer_dense(8, activation = "relu") %>%
    layer_dense(2, activation = "softmax")
  m %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
  fit(m, serial_data$x, serial_data$y, epochs = 2, batch_size = 20, verbose = 0)
  m
}

test_that("a model survives saveRDS()/readRDS(): same predictions, and training goes on", {
  m <- trained_model()
  p <- predict(m, serial_data$x, verbose = 0)
  path <- tempfile(fileext = ".rds")
  saveRDS(m, path)
  back <- readRDS(path)
  expect_s3_class(back, "rustkeras_sequential")
  expect_identical(predict(back, serial_data$x, verbose = 0), p)
  # The optimizer state (Adam's moments and step) and the compile settings came along:
  # one more epoch in order gives the same weights in both.
  fit(m, serial_data$x, serial_data$y, epochs = 1, batch_size = 20, shuffle = FALSE, verbose = 0)
  fit(back, serial_data$x, serial_data$y, epochs = 1, batch_size = 20, shuffle = FALSE, verbose = 0)
  expect_equal(get_weights(back), get_weights(m), tolerance = 1e-6)
  expect_named(evaluate(back, serial_data$x, serial_data$y, verbose = 0), c("accuracy", "loss"))
})

test_that("a functional model survives serialize(), twice over, and its layers stay usable", {
  inputs <- keras_input(shape = 4)
  outputs <- inputs %>% layer_dense(6, activation = "relu", name = "hidden") %>%
    layer_dense(1, name = "out")
  m <- keras_model(inputs, outputs)
  m %>% compile(optimizer = "rmsprop", loss = "mse")
  p <- predict(m, serial_data$x, verbose = 0)
  once <- unserialize(serialize(m, NULL))
  # Serialized again before any use: the bytes pass through as they are.
  twice <- unserialize(serialize(once, NULL))
  expect_identical(predict(twice, serial_data$x, verbose = 0), p)
  expect_identical(predict(once, serial_data$x, verbose = 0), p)
  expect_identical(vapply(once$layers, function(l) l$name, ""), c("hidden", "out"))
  expect_identical(get_weights(get_layer(once, "hidden")), get_weights(get_layer(m, "hidden")))
})

test_that("serializing a model writes its bytes then, not before", {
  m <- trained_model()
  snapshot <- rustkeras:::model_state(m)$snapshot
  # Nothing is held while nobody serializes: the snapshot is an empty vector.
  expect_length(snapshot, 0L)
  bytes <- serialize(m, NULL)
  # The .keras zip is inside the serialized model (its local file header).
  expect_gt(length(grepRaw(as.raw(c(0x50, 0x4b, 0x03, 0x04)), bytes, all = TRUE)), 0L)
})

test_that("a model serialized without its engine state says why it cannot be used", {
  m <- trained_model()
  old <- unserialize(serialize(m, NULL, version = 2))
  expect_error(predict(old, serial_data$x, verbose = 0),
               "no longer exists: it was serialized without it \\(with serialization version 2",
               class = "rustkeras_state_error")
})

test_that("models travel to and from PSOCK workers", {
  skip_on_cran()
  m <- trained_model()
  p <- predict(m, serial_data$x, verbose = 0)
  cl <- parallel::makePSOCKcluster(1)
  on.exit(parallel::stopCluster(cl))
  parallel::clusterCall(cl, function(paths) .libPaths(paths), .libPaths())
  # A model sent to a worker predicts there as here.
  there <- parallel::clusterCall(cl, function(model, x) predict(model, x, verbose = 0),
                                 m, serial_data$x)[[1]]
  expect_identical(there, p)
  # A model trained in a worker comes back and predicts here.
  back <- parallel::clusterCall(cl, function(model, x, y) {
    fit(model, x, y, epochs = 1, batch_size = 20, shuffle = FALSE, verbose = 0)
    model
  }, m, serial_data$x, serial_data$y)[[1]]
  fit(m, serial_data$x, serial_data$y, epochs = 1, batch_size = 20, shuffle = FALSE, verbose = 0)
  expect_equal(predict(back, serial_data$x, verbose = 0), predict(m, serial_data$x, verbose = 0),
               tolerance = 1e-6)
})

test_that("a layer object survives serialize(): its config, weights and flags come back", {
  dense <- layer_dense(units = 3, activation = "relu", name = "kept_dense")
  inputs <- keras_input(shape = 4)
  m <- keras_model(inputs, dense(inputs))
  dense$trainable <- FALSE
  back <- unserialize(serialize(dense, NULL))
  expect_identical(back$name, "kept_dense")
  expect_false(back$trainable)
  expect_identical(get_weights(back), get_weights(dense))
  expect_identical(get_config(back)$activation, "relu")
  # It works in a new model as the original does.
  x <- serial_data$x
  i2 <- keras_input(shape = 4)
  m2 <- keras_model(i2, back(i2))
  expect_identical(predict(m2, x, verbose = 0), predict(m, x, verbose = 0))
  # A layer taken from a model, and one never built, come back too.
  taken <- unserialize(serialize(m$layers[[1]], NULL))
  expect_identical(get_weights(taken), get_weights(dense))
  fresh <- unserialize(serialize(layer_dense(units = 2), NULL))
  i3 <- keras_input(shape = 5)
  expect_identical(dim(predict(keras_model(i3, fresh(i3)), matrix(0, 2, 5), verbose = 0)), c(2L, 2L))
})

test_that("reading a model back leaves R's random stream where it was", {
  m <- trained_model()
  path <- tempfile(fileext = ".rds")
  saveRDS(m, path)
  set.seed(5)
  expected <- runif(3)
  set.seed(5)
  back <- readRDS(path)
  p <- predict(back, serial_data$x, verbose = 0)
  expect_identical(runif(3), expected)
  set.seed(5)
  loaded <- load_model(save_model(m))
  expect_identical(runif(3), expected)
})

test_that("a functional model serializes its weights once", {
  inputs <- keras_input(shape = 300)
  m <- keras_model(inputs, inputs %>% layer_dense(300) %>% layer_dense(300))
  keras_bytes <- length(save_model(m))
  # Its graph's layer objects (each able to serialize its own weights) stay out.
  expect_lt(length(serialize(m, NULL)), 1.2 * keras_bytes)
  back <- unserialize(serialize(m, NULL))
  expect_identical(get_weights(back), get_weights(m))
  expect_length(back$inputs, 1L)
})
