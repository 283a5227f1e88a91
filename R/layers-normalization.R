#' Batch normalization layer
#'
#' Normalizes each channel (the last axis) to mean 0 and variance 1, then scales by
#' `gamma` and shifts by `beta`. In `fit()` it uses the batch's mean and (biased)
#' variance and updates moving averages of them:
#' `moving = moving * momentum + batch * (1 - momentum)`. In `evaluate()` and
#' `predict()` it uses the moving averages. A frozen layer uses them in `fit()` too, as
#' in Keras 3. The weights are `gamma`, `beta`, `moving_mean`, `moving_variance`, in
#' that order; the moving ones are not trainable.
#'
#' @inheritParams layer_dense
#' @param axis The channels axis, counting the batch axis as Keras does: `-1` (the
#'   default) or the index of the last axis (3 for images, as Keras's ResNet50 writes
#'   it); other axes are not supported yet.
#' @param momentum Momentum of the moving averages (default 0.99).
#' @param epsilon Small number added to the variance (default 0.001).
#' @param center Whether to add the learned offset `beta` (default `TRUE`).
#' @param scale Whether to multiply by the learned `gamma` (default `TRUE`).
#' @param beta_initializer,gamma_initializer,moving_mean_initializer,moving_variance_initializer
#'   Initializer names (defaults `"zeros"`, `"ones"`, `"zeros"`, `"ones"`).
#' @param beta_regularizer,gamma_regularizer Penalties on `beta` and `gamma` added to the
#'   loss: [regularizer_l2()] and friends, or `NULL` (the default) for none.
#' @param beta_constraint,gamma_constraint Not supported yet; must be `NULL`.
#' @param synchronized Ignored (one device).
#' @param name Name of the layer; `NULL` gives `"batch_normalization"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
#'   layer_conv_2d(8, c(3, 3), use_bias = FALSE) %>%
#'   layer_batch_normalization() %>%
#'   layer_activation("relu")
#' summary(model)
layer_batch_normalization <- function(object, axis = -1L, momentum = 0.99, epsilon = 0.001,
                                      center = TRUE, scale = TRUE,
                                      beta_initializer = "zeros", gamma_initializer = "ones",
                                      moving_mean_initializer = "zeros",
                                      moving_variance_initializer = "ones",
                                      beta_regularizer = NULL, gamma_regularizer = NULL,
                                      beta_constraint = NULL, gamma_constraint = NULL,
                                      synchronized = FALSE, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (!(length(axis) == 1L && is_whole(axis, -1) && axis != 0)) {
    rk_abort(sprintf("`axis` = %s is not supported yet; only the channels (last) axis: -1, or its index.",
                     paste(deparse(axis), collapse = "")), kind = "argument", call = call)
  }
  check_number(momentum, "momentum", call)
  if (momentum < 0 || momentum > 1) {
    rk_abort(sprintf("`momentum` must be in [0, 1], not %s.", format(momentum)),
             kind = "argument", call = call)
  }
  check_number(epsilon, "epsilon", call)
  if (epsilon <= 0) {
    rk_abort(sprintf("`epsilon` must be positive, not %s.", format(epsilon)),
             kind = "argument", call = call)
  }
  check_flag(center, "center", call)
  check_flag(scale, "scale", call)
  inits <- list(beta_initializer = beta_initializer, gamma_initializer = gamma_initializer,
                moving_mean_initializer = moving_mean_initializer,
                moving_variance_initializer = moving_variance_initializer)
  for (arg in names(inits)) check_string(inits[[arg]], arg, call)
  check_unsupported_null(list(beta_constraint = beta_constraint,
                              gamma_constraint = gamma_constraint), call)
  regs <- regularizer_config(list(beta_regularizer = beta_regularizer,
                                  gamma_regularizer = gamma_regularizer), call)
  if (!is.null(name)) check_string(name, "name", call)
  create_layer(object, "BatchNormalization", c(list(
    axis = as.integer(axis), momentum = as.numeric(momentum), epsilon = as.numeric(epsilon),
    center = center, scale = scale), inits, list(name = name), regs), call)
}
