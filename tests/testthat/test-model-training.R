# compile(), fit(), evaluate(), predict(), get_weights() and set_weights(): the values
# they compute, the history they return, what they print, and every error a user can
# trigger with bad input.

# Three well separated Gaussian blobs in 2-d, shuffled; labels 0, 1, 2.
blobs <- function(n_per_class = 100, seed = 11) {
  withr::local_seed(seed)
  labels <- rep(0:2, each = n_per_class)
  centers <- rbind(c(0, 0), c(4, 0), c(0, 4))
  x <- centers[labels + 1, ] + matrix(stats::rnorm(length(labels) * 2, sd = 0.7), ncol = 2)
  perm <- sample(length(labels))
  list(x = x[perm, ], labels = labels[perm], y = to_categorical(labels[perm], 3))
}

blob_model <- function(loss = "categorical_crossentropy", dropout = 0) {
  model <- keras_model_sequential(input_shape = 2) %>%
    layer_dense(units = 16, activation = "relu")
  if (dropout > 0) model %>% layer_dropout(rate = dropout)
  model %>% layer_dense(units = 3, activation = "softmax")
  model %>% compile(loss = loss, optimizer = optimizer_adam(learning_rate = 0.01),
                    metrics = "accuracy")
  model
}

test_that("fit() learns separable blobs and returns a keras_training_history invisibly", {
  d <- blobs()
  set_random_seed(1)
  model <- blob_model()
  res <- withVisible(fit(model, d$x, d$y, epochs = 8, batch_size = 16,
                         validation_split = 0.2, verbose = 0))
  expect_false(res$visible)
  history <- res$value
  expect_s3_class(history, "keras_training_history")
  expect_named(history$metrics, c("accuracy", "loss", "val_accuracy", "val_loss"))
  expect_true(all(lengths(history$metrics) == 8L))
  expect_identical(history$params, list(verbose = 0L, epochs = 8L, steps = 15L)) # 240 / 16
  expect_lt(history$metrics$loss[8], history$metrics$loss[1] / 3)
  expect_true(all(diff(history$metrics$loss[1:4]) < 0))
  expect_gt(history$metrics$val_accuracy[8], 0.95)

  score <- evaluate(model, d$x, d$y, verbose = 0)
  expect_named(score, c("accuracy", "loss"))
  expect_gt(score[["accuracy"]], 0.95)
  expect_lt(score[["loss"]], 0.2)

  df <- as.data.frame(history)
  expect_equal(nrow(df), 4L * 8L)
  expect_equal(levels(df$metric), c("accuracy", "loss"))
  expect_equal(df$value[df$metric == "loss" & df$data == "validation"], history$metrics$val_loss)
})

test_that("accuracy is the fraction of argmax hits, and evaluate() equals predict()'s", {
  d <- blobs(seed = 5)
  set_random_seed(2)
  model <- blob_model()
  fit(model, d$x, d$y, epochs = 2, batch_size = 32, verbose = 0)
  p <- predict(model, d$x, verbose = 0)
  score <- evaluate(model, d$x, d$y, batch_size = nrow(d$x), verbose = 0)
  expect_equal(score[["accuracy"]], mean(max.col(p, ties.method = "first") - 1 == d$labels))
  expect_equal(score[["loss"]], mean(-log(p[cbind(seq_along(d$labels), d$labels + 1)])),
               tolerance = 1e-5)
  # Batching changes the grouping of the mean, not its value.
  expect_equal(evaluate(model, d$x, d$y, batch_size = 7, verbose = 0), score, tolerance = 1e-5)
})

test_that("sparse categorical cross-entropy learns from integer labels", {
  d <- blobs(seed = 3)
  set_random_seed(3)
  model <- blob_model(loss = "sparse_categorical_crossentropy")
  history <- fit(model, d$x, d$labels, epochs = 8, batch_size = 16, verbose = 0)
  expect_named(history$metrics, c("accuracy", "loss"))
  expect_gt(evaluate(model, d$x, d$labels, verbose = 0)[["accuracy"]], 0.95)
  # A column matrix of labels works as well.
  expect_gt(evaluate(model, d$x, matrix(d$labels), verbose = 0)[["accuracy"]], 0.95)
})

