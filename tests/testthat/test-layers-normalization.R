# Batch normalization: Keras's weights, inference with the moving statistics, training
# with the batch's and the moving-average update.

test_that("layer_batch_normalization() has Keras's weights in Keras's order", {
  model <- keras_model_sequential(input_shape = c(4, 4, 3)) %>% layer_batch_normalization()
  info <- model_info(model)
  expect_equal(info$layer_classes, "BatchNormalization")
  expect_equal(info$output_shapes, list(c(4L, 4L, 3L)))
  expect_equal(info$params, 12)
  expect_equal(info$trainable_params, 6)
  w <- lapply(get_weights(model), as.vector)
  expect_equal(w, list(c(1, 1, 1), c(0, 0, 0), c(0, 0, 0), c(1, 1, 1)))
  no_center <- keras_model_sequential(input_shape = 5) %>% layer_batch_normalization(center = FALSE)
  expect_equal(model_info(no_center)$params, 15)
})

test_that("inference uses the moving statistics", {
  model <- keras_model_sequential(input_shape = c(2, 2, 2)) %>%
    layer_batch_normalization(epsilon = 0.01)
  gamma <- c(2, 0.5); beta <- c(1, -1); mm <- c(0.3, -2); mv <- c(4, 0.25)
  set_weights(model, list(gamma, beta, mm, mv))
  set.seed(2)
  x <- array(rnorm(3 * 8), c(3, 2, 2, 2))
  want <- x
  for (ch in 1:2) want[, , , ch] <- gamma[ch] * (x[, , , ch] - mm[ch]) / sqrt(mv[ch] + 0.01) + beta[ch]
  expect_equal(predict(model, x, verbose = 0), want, tolerance = 1e-5)
})

test_that("fit() normalizes with the batch and moves the averages with momentum", {
  set.seed(4)
  x <- array(rnorm(16 * 3, mean = 5, sd = 2), c(16, 3))
  y <- matrix(0, 16, 3)
  model <- keras_model_sequential(input_shape = 3) %>% layer_batch_normalization(momentum = 0.9)
  model %>% compile(optimizer = optimizer_sgd(learning_rate = 0), loss = "mse")
  h <- model %>% fit(x, y, epochs = 1, batch_size = 16, shuffle = FALSE, verbose = 0)
  batch_mean <- colMeans(x)
  batch_var <- colMeans(sweep(x, 2, batch_mean)^2) # biased, as Keras
  w <- lapply(get_weights(model), as.vector)
  expect_equal(w[[3]], 0.1 * batch_mean, tolerance = 1e-5)
  expect_equal(w[[4]], 0.9 + 0.1 * batch_var, tolerance = 1e-5)
  # With gamma 1, beta 0: each normalized column has mean square var / (var + eps).
  expect_equal(h$metrics$loss, mean(batch_var / (batch_var + 1e-3)), tolerance = 1e-5)
})

test_that("bad batch normalization arguments give clear errors", {
  expect_error(layer_batch_normalization(axis = 0), "`axis` = 0 is not supported yet")
  # Axis 1 of images is not the channels axis: refused once the input shape is known.
  expect_error(keras_model_sequential(input_shape = c(4, 4, 2)) %>% layer_batch_normalization(axis = 1),
               "normalizes axis 1")
  image_bn <- keras_model_sequential(input_shape = c(4, 4, 2)) %>% layer_batch_normalization(axis = 3)
  expect_equal(count_params(image_bn), 8)
  expect_error(layer_batch_normalization(momentum = 2), "`momentum` must be in \\[0, 1\\], not 2")
  expect_error(layer_batch_normalization(epsilon = 0), "`epsilon` must be positive")
  expect_error(layer_batch_normalization(center = NA), "`center` must be TRUE or FALSE")
  expect_error(layer_batch_normalization(gamma_constraint = "non_neg"), "not supported yet")
  expect_error(layer_batch_normalization(gamma_regularizer = TRUE), "must be a regularizer")
})
