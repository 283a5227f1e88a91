# Layers: parameter counts, output shapes, the values a layer computes, names, and the
# errors a user can trigger with bad arguments.

layer_names <- function(model) model_info(model)$layer_names

# A one-layer model with the given weights.
dense_with <- function(kernel, bias, activation = NULL, use_bias = TRUE) {
  model <- keras_model_sequential(input_shape = nrow(kernel)) %>%
    layer_dense(units = ncol(kernel), activation = activation, use_bias = use_bias)
  set_weights(model, if (use_bias) list(kernel, bias) else list(kernel))
  model
}

test_that("layer_dense() has input_dim * units + units parameters", {
  model <- keras_model_sequential(input_shape = 784) %>%
    layer_dense(units = 256) %>%
    layer_dense(units = 128) %>%
    layer_dense(units = 10)
  info <- model_info(model)
  expect_equal(info$params, c(200960, 32896, 1290))
  expect_equal(info$trainable_params, c(200960, 32896, 1290))
  expect_equal(info$output_shapes, list(256L, 128L, 10L))
  expect_equal(info$layer_classes, rep("Dense", 3))

  no_bias <- keras_model_sequential(input_shape = 7) %>% layer_dense(units = 3, use_bias = FALSE)
  expect_equal(model_info(no_bias)$params, 21)
  expect_length(get_weights(no_bias), 1L)
  expect_equal(dim(get_weights(no_bias)[[1]]), c(7L, 3L))
})

test_that("layer_dropout() and layer_activation() have no parameters and keep the shape", {
  model <- keras_model_sequential(input_shape = 12) %>%
    layer_dense(units = 5) %>%
    layer_dropout(rate = 0.5) %>%
    layer_activation("tanh")
  info <- model_info(model)
  expect_equal(info$layer_classes, c("Dense", "Dropout", "Activation"))
  expect_equal(info$params, c(65, 0, 0))
  expect_equal(info$output_shapes, list(5L, 5L, 5L))
})

test_that("a dense layer computes activation(x %*% W + b)", {
  kernel <- matrix(c(0.5, -1, 2, 0.25, -0.75, 1.5), nrow = 3) # 3 inputs, 2 units
  bias <- c(0.1, -0.2)
  x <- rbind(c(1, 2, 3), c(-1, 0, 0.5), c(0, 0, 0), c(2, -3, 1))
  linear <- x %*% kernel + matrix(bias, nrow(x), 2, byrow = TRUE)

  expect_equal(predict(dense_with(kernel, bias), x, verbose = 0), linear, tolerance = 1e-6)
  expect_equal(predict(dense_with(kernel, bias, "relu"), x, verbose = 0), pmax(linear, 0),
               tolerance = 1e-6)
  expect_equal(predict(dense_with(kernel, bias, "sigmoid"), x, verbose = 0), 1 / (1 + exp(-linear)),
               tolerance = 1e-6)
  expect_equal(predict(dense_with(kernel, bias, "tanh"), x, verbose = 0), tanh(linear),
               tolerance = 1e-6)
  softmax <- exp(linear) / rowSums(exp(linear))
  expect_equal(predict(dense_with(kernel, bias, "softmax"), x, verbose = 0), softmax,
               tolerance = 1e-6)
  expect_equal(predict(dense_with(kernel, NULL, use_bias = FALSE), x, verbose = 0), x %*% kernel,
               tolerance = 1e-6)
})

test_that("every activation name computes Keras's formula", {
  z <- seq(-4, 4, length.out = 9)
  x <- matrix(z, nrow = 1)
  sigmoid <- function(v) 1 / (1 + exp(-v))
  expected <- list(
    linear = z,
    relu = pmax(z, 0),
    relu6 = pmin(pmax(z, 0), 6),
    leaky_relu = ifelse(z > 0, z, 0.2 * z), # Keras 3 default negative_slope = 0.2
    elu = ifelse(z > 0, z, exp(z) - 1),
    selu = 1.0507009873554805 * ifelse(z > 0, z, 1.6732632423543772 * (exp(z) - 1)),
    gelu = z * stats::pnorm(z), # Keras 3 default approximate = FALSE
    sigmoid = sigmoid(z),
    hard_sigmoid = pmin(pmax(z / 6 + 0.5, 0), 1), # Keras 3: relu6(x + 3) / 6
    tanh = tanh(z),
    softplus = log1p(exp(z)),
    softsign = z / (1 + abs(z)),
    silu = z * sigmoid(z),
    swish = z * sigmoid(z),
    exponential = exp(z),
    softmax = exp(z) / sum(exp(z)),
    log_softmax = z - log(sum(exp(z)))
  )
  expect_setequal(names(expected), activation_names)
  for (act in names(expected)) {
    model <- keras_model_sequential(input_shape = 9) %>% layer_activation(act)
    expect_equal(as.vector(predict(model, x, verbose = 0)), expected[[act]],
                 tolerance = 1e-5, label = act)
  }
})

