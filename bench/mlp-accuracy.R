# Test accuracy of the workshop MLP after 10 epochs, over seeds (issue 2's quality bar:
# at least 0.87). Run: Rscript bench/mlp-accuracy.R [seeds]   (about 6 s per seed)
library(rustkeras)
args <- commandArgs(trailingOnly = TRUE)
seeds <- seq_len(if (length(args)) as.integer(args[1]) else 5L)
c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()
x_train <- array_reshape(x_train, c(nrow(x_train), 784)) / 255
x_test <- array_reshape(x_test, c(nrow(x_test), 784)) / 255
y_train <- to_categorical(y_train, 10)
y_test <- to_categorical(y_test, 10)
acc <- vapply(seeds, function(s) {
  set_random_seed(s)
  model <- keras_model_sequential(input_shape = c(784)) %>%
    layer_dense(units = 256, activation = "relu") %>%
    layer_dropout(rate = 0.4) %>%
    layer_dense(units = 128, activation = "relu") %>%
    layer_dropout(rate = 0.3) %>%
    layer_dense(units = 10, activation = "softmax")
  model %>% compile(loss = "categorical_crossentropy", optimizer = optimizer_rmsprop(),
                    metrics = c("accuracy"))
  model %>% fit(x_train, y_train, epochs = 10, batch_size = 128, validation_split = 0.2, verbose = 0)
  a <- evaluate(model, x_test, y_test, verbose = 0)[["accuracy"]]
  cat(sprintf("seed %d: test accuracy %.4f\n", s, a))
  a
}, numeric(1))
cat(sprintf("min %.4f, mean %.4f, max %.4f over %d seeds\n", min(acc), mean(acc), max(acc), length(acc)))
