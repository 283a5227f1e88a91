fixture <- function(...) test_path("fixtures", "keras-files", ...)
read_matrix <- function(path) unname(as.matrix(read.csv(path, header = FALSE)))

model_layer_name <- function(model, i) rustkeras:::model_info(model)$layer_names[[i]]

small_model <- function(optimizer = "adam") {
  set_random_seed(7)
  model <- keras_model_sequential(input_shape = 6) %>%
    layer_dense(8, activation = "relu") %>%
    layer_dropout(0.2) %>%
    layer_dense(3, activation = "softmax")
  model %>% compile(optimizer = optimizer, loss = "categorical_crossentropy", metrics = "accuracy")
  model
}

toy_data <- function() {
  set.seed(3)
  x <- matrix(rnorm(60 * 6), 60, 6)
  y <- diag(3)[sample(3, 60, replace = TRUE), ]
  list(x = x, y = y)
}

test_that("Keras 3 files load here with Keras's predictions", {
  for (name in c("mlp_adam", "mlp_sgd", "mlp_rmsprop", "mlp_adamw")) {
    x <- read_matrix(fixture(paste0(name, ".x.csv")))
    want <- read_matrix(fixture(paste0(name, ".pred.csv")))
    from_h5 <- load_model_hdf5(fixture(paste0(name, ".h5")))
    from_zip <- load_model(fixture(paste0(name, ".keras")))
    expect_equal(predict(from_h5, x, verbose = 0), want, tolerance = 1e-5, ignore_attr = TRUE)
    expect_equal(predict(from_zip, x, verbose = 0), want, tolerance = 1e-5, ignore_attr = TRUE)
  }
  info <- rustkeras:::model_info(load_model_hdf5(fixture("mlp_adam.h5")))
  expect_equal(info$layer_classes, c("Dense", "Dropout", "Dense"))
  expect_equal(info$optimizer, "adam")
  expect_equal(info$loss, "categorical_crossentropy")
})

test_that("training continues from a Keras file's optimizer state as in Keras", {
  # make_fixtures.py fitted each model 3 more whole-batch epochs after saving it.
  for (name in c("mlp_sgd", "mlp_rmsprop", "mlp_adamw")) {
    model <- load_model_hdf5(fixture(paste0(name, ".h5")))
    x <- read_matrix(fixture(paste0(name, ".x.csv")))
    y <- read_matrix(fixture(paste0(name, ".y.csv")))
    h <- fit(model, x, y, batch_size = nrow(x), epochs = 3, shuffle = FALSE, verbose = 0)
    want <- read_matrix(fixture(paste0(name, ".continued-loss.csv")))[, 1]
    expect_equal(h$metrics$loss, want, tolerance = 1e-5)
  }
})

test_that("Keras 3 weights files load by layer", {
  model <- keras_model_sequential(input_shape = 6) %>%
    layer_dense(5, activation = "relu") %>% layer_dropout(0.3) %>%
    layer_dense(3, activation = "softmax")
  load_model_weights_hdf5(model, fixture("mlp_adam.weights.h5"))
  x <- read_matrix(fixture("mlp_adam.x.csv"))
  expect_equal(predict(model, x, verbose = 0), read_matrix(fixture("mlp_adam.pred.csv")),
               tolerance = 1e-5, ignore_attr = TRUE)
})

