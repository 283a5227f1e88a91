# Forward outputs (and one training step) of the convolution layers against Python Keras 3.
#
# fixtures/keras-cnn/<case>.json are written by fixtures/keras-cnn/make_fixtures.py (Keras
# 3 on JAX; see its docstring for the format). Each file holds the keras3 R calls that
# build the model (`{"fn": "layer_conv_2d", "args": {...}}`), the input, the weights in
# get_weights() order and Keras's predict() output, all flattened row-major next to their
# shapes. The tests below are driven by the files alone: adding a case to the Python
# script adds a test here with no R change.
#
# The last test checks the fixtures themselves against a plain R reference of the same
# layers (loops, no engine), so a fixture or an index-order mistake shows up there first.

`%||%` <- function(a, b) if (is.null(a)) b else a

fixture_dir <- test_path("fixtures", "keras-cnn")
fixture_files <- sort(list.files(fixture_dir, pattern = "\\.json$", full.names = TRUE))

# Layers that issue 3 makes optional ("if the design makes it cheap"): a case that needs
# one that rustkeras does not have is skipped, naming it. Any other missing function fails.
optional_layer_fns <- c("layer_depthwise_conv_2d", "layer_separable_conv_2d")

read_case <- function(file) jsonlite::fromJSON(file, simplifyVector = FALSE)

# A row-major (C order) flat vector and its shape -> an R array with the same index
# meaning: element [i, j, k] of the R array is element (i-1, j-1, k-1) in NumPy.
rm_array <- function(a) {
  shape <- as.integer(unlist(a$shape))
  v <- as.numeric(unlist(a$values))
  if (length(shape) == 0L) return(v)
  aperm(array(v, rev(shape)), rev(seq_along(shape)))
}

# A JSON argument value as a keras3 user writes it: numbers as doubles (c(3, 3)), a list
# of numbers as a vector, a list of lists as an R list of vectors
# (padding = list(c(1, 2), c(0, 1))).
r_arg <- function(v) {
  if (is.null(v)) return(NULL)
  if (is.list(v)) {
    if (length(v) && any(vapply(v, is.list, logical(1)))) return(lapply(v, r_arg))
    v <- unlist(v)
  }
  if (is.numeric(v)) as.numeric(v) else v
}
r_args <- function(args) {
  out <- list()
  for (k in names(args)) out[k] <- list(r_arg(args[[k]])) # keeps NULL values
  out
}

layer_fn <- function(name) {
  if (!exists(name, mode = "function")) {
    if (name %in% optional_layer_fns) skip(sprintf("rustkeras has no %s() (optional in issue 3)", name))
    stop(sprintf("rustkeras has no %s()", name), call. = FALSE)
  }
  get(name, mode = "function")
}

build_model <- function(case) {
  fns <- lapply(case$layers, function(l) layer_fn(l$fn))
  model <- keras_model_sequential(input_shape = as.numeric(unlist(case$input_shape)))
  for (i in seq_along(case$layers)) {
    do.call(fns[[i]], c(list(model), r_args(case$layers[[i]]$args)))
  }
  model
}

# |actual - expected| <= tol * max(1, max |expected|), elementwise, after the shapes agree.
expect_close <- function(actual, expected, what, tol = 1e-5) {
  dims <- function(a) if (is.null(dim(a))) length(a) else dim(a)
  expect_identical(as.integer(dims(actual)), as.integer(dims(expected)),
                   label = sprintf("%s: dim", what))
  if (!identical(as.integer(dims(actual)), as.integer(dims(expected)))) return(invisible())
  err <- max(abs(as.numeric(actual) - as.numeric(expected)))
  bound <- tol * max(1, max(abs(as.numeric(expected))))
  expect(is.finite(err) && err <= bound,
         sprintf("%s: max |actual - expected| = %.3g > %.3g", what, err, bound))
}

weight_shapes <- function(ws) lapply(ws, function(w) as.integer(if (is.null(dim(w))) length(w) else dim(w)))

