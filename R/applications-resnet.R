# Keras's ResNet50, layer for layer (keras/src/applications/resnet.py): the same
# layers, names, arguments and call order, so Keras's weight files load by order and
# summary() reads as Keras prints it.

#' ResNet50, as Keras builds it
#'
#' Builds Keras's ResNet50 (He et al., 2015) with Keras's layer names (`conv1_pad`,
#' `conv1_conv`, `conv1_bn`, `conv2_block1_1_conv`, ..., `avg_pool`, `predictions`):
#' 25,636,712 parameters with the top, 23,587,712 without.
#'
#' @param include_top Whether to end with global average pooling and the
#'   `classes`-way dense classifier.
#' @param weights `NULL` (random initialization), `"imagenet"` (Keras's ImageNet file,
#'   from the Keras cache `~/.keras/models/` or downloaded there as keras3 does; offline,
#'   an error says where to put the file), or the path of a weight file Keras wrote for
#'   this model: `resnet50_weights_tf_dim_ordering_tf_kernels.h5`, its `_notop` version,
#'   or any `.h5` / `.keras` saved from Keras's ResNet50.
#' @param input_tensor Optional symbolic tensor (from [keras_input()]) to use as the
#'   image input.
#' @param input_shape Shape of one image, `c(height, width, 3)`; defaults to
#'   `c(224, 224, 3)`. Without the top, height and width must be at least 32.
#' @param pooling Without the top: `NULL` (the last block's 4-D output), `"avg"` or
#'   `"max"` (global pooling to a vector).
#' @param classes Number of classes of the top; 1000 with ImageNet weights.
#' @param classifier_activation Activation of the top layer: `"softmax"` (default) or
#'   `NULL`/`"linear"` for logits.
#' @param name Name of the model (`"resnet50"`).
#' @param ... Unused.
#' @returns A functional model. [application_preprocess_inputs()] and
#'   [application_decode_predictions()] know it.
#' @export
#' @examples
#' \dontrun{
#' model <- application_resnet50(weights = "imagenet")
#' }
#' base <- application_resnet50(weights = NULL, include_top = FALSE,
#'                              input_shape = c(32, 32, 3), pooling = "avg")
#' count_params(base)
application_resnet50 <- function(include_top = TRUE, weights = "imagenet", input_tensor = NULL,
                                 input_shape = NULL, pooling = NULL, classes = 1000L,
                                 classifier_activation = "softmax", name = "resnet50", ...) {
  call <- rk_user_call(environment())
  check_flag(include_top, "include_top", call)
  classes <- check_positive_int(classes, "classes", call)
  imagenet <- identical(weights, "imagenet")
  if (!is.null(weights) && !(is.character(weights) && length(weights) == 1L && !is.na(weights))) {
    rk_abort("`weights` must be NULL, \"imagenet\" or the path of a weight file.",
             kind = "argument", call = call)
  }
  if (imagenet && include_top && classes != 1000L) {
    rk_abort(sprintf("With `weights = \"imagenet\"` and `include_top = TRUE`, `classes` must be 1000, not %d.",
                     classes), kind = "argument", call = call)
  }
  if (!is.null(pooling) && !(identical(pooling, "avg") || identical(pooling, "max"))) {
    rk_abort(sprintf("`pooling` must be NULL, \"avg\" or \"max\", not %s.", shown_value(pooling)),
             kind = "argument", call = call)
  }
  input_shape <- resnet_input_shape(input_shape, input_tensor, include_top, imagenet, call)
  inputs <- if (is.null(input_tensor)) keras_input(shape = input_shape) else input_tensor

  bn <- function(x, name) layer_batch_normalization(x, axis = -1L, epsilon = 1.001e-5, name = name)
  x <- inputs %>%
    layer_zero_padding_2d(padding = list(c(3L, 3L), c(3L, 3L)), name = "conv1_pad") %>%
    layer_conv_2d(64L, 7L, strides = 2L, use_bias = TRUE, name = "conv1_conv") %>%
    bn("conv1_bn") %>%
    layer_activation("relu", name = "conv1_relu") %>%
    layer_zero_padding_2d(padding = list(c(1L, 1L), c(1L, 1L)), name = "pool1_pad") %>%
    layer_max_pooling_2d(3L, strides = 2L, name = "pool1_pool")

  block <- function(x, filters, stride = 1L, conv_shortcut = TRUE, name) {
    shortcut <- if (conv_shortcut) {
      x %>%
        layer_conv_2d(4L * filters, 1L, strides = stride, name = paste0(name, "_0_conv")) %>%
        bn(paste0(name, "_0_bn"))
    } else {
      x
    }
    x <- x %>%
      layer_conv_2d(filters, 1L, strides = stride, name = paste0(name, "_1_conv")) %>%
      bn(paste0(name, "_1_bn")) %>%
      layer_activation("relu", name = paste0(name, "_1_relu")) %>%
      layer_conv_2d(filters, 3L, padding = "same", name = paste0(name, "_2_conv")) %>%
      bn(paste0(name, "_2_bn")) %>%
      layer_activation("relu", name = paste0(name, "_2_relu")) %>%
      layer_conv_2d(4L * filters, 1L, name = paste0(name, "_3_conv")) %>%
      bn(paste0(name, "_3_bn"))
    layer_add(list(shortcut, x), name = paste0(name, "_add")) %>%
      layer_activation("relu", name = paste0(name, "_out"))
  }
  stack <- function(x, filters, blocks, stride1 = 2L, name) {
    x <- block(x, filters, stride = stride1, name = paste0(name, "_block1"))
    for (i in seq_len(blocks)[-1]) {
      x <- block(x, filters, conv_shortcut = FALSE, name = paste0(name, "_block", i))
    }
    x
  }
  x <- x %>%
    stack(64L, 3L, stride1 = 1L, name = "conv2") %>%
    stack(128L, 4L, name = "conv3") %>%
    stack(256L, 6L, name = "conv4") %>%
    stack(512L, 3L, name = "conv5")

  if (include_top) {
    x <- x %>%
      layer_global_average_pooling_2d(name = "avg_pool") %>%
      layer_dense(classes, activation = classifier_activation, name = "predictions")
  } else if (identical(pooling, "avg")) {
    x <- layer_global_average_pooling_2d(x, name = "avg_pool")
  } else if (identical(pooling, "max")) {
    x <- layer_global_max_pooling_2d(x, name = "max_pool")
  }
  model <- keras_model(inputs, x, name = name)
  if (!is.null(weights)) {
    path <- if (imagenet) resnet50_weights_path(include_top, call = call) else weights
    load_application_weights(model, path, call)
  }
  attr(model, "rustkeras_application") <- "resnet50"
  model
}

