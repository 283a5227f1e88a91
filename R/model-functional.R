# The functional API: symbolic tensors from keras_input(), layers and models called on
# them, and keras_model() turning the graph between inputs and outputs into a model.
#
# A symbolic tensor records the call that made it (a node: the layer or model, and the
# tensors it was called on) and its shape. Layers are built at their first call, as in
# Keras, so a shape error stops the call that causes it. keras_model() walks back from
# the outputs, orders the calls by creation (a topological order) and sends the graph
# to the engine.

#' Create a symbolic input for a functional model
#'
#' `keras_input()` (and its alias `layer_input()`) makes the symbolic tensor a
#' functional model starts from. Layers called on it give further symbolic tensors;
#' [keras_model()] turns the graph between inputs and outputs into a model.
#'
#' @param shape Shape of one sample, without the batch axis, e.g. `c(28, 28, 1)`.
#' @param batch_size Optional fixed batch size (recorded, not enforced).
#' @param dtype Only `"float32"` (the default) is supported.
#' @param sparse Only `FALSE` (the default) is supported.
#' @param batch_shape Shape including the batch axis, as an alternative to `shape`
#'   (its first element may be `NA` or `NULL`).
#' @param name Name of the input layer; `NULL` gives `"input_layer"`, `"input_layer_1"`, ...
#' @param tensor Unsupported; must be `NULL`.
#' @param optional Unsupported; must be `FALSE`.
#' @returns A symbolic tensor (class `rustkeras_tensor`).
#' @export
#' @examples
#' inputs <- keras_input(shape = c(784))
#' outputs <- inputs %>% layer_dense(64, activation = "relu") %>% layer_dense(10)
#' model <- keras_model(inputs, outputs)
#' model
keras_input <- function(shape = NULL, batch_size = NULL, dtype = NULL, sparse = NULL,
                        batch_shape = NULL, name = NULL, tensor = NULL, optional = FALSE) {
  call <- rk_user_call(environment())
  if (!is.null(batch_shape)) {
    if (!is.null(shape)) {
      rk_abort("Give `shape` or `batch_shape`, not both.", kind = "argument", call = call)
    }
    batch_shape <- as.list(batch_shape)
    shape <- unlist(batch_shape[-1])
    if (is.null(batch_size) && length(batch_shape) && !is.null(batch_shape[[1]]) &&
        !is.na(batch_shape[[1]])) {
      batch_size <- batch_shape[[1]]
    }
  }
  if (is.null(shape) || !is_whole(shape)) {
    rk_abort(sprintf("`shape` must be a vector of positive integers%s, such as c(28, 28, 1), not %s.",
                     int_bound_note(shape), shown_value(shape)), kind = "argument", call = call)
  }
  if (!is.null(batch_size)) batch_size <- check_positive_int(batch_size, "batch_size", call)
  if (!is.null(dtype) && !identical(dtype, "float32")) {
    rk_abort(sprintf("`dtype` must be \"float32\" (the only type rustkeras computes in), not %s.",
                     shown_value(dtype)), kind = "argument", call = call)
  }
  if (isTRUE(sparse)) rk_abort("Sparse inputs are not supported.", kind = "argument", call = call)
  check_unsupported_null(list(tensor = tensor), call)
  if (!identical(optional, FALSE)) {
    rk_abort("`optional` inputs are not supported.", kind = "argument", call = call)
  }
  if (is.null(name)) {
    name <- rk_unique_name("input_layer")
  } else {
    check_string(name, "name", call)
  }
  node <- new_node("input")
  node$name <- name
  node$batch_size <- batch_size
  new_symbolic(node, 1L, as.integer(shape))
}

#' @rdname keras_input
#' @param ... Passed to `keras_input()`.
#' @export
layer_input <- function(...) keras_input(...)

new_node <- function(kind) {
  node <- new.env(parent = emptyenv())
  node$kind <- kind
  # Creation order is a topological order of the graph.
  .rk_graph$count <- .rk_graph$count + 1L
  node$id <- .rk_graph$count
  node
}

