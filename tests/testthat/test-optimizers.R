# Optimizers: Keras 3's defaults and update rules, checked step by step against the
# formulas of keras/src/optimizers/{sgd,rmsprop,adam,adamw}.py written out in R, on a
# linear model trained with full batches (one update per epoch) and MSE.

x <- rbind(c(1, 2), c(-1, 0.5), c(0.3, -2), c(2, 1))
y <- c(1, -1, 0.5, 2)
w0 <- c(0.5, -0.25, 0.1) # kernel (2), bias

mse_grad <- function(theta) {
  r <- x %*% theta[1:2] + theta[3] - y
  c(2 / nrow(x) * crossprod(x, r), 2 / nrow(x) * sum(r))
}

# `step(theta, g, state, t)` returns list(theta, state); runs `steps` updates.
reference <- function(step, steps, weight_decay = 0, lr = 0) {
  theta <- w0
  state <- list()
  for (t in seq_len(steps)) {
    g <- mse_grad(theta)
    theta <- theta - theta * weight_decay * lr # Keras's decoupled weight decay, first
    res <- step(theta, g, state, t)
    theta <- res$theta
    state <- res$state
  }
  theta
}

trained <- function(optimizer, steps) {
  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(units = 1)
  set_weights(model, list(matrix(w0[1:2], 2), w0[3]))
  model %>% compile(optimizer = optimizer, loss = "mse")
  fit(model, x, y, epochs = steps, batch_size = nrow(x), shuffle = FALSE, verbose = 0)
  w <- get_weights(model)
  c(as.vector(w[[1]]), as.vector(w[[2]]))
}

sgd_step <- function(lr, momentum = 0, nesterov = FALSE) {
  function(theta, g, state, t) {
    if (momentum == 0) return(list(theta = theta - lr * g, state = state))
    m <- if (is.null(state$m)) 0 * g else state$m
    m <- momentum * m - lr * g
    theta <- if (nesterov) theta + momentum * m - lr * g else theta + m
    list(theta = theta, state = list(m = m))
  }
}

rmsprop_step <- function(lr = 1e-3, rho = 0.9, momentum = 0, eps = 1e-7, centered = FALSE) {
  function(theta, g, state, t) {
    v <- if (is.null(state$v)) 0 * g else state$v
    mg <- if (is.null(state$mg)) 0 * g else state$mg
    m <- if (is.null(state$m)) 0 * g else state$m
    v <- rho * v + (1 - rho) * g^2
    denom <- v + eps
    if (centered) {
      mg <- rho * mg + (1 - rho) * g
      denom <- denom - mg^2
    }
    inc <- lr * g / sqrt(denom)
    if (momentum > 0) {
      m <- momentum * m + inc
      theta <- theta - m
    } else {
      theta <- theta - inc
    }
    list(theta = theta, state = list(v = v, mg = mg, m = m))
  }
}

adam_step <- function(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-7, amsgrad = FALSE) {
  function(theta, g, state, t) {
    m <- if (is.null(state$m)) 0 * g else state$m
    v <- if (is.null(state$v)) 0 * g else state$v
    vhat <- if (is.null(state$vhat)) 0 * g else state$vhat
    alpha <- lr * sqrt(1 - b2^t) / (1 - b1^t)
    m <- m + (g - m) * (1 - b1)
    v <- v + (g^2 - v) * (1 - b2)
    if (amsgrad) {
      vhat <- pmax(vhat, v)
      theta <- theta - alpha * m / (sqrt(vhat) + eps)
    } else {
      theta <- theta - alpha * m / (sqrt(v) + eps)
    }
    list(theta = theta, state = list(m = m, v = v, vhat = vhat))
  }
}

test_that("SGD follows Keras's update, with and without (Nesterov) momentum", {
  expect_equal(trained(optimizer_sgd(learning_rate = 0.1), 3),
               reference(sgd_step(0.1), 3), tolerance = 1e-5)
  expect_equal(trained("sgd", 2), reference(sgd_step(0.01), 2), tolerance = 1e-5)
  expect_equal(trained(optimizer_sgd(learning_rate = 0.05, momentum = 0.9), 4),
               reference(sgd_step(0.05, 0.9), 4), tolerance = 1e-5)
  expect_equal(trained(optimizer_sgd(learning_rate = 0.05, momentum = 0.9, nesterov = TRUE), 4),
               reference(sgd_step(0.05, 0.9, TRUE), 4), tolerance = 1e-5)
})

