#' 2D convolution layer
#'
#' Convolves a kernel with a batch of images (samples, height, width, channels) and adds
#' a bias, then applies `activation`: `output = activation(conv2d(inputs, kernel) + bias)`.
#' The kernel is stored `(kernel_height, kernel_width, input_channels, filters)` as in
#' Keras. Images are `channels_last`.
#'
#' @inheritParams layer_dense
#' @param filters Positive integer, the number of output channels.
#' @param kernel_size One integer or two (height, width): the size of the window.
#' @param strides One integer or two: the steps of the window (default 1).
#' @param padding `"valid"` (no padding, the default) or `"same"` (pad with zeros so
#'   that the output has `ceiling(input / strides)` pixels; the odd pixel goes at the
#'   bottom and right, as in Keras).
#' @param data_format `"channels_last"` (or `NULL`, the same). `"channels_first"` is not
#'   supported yet.
#' @param dilation_rate One integer or two: spacing between the kernel's taps (default
#'   1). Cannot be combined with `strides > 1`.
#' @param groups Positive integer dividing `filters` and the input channels (default
#'   1): the input channels and the filters are cut into `groups` groups, and each
#'   group of filters sees only its group of input channels (the kernel is then
#'   `(kernel_height, kernel_width, input_channels / groups, filters)`).
#' @param name Name of the layer; `NULL` gives `"conv2d"`, `"conv2d_1"`, ...
#' @param kernel_regularizer,bias_regularizer Penalties on the weights added to the loss:
#'   [regularizer_l2()] and friends, or `NULL` (the default) for none.
#' @param activity_regularizer,kernel_constraint,bias_constraint Not supported yet; must
#'   be `NULL`.
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
#'   layer_conv_2d(filters = 32, kernel_size = c(3, 3), activation = "relu")
#' summary(model)
layer_conv_2d <- function(object, filters, kernel_size, strides = list(1L, 1L),
                          padding = "valid", data_format = NULL,
                          dilation_rate = list(1L, 1L), groups = 1L, activation = NULL,
                          use_bias = TRUE, kernel_initializer = "glorot_uniform",
                          bias_initializer = "zeros", kernel_regularizer = NULL,
                          bias_regularizer = NULL, activity_regularizer = NULL,
                          kernel_constraint = NULL, bias_constraint = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  config <- conv_config(filters, kernel_size, strides, padding, data_format, dilation_rate,
                        groups, activation, use_bias, kernel_initializer, bias_initializer,
                        name, rank = 2L, call = call)
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              kernel_constraint = kernel_constraint,
                              bias_constraint = bias_constraint), call)
  config <- c(config, regularizer_config(list(kernel_regularizer = kernel_regularizer,
                                              bias_regularizer = bias_regularizer), call))
  create_layer(object, "Conv2D", config, call)
}

#' 1D convolution layer
#'
#' Convolves a kernel over the steps of sequences (samples, steps, channels), as
#' [layer_conv_2d()] does over images. The kernel is stored
#' `(kernel_size, input_channels, filters)`.
#'
#' @inheritParams layer_conv_2d
#' @param kernel_size One integer: the length of the window.
#' @param strides One integer: the step of the window (default 1).
#' @param padding `"valid"`, `"same"` or `"causal"` (all the padding before the
#'   sequence, so that output `t` depends on inputs up to `t` only).
#' @param dilation_rate One integer: spacing between the kernel's taps.
#' @param name Name of the layer; `NULL` gives `"conv1d"`, `"conv1d_1"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(100, 8)) %>%
#'   layer_conv_1d(filters = 16, kernel_size = 5, activation = "relu")
#' summary(model)
layer_conv_1d <- function(object, filters, kernel_size, strides = 1L, padding = "valid",
                          data_format = NULL, dilation_rate = 1L, groups = 1L,
                          activation = NULL, use_bias = TRUE,
                          kernel_initializer = "glorot_uniform", bias_initializer = "zeros",
                          kernel_regularizer = NULL, bias_regularizer = NULL,
                          activity_regularizer = NULL, kernel_constraint = NULL,
                          bias_constraint = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  config <- conv_config(filters, kernel_size, strides, padding, data_format, dilation_rate,
                        groups, activation, use_bias, kernel_initializer, bias_initializer,
                        name, rank = 1L, call = call)
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              kernel_constraint = kernel_constraint,
                              bias_constraint = bias_constraint), call)
  config <- c(config, regularizer_config(list(kernel_regularizer = kernel_regularizer,
                                              bias_regularizer = bias_regularizer), call))
  create_layer(object, "Conv1D", config, call)
}

