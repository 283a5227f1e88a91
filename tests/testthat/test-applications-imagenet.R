# The ImageNet helpers (R/applications-imagenet.R) and the cache of downloaded files
# (R/utils-files.R). Downloads go through option rustkeras.download, so nothing here
# uses the network.

# Cache folders of this test only: KERAS_HOME and R's user cache (keras3's and
# rustkeras's folders are under it).
local_cache <- function(env = parent.frame()) {
  root <- withr::local_tempdir(.local_envir = env)
  withr::local_envvar(KERAS_HOME = file.path(root, "keras-home"),
                      R_USER_CACHE_DIR = file.path(root, "r-cache"), .local_envir = env)
  list(keras_home = file.path(root, "keras-home"),
       keras3 = file.path(root, "r-cache", "R", "keras3"),
       rustkeras = file.path(root, "r-cache", "R", "rustkeras"))
}

put_file <- function(dir, name, content) {
  dir.create(dir, recursive = TRUE, showWarnings = FALSE)
  writeLines(content, file.path(dir, name))
  file.path(dir, name)
}

# A downloader that writes `content` and records the URLs it was asked for.
fake_downloader <- function(content) {
  urls <- character()
  f <- function(url, destfile) {
    urls <<- c(urls, url)
    writeLines(content, destfile)
    0L
  }
  list(download = f, urls = function() urls)
}
offline <- function(url, destfile) stop("cannot open URL '", url, "'")
no_download <- function(url, destfile) stop("test: no download expected of ", url)

md5 <- function(path) unname(tools::md5sum(path))

