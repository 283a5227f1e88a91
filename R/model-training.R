#' Configure a model for training
#'
#' Sets the optimizer, the loss and the metrics; modifies the model in place.
#'
#' @param object A model.
#' @param optimizer An optimizer object (such as [optimizer_rmsprop()]) or a name:
#'   `"rmsprop"` (the default), `"adam"`, `"adamw"`, `"sgd"`.
#' @param loss A loss object (such as [loss_categorical_crossentropy()]) or a name; for a
#'   model with several outputs, one for all or a list with one per output (a named list
#'   matches output names).
#' @param loss_weights For several outputs: the weight of each output's loss in the
#'   total (a vector or named list); `NULL` weighs them equally.
#' @param metrics Names of the metrics to report: `"accuracy"` (categorical, sparse or
#'   binary accuracy, chosen from the loss and shapes as Keras does), `"mae"`, `"mse"`,
#'   `"categorical_accuracy"`, `"sparse_categorical_accuracy"`, `"binary_accuracy"`.
#' @param ... keras3 arguments rustkeras does not have yet are errors (not silently
#'   ignored), as are unknown ones.
#' @returns The model, invisibly.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(3, activation = "softmax")
#' model %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
compile <- function(object, ...) UseMethod("compile")

#' @rdname compile
#' @export
compile.rustkeras_model <- function(object, optimizer = "rmsprop", loss = NULL, metrics = NULL,
                                    loss_weights = NULL, ...) {
  call <- rk_user_call(environment())
  check_dots(list(...), "compile", call, unsupported = "weighted_metrics",
             ignored = c("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss"))
  if (is.null(loss)) rk_abort("`loss` is missing: compile() needs a loss.", kind = "argument", call = call)
  optimizer <- as_optimizer(optimizer, call)
  output_names <- rk_call(rk_model_io(object$ptr), call = call)$output_names
  losses <- per_output(loss, output_names, "loss", call)
  losses <- lapply(losses, as_loss, call = call)
  from_logits <- unique(vapply(losses, function(l) isTRUE(l$from_logits), logical(1)))
  if (length(from_logits) > 1L) {
    rk_abort("Losses with and without `from_logits = TRUE` cannot be mixed yet.",
             kind = "argument", call = call)
  }
  if (!is.null(loss_weights)) {
    loss_weights <- per_output(loss_weights, output_names, "loss_weights", call)
    if (!all(vapply(loss_weights, function(w) is.numeric(w) && length(w) == 1L && is.finite(w), logical(1)))) {
      rk_abort("`loss_weights` must hold one finite number per output.", kind = "argument", call = call)
    }
    loss_weights <- as.numeric(unlist(loss_weights))
  }
  metrics <- if (is.null(metrics)) character() else unlist(metrics)
  if (!is.character(metrics)) rk_abort("`metrics` must be a character vector of metric names.", kind = "argument", call = call)
  opt <- unclass(optimizer)
  opt <- opt[!vapply(opt, is.null, logical(1))]
  rk_call(rk_model_compile(object$ptr, opt, vapply(losses, function(l) l$name, character(1)),
                           from_logits, loss_weights, unname(metrics)), call = call)
  invisible(object)
}

# One value per output, in the model's output order: a single value is shared; a
# list or vector has one per output; a named one is matched to the output names.
per_output <- function(x, output_names, arg, call) {
  single <- inherits(x, "rustkeras_loss") || is.function(x) || (is.atomic(x) && length(x) == 1L)
  if (single) return(rep(list(x), length(output_names)))
  x <- if (is.list(x)) x else as.list(x)
  if (!is.null(names(x)) && all(nzchar(names(x)))) {
    unknown <- setdiff(names(x), output_names)
    if (length(unknown)) {
      rk_abort(sprintf("`%s` names %s, but the model's outputs are %s.", arg,
                       paste0("'", unknown, "'", collapse = ", "),
                       paste0("'", output_names, "'", collapse = ", ")),
               kind = "argument", call = call)
    }
    missing_out <- setdiff(output_names, names(x))
    if (length(missing_out)) {
      rk_abort(sprintf("`%s` has no entry for the output%s %s.", arg,
                       if (length(missing_out) > 1L) "s" else "",
                       paste0("'", missing_out, "'", collapse = ", ")),
               kind = "argument", call = call)
    }
    return(unname(x[output_names]))
  }
  if (length(x) != length(output_names)) {
    rk_abort(sprintf("`%s` must hold 1 value or one per output (%d), not %d.", arg,
                     length(output_names), length(x)), kind = "argument", call = call)
  }
  x
}

