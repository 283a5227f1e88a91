# Expected values are NumPy's: np.reshape() with order "C" or "F", on arrays
# that reticulate converts with the same index meaning as R's.

test_that("array_reshape() fills rows first, like NumPy", {
  expect_identical(array_reshape(1:6, c(2, 3)), rbind(1:3, 4:6))
  expect_identical(array_reshape(1:6, c(3, 2)), rbind(1:2, 3:4, 5:6))
  expect_identical(array_reshape(1:6, c(2, 3), order = "F"),
                   matrix(1:6, nrow = 2))
  expect_identical(array_reshape(c(1.5, 2.5), 2), array(c(1.5, 2.5), 2))
})

test_that("array_reshape() matches NumPy on a 3-d array", {
  # x[i, j, k] = 12 (i-1) + 4 (j-1) + (k-1): a C-order arange(24), shape (2, 3, 4)
  x <- array_reshape(0:23, c(2, 3, 4))
  expect_identical(x[2, 3, 4], 23L)
  expect_identical(x[1, 2, 3], 6L)
  expect_identical(x[2, 1, 2], 13L)

  # np.arange(24).reshape(2, 3, 4).reshape(4, 6)
  expect_identical(array_reshape(x, c(4, 6)), matrix(0:23, 4, 6, byrow = TRUE))
  # ... .reshape(2, 12): each row is one x[i, , ] read row by row
  expect_identical(array_reshape(x, c(2, 12)), matrix(0:23, 2, 12, byrow = TRUE))
  expect_identical(array_reshape(x, 24), array(0:23, 24))
  # ... .reshape((3, 8), order="F"): R's own order
  expect_identical(array_reshape(x, c(3, 8), order = "F"),
                   matrix(as.vector(x), 3, 8))
  # and back again
  expect_identical(array_reshape(array_reshape(x, c(6, 4)), c(2, 3, 4)), x)
  expect_identical(array_reshape(array_reshape(x, c(2, 12)), c(2, 3, 4)), x)
})

test_that("array_reshape() flattens images as Keras expects", {
  n <- 5
  images <- array(seq_len(n * 28 * 28), dim = c(n, 28, 28))
  flat <- array_reshape(images, c(n, 784))
  expect_identical(dim(flat), c(5L, 784L))
  # pixel (r, c), 1-based, lands in column 28 * (r - 1) + c
  expect_identical(flat[3, 28 * (4 - 1) + 17], images[3, 4, 17])
  expect_identical(flat[5, 784], images[5, 28, 28])
  expect_identical(flat[1, 2], images[1, 1, 2])
  expect_identical(array_reshape(flat, c(n, 28, 28)), images)
})

test_that("array_reshape() infers a -1 dimension and keeps the type", {
  x <- array(1:24, c(2, 3, 4))
  expect_identical(dim(array_reshape(x, c(2, -1))), c(2L, 12L))
  expect_identical(dim(array_reshape(x, c(-1, 4))), c(6L, 4L))
  expect_type(array_reshape(x, c(4, 6)), "integer")
  expect_type(array_reshape(x / 2, c(4, 6)), "double")
  expect_type(array_reshape(x > 3, c(4, 6)), "logical")
  m <- matrix(1:4, 2, dimnames = list(c("a", "b"), c("c", "d")))
  expect_null(dimnames(array_reshape(m, c(2, 2))))
})

test_that("array_reshape() rejects bad dimensions", {
  expect_error(array_reshape(1:6, c(4, 2)), "cannot reshape an array of length 6")
  expect_error(array_reshape(1:6, c(-1, 4)), "cannot reshape")
  expect_error(array_reshape(1:6, c(-1, -1)), "only one -1")
  expect_error(array_reshape(1:6, c(2, 2.5)), "`dim` must be")
  expect_error(array_reshape(1:6, NA), "`dim` must be")
  expect_error(array_reshape(list(1, 2), 2), "`x` must be an array")
  expect_error(array_reshape(1:6, c(2, 3), order = "K"), "should be one of")
})

test_that("to_categorical() one-hot encodes labels as Keras does", {
  expect_identical(
    to_categorical(c(0, 1, 2, 3), num_classes = 4),
    diag(4)
  )
  y <- to_categorical(c(2L, 0L, 1L))
  expect_identical(y, rbind(c(0, 0, 1), c(1, 0, 0), c(0, 1, 0)))
  expect_type(y, "double")
  expect_identical(dim(to_categorical(c(1, 1), num_classes = 10)), c(2L, 10L))
  expect_identical(to_categorical(c(1, 1), num_classes = 10)[, 2], c(1, 1))
  # a 1-d array, as data sets return labels
  expect_identical(to_categorical(array(c(0L, 2L), 2), 3),
                   rbind(c(1, 0, 0), c(0, 0, 1)))
})

test_that("to_categorical() handles factors and array shapes", {
  f <- factor(c("cat", "dog", "cat"), levels = c("cat", "dog", "eel"))
  expect_identical(to_categorical(f),
                   rbind(c(1, 0, 0), c(0, 1, 0), c(1, 0, 0)))
  # an n x 1 matrix loses its last axis, as in Keras
  expect_identical(to_categorical(matrix(c(1, 0), 2, 1)), rbind(c(0, 1), c(1, 0)))
  # a matrix of labels gets the class axis last, keeping index meaning
  labels <- matrix(c(0, 1, 2, 0), 2, 2)
  y <- to_categorical(labels)
  expect_identical(dim(y), c(2L, 2L, 3L))
  expect_identical(y[2, 1, ], c(0, 1, 0))
  expect_identical(y[1, 2, ], c(0, 0, 1))
  expect_identical(dim(to_categorical(integer(0), 3)), c(0L, 3L))
})

test_that("to_categorical() rejects bad labels with clear errors", {
  expect_error(to_categorical(c(0, -1, 2)), "`x` must contain class labels >= 0, found -1 at position 2")
  expect_error(to_categorical(c(0, NA)), "`x` must not contain NA")
  expect_error(to_categorical(c(0, Inf)), "finite")
  expect_error(to_categorical(c(0, 1.5)), "whole-number")
  expect_error(to_categorical(c(0, 10), 10), "`x` has class label 10 at position 2, but `num_classes` is 10")
  expect_error(to_categorical(c("a", "b")), "`x` must be a vector of integer class labels")
  expect_error(to_categorical(1, num_classes = 0), "`num_classes` must be a positive whole number")
  expect_error(to_categorical(1, num_classes = c(2, 3)), "`num_classes`")
  expect_error(to_categorical(integer(0)), "`num_classes` must be given")
})
