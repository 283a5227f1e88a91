# Pooling layers (keras3's `layers-pooling` family), channels_last: images are
# (samples, height, width, channels), sequences (samples, steps, features).

pooling_layer <- function(object, class_name, dims, pool_size, strides, padding,
                          data_format, name, call) {
  if (missing(pool_size)) {
    rk_abort("`pool_size` is missing.", kind = "argument", call = call)
  }
  pool_size <- check_int_tuple(pool_size, dims, "pool_size", call)
  if (!is.null(strides)) strides <- check_int_tuple(strides, dims, "strides", call)
  padding <- check_padding_mode(padding, call)
  data_format <- check_data_format(data_format, call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, class_name, list(
    pool_size = pool_size, strides = strides, padding = padding,
    data_format = data_format, name = name
  ), call)
}

global_pooling_layer <- function(object, class_name, data_format, keepdims, name, call) {
  data_format <- check_data_format(data_format, call)
  keepdims <- check_flag(keepdims, "keepdims", call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, class_name, list(data_format = data_format, keepdims = keepdims,
                                        name = name), call)
}

#' Max pooling operation for 2D spatial data
#'
#' Downsamples each channel of an image to the maximum over windows of `pool_size`,
#' moved by `strides`. With `padding = "valid"` the output has
#' `floor((input - pool_size) / strides) + 1` rows (and columns); with `"same"`,
#' `ceil(input / strides)`, the windows at the border seeing only the input's cells.
#'
#' Inputs are `(samples, height, width, channels)` arrays (channels_last).
#'
#' @param object A model to add the layer to, or missing to return the layer alone.
#' @param pool_size Window size: one integer for both axes or two
#'   (`c(height, width)`); default `list(2L, 2L)`.
#' @param strides Step between windows: one integer or two; `NULL` (the default) means
#'   `pool_size`.
#' @param padding `"valid"` (the default: windows lie inside the input) or `"same"`
#'   (`ceil(input / strides)` windows, the input padded evenly); case-insensitive.
#' @param data_format `"channels_last"` (what `NULL`, the default, means); `"channels_first"`
#'   is not supported yet.
#' @param name Name of the layer; `NULL` gives `"max_pooling2d"`, `"max_pooling2d_1"`, ...
#' @param ... Unused; accepted for keras3 compatibility.
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(26, 26, 32)) %>%
#'   layer_max_pooling_2d(pool_size = c(2, 2))
#' summary(model)
layer_max_pooling_2d <- function(object, pool_size = list(2L, 2L), strides = NULL,
                                 padding = "valid", data_format = NULL, name = NULL, ...) {
  pooling_layer(object, "MaxPooling2D", 2L, pool_size, strides, padding, data_format, name,
                rk_user_call(environment()))
}

#' Average pooling operation for 2D spatial data
#'
#' Downsamples each channel of an image to the mean over windows of `pool_size`, moved
#' by `strides`. With `padding = "same"` a window at the border averages only the
#' input's cells it covers, as Keras does.
#'
#' @inheritParams layer_max_pooling_2d
#' @param pool_size Window size: one integer for both axes or two (`c(height, width)`).
#' @param data_format `"channels_last"` (the default); `"channels_first"` is not
#'   supported yet.
#' @param name Name of the layer; `NULL` gives `"average_pooling2d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(6, 6, 3)) %>%
#'   layer_average_pooling_2d(pool_size = 3, strides = 2, padding = "same")
#' summary(model)
layer_average_pooling_2d <- function(object, pool_size, strides = NULL, padding = "valid",
                                     data_format = "channels_last", name = NULL, ...) {
  pooling_layer(object, "AveragePooling2D", 2L, pool_size, strides, padding, data_format,
                name, rk_user_call(environment()))
}

#' Max pooling operation for 1D temporal data
#'
#' Downsamples each feature of a sequence to the maximum over windows of `pool_size`
#' steps, moved by `strides`. Inputs are `(samples, steps, features)` arrays.
#'
#' @inheritParams layer_max_pooling_2d
#' @param pool_size Window size in steps (default `2L`).
#' @param strides Step between windows; `NULL` (the default) means `pool_size`.
#' @param name Name of the layer; `NULL` gives `"max_pooling1d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 4)) %>%
#'   layer_max_pooling_1d()
#' summary(model)
layer_max_pooling_1d <- function(object, pool_size = 2L, strides = NULL, padding = "valid",
                                 data_format = NULL, name = NULL, ...) {
  pooling_layer(object, "MaxPooling1D", 1L, pool_size, strides, padding, data_format, name,
                rk_user_call(environment()))
}