.rk_graph <- new.env(parent = emptyenv())
.rk_graph$count <- 0L

new_symbolic <- function(node, index, shape) {
  structure(list(node = node, index = index, shape = shape,
                 name = rk_unique_name("keras_tensor")),
            class = "rustkeras_tensor")
}

is_symbolic <- function(x) inherits(x, "rustkeras_tensor")

# A tensor or a (possibly named) list of tensors.
is_symbolic_list <- function(x) {
  is.list(x) && !is_symbolic(x) && length(x) > 0L && all(vapply(x, is_symbolic, logical(1)))
}

#' @export
print.rustkeras_tensor <- function(x, ...) {
  cat(format(x), "\n", sep = "")
  invisible(x)
}

#' @export
format.rustkeras_tensor <- function(x, ...) {
  sprintf("<KerasTensor shape=%s, dtype=float32, sparse=False, name=%s>",
          format_shape(x$shape), x$name)
}

#' @export
dim.rustkeras_tensor <- function(x) c(NA_integer_, x$shape)

# Calls `member` (a layer or a model object) on symbolic tensors; returns the output
# tensor, or a list of them for a model with several outputs. `training` (NULL, TRUE or
# FALSE) is Keras's argument of that call, kept in the graph: FALSE runs the member in
# inference mode even inside fit(), TRUE in training mode even in predict().
call_symbolic <- function(member, inputs, call, training = NULL) {
  tensors <- if (is_symbolic(inputs)) list(inputs) else unname(inputs)
  shapes <- lapply(tensors, function(t) t$shape)
  out_shapes <- rk_call(rk_member_call(member_handle(member, call), shapes), call = call)
  node <- new_node("call")
  node$member <- member
  node$inputs <- tensors
  node$training <- training
  outs <- lapply(seq_along(out_shapes), function(i) new_symbolic(node, i, out_shapes[[i]]))
  if (length(outs) == 1L) outs[[1]] else outs
}

#' Create a functional model
#'
#' A model from the graph of layer calls between `inputs` (from [keras_input()]) and
#' `outputs`, as keras3's `keras_model()`. Several inputs or outputs are given as
#' lists (named lists name them); a layer called more than once shares its weights,
#' and a model can be called like a layer inside another model.
#'
#' @param inputs A symbolic input, or a list of them.
#' @param outputs A symbolic tensor computed from `inputs`, or a list of them.
#' @param name Name of the model; `NULL` gives `"functional"`, `"functional_1"`, ...
#' @param ... Unused.
#' @returns A model of class `rustkeras_functional`.
#' @export
#' @examples
#' inputs <- keras_input(shape = c(32))
#' x <- inputs %>% layer_dense(16, activation = "relu")
#' outputs <- layer_add(list(x, inputs %>% layer_dense(16))) %>% layer_dense(1)
#' model <- keras_model(inputs, outputs)
#' summary(model)
keras_model <- function(inputs, outputs = NULL, name = NULL, ...) {
  call <- rk_user_call(environment())
  if (missing(inputs) || is.null(outputs)) {
    rk_abort("keras_model() needs `inputs` and `outputs`, the symbolic tensors the model maps between.",
             kind = "argument", call = call)
  }
  in_list <- if (is_symbolic(inputs)) list(inputs) else inputs
  out_list <- if (is_symbolic(outputs)) list(outputs) else outputs
  if (!is_symbolic_list(in_list) ||
      !all(vapply(in_list, function(t) identical(t$node$kind, "input"), logical(1)))) {
    rk_abort("`inputs` must be a symbolic input from keras_input(), or a list of them.",
             kind = "argument", call = call)
  }
  if (!is_symbolic_list(out_list)) {
    rk_abort("`outputs` must be a symbolic tensor (a layer called on keras_input()), or a list of them.",
             kind = "argument", call = call)
  }
  if (!is.null(name)) check_string(name, "name", call)
  graph <- collect_graph(in_list, out_list, call)
  input_nodes <- lapply(in_list, function(t) t$node)
  ptr <- rk_call(rk_model_functional(
    name,
    vapply(input_nodes, function(n) n$name, character(1)),
    lapply(in_list, function(t) t$shape),
    lapply(graph$members, member_handle, call = call),
    graph$node_members,
    graph$src_nodes,
    graph$src_indices,
    graph$training,
    graph$out_nodes,
    graph$out_indices
  ), call = call)
  new_model(ptr, "Functional", graph = list(inputs = inputs, outputs = outputs))
}

