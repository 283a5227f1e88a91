# Callbacks for fit(), as keras3's: each is an object with hooks that fit() calls
# between epochs (on_train_begin, on_epoch_begin, on_epoch_end, on_train_end). With
# callbacks, fit() runs the engine one epoch per call, so that a hook can read the
# epoch's logs, change the learning rate, save or restore weights, or stop the training.

new_callback <- function(class, hooks) {
  structure(hooks, class = c(paste0("rustkeras_callback_", class), "rustkeras_callback"))
}

#' @export
print.rustkeras_callback <- function(x, ...) {
  cat(sprintf("<callback %s>\n", sub("^rustkeras_callback_", "", class(x)[1])))
  invisible(x)
}

# Keras's monitor direction for `mode = "auto"`: losses and errors go down, accuracies up.
monitor_op <- function(monitor, mode, who, call) {
  mode <- match_choice(mode, c("auto", "min", "max"), "mode", call)
  if (mode == "auto") {
    metric <- sub("^val_", "", monitor)
    mode <- if (grepl("(^|_)loss$", metric) ||
                grepl("(^|_)(mae|mse|mape|msle|mean_[a-z_]*error|crossentropy|hinge|kl_divergence|log_cosh|poisson)$", metric)) {
      "min"
    } else if (grepl("(^|_)(accuracy|acc|auc|precision|recall)$", metric)) {
      "max"
    } else {
      rk_abort(sprintf(paste0("%s cannot tell whether `%s` should go up or down; give ",
                              "`mode = \"min\"` or `mode = \"max\"`."), who, monitor),
               kind = "argument", call = call)
    }
  }
  mode
}

# A whole number >= 0.
check_count <- function(x, arg, call) {
  if (!(length(x) == 1L && is_whole(x, 0))) {
    rk_abort(sprintf("`%s` must be a whole number >= 0%s, not %s.", arg, int_bound_note(x),
                     paste(deparse(x), collapse = "")), kind = "argument", call = call)
  }
  as.integer(x)
}

match_choice <- function(x, choices, arg, call) {
  if (!(is.character(x) && length(x) == 1L && x %in% choices)) {
    rk_abort(sprintf("`%s` must be one of %s, not %s.", arg,
                     paste0("\"", choices, "\"", collapse = ", "), paste(deparse(x), collapse = "")),
             kind = "argument", call = call)
  }
  x
}

# `current` beats `best` by more than `min_delta` in the monitor's direction.
is_improvement <- function(current, best, mode, min_delta = 0) {
  if (is.null(best)) return(TRUE)
  if (mode == "min") current + min_delta < best else current - min_delta > best
}

monitor_value <- function(logs, monitor, what) {
  v <- logs[[monitor]]
  if (is.null(v)) {
    warning(sprintf("%s is conditioned on metric `%s`, which is not available. Available metrics are: %s",
                    what, monitor, paste(names(logs), collapse = ",")), call. = FALSE)
  }
  v
}