test_that("save then load gives identical predictions and the same continued training", {
  d <- toy_data()
  for (ext in c(".h5", ".keras")) {
    for (opt in list("sgd", optimizer_sgd(momentum = 0.9, nesterov = TRUE), "rmsprop",
                     optimizer_rmsprop(momentum = 0.3, centered = TRUE), "adam",
                     optimizer_adam(amsgrad = TRUE), "adamw")) {
      model <- small_model(opt)
      fit(model, d$x, d$y, epochs = 2, batch_size = 16, verbose = 0)
      path <- withr::local_tempfile(fileext = ext)
      if (ext == ".h5") save_model_hdf5(model, path) else save_model(model, path)
      loaded <- if (ext == ".h5") load_model_hdf5(path) else load_model(path)
      expect_identical(predict(loaded, d$x, verbose = 0), predict(model, d$x, verbose = 0))
      expect_identical(get_weights(loaded), get_weights(model))
      set_random_seed(11)
      h1 <- fit(model, d$x, d$y, epochs = 2, batch_size = 16, verbose = 0)
      set_random_seed(11)
      h2 <- fit(loaded, d$x, d$y, epochs = 2, batch_size = 16, verbose = 0)
      expect_identical(h2$metrics, h1$metrics)
    }
  }
})

test_that("include_optimizer = FALSE and compile = FALSE leave the optimizer out", {
  model <- small_model()
  path <- withr::local_tempfile(fileext = ".h5")
  save_model_hdf5(model, path, include_optimizer = FALSE)
  expect_false(rustkeras:::model_info(load_model_hdf5(path))$compiled)
  save_model_hdf5(model, path)
  expect_true(rustkeras:::model_info(load_model_hdf5(path))$compiled)
  expect_false(rustkeras:::model_info(load_model_hdf5(path, compile = FALSE))$compiled)
})

test_that("weights round-trip by order and by name", {
  d <- toy_data()
  model <- small_model()
  path <- withr::local_tempfile(fileext = ".h5")
  save_model_weights_hdf5(model, path)
  other <- small_model()
  set_weights(other, lapply(get_weights(other), function(w) w * 0))
  load_model_weights_hdf5(other, path)
  expect_identical(get_weights(other), get_weights(model))
  # By name: only the layer whose name the file has changes.
  renamed <- keras_model_sequential(input_shape = 6) %>%
    layer_dense(8, activation = "relu", name = model_layer_name(model, 1)) %>%
    layer_dense(3, name = "not_in_file")
  before <- get_weights(renamed)
  load_model_weights_hdf5(renamed, path, by_name = TRUE)
  after <- get_weights(renamed)
  expect_identical(after[[1]], get_weights(model)[[1]])
  expect_identical(after[[3]], before[[3]])
})

test_that("save_model() without a path returns the .keras bytes, which load_model() reads", {
  model <- small_model()
  bytes <- save_model(model)
  expect_type(bytes, "raw")
  expect_identical(bytes[1:2], charToRaw("PK"))
  x <- toy_data()$x
  expect_identical(predict(load_model(bytes), x, verbose = 0), predict(model, x, verbose = 0))
})

test_that("get_config() has Keras's fields and from_config() rebuilds the model", {
  model <- small_model()
  config <- get_config(model)
  expect_equal(attr(config, "class_name"), "Sequential")
  expect_equal(config$layers[[1]]$class_name, "InputLayer")
  expect_equal(config$layers[[1]]$config$batch_shape, list(NULL, 6L))
  dense <- config$layers[[2]]$config
  expect_equal(dense$units, 8L)
  expect_equal(dense$activation, "relu")
  expect_equal(dense$kernel_initializer$class_name, "GlorotUniform")
  expect_equal(dense$dtype$config$name, "float32")
  expect_true("kernel_regularizer" %in% names(dense))
  expect_equal(config$layers[[3]]$config$rate, 0.2)
  again <- from_config(config)
  expect_equal(get_config(again), config)
  layer <- layer_dense(units = 4, activation = "tanh", name = "probe")
  lc <- get_config(layer)
  expect_equal(lc$units, 4L)
  expect_equal(lc$bias_initializer$class_name, "Zeros")
  rebuilt <- from_config(lc)
  expect_s3_class(rebuilt, "rustkeras_layer")
  expect_equal(rebuilt$config$units, 4L)
})