test_that("dropout is the identity outside training", {
  kernel <- matrix(seq(-1, 1, length.out = 12), nrow = 4)
  x <- matrix(seq(0.1, 2, length.out = 20), ncol = 4)
  plain <- dense_with(kernel, c(0, 0.5, 1))
  with_dropout <- keras_model_sequential(input_shape = 4) %>%
    layer_dense(units = 3) %>%
    layer_dropout(rate = 0.9)
  set_weights(with_dropout, list(kernel, c(0, 0.5, 1)))
  expect_equal(predict(with_dropout, x, verbose = 0), predict(plain, x, verbose = 0))
})

test_that("dropout during training zeroes units and scales the others by 1 / (1 - rate)", {
  # One SGD step on MSE towards y = 0 from a kernel of ones and x = 1: each unit's
  # output after dropout is 0 (dropped) or 2 (kept and scaled), so each kernel entry
  # moves by 0 or by one fixed step.
  set_random_seed(3)
  model <- keras_model_sequential(input_shape = 1) %>%
    layer_dense(units = 200, use_bias = FALSE, kernel_initializer = "ones") %>%
    layer_dropout(rate = 0.5)
  model %>% compile(optimizer = optimizer_sgd(learning_rate = 0.1), loss = "mse")
  fit(model, matrix(1), matrix(0, 1, 200), epochs = 1, verbose = 0, shuffle = FALSE)
  delta <- 1 - as.vector(get_weights(model)[[1]])
  # kept unit: out = 2, d loss / d out = 2 * 2 / 200, d out / d w = 2: a step of lr * 0.04
  expect_true(all(abs(delta) < 1e-6 | abs(delta - 0.004) < 1e-6))
  kept <- mean(abs(delta) > 1e-6)
  expect_gt(kept, 0.35)
  expect_lt(kept, 0.65)
})

test_that("layer names count up per session; explicit names are kept", {
  first <- layer_names(keras_model_sequential(input_shape = 3) %>% layer_dense(2) %>% layer_dense(2))
  second <- layer_names(keras_model_sequential(input_shape = 3) %>% layer_dense(2))
  index <- function(name) as.integer(ifelse(name == "dense", "0", sub("^dense_", "", name)))
  expect_match(c(first, second), "^dense(_[0-9]+)?$")
  expect_equal(index(first[2]), index(first[1]) + 1L)
  expect_equal(index(second[1]), index(first[1]) + 2L)

  named <- keras_model_sequential(input_shape = 3) %>%
    layer_dense(2, name = "hidden") %>%
    layer_dropout(0.1, name = "drop") %>%
    layer_activation("relu", name = "act")
  expect_equal(layer_names(named), c("hidden", "drop", "act"))
})

test_that("a layer made without a model is a description that can be added later", {
  layer <- layer_dense(units = 3, activation = "relu", name = "standalone")
  expect_s3_class(layer, c("rustkeras_layer_dense", "rustkeras_layer"), exact = TRUE)
  expect_equal(layer$config$units, 3L)
  expect_equal(layer$config$activation, "relu")
  expect_output(print(layer), "^<Dense> standalone$")
  expect_output(print(layer_dropout(rate = 0.2)), "^<Dropout>$")

  model <- keras_model_sequential(input_shape = 4, name = "holder", layer, layer_dropout(rate = 0.2))
  expect_equal(model_info(model)$layer_names[1], "standalone")
  expect_equal(model_info(model)$params, c(15, 0))
})

test_that("piping a layer into a model adds it in place and returns the model invisibly", {
  model <- keras_model_sequential(input_shape = 4)
  res <- withVisible(layer_dense(model, units = 2))
  expect_false(res$visible)
  expect_identical(res$value, model)
  expect_equal(model_info(model)$params, 10)
  model %>% layer_dense(units = 5)
  expect_equal(model_info(model)$params, c(10, 15))
})

