#' Save and load a model in Keras's HDF5 file
#'
#' `save_model_hdf5()` writes the legacy Keras HDF5 file (`.h5`): the model's
#' configuration as Keras 3 JSON, its weights, and, when `include_optimizer` is `TRUE` and
#' the model is compiled, its compile settings and optimizer state. Python Keras reads the
#' file with `keras.models.load_model()`, and `load_model_hdf5()` reads files written by
#' Keras (Sequential and Functional models, models inside models included, of the layers
#' rustkeras has).
#'
#' The file is written to a temporary file in the same folder and renamed into place, so a
#' failed save never leaves a half-written file at `filepath`.
#'
#' @param object A model.
#' @param filepath Path of the file.
#' @param overwrite Whether to replace an existing file (default `TRUE`).
#' @param include_optimizer Whether to save the compile settings and the optimizer's state
#'   (default `TRUE`), so that training can continue where it stopped.
#' @param custom_objects Not supported (rustkeras has no custom layers); must be `NULL`.
#' @param compile Whether to compile the loaded model with the saved settings and restore
#'   the optimizer state (default `TRUE`).
#' @returns `save_model_hdf5()` returns `object` invisibly; `load_model_hdf5()` a model.
#' @seealso [save_model()] for Keras 3's `.keras` files, [save_model_weights_hdf5()].
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2)
#' path <- tempfile(fileext = ".h5")
#' save_model_hdf5(model, path)
#' same <- load_model_hdf5(path)
#' x <- matrix(runif(8), 2, 4)
#' all.equal(predict(model, x, verbose = 0), predict(same, x, verbose = 0))
save_model_hdf5 <- function(object, filepath, overwrite = TRUE, include_optimizer = TRUE) {
  call <- rk_user_call(environment())
  check_model(object, call)
  filepath <- check_path(filepath, call)
  check_flag(overwrite, "overwrite", call)
  check_flag(include_optimizer, "include_optimizer", call)
  rk_call(rk_save_model_hdf5(object$ptr, filepath, overwrite, include_optimizer), call = call)
  invisible(object)
}

#' @rdname save_model_hdf5
#' @export
load_model_hdf5 <- function(filepath, custom_objects = NULL, compile = TRUE) {
  call <- rk_user_call(environment())
  filepath <- check_path(filepath, call)
  check_no_custom_objects(custom_objects, call)
  check_flag(compile, "compile", call)
  model_from_handle(rk_call(rk_load_model_hdf5(filepath, compile), call = call))
}

#' Save and load a model's weights in an HDF5 file
#'
#' Writes the weights alone in Keras's HDF5 weights layout (what Keras's
#' `model.save_weights("x.weights.h5")` wrote before Keras 3 and still reads), and loads
#' weights from such a file or from a full model file.
#'
#' @param object A built model.
#' @param filepath Path of the file.
#' @param overwrite Whether to replace an existing file (default `TRUE`).
#' @param by_name `FALSE` (the default) assigns the saved layers that have weights to the
#'   model's layers that have weights, in order, as Keras does; `TRUE` matches layers by
#'   name and leaves model layers that the file does not name unchanged.
#' @param skip_mismatch,reshape Not supported; must be `FALSE`.
#' @returns `object`, invisibly.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2)
#' path <- tempfile(fileext = ".h5")
#' save_model_weights_hdf5(model, path)
#' load_model_weights_hdf5(model, path)
save_model_weights_hdf5 <- function(object, filepath, overwrite = TRUE) {
  call <- rk_user_call(environment())
  check_model(object, call)
  filepath <- check_path(filepath, call)
  check_flag(overwrite, "overwrite", call)
  rk_call(rk_save_weights_hdf5(object$ptr, filepath, overwrite), call = call)
  invisible(object)
}