test_that("bad files give clear errors naming the file", {
  dir <- withr::local_tempdir()
  missing <- file.path(dir, "nope.h5")
  expect_error(load_model_hdf5(missing), "nope.h5': no such file", class = "rustkeras_file_error")
  expect_error(load_model(file.path(dir, "nope.keras")), "no such file", class = "rustkeras_file_error")
  text <- file.path(dir, "text.h5")
  writeLines("hello", text)
  expect_error(load_model_hdf5(text), "is not an HDF5 file", class = "rustkeras_file_error")
  expect_error(load_model(text), "not a valid .keras", class = "rustkeras_file_error")
  # An HDF5 file that is not a model.
  model <- small_model()
  weights <- file.path(dir, "w.h5")
  save_model_weights_hdf5(model, weights)
  expect_error(load_model_hdf5(weights), "weights only")
  # Weights of the wrong shape or count.
  wide <- keras_model_sequential(input_shape = 6) %>% layer_dense(9) %>% layer_dense(3)
  expect_error(load_model_weights_hdf5(wide, weights),
               "has shape \\(6, 8\\) in the file, but layer '.*' expects \\(6, 9\\)",
               class = "rustkeras_file_error")
  deeper <- keras_model_sequential(input_shape = 6) %>% layer_dense(8) %>% layer_dense(8) %>%
    layer_dense(3)
  expect_error(load_model_weights_hdf5(deeper, weights),
               "holds weights for 2 layers, but the model has 3 layers with weights")
  # Unknown layer class.
  expect_error(from_config(structure(list(name = "m", layers = list(
    list(class_name = "ConvLSTM2D", config = list(name = "c")))), class_name = "Sequential")),
    "class 'ConvLSTM2D', which rustkeras does not have")
  # Not overwriting.
  path <- file.path(dir, "m.keras")
  save_model(model, path)
  expect_error(save_model(model, path), "already exists")
  expect_error(save_model(model, file.path(dir, "m.txt")), "must end in .keras")
  expect_error(save_model_hdf5(model, file.path(dir, "no-such-dir", "m.h5")), "does not exist")
  # Nothing half-written is left behind.
  expect_setequal(list.files(dir, all.files = TRUE, no.. = TRUE), c("text.h5", "w.h5", "m.keras"))
})

test_that("a killed save's temporary files are removed by the next save", {
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  model <- small_model()
  # What `kill -9` during a save leaves: files named after the target and the writer's pid,
  # here a pid no process has (Linux's pids stop at 2^22).
  pid <- 2^22 + 4321
  expect_false(tools::pskill(pid, 0L))
  stale <- file.path(dir, c(sprintf(".m.keras.tmp-%d-0", pid),
                            sprintf(".m.weights.h5.tmp-%d-7", pid),
                            sprintf(".m.h5.tmp-%d-2", pid)))
  # A live process's file (this R session's) stays.
  live <- file.path(dir, sprintf(".m.keras.tmp-%d-123456", Sys.getpid()))
  for (f in c(stale, live)) writeBin(as.raw(1:200), f)
  save_model(model, file.path(dir, "m.keras"))
  save_model(model, file.path(dir, "m.h5"))
  expect_false(any(file.exists(stale)))
  expect_true(file.exists(live))
  unlink(live)
  expect_setequal(list.files(dir, all.files = TRUE, no.. = TRUE), c("m.keras", "m.h5"))
  expect_equal(predict(load_model(file.path(dir, "m.keras")), matrix(1, 1, 6), verbose = 0),
               predict(model, matrix(1, 1, 6), verbose = 0))
})

test_that("a target that cannot be written gives one line with the path and the reason", {
  skip_if_not(dir.exists("/proc/self"), "no /proc")
  model <- small_model()
  for (path in c("/proc/nope.keras", "/proc/nope.h5")) {
    for (save in list(save_model, save_model_hdf5)) {
      if (identical(save, save_model_hdf5) && grepl("keras$", path)) next
      err <- expect_error(save(model, path, overwrite = TRUE), class = "rustkeras_file_error")
      msg <- conditionMessage(err)
      expect_match(msg, path, fixed = TRUE)
      expect_match(msg, "cannot be written: folder '/proc' does not allow new files", fixed = TRUE)
      expect_no_match(msg, "tmp|HDF5|\n")
    }
  }
  err <- expect_error(save_model_weights_hdf5(model, "/proc/nope.weights.h5"),
                      class = "rustkeras_file_error")
  expect_match(conditionMessage(err), "'/proc/nope.weights.h5': cannot be written", fixed = TRUE)
  expect_no_match(conditionMessage(err), "tmp|HDF5|\n")
})

