# Functional models against Keras 3 itself: fixtures/keras-functional/make_fixtures.py
# (Keras 3.15.1, JAX) built the same models; here they are rebuilt from their keras3 R
# code, given Keras's weights from Keras's files, and compared: summary, predictions,
# losses, and weights after a training step. The ResNet50 comparison needs Python Keras
# (its ~100 MB file is generated, not committed) and is skipped without it.

fixture_dir <- test_path("fixtures", "keras-functional")

read_fixture <- function(name) {
  jsonlite::fromJSON(file.path(fixture_dir, name), simplifyVector = FALSE)
}

build_from_r_code <- function(code) {
  env <- new.env(parent = asNamespace("rustkeras"))
  eval(parse(text = code), envir = env)
  env$model
}

test_that("the small functional model matches Keras: summary, predictions, one training step", {
  fx <- read_fixture("small_functional.json")
  model <- build_from_r_code(fx$r_code)
  expect_equal(count_params(model), fx$total_params)
  # The table as Keras prints it (the totals differ: Keras's model was compiled and
  # trained, so it also counts optimizer variables).
  ours <- capture.output(summary(model, line_length = 108))
  theirs <- strsplit(fx$summary, "\n")[[1]]
  table_end <- grep("^\u2514", theirs)
  expect_equal(ours[seq_len(table_end)], theirs[seq_len(table_end)])

  for (file in c("small_functional.h5", "small_functional.keras")) {
    fresh <- build_from_r_code(fx$r_code)
    rustkeras:::load_application_weights(fresh, file.path(fixture_dir, file), quote(test()))
    expect_equal(get_weights(fresh), lapply(fx$train$weights_after, as_keras_array),
                 tolerance = 1e-7, ignore_attr = TRUE, info = file)
    pred <- predict(fresh, as_keras_array(fx$x), verbose = 0)
    expect_equal(pred, as_keras_array(fx$predictions), tolerance = 1e-5, ignore_attr = TRUE,
                 info = file)
  }

  # One SGD step through the shared layer, the concatenation and training-mode batch
  # normalization (its moving statistics move too).
  tr <- fx$train
  set_weights(model, lapply(tr$weights_before, as_keras_array))
  model %>% compile(optimizer = optimizer_sgd(0.1), loss = "categorical_crossentropy",
                    metrics = "accuracy")
  history <- fit(model, as_keras_array(tr$x), as_keras_array(tr$y), batch_size = 4, epochs = 1,
                 shuffle = FALSE, verbose = 0)
  expect_equal(history$metrics$loss, tr$logs$loss, tolerance = 1e-5)
  expect_equal(get_weights(model), lapply(tr$weights_after, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
})

test_that("the two-input, two-output model matches Keras's predictions, losses and training", {
  fx <- read_fixture("two_io.json")
  model <- build_from_r_code(fx$r_code)
  rustkeras:::load_application_weights(model, file.path(fixture_dir, "two_io.h5"), quote(test()))
  expect_equal(get_weights(model), lapply(fx$weights_before, as_keras_array), tolerance = 1e-7,
               ignore_attr = TRUE)
  x <- lapply(fx$x, as_keras_array)
  y <- lapply(fx$y, as_keras_array)
  pred <- predict(model, x, verbose = 0)
  expect_equal(unname(pred), lapply(fx$predictions, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
  logs <- evaluate(model, x, y, batch_size = 6, verbose = 0)
  expect_equal(names(logs), unlist(fx$evaluate$keys))
  expect_equal(as.list(logs), fx$evaluate$values[names(logs)], tolerance = 1e-5)
  history <- fit(model, x, y, batch_size = 6, epochs = 1, shuffle = FALSE, verbose = 0)
  expect_setequal(names(history$metrics), unlist(fx$fit$history$keys))
  for (k in names(fx$fit$history$values)) {
    expect_equal(history$metrics[[k]], unlist(fx$fit$history$values[[k]]), tolerance = 1e-5, info = k)
  }
  expect_equal(get_weights(model), lapply(fx$fit$weights_after, as_keras_array), tolerance = 1e-5,
               ignore_attr = TRUE)
})

test_that("whole Functional models load from Keras's files, a model inside a model too", {
  # nested.h5 / nested.keras: outer(inp) = head(add([base(inp), d1b(inp)])), base with a
  # frozen layer, head a Sequential model; saved by Keras after one epoch of Adam.
  fx <- read_fixture("nested.json")
  x_test <- as_keras_array(fx$x_test)
  for (file in c("nested.h5", "nested.keras")) {
    path <- file.path(fixture_dir, file)
    model <- if (grepl("h5$", file)) load_model_hdf5(path) else load_model(path)
    expect_s3_class(model, "rustkeras_functional")
    expect_equal(vapply(model$layers, function(l) l$name, ""), c("base", "d1b", "add", "head"))
    expect_equal(get_weights(model), lapply(fx$weights, as_keras_array), tolerance = 1e-7,
                 ignore_attr = TRUE, info = file)
    expect_false(get_layer(get_layer(model, "base"), "d1")$trainable)
    expect_equal(predict(model, x_test, verbose = 0), as_keras_array(fx$predictions),
                 tolerance = 1e-5, ignore_attr = TRUE, info = file)
  }
  # The .h5 file keeps Adam's state: two more epochs give Keras's losses.
  model <- load_model_hdf5(file.path(fixture_dir, "nested.h5"))
  history <- fit(model, as_keras_array(fx$x_train), as_keras_array(fx$y_train), batch_size = 4,
                 epochs = 2, shuffle = FALSE, verbose = 0)
  expect_equal(history$metrics$loss, unlist(fx$continued_loss), tolerance = 1e-5)

  # The other fixtures' whole-model files load too, and predict as Keras did.
  small <- read_fixture("small_functional.json")
  for (file in c("small_functional.h5", "small_functional.keras")) {
    path <- file.path(fixture_dir, file)
    model <- if (grepl("h5$", file)) load_model_hdf5(path) else load_model(path)
    expect_equal(predict(model, as_keras_array(small$x), verbose = 0),
                 as_keras_array(small$predictions), tolerance = 1e-5, ignore_attr = TRUE, info = file)
  }
  # two_io.h5 was compiled with a loss per output and loss weights: evaluate() gives Keras's
  # values without compiling again.
  two <- read_fixture("two_io.json")
  model <- load_model_hdf5(file.path(fixture_dir, "two_io.h5"))
  expect_equal(model$output_names, c("out_reg", "out_cls"))
  logs <- evaluate(model, lapply(two$x, as_keras_array), lapply(two$y, as_keras_array),
                   batch_size = 6, verbose = 0)
  expect_equal(as.list(logs), two$evaluate$values[names(logs)], tolerance = 1e-5)
})

test_that("merge layers give Keras's values", {
  fx <- read_fixture("merge_ops.json")
  all_x <- lapply(fx$inputs, as_keras_array)
  for (case in fx$cases) {
    xs <- all_x[seq_len(case$n_inputs)]
    inputs <- lapply(xs, function(x) keras_input(shape = dim(x)[-1]))
    layer_fn <- get(case$r_fn, envir = asNamespace("rustkeras"))
    out <- do.call(layer_fn, c(list(inputs), case$args))
    model <- keras_model(inputs, out)
    got <- predict(model, xs, verbose = 0)
    expect_equal(got, as_keras_array(case$output), tolerance = 1e-6, ignore_attr = TRUE,
                 info = case$r_call)
  }
})

test_that("ResNet50 matches Keras's predictions from Keras's own files", {
  python <- Sys.getenv("RUSTKERAS_PEERS_PYTHON", "/tmp/rustkeras-peers/bin/python")
  script <- file.path(fixture_dir, "make_resnet50.py")
  skip_if_not(file.exists(python), "Python Keras (the peer venv) is not available")
  ok <- suppressWarnings(system2(python, c("-c", shQuote("import keras")), stdout = FALSE, stderr = FALSE,
                                 env = "KERAS_BACKEND=jax"))
  skip_if(ok != 0L, "Python Keras is not importable")
  skip_on_cran()
  dir <- withr::local_tempdir()
  out <- file.path(dir, "resnet50.h5")
  status <- system2(python, c(shQuote(script), shQuote(out)), stdout = FALSE, stderr = FALSE,
                    env = "KERAS_BACKEND=jax")
  skip_if(status != 0L, "make_resnet50.py failed")
  fx <- jsonlite::fromJSON(sub("\\.h5$", ".json", out), simplifyVector = FALSE)
  images <- build_from_r_code(paste(fx$images$r_code, "model <- x", sep = "\n"))
  for (file in c(out, file.path(dir, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"))) {
    if (!file.exists(file)) next
    model <- application_resnet50(weights = file)
    pred <- predict(model, images, verbose = 0)
    expect_equal(pred, as_keras_array(fx$predictions), tolerance = 1e-4, ignore_attr = TRUE,
                 info = basename(file))
  }
  # Keras's whole-model file, architecture included (its BatchNormalization layers say
  # axis 3), loads as a model by itself.
  whole <- load_model_hdf5(out)
  expect_equal(count_params(whole), 25636712)
  expect_equal(predict(whole, images, verbose = 0), as_keras_array(fx$predictions), tolerance = 1e-4,
               ignore_attr = TRUE)
  # The notop file in the ImageNet layout, into the model without the top.
  notop <- file.path(dir, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
  if (file.exists(notop) && !is.null(fx$features_mean)) {
    base <- application_resnet50(weights = notop, include_top = FALSE, pooling = "avg")
    expect_equal(predict(base, images, verbose = 0), as_keras_array(fx$features_mean),
                 tolerance = 1e-4, ignore_attr = TRUE)
  }
})
