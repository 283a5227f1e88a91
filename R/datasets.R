# Data sets, read in plain R: IDX files (Fashion-MNIST) and .npz files (MNIST).
# Results have keras3's structure: list(train = list(x, y), test = list(x, y)),
# x an integer array n x 28 x 28 with x[i, r, c] = pixel (r, c) of image i, and
# y a 1-d integer array, as reticulate converts Keras's uint8 NumPy arrays.

keras_datasets_url <- "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"

fashion_mnist_files <- c(
  train_y = "train-labels-idx1-ubyte.gz",
  train_x = "train-images-idx3-ubyte.gz",
  test_y = "t10k-labels-idx1-ubyte.gz",
  test_x = "t10k-images-idx3-ubyte.gz"
)

#' Fashion-MNIST database of fashion articles
#'
#' Dataset of 60,000 28x28 grayscale images of 10 fashion categories, along
#' with a test set of 10,000 images. This dataset can be used as a drop-in
#' replacement for MNIST. The class labels are:
#'
#' * 0 - T-shirt/top
#' * 1 - Trouser
#' * 2 - Pullover
#' * 3 - Dress
#' * 4 - Coat
#' * 5 - Sandal
#' * 6 - Shirt
#' * 7 - Sneaker
#' * 8 - Bag
#' * 9 - Ankle boot
#'
#' The four gzipped IDX files are read from the first of these folders that
#' holds all of them: `/usr/share/datasets/fashion-mnist` (Debian's package
#' `dataset-fashion-mnist`), the copy Keras downloads
#' (`$KERAS_HOME/datasets/fashion-mnist`, `~/.keras/datasets/fashion-mnist`),
#' and rustkeras's cache, `file.path(tools::R_user_dir("rustkeras", "cache"),
#' "fashion-mnist")`. When none has them, the files Keras uses are downloaded
#' into the cache.
#'
#' @param convert Default `TRUE`. Kept for compatibility with keras3, where
#'   `FALSE` returns NumPy arrays; rustkeras has no NumPy, so it must be `TRUE`.
#'
#' @returns Lists of training and test data: `train$x, train$y, test$x,
#'   test$y`, where `x` is an integer array of grayscale values 0 to 255 with
#'   dimensions `c(num_samples, 28, 28)` (`x[i, r, c]` is row `r`, column `c`
#'   of image `i`), and `y` is a 1-d integer array of article labels 0 to 9.
#'
#' @examples
#' \donttest{
#' # Reads Debian's files offline; elsewhere downloads about 30 MB once.
#' fashion <- dataset_fashion_mnist()
#' str(fashion)
#' c(c(x_train, y_train), c(x_test, y_test)) %<-% fashion
#' }
#' @export
dataset_fashion_mnist <- function(convert = TRUE) {
  check_convert(convert)
  dir <- find_fashion_mnist_dir()
  if (is.null(dir)) dir <- download_fashion_mnist()
  read_fashion_mnist_dir(dir)
}

#' MNIST database of handwritten digits
#'
#' Dataset of 60,000 28x28 grayscale images of the 10 digits, along with a test
#' set of 10,000 images.
#'
#' The file is the `mnist.npz` that Keras downloads. A copy that Keras already
#' downloaded is reused (`$KERAS_HOME/datasets/mnist.npz`,
#' `~/.keras/datasets/mnist.npz`); otherwise the file is read from, or
#' downloaded once into, rustkeras's cache,
#' `tools::R_user_dir("rustkeras", "cache")`. Without internet, download
#' <https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz>
#' elsewhere and copy it to one of these places.
#'
#' @param path Default `"mnist.npz"`. File name of the data set, relative to the
#'   folders above (as keras3's is relative to `~/.keras/datasets`), or the
#'   absolute path of an `.npz` file.
#' @inheritParams dataset_fashion_mnist
#'
#' @returns Lists of training and test data: `train$x, train$y, test$x,
#'   test$y`, where `x` is an integer array of grayscale values 0 to 255 with
#'   dimensions `c(num_samples, 28, 28)` and `y` is a 1-d integer array of
#'   digit labels 0 to 9.
#'
#' @examples
#' \donttest{
#' # Downloads about 11 MB the first time, then reads the cached copy.
#' # Offline and without a copy, it stops and says where to put the file.
#' mnist <- try(dataset_mnist())
#' if (!inherits(mnist, "try-error")) str(mnist)
#' }
#' @export
dataset_mnist <- function(path = "mnist.npz", convert = TRUE) {
  check_convert(convert)
  if (!is.character(path) || length(path) != 1 || is.na(path) || path == "") {
    stop("`path` must be a file name, not ", deparse_short(path), ".",
         call. = FALSE)
  }
  file <- find_mnist_file(path)
  if (is.null(file)) {
    if (is_absolute_path(path)) {
      file <- path.expand(path)
    } else {
      file <- file.path(rustkeras_cache_dir(), path)
    }
    download_file_into_place(paste0(keras_datasets_url, "mnist.npz"), file)
  }

  arrays <- read_npz(file)
  missing_keys <- setdiff(c("x_train", "y_train", "x_test", "y_test"),
                          names(arrays))
  if (length(missing_keys) > 0) {
    stop("'", file, "' is not the MNIST data set: it lacks ",
         paste(missing_keys, collapse = ", "), ".", call. = FALSE)
  }
  list(
    train = check_image_set(arrays$x_train, arrays$y_train, file, "train"),
    test = check_image_set(arrays$x_test, arrays$y_test, file, "test")
  )
}

