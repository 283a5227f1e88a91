# application_resnet50(): Keras's architecture (names, counts, shapes), weight files
# in and out, the ImageNet cache rules offline, and bad arguments.

small_images <- function(n, size = 32, seed = 1) {
  set.seed(seed)
  array(runif(n * size * size * 3, 0, 255), c(n, size, size, 3))
}

test_that("ResNet50 has Keras's layers, names and parameter counts", {
  model <- application_resnet50(weights = NULL)
  expect_equal(count_params(model), 25636712)
  expect_equal(model$name, "resnet50")
  names <- vapply(model$layers, function(l) l$name, "")
  expect_equal(head(names, 7), c("conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu", "pool1_pad",
                                 "pool1_pool", "conv2_block1_1_conv"))
  expect_equal(tail(names, 3), c("conv5_block3_out", "avg_pool", "predictions"))
  expect_true(all(c("conv2_block1_0_conv", "conv4_block6_3_bn", "conv5_block1_add") %in% names))
  expect_equal(model$output_shape, c(NA, 1000L))
  info <- model_info(model)
  expect_equal(sum(info$params) - sum(info$trainable_params), 53120)
  expect_equal(attr(model, "rustkeras_application"), "resnet50")

  notop <- application_resnet50(weights = NULL, include_top = FALSE)
  expect_equal(count_params(notop), 23587712)
  expect_equal(notop$output_shape, c(NA, 7L, 7L, 2048L))
  pooled <- application_resnet50(weights = NULL, include_top = FALSE, input_shape = c(64, 64, 3),
                                 pooling = "max")
  expect_equal(pooled$output_shape, c(NA, 2048L))
  expect_equal(tail(vapply(pooled$layers, function(l) l$name, ""), 1), "max_pool")
  few <- application_resnet50(weights = NULL, classes = 7, classifier_activation = NULL,
                              input_shape = c(32, 32, 3))
  expect_equal(few$output_shape, c(NA, 7L))
})

test_that("ResNet50's outputs are probabilities, and a weight file round-trips", {
  model <- application_resnet50(weights = NULL, input_shape = c(32, 32, 3), classes = 5)
  x <- imagenet_preprocess_input(small_images(3))
  p <- predict(model, x, verbose = 0)
  expect_equal(dim(p), c(3L, 5L))
  expect_equal(rowSums(p), rep(1, 3), tolerance = 1e-5)
  path <- withr::local_tempfile(fileext = ".h5")
  save_model_weights_hdf5(model, path)
  again <- application_resnet50(weights = path, input_shape = c(32, 32, 3), classes = 5)
  expect_equal(predict(again, x, verbose = 0), p, tolerance = 1e-6)
  # A file for another architecture names the layer and the shapes that differ.
  err <- expect_error(application_resnet50(weights = path, input_shape = c(32, 32, 3), classes = 4),
                      class = "rustkeras_error")
  expect_match(conditionMessage(err), "predictions")
  expect_match(conditionMessage(err), "(2048, 5)", fixed = TRUE)
  expect_match(conditionMessage(err), "(2048, 4)", fixed = TRUE)
  err <- expect_error(application_resnet50(weights = path, include_top = FALSE, input_shape = c(32, 32, 3)),
                      class = "rustkeras_error")
  expect_match(conditionMessage(err), "holds weights for 107 layers, but the model has 106 layers with weights")
  expect_error(application_resnet50(weights = file.path(tempdir(), "no-such.h5")),
               "`weights` names a file that does not exist", class = "rustkeras_error")
})

test_that("weights = 'imagenet' uses the Keras cache and says where the file goes offline", {
  home <- withr::local_tempdir()
  withr::local_envvar(KERAS_HOME = home, HOME = home, R_USER_CACHE_DIR = file.path(home, "cache"))
  withr::local_options(rustkeras.download = function(url, destfile) stop("no network"))
  err <- expect_error(application_resnet50(weights = "imagenet", include_top = FALSE),
                      class = "rustkeras_error")
  expect_match(conditionMessage(err), "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", fixed = TRUE)
  expect_match(conditionMessage(err), file.path(home, "models"), fixed = TRUE)
})

test_that("bad arguments are clear errors", {
  expect_error(application_resnet50(weights = NULL, pooling = "mean"),
               "`pooling` must be NULL, \"avg\" or \"max\"", class = "rustkeras_error")
  expect_error(application_resnet50(weights = NULL, input_shape = c(16, 16, 3)),
               "at least 32x32", class = "rustkeras_error")
  expect_error(application_resnet50(weights = "imagenet", classes = 10),
               "`classes` must be 1000", class = "rustkeras_error")
  expect_error(application_resnet50(weights = 3), "`weights` must be NULL", class = "rustkeras_error")
  expect_error(application_resnet50(weights = "imagenet", input_shape = c(64, 64, 3)),
               "must be c\\(224, 224, 3\\)", class = "rustkeras_error")
})