# Evaluate `expr`: its value (or error condition) and every message it emitted.
with_messages <- function(expr) {
  msgs <- character()
  value <- withCallingHandlers(
    tryCatch(expr, error = identity),
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  list(value = value, messages = msgs)
}

# ---- imagenet_preprocess_input() ----------------------------------------------------

# Two images of 1 x 2 pixels; channel c of pixel (i, w) is 100 * c + 10 * i + w.
tiny_images <- function() {
  x <- array(0, dim = c(2, 1, 2, 3))
  for (i in 1:2) for (w in 1:2) for (c in 1:3) x[i, 1, w, c] <- 100 * c + 10 * i + w
  x
}

test_that("caffe mode reverses the channels to BGR and subtracts the ImageNet means", {
  x <- tiny_images()
  out <- imagenet_preprocess_input(x)
  expect_identical(dim(out), dim(x))
  expect_type(out, "double")
  # output channel 1 is blue, 2 green, 3 red
  expect_equal(out[, , , 1], x[, , , 3] - 103.939)
  expect_equal(out[, , , 2], x[, , , 2] - 116.779)
  expect_equal(out[, , , 3], x[, , , 1] - 123.68)
  # pixel (2, 1) of image 1: R = 112, G = 212, B = 312
  expect_equal(out[1, 1, 2, ], c(312 - 103.939, 212 - 116.779, 112 - 123.68))
  expect_identical(imagenet_preprocess_input(x, mode = "caffe"), out)
  expect_identical(imagenet_preprocess_input(x, data_format = "channels_last"), out)
})

test_that("a red pixel becomes Keras's values in each mode", {
  red <- array(c(255, 0, 0), dim = c(1, 1, 1, 3))
  expect_equal(as.vector(imagenet_preprocess_input(red)),
               c(-103.939, -116.779, 255 - 123.68))
  expect_equal(as.vector(imagenet_preprocess_input(red, mode = "tf")), c(1, -1, -1))
  expect_equal(as.vector(imagenet_preprocess_input(red, mode = "torch")),
               c((1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225))
})

test_that("tf mode scales to [-1, 1] and torch mode normalizes each RGB channel", {
  x <- tiny_images()
  expect_equal(imagenet_preprocess_input(x, mode = "tf"), x / 127.5 - 1)
  out <- imagenet_preprocess_input(x, mode = "torch")
  expect_equal(out[, , , 1], (x[, , , 1] / 255 - 0.485) / 0.229)
  expect_equal(out[, , , 2], (x[, , , 2] / 255 - 0.456) / 0.224)
  expect_equal(out[, , , 3], (x[, , , 3] / 255 - 0.406) / 0.225)
  expect_equal(imagenet_preprocess_input(array(c(0, 127.5, 255), c(1, 3)), mode = "tf"),
               array(c(-1, 0, 1), c(1, 3)))
})

test_that("integer images, single images and plain pixels work", {
  x <- tiny_images()
  xi <- x
  storage.mode(xi) <- "integer"
  expect_identical(imagenet_preprocess_input(xi), imagenet_preprocess_input(x))
  # one image (height, width, 3)
  one <- x[2, , , , drop = FALSE]
  dim(one) <- c(1, 2, 3)
  expect_equal(as.vector(imagenet_preprocess_input(one)),
               as.vector(imagenet_preprocess_input(x)[2, , , ]))
  # a vector of 3 values is one RGB pixel
  expect_equal(imagenet_preprocess_input(c(10, 20, 30)),
               array(c(30 - 103.939, 20 - 116.779, 10 - 123.68), 3))
  # channel names follow their channels
  named <- array(1:3, c(1, 3), dimnames = list(NULL, c("R", "G", "B")))
  expect_identical(dimnames(imagenet_preprocess_input(named))[[2]], c("B", "G", "R"))
  expect_identical(dimnames(imagenet_preprocess_input(named, mode = "tf"))[[2]], c("R", "G", "B"))
})

test_that("imagenet_preprocess_input() rejects bad input with the argument and shape", {
  expect_error(imagenet_preprocess_input(array(1, c(2, 4, 4, 1))),
               "`x` must have 3 color channels on its last axis \\(channels_last\\), but its shape is \\(2, 4, 4, 1\\)",
               class = "rustkeras_argument_error")
  expect_error(imagenet_preprocess_input(1:4),
               "its shape is \\(4,\\)", class = "rustkeras_argument_error")
  expect_error(imagenet_preprocess_input(array("a", c(2, 3))),
               "`x` must be a numeric array of images, not a character array of shape \\(2, 3\\)",
               class = "rustkeras_argument_error")
  expect_error(imagenet_preprocess_input(array(TRUE, c(1, 3))),
               "not a logical array of shape \\(1, 3\\)")
  expect_error(imagenet_preprocess_input(tiny_images(), mode = "imagenet"),
               "`mode` must be \"caffe\", \"tf\" or \"torch\", not \"imagenet\"",
               class = "rustkeras_argument_error")
  expect_error(imagenet_preprocess_input(tiny_images(), mode = NULL), "not NULL")
  expect_error(imagenet_preprocess_input(tiny_images(), data_format = "channels_first"),
               "'channels_first' is not supported yet; use 'channels_last'",
               class = "rustkeras_argument_error")
  expect_error(imagenet_preprocess_input(tiny_images(), data_format = "nhwc"),
               "`data_format` must be \"channels_last\" or \"channels_first\", not \"nhwc\"")
  err <- expect_error(imagenet_preprocess_input(1:4))
  expect_identical(conditionCall(err), quote(imagenet_preprocess_input()))
})

# ---- application_preprocess_inputs() / application_decode_predictions() --------------

fake_app_model <- function(name = "resnet50") {
  structure(list(), class = "rustkeras_model", rustkeras_application = name)
}

test_that("application_preprocess_inputs() uses caffe mode for ResNet50", {
  model <- fake_app_model()
  x <- tiny_images()
  expect_identical(model_application_name(model), "resnet50")
  expect_identical(application_preprocess_inputs(model, x),
                   imagenet_preprocess_input(x, mode = "caffe"))
  # without x: the preprocessing function, keeping data_format
  f <- application_preprocess_inputs(model)
  expect_true(is.function(f))
  expect_identical(f(x), imagenet_preprocess_input(x))
  g <- application_preprocess_inputs(model, data_format = "channels_first")
  expect_error(g(x), "'channels_first' is not supported")
  expect_error(application_preprocess_inputs(model, x, data_format = "channels_first"),
               "'channels_first' is not supported")
  expect_error(application_preprocess_inputs(model, x, scale = 2),
               "`...` must be empty; got 1 extra argument", class = "rustkeras_argument_error")
})

test_that("the application helpers need a model from an application_*() function", {
  plain <- structure(list(), class = "rustkeras_model")
  expect_error(model_application_name(plain),
               "`model` is not a model from an application_\\*\\(\\) function",
               class = "rustkeras_argument_error")
  expect_error(application_preprocess_inputs(plain, tiny_images()),
               "`model` is not a model from an application_\\*\\(\\) function")
  expect_error(application_decode_predictions(plain, matrix(0, 1, 1000)),
               "`model` is not a model from an application_\\*\\(\\) function")
  expect_error(application_preprocess_inputs(fake_app_model("vgg16"), tiny_images()),
               "no preprocessing or decoding helpers for the application 'vgg16'")
  err <- expect_error(application_preprocess_inputs(plain, tiny_images()))
  expect_identical(conditionCall(err), quote(application_preprocess_inputs()))
})

# ---- imagenet_decode_predictions() ------------------------------------------------------

# A class index in Keras's format for 1000 classes: class i is "n<i + 10^7>",
# "class_<i>", except a few with JSON escapes.
write_class_index <- function(dir, n = 1000) {
  desc <- sprintf("class_%d", 0:(n - 1))
  desc[3] <- "jack-o'-lantern"
  desc[4] <- "say \\\"cheese\\\""
  desc[5] <- "caf\\u00e9\\\\bar"
  entries <- sprintf("\"%d\": [\"n%08d\", \"%s\"]", 0:(n - 1), 0:(n - 1) + 1e7, desc)
  put_file(dir, "imagenet_class_index.json", paste0("{", paste(entries, collapse = ", "), "}"))
}

test_that("decoding gives the top classes of each sample, best first", {
  dirs <- local_cache()
  withr::local_options(rustkeras.download = no_download)
  path <- write_class_index(file.path(dirs$keras_home, "models"))
  index <- imagenet_class_index(file_hash = NULL)
  expect_identical(index$path, path)
  expect_identical(index$name[["0"]], "n10000000")
  expect_identical(index$description[["2"]], "jack-o'-lantern")
  expect_identical(index$description[["3"]], "say \"cheese\"")
  expect_identical(index$description[["4"]], "caf\u00e9\\bar")
  expect_length(index$name, 1000)

  preds <- matrix(0, nrow = 2, ncol = 1000)
  preds[1, c(11, 501, 1000, 3)] <- c(0.5, 0.2, 0.25, 0.05)
  preds[2, c(4, 5)] <- c(0.7, 0.3)
  decoded <- decode_imagenet(preds, top = 3, call = NULL, class_index = index)
  expect_length(decoded, 2)
  expect_identical(decoded[[1]], data.frame(
    class_name = c("n10000010", "n10000999", "n10000500"),
    class_description = c("class_10", "class_999", "class_500"),
    score = c(0.5, 0.25, 0.2),
    stringsAsFactors = FALSE
  ))
  expect_identical(decoded[[2]]$class_description[1:2], c("say \"cheese\"", "caf\u00e9\\bar"))
  expect_identical(decoded[[2]]$score, c(0.7, 0.3, 0))
  # ties: the higher class index first, as Keras's argsort()[-top:][::-1]
  expect_identical(decoded[[2]]$class_name[3], "n10000999")

  expect_identical(nrow(decode_imagenet(preds, 5L, NULL, index)[[1]]), 5L)
  expect_identical(nrow(decode_imagenet(preds, 2000, NULL, index)[[1]]), 1000L)
  expect_identical(decode_imagenet(preds[0, , drop = FALSE], 5, NULL, index), list())
  expect_identical(decode_imagenet(preds, 1, NULL, index)[[1]]$class_name, "n10000010")
})

test_that("imagenet_decode_predictions() checks preds and top before any file", {
  local_cache()
  withr::local_options(rustkeras.download = no_download)
  expect_error(imagenet_decode_predictions(matrix(0, 2, 10)),
               "`preds` must be a numeric matrix of shape \\(samples, 1000\\), .*not a double array of shape \\(2, 10\\)",
               class = "rustkeras_argument_error")
  expect_error(imagenet_decode_predictions(runif(1000)),
               "not a double vector of shape \\(1000,\\)")
  expect_error(imagenet_decode_predictions(array(0, c(1, 1000, 1))),
               "shape \\(1, 1000, 1\\)")
  expect_error(imagenet_decode_predictions(as.data.frame(matrix(0, 1, 1000))),
               "not a data frame of shape \\(1, 1000\\)")
  expect_error(imagenet_decode_predictions(matrix(0, 1, 1000), top = 0),
               "`top` must be a positive integer, not 0")
})

test_that("a class index that is not one, or lacks a class, gives a clear error", {
  dirs <- local_cache()
  dir <- file.path(dirs$keras_home, "models")
  path <- put_file(dir, "imagenet_class_index.json", "{\"0\": [\"n01440764\", \"tench\"], \"x\": 1}")
  expect_error(read_imagenet_class_index(path, NULL),
               "is not an ImageNet class index", class = "rustkeras_file_error")
  write_class_index(dir, n = 10)
  index <- imagenet_class_index(file_hash = NULL)
  preds <- matrix(0, 1, 1000)
  preds[1, 20] <- 1
  expect_error(decode_imagenet(preds, 1, NULL, index),
               "has no entry for class 19", class = "rustkeras_file_error")
})

test_that("the class index is checked against Keras's md5 and downloaded from Keras's URL", {
  skip_if(file.exists(path.expand("~/.keras/models/imagenet_class_index.json")),
          "a real class index in ~/.keras/models would be found")
  dirs <- local_cache()
  fake <- write_class_index(file.path(dirs$keras_home, "models"))
  withr::local_options(rustkeras.download = offline)
  preds <- matrix(runif(1000), 1)
  res <- with_messages(imagenet_decode_predictions(preds))
  expect_match(res$messages[1], paste0(
    "imagenet_class_index.json' is incomplete or outdated: its md5 hash is ", md5(fake),
    ", not c2c37ea517e94d9795004a39431a14cb. Ignoring it."), fixed = TRUE)
  expect_match(res$messages[2], paste0("Downloading data from ", imagenet_class_index_url), fixed = TRUE)
  err <- res$value
  expect_s3_class(err, "rustkeras_download_error")
  expect_match(conditionMessage(err), paste0(
    "could not download https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json ",
    "(cannot open URL"), fixed = TRUE)
  expect_match(conditionMessage(err), paste0("The copies at '", fake, "' have the wrong md5 hash"),
               fixed = TRUE)
  expect_identical(conditionCall(err), quote(imagenet_decode_predictions()))

  # a download with the wrong hash is not kept
  fake_dl <- fake_downloader("{}")
  withr::local_options(rustkeras.download = fake_dl$download)
  expect_error(suppressMessages(imagenet_decode_predictions(preds)),
               "downloaded from .*imagenet_class_index.json is incomplete or corrupted: its md5 hash is .*, not c2c37ea517e94d9795004a39431a14cb. It was not kept.",
               class = "rustkeras_download_error")
  expect_identical(fake_dl$urls(), imagenet_class_index_url)
  expect_false(file.exists(file.path(dirs$rustkeras, "models", "imagenet_class_index.json")))
})

test_that("application_decode_predictions() decodes as imagenet_decode_predictions()", {
  local_cache()
  withr::local_options(rustkeras.download = no_download)
  model <- fake_app_model()
  f <- application_decode_predictions(model, top = 2)
  expect_true(is.function(f))
  expect_identical(formals(f)$top, quote(default_top))
  expect_error(f(matrix(0, 1, 3)), "shape \\(1, 3\\)")
  expect_error(application_decode_predictions(model, matrix(0, 1, 3)), "shape \\(1, 3\\)")
  expect_error(application_decode_predictions(model, matrix(0, 1, 1000), foo = 1),
               "`...` must be empty")
})

# ---- the file cache ------------------------------------------------------------------------

test_that("files are looked for in KERAS_HOME, ~/.keras, keras3's and rustkeras's caches", {
  dirs <- local_cache()
  expect_identical(file_cache_dirs("models"), c(
    file.path(dirs$keras_home, "models"),
    file.path(path.expand("~/.keras"), "models"),
    file.path(dirs$keras3, "models"),
    file.path(dirs$rustkeras, "models")
  ))
  withr::local_envvar(KERAS_HOME = NA)
  expect_identical(file_cache_dirs("datasets")[1], file.path(path.expand("~/.keras"), "datasets"))
  expect_length(file_cache_dirs("datasets"), 3)
  expect_identical(keras_dataset_dirs(), file_cache_dirs("datasets")[1:2])
  expect_identical(file_cache_dirs("models", cache_dir = "/data/k"), "/data/k/models")
  expect_identical(file_cache_dirs("/data/weights"), "/data/weights")
})

test_that("the first copy found is used, without downloading", {
  dirs <- local_cache()
  withr::local_options(rustkeras.download = no_download)
  name <- "rk-test-lookup.bin"
  url <- "https://example.org/rk-test-lookup.bin"
  in_rustkeras <- put_file(file.path(dirs$rustkeras, "models"), name, "rustkeras")
  expect_identical(keras_cache_file(name, url), in_rustkeras)
  in_keras3 <- put_file(file.path(dirs$keras3, "models"), name, "keras3")
  expect_identical(keras_cache_file(name, url), in_keras3)
  in_home <- put_file(file.path(dirs$keras_home, "models"), name, "keras home")
  expect_identical(keras_cache_file(name, url), in_home)
  # with a hash, a copy that does not match is skipped
  res <- with_messages(keras_cache_file(name, url, file_hash = md5(in_rustkeras)))
  expect_identical(res$value, in_rustkeras)
  expect_identical(res$messages, paste0(
    "'", c(in_home, in_keras3), "' is incomplete or outdated: its md5 hash is ",
    c(md5(in_home), md5(in_keras3)), ", not ", md5(in_rustkeras), ". Ignoring it.\n"))
  res <- with_messages(keras_cache_file(name, url, file_hash = toupper(md5(in_keras3))))
  expect_identical(res$value, in_keras3)
  expect_length(res$messages, 1)
  # a folder of that name is not the file
  dir.create(file.path(dirs$keras_home, "models", "rk-dir"))
  put_file(file.path(dirs$rustkeras, "models"), "rk-dir", "x")
  expect_identical(keras_cache_file("rk-dir", url), file.path(dirs$rustkeras, "models", "rk-dir"))
})

test_that("a missing file is downloaded once into rustkeras's cache", {
  dirs <- local_cache()
  fake <- fake_downloader("weights")
  withr::local_options(rustkeras.download = fake$download)
  expected <- file.path(dirs$rustkeras, "models", "rk-test-dl.h5")
  expect_message(path <- keras_cache_file("rk-test-dl.h5", "https://example.org/w.h5"),
                 "Downloading data from https://example.org/w.h5")
  expect_identical(path, expected)
  expect_identical(readLines(path), "weights")
  expect_identical(fake$urls(), "https://example.org/w.h5")
  expect_identical(keras_cache_file("rk-test-dl.h5", "https://example.org/w.h5"), expected)
  expect_length(fake$urls(), 1)
  # force_download downloads again, with a hash checked
  good <- md5(path)
  expect_identical(suppressMessages(
    keras_cache_file("rk-test-dl.h5", "https://example.org/w.h5", file_hash = good,
                     force_download = TRUE)), expected)
  expect_length(fake$urls(), 2)
  # a download with another hash is not kept
  expect_error(suppressMessages(
    keras_cache_file("rk-test-other.h5", "https://example.org/o.h5", file_hash = strrep("0", 32))),
    "is incomplete or corrupted: its md5 hash is .*, not 00000000000000000000000000000000",
    class = "rustkeras_download_error")
  expect_false(file.exists(file.path(dirs$rustkeras, "models", "rk-test-other.h5")))
})

test_that("offline, the error names the file, its URL and where to put it by hand", {
  dirs <- local_cache()
  withr::local_options(rustkeras.download = offline)
  url <- "https://example.org/files/rk-test-offline.h5"
  err <- expect_error(suppressMessages(keras_cache_file("rk-test-offline.h5", url)),
                      class = "rustkeras_download_error")
  expect_identical(conditionMessage(err), paste0(
    "could not download ", url, " (cannot open URL '", url, "').\n",
    "Without internet, download that file on another machine and copy it to one of these places:\n",
    "  '", dirs$keras_home, "/models/rk-test-offline.h5'\n",
    "  '", path.expand("~/.keras"), "/models/rk-test-offline.h5'\n",
    "  '", dirs$keras3, "/models/rk-test-offline.h5'\n",
    "  '", dirs$rustkeras, "/models/rk-test-offline.h5'"
  ))
  expect_false(dir.exists(file.path(dirs$rustkeras, "models")))
  # a downloader that returns a non-zero status, or writes nothing, fails the same way
  withr::local_options(rustkeras.download = function(url, destfile) 1L)
  expect_error(suppressMessages(keras_cache_file("rk-test-offline.h5", url)),
               "could not download https://example.org/files/rk-test-offline.h5.\nWithout internet")
  withr::local_options(rustkeras.download = function(url, destfile) 0L)
  expect_error(suppressMessages(keras_cache_file("rk-test-offline.h5", url)), "could not download")
})

test_that("ResNet50's weights are Keras's files, URLs and md5 hashes", {
  skip_if(file.exists(path.expand(paste0("~/.keras/models/", resnet50_weights_files$top$file))),
          "real ResNet50 weights in ~/.keras/models would be found")
  dirs <- local_cache()
  base <- "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
  withr::local_options(rustkeras.download = offline)
  err <- expect_error(suppressMessages(resnet50_weights_path()), class = "rustkeras_download_error")
  expect_match(conditionMessage(err), paste0(
    "could not download ", base, "resnet50_weights_tf_dim_ordering_tf_kernels.h5 "), fixed = TRUE)
  expect_match(conditionMessage(err), paste0(
    "'", dirs$rustkeras, "/models/resnet50_weights_tf_dim_ordering_tf_kernels.h5'"), fixed = TRUE)

  fake <- fake_downloader("not the weights")
  withr::local_options(rustkeras.download = fake$download)
  expect_error(suppressMessages(resnet50_weights_path(include_top = TRUE)),
               "its md5 hash is .*, not 2cb95161c43110f7111970584f804107")
  expect_error(suppressMessages(resnet50_weights_path(include_top = FALSE)),
               "its md5 hash is .*, not 4d473c1dd8becc155b73f8504c6f6626")
  expect_identical(fake$urls(), paste0(base, c(
    "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
  )))
  expect_error(resnet50_weights_path(include_top = NA), "`include_top` must be TRUE or FALSE")
})

test_that("get_file() takes keras3's arguments", {
  dirs <- local_cache()
  fake <- fake_downloader("data")
  withr::local_options(rustkeras.download = fake$download)
  path <- suppressMessages(get_file(origin = "https://example.org/d/rk-test.csv?raw=1"))
  expect_identical(path, file.path(dirs$rustkeras, "datasets", "rk-test.csv"))
  # cache_dir is the only folder used
  own <- withr::local_tempdir()
  path <- suppressMessages(get_file("x.csv", "https://example.org/x", cache_dir = own,
                                    cache_subdir = "sub"))
  expect_identical(path, file.path(own, "sub", "x.csv"))
  # md5_hash, Keras's old name for file_hash
  expect_identical(get_file("x.csv", "https://example.org/x", cache_dir = own,
                            cache_subdir = "sub", md5_hash = md5(path)), path)
  expect_error(suppressMessages(
    get_file("y.csv", "https://example.org/y", cache_dir = own, md5_hash = strrep("a", 32))),
    "incomplete or corrupted")
  expect_length(fake$urls(), 3)

  expect_error(get_file("a/b.csv", "https://example.org/b"), "`fname` must be a file name, not a path")
  expect_error(get_file(origin = "https://example.org/"), "Cannot take a file name from `origin`")
  expect_error(get_file(origin = "https://example.org"), "Cannot take a file name from `origin`")
  expect_error(get_file(origin = "https://example.org/d/?f=x.csv"), "Cannot take a file name")
  expect_identical(url_file_name("https://example.org/a/b.tar.gz#frag"), "b.tar.gz")
  expect_error(get_file("b.csv"), "`origin` must be a single string")
  expect_error(get_file("b.csv", "https://example.org/b", extract = TRUE), "not supported yet")
  expect_error(get_file("b.csv", "https://example.org/b", foo = 1), "Unknown arguments in `...`: `foo`")
  expect_error(get_file("b.csv", "https://example.org/b", file_hash = "xyz"),
               "`file_hash` must be a hexadecimal md5 or sha256 hash")
  expect_error(get_file("b.csv", "https://example.org/b", hash_algorithm = "sha1"),
               "`hash_algorithm` must be")
})
