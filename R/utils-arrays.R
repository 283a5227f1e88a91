# Array helpers with NumPy semantics: C-order reshape and one-hot encoding.
# keras3 gets both from Python (reticulate::array_reshape() and
# keras.utils.to_categorical()); here they are plain R with the same results.

#' Reshape an array in row-major (C) order
#'
#' Reshapes `x` the way NumPy's `reshape()` does, which is what keras3 (through
#' reticulate) does: by default the elements are read and written in row-major
#' (`"C"`) order, the last index changing fastest. This differs from
#' `dim(x) <- dim`, which fills in column-major order. On an `n x 28 x 28` array
#' of images, `array_reshape(x, c(n, 784))` puts pixel `(r, c)` (1-based) of each
#' image in column `28 * (r - 1) + c`, as Keras expects.
#'
#' @param x An array, matrix or atomic vector (a vector is treated as a 1-d
#'   array).
#' @param dim Integer vector, the new dimensions. One element may be `-1`: that
#'   dimension is inferred from the length of `x`, as in NumPy.
#' @param order Default `"C"`. The order in which elements are read from `x`
#'   and written into the result: `"C"` row-major (last index changing
#'   fastest), `"F"` column-major (first index changing fastest, R's own order).
#'
#' @returns An array with dimensions `dim` holding the elements of `x`, with the
#'   same type as `x`; dimnames are dropped.
#'
#' @examples
#' # row-major: fills rows first, like NumPy
#' array_reshape(1:6, c(2, 3))
#' # column-major: the same as dim(x) <- c(2, 3)
#' array_reshape(1:6, c(2, 3), order = "F")
#'
#' # flatten images for a dense layer; -1 infers the number of columns
#' images <- array(1:24, dim = c(2, 3, 4))
#' flat <- array_reshape(images, c(2, -1))
#' flat[1, ] # image 1, row by row
#' @export
array_reshape <- function(x, dim, order = c("C", "F")) {
  order <- match.arg(order)
  if (!is.atomic(x) || is.null(x)) {
    stop("`x` must be an array or an atomic vector, not ", class(x)[1], ".",
         call. = FALSE)
  }
  if (is.object(x)) x <- unclass(x)
  old_dim <- array_dims(x)
  new_dim <- check_reshape_dim(dim, length(x))
  # The result is a copy: make room for it first (R/model-training.R). The threshold is
  # lower than fit()'s: a test set (31 MB of integers for Fashion-MNIST) comes after the
  # training set's discarded copies, which this frees.
  rk_make_room(x, bytes_per_value = if (is.double(x)) 8 else 4, threshold_mb = 16)

  if (order == "F") {
    # R stores arrays column-major, so F order is just new dimensions.
    dimnames(x) <- NULL
    base::dim(x) <- new_dim
    return(x)
  }

  # C-order reshape is an F-order reshape of the axis-reversed array, reversed
  # back. Leading axes that the old and new shapes share stay in place (the
  # reshape happens within each of their slices), so only the trailing block is
  # reversed: n x 28 x 28 -> n x 784 costs one aperm(), not two.
  p <- common_prefix(old_dim, new_dim)
  old_rest <- length(old_dim) - p
  new_rest <- length(new_dim) - p
  if (old_rest > 1) {
    x <- aperm(x, c(seq_len(p), rev(p + seq_len(old_rest))))
  } else {
    dimnames(x) <- NULL
  }
  base::dim(x) <- c(new_dim[seq_len(p)], rev(new_dim[p + seq_len(new_rest)]))
  if (new_rest > 1) {
    x <- aperm(x, c(seq_len(p), rev(p + seq_len(new_rest))))
  }
  x
}

# Validate `dim` for array_reshape() and resolve a -1 entry, as NumPy does.
check_reshape_dim <- function(dim, n) {
  if (length(dim) == 0 || !is_whole(dim, -1)) {
    stop("`dim` must be a vector of whole numbers >= 0", int_bound_note(dim), " (one may be -1), not ",
         deparse_short(dim), ".", call. = FALSE)
  }
  unknown <- which(dim == -1)
  if (length(unknown) > 1) {
    stop("`dim` can have only one -1 entry, not ", deparse_short(dim), ".",
         call. = FALSE)
  }
  known <- prod(dim[dim != -1])
  if (length(unknown) == 1) {
    if (known == 0 || n %% known != 0) {
      stop("cannot reshape an array of length ", n, " into dim ",
           deparse_short(dim), ".", call. = FALSE)
    }
    dim[unknown] <- n / known
  } else if (known != n) {
    stop("cannot reshape an array of length ", n, " into dim ",
         deparse_short(dim), " (", known, " elements).", call. = FALSE)
  }
  as.integer(dim)
}

