# Files that Keras downloads once and keeps (data sets, pretrained weights, the ImageNet
# class index): where they are looked for, how they are downloaded, how they are checked.
# Used by datasets.R and applications-imagenet.R, and exported as keras3's get_file().
#
# Lookup order for a file `fname` in `cache_subdir` (Keras's "datasets", "models"):
#   $KERAS_HOME/<subdir>   (when KERAS_HOME is set; Keras's own cache root)
#   ~/.keras/<subdir>      (Keras's default root)
#   tools::R_user_dir("keras3", "cache")/<subdir>   (keras3's KERAS_HOME when there is
#                                                    no ~/.keras)
#   tools::R_user_dir("rustkeras", "cache")/<subdir>   (where rustkeras downloads)
# so a copy that Keras or keras3 already downloaded is reused, and rustkeras writes only
# into its own R cache folder.
#
# Downloads go through getOption("rustkeras.download"), when set: a function(url,
# destfile) with utils::download.file()'s contract (0 on success, an error or another
# value on failure). Tests set it to simulate success and an offline machine.

rustkeras_cache_dir <- function() {
  tools::R_user_dir("rustkeras", which = "cache")
}

# Cache roots where Keras (Python) and keras3 keep their downloads, in the order Keras
# uses them: $KERAS_HOME, ~/.keras, and keras3's default KERAS_HOME.
keras_home_dirs <- function() {
  path.expand(c(
    if (nzchar(Sys.getenv("KERAS_HOME"))) Sys.getenv("KERAS_HOME"),
    "~/.keras",
    tools::R_user_dir("keras3", which = "cache")
  ))
}

# The folders Keras would keep `subdir`'s files in.
keras_cache_dirs <- function(subdir) {
  file.path(keras_home_dirs(), subdir)
}

# Every folder a file of `cache_subdir` is looked for in, in order; the last one is
# where a download goes. `cache_dir` (get_file()'s) or an absolute `cache_subdir` name
# the only folder, as in Keras.
file_cache_dirs <- function(cache_subdir, cache_dir = NULL) {
  if (!is.null(cache_dir)) {
    return(file.path(path.expand(cache_dir), cache_subdir))
  }
  if (is_absolute_path(cache_subdir)) {
    return(path.expand(cache_subdir))
  }
  c(keras_cache_dirs(cache_subdir), file.path(rustkeras_cache_dir(), cache_subdir))
}

is_absolute_path <- function(path) {
  grepl("^(/|~|[A-Za-z]:[/\\\\]|\\\\\\\\)", path)
}

# The path of `fname`: the first copy found in file_cache_dirs() whose hash matches
# `file_hash` (any copy when it is NULL), otherwise a fresh download from `origin` into
# the last of those folders. A copy with the wrong hash is skipped with a message (Keras
# downloads again in that case). Offline, the error names the file, the URL and every
# place where a copy made by hand would be found.
keras_cache_file <- function(fname, origin, cache_subdir = "models", file_hash = NULL,
                             hash_algorithm = "auto", cache_dir = NULL,
                             force_download = FALSE,
                             call = rk_user_call(parent.frame())) {
  dirs <- file_cache_dirs(cache_subdir, cache_dir)
  places <- file.path(dirs, fname)
  algorithm <- resolve_hash_algorithm(hash_algorithm, file_hash, call)
  rejected <- character()
  if (!force_download) {
    for (path in places) {
      if (!file.exists(path) || dir.exists(path)) next
      if (is.null(file_hash)) return(path)
      actual <- file_hash_of(path, algorithm, call)
      if (identical(tolower(actual), tolower(file_hash))) return(path)
      message(sprintf(
        "'%s' is incomplete or outdated: its %s hash is %s, not %s. Ignoring it.",
        path, algorithm, actual, file_hash
      ))
      rejected <- c(rejected, path)
    }
  }
  note <- if (length(rejected) > 0) {
    paste0("(The copies at ", paste0("'", rejected, "'", collapse = ", "),
           " have the wrong ", algorithm, " hash.)")
  }
  dest <- places[length(places)]
  download_file_into_place(origin, dest, places = places, file_hash = file_hash,
                           hash_algorithm = algorithm, note = note, call = call)
  dest
}