test_that("the Keras 3 CNN fixtures are present", {
  skip_if_not(dir.exists(fixture_dir), "tests/testthat/fixtures/keras-cnn is missing")
  skip_if_not_installed("jsonlite")
  expect_gte(length(fixture_files), 20L)
})

run_case <- function(case) {
  model <- build_model(case)
  weights <- lapply(case$weights, rm_array)
  # same weights, same shapes, same order as Keras's get_weights()
  expect_identical(weight_shapes(get_weights(model)), weight_shapes(weights),
                   label = "shapes of get_weights()")
  set_weights(model, weights)
  x <- rm_array(case$x)
  expect_close(predict(model, x, verbose = 0), rm_array(case$output), "predict()")

  tr <- case$train
  if (is.null(tr)) return(invisible())
  # batchnorm_train_sgd0 needs optimizer_sgd(learning_rate = 0), which keras3 accepts
  # (Keras 3 takes 0.0; rustkeras before issue 3 said "must be positive").
  # batchnorm_train_sgd checks the same moving statistics with learning_rate = 0.1.
  optimizer <- do.call(get(tr$optimizer$fn, mode = "function"), r_args(tr$optimizer$args))
  compile(model, optimizer = optimizer, loss = tr$loss)
  history <- fit(model, x, rm_array(tr$y), epochs = tr$epochs, batch_size = tr$batch_size,
                 shuffle = FALSE, verbose = 0)
  expect_close(history$metrics$loss[[1]], tr$loss_value, "training loss")
  after <- get_weights(model)
  expected <- lapply(tr$weights_after, rm_array)
  expect_identical(length(after), length(expected))
  for (i in seq_along(expected)) {
    expect_close(after[[i]], expected[[i]], sprintf("weight %s after the step", tr$weights_after[[i]]$name))
  }
  expect_close(predict(model, x, verbose = 0), rm_array(tr$output_after), "predict() after the step")
}

if (!(dir.exists(fixture_dir) && requireNamespace("jsonlite", quietly = TRUE))) {
  test_that("the Keras 3 CNN fixtures can be read", {
    skip("needs the fixtures folder and the jsonlite package")
  })
} else {
  for (file in fixture_files) {
    local({
      case <- read_case(file)
      test_that(sprintf("%s matches Keras 3: %s", case$name, case$description), {
        run_case(case)
      })
    })
  }
}

# ---- the fixtures against a plain R reference ---------------------------------------------
# Loops over output positions, Keras 3's formulas (channels_last):
#   'same' pads (out - 1) * stride + effective kernel - in cells, floor(half) before and
#   the rest after; pooling ignores padded cells (max over, and average of, real cells).

ref_same_pads <- function(n, k, s) {
  total <- max((ceiling(n / s) - 1) * s + k - n, 0)
  c(total %/% 2, total - total %/% 2)
}

ref_pad <- function(x, rows, cols, value = 0) {
  d <- dim(x)
  y <- array(value, c(d[1], d[2] + sum(rows), d[3] + sum(cols), d[4]))
  y[, rows[1] + seq_len(d[2]), cols[1] + seq_len(d[3]), ] <- x
  y
}

# Patches of x (n, h, w, c) for each output position: a function(i, j) giving x[, rows, cols, ].
ref_windows <- function(x, k, strides, padding, dilation = c(1, 1), pad_value = 0) {
  ek <- (k - 1) * dilation + 1
  if (padding == "same") {
    x <- ref_pad(x, ref_same_pads(dim(x)[2], ek[1], strides[1]),
                 ref_same_pads(dim(x)[3], ek[2], strides[2]), pad_value)
  }
  out <- (dim(x)[2:3] - ek) %/% strides + 1
  list(out = out, patch = function(i, j) {
    x[, (i - 1) * strides[1] + (seq_len(k[1]) - 1) * dilation[1] + 1,
      (j - 1) * strides[2] + (seq_len(k[2]) - 1) * dilation[2] + 1, , drop = FALSE]
  })
}

