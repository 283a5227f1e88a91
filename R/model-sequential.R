#' Create a Keras sequential model
#'
#' A sequential model is a linear stack of layers. Layers are added in place with the
#' `layer_*()` functions, usually through the pipe: `model %>% layer_dense(10)`.
#'
#' @param input_shape Shape of one input sample, without the batch axis (for example
#'   `c(784)` or `c(28, 28, 1)`). `NULL` (the default) builds the model on the first
#'   call to `fit()`, `evaluate()` or `predict()`.
#' @param name Name of the model; `NULL` (the default) gives `"sequential"`,
#'   `"sequential_1"`, ...
#' @param ... Layers to add at once (as with `layers`).
#' @param layers A list of layers (from `layer_*()` called without a model) to add
#'   at once, as keras3's `layers` argument.
#' @returns A model of class `rustkeras_sequential`.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(784))
#' model %>%
#'   layer_dense(units = 32, activation = "relu") %>%
#'   layer_dense(units = 10, activation = "softmax")
#' model
keras_model_sequential <- function(input_shape = NULL, name = NULL, ..., layers = list()) {
  if (!is.null(input_shape)) {
    if (!is_whole(input_shape)) {
      rk_abort(sprintf("`input_shape` must be a vector of positive integers%s, such as c(784), not %s.",
                       int_bound_note(input_shape), shown_value(input_shape)), kind = "argument")
    }
  }
  if (!is.null(name) && !(is.character(name) && length(name) == 1L)) {
    rk_abort("`name` must be a single string or NULL.", kind = "argument")
  }
  ptr <- rk_call(rk_model_new(name, if (is.null(input_shape)) NULL else as.numeric(input_shape)))
  model <- new_model(ptr, "Sequential")
  if (inherits(layers, "rustkeras_layer")) layers <- list(layers)
  for (layer in c(list(...), layers)) add_layer(model, layer)
  model
}

#' @export
print.rustkeras_model <- function(x, ...) {
  writeLines(model_summary_text(x, ..., call = rk_user_call(environment())))
  invisible(x)
}

#' @export
format.rustkeras_model <- function(x, ...) {
  model_summary_text(x, ...)
}

#' Print a summary of a model
#'
#' Prints Keras 3's table of layers, output shapes and parameter counts, followed by
#' the `Total params` lines.
#'
#' @param object A model.
#' @param line_length Width of the table; defaults to `getOption("width")` (at most 180),
#'   as keras3 does.
#' @param ... Unused.
#' @returns The summary text, invisibly.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2)
#' summary(model)
summary.rustkeras_model <- function(object, line_length = NULL, ...) {
  text <- model_summary_text(object, line_length = line_length)
  writeLines(text)
  invisible(text)
}

model_info <- function(model, call = rk_user_call(parent.frame())) {
  rk_call(rk_model_info(model$ptr), call = call)
}
