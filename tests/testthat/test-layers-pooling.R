# Pooling layers: values against hand computations in R, output shapes, names, and the
# errors a user can trigger.

one_layer <- function(input_shape, layer) {
  keras_model_sequential(input_shape = input_shape, layers = list(layer))
}

# Keras's window placement for one axis: the input index ranges under each window.
windows <- function(len, pool, stride, padding) {
  if (padding == "valid") {
    starts <- seq(1L, len - pool + 1L, by = stride)
    return(lapply(starts, function(s) s:(s + pool - 1L)))
  }
  out <- ceiling(len / stride)
  before <- max((out - 1) * stride + pool - len, 0) %/% 2
  lapply(seq_len(out), function(o) {
    idx <- (o - 1) * stride - before + seq_len(pool)
    idx[idx >= 1 & idx <= len]
  })
}

# Pooling of a (samples, height, width, channels) array, padded cells left out.
pool_2d <- function(x, f, pool, stride, padding) {
  rows <- windows(dim(x)[2], pool[1], stride[1], padding)
  cols <- windows(dim(x)[3], pool[2], stride[2], padding)
  out <- array(0, c(dim(x)[1], length(rows), length(cols), dim(x)[4]))
  for (i in seq_along(rows)) for (j in seq_along(cols)) {
    out[, i, j, ] <- apply(x[, rows[[i]], cols[[j]], , drop = FALSE], c(1, 4), f)
  }
  out
}

test_that("max pooling 2D takes the max of each 2x2 window by default", {
  # keras3's example: a 3x4 ramp, 2x2 windows, strides 2 -> 6 and 8.
  x <- array(0, c(1, 3, 4, 1))
  x[1, , , 1] <- rbind(c(1, 2, 3, 4), c(5, 6, 7, 8), c(9, 10, 11, 12))
  model <- one_layer(c(3, 4, 1), layer_max_pooling_2d())
  y <- predict(model, x, verbose = 0)
  expect_equal(dim(y), c(1L, 1L, 2L, 1L))
  expect_equal(as.vector(y), c(6, 8))

  # Two samples of 4x4: each output is the max of its own 2x2 block.
  x <- array(c(1:16, 16:1), c(2, 4, 4, 1))
  y <- predict(one_layer(c(4, 4, 1), layer_max_pooling_2d()), x, verbose = 0)
  expect_equal(dim(y), c(2L, 2L, 2L, 1L))
  for (i in 1:2) for (r in 1:2) for (c in 1:2) {
    expect_equal(y[i, r, c, 1], max(x[i, 2 * r - 1:0, 2 * c - 1:0, 1]))
  }
})

test_that("padding = 'same' leaves padded cells out of the max and the mean", {
  # keras3's examples: a 3x3 ramp, 2x2 windows, strides 1.
  x <- array(0, c(1, 3, 3, 1))
  x[1, , , 1] <- rbind(c(1, 2, 3), c(4, 5, 6), c(7, 8, 9))
  max_same <- one_layer(c(3, 3, 1), layer_max_pooling_2d(pool_size = c(2, 2), strides = c(1, 1),
                                                           padding = "same"))
  expect_equal(predict(max_same, x, verbose = 0)[1, , , 1],
               rbind(c(5, 6, 6), c(8, 9, 9), c(8, 9, 9)))
  avg_same <- one_layer(c(3, 3, 1), layer_average_pooling_2d(pool_size = c(2, 2), strides = c(1, 1),
                                                               padding = "same"))
  expect_equal(predict(avg_same, x, verbose = 0)[1, , , 1],
               rbind(c(3, 4, 4.5), c(6, 7, 7.5), c(7.5, 8.5, 9)))
  avg_valid <- one_layer(c(3, 3, 1), layer_average_pooling_2d(pool_size = 2, strides = 1))
  expect_equal(predict(avg_valid, x, verbose = 0)[1, , , 1], rbind(c(3, 4), c(6, 7)))
})

test_that("pooling matches the definition on random images for each channel", {
  set.seed(1)
  x <- array(rnorm(3 * 7 * 6 * 4), c(3, 7, 6, 4))
  cases <- list(
    list(pool = c(2, 2), stride = c(2, 2), padding = "valid"),
    list(pool = c(3, 3), stride = c(2, 2), padding = "same"),
    list(pool = c(3, 2), stride = c(1, 3), padding = "valid"),
    list(pool = c(2, 3), stride = c(3, 1), padding = "same")
  )
  for (case in cases) {
    label <- paste(c(case$pool, case$stride, case$padding), collapse = " ")
    max_model <- one_layer(c(7, 6, 4), layer_max_pooling_2d(pool_size = case$pool,
                                                            strides = case$stride,
                                                            padding = case$padding))
    expect_equal(predict(max_model, x, verbose = 0),
                 pool_2d(x, max, case$pool, case$stride, case$padding),
                 tolerance = 1e-6, label = label)
    avg_model <- one_layer(c(7, 6, 4), layer_average_pooling_2d(pool_size = case$pool,
                                                                strides = case$stride,
                                                                padding = case$padding))
    expect_equal(predict(avg_model, x, verbose = 0),
                 pool_2d(x, mean, case$pool, case$stride, case$padding),
                 tolerance = 1e-6, label = label)
  }
})

