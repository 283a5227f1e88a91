# Recurrent layers: layer_simple_rnn(), layer_lstm(), layer_gru(), as keras3's, on
# (samples, steps, features) arrays.

#' Recurrent layers: LSTM, GRU and simple RNN
#'
#' Run a recurrent cell over the steps of sequences shaped (samples, steps, features):
#' Keras's `LSTM` (long short-term memory), `GRU` (gated recurrent unit; Keras 3's default
#' `reset_after = TRUE` form, or the original one) and `SimpleRNN` (`h = activation(x W +
#' h U + b)`). The output is the last step's state, `(samples, units)`, or every step's
#' with `return_sequences = TRUE`, `(samples, steps, units)`, to stack another recurrent
#' layer on top. Weights as Keras stores them: `kernel` (features, gates x units),
#' `recurrent_kernel` (units, gates x units) and `bias`.
#'
#' @inheritParams layer_dense
#' @param units Positive integer, the size of the state.
#' @param activation Activation of the state (default `"tanh"`).
#' @param recurrent_activation Activation of the gates (default `"sigmoid"`).
#' @param recurrent_initializer Initializer of the recurrent kernel (default
#'   `"orthogonal"`).
#' @param unit_forget_bias Whether the LSTM's forget-gate bias starts at 1 (default
#'   `TRUE`, as in Keras).
#' @param reset_after GRU only: apply the reset gate after the recurrent product
#'   (Keras 3's default `TRUE`; the bias is then `(2, 3 * units)`).
#' @param kernel_regularizer,recurrent_regularizer,bias_regularizer Penalties on the
#'   weights, such as [regularizer_l2()], or `NULL`.
#' @param return_sequences Whether to return every step's output (default `FALSE`: the
#'   last one).
#' @param go_backwards Whether to read the sequence backwards (the outputs then come in
#'   that order, as in Keras).
#' @param dropout,recurrent_dropout Must be 0 (dropout inside the cell is not supported
#'   yet; a [layer_dropout()] after the layer is).
#' @param return_state,stateful Must be `FALSE` (not supported yet).
#' @param activity_regularizer,kernel_constraint,recurrent_constraint,bias_constraint Not
#'   supported yet; must be `NULL`.
#' @param seed,unroll,use_cudnn Accepted for keras3 compatibility; they change nothing
#'   here.
#' @param name Name of the layer; `NULL` gives `"lstm"`, `"lstm_1"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = c(10, 3)) %>%
#'   layer_lstm(16, return_sequences = TRUE) %>%
#'   layer_gru(8) %>%
#'   layer_dense(1)
#' summary(model)
layer_lstm <- function(object, units, activation = "tanh", recurrent_activation = "sigmoid",
                       use_bias = TRUE, kernel_initializer = "glorot_uniform",
                       recurrent_initializer = "orthogonal", bias_initializer = "zeros",
                       unit_forget_bias = TRUE, kernel_regularizer = NULL,
                       recurrent_regularizer = NULL, bias_regularizer = NULL,
                       activity_regularizer = NULL, kernel_constraint = NULL,
                       recurrent_constraint = NULL, bias_constraint = NULL, dropout = 0,
                       recurrent_dropout = 0, seed = NULL, return_sequences = FALSE,
                       return_state = FALSE, go_backwards = FALSE, stateful = FALSE,
                       unroll = FALSE, use_cudnn = "auto", name = NULL, ...) {
  call <- rk_user_call(environment())
  check_flag(unit_forget_bias, "unit_forget_bias", call)
  config <- rnn_config(units, activation, recurrent_activation, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, dropout, recurrent_dropout,
                       return_sequences, return_state, go_backwards, stateful, name, call)
  config$unit_forget_bias <- unit_forget_bias
  create_layer(object, "LSTM", c(config, rnn_extras(
    kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, recurrent_constraint, bias_constraint, call)), call)
}