test_that("binary cross-entropy with a sigmoid output learns two blobs", {
  d <- blobs(seed = 4)
  keep <- d$labels < 2
  x <- d$x[keep, ]
  y <- d$labels[keep]
  set_random_seed(4)
  model <- keras_model_sequential(input_shape = 2) %>%
    layer_dense(units = 8, activation = "tanh") %>%
    layer_dense(units = 1, activation = "sigmoid")
  model %>% compile(loss = "binary_crossentropy", optimizer = optimizer_adam(learning_rate = 0.02),
                    metrics = "accuracy")
  fit(model, x, y, epochs = 10, batch_size = 16, verbose = 0)
  score <- evaluate(model, x, y, verbose = 0)
  expect_gt(score[["accuracy"]], 0.95)
  p <- predict(model, x, verbose = 0)
  expect_equal(dim(p), c(sum(keep), 1L))
  expect_true(all(p > 0 & p < 1))
  # binary accuracy: threshold at 0.5
  expect_equal(score[["accuracy"]], mean((p > 0.5) == (y == 1)))
})

test_that("mse and mae regression recover a linear function", {
  withr::local_seed(7)
  x <- matrix(stats::runif(600, -1, 1), ncol = 3)
  y <- x %*% c(2, -3, 0.5) + 1
  set_random_seed(7)
  model <- keras_model_sequential(input_shape = 3) %>% layer_dense(units = 1)
  model %>% compile(loss = "mse", optimizer = optimizer_sgd(learning_rate = 0.1), metrics = "mae")
  history <- fit(model, x, y, epochs = 30, batch_size = 16, verbose = 0)
  expect_named(history$metrics, c("loss", "mae"))
  score <- evaluate(model, x, y, verbose = 0)
  expect_named(score, c("loss", "mae"))
  expect_lt(score[["loss"]], 1e-4)
  w <- get_weights(model)
  expect_equal(as.vector(w[[1]]), c(2, -3, 0.5), tolerance = 1e-2)
  expect_equal(as.vector(w[[2]]), 1, tolerance = 1e-2)

  set_random_seed(8)
  model <- keras_model_sequential(input_shape = 3) %>% layer_dense(units = 1)
  model %>% compile(loss = loss_mean_absolute_error(), optimizer = optimizer_adam(learning_rate = 0.05),
                    metrics = "mse")
  fit(model, x, y, epochs = 40, batch_size = 32, verbose = 0)
  score <- evaluate(model, x, y, verbose = 0)
  expect_named(score, c("loss", "mse"))
  expect_lt(score[["loss"]], 0.05)
})

test_that("set_random_seed() makes a build and fit repeat exactly; other seeds differ", {
  d <- blobs(seed = 9)
  run <- function(seed) {
    set_random_seed(seed)
    model <- blob_model(dropout = 0.3)
    history <- fit(model, d$x, d$y, epochs = 3, batch_size = 16, validation_split = 0.2,
                   verbose = 0)
    list(metrics = history$metrics, weights = get_weights(model))
  }
  a <- run(1)
  b <- run(1)
  expect_identical(a, b)
  c <- run(2)
  expect_false(identical(a$weights, c$weights))
  expect_false(identical(a$metrics$loss, c$metrics$loss))
})

test_that("validation_split validates on the last samples, before shuffling", {
  d <- blobs(seed = 12)
  set_random_seed(12)
  model <- blob_model()
  history <- fit(model, d$x, d$y, epochs = 2, batch_size = 16, validation_split = 0.25, verbose = 0)
  expect_equal(history$params$steps, 15L) # 225 training samples
  last <- 226:300
  score <- evaluate(model, d$x[last, ], d$y[last, ], batch_size = 16, verbose = 0)
  expect_equal(history$metrics$val_loss[2], score[["loss"]], tolerance = 1e-6)
  expect_equal(history$metrics$val_accuracy[2], score[["accuracy"]], tolerance = 1e-6)
})