test_that("global pooling reduces height and width per channel", {
  set.seed(2)
  x <- array(rnorm(2 * 4 * 5 * 3), c(2, 4, 5, 3))
  gap <- predict(one_layer(c(4, 5, 3), layer_global_average_pooling_2d()), x, verbose = 0)
  expect_equal(gap, apply(x, c(1, 4), mean), tolerance = 1e-6)
  gmp <- predict(one_layer(c(4, 5, 3), layer_global_max_pooling_2d()), x, verbose = 0)
  expect_equal(gmp, apply(x, c(1, 4), max), tolerance = 1e-6)
  kept <- predict(one_layer(c(4, 5, 3), layer_global_max_pooling_2d(keepdims = TRUE)), x,
                  verbose = 0)
  expect_equal(dim(kept), c(2L, 1L, 1L, 3L))
  expect_equal(kept[, 1, 1, ], apply(x, c(1, 4), max), tolerance = 1e-6)
})

test_that("1D pooling works along the steps of each feature", {
  # keras3's examples: the sequence 1..5 as (1, 5, 1).
  x <- array(c(1, 2, 3, 4, 5), c(1, 5, 1))
  p <- function(layer) as.vector(predict(one_layer(c(5, 1), layer), x, verbose = 0))
  expect_equal(p(layer_max_pooling_1d(pool_size = 2, strides = 1)), c(2, 3, 4, 5))
  expect_equal(p(layer_max_pooling_1d(pool_size = 2, strides = 2)), c(2, 4))
  expect_equal(p(layer_max_pooling_1d(pool_size = 2, strides = 1, padding = "same")),
               c(2, 3, 4, 5, 5))
  expect_equal(p(layer_average_pooling_1d(pool_size = 2, strides = 1)), c(1.5, 2.5, 3.5, 4.5))
  expect_equal(p(layer_average_pooling_1d(pool_size = 2, strides = 2)), c(1.5, 3.5))
  expect_equal(p(layer_average_pooling_1d(pool_size = 2, strides = 1, padding = "same")),
               c(1.5, 2.5, 3.5, 4.5, 5))

  set.seed(3)
  x <- array(rnorm(2 * 6 * 3), c(2, 6, 3))
  expect_equal(predict(one_layer(c(6, 3), layer_global_average_pooling_1d()), x, verbose = 0),
               apply(x, c(1, 3), mean), tolerance = 1e-6)
  expect_equal(predict(one_layer(c(6, 3), layer_global_max_pooling_1d()), x, verbose = 0),
               apply(x, c(1, 3), max), tolerance = 1e-6)
  y <- predict(one_layer(c(6, 3), layer_max_pooling_1d(pool_size = 3)), x, verbose = 0)
  expect_equal(dim(y), c(2L, 2L, 3L))
  expect_equal(y[, 2, ], apply(x[, 4:6, ], c(1, 3), max), tolerance = 1e-6)
})

test_that("output shapes, classes and names follow Keras", {
  model <- keras_model_sequential(input_shape = c(26, 26, 32)) %>%
    layer_max_pooling_2d(name = "pool") %>%
    layer_average_pooling_2d(pool_size = 3, strides = 2, padding = "same", name = "avg") %>%
    layer_global_average_pooling_2d(keepdims = TRUE, name = "gap") %>%
    layer_global_max_pooling_2d(name = "gmp")
  info <- model_info(model)
  expect_equal(info$output_shapes, list(c(13L, 13L, 32L), c(7L, 7L, 32L), c(1L, 1L, 32L), 32L))
  expect_equal(info$layer_classes, c("MaxPooling2D", "AveragePooling2D",
                                     "GlobalAveragePooling2D", "GlobalMaxPooling2D"))
  expect_equal(info$params, c(0, 0, 0, 0))
  out <- capture.output(summary(model, line_length = 80))
  expect_true(any(grepl("^│ pool \\(MaxPooling2D\\) +│ \\(None, 13, 13, 32\\) +│ +0 │$", out)))
  expect_true(any(grepl("^│ gap \\(GlobalAveragePooling2D\\) +│ \\(None, 1, 1, 32\\) +│ +0 │$", out)))

  seq_model <- keras_model_sequential(input_shape = c(10, 4)) %>%
    layer_max_pooling_1d() %>%
    layer_average_pooling_1d(pool_size = 3, padding = "same") %>%
    layer_global_max_pooling_1d()
  expect_equal(model_info(seq_model)$output_shapes, list(c(5L, 4L), c(2L, 4L), 4L))
  expect_equal(model_info(seq_model)$layer_classes,
               c("MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D"))

  names <- model_info(keras_model_sequential(input_shape = c(8, 8, 2)) %>%
                        layer_max_pooling_2d() %>% layer_max_pooling_2d())$layer_names
  expect_match(names, "^max_pooling2d(_[0-9]+)?$")
  expect_false(names[1] == names[2])
  expect_match(model_info(one_layer(c(4, 4, 1), layer_global_average_pooling_2d()))$layer_names,
               "^global_average_pooling2d(_[0-9]+)?$")

  layer <- layer_max_pooling_2d(pool_size = 3)
  expect_s3_class(layer, "rustkeras_layer")
  expect_equal(layer$config$pool_size, c(3L, 3L))
  expect_null(layer$config$strides)
  expect_output(print(layer), "^<MaxPooling2D>$")
})

