# Embedding and Rescaling against Keras 3 (fixtures/keras-more-layers/make_fixtures.py):
# predictions, one training step, Keras's own file and configs; and bad ids.

text_fixture <- function() {
  jsonlite::fromJSON(test_path("fixtures", "keras-more-layers", "text.json"), simplifyVector = FALSE)
}

text_model <- function() {
  keras_model_sequential(input_shape = 6, name = "text") %>%
    layer_rescaling(scale = 1, offset = 1, name = "shift") %>%
    layer_embedding(input_dim = 20, output_dim = 4, name = "emb") %>%
    layer_global_average_pooling_1d(name = "avg") %>%
    layer_dense(1, activation = "sigmoid", name = "out")
}

test_that("embedding and rescaling match Keras: predictions and one training step", {
  fx <- text_fixture()
  model <- text_model()
  expect_equal(model$output_shape, c(NA, 1))
  expect_true(any(grepl("emb (Embedding)                   │ (None, 6, 4)", capture.output(summary(model)),
                        fixed = TRUE)))
  expect_equal(count_params(model), 20 * 4 + 4 + 1)
  set_weights(model, lapply(fx$weights, as_keras_array))
  x <- as_keras_array(fx$x)
  expect_equal(predict(model, x, verbose = 0), as_keras_array(fx$predictions), tolerance = 1e-6,
               ignore_attr = TRUE)
  model %>% compile(optimizer = optimizer_sgd(0.5), loss = "binary_crossentropy")
  h <- fit(model, x, as_keras_array(fx$y), batch_size = 8, epochs = 1, shuffle = FALSE, verbose = 0)
  expect_equal(h$metrics$loss, fx$train_step_loss, tolerance = 1e-5)
  expect_equal(get_weights(model), lapply(fx$weights_after, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
  # The embedding rows of ids never seen do not move.
  seen <- sort(unique(as.vector(x))) + 1
  unseen <- setdiff(0:19, seen)
  expect_equal(get_weights(model)[[1]][unseen + 1, ], as_keras_array(fx$weights[[1]])[unseen + 1, ],
               ignore_attr = TRUE)
})

test_that("Keras's file and configs load, and ours have Keras's fields", {
  fx <- text_fixture()
  keras_model <- load_model(test_path("fixtures", "keras-more-layers", "text.keras"))
  expect_equal(predict(keras_model, as_keras_array(fx$x), verbose = 0), as_keras_array(fx$predictions),
               tolerance = 1e-6, ignore_attr = TRUE)
  ours <- get_config(text_model())
  expect_setequal(names(ours$layers[[3]]$config), names(fx$configs$emb))
  expect_equal(ours$layers[[3]]$config$embeddings_initializer$class_name, "RandomUniform")
  expect_setequal(names(ours$layers[[2]]$config), names(fx$configs$shift))
  expect_equal(ours$layers[[2]]$config$offset, 1)
})

test_that("bad ids and arguments get clear errors", {
  model <- keras_model_sequential(input_shape = 3) %>%
    layer_embedding(input_dim = 5, output_dim = 2, name = "words")
  expect_error(predict(model, matrix(c(0, 1, 5), 1), verbose = 0),
               "layer 'words' takes integer ids from 0 to 4 \\(input_dim - 1\\), got 5")
  expect_error(predict(model, matrix(c(0, 1.5, 2), 1), verbose = 0), "got 1.5")
  expect_error(layer_embedding(input_dim = 0, output_dim = 2), "`input_dim` must be a positive integer")
  expect_error(layer_embedding(input_dim = 5, output_dim = 2, mask_zero = TRUE), "not supported yet")
  expect_error(layer_rescaling(), "`scale` is missing")
  expect_error(layer_rescaling(scale = c(1, 2)), "`scale` must be a single finite number")
  # A regularized embedding adds its penalty.
  reg <- keras_model_sequential(input_shape = 2) %>%
    layer_embedding(3, 1, embeddings_initializer = "ones", embeddings_regularizer = regularizer_l1(0.5)) %>%
    layer_flatten()
  reg %>% compile(optimizer = "sgd", loss = "mse")
  expect_equal(evaluate(reg, matrix(0, 1, 2), matrix(1, 1, 2), verbose = 0)[["loss"]], 1.5)
})
