# summary() must print Keras 3's table byte for byte. The expected text is the verbatim
# output of keras 3.15.1 (JAX backend) in /work/shared/reference/keras-formats.md,
# section "Verbatim: the workshop MLP at width 80". Layers get explicit names so that the
# per-session name counters do not matter.

workshop_mlp <- function(name = "sequential") {
  keras_model_sequential(input_shape = c(784), name = name) %>%
    layer_dense(units = 256, activation = "relu", name = "dense") %>%
    layer_dropout(rate = 0.4, name = "dropout") %>%
    layer_dense(units = 128, activation = "relu", name = "dense_1") %>%
    layer_dropout(rate = 0.3, name = "dropout_1") %>%
    layer_dense(units = 10, activation = "softmax", name = "dense_2")
}

keras_table_80 <- c(
  'Model: "sequential"',
  "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓",
  "┃ Layer (type)                      ┃ Output Shape             ┃       Param # ┃",
  "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩",
  "│ dense (Dense)                     │ (None, 256)              │       200,960 │",
  "├───────────────────────────────────┼──────────────────────────┼───────────────┤",
  "│ dropout (Dropout)                 │ (None, 256)              │             0 │",
  "├───────────────────────────────────┼──────────────────────────┼───────────────┤",
  "│ dense_1 (Dense)                   │ (None, 128)              │        32,896 │",
  "├───────────────────────────────────┼──────────────────────────┼───────────────┤",
  "│ dropout_1 (Dropout)               │ (None, 128)              │             0 │",
  "├───────────────────────────────────┼──────────────────────────┼───────────────┤",
  "│ dense_2 (Dense)                   │ (None, 10)               │         1,290 │",
  "└───────────────────────────────────┴──────────────────────────┴───────────────┘"
)

keras_footer <- c(
  " Total params: 235,146 (918.54 KB)",
  " Trainable params: 235,146 (918.54 KB)",
  " Non-trainable params: 0 (0.00 B)"
)

test_that("summary() of the workshop MLP at width 80 is Keras's text", {
  model <- workshop_mlp()
  out <- capture.output(text <- summary(model, line_length = 80))
  expect_identical(out, c(keras_table_80, keras_footer))
  expect_identical(text, out)
  expect_true(all(nchar(out[2:14]) == 80L))
})

test_that("summary() and print() follow getOption('width') as keras3 does", {
  model <- workshop_mlp()
  withr::local_options(width = 80)
  expect_identical(capture.output(summary(model)), c(keras_table_80, keras_footer))
  expect_identical(capture.output(print(model)), c(keras_table_80, keras_footer))
  expect_identical(format(model), c(keras_table_80, keras_footer))

  # keras3's vignettes knit at width 76: columns of 33 / 24 / 15 characters.
  withr::local_options(width = 76)
  out <- capture.output(summary(model))
  expect_identical(out[3], "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃")
  expect_identical(out[5], "│ dense (Dense)                   │ (None, 256)            │       200,960 │")
  expect_true(all(nchar(out[2:14]) == 76L))

  # keras3 caps the table at 180 characters.
  withr::local_options(width = 250)
  expect_equal(nchar(capture.output(summary(model))[2]), 180L)
})

test_that("print() returns the model invisibly; summary() returns the text invisibly", {
  model <- workshop_mlp()
  out <- capture.output(res <- withVisible(print(model, line_length = 80)))
  expect_identical(out, c(keras_table_80, keras_footer))
  expect_false(res$visible)
  expect_identical(res$value, model)
  out <- capture.output(res <- withVisible(summary(model, line_length = 80)))
  expect_false(res$visible)
  expect_identical(res$value, out)
})

test_that("after compile() and fit() the footer counts RMSprop's variables", {
  model <- workshop_mlp()
  model %>% compile(loss = "categorical_crossentropy", optimizer = optimizer_rmsprop(),
                    metrics = "accuracy")
  # Compiled but not trained: no optimizer variables yet, as in Keras.
  expect_identical(tail(capture.output(summary(model, line_length = 80)), 3), keras_footer)

  set_random_seed(1)
  x <- matrix(runif(64 * 784), 64)
  y <- to_categorical(sample(0:9, 64, replace = TRUE), 10)
  fit(model, x, y, epochs = 1, batch_size = 32, verbose = 0)
  out <- capture.output(summary(model, line_length = 80))
  expect_identical(out[1:14], keras_table_80)
  expect_identical(out[15:18], c(
    " Total params: 470,294 (1.79 MB)",
    " Trainable params: 235,146 (918.54 KB)",
    " Non-trainable params: 0 (0.00 B)",
    " Optimizer params: 235,148 (918.55 KB)"
  ))
})

