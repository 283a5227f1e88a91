# Callbacks in fit(): Keras's rules for stopping early, lowering the learning rate,
# scheduling it, saving checkpoints and logging, checked on trainings whose course is
# known (plain SGD on a linear regression: the loss goes down every epoch).

regression <- function(seed = 1) {
  set_random_seed(seed)
  set.seed(seed)
  x <- matrix(runif(256 * 3), ncol = 3)
  y <- x %*% c(2, -1, 0.5) + 0.3
  model <- keras_model_sequential(input_shape = 3) %>% layer_dense(1, name = "d")
  model %>% compile(optimizer = optimizer_sgd(0.05), loss = "mse", metrics = "mae")
  list(model = model, x = x, y = y)
}

test_that("early stopping stops after `patience` epochs without improvement and can restore weights", {
  r <- regression()
  seen <- list()
  record <- callback_lambda(on_epoch_end = function(epoch, logs) {
    seen[[epoch + 1L]] <<- get_weights(r$model)
  })
  # In "max" mode a falling loss never improves after the first epoch: epochs 0, 1, 2 run.
  stopper <- callback_early_stopping(monitor = "loss", mode = "max", patience = 2,
                                     restore_best_weights = TRUE, verbose = 1)
  out <- capture.output(h <- fit(r$model, r$x, r$y, epochs = 20, batch_size = 32, verbose = 0,
                                 shuffle = FALSE, callbacks = list(record, stopper)))
  expect_length(h$metrics$loss, 3)
  expect_true(all(diff(h$metrics$loss) < 0))
  expect_equal(out, c("Epoch 3: early stopping",
                      "Restoring model weights from the end of the best epoch: 1."))
  expect_equal(get_weights(r$model), seen[[1]])

  # Improving every epoch: all epochs run; min_delta larger than the gains stops it.
  r <- regression()
  h <- fit(r$model, r$x, r$y, epochs = 4, batch_size = 32, verbose = 0,
           callbacks = list(callback_early_stopping(monitor = "loss", patience = 0)))
  expect_length(h$metrics$loss, 4)
  r <- regression()
  h <- fit(r$model, r$x, r$y, epochs = 10, batch_size = 32, verbose = 0,
           callbacks = list(callback_early_stopping(monitor = "loss", min_delta = 100)))
  expect_length(h$metrics$loss, 2)
  # start_from_epoch: nothing is watched before it.
  r <- regression()
  h <- fit(r$model, r$x, r$y, epochs = 10, batch_size = 32, verbose = 0,
           callbacks = list(callback_early_stopping(monitor = "loss", mode = "max",
                                                    start_from_epoch = 3)))
  expect_length(h$metrics$loss, 5)
})

test_that("the hooks follow Keras's rules on given logs", {
  r <- regression()
  cb <- callback_early_stopping(monitor = "val_loss", patience = 1, baseline = 0.5)
  cb$on_train_begin(r$model)
  # Better than before but not than the baseline: the wait is not reset, and the first
  # epoch that does not improve at all stops (an improving epoch never stops).
  expect_null(cb$on_epoch_end(r$model, 0L, list(val_loss = 0.9))$stop)
  expect_null(cb$on_epoch_end(r$model, 1L, list(val_loss = 0.8))$stop)
  expect_true(cb$on_epoch_end(r$model, 2L, list(val_loss = 0.85))$stop)
  cb <- callback_early_stopping(monitor = "val_accuracy", patience = 1)
  cb$on_train_begin(r$model)
  expect_null(cb$on_epoch_end(r$model, 0L, list(val_accuracy = 0.5))$stop)
  expect_null(cb$on_epoch_end(r$model, 1L, list(val_accuracy = 0.6))$stop)
  expect_true(cb$on_epoch_end(r$model, 2L, list(val_accuracy = 0.55))$stop)
  expect_warning(cb$on_epoch_end(r$model, 3L, list(loss = 1)), "`val_accuracy`, which is not available")
  cb <- callback_early_stopping(monitor = "something")
  expect_error(cb$on_train_begin(r$model), "give `mode = \"min\"` or `mode = \"max\"`")
})

