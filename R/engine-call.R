# Every call into the Rust engine goes through rk_call().
#
# How failures travel (see also src/rust/rbind/src/lib.rs):
#
# * Rust never raises an R error: that would longjmp over Rust frames and skip their
#   destructors. An export that can fail returns `RkResult<T>`; with extendr-api's
#   `result_list` feature the generated wrapper hands back
#   `structure(list(ok = value, err = NULL), class = "extendr_result")` or
#   `list(ok = NULL, err = list(message = , kind = ))`.
# * rk_call() unwraps `ok`, or raises a condition of class
#   c("rustkeras_<kind>_error", "rustkeras_error", "error", "condition") whose call is the
#   user's (`Error in fit(): layer 'dense_1' expects 784 features, got 28`), never
#   `Error in .Call(...)`.
# * A Rust panic is a bug: extendr catches the unwind and signals a plain R error from the
#   wrapper (the panic hook installed in src/entrypoint.c keeps it off the console).
#   rk_call() re-raises it as a "rustkeras_panic_error" asking for a bug report.
# * Errors raised in R while the arguments are evaluated pass through unchanged.
#
# Usage, inside an exported function or S3 method:
#     fit.rustkeras_model <- function(object, x, y, ...) {
#       ...
#       res <- rk_call(rk_model_fit(object$ptr, x, y))
#     }
# `call` defaults to the caller's call, shortened to its function name (the generic's name
# inside an S3 method); pass `call = ` from a helper to report its caller instead.

rk_call <- function(expr, call = rk_user_call(parent.frame())) {
  res <- withCallingHandlers(expr, error = function(e) {
    if (rk_signalled_by_native_code(sys.calls())) rk_abort_internal(e, call)
  })
  if (inherits(res, "extendr_result")) {
    err <- res[["err"]]
    if (!is.null(err)) {
      if (identical(err[["kind"]], "interrupt")) rk_interrupt()
      rk_abort(err[["message"]], kind = err[["kind"]], call = call)
    }
    return(res[["ok"]])
  }
  res
}

# Signals a rustkeras_error condition; also for R code that checks arguments.
rk_abort <- function(message, kind = "engine", call = rk_user_call(parent.frame())) {
  classes <- c("rustkeras_error", "error", "condition")
  if (!is.null(kind) && nzchar(kind) && kind != "engine") {
    classes <- c(paste0("rustkeras_", kind, "_error"), classes)
  }
  cnd <- structure(
    class = classes,
    list(message = paste(message, collapse = "\n"), call = call, kind = kind)
  )
  stop(cnd)
}

# Raises R's interrupt after the engine stopped at a user's Ctrl-C (or Esc): handlers
# for "interrupt" conditions run (`tryCatch(interrupt = )`), and with none the evaluation
# stops as R's own interrupt stops it (back to the prompt; a script ends). `data` (such as
# the history so far) travels with the condition.
rk_interrupt <- function(data = list()) {
  cnd <- structure(class = c("interrupt", "condition"),
                   c(list(message = "", call = NULL), data))
  signalCondition(cnd)
  invokeRestart("abort")
}

# The call a user typed, short: `fit()` rather than `fit.rustkeras_model(., x, y, ...)`.
rk_user_call <- function(frame) {
  generic <- get0(".Generic", envir = frame, inherits = FALSE)
  if (is.character(generic) && length(generic) == 1L) {
    return(as.call(list(as.name(generic))))
  }
  call <- NULL
  for (i in rev(seq_len(sys.nframe()))) {
    if (identical(sys.frame(i), frame)) {
      call <- sys.call(i)
      break
    }
  }
  if (is.null(call) || !is.name(call[[1L]])) {
    return(call)
  }
  as.call(list(call[[1L]]))
}

# An error signalled by the native code of a generated wrapper is a panic that extendr
# caught (or an argument Rust could not convert): a bug of ours, never the user's input.
rk_abort_internal <- function(e, call) {
  rk_abort(
    c(
      paste0("Internal error in the Rust engine: ", conditionMessage(e)),
      "This is a bug in rustkeras; please report it with the code that triggered it."
    ),
    kind = "panic",
    call = call
  )
}

# `calls` is sys.calls() inside a calling handler. An error raised from C (Rf_error) or by
# stop() reaches R's handlers through .handleSimpleError(); the frame below that one is
# where it was raised: the generated wrapper itself (or `.Call(...)` when not byte-compiled)
# for native code, `stop(...)` or the like for R code (including R code run while .Call
# forces a lazy argument).
rk_signalled_by_native_code <- function(calls) {
  is_handler <- vapply(calls, function(cl) identical(cl[[1L]], as.name(".handleSimpleError")),
                       logical(1))
  i <- max(c(0L, which(is_handler)))
  i > 1L && rk_is_wrapper_call(calls[[i - 1L]])
}

# TRUE for a call to a generated wrapper (a function of R/extendr-wrappers.R, whose body is
# `.Call(wrap__...)`), written plainly or as rustkeras:::name, or to .Call itself.
rk_is_wrapper_call <- function(call) {
  if (!is.call(call)) {
    return(FALSE)
  }
  fun <- call[[1L]]
  if (is.call(fun) && length(fun) == 3L && as.character(fun[[1L]]) %in% c("::", ":::")) {
    fun <- fun[[3L]]
  }
  if (!is.name(fun)) {
    return(FALSE)
  }
  name <- as.character(fun)
  if (identical(name, ".Call")) {
    return(TRUE)
  }
  fn <- get0(name, envir = asNamespace("rustkeras"), mode = "function", inherits = FALSE)
  if (is.null(fn)) {
    return(FALSE)
  }
  b <- body(fn)
  while (is.call(b) && identical(b[[1L]], as.name("invisible"))) b <- b[[2L]]
  is.call(b) && identical(b[[1L]], as.name(".Call"))
}
