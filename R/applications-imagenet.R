# keras3's ImageNet helpers, in plain R: input preprocessing ("caffe", "tf", "torch"),
# decoding of 1000-class predictions with Keras's class index, the dispatch from an
# application_*() model to its helpers, and where the pretrained ResNet50 weights are.
# Semantics follow Keras's keras/src/applications/imagenet_utils.py.

# ---- constants from Keras -------------------------------------------------------------

# keras/src/applications/imagenet_utils.py: CLASS_INDEX_PATH, and the file_hash that
# decode_predictions() passes to get_file(..., cache_subdir = "models").
imagenet_class_index_file <- "imagenet_class_index.json"
imagenet_class_index_url <- paste0(
  "https://storage.googleapis.com/download.tensorflow.org/",
  "data/imagenet_class_index.json"
)
imagenet_class_index_md5 <- "c2c37ea517e94d9795004a39431a14cb"

# keras/src/applications/imagenet_utils.py, _preprocess_numpy_input().
imagenet_caffe_mean_bgr <- c(103.939, 116.779, 123.68)
imagenet_torch_mean_rgb <- c(0.485, 0.456, 0.406)
imagenet_torch_std_rgb <- c(0.229, 0.224, 0.225)

# keras/src/applications/resnet.py: BASE_WEIGHTS_PATH, WEIGHTS_HASHES["resnet50"]
# (md5 of the file with the top, then without), and the file names made in ResNet():
# "{weights_name}_weights_tf_dim_ordering_tf_kernels.h5" and "..._notop.h5",
# downloaded with get_file(..., cache_subdir = "models").
resnet_weights_base_url <- "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
resnet50_weights_files <- list(
  top = list(
    file = "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    md5 = "2cb95161c43110f7111970584f804107"
  ),
  notop = list(
    file = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    md5 = "4d473c1dd8becc155b73f8504c6f6626"
  )
)

# The helpers of each application (keras3 attaches the Python module's
# preprocess_input() and decode_predictions() to the model).
application_helpers <- list(
  resnet50 = list(mode = "caffe", decode = "imagenet")
)

# ---- preprocessing --------------------------------------------------------------------

#' Preprocesses a batch of images for an ImageNet model
#'
#' Brings RGB images with values 0 to 255 to what a model pretrained on ImageNet
#' expects, as Keras's `imagenet_utils.preprocess_input()`:
#'
#' * `"caffe"`: converts the images from RGB to BGR (reverses the channel
#'   axis), then subtracts the ImageNet mean of each channel,
#'   `c(103.939, 116.779, 123.68)` in BGR order, without scaling.
#' * `"tf"`: scales pixels between -1 and 1: `x / 127.5 - 1`.
#' * `"torch"`: scales pixels between 0 and 1, then normalizes each channel with
#'   the ImageNet mean `c(0.485, 0.456, 0.406)` and standard deviation
#'   `c(0.229, 0.224, 0.225)` (RGB order).
#'
#' @param x A numeric array of images whose last axis holds the 3 color
#'   channels in RGB order (`channels_last`), usually
#'   `c(samples, height, width, 3)`; a single image `c(height, width, 3)` works
#'   too. Values are expected in the range 0 to 255.
#' @param data_format `"channels_last"` (what `NULL`, the default, means).
#'   `"channels_first"` is not supported: rustkeras works with `channels_last`
#'   images only.
#' @param mode One of `"caffe"` (the default), `"tf"` or `"torch"`, as
#'   described above.
#'
#' @returns A double array of the same shape as `x`, preprocessed.
#' @seealso [application_preprocess_inputs()] picks the mode of a model made by
#'   an `application_*()` function.
#' @export
#' @examples
#' img <- array(c(255, 0, 0), dim = c(1, 1, 1, 3)) # one red pixel
#' imagenet_preprocess_input(img)                  # B, G, R minus the means
#' imagenet_preprocess_input(img, mode = "tf")
#' imagenet_preprocess_input(img, mode = "torch")
imagenet_preprocess_input <- function(x, data_format = NULL, mode = "caffe") {
  call <- rk_user_call(environment())
  preprocess_imagenet(x, data_format, mode, call)
}

