# Convolutions: shapes and counts as Keras prints them, values against a convolution
# written out in R, and the errors a user can trigger.

# Keras's Conv2D from its definition (cross-correlation, channels_last, TF 'same' padding).
conv2d_in_r <- function(x, kernel, bias = NULL, strides = c(1, 1), dilation = c(1, 1),
                        padding = "valid") {
  n <- dim(x)[1]; h <- dim(x)[2]; w <- dim(x)[3]
  kh <- dim(kernel)[1]; kw <- dim(kernel)[2]; f <- dim(kernel)[4]
  span <- (c(kh, kw) - 1) * dilation + 1
  if (padding == "valid") {
    out <- (c(h, w) - span) %/% strides + 1
    before <- c(0, 0)
  } else {
    out <- ceiling(c(h, w) / strides)
    before <- pmax((out - 1) * strides + span - c(h, w), 0) %/% 2
  }
  y <- array(0, c(n, out, f))
  for (i in seq_len(n)) for (oy in seq_len(out[1])) for (ox in seq_len(out[2])) {
    for (fi in seq_len(f)) {
      acc <- if (is.null(bias)) 0 else bias[fi]
      for (ky in seq_len(kh)) for (kx in seq_len(kw)) {
        iy <- (oy - 1) * strides[1] + (ky - 1) * dilation[1] - before[1] + 1
        ix <- (ox - 1) * strides[2] + (kx - 1) * dilation[2] - before[2] + 1
        if (iy >= 1 && iy <= h && ix >= 1 && ix <= w) {
          acc <- acc + sum(x[i, iy, ix, ] * kernel[ky, kx, , fi])
        }
      }
      y[i, oy, ox, fi] <- acc
    }
  }
  y
}

test_that("layer_conv_2d() has Keras's output shapes and parameter counts", {
  model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
    layer_conv_2d(filters = 32, kernel_size = c(3, 3), activation = "relu") %>%
    layer_conv_2d(filters = 64, kernel_size = 3, strides = 2, padding = "same") %>%
    layer_conv_2d(filters = 8, kernel_size = list(3L, 2L), dilation_rate = 2, use_bias = FALSE)
  info <- model_info(model)
  expect_equal(info$layer_classes, rep("Conv2D", 3))
  expect_equal(info$output_shapes, list(c(26L, 26L, 32L), c(13L, 13L, 64L), c(9L, 11L, 8L)))
  expect_equal(info$params, c(320, 18496, 3 * 2 * 64 * 8))
  expect_equal(lapply(get_weights(model), dim),
               list(c(3L, 3L, 1L, 32L), 32L, c(3L, 3L, 32L, 64L), 64L, c(3L, 2L, 64L, 8L)))
  expect_match(model_info(model)$layer_names[1], "^conv2d(_[0-9]+)?$")
})

test_that("layer_conv_2d() computes Keras's convolution, index meaning kept", {
  set.seed(1)
  cases <- list(
    list(in_shape = c(5, 6, 3), k = c(3, 3), f = 2, strides = c(1, 1), dilation = c(1, 1), padding = "valid"),
    list(in_shape = c(7, 9, 2), k = c(3, 3), f = 3, strides = c(2, 2), dilation = c(1, 1), padding = "same"),
    list(in_shape = c(8, 7, 2), k = c(3, 2), f = 2, strides = c(1, 1), dilation = c(2, 2), padding = "valid"),
    list(in_shape = c(6, 6, 4), k = c(1, 1), f = 3, strides = c(1, 1), dilation = c(1, 1), padding = "valid")
  )
  for (cs in cases) {
    model <- keras_model_sequential(input_shape = cs$in_shape) %>%
      layer_conv_2d(filters = cs$f, kernel_size = cs$k, strides = cs$strides,
                    dilation_rate = cs$dilation, padding = cs$padding)
    kernel <- array(rnorm(prod(cs$k) * cs$in_shape[3] * cs$f), c(cs$k, cs$in_shape[3], cs$f))
    bias <- rnorm(cs$f)
    set_weights(model, list(kernel, bias))
    x <- array(rnorm(2 * prod(cs$in_shape)), c(2, cs$in_shape))
    got <- predict(model, x, verbose = 0)
    want <- conv2d_in_r(x, kernel, bias, cs$strides, cs$dilation, cs$padding)
    expect_equal(dim(got), dim(want))
    expect_equal(got, want, tolerance = 1e-5)
  }
})