test_that("every integer argument refuses numbers past R's integers, without a warning", {
  big <- function(expr, arg) {
    expect_no_warning(err <- expect_error(expr, class = "rustkeras_argument_error"))
    expect_match(conditionMessage(err), sprintf("`%s` must be .*below 2\\^31", arg))
    expect_match(conditionMessage(err), "3e+09", fixed = TRUE)
  }
  big(layer_conv_2d(filters = 3e9, kernel_size = 3), "filters")
  big(layer_conv_2d(filters = 2, kernel_size = c(3, 3e9)), "kernel_size")
  big(layer_max_pooling_2d(pool_size = 3e9), "pool_size")
  big(layer_embedding(input_dim = 3e9, output_dim = 2), "input_dim")
  big(keras_input(shape = c(2, 3e9)), "shape")
  big(keras_model_sequential(input_shape = 3e9), "input_shape")
  big(layer_reshape(target_shape = c(-1, 3e9)), "target_shape")
  big(callback_early_stopping(patience = 3e9), "patience")
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(1)
  model %>% compile(optimizer = "sgd", loss = "mse")
  big(fit(model, matrix(0, 2, 2), matrix(0, 2, 1), epochs = 3e9, verbose = 0), "epochs")
  big(predict(model, matrix(0, 2, 2), batch_size = 3e9, verbose = 0), "batch_size")
})

test_that("bad layer arguments give rustkeras errors naming the argument", {
  expect_error(layer_dense(units = 0), "`units` must be a positive integer, not 0",
               class = "rustkeras_error")
  expect_error(layer_dense(units = -3), "`units` must be a positive integer, not -3",
               class = "rustkeras_error")
  expect_error(layer_dense(units = 2.5), "`units` must be a positive integer, not 2.5",
               class = "rustkeras_error")
  expect_error(layer_dense(units = "a"), "`units` must be a positive integer", class = "rustkeras_error")
  # Past R's integers: a clear error, no coercion warning, no -2147483648.
  expect_no_warning(err <- expect_error(layer_dense(units = 3e9), class = "rustkeras_argument_error"))
  expect_equal(conditionMessage(err), "`units` must be a positive integer below 2^31, not 3e+09.")
  expect_error(layer_dense(units = 2^31), "below 2^31, not 2147483648", fixed = TRUE)
  expect_s3_class(layer_dense(units = 2^31 - 1), "rustkeras_layer")
  expect_error(layer_dense(), "`units` must be a positive integer, not missing",
               class = "rustkeras_error")
  expect_error(layer_dropout(rate = 1), "`rate` must be a number in \\[0, 1\\), not 1",
               class = "rustkeras_error")
  expect_error(layer_dropout(rate = -0.1), "`rate` must be a number in \\[0, 1\\), not -0.1",
               class = "rustkeras_error")
  expect_error(layer_dropout(rate = NA), "`rate`", class = "rustkeras_error")
  expect_error(layer_dense(units = 2, use_bias = NA), "`use_bias` must be TRUE or FALSE",
               class = "rustkeras_error")
  expect_error(layer_dense(units = 2, name = 3), "`name` must be a single string",
               class = "rustkeras_error")
  expect_error(layer_activation(), "`activation` is missing", class = "rustkeras_error")

  err <- expect_error(layer_dense(units = 2, activation = "relux"), class = "rustkeras_error")
  expect_match(conditionMessage(err), "unknown activation 'relux'", fixed = TRUE)
  expect_match(conditionMessage(err), "known activations: linear, relu, relu6", fixed = TRUE)
  expect_equal(conditionCall(err), quote(layer_dense()))
  expect_error(layer_activation(activation = "nope"), "known activations:", class = "rustkeras_error")

  expect_error(layer_dense("model", units = 2), "`object` must be a rustkeras model",
               class = "rustkeras_error")
})

test_that("a layer error leaves the model as it was", {
  model <- keras_model_sequential(input_shape = 4) %>% layer_dense(3)
  expect_error(model %>% layer_dense(units = 0), class = "rustkeras_error")
  expect_error(model %>% layer_dense(units = 2, activation = "bad"), class = "rustkeras_error")
  expect_equal(model_info(model)$params, 15)
  model %>% layer_dense(2)
  expect_equal(dim(predict(model, matrix(1, 2, 4), verbose = 0)), c(2L, 2L))
})