#' Average pooling for temporal data
#'
#' Downsamples each feature of a sequence to the mean over windows of `pool_size`
#' steps, moved by `strides`. Inputs are `(samples, steps, features)` arrays.
#'
#' @inheritParams layer_max_pooling_1d
#' @param pool_size Window size in steps.
#' @param name Name of the layer; `NULL` gives `"average_pooling1d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 4)) %>%
#'   layer_average_pooling_1d(pool_size = 2)
#' summary(model)
layer_average_pooling_1d <- function(object, pool_size, strides = NULL, padding = "valid",
                                     data_format = NULL, name = NULL, ...) {
  pooling_layer(object, "AveragePooling1D", 1L, pool_size, strides, padding, data_format,
                name, rk_user_call(environment()))
}

#' Global average pooling operation for 2D data
#'
#' The mean of each channel over the whole image: `(samples, height, width, channels)`
#' becomes `(samples, channels)`, or `(samples, 1, 1, channels)` with `keepdims = TRUE`.
#'
#' @inheritParams layer_max_pooling_2d
#' @param keepdims Whether to keep the height and width axes, with length 1 (default
#'   `FALSE`).
#' @param name Name of the layer; `NULL` gives `"global_average_pooling2d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(4, 5, 3)) %>%
#'   layer_global_average_pooling_2d()
#' summary(model)
layer_global_average_pooling_2d <- function(object, data_format = NULL, keepdims = FALSE,
                                            name = NULL, ...) {
  global_pooling_layer(object, "GlobalAveragePooling2D", data_format, keepdims, name,
                       rk_user_call(environment()))
}

#' Global max pooling operation for 2D data
#'
#' The maximum of each channel over the whole image: `(samples, height, width, channels)`
#' becomes `(samples, channels)`, or `(samples, 1, 1, channels)` with `keepdims = TRUE`.
#'
#' @inheritParams layer_global_average_pooling_2d
#' @param name Name of the layer; `NULL` gives `"global_max_pooling2d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(4, 5, 3)) %>%
#'   layer_global_max_pooling_2d()
#' summary(model)
layer_global_max_pooling_2d <- function(object, data_format = NULL, keepdims = FALSE,
                                        name = NULL, ...) {
  global_pooling_layer(object, "GlobalMaxPooling2D", data_format, keepdims, name,
                       rk_user_call(environment()))
}

#' Global average pooling operation for temporal data
#'
#' The mean of each feature over all steps: `(samples, steps, features)` becomes
#' `(samples, features)`, or `(samples, 1, features)` with `keepdims = TRUE`.
#'
#' @inheritParams layer_global_average_pooling_2d
#' @param keepdims Whether to keep the steps axis, with length 1 (default `FALSE`).
#' @param name Name of the layer; `NULL` gives `"global_average_pooling1d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 4)) %>%
#'   layer_global_average_pooling_1d()
#' summary(model)
layer_global_average_pooling_1d <- function(object, data_format = NULL, keepdims = FALSE,
                                            name = NULL, ...) {
  global_pooling_layer(object, "GlobalAveragePooling1D", data_format, keepdims, name,
                       rk_user_call(environment()))
}

#' Global max pooling operation for temporal data
#'
#' The maximum of each feature over all steps: `(samples, steps, features)` becomes
#' `(samples, features)`, or `(samples, 1, features)` with `keepdims = TRUE`.
#'
#' @inheritParams layer_global_average_pooling_1d
#' @param name Name of the layer; `NULL` gives `"global_max_pooling1d"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 4)) %>%
#'   layer_global_max_pooling_1d()
#' summary(model)
layer_global_max_pooling_1d <- function(object, data_format = NULL, keepdims = FALSE,
                                        name = NULL, ...) {
  global_pooling_layer(object, "GlobalMaxPooling1D", data_format, keepdims, name,
                       rk_user_call(environment()))
}