#' Train a model
#'
#' Trains the model for a number of epochs on arrays, printing Keras's progress bar.
#'
#' @param object A compiled model.
#' @param x Input data: a numeric matrix or array with samples along the first axis;
#'   for a model with several inputs, a list with one per input (a named list matches
#'   input names).
#' @param y Target data: a numeric vector, matrix or array with as many samples as `x`
#'   (a list with one per output for several outputs)
#'   (one-hot rows for categorical cross-entropy, class indices for the sparse one).
#' @param batch_size Samples per gradient update (`NULL`: 32).
#' @param epochs Index of the last epoch to train (default 1).
#' @param verbose 0 (silent), 1 (progress bar), 2 (one line per epoch), or `"auto"`:
#'   2 while knitting, 0 under testthat, otherwise 1 (a live bar in an interactive
#'   session, one line per epoch otherwise).
#' @param validation_split Fraction of the samples, taken from the end before shuffling,
#'   used for validation (default 0).
#' @param validation_data `list(x_val, y_val)` to validate on instead.
#' @param shuffle Whether to shuffle the training samples before each epoch.
#' @param initial_epoch Epoch at which to start (1-based; to resume a training).
#' @param callbacks A list of callbacks, such as [callback_early_stopping()],
#'   [callback_model_checkpoint()] or [callback_reduce_lr_on_plateau()], run between
#'   epochs.
#' @param ... keras3 arguments rustkeras does not have yet are errors (not silently
#'   ignored), as are unknown ones.
#' @returns A `keras_training_history`, invisibly.
#' @section Interrupting:
#' Ctrl-C (Esc in RStudio) during `fit()` stops it after the batch that is running: the
#' model keeps the weights of the last finished batch, and then R's interrupt is raised
#' as for any R code, so the console returns to the prompt, a script stops, and
#' `tryCatch(..., interrupt = function(e) ...)` handlers run; the condition's `history`
#' holds the epochs finished so far. `evaluate()` and `predict()` stop the same way.
#' A save is never left half-written: the file is replaced only when complete.
#' @export
#' @examples
#' x <- matrix(runif(400), ncol = 4)
#' y <- to_categorical(as.integer(x[, 1] > 0.5), 2)
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2, activation = "softmax")
#' model %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
#' history <- model %>% fit(x, y, epochs = 2, verbose = 0)
#' history
fit <- function(object, ...) UseMethod("fit")