# The checked Keras config of a Conv1D / Conv2D.
conv_config <- function(filters, kernel_size, strides, padding, data_format, dilation_rate,
                        groups, activation, use_bias, kernel_initializer, bias_initializer,
                        name, rank, call) {
  filters <- check_positive_int(filters, "filters", call)
  if (missing(kernel_size)) rk_abort("`kernel_size` is missing.", kind = "argument", call = call)
  kernel_size <- check_int_tuple(kernel_size, rank, "kernel_size", call)
  strides <- check_int_tuple(strides, rank, "strides", call)
  dilation_rate <- check_int_tuple(dilation_rate, rank, "dilation_rate", call)
  if (any(strides > 1L) && any(dilation_rate > 1L)) {
    rk_abort("`strides` > 1 cannot be combined with `dilation_rate` > 1.",
             kind = "argument", call = call)
  }
  padding <- check_padding_mode(padding, call,
                                allowed = if (rank == 1L) c("valid", "same", "causal") else c("valid", "same"))
  data_format <- check_data_format(data_format, call)
  groups <- check_positive_int(groups, "groups", call)
  if (filters %% groups != 0L) {
    rk_abort(sprintf("`groups` (%d) must divide `filters` (%d).", groups, filters),
             kind = "argument", call = call)
  }
  check_flag(use_bias, "use_bias", call)
  check_string(kernel_initializer, "kernel_initializer", call)
  check_string(bias_initializer, "bias_initializer", call)
  if (!is.null(name)) check_string(name, "name", call)
  list(filters = filters, kernel_size = kernel_size, strides = strides, padding = padding,
       data_format = data_format, dilation_rate = dilation_rate, groups = groups,
       activation = activation_name(activation, call), use_bias = use_bias,
       kernel_initializer = kernel_initializer, bias_initializer = bias_initializer,
       name = name)
}

#' 2D depthwise convolution layer
#'
#' Convolves each input channel with its own `depth_multiplier` filters, without mixing
#' channels: output channel `(c - 1) * depth_multiplier + j` is input channel `c`
#' convolved with filter `j`. The kernel is stored
#' `(kernel_height, kernel_width, input_channels, depth_multiplier)`.
#'
#' @inheritParams layer_conv_2d
#' @param depth_multiplier Positive integer: filters per input channel (default 1).
#' @param depthwise_initializer Initializer of the depthwise kernel.
#' @param name Name of the layer; `NULL` gives `"depthwise_conv2d"`, ...
#' @param depthwise_regularizer,bias_regularizer Penalties on the weights added to the
#'   loss: [regularizer_l2()] and friends, or `NULL` (the default) for none.
#' @param activity_regularizer,depthwise_constraint,bias_constraint Not supported yet;
#'   must be `NULL`.
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(32, 32, 3)) %>%
#'   layer_depthwise_conv_2d(kernel_size = 3, depth_multiplier = 2)
#' summary(model)
layer_depthwise_conv_2d <- function(object, kernel_size, strides = list(1L, 1L),
                                    padding = "valid", depth_multiplier = 1L,
                                    data_format = NULL, dilation_rate = list(1L, 1L),
                                    activation = NULL, use_bias = TRUE,
                                    depthwise_initializer = "glorot_uniform",
                                    bias_initializer = "zeros", depthwise_regularizer = NULL,
                                    bias_regularizer = NULL, activity_regularizer = NULL,
                                    depthwise_constraint = NULL, bias_constraint = NULL,
                                    name = NULL, ...) {
  call <- rk_user_call(environment())
  config <- conv_config(1L, kernel_size, strides, padding, data_format, dilation_rate, 1L,
                        activation, use_bias, depthwise_initializer, bias_initializer,
                        name, rank = 2L, call = call)
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              depthwise_constraint = depthwise_constraint,
                              bias_constraint = bias_constraint), call)
  config <- c(config, regularizer_config(list(depthwise_regularizer = depthwise_regularizer,
                                              bias_regularizer = bias_regularizer), call))
  config$filters <- NULL
  names(config)[names(config) == "kernel_initializer"] <- "depthwise_initializer"
  config$depth_multiplier <- check_positive_int(depth_multiplier, "depth_multiplier", call)
  create_layer(object, "DepthwiseConv2D", config, call)
}