test_that("reduce_lr_on_plateau and the scheduler set the learning rate Keras's way", {
  r <- regression()
  h <- fit(r$model, r$x, r$y, epochs = 4, batch_size = 32, verbose = 0,
           callbacks = list(callback_reduce_lr_on_plateau(monitor = "loss", mode = "max",
                                                          factor = 0.5, patience = 1)))
  expect_equal(h$metrics$learning_rate, c(0.05, 0.05, 0.025, 0.0125), tolerance = 1e-7)
  expect_equal(rustkeras:::rk_call(rustkeras:::rk_model_learning_rate(r$model$ptr)), 0.00625,
               tolerance = 1e-7)
  # cooldown: after a cut, that many epochs pass before counting again.
  r <- regression()
  h <- fit(r$model, r$x, r$y, epochs = 5, batch_size = 32, verbose = 0,
           callbacks = list(callback_reduce_lr_on_plateau(monitor = "loss", mode = "max",
                                                          factor = 0.5, patience = 1, cooldown = 2)))
  expect_equal(h$metrics$learning_rate, c(0.05, 0.05, 0.025, 0.025, 0.0125), tolerance = 1e-7)

  r <- regression()
  sched <- callback_learning_rate_scheduler(function(epoch, lr) if (epoch == 1) 0 else 0.1 / (epoch + 1))
  w <- NULL
  keep <- callback_lambda(on_epoch_begin = function(epoch, logs) if (epoch == 1) w <<- get_weights(r$model),
                          on_epoch_end = function(epoch, logs) {
                            # A learning rate of 0 leaves the weights as they were.
                            if (epoch == 1) expect_equal(get_weights(r$model), w)
                          })
  h <- fit(r$model, r$x, r$y, epochs = 3, batch_size = 32, verbose = 0, callbacks = list(sched, keep))
  expect_equal(h$metrics$learning_rate, c(0.1, 0, 0.1 / 3), tolerance = 1e-7)
  expect_error(fit(r$model, r$x, r$y, epochs = 1, verbose = 0,
                   callbacks = list(callback_learning_rate_scheduler(function(epoch, lr) "fast"))),
               "must return one number")
})

test_that("checkpoints are saved with Keras's file names, and the CSV log matches the history", {
  r <- regression()
  dir <- withr::local_tempdir()
  ck <- callback_model_checkpoint(file.path(dir, "sub", "m-{epoch:02d}-{loss:.3f}.keras"),
                                  monitor = "loss", save_best_only = TRUE)
  csv <- file.path(dir, "log.csv")
  h <- fit(r$model, r$x, r$y, epochs = 3, batch_size = 32, verbose = 0,
           callbacks = list(ck, callback_csv_logger(csv)))
  files <- sort(list.files(file.path(dir, "sub")))
  expect_equal(files, sprintf("m-%02d-%.3f.keras", 1:3, h$metrics$loss))
  last <- load_model(file.path(dir, "sub", files[3]))
  expect_equal(predict(last, r$x, verbose = 0), predict(r$model, r$x, verbose = 0))
  logged <- read.csv(csv)
  expect_equal(names(logged), c("epoch", "loss", "mae", "val_loss", "val_mae"))
  expect_equal(logged$epoch, 0:2)
  expect_equal(logged$loss, h$metrics$loss)
  expect_true(all(is.na(logged$val_loss)))
  # Weights only, and the name rules.
  w <- file.path(dir, "w.weights.h5")
  fit(r$model, r$x, r$y, epochs = 1, verbose = 0,
      callbacks = list(callback_model_checkpoint(w, save_weights_only = TRUE)))
  expect_true(file.exists(w))
  expect_error(callback_model_checkpoint(file.path(dir, "w.h5"), save_weights_only = TRUE),
               "must end in .weights.h5")
  expect_error(callback_model_checkpoint(file.path(dir, "m.rds")), "must end in .keras or .h5")
  expect_error(fit(r$model, r$x, r$y, epochs = 1, verbose = 0,
                   callbacks = list(callback_model_checkpoint(file.path(dir, "{nope}.keras")))),
               "uses \\{nope\\}")
})

test_that("fit() prints Keras's epoch headers with callbacks, and refuses what it does not know", {
  r <- regression()
  out <- capture.output(fit(r$model, r$x, r$y, epochs = 3, initial_epoch = 2, verbose = 2,
                            callbacks = list(callback_lambda())))
  expect_equal(grep("^Epoch", out, value = TRUE), c("Epoch 2/3", "Epoch 3/3"))
  expect_error(fit(r$model, r$x, r$y, callbacks = list("early")), "`callbacks` must be a list of callbacks")
  expect_error(fit(r$model, r$x, r$y, class_weight = list(1)), "`class_weight` is not supported yet")
  expect_error(fit(r$model, r$x, r$y, validation_freq = 2), "`validation_freq` is not supported yet")
  # keras3's RStudio viewer switch and the default validation_freq change nothing here.
  h <- fit(r$model, r$x, r$y, epochs = 1, verbose = 0, view_metrics = FALSE, validation_freq = 1)
  expect_length(h$metrics$loss, 1)
  expect_error(fit(r$model, r$x, r$y, valdation_split = 0.1),
               "Unrecognized arguments passed to fit\\(\\): `valdation_split`")
  expect_error(callback_reduce_lr_on_plateau(factor = 2), "`factor` must be in \\(0, 1\\)")
  expect_error(callback_early_stopping(patience = -1), "`patience` must be a whole number")
  expect_error(callback_lambda(on_batch_end = function(batch, logs) NULL), "not supported yet")
  expect_output(print(callback_early_stopping()), "<callback early_stopping>")
})
