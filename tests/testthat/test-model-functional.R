# The functional API: symbolic inputs, layers and models called on them, merge layers,
# several inputs and outputs, shared layers, nested models, freezing and bad graphs.

quiet_fit <- function(...) fit(..., verbose = 0)

test_that("keras_input() makes a symbolic tensor Keras prints the same way", {
  x <- keras_input(shape = c(28, 28, 1), name = "image")
  expect_s3_class(x, "rustkeras_tensor")
  expect_equal(x$shape, c(28L, 28L, 1L))
  expect_equal(dim(x), c(NA, 28L, 28L, 1L))
  expect_match(format(x), "^<KerasTensor shape=\\(None, 28, 28, 1\\), dtype=float32, sparse=False, name=keras_tensor")
  y <- x %>% layer_conv_2d(4, 3) %>% layer_flatten()
  expect_equal(y$shape, 26L * 26L * 4L)
  expect_identical(layer_input, layer_input)
  expect_equal(layer_input(shape = 3)$shape, 3L)
  expect_equal(keras_input(batch_shape = list(NULL, 5))$shape, 5L)
  expect_error(keras_input(shape = c(0, 2)), "`shape` must be a vector of positive integers",
               class = "rustkeras_error")
  expect_error(keras_input(shape = 3, dtype = "int32"), "`dtype` must be \"float32\"",
               class = "rustkeras_error")
})

test_that("a functional chain computes what its layers compute", {
  inputs <- keras_input(shape = 3, name = "x")
  dense <- layer_dense(units = 2, name = "d")
  outputs <- inputs %>% dense() %>% layer_activation("relu", name = "r")
  model <- keras_model(inputs, outputs, name = "chain")
  expect_s3_class(model, c("rustkeras_functional", "rustkeras_model"))
  w <- get_weights(model)
  x <- matrix(c(1, -2, 0.5, 3, 0, -1), 2, byrow = TRUE)
  expected <- pmax(x %*% w[[1]] + matrix(w[[2]], 2, 2, byrow = TRUE), 0)
  expect_equal(predict(model, x, verbose = 0), expected, tolerance = 1e-6)
  # The layer object is the model's layer: same weights, same flags.
  expect_equal(get_weights(dense), w)
  expect_equal(vapply(model$layers, function(l) l$name, ""), c("d", "r"))
  expect_equal(model$input_shape, c(NA, 3L))
  expect_equal(model$output_shape, c(NA, 2L))
  expect_equal(model$input_names, "x")
  expect_equal(model$output_names, "r")
  text <- capture.output(summary(model, line_length = 80))
  expect_equal(text[1], 'Model: "chain"')
  # A chain prints Keras's three columns, its input first.
  expect_match(text[3], "^\u2503 Layer \\(type\\) +\u2503 Output Shape +\u2503 +Param # \u2503$")
  expect_match(text[5], "x (InputLayer)", fixed = TRUE)
})

test_that("two branches, a shared layer, add and concatenate: values, summary and weights", {
  a <- keras_input(shape = 4, name = "a")
  b <- keras_input(shape = 4, name = "b")
  shared <- layer_dense(units = 3, name = "shared")
  added <- layer_add(list(shared(a), shared(b)), name = "add")
  joined <- layer_concatenate(list(added, a), name = "concat")
  out <- joined %>% layer_dense(2, activation = "softmax", name = "predictions")
  model <- keras_model(list(a, b), out)
  # The shared layer's weights count once.
  expect_equal(count_params(model), 15 + 16)
  expect_length(get_weights(model), 4)
  text <- capture.output(summary(model, line_length = 80))
  expected <- c(
    "\u2503 Layer (type)          \u2503 Output Shape      \u2503     Param # \u2503 Connected to       \u2503",
    "\u2502 shared (Dense)        \u2502 (None, 3)         \u2502          15 \u2502 a[0][0], b[0][0]   \u2502",
    "\u2502 add (Add)             \u2502 (None, 3)         \u2502           0 \u2502 shared[0][0],      \u2502",
    "\u2502                       \u2502                   \u2502             \u2502 shared[1][0]       \u2502"
  )
  for (line in expected) expect_true(line %in% text, info = line)
  xa <- matrix(c(0.5, -1, 2, 0.25, 1, 1, 1, 1), 2, byrow = TRUE)
  xb <- matrix(c(1, 0, -0.5, 3, 0, 2, 0, 2), 2, byrow = TRUE)
  w <- get_weights(model)
  lin <- function(x) x %*% w[[1]] + matrix(w[[2]], nrow(x), 3, byrow = TRUE)
  h <- cbind(lin(xa) + lin(xb), xa)
  z <- h %*% w[[3]] + matrix(w[[4]], 2, 2, byrow = TRUE)
  expected_p <- exp(z) / rowSums(exp(z))
  expect_equal(predict(model, list(xa, xb), verbose = 0), expected_p, tolerance = 1e-5)
  # A named list is matched to the input names.
  expect_equal(predict(model, list(b = xb, a = xa), verbose = 0), expected_p, tolerance = 1e-5)
  expect_error(predict(model, xa, verbose = 0), "`x` must be a list of 2 arrays, one for each of 'a', 'b'",
               class = "rustkeras_error")
})

