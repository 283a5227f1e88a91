# The keras3 workshop CNN, with only the library line and the data set changed.
library(rustkeras)
c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()
x_train <- array_reshape(x_train, c(nrow(x_train), 28, 28, 1)) / 255
x_test <- array_reshape(x_test, c(nrow(x_test), 28, 28, 1)) / 255
y_train <- to_categorical(y_train, 10)
y_test <- to_categorical(y_test, 10)
cnn <- keras_model_sequential(input_shape = c(28, 28, 1)) %>%
  layer_conv_2d(filters = 32, kernel_size = c(3, 3), activation = 'relu') %>%
  layer_max_pooling_2d(pool_size = c(2, 2)) %>%
  layer_conv_2d(filters = 64, kernel_size = c(3, 3), activation = 'relu') %>%
  layer_max_pooling_2d(pool_size = c(2, 2)) %>%
  layer_flatten() %>%
  layer_dense(units = 64, activation = 'relu') %>%
  layer_dense(units = 10, activation = 'softmax')
summary(cnn)
cnn %>% compile(optimizer = 'adam', loss = 'categorical_crossentropy', metrics = 'accuracy')
history <- cnn %>% fit(x_train, y_train, epochs = 2, batch_size = 128, validation_split = 0.2)
plot(history)
cnn %>% evaluate(x_test, y_test)
cnn %>% predict(x_test[1:20, , , , drop = FALSE]) %>% apply(1, which.max) - 1
