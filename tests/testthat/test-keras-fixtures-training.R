# The `training` argument of a call (keras3's transfer-learning guide:
# `x <- base_model(inputs, training = FALSE)`) against Keras itself:
# fixtures/keras-training-arg/make_fixtures.py (Keras 3.16.0.dev, JAX) saved the models
# before and after one fit() step, with the loss and weights. See that folder's README.

fixture_dir <- test_path("fixtures", "keras-training-arg")

read_training_fixture <- function(name) {
  jsonlite::fromJSON(file.path(fixture_dir, name), simplifyVector = FALSE)
}

inbound_kwargs <- function(model, layer_name) {
  layers <- get_config(model)$layers
  entry <- Filter(function(l) identical(l$name, layer_name), layers)[[1]]
  entry$inbound_nodes[[1]]$kwargs
}

test_that("inner(x, training = FALSE) keeps batch normalization in inference mode in fit(), as Keras", {
  skip_if_not(dir.exists(fixture_dir), "tests/testthat/fixtures/keras-training-arg is missing")
  skip_if_not_installed("jsonlite")
  fx <- read_training_fixture("fine_tune.json")
  x <- as_keras_array(fx$x)
  y <- as_keras_array(fx$y)
  before <- lapply(fx$weights_before, as_keras_array)
  after <- lapply(fx$weights_after, as_keras_array)
  paths <- vapply(fx$weights_after, function(w) w$path, character(1))
  moving <- grep("moving_", paths)
  expect_equal(paths[moving], c("inner/inner_bn/moving_mean", "inner/inner_bn/moving_variance"))

  model <- load_model(file.path(fixture_dir, "fine_tune_before.keras"))
  expect_equal(get_weights(model), before, tolerance = 1e-7, ignore_attr = TRUE)
  # The loaded config keeps the call's argument, and writes it back.
  expect_identical(inbound_kwargs(model, "inner"), list(training = FALSE))
  expect_identical(fx$inner_node_kwargs, list(training = FALSE))
  path <- withr::local_tempfile(fileext = ".keras")
  save_model(model, path)
  expect_identical(inbound_kwargs(load_model(path), "inner"), list(training = FALSE))

  # Keras 3.15's .keras files keep no optimizer: compile as the script did.
  model %>% compile(optimizer = optimizer_sgd(learning_rate = 0.1), loss = "mean_squared_error")
  expect_equal(evaluate(model, x, y, batch_size = 8, verbose = 0)[["loss"]], fx$evaluate_before,
               tolerance = 1e-5)
  history <- fit(model, x, y, batch_size = 8, epochs = 1, shuffle = FALSE, verbose = 0)
  expect_equal(history$metrics$loss, fx$loss, tolerance = 1e-5)
  # Before this was honoured, the step ran the inner model in training mode.
  expect_gt(abs(fx$loss - fx$loss_if_training_ignored), 0.1)
  got <- get_weights(model)
  expect_equal(got, after, tolerance = 1e-5, ignore_attr = TRUE)
  # Unchanged up to float32 rounding (a step in training mode moves them by 1e-3 or more).
  expect_equal(got[moving], before[moving], tolerance = 1e-7, ignore_attr = TRUE)
  expect_equal(predict(model, x, batch_size = 8, verbose = 0), as_keras_array(fx$predictions_after),
               tolerance = 1e-5, ignore_attr = TRUE)

  # Keras's file after the step holds the same weights.
  keras_after <- load_model(file.path(fixture_dir, "fine_tune_after.keras"))
  expect_equal(get_weights(keras_after), after, tolerance = 1e-7, ignore_attr = TRUE)
})

test_that("the same model built in R with training = FALSE trains as Keras's", {
  skip_if_not(dir.exists(fixture_dir), "tests/testthat/fixtures/keras-training-arg is missing")
  skip_if_not_installed("jsonlite")
  fx <- read_training_fixture("fine_tune.json")
  env <- new.env(parent = asNamespace("rustkeras"))
  eval(parse(text = fx$r_code), envir = env)
  model <- env$model
  expect_identical(inbound_kwargs(model, "inner"), list(training = FALSE))
  set_weights(model, lapply(fx$weights_before, as_keras_array))
  model %>% compile(optimizer = optimizer_sgd(learning_rate = 0.1), loss = "mean_squared_error")
  history <- fit(model, as_keras_array(fx$x), as_keras_array(fx$y), batch_size = 8, epochs = 1,
                 shuffle = FALSE, verbose = 0)
  expect_equal(history$metrics$loss, fx$loss, tolerance = 1e-5)
  expect_equal(get_weights(model), lapply(fx$weights_after, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
})

test_that("layer(x, training = TRUE) uses each batch's statistics in predict(), as Keras", {
  skip_if_not(dir.exists(fixture_dir), "tests/testthat/fixtures/keras-training-arg is missing")
  skip_if_not_installed("jsonlite")
  fx <- read_training_fixture("forced.json")
  x <- as_keras_array(fx$x)
  model <- load_model(file.path(fixture_dir, "forced.keras"))
  expect_identical(inbound_kwargs(model, "forced_bn"), list(training = TRUE))
  weights <- lapply(fx$weights, as_keras_array)
  expect_equal(get_weights(model), weights, tolerance = 1e-7, ignore_attr = TRUE)
  expect_equal(predict(model, x, batch_size = 3, verbose = 0), as_keras_array(fx$predictions),
               tolerance = 1e-5, ignore_attr = TRUE)
  # Keras's predict() folds those statistics into the moving ones; so does ours.
  expect_true(fx$predict_moved_moving_statistics)
  expect_false(isTRUE(all.equal(get_weights(model)[3:4], weights[3:4])))

  # Built in R, without the argument: inference mode.
  env <- new.env(parent = asNamespace("rustkeras"))
  eval(parse(text = sub("(inputs, training = TRUE)", "(inputs)", fx$r_code, fixed = TRUE)),
       envir = env)
  set_weights(env$model, weights)
  expect_equal(predict(env$model, x, batch_size = 3, verbose = 0),
               as_keras_array(fx$predictions_without_training_arg), tolerance = 1e-5,
               ignore_attr = TRUE)
})