test_that("layer_dropout() shares its mask along noise_shape's unit axes, and refuses seed", {
  set_random_seed(1)
  model <- keras_model_sequential(input_shape = c(20, 6)) %>%
    layer_dropout(rate = 0.5, noise_shape = list(NULL, 1L, NULL))
  # The training-mode mask shows in one SGD step on a model dropout -> dense (kernel of
  # ones, no bias) with one sample of ones: with one mask per feature shared by every
  # step, each output step is the same, so every kept feature's kernel entry moves by the
  # same amount and the dropped ones do not move. Masks drawn per element would give
  # each feature its own count of kept steps, hence different moves.
  x <- array(1, c(1, 20, 6))
  inputs <- keras_input(shape = c(20, 6))
  dropped <- inputs %>% layer_dropout(rate = 0.5, noise_shape = c(NA, 1, NA))
  probe <- keras_model(inputs, dropped %>% layer_dense(1, kernel_initializer = "ones", use_bias = FALSE))
  probe %>% compile(optimizer = optimizer_sgd(0.01), loss = "mse")
  before <- get_weights(probe)[[1]]
  fit(probe, x, array(0, c(1, 20, 1)), epochs = 1, batch_size = 1, verbose = 0)
  delta <- as.vector(before - get_weights(probe)[[1]])
  moved <- delta[abs(delta) > 1e-9]
  expect_gt(length(moved), 0)
  expect_lt(length(moved), 6)
  expect_equal(moved, rep(moved[1], length(moved)), tolerance = 1e-6)
  config <- get_config(model)$layers[[2]]$config
  expect_equal(config$noise_shape, list(NULL, 1L, NULL))
  again <- from_config(get_config(model))
  expect_equal(get_config(again)$layers[[2]]$config$noise_shape, list(NULL, 1L, NULL))
  expect_error(layer_dropout(rate = 0.5, noise_shape = "a"), "`noise_shape` must give the mask's shape")
  bad <- keras_model_sequential(input_shape = c(20, 6)) %>% layer_dropout(0.5, noise_shape = c(NA, 3, NA))
  bad %>% compile(optimizer = "sgd", loss = "mse")
  expect_error(fit(bad, x, x, verbose = 0), "does not fit inputs of shape \\(None, 20, 6\\)")
  expect_error(layer_dropout(rate = 0.5, seed = 1), "`seed` is not supported; use set_random_seed()",
               class = "rustkeras_error")
})

test_that("layers take Keras's common arguments: input_shape, input_dim, trainable, dtype", {
  # The classic keras workshop form: the first layer gives the Sequential model its input.
  model <- keras_model_sequential() %>%
    layer_dense(units = 8, activation = "relu", input_shape = c(5)) %>%
    layer_dense(units = 2, trainable = FALSE)
  expect_equal(model$input_shape, c(NA, 5))
  expect_equal(count_params(model), 5 * 8 + 8 + 8 * 2 + 2)
  expect_false(model$layers[[2]]$trainable)
  expect_true(any(grepl("Non-trainable params: 18", capture.output(summary(model)), fixed = TRUE)))
  m2 <- keras_model_sequential() %>% layer_dense(3, input_dim = 4)
  expect_equal(m2$output_shape, c(NA, 3))
  # A model that already has its input keeps it, as in Keras.
  m3 <- keras_model_sequential(input_shape = 6) %>% layer_dense(3, input_shape = 4)
  expect_equal(m3$input_shape, c(NA, 6))
  expect_s3_class(layer_dense(units = 2, dtype = "float32"), "rustkeras_layer")
  expect_error(layer_dense(units = 2, foo = 3), "Unrecognized arguments passed to layer_dense\\(\\): `foo`",
               class = "rustkeras_error")
  expect_error(layer_dense(units = 2, dtype = "float64"), "float32 only", class = "rustkeras_error")
  expect_error(layer_dense(units = 2, input_shape = c(0, 3)), "`input_shape` must be",
               class = "rustkeras_error")
  expect_error(layer_dropout(rate = 0.1, trainable = NA), "`trainable` must be TRUE or FALSE",
               class = "rustkeras_error")
})

test_that("an error in a layer's extra arguments reaches the user", {
  expect_error(layer_dense(units = 2, input_shape = c(no_such_variable_here)),
               "no_such_variable_here")
})
