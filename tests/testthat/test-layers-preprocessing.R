# layer_normalization() and adapt() against Keras 3
# (fixtures/keras-more-layers/make_fixtures.py): statistics, outputs, files.

norm_fixture <- function() {
  jsonlite::fromJSON(test_path("fixtures", "keras-more-layers", "normalization.json"),
                     simplifyVector = FALSE)
}

test_that("adapt() learns Keras's statistics and the layer normalizes as Keras", {
  fx <- norm_fixture()
  data <- as_keras_array(fx$data)
  x <- as_keras_array(fx$x)
  normalizer <- layer_normalization(axis = -1)
  normalizer %>% adapt(data)
  expect_equal(as.vector(normalizer$mean), as.vector(as_keras_array(fx$per_feature$mean)), tolerance = 1e-6)
  expect_equal(as.vector(normalizer$variance), as.vector(as_keras_array(fx$per_feature$variance)),
               tolerance = 1e-5)
  model <- keras_model_sequential(input_shape = 3) %>% normalizer()
  expect_equal(predict(model, x, verbose = 0), as_keras_array(fx$per_feature$output), tolerance = 1e-5,
               ignore_attr = TRUE)
  # One mean and variance for all values.
  all_values <- layer_normalization(axis = NULL)
  adapt(all_values, as.data.frame(data))
  expect_equal(as.numeric(all_values$mean), fx$over_all$mean, tolerance = 1e-6)
  m2 <- keras_model_sequential(input_shape = 3) %>% all_values()
  expect_equal(predict(m2, x, verbose = 0), as_keras_array(fx$over_all$output), tolerance = 1e-5,
               ignore_attr = TRUE)
  # Fixed statistics.
  m3 <- keras_model_sequential(input_shape = 3) %>%
    layer_normalization(mean = c(1, 2, 3), variance = c(4, 1, 0.25))
  expect_equal(predict(m3, x, verbose = 0), as_keras_array(fx$fixed$output), tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(count_params(m3), 0)
})

test_that("the statistics travel with the model, to and from Keras's files", {
  fx <- norm_fixture()
  x <- as_keras_array(fx$x)
  keras_model <- load_model(test_path("fixtures", "keras-more-layers", "normalization.keras"))
  expect_equal(predict(keras_model, x, verbose = 0), as_keras_array(fx$model_predictions),
               tolerance = 1e-5, ignore_attr = TRUE)
  normalizer <- layer_normalization()
  adapt(normalizer, as_keras_array(fx$data))
  model <- keras_model_sequential(input_shape = 3) %>% normalizer() %>% layer_dense(1)
  for (ext in c(".keras", ".h5")) {
    path <- withr::local_tempfile(fileext = ext)
    if (ext == ".h5") save_model_hdf5(model, path) else save_model(model, path)
    again <- if (ext == ".h5") load_model_hdf5(path) else load_model(path)
    expect_equal(predict(again, x, verbose = 0), predict(model, x, verbose = 0), info = ext)
  }
  # The statistics do not train.
  model %>% compile(optimizer = optimizer_sgd(0.1), loss = "mse")
  before <- normalizer$mean
  fit(model, x, matrix(1, 4, 1), epochs = 2, verbose = 0)
  expect_equal(normalizer$mean, before)
  expect_equal(names(get_config(normalizer)), names(fx$config))
})

test_that("bad normalization arguments and data get clear errors", {
  expect_error(layer_normalization(axis = 1), "`axis` = 1 is not supported yet")
  expect_error(layer_normalization(mean = 1), "must be given together")
  expect_error(layer_normalization(mean = 1, variance = -1), "`variance` must be >= 0")
  expect_error(adapt(layer_dense(units = 2), matrix(1, 2, 2)), "must be a layer from layer_normalization")
  expect_error(adapt(layer_normalization(), matrix(c(1, NA), 1)), "without missing values")
  fixed <- layer_normalization(mean = 0, variance = 1)
  expect_error(adapt(fixed, matrix(1, 2, 1)), "nothing to adapt")
  n <- layer_normalization()
  adapt(n, matrix(rnorm(20), 10))
  m <- keras_model_sequential(input_shape = 3)
  expect_error(m %>% n(), "was adapted to 2 features, got inputs with 3")
})
