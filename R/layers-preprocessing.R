# Preprocessing layers that hold what they learn from data: layer_normalization() and
# adapt().

#' Normalize features with statistics learned from data
#'
#' Keras's Normalization preprocessing layer: `(x - mean) / sqrt(variance)` per feature
#' (the last axis), or over everything with `axis = NULL`. Give `mean` and `variance`, or
#' learn them from data with [adapt()], as in keras3's regression tutorial. The
#' statistics are weights that do not train; they are saved with the model.
#'
#' @inheritParams layer_dense
#' @param axis `-1` (the default: one mean and variance per feature) or `NULL` (one for
#'   all values).
#' @param mean,variance Fixed statistics (a number or one per feature), or `NULL` to
#'   [adapt()] the layer.
#' @param invert Must be `FALSE` (the inverse transform is not supported yet).
#' @param name Name of the layer; `NULL` gives `"normalization"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' x <- matrix(c(1, 3, 5, 2, 6, 10), 3)
#' normalizer <- layer_normalization(axis = -1)
#' normalizer %>% adapt(x)
#' normalizer$mean
#' model <- keras_model_sequential(input_shape = 2) %>% normalizer() %>% layer_dense(1)
layer_normalization <- function(object, axis = -1L, mean = NULL, variance = NULL,
                                 invert = FALSE, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (!is.null(axis) && !identical(as.numeric(axis), -1)) {
    rk_abort(sprintf("`axis` = %s is not supported yet; only -1 (per feature) or NULL.",
                     paste(deparse(axis), collapse = "")), kind = "argument", call = call)
  }
  check_flag(invert, "invert", call)
  if (invert) rk_abort("`invert = TRUE` is not supported yet.", kind = "argument", call = call)
  if (is.null(mean) != is.null(variance)) {
    rk_abort("`mean` and `variance` must be given together (or both NULL, to adapt()).",
             kind = "argument", call = call)
  }
  if (!is.null(mean)) {
    for (arg in c("mean", "variance")) {
      v <- get(arg)
      if (!is.numeric(v) || !length(v) || any(!is.finite(v))) {
        rk_abort(sprintf("`%s` must be finite numbers.", arg), kind = "argument", call = call)
      }
    }
    if (length(mean) != length(variance) || any(variance < 0)) {
      rk_abort("`variance` must be >= 0, one value per mean.", kind = "argument", call = call)
    }
  }
  if (!is.null(name)) check_string(name, "name", call)
  config <- list(axis = if (!is.null(axis)) -1L, invert = FALSE, name = name,
                 mean = if (!is.null(mean)) as.numeric(mean),
                 variance = if (!is.null(variance)) as.numeric(variance))
  create_layer(object, "Normalization", config, call)
}

#' Fit a preprocessing layer's statistics to data
#'
#' For a [layer_normalization()] layer: computes the mean and the (population) variance
#' of `data`, per feature (its last axis) or over all of it with `axis = NULL`, and stores
#' them in the layer, as Keras's `adapt()` does.
#'
#' @param object A layer from [layer_normalization()].
#' @param data A numeric matrix or array (or data frame), samples along the first axis.
#' @param ... Unused.
#' @param batch_size,steps Ignored: the statistics are computed in one pass.
#' @returns `object`, invisibly (changed in place).
#' @export
#' @examples
#' normalizer <- layer_normalization()
#' adapt(normalizer, matrix(rnorm(40), 10))
#' normalizer$variance
adapt <- function(object, data, ..., batch_size = NULL, steps = NULL) {
  call <- rk_user_call(environment())
  if (!(inherits(object, "rustkeras_layer") && identical(object$class_name, "Normalization"))) {
    rk_abort("`object` must be a layer from layer_normalization().", kind = "argument", call = call)
  }
  if (is.data.frame(data)) data <- as.matrix(data)
  if (!is.numeric(data) || !length(data) || anyNA(data)) {
    rk_abort("`data` must be a numeric matrix or array without missing values.",
             kind = "argument", call = call)
  }
  if (length(dim(data)) < 2L) data <- matrix(data, ncol = 1L)
  dims <- dim(data)
  features <- dims[length(dims)]
  ptr <- member_handle(object, call)
  config <- rk_call(rk_member_layer_config(ptr), call = call)
  if (!is.null(config$mean)) {
    rk_abort("This layer was given its `mean` and `variance`; there is nothing to adapt.",
             kind = "argument", call = call)
  }
  per_feature <- length(config$axis) > 0L
  rk_call(rk_member_call(ptr, list(as.numeric(dims[-1]))), call = call)
  if (per_feature) {
    x <- matrix(as.numeric(data), ncol = features)
    mean <- colMeans(x)
    variance <- colMeans((x - rep(mean, each = nrow(x)))^2)
  } else {
    mean <- base::mean(data)
    variance <- base::mean((data - mean)^2)
  }
  shape_like <- function(v) if (per_feature) array(v, features) else v
  rk_call(rk_layer_set_weights(ptr, list(shape_like(mean), shape_like(variance), 0)), call = call)
  invisible(object)
}
