# A layer made without a model is a plain description (Keras class name and config)
# that the engine instantiates when it is added to a model; with a model, it is added
# in place and the model is returned, so `model %>% layer_dense(10)` works as in keras3.

create_layer <- function(object, class_name, config, call) {
  layer <- structure(list(class_name = class_name, config = config),
                     class = c(paste0("rustkeras_layer_", tolower(class_name)), "rustkeras_layer"))
  if (missing(object) || is.null(object)) {
    return(layer)
  }
  compose_layer(object, layer, call)
}

compose_layer <- function(object, layer, call) {
  if (!inherits(object, "rustkeras_model")) {
    rk_abort("`object` must be a rustkeras model (from keras_model_sequential()) or missing.",
             kind = "argument", call = call)
  }
  add_layer(object, layer, call = call)
  invisible(object)
}

add_layer <- function(model, layer, call = rk_user_call(parent.frame())) {
  if (!inherits(layer, "rustkeras_layer")) {
    rk_abort("Only layers made by layer_*() functions can be added to a model.",
             kind = "argument", call = call)
  }
  rk_call(rk_model_add_layer(model$ptr, layer$class_name, layer$config), call = call)
  invisible(model)
}

#' @export
print.rustkeras_layer <- function(x, ...) {
  name <- x$config$name
  cat(sprintf("<%s>%s\n", x$class_name, if (is.null(name)) "" else paste0(" ", name)))
  invisible(x)
}

check_string <- function(x, arg, call) {
  if (!(is.character(x) && length(x) == 1L && !is.na(x))) {
    rk_abort(sprintf("`%s` must be a single string.", arg), kind = "argument", call = call)
  }
}

check_number <- function(x, arg, call) {
  if (!(is.numeric(x) && length(x) == 1L && is.finite(x))) {
    rk_abort(sprintf("`%s` must be a single finite number.", arg), kind = "argument", call = call)
  }
}

# A size tuple (`kernel_size`, `strides`, ...) as keras3 takes it: one positive integer
# for every axis, or `n` of them, as a vector or a list. Returns an integer vector of
# length `n`.
check_int_tuple <- function(x, arg, n, call, min = 1L) {
  values <- if (is.list(x)) unlist(x, use.names = FALSE) else x
  ok <- is.numeric(values) && length(values) %in% c(1L, n) && !anyNA(values) &&
    all(values >= min) && all(values == round(values))
  if (!ok) {
    shown <- if (is.null(x)) "NULL" else paste(deparse(x), collapse = "")
    what <- if (min >= 1L) "positive" else "non-negative"
    rk_abort(sprintf("`%s` must be a %s integer or %d %s integers, not %s.",
                     arg, what, n, what, shown), kind = "argument", call = call)
  }
  rep_len(as.integer(values), n)
}

check_bool <- function(x, arg, call) {
  if (!(is.logical(x) && length(x) == 1L && !is.na(x))) {
    rk_abort(sprintf("`%s` must be TRUE or FALSE.", arg), kind = "argument", call = call)
  }
}

# keras3 arguments that the engine does not have yet: NULL (their default) only.
check_unsupported_null <- function(args, call) {
  for (arg in names(args)) {
    if (!is.null(args[[arg]])) {
      rk_abort(sprintf("`%s` is not supported yet; leave it NULL.", arg),
               kind = "argument", call = call)
    }
  }
}

check_data_format <- function(data_format, call) {
  if (is.null(data_format) || identical(data_format, "channels_last")) {
    return("channels_last")
  }
  if (identical(data_format, "channels_first")) {
    rk_abort("`data_format = \"channels_first\"` is not supported yet; use \"channels_last\" (samples, height, width, channels).",
             kind = "argument", call = call)
  }
  rk_abort("`data_format` must be \"channels_last\" or \"channels_first\".", kind = "argument", call = call)
}

check_padding <- function(padding, call, allowed = c("valid", "same")) {
  if (!(is.character(padding) && length(padding) == 1L && tolower(padding) %in% allowed)) {
    shown <- paste(deparse(padding), collapse = "")
    rk_abort(sprintf("`padding` must be one of %s, not %s.",
                     paste0("\"", allowed, "\"", collapse = ", "), shown),
             kind = "argument", call = call)
  }
  tolower(padding)
}

check_positive_int <- function(x, arg, call) {
  if (missing(x) || !is.numeric(x) || length(x) != 1L || is.na(x) || x < 1 || x != round(x)) {
    shown <- if (missing(x)) "missing" else paste(deparse(x), collapse = "")
    rk_abort(sprintf("`%s` must be a positive integer, not %s.", arg, shown),
             kind = "argument", call = call)
  }
  as.integer(x)
}
