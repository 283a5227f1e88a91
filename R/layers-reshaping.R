# Reshaping layers (keras3's `layers-reshaping` family). None has weights; all keep the
# samples axis.

#' Flattens the input
#'
#' Each sample becomes one axis, in row-major (C) order as in Keras:
#' `(samples, 13, 13, 64)` becomes `(samples, 10816)`, element `[i, r, c, ch]` going to
#' column `(r - 1) * 13 * 64 + (c - 1) * 64 + ch`.
#'
#' @inheritParams layer_dense
#' @param data_format `"channels_last"` (what `NULL`, the default, means);
#'   `"channels_first"` is not supported yet.
#' @param name Name of the layer; `NULL` gives `"flatten"`, `"flatten_1"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
#'   layer_flatten() %>%
#'   layer_dense(10, activation = "softmax")
#' summary(model)
layer_flatten <- function(object, data_format = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  data_format <- check_data_format(data_format, call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "Flatten", list(data_format = data_format, name = name), call)
}

#' Layer that reshapes inputs into the given shape
#'
#' Gives each sample the shape `target_shape`, reading and writing values in row-major
#' (C) order as Keras does ([array_reshape()] is the same reshape on R arrays).
#'
#' @inheritParams layer_dense
#' @param target_shape Shape of one output sample, without the samples axis: positive
#'   integers, of which one may be `-1` to be inferred from the size of the input.
#' @param name Name of the layer; `NULL` gives `"reshape"`, `"reshape_1"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 784) %>%
#'   layer_reshape(c(28, 28, 1))
#' summary(model)
layer_reshape <- function(object, target_shape, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (missing(target_shape)) {
    rk_abort("`target_shape` is missing.", kind = "argument", call = call)
  }
  values <- if (is.list(target_shape) && all(lengths(target_shape) == 1L)) {
    unlist(target_shape)
  } else {
    target_shape
  }
  ok <- length(values) >= 1L && is_whole(values, -1) && all(values != 0) && sum(values == -1) <= 1
  if (!ok) {
    rk_abort(sprintf("`target_shape` must be a vector of positive integers%s (one may be -1), not %s.",
                     int_bound_note(values), shown_value(target_shape)), kind = "argument", call = call)
  }
  if (!is.null(name)) check_string(name, "name", call)
  # A one-number shape goes as a vector of one: the engine reads both forms.
  create_layer(object, "Reshape", list(target_shape = as.integer(values), name = name), call)
}

#' Zero-padding layer for 2D input (e.g. picture)
#'
#' Adds rows of zeros above and below each image and columns of zeros left and right.
#'
#' @inheritParams layer_dense
#' @param padding One integer (the same on all four sides), two integers
#'   (`c(rows, columns)`: symmetric amounts for height and width), or a list of two
#'   pairs `list(c(top, bottom), c(left, right))`. Default `list(1L, 1L)`.
#' @param data_format `"channels_last"` (what `NULL`, the default, means);
#'   `"channels_first"` is not supported yet.
#' @param name Name of the layer; `NULL` gives `"zero_padding2d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
#'   layer_zero_padding_2d(padding = list(c(1, 0), c(2, 2)))
#' summary(model)
layer_zero_padding_2d <- function(object, padding = list(1L, 1L), data_format = NULL,
                                  name = NULL, ...) {
  call <- rk_user_call(environment())
  sides <- zero_padding_sides(padding, call)
  data_format <- check_data_format(data_format, call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "ZeroPadding2D", list(padding = sides, data_format = data_format,
                                             name = name), call)
}

# The padding as c(top, bottom, left, right).
zero_padding_sides <- function(padding, call) {
  is_count <- function(v) is_whole(v, 0)
  pairs <- is.list(padding) && length(padding) == 2L && all(lengths(padding) == 2L)
  flat <- if (is.list(padding) && (pairs || all(lengths(padding) == 1L))) unlist(padding) else padding
  sides <- if (!is_count(flat)) {
    NULL
  } else if (pairs) {
    flat
  } else if (length(flat) == 1L) {
    rep(flat, 4L)
  } else if (length(flat) == 2L) {
    rep(flat, each = 2L)
  }
  if (is.null(sides)) {
    rk_abort(sprintf(paste0("`padding` must be a non-negative integer, 2 of them (rows, columns) ",
                            "or list(c(top, bottom), c(left, right)), not %s."),
                     shown_value(padding)), kind = "argument", call = call)
  }
  as.integer(sides)
}