test_that("merge layers compute Keras's values and refuse incompatible shapes", {
  a <- keras_input(shape = 3)
  b <- keras_input(shape = 3)
  outs <- list(
    add = layer_add(list(a, b)), sub = layer_subtract(list(a, b)),
    mul = layer_multiply(list(a, b)), avg = layer_average(list(a, b)),
    max = layer_maximum(list(a, b)), min = layer_minimum(list(a, b)),
    cat = layer_concatenate(list(a, b), axis = 1)
  )
  model <- keras_model(list(a, b), outs)
  xa <- matrix(c(1, -2, 3, 0.5, 0, -1), 2, byrow = TRUE)
  xb <- matrix(c(2, 2, -1, 0.5, 4, 1), 2, byrow = TRUE)
  p <- predict(model, list(xa, xb), verbose = 0)
  expect_equal(unname(p[[1]]), xa + xb)
  expect_equal(unname(p[[2]]), xa - xb)
  expect_equal(unname(p[[3]]), xa * xb)
  expect_equal(unname(p[[4]]), (xa + xb) / 2)
  expect_equal(unname(p[[5]]), pmax(xa, xb))
  expect_equal(unname(p[[6]]), pmin(xa, xb))
  expect_equal(unname(p[[7]]), cbind(xa, xb))
  # Called one by one, as keras3 also allows.
  expect_equal(layer_add(a, b)$shape, 3L)
  c5 <- keras_input(shape = 5)
  expect_error(layer_add(list(a, c5)), "incompatible shapes. Received shapes \\(3,\\) and \\(5,\\)",
               class = "rustkeras_error")
  img1 <- keras_input(shape = c(4, 3))
  img2 <- keras_input(shape = c(5, 2))
  expect_error(layer_concatenate(list(img1, img2)), "matching shapes except for the concatenation axis",
               class = "rustkeras_error")
  expect_error(layer_subtract(list(a, b, b)), "2", class = "rustkeras_error")
  expect_error(layer_add(list(a, "b")), "`inputs` must be a list of symbolic tensors",
               class = "rustkeras_error")
})