test_that("layer_conv_2d(groups = ) convolves each group of channels with its filters", {
  set.seed(2)
  model <- keras_model_sequential(input_shape = c(6, 5, 4)) %>%
    layer_conv_2d(filters = 6, kernel_size = 3, groups = 2, padding = "same", name = "grouped")
  # Keras: kernel (3, 3, input channels / groups, filters).
  expect_equal(model_info(model)$params, 3 * 3 * 2 * 6 + 6)
  expect_equal(dim(get_weights(model)[[1]]), c(3L, 3L, 2L, 6L))
  expect_equal(get_config(model$layers[[1]])$groups, 2)
  kernel <- array(rnorm(3 * 3 * 2 * 6), c(3, 3, 2, 6))
  bias <- rnorm(6)
  set_weights(model, list(kernel, bias))
  x <- array(rnorm(2 * 6 * 5 * 4), c(2, 6, 5, 4))
  got <- predict(model, x, verbose = 0)
  # Filters 1-3 see channels 1-2, filters 4-6 channels 3-4.
  want <- array(0, c(2, 6, 5, 6))
  want[, , , 1:3] <- conv2d_in_r(x[, , , 1:2, drop = FALSE], kernel[, , , 1:3], bias[1:3], padding = "same")
  want[, , , 4:6] <- conv2d_in_r(x[, , , 3:4, drop = FALSE], kernel[, , , 4:6], bias[4:6], padding = "same")
  expect_equal(got, want, tolerance = 1e-5)

  expect_error(layer_conv_2d(filters = 6, kernel_size = 3, groups = 4),
               "`groups` \\(4\\) must divide `filters` \\(6\\)")
  expect_error(layer_conv_2d(filters = 6, kernel_size = 3, groups = 0),
               "`groups` must be a positive integer, not 0")
  expect_error(
    keras_model_sequential(input_shape = c(6, 5, 3)) %>%
      layer_conv_2d(filters = 6, kernel_size = 3, groups = 2, name = "odd"),
    "layer 'odd'.*groups = 2 must divide the input channels, got 3 \\(input shape \\(6, 5, 3\\)\\)"
  )
})

test_that("layer_conv_1d() convolves along the steps, with causal padding", {
  model <- keras_model_sequential(input_shape = c(5, 1)) %>%
    layer_conv_1d(filters = 1, kernel_size = 3, padding = "causal", use_bias = FALSE)
  expect_equal(model_info(model)$output_shapes, list(c(5L, 1L)))
  set_weights(model, list(array(c(1, 10, 100), c(3, 1, 1))))
  x <- array(c(1, 2, 3, 4, 5), c(1, 5, 1))
  # Output t sees x[t-2], x[t-1], x[t] with taps 1, 10, 100.
  expect_equal(as.vector(predict(model, x, verbose = 0)), c(100, 210, 321, 432, 543))

  strided <- keras_model_sequential(input_shape = c(10, 3)) %>%
    layer_conv_1d(filters = 4, kernel_size = 3, strides = 2, padding = "same")
  expect_equal(model_info(strided)$output_shapes, list(c(5L, 4L)))
  expect_equal(model_info(strided)$params, 3 * 3 * 4 + 4)
})

test_that("a small CNN trains: the loss goes down", {
  set_random_seed(3)
  x <- array(runif(64 * 6 * 6), c(64, 6, 6, 1))
  y <- as.numeric(apply(x[, 2:4, 2:4, 1], 1, mean) > 0.5)
  model <- keras_model_sequential(input_shape = c(6, 6, 1)) %>%
    layer_conv_2d(4, 3, activation = "relu") %>%
    layer_conv_2d(1, 4, activation = "sigmoid")
  model %>% compile(optimizer = optimizer_adam(0.01), loss = "binary_crossentropy")
  h <- model %>% fit(array(x, c(64, 6, 6, 1)), array(y, c(64, 1, 1, 1)), epochs = 20,
                     batch_size = 16, verbose = 0)
  expect_lt(tail(h$metrics$loss, 1), 0.8 * h$metrics$loss[1])
})

