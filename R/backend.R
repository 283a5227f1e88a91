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
#' level of the CPU kernels, the device models run on, and what this machine offers for
#' CUDA: the NVIDIA driver, each GPU (name, memory, compute capability) and the libraries
#' the GPU backend loads at run time (cuBLAS, cuDNN, NVRTC), or why a GPU is not usable.
#'
#' The engine uses all cores by default; set `options(rustkeras.threads = n)` before
#' `library(rustkeras)` to use `n` threads (the pool is sized once per session).
#'
#' @returns `config_backend()`: a string. `backend_info()`: a list of class
#'   `rustkeras_backend_info`, printed as a short report; its `gpus` element is a data
#'   frame with a row per GPU.
#' @seealso [config_set_device()]
#' @export
#' @examples
#' config_backend()
#' backend_info()
config_backend <- function() "rust"

#' @rdname config_backend
#' @export
backend_info <- function() {
  info <- rk_backend_info()
  p <- rk_gpu_probe()
  info$device <- config_device()
  info$gpu_usable <- isTRUE(p$usable)
  info$gpu_reason <- if (info$gpu_usable) NA_character_ else p$reason
  info$gpus <- data.frame(
    ordinal = as.integer(p$ordinal),
    name = as.character(p$name),
    memory_gib = round(as.numeric(p$memory) / 2^30, 1),
    compute_capability = as.character(p$compute_capability),
    stringsAsFactors = FALSE
  )
  info$driver <- p$driver
  info$cublas <- p$cublas
  info$cudnn <- p$cudnn
  info$nvrtc <- p$nvrtc
  structure(info, class = "rustkeras_backend_info")
}

#' @export
print.rustkeras_backend_info <- function(x, ...) {
  cat(sprintf("rustkeras engine %s (Rust)\n", x$version))
  cat(sprintf("  CPU:     %d thread%s, %s kernels\n", x$threads, if (x$threads == 1) "" else "s", x$simd))
  for (i in seq_len(nrow(x$gpus))) {
    g <- x$gpus[i, ]
    cat(sprintf("  GPU %d:   %s, %.1f GiB, compute capability %s\n", g$ordinal, g$name,
                g$memory_gib, g$compute_capability))
  }
  if (!is.na(x$driver)) {
    v <- function(name, value) paste(name, if (is.na(value)) "not found" else value)
    cat(sprintf("  CUDA:    %s, %s, %s, %s\n", v("driver", x$driver), v("cuBLAS", x$cublas),
                v("cuDNN", x$cudnn), v("NVRTC", x$nvrtc)))
  }
  if (!x$gpu_usable) cat(sprintf("  GPU not usable: %s\n", x$gpu_reason))
  cat(sprintf("  models run on the %s\n", toupper(x$device)))
  invisible(x)
}

#' Choose the device models run on
#'
#' `config_set_device("gpu")` makes `fit()`, `evaluate()` and `predict()` run on the first
#' usable NVIDIA GPU, `config_set_device("cpu")` on the CPU. A model's weights move to the
#' chosen device at its next `fit()`, `evaluate()` or `predict()`, and stay there between
#' calls. `config_device()` says which device that is.
#'
#' The choice is the option `rustkeras.device` (`"gpu"`, `"cpu"` or `"auto"`), which
#' `config_set_device()` sets; where it is unset, the environment variable
#' `RUSTKERAS_DEVICE` is read, for scripts. `"auto"`, the default, is the GPU when one is
#' usable and the CPU otherwise. Nothing is loaded from CUDA until a GPU is asked for or
#' `"auto"` looks for one, and nothing about CUDA is printed unless a GPU is asked for.
#'
#' On the GPU, matrix products use full float32 precision so that results match the CPU;
#' `options(rustkeras.tf32 = TRUE)` lets them use TensorFloat-32 (faster on recent GPUs,
#' about 3 decimal digits).
#'
#' @param device `"gpu"`, `"cpu"` or `"auto"`.
#' @returns `config_set_device()`: the previous setting, invisibly. `config_device()`:
#'   `"gpu"` or `"cpu"`.
#' @seealso [backend_info()] for what this machine offers and why a GPU is not usable.
#' @export
#' @examples
#' config_device()
#' old <- config_set_device("cpu")
#' config_device()
#' options(rustkeras.device = old)
config_set_device <- function(device = c("gpu", "cpu", "auto")) {
  call <- rk_user_call(environment())
  device <- check_device(device, "`device`", call)
  if (identical(device, "gpu") && !rk_gpu_usable()) {
    rk_abort(c(sprintf("`device = \"gpu\"`: no usable GPU: %s.", rk_gpu_probe()$reason),
               "See backend_info()."), kind = "argument", call = call)
  }
  old <- getOption("rustkeras.device")
  options(rustkeras.device = device)
  invisible(old)
}

#' @rdname config_set_device
#' @export
config_device <- function() {
  rk_resolved_device(rk_user_call(environment()))
}

check_device <- function(device, what, call) {
  if (length(device) > 1L) device <- device[[1L]]
  if (!(is.character(device) && length(device) == 1L && !is.na(device) &&
        tolower(device) %in% c("gpu", "cpu", "auto"))) {
    shown <- if (is.character(device)) sprintf("\"%s\"", device) else deparse(device)
    rk_abort(sprintf("%s must be \"gpu\", \"cpu\" or \"auto\", not %s.", what, shown),
             kind = "argument", call = call)
  }
  tolower(device)
}

# "gpu" or "cpu": the option, else the environment variable, else "auto".
rk_resolved_device <- function(call) {
  choice <- getOption("rustkeras.device")
  what <- "options(rustkeras.device)"
  if (is.null(choice)) {
    choice <- Sys.getenv("RUSTKERAS_DEVICE")
    if (!nzchar(choice)) choice <- "auto"
    what <- "RUSTKERAS_DEVICE"
  }
  choice <- check_device(choice, what, call)
  if (identical(choice, "auto")) choice <- if (rk_gpu_usable()) "gpu" else "cpu"
  choice
}

# Puts a model on the chosen device before it runs (a no-op when it is there).
rk_place_model <- function(object, call) {
  device <- rk_resolved_device(call)
  rk_call(rk_model_set_device(object$ptr, device, isTRUE(getOption("rustkeras.tf32"))),
          call = call)
  invisible(device)
}

.onLoad <- function(libname, pkgname) {
  # rayon's pool is sized once per session; option rustkeras.threads (default: all cores).
  threads <- suppressWarnings(as.integer(getOption("rustkeras.threads", 0L))[1])
  # Anything but a count (NA, a word, a negative number) means all cores.
  if (is.na(threads) || threads < 0L) threads <- 0L
  rk_init_threads(threads)
  invisible()
}