ref_conv2d <- function(x, kernel, bias, strides, padding, dilation, groups = 1) {
  k <- dim(kernel)[1:2]
  cout <- dim(kernel)[4]
  cg <- dim(kernel)[3] # input channels per group
  fg <- cout / groups
  win <- ref_windows(x, k, strides, padding, dilation)
  y <- array(0, c(dim(x)[1], win$out, cout))
  for (g in seq_len(groups)) { # filters of group g see only its input channels
    ch <- (g - 1) * cg + seq_len(cg)
    fi <- (g - 1) * fg + seq_len(fg)
    km <- matrix(kernel[, , , fi, drop = FALSE], ncol = fg) # (kh, kw, cin) as a patch
    for (i in seq_len(win$out[1])) for (j in seq_len(win$out[2])) {
      y[, i, j, fi] <- matrix(win$patch(i, j)[, , , ch, drop = FALSE], dim(x)[1]) %*% km
    }
  }
  if (!is.null(bias)) y <- sweep(y, 4, bias, "+")
  y
}

ref_pool2d <- function(x, pool, strides, padding, fun) {
  win <- ref_windows(x, pool, strides, padding, pad_value = NA)
  y <- array(0, c(dim(x)[1], win$out, dim(x)[4]))
  for (i in seq_len(win$out[1])) for (j in seq_len(win$out[2])) {
    y[, i, j, ] <- apply(win$patch(i, j), c(1, 4), fun, na.rm = TRUE)
  }
  y
}

ref_activation <- function(x, name) {
  if (is.null(name) || name == "linear") return(x)
  switch(name,
    relu = pmax(x, 0),
    tanh = tanh(x),
    softmax = { e <- exp(x - apply(x, 1, max)); e / rowSums(e) },
    stop("no reference for activation ", name)
  )
}

# Row-major flattening and reshaping of whole arrays (the batch axis first).
rm_flat <- function(x) as.vector(aperm(x, rev(seq_along(dim(x)))))
rm_reshape <- function(x, shape) aperm(array(rm_flat(x), rev(shape)), rev(seq_along(shape)))

