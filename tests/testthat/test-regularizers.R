# Weight regularizers: their penalties in the loss (values by hand and against Keras 3),
# their gradients through one training step, frozen weights, files and bad input.

fixture <- function() {
  jsonlite::fromJSON(test_path("fixtures", "keras-regularizers", "regularized.json"),
                     simplifyVector = FALSE)
}

regularized_model <- function() {
  keras_model_sequential(input_shape = 4, name = "regularized") %>%
    layer_dense(3, activation = "relu", kernel_regularizer = regularizer_l1_l2(0.01, 0.02),
                bias_regularizer = regularizer_l2(0.05), name = "d1") %>%
    layer_batch_normalization(gamma_regularizer = regularizer_l1(0.1), name = "bn") %>%
    layer_dense(2, kernel_regularizer = "l2", name = "d2")
}

test_that("the penalties join the loss as in Keras, and one step matches Keras", {
  fx <- fixture()
  model <- regularized_model()
  set_weights(model, lapply(fx$weights, as_keras_array))
  model %>% compile(optimizer = optimizer_sgd(0.1), loss = "mean_squared_error")
  x <- as_keras_array(fx$x)
  y <- as_keras_array(fx$y)
  w <- get_weights(model)
  by_hand <- 0.01 * sum(abs(w[[1]])) + 0.02 * sum(w[[1]]^2) + 0.05 * sum(w[[2]]^2) +
    0.1 * sum(abs(w[[3]])) + 0.01 * sum(w[[7]]^2)
  expect_equal(by_hand, fx$penalty, tolerance = 1e-6)
  pred <- predict(model, x, verbose = 0)
  expect_equal(mean((pred - y)^2), fx$mse, tolerance = 1e-5)
  loss <- evaluate(model, x, y, batch_size = 6, verbose = 0)[["loss"]]
  expect_equal(loss, fx$evaluate_loss, tolerance = 1e-5)
  history <- fit(model, x, y, batch_size = 6, epochs = 1, shuffle = FALSE, verbose = 0)
  expect_equal(history$metrics$loss, fx$train_step_loss, tolerance = 1e-5)
  expect_equal(get_weights(model), lapply(fx$weights_after, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
})

test_that("frozen weights add no penalty, and training shrinks regularized weights", {
  set_random_seed(4)
  x <- matrix(rnorm(64 * 5), 64)
  y <- matrix(0, 64, 1)
  make <- function(reg) {
    keras_model_sequential(input_shape = 5) %>%
      layer_dense(1, kernel_initializer = "ones", kernel_regularizer = reg, name = "d")
  }
  plain <- make(NULL)
  strong <- make(regularizer_l2(1))
  for (m in list(plain, strong)) m %>% compile(optimizer = optimizer_sgd(0.01), loss = "mse")
  base <- evaluate(plain, x, y, verbose = 0)[["loss"]]
  # kernel of ones: the penalty is 1 * 5.
  expect_equal(evaluate(strong, x, y, verbose = 0)[["loss"]], base + 5, tolerance = 1e-5)
  freeze_weights(strong)
  strong %>% compile(optimizer = optimizer_sgd(0.01), loss = "mse")
  expect_equal(evaluate(strong, x, y, verbose = 0)[["loss"]], base, tolerance = 1e-5)
  unfreeze_weights(strong)
  strong %>% compile(optimizer = optimizer_sgd(0.01), loss = "mse")
  fit(strong, x, y, epochs = 3, batch_size = 16, verbose = 0)
  fit(plain, x, y, epochs = 3, batch_size = 16, verbose = 0)
  expect_lt(sum(get_weights(strong)[[1]]^2), sum(get_weights(plain)[[1]]^2))
})

test_that("regularizers survive Keras's files and configs, both ways", {
  fx <- fixture()
  # Keras's own file: the loaded model's loss includes Keras's penalties.
  keras_model <- load_model(test_path("fixtures", "keras-regularizers", "regularized.keras"))
  x <- as_keras_array(fx$x)
  y <- as_keras_array(fx$y)
  expect_equal(evaluate(keras_model, x, y, batch_size = 6, verbose = 0)[["loss"]],
               fx$evaluate_loss, tolerance = 1e-5)
  # Ours: the config has Keras's entries, and a round trip keeps them.
  model <- regularized_model()
  config <- get_config(model)
  d1 <- config$layers[[2]]$config
  expect_equal(d1$kernel_regularizer$class_name, "L1L2")
  expect_equal(d1$kernel_regularizer$config, fx$regularizer_configs$d1$kernel_regularizer$config,
               tolerance = 1e-7)
  expect_equal(config$layers[[3]]$config$gamma_regularizer$config, list(l1 = 0.1))
  expect_equal(config$layers[[4]]$config$kernel_regularizer$config, list(l2 = 0.01))
  set_weights(model, lapply(fx$weights, as_keras_array))
  model %>% compile(optimizer = "sgd", loss = "mean_squared_error")
  want <- evaluate(model, x, y, batch_size = 6, verbose = 0)[["loss"]]
  for (ext in c(".keras", ".h5")) {
    path <- withr::local_tempfile(fileext = ext)
    if (ext == ".h5") save_model_hdf5(model, path) else save_model(model, path)
    again <- if (ext == ".h5") load_model_hdf5(path) else load_model(path)
    expect_equal(evaluate(again, x, y, batch_size = 6, verbose = 0)[["loss"]], want, info = ext)
  }
  expect_equal(get_config(from_config(config))$layers[[2]]$config$bias_regularizer$config,
               list(l2 = 0.05))
})

test_that("bad regularizers get clear errors", {
  expect_error(regularizer_l2(-1), "`l2` must be a number >= 0", class = "rustkeras_error")
  expect_error(regularizer_l1("a"), "`l1` must be a number >= 0", class = "rustkeras_error")
  expect_error(layer_dense(units = 2, kernel_regularizer = 0.01),
               "`kernel_regularizer` must be a regularizer", class = "rustkeras_error")
  expect_error(layer_dense(units = 2, kernel_regularizer = "l1_l2"),
               "must be a regularizer", class = "rustkeras_error")
  expect_error(layer_dense(units = 2, activity_regularizer = regularizer_l2()),
               "`activity_regularizer` is not supported yet", class = "rustkeras_error")
  expect_output(print(regularizer_l1_l2(0.1, 0.2)), "L1L2\\(l1 = 0.1, l2 = 0.2\\)")
})