#' @rdname fit
#' @export
fit.rustkeras_model <- function(object, x = NULL, y = NULL, batch_size = NULL, epochs = 1L,
                                verbose = getOption("keras.verbose", default = "auto"),
                                validation_split = 0, validation_data = NULL, shuffle = TRUE,
                                initial_epoch = 1L, callbacks = NULL, ...) {
  call <- rk_user_call(environment())
  check_fit_dots(list(...), call)
  io <- rk_call(rk_model_io(object$ptr), call = call)
  x <- model_arrays(x, io$input_names, "x", call)
  y <- model_arrays(y, io$output_names, "y", call)
  batch_size <- as_count(if (is.null(batch_size)) 32L else batch_size, "batch_size", call)
  epochs <- as_count(epochs, "epochs", call)
  initial_epoch <- as_count(initial_epoch, "initial_epoch", call)
  check_number(validation_split, "validation_split", call)
  if (validation_split < 0 || validation_split >= 1) {
    rk_abort(sprintf("`validation_split` must be in [0, 1), not %s.", validation_split), kind = "argument", call = call)
  }
  val_x <- val_y <- NULL
  if (!is.null(validation_data)) {
    if (!is.list(validation_data) || length(validation_data) < 2L) {
      rk_abort("`validation_data` must be list(x_val, y_val).", kind = "argument", call = call)
    }
    val_x <- model_arrays(validation_data[[1]], io$input_names, "validation_data", call)
    val_y <- model_arrays(validation_data[[2]], io$output_names, "validation_data", call)
  }
  verbose <- as_verbose(verbose, call)
  rk_place_model(object, call)
  rk_make_room(list(x, y, val_x, val_y))
  run <- function(last, first, total) {
    rk_call(rk_model_fit(
      object$ptr, x, y, batch_size, last, first - 1L, verbose, interactive(),
      isTRUE(shuffle), validation_split, val_x, val_y, total
    ), call = call)
  }
  res <- if (is.null(callbacks)) {
    run(epochs, initial_epoch, 0L)
  } else {
    fit_with_callbacks(object, check_callbacks(callbacks, call),
                       function(epoch) run(epoch, epoch, epochs), initial_epoch, epochs)
  }
  n_train <- if (is.null(val_x) && validation_split > 0) floor(sample_count(x) * (1 - validation_split)) else sample_count(x)
  history <- new_keras_training_history(
    params = list(verbose = verbose, epochs = epochs, steps = as.integer(ceiling(n_train / batch_size))),
    metrics = res$metrics
  )
  if (isTRUE(res$interrupted)) {
    message("fit() was interrupted; the model keeps the weights of the last completed batch.")
    rk_interrupt(list(history = history))
  }
  invisible(history)
}

#' Evaluate a model
#'
#' Computes the loss and the metrics on data, in batches.
#'
#' @inheritParams fit
#' @param object A compiled model.
#' @returns A named numeric vector: the metrics and the loss, in Keras's order
#'   (alphabetical, so `accuracy` before `loss`).
#' @export
#' @examples
#' x <- matrix(runif(40), ncol = 4)
#' y <- to_categorical(as.integer(x[, 1] > 0.5), 2)
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2, activation = "softmax")
#' model %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
#' model %>% evaluate(x, y, verbose = 0)
evaluate <- function(object, ...) UseMethod("evaluate")

#' @rdname evaluate
#' @export
evaluate.rustkeras_model <- function(object, x = NULL, y = NULL, batch_size = NULL,
                                     verbose = getOption("keras.verbose", default = "auto"), ...) {
  call <- rk_user_call(environment())
  check_dots(list(...), "evaluate", call, unsupported = c("sample_weight", "steps", "callbacks"))
  io <- rk_call(rk_model_io(object$ptr), call = call)
  x <- model_arrays(x, io$input_names, "x", call)
  y <- model_arrays(y, io$output_names, "y", call)
  batch_size <- as_count(if (is.null(batch_size)) 32L else batch_size, "batch_size", call)
  rk_place_model(object, call)
  rk_make_room(list(x, y))
  rk_call(rk_model_evaluate(object$ptr, x, y, batch_size, as_verbose(verbose, call), interactive()),
          call = call)
}

#' Generate predictions
#'
#' @param object A model.
#' @param x Input data, samples along the first axis.
#' @param batch_size Samples per batch (`NULL`: 32).
#' @param verbose As in [fit()].
#' @param ... keras3 arguments rustkeras does not have yet are errors (not silently
#'   ignored), as are unknown ones.
#' @returns A numeric matrix (or array) with one row per sample.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2, activation = "softmax")
#' predict(model, matrix(runif(8), ncol = 4), verbose = 0)
#' @importFrom stats predict
predict.rustkeras_model <- function(object, x, batch_size = NULL,
                                    verbose = getOption("keras.verbose", default = "auto"), ...) {
  call <- rk_user_call(environment())
  check_dots(list(...), "predict", call, unsupported = c("steps", "callbacks"))
  io <- rk_call(rk_model_io(object$ptr), call = call)
  x <- model_arrays(x, io$input_names, "x", call)
  rk_place_model(object, call)
  out <- rk_call(rk_model_predict(object$ptr, x, batch_size_or_default(batch_size, call),
                                  as_verbose(verbose, call), interactive()), call = call)
  if (is.list(out)) names(out) <- io$output_names
  out
}