# The calls between inputs and outputs, in creation order, with every tensor's source
# as (node position or -1 for an input, 0-based index).
collect_graph <- function(inputs, outputs, call) {
  input_ids <- vapply(inputs, function(t) t$node$id, integer(1))
  nodes <- list()
  visit <- function(t, path) {
    n <- t$node
    if (identical(n$kind, "input")) {
      if (!(n$id %in% input_ids)) {
        rk_abort(sprintf(paste0(
          "`outputs` do not depend only on `inputs`: %s is computed from the input '%s', ",
          "which is not in `inputs`."), path, n$name), kind = "argument", call = call)
      }
      return(invisible())
    }
    key <- as.character(n$id)
    if (!is.null(nodes[[key]])) return(invisible())
    nodes[[key]] <<- n
    for (x in n$inputs) visit(x, path)
  }
  for (i in seq_along(outputs)) {
    label <- if (length(outputs) == 1L) "the output" else sprintf("output %d", i)
    visit(outputs[[i]], label)
  }
  nodes <- nodes[order(vapply(nodes, function(n) n$id, integer(1)))]
  ids <- vapply(nodes, function(n) n$id, integer(1))
  # One member per distinct layer or model (a layer called twice is one member).
  distinct <- list()
  op_of <- integer(length(nodes))
  for (k in seq_along(nodes)) {
    m <- nodes[[k]]$member
    hit <- which(vapply(distinct, same_member, logical(1), b = m))
    if (length(hit) == 0L) {
      distinct[[length(distinct) + 1L]] <- m
      hit <- length(distinct)
    }
    op_of[k] <- hit[1]
  }
  order <- keras_layer_order(nodes, ids, op_of, outputs)
  members <- distinct[order]
  member_of <- match(op_of, order)
  src <- function(t) {
    if (identical(t$node$kind, "input")) {
      c(-1L, match(t$node$id, input_ids) - 1L)
    } else {
      c(match(t$node$id, ids) - 1L, t$index - 1L)
    }
  }
  srcs <- lapply(nodes, function(n) lapply(n$inputs, src))
  outs <- lapply(outputs, src)
  list(
    members = members,
    node_members = as.integer(member_of - 1L),
    src_nodes = lapply(srcs, function(s) vapply(s, `[`, integer(1), 1L)),
    src_indices = lapply(srcs, function(s) vapply(s, `[`, integer(1), 2L)),
    training = vapply(nodes, function(n) n$training %||% NA, logical(1)),
    out_nodes = vapply(outs, `[`, integer(1), 1L),
    out_indices = vapply(outs, `[`, integer(1), 2L)
  )
}

# Keras's order of `model$layers` (keras/src/ops/function.py, map_graph): by depth
# from the outputs, deepest first, ties by first visit in a walk back from the outputs.
# It matters beyond printing: Keras files list weights in this order.
keras_layer_order <- function(nodes, ids, op_of, outputs) {
  visit_index <- rep(NA_integer_, max(op_of, 0L))
  visited <- 0L
  finished <- integer()
  post <- integer()
  walk <- function(t) {
    if (identical(t$node$kind, "input")) return(invisible())
    k <- match(t$node$id, ids)
    if (k %in% finished) return(invisible())
    if (is.na(visit_index[op_of[k]])) {
      visited <<- visited + 1L
      visit_index[op_of[k]] <<- visited
    }
    for (x in nodes[[k]]$inputs) walk(x)
    finished <<- c(finished, k)
    post <<- c(post, k)
  }
  for (t in outputs) walk(t)
  node_depth <- rep(NA_integer_, length(nodes))
  op_depth <- rep(0L, length(visit_index))
  for (k in rev(post)) {
    d <- if (is.na(node_depth[k])) 0L else node_depth[k]
    d <- max(d, op_depth[op_of[k]])
    op_depth[op_of[k]] <- d
    node_depth[k] <- d
    for (x in nodes[[k]]$inputs) {
      if (identical(x$node$kind, "input")) next
      j <- match(x$node$id, ids)
      node_depth[j] <- max(d + 1L, if (is.na(node_depth[j])) 0L else node_depth[j])
    }
  }
  order(-op_depth, visit_index)
}