test_that("gradients flow through pooling layers in training", {
  # Each image has a bright 2x2 spot in one of two places; a per-pixel dense layer
  # followed by pooling learns which.
  set.seed(4)
  n <- 64
  x <- array(runif(n * 6 * 6 * 1, 0, 0.2), c(n, 6, 6, 1))
  cls <- rep(0:1, length.out = n)
  x[cls == 0, 1:2, 1:2, 1] <- 1
  x[cls == 1, 5:6, 5:6, 1] <- 1
  set_random_seed(1)
  model <- keras_model_sequential(input_shape = c(6, 6, 1)) %>%
    layer_dense(4, activation = "relu") %>%
    layer_max_pooling_2d() %>%
    layer_average_pooling_2d(pool_size = 2, strides = 1) %>%
    layer_flatten() %>%
    layer_dense(2, activation = "softmax")
  model %>% compile(optimizer = optimizer_adam(learning_rate = 0.05),
                    loss = "sparse_categorical_crossentropy", metrics = "accuracy")
  history <- fit(model, x, cls, epochs = 30, batch_size = 16, verbose = 0)
  loss <- history$metrics$loss
  expect_lt(loss[length(loss)], loss[1] / 2)
  expect_equal(evaluate(model, x, cls, verbose = 0)[["accuracy"]], 1)
})

test_that("bad pooling arguments give errors naming the argument and the value", {
  expect_error(layer_max_pooling_2d(pool_size = 0),
               "`pool_size` must be a positive integer or 2 positive integers, not 0.",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_max_pooling_2d(pool_size = c(2, -1)), "not c(2, -1)", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_max_pooling_2d(pool_size = 2.5), "`pool_size` must be", class = "rustkeras_error")
  expect_error(layer_max_pooling_2d(pool_size = c(2, 2, 2)), "`pool_size` must be",
               class = "rustkeras_error")
  expect_error(layer_max_pooling_2d(strides = 0),
               "`strides` must be a positive integer or 2 positive integers, not 0.",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_max_pooling_1d(pool_size = c(2, 2)),
               "`pool_size` must be a positive integer, not c(2, 2).", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_average_pooling_2d(), "`pool_size` is missing.", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_average_pooling_1d(), "`pool_size` is missing.", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(layer_max_pooling_2d(padding = "full"),
               "`padding` must be \"valid\" or \"same\", not \"full\".", fixed = TRUE,
               class = "rustkeras_error")
  expect_equal(layer_max_pooling_2d(padding = "SAME")$config$padding, "same")
  expect_error(layer_max_pooling_2d(data_format = "channels_first"),
               "`data_format` = 'channels_first' is not supported yet; use 'channels_last'.",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_global_average_pooling_2d(data_format = "channels_first"),
               "not supported yet", class = "rustkeras_error")
  expect_error(layer_average_pooling_2d(pool_size = 2, data_format = "nhwc"),
               "`data_format` must be \"channels_last\" or \"channels_first\", not \"nhwc\".",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(layer_global_max_pooling_2d(keepdims = NA),
               "`keepdims` must be TRUE or FALSE, not NA.", fixed = TRUE, class = "rustkeras_error")
  err <- expect_error(layer_max_pooling_2d(pool_size = 0), class = "rustkeras_error")
  expect_equal(conditionCall(err), quote(layer_max_pooling_2d()))
})

test_that("inputs a pooling layer cannot take are errors naming the layer and the shapes", {
  model <- keras_model_sequential(input_shape = c(2, 5, 1))
  expect_error(model %>% layer_max_pooling_2d(pool_size = 3, name = "mp"),
               paste("layer 'mp' has pool_size (3, 3) larger than its input's height and width",
                     "(2, 5) with padding 'valid' (input shape (None, 2, 5, 1)); use a smaller",
                     "pool_size or padding = 'same'"),
               fixed = TRUE, class = "rustkeras_error")
  expect_length(model_info(model)$layer_names, 0L)
  model %>% layer_max_pooling_2d(pool_size = 3, padding = "same", name = "mp")
  expect_equal(model_info(model)$output_shapes, list(c(1L, 2L, 1L)))

  flat <- keras_model_sequential(input_shape = c(28, 28))
  expect_error(flat %>% layer_max_pooling_2d(name = "mp2"),
               paste("layer 'mp2' expects inputs of rank 4 (batch, height, width, channels),",
                     "got shape (None, 28, 28)"),
               fixed = TRUE, class = "rustkeras_error")
  expect_error(flat %>% layer_global_average_pooling_1d(name = "g") %>% layer_max_pooling_1d(),
               "expects inputs of rank 3 (batch, steps, features), got shape (None, 28)",
               fixed = TRUE, class = "rustkeras_error")
})
