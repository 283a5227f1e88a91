# The object fit() returns: keras3's "keras_training_history", a plain list
# with the fit parameters and one vector per metric, one value per epoch.

# Constructor used by fit(). `params` is list(verbose =, epochs =, steps =) as
# Keras 3 reports it; `metrics` is a named list of numeric vectors such as
# list(loss =, accuracy =, val_loss =, val_accuracy =).
new_keras_training_history <- function(params, metrics) {
  stopifnot(
    is.list(params), is.numeric(params$epochs), length(params$epochs) == 1,
    is.list(metrics), length(metrics) == 0 || !is.null(names(metrics)),
    all(vapply(metrics, is.numeric, logical(1)))
  )
  metrics <- lapply(metrics, as.numeric)
  structure(
    list(params = params, metrics = metrics),
    class = "keras_training_history"
  )
}

#' Print a training history
#'
#' Prints the metrics of the last epoch of a training history, as keras3 does.
#'
#' @param x A `keras_training_history` object, as returned by `fit()`.
#' @param ... Unused.
#'
#' @returns `x`, invisibly.
#'
#' @examples
#' history <- rustkeras:::new_keras_training_history(
#'   params = list(verbose = 1L, epochs = 3L, steps = 375L),
#'   metrics = list(loss = c(0.69, 0.42, 0.38), accuracy = c(0.76, 0.85, 0.86))
#' )
#' history
#' @export
print.keras_training_history <- function(x, ...) {
  # Epochs actually trained: fewer than asked when training stopped early.
  epochs <- min(x$params$epochs, length(x$metrics[[1]]))

  out <- ""
  # Keras 2 reported samples in params; Keras 3 (and rustkeras) do not.
  if (!is.null(x$params$samples)) {
    validate <- if (!is.null(x$params$validation_samples)) {
      paste0(", validated on ",
             prettyNum(x$params$validation_samples, big.mark = ","), " samples")
    } else ""
    out <- paste0("Trained on ", prettyNum(x$params$samples, big.mark = ","),
                  " samples", validate, " (batch_size=", x$params$batch_size,
                  ", epochs=", epochs, ")")
  }

  if (length(x$metrics) == 0 || epochs == 0) {
    cat(out, "\nNo epochs completed.\n", sep = "")
    return(invisible(x))
  }
  final <- lapply(x$metrics, function(metric) metric[[epochs]])
  labels <- formatC(names(final), width = max(nchar(names(final))))
  values <- prettyNum(final, big.mark = ",", digits = 4, scientific = FALSE)
  out <- paste0(out, "\n", "Final epoch (plot to see history):\n",
                paste0(labels, ": ", values, collapse = "\n"))
  cat(out, "\n")
  invisible(x)
}

#' Plot training history
#'
#' Plots metrics recorded during training, one panel per metric with the
#' training and the validation values, as keras3 does.
#'
#' @param x A `keras_training_history` object, as returned by `fit()`.
#' @param y Unused.
#' @param metrics Default `NULL`. One or more metrics to plot (e.g.
#'   `c("loss", "accuracy")`); `NULL` plots all recorded metrics.
#' @param method Default `"auto"`. Method to use for plotting: `"auto"` uses
#'   \pkg{ggplot2} if it is installed and base graphics otherwise.
#' @param smooth Default `getOption("keras.plot.history.smooth", TRUE)`.
#'   Whether a loess smooth is added to the plot, only for the `ggplot2`
#'   method and only with ten or more epochs.
#' @param theme_bw Default `getOption("keras.plot.history.theme_bw", FALSE)`.
#'   Use `ggplot2::theme_bw()` to plot the history in black and white.
#' @param ... Additional arguments passed to [plot()] (base method only).
#'
#' @returns With `method = "ggplot2"`, the ggplot object. With
#'   `method = "base"`, draws on the current graphics device and returns
#'   `NULL`, invisibly.
#'
#' @examples
#' history <- rustkeras:::new_keras_training_history(
#'   params = list(verbose = 1L, epochs = 3L, steps = 375L),
#'   metrics = list(
#'     loss = c(0.69, 0.42, 0.38), accuracy = c(0.76, 0.85, 0.86),
#'     val_loss = c(0.45, 0.40, 0.37), val_accuracy = c(0.84, 0.85, 0.87)
#'   )
#' )
#' plot(history, method = "base")
#' if (requireNamespace("ggplot2", quietly = TRUE)) plot(history)
#' @export
plot.keras_training_history <- function(x, y, metrics = NULL,
                                        method = c("auto", "ggplot2", "base"),
                                        smooth = getOption("keras.plot.history.smooth", TRUE),
                                        theme_bw = getOption("keras.plot.history.theme_bw", FALSE),
                                        ...) {
  method <- match.arg(method)
  if (method == "auto") {
    method <- if (requireNamespace("ggplot2", quietly = TRUE)) "ggplot2" else "base"
  }
  if (method == "ggplot2" && !requireNamespace("ggplot2", quietly = TRUE)) {
    stop("`method = \"ggplot2\"` needs the ggplot2 package; install it or use ",
         "`method = \"base\"`.", call. = FALSE)
  }

  df <- as.data.frame(x)
  if (is.null(metrics)) {
    metrics <- Filter(function(name) !grepl("^val_", name), names(x$metrics))
  }
  unknown <- setdiff(metrics, levels(df$metric))
  if (length(unknown) > 0) {
    stop("`metrics` has ", paste0("'", unknown, "'", collapse = ", "),
         ", not in the history; it has ",
         paste0("'", levels(df$metric), "'", collapse = ", "), ".",
         call. = FALSE)
  }
  df <- df[df$metric %in% metrics, ]
  do_validation <- any(grepl("^val_", names(x$metrics)))

  if (method == "ggplot2") {
    return(plot_history_ggplot(df, do_validation, smooth, theme_bw,
                               x$params$epochs))
  }
  plot_history_base(df, metrics, do_validation, x$params$epochs, ...)
}

