# Models and layers that survive serialization: saveRDS()/readRDS(), save()/load(),
# save.image(), and serialize() to and from parallel workers (PSOCK clusters, future,
# callr, mirai).
#
# A model or layer object keeps, beside its engine handle, a snapshot (`state$snapshot`,
# made by rk_snapshot(), an ALTREP raw vector of src/model_snapshot.c). R serializes the
# handle as an empty pointer; the snapshot serializes as what rk_snapshot_state() writes at
# that moment: a model's .keras bytes (compile settings and optimizer state included), a
# layer's Keras config, build shapes and weights. Read back, the snapshot is that state;
# the object's first use (model_state(), layer_state()) makes a new engine object from it,
# which replaces the empty handle: the same predictions, and training goes on where it
# stopped. A live snapshot has length 0, so the check costs no call into the engine.

# The state an object serializes as, or a message saying why it cannot be: called from C
# while R serializes, so it never raises an error.
rk_snapshot_state <- function(ptr) {
  tryCatch({
    if (!rk_call(rk_member_info(ptr))$is_model) return(rk_call(rk_layer_snapshot(ptr)))
    tmp <- tempfile(fileext = ".keras")
    on.exit(unlink(tmp), add = TRUE)
    rk_call(rk_save_model_keras(ptr, tmp, TRUE))
    readBin(tmp, "raw", file.size(tmp))
  }, error = function(e) conditionMessage(e))
}

# The user's call that entered the package (the outermost function of ours on the stack),
# for errors raised deep inside, e.g. `predict()`.
rk_entry_call <- function() {
  ns <- asNamespace("rustkeras")
  for (i in seq_len(sys.nframe() - 1L)) {
    if (identical(environment(sys.function(i)), ns)) return(rk_user_call(sys.frame(i)))
  }
  NULL
}

# Brings back the engine object of a model or layer read back from its serialized state;
# a no-op while its handle is alive.
revive_member <- function(state, what, call = NULL) {
  if (!is.null(state$ptr) && rk_handle_alive(state$ptr)) return(invisible(state))
  saved <- state$snapshot
  if (is.character(saved)) {
    rk_abort(c(
      sprintf("This %s's engine object no longer exists and cannot be restored:", what),
      paste0("  it could not be serialized: ", saved)
    ), kind = "state", call = call)
  }
  ptr <- if (what == "layer") {
    rk_call(rk_layer_restore(saved), call = call)
  } else {
    tmp <- tempfile(fileext = ".keras")
    on.exit(unlink(tmp), add = TRUE)
    writeBin(saved, tmp)
    rk_call(rk_load_model_keras(tmp, TRUE), call = call)
  }
  state$ptr <- ptr
  # (A model's symbolic graph did not travel: model_io_tensors() makes new inputs.)
  state$snapshot <- rk_snapshot(ptr, NULL)
  invisible(state)
}