check_convert <- function(convert) {
  if (!isTRUE(convert)) {
    stop("`convert` must be TRUE: rustkeras returns R arrays (there is no ",
         "NumPy).", call. = FALSE)
  }
}

# Images must be n x 28 x 28 with n labels; both come back as integers.
check_image_set <- function(x, y, file, what) {
  if (length(dim(x)) != 3 || any(dim(x)[2:3] != 28) ||
      length(y) != dim(x)[1]) {
    stop("'", file, "' holds ", what, " data of unexpected shape: x ",
         paste(dim(x), collapse = " x "), ", y ", length(y), ".",
         call. = FALSE)
  }
  storage.mode(x) <- "integer"
  y <- array(as.integer(y), dim = length(y))
  list(x = x, y = y)
}

# ---- where the files are --------------------------------------------------

# Folders where Keras keeps downloaded data sets ($KERAS_HOME, ~/.keras, keras3's
# default KERAS_HOME); rustkeras's cache comes after them (see utils-files.R).
keras_dataset_dirs <- function() {
  keras_cache_dirs("datasets")
}

find_fashion_mnist_dir <- function() {
  candidates <- c(
    "/usr/share/datasets/fashion-mnist",
    file.path(keras_dataset_dirs(), "fashion-mnist"),
    file.path(rustkeras_cache_dir(), "fashion-mnist")
  )
  for (dir in candidates) {
    if (all(file.exists(file.path(dir, fashion_mnist_files)))) return(dir)
  }
  NULL
}

find_mnist_file <- function(path) {
  if (is_absolute_path(path)) {
    candidates <- path.expand(path)
  } else {
    candidates <- file.path(c(keras_dataset_dirs(), rustkeras_cache_dir()), path)
  }
  found <- candidates[file.exists(candidates)]
  if (length(found) > 0) found[1] else NULL
}

download_fashion_mnist <- function(base_url = keras_datasets_url) {
  dir <- file.path(rustkeras_cache_dir(), "fashion-mnist")
  for (f in fashion_mnist_files) {
    dest <- file.path(dir, f)
    if (!file.exists(dest)) {
      download_file_into_place(paste0(base_url, f), dest)
    }
  }
  dir
}

# ---- IDX files (Fashion-MNIST) --------------------------------------------

read_fashion_mnist_dir <- function(dir) {
  path <- file.path(dir, fashion_mnist_files)
  names(path) <- names(fashion_mnist_files)
  images_and_labels <- function(x_file, y_file) {
    x <- read_idx_images(x_file)
    y <- read_idx_labels(y_file)
    if (dim(x)[1] != length(y)) {
      stop("'", x_file, "' has ", dim(x)[1], " images but '", y_file,
           "' has ", length(y), " labels.", call. = FALSE)
    }
    list(x = x, y = y)
  }
  list(
    train = images_and_labels(path[["train_x"]], path[["train_y"]]),
    test = images_and_labels(path[["test_x"]], path[["test_y"]])
  )
}

# IDX images (magic 0x00000803: unsigned bytes, 3 dimensions) as an integer
# array n x rows x cols with x[i, r, c] = row r, column c of image i.
read_idx_images <- function(file) {
  idx <- read_idx(file, ndim = 3L)
  d <- idx$dim
  # The file is row-major per image (column fastest); R fills column-major,
  # so an array with the axes reversed (col, row, image) matches the bytes,
  # and one aperm() gives image, row, column. Permuting the raw bytes before
  # widening them to integers moves 4 times less memory.
  x <- aperm(array(idx$data, dim = rev(d)), 3:1)
  storage.mode(x) <- "integer"
  x
}