test_that("two inputs and two outputs train with a loss each and loss_weights", {
  set_random_seed(7)
  a <- keras_input(shape = 5, name = "a")
  b <- keras_input(shape = 3, name = "b")
  h <- layer_concatenate(list(a %>% layer_dense(8, activation = "relu"), b))
  reg <- h %>% layer_dense(1, name = "out_reg")
  cls <- h %>% layer_dense(3, activation = "softmax", name = "out_cls")
  model <- keras_model(list(a, b), list(reg, cls))
  model %>% compile(optimizer = optimizer_adam(0.01),
                    loss = list(out_reg = "mse", out_cls = "sparse_categorical_crossentropy"),
                    loss_weights = c(0.5, 1), metrics = "accuracy")
  n <- 96
  xa <- matrix(rnorm(n * 5), n)
  xb <- matrix(rnorm(n * 3), n)
  y_reg <- xa[, 1] - xb[, 2]
  y_cls <- as.integer(xa[, 2] > 0) + as.integer(xb[, 1] > 0.5)
  before <- evaluate(model, list(xa, xb), list(y_reg, y_cls), verbose = 0)
  expect_named(before, c("loss", "out_cls_accuracy", "out_cls_loss", "out_reg_accuracy", "out_reg_loss"))
  expect_equal(unname(before["loss"]),
               unname(0.5 * before["out_reg_loss"] + before["out_cls_loss"]), tolerance = 1e-5)
  history <- quiet_fit(model, list(a = xa, b = xb), list(out_cls = y_cls, out_reg = y_reg)[c("out_reg", "out_cls")],
                       epochs = 20, batch_size = 16)
  expect_true("out_cls_loss" %in% names(history$metrics))
  after <- evaluate(model, list(xa, xb), list(y_reg, y_cls), verbose = 0)
  expect_lt(after[["loss"]], 0.6 * before[["loss"]])
  p <- predict(model, list(xa, xb), verbose = 0)
  expect_named(p, c("out_reg", "out_cls"))
  expect_equal(dim(p$out_cls), c(n, 3L))
  expect_error(compile(model, loss = list(out_x = "mse", out_cls = "mse")),
               "`loss` names 'out_x', but the model's outputs are 'out_reg', 'out_cls'",
               class = "rustkeras_error")
  expect_error(compile(model, loss = "mse", loss_weights = c(1, 2, 3)),
               "`loss_weights` must hold 1 value or one per output \\(2\\), not 3",
               class = "rustkeras_error")
  expect_error(fit(model, list(xa, xb), y_reg, verbose = 0),
               "`y` must be a list of 2 arrays, one for each of 'out_reg', 'out_cls'",
               class = "rustkeras_error")
})

test_that("a model called inside another shares its layers; freezing follows Keras", {
  set_random_seed(3)
  base_in <- keras_input(shape = 4)
  base <- keras_model(base_in, base_in %>% layer_dense(6, activation = "relu", name = "b1") %>%
                        layer_batch_normalization(name = "bn") %>% layer_dense(5, name = "b2"),
                      name = "base")
  freeze_weights(base)
  expect_false(base$trainable)
  inputs <- keras_input(shape = 4)
  outputs <- inputs %>% base() %>% layer_dense(1, name = "head")
  model <- keras_model(inputs, outputs)
  text <- capture.output(summary(model, line_length = 80))
  expect_true(any(grepl("base (Functional)", text, fixed = TRUE)))
  expect_true(" Trainable params: 6 (24.00 B)" %in% text)
  expect_true(" Non-trainable params: 89 (356.00 B)" %in% text)
  model %>% compile(optimizer = "sgd", loss = "mse")
  x <- matrix(rnorm(64 * 4), 64)
  y <- x[, 1] + x[, 2]
  before <- get_weights(base)
  head_before <- get_weights(get_layer(model, "head"))
  quiet_fit(model, x, y, epochs = 2, batch_size = 16)
  # Frozen: weights and batch-norm moving statistics unchanged (inference mode).
  expect_identical(get_weights(base), before)
  expect_false(identical(get_weights(get_layer(model, "head")), head_before))
  # Unfreezing takes effect at the next compile, as in Keras.
  unfreeze_weights(base, from = "bn")
  expect_false(get_layer(base, "b1")$trainable)
  expect_true(get_layer(base, "bn")$trainable)
  quiet_fit(model, x, y, epochs = 1, batch_size = 16)
  expect_identical(get_weights(base), before)
  model %>% compile(optimizer = "sgd", loss = "mse")
  quiet_fit(model, x, y, epochs = 1, batch_size = 16)
  after <- get_weights(base)
  expect_identical(after[1:2], before[1:2])
  expect_false(identical(after[[5]], before[[5]]))
  expect_false(identical(after[[7]], before[[7]]))
  # layer$trainable <- FALSE on one layer.
  layer <- get_layer(base, "b2")
  layer$trainable <- FALSE
  expect_false(get_layer(base, "b2")$trainable)
})