test_that("an empty file is called empty, with its path", {
  dir <- withr::local_tempdir()
  empty <- file.path(dir, "empty.h5")
  file.create(empty)
  for (load in list(load_model, load_model_hdf5)) {
    err <- expect_error(load(empty), class = "rustkeras_file_error")
    expect_match(conditionMessage(err), sprintf("'%s': is empty (0 bytes), not a Keras file", empty),
                 fixed = TRUE)
  }
  empty_keras <- file.path(dir, "empty.keras")
  file.create(empty_keras)
  expect_error(load_model(empty_keras), "empty.keras': is empty (0 bytes)", fixed = TRUE)
  expect_error(load_model_weights_hdf5(small_model(), empty), "is empty", class = "rustkeras_file_error")
})

corrupt_variants <- function(bytes, n, seed) {
  set.seed(seed)
  len <- length(bytes)
  lapply(seq_len(n), function(i) {
    b <- bytes
    kind <- i %% 4
    if (kind == 0) {
      b[seq_len(sample(len - 1, 1))]                 # truncated
    } else if (kind == 1) {
      at <- sample(len, 1); b[at] <- as.raw(bitwXor(as.integer(b[at]), 1L + sample(254, 1))); b
    } else if (kind == 2) {
      at <- sample(len, 8); b[at] <- as.raw(sample(0:255, 8, replace = TRUE)); b
    } else {
      at <- sample(max(1, len - 64), 1); b[at:(at + 63)] <- as.raw(0); b   # zeroed block
    }
  })
}

test_that("corrupted files fail cleanly or load a consistent model", {
  d <- toy_data()
  model <- small_model()
  fit(model, d$x, d$y, epochs = 1, verbose = 0)
  dir <- withr::local_tempdir()
  # A file that hangs HDF5 is given 3 s before it counts as corrupted.
  withr::local_envvar(RUSTKERAS_H5_TIMEOUT = "3")
  outcomes <- character()
  for (ext in c(".h5", ".keras")) {
    good <- file.path(dir, paste0("good", ext))
    if (ext == ".h5") save_model_hdf5(model, good) else save_model(model, good)
    bytes <- readBin(good, "raw", file.size(good))
    variants <- corrupt_variants(bytes, 80, seed = nchar(ext))
    for (b in variants) {
      bad <- file.path(dir, paste0("bad", ext))
      writeBin(b, bad)
      res <- tryCatch(load_model(bad), error = function(e) e)
      if (inherits(res, "error")) {
        expect_s3_class(res, "rustkeras_file_error")
        expect_true(grepl("bad", conditionMessage(res), useBytes = TRUE))
        expect_false(grepl("panic|Internal error", conditionMessage(res), useBytes = TRUE))
        outcomes <- c(outcomes, "error")
      } else {
        p <- predict(res, d$x, verbose = 0)
        expect_equal(dim(p), c(60L, 3L))
        outcomes <- c(outcomes, "loaded")
      }
    }
  }
  # Edited attributes: a model_config that is not JSON, or names an unknown class.
  h5 <- file.path(dir, "good.h5")
  bytes <- readBin(h5, "raw", file.size(h5))
  for (edit in list(c("\"Dense\"", "\"Dxnse\""), c("\"units\":8", "\"units\":0"),
                    c("\"layers\"", "\"lxyers\""), c("{\"class_name\"", "[\"class_name\""))) {
    from <- charToRaw(edit[1]); to <- charToRaw(edit[2])
    hit <- which(vapply(seq_len(length(bytes) - length(from)), function(i)
      identical(bytes[i:(i + length(from) - 1)], from), logical(1)))
    expect_gt(length(hit), 0)
    b <- bytes
    b[hit[1]:(hit[1] + length(to) - 1)] <- to
    writeBin(b, file.path(dir, "edited.h5"))
    expect_error(load_model_hdf5(file.path(dir, "edited.h5")), "edited.h5", class = "rustkeras_file_error")
    outcomes <- c(outcomes, "error")
  }
  expect_gte(length(outcomes), 164)
  expect_true(any(outcomes == "error"))
})