# IDX labels (magic 0x00000801) as a 1-d integer array.
read_idx_labels <- function(file) {
  idx <- read_idx(file, ndim = 1L)
  array(as.integer(idx$data), dim = idx$dim)
}

# Read an IDX file of unsigned bytes (gzipped or not): its dimensions and its
# data as a raw vector.
# The file is untrusted: check the magic number, the dimensions and the
# amount of data before trusting any of them.
read_idx <- function(file, ndim, max_items = 1e8) {
  if (!file.exists(file)) stop("file '", file, "' does not exist.", call. = FALSE)
  con <- gzfile(file, "rb")
  on.exit(close(con))
  fail <- function(...) {
    stop("'", file, "' is not a valid IDX file: ", ..., call. = FALSE)
  }
  read_or_fail <- function(...) {
    tryCatch(readBin(con, ...), error = function(e) fail(conditionMessage(e)))
  }

  magic <- read_or_fail("raw", n = 4L)
  if (length(magic) < 4) fail("it is too short.")
  # Bytes 1-2 are zero, byte 3 is the type (0x08 = unsigned byte), byte 4
  # the number of dimensions.
  if (magic[1] != 0 || magic[2] != 0 || magic[3] != as.raw(0x08) ||
      as.integer(magic[4]) != ndim) {
    fail("magic number 0x", paste(magic, collapse = ""),
         ", expected 0x000008", sprintf("%02x", ndim), ".")
  }
  d <- read_or_fail("integer", n = ndim, size = 4L, endian = "big")
  if (length(d) < ndim) fail("its header is truncated.")
  n <- prod(as.numeric(d))
  if (any(d < 0) || n > max_items) {
    fail("implausible dimensions ", paste(d, collapse = " x "), ".")
  }

  data <- read_or_fail("raw", n = n)
  if (length(data) < n) {
    fail("it is truncated: the header announces ", format(n, big.mark = ","),
         " values, the file holds ", format(length(data), big.mark = ","), ".")
  }
  if (length(read_or_fail("raw", n = 1L)) > 0) {
    fail("it has more data than its header announces.")
  }
  list(dim = d, data = data)
}

# ---- .npz / .npy files (MNIST) --------------------------------------------

# Read every array of a NumPy .npz file (a zip of .npy files) into a named
# list of R arrays.
read_npz <- function(file) {
  if (!file.exists(file)) stop("file '", file, "' does not exist.", call. = FALSE)
  members <- tryCatch(
    utils::unzip(file, list = TRUE)$Name,
    error = function(e) {
      stop("'", file, "' is not a valid .npz file (not a zip archive).",
           call. = FALSE)
    }
  )
  members <- members[grepl("\\.npy$", members)]
  exdir <- tempfile("npz")
  on.exit(unlink(exdir, recursive = TRUE), add = TRUE)
  extracted <- suppressWarnings(
    utils::unzip(file, files = members, exdir = exdir, junkpaths = TRUE)
  )
  if (length(extracted) != length(members)) {
    stop("'", file, "' is a damaged .npz file: could not extract ",
         paste(setdiff(basename(members), basename(extracted)), collapse = ", "),
         ".", call. = FALSE)
  }
  arrays <- lapply(file.path(exdir, basename(members)), read_npy)
  names(arrays) <- sub("\\.npy$", "", basename(members))
  arrays
}