#' Stop training when a monitored metric has stopped improving
#'
#' Keras's `EarlyStopping`: after each epoch, `monitor` (from the epoch's logs) is
#' compared with its best value so far; when it has not improved by more than
#' `min_delta` for `patience` epochs, training stops.
#'
#' @param monitor Name of the metric to watch, such as `"val_loss"` (the default) or
#'   `"val_accuracy"`.
#' @param min_delta Smallest change that counts as an improvement.
#' @param patience Epochs without improvement after which training stops.
#' @param verbose 0 (silent) or 1 (print when it stops).
#' @param mode `"min"`, `"max"`, or `"auto"` (the default): down for losses and errors,
#'   up for accuracies.
#' @param baseline Value the metric must beat; training stops after `patience` epochs
#'   without beating it.
#' @param restore_best_weights Whether to put back the weights of the best epoch when
#'   training ends (also when it ran all its epochs).
#' @param start_from_epoch Epochs to wait before watching.
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' x <- matrix(runif(400), ncol = 4)
#' y <- x %*% c(1, -1, 0.5, 0)
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(1)
#' model %>% compile(optimizer = "adam", loss = "mse")
#' history <- model %>% fit(x, y, epochs = 50, validation_split = 0.2, verbose = 0,
#'                          callbacks = list(callback_early_stopping(patience = 2)))
#' length(history$metrics$loss)
callback_early_stopping <- function(monitor = "val_loss", min_delta = 0, patience = 0,
                                    verbose = 0, mode = c("auto", "min", "max"),
                                    baseline = NULL, restore_best_weights = FALSE,
                                    start_from_epoch = 0) {
  call <- rk_user_call(environment())
  check_string(monitor, "monitor", call)
  mode <- match_choice(mode[1], c("auto", "min", "max"), "mode", call)
  check_number(min_delta, "min_delta", call)
  min_delta <- abs(min_delta)
  patience <- check_count(patience, "patience", call)
  start_from_epoch <- check_count(start_from_epoch, "start_from_epoch", call)
  if (!is.null(baseline)) check_number(baseline, "baseline", call)
  check_flag(restore_best_weights, "restore_best_weights", call)
  s <- new.env(parent = emptyenv())
  new_callback("early_stopping", list(
    on_train_begin = function(model) {
      s$dir <- monitor_op(monitor, mode, "callback_early_stopping()", call)
      s$wait <- 0L; s$stopped_epoch <- 0L; s$best <- NULL; s$best_weights <- NULL
      s$best_epoch <- 0L
    },
    on_epoch_end = function(model, epoch, logs) {
      current <- monitor_value(logs, monitor, "Early stopping")
      if (is.null(current) || epoch < start_from_epoch) return(list(logs = logs))
      if (restore_best_weights && is.null(s$best_weights)) {
        s$best_weights <- get_weights(model); s$best_epoch <- epoch
      }
      s$wait <- s$wait + 1L
      if (is_improvement(current, s$best, s$dir, min_delta)) {
        s$best <- current; s$best_epoch <- epoch
        if (restore_best_weights) s$best_weights <- get_weights(model)
        if (is.null(baseline) || is_improvement(current, baseline, s$dir, min_delta)) s$wait <- 0L
        return(list(logs = logs))
      }
      if (s$wait >= patience && epoch > 0) {
        s$stopped_epoch <- epoch
        return(list(logs = logs, stop = TRUE))
      }
      list(logs = logs)
    },
    on_train_end = function(model) {
      if (s$stopped_epoch > 0 && verbose > 0) cat(sprintf("Epoch %d: early stopping\n", s$stopped_epoch + 1L))
      if (restore_best_weights && !is.null(s$best_weights)) {
        if (verbose > 0) {
          cat(sprintf("Restoring model weights from the end of the best epoch: %d.\n", s$best_epoch + 1L))
        }
        set_weights(model, s$best_weights)
      }
    }
  ))
}