test_that("validation_data is evaluated after every epoch", {
  d <- blobs(seed = 13)
  set_random_seed(13)
  model <- blob_model()
  val <- list(d$x[201:300, ], d$y[201:300, ])
  history <- fit(model, d$x[1:200, ], d$y[1:200, ], epochs = 2, validation_data = val, verbose = 0)
  expect_named(history$metrics, c("accuracy", "loss", "val_accuracy", "val_loss"))
  score <- evaluate(model, val[[1]], val[[2]], verbose = 0)
  expect_equal(history$metrics$val_loss[2], score[["loss"]], tolerance = 1e-6)
  expect_error(fit(model, d$x, d$y, validation_data = d$x, verbose = 0),
               "`validation_data` must be list\\(x_val, y_val\\)", class = "rustkeras_error")
})

test_that("initial_epoch resumes: epochs is the index of the last epoch", {
  d <- blobs(seed = 14)
  model <- blob_model()
  out <- capture.output(history <- fit(model, d$x, d$y, epochs = 5, initial_epoch = 3, verbose = 2))
  expect_equal(lengths(history$metrics), c(accuracy = 3L, loss = 3L))
  expect_equal(grep("^Epoch", out, value = TRUE), c("Epoch 3/5", "Epoch 4/5", "Epoch 5/5"))
})

test_that("predict() returns an n x units matrix; batch_size does not change it", {
  d <- blobs(seed = 15)
  set_random_seed(15)
  model <- blob_model()
  fit(model, d$x, d$y, epochs = 1, verbose = 0)
  p <- predict(model, d$x, verbose = 0)
  expect_true(is.matrix(p))
  expect_equal(dim(p), c(300L, 3L))
  expect_type(p, "double")
  expect_equal(rowSums(p), rep(1, 300), tolerance = 1e-6)
  expect_identical(predict(model, d$x, batch_size = 7, verbose = 0), p)
  expect_identical(predict(model, d$x, batch_size = 1000, verbose = 0), p)
  expect_identical(predict(model, d$x[5, , drop = FALSE], verbose = 0), p[5, , drop = FALSE])
  # predict() works before compile() as in Keras
  fresh <- keras_model_sequential(input_shape = 2) %>% layer_dense(4)
  expect_equal(dim(predict(fresh, d$x[1:3, ], verbose = 0)), c(3L, 4L))
})

test_that("get_weights() gives Keras's order and shapes; set_weights() round-trips", {
  model <- keras_model_sequential(input_shape = 784) %>%
    layer_dense(units = 256, activation = "relu") %>%
    layer_dropout(rate = 0.4) %>%
    layer_dense(units = 128, activation = "relu") %>%
    layer_dropout(rate = 0.3) %>%
    layer_dense(units = 10, activation = "softmax")
  w <- get_weights(model)
  expect_length(w, 6L)
  expect_equal(lapply(w, dim), list(c(784L, 256L), 256L, c(256L, 128L), 128L, c(128L, 10L), 10L))
  expect_equal(sum(lengths(w)), 235146)
  # glorot_uniform kernels: |w| <= sqrt(6 / (fan_in + fan_out)); zero biases
  expect_lte(max(abs(w[[1]])), sqrt(6 / (784 + 256)))
  expect_gt(max(abs(w[[1]])), 0.9 * sqrt(6 / (784 + 256)))
  expect_equal(w[[2]], array(0, 256))

  withr::local_seed(1)
  new <- lapply(w, function(a) array(round(stats::rnorm(length(a)), 3), dim = dim(a)))
  res <- withVisible(set_weights(model, new))
  expect_false(res$visible)
  expect_identical(res$value, model)
  # values exactly representable in float32 round-trip exactly
  new32 <- lapply(new, function(a) {
    a[] <- as.numeric(as.integer(a * 1024)) / 1024
    a
  })
  set_weights(model, new32)
  expect_identical(get_weights(model), new32)
  # a plain vector is accepted for a bias
  new32[[2]] <- as.vector(new32[[2]])
  set_weights(model, new32)
  expect_identical(get_weights(model)[[2]], array(new32[[2]], 256))
})

test_that("predict() with known weights computes x %*% W + b", {
  model <- keras_model_sequential(input_shape = 3) %>%
    layer_dense(units = 2, activation = "relu") %>%
    layer_dense(units = 1)
  w1 <- matrix(c(1, 0, -1, 0.5, 2, 0), nrow = 3)
  b1 <- c(0.5, -1)
  w2 <- matrix(c(2, -1), nrow = 2)
  b2 <- 0.25
  set_weights(model, list(w1, b1, w2, b2))
  x <- rbind(c(1, 2, 3), c(0.5, -0.5, 0), c(-2, 1, 4))
  hidden <- pmax(x %*% w1 + matrix(b1, 3, 2, byrow = TRUE), 0)
  expected <- hidden %*% w2 + b2
  expect_equal(predict(model, x, verbose = 0), expected, tolerance = 1e-6)
  expect_equal(as.vector(expected), c(-3.25, 2.25, 0.25)) # checked by hand
})

