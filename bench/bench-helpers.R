# Helpers shared by bench/mlp.R, bench/cnn.R and bench/resnet50.R (sourced, not a script):
# the machine and load report, timing, peak memory, running bench/peers.py and the summary
# table.

vmhwm_mb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(strsplit(trimws(sub("^VmHWM:", "", grep("^VmHWM:", s, value = TRUE))), " +")[[1]][1]) / 1024
}
cpu_model <- function() {
  m <- grep("^model name", readLines("/proc/cpuinfo"), value = TRUE)
  if (length(m)) trimws(sub("^[^:]*:", "", m[[1]])) else "unknown"
}
cpu_family <- function() {
  l <- readLines("/proc/cpuinfo")
  f <- function(k) trimws(sub("^[^:]*:", "", grep(paste0("^", k, "\\s*:"), l, value = TRUE)[1]))
  sprintf("family %s model %s", f("cpu family"), f("model"))
}
loadavg <- function() paste(strsplit(readLines("/proc/loadavg"), " ")[[1]][1:3], collapse = " ")
cpu_ticks <- function() as.numeric(strsplit(trimws(sub("^cpu", "", readLines("/proc/stat", n = 1))), " +")[[1]])
running <- function() as.integer(sub("procs_running ", "", grep("^procs_running", readLines("/proc/stat"), value = TRUE)))
elapsed <- function(expr) {
  t <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t
}

# The header: machine, R, rustkeras, the model line, and the load before the run.
bench_header <- function(model_line) {
  cat(sprintf("machine: %s (%s), nproc %s, %.1f GiB RAM; R %s; rustkeras %s\n",
              cpu_model(), cpu_family(), trimws(system("nproc", intern = TRUE)),
              as.numeric(sub("\\D+(\\d+).*", "\\1", grep("^MemTotal", readLines("/proc/meminfo"), value = TRUE))) / 2^20,
              getRversion(), packageVersion("rustkeras")))
  print(backend_info())
  cat(model_line, "\n", sep = "")
  cat(sprintf("load average before: %s; runnable processes now: %d (this one included)\n", loadavg(), running()))
  if (running() > 1L || as.numeric(strsplit(loadavg(), " ")[[1]][1]) > 0.7) {
    cat("warning: other work is running on this machine; it skews every figure below (rerun when idle)\n")
  }
  cat("\n")
  invisible(cpu_ticks())
}

# Runs bench/peers.py with `args` in the venv's Python; prints its commentary and returns
# one list per PEER_RESULT line.
peer_results <- function(venv, script_dir, args) {
  results <- list()
  py <- file.path(venv, "bin", "python")
  if (!file.exists(py)) {
    cat(sprintf("\nno peer venv at %s: run bench/setup-peers.sh to compare with Keras 3 and PyTorch\n", venv))
    return(results)
  }
  cat(sprintf("\npeers (%s):\n", venv))
  # peers.py drops OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in its children's environment only.
  out <- system2(py, c(shQuote(file.path(script_dir, "peers.py")), args), stdout = TRUE, stderr = "")
  for (line in out) {
    if (startsWith(line, "PEER_RESULT ")) {
      json <- sub("^PEER_RESULT ", "", line)
      num <- function(k) {
        m <- regmatches(json, regexec(sprintf('"%s": (-?[0-9.eE+-]+|null)', k), json))[[1]]
        if (length(m) < 2 || m[2] == "null") NA_real_ else as.numeric(m[2])
      }
      str <- function(k) regmatches(json, regexec(sprintf('"%s": "([^"]*)"', k), json))[[1]][2]
      r <- list(peer = str("peer"), version = str("version"), epoch1_s = num("epoch1_s"), epoch_s = num("epoch_s"),
                test_acc = num("test_acc"), predict_img_s = num("predict_img_s"), peak_rss_mb = num("peak_rss_mb"),
                epoch_s_median_cb = num("epoch_s_median_cb"), blas = str("architecture"),
                # --model resnet50 (see peers.py): one batch, warm-up + best of --reps
                predict1_s = num("predict1_s"), train_step_s = num("train_step_s"),
                train_step1_s = num("train_step1_s"), predict_peak_rss_mb = num("predict_peak_rss_mb"),
                params = num("params"))
      if (!is.na(r$train_step_s)) {
        cat(sprintf("  %-12s %s: predict %.1f images/s (first call %.2f s); training step %.3f s (first %.2f s); peak RSS %.0f MB (%.0f MB after predict); %.0f params; numpy's OpenBLAS kernel %s\n",
                    r$peer, r$version, r$predict_img_s, r$predict1_s, r$train_step_s, r$train_step1_s, r$peak_rss_mb,
                    r$predict_peak_rss_mb, r$params, r$blas))
      } else {
        cat(sprintf("  %-12s %s: first epoch %.3f s, then %.3f s/epoch (median in-call %.3f); predict %.0f images/s; test accuracy %.4f; peak RSS %.0f MB; numpy's OpenBLAS kernel %s\n",
                    r$peer, r$version, r$epoch1_s, r$epoch_s, r$epoch_s_median_cb, r$predict_img_s, r$test_acc, r$peak_rss_mb, r$blas))
      }
      results[[length(results) + 1]] <- r
    } else {
      cat("  ", line, "\n", sep = "")
    }
  }
  results
}

# The summary table; `ours` is rustkeras's result (NULL when it could not run: no ratios).
# Returns the table (one row per engine, ratios rustkeras / that engine) invisibly.
print_summary <- function(results, ours, title) {
  if (!length(results)) return(invisible(NULL))
  tab <- data.frame(
    engine = vapply(results, `[[`, "", "peer"),
    s_per_epoch = vapply(results, function(r) r$epoch_s, 0),
    first_epoch_s = vapply(results, function(r) r$epoch1_s, 0),
    predict_img_s = vapply(results, function(r) r$predict_img_s, 0),
    test_acc = vapply(results, function(r) r$test_acc, 0),
    peak_rss_mb = vapply(results, function(r) r$peak_rss_mb, 0)
  )
  tab$epoch_ratio <- if (is.null(ours)) NA_real_ else ours$epoch_s / tab$s_per_epoch            # rustkeras s/epoch / this
  tab$predict_ratio <- if (is.null(ours)) NA_real_ else ours$predict_img_s / tab$predict_img_s  # rustkeras img/s / this
  cat(sprintf("\nsummary (%s; ratios are rustkeras / that engine):\n", title))
  fmt <- data.frame(
    engine = tab$engine,
    `s/epoch` = sprintf("%.3f", tab$s_per_epoch),
    `epoch 1 s` = sprintf("%.2f", tab$first_epoch_s),
    `predict img/s` = sprintf("%.0f", tab$predict_img_s),
    `test acc` = sprintf("%.4f", tab$test_acc),
    `peak RSS MB` = sprintf("%.0f", tab$peak_rss_mb),
    `rk s/epoch ratio` = sprintf("%.2f", tab$epoch_ratio),
    `rk predict ratio` = sprintf("%.2f", tab$predict_ratio),
    check.names = FALSE
  )
  print(fmt, row.names = FALSE, right = TRUE)
  invisible(tab)
}

bench_footer <- function(ticks0) {
  d <- cpu_ticks() - ticks0 # user nice system idle iowait irq softirq steal ...
  cat(sprintf("load average after: %s; CPU steal during the run: %.1f%%\n", loadavg(), 100 * d[8] / sum(d[1:8])))
}