test_that("freeze_weights() ranges, get_layer(), pop_layer() and count_params() follow keras3", {
  model <- keras_model_sequential(input_shape = 4) %>%
    layer_dense(8, name = "a") %>% layer_dense(8, name = "b") %>% layer_dense(1, name = "c")
  freeze_weights(model, from = "b")
  flags <- vapply(model$layers, function(l) l$trainable, logical(1))
  expect_equal(flags, c(TRUE, FALSE, FALSE))
  freeze_weights(model, from = 1, to = -2)
  expect_equal(vapply(model$layers, function(l) l$trainable, logical(1)), c(FALSE, FALSE, TRUE))
  unfreeze_weights(model)
  expect_true(all(vapply(model$layers, function(l) l$trainable, logical(1))))
  expect_equal(get_layer(model, index = 2)$name, "b")
  expect_equal(count_params(get_layer(model, "a")), 40)
  expect_equal(count_params(model), 40 + 72 + 9)
  expect_error(get_layer(model, "bb"), "No layer named 'bb' in model 'sequential.*'. Did you mean 'b'",
               class = "rustkeras_error")
  expect_error(get_layer(model, index = 9), "`index` is 9, but model .* has 3 layers",
               class = "rustkeras_error")
  expect_error(freeze_weights(model, from = "nope"), "`from` names no layer",
               class = "rustkeras_error")
  pop_layer(model)
  expect_equal(vapply(model$layers, function(l) l$name, ""), c("a", "b"))
  expect_equal(model$output_shape, c(NA, 8L))
})

test_that("graphs that cannot make a model give clear errors", {
  a <- keras_input(shape = 3)
  other <- keras_input(shape = 3, name = "other")
  out <- layer_add(list(a %>% layer_dense(3), other))
  expect_error(keras_model(a, out),
               "`outputs` do not depend only on `inputs`: the output is computed from the input 'other'",
               class = "rustkeras_error")
  expect_error(keras_model(a, "x"), "`outputs` must be a symbolic tensor", class = "rustkeras_error")
  expect_error(keras_model(a %>% layer_dense(2), a), "`inputs` must be a symbolic input from keras_input",
               class = "rustkeras_error")
  expect_error(layer_dense(units = 2)(matrix(1, 2, 2)), "use predict\\(\\) for arrays",
               class = "rustkeras_error")
  d <- layer_dense(units = 2)
  d(keras_input(shape = 3))
  expect_error(d(keras_input(shape = 4)), "expects", class = "rustkeras_error")
})

test_that("a Sequential model takes a model as a layer, and keras_model_sequential stays the chain case", {
  inner <- keras_model_sequential(input_shape = 3, name = "inner") %>% layer_dense(4)
  outer <- keras_model_sequential(input_shape = 3) %>% inner() %>% layer_dense(1)
  expect_equal(count_params(outer), 16 + 5)
  x <- matrix(1:6, 2)
  expect_equal(dim(predict(outer, x, verbose = 0)), c(2L, 1L))
  names <- vapply(outer$layers, function(l) l$name, "")
  expect_length(names, 2)
  expect_equal(names[1], "inner")
  expect_s3_class(outer$layers[[1]], "rustkeras_sequential")
})

test_that("clone_model() copies the architecture with fresh weights; get_config() reads model layers", {
  set_random_seed(11)
  a <- keras_input(shape = 4, name = "a")
  out <- layer_add(list(a %>% layer_dense(4, name = "p"), a)) %>% layer_dense(2, name = "q")
  model <- keras_model(a, out, name = "orig")
  p <- get_layer(model, "p")
  p$trainable <- FALSE
  twin <- clone_model(model)
  expect_s3_class(twin, "rustkeras_functional")
  expect_equal(vapply(twin$layers, function(l) l$name, ""), vapply(model$layers, function(l) l$name, ""))
  expect_equal(lapply(get_weights(twin), dim), lapply(get_weights(model), dim))
  expect_false(isTRUE(all.equal(get_weights(twin), get_weights(model))))
  expect_false(get_layer(twin, "p")$trainable)
  # The clone's layers are its own.
  set_weights(twin, get_weights(model))
  x <- matrix(rnorm(8), 2)
  expect_equal(predict(twin, x, verbose = 0), predict(model, x, verbose = 0))
  cfg <- get_config(get_layer(model, "q"))
  expect_equal(cfg$units, 2L)
  expect_equal(cfg$name, "q")
})

