# Fixtures in fixtures/ are made by fixtures/make-fixtures.py with NumPy.

fixture <- function(name) test_path("fixtures", name)

debian_fashion <- "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

# ---- npz / npy ------------------------------------------------------------

test_that("read_npz() reads NumPy arrays with their index meaning", {
  a <- read_npz(fixture("arrays.npz"))
  expect_setequal(names(a), c("u1", "i8", "i8big", "u4", "i4be", "u2", "f4",
                              "f8", "b1", "scalar"))

  # np.arange(24, dtype=uint8).reshape(2, 3, 4): a[i, j, k] = 12i + 4j + k
  expected_u1 <- array(0L, c(2, 3, 4))
  for (i in 1:2) for (j in 1:3) for (k in 1:4) {
    expected_u1[i, j, k] <- 12L * (i - 1L) + 4L * (j - 1L) + (k - 1L)
  }
  expect_identical(a$u1, expected_u1)
  expect_identical(a$i8, rbind(c(-1L, 0L, 7L), c(2L, 3L, -5L)))
  expect_identical(a$i8big, array(c(-(2^40), 2^40 + 1), 2))
  expect_identical(a$u4, array(c(0, 2^32 - 1), 2))
  expect_identical(a$i4be, array(c(1L, -2L, .Machine$integer.max), 3))
  expect_identical(a$u2, array(c(0L, 65535L), 2))
  expect_identical(a$f4, array(c(0.5, -1.25, 3), 3))
  # Fortran-order array: a[i, j] = (3i + j) / 4
  expect_identical(a$f8, rbind(c(0, 1, 2), c(3, 4, 5)) / 4)
  expect_identical(a$b1, rbind(c(TRUE, FALSE), c(FALSE, TRUE)))
  expect_identical(a$scalar, 2.5)
})

test_that("read_npy() and read_npz() reject damaged files", {
  dir <- withr::local_tempdir()
  utils::unzip(fixture("arrays.npz"), files = "u1.npy", exdir = dir)
  good <- readBin(file.path(dir, "u1.npy"), "raw", 1000)

  truncated <- file.path(dir, "truncated.npy")
  writeBin(good[seq_len(length(good) - 5)], truncated)
  expect_error(read_npy(truncated), "not a valid .npy file: the header announces 24 values")

  bad_magic <- file.path(dir, "bad.npy")
  writeBin(c(as.raw(0), good[-1]), bad_magic)
  expect_error(read_npy(bad_magic), "bad magic string")

  short <- file.path(dir, "short.npy")
  writeBin(good[1:20], short)
  expect_error(read_npy(short), "truncated header")

  not_zip <- file.path(dir, "not.npz")
  writeBin(good, not_zip)
  expect_error(read_npz(not_zip), "not a valid .npz file")
  expect_error(read_npz(file.path(dir, "absent.npz")), "does not exist")
})

test_that("dataset_mnist() reads an npz file into keras3's structure", {
  file <- normalizePath(fixture("mnist-tiny.npz"))
  d <- dataset_mnist(path = file)
  expect_named(d, c("train", "test"))
  expect_named(d$train, c("x", "y"))
  expect_named(d$test, c("x", "y"))
  expect_identical(dim(d$train$x), c(3L, 28L, 28L))
  expect_identical(dim(d$test$x), c(2L, 28L, 28L))
  expect_type(d$train$x, "integer")
  # 1-d integer arrays, as reticulate converts Keras's labels
  expect_identical(d$train$y, array(0:2, 3))
  expect_identical(d$test$y, array(0:1, 2))
  # fixture: x[i, r, c] = (7i + 3r + c) %% 256, 0-based
  mnist_pixel <- function(i, r, c) as.integer((7 * (i - 1) + 3 * (r - 1) + (c - 1)) %% 256)
  expect_identical(d$train$x[3, 5, 20], mnist_pixel(3, 5, 20))
  expect_identical(d$train$x[1, 28, 1], mnist_pixel(1, 28, 1))
  expect_identical(d$test$x[2, 1, 28], mnist_pixel(2, 1, 28))
  expect_identical(sum(d$train$x[2, , ]), sum(outer(1:28, 1:28, function(r, c) mnist_pixel(2, r, c))))

  c(c(x_train, y_train), c(x_test, y_test)) %<-% d
  expect_identical(x_test, d$test$x)
  expect_identical(y_train, d$train$y)
})

test_that("dataset_mnist() reuses a copy in KERAS_HOME", {
  home <- withr::local_tempdir()
  dir.create(file.path(home, "datasets"))
  file.copy(fixture("mnist-tiny.npz"), file.path(home, "datasets", "tiny.npz"))
  withr::local_envvar(KERAS_HOME = home)
  d <- dataset_mnist(path = "tiny.npz")
  expect_identical(dim(d$train$x), c(3L, 28L, 28L))
})