plot_history_ggplot <- function(df, do_validation, smooth, theme_bw, epochs) {
  # Integer breaks only: epochs are whole numbers.
  int_breaks <- function(x) pretty(x)[pretty(x) %% 1 == 0]

  if (do_validation) {
    if (theme_bw) {
      p <- ggplot2::ggplot(df, ggplot2::aes(
        .data$epoch, .data$value, color = .data$data, fill = .data$data,
        linetype = .data$data, shape = .data$data
      ))
    } else {
      p <- ggplot2::ggplot(df, ggplot2::aes(
        .data$epoch, .data$value, color = .data$data, fill = .data$data
      ))
    }
  } else {
    p <- ggplot2::ggplot(df, ggplot2::aes(.data$epoch, .data$value))
  }

  smooth_args <- list(se = FALSE, method = "loess", na.rm = TRUE,
                      formula = y ~ x)
  environment(smooth_args$formula) <- baseenv()

  if (theme_bw) {
    smooth_args$linewidth <- 0.5
    smooth_args$color <- "gray47"
    p <- p +
      ggplot2::theme_bw() +
      ggplot2::geom_point(col = 1, na.rm = TRUE, size = 2) +
      ggplot2::scale_shape(solid = FALSE)
  } else {
    p <- p + ggplot2::geom_point(shape = 21, col = 1, na.rm = TRUE)
  }

  # loess needs enough points to be meaningful.
  if (smooth && epochs >= 10) {
    p <- p + do.call(ggplot2::geom_smooth, smooth_args)
  }

  p +
    ggplot2::facet_grid(metric ~ ., switch = "y", scales = "free_y") +
    ggplot2::scale_x_continuous(breaks = int_breaks) +
    ggplot2::theme(
      axis.title.y = ggplot2::element_blank(),
      strip.placement = "outside",
      strip.text = ggplot2::element_text(colour = "black", size = 11),
      strip.background = ggplot2::element_rect(fill = NA, color = NA)
    )
}

plot_history_base <- function(df, metrics, do_validation, epochs, ...) {
  op <- graphics::par(mfrow = c(length(metrics), 1), mar = c(3, 3, 2, 2))
  on.exit(graphics::par(op), add = TRUE)

  for (i in seq_along(metrics)) {
    metric <- metrics[[i]]
    top_plot <- i == 1
    bottom_plot <- i == length(metrics)

    # Panels share the x axis: only the bottom one shows it.
    mar <- c(1.5, 5, 0.5, 1.5)
    if (top_plot) mar[3] <- mar[3] + 3.5
    if (bottom_plot) mar[1] <- mar[1] + 3.5
    graphics::par(mar = mar)

    df2 <- df[df$metric == metric, ]
    graphics::plot(df2$epoch, df2$value, pch = c(1, 4)[df2$data],
                   xaxt = if (bottom_plot) "s" else "n",
                   xlab = "epoch", ylab = metric, ...)

    # Put the legend where the curve is not: top right for a falling metric.
    training <- df2$value[df2$data == "training"]
    falling <- isTRUE(training[1] > training[epochs])
    legend_location <- if (falling) "topright" else "bottomright"
    if (do_validation) {
      graphics::legend(legend_location, legend = c(metric, paste0("val_", metric)),
                       pch = c(1, 4))
    } else {
      graphics::legend(legend_location, legend = metric, pch = 1)
    }
  }
  invisible(NULL)
}

#' Convert a training history to a data frame
#'
#' Turns a training history into a long data frame with one row per epoch and
#' metric, as keras3 does; this is what `plot()` draws.
#'
#' @param x A `keras_training_history` object, as returned by `fit()`.
#' @param ... Unused.
#'
#' @returns A data frame with columns `epoch` (integer), `value` (numeric,
#'   `NA` for epochs not trained), `metric` (factor: the metric name without
#'   its `val_` prefix) and `data` (factor with levels `"training"` and
#'   `"validation"`).
#'
#' @examples
#' history <- rustkeras:::new_keras_training_history(
#'   params = list(verbose = 1L, epochs = 2L, steps = 375L),
#'   metrics = list(loss = c(0.69, 0.42), val_loss = c(0.45, 0.40))
#' )
#' as.data.frame(history)
#' @export
as.data.frame.keras_training_history <- function(x, ...) {
  epochs <- x$params$epochs
  metric_names <- names(x$metrics)

  # Pad with NA to the planned number of epochs (training may stop early).
  values <- lapply(x$metrics, function(v) {
    v <- as.numeric(v)
    length(v) <- epochs
    v
  })

  df <- data.frame(
    epoch = rep(seq_len(epochs), times = length(metric_names)),
    value = as.numeric(unlist(values, use.names = FALSE)),
    metric = rep(sub("^val_", "", metric_names), each = epochs),
    data = rep(grepl("^val_", metric_names), each = epochs)
  )
  df$data <- factor(df$data, c(FALSE, TRUE), c("training", "validation"))
  df$metric <- factor(df$metric, unique(sub("^val_", "", metric_names)))
  df
}

# ggplot2's aes() evaluates .data inside its data mask.
utils::globalVariables(".data")
