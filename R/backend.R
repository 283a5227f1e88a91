#' Make training repeatable
#'
#' Seeds R's random generator and the engine's, so that weight initialisation,
#' shuffling and dropout repeat from run to run, as keras3's `set_random_seed()` does.
#'
#' @param seed An integer seed.
#' @returns `NULL`, invisibly.
#' @export
#' @examples
#' set_random_seed(42)
#' a <- get_weights(keras_model_sequential(input_shape = 2) %>% layer_dense(1))
#' set_random_seed(42)
#' b <- get_weights(keras_model_sequential(input_shape = 2) %>% layer_dense(1))
#' identical(a, b)
set_random_seed <- function(seed) {
  if (!(is.numeric(seed) && length(seed) == 1L && is.finite(seed) && seed >= 0)) {
    rk_abort("`seed` must be a single non-negative number.", kind = "argument")
  }
  set.seed(seed)
  rk_set_random_seed(as.numeric(seed))
  invisible(NULL)
}

#' The engine behind the API
#'
#' `config_backend()` names the backend, as keras3's does (`"rust"` here).
#' `backend_info()` reports the engine version, the number of threads, the SIMD
#' level of the CPU kernels and whether a CUDA device is usable.
#'
#' The engine uses all cores by default; set `options(rustkeras.threads = n)` before
#' `library(rustkeras)` to use `n` threads (the pool is sized once per session).
#'
#' @returns `config_backend()`: a string. `backend_info()`: a list of class
#'   `rustkeras_backend_info`, printed as a short report.
#' @export
#' @examples
#' config_backend()
#' backend_info()
config_backend <- function() "rust"

#' @rdname config_backend
#' @export
backend_info <- function() {
  info <- rk_backend_info()
  info$cuda <- FALSE
  info$cuda_note <- "this build has no CUDA backend yet; training runs on the CPU"
  structure(info, class = "rustkeras_backend_info")
}

#' @export
print.rustkeras_backend_info <- function(x, ...) {
  cat(sprintf("rustkeras engine %s (Rust)\n", x$version))
  cat(sprintf("  device:  CPU, %d thread%s, %s kernels\n", x$threads, if (x$threads == 1) "" else "s", x$simd))
  cat(sprintf("  CUDA:    %s\n", if (isTRUE(x$cuda)) "available" else paste("not available:", x$cuda_note)))
  invisible(x)
}

.onLoad <- function(libname, pkgname) {
  # rayon's pool is sized once per session; option rustkeras.threads (default: all cores).
  threads <- getOption("rustkeras.threads", 0L)
  rk_init_threads(as.integer(threads))
  invisible()
}