test_that("set_weights() names the element and the shapes when they do not fit", {
  model <- keras_model_sequential(input_shape = 4) %>% layer_dense(units = 3)
  err <- expect_error(set_weights(model, list(matrix(0, 3, 4), rep(0, 3))), class = "rustkeras_error")
  expect_match(conditionMessage(err), "element 1 has shape (3, 4), but the model expects (4, 3)",
               fixed = TRUE)
  expect_equal(conditionCall(err), quote(set_weights()))
  expect_error(set_weights(model, list(matrix(0, 4, 3), rep(0, 4))),
               "element 2 has shape (4), but the model expects (3)", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(set_weights(model, list(matrix(0, 4, 3))),
               "list of 2 arrays for this model, not 1", class = "rustkeras_error")
  expect_error(set_weights(model, matrix(0, 4, 3)), "`weights` must be a list",
               class = "rustkeras_error")
  # the failed calls changed nothing
  expect_equal(get_weights(model)[[2]], array(0, 3))
})

test_that("verbose = 2 prints Keras's one line per epoch", {
  d <- blobs(seed = 16)
  model <- blob_model()
  out <- capture.output(fit(model, d$x, d$y, epochs = 2, batch_size = 32,
                            validation_split = 0.2, verbose = 2))
  value <- "\\d\\.\\d{4}(e[-+]\\d+)?"
  expect_length(out, 4L)
  expect_identical(out[c(1, 3)], c("Epoch 1/2", "Epoch 2/2"))
  expect_match(out[c(2, 4)], paste0(
    "^8/8 - \\d+s - \\d+(ms|us|s)/step - accuracy: ", value, " - loss: ", value,
    " - val_accuracy: ", value, " - val_loss: ", value, "$"
  ))
  # One epoch: no "Epoch 1/1" header, as in Keras.
  out <- capture.output(fit(model, d$x, d$y, epochs = 1, batch_size = 100, verbose = 2))
  expect_match(out, paste0("^3/3 - \\d+s - \\d+(ms|us|s)/step - accuracy: ", value,
                           " - loss: ", value, "$"))
})

test_that("verbose = 1 outside a terminal prints one bar line per epoch", {
  d <- blobs(seed = 17)
  model <- blob_model()
  out <- capture.output(fit(model, d$x, d$y, epochs = 2, batch_size = 32,
                            validation_split = 0.2, verbose = 1))
  bar <- strrep("\u2501", 20)
  value <- "\\d\\.\\d{4}(e[-+]\\d+)?"
  expect_length(out, 4L)
  expect_identical(out[c(1, 3)], c("Epoch 1/2", "Epoch 2/2"))
  expect_match(out[c(2, 4)], paste0(
    "^8/8 ", bar, " \\d+s \\d+(ms|us|s)/step - accuracy: ", value, " - loss: ", value,
    " - val_accuracy: ", value, " - val_loss: ", value, "$"
  ))
  expect_false(any(grepl("[\b\r]", out)))

  out <- capture.output(score <- evaluate(model, d$x, d$y, verbose = 1))
  expect_match(out, paste0("^10/10 ", bar, " \\d+s \\d+(ms|us|s)/step - accuracy: ",
                           sprintf("%.4f", score[["accuracy"]]), " - loss: ",
                           sprintf("%.4f", score[["loss"]]), "$"))
  out <- capture.output(invisible(predict(model, d$x, verbose = 1)))
  expect_match(out, paste0("^10/10 ", bar, " \\d+s \\d+(ms|us|s)/step$"))
})

test_that("verbose = 0 and 'auto' under testthat print nothing", {
  d <- blobs(seed = 18)
  model <- blob_model()
  expect_silent(fit(model, d$x, d$y, epochs = 2, verbose = 0))
  expect_silent(fit(model, d$x, d$y, epochs = 2))
  expect_silent(evaluate(model, d$x, d$y))
  expect_silent(predict(model, d$x))
  withr::local_options(keras.verbose = 2)
  expect_output(fit(model, d$x, d$y, epochs = 1), "^10/10 - ")
})

test_that("fit() and evaluate() before compile() are clear errors", {
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(3)
  x <- matrix(0, 4, 2)
  y <- to_categorical(c(0, 1, 2, 1), 3)
  err <- expect_error(fit(model, x, y, verbose = 0), class = "rustkeras_error")
  expect_match(conditionMessage(err), "call `compile()` on the model before `fit()`", fixed = TRUE)
  expect_equal(conditionCall(err), quote(fit()))
  expect_error(evaluate(model, x, y, verbose = 0), "compile\\(\\)", class = "rustkeras_error")
  expect_error(compile(model, optimizer = "adam"), "`loss` is missing", class = "rustkeras_error")
})

test_that("bad data gives rustkeras errors naming the argument and the shapes", {
  d <- blobs(seed = 19)
  model <- blob_model()
  fit_quiet <- function(...) fit(model, ..., verbose = 0)

  err <- expect_error(fit_quiet(cbind(d$x, 1), d$y), class = "rustkeras_error")
  expect_match(conditionMessage(err), "layer 'dense(_[0-9]+)?' expects 2 features, got 3")
  expect_equal(conditionCall(err), quote(fit()))
  expect_error(predict(model, matrix(0, 2, 5), verbose = 0), "expects 2 features, got 5",
               class = "rustkeras_error")
  expect_error(evaluate(model, matrix(0, 2, 1), d$y[1:2, ], verbose = 0), "expects 2 features, got 1",
               class = "rustkeras_error")

  expect_error(fit_quiet(d$x, d$y[-1, ]),
               "`x` and `y` have different numbers of samples (300 and 299)", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(fit_quiet(d$x, d$y[, 1:2]), "`y` has 2 values per sample but the model outputs 3",
               class = "rustkeras_error")

  for (bad in c(NA, NaN, Inf, -Inf)) {
    x <- d$x
    x[7, 2] <- bad
    expect_error(fit_quiet(x, d$y), "`x` must not contain NA, NaN or Inf", class = "rustkeras_error")
    expect_error(predict(model, x, verbose = 0), "`x` must not contain NA, NaN or Inf",
                 class = "rustkeras_error")
  }
  # predict() converts and checks its input batch by batch: a bad value in a late batch
  # is named by its sample in the whole input, and an integer NA is an NA too.
  x <- d$x
  x[250, 2] <- NaN
  expect_error(predict(model, x, batch_size = 32, verbose = 0),
               "found NA or NaN in sample 250, value 2", class = "rustkeras_error")
  xi <- matrix(as.integer(round(d$x * 10)), ncol = 2)
  expect_equal(predict(model, xi, batch_size = 7, verbose = 0),
               predict(model, xi * 1.0, batch_size = 300, verbose = 0), tolerance = 1e-6)
  xi[299, 1] <- NA
  expect_error(predict(model, xi, batch_size = 32, verbose = 0),
               "found NA or NaN in sample 299, value 1", class = "rustkeras_error")
  y <- d$y
  y[3, 1] <- NA
  expect_error(fit_quiet(d$x, y), "`y` must not contain NA", class = "rustkeras_error")

  chr <- matrix(as.character(d$x), ncol = 2)
  expect_error(fit_quiet(chr, d$y), "`x` must be a numeric matrix or array, not a character",
               class = "rustkeras_error")
  expect_error(fit_quiet(as.data.frame(d$x), d$y), "not a data frame; use as.matrix()", fixed = TRUE,
               class = "rustkeras_error")
  expect_error(fit_quiet(d$x, as.character(d$labels)), "`y` must be a numeric",
               class = "rustkeras_error")
  expect_error(fit_quiet(NULL, d$y), "`x` is missing", class = "rustkeras_error")
  expect_error(predict(model, list(1, 2), verbose = 0), "`x` must hold 1 array (one per model input), not 2",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(predict(model, list("a"), verbose = 0), "`x[[1]]` must be a numeric", fixed = TRUE,
               class = "rustkeras_error")
})

test_that("labels out of range for sparse cross-entropy are errors", {
  model <- blob_model(loss = "sparse_categorical_crossentropy")
  x <- matrix(0, 4, 2)
  expect_error(fit(model, x, c(0, 1, 3, 2), verbose = 0), "`y` holds label 3, outside the 3 classes 0..2",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(fit(model, x, c(0, -1, 2, 2), verbose = 0), "label -1", class = "rustkeras_error")
  expect_error(evaluate(model, x, c(0, 1, 2, 7), verbose = 0), "label 7", class = "rustkeras_error")
  expect_error(fit(model, x, c(0, 1.5, 2, 2), verbose = 0), "1.5", class = "rustkeras_error")
})

test_that("bad fit() arguments give rustkeras errors naming the argument", {
  d <- blobs(seed = 20)
  model <- blob_model()
  expect_error(fit(model, d$x, d$y, verbose = 3), "`verbose` must be 0, 1, 2 or \"auto\"",
               fixed = TRUE, class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = "loud"), "`verbose`", class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, batch_size = 0),
               "`batch_size` must be a positive integer, not 0", class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, batch_size = -5), "`batch_size`",
               class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, batch_size = 2.5), "`batch_size`",
               class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, batch_size = "32"), "`batch_size`",
               class = "rustkeras_error")
  expect_error(predict(model, d$x, batch_size = 0, verbose = 0), "`batch_size`",
               class = "rustkeras_error")
  expect_error(evaluate(model, d$x, d$y, batch_size = NA, verbose = 0), "`batch_size`",
               class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, epochs = 0), "`epochs` must be a positive integer",
               class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, validation_split = 1),
               "`validation_split` must be in \\[0, 1\\)", class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y, verbose = 0, validation_split = -0.1),
               "`validation_split`", class = "rustkeras_error")
})

