#' Densely-connected layer
#'
#' `output = activation(dot(input, kernel) + bias)`, with the kernel stored
#' `(input_dim, units)` as in Keras.
#'
#' @param object A model to add the layer to, or missing to return the layer alone.
#' @param units Positive integer, the size of the output.
#' @param activation Activation name: `"relu"`, `"sigmoid"`, `"softmax"`, `"tanh"`,
#'   `"linear"`, `"elu"`, `"selu"`, `"gelu"`, `"softplus"`, `"softsign"`, `"silu"`,
#'   `"swish"`, `"relu6"`, `"leaky_relu"`, `"hard_sigmoid"`, `"exponential"`,
#'   `"log_softmax"`. `NULL` (the default) means linear.
#' @param use_bias Whether the layer adds a bias vector (default `TRUE`).
#' @param kernel_initializer Initializer of the kernel (default `"glorot_uniform"`);
#'   also `"glorot_normal"`, `"he_uniform"`, `"he_normal"`, `"lecun_uniform"`,
#'   `"lecun_normal"`, `"random_uniform"`, `"random_normal"`, `"zeros"`, `"ones"`.
#' @param bias_initializer Initializer of the bias (default `"zeros"`).
#' @param kernel_regularizer,bias_regularizer Penalties on the weights added to the loss:
#'   [regularizer_l2()] and friends, or `NULL` (the default) for none.
#' @param activity_regularizer,kernel_constraint,bias_constraint Not supported yet; must
#'   be `NULL`.
#' @param name Name of the layer; `NULL` gives `"dense"`, `"dense_1"`, ...
#' @param ... Unused; accepted for keras3 compatibility.
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 8) %>%
#'   layer_dense(units = 4, activation = "relu")
#' summary(model)
layer_dense <- function(object, units, activation = NULL, use_bias = TRUE,
                        kernel_initializer = "glorot_uniform", bias_initializer = "zeros",
                        kernel_regularizer = NULL, bias_regularizer = NULL,
                        activity_regularizer = NULL, kernel_constraint = NULL,
                        bias_constraint = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  units <- check_positive_int(units, "units", call)
  activation <- activation_name(activation, call)
  if (!(is.logical(use_bias) && length(use_bias) == 1L && !is.na(use_bias))) {
    rk_abort("`use_bias` must be TRUE or FALSE.", kind = "argument", call = call)
  }
  check_string(kernel_initializer, "kernel_initializer", call)
  check_string(bias_initializer, "bias_initializer", call)
  if (!is.null(name)) check_string(name, "name", call)
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              kernel_constraint = kernel_constraint,
                              bias_constraint = bias_constraint), call)
  regs <- regularizer_config(list(kernel_regularizer = kernel_regularizer,
                                  bias_regularizer = bias_regularizer), call)
  create_layer(object, "Dense", c(list(
    units = units, activation = activation, use_bias = use_bias,
    kernel_initializer = kernel_initializer, bias_initializer = bias_initializer, name = name
  ), regs), call)
}

#' Apply dropout to the input
#'
#' Sets input units to 0 with frequency `rate` during training and scales the others
#' by `1 / (1 - rate)`; does nothing in `evaluate()` and `predict()`.
#'
#' @inheritParams layer_dense
#' @param rate Fraction of the input units to drop, in `[0, 1)`.
#' @param noise_shape The shape of the dropout mask, with the batch axis, to share one
#'   mask value along some axes: for inputs (samples, steps, features),
#'   `noise_shape = list(NULL, 1L, NULL)` (or `c(NA, 1, NA)`) drops the same features at
#'   every step. `NULL`/`NA` entries take the input's size.
#' @param seed Not supported; must be `NULL` (use [set_random_seed()] to make the masks
#'   repeatable).
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 8) %>%
#'   layer_dense(4) %>%
#'   layer_dropout(rate = 0.5)
layer_dropout <- function(object, rate, noise_shape = NULL, seed = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (missing(rate) || !is.numeric(rate) || length(rate) != 1L || is.na(rate) ||
      rate < 0 || rate >= 1) {
    shown <- if (missing(rate)) "missing" else deparse(rate)[1]
    rk_abort(sprintf("`rate` must be a number in [0, 1), not %s.", shown), kind = "argument", call = call)
  }
  shape <- NULL
  if (!is.null(noise_shape)) {
    entries <- if (is.list(noise_shape)) {
      vapply(noise_shape, function(d) if (is.null(d) || is.na(d)) 0 else as.numeric(d), numeric(1))
    } else if (is.numeric(noise_shape) || all(is.na(noise_shape))) {
      ifelse(is.na(noise_shape), 0, as.numeric(noise_shape))
    } else {
      NA_real_
    }
    if (length(entries) < 2L || !is_whole(entries, 0)) {
      rk_abort(paste0("`noise_shape` must give the mask's shape with the batch axis, NULL or NA ",
                      "for the input's size, such as list(NULL, 1L, NULL)."),
               kind = "argument", call = call)
    }
    shape <- as.integer(entries)
  }
  if (!is.null(seed)) {
    rk_abort("`seed` is not supported; use set_random_seed() to make dropout repeatable.",
             kind = "argument", call = call)
  }
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "Dropout", list(rate = as.numeric(rate), noise_shape = shape, name = name),
               call)
}

