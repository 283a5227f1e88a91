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

# keras3 arguments that the engine does not have yet: NULL (their default) only.
check_unsupported_null <- function(args, call) {
  for (arg in names(args)) {
    if (!is.null(args[[arg]])) {
      rk_abort(sprintf("`%s` is not supported yet; leave it NULL.", arg),
               kind = "argument", call = call)
    }
  }
}

check_positive_int <- function(x, arg, call) {
  if (missing(x) || !is.numeric(x) || length(x) != 1L || is.na(x) || x < 1 || x != round(x)) {
    shown <- if (missing(x)) "missing" else paste(deparse(x), collapse = "")
    rk_abort(sprintf("`%s` must be a positive integer, not %s.", arg, shown),
             kind = "argument", call = call)
  }
  as.integer(x)
}

# A single TRUE or FALSE, returned.
check_flag <- function(x, arg, call) {
  if (!(is.logical(x) && length(x) == 1L && !is.na(x))) {
    rk_abort(sprintf("`%s` must be TRUE or FALSE, not %s.", arg, shown_value(x)),
             kind = "argument", call = call)
  }
  x
}
