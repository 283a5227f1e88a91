# Reshaping layers: values in row-major order as in Keras, output shapes, names and the
# errors a user can trigger.

one_layer <- function(input_shape, layer) {
  keras_model_sequential(input_shape = input_shape, layers = list(layer))
}

test_that("layer_flatten() puts each sample in row-major (C) order", {
  x <- array(seq_len(2 * 2 * 3 * 2), c(2, 2, 3, 2))
  y <- predict(one_layer(c(2, 3, 2), layer_flatten()), x, verbose = 0)
  expect_equal(dim(y), c(2L, 12L))
  for (i in 1:2) for (r in 1:2) for (c in 1:3) for (ch in 1:2) {
    expect_equal(y[i, (r - 1) * 6 + (c - 1) * 2 + ch], x[i, r, c, ch])
  }
  expect_equal(y, array_reshape(x, c(2, 12)))
  # 16 samples or more take the conversion that moves 16 x 16 blocks (AVX-512), with
  # the rest of each axis (105 = 6 x 16 + 9 values, 40 = 2 x 16 + 8 samples) done one
  # by one: the same order. Integers below 2^24 are exact in single precision.
  x <- array(as.numeric(seq_len(40 * 5 * 7 * 3)), c(40, 5, 7, 3))
  y <- predict(one_layer(c(5, 7, 3), layer_flatten()), x, batch_size = 16, verbose = 0)
  expect_identical(y, array_reshape(x, c(40, 105)))
  expect_identical(y[33, 2 * 21 + 4 * 3 + 3], x[33, 3, 5, 3])
  # The next call of that size converts into the same (pooled) buffer: every value is
  # written again, none is left from the call before.
  expect_identical(predict(one_layer(c(5, 7, 3), layer_flatten()), -x, verbose = 0),
                   array_reshape(-x, c(40, 105)))

  model <- keras_model_sequential(input_shape = c(13, 13, 64)) %>% layer_flatten(name = "flat")
  expect_equal(model_info(model)$output_shapes, list(10816L))
  expect_equal(model_info(model)$layer_classes, "Flatten")
  expect_true(any(grepl("^│ flat \\(Flatten\\) +│ \\(None, 10816\\) +│ +0 │$",
                        capture.output(summary(model, line_length = 80)))))
  expect_match(model_info(one_layer(c(2, 2), layer_flatten()))$layer_names, "^flatten(_[0-9]+)?$")
})

test_that("layer_reshape() gives each sample the target shape, inferring one -1", {
  x <- matrix(as.numeric(1:24), nrow = 2, byrow = TRUE)
  y <- predict(one_layer(12, layer_reshape(target_shape = c(3, 4))), x, verbose = 0)
  expect_equal(dim(y), c(2L, 3L, 4L))
  expect_equal(y[1, , ], matrix(1:12, 3, 4, byrow = TRUE))
  expect_equal(y[2, , ], matrix(13:24, 3, 4, byrow = TRUE))
  expect_equal(y, array_reshape(x, c(2, 3, 4)))

  model <- keras_model_sequential(input_shape = 12) %>%
    layer_reshape(c(-1, 2, 2), name = "rs") %>%
    layer_reshape(list(12L)) %>%
    layer_reshape(c(2, -1))
  expect_equal(model_info(model)$output_shapes, list(c(3L, 2L, 2L), 12L, c(2L, 6L)))
  expect_equal(predict(model, x, verbose = 0), array_reshape(x, c(2, 2, 6)))
  expect_equal(model_info(model)$layer_classes, rep("Reshape", 3))
  expect_true(any(grepl("^│ rs \\(Reshape\\) +│ \\(None, 3, 2, 2\\) +│ +0 │$",
                        capture.output(summary(model, line_length = 80)))))
  expect_equal(layer_reshape(target_shape = c(28, 28, 1))$config$target_shape, c(28L, 28L, 1L))
})

