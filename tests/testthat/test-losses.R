# Losses: the values evaluate() reports, compared with Keras 3's formulas
# (keras/src/losses/losses.py and backend categorical/binary_crossentropy) written out
# in R. An identity Dense layer passes the input through, so the input *is* the model's
# output (probabilities, logits or regression values).

identity_model <- function(k, activation = NULL, loss, metrics = NULL) {
  model <- keras_model_sequential(input_shape = k) %>% layer_dense(units = k, activation = activation)
  set_weights(model, list(diag(k), rep(0, k)))
  model %>% compile(optimizer = "sgd", loss = loss, metrics = metrics)
  model
}

loss_of <- function(model, x, y) evaluate(model, x, y, batch_size = nrow(x), verbose = 0)[["loss"]]

eps <- 1e-7
p <- rbind(c(0.7, 0.2, 0.1), c(0.1, 0.1, 0.8), c(0.3, 0.4, 0.3), c(0.05, 0.9, 0.05))
labels <- c(0, 2, 2, 0)
onehot <- to_categorical(labels, 3)

test_that("categorical cross-entropy on probabilities is -mean(sum(y log p))", {
  model <- identity_model(3, loss = "categorical_crossentropy")
  expected <- mean(-log(p[cbind(1:4, labels + 1)]))
  expect_equal(loss_of(model, p, onehot), expected, tolerance = 1e-6)
  # Keras normalises the rows and clips them to [1e-7, 1 - 1e-7]
  expect_equal(loss_of(model, 2 * p, onehot), expected, tolerance = 1e-6)
  zero <- rbind(c(0, 1, 0))
  expect_equal(loss_of(model, zero, rbind(c(1, 0, 0))), -log(eps), tolerance = 1e-4)
  # soft targets
  soft <- rbind(c(0.5, 0.5, 0), c(0.2, 0.3, 0.5), c(1, 0, 0), c(0, 0, 1))
  expect_equal(loss_of(model, p, soft), mean(-rowSums(soft * log(p))), tolerance = 1e-6)
})

test_that("with a softmax output, categorical cross-entropy is exact (from the logits)", {
  z <- rbind(c(0, 20, 0), c(1, 2, 3))
  y <- rbind(c(1, 0, 0), c(0, 0, 1))
  log_softmax <- z - log(rowSums(exp(z)))
  model <- identity_model(3, activation = "softmax", loss = "categorical_crossentropy")
  expect_equal(loss_of(model, z, y), mean(-rowSums(y * log_softmax)), tolerance = 1e-5)
})

test_that("from_logits = TRUE applies the softmax or sigmoid inside the loss", {
  z <- rbind(c(0.5, -1, 2), c(3, 0, -3), c(0, 0, 0), c(-2, 4, 1))
  log_softmax <- z - log(rowSums(exp(z)))
  model <- identity_model(3, loss = loss_categorical_crossentropy(from_logits = TRUE))
  expect_equal(loss_of(model, z, onehot), mean(-rowSums(onehot * log_softmax)), tolerance = 1e-6)
  model <- identity_model(3, loss = loss_sparse_categorical_crossentropy(from_logits = TRUE))
  expect_equal(loss_of(model, z, labels), mean(-rowSums(onehot * log_softmax)), tolerance = 1e-6)

  yb <- rbind(c(1, 0, 1), c(0, 0, 1), c(1, 1, 1), c(0, 1, 0))
  bce_logits <- pmax(z, 0) - z * yb + log1p(exp(-abs(z)))
  model <- identity_model(3, loss = loss_binary_crossentropy(from_logits = TRUE))
  expect_equal(loss_of(model, z, yb), mean(bce_logits), tolerance = 1e-6)
})

test_that("sparse categorical cross-entropy equals the one-hot loss", {
  sparse <- identity_model(3, loss = "sparse_categorical_crossentropy", metrics = "accuracy")
  dense <- identity_model(3, loss = loss_categorical_crossentropy(), metrics = "accuracy")
  s <- evaluate(sparse, p, labels, batch_size = 4, verbose = 0)
  d <- evaluate(dense, p, onehot, batch_size = 4, verbose = 0)
  expect_equal(s, d, tolerance = 1e-6)
  # the argmax of p is 0, 2, 1, 1: two of four hit
  expect_equal(s[["accuracy"]], 0.5)
})