#' Reduce the learning rate when a metric has stopped improving
#'
#' Keras's `ReduceLROnPlateau`: when `monitor` has not improved by more than
#' `min_delta` for `patience` epochs, the optimizer's learning rate is multiplied by
#' `factor` (not below `min_lr`), then `cooldown` epochs pass before watching again. The
#' learning rate of each epoch joins the history as `learning_rate`.
#'
#' @inheritParams callback_early_stopping
#' @param factor Factor applied to the learning rate, in (0, 1).
#' @param cooldown Epochs to wait after a reduction.
#' @param min_lr Lower bound on the learning rate.
#' @param ... Unused.
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' cb <- callback_reduce_lr_on_plateau(monitor = "loss", factor = 0.5, patience = 2)
callback_reduce_lr_on_plateau <- function(monitor = "val_loss", factor = 0.1, patience = 10,
                                          verbose = 0, mode = c("auto", "min", "max"),
                                          min_delta = 1e-4, cooldown = 0, min_lr = 0, ...) {
  call <- rk_user_call(environment())
  check_string(monitor, "monitor", call)
  mode <- match_choice(mode[1], c("auto", "min", "max"), "mode", call)
  check_number(factor, "factor", call)
  if (factor >= 1 || factor <= 0) {
    rk_abort(sprintf("`factor` must be in (0, 1), not %s.", format(factor)), kind = "argument", call = call)
  }
  patience <- check_count(patience, "patience", call)
  cooldown <- check_count(cooldown, "cooldown", call)
  check_number(min_delta, "min_delta", call)
  min_delta <- abs(min_delta)
  check_number(min_lr, "min_lr", call)
  s <- new.env(parent = emptyenv())
  new_callback("reduce_lr_on_plateau", list(
    on_train_begin = function(model) {
      s$dir <- monitor_op(monitor, mode, "callback_reduce_lr_on_plateau()", call)
      s$best <- NULL; s$cooldown_counter <- 0L; s$wait <- 0L
    },
    on_epoch_end = function(model, epoch, logs) {
      lr <- rk_call(rk_model_learning_rate(model$ptr))
      logs$learning_rate <- lr
      current <- monitor_value(logs, monitor, "Learning rate reduction")
      if (is.null(current)) return(list(logs = logs))
      if (s$cooldown_counter > 0) { s$cooldown_counter <- s$cooldown_counter - 1L; s$wait <- 0L }
      if (is_improvement(current, s$best, s$dir, min_delta)) {
        s$best <- current; s$wait <- 0L
      } else if (s$cooldown_counter <= 0) {
        s$wait <- s$wait + 1L
        if (s$wait >= patience && lr > min_lr) {
          new_lr <- max(lr * factor, min_lr)
          rk_call(rk_model_set_learning_rate(model$ptr, new_lr))
          if (verbose > 0) {
            cat(sprintf("\nEpoch %d: ReduceLROnPlateau reducing learning rate to %s.\n",
                        epoch + 1L, format(new_lr, digits = 15)))
          }
          s$cooldown_counter <- cooldown; s$wait <- 0L
        }
      }
      list(logs = logs)
    }
  ))
}

