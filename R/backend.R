#' Make training repeatable
#'
#' Seeds R's random generator and the engine's, so that weight initialisation,
#' shuffling and dropout repeat from run to run, as keras3's `set_random_seed()` does.
#'
#' `set.seed()` alone does the same: the engine takes each seed it needs (a layer's
#' initial weights, a `fit()`'s shuffles and dropout masks) from R's random stream, two
#' draws at a time, as `sample()` would. The shuffles and dropout masks of a seed are the
#' same whatever the number of threads (each sample has a stream of its own).
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
#' The engine uses all cores by default; `config_set_threads(n)` or
#' `options(rustkeras.threads = n)` makes it use `n` threads from the next `fit()`,
#' `evaluate()` or `predict()` on. The engine keeps large buffers between batches and
#' calls for reuse, up to `options(rustkeras.pool_mb)` megabytes (by default 1/32 of the
#' machine's memory, from 256 MB to 2 GiB), and gives them back to the system two seconds
#' after the last `fit()`, `evaluate()` or `predict()`. A forked child (`parallel::mclapply()`,
#' `parallel::mcparallel()`, `future::multicore`, `foreach` with `doParallel` on Unix)
#' starts threads of its own: models train and predict there as in the parent.
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
  rk_sync_options()
  info <- rk_backend_info()
  p <- rk_gpu_probe()
  # No warning about a failed self-check here: the report itself gives the reason.
  info$device <- rk_resolved_device(rk_user_call(environment()), warn = FALSE)
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
  cat(sprintf("  Memory:  buffer pool up to %.0f MB, %.0f MB held\n", x$pool_mb, x$pool_held_mb))
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
#' `"auto"` looks for one, and nothing about CUDA is printed unless a GPU is asked for (or
#' fails its self-check, below).
#'
#' The first time a process uses a GPU, it checks the GPU against the CPU: a few small
#' problems (matrix products through cuBLAS, the activation, bias, softmax and reduction
#' kernels, a convolution and pooling) on both, which must agree to float32 rounding.
#' That takes a few milliseconds. A GPU that fails is not used: `"auto"` then means the
#' CPU (with a warning, once per session), `config_set_device("gpu")` is an error, and
#' `backend_info()` says which check failed and by how much.
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

# "gpu" or "cpu": the option, else the environment variable, else "auto". When "auto"
# means the CPU because the GPU failed its self-check, a warning says so (`warn`), once
# per session.
rk_resolved_device <- function(call, warn = TRUE) {
  choice <- getOption("rustkeras.device")
  what <- "options(rustkeras.device)"
  if (is.null(choice)) {
    choice <- Sys.getenv("RUSTKERAS_DEVICE")
    if (!nzchar(choice)) choice <- "auto"
    what <- "RUSTKERAS_DEVICE"
  }
  choice <- check_device(choice, what, call)
  if (identical(choice, "auto")) {
    choice <- if (rk_gpu_usable()) "gpu" else "cpu"
    if (warn && identical(choice, "cpu")) rk_warn_gpu_selfcheck(call)
  }
  choice
}

# Warns, the first time in the session, that the GPU failed its self-check and models
# run on the CPU; nothing where there is no GPU (the CPU is then the plain choice).
rk_warn_gpu_selfcheck <- function(call) {
  if (isTRUE(.rk_session$gpu_selfcheck_warned)) return(invisible())
  why <- rk_gpu_selfcheck_failure()
  if (is.na(why)) return(invisible())
  .rk_session$gpu_selfcheck_warned <- TRUE
  msg <- sprintf("%s%s.\nModels run on the CPU; see backend_info().",
                 toupper(substr(why, 1L, 1L)), substring(why, 2L))
  warning(structure(class = c("rustkeras_gpu_warning", "warning", "condition"),
                    list(message = msg, call = call)))
}

# Before a model runs: the engine's threads follow `options(rustkeras.threads)`, and the
# model goes to the chosen device (a no-op when it is there).
rk_place_model <- function(object, call) {
  rk_sync_options()
  device <- rk_resolved_device(call)
  rk_call(rk_model_set_device(object$ptr, device, isTRUE(getOption("rustkeras.tf32"))),
          call = call)
  invisible(device)
}

#' Set the number of threads the engine uses
#'
#' `config_set_threads(n)` makes `fit()`, `evaluate()` and `predict()` run on `n`
#' threads from their next call on; `NULL` (or 0) means every core. It sets the option
#' `rustkeras.threads`, which is read at each call, so `options(rustkeras.threads = n)`
#' works too, before or after `library(rustkeras)`. `config_threads()` says how many
#' threads the engine uses now.
#'
#' @param threads A positive whole number, or `NULL` for every core.
#' @returns `config_set_threads()`: the previous setting (`NULL` for every core),
#'   invisibly. `config_threads()`: an integer.
#' @seealso [backend_info()]
#' @export
#' @examples
#' old <- config_set_threads(1)
#' config_threads()
#' config_set_threads(old)
config_set_threads <- function(threads = NULL) {
  if (!is.null(threads)) {
    ok <- is.numeric(threads) && length(threads) == 1L && !is.na(threads) &&
      threads >= 0 && threads == floor(threads) && threads < 2^15
    if (!ok) {
      rk_abort(sprintf("`threads` must be NULL or a whole number from 0 to 32767, not %s.",
                       paste(format(threads), collapse = ", ")), kind = "argument")
    }
    if (threads == 0) threads <- NULL
  }
  old <- getOption("rustkeras.threads")
  options(rustkeras.threads = if (is.null(threads)) NULL else as.integer(threads))
  rk_sync_options()
  invisible(old)
}

#' @rdname config_set_threads
#' @export
config_threads <- function() {
  rk_sync_options()
  rk_backend_info()$threads
}

# The thread count the option asks for; anything but a count (NA, a word, a negative
# number) means every core (0).
rk_threads_option <- function() {
  threads <- getOption("rustkeras.threads")
  if (is.null(threads)) return(0L)
  threads <- suppressWarnings(as.integer(threads)[1])
  if (is.na(threads) || threads < 0L) 0L else threads
}

# The buffer pool's cap in MB that `options(rustkeras.pool_mb)` asks for; 0 (and anything
# but a positive number) means the machine's default.
rk_pool_mb_option <- function() {
  mb <- getOption("rustkeras.pool_mb")
  if (is.null(mb)) return(0)
  mb <- suppressWarnings(as.numeric(mb)[1])
  if (is.na(mb) || mb <= 0) 0 else mb
}

# Tells the engine the options' thread count and pool cap when they changed since last
# time; called before each fit(), evaluate() and predict().
rk_sync_options <- function() {
  threads <- rk_threads_option()
  if (!identical(.rk_session$threads, threads)) {
    rk_set_threads(threads)
    .rk_session$threads <- threads
  }
  pool_mb <- rk_pool_mb_option()
  if (!identical(.rk_session$pool_mb, pool_mb)) {
    rk_set_pool_mb(pool_mb)
    .rk_session$pool_mb <- pool_mb
  }
  invisible()
}

# Per-session state of the R side.
.rk_session <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  rk_sync_options()
  rk_use_r_seeds()
  invisible()
}