test_that("after an error the model still trains", {
  d <- blobs(seed = 21)
  set_random_seed(21)
  model <- blob_model()
  before <- get_weights(model)
  expect_error(fit(model, cbind(d$x, 0), d$y, verbose = 0), class = "rustkeras_error")
  expect_error(fit(model, d$x, d$y[-1, ], verbose = 0), class = "rustkeras_error")
  expect_identical(get_weights(model), before)
  history <- fit(model, d$x, d$y, epochs = 5, batch_size = 16, verbose = 0)
  expect_length(history$metrics$loss, 5L)
  expect_gt(evaluate(model, d$x, d$y, verbose = 0)[["accuracy"]], 0.95)
})

test_that("a model read back without its engine state is a clear error, not a crash", {
  model <- blob_model()
  path <- withr::local_tempfile(fileext = ".rds")
  # Version 2 serialization cannot carry the engine state (R/model-serialization.R).
  saveRDS(model, path, version = 2)
  dead <- readRDS(path)
  msg <- "engine object no longer exists"
  err <- expect_error(predict(dead, matrix(0, 2, 2), verbose = 0), msg, class = "rustkeras_error")
  expect_match(conditionMessage(err), "serialization version 2", fixed = TRUE)
  expect_equal(conditionCall(err), quote(predict()))
  expect_error(fit(dead, matrix(0, 3, 2), diag(3), verbose = 0), msg, class = "rustkeras_error")
  expect_error(evaluate(dead, matrix(0, 3, 2), diag(3), verbose = 0), msg, class = "rustkeras_error")
  expect_error(get_weights(dead), msg, class = "rustkeras_error")
  expect_error(set_weights(dead, list()), msg, class = "rustkeras_error")
  err <- expect_error(summary(dead), msg, class = "rustkeras_error")
  expect_equal(conditionCall(err), quote(summary()))
  err <- expect_error(print(dead), msg, class = "rustkeras_error")
  expect_equal(conditionCall(err), quote(print()))
  expect_error(dead %>% layer_dense(2), msg, class = "rustkeras_error")
  expect_error(compile(dead, loss = "mse"), msg, class = "rustkeras_error")
  # count_params() and get_config() take a layer or a model: the message names what the
  # object was, a model, not "this layer".
  for (f in list(count_params, get_config)) {
    err <- expect_error(f(dead), class = "rustkeras_state_error")
    expect_match(conditionMessage(err), "^this model's engine object no longer exists",
                 ignore.case = TRUE)
  }
  # the original is untouched
  expect_equal(dim(predict(model, matrix(0, 2, 2), verbose = 0)), c(2L, 3L))
})