#' Save the model (or its weights) during training
#'
#' Keras's `ModelCheckpoint`: after each epoch, saves the model to `filepath`, or only
#' when `monitor` improved (`save_best_only = TRUE`). `filepath` may hold Keras's fields,
#' filled in from the epoch (1-based) and its logs: `"ckpt/model-{epoch:02d}-{val_loss:.2f}.keras"`.
#' A path ending in `.keras` is saved with [save_model()], `.h5` with
#' [save_model_hdf5()]; with `save_weights_only = TRUE` it must end in `.weights.h5`
#' ([save_model_weights_hdf5()]). Missing folders are created.
#'
#' @inheritParams callback_early_stopping
#' @param filepath Where to save, with optional `{epoch}` / `{metric:format}` fields.
#' @param save_best_only Save only when `monitor` improves.
#' @param save_weights_only Save only the weights.
#' @param save_freq Only `"epoch"` is supported.
#' @param initial_value_threshold Value `monitor` must beat for the first save.
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' path <- file.path(tempdir(), "best.keras")
#' cb <- callback_model_checkpoint(path, monitor = "val_loss", save_best_only = TRUE)
callback_model_checkpoint <- function(filepath, monitor = "val_loss", verbose = 0,
                                      save_best_only = FALSE, save_weights_only = FALSE,
                                      mode = c("auto", "min", "max"), save_freq = "epoch",
                                      initial_value_threshold = NULL) {
  call <- rk_user_call(environment())
  filepath <- check_path(filepath, call)
  check_string(monitor, "monitor", call)
  mode <- match_choice(mode[1], c("auto", "min", "max"), "mode", call)
  check_flag(save_best_only, "save_best_only", call)
  check_flag(save_weights_only, "save_weights_only", call)
  if (!identical(save_freq, "epoch")) {
    rk_abort("`save_freq` must be \"epoch\"; saving every n batches is not supported yet.",
             kind = "argument", call = call)
  }
  if (save_weights_only && !grepl("\\.weights\\.h5$", filepath)) {
    rk_abort(sprintf("With `save_weights_only = TRUE`, `filepath` must end in .weights.h5, not '%s'.",
                     filepath), kind = "argument", call = call)
  }
  if (!save_weights_only && !grepl("\\.(keras|h5)$", filepath)) {
    rk_abort(sprintf("`filepath` must end in .keras or .h5 (or .weights.h5 with `save_weights_only = TRUE`), not '%s'.",
                     filepath), kind = "argument", call = call)
  }
  s <- new.env(parent = emptyenv())
  new_callback("model_checkpoint", list(
    on_train_begin = function(model) {
      s$dir <- if (save_best_only) monitor_op(monitor, mode, "callback_model_checkpoint()", call)
      s$best <- initial_value_threshold
    },
    on_epoch_end = function(model, epoch, logs) {
      path <- format_checkpoint_path(filepath, epoch + 1L, logs, call)
      save <- TRUE
      if (save_best_only) {
        current <- logs[[monitor]]
        if (is.null(current)) {
          warning(sprintf("Can save best model only with %s available.", monitor), call. = FALSE)
        } else {
          best_str <- if (is.null(s$best)) "None" else sprintf("%.5f", s$best)
          if (is_improvement(current, s$best, s$dir)) {
            if (verbose > 0) {
              cat(sprintf("\nEpoch %d: %s improved from %s to %.5f, saving model to %s\n",
                          epoch + 1L, monitor, best_str, current, path))
            }
            s$best <- current
          } else {
            if (verbose > 0) cat(sprintf("\nEpoch %d: %s did not improve from %s\n", epoch + 1L, monitor, best_str))
            save <- FALSE
          }
        }
      } else if (verbose > 0) {
        cat(sprintf("\nEpoch %d: saving model to %s\n", epoch + 1L, path))
      }
      if (save) {
        dir.create(dirname(path), showWarnings = FALSE, recursive = TRUE)
        if (save_weights_only) {
          save_model_weights_hdf5(model, path, overwrite = TRUE)
        } else if (grepl("\\.h5$", path)) {
          save_model_hdf5(model, path, overwrite = TRUE)
        } else {
          save_model(model, path, overwrite = TRUE)
        }
      }
      list(logs = logs)
    }
  ))
}

# Keras's filepath fields: `{epoch}`, `{epoch:02d}`, `{val_loss:.2f}`, ... (Python's
# format mini-language for d, f, e, g with width and precision).
format_checkpoint_path <- function(template, epoch, logs, call) {
  values <- c(list(epoch = epoch), logs)
  fields <- regmatches(template, gregexpr("\\{[^{}]+\\}", template))[[1]]
  for (f in fields) {
    inner <- substr(f, 2L, nchar(f) - 1L)
    parts <- strsplit(inner, ":", fixed = TRUE)[[1]]
    key <- parts[1]
    if (is.null(values[[key]])) {
      rk_abort(sprintf("`filepath` uses {%s}, which is not in the epoch's logs (%s).", key,
                       paste(names(values), collapse = ", ")), kind = "argument", call = call)
    }
    spec <- if (length(parts) > 1L) parts[2] else if (key == "epoch") "d" else "g"
    if (!grepl("^0?[0-9]*(\\.[0-9]+)?[dfeg]$", spec)) {
      rk_abort(sprintf("`filepath` field {%s} has a format rustkeras does not read.", inner),
               kind = "argument", call = call)
    }
    v <- values[[key]]
    if (grepl("d$", spec)) v <- as.integer(round(v))
    regmatches(template, regexpr(f, template, fixed = TRUE)) <- sprintf(paste0("%", spec), v)
  }
  template
}

