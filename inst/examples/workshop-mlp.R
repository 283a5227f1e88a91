# The keras3 workshop MLP, with only the library line and the data set changed.
library(rustkeras)
c(c(x_train, y_train), c(x_test, y_test)) %<-% dataset_fashion_mnist()
x_train <- array_reshape(x_train, c(nrow(x_train), 784))
x_test <- array_reshape(x_test, c(nrow(x_test), 784))
x_train <- x_train / 255
x_test <- x_test / 255
y_train <- to_categorical(y_train, 10)
y_test <- to_categorical(y_test, 10)
model <- keras_model_sequential(input_shape = c(784))
model %>%
  layer_dense(units = 256, activation = 'relu') %>%
  layer_dropout(rate = 0.4) %>%
  layer_dense(units = 128, activation = 'relu') %>%
  layer_dropout(rate = 0.3) %>%
  layer_dense(units = 10, activation = 'softmax')
summary(model)
model %>% compile(loss = 'categorical_crossentropy', optimizer = optimizer_rmsprop(), metrics = c('accuracy'))
history <- model %>% fit(x_train, y_train, epochs = 10, batch_size = 128, validation_split = 0.2)
plot(history)
model %>% evaluate(x_test, y_test)
model %>% predict(x_test[1:100,]) %>% apply(1, which.max) - 1
round(model %>% predict(x_test[1:9,]), 5)