# Keras's rule (file_utils.resolve_hasher): "auto" is sha256 for a 64-character hash,
# md5 otherwise.
resolve_hash_algorithm <- function(hash_algorithm, file_hash, call) {
  if (!(is.character(hash_algorithm) && length(hash_algorithm) == 1L &&
        hash_algorithm %in% c("auto", "md5", "sha256"))) {
    rk_abort(sprintf("`hash_algorithm` must be \"auto\", \"md5\" or \"sha256\", not %s.",
                     shown_value(hash_algorithm)), kind = "argument", call = call)
  }
  if (!is.null(file_hash) &&
      !(is.character(file_hash) && length(file_hash) == 1L && !is.na(file_hash) &&
        grepl("^[0-9A-Fa-f]+$", file_hash))) {
    rk_abort(sprintf("`file_hash` must be a hexadecimal md5 or sha256 hash, not %s.",
                     shown_value(file_hash)), kind = "argument", call = call)
  }
  if (hash_algorithm == "sha256" ||
      (hash_algorithm == "auto" && !is.null(file_hash) && nchar(file_hash) == 64L)) {
    "sha256"
  } else {
    "md5"
  }
}

file_hash_of <- function(path, algorithm, call) {
  if (algorithm == "md5") {
    return(unname(tools::md5sum(path)))
  }
  sha256sum <- get0("sha256sum", envir = asNamespace("tools"), mode = "function")
  if (is.null(sha256sum)) {
    rk_abort(c(sprintf("Cannot check the sha256 hash of '%s': that needs R >= 4.5 (tools::sha256sum()).", path),
               "Pass its md5 hash as `file_hash` instead."),
             kind = "argument", call = call)
  }
  unname(sha256sum(path))
}

default_downloader <- function(url, destfile) {
  utils::download.file(url, destfile, mode = "wb", quiet = TRUE)
}

# Download `url` to `dest` through a temporary file, so that an interrupted download
# never leaves a partial file where the next call would read it, and a failed one
# creates nothing in the user's folders. With `file_hash`, a download with another hash
# is discarded. `places` are the paths where a copy made by hand would be found; the
# offline error lists them, followed by `note`.
download_file_into_place <- function(url, dest, places = dest, file_hash = NULL,
                                     hash_algorithm = "md5", note = NULL, call = NULL) {
  download <- getOption("rustkeras.download", default_downloader)
  tmp <- tempfile(fileext = ".download")
  on.exit(unlink(tmp), add = TRUE)
  old <- options(timeout = max(300, getOption("timeout")))
  on.exit(options(old), add = TRUE)

  message("Downloading data from ", url)
  status <- tryCatch(
    suppressWarnings(download(url, tmp)),
    error = function(e) conditionMessage(e)
  )
  ok <- is.numeric(status) && length(status) == 1L && !is.na(status) && status == 0
  if (!ok || !file.exists(tmp) || file.size(tmp) == 0) {
    reason <- if (is.character(status) && length(status) == 1L) paste0(" (", status, ")") else ""
    where <- if (length(places) == 1L) {
      sprintf("copy it to '%s'.", places)
    } else {
      paste0("copy it to one of these places:\n",
             paste0("  '", places, "'", collapse = "\n"))
    }
    rk_abort(c(paste0("could not download ", url, reason, ".\n",
                      "Without internet, download that file on another machine and ", where),
               note), kind = "download", call = call)
  }
  if (!is.null(file_hash)) {
    actual <- file_hash_of(tmp, hash_algorithm, call)
    if (!identical(tolower(actual), tolower(file_hash))) {
      rk_abort(sprintf(paste0("the file downloaded from %s is incomplete or corrupted: ",
                              "its %s hash is %s, not %s. It was not kept."),
                       url, hash_algorithm, actual, file_hash),
               kind = "download", call = call)
    }
  }
  dir.create(dirname(dest), recursive = TRUE, showWarnings = FALSE)
  if (!file.rename(tmp, dest) && !file.copy(tmp, dest, overwrite = TRUE)) {
    rk_abort(sprintf("could not write '%s'.", dest), kind = "file", call = call)
  }
  invisible(dest)
}

# The last part of a URL's path, as Python's os.path.basename(urlsplit(url).path): ""
# when the path is empty or ends with "/".
url_file_name <- function(url) {
  path <- sub("[?#].*$", "", sub("^[A-Za-z][A-Za-z0-9+.-]*://[^/]*", "", url))
  if (!nzchar(path) || grepl("/$", path)) "" else basename(path)
}