same_member <- function(a, b) {
  if (identical(a, b)) return(TRUE)
  pa <- member_handle_if_made(a)
  pb <- member_handle_if_made(b)
  !is.null(pa) && !is.null(pb) && rk_call(rk_same_member(pa, pb))
}

# --- Models as R objects ------------------------------------------------------------

# A model is a function (so `base(x)` calls it on a symbolic tensor, as in keras3)
# whose environment holds the engine handle; `$` reads fields from it.
new_model <- function(ptr, class_name, graph = NULL) {
  state <- new.env(parent = emptyenv())
  state$ptr <- ptr
  # What the model serializes as (R/model-serialization.R), carrying the symbolic graph
  # it was built from (left out of the serialized form: its layer objects would store
  # their weights a second time).
  state$snapshot <- rk_snapshot(ptr, graph)
  model <- function(object, ...) {
    call_member(model, object, ..., call = rk_user_call(environment()))
  }
  environment(model) <- list2env(list(state = state, model = NULL), parent = asNamespace("rustkeras"))
  cls <- switch(class_name,
                Sequential = "rustkeras_sequential",
                Functional = "rustkeras_functional",
                "rustkeras_functional")
  model <- structure(model, class = c(cls, "rustkeras_model"))
  assign("model", model, envir = environment(model))
  model
}

# A model's state; a model read back from serialized bytes gets its engine model here
# (a live model's snapshot has length 0: checking costs no call into the engine).
model_state <- function(x) {
  state <- get("state", envir = environment(unclass(x)))
  if (length(state$snapshot)) revive_member(state, "model", call = rk_entry_call())
  state
}

#' @export
`$.rustkeras_model` <- function(x, name) {
  model_field(x, name)
}

#' @export
`[[.rustkeras_model` <- function(x, i, ...) {
  model_field(x, i)
}

model_field <- function(x, name) {
  state <- model_state(x)
  switch(name,
    ptr = state$ptr,
    name = model_info(x)$name,
    layers = model_layers(x),
    trainable = model_info(x)$trainable,
    weights = get_weights(x),
    inputs = model_io_tensors(x, "inputs"),
    outputs = model_io_tensors(x, "outputs"),
    input = single_or_list(model_io_tensors(x, "inputs")),
    output = single_or_list(model_io_tensors(x, "outputs")),
    input_shape = single_or_list(lapply(rk_call(rk_model_io(state$ptr))$input_shapes, batch_dims)),
    output_shape = single_or_list(lapply(rk_call(rk_model_io(state$ptr))$output_shapes, batch_dims)),
    input_names = rk_call(rk_model_io(state$ptr))$input_names,
    output_names = rk_call(rk_model_io(state$ptr))$output_names,
    NULL
  )
}

single_or_list <- function(x) if (length(x) == 1L) x[[1]] else x

batch_dims <- function(s) if (is.null(s)) NULL else c(NA_integer_, s)

#' @export
`$<-.rustkeras_model` <- function(x, name, value) {
  set_member_field(x, name, value)
}

#' @export
`[[<-.rustkeras_model` <- function(x, i, value) {
  set_member_field(x, i, value)
}

#' @export
names.rustkeras_model <- function(x) {
  c("ptr", "name", "layers", "trainable", "weights", "inputs", "outputs", "input",
    "output", "input_shape", "output_shape", "input_names", "output_names")
}