preprocess_imagenet <- function(x, data_format, mode, call) {
  modes <- c("caffe", "tf", "torch")
  if (!(is.character(mode) && length(mode) == 1L && !is.na(mode) && mode %in% modes)) {
    rk_abort(sprintf("`mode` must be \"caffe\", \"tf\" or \"torch\", not %s.", shown_value(mode)),
             kind = "argument", call = call)
  }
  check_data_format(data_format, call)
  shape <- dim(x)
  if (is.null(shape)) shape <- length(x)
  if (!is.numeric(x)) {
    rk_abort(sprintf("`x` must be a numeric array of images, not %s of shape %s.",
                     describe_array(x), format_array_shape(shape)), kind = "argument", call = call)
  }
  if (shape[length(shape)] != 3L) {
    rk_abort(sprintf(paste0("`x` must have 3 color channels on its last axis (channels_last), ",
                            "but its shape is %s."), format_array_shape(shape)),
             kind = "argument", call = call)
  }

  # With R's column-major layout the last axis varies slowest: as a matrix with 3
  # columns, column k holds channel k of every pixel.
  pixels <- matrix(as.double(x), ncol = 3L)
  pixels <- switch(mode,
    tf = pixels / 127.5 - 1,
    torch = sweep(sweep(pixels / 255, 2L, imagenet_torch_mean_rgb), 2L,
                  imagenet_torch_std_rgb, "/"),
    caffe = sweep(pixels[, 3:1, drop = FALSE], 2L, imagenet_caffe_mean_bgr)
  )
  out <- array(pixels, dim = shape)
  names <- dimnames(x)
  if (!is.null(names)) {
    if (mode == "caffe" && !is.null(names[[length(shape)]])) {
      names[[length(shape)]] <- rev(names[[length(shape)]])
    }
    dimnames(out) <- names
  }
  out
}

# "a character array", "a logical vector", "a data frame".
describe_array <- function(x) {
  if (is.data.frame(x)) return("a data frame")
  type <- typeof(x)
  article <- if (substr(type, 1L, 1L) %in% c("a", "e", "i", "o", "u")) "an" else "a"
  sprintf("%s %s %s", article, type, if (is.null(dim(x))) "vector" else "array")
}

# "(2, 224, 224, 3)", as Keras writes shapes.
format_array_shape <- function(shape) {
  paste0("(", paste(shape, collapse = ", "), if (length(shape) == 1L) "," , ")")
}

# ---- decoding -------------------------------------------------------------------------

#' Decodes the predictions of an ImageNet model
#'
#' Turns a batch of 1000-class ImageNet predictions into the `top` classes of
#' each sample, as Keras's `imagenet_utils.decode_predictions()`. The class
#' names come from Keras's `imagenet_class_index.json`, looked for in
#' `$KERAS_HOME/models`, `~/.keras/models`,
#' `tools::R_user_dir("keras3", "cache")/models` and
#' `tools::R_user_dir("rustkeras", "cache")/models`, and downloaded (35 kB) into
#' the last of them when none has it; see [get_file()].
#'
#' @param preds A numeric matrix of predictions, one row per sample and 1000
#'   columns (the ImageNet classes in Keras's order).
#' @param top How many of the best classes to return for each sample.
#'
#' @returns A list with one data frame per sample (row of `preds`), with columns
#'   `class_name` (the WordNet id, such as `"n01440764"`), `class_description`
#'   (such as `"tench"`) and `score`, sorted by decreasing score, `top` rows.
#' @export
#' @examples
#' \donttest{
#' preds <- matrix(runif(2 * 1000), nrow = 2)
#' # Downloads the class index once; offline, the error says where to put it.
#' decoded <- try(imagenet_decode_predictions(preds, top = 3))
#' if (!inherits(decoded, "try-error")) decoded[[1]]
#' }
imagenet_decode_predictions <- function(preds, top = 5) {
  call <- rk_user_call(environment())
  decode_imagenet(preds, top, call)
}

