# keras3's merge layers: combine a list of symbolic tensors into one. Called without
# `inputs` they return the layer, to call later on a list.

merge_layer <- function(class_name, inputs, dots, config, call) {
  unnamed <- if (length(dots)) dots[is.null(names(dots)) | !nzchar(names(dots) %||% rep("", length(dots)))] else list()
  named <- dots[setdiff(names(dots), "")]
  unknown <- setdiff(names(named), "name")
  if (length(unknown)) {
    rk_abort(sprintf("Unknown argument%s %s.", if (length(unknown) > 1L) "s" else "",
                     paste0("`", unknown, "`", collapse = ", ")), kind = "argument", call = call)
  }
  if (!is.null(named$name)) check_string(named$name, "name", call)
  layer <- new_layer(class_name, c(list(name = named$name), config))
  if (missing(inputs) || is.null(inputs)) {
    return(layer)
  }
  # keras3 also takes the tensors one by one: layer_add(x1, x2).
  tensors <- if (is_symbolic(inputs)) c(list(inputs), unnamed) else c(inputs, unnamed)
  if (!is_symbolic_list(tensors)) {
    rk_abort(sprintf("`inputs` must be a list of symbolic tensors (from keras_input() and layers), not %s.",
                     describe_type(inputs)), kind = "argument", call = call)
  }
  call_symbolic(layer, tensors, call)
}

#' Merge layers: combine several tensors into one
#'
#' `layer_add()`, `layer_subtract()`, `layer_multiply()`, `layer_average()`,
#' `layer_maximum()` and `layer_minimum()` combine tensors of one shape element by
#' element (axes of size 1 broadcast); `layer_concatenate()` joins them along `axis`.
#' `layer_subtract()` takes exactly two tensors.
#'
#' @param inputs A list of symbolic tensors; missing or `NULL` returns the layer, to
#'   call on a list later.
#' @param ... `name` (the layer's name), or further tensors to combine.
#' @param axis For `layer_concatenate()`: the axis to join along, counting the batch
#'   axis as Keras does (`-1`, the default, is the last axis).
#' @returns A symbolic tensor, or the layer when `inputs` is missing.
#' @name merge-layers
#' @examples
#' a <- keras_input(shape = 4)
#' b <- keras_input(shape = 4)
#' added <- layer_add(list(a, b))
#' joined <- layer_concatenate(list(a, b))
#' model <- keras_model(list(a, b), list(added, joined))
#' model
NULL

#' @rdname merge-layers
#' @export
layer_add <- function(inputs, ...) {
  merge_layer("Add", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_subtract <- function(inputs, ...) {
  merge_layer("Subtract", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_multiply <- function(inputs, ...) {
  merge_layer("Multiply", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_average <- function(inputs, ...) {
  merge_layer("Average", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_maximum <- function(inputs, ...) {
  merge_layer("Maximum", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_minimum <- function(inputs, ...) {
  merge_layer("Minimum", if (missing(inputs)) NULL else inputs, list(...), list(),
              rk_user_call(environment()))
}

#' @rdname merge-layers
#' @export
layer_concatenate <- function(inputs, ..., axis = -1L) {
  call <- rk_user_call(environment())
  if (!(length(axis) == 1L && is_whole(axis, -.Machine$integer.max))) {
    rk_abort(sprintf("`axis` must be a single integer%s, not %s.", int_bound_note(axis), shown_value(axis)),
             kind = "argument", call = call)
  }
  merge_layer("Concatenate", if (missing(inputs)) NULL else inputs, list(...),
              list(axis = as.integer(axis)), call)
}