test_that("a layer restored by readRDS() comes back; one saved without its state is named a layer", {
  layer <- layer_dense(units = 2)
  layer(keras_model_sequential(input_shape = 3))  # adds it: its engine layer is made
  path <- withr::local_tempfile(fileext = ".rds")
  saveRDS(layer, path)
  expect_identical(count_params(readRDS(path)), 8)
  saveRDS(layer, path, version = 2)
  err <- expect_error(count_params(readRDS(path)), class = "rustkeras_state_error")
  expect_match(conditionMessage(err), "^this layer's engine object no longer exists")
})

test_that("evaluate() and fit() on 0 samples are errors that say so", {
  model <- blob_model()
  x0 <- matrix(numeric(0), 0, 2)
  y0 <- matrix(numeric(0), 0, 3)
  err <- expect_error(evaluate(model, x0, y0, verbose = 0), class = "rustkeras_input_error")
  expect_equal(conditionMessage(err), "`x` has 0 samples: evaluate() needs at least one")
  expect_equal(conditionCall(err), quote(evaluate()))
  err <- expect_error(fit(model, x0, y0, verbose = 0), class = "rustkeras_input_error")
  expect_equal(conditionMessage(err), "`x` has 0 samples: fit() needs at least one")
  b <- blobs(5)
  err <- expect_error(fit(model, b$x, b$y, validation_data = list(x0, y0), verbose = 0),
                      class = "rustkeras_input_error")
  expect_equal(conditionMessage(err), "`validation_data` has 0 samples: fit() needs at least one")
})