#' Stream the epoch results to a CSV file
#'
#' Keras's `CSVLogger`: one row per epoch with `epoch` (0-based, as Keras writes it) and
#' every log, in alphabetical order.
#'
#' @param filename Path of the CSV file.
#' @param separator Field separator.
#' @param append Whether to append to an existing file (and not write the header again).
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' cb <- callback_csv_logger(file.path(tempdir(), "training.csv"))
callback_csv_logger <- function(filename, separator = ",", append = FALSE) {
  call <- rk_user_call(environment())
  filename <- check_path(filename, call, "filename")
  check_string(separator, "separator", call)
  check_flag(append, "append", call)
  s <- new.env(parent = emptyenv())
  new_callback("csv_logger", list(
    on_train_begin = function(model) {
      s$header <- !(append && file.exists(filename) && file.size(filename) > 0)
      if (!append) unlink(filename)
      s$keys <- NULL
    },
    on_epoch_end = function(model, epoch, logs) {
      if (is.null(s$keys)) {
        s$keys <- sort(names(logs))
        if (!any(startsWith(s$keys, "val_")) && length(s$keys)) s$keys <- c(s$keys, paste0("val_", s$keys))
      }
      row <- vapply(s$keys, function(k) if (is.null(logs[[k]])) "NA" else py_float(logs[[k]]),
                    character(1))
      lines <- paste(c(epoch, row), collapse = separator)
      if (s$header) {
        lines <- c(paste(c("epoch", s$keys), collapse = separator), lines)
        s$header <- FALSE
      }
      cat(lines, file = filename, sep = "\n", append = TRUE)
      list(logs = logs)
    }
  ))
}

# A number as Python's repr() writes it: the shortest decimal that reads back the same.
py_float <- function(x) {
  for (d in 15:17) {
    s <- formatC(x, digits = d, format = "g")
    if (as.numeric(s) == x) break
  }
  trimws(s)
}

#' Set the learning rate at the start of each epoch
#'
#' Keras's `LearningRateScheduler`: before each epoch, `schedule(epoch, lr)` (epoch
#' 0-based, as in Keras; `lr` the current rate) gives the learning rate to use. The rate
#' of each epoch joins the history as `learning_rate`.
#'
#' @param schedule A function of the epoch index (from 0) and the current learning rate
#'   that returns the new learning rate.
#' @param verbose 0 (silent) or 1 (print each change).
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' cb <- callback_learning_rate_scheduler(function(epoch, lr) if (epoch < 5) lr else lr * 0.9)
callback_learning_rate_scheduler <- function(schedule, verbose = 0) {
  call <- rk_user_call(environment())
  if (!is.function(schedule)) {
    rk_abort("`schedule` must be a function(epoch, lr).", kind = "argument", call = call)
  }
  new_callback("learning_rate_scheduler", list(
    on_epoch_begin = function(model, epoch) {
      lr <- rk_call(rk_model_learning_rate(model$ptr))
      new_lr <- schedule(epoch, lr)
      if (!(is.numeric(new_lr) && length(new_lr) == 1L && is.finite(new_lr) && new_lr >= 0)) {
        rk_abort(sprintf("The learning-rate schedule must return one number >= 0, not %s.",
                         paste(deparse(new_lr), collapse = "")), kind = "argument", call = call)
      }
      rk_call(rk_model_set_learning_rate(model$ptr, as.numeric(new_lr)))
      if (verbose > 0) {
        cat(sprintf("\nEpoch %d: LearningRateScheduler setting learning rate to %s.\n",
                    epoch + 1L, format(new_lr, digits = 15)))
      }
    },
    on_epoch_end = function(model, epoch, logs) {
      logs$learning_rate <- rk_call(rk_model_learning_rate(model$ptr))
      list(logs = logs)
    }
  ))
}

