# Argument checks shared by the layers over images and sequences (pooling, padding):
# window sizes and strides as integer tuples, padding modes, data formats. Each turns a
# keras3-style value into what the engine takes, or stops with the argument's name and
# value.

shown_value <- function(x) {
  if (is.null(x)) "NULL" else paste(deparse(x, width.cutoff = 200L), collapse = " ")
}

# `x` as `n` positive integers: one number means the same on every axis, as in Keras.
check_int_tuple <- function(x, n, arg, call) {
  values <- if (is.list(x) && all(lengths(x) == 1L)) unlist(x) else x
  ok <- length(values) %in% c(1L, n) && is_whole(values)
  if (!ok) {
    what <- if (n == 1L) "a positive integer" else sprintf("a positive integer or %d positive integers", n)
    rk_abort(sprintf("`%s` must be %s%s, not %s.", arg, what, int_bound_note(values), shown_value(x)),
             kind = "argument", call = call)
  }
  rep_len(as.integer(values), n)
}

check_padding_mode <- function(padding, call, allowed = c("valid", "same")) {
  if (!(is.character(padding) && length(padding) == 1L && !is.na(padding) &&
        tolower(padding) %in% allowed)) {
    quoted <- paste0("\"", allowed, "\"")
    choices <- paste(paste(quoted[-length(quoted)], collapse = ", "), "or", quoted[length(quoted)])
    rk_abort(sprintf("`padding` must be %s, not %s.", choices, shown_value(padding)),
             kind = "argument", call = call)
  }
  tolower(padding)
}

# NULL means channels_last (Keras's default image_data_format).
check_data_format <- function(data_format, call) {
  if (is.null(data_format)) {
    return("channels_last")
  }
  if (identical(data_format, "channels_first")) {
    rk_abort("`data_format` = 'channels_first' is not supported yet; use 'channels_last'.",
             kind = "argument", call = call)
  }
  if (!identical(data_format, "channels_last")) {
    rk_abort(sprintf("`data_format` must be \"channels_last\" or \"channels_first\", not %s.",
                     shown_value(data_format)), kind = "argument", call = call)
  }
  data_format
}