decode_imagenet <- function(preds, top, call, class_index = NULL) {
  check_predictions(preds, call)
  top <- check_positive_int(top, "top", call)
  if (is.null(class_index)) class_index <- imagenet_class_index(call = call)
  lapply(seq_len(nrow(preds)), function(i) {
    scores <- as.double(preds[i, ])
    # Keras takes argsort()[-top:][::-1] and sorts stably by score: the best first,
    # ties with the higher class index first.
    best <- utils::head(order(scores, seq_along(scores), decreasing = TRUE), top)
    key <- as.character(best - 1L)
    missing <- key[!key %in% names(class_index$name)]
    if (length(missing) > 0) {
      rk_abort(sprintf("The ImageNet class index '%s' has no entry for class %s.",
                       class_index$path, paste(missing, collapse = ", ")),
               kind = "file", call = call)
    }
    data.frame(class_name = unname(class_index$name[key]),
               class_description = unname(class_index$description[key]),
               score = scores[best],
               stringsAsFactors = FALSE)
  })
}

check_predictions <- function(preds, call) {
  shape <- dim(preds)
  if (is.null(shape)) shape <- length(preds)
  if (!is.numeric(preds) || length(shape) != 2L || shape[2] != 1000L) {
    what <- describe_array(preds)
    rk_abort(sprintf(paste0("`preds` must be a numeric matrix of shape (samples, 1000), ",
                            "a batch of ImageNet predictions, not %s of shape %s."),
                     what, format_array_shape(shape)), kind = "argument", call = call)
  }
}

# Keras's class index: list(name, description), character vectors named by the
# 0-based class ("0" to "999"), and the path of the file they were read from.
imagenet_class_index <- function(file_hash = imagenet_class_index_md5,
                                 call = rk_user_call(parent.frame())) {
  path <- keras_cache_file(imagenet_class_index_file, imagenet_class_index_url,
                           cache_subdir = "models", file_hash = file_hash, call = call)
  read_imagenet_class_index(path, call)
}

# The file is JSON of one shape: {"0": ["n01440764", "tench"], "1": [...], ...}. A
# pattern for that shape reads it without a JSON package; anything else in the file
# makes it "not a class index".
read_imagenet_class_index <- function(path, call) {
  text <- paste(readLines(path, warn = FALSE, encoding = "UTF-8"), collapse = "\n")
  str <- "\"((?:[^\"\\\\]|\\\\.)*)\""
  entry <- sprintf("\"([0-9]+)\"\\s*:\\s*\\[\\s*%s\\s*,\\s*%s\\s*\\]", str, str)
  found <- regmatches(text, gregexpr(entry, text, perl = TRUE))[[1]]
  rest <- gsub(entry, "", text, perl = TRUE)
  if (length(found) == 0 || !grepl("^\\s*\\{[\\s,]*\\}\\s*$", rest, perl = TRUE)) {
    rk_abort(sprintf(paste0("'%s' is not an ImageNet class index: expected JSON like ",
                            "{\"0\": [\"n01440764\", \"tench\"], ...}."), path),
             kind = "file", call = call)
  }
  parts <- regmatches(found, regexec(entry, found, perl = TRUE))
  field <- function(k) vapply(parts, `[[`, "", k)
  keys <- field(2L)
  name <- json_unescape(field(3L))
  description <- json_unescape(field(4L))
  names(name) <- names(description) <- keys
  list(name = name, description = description, path = path)
}

# The escapes of JSON strings: \" \\ \/ \b \f \n \r \t \uXXXX.
json_unescape <- function(x) {
  escape <- "\\\\(u[0-9A-Fa-f]{4}|.)"
  has <- grepl("\\", x, fixed = TRUE)
  x[has] <- vapply(x[has], function(s) {
    m <- gregexpr(escape, s, perl = TRUE)
    regmatches(s, m) <- list(vapply(regmatches(s, m)[[1]], function(e) {
      ch <- substr(e, 2L, 2L)
      switch(ch,
             u = intToUtf8(strtoi(substr(e, 3L, 6L), 16L)),
             b = "\b", f = "\f", n = "\n", r = "\r", t = "\t",
             ch)
    }, ""))
    s
  }, "", USE.NAMES = FALSE)
  x
}