#' @rdname save_model_weights_hdf5
#' @export
load_model_weights_hdf5 <- function(object, filepath, by_name = FALSE, skip_mismatch = FALSE,
                                    reshape = FALSE) {
  call <- rk_user_call(environment())
  check_model(object, call)
  filepath <- check_path(filepath, call)
  check_flag(by_name, "by_name", call)
  if (!identical(skip_mismatch, FALSE) || !identical(reshape, FALSE)) {
    rk_abort("`skip_mismatch` and `reshape` are not supported; they must be FALSE.",
             kind = "argument", call = call)
  }
  rk_call(rk_load_weights_hdf5(object$ptr, filepath, by_name), call = call)
  invisible(object)
}

#' Save and load a model in Keras 3's `.keras` file
#'
#' `save_model()` writes Keras 3's native file, a zip of `config.json`, `metadata.json`
#' and `model.weights.h5`, keras3's default format; a path ending in `.h5` or `.hdf5`
#' writes the legacy HDF5 file instead (as [save_model_hdf5()]). `load_model()` reads
#' either, by the file's content.
#'
#' @param model For `save_model()`, the model. For `load_model()`, the path of a file (or
#'   a raw vector returned by `save_model(model)`).
#' @param filepath Path ending in `.keras` (or `.h5`); `NULL` returns the `.keras` file as
#'   a raw vector.
#' @param overwrite Whether to replace an existing file (default `FALSE`, as keras3).
#' @param zipped Must be `NULL` or `TRUE`: only zipped `.keras` files are written.
#' @param custom_objects Not supported; must be `NULL`.
#' @param compile Whether to compile the loaded model and restore its optimizer state.
#' @param safe_mode Ignored (rustkeras never runs code from a file).
#' @param ... Unused.
#' @returns `save_model()` returns `model` invisibly (or the raw bytes when `filepath` is
#'   `NULL`); `load_model()` a model.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2)
#' path <- tempfile(fileext = ".keras")
#' save_model(model, path)
#' same <- load_model(path)
#' same
save_model <- function(model, filepath = NULL, overwrite = FALSE, zipped = NULL, ...) {
  call <- rk_user_call(environment())
  check_model(model, call)
  check_flag(overwrite, "overwrite", call)
  if (!is.null(zipped) && !isTRUE(zipped)) {
    rk_abort("`zipped = FALSE` is not supported: rustkeras writes zipped .keras files.",
             kind = "argument", call = call)
  }
  if (is.null(filepath)) {
    tmp <- tempfile(fileext = ".keras")
    on.exit(unlink(tmp), add = TRUE)
    rk_call(rk_save_model_keras(model$ptr, tmp, TRUE), call = call)
    return(readBin(tmp, "raw", file.size(tmp)))
  }
  filepath <- check_path(filepath, call)
  ext <- tolower(tools::file_ext(filepath))
  if (ext %in% c("h5", "hdf5")) {
    rk_call(rk_save_model_hdf5(model$ptr, filepath, overwrite, TRUE), call = call)
  } else if (ext == "keras") {
    rk_call(rk_save_model_keras(model$ptr, filepath, overwrite), call = call)
  } else {
    rk_abort(sprintf("`filepath` must end in .keras (or .h5 for the legacy format), not '%s'.",
                     basename(filepath)), kind = "argument", call = call)
  }
  invisible(model)
}

#' @rdname save_model
#' @export
load_model <- function(model, custom_objects = NULL, compile = TRUE, safe_mode = TRUE) {
  call <- rk_user_call(environment())
  check_no_custom_objects(custom_objects, call)
  check_flag(compile, "compile", call)
  if (is.raw(model)) {
    tmp <- tempfile(fileext = ".keras")
    on.exit(unlink(tmp), add = TRUE)
    writeBin(model, tmp)
    model <- tmp
  }
  filepath <- check_path(model, call, arg = "model")
  ptr <- if (is_hdf5_file(filepath)) {
    rk_call(rk_load_model_hdf5(filepath, compile), call = call)
  } else {
    rk_call(rk_load_model_keras(filepath, compile), call = call)
  }
  model_from_handle(ptr)
}