test_that("a Sequential model without layers cannot fit, evaluate or predict", {
  empty <- keras_model_sequential(input_shape = 4, name = "empty")
  x <- matrix(1:8, 2, 4)
  err <- expect_error(predict(empty, x, verbose = 0), class = "rustkeras_state_error")
  expect_equal(conditionMessage(err), "model 'empty' has no layers: add layers before predict()")
  empty %>% compile(optimizer = "sgd", loss = "mse")
  err <- expect_error(fit(empty, x, x, verbose = 0), class = "rustkeras_state_error")
  expect_equal(conditionMessage(err), "model 'empty' has no layers: add layers before fit()")
  err <- expect_error(evaluate(empty, x, x, verbose = 0), class = "rustkeras_state_error")
  expect_equal(conditionMessage(err), "model 'empty' has no layers: add layers before evaluate()")
  # With a layer it works.
  empty %>% layer_dense(4)
  expect_equal(dim(predict(empty, x, verbose = 0)), c(2L, 4L))
})

test_that("bad values are located by sample and feature; fractional labels are named", {
  model <- keras_model_sequential(input_shape = 4) %>% layer_dense(3, activation = "softmax")
  model %>% compile(optimizer = "adam", loss = "sparse_categorical_crossentropy", metrics = "accuracy")
  x <- matrix(0, 5, 4)
  x[2, 3] <- NA
  expect_error(fit(model, x, c(0, 1, 2, 1, 0), verbose = 0),
               "found NA or NaN in sample 2, value 3", class = "rustkeras_error")
  x[2, 3] <- -Inf
  expect_error(fit(model, x, c(0, 1, 2, 1, 0), verbose = 0),
               "found -Inf in sample 2, value 3", class = "rustkeras_error")
  expect_error(fit(model, matrix(0, 5, 4), c(0, 1, 2, 1.5, 1), verbose = 0),
               "holds label 1.5; class labels must be whole numbers 0..2", class = "rustkeras_error")
})

test_that("compile(), evaluate() and predict() refuse arguments they would ignore", {
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(1)
  expect_error(compile(model, loss = "mse", weighted_metrics = list("mae")),
               "`weighted_metrics` is not supported yet", class = "rustkeras_error")
  # Keras's performance switches change nothing here.
  compile(model, loss = "mse", jit_compile = TRUE, run_eagerly = FALSE)
  x <- matrix(1, 3, 2)
  expect_error(evaluate(model, x, matrix(1, 3, 1), sample_weight = c(1, 2, 3), verbose = 0),
               "`sample_weight` is not supported yet")
  expect_error(predict(model, x, verbose = 0, batch_szie = 2),
               "Unrecognized arguments passed to predict\\(\\): `batch_szie`")
  expect_equal(dim(predict(model, x, verbose = 0, steps = NULL)), c(3L, 1L))
})