ref_forward <- function(case, weights, x, training = FALSE, momentum_out = NULL) {
  pair <- function(v, default) if (is.null(v)) default else if (length(v) == 1L) rep(v, 2) else v
  wi <- 0L
  take <- function() { wi <<- wi + 1L; weights[[wi]] }
  stats <- list()
  for (layer in case$layers) {
    a <- r_args(layer$args)
    x <- switch(layer$fn,
      layer_conv_2d = , layer_conv_1d = {
        one_d <- layer$fn == "layer_conv_1d"
        kernel <- take()
        bias <- if (isFALSE(a$use_bias)) NULL else take()
        if (one_d) { # a 1-d conv is a 2-d conv on height 1
          x <- array(x, c(dim(x)[1], 1, dim(x)[2:3]))
          kernel <- array(kernel, c(1, dim(kernel)))
        }
        y <- ref_conv2d(x, kernel, bias, c(1, 1) * pair(a$strides, 1), a$padding %||% "valid",
                        c(1, 1) * pair(a$dilation_rate, 1), a$groups %||% 1)
        if (one_d) y <- array(y, dim(y)[-2])
        ref_activation(y, a$activation)
      },
      layer_depthwise_conv_2d = {
        kernel <- take()
        bias <- if (isFALSE(a$use_bias)) NULL else take()
        m <- dim(kernel)[4]
        parts <- list()
        for (ci in seq_len(dim(x)[4])) for (mi in seq_len(m)) { # output channel (ci - 1) * m + mi
          parts[[length(parts) + 1]] <- ref_conv2d(
            x[, , , ci, drop = FALSE], kernel[, , ci, mi, drop = FALSE], NULL,
            pair(a$strides, c(1, 1)), a$padding %||% "valid", pair(a$dilation_rate, c(1, 1)))
        }
        y <- array(unlist(parts), c(dim(parts[[1]])[1:3], length(parts)))
        if (!is.null(bias)) y <- sweep(y, 4, bias, "+")
        ref_activation(y, a$activation)
      },
      layer_max_pooling_2d = , layer_average_pooling_2d = {
        pool <- pair(a$pool_size, c(2, 2))
        ref_pool2d(x, pool, pair(a$strides, pool), a$padding %||% "valid",
                   if (layer$fn == "layer_max_pooling_2d") max else mean)
      },
      layer_global_average_pooling_2d = apply(x, c(1, 4), mean),
      layer_global_max_pooling_2d = apply(x, c(1, 4), max),
      layer_flatten = matrix(rm_flat(x), dim(x)[1], byrow = TRUE),
      layer_reshape = {
        target <- a$target_shape
        if (any(target == -1)) target[target == -1] <- prod(dim(x)[-1]) / prod(target[target != -1])
        rm_reshape(x, c(dim(x)[1], target))
      },
      layer_zero_padding_2d = {
        p <- a$padding
        if (!is.list(p)) p <- list(rep(p[1], 2), rep(p[length(p)], 2))
        ref_pad(x, p[[1]], p[[2]])
      },
      layer_dense = { # on the last axis
        kernel <- take()
        bias <- if (isFALSE(a$use_bias)) 0 else take()
        d <- dim(x)
        y <- sweep(matrix(x, ncol = d[length(d)]) %*% kernel, 2, bias, "+")
        y <- array(y, c(d[-length(d)], ncol(kernel)))
        if (length(d) == 2L) ref_activation(y, a$activation) else ref_activation(y, a$activation %||% "linear")
      },
      layer_batch_normalization = {
        gamma <- take(); beta <- take(); mean <- take(); var <- take()
        eps <- a$epsilon %||% 1e-3
        axis <- length(dim(x))
        if (training) { # batch statistics, biased variance
          bm <- apply(x, axis, mean)
          bv <- apply(x, axis, function(v) mean((v - mean(v))^2))
          mom <- a$momentum %||% 0.99
          stats[[length(stats) + 1]] <- list(mean = mean * mom + bm * (1 - mom), var = var * mom + bv * (1 - mom))
          mean <- bm; var <- bv
        }
        y <- sweep(x, axis, mean, "-")
        y <- sweep(y, axis, gamma / sqrt(var + eps), "*")
        sweep(y, axis, beta, "+")
      },
      stop("no reference for ", layer$fn)
    )
  }
  list(output = x, stats = stats)
}

test_that("the Keras 3 CNN fixtures agree with a plain R reference of the layers", {
  skip_if_not(dir.exists(fixture_dir), "tests/testthat/fixtures/keras-cnn is missing")
  skip_if_not_installed("jsonlite")
  for (file in fixture_files) {
    case <- read_case(file)
    weights <- lapply(case$weights, rm_array)
    x <- rm_array(case$x)
    ref <- ref_forward(case, weights, x)
    expect_close(ref$output, rm_array(case$output), paste(case$name, "reference output"), tol = 1e-4)
    tr <- case$train
    if (is.null(tr) || !identical(r_arg(tr$optimizer$args$learning_rate), 0)) next
    # SGD(learning_rate = 0): the step's loss (mse, batch statistics) and moving statistics
    stopifnot(tr$loss == "mse")
    train <- ref_forward(case, weights, x, training = TRUE)
    expect_close(mean((train$output - rm_array(tr$y))^2), tr$loss_value, paste(case$name, "reference loss"), tol = 1e-4)
    after <- lapply(tr$weights_after, rm_array)
    names <- vapply(tr$weights_after, `[[`, "", "name")
    expect_close(after[grep("moving_mean$", names)][[1]], train$stats[[1]]$mean, paste(case$name, "moving mean"), tol = 1e-4)
    expect_close(after[grep("moving_variance$", names)][[1]], train$stats[[1]]$var, paste(case$name, "moving variance"), tol = 1e-4)
    expect_close(unlist(after[!grepl("moving_", names)]), unlist(weights[!grepl("moving_", names)]), paste(case$name, "weights unchanged"))
  }
})