batch_size_or_default <- function(batch_size, call) {
  as_count(if (is.null(batch_size)) 32L else batch_size, "batch_size", call)
}

#' Get or set the weights of a model
#'
#' Weights come as a list of R arrays in Keras's order: layer by layer, kernel before
#' bias, with the kernel of a dense layer shaped `(input_dim, units)`.
#'
#' @param object A model.
#' @param weights A list of arrays shaped like those `get_weights()` returns.
#' @param ... keras3 arguments rustkeras does not have yet are errors (not silently
#'   ignored), as are unknown ones.
#' @returns `get_weights()`: a list of arrays; `set_weights()`: the model, invisibly.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 3) %>% layer_dense(2)
#' w <- get_weights(model)
#' str(w)
#' w[[2]][] <- 1
#' set_weights(model, w)
#' get_weights(model)[[2]]
get_weights <- function(object, ...) UseMethod("get_weights")

#' @export
get_weights.rustkeras_model <- function(object, ...) {
  # A bias comes back as a 1-d array, as keras3 gives it (NumPy's shape (units,)).
  lapply(rk_call(rk_model_get_weights(object$ptr)), as_weight_array)
}

#' @rdname get_weights
#' @export
set_weights <- function(object, weights, ...) UseMethod("set_weights")

#' @export
set_weights.rustkeras_model <- function(object, weights, ...) {
  if (!is.list(weights)) rk_abort("`weights` must be a list of arrays.", kind = "argument")
  rk_call(rk_model_set_weights(object$ptr, lapply(weights, as_weight_array)))
  invisible(object)
}

# A weight vector keeps its 1-d shape; matrices and arrays keep their dims.
as_weight_array <- function(w) {
  if (is.null(dim(w))) array(as.numeric(w), dim = length(w)) else w
}

as_verbose <- function(verbose, call) {
  if (identical(verbose, "auto")) {
    if (isTRUE(getOption("knitr.in.progress"))) return(2L)
    if (identical(Sys.getenv("TESTTHAT"), "true")) return(0L)
    return(1L)
  }
  if (!(is.numeric(verbose) && length(verbose) == 1L && verbose %in% 0:2)) {
    rk_abort("`verbose` must be 0, 1, 2 or \"auto\".", kind = "argument", call = call)
  }
  as.integer(verbose)
}

# keras3 arguments that rustkeras does not have yet are errors rather than silently
# ignored (`unsupported`, when not NULL); `ignored` ones change nothing here (Keras's
# performance switches); anything else in `...` is a typo.
check_dots <- function(dots, fn, call, unsupported = character(), ignored = character()) {
  if (!length(dots)) return(invisible())
  keys <- names(dots) %||% rep("", length(dots))
  bad <- character()
  for (i in seq_along(dots)) {
    k <- keys[i]
    if (k %in% ignored) next
    if (k %in% unsupported) {
      if (is.null(dots[[i]])) next
      rk_abort(sprintf("`%s` is not supported yet.", k), kind = "argument", call = call)
    }
    bad <- c(bad, if (nzchar(k)) k else "<unnamed>")
  }
  if (length(bad)) {
    rk_abort(sprintf("Unrecognized arguments passed to %s(): %s.", fn,
                     paste0("`", bad, "`", collapse = ", ")), kind = "argument", call = call)
  }
}

check_fit_dots <- function(dots, call) {
  # Validating after every epoch is what rustkeras does: keras3's default of 1 is fine.
  if (identical(as.numeric(dots$validation_freq), 1)) dots$validation_freq <- NULL
  check_dots(dots, "fit", call, unsupported = c("class_weight", "sample_weight", "steps_per_epoch",
                                                "validation_steps", "validation_batch_size",
                                                "validation_freq"),
             ignored = "view_metrics")
}