# Number of leading dimensions two shapes have in common. At most all but
# one axis of the shorter shape, so the rest never becomes empty on both sides.
common_prefix <- function(a, b) {
  m <- min(length(a), length(b)) - 1
  p <- 0
  while (p < m && a[p + 1] == b[p + 1]) p <- p + 1
  p
}

#' Convert a class vector (integers) to a binary class matrix
#'
#' One-hot encodes integer class labels, as keras3's `to_categorical()` does,
#' e.g. for use with `loss = "categorical_crossentropy"`.
#'
#' @param x Vector or array of class labels: whole numbers from 0 to
#'   `num_classes - 1`. A factor is converted to 0-based codes,
#'   `as.integer(x) - 1L`.
#' @param num_classes Default `NULL`. Total number of classes. If `NULL`, it is
#'   `max(x) + 1` (the number of levels for a factor).
#'
#' @returns A double array with the class axis last: for a vector of length `n`
#'   an `n x num_classes` matrix with a 1 in column `x[i] + 1` of row `i` and 0
#'   elsewhere. An array input of dimensions `d` gives dimensions
#'   `c(d, num_classes)`, except that a trailing dimension of 1 is dropped
#'   first (an `n x 1` matrix gives `n x num_classes`).
#'
#' @examples
#' to_categorical(c(0, 1, 2, 3), num_classes = 4)
#' to_categorical(c(2, 0, 1))
#' to_categorical(factor(c("cat", "dog", "cat")))
#' @export
to_categorical <- function(x, num_classes = NULL) {
  if (is.factor(x)) {
    if (is.null(num_classes)) num_classes <- nlevels(x)
    x <- array(as.integer(x) - 1L, dim = array_dims(x))
  }
  if (!(is.numeric(x) || is.logical(x))) {
    stop("`x` must be a vector of integer class labels, not ", class(x)[1],
         ".", call. = FALSE)
  }
  if (anyNA(x)) {
    stop("`x` must not contain NA (first at position ", which(is.na(x))[1],
         ").", call. = FALSE)
  }
  if (!all(is.finite(x))) {
    bad <- which(!is.finite(x))[1]
    stop("`x` must contain finite class labels, found ", x[bad],
         " at position ", bad, ".", call. = FALSE)
  }
  if (any(x != round(x))) {
    bad <- which(x != round(x))[1]
    stop("`x` must contain whole-number class labels, found ", x[bad],
         " at position ", bad, ".", call. = FALSE)
  }
  if (any(x < 0)) {
    bad <- which(x < 0)[1]
    stop("`x` must contain class labels >= 0, found ", x[bad],
         " at position ", bad, ".", call. = FALSE)
  }

  if (is.null(num_classes)) {
    if (length(x) == 0) {
      stop("`num_classes` must be given when `x` is empty.", call. = FALSE)
    }
    num_classes <- max(x) + 1
  } else if (length(num_classes) != 1 || !is_whole(num_classes)) {
    stop("`num_classes` must be a positive whole number", int_bound_note(num_classes), ", not ",
         deparse_short(num_classes), ".", call. = FALSE)
  }
  num_classes <- as.integer(num_classes)
  if (length(x) > 0 && max(x) >= num_classes) {
    bad <- which(x >= num_classes)[1]
    stop("`x` has class label ", x[bad], " at position ", bad,
         ", but `num_classes` is ", num_classes, ": labels must be in 0..",
         num_classes - 1, ".", call. = FALSE)
  }

  # Like Keras, an input of shape (..., 1) loses its last axis.
  in_dim <- array_dims(x)
  if (length(in_dim) > 1 && in_dim[length(in_dim)] == 1) {
    in_dim <- in_dim[-length(in_dim)]
  }
  n <- length(x)
  out <- matrix(0, nrow = n, ncol = num_classes)
  out[cbind(seq_len(n), as.integer(x) + 1L)] <- 1
  # R's column-major flattening of x matches the rows of `out`, so setting
  # the dimensions keeps each element's index meaning.
  base::dim(out) <- c(in_dim, num_classes)
  out
}

# Dimensions of an array, or the length of a plain vector (a 1-d array).
array_dims <- function(x) {
  d <- base::dim(x)
  if (is.null(d)) length(x) else d
}

# A short one-line rendering of a value for error messages.
deparse_short <- function(x) {
  s <- paste(deparse(x, width.cutoff = 60L), collapse = " ")
  if (nchar(s) > 60) s <- paste0(substr(s, 1, 57), "...")
  s
}
