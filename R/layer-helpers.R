# A layer made without a model is a layer object: a function (so `layer(x)` calls it on
# a symbolic tensor, as in keras3) whose environment holds its Keras class name and
# config. The engine makes the layer on its first use (added to a model or called), and
# every later use shares that engine layer and its weights. With a model or a symbolic
# tensor as `object`, the layer is used at once: `model %>% layer_dense(10)` adds it and
# returns the model, `inputs %>% layer_dense(10)` returns the output tensor.

create_layer <- function(object, class_name, config, call) {
  extras <- layer_extras(parent.frame(), call)
  layer <- new_layer(class_name, config)
  state <- layer_state(layer)
  state$input_shape <- extras$input_shape
  state$trainable <- extras$trainable
  if (missing(object) || is.null(object)) {
    return(layer)
  }
  compose_layer(object, layer, call)
}

# The arguments every Keras layer takes besides its own, from the layer function's `...`:
# `input_shape` (or `input_dim`), which a first layer gives an empty Sequential model, as
# in `keras_model_sequential() %>% layer_dense(256, input_shape = 784)`; `trainable`;
# `dtype` (float32 only). Anything else is an error, as Keras's "Unrecognized keyword
# arguments".
layer_extras <- function(env, call) {
  # Callers without `...` (from_config()) have none; errors in the user's arguments
  # propagate.
  if (!exists("...", envir = env, inherits = FALSE)) return(list())
  dots <- eval(quote(list(...)), env)
  out <- list()
  if (!length(dots)) return(out)
  keys <- names(dots)
  if (is.null(keys) || any(!nzchar(keys))) {
    rk_abort(sprintf("%s() got %d unnamed extra argument(s); give every argument by name.",
                     deparse(call[[1]]), sum(is.null(keys) | !nzchar(keys %||% ""))),
             kind = "argument", call = call)
  }
  unknown <- setdiff(keys, c("input_shape", "input_dim", "trainable", "dtype"))
  if (length(unknown)) {
    rk_abort(sprintf("Unrecognized arguments passed to %s(): %s.", deparse(call[[1]]),
                     paste0("`", unknown, "`", collapse = ", ")), kind = "argument", call = call)
  }
  shape <- dots$input_shape %||% dots$input_dim
  if (!is.null(shape)) {
    shape <- unlist(shape)
    if (!length(shape) || !is_whole(shape)) {
      rk_abort(sprintf("`input_shape` must be a vector of positive integers%s, such as c(784), not %s.",
                       int_bound_note(shape), shown_value(shape)), kind = "argument", call = call)
    }
    out$input_shape <- as.numeric(shape)
  }
  if (!is.null(dots$trainable)) out$trainable <- check_flag(dots$trainable, "trainable", call)
  if (!is.null(dots$dtype) && !identical(dots$dtype, "float32")) {
    rk_abort(sprintf("`dtype` must be \"float32\"; rustkeras computes in float32 only, not %s.",
                     paste(deparse(dots$dtype), collapse = "")), kind = "argument", call = call)
  }
  out
}

new_layer <- function(class_name, config, ptr = NULL) {
  state <- new.env(parent = emptyenv())
  state$class_name <- class_name
  state$config <- config
  state$ptr <- ptr
  # What the layer serializes as once it has an engine layer (R/model-serialization.R).
  state$snapshot <- if (!is.null(ptr)) rk_snapshot(ptr, NULL)
  layer <- function(object, ...) {
    call_member(layer, object, ..., call = rk_user_call(environment()))
  }
  environment(layer) <- list2env(list(state = state, layer = NULL), parent = asNamespace("rustkeras"))
  layer <- structure(layer, class = c(paste0("rustkeras_layer_", tolower(class_name)), "rustkeras_layer"))
  assign("layer", layer, envir = environment(layer))
  layer
}

# The R object for a layer the engine already holds (from `model$layers`).
layer_from_handle <- function(ptr, class_name) {
  new_layer(class_name, NULL, ptr)
}

# A layer's state; a layer read back from its serialized state gets its engine layer here.
layer_state <- function(x) {
  state <- get("state", envir = environment(unclass(x)))
  if (length(state$snapshot)) revive_member(state, "layer", call = rk_entry_call())
  state
}

