#' Weight regularizers
#'
#' A regularizer adds a penalty on a layer's weights to the loss that training
#' minimizes: `regularizer_l1()` adds `l1 * sum(abs(w))`, `regularizer_l2()` adds
#' `l2 * sum(w^2)`, `regularizer_l1_l2()` both. Give one to a layer's
#' `kernel_regularizer`, `bias_regularizer` (and, for the layers that have them,
#' `depthwise_regularizer`, `pointwise_regularizer`, `beta_regularizer`,
#' `gamma_regularizer`). As in Keras, the penalties of the weights that train are part of
#' the `loss` that `fit()` and `evaluate()` report; frozen weights add nothing. A layer
#' argument also accepts Keras's names: `"l1"` and `"l2"` (factor 0.01), `"L1L2"`
#' (factors 0).
#'
#' @param l1,l2 Non-negative factors of the L1 and L2 penalties.
#' @returns A regularizer object for a layer's `*_regularizer` argument.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 10) %>%
#'   layer_dense(16, activation = "relu", kernel_regularizer = regularizer_l2(0.001)) %>%
#'   layer_dense(1)
#' regularizer_l1_l2(l1 = 0.01, l2 = 0.01)
regularizer_l1 <- function(l1 = 0.01) {
  new_regularizer("L1", l1 = l1, call = rk_user_call(environment()))
}

#' @rdname regularizer_l1
#' @export
regularizer_l2 <- function(l2 = 0.01) {
  new_regularizer("L2", l2 = l2, call = rk_user_call(environment()))
}

#' @rdname regularizer_l1
#' @export
regularizer_l1_l2 <- function(l1 = 0, l2 = 0) {
  new_regularizer("L1L2", l1 = l1, l2 = l2, call = rk_user_call(environment()))
}

new_regularizer <- function(class_name, l1 = 0, l2 = 0, call) {
  for (arg in c("l1", "l2")) {
    v <- get(arg)
    if (!(is.numeric(v) && length(v) == 1L && !is.na(v) && is.finite(v) && v >= 0)) {
      rk_abort(sprintf("`%s` must be a number >= 0, not %s.", arg,
                       paste(deparse(v), collapse = "")), kind = "argument", call = call)
    }
  }
  structure(list(class_name = class_name, l1 = as.numeric(l1), l2 = as.numeric(l2)),
            class = "rustkeras_regularizer")
}

#' @export
print.rustkeras_regularizer <- function(x, ...) {
  factors <- switch(x$class_name, L1 = c(l1 = x$l1), L2 = c(l2 = x$l2), c(l1 = x$l1, l2 = x$l2))
  cat(sprintf("<regularizer %s(%s)>\n", x$class_name,
              paste(names(factors), format(factors), sep = " = ", collapse = ", ")))
  invisible(x)
}

# The regularizer arguments a layer was given, checked, for its config (NULLs dropped).
regularizer_config <- function(args, call) {
  args <- args[!vapply(args, is.null, logical(1))]
  for (arg in names(args)) {
    x <- args[[arg]]
    ok <- inherits(x, "rustkeras_regularizer") ||
      (is.character(x) && length(x) == 1L && x %in% c("l1", "l2", "L1", "L2", "L1L2"))
    if (!ok) {
      rk_abort(sprintf(paste0("`%s` must be a regularizer from regularizer_l1(), ",
                              "regularizer_l2() or regularizer_l1_l2() (or \"l1\", \"l2\"), not %s."),
                       arg, describe_type(x)), kind = "argument", call = call)
    }
    if (is.list(x)) args[[arg]] <- unclass(x)
  }
  args
}