test_that("dataset_mnist() finds a copy in rustkeras's cache", {
  cache <- withr::local_tempdir()
  withr::local_envvar(R_USER_CACHE_DIR = cache, KERAS_HOME = cache)
  dir.create(file.path(cache, "R", "rustkeras"), recursive = TRUE)
  file.copy(fixture("mnist-tiny.npz"),
            file.path(cache, "R", "rustkeras", "rk-test-tiny.npz"))
  d <- dataset_mnist(path = "rk-test-tiny.npz")
  expect_identical(dim(d$test$x), c(2L, 28L, 28L))
})

test_that("dataset_mnist() checks its arguments and the file's content", {
  expect_error(dataset_mnist(path = 1), "`path` must be a file name")
  expect_error(dataset_mnist(convert = FALSE), "`convert` must be TRUE")
  expect_error(dataset_mnist(path = normalizePath(fixture("arrays.npz"))),
               "is not the MNIST data set: it lacks x_train")
})

test_that("a failed download gives a clear error and leaves no file", {
  dir <- withr::local_tempdir()
  dest <- file.path(dir, "sub", "mnist.npz")
  url <- paste0("file://", dir, "/no-such-file.npz")
  expect_error(
    suppressMessages(download_file_into_place(url, dest)),
    "could not download .*no-such-file.npz.*copy it to '.*mnist.npz'"
  )
  expect_false(dir.exists(dirname(dest)))
})

test_that("a download lands in place and is read from there", {
  dir <- withr::local_tempdir()
  dest <- file.path(dir, "sub", "mnist.npz")
  url <- paste0("file://", normalizePath(fixture("mnist-tiny.npz")))
  expect_message(download_file_into_place(url, dest), "Downloading data from file://")
  expect_identical(unname(tools::md5sum(dest)),
                   unname(tools::md5sum(fixture("mnist-tiny.npz"))))
  expect_identical(dim(dataset_mnist(path = dest)$train$x), c(3L, 28L, 28L))
})

# ---- IDX (Fashion-MNIST) --------------------------------------------------

# Write a gzipped IDX file of unsigned bytes: magic, big-endian dims, data.
write_idx <- function(file, dims, data, magic = c(0, 0, 8, length(dims))) {
  con <- gzfile(file, "wb")
  on.exit(close(con))
  writeBin(as.raw(magic), con)
  writeBin(as.integer(dims), con, size = 4, endian = "big")
  writeBin(as.raw(data), con)
}

# A small Fashion-MNIST-like folder: image i has pixel(i, r, c) at row r,
# column c, stored row by row as IDX does.
pixel <- function(i, r, c) (5L * i + 11L * r + c) %% 256L
idx_bytes <- function(n) {
  unlist(lapply(0:(n - 1), function(i) {
    unlist(lapply(0:27, function(r) pixel(i, r, 0:27)))
  }))
}
make_idx_dir <- function(n_train = 3, n_test = 2) {
  dir <- withr::local_tempdir(.local_envir = parent.frame())
  write_idx(file.path(dir, "train-images-idx3-ubyte.gz"), c(n_train, 28, 28),
            idx_bytes(n_train))
  write_idx(file.path(dir, "train-labels-idx1-ubyte.gz"), n_train,
            (0:(n_train - 1)) %% 10)
  write_idx(file.path(dir, "t10k-images-idx3-ubyte.gz"), c(n_test, 28, 28),
            idx_bytes(n_test))
  write_idx(file.path(dir, "t10k-labels-idx1-ubyte.gz"), n_test,
            9 - (0:(n_test - 1)))
  dir
}

test_that("IDX files are read with pixel (r, c) of image i at x[i, r, c]", {
  dir <- make_idx_dir()
  d <- read_fashion_mnist_dir(dir)
  expect_identical(dim(d$train$x), c(3L, 28L, 28L))
  expect_type(d$train$x, "integer")
  expect_identical(d$train$y, array(0:2, 3))
  expect_identical(d$test$y, array(9:8, 2))
  # 1-based R indices, 0-based formula
  expect_identical(d$train$x[2, 4, 17], pixel(1L, 3L, 16L))
  expect_identical(d$train$x[3, 28, 1], pixel(2L, 27L, 0L))
  expect_identical(d$test$x[1, 1, 28], pixel(0L, 0L, 27L))
})