#' Run your own functions during training
#'
#' Keras's `LambdaCallback`: functions called at the start and end of training and of
#' each epoch. `epoch` is 0-based, as in Keras; `logs` is a named list of the epoch's
#' metrics.
#'
#' @param on_epoch_begin `function(epoch, logs)`, or `NULL`.
#' @param on_epoch_end `function(epoch, logs)`, or `NULL`.
#' @param on_train_begin `function(logs)`, or `NULL`.
#' @param on_train_end `function(logs)`, or `NULL`.
#' @param on_batch_begin,on_batch_end,on_train_batch_begin,on_train_batch_end Not
#'   supported yet; must be `NULL`.
#' @param ... Unused.
#' @returns A callback for `fit(callbacks = list(...))`.
#' @export
#' @examples
#' cb <- callback_lambda(on_epoch_end = function(epoch, logs) cat("epoch", epoch, "\n"))
callback_lambda <- function(on_epoch_begin = NULL, on_epoch_end = NULL, on_train_begin = NULL,
                            on_train_end = NULL, on_batch_begin = NULL, on_batch_end = NULL,
                            on_train_batch_begin = NULL, on_train_batch_end = NULL, ...) {
  call <- rk_user_call(environment())
  check_unsupported_null(list(on_batch_begin = on_batch_begin, on_batch_end = on_batch_end,
                              on_train_batch_begin = on_train_batch_begin,
                              on_train_batch_end = on_train_batch_end), call)
  fns <- list(on_epoch_begin = on_epoch_begin, on_epoch_end = on_epoch_end,
              on_train_begin = on_train_begin, on_train_end = on_train_end)
  for (arg in names(fns)) {
    if (!is.null(fns[[arg]]) && !is.function(fns[[arg]])) {
      rk_abort(sprintf("`%s` must be a function or NULL.", arg), kind = "argument", call = call)
    }
  }
  new_callback("lambda", list(
    on_train_begin = function(model) if (!is.null(on_train_begin)) on_train_begin(list()),
    on_epoch_begin = function(model, epoch) if (!is.null(on_epoch_begin)) on_epoch_begin(epoch, list()),
    on_epoch_end = function(model, epoch, logs) {
      if (!is.null(on_epoch_end)) on_epoch_end(epoch, logs)
      list(logs = logs)
    },
    on_train_end = function(model) if (!is.null(on_train_end)) on_train_end(list())
  ))
}

check_callbacks <- function(callbacks, call) {
  if (inherits(callbacks, "rustkeras_callback")) callbacks <- list(callbacks)
  if (!is.list(callbacks) || !all(vapply(callbacks, inherits, logical(1), "rustkeras_callback"))) {
    rk_abort("`callbacks` must be a list of callbacks from callback_*() functions.",
             kind = "argument", call = call)
  }
  callbacks
}

# fit() with callbacks: one engine call per epoch, the hooks in between. Returns the
# epochs' logs as one list of metric vectors, and whether the user interrupted.
fit_with_callbacks <- function(model, callbacks, run_epoch, initial_epoch, epochs) {
  for (cb in callbacks) if (!is.null(cb$on_train_begin)) cb$on_train_begin(model)
  metrics <- list()
  interrupted <- FALSE
  for (epoch in seq.int(initial_epoch, length.out = max(0L, epochs - initial_epoch + 1L))) {
    for (cb in callbacks) if (!is.null(cb$on_epoch_begin)) cb$on_epoch_begin(model, epoch - 1L)
    res <- run_epoch(epoch)
    if (isTRUE(res$interrupted) && !length(res$metrics[[1]])) {
      interrupted <- TRUE
      break
    }
    logs <- lapply(res$metrics, function(v) v[[length(v)]])
    stop <- FALSE
    for (cb in callbacks) {
      if (is.null(cb$on_epoch_end)) next
      out <- cb$on_epoch_end(model, epoch - 1L, logs)
      logs <- out$logs
      stop <- stop || isTRUE(out$stop)
    }
    for (k in union(names(metrics), names(logs))) {
      metrics[[k]] <- c(metrics[[k]] %||% rep(NA_real_, epoch - initial_epoch), logs[[k]] %||% NA_real_)
    }
    if (isTRUE(res$interrupted)) {
      interrupted <- TRUE
      break
    }
    if (stop) break
  }
  for (cb in callbacks) if (!is.null(cb$on_train_end)) cb$on_train_end(model)
  list(metrics = metrics, interrupted = interrupted)
}
