example_history <- function(epochs = 3L, validation = TRUE, trained = epochs) {
  metrics <- list(
    loss = c(0.6970, 0.4512, 0.3126)[seq_len(trained)],
    accuracy = c(0.7831, 0.8421, 0.8853)[seq_len(trained)]
  )
  if (validation) {
    metrics$val_loss <- c(0.4431, 0.3870, 0.3552)[seq_len(trained)]
    metrics$val_accuracy <- c(0.8402, 0.8597, 0.87234)[seq_len(trained)]
  }
  new_keras_training_history(
    params = list(verbose = 1L, epochs = epochs, steps = 375L),
    metrics = metrics
  )
}

test_that("a history has keras3's structure", {
  h <- example_history()
  expect_s3_class(h, "keras_training_history")
  expect_named(h, c("params", "metrics"))
  expect_named(h$params, c("verbose", "epochs", "steps"))
  expect_named(h$metrics, c("loss", "accuracy", "val_loss", "val_accuracy"))
  expect_identical(h$metrics$accuracy, c(0.7831, 0.8421, 0.8853))
  expect_error(new_keras_training_history(list(), list(loss = 1)))
  expect_error(new_keras_training_history(list(epochs = 1), list(loss = "a")))
})

test_that("print() shows the final epoch as keras3 does", {
  # keras3: right-aligned names, 4 significant digits, trailing " \n" from cat()
  expect_output(
    print(example_history()),
    paste0(
      "^\nFinal epoch \\(plot to see history\\):\n",
      "        loss: 0.3126\n",
      "    accuracy: 0.8853\n",
      "    val_loss: 0.3552\n",
      "val_accuracy: 0.8723 $"
    )
  )
  out <- capture.output(res <- print(example_history(validation = FALSE)))
  expect_identical(out, c("", "Final epoch (plot to see history):",
                          "    loss: 0.3126", "accuracy: 0.8853 "))
  expect_s3_class(res, "keras_training_history")
})

test_that("print() reports the last epoch trained when training stopped early", {
  out <- capture.output(print(example_history(epochs = 10L, trained = 2L)))
  expect_identical(out[3], "        loss: 0.4512")
})

test_that("as.data.frame() gives keras3's long format", {
  df <- as.data.frame(example_history())
  expect_named(df, c("epoch", "value", "metric", "data"))
  expect_identical(nrow(df), 12L)
  expect_identical(df$epoch, rep(1:3, 4))
  expect_identical(df$value, c(0.6970, 0.4512, 0.3126, 0.7831, 0.8421, 0.8853,
                               0.4431, 0.3870, 0.3552, 0.8402, 0.8597, 0.87234))
  expect_identical(levels(df$metric), c("loss", "accuracy"))
  expect_identical(as.character(df$metric),
                   rep(c("loss", "accuracy", "loss", "accuracy"), each = 3))
  expect_identical(levels(df$data), c("training", "validation"))
  expect_identical(as.character(df$data),
                   rep(c("training", "validation"), each = 6))
})

test_that("as.data.frame() pads epochs not trained with NA", {
  df <- as.data.frame(example_history(epochs = 5L, trained = 2L, validation = FALSE))
  expect_identical(nrow(df), 10L)
  expect_identical(df$value, c(0.6970, 0.4512, NA, NA, NA, 0.7831, 0.8421, NA, NA, NA))
})

test_that("plot() with base graphics draws and returns NULL invisibly", {
  pdf(NULL)
  on.exit(dev.off(), add = TRUE)
  expect_invisible(res <- plot(example_history(), method = "base"))
  expect_null(res)
  expect_null(plot(example_history(validation = FALSE), method = "base"))
  expect_null(plot(example_history(), metrics = "loss", method = "base"))
})

test_that("plot() with ggplot2 returns a ggplot that renders", {
  skip_if_not_installed("ggplot2")
  pdf(NULL)
  on.exit(dev.off(), add = TRUE)
  p <- plot(example_history(), method = "ggplot2")
  expect_s3_class(p, "ggplot")
  expect_identical(sort(unique(as.character(p$data$metric))), c("accuracy", "loss"))
  expect_no_error(print(p))

  p <- plot(example_history(validation = FALSE), theme_bw = TRUE)
  expect_s3_class(p, "ggplot")
  expect_no_error(print(p))

  # ten epochs or more get a loess smooth
  long <- new_keras_training_history(
    params = list(verbose = 1L, epochs = 12L, steps = 10L),
    metrics = list(loss = 1 / (1:12), val_loss = 1.1 / (1:12))
  )
  p <- plot(long, method = "ggplot2")
  expect_true(any(vapply(p$layers, function(l) inherits(l$geom, "GeomSmooth"),
                         logical(1))))
  expect_no_error(print(p))
})

test_that("plot() rejects unknown metrics", {
  expect_error(plot(example_history(), metrics = "mae", method = "base"),
               "`metrics` has 'mae'")
})