test_that("damaged IDX files give clear errors", {
  dir <- withr::local_tempdir()
  f <- file.path(dir, "x.gz")

  write_idx(f, c(2, 28, 28), idx_bytes(2)[1:1000])
  expect_error(read_idx_images(f), "is truncated: the header announces 1,568 values")

  write_idx(f, c(2, 28, 28), idx_bytes(2), magic = c(0, 0, 8, 4))
  expect_error(read_idx_images(f), "magic number 0x00000804, expected 0x00000803")

  write_idx(f, c(2, 28, 28), c(idx_bytes(2), 1))
  expect_error(read_idx_images(f), "more data than its header")

  write_idx(f, c(2e6, 28, 28), integer(0))
  expect_error(read_idx_images(f), "implausible dimensions")

  writeBin(as.raw(c(0, 0)), f)
  expect_error(read_idx_labels(f), "too short")

  write_idx(f, 3, 0:2)
  expect_error(read_idx_images(f), "magic number")
  expect_identical(read_idx_labels(f), array(0:2, 3))
})

test_that("Fashion-MNIST files are downloaded into the cache", {
  source_dir <- make_idx_dir()
  cache <- withr::local_tempdir()
  withr::local_envvar(R_USER_CACHE_DIR = cache)
  dir <- suppressMessages(
    download_fashion_mnist(base_url = paste0("file://", source_dir, "/"))
  )
  expect_identical(dir, file.path(cache, "R", "rustkeras", "fashion-mnist"))
  expect_setequal(list.files(dir), fashion_mnist_files)
  expect_identical(read_fashion_mnist_dir(dir), read_fashion_mnist_dir(source_dir))
  # files already there are not downloaded again
  expect_silent(download_fashion_mnist(base_url = "file:///nowhere/"))
})

test_that("images and labels must agree in number", {
  dir <- make_idx_dir()
  write_idx(file.path(dir, "train-labels-idx1-ubyte.gz"), 2, 0:1)
  expect_error(read_fashion_mnist_dir(dir), "has 3 images but .* has 2 labels")
})

test_that("dataset_fashion_mnist() reads Debian's Fashion-MNIST", {
  skip_if_not(file.exists(debian_fashion), "Debian's dataset-fashion-mnist is not installed")
  d <- dataset_fashion_mnist()
  expect_named(d, c("train", "test"))
  expect_identical(dim(d$train$x), c(60000L, 28L, 28L))
  expect_identical(dim(d$test$x), c(10000L, 28L, 28L))
  expect_type(d$train$x, "integer")
  expect_identical(dim(d$train$y), 60000L)
  expect_type(d$train$y, "integer")
  expect_identical(range(d$train$x), c(0L, 255L))

  # Reference values from the raw files with Python:
  #   gzip.open(...).read(); magic, n, rows, cols = struct.unpack(">IIII", b[:16])
  #   pixel (r, c) of image i (0-based) = b[16 + 784*i + 28*r + c]
  # Train image 0: (3, 15) = 13, (3, 16) = 73, (14, 25) = 255, sum 76247;
  # image 1: (0, 10) = 41, (0, 11) = 188; image 59999: (8, 15) = 71;
  # test image 0: (7, 19) = 3, (7, 23) = 7.
  expect_identical(d$train$x[1, 4, 16], 13L)
  expect_identical(d$train$x[1, 4, 17], 73L)
  expect_identical(d$train$x[1, 15, 26], 255L)
  expect_identical(sum(d$train$x[1, , ]), 76247L)
  expect_identical(d$train$x[2, 1, 11], 41L)
  expect_identical(d$train$x[2, 1, 12], 188L)
  expect_identical(d$train$x[60000, 9, 16], 71L)
  expect_identical(d$test$x[1, 8, 20], 3L)
  expect_identical(d$test$x[1, 8, 24], 7L)
  # Sums of all pixels: train 3431114169, test 573469082.
  expect_identical(sum(as.numeric(d$train$x)), 3431114169)
  expect_identical(sum(as.numeric(d$test$x)), 573469082)
  # Labels: first ten of each set (train label bytes b[8:18] etc.).
  expect_identical(as.vector(d$train$y[1:10]), c(9L, 0L, 0L, 3L, 0L, 2L, 7L, 2L, 5L, 5L))
  expect_identical(as.vector(d$test$y[1:10]), c(9L, 2L, 1L, 1L, 6L, 1L, 4L, 6L, 5L, 7L))
  expect_identical(tabulate(d$train$y + 1L, 10), rep(6000L, 10))

  # The workshop's first lines
  c(c(x_train, y_train), c(x_test, y_test)) %<-% d
  x_train <- array_reshape(x_train, c(nrow(x_train), 784))
  expect_identical(x_train[1, 28 * 3 + 17], 73L)
  expect_identical(dim(to_categorical(y_train, 10)), c(60000L, 10L))
})
