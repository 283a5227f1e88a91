test_that("the engine reports its version", {
  expect_match(rk_call(rk_engine_version()), "^[0-9]+\\.[0-9]+\\.[0-9]+")
})

test_that("an Err from Rust becomes a rustkeras_error with the user's call", {
  fit_like <- function() rk_call(rk_selftest_error("layer 'dense_1' expects 784 features, got 28"))
  err <- expect_error(fit_like(), class = "rustkeras_error")
  expect_s3_class(err, c("rustkeras_selftest_error", "rustkeras_error", "error", "condition"),
                  exact = TRUE)
  expect_equal(conditionMessage(err), "layer 'dense_1' expects 784 features, got 28")
  expect_equal(conditionCall(err), quote(fit_like()))
  expect_equal(err$kind, "selftest")
})

test_that("inside an S3 method the call is the generic's", {
  generic <- function(x, ...) UseMethod("generic")
  generic.rk_test <- function(x, ...) rk_call(rk_selftest_error("bad"))
  err <- expect_error(generic(structure(1, class = "rk_test")), class = "rustkeras_error")
  expect_equal(conditionCall(err), quote(generic()))
  expect_equal(
    tryCatch(generic(structure(1, class = "rk_test")), error = conditionMessage),
    "bad"
  )
})

test_that("a panic becomes a rustkeras_panic_error and prints nothing", {
  boom <- function() rk_call(rk_selftest_panic("index out of bounds"))
  out <- capture.output(
    err <- tryCatch(boom(), error = identity),
    type = "message"
  )
  expect_equal(out, character())
  expect_s3_class(err, "rustkeras_panic_error")
  expect_s3_class(err, "rustkeras_error")
  expect_match(conditionMessage(err), "Internal error in the Rust engine: index out of bounds")
  expect_match(conditionMessage(err), "bug in rustkeras")
  expect_equal(conditionCall(err), quote(boom()))
  # The R session and the library are still usable afterwards.
  expect_equal(rk_call(rk_engine_version()), rk_engine_version())
})

test_that("errors raised in R while evaluating arguments pass through unchanged", {
  err <- expect_error(rk_call(rk_selftest_error(stop("from R"))), "from R")
  expect_false(inherits(err, "rustkeras_error"))
})

test_that("rk_abort() builds the same condition for R-side checks", {
  check_units <- function(units) rk_abort("`units` must be a positive integer, not -3", kind = "argument")
  err <- expect_error(check_units(-3), class = "rustkeras_argument_error")
  expect_s3_class(err, "rustkeras_error")
  expect_equal(conditionCall(err), quote(check_units()))
})

test_that("polling for an interrupt without one pending returns FALSE", {
  expect_false(rk_selftest_interrupt_pending())
})