#' 2D separable convolution layer
#'
#' A depthwise convolution (see [layer_depthwise_conv_2d()]) followed by a 1 x 1
#' convolution that mixes the channels into `filters` outputs: far fewer weights than
#' [layer_conv_2d()] for the same window. Weights: `depthwise_kernel`
#' `(kh, kw, input_channels, depth_multiplier)`, `pointwise_kernel`
#' `(1, 1, input_channels * depth_multiplier, filters)`, `bias`.
#'
#' @inheritParams layer_depthwise_conv_2d
#' @param filters Positive integer, the number of output channels.
#' @param pointwise_initializer Initializer of the pointwise kernel.
#' @param name Name of the layer; `NULL` gives `"separable_conv2d"`, ...
#' @param depthwise_regularizer,pointwise_regularizer,bias_regularizer Penalties on the
#'   weights added to the loss: [regularizer_l2()] and friends, or `NULL` for none.
#' @param activity_regularizer,depthwise_constraint,pointwise_constraint,bias_constraint
#'   Not supported yet; must be `NULL`.
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(32, 32, 3)) %>%
#'   layer_separable_conv_2d(filters = 16, kernel_size = 3, padding = "same")
#' summary(model)
layer_separable_conv_2d <- function(object, filters, kernel_size, strides = list(1L, 1L),
                                    padding = "valid", data_format = NULL,
                                    dilation_rate = list(1L, 1L), depth_multiplier = 1L,
                                    activation = NULL, use_bias = TRUE,
                                    depthwise_initializer = "glorot_uniform",
                                    pointwise_initializer = "glorot_uniform",
                                    bias_initializer = "zeros", depthwise_regularizer = NULL,
                                    pointwise_regularizer = NULL, bias_regularizer = NULL,
                                    activity_regularizer = NULL, depthwise_constraint = NULL,
                                    pointwise_constraint = NULL, bias_constraint = NULL,
                                    name = NULL, ...) {
  call <- rk_user_call(environment())
  config <- conv_config(filters, kernel_size, strides, padding, data_format, dilation_rate,
                        1L, activation, use_bias, depthwise_initializer, bias_initializer,
                        name, rank = 2L, call = call)
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              depthwise_constraint = depthwise_constraint,
                              pointwise_constraint = pointwise_constraint,
                              bias_constraint = bias_constraint), call)
  config <- c(config, regularizer_config(list(depthwise_regularizer = depthwise_regularizer,
                                              pointwise_regularizer = pointwise_regularizer,
                                              bias_regularizer = bias_regularizer), call))
  names(config)[names(config) == "kernel_initializer"] <- "depthwise_initializer"
  check_string(pointwise_initializer, "pointwise_initializer", call)
  config$pointwise_initializer <- pointwise_initializer
  config$depth_multiplier <- check_positive_int(depth_multiplier, "depth_multiplier", call)
  create_layer(object, "SeparableConv2D", config, call)
}