# --- Interrupts (Ctrl-C) ------------------------------------------------------------
# rk_selftest_sigint_at_poll(n) raises a real SIGINT just before the engine's n-th poll
# (after the n-th batch), as a user's Ctrl-C arriving then would.

interrupt_model <- function() {
  set.seed(11)
  m <- keras_model_sequential(input_shape = 4) %>%
    layer_dense(8, activation = "relu") %>%
    layer_dense(2, activation = "softmax")
  m %>% compile(optimizer = "sgd", loss = "categorical_crossentropy", metrics = "accuracy")
  m
}

interrupt_data <- local({
  set.seed(12)
  x <- matrix(runif(400), ncol = 4)
  list(x = x, y = to_categorical(as.integer(x[, 1] > 0.5), 2))
})

test_that("Ctrl-C during fit() keeps the last finished batch's weights and raises R's interrupt", {
  on.exit(rk_selftest_sigint_at_poll(0L))
  m <- interrupt_model()
  rk_selftest_sigint_at_poll(3L)
  reached <- FALSE
  expect_message(
    cnd <- tryCatch({
      fit(m, interrupt_data$x, interrupt_data$y, epochs = 5, batch_size = 10,
          shuffle = FALSE, verbose = 0)
      reached <- TRUE
    }, interrupt = function(e) e),
    "fit\\(\\) was interrupted"
  )
  expect_false(reached)
  expect_s3_class(cnd, "interrupt")
  expect_s3_class(cnd$history, "keras_training_history")
  # The weights are those after exactly three batches of 10, in order.
  ref <- interrupt_model()
  fit(ref, interrupt_data$x[1:30, ], interrupt_data$y[1:30, ], epochs = 1, batch_size = 10,
      shuffle = FALSE, verbose = 0)
  expect_equal(get_weights(m), get_weights(ref), tolerance = 1e-7)
  # The model trains on after it.
  expect_no_error(fit(m, interrupt_data$x, interrupt_data$y, epochs = 1, verbose = 0))
})

test_that("Ctrl-C during evaluate() or predict() raises R's interrupt", {
  on.exit(rk_selftest_sigint_at_poll(0L))
  m <- interrupt_model()
  rk_selftest_sigint_at_poll(2L)
  cnd <- tryCatch(evaluate(m, interrupt_data$x, interrupt_data$y, batch_size = 10, verbose = 0),
                  interrupt = function(e) e)
  expect_s3_class(cnd, "interrupt")
  rk_selftest_sigint_at_poll(2L)
  cnd <- tryCatch(predict(m, interrupt_data$x, batch_size = 10, verbose = 0),
                  interrupt = function(e) e)
  expect_s3_class(cnd, "interrupt")
  # Nothing is left pending: the next call runs to its end.
  expect_length(predict(m, interrupt_data$x, verbose = 0), 200L)
})

test_that("an uncaught interrupt in fit() stops a script", {
  skip_on_cran()
  script <- tempfile(fileext = ".R")
  writeLines(c(
    "library(rustkeras)",
    "x <- matrix(runif(400), ncol = 4); y <- to_categorical(as.integer(x[, 1] > 0.5), 2)",
    "m <- keras_model_sequential(input_shape = 4) %>% layer_dense(2, activation = 'softmax')",
    "m %>% compile(optimizer = 'sgd', loss = 'categorical_crossentropy')",
    "rustkeras:::rk_selftest_sigint_at_poll(2L)",
    "fit(m, x, y, epochs = 3, batch_size = 10, verbose = 0)",
    "cat('NOT STOPPED\\n')"
  ), script)
  out <- suppressWarnings(system2(
    file.path(R.home("bin"), "Rscript"), shQuote(script), stdout = TRUE, stderr = TRUE,
    env = c("R_TESTS=", paste0("R_LIBS=", shQuote(paste(.libPaths(), collapse = .Platform$path.sep))))
  ))
  expect_false(any(grepl("NOT STOPPED", out)))
  expect_true(any(grepl("fit\\(\\) was interrupted", out)))
  expect_false(is.null(attr(out, "status")))
})
