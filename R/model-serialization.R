# Models that survive serialization: saveRDS()/readRDS(), save()/load(), save.image(), and
# serialize() to and from parallel workers (PSOCK clusters, future, callr, mirai).
#
# A model object keeps, beside its engine handle, a snapshot (`state$snapshot`, made by
# rk_model_snapshot(), an ALTREP raw vector of src/model_snapshot.c). R serializes the
# handle as an empty pointer; the snapshot serializes as the model's .keras bytes, written
# by rk_model_snapshot_bytes() at that moment, with the compile settings and the optimizer
# state. Read back, the snapshot is a plain raw vector; the first use of the model
# (model_state()) loads those bytes into a new engine model, which then replaces the empty
# handle: the same predictions, and training goes on where it stopped.

# The bytes a model serializes as, or a message saying why it cannot be: called from C
# while R serializes, so it never raises an error.
rk_model_snapshot_bytes <- function(ptr) {
  tmp <- tempfile(fileext = ".keras")
  on.exit(unlink(tmp), add = TRUE)
  tryCatch({
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

# Brings back the engine model of a model read back from serialized bytes; a no-op while
# its handle is alive.
revive_model <- function(state, call = NULL) {
  if (rk_handle_alive(state$ptr)) return(invisible(state))
  bytes <- state$snapshot
  if (!is.raw(bytes) || length(bytes) == 0L) {
    why <- if (is.character(bytes)) bytes else
      "it was serialized without its engine state (serialization version 2)"
    rk_abort(c(
      "This model's engine object no longer exists and cannot be restored:",
      paste0("  ", why),
      "Rebuild the model, or load it from a file written by save_model()."
    ), kind = "state", call = call)
  }
  tmp <- tempfile(fileext = ".keras")
  on.exit(unlink(tmp), add = TRUE)
  writeBin(bytes, tmp)
  ptr <- rk_call(rk_load_model_keras(tmp, TRUE), call = call)
  state$ptr <- ptr
  # The symbolic graph it was built from referred to the old engine layers.
  state$graph <- NULL
  state$snapshot <- rk_model_snapshot(ptr)
  invisible(state)
}