test_that("an unbuilt model shows '?' and '0 (unbuilt)' until it sees data", {
  model <- keras_model_sequential(name = "lazy") %>%
    layer_dense(units = 4, name = "hidden") %>%
    layer_dense(units = 2, name = "out")
  out <- capture.output(summary(model, line_length = 80))
  expect_identical(out[1], 'Model: "lazy"')
  expect_identical(out[5], "│ hidden (Dense)                    │ ?                        │   0 (unbuilt) │")
  expect_identical(out[9], " Total params: 0 (0.00 B)")

  predict(model, matrix(0, 3, 5), verbose = 0)
  out <- capture.output(summary(model, line_length = 80))
  expect_identical(out[5], "│ hidden (Dense)                    │ (None, 4)                │            24 │")
  expect_identical(out[7], "│ out (Dense)                       │ (None, 2)                │            10 │")
  expect_identical(out[9], " Total params: 34 (136.00 B)")
})

test_that("sizes are Keras's readable_memory_size and counts have thousands separators", {
  expect_identical(readable_size(0), "0.00 B")
  expect_identical(readable_size(1023), "1023.00 B")
  expect_identical(readable_size(1024), "1.00 KB")
  expect_identical(readable_size(4 * 235146), "918.54 KB")
  expect_identical(readable_size(4 * 470294), "1.79 MB")
  expect_identical(readable_size(4 * 25636712), "97.80 MB")
  expect_identical(format_count(c(0, 999, 1000, 235146, 25636712)),
                   c("0", "999", "1,000", "235,146", "25,636,712"))
})

test_that("model names count up per session and an explicit name is used", {
  a <- model_info(keras_model_sequential(input_shape = 2))$name
  b <- model_info(keras_model_sequential(input_shape = 2))$name
  index <- function(name) as.integer(ifelse(name == "sequential", "0", sub("^sequential_", "", name)))
  expect_match(c(a, b), "^sequential(_[0-9]+)?$")
  expect_equal(index(b), index(a) + 1L)
  expect_identical(capture.output(summary(workshop_mlp("my_mlp"), line_length = 80))[1],
                   'Model: "my_mlp"')
})

test_that("summary() wraps a long layer cell over two lines, as Keras does", {
  model <- keras_model_sequential(input_shape = c(8, 8, 3)) %>%
    layer_batch_normalization(name = "batch_normalization")
  out <- capture.output(summary(model, line_length = 80))
  i <- grep("batch_normalization", out, fixed = TRUE)
  expect_equal(out[i], paste0("\u2502 batch_normalization               \u2502 (None, 8, 8, 3)          \u2502",
                              "            12 \u2502"))
  expect_equal(out[i + 1], paste0("\u2502 (BatchNormalization)              \u2502                          \u2502",
                                  "               \u2502"))
  expect_true(all(nchar(out[2:(i + 2)]) == 80))
})

test_that("long cells wrap at word boundaries inside their column, as rich does", {
  # keras-formats.md: `global_average_pooling2d` on one line and
  # `(GlobalAveragePooling2D)` on the next.
  model <- keras_model_sequential(input_shape = c(4, 4, 3), name = "wrapped") %>%
    layer_global_average_pooling_2d(name = "global_average_pooling2d") %>%
    layer_dense(2, name = "dense")
  out <- capture.output(summary(model, line_length = 80))
  expect_identical(out[5:8], c(
    "│ global_average_pooling2d          │ (None, 3)                │             0 │",
    "│ (GlobalAveragePooling2D)          │                          │               │",
    "├───────────────────────────────────┼──────────────────────────┼───────────────┤",
    "│ dense (Dense)                     │ (None, 2)                │             8 │"
  ))
  expect_true(all(nchar(out[2:9]) == 80L))
  # A word longer than the column is cut into pieces of the column's width.
  long <- keras_model_sequential(input_shape = 3) %>%
    layer_dense(1, name = strrep("a", 40))
  out <- capture.output(summary(long, line_length = 80))
  expect_identical(substr(out[5:7], 1, 37), c(
    paste0("│ ", strrep("a", 33), " │"),
    paste0("│ ", strrep("a", 7), " (Dense)", strrep(" ", 18), " │"),
    "└───────────────────────────────────┴"
  ))
})