#' Configuration of a model or layer
#'
#' `get_config()` returns the Keras 3 configuration as a named list: for a model the
#' `config` part of its `config.json` entry (for a Sequential model its name, dtype,
#' layers with their class names and configs and build input shape; for a Functional
#' model also each layer's `inbound_nodes` and the `input_layers` and `output_layers`),
#' for a layer its config fields with Keras's names. `from_config()` builds a new model (with fresh weights) or layer from
#' such a list, also one read from Keras's JSON.
#'
#' @param object A model or a layer.
#' @param config A list returned by `get_config()`; its `"class_name"` attribute says
#'   what it configures (`"Sequential"`, `"Functional"` or a layer class; `"Sequential"`
#'   when absent and it has `layers`).
#' @param custom_objects Not supported; must be `NULL`.
#' @returns `get_config()`: a named list with attribute `class_name`. `from_config()`: a
#'   model or a layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2, activation = "relu")
#' config <- get_config(model)
#' config$layers[[2]]$config$activation
#' model2 <- from_config(config)
get_config <- function(object) {
  call <- rk_user_call(environment())
  if (inherits(object, "rustkeras_model")) {
    class_name <- rk_call(rk_member_info(object$ptr), call = call)$class_name
    config <- rk_call(rk_model_get_config(object$ptr), call = call)
    return(structure(config, class_name = class_name))
  }
  if (inherits(object, "rustkeras_layer")) {
    config <- if (!is.null(object$ptr)) {
      rk_call(rk_member_layer_config(object$ptr), call = call)
    } else {
      rk_call(rk_layer_get_config(object$class_name, object$config), call = call)
    }
    return(structure(config, class_name = object$class_name))
  }
  rk_abort("`object` must be a rustkeras model or layer.", kind = "argument", call = call)
}

#' @rdname get_config
#' @export
from_config <- function(config, custom_objects = NULL) {
  call <- rk_user_call(environment())
  check_no_custom_objects(custom_objects, call)
  if (!is.list(config)) rk_abort("`config` must be a list from get_config().", kind = "argument", call = call)
  class_name <- attr(config, "class_name") %||% if (!is.null(config$layers)) "Sequential"
  if (is.null(class_name)) {
    rk_abort("`config` has no \"class_name\" attribute.", kind = "argument", call = call)
  }
  if (class_name %in% c("Sequential", "Functional", "Model")) {
    ptr <- rk_call(rk_model_from_config(class_name, unclass_config(config)), call = call)
    return(model_from_handle(ptr))
  }
  engine_config <- rk_call(rk_layer_from_config(class_name, unclass_config(config)), call = call)
  create_layer(NULL, class_name, engine_config, call)
}

`%||%` <- function(x, y) if (is.null(x)) y else x

unclass_config <- function(config) {
  attr(config, "class_name") <- NULL
  config
}

# An R model object for an engine model made by a loader.
model_from_handle <- function(ptr) {
  new_model(ptr, rk_call(rk_member_info(ptr))$class_name)
}

# HDF5 files start with this signature (or carry it after a user block).
is_hdf5_file <- function(path) {
  if (!file.exists(path) || dir.exists(path)) return(FALSE)
  con <- file(path, "rb")
  on.exit(close(con))
  sig <- readBin(con, "raw", 8L)
  identical(sig, as.raw(c(0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a)))
}

check_model <- function(object, call) {
  if (!inherits(object, "rustkeras_model")) {
    rk_abort("`object` must be a rustkeras model.", kind = "argument", call = call)
  }
}

check_path <- function(filepath, call, arg = "filepath") {
  if (!(is.character(filepath) && length(filepath) == 1L && !is.na(filepath) && nzchar(filepath))) {
    rk_abort(sprintf("`%s` must be a single file path.", arg), kind = "argument", call = call)
  }
  path.expand(filepath)
}

check_no_custom_objects <- function(custom_objects, call) {
  if (!is.null(custom_objects)) {
    rk_abort("`custom_objects` is not supported: rustkeras has no custom layers or objects.",
             kind = "argument", call = call)
  }
}