set_member_field <- function(x, name, value) {
  call <- rk_user_call(parent.frame())
  if (!identical(name, "trainable")) {
    rk_abort(sprintf("`%s` cannot be set; only `trainable` can.", name), kind = "argument", call = call)
  }
  value <- check_flag(value, "trainable", call)
  rk_call(rk_member_set_trainable(member_handle(x, call), value), call = call)
  x
}

# Symbolic tensors for a model's inputs or outputs: the ones it was made from, or new
# inputs of the same shapes for a model made otherwise.
model_io_tensors <- function(x, which) {
  graph <- rk_snapshot_payload_of(model_state(x)$snapshot)
  if (!is.null(graph)) {
    t <- graph[[which]]
    return(if (is_symbolic(t)) list(t) else t)
  }
  io <- rk_call(rk_model_io(model_state(x)$ptr))
  if (which == "inputs") {
    return(Map(function(name, shape) {
      if (is.null(shape)) return(NULL)
      node <- new_node("input")
      node$name <- name
      new_symbolic(node, 1L, shape)
    }, io$input_names, io$input_shapes))
  }
  NULL
}

# Calls a model or layer object on `object`: symbolic tensors give symbolic tensors; a
# Sequential model gets the member appended. `...` holds the call's arguments besides
# its inputs: `training` only, as in Keras (`base(inputs, training = FALSE)`).
call_member <- function(member, object, ..., call) {
  training <- call_training(list(...), call)
  if (is_symbolic(object) || is_symbolic_list(object)) {
    return(call_symbolic(member, object, call, training = training))
  }
  if (!is.null(training)) {
    rk_abort(paste0(
      "`training` applies to a call on symbolic tensors from keras_input(), such as ",
      "`base(inputs, training = FALSE)`; ", describe_type(object), " was given."),
      kind = "argument", call = call)
  }
  if (inherits(object, "rustkeras_model")) {
    add_layer(object, member, call = call)
    return(invisible(object))
  }
  rk_abort(paste0(
    "A layer or model is called on symbolic tensors from keras_input() (or piped into ",
    "a Sequential model), not on ", describe_type(object), "; use predict() for arrays."),
    kind = "argument", call = call)
}

# The `training` argument of a call of a layer or model (NULL when not given), from the
# call's other arguments; anything else is refused, as Keras refuses keyword arguments
# that the layer's call() does not take.
call_training <- function(args, call) {
  nms <- names(args) %||% rep("", length(args))
  bad <- nms[nms != "training"]
  if (length(bad)) {
    shown <- ifelse(nzchar(bad), paste0("`", bad, "`"), "an unnamed argument")
    rk_abort(sprintf(paste0("A call of a layer or model takes its inputs and `training` only, ",
                            "not %s."), paste(shown, collapse = ", ")),
             kind = "argument", call = call)
  }
  training <- args$training
  if (is.null(training)) return(NULL)
  if (!(is.logical(training) && length(training) == 1L && !is.na(training))) {
    rk_abort(sprintf("`training` must be TRUE, FALSE or NULL, not %s.", shown_value(training)),
             kind = "argument", call = call)
  }
  training
}

# The engine handle of a layer or model object; a layer description is made into an
# engine layer on first use, so every later use shares it.
member_handle <- function(x, call = rk_user_call(parent.frame())) {
  if (inherits(x, "rustkeras_model")) return(model_state(x)$ptr)
  if (!inherits(x, "rustkeras_layer")) {
    rk_abort("Expected a layer (from layer_*()) or a model.", kind = "argument", call = call)
  }
  state <- layer_state(x)
  if (is.null(state$ptr)) {
    state$ptr <- rk_call(rk_layer_new(state$class_name, state$config), call = call)
    if (isFALSE(state$trainable)) rk_call(rk_member_set_trainable(state$ptr, FALSE), call = call)
    state$snapshot <- rk_snapshot(state$ptr, NULL)
  }
  state$ptr
}

member_handle_if_made <- function(x) {
  if (inherits(x, "rustkeras_model")) return(model_state(x)$ptr)
  if (inherits(x, "rustkeras_layer")) return(layer_state(x)$ptr)
  NULL
}