# ---- the helpers of an application model ----------------------------------------------

#' Preprocessing and decoding for a model made by an `application_*()` function
#'
#' `application_preprocess_inputs()` preprocesses a batch of images the way the
#' model's application expects; `application_decode_predictions()` decodes its
#' predictions. Both work as keras3's: they use the helpers of the application
#' that made `model` (for `application_resnet50()`'s models,
#' `imagenet_preprocess_input(mode = "caffe")` and
#' [imagenet_decode_predictions()]).
#'
#' @param model A model made by an `application_*()` function, such as
#'   `application_resnet50()`.
#' @param x A batch of images (see [imagenet_preprocess_input()]). If missing,
#'   the preprocessing function of `model` is returned instead, a
#'   `function(x, data_format)`.
#' @param preds A batch of predictions of `model`. If missing, the decoding
#'   function is returned instead, a `function(preds, top)`.
#' @param top The number of top predictions to return for each sample.
#' @param ... Must be empty: the ImageNet helpers of the supported applications
#'   take no other arguments.
#' @inheritParams imagenet_preprocess_input
#'
#' @returns `application_preprocess_inputs()`: the preprocessed batch (or the
#'   function). `application_decode_predictions()`: a list of data frames as
#'   [imagenet_decode_predictions()] returns (or the function).
#' @export
#' @examples
#' \dontrun{
#' model <- application_resnet50()
#' x <- application_preprocess_inputs(model, images)
#' application_decode_predictions(model, predict(model, x))
#' }
application_preprocess_inputs <- function(model, x, ..., data_format = NULL) {
  call <- rk_user_call(environment())
  helpers <- application_helpers_of(model, call)
  check_dots_empty_here(..., call = call)
  mode <- helpers$mode
  if (missing(x)) {
    default_format <- data_format
    return(function(x, data_format = default_format) {
      preprocess_imagenet(x, data_format, mode, rk_user_call(environment()))
    })
  }
  preprocess_imagenet(x, data_format, mode, call)
}

#' @rdname application_preprocess_inputs
#' @export
application_decode_predictions <- function(model, preds, top = 5L, ...) {
  call <- rk_user_call(environment())
  application_helpers_of(model, call)
  check_dots_empty_here(..., call = call)
  if (missing(preds)) {
    default_top <- top
    return(function(preds, top = default_top) {
      decode_imagenet(preds, top, rk_user_call(environment()))
    })
  }
  decode_imagenet(preds, top, call)
}

# The name of the application that made `model` ("resnet50"), which application_*()
# functions record in the model's "rustkeras_application" attribute.
model_application_name <- function(model, call = rk_user_call(parent.frame())) {
  name <- attr(model, "rustkeras_application", exact = TRUE)
  if (is.null(name)) {
    rk_abort("`model` is not a model from an application_*() function.",
             kind = "argument", call = call)
  }
  name
}

application_helpers_of <- function(model, call) {
  name <- model_application_name(model, call = call)
  helpers <- application_helpers[[name]]
  if (is.null(helpers)) {
    rk_abort(sprintf("rustkeras has no preprocessing or decoding helpers for the application '%s'.",
                     name), kind = "argument", call = call)
  }
  helpers
}

check_dots_empty_here <- function(..., call) {
  if (...length() > 0) {
    rk_abort(sprintf("`...` must be empty; got %d extra argument%s.", ...length(),
                     if (...length() == 1L) "" else "s"),
             kind = "argument", call = call)
  }
}

# ---- pretrained weights ---------------------------------------------------------------

# The path of Keras's ImageNet weights for ResNet50 (with or without the classifier
# top), found in the Keras caches or downloaded once (about 100 MB with the top, 95 MB
# without); offline, an error names the file, its URL and where to put it by hand.
resnet50_weights_path <- function(include_top = TRUE, call = rk_user_call(parent.frame())) {
  check_flag(include_top, "include_top", call)
  w <- resnet50_weights_files[[if (include_top) "top" else "notop"]]
  keras_cache_file(w$file, paste0(resnet_weights_base_url, w$file),
                   cache_subdir = "models", file_hash = w$md5, call = call)
}