test_that("bad convolution arguments and inputs give clear errors", {
  expect_error(layer_conv_2d(filters = 0, kernel_size = 3), "`filters` must be a positive integer, not 0")
  expect_error(layer_conv_2d(filters = -2, kernel_size = 3), "`filters` must be a positive integer")
  expect_error(layer_conv_2d(filters = 2), "`kernel_size` is missing")
  expect_error(layer_conv_2d(filters = 2, kernel_size = c(3, 3, 3)),
               "`kernel_size` must be a positive integer or 2 positive integers")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, strides = 0),
               "`strides` must be a positive integer or 2 positive integers, not 0")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, padding = "full"),
               "`padding` must be \"valid\" or \"same\", not \"full\"")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, data_format = "channels_first"),
               "channels_first.*not supported yet")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, strides = 2, dilation_rate = 2),
               "cannot be combined")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, kernel_constraint = "max_norm"),
               "`kernel_constraint` is not supported yet")
  expect_error(layer_conv_2d(filters = 2, kernel_size = 3, kernel_regularizer = 2),
               "`kernel_regularizer` must be a regularizer")
  expect_error(
    keras_model_sequential(input_shape = c(2, 2, 1)) %>% layer_conv_2d(4, 3, name = "small"),
    "layer 'small'.*kernel_size 3x3 is larger than the unpadded \\('valid'\\) input \\(2, 2, 1\\)"
  )
  model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>% layer_conv_2d(4, 3, name = "c1")
  expect_error(predict(model, matrix(0, 2, 784), verbose = 0),
               "layer 'c1' expects inputs of rank 4 \\(batch, height, width, channels\\), got shape \\(None, 784\\)")
  flat <- keras_model_sequential(input_shape = 784)
  expect_error(flat %>% layer_conv_2d(4, 3), "expects inputs of rank 4")
  expect_error(predict(model, array(0, c(2, 28, 28, 3)), verbose = 0), "layer 'c1' expects 1 input channels, got 3")
})

test_that("layer_depthwise_conv_2d() convolves each channel with its own filters", {
  set.seed(5)
  model <- keras_model_sequential(input_shape = c(6, 5, 2)) %>%
    layer_depthwise_conv_2d(kernel_size = c(3, 2), depth_multiplier = 2, padding = "same")
  expect_equal(model_info(model)$output_shapes, list(c(6L, 5L, 4L)))
  expect_equal(model_info(model)$params, 3 * 2 * 2 * 2 + 4)
  kernel <- array(rnorm(24), c(3, 2, 2, 2))
  bias <- rnorm(4)
  set_weights(model, list(kernel, bias))
  x <- array(rnorm(2 * 60), c(2, 6, 5, 2))
  got <- predict(model, x, verbose = 0)
  for (ch in 1:2) for (j in 1:2) {
    want <- conv2d_in_r(x[, , , ch, drop = FALSE], kernel[, , ch, j, drop = FALSE],
                        bias[(ch - 1) * 2 + j], padding = "same")
    expect_equal(got[, , , (ch - 1) * 2 + j], want[, , , 1], tolerance = 1e-5)
  }
})

test_that("layer_separable_conv_2d() is a depthwise then a pointwise convolution", {
  set.seed(6)
  model <- keras_model_sequential(input_shape = c(5, 5, 3)) %>%
    layer_separable_conv_2d(filters = 4, kernel_size = 3)
  expect_equal(model_info(model)$params, 27 + 12 + 4)
  dk <- array(rnorm(27), c(3, 3, 3, 1)); pk <- array(rnorm(12), c(1, 1, 3, 4)); b <- rnorm(4)
  set_weights(model, list(dk, pk, b))
  x <- array(rnorm(2 * 75), c(2, 5, 5, 3))
  mid <- array(0, c(2, 3, 3, 3))
  for (ch in 1:3) mid[, , , ch] <- conv2d_in_r(x[, , , ch, drop = FALSE], dk[, , ch, 1, drop = FALSE])[, , , 1]
  want <- conv2d_in_r(mid, pk, b)
  expect_equal(predict(model, x, verbose = 0), want, tolerance = 1e-5)
  expect_error(layer_separable_conv_2d(filters = 2, kernel_size = 3, depth_multiplier = 0),
               "`depth_multiplier` must be a positive integer, not 0")
})