test_that("binary cross-entropy clips probabilities and averages over outputs", {
  pb <- rbind(c(0.9, 0.2), c(0.4, 0.6), c(0, 1), c(0.5, 0.99))
  yb <- rbind(c(1, 0), c(0, 1), c(1, 0), c(1, 1))
  # in float32, 1 - 1e-7 rounds to 1 - 2^-23: a label 0 predicted as 1 costs 15.94, not 16.12
  clipped <- pmin(pmax(pb, eps), 1 - 2^-23)
  bce <- -(yb * log(clipped) + (1 - yb) * log(1 - clipped))
  model <- identity_model(2, loss = "binary_crossentropy", metrics = "accuracy")
  score <- evaluate(model, pb, yb, batch_size = 4, verbose = 0)
  expect_equal(score[["loss"]], mean(bce), tolerance = 1e-5)
  # binary accuracy: prediction > 0.5 against the label
  expect_equal(score[["accuracy"]], mean((pb > 0.5) == (yb == 1)))
})

test_that("mean squared and absolute errors", {
  pred <- rbind(c(1, 2), c(-1, 0.5), c(3, 3))
  y <- rbind(c(0, 2), c(1, 1), c(3, -1))
  model <- identity_model(2, loss = "mse", metrics = c("mae", "mse"))
  score <- evaluate(model, pred, y, batch_size = 3, verbose = 0)
  expect_named(score, c("loss", "mae", "mse"))
  expect_equal(score[["loss"]], mean((pred - y)^2), tolerance = 1e-6)
  expect_equal(score[["mse"]], mean((pred - y)^2), tolerance = 1e-6)
  expect_equal(score[["mae"]], mean(abs(pred - y)), tolerance = 1e-6)
  expect_equal(loss_of(identity_model(2, loss = "mean_absolute_error"), pred, y), mean(abs(pred - y)),
               tolerance = 1e-6)
  expect_equal(loss_of(identity_model(2, loss = "mae"), pred, y), mean(abs(pred - y)), tolerance = 1e-6)
  expect_equal(loss_of(identity_model(2, loss = loss_mean_squared_error()), pred, y),
               mean((pred - y)^2), tolerance = 1e-6)
  # the mean over batches of different sizes is the mean over samples
  expect_equal(evaluate(model, pred, y, batch_size = 2, verbose = 0)[["loss"]], mean((pred - y)^2),
               tolerance = 1e-6)
})

test_that("loss objects and names", {
  expect_equal(unclass(loss_categorical_crossentropy()),
               list(name = "categorical_crossentropy", from_logits = FALSE))
  expect_equal(loss_binary_crossentropy(from_logits = TRUE)$from_logits, TRUE)
  expect_equal(loss_mean_squared_error()$name, "mean_squared_error")
  expect_equal(loss_mean_absolute_error()$name, "mean_absolute_error")
  expect_equal(loss_sparse_categorical_crossentropy()$name, "sparse_categorical_crossentropy")
  expect_output(print(loss_categorical_crossentropy()), "^<loss categorical_crossentropy>$")
  expect_output(print(loss_binary_crossentropy(from_logits = TRUE)),
                "^<loss binary_crossentropy> from logits$")
})

test_that("unknown and bad losses give rustkeras errors listing the known ones", {
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(1)
  err <- expect_error(compile(model, loss = "hinge"), class = "rustkeras_error")
  expect_equal(conditionMessage(err), paste(
    "unknown loss 'hinge'; known losses: categorical_crossentropy,",
    "sparse_categorical_crossentropy, binary_crossentropy, mean_squared_error,",
    "mean_absolute_error, mse, mae"
  ))
  expect_equal(conditionCall(err), quote(compile()))
  expect_error(compile(model, loss = function(y, p) 0), "unknown loss function", class = "rustkeras_error")
  expect_error(loss_categorical_crossentropy(from_logits = "yes"), "`from_logits` must be TRUE or FALSE",
               class = "rustkeras_error")
  expect_error(loss_binary_crossentropy(label_smoothing = 0.1),
               "unsupported loss argument\\(s\\): label_smoothing", class = "rustkeras_error")
  expect_error(compile(model, loss = "mse", metrics = list(1)), "`metrics` must be a character vector",
               class = "rustkeras_error")
})

test_that("unknown metrics are errors that list the known ones", {
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(1)
  expect_error(compile(model, loss = "mse", metrics = "auc"), "auc", class = "rustkeras_error")
})