# A small model with what the file formats must keep: two inputs, a frozen layer inside a
# nested base, a shared layer, a merge and two outputs.
files_model <- function() {
  x <- keras_input(shape = 3, name = "x")
  base <- keras_model(x, x %>% layer_dense(4, activation = "relu", name = "base_dense") %>%
                        layer_batch_normalization(name = "bn"), name = "base")
  frozen <- get_layer(base, "base_dense")
  frozen$trainable <- FALSE
  a <- keras_input(shape = 3, name = "a")
  b <- keras_input(shape = 3, name = "b")
  shared <- layer_dense(units = 4, name = "shared")
  joined <- layer_add(list(base(a), shared(b), shared(a)), name = "add")
  model <- keras_model(list(a, b), list(
    reg = joined %>% layer_dense(1, name = "reg"),
    cls = joined %>% layer_dense(2, activation = "softmax", name = "cls")))
  model %>% compile(optimizer = optimizer_adam(learning_rate = 0.01),
                    loss = list(reg = "mse", cls = "sparse_categorical_crossentropy"),
                    loss_weights = list(reg = 0.5, cls = 1))
  model
}

test_that("Functional models with a model inside round-trip through .keras and .h5", {
  set.seed(5)
  model <- files_model()
  n <- 32
  xa <- matrix(rnorm(n * 3), n)
  xb <- matrix(rnorm(n * 3), n)
  y <- list(reg = xa[, 1] - xb[, 2], cls = as.integer(xa[, 3] > 0))
  fit(model, list(xa, xb), y, epochs = 2, batch_size = 8, verbose = 0, shuffle = FALSE)
  want <- predict(model, list(xa, xb), verbose = 0)
  keras_path <- withr::local_tempfile(fileext = ".keras")
  h5_path <- withr::local_tempfile(fileext = ".h5")
  save_model(model, keras_path)
  save_model_hdf5(model, h5_path)
  continued <- function(m) {
    set_random_seed(3)
    h <- fit(m, list(xa, xb), y, epochs = 2, batch_size = 8, verbose = 0, shuffle = FALSE)
    h$metrics$loss
  }
  loaded_models <- list(load_model(keras_path), load_model_hdf5(h5_path))
  for (loaded in loaded_models) {
    expect_s3_class(loaded, "rustkeras_functional")
    expect_identical(predict(loaded, list(xa, xb), verbose = 0), want)
    expect_equal(get_weights(loaded), get_weights(model))
    expect_equal(capture.output(summary(loaded)), capture.output(summary(model)))
    expect_false(get_layer(get_layer(loaded, "base"), "base_dense")$trainable)
    expect_equal(loaded$output_names, c("reg", "cls"))
  }
  # With the optimizer state, training goes on as it would have on the original.
  want_losses <- continued(model)
  for (loaded in loaded_models) expect_equal(continued(loaded), want_losses)
  # The config alone makes the same architecture with fresh weights.
  config <- get_config(model)
  expect_equal(attr(config, "class_name"), "Functional")
  expect_equal(config$input_layers, list(list("a", 0L, 0L), list("b", 0L, 0L)))
  twin <- from_config(config)
  table_rows <- function(m) grep("params:", capture.output(summary(m)), value = TRUE, invert = TRUE)
  expect_equal(table_rows(twin), table_rows(model))
  expect_false(isTRUE(all.equal(get_weights(twin), get_weights(model))))
  # Weights-only files, in both layouts.
  w_path <- withr::local_tempfile(fileext = ".weights.h5")
  save_model_weights_hdf5(model, w_path)
  load_model_weights_hdf5(twin, w_path)
  expect_equal(get_weights(twin), get_weights(model))
})

test_that("every merge layer round-trips through both file formats", {
  set_random_seed(2)
  a <- keras_input(shape = 3, name = "a")
  b <- keras_input(shape = 3, name = "b")
  merged <- list(layer_add(list(a, b)), layer_subtract(list(a, b)), layer_multiply(list(a, b)),
                 layer_average(list(a, b)), layer_maximum(list(a, b)), layer_minimum(list(a, b)))
  out <- layer_concatenate(merged, axis = -1) %>% layer_dense(2)
  model <- keras_model(list(a, b), out)
  x <- list(matrix(rnorm(12), 4), matrix(rnorm(12), 4))
  want <- predict(model, x, verbose = 0)
  for (ext in c(".keras", ".h5")) {
    path <- withr::local_tempfile(fileext = ext)
    if (ext == ".h5") save_model_hdf5(model, path) else save_model(model, path)
    loaded <- if (ext == ".h5") load_model_hdf5(path) else load_model(path)
    expect_identical(predict(loaded, x, verbose = 0), want)
    expect_equal(vapply(loaded$layers, function(l) l$name, ""),
                 vapply(model$layers, function(l) l$name, ""))
  }
})

