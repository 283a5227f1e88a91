# Memory over repeated calls: the resident set size (RSS) after each cycle of a loop, for
# the loops R users run in a session: fit(), evaluate(), predict(), save_model() +
# load_model() cycles, and model builds. A loop that leaks grows by the same amount each
# cycle; one that does not levels off after its first cycles (warm-up: pools, caches).
#
# Usage: Rscript bench/memory.R [cycles] [builds]     (defaults 50 and 1000)
# RUSTKERAS_LIB=/some/lib Rscript bench/memory.R      measures the rustkeras installed there.

args <- commandArgs(trailingOnly = TRUE)
cycles <- if (length(args) >= 1) as.integer(args[[1]]) else 50L
builds <- if (length(args) >= 2) as.integer(args[[2]]) else 1000L
lib <- Sys.getenv("RUSTKERAS_LIB")
if (nzchar(lib)) library(rustkeras, lib.loc = lib) else library(rustkeras)

rss_mb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(strsplit(trimws(sub("^VmRSS:", "", grep("^VmRSS:", s, value = TRUE))), " +")[[1]][1]) / 1024
}

cat(sprintf("rustkeras %s from %s; %d cycles per loop, %d builds\n",
            packageVersion("rustkeras"), find.package("rustkeras"), cycles, builds))
set.seed(1)
n <- 5000L
x <- matrix(runif(n * 784), n, 784)
y <- to_categorical(sample(0:9, n, replace = TRUE), 10)
model <- keras_model_sequential(input_shape = 784) %>%
  layer_dense(128, activation = "relu") %>%
  layer_dropout(0.2) %>%
  layer_dense(10, activation = "softmax")
model %>% compile(optimizer = "adam", loss = "categorical_crossentropy", metrics = "accuracy")
path <- tempfile(fileext = ".keras")

# Runs `body` `cycles` times; prints RSS after the first cycles and every tenth, and the
# growth per cycle over the second half (past warm-up). Each reading follows a gc(), so
# that R's own garbage (a predict()'s output matrix, say) does not count as growth.
measure <- function(label, body, cycles) {
  invisible(gc())
  start <- rss_mb()
  rss <- numeric(cycles)
  for (i in seq_len(cycles)) {
    body()
    invisible(gc())
    rss[i] <- rss_mb()
  }
  shown <- unique(c(1:3, seq(10, cycles, by = 10), cycles))
  shown <- shown[shown <= cycles]
  half <- max(1L, cycles %/% 2L)
  per_cycle <- (rss[cycles] - rss[half]) / max(1L, cycles - half)
  cat(sprintf("%-32s start %7.1f MB | %s | end %7.1f MB | %+.3f MB/cycle after warm-up\n",
              label, start,
              paste(sprintf("%d:%.0f", shown, rss[shown]), collapse = " "),
              rss[cycles], per_cycle))
  invisible(per_cycle)
}

measure("fit (5000 x 784, 1 epoch)", function() fit(model, x, y, epochs = 1, batch_size = 128, verbose = 0), cycles)
measure("evaluate (5000 x 784)", function() evaluate(model, x, y, verbose = 0), cycles)
measure("predict (5000 x 784)", function() predict(model, x, verbose = 0), cycles)
measure("save_model + load_model", function() {
  save_model(model, path, overwrite = TRUE)
  load_model(path)
}, cycles)
measure(sprintf("model builds (x %d per cycle)", builds %/% 10L), function() {
  for (i in seq_len(builds %/% 10L)) {
    keras_model_sequential(input_shape = 784) %>%
      layer_dense(128, activation = "relu") %>%
      layer_dense(10, activation = "softmax")
  }
}, 10L)
invisible(gc())
cat(sprintf("after gc(): %.1f MB\n", rss_mb()))
