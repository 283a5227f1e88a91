# LSTM, GRU and SimpleRNN against Keras 3 (fixtures/keras-more-layers/make_fixtures.py):
# predictions, one SGD step through time, Keras's files; shapes and bad input.

rnn_fixture <- function() {
  jsonlite::fromJSON(test_path("fixtures", "keras-more-layers", "rnn.json"),
                     simplifyVector = FALSE)$models
}

rnn_models <- list(
  rnn_stack = function() {
    keras_model_sequential(input_shape = c(5, 3), name = "rnn_stack") %>%
      layer_lstm(4, return_sequences = TRUE, name = "lstm") %>%
      layer_gru(3, return_sequences = TRUE, name = "gru") %>%
      layer_simple_rnn(2, name = "simple") %>%
      layer_dense(1, name = "out")
  },
  rnn_variants = function() {
    keras_model_sequential(input_shape = c(5, 3), name = "rnn_variants") %>%
      layer_gru(3, reset_after = FALSE, go_backwards = TRUE, name = "gru_v1") %>%
      layer_dense(1, name = "out")
  },
  rnn_bidirectional = function() {
    keras_model_sequential(input_shape = c(5, 3), name = "rnn_bidirectional") %>%
      layer_bidirectional(layer_lstm(units = 3, return_sequences = TRUE, name = "lstm"), name = "bi") %>%
      layer_bidirectional(layer_gru(units = 2, name = "gru"), merge_mode = "ave", name = "bi_ave") %>%
      layer_dense(1, name = "out")
  }
)

test_that("LSTM, GRU and SimpleRNN match Keras: predictions and one step of training", {
  fx <- rnn_fixture()
  for (name in names(rnn_models)) {
    f <- fx[[name]]
    model <- rnn_models[[name]]()
    expect_equal(lapply(get_weights(model), dim), lapply(f$weights, function(w) {
      d <- unlist(w$shape); if (length(d) == 1L) d else d
    }), ignore_attr = TRUE, info = name)
    set_weights(model, lapply(f$weights, as_keras_array))
    x <- as_keras_array(f$x)
    expect_equal(predict(model, x, verbose = 0), as_keras_array(f$predictions), tolerance = 1e-5,
                 ignore_attr = TRUE, info = name)
    model %>% compile(optimizer = optimizer_sgd(0.1), loss = "mean_squared_error")
    h <- fit(model, x, as_keras_array(f$y), batch_size = 6, epochs = 1, shuffle = FALSE, verbose = 0)
    expect_equal(h$metrics$loss, f$train_step_loss, tolerance = 1e-5, info = name)
    expect_equal(get_weights(model), lapply(f$weights_after, as_keras_array), tolerance = 1e-5,
                 ignore_attr = TRUE, info = name)
    # Keras's own file: config, weights under each layer's cell.
    keras_model <- load_model(test_path("fixtures", "keras-more-layers", paste0(name, ".keras")))
    expect_equal(predict(keras_model, x, verbose = 0), as_keras_array(f$predictions), tolerance = 1e-5,
                 ignore_attr = TRUE, info = name)
    # Ours round-trip, and have Keras's config fields.
    for (ext in c(".keras", ".h5")) {
      path <- withr::local_tempfile(fileext = ext)
      if (ext == ".h5") save_model_hdf5(model, path) else save_model(model, path)
      again <- if (ext == ".h5") load_model_hdf5(path) else load_model(path)
      expect_equal(predict(again, x, verbose = 0), predict(model, x, verbose = 0), info = ext)
    }
    ours <- get_config(model)$layers[[2]]$config
    expect_setequal(names(ours), names(f$configs[[1]]))
  }
})

test_that("a Bidirectional wrapper names its copies as Keras and checks its layer", {
  model <- rnn_models$rnn_bidirectional()
  config <- get_config(model)$layers[[2]]$config
  expect_equal(config$layer$config$name, "forward_lstm")
  expect_equal(config$backward_layer$config$name, "backward_lstm")
  expect_true(config$backward_layer$config$go_backwards)
  expect_true(any(grepl("(None, 5, 6)", capture.output(summary(model)), fixed = TRUE)))
  expect_error(layer_bidirectional(layer = layer_dense(units = 2)), "`layer` must be a layer from layer_lstm")
  used <- layer_lstm(units = 2)
  keras_model_sequential(input_shape = c(3, 2)) %>% used()
  expect_error(layer_bidirectional(layer = used), "already in use")
  expect_error(layer_bidirectional(layer = layer_lstm(units = 2), merge_mode = "max"), "merge_mode")
  expect_error(layer_bidirectional(layer = layer_lstm(units = 2), backward_layer = layer_lstm(units = 2)),
               "must read the sequence the other way")
  # A regularizer on the wrapped layer applies to both directions, as in Keras.
  reg <- keras_model_sequential(input_shape = c(3, 2)) %>%
    layer_bidirectional(layer_simple_rnn(units = 2, kernel_initializer = "ones", use_bias = FALSE,
                                         recurrent_initializer = "zeros",
                                         kernel_regularizer = regularizer_l1(1)))
  reg %>% compile(optimizer = "sgd", loss = "mse")
  out <- predict(reg, array(0, c(1, 3, 2)), verbose = 0)
  expect_equal(evaluate(reg, array(0, c(1, 3, 2)), out, verbose = 0)[["loss"]], 8)
})

test_that("recurrent layers give Keras's shapes and parameter counts, and clear errors", {
  model <- keras_model_sequential(input_shape = c(7, 3)) %>%
    layer_lstm(5, return_sequences = TRUE) %>%
    layer_gru(4) %>%
    layer_dense(1)
  text <- capture.output(summary(model))
  expect_true(any(grepl("(None, 7, 5)", text, fixed = TRUE)))
  expect_true(any(grepl("(None, 4)", text, fixed = TRUE)))
  # LSTM 4 * (3 + 5 + 1) * 5; GRU (reset_after) 3 * 4 * (5 + 4 + 2).
  expect_equal(count_params(model), 4 * (3 + 5 + 1) * 5 + 3 * 4 * (5 + 4 + 2) + 5)
  lstm <- get_weights(model)
  expect_equal(as.vector(lstm[[3]][6:10]), rep(1, 5))  # the forget gate's bias starts at 1
  expect_error(keras_model_sequential(input_shape = 4) %>% layer_lstm(2),
               "expects inputs of rank 3 \\(batch, steps, features\\), got shape \\(None, 4\\)")
  expect_error(layer_lstm(units = 2, dropout = 0.2), "`dropout` = 0.2 is not supported yet")
  expect_error(layer_gru(units = 2, return_state = TRUE), "`return_state = TRUE` is not supported yet")
  expect_error(layer_simple_rnn(units = 0), "`units` must be a positive integer")
  # Training reduces the loss on a sequence task (the sum of each sequence).
  set_random_seed(3)
  x <- array(runif(200 * 6), c(200, 6, 1))
  y <- apply(x, 1, sum)
  m <- keras_model_sequential(input_shape = c(6, 1)) %>% layer_lstm(8) %>% layer_dense(1)
  m %>% compile(optimizer = optimizer_adam(0.01), loss = "mse")
  h <- fit(m, x, y, epochs = 15, batch_size = 32, verbose = 0)
  expect_lt(tail(h$metrics$loss, 1), h$metrics$loss[1] / 5)
})