as_count <- function(x, arg, call) check_positive_int(x, arg, call)

check_x <- function(x, arg, call) {
  if (is.null(x)) rk_abort(sprintf("`%s` is missing.", arg), kind = "argument", call = call)
  if (is.data.frame(x)) {
    rk_abort(sprintf("`%s` must be a numeric matrix or array, not a data frame; use as.matrix().", arg),
             kind = "input", call = call)
  }
  if (!is.numeric(x) || is.factor(x)) {
    rk_abort(sprintf("`%s` must be a numeric matrix or array, not %s.", arg, describe_type(x)),
             kind = "input", call = call)
  }
}

# The arrays for a model's inputs (or outputs): one array, or a list with one per
# name (a named list is matched to the names, as keras3 matches a dict).
model_arrays <- function(x, names, arg, call) {
  if (!is.list(x) || is.data.frame(x)) {
    check_x(x, arg, call)
    if (length(names) > 1L) {
      rk_abort(sprintf("`%s` must be a list of %d arrays, one for each of %s.", arg, length(names),
                       paste0("'", names, "'", collapse = ", ")), kind = "argument", call = call)
    }
    return(x)
  }
  if (!is.null(names(x)) && all(nzchar(names(x)))) {
    unknown <- setdiff(names(x), names)
    if (length(unknown) || length(x) != length(names)) {
      rk_abort(sprintf("`%s` names %s, but the model's are %s.", arg,
                       paste0("'", names(x), "'", collapse = ", "),
                       paste0("'", names, "'", collapse = ", ")), kind = "argument", call = call)
    }
    x <- x[names]
  }
  if (length(x) != length(names)) {
    rk_abort(sprintf("`%s` must hold %d array%s (one per model %s), not %d.", arg, length(names),
                     if (length(names) == 1L) "" else "s",
                     if (arg == "y") "output" else "input", length(x)),
             kind = "argument", call = call)
  }
  for (i in seq_along(x)) check_x(x[[i]], sprintf("%s[[%d]]", arg, i), call)
  if (length(x) == 1L) x[[1]] else unname(x)
}

# "a character matrix", "a factor", "a list": what a user would call the value.
describe_type <- function(x) {
  if (is.factor(x)) return("a factor")
  shape <- if (is.matrix(x)) " matrix" else if (is.array(x)) " array" else if (is.atomic(x)) " vector" else ""
  type <- if (is.atomic(x)) typeof(x) else class(x)[1]
  article <- if (grepl("^[aeiou]", type)) "an" else "a"
  paste0(article, " ", type, shape)
}

sample_count <- function(x) {
  if (is.list(x)) x <- x[[1]]
  if (is.null(dim(x))) length(x) else dim(x)[1]
}

# fit() and evaluate() convert their data whole into the engine's float32 (predict()
# converts batch by batch), and array_reshape() copies its input. Before such a large
# copy, R's garbage goes: the copies a script left behind (an integer data set after
# `x <- array_reshape(x, ...) / 255`, say) would otherwise still be resident beside the
# new one. The workshop CNN script peaked at 1213 MB with them.
# A loop that reshapes a batch at each step collects at most twice a second.
rk_make_room <- function(arrays, bytes_per_value = 4, threshold_mb = 64) {
  if (count_values(arrays) * bytes_per_value <= threshold_mb * 2^20) return(invisible())
  now <- proc.time()[["elapsed"]]
  last <- .rk_session$last_room
  if (is.null(last) || now - last >= 0.5) {
    invisible(gc(verbose = FALSE))
    .rk_session$last_room <- proc.time()[["elapsed"]]
  }
  invisible()
}

# The number of values in an array or a (nested) list of them, without copying any.
count_values <- function(a) {
  if (is.list(a)) sum(vapply(a, count_values, 0)) else as.numeric(length(a))
}