#' @rdname layer_lstm
#' @export
layer_gru <- function(object, units, activation = "tanh", recurrent_activation = "sigmoid",
                      use_bias = TRUE, kernel_initializer = "glorot_uniform",
                      recurrent_initializer = "orthogonal", bias_initializer = "zeros",
                      kernel_regularizer = NULL, recurrent_regularizer = NULL,
                      bias_regularizer = NULL, activity_regularizer = NULL,
                      kernel_constraint = NULL, recurrent_constraint = NULL,
                      bias_constraint = NULL, dropout = 0, recurrent_dropout = 0, seed = NULL,
                      return_sequences = FALSE, return_state = FALSE, go_backwards = FALSE,
                      stateful = FALSE, unroll = FALSE, reset_after = TRUE, use_cudnn = "auto",
                      name = NULL, ...) {
  call <- rk_user_call(environment())
  check_flag(reset_after, "reset_after", call)
  config <- rnn_config(units, activation, recurrent_activation, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, dropout, recurrent_dropout,
                       return_sequences, return_state, go_backwards, stateful, name, call)
  config$reset_after <- reset_after
  create_layer(object, "GRU", c(config, rnn_extras(
    kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, recurrent_constraint, bias_constraint, call)), call)
}

#' @rdname layer_lstm
#' @export
layer_simple_rnn <- function(object, units, activation = "tanh", use_bias = TRUE,
                             kernel_initializer = "glorot_uniform",
                             recurrent_initializer = "orthogonal", bias_initializer = "zeros",
                             kernel_regularizer = NULL, recurrent_regularizer = NULL,
                             bias_regularizer = NULL, activity_regularizer = NULL,
                             kernel_constraint = NULL, recurrent_constraint = NULL,
                             bias_constraint = NULL, dropout = 0, recurrent_dropout = 0,
                             return_sequences = FALSE, return_state = FALSE,
                             go_backwards = FALSE, stateful = FALSE, unroll = FALSE,
                             seed = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  config <- rnn_config(units, activation, NULL, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, dropout, recurrent_dropout,
                       return_sequences, return_state, go_backwards, stateful, name, call)
  create_layer(object, "SimpleRNN", c(config, rnn_extras(
    kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer,
    kernel_constraint, recurrent_constraint, bias_constraint, call)), call)
}

rnn_config <- function(units, activation, recurrent_activation, use_bias, kernel_initializer,
                       recurrent_initializer, bias_initializer, dropout, recurrent_dropout,
                       return_sequences, return_state, go_backwards, stateful, name, call) {
  units <- check_positive_int(units, "units", call)
  for (arg in c("dropout", "recurrent_dropout")) {
    v <- get(arg)
    check_number(v, arg, call)
    if (v != 0) {
      rk_abort(sprintf("`%s` = %s is not supported yet; only 0 (add layer_dropout() after the layer).",
                       arg, format(v)), kind = "argument", call = call)
    }
  }
  for (arg in c("return_state", "stateful")) {
    if (!isFALSE(get(arg))) {
      rk_abort(sprintf("`%s = TRUE` is not supported yet.", arg), kind = "argument", call = call)
    }
  }
  check_flag(use_bias, "use_bias", call)
  check_flag(return_sequences, "return_sequences", call)
  check_flag(go_backwards, "go_backwards", call)
  for (arg in c("kernel_initializer", "recurrent_initializer", "bias_initializer")) {
    check_string(get(arg), arg, call)
  }
  if (!is.null(name)) check_string(name, "name", call)
  config <- list(units = units, activation = activation_name(activation, call))
  if (!is.null(recurrent_activation)) {
    config$recurrent_activation <- activation_name(recurrent_activation, call)
  }
  c(config, list(use_bias = use_bias, kernel_initializer = kernel_initializer,
                 recurrent_initializer = recurrent_initializer, bias_initializer = bias_initializer,
                 return_sequences = return_sequences, go_backwards = go_backwards, name = name))
}