test_that("a call's training argument is checked, kept per call, and only for that call", {
  withr::local_seed(3)
  bn <- layer_batch_normalization(name = "bn_frozen_mode")
  inputs <- keras_input(shape = 3)
  x <- bn(inputs, training = FALSE)
  # A later layer without the argument follows fit(), as in Keras's transfer-learning
  # guide (its Dropout after `base_model(inputs, training = FALSE)` regularizes).
  x <- layer_batch_normalization(x, name = "bn_follows")
  model <- keras_model(inputs, layer_dense(x, 1, name = "out"))
  kwargs <- lapply(get_config(model)$layers[-1], function(l) l$inbound_nodes[[1]]$kwargs)
  expect_identical(kwargs, list(list(training = FALSE), setNames(list(), character()),
                                setNames(list(), character())))
  model %>% compile(optimizer = "sgd", loss = "mse")
  xs <- matrix(rnorm(24, mean = 2, sd = 3), 8, 3)
  w0 <- get_weights(model)
  fit(model, xs, matrix(1, 8, 1), batch_size = 8, epochs = 1, verbose = 0)
  w1 <- get_weights(model)
  expect_identical(w1[3:4], w0[3:4])  # bn_frozen_mode: moving mean and variance
  expect_false(isTRUE(all.equal(w1[7:8], w0[7:8])))  # bn_follows moved

  # Bad values and other arguments are refused, naming them.
  err <- expect_error(bn(inputs, training = NA), class = "rustkeras_argument_error")
  expect_equal(conditionMessage(err), "`training` must be TRUE, FALSE or NULL, not NA.")
  err <- expect_error(bn(inputs, training = "no"), class = "rustkeras_argument_error")
  expect_match(conditionMessage(err), "not \"no\"", fixed = TRUE)
  err <- expect_error(bn(inputs, mask = NULL, 2), class = "rustkeras_argument_error")
  expect_equal(conditionMessage(err), paste0("A call of a layer or model takes its inputs and ",
                                             "`training` only, not `mask`, an unnamed argument."))
  err <- expect_error(model(keras_model_sequential(), training = FALSE),
                      class = "rustkeras_argument_error")
  expect_match(conditionMessage(err), "`training` applies to a call on symbolic tensors")
})

test_that("a nested model called with training = FALSE stays in inference mode when unfrozen", {
  # keras3's transfer-learning guide: freeze, call with training = FALSE, later unfreeze
  # and fine-tune; batch normalization must keep its moving statistics throughout.
  withr::local_seed(4)
  base <- keras_model_sequential(input_shape = 4, name = "base") %>%
    layer_dense(3, name = "base_dense") %>%
    layer_batch_normalization(name = "base_bn")
  inputs <- keras_input(shape = 4)
  outputs <- base(inputs, training = FALSE) %>% layer_dense(1, name = "top")
  model <- keras_model(inputs, outputs)
  base$trainable <- TRUE
  model %>% compile(optimizer = optimizer_sgd(learning_rate = 0.1), loss = "mse")
  xs <- matrix(rnorm(32, mean = 1, sd = 2), 8, 4)
  ys <- matrix(rnorm(8), 8, 1)
  loss_before <- evaluate(model, xs, ys, batch_size = 8, verbose = 0)[["loss"]]
  w0 <- get_weights(base)
  h <- fit(model, xs, ys, batch_size = 8, epochs = 1, shuffle = FALSE, verbose = 0)
  # The step's loss is the inference-mode loss; the base trains but keeps its statistics.
  expect_equal(h$metrics$loss, loss_before, tolerance = 1e-6)
  w1 <- get_weights(base)
  expect_false(isTRUE(all.equal(w1[[1]], w0[[1]])))
  expect_identical(w1[5:6], w0[5:6])
})
