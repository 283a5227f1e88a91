# Keras 3's summary table (keras/src/utils/summary_utils.py): three columns at
# positions 0.45 / 0.80 / 1.0 of the line length, rich's box characters, and the
# "Total params" footer with sizes in B/KB/MB (float32, 1 KB = 1024 B).

model_summary_text <- function(model, line_length = NULL, ..., call = rk_user_call(parent.frame())) {
  info <- model_info(model, call = call)
  if (is.null(line_length)) line_length <- min(getOption("width", 80L), 180L)
  L <- as.integer(line_length)
  w <- c(floor(0.45 * L), floor(0.80 * L) - floor(0.45 * L), L - floor(0.80 * L))
  inner <- c(w[1] - 1L, w[2] - 2L, w[3] - 1L) # between borders, padding included
  n <- length(info$layer_names)
  layer_col <- sprintf("%s (%s)", info$layer_names, info$layer_classes)
  shape_col <- vapply(seq_len(n), function(i) {
    s <- info$output_shapes[[i]]
    if (is.null(s)) "?" else format_shape(s)
  }, character(1))
  param_col <- ifelse(
    info$built | info$params > 0,
    format_count(info$params),
    "0 (unbuilt)"
  )
  cell <- function(text, width, right = FALSE) {
    pad <- strrep(" ", pmax(0L, width - 2L - nchar(text)))
    if (right) paste0(" ", pad, text, " ") else paste0(" ", text, pad, " ")
  }
  # A row is as many lines as its longest cell needs once wrapped.
  row <- function(a, b, c, edge = "\u2502") {
    cells <- list(wrap_cell(a, inner[1] - 2L), wrap_cell(b, inner[2] - 2L),
                  wrap_cell(c, inner[3] - 2L))
    height <- max(lengths(cells))
    cells <- lapply(cells, function(x) c(x, rep("", height - length(x))))
    paste0(edge, cell(cells[[1]], inner[1]), edge, cell(cells[[2]], inner[2]), edge,
           cell(cells[[3]], inner[3], TRUE), edge)
  }
  hline <- function(l, m, r, ch) {
    paste0(l, strrep(ch, inner[1]), m, strrep(ch, inner[2]), m, strrep(ch, inner[3]), r)
  }
  lines <- c(
    sprintf('Model: "%s"', info$name),
    hline("\u250f", "\u2533", "\u2513", "\u2501"),
    row("Layer (type)", "Output Shape", "Param #", edge = "\u2503"),
    hline("\u2521", "\u2547", "\u2529", "\u2501")
  )
  for (i in seq_len(n)) {
    lines <- c(lines, row(layer_col[i], shape_col[i], param_col[i]))
    if (i < n) lines <- c(lines, hline("\u251c", "\u253c", "\u2524", "\u2500"))
  }
  lines <- c(lines, hline("\u2514", "\u2534", "\u2518", "\u2500"))
  trainable <- sum(info$trainable_params)
  total <- sum(info$params)
  opt <- info$optimizer_params
  if (length(opt) != 1L || is.na(opt)) opt <- NULL
  lines <- c(
    lines,
    sprintf(" Total params: %s (%s)", format_count(total + if (is.null(opt)) 0 else opt),
            readable_size(4 * (total + if (is.null(opt)) 0 else opt))),
    sprintf(" Trainable params: %s (%s)", format_count(trainable), readable_size(4 * trainable)),
    sprintf(" Non-trainable params: %s (%s)", format_count(total - trainable),
            readable_size(4 * (total - trainable)))
  )
  if (!is.null(opt)) {
    lines <- c(lines, sprintf(" Optimizer params: %s (%s)", format_count(opt), readable_size(4 * opt)))
  }
  lines
}

# rich's wrapping of a table cell: words fill lines of `width` characters, and a word
# longer than a line is cut into pieces of that width.
wrap_cell <- function(text, width) {
  words <- strsplit(text, " ", fixed = TRUE)[[1]]
  words <- unlist(lapply(words, function(w) {
    if (nchar(w) <= width) return(w)
    starts <- seq(1L, nchar(w), by = width)
    substring(w, starts, pmin(starts + width - 1L, nchar(w)))
  }))
  if (length(words) == 0L) return("")
  lines <- words[1]
  for (w in words[-1]) {
    last <- lines[length(lines)]
    if (nchar(last) + 1L + nchar(w) <= width) {
      lines[length(lines)] <- paste(last, w)
    } else {
      lines <- c(lines, w)
    }
  }
  lines
}

format_shape <- function(s) {
  paste0("(", paste(c("None", s), collapse = ", "), ")")
}

format_count <- function(x) {
  formatC(x, format = "d", big.mark = ",")
}

# Keras's readable_memory_size: divide by 1024 while the result stays >= 1.
readable_size <- function(bytes) {
  units <- c("B", "KB", "MB", "GB", "TB", "PB")
  i <- 1L
  while (bytes / 1024 >= 1 && i < length(units)) {
    bytes <- bytes / 1024
    i <- i + 1L
  }
  sprintf("%.2f %s", bytes, units[i])
}