#' Downloads a file from a URL if it is not already in the cache
#'
#' Returns the path of a local copy of the file at `origin`, downloading it
#' once, as keras3's `get_file()` does. A copy that Keras or keras3 already
#' downloaded is reused: the file `fname` is looked for in
#' `$KERAS_HOME/<cache_subdir>` (when `KERAS_HOME` is set),
#' `~/.keras/<cache_subdir>`, `tools::R_user_dir("keras3", "cache")/<cache_subdir>`
#' and rustkeras's cache, `tools::R_user_dir("rustkeras", "cache")/<cache_subdir>`,
#' in that order. When none has it, it is downloaded into rustkeras's cache
#' (Keras would write to `~/.keras`). Without internet, the error names the
#' URL and these places, where a copy made by hand will be found.
#'
#' Passing a hash verifies the file: a cached copy with another hash is
#' skipped, a download with another hash is discarded with an error.
#'
#' @param fname Name of the file in the cache. `NULL` takes the last part of
#'   `origin`'s path. A name, not a path: use `cache_dir` for the folder.
#' @param origin URL of the file.
#' @param ... For compatibility with keras3: `md5_hash` (Keras's deprecated
#'   name for an md5 `file_hash`) is accepted; `untar = TRUE` is not supported.
#' @param file_hash The expected md5 or sha256 hash of the file (hexadecimal),
#'   or `NULL` to skip the check. sha256 needs R >= 4.5.
#' @param cache_subdir Subfolder of the cache folders where the file is kept.
#'   An absolute path is the only folder used.
#' @param hash_algorithm `"auto"` (sha256 for a 64-character `file_hash`, md5
#'   otherwise), `"md5"` or `"sha256"`.
#' @param extract Must be `FALSE`: rustkeras does not extract archives yet.
#' @param archive_format Ignored (it matters only with `extract = TRUE`).
#' @param cache_dir A folder to use instead of the cache folders above: the
#'   file is looked for in and downloaded into `file.path(cache_dir,
#'   cache_subdir)` only.
#' @param force_download If `TRUE`, download the file again even when a copy
#'   exists.
#'
#' @returns The path to the file.
#'
#' @export
#' @examples
#' \donttest{
#' # Downloads 35 kB the first time; offline, the error says where to put it.
#' path <- try(get_file(
#'   "imagenet_class_index.json",
#'   origin = paste0("https://storage.googleapis.com/download.tensorflow.org/",
#'                   "data/imagenet_class_index.json"),
#'   cache_subdir = "models",
#'   file_hash = "c2c37ea517e94d9795004a39431a14cb"
#' ))
#' }
get_file <- function(fname = NULL, origin = NULL, ..., file_hash = NULL,
                     cache_subdir = "datasets", hash_algorithm = "auto",
                     extract = FALSE, archive_format = "auto", cache_dir = NULL,
                     force_download = FALSE) {
  call <- rk_user_call(environment())
  dots <- list(...)
  unknown <- setdiff(names(dots) %||% rep("", length(dots)), c("md5_hash", "untar"))
  if (length(unknown) > 0) {
    rk_abort(sprintf("Unknown arguments in `...`: %s.",
                     paste0("`", ifelse(nzchar(unknown), unknown, "<unnamed>"), "`",
                            collapse = ", ")),
             kind = "argument", call = call)
  }
  if (isTRUE(dots$untar) || !identical(extract, FALSE)) {
    rk_abort("Extracting archives (`extract = TRUE`, `untar = TRUE`) is not supported yet.",
             kind = "argument", call = call)
  }
  if (!is.null(dots$md5_hash) && is.null(file_hash)) {
    file_hash <- dots$md5_hash
    hash_algorithm <- "md5"
  }
  check_string(origin, "origin", call)
  if (is.null(fname)) {
    fname <- url_file_name(origin)
    if (!nzchar(fname) || fname %in% c(".", "..")) {
      rk_abort(sprintf("Cannot take a file name from `origin` '%s'; pass `fname`.", origin),
               kind = "argument", call = call)
    }
  }
  check_string(fname, "fname", call)
  if (!nzchar(fname) || grepl("[/\\\\]", fname) || fname %in% c(".", "..")) {
    rk_abort(sprintf("`fname` must be a file name, not a path: '%s'. Use `cache_dir` for the folder.",
                     fname), kind = "argument", call = call)
  }
  check_string(cache_subdir, "cache_subdir", call)
  if (!is.null(cache_dir)) check_string(cache_dir, "cache_dir", call)
  check_flag(force_download, "force_download", call)
  keras_cache_file(fname, origin, cache_subdir = cache_subdir, file_hash = file_hash,
                   hash_algorithm = hash_algorithm, cache_dir = cache_dir,
                   force_download = force_download, call = call)
}
