#' rustkeras: the keras3 R API on a Rust engine
#'
#' rustkeras speaks the keras3 R API and trains with its own Rust engine: no Python, no
#' TensorFlow, no reticulate. Change `library(keras3)` to `library(rustkeras)` in a keras3
#' workshop script and it builds, trains and evaluates the same model.
#'
#' @keywords internal
#' @useDynLib rustkeras, .registration = TRUE
"_PACKAGE"
