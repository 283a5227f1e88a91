# keras_model_sequential(): construction, in-place composition, names, shapes, and a
# model whose engine object is gone.

test_that("keras_model_sequential() makes an S3 model over one pointer", {
  model <- keras_model_sequential(input_shape = c(784), name = "mlp")
  expect_s3_class(model, c("rustkeras_sequential", "rustkeras_model"), exact = TRUE)
  # A function, so that `model(x)` calls it on a symbolic tensor as in keras3.
  expect_true(is.function(model))
  expect_type(model$ptr, "externalptr")
  info <- model_info(model)
  expect_identical(info$name, "mlp")
  expect_identical(info$input_shape, 784L)
  expect_true(info$built)
  expect_false(info$compiled)
  expect_length(info$layer_names, 0L)
})

test_that("the workshop MLP has 235,146 parameters: 200,960 / 32,896 / 1,290", {
  model <- keras_model_sequential(input_shape = c(784))
  model %>%
    layer_dense(units = 256, activation = "relu") %>%
    layer_dropout(rate = 0.4) %>%
    layer_dense(units = 128, activation = "relu") %>%
    layer_dropout(rate = 0.3) %>%
    layer_dense(units = 10, activation = "softmax")
  info <- model_info(model)
  expect_equal(info$params, c(200960, 0, 32896, 0, 1290))
  expect_equal(sum(info$params), 235146)
  expect_equal(sum(info$trainable_params), 235146)
  expect_equal(info$layer_classes, c("Dense", "Dropout", "Dense", "Dropout", "Dense"))
  expect_equal(info$output_shapes, list(256L, 256L, 128L, 128L, 10L))
  expect_equal(dim(predict(model, matrix(0.5, 7, 784), verbose = 0)), c(7L, 10L))

  # auto names: dense, dense_k, dense_(k+1) ... counted per session
  names <- info$layer_names
  index <- function(name, prefix) {
    as.integer(ifelse(name == prefix, "0", sub(paste0("^", prefix, "_"), "", name)))
  }
  expect_match(names[c(1, 3, 5)], "^dense(_[0-9]+)?$")
  expect_match(names[c(2, 4)], "^dropout(_[0-9]+)?$")
  expect_equal(diff(index(names[c(1, 3, 5)], "dense")), c(1L, 1L))
  expect_equal(diff(index(names[c(2, 4)], "dropout")), 1L)
})

test_that("a model without input_shape is built by its first data", {
  model <- keras_model_sequential() %>% layer_dense(units = 3) %>% layer_dense(units = 2)
  info <- model_info(model)
  expect_false(info$built)
  expect_equal(info$params, c(0, 0))
  expect_length(get_weights(model), 0L)
  p <- predict(model, matrix(1, 4, 6), verbose = 0)
  expect_equal(dim(p), c(4L, 2L))
  info <- model_info(model)
  expect_true(info$built)
  expect_identical(info$input_shape, 6L)
  expect_equal(info$params, c(21, 8))
  expect_equal(lapply(get_weights(model), dim), list(c(6L, 3L), 3L, c(3L, 2L), 2L))
  # and from then on the width is fixed
  expect_error(predict(model, matrix(1, 4, 5), verbose = 0), "expects 6 features, got 5",
               class = "rustkeras_error")
})

test_that("the engine reports a wrong input width with the layer's name", {
  model <- keras_model_sequential(input_shape = 784) %>%
    layer_dense(units = 8, name = "first") %>%
    layer_dense(units = 2)
  err <- expect_error(predict(model, matrix(0, 3, 28), verbose = 0), class = "rustkeras_error")
  expect_match(conditionMessage(err), "layer 'first' expects 784 features, got 28", fixed = TRUE)
  expect_equal(conditionCall(err), quote(predict()))
})

test_that("layers can be given to keras_model_sequential() directly", {
  model <- keras_model_sequential(input_shape = 4, name = "direct",
                                  layer_dense(units = 3, name = "d1"),
                                  layer_dropout(rate = 0.5, name = "drop1"))
  expect_equal(model_info(model)$layer_names, c("d1", "drop1"))
  expect_error(keras_model_sequential(input_shape = 4, name = "x", "not a layer"),
               "Only layers made by layer_\\*\\(\\) functions", class = "rustkeras_error")
})

test_that("the pipe adds layers in place: every reference sees them", {
  model <- keras_model_sequential(input_shape = 3)
  alias <- model
  model %>% layer_dense(units = 2)
  expect_equal(model_info(alias)$params, 8)
  result <- model %>% layer_dense(units = 1)
  expect_identical(result, model)
  expect_equal(model_info(alias)$params, c(8, 3))
})

test_that("a layer name used twice in one model is an error", {
  model <- keras_model_sequential(input_shape = 3) %>% layer_dense(2, name = "same")
  expect_error(model %>% layer_dense(2, name = "same"), "same", class = "rustkeras_error")
  expect_equal(model_info(model)$layer_names, "same")
})

test_that("bad input_shape and name give rustkeras errors", {
  expect_error(keras_model_sequential(input_shape = 0), "`input_shape` must be a vector of positive integers",
               class = "rustkeras_error")
  expect_error(keras_model_sequential(input_shape = -784), "`input_shape`", class = "rustkeras_error")
  expect_error(keras_model_sequential(input_shape = 2.5), "`input_shape`", class = "rustkeras_error")
  expect_error(keras_model_sequential(input_shape = "784"), "`input_shape`", class = "rustkeras_error")
  expect_error(keras_model_sequential(input_shape = NA), "`input_shape`", class = "rustkeras_error")
  expect_error(keras_model_sequential(name = 1), "`name` must be a single string or NULL",
               class = "rustkeras_error")
  expect_error(keras_model_sequential(name = c("a", "b")), "`name`", class = "rustkeras_error")
})

test_that("a model restored with readRDS() comes back; one saved without its state says what to do", {
  model <- keras_model_sequential(input_shape = 3, name = "kept") %>% layer_dense(2)
  path <- withr::local_tempfile(fileext = ".rds")
  saveRDS(model, path)
  back <- readRDS(path)
  expect_identical(model_info(back)$name, "kept")
  expect_identical(get_weights(back), get_weights(model))
  # Serialization version 2 has no ALTREP: the engine state is lost.
  saveRDS(model, path, version = 2)
  dead <- readRDS(path)
  expect_s3_class(dead, "rustkeras_model")
  err <- expect_error(model_info(dead), class = "rustkeras_state_error")
  expect_match(conditionMessage(err),
               "this model's engine object no longer exists: it was serialized without it (with serialization version 2",
               fixed = TRUE)
  expect_match(conditionMessage(err), "rebuild the model or load it from a file written by save_model()", fixed = TRUE)
  expect_error(print(dead), "no longer exists", class = "rustkeras_error")
  expect_identical(model_info(model)$name, "kept")
})

test_that("layers = adds a list of standalone layers in order", {
  model <- keras_model_sequential(
    input_shape = 4, name = "seq_layers_arg",
    layers = list(layer_dense(units = 3, name = "la_1"), layer_dropout(rate = 0.1, name = "la_2"))
  )
  info <- rustkeras:::model_info(model)
  expect_equal(info$layer_names, c("la_1", "la_2"))
  expect_equal(info$params, c(15, 0))
})