compose_layer <- function(object, layer, call) {
  if (is_symbolic(object) || is_symbolic_list(object)) {
    return(call_symbolic(layer, object, call))
  }
  if (!inherits(object, "rustkeras_model")) {
    rk_abort(paste0("`object` must be a rustkeras model (from keras_model_sequential()), ",
                    "a symbolic tensor (from keras_input()) or missing."),
             kind = "argument", call = call)
  }
  add_layer(object, layer, call = call)
  invisible(object)
}

add_layer <- function(model, layer, call = rk_user_call(parent.frame())) {
  if (!inherits(layer, "rustkeras_layer") && !inherits(layer, "rustkeras_model")) {
    rk_abort("Only layers made by layer_*() functions (or models) can be added to a model.",
             kind = "argument", call = call)
  }
  if (inherits(layer, "rustkeras_layer") && !is.null(layer_state(layer)$input_shape)) {
    rk_call(rk_model_declare_input(model$ptr, layer_state(layer)$input_shape), call = call)
  }
  rk_call(rk_model_add(model$ptr, member_handle(layer, call)), call = call)
  invisible(model)
}

#' @export
`$.rustkeras_layer` <- function(x, name) {
  layer_field(x, name)
}

#' @export
`[[.rustkeras_layer` <- function(x, i, ...) {
  layer_field(x, i)
}

layer_field <- function(x, name) {
  state <- layer_state(x)
  info <- function() rk_call(rk_member_info(member_handle(x)))
  switch(name,
    class_name = state$class_name,
    config = state$config,
    ptr = state$ptr,
    name = if (is.null(state$ptr)) state$config$name else info()$name,
    trainable = if (is.null(state$ptr)) TRUE else info()$trainable,
    built = !is.null(state$ptr) && info()$built,
    weights = get_weights(x),
    # A Normalization layer's statistics, as keras3's `normalizer$mean`.
    mean = if (identical(state$class_name, "Normalization")) get_weights(x)[[1]],
    variance = if (identical(state$class_name, "Normalization")) get_weights(x)[[2]],
    NULL
  )
}

#' @export
`$<-.rustkeras_layer` <- function(x, name, value) {
  set_member_field(x, name, value)
}

#' @export
`[[<-.rustkeras_layer` <- function(x, i, value) {
  set_member_field(x, i, value)
}

#' @export
names.rustkeras_layer <- function(x) {
  c("class_name", "config", "name", "trainable", "built", "weights")
}

#' @export
print.rustkeras_layer <- function(x, ...) {
  name <- x$name
  cat(sprintf("<%s>%s\n", x$class_name, if (is.null(name)) "" else paste0(" ", name)))
  invisible(x)
}

#' @export
get_weights.rustkeras_layer <- function(object, ...) {
  if (is.null(layer_state(object)$ptr)) return(list())
  lapply(rk_call(rk_member_get_weights(layer_state(object)$ptr)), as_weight_array)
}

#' @export
set_weights.rustkeras_layer <- function(object, weights, ...) {
  call <- rk_user_call(environment())
  if (!is.list(weights)) rk_abort("`weights` must be a list of arrays.", kind = "argument", call = call)
  rk_call(rk_layer_set_weights(member_handle(object, call), lapply(weights, as_weight_array)),
          call = call)
  invisible(object)
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

# Every integer argument is checked by is_whole(): R's integers stop at 2^31 - 1, and
# as.integer() turns a larger number into NA with a coercion warning, which the engine
# would then read as -2147483648.

# TRUE when `x` is numeric and each value a whole number in [lower, 2^31).
is_whole <- function(x, lower = 1) {
  is.numeric(x) && !anyNA(x) && all(is.finite(x)) && all(x >= lower) &&
    all(x == round(x)) && all(x <= .Machine$integer.max)
}

# " below 2^31" when some value of `x` is a finite number past R's integers, for the
# message that refuses it ("`units` must be a positive integer below 2^31, not 3e+09.").
int_bound_note <- function(x) {
  big <- is.numeric(x) && !anyNA(x) && any(is.finite(x) & abs(x) > .Machine$integer.max)
  if (big) " below 2^31" else ""
}

check_positive_int <- function(x, arg, call) {
  if (missing(x) || length(x) != 1L || !is_whole(x)) {
    shown <- if (missing(x)) "missing" else paste(deparse(x), collapse = "")
    note <- if (missing(x)) "" else int_bound_note(x)
    rk_abort(sprintf("`%s` must be a positive integer%s, not %s.", arg, note, shown),
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