test_that("RMSprop follows Keras's update (lr / sqrt(v + eps))", {
  expect_equal(trained(optimizer_rmsprop(), 3), reference(rmsprop_step(), 3), tolerance = 1e-5)
  expect_equal(trained("rmsprop", 3), reference(rmsprop_step(), 3), tolerance = 1e-5)
  expect_equal(trained(optimizer_rmsprop(learning_rate = 0.01, rho = 0.8), 3),
               reference(rmsprop_step(0.01, 0.8), 3), tolerance = 1e-5)
  expect_equal(trained(optimizer_rmsprop(learning_rate = 0.01, momentum = 0.5), 3),
               reference(rmsprop_step(0.01, momentum = 0.5), 3), tolerance = 1e-5)
  expect_equal(trained(optimizer_rmsprop(learning_rate = 0.01, centered = TRUE), 3),
               reference(rmsprop_step(0.01, centered = TRUE), 3), tolerance = 1e-5)
})

test_that("Adam follows Keras's update with bias correction", {
  expect_equal(trained(optimizer_adam(), 3), reference(adam_step(), 3), tolerance = 1e-5)
  expect_equal(trained("adam", 3), reference(adam_step(), 3), tolerance = 1e-5)
  expect_equal(trained(optimizer_adam(learning_rate = 0.1, beta_1 = 0.5, beta_2 = 0.9), 4),
               reference(adam_step(0.1, 0.5, 0.9), 4), tolerance = 1e-5)
  expect_equal(trained(optimizer_adam(learning_rate = 0.1, amsgrad = TRUE), 4),
               reference(adam_step(0.1, amsgrad = TRUE), 4), tolerance = 1e-5)
})

test_that("AdamW and weight_decay shrink every weight by lr * weight_decay first", {
  expect_equal(trained(optimizer_adamw(learning_rate = 0.1), 3),
               reference(adam_step(0.1), 3, weight_decay = 0.004, lr = 0.1), tolerance = 1e-5)
  expect_equal(trained(optimizer_adamw(learning_rate = 0.1, weight_decay = 0.5), 3),
               reference(adam_step(0.1), 3, weight_decay = 0.5, lr = 0.1), tolerance = 1e-5)
  expect_equal(trained(optimizer_sgd(learning_rate = 0.1, weight_decay = 0.2), 3),
               reference(sgd_step(0.1), 3, weight_decay = 0.2, lr = 0.1), tolerance = 1e-5)
})

test_that("optimizer objects carry Keras's defaults", {
  expect_equal(unclass(optimizer_rmsprop()), list(
    name = "rmsprop", learning_rate = 0.001, rho = 0.9, momentum = 0, epsilon = 1e-7,
    centered = FALSE, weight_decay = NULL
  ))
  adam <- optimizer_adam()
  expect_s3_class(adam, "rustkeras_optimizer")
  expect_equal(adam[c("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad")],
               list(learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7, amsgrad = FALSE))
  expect_equal(optimizer_adamw()$weight_decay, 0.004)
  expect_equal(optimizer_sgd()[c("learning_rate", "momentum", "nesterov")],
               list(learning_rate = 0.01, momentum = 0, nesterov = FALSE))
  expect_output(print(optimizer_sgd(learning_rate = 0.1)),
                "^<optimizer sgd> learning_rate = 0.1, momentum = 0, nesterov = FALSE$")
})

test_that("bad optimizer arguments and names give rustkeras errors", {
  expect_error(optimizer_adam(learning_rate = -0.5), "`learning_rate` must be a single non-negative number",
               class = "rustkeras_error")
  expect_error(optimizer_sgd(learning_rate = -1), "`learning_rate` must be a single non-negative number",
               class = "rustkeras_error")
  expect_error(optimizer_rmsprop(rho = NA), "`rho`", class = "rustkeras_error")
  expect_error(optimizer_sgd(nesterov = NA), "`nesterov` must be TRUE or FALSE", class = "rustkeras_error")
  expect_error(optimizer_adam(clipnorm = 1), "unsupported optimizer argument\\(s\\): clipnorm",
               class = "rustkeras_error")

  model <- keras_model_sequential(input_shape = 2) %>% layer_dense(1)
  err <- expect_error(compile(model, optimizer = "adamax", loss = "mse"), class = "rustkeras_error")
  expect_equal(conditionMessage(err),
               "unknown optimizer 'adamax'; known optimizers: sgd, rmsprop, adam, adamw")
  expect_equal(conditionCall(err), quote(compile()))
  expect_error(compile(model, optimizer = 3, loss = "mse"), "unknown optimizer numeric",
               class = "rustkeras_error")
  # names are case-insensitive, as in Keras
  expect_equal(trained("Adam", 1), reference(adam_step(), 1), tolerance = 1e-5)
})