# Read one .npy file: magic "\x93NUMPY", version, header length, a Python dict
# literal with 'descr', 'fortran_order' and 'shape', then the raw data.
read_npy <- function(file) {
  fail <- function(...) {
    stop("'", file, "' is not a valid .npy file: ", ..., call. = FALSE)
  }
  size <- file.size(file)
  con <- file(file, "rb")
  on.exit(close(con))

  magic <- readBin(con, "raw", n = 8L)
  if (length(magic) < 8 ||
      !identical(magic[1:6], as.raw(c(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59)))) {
    fail("bad magic string.")
  }
  major <- as.integer(magic[7])
  if (major == 1) {
    header_len <- readBin(con, "integer", n = 1L, size = 2L, signed = FALSE,
                          endian = "little")
    prefix <- 10
  } else if (major %in% 2:3) {
    header_len <- readBin(con, "integer", n = 1L, size = 4L, endian = "little")
    prefix <- 12
  } else {
    fail("unsupported format version ", major, ".")
  }
  if (length(header_len) != 1 || header_len < 0 ||
      prefix + header_len > size) {
    fail("truncated header.")
  }
  header <- rawToChar(readBin(con, "raw", n = header_len))

  descr <- regmatches(header, regexec("'descr':\\s*'([^']*)'", header))[[1]][2]
  fortran <- regmatches(header,
                        regexec("'fortran_order':\\s*(True|False)", header))[[1]][2]
  shape <- regmatches(header, regexec("'shape':\\s*\\(([^)]*)\\)", header))[[1]][2]
  if (anyNA(c(descr, fortran, shape))) fail("unreadable header '", header, "'.")
  shape <- trimws(strsplit(shape, ",")[[1]])
  shape <- suppressWarnings(as.numeric(shape[shape != ""]))
  if (anyNA(shape) || any(shape < 0)) fail("bad shape in header '", header, "'.")

  type <- npy_dtype(descr)
  if (is.null(type)) fail("unsupported dtype '", descr, "'.")
  n <- prod(shape)
  if (size - prefix - header_len != n * type$bytes) {
    fail("the header announces ", format(n, big.mark = ","), " values of ",
         type$bytes, " bytes but the file holds ",
         format(size - prefix - header_len, big.mark = ","), " bytes of data.")
  }
  data <- read_npy_data(con, type, n)

  if (length(shape) == 0) {
    out <- data # a scalar
  } else if (fortran == "True" || length(shape) == 1) {
    out <- array(data, dim = shape)
  } else {
    # C order: the last index changes fastest; fill the reversed shape
    # column-major and reverse the axes back to keep the index meaning.
    out <- aperm(array(data, dim = rev(shape)), rev(seq_along(shape)))
  }
  # uint8 comes as raw bytes, which are cheaper to permute than integers.
  if (is.raw(out)) storage.mode(out) <- "integer"
  out
}

# Map a NumPy type string ('<i8', '|u1', '>f4', ...) to how readBin reads it.
npy_dtype <- function(descr) {
  m <- regmatches(descr, regexec("^([<>|=])([iufb])([1248])$", descr))[[1]]
  if (length(m) != 4) return(NULL)
  kind <- m[3]
  bytes <- as.integer(m[4])
  if (kind == "f" && !bytes %in% c(4L, 8L)) return(NULL)
  if (kind == "b" && bytes != 1L) return(NULL)
  endian <- switch(m[2], "<" = "little", ">" = "big", .Platform$endian)
  list(kind = kind, bytes = bytes, endian = endian)
}

read_npy_data <- function(con, type, n) {
  kind <- type$kind
  bytes <- type$bytes
  endian <- type$endian
  if (kind == "b") {
    return(readBin(con, "raw", n = n) != as.raw(0))
  }
  if (kind == "f") {
    return(readBin(con, "double", n = n, size = bytes, endian = endian))
  }
  if (kind == "u" && bytes == 1) {
    return(readBin(con, "raw", n = n))
  }
  if (bytes <= 2) {
    return(readBin(con, "integer", n = n, size = bytes, signed = kind == "i",
                   endian = endian))
  }
  if (bytes == 4 && kind == "i") {
    return(readBin(con, "integer", n = n, size = 4L, endian = endian))
  }
  # uint32 and 64-bit integers do not fit R's integer type in general: read
  # 32-bit halves, combine them exactly as doubles (up to 2^53) and go back
  # to integer when every value fits.
  words <- readBin(con, "integer", n = n * bytes / 4, size = 4L, endian = endian)
  # readBin() reads the bit pattern 0x80000000 as NA: it is -2^31.
  words <- as.numeric(words)
  words[is.na(words)] <- -2^31
  unsigned <- function(w) w + (w < 0) * 2^32
  if (bytes == 4) {
    value <- unsigned(words)
  } else {
    words <- matrix(words, nrow = 2)
    lo <- if (endian == "little") words[1, ] else words[2, ]
    hi <- if (endian == "little") words[2, ] else words[1, ]
    if (kind == "u") hi <- unsigned(hi)
    value <- hi * 2^32 + unsigned(lo)
  }
  if (all(abs(value) <= .Machine$integer.max)) as.integer(value) else value
}