resnet_input_shape <- function(input_shape, input_tensor, include_top, imagenet, call) {
  if (!is.null(input_tensor)) {
    if (!is_symbolic(input_tensor)) {
      rk_abort("`input_tensor` must be a symbolic tensor from keras_input().", kind = "argument", call = call)
    }
    input_shape <- input_tensor$shape
  }
  if (is.null(input_shape)) return(c(224L, 224L, 3L))
  if (!(length(input_shape) == 3L && is_whole(input_shape))) {
    rk_abort(sprintf("`input_shape` must be c(height, width, channels)%s, not %s.",
                     if (nzchar(int_bound_note(input_shape))) ", each below 2^31" else "",
                     shown_value(input_shape)),
             kind = "argument", call = call)
  }
  input_shape <- as.integer(input_shape)
  if (imagenet && input_shape[3] != 3L) {
    rk_abort(sprintf("With ImageNet weights the input must have 3 channels; `input_shape` is %s.",
                     shape_text(input_shape)), kind = "argument", call = call)
  }
  if (include_top && (imagenet && !identical(input_shape, c(224L, 224L, 3L)))) {
    rk_abort(sprintf(paste0("With `include_top = TRUE` and ImageNet weights, `input_shape` must be ",
                            "c(224, 224, 3), not %s."), shape_text(input_shape)),
             kind = "argument", call = call)
  }
  if (any(input_shape[1:2] < 32L)) {
    rk_abort(sprintf("`input_shape` must be at least 32x32 for ResNet50, not %s.",
                     shape_text(input_shape)), kind = "argument", call = call)
  }
  input_shape
}

# Weights from a Keras file: a legacy `.h5` (weights only, or a whole model) by layer
# order as Keras loads it, or a `.keras` zip. A file for another architecture stops with
# the layer and shapes that differ.
load_application_weights <- function(model, path, call) {
  check_path(path, call, arg = "weights")
  if (!file.exists(path)) {
    rk_abort(sprintf("`weights` names a file that does not exist: '%s'.", path),
             kind = "argument", call = call)
  }
  if (grepl("\\.keras$", path, ignore.case = TRUE)) {
    rk_call(rk_load_weights_keras(model$ptr, path), call = call)
  } else {
    rk_call(rk_load_weights_hdf5(model$ptr, path, FALSE), call = call)
  }
  invisible(model)
}

shape_text <- function(s) paste0("c(", paste(s, collapse = ", "), ")")