# R objects for the layers (and nested models) of a model, in Keras's order.
model_layers <- function(model) {
  handles <- rk_call(rk_model_members(model_state(model)$ptr))
  lapply(handles, wrap_member)
}

wrap_member <- function(h) {
  info <- rk_call(rk_member_info(h))
  if (isTRUE(info$is_model)) {
    return(new_model(h, info$class_name))
  }
  layer_from_handle(h, info$class_name)
}

#' Retrieve a layer of a model by name or index
#'
#' @param object A model.
#' @param name Name of the layer.
#' @param index Position of the layer in `object$layers` (1-based, as in keras3).
#' @returns The layer (a nested model for a model used as a layer). Changing it, for
#'   example `layer$trainable <- FALSE`, changes the model.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>%
#'   layer_dense(3, name = "hidden") %>%
#'   layer_dense(1)
#' get_layer(model, "hidden")
get_layer <- function(object, name = NULL, index = NULL) {
  call <- rk_user_call(environment())
  check_model(object, call)
  layers <- model_layers(object)
  names <- vapply(layers, function(l) l$name, character(1))
  if (!is.null(name) && !is.null(index)) {
    rk_abort("Give `name` or `index`, not both.", kind = "argument", call = call)
  }
  if (!is.null(name)) {
    check_string(name, "name", call)
    hit <- match(name, names)
    if (is.na(hit)) {
      rk_abort(no_layer_message(name, names, object$name), kind = "argument", call = call)
    }
    return(layers[[hit]])
  }
  if (!is.null(index)) {
    index <- check_positive_int(index, "index", call)
    if (index > length(layers)) {
      rk_abort(sprintf("`index` is %d, but model '%s' has %d layers.", index, object$name,
                       length(layers)), kind = "argument", call = call)
    }
    return(layers[[index]])
  }
  rk_abort("Give the layer's `name` or `index`.", kind = "argument", call = call)
}

# "No layer named 'conv5_blok1_1_conv' in model 'resnet50'. Did you mean
# 'conv5_block1_1_conv'?"
no_layer_message <- function(name, names, model_name) {
  msg <- sprintf("No layer named '%s' in model '%s'.", name, model_name)
  if (length(names) == 0L) return(paste(msg, "The model has no layers."))
  d <- utils::adist(name, names, ignore.case = TRUE)[1, ]
  close <- names[order(d)][seq_len(min(3L, length(names)))]
  close <- close[sort(d)[seq_along(close)] <= max(2L, nchar(name) %/% 3L)]
  if (length(close)) {
    paste0(msg, " Did you mean ", paste0("'", close, "'", collapse = ", "), "?")
  } else {
    paste0(msg, " Its layers are ", paste0("'", utils::head(names, 10L), "'", collapse = ", "),
           if (length(names) > 10L) ", ..." else "", ".")
  }
}

#' Remove the last layer of a Sequential model
#'
#' @param object A Sequential model.
#' @returns The model, invisibly (it is changed in place).
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(3) %>% layer_dense(1)
#' pop_layer(model)
#' length(model$layers)
pop_layer <- function(object) {
  call <- rk_user_call(environment())
  check_model(object, call)
  rk_call(rk_model_pop(object$ptr), call = call)
  invisible(object)
}

#' Count the parameters of a model or layer
#'
#' @param object A model or a layer.
#' @returns The number of weights (scalars), trainable or not.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(3)
#' count_params(model)
count_params <- function(object) {
  call <- rk_user_call(environment())
  info <- rk_call(rk_member_info(member_handle(object, call)), call = call)
  info$params
}