test_that("files that crash or hang the HDF5 library give an error, and R goes on", {
  # One byte changed in Keras's nested.h5 makes HDF5 1.10.8 crash (SIGSEGV) or loop
  # forever (found by flipping bytes at random). A child process reads such a file first.
  skip_on_os("windows")
  withr::local_envvar(RUSTKERAS_H5_TIMEOUT = "3")
  good <- test_path("fixtures", "keras-functional", "nested.h5")
  bytes <- readBin(good, "raw", file.size(good))
  dir <- withr::local_tempdir()
  patches <- list(crash = list(at = 2128, to = 2), crash2 = list(at = 8237, to = 108),
                  hang = list(at = c(8953, 8961), to = c(0, 0)))
  for (name in names(patches)) {
    b <- bytes
    b[patches[[name]]$at] <- as.raw(patches[[name]]$to)
    bad <- file.path(dir, paste0(name, ".h5"))
    writeBin(b, bad)
    expect_error(load_model_hdf5(bad), paste0("'", bad, "': is corrupted"),
                 class = "rustkeras_file_error", fixed = TRUE)
    expect_error(load_model_weights_hdf5(load_model_hdf5(good), bad), "is corrupted",
                 class = "rustkeras_file_error")
  }
  # The same file, unchanged, still loads.
  expect_s3_class(load_model_hdf5(good), "rustkeras_functional")
})

test_that("every convolutional, pooling, reshaping and normalization layer round-trips", {
  set_random_seed(1)
  model <- keras_model_sequential(input_shape = c(12, 12, 2)) %>%
    layer_zero_padding_2d(padding = list(c(1L, 2L), c(0L, 1L))) %>%
    layer_conv_2d(4, 3, strides = 2, padding = "same", activation = "relu") %>%
    layer_batch_normalization(momentum = 0.9) %>%
    layer_depthwise_conv_2d(3, depth_multiplier = 2, dilation_rate = 1) %>%
    layer_separable_conv_2d(3, 2, activation = "tanh") %>%
    layer_average_pooling_2d(2, padding = "same") %>%
    layer_max_pooling_2d(c(1, 2)) %>%
    layer_flatten() %>%
    layer_reshape(c(-1, 3)) %>%
    layer_conv_1d(2, 1, padding = "causal") %>%
    layer_max_pooling_1d(1) %>%
    layer_global_average_pooling_1d() %>%
    layer_dense(3, activation = "softmax")
  model %>% compile(optimizer = "adam", loss = "categorical_crossentropy")
  x <- array(rnorm(8 * 288), c(8, 12, 12, 2))
  y <- to_categorical(rep(0:2, length.out = 8), 3)
  model %>% fit(x, y, epochs = 2, batch_size = 4, verbose = 0)
  want <- predict(model, x, verbose = 0)
  for (ext in c(".h5", ".keras")) {
    path <- withr::local_tempfile(fileext = ext)
    save_model(model, path)
    loaded <- load_model(path)
    expect_identical(model_info(loaded)$layer_classes, model_info(model)$layer_classes)
    expect_identical(model_info(loaded)$output_shapes, model_info(model)$output_shapes)
    expect_identical(get_weights(loaded), get_weights(model))
    expect_identical(predict(loaded, x, verbose = 0), want)
  }
})