rnn_extras <- function(kernel_regularizer, recurrent_regularizer, bias_regularizer,
                       activity_regularizer, kernel_constraint, recurrent_constraint,
                       bias_constraint, call) {
  check_unsupported_null(list(activity_regularizer = activity_regularizer,
                              kernel_constraint = kernel_constraint,
                              recurrent_constraint = recurrent_constraint,
                              bias_constraint = bias_constraint), call)
  regularizer_config(list(kernel_regularizer = kernel_regularizer,
                          recurrent_regularizer = recurrent_regularizer,
                          bias_regularizer = bias_regularizer), call)
}

#' Run a recurrent layer over sequences in both directions
#'
#' Keras's Bidirectional wrapper: `layer` (from [layer_lstm()], [layer_gru()] or
#' [layer_simple_rnn()]) reads each sequence forwards and a copy reads it backwards; their
#' outputs are merged (`merge_mode`: `"concat"`, the default, doubles the units; `"sum"`,
#' `"ave"`, `"mul"`). With `return_sequences = TRUE` the backward outputs are put back in
#' time order first, as in Keras. The copies are named `forward_<name>` and
#' `backward_<name>`; the wrapper's weights are the forward layer's, then the backward
#' layer's.
#'
#' @inheritParams layer_dense
#' @param layer A recurrent layer not yet used in a model.
#' @param merge_mode How to merge the two outputs.
#' @param backward_layer Optional recurrent layer to use backwards (it must read the
#'   sequence the other way: `go_backwards = TRUE`); by default a copy of `layer`.
#' @param weights Must be `NULL` (use [set_weights()] afterwards).
#' @param name Name of the layer; `NULL` gives `"bidirectional"`, ...
#' @returns The model, invisibly, when `object` is a model; otherwise the layer.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 20) %>%
#'   layer_embedding(1000, 16) %>%
#'   layer_bidirectional(layer_lstm(units = 8)) %>%
#'   layer_dense(1, activation = "sigmoid")
#' summary(model)
layer_bidirectional <- function(object, layer, merge_mode = "concat", weights = NULL,
                                backward_layer = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  check_unsupported_null(list(weights = weights), call)
  recurrent <- function(x, arg) {
    if (!(inherits(x, "rustkeras_layer") && x$class_name %in% c("LSTM", "GRU", "SimpleRNN"))) {
      rk_abort(sprintf("`%s` must be a layer from layer_lstm(), layer_gru() or layer_simple_rnn().", arg),
               kind = "argument", call = call)
    }
    if (!is.null(layer_state(x)$ptr)) {
      rk_abort(sprintf("`%s` is already in use; give a new layer, as in layer_bidirectional(layer_lstm(16)).", arg),
               kind = "argument", call = call)
    }
    x$config
  }
  if (missing(layer)) rk_abort("`layer` is missing.", kind = "argument", call = call)
  config <- recurrent(layer, "layer")
  back <- if (!is.null(backward_layer)) recurrent(backward_layer, "backward_layer")
  if (is.null(merge_mode)) {
    rk_abort("`merge_mode = NULL` (two outputs) is not supported yet.", kind = "argument", call = call)
  }
  check_string(merge_mode, "merge_mode", call)
  if (!is.null(name)) check_string(name, "name", call)
  extras <- layer_extras(environment(), call)
  ptr <- rk_call(rk_bidirectional_new(layer$class_name, config,
                                      if (!is.null(back)) backward_layer$class_name, back,
                                      merge_mode, name), call = call)
  wrapper <- new_layer("Bidirectional", NULL, ptr)
  state <- layer_state(wrapper)
  state$input_shape <- extras$input_shape
  if (isFALSE(extras$trainable)) rk_call(rk_member_set_trainable(ptr, FALSE), call = call)
  if (missing(object) || is.null(object)) return(wrapper)
  compose_layer(object, wrapper, call)
}
