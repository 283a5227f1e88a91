#' Optimizers
#'
#' Keras 3's optimizers with its defaults and update rules. Pass one to [compile()], or
#' its name as a string (`"sgd"`, `"rmsprop"`, `"adam"`, `"adamw"`) for the defaults.
#'
#' @param learning_rate Step size.
#' @param momentum For SGD: momentum factor (default 0). For RMSprop: momentum of the
#'   update (default 0).
#' @param nesterov Whether SGD uses Nesterov momentum (default `FALSE`).
#' @param rho Discounting factor of RMSprop's moving average of squared gradients.
#' @param epsilon Small constant for numerical stability (`1e-7`).
#' @param centered Whether RMSprop normalises by the centred second moment.
#' @param beta_1,beta_2 Exponential decay rates of Adam's first and second moments.
#' @param amsgrad Whether to use the AMSGrad variant.
#' @param weight_decay Decoupled weight decay (`NULL`: none; AdamW: `0.004`).
#' @param name Name of the optimizer (unused, for keras3 compatibility).
#' @param ... Other keras3 arguments are not supported yet and give an error.
#' @returns An optimizer object of class `rustkeras_optimizer`.
#' @name optimizers
#' @examples
#' opt <- optimizer_adam(learning_rate = 0.01)
#' opt
NULL

new_optimizer <- function(name, args, extra) {
  if (length(extra)) {
    rk_abort(sprintf("unsupported optimizer argument(s): %s", paste(names(extra), collapse = ", ")),
             kind = "argument", call = sys.call(-1))
  }
  for (a in names(args)) {
    v <- args[[a]]
    if (is.null(v)) next
    if (is.logical(v)) {
      if (length(v) != 1L || is.na(v)) rk_abort(sprintf("`%s` must be TRUE or FALSE.", a), kind = "argument", call = sys.call(-1))
    } else if (!(is.numeric(v) && length(v) == 1L && is.finite(v) && v >= 0)) {
      rk_abort(sprintf("`%s` must be a single non-negative number.", a), kind = "argument", call = sys.call(-1))
    }
  }
  structure(c(list(name = name), args), class = "rustkeras_optimizer")
}

#' @rdname optimizers
#' @export
optimizer_sgd <- function(learning_rate = 0.01, momentum = 0, nesterov = FALSE,
                          weight_decay = NULL, name = "SGD", ...) {
  new_optimizer("sgd", list(learning_rate = learning_rate, momentum = momentum, nesterov = nesterov,
                            weight_decay = weight_decay), list(...))
}

#' @rdname optimizers
#' @export
optimizer_rmsprop <- function(learning_rate = 0.001, rho = 0.9, momentum = 0, epsilon = 1e-07,
                              centered = FALSE, weight_decay = NULL, name = "rmsprop", ...) {
  new_optimizer("rmsprop", list(learning_rate = learning_rate, rho = rho, momentum = momentum,
                                epsilon = epsilon, centered = centered, weight_decay = weight_decay),
                list(...))
}

#' @rdname optimizers
#' @export
optimizer_adam <- function(learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-07,
                           amsgrad = FALSE, weight_decay = NULL, name = "adam", ...) {
  new_optimizer("adam", list(learning_rate = learning_rate, beta_1 = beta_1, beta_2 = beta_2,
                             epsilon = epsilon, amsgrad = amsgrad, weight_decay = weight_decay),
                list(...))
}

#' @rdname optimizers
#' @export
optimizer_adamw <- function(learning_rate = 0.001, weight_decay = 0.004, beta_1 = 0.9,
                            beta_2 = 0.999, epsilon = 1e-07, amsgrad = FALSE, name = "adamw", ...) {
  new_optimizer("adamw", list(learning_rate = learning_rate, beta_1 = beta_1, beta_2 = beta_2,
                              epsilon = epsilon, amsgrad = amsgrad, weight_decay = weight_decay),
                list(...))
}

#' @export
print.rustkeras_optimizer <- function(x, ...) {
  args <- x[setdiff(names(x), "name")]
  args <- args[!vapply(args, is.null, logical(1))]
  cat(sprintf("<optimizer %s> %s\n", x$name,
              paste(sprintf("%s = %s", names(args), vapply(args, format, "")), collapse = ", ")))
  invisible(x)
}

optimizer_names <- c("sgd", "rmsprop", "adam", "adamw")

as_optimizer <- function(optimizer, call) {
  if (inherits(optimizer, "rustkeras_optimizer")) {
    return(optimizer)
  }
  if (is.character(optimizer) && length(optimizer) == 1L && tolower(optimizer) %in% optimizer_names) {
    return(switch(tolower(optimizer),
      sgd = optimizer_sgd(), rmsprop = optimizer_rmsprop(),
      adam = optimizer_adam(), adamw = optimizer_adamw()
    ))
  }
  shown <- if (is.character(optimizer)) paste0("'", optimizer[1], "'") else class(optimizer)[1]
  rk_abort(sprintf("unknown optimizer %s; known optimizers: %s", shown,
                   paste(optimizer_names, collapse = ", ")), kind = "argument", call = call)
}