#' Clone a model
#'
#' A new model with the same architecture (the same layers, names and graph) and
#' freshly initialized weights, as keras3's `clone_model()`; models inside it are cloned
#' too. The clone is not compiled.
#'
#' @param model A model.
#' @param input_tensors,clone_function,call_function Unsupported; leave `NULL`.
#' @param recursive Unused (nested models are always cloned).
#' @param ... Unused.
#' @returns A new model.
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>% layer_dense(2)
#' twin <- clone_model(model)
#' count_params(twin)
clone_model <- function(model, input_tensors = NULL, clone_function = NULL, call_function = NULL,
                        recursive = FALSE, ...) {
  call <- rk_user_call(environment())
  check_model(model, call)
  check_unsupported_null(list(input_tensors = input_tensors, clone_function = clone_function,
                              call_function = call_function), call)
  ptr <- rk_call(rk_model_clone(model$ptr), call = call)
  new_model(ptr, rk_call(rk_member_info(ptr), call = call)$class_name)
}

#' Freeze and unfreeze weights
#'
#' `freeze_weights()` makes the weights of a model (or of the layers from `from` to
#' `to`, both included) non-trainable; `unfreeze_weights()` makes them trainable. As in
#' keras3, giving `from` or `to` sets the layers outside the range to the opposite
#' value. A frozen batch normalization layer runs in inference mode. The change takes
#' effect at the next `compile()`, as in Keras.
#'
#' @param object A model or a layer.
#' @param from,to Layer name, layer object or index (negative counts from the end)
#'   where the range starts and ends; `NULL` for the first and last layers.
#' @param which Unsupported; use `from`/`to` or `layer$trainable`.
#' @returns `object`, invisibly (it is changed in place).
#' @export
#' @examples
#' model <- keras_model_sequential(input_shape = 4) %>%
#'   layer_dense(8, name = "a") %>%
#'   layer_dense(8, name = "b") %>%
#'   layer_dense(1, name = "c")
#' freeze_weights(model, to = "b")
#' model
freeze_weights <- function(object, from = NULL, to = NULL, which = NULL) {
  call <- rk_user_call(environment())
  set_trainable_range(object, from, to, which, FALSE, call)
}

#' @rdname freeze_weights
#' @export
unfreeze_weights <- function(object, from = NULL, to = NULL, which = NULL) {
  call <- rk_user_call(environment())
  set_trainable_range(object, from, to, which, TRUE, call)
}

set_trainable_range <- function(object, from, to, which, value, call) {
  check_unsupported_null(list(which = which), call)
  handle <- member_handle(object, call)
  if (is.null(from) && is.null(to)) {
    rk_call(rk_member_set_trainable(handle, value), call = call)
    return(invisible(object))
  }
  check_model(object, call)
  rk_call(rk_member_set_trainable(handle, TRUE), call = call)
  layers <- model_layers(object)
  names <- vapply(layers, function(l) l$name, character(1))
  first <- if (is.null(from)) 1L else layer_position(from, names, "from", object, call)
  last <- if (is.null(to)) length(layers) else layer_position(to, names, "to", object, call)
  for (i in seq_along(layers)) {
    inside <- i >= first && i <= last
    rk_call(rk_member_set_trainable(member_handle(layers[[i]], call),
                                    if (inside) value else !value), call = call)
  }
  invisible(object)
}

layer_position <- function(x, names, arg, model, call) {
  if (inherits(x, "rustkeras_layer") || inherits(x, "rustkeras_model")) x <- x$name
  if (is.numeric(x) && length(x) == 1L && !is.na(x) && x == round(x) && x != 0) {
    i <- if (x < 0) length(names) + x + 1L else x
    if (i < 1 || i > length(names)) {
      rk_abort(sprintf("`%s` is %s, but model '%s' has %d layers.", arg, format(x),
                       model$name, length(names)), kind = "argument", call = call)
    }
    return(as.integer(i))
  }
  if (!(is.character(x) && length(x) == 1L && !is.na(x))) {
    rk_abort(sprintf("`%s` must be a layer name, a layer or an index, not %s.", arg, shown_value(x)),
             kind = "argument", call = call)
  }
  i <- match(x, names)
  if (is.na(i)) {
    rk_abort(sub("^No layer", sprintf("`%s` names no layer:", arg),
                 no_layer_message(x, names, model$name)), kind = "argument", call = call)
  }
  i
}