test_that("layer_zero_padding_2d() adds zeros around each image", {
  x <- array(0, c(2, 2, 2, 1))
  x[1, , , 1] <- rbind(c(1, 2), c(3, 4))
  x[2, , , 1] <- rbind(c(5, 6), c(7, 8))
  model <- one_layer(c(2, 2, 1), layer_zero_padding_2d(padding = list(c(1, 0), c(0, 2))))
  y <- predict(model, x, verbose = 0)
  expect_equal(dim(y), c(2L, 3L, 4L, 1L))
  expect_equal(y[1, , , 1], rbind(c(0, 0, 0, 0), c(1, 2, 0, 0), c(3, 4, 0, 0)))
  expect_equal(y[2, , , 1], rbind(c(0, 0, 0, 0), c(5, 6, 0, 0), c(7, 8, 0, 0)))

  # Default: one row and one column of zeros on every side; channels stay apart.
  x <- array(c(1, 2), c(1, 1, 1, 2))
  y <- predict(one_layer(c(1, 1, 2), layer_zero_padding_2d()), x, verbose = 0)
  expect_equal(dim(y), c(1L, 3L, 3L, 2L))
  expect_equal(y[1, 2, 2, ], c(1, 2))
  expect_equal(sum(abs(y)), 3)

  shapes <- function(padding) {
    model_info(one_layer(c(28, 28, 1), layer_zero_padding_2d(padding = padding)))$output_shapes[[1]]
  }
  expect_equal(shapes(2), c(32L, 32L, 1L))
  expect_equal(shapes(c(1, 3)), c(30L, 34L, 1L))
  expect_equal(shapes(list(2L, 0L)), c(32L, 28L, 1L))
  expect_equal(shapes(list(c(1, 0), c(2, 3))), c(29L, 33L, 1L))
  expect_equal(shapes(list(list(0, 1), list(4, 0))), c(29L, 32L, 1L))
  expect_equal(layer_zero_padding_2d(padding = c(1, 3))$config$padding, c(1L, 1L, 3L, 3L))
  model <- one_layer(c(28, 28, 1), layer_zero_padding_2d(name = "zp"))
  expect_equal(model_info(model)$layer_classes, "ZeroPadding2D")
  expect_true(any(grepl("^│ zp \\(ZeroPadding2D\\) +│ \\(None, 30, 30, 1\\) +│ +0 │$",
                        capture.output(summary(model, line_length = 80)))))
  expect_match(model_info(one_layer(c(2, 2, 1), layer_zero_padding_2d()))$layer_names,
               "^zero_padding2d(_[0-9]+)?$")
})

test_that("bad reshaping arguments give errors naming the argument and the value", {
  expect_error(layer_reshape(), "`target_shape` is missing.", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_reshape(target_shape = c(-1, -1)),
               "`target_shape` must be a vector of positive integers (one may be -1), not c(-1, -1).",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_reshape(target_shape = c(3, 0)), "not c(3, 0).", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_reshape(target_shape = "a"), "`target_shape` must be", class = "rustkeras_error")
  expect_error(layer_zero_padding_2d(padding = -1),
               paste0("`padding` must be a non-negative integer, 2 of them (rows, columns) or ",
                      "list(c(top, bottom), c(left, right)), not -1."),
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_zero_padding_2d(padding = c(1, 2, 3)), "not c(1, 2, 3).", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_zero_padding_2d(padding = list(c(1, 2), 3)), "`padding` must be",
               class = "rustkeras_error")
  expect_error(layer_flatten(data_format = "channels_first"),
               "`data_format` = 'channels_first' is not supported yet; use 'channels_last'.",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_zero_padding_2d(data_format = "channels_first"), "not supported yet",
               class = "rustkeras_error")
  expect_error(layer_flatten(name = 3), "`name` must be a single string", class = "rustkeras_error")
})

test_that("inputs a reshaping layer cannot take are errors naming the layer and the shapes", {
  model <- keras_model_sequential(input_shape = 12)
  expect_error(model %>% layer_reshape(c(5, -1), name = "rs"),
               paste("layer 'rs' cannot reshape inputs of shape (None, 12) (12 values per sample)",
                     "to target_shape (5, -1)"),
               fixed = TRUE, class = "rustkeras_error")
  expect_error(model %>% layer_reshape(c(3, 5), name = "rs"), "to target_shape (3, 5)",
               fixed = TRUE, class = "rustkeras_error")
  expect_length(model_info(model)$layer_names, 0L)
  expect_error(model %>% layer_zero_padding_2d(name = "zp"),
               paste("layer 'zp' expects inputs of rank 4 (batch, height, width, channels),",
                     "got shape (None, 12)"),
               fixed = TRUE, class = "rustkeras_error")
})
