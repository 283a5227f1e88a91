#' Loss functions
#'
#' Keras 3's losses. Pass one to [compile()], or its name as a string
#' (`"categorical_crossentropy"`, `"sparse_categorical_crossentropy"`,
#' `"binary_crossentropy"`, `"mean_squared_error"` or `"mse"`,
#' `"mean_absolute_error"` or `"mae"`).
#'
#' Cross-entropies on probabilities clip them to `[1e-7, 1 - 1e-7]` as Keras does; when
#' the model ends in a softmax, categorical cross-entropy is computed from the logits
#' (exact, as keras3 on TensorFlow does).
#'
#' @param from_logits Whether the model's output is logits rather than probabilities.
#' @param ... Other keras3 arguments are not supported yet and give an error.
#' @returns A loss object of class `rustkeras_loss`.
#' @name losses
#' @examples
#' loss_categorical_crossentropy()
NULL

new_loss <- function(name, from_logits = FALSE, extra = list()) {
  if (length(extra)) {
    rk_abort(sprintf("unsupported loss argument(s): %s", paste(names(extra), collapse = ", ")),
             kind = "argument", call = sys.call(-1))
  }
  if (!(is.logical(from_logits) && length(from_logits) == 1L && !is.na(from_logits))) {
    rk_abort("`from_logits` must be TRUE or FALSE.", kind = "argument", call = sys.call(-1))
  }
  structure(list(name = name, from_logits = from_logits), class = "rustkeras_loss")
}

#' @rdname losses
#' @export
loss_categorical_crossentropy <- function(from_logits = FALSE, ...) {
  new_loss("categorical_crossentropy", from_logits, list(...))
}

#' @rdname losses
#' @export
loss_sparse_categorical_crossentropy <- function(from_logits = FALSE, ...) {
  new_loss("sparse_categorical_crossentropy", from_logits, list(...))
}

#' @rdname losses
#' @export
loss_binary_crossentropy <- function(from_logits = FALSE, ...) {
  new_loss("binary_crossentropy", from_logits, list(...))
}

#' @rdname losses
#' @export
loss_mean_squared_error <- function(...) new_loss("mean_squared_error", FALSE, list(...))

#' @rdname losses
#' @export
loss_mean_absolute_error <- function(...) new_loss("mean_absolute_error", FALSE, list(...))

#' @export
print.rustkeras_loss <- function(x, ...) {
  cat(sprintf("<loss %s>%s\n", x$name, if (isTRUE(x$from_logits)) " from logits" else ""))
  invisible(x)
}

loss_names <- c("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
                "mean_squared_error", "mean_absolute_error", "mse", "mae")

as_loss <- function(loss, call) {
  if (inherits(loss, "rustkeras_loss")) {
    return(loss)
  }
  if (is.character(loss) && length(loss) == 1L && loss %in% loss_names) {
    name <- switch(loss, mse = "mean_squared_error", mae = "mean_absolute_error", loss)
    return(new_loss(name))
  }
  shown <- if (is.character(loss)) paste0("'", loss[1], "'") else class(loss)[1]
  rk_abort(sprintf("unknown loss %s; known losses: %s", shown, paste(loss_names, collapse = ", ")),
           kind = "argument", call = call)
}
