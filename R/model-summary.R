# Keras 3's summary table (keras/src/utils/summary_utils.py): three columns at
# positions 0.45 / 0.80 / 1.0 of the line length, rich's box characters, and the
# "Total params" footer with sizes in B/KB/MB (float32, 1 KB = 1024 B).

model_summary_text <- function(model, line_length = NULL, ..., call = rk_user_call(parent.frame())) {
  info <- model_info(model, call = call)
  # A Functional model that is not a plain chain gets Keras's fourth column.
  connected <- identical(info$class_name, "Functional") && !isTRUE(info$chain)
  positions <- if (connected) c(0.30, 0.56, 0.74, 1.0) else c(0.45, 0.80, 1.0)
  if (is.null(line_length)) line_length <- min(getOption("width", 80L), 180L)
  L <- check_positive_int(line_length, "line_length", call)
  ends <- floor(positions * L)
  w <- diff(c(0, ends))
  # Between borders, padding included: rich asks for each width plus padding and
  # takes the excess over the line (borders included) back evenly, column by column.
  inner <- even_reduce(w + 2L, sum(w + 2L) - (L - length(w) - 1L))
  n <- length(info$layer_names)
  layer_col <- sprintf("%s (%s)", info$layer_names, info$layer_classes)
  shape_col <- vapply(seq_len(n), function(i) {
    s <- info$output_shapes[[i]]
    if (is.null(s)) "?" else format_shape(s)
  }, character(1))
  param_col <- ifelse(
    info$layer_built | info$params > 0,
    format_count(info$params),
    "0 (unbuilt)"
  )
  columns <- list(layer_col, shape_col, param_col)
  header <- c("Layer (type)", "Output Shape", "Param #")
  right <- c(FALSE, FALSE, TRUE)
  if (connected) {
    columns[[4]] <- vapply(info$connected_to, function(x) {
      if (length(x) == 0L) "-" else paste(x, collapse = ", ")
    }, character(1))
    header <- c(header, "Connected to")
    right <- c(right, FALSE)
  }
  k <- length(columns)
  cell <- function(text, width, right = FALSE) {
    pad <- strrep(" ", pmax(0L, width - 2L - nchar(text)))
    if (right) paste0(" ", pad, text, " ") else paste0(" ", text, pad, " ")
  }
  # A row is as tall as its most wrapped cell (rich wraps at spaces, as Keras prints
  # "batch_normalization" over "(BatchNormalization)").
  row <- function(texts, edge = "\u2502") {
    cols <- lapply(seq_len(k), function(j) wrap_words(texts[[j]], inner[j] - 2L))
    height <- max(lengths(cols))
    cols <- lapply(cols, function(l) c(l, rep("", height - length(l))))
    cells <- lapply(seq_len(k), function(j) cell(cols[[j]], inner[j], right[j]))
    do.call(paste0, c(list(edge), as.list(rbind(cells, list(edge)))))
  }
  hline <- function(l, m, r, ch) {
    paste0(l, paste(strrep(ch, inner), collapse = m), r)
  }
  lines <- c(
    sprintf('Model: "%s"', info$name),
    hline("\u250f", "\u2533", "\u2513", "\u2501"),
    row(header, edge = "\u2503"),
    hline("\u2521", "\u2547", "\u2529", "\u2501")
  )
  for (i in seq_len(n)) {
    lines <- c(lines, row(lapply(columns, `[`, i)))
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

# rich's ratio_reduce with equal ratios: `excess` taken from `widths` one column at a
# time, each taking its rounded share of what is left (R and Python both round half
# to even).
even_reduce <- function(widths, excess) {
  left <- excess
  for (i in seq_along(widths)) {
    share <- round(left / (length(widths) - i + 1L))
    widths[i] <- widths[i] - share
    left <- left - share
  }
  as.integer(widths)
}

# Greedy word wrap to `width` characters; a word longer than a line is cut.
wrap_words <- function(text, width) {
  width <- max(1L, width)
  lines <- character()
  current <- ""
  for (word in strsplit(text, " ", fixed = TRUE)[[1]]) {
    while (nchar(word) > width) {
      if (nzchar(current)) {
        lines <- c(lines, current)
        current <- ""
      }
      lines <- c(lines, substr(word, 1L, width))
      word <- substr(word, width + 1L, nchar(word))
    }
    candidate <- if (nzchar(current)) paste(current, word) else word
    if (nchar(candidate) <= width) {
      current <- candidate
    } else {
      lines <- c(lines, current)
      current <- word
    }
  }
  c(lines, current)
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