#' Apply an activation function to an output
#'
#' @inheritParams layer_dense
#' @param activation Activation name (see [layer_dense()]).
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 8) %>%
#'   layer_dense(4) %>%
#'   layer_activation("relu")
layer_activation <- function(object, activation, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (missing(activation)) rk_abort("`activation` is missing.", kind = "argument", call = call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "Activation", list(activation = activation_name(activation, call), name = name), call)
}

activation_names <- c(
  "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid",
  "tanh", "softplus", "softsign", "silu", "swish", "exponential", "softmax", "log_softmax"
)

activation_name <- function(activation, call) {
  if (is.null(activation)) {
    return("linear")
  }
  if (!(is.character(activation) && length(activation) == 1L) || !activation %in% activation_names) {
    shown <- if (is.character(activation)) paste0("'", activation[1], "'") else class(activation)[1]
    rk_abort(sprintf("unknown activation %s; known activations: %s", shown,
                     paste(activation_names, collapse = ", ")), kind = "argument", call = call)
  }
  activation
}

#' Turn integer ids into dense vectors
#'
#' Keras's Embedding layer: each id in `0:(input_dim - 1)` picks a row of a learned
#' table of shape `(input_dim, output_dim)`, so samples of ids of shape `(steps)` become
#' `(steps, output_dim)`. The usual first layer of a text model, followed for instance by
#' [layer_global_average_pooling_1d()]. Ids come as numbers (whole, in range; others are
#' an error naming the layer).
#'
#' @inheritParams layer_dense
#' @param input_dim Size of the vocabulary: the largest id plus 1.
#' @param output_dim Length of each embedding vector.
#' @param embeddings_initializer Initializer of the table (default `"uniform"`: uniform
#'   in \[-0.05, 0.05\]).
#' @param embeddings_regularizer Penalty on the table, such as [regularizer_l2()], or
#'   `NULL`.
#' @param embeddings_constraint,activity_regularizer Not supported yet; must be `NULL`.
#' @param mask_zero Must be `FALSE` (masking is not supported yet).
#' @param input_length Ignored (Keras 3 dropped it); give the sequence length with
#'   `input_shape` or [keras_input()].
#' @param name Name of the layer; `NULL` gives `"embedding"`, `"embedding_1"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 20) %>%
#'   layer_embedding(input_dim = 1000, output_dim = 8) %>%
#'   layer_global_average_pooling_1d() %>%
#'   layer_dense(1, activation = "sigmoid")
#' summary(model)
layer_embedding <- function(object, input_dim, output_dim, embeddings_initializer = "uniform",
                            embeddings_regularizer = NULL, embeddings_constraint = NULL,
                            mask_zero = FALSE, input_length = NULL, activity_regularizer = NULL,
                            name = NULL, ...) {
  call <- rk_user_call(environment())
  input_dim <- check_positive_int(input_dim, "input_dim", call)
  output_dim <- check_positive_int(output_dim, "output_dim", call)
  check_string(embeddings_initializer, "embeddings_initializer", call)
  check_flag(mask_zero, "mask_zero", call)
  if (mask_zero) {
    rk_abort("`mask_zero = TRUE` is not supported yet (rustkeras has no masking).",
             kind = "argument", call = call)
  }
  check_unsupported_null(list(embeddings_constraint = embeddings_constraint,
                              activity_regularizer = activity_regularizer), call)
  if (!is.null(name)) check_string(name, "name", call)
  regs <- regularizer_config(list(embeddings_regularizer = embeddings_regularizer), call)
  create_layer(object, "Embedding", c(list(
    input_dim = input_dim, output_dim = output_dim,
    embeddings_initializer = embeddings_initializer, name = name), regs), call)
}

#' Multiply the inputs by a scale and add an offset
#'
#' Keras's Rescaling preprocessing layer: `output = input * scale + offset`, for example
#' `layer_rescaling(scale = 1 / 255)` to bring pixel values into \[0, 1\] inside the model.
#'
#' @inheritParams layer_dense
#' @param scale The factor (one number).
#' @param offset The offset (one number, default 0).
#' @param name Name of the layer; `NULL` gives `"rescaling"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
#'   layer_rescaling(1 / 255) %>%
#'   layer_flatten()
#' predict(model, array(255, c(1, 28, 28, 1)), verbose = 0)[1, 1]
layer_rescaling <- function(object, scale, offset = 0, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (missing(scale)) rk_abort("`scale` is missing.", kind = "argument", call = call)
  check_number(scale, "scale", call)
  check_number(offset, "offset", call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "Rescaling", list(scale = as.numeric(scale), offset = as.numeric(offset),
                                         name = name), call)
}
